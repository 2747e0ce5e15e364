#include "extensions/filters/http/router/retry_state.h"

#include <algorithm>
#include <charconv>

#include "common/random.h"
#include "http/utility.h"

namespace legate::extensions::router {
namespace {

namespace ro = legate::router::retry_on;

constexpr uint32_t kGrpcConditions = ro::kGrpcCancelled | ro::kGrpcDeadlineExceeded |
                                     ro::kGrpcResourceExhausted | ro::kGrpcUnavailable |
                                     ro::kGrpcInternal;

std::optional<uint32_t> parseUint32(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

} // namespace

std::unique_ptr<RetryState> RetryState::create(const legate::router::RetryPolicy* policy,
                                               const http::HeaderMap& request,
                                               const upstream::Cluster& cluster,
                                               event::Dispatcher& dispatcher) {
  uint32_t retry_on = policy != nullptr ? policy->retry_on : 0;
  if (auto h = request.get("x-envoy-retry-on")) {
    retry_on |= legate::router::parseRetryOn(*h) & ~kGrpcConditions;
  }
  if (auto h = request.get("x-envoy-retry-grpc-on")) {
    retry_on |= legate::router::parseRetryOn(*h) & kGrpcConditions;
  }
  if (retry_on == 0) return nullptr;
  if (policy != nullptr && !policy->retriable_request_headers.empty()) {
    const bool match = std::any_of(policy->retriable_request_headers.begin(),
                                   policy->retriable_request_headers.end(),
                                   [&](const auto& m) { return m.match(request); });
    if (!match) return nullptr;
  }
  std::unique_ptr<RetryState> s(new RetryState(policy, cluster, dispatcher));
  s->retry_on_ = retry_on;
  if (auto h = request.get("x-envoy-max-retries")) {
    if (auto n = parseUint32(*h)) s->retries_remaining_ = *n;
  }
  // The header lists add to the configured ones, and only count when the
  // matching condition is on.
  if (retry_on & ro::kRetriableStatusCodes) {
    if (auto h = request.get("x-envoy-retriable-status-codes")) {
      s->status_codes_ = legate::router::parseStatusCodeList(*h);
    }
  }
  if (retry_on & ro::kRetriableHeaders) {
    if (auto h = request.get("x-envoy-retriable-header-names")) {
      std::string_view list = *h;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        std::string name(http::utility::trimmed(list.substr(0, comma)));
        http::toLowerInPlace(name);
        if (!name.empty()) s->header_names_.push_back(std::move(name));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  return s;
}

RetryState::RetryState(const legate::router::RetryPolicy* policy,
                       const upstream::Cluster& cluster, event::Dispatcher& dispatcher)
    : policy_(policy), cluster_(cluster), dispatcher_(dispatcher) {
  if (policy_ != nullptr) {
    retries_remaining_ = policy_->num_retries;
    base_interval_ = policy_->base_interval;
    max_interval_ = policy_->max_interval;
  }
}

RetryState::~RetryState() { releaseRetry(); }

void RetryState::releaseRetry() {
  backoff_timer_.reset();
  do_retry_ = nullptr;
  if (holds_retry_) {
    holds_retry_ = false;
    cluster_.resourceManager().releaseRetry();
  }
}

bool RetryState::wouldRetryResponse(const http::HeaderMap& response) const {
  // An upstream Envoy that is overloaded or rate limiting asks not to be
  // retried, except that envoy-ratelimited retries rate-limited answers.
  if (response.has("x-envoy-overloaded")) return false;
  if (response.has("x-envoy-ratelimited")) return (retry_on_ & ro::kEnvoyRateLimited) != 0;
  const uint32_t code = response.status();
  if ((retry_on_ & ro::k5xx) && code >= 500 && code < 600) return true;
  if ((retry_on_ & ro::kGatewayError) && code >= 502 && code <= 504) return true;
  if ((retry_on_ & ro::kRetriable4xx) && code == 409) return true;
  if (retry_on_ & ro::kRetriableStatusCodes) {
    if (std::find(status_codes_.begin(), status_codes_.end(), code) != status_codes_.end()) {
      return true;
    }
    if (policy_ != nullptr &&
        std::find(policy_->retriable_status_codes.begin(), policy_->retriable_status_codes.end(),
                  code) != policy_->retriable_status_codes.end()) {
      return true;
    }
  }
  if (retry_on_ & ro::kRetriableHeaders) {
    if (policy_ != nullptr) {
      for (const auto& m : policy_->retriable_headers) {
        if (m.match(response)) return true;
      }
    }
    for (const auto& name : header_names_) {
      if (response.has(name)) return true;
    }
  }
  if (retry_on_ & kGrpcConditions) {
    if (auto gs = response.get("grpc-status")) {
      switch (parseUint32(*gs).value_or(0)) {
      case 1:
        return (retry_on_ & ro::kGrpcCancelled) != 0;
      case 4:
        return (retry_on_ & ro::kGrpcDeadlineExceeded) != 0;
      case 8:
        return (retry_on_ & ro::kGrpcResourceExhausted) != 0;
      case 13:
        return (retry_on_ & ro::kGrpcInternal) != 0;
      case 14:
        return (retry_on_ & ro::kGrpcUnavailable) != 0;
      default:
        break;
      }
    }
  }
  return false;
}

bool RetryState::wouldRetryFailure(Failure failure, bool request_started) const {
  if (failure == Failure::Overflow) return false;
  if (retry_on_ & (ro::k5xx | ro::kGatewayError | ro::kReset)) return true;
  if ((retry_on_ & ro::kResetBeforeRequest) && !request_started) return true;
  if ((retry_on_ & ro::kConnectFailure) && failure == Failure::ConnectFailure) return true;
  return false;
}

RetryState::Status RetryState::shouldRetry(bool would_retry, std::function<void()> do_retry) {
  // A decision after a retry that is not to retry again: that retry worked.
  if (holds_retry_ && !would_retry) {
    cluster_.stats().upstream_rq_retry_success.inc();
  }
  releaseRetry();
  if (!would_retry) return Status::No;
  upstream::ClusterStats& cs = cluster_.stats();
  if (retries_remaining_ == 0) {
    cs.upstream_rq_retry_limit_exceeded.inc();
    return Status::NoRetryLimitExceeded;
  }
  --retries_remaining_;
  if (!cluster_.resourceManager().tryAcquireRetry()) {
    cs.upstream_rq_retry_overflow.inc();
    return Status::NoOverflow;
  }
  holds_retry_ = true;
  ++retries_done_;
  cs.upstream_rq_retry.inc();
  cs.upstream_rq_retry_backoff_exponential.inc();
  do_retry_ = std::move(do_retry);
  backoff_timer_ = dispatcher_.createTimer([this] {
    // The callback may destroy this object (a local reply): take it first.
    auto cb = std::move(do_retry_);
    do_retry_ = nullptr;
    cb();
  });
  backoff_timer_->enableTimer(backOff(retries_done_, base_interval_, max_interval_, fastRandom()));
  return Status::Yes;
}

std::chrono::milliseconds RetryState::backOff(uint32_t n, std::chrono::milliseconds base,
                                              std::chrono::milliseconds max, uint64_t random) {
  const uint64_t base_ms = static_cast<uint64_t>(std::max<int64_t>(base.count(), 1));
  const uint64_t max_ms = static_cast<uint64_t>(std::max<int64_t>(max.count(), 1));
  // (2^n - 1) * base, saturating well before overflow.
  const uint32_t shift = std::min<uint32_t>(std::max<uint32_t>(n, 1), 32);
  uint64_t ceiling = ((uint64_t{1} << shift) - 1) * base_ms;
  ceiling = std::min(ceiling, max_ms);
  return std::chrono::milliseconds(random % ceiling);
}

bool RetryState::rejectsHost(const upstream::Host& host) const {
  if (policy_ == nullptr || !policy_->previous_hosts) return false;
  return std::any_of(attempted_.begin(), attempted_.end(),
                     [&](const upstream::HostConstSharedPtr& h) { return h.get() == &host; });
}

uint32_t RetryState::hostSelectionRetryCount() const {
  return policy_ != nullptr && policy_->previous_hosts ? policy_->host_selection_max_attempts : 0;
}

} // namespace legate::extensions::router
