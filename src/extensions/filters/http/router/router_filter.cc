#include "extensions/filters/http/router/router_filter.h"

#include <charconv>

#include "common/logger.h"
#include "common/loop_time.h"
#include "common/random.h"
#include "http/utility.h"
#include "router/route.h"
#include "router/route_config.h"
#include "runtime/runtime.h"
#include "upstream/cluster_manager.h"

namespace legate::extensions::router {
namespace {

// A number as header text, formatted on the stack (no std::string).
class Decimal {
public:
  explicit Decimal(int64_t v) : end_(std::to_chars(buf_, buf_ + sizeof(buf_), v).ptr) {}
  std::string_view view() const { return {buf_, static_cast<size_t>(end_ - buf_)}; }

private:
  char buf_[24];
  char* end_;
};

std::optional<uint64_t> parseUint(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

constexpr std::string_view kUpstreamRqTimeoutMs = "x-envoy-upstream-rq-timeout-ms";
constexpr std::string_view kUpstreamRqPerTryTimeoutMs = "x-envoy-upstream-rq-per-try-timeout-ms";
constexpr std::string_view kExpectedRqTimeoutMs = "x-envoy-expected-rq-timeout-ms";
constexpr std::string_view kHedgeOnPerTryTimeout = "x-envoy-hedge-on-per-try-timeout";
constexpr std::string_view kUpstreamServiceTime = "x-envoy-upstream-service-time";
constexpr std::string_view kAttemptCount = "x-envoy-attempt-count";
constexpr std::string_view kIsTimeoutRetry = "x-envoy-is-timeout-retry";

constexpr std::string_view kResetBeforeHeaders =
    "upstream connect error or disconnect/reset before headers. reset reason: ";

} // namespace

http::FilterHeadersStatus RouterFilter::decodeHeaders(http::HeaderMap& headers, bool end_stream) {
  request_headers_ = &headers;
  request_complete_ = end_stream;
  http::ConnectionManagerStats& st = config_->stats;
  st.rq_total.inc();
  accesslog::StreamInfo& info = callbacks_->streamInfo();

  const legate::router::Route* route = callbacks_->route();
  if (route == nullptr) {
    st.no_route.inc();
    info.setResponseFlag(accesslog::kNoRouteFound);
    callbacks_->sendLocalReply(404, "", nullptr, "route_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }
  if (const auto* direct = route->directResponse()) {
    st.rq_direct_response.inc();
    callbacks_->sendLocalReply(
        direct->status, direct->body,
        [route, &info, direct](http::HeaderMap& h) {
          if (direct->body.empty()) {
            h.remove(http::headers::kContentType);
            h.set(http::headers::kContentLength, "0");
          }
          route->finalizeResponseHeaders(h, info);
        },
        "direct_response");
    return http::FilterHeadersStatus::StopIteration;
  }
  if (const auto* redirect = route->redirect()) {
    st.rq_redirect.inc();
    const std::string location = redirect->location(headers);
    callbacks_->sendLocalReply(
        redirect->responseCode(), "",
        [&location, route, &info](http::HeaderMap& h) {
          h.set("location", location);
          h.remove(http::headers::kContentType);
          h.set(http::headers::kContentLength, "0");
          route->finalizeResponseHeaders(h, info);
        },
        "redirect");
    return http::FilterHeadersStatus::StopIteration;
  }
  const auto* action = route->routeAction();
  if (action == nullptr) {
    callbacks_->sendLocalReply(404, "", nullptr, "route_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }
  action_ = action;
  const std::string_view cluster_name = action->pickCluster(headers, callbacks_->streamId());
  cluster_ = cluster_name.empty() ? nullptr : config_->cluster_manager.get(cluster_name);
  info.upstream_cluster =
      cluster_ != nullptr ? std::string_view(cluster_->name()) : info.keep(cluster_name);
  if (cluster_ == nullptr) {
    st.no_cluster.inc();
    info.setResponseFlag(accesslog::kNoClusterFound);
    callbacks_->sendLocalReply(action->clusterNotFoundResponseCode(), "", nullptr,
                               "cluster_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }

  setupTimeouts(headers, *action);

  // Header mutations see the request as the client sent it; rewrites follow
  // (Envoy's order).
  route->finalizeRequestHeaders(headers, info);
  route->rewritePathAndHost(headers);
  // Hop-by-hop headers are for this hop only, but for an upgrade the
  // connection manager accepted (Upgrade with Connection: upgrade).
  if (!headers.has(http::headers::kUpgrade)) {
    headers.remove(http::headers::kConnection);
  }
  headers.remove(http::headers::kKeepAlive);
  headers.remove(http::headers::kProxyConnection);
  headers.remove(http::headers::kTransferEncoding);
  if (auto te = headers.get(http::headers::kTe); te && !http::equalsIgnoreCase(*te, "trailers")) {
    headers.remove(http::headers::kTe);
  }

  // hash_policy: the key consistent-hashing balancers pick by.
  if (const auto* hp = action->hashPolicy()) {
    hash_key_ = hp->generateHash(headers, &info.downstream_remote,
                                 [this](std::string c) { set_cookie_ = std::move(c); });
  }

  // Retries: the route's (or virtual host's) policy and the request's asks.
  retry_state_ = RetryState::create(action->retryPolicy(), headers, *cluster_,
                                    callbacks_->dispatcher());
  buffering_ = retry_state_ != nullptr;
  retry_buffer_limit_ = action->perRequestBufferLimit().value_or(callbacks_->bufferLimit());
  const legate::router::VirtualHost& vhost = route->virtualHost();
  include_attempt_count_ = vhost.includeRequestAttemptCount();
  include_attempt_count_in_response_ = vhost.includeAttemptCountInResponse();
  include_timeout_retry_header_ = vhost.includeIsTimeoutRetryHeader();

  // Tracing: the next hop continues this stream's span, or each attempt's
  // own CLIENT span (spawn_upstream_span / start_child_span).
  span_ = callbacks_->activeSpan();
  if (span_ != nullptr) {
    const http::TracingConfig* tc = callbacks_->tracingConfig();
    spawn_spans_ = config_->start_child_span || (tc != nullptr && tc->spawn_upstream_span);
    if (!spawn_spans_) span_->injectContext(headers);
  }

  callbacks_->addDownstreamWatermarkCallbacks(downstream_watermarks_);
  registered_watermarks_ = true;
  if (action->mirrorPolicies() != nullptr) startShadows(headers, end_stream);
  startAttempt(false);
  if (request_complete_ && !finished_) onRequestComplete();
  return http::FilterHeadersStatus::StopIteration;
}

void RouterFilter::setupTimeouts(http::HeaderMap& headers, const legate::router::RouteAction& action) {
  // The route timeout, unless the (trusted) request asks otherwise; it spans
  // every attempt.
  timeout_ = action.timeout();
  if (auto t = headers.get(kUpstreamRqTimeoutMs)) {
    if (auto ms = parseUint(*t)) timeout_ = std::chrono::milliseconds(*ms);
  }
  headers.remove(kUpstreamRqTimeoutMs);
  const legate::router::RetryPolicy* policy = action.retryPolicy();
  per_try_timeout_ = policy != nullptr ? policy->per_try_timeout : std::chrono::milliseconds(0);
  per_try_idle_timeout_ =
      policy != nullptr ? policy->per_try_idle_timeout : std::chrono::milliseconds(0);
  if (auto t = headers.get(kUpstreamRqPerTryTimeoutMs)) {
    if (auto ms = parseUint(*t)) per_try_timeout_ = std::chrono::milliseconds(*ms);
  }
  headers.remove(kUpstreamRqPerTryTimeoutMs);
  // A per-try timeout at or over the route timeout would never fire first.
  if (timeout_.count() > 0 && per_try_timeout_ >= timeout_) {
    per_try_timeout_ = std::chrono::milliseconds(0);
  }
  hedge_on_per_try_timeout_ =
      action.hedgePolicy() != nullptr && action.hedgePolicy()->hedge_on_per_try_timeout;
  if (auto h = headers.get(kHedgeOnPerTryTimeout)) {
    if (*h == "true") hedge_on_per_try_timeout_ = true;
    if (*h == "false") hedge_on_per_try_timeout_ = false;
  }
  headers.remove(kHedgeOnPerTryTimeout);
  // What the upstream may expect: one try's time, unless hedging keeps the
  // first try running.
  const auto expected = per_try_timeout_.count() > 0 && !hedge_on_per_try_timeout_
                            ? per_try_timeout_
                            : timeout_;
  if (!config_->suppress_envoy_headers && expected.count() > 0) {
    headers.setWireSafe(kExpectedRqTimeoutMs, Decimal(expected.count()).view());
  }
}

void RouterFilter::startShadows(const http::HeaderMap& headers, bool end_stream) {
  for (const auto& policy : *action_->mirrorPolicies()) {
    const uint64_t random = fastRandom();
    const bool sampled =
        policy.runtime_key.empty()
            ? policy.sampled(random)
            : runtime::snapshot()->featureEnabled(
                  policy.runtime_key, runtime::Fraction{policy.numerator, policy.denominator},
                  random);
    if (!sampled) continue;
    std::string name = policy.cluster;
    if (!policy.cluster_header.empty()) name = std::string(headers.get(policy.cluster_header).value_or(""));
    const upstream::Cluster* cluster = name.empty() ? nullptr : config_->cluster_manager.get(name);
    if (cluster == nullptr) continue;
    ShadowLink& link = shadows_.emplace_back();
    ShadowRequest::start(callbacks_->dispatcher(), *cluster, headers, policy.keep_host, end_stream,
                         timeout_, retry_buffer_limit_, link);
    if (link.shadow == nullptr) shadows_.pop_back();
  }
}

void RouterFilter::releaseShadows(bool abandon) {
  for (auto& link : shadows_) {
    if (link.shadow == nullptr) continue;
    ShadowRequest* shadow = link.shadow;
    if (abandon) {
      shadow->abandon();
    } else {
      shadow->detach();
    }
  }
  shadows_.clear();
}

bool RouterFilter::startAttempt(bool timeout_retry) {
  upstream::HostConstSharedPtr host = cluster_->chooseHost(upstream::currentWorkerIndex(), this);
  if (!host) {
    if (upstreamsInFlight()) return false; // a hedged attempt may still answer
    cluster_->stats().upstream_cx_none_healthy.inc();
    sendUpstreamFailure(503, accesslog::kNoHealthyUpstream, "no healthy upstream",
                        "no_healthy_upstream");
    return false;
  }
  ++attempt_count_;
  accesslog::StreamInfo& info = callbacks_->streamInfo();
  info.upstream_host = host->address();
  info.upstream_request_attempt_count = attempt_count_;
  if (retry_state_) retry_state_->onHostAttempted(host);
  auto owned = std::make_unique<UpstreamRequest>(*this, *cluster_, std::move(host), attempt_count_,
                                                 timeout_retry);
  UpstreamRequest& req = *owned;
  upstream_requests_.push_back(std::move(owned));
  if (spawn_spans_) {
    tracing::SpanPtr child = span_->spawnChild("router " + cluster_->name() + " egress");
    if (attempt_count_ > 1) child->setTag("retry.count", std::to_string(attempt_count_ - 1));
    if (const http::TracingConfig* tc = callbacks_->tracingConfig()) {
      const legate::router::Route* route = callbacks_->route();
      const legate::router::RouteTracing* rt = route != nullptr ? route->tracing() : nullptr;
      tc->applyCustomTags(*child, request_headers_, rt != nullptr ? &rt->custom_tags : nullptr);
    }
    req.setSpan(std::move(child));
  }
  // A retry replays what the client sent so far; the rest follows as it comes.
  if (!retry_body_.empty() || (request_complete_ && !request_trailers_)) {
    Buffer copy;
    copy.addCopy(retry_body_);
    req.sendData(copy, request_complete_ && !request_trailers_);
  }
  if (request_trailers_) req.sendTrailers(*request_trailers_);
  req.start();
  return true;
}

void RouterFilter::doRetry(bool timeout_retry) {
  if (finished_ || response_started_) return;
  startAttempt(timeout_retry);
}

http::FilterDataStatus RouterFilter::decodeData(Buffer& data, bool end_stream) {
  request_complete_ |= end_stream;
  if (cluster_ == nullptr || finished_) {
    data.drain(data.length());
    return http::FilterDataStatus::StopIterationNoBuffer;
  }
  for (auto& link : shadows_) {
    if (link.shadow != nullptr) link.shadow->sendData(data, end_stream);
  }
  if (buffering_) {
    if (retry_body_.length() + data.length() > retry_buffer_limit_) {
      abandonRetryBuffering();
      if (finished_ || !upstreamsInFlight()) {
        data.drain(data.length());
        return http::FilterDataStatus::StopIterationNoBuffer;
      }
    } else {
      retry_body_.addCopy(data);
    }
  }
  if (upstream_requests_.size() == 1) {
    upstream_requests_.front()->sendData(data, end_stream);
  } else {
    for (auto& req : upstream_requests_) {
      Buffer copy;
      copy.addCopy(data);
      req->sendData(copy, end_stream);
    }
    data.drain(data.length());
  }
  if (end_stream && !finished_) onRequestComplete();
  return http::FilterDataStatus::StopIterationNoBuffer;
}

http::FilterTrailersStatus RouterFilter::decodeTrailers(http::HeaderMap& trailers) {
  request_complete_ = true;
  if (cluster_ == nullptr || finished_) {
    return http::FilterTrailersStatus::StopIteration;
  }
  if (buffering_) request_trailers_ = std::make_unique<http::HeaderMap>(trailers);
  for (auto& link : shadows_) {
    if (link.shadow != nullptr) link.shadow->sendTrailers(trailers);
  }
  for (auto& req : upstream_requests_) req->sendTrailers(trailers);
  if (!finished_) onRequestComplete();
  return http::FilterTrailersStatus::StopIteration;
}

void RouterFilter::onRequestComplete() {
  // The route timeout runs from the end of the downstream request (Envoy).
  if (timeout_.count() > 0 && !timeout_timer_) {
    timeout_timer_.set<&RouterFilter::onGlobalTimeout>(callbacks_->dispatcher().timerQueue(), this);
    timeout_timer_.enableTimer(timeout_);
  }
  // The shadows have the whole request: they finish on their own.
  releaseShadows(/*abandon=*/false);
  for (auto& req : upstream_requests_) req->onDownstreamComplete();
}

void RouterFilter::abandonRetryBuffering() {
  cluster_->stats().retry_or_shadow_abandoned.inc();
  buffering_ = false;
  retry_body_.drain(retry_body_.length());
  request_trailers_.reset();
  retry_state_.reset(); // also cancels a retry waiting for its back-off
  if (!upstreamsInFlight() && !response_started_) {
    // A retry was due, but the body it would replay is gone.
    sendUpstreamFailure(507, std::nullopt, "exceeded request buffer limit while retrying upstream",
                        "request_payload_exceeded_retry_buffer_limit");
  }
}

void RouterFilter::onUpstreamReady(UpstreamRequest& req, const network::Connection& upstream) {
  accesslog::StreamInfo& info = callbacks_->streamInfo();
  info.upstream_local = upstream.localAddress();
  info.upstream_connection_id = upstream.id();
  info.upstream_protocol = "HTTP/1.1";
  if (req.span() != nullptr) req.span()->injectContext(*request_headers_);
  if (include_attempt_count_) {
    request_headers_->setWireSafe(kAttemptCount, Decimal(req.attempt()).view());
  }
  if (include_timeout_retry_header_) {
    request_headers_->setWireSafe(kIsTimeoutRetry, req.timeoutRetry() ? "true" : "false");
  }
  if (action_ != nullptr && action_->autoHostRewrite()) {
    request_headers_->set(http::headers::kAuthority, req.host()->address().asString());
  }
}

void RouterFilter::onUpstream1xx(UpstreamRequest&, http::HeaderMapPtr headers) {
  // One 100 Continue for the client, whichever attempt sends it.
  if (response_started_ || upstream_requests_.size() > 1) return;
  callbacks_->encode1xxHeaders(std::move(headers));
}

void RouterFilter::onUpstreamHeaders(UpstreamRequest& req, http::HeaderMapPtr headers,
                                     bool end_stream) {
  const uint32_t code = req.responseCode(); // headers' :status, parsed once
  if (code == 101) {
    // An upgrade succeeded: the stream now lasts as long as the peers want it
    // to; only the idle timeouts apply from here on.
    timeout_timer_.reset();
  }
  cluster_->stats().countResponseCode(code);
  upstream::HostStats& hs = req.host()->stats();
  upstream::HostStats::add(code >= 500 ? hs.rq_error : hs.rq_success);

  if (retry_state_ && !response_started_) {
    const bool would_retry = retry_state_->wouldRetryResponse(*headers);
    if (req.retried()) {
      // A hedged attempt for this one is already running: an error answer
      // is dropped in its favour.
      if (would_retry && (upstream_requests_.size() > 1 || retry_state_->retryPending())) {
        removeUpstream(req);
        return;
      }
    } else {
      const auto status = retry_state_->shouldRetry(would_retry, [this] { doRetry(false); });
      if (status == RetryState::Status::Yes) {
        removeUpstream(req);
        return;
      }
      noteRetryRefused(status);
    }
  }

  // This attempt's response goes to the client; every other attempt stops.
  final_upstream_ = &req;
  response_started_ = true;
  req.disablePerTryTimeout();
  resetOtherUpstreams(req);
  retry_state_.reset();
  buffering_ = false;
  retry_body_.drain(retry_body_.length());
  request_trailers_.reset();

  callbacks_->streamInfo().first_upstream_rx = loopNow();
  if (!config_->suppress_envoy_headers) {
    headers->setWireSafe(kUpstreamServiceTime, Decimal(msSince(req.startTime())).view());
  }
  if (include_attempt_count_in_response_) {
    headers->setWireSafe(kAttemptCount, Decimal(attempt_count_).view());
  }
  if (const auto* route = callbacks_->route()) {
    route->finalizeResponseHeaders(*headers, callbacks_->streamInfo());
  }
  if (!set_cookie_.empty()) {
    headers->add("set-cookie", set_cookie_);
  }
  if (end_stream) onResponseComplete(req);
  callbacks_->encodeHeaders(std::move(headers), end_stream, "via_upstream");
}

void RouterFilter::onUpstreamData(UpstreamRequest& req, Buffer& data, bool end_stream) {
  if (&req != final_upstream_) {
    data.drain(data.length());
    return;
  }
  if (end_stream) onResponseComplete(req);
  callbacks_->encodeData(data, end_stream);
}

void RouterFilter::onUpstreamTrailers(UpstreamRequest& req, http::HeaderMapPtr trailers) {
  if (&req != final_upstream_) return;
  onResponseComplete(req);
  callbacks_->encodeTrailers(std::move(trailers));
}

void RouterFilter::onResponseComplete(UpstreamRequest& req) {
  if (response_complete_) return;
  response_complete_ = true;
  timeout_timer_.reset();
  upstream::ClusterStats& cs = cluster_->stats();
  cs.upstream_rq_completed.inc();
  cs.upstream_rq_time.record(static_cast<uint64_t>(msSince(req.startTime())));
  // Releases the attempt now, inside its last callback: a finished exchange
  // returns the connection to the pool, one whose request is still
  // unfinished (an early response) is reset.
  cleanup();
}

void RouterFilter::onUpstreamFailure(UpstreamRequest& req, RetryState::Failure failure,
                                     http::StreamResetReason reason, std::string_view details) {
  if (finished_) return;
  // An overflow never reached the host.
  if (failure != RetryState::Failure::Overflow) upstream::HostStats::add(req.host()->stats().rq_error);
  const bool request_started = req.requestStarted();
  const bool retried = req.retried();
  if (&req == final_upstream_) {
    // The client already has the response headers: cut the stream.
    removeUpstream(req);
    config_->stats.rq_reset_after_downstream_response_started.inc();
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamConnectionTermination);
    cleanup();
    callbacks_->resetStream();
    return;
  }
  removeUpstream(req);
  if (response_started_ || response_complete_) return;
  if (failure == RetryState::Failure::ConnectFailure) {
    callbacks_->streamInfo().rare().upstream_transport_failure_reason = std::string(details);
  }
  if (!retried && retry_state_) {
    const bool would_retry = retry_state_->wouldRetryFailure(failure, request_started);
    const auto status = retry_state_->shouldRetry(would_retry, [this] { doRetry(false); });
    if (status == RetryState::Status::Yes) return;
    noteRetryRefused(status);
  }
  // Hedging: another attempt may still answer.
  if (upstreamsInFlight() || (retry_state_ && retry_state_->retryPending())) return;
  sendFailureReply(failure, reason, details);
}

void RouterFilter::onPerTryTimeout(UpstreamRequest& req, bool idle) {
  req.recordOutlierTimeout();
  if (hedge_on_per_try_timeout_) {
    // Hedging: keep this attempt running and race another one against it.
    if (!response_started_ && retry_state_ && !req.retried()) {
      const auto status = retry_state_->shouldRetry(true, [this] { doRetry(true); });
      if (status == RetryState::Status::Yes) {
        req.setRetried();
      } else {
        noteRetryRefused(status);
      }
    }
    return;
  }
  upstream::ClusterStats& cs = cluster_->stats();
  (idle ? cs.upstream_rq_per_try_idle_timeout : cs.upstream_rq_per_try_timeout).inc();
  chargeHostTimeout(req);
  const std::string_view details = idle ? "upstream_per_try_idle_timeout" : "upstream_per_try_timeout";
  if (&req == final_upstream_) {
    // The response stalled after it started: nothing can be retried.
    removeUpstream(req);
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamRequestTimeout);
    cleanup();
    callbacks_->resetStream();
    return;
  }
  const bool request_started = req.requestStarted();
  removeUpstream(req);
  if (response_started_) return;
  if (retry_state_) {
    const bool would_retry =
        retry_state_->wouldRetryFailure(RetryState::Failure::PerTryTimeout, request_started);
    const auto status = retry_state_->shouldRetry(would_retry, [this] { doRetry(true); });
    if (status == RetryState::Status::Yes) return;
    noteRetryRefused(status);
  }
  if (upstreamsInFlight() || (retry_state_ && retry_state_->retryPending())) return;
  sendUpstreamFailure(504, accesslog::kUpstreamRequestTimeout, "upstream request timeout", details);
}

void RouterFilter::onGlobalTimeout() {
  timeout_timer_.reset();
  for (auto& req : upstream_requests_) {
    if (!req->responseComplete()) req->recordOutlierTimeout();
  }
  cluster_->stats().upstream_rq_timeout.inc();
  for (const auto& req : upstream_requests_) chargeHostTimeout(*req);
  if (response_started_) {
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamRequestTimeout);
    cleanup();
    callbacks_->resetStream();
    return;
  }
  sendUpstreamFailure(504, accesslog::kUpstreamRequestTimeout, "upstream request timeout",
                      "upstream_response_timeout");
}

void RouterFilter::chargeHostTimeout(const UpstreamRequest& req) {
  upstream::HostStats& hs = req.host()->stats();
  upstream::HostStats::add(hs.rq_timeout);
  // A response already under way was charged by its status.
  if (&req != final_upstream_) upstream::HostStats::add(hs.rq_error);
}

void RouterFilter::noteRetryRefused(RetryState::Status status) {
  if (status == RetryState::Status::NoOverflow) {
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamOverflow);
  } else if (status == RetryState::Status::NoRetryLimitExceeded) {
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamRetryLimitExceeded);
  }
}

void RouterFilter::sendFailureReply(RetryState::Failure failure, http::StreamResetReason reason,
                                    std::string_view details) {
  switch (failure) {
  case RetryState::Failure::Overflow:
    sendUpstreamFailure(503, accesslog::kUpstreamOverflow, std::string(kResetBeforeHeaders) + "overflow",
                        "upstream_reset_before_response_started{overflow}");
    return;
  case RetryState::Failure::ConnectFailure:
    sendUpstreamFailure(503, accesslog::kUpstreamConnectionFailure,
                        std::string(kResetBeforeHeaders) +
                            "connection failure, transport failure reason: " + std::string(details),
                        "upstream_reset_before_response_started{connection_failure}");
    return;
  case RetryState::Failure::Reset:
  case RetryState::Failure::PerTryTimeout:
    break;
  }
  if (reason == http::StreamResetReason::ProtocolError) {
    sendUpstreamFailure(502, accesslog::kUpstreamProtocolError,
                        std::string(kResetBeforeHeaders) + "protocol error",
                        "upstream_reset_before_response_started{protocol_error}");
    return;
  }
  sendUpstreamFailure(503, accesslog::kUpstreamConnectionTermination,
                      std::string(kResetBeforeHeaders) + "connection termination",
                      "upstream_reset_before_response_started{connection_termination}");
}

void RouterFilter::sendUpstreamFailure(uint32_t code, std::optional<accesslog::ResponseFlag> flag,
                                       std::string body, std::string_view details) {
  if (flag) callbacks_->streamInfo().setResponseFlag(*flag);
  cleanup();
  // Envoy marks circuit-breaker rejections so clients can back off.
  const bool overloaded = flag == accesslog::kUpstreamOverflow && !config_->suppress_envoy_headers;
  callbacks_->sendLocalReply(
      code, body,
      [overloaded](http::HeaderMap& h) {
        if (overloaded) h.set("x-envoy-overloaded", "true");
      },
      details);
}

void RouterFilter::removeUpstream(UpstreamRequest& req) {
  if (&req == final_upstream_) final_upstream_ = nullptr;
  for (auto it = upstream_requests_.begin(); it != upstream_requests_.end(); ++it) {
    if (it->get() == &req) {
      req.reset();
      callbacks_->dispatcher().deferredDelete(std::move(*it));
      upstream_requests_.erase(it);
      return;
    }
  }
}

void RouterFilter::resetOtherUpstreams(UpstreamRequest& keep) {
  for (auto it = upstream_requests_.begin(); it != upstream_requests_.end();) {
    if (it->get() == &keep) {
      ++it;
      continue;
    }
    (*it)->reset();
    callbacks_->dispatcher().deferredDelete(std::move(*it));
    it = upstream_requests_.erase(it);
  }
}

bool RouterFilter::shouldSelectAnotherHost(const upstream::Host& host) {
  return retry_state_ != nullptr && retry_state_->rejectsHost(host);
}

uint32_t RouterFilter::hostSelectionRetryCount() const {
  return retry_state_ != nullptr ? retry_state_->hostSelectionRetryCount() : 0;
}

const network::Address* RouterFilter::downstreamRemoteAddress() const {
  return callbacks_ != nullptr ? &callbacks_->streamInfo().downstream_remote : nullptr;
}

const network::Address* RouterFilter::downstreamOriginalDestination() const {
  if (callbacks_ == nullptr) return nullptr;
  const network::Connection& c = callbacks_->connection();
  return c.localAddressRestored() ? &c.localAddress() : nullptr;
}

std::optional<std::string_view> RouterFilter::requestHeader(std::string_view name) const {
  return request_headers_ != nullptr ? request_headers_->get(name) : std::nullopt;
}

void RouterFilter::DownstreamWatermarks::onAboveWriteBufferHighWatermark() {
  parent.downstream_backed_up_ = true;
  for (auto& req : parent.upstream_requests_) req->readDisable(true);
}

void RouterFilter::DownstreamWatermarks::onBelowWriteBufferLowWatermark() {
  if (!parent.downstream_backed_up_) return;
  parent.downstream_backed_up_ = false;
  for (auto& req : parent.upstream_requests_) req->readDisable(false);
}

void RouterFilter::cleanup() {
  finished_ = true;
  // Shadows without their whole request cannot finish it.
  releaseShadows(/*abandon=*/!request_complete_);
  timeout_timer_.reset();
  retry_state_.reset();
  final_upstream_ = nullptr;
  while (!upstream_requests_.empty()) {
    std::unique_ptr<UpstreamRequest> req = std::move(upstream_requests_.front());
    upstream_requests_.pop_front();
    req->reset();
    if (callbacks_ != nullptr) callbacks_->dispatcher().deferredDelete(std::move(req));
  }
  buffering_ = false;
  retry_body_.drain(retry_body_.length());
  request_trailers_.reset();
  if (registered_watermarks_) {
    registered_watermarks_ = false;
    callbacks_->removeDownstreamWatermarkCallbacks(downstream_watermarks_);
  }
}

void RouterFilter::onDestroy() {
  if (destroyed_) return;
  cleanup();
  destroyed_ = true;
}

} // namespace legate::extensions::router
