#include "router/retry_policy.h"

#include <charconv>

#include "config/unsupported.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.pb.h"
#include "google/protobuf/util/time_util.h"
#include "http/utility.h"

namespace legate::router {

namespace {

std::chrono::milliseconds toMillis(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

absl::Status invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(path + ": " + what);
}

constexpr std::string_view kPreviousHostsName = "envoy.retry_host_predicates.previous_hosts";

// Naming the generated message also links its descriptor into the binary, so
// configs can give it as a typed_config @type.
const std::string& previousHostsType() {
  return envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate::descriptor()
      ->full_name();
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class Fn>
void forEachListItem(std::string_view list, Fn fn) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view item = trimmed(list.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

uint32_t parseRetryOn(std::string_view list, std::string* unknown) {
  static constexpr std::pair<std::string_view, uint32_t> kNames[] = {
      {"5xx", retry_on::k5xx},
      {"gateway-error", retry_on::kGatewayError},
      {"connect-failure", retry_on::kConnectFailure},
      {"retriable-4xx", retry_on::kRetriable4xx},
      {"refused-stream", retry_on::kRefusedStream},
      {"retriable-status-codes", retry_on::kRetriableStatusCodes},
      {"reset", retry_on::kReset},
      {"retriable-headers", retry_on::kRetriableHeaders},
      {"envoy-ratelimited", retry_on::kEnvoyRateLimited},
      {"reset-before-request", retry_on::kResetBeforeRequest},
      {"http3-post-connect-failure", retry_on::kHttp3PostConnectFailure},
      {"cancelled", retry_on::kGrpcCancelled},
      {"deadline-exceeded", retry_on::kGrpcDeadlineExceeded},
      {"resource-exhausted", retry_on::kGrpcResourceExhausted},
      {"unavailable", retry_on::kGrpcUnavailable},
      {"internal", retry_on::kGrpcInternal},
  };
  uint32_t out = 0;
  forEachListItem(list, [&](std::string_view item) {
    for (const auto& [name, bit] : kNames) {
      if (item == name) {
        out |= bit;
        return;
      }
    }
    if (unknown != nullptr && unknown->empty()) *unknown = std::string(item);
  });
  return out;
}

std::vector<uint32_t> parseStatusCodeList(std::string_view list) {
  std::vector<uint32_t> out;
  forEachListItem(list, [&](std::string_view item) {
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec == std::errc() && p == item.data() + item.size()) out.push_back(v);
  });
  return out;
}

absl::StatusOr<std::shared_ptr<const RetryPolicy>> RetryPolicy::create(
    const envoy::config::route::v3::RetryPolicy& proto, const std::string& path) {
  if (auto st = config::rejectUnsupportedFields(
          proto, {"retry_priority", "retry_options_predicates", "rate_limited_retry_back_off"},
          path);
      !st.ok()) {
    return st;
  }
  auto p = std::make_shared<RetryPolicy>();
  std::string unknown;
  p->retry_on = parseRetryOn(proto.retry_on(), &unknown);
  if (!unknown.empty()) {
    return invalid(path + ".retry_on",
                   "'" + unknown +
                       "' is not a retry condition legate knows (5xx, gateway-error, reset, "
                       "connect-failure, retriable-4xx, refused-stream, retriable-status-codes, "
                       "retriable-headers, envoy-ratelimited, reset-before-request, "
                       "http3-post-connect-failure, cancelled, deadline-exceeded, internal, "
                       "resource-exhausted, unavailable)");
  }
  if (proto.has_num_retries()) p->num_retries = proto.num_retries().value();
  if (proto.has_per_try_timeout()) p->per_try_timeout = toMillis(proto.per_try_timeout());
  if (proto.has_per_try_idle_timeout()) {
    p->per_try_idle_timeout = toMillis(proto.per_try_idle_timeout());
  }
  if (proto.has_retry_back_off()) {
    const auto& b = proto.retry_back_off();
    const std::string bpath = path + ".retry_back_off";
    p->base_interval = toMillis(b.base_interval());
    if (p->base_interval.count() <= 0) {
      return invalid(bpath + ".base_interval", "must be at least 1ms");
    }
    p->max_interval = b.has_max_interval() ? toMillis(b.max_interval()) : p->base_interval * 10;
    if (p->max_interval < p->base_interval) {
      return invalid(bpath + ".max_interval", "must be greater than or equal to base_interval");
    }
  }
  for (uint32_t code : proto.retriable_status_codes()) {
    p->retriable_status_codes.push_back(code);
  }
  for (int i = 0; i < proto.retriable_headers_size(); ++i) {
    auto m = HeaderMatcher::create(proto.retriable_headers(i),
                                   path + ".retriable_headers[" + std::to_string(i) + "]");
    if (!m.ok()) return m.status();
    p->retriable_headers.push_back(std::move(*m));
  }
  for (int i = 0; i < proto.retriable_request_headers_size(); ++i) {
    auto m = HeaderMatcher::create(proto.retriable_request_headers(i),
                                   path + ".retriable_request_headers[" + std::to_string(i) + "]");
    if (!m.ok()) return m.status();
    p->retriable_request_headers.push_back(std::move(*m));
  }
  if (proto.host_selection_retry_max_attempts() < 0) {
    return invalid(path + ".host_selection_retry_max_attempts", "must not be negative");
  }
  if (proto.host_selection_retry_max_attempts() > 0) {
    p->host_selection_max_attempts =
        static_cast<uint32_t>(std::min<int64_t>(proto.host_selection_retry_max_attempts(), 100));
  }
  for (int i = 0; i < proto.retry_host_predicate_size(); ++i) {
    const auto& pred = proto.retry_host_predicate(i);
    const std::string ppath = path + ".retry_host_predicate[" + std::to_string(i) + "]";
    const std::string type_url = pred.typed_config().type_url();
    const std::string_view type =
        std::string_view(type_url).substr(std::min(type_url.rfind('/') + 1, type_url.size()));
    if (type == previousHostsType() || (type.empty() && pred.name() == kPreviousHostsName)) {
      p->previous_hosts = true;
      continue;
    }
    return invalid(ppath, "retry host predicate '" + pred.name() + "' (" + std::string(type) +
                              ") is not implemented by legate (" + std::string(kPreviousHostsName) +
                              " is)");
  }
  return std::shared_ptr<const RetryPolicy>(std::move(p));
}

absl::StatusOr<std::shared_ptr<const HedgePolicy>> HedgePolicy::create(
    const envoy::config::route::v3::HedgePolicy& proto, const std::string& path) {
  // Envoy documents both as not implemented yet; values other than their
  // defaults would be silently ignored there, so legate refuses them.
  if (proto.has_initial_requests() && proto.initial_requests().value() != 1) {
    return invalid(path + ".initial_requests",
                   "values other than 1 are not implemented (by Envoy either)");
  }
  if (proto.has_additional_request_chance() &&
      proto.additional_request_chance().numerator() != 0) {
    return invalid(path + ".additional_request_chance",
                   "is not implemented (by Envoy either)");
  }
  auto h = std::make_shared<HedgePolicy>();
  h->hedge_on_per_try_timeout = proto.hedge_on_per_try_timeout();
  return std::shared_ptr<const HedgePolicy>(std::move(h));
}

}  // namespace legate::router
