#include "extensions/filters/http/router/router_filter.h"

#include <charconv>

#include "common/logger.h"
#include "http/utility.h"
#include "router/route.h"
#include "upstream/cluster_manager.h"

namespace legate::extensions::router {
namespace {

int64_t msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

std::optional<uint64_t> parseUint(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

constexpr std::string_view kUpstreamRqTimeoutMs = "x-envoy-upstream-rq-timeout-ms";
constexpr std::string_view kExpectedRqTimeoutMs = "x-envoy-expected-rq-timeout-ms";
constexpr std::string_view kUpstreamServiceTime = "x-envoy-upstream-service-time";

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
  const std::string cluster_name = action->pickCluster(headers, callbacks_->streamId());
  cluster_ = cluster_name.empty() ? nullptr : config_->cluster_manager.get(cluster_name);
  info.upstream_cluster = cluster_name;
  if (cluster_ == nullptr) {
    st.no_cluster.inc();
    info.setResponseFlag(accesslog::kNoClusterFound);
    callbacks_->sendLocalReply(action->clusterNotFoundResponseCode(), "", nullptr,
                               "cluster_not_found");
    return http::FilterHeadersStatus::StopIteration;
  }

  // The timeout: the route's, unless the (trusted) request asks otherwise.
  timeout_ = action->timeout();
  if (auto t = headers.get(kUpstreamRqTimeoutMs)) {
    if (auto ms = parseUint(*t)) timeout_ = std::chrono::milliseconds(*ms);
  }
  headers.remove(kUpstreamRqTimeoutMs);
  headers.remove("x-envoy-upstream-rq-per-try-timeout-ms");
  if (!config_->suppress_envoy_headers && timeout_.count() > 0) {
    headers.set(kExpectedRqTimeoutMs, std::to_string(timeout_.count()));
  }

  // Header mutations see the request as the client sent it; rewrites follow
  // (Envoy's order).
  route->finalizeRequestHeaders(headers, info);
  route->rewritePathAndHost(headers);
  // Hop-by-hop headers are for this hop only.
  headers.remove(http::headers::kConnection);
  headers.remove(http::headers::kKeepAlive);
  headers.remove(http::headers::kProxyConnection);
  headers.remove(http::headers::kTransferEncoding);
  headers.remove(http::headers::kUpgrade);
  if (auto te = headers.get(http::headers::kTe); te && !http::equalsIgnoreCase(*te, "trailers")) {
    headers.remove(http::headers::kTe);
  }

  upstream::ClusterStats& cs = cluster_->stats();
  if (!cluster_->tryAcquireRequest()) {
    cs.upstream_rq_pending_overflow.inc();
    sendUpstreamFailure(503, accesslog::kUpstreamOverflow,
                        "upstream connect error or disconnect/reset before headers. reset reason: "
                        "overflow",
                        "upstream_reset_before_response_started{overflow}");
    return http::FilterHeadersStatus::StopIteration;
  }
  holds_request_slot_ = true;
  lb_context_.remote = &info.downstream_remote;
  if (const auto* hp = action->hashPolicy()) {
    lb_context_.hash = hp->generateHash(headers, lb_context_.remote,
                                        [this](std::string c) { set_cookie_ = std::move(c); });
  }
  host_ = cluster_->chooseHost(upstream::currentWorkerIndex(), &lb_context_);
  if (!host_) {
    cs.upstream_cx_none_healthy.inc();
    sendUpstreamFailure(503, accesslog::kNoHealthyUpstream, "no healthy upstream",
                        "no_healthy_upstream");
    return http::FilterHeadersStatus::StopIteration;
  }
  info.upstream_host = host_->address();
  if (action->autoHostRewrite()) {
    headers.set(http::headers::kAuthority, host_->address().asString());
  }
  cs.upstream_rq_total.inc();
  cs.upstream_rq_active.inc();
  host_->stats().rq_active.fetch_add(1, std::memory_order_relaxed); // least-request balancing
  upstream_start_ = std::chrono::steady_clock::now();
  if (timeout_.count() > 0) {
    timeout_timer_ = callbacks_->dispatcher().createTimer([this] { onTimeout(); });
    timeout_timer_->enableTimer(timeout_);
  }
  callbacks_->addDownstreamWatermarkCallbacks(downstream_watermarks_);
  registered_watermarks_ = true;
  auto& pool = upstream::PoolRegistry::forThread(callbacks_->dispatcher()).get(*cluster_, host_);
  pending_ = pool.newStream(upstream_callbacks_, *this);
  return http::FilterHeadersStatus::StopIteration;
}

void RouterFilter::encodeRequestTo(http::StreamEncoder& encoder) {
  const bool headers_only = request_complete_ && buffered_body_.empty() && !buffered_trailers_;
  upstream_request_complete_ = headers_only;
  encoder.encodeHeaders(*request_headers_, headers_only);
  if (destroyed_ || upstream_ == nullptr) return;
  if (!buffered_body_.empty() || (request_complete_ && !buffered_trailers_ && !headers_only)) {
    Buffer body;
    body.move(buffered_body_);
    upstream_request_complete_ = request_complete_ && !buffered_trailers_;
    encoder.encodeData(body, upstream_request_complete_);
    if (paused_downstream_) {
      paused_downstream_ = false;
      callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
    }
  }
  if (destroyed_ || upstream_ == nullptr) return;
  if (buffered_trailers_) {
    upstream_request_complete_ = true;
    encoder.encodeTrailers(*buffered_trailers_);
    buffered_trailers_.reset();
  }
}

http::FilterDataStatus RouterFilter::decodeData(Buffer& data, bool end_stream) {
  request_complete_ |= end_stream;
  if (upstream_ != nullptr) {
    upstream_request_complete_ = end_stream;
    upstream_->encodeData(data, end_stream);
    return http::FilterDataStatus::StopIterationNoBuffer;
  }
  if (response_started_ || cluster_ == nullptr) {
    data.drain(data.length());
    return http::FilterDataStatus::StopIterationNoBuffer;
  }
  // Waiting for a connection: hold the body, bounded by the buffer limit
  // (reads from the client pause above it).
  buffered_body_.move(data);
  if (!paused_downstream_ && buffered_body_.length() > callbacks_->bufferLimit()) {
    paused_downstream_ = true;
    callbacks_->onDecoderFilterAboveWriteBufferHighWatermark();
  }
  return http::FilterDataStatus::StopIterationNoBuffer;
}

http::FilterTrailersStatus RouterFilter::decodeTrailers(http::HeaderMap& trailers) {
  request_complete_ = true;
  if (upstream_ != nullptr) {
    upstream_request_complete_ = true;
    upstream_->encodeTrailers(trailers);
  } else if (cluster_ != nullptr && !response_started_) {
    buffered_trailers_ = std::make_unique<http::HeaderMap>(trailers);
  }
  return http::FilterTrailersStatus::StopIteration;
}

void RouterFilter::onPoolReady(http::StreamEncoder& encoder,
                               const network::Address& upstream_local) {
  pending_ = nullptr;
  upstream_ = &encoder;
  encoder.addCallbacks(upstream_callbacks_);
  callbacks_->streamInfo().upstream_local = upstream_local;
  if (downstream_backed_up_) {
    encoder.readDisable(true);
  }
  encodeRequestTo(encoder);
}

void RouterFilter::onPoolFailure(upstream::PoolFailureReason reason, std::string_view details) {
  pending_ = nullptr;
  switch (reason) {
  case upstream::PoolFailureReason::Overflow:
    sendUpstreamFailure(503, accesslog::kUpstreamOverflow,
                        "upstream connect error or disconnect/reset before headers. reset reason: "
                        "overflow",
                        "upstream_reset_before_response_started{overflow}");
    return;
  case upstream::PoolFailureReason::Timeout:
  case upstream::PoolFailureReason::ConnectionFailure:
    callbacks_->streamInfo().upstream_transport_failure_reason = std::string(details);
    sendUpstreamFailure(503, accesslog::kUpstreamConnectionFailure,
                        "upstream connect error or disconnect/reset before headers. reset reason: "
                        "connection failure, transport failure reason: " +
                            std::string(details),
                        "upstream_reset_before_response_started{connection_failure}");
    return;
  }
}

void RouterFilter::onUpstream1xx(http::HeaderMapPtr headers) {
  callbacks_->encode1xxHeaders(std::move(headers));
}

void RouterFilter::onUpstreamHeaders(http::HeaderMapPtr headers, bool end_stream) {
  response_started_ = true;
  callbacks_->streamInfo().first_upstream_rx = std::chrono::steady_clock::now();
  const uint32_t code = headers->status();
  upstream::ClusterStats& cs = cluster_->stats();
  if (code >= 500) cs.upstream_rq_5xx.inc();
  else if (code >= 400) cs.upstream_rq_4xx.inc();
  else if (code >= 300) cs.upstream_rq_3xx.inc();
  else if (code >= 200) cs.upstream_rq_2xx.inc();
  else cs.upstream_rq_1xx.inc();
  cs.upstream_rq_code.inc(code);
  if (!config_->suppress_envoy_headers) {
    headers->set(kUpstreamServiceTime, std::to_string(msSince(upstream_start_)));
  }
  if (const auto* route = callbacks_->route()) {
    route->finalizeResponseHeaders(*headers, callbacks_->streamInfo());
  }
  if (!set_cookie_.empty()) {
    headers->add("set-cookie", set_cookie_);
  }
  if (end_stream) onUpstreamComplete();
  callbacks_->encodeHeaders(std::move(headers), end_stream, "via_upstream");
}

void RouterFilter::onUpstreamData(Buffer& data, bool end_stream) {
  if (end_stream) onUpstreamComplete();
  callbacks_->encodeData(data, end_stream);
}

void RouterFilter::onUpstreamTrailers(http::HeaderMapPtr trailers) {
  onUpstreamComplete();
  callbacks_->encodeTrailers(std::move(trailers));
}

void RouterFilter::onUpstreamComplete() {
  if (response_complete_) return;
  response_complete_ = true;
  timeout_timer_.reset();
  upstream::ClusterStats& cs = cluster_->stats();
  cs.upstream_rq_completed.inc();
  cs.upstream_rq_time.record(static_cast<uint64_t>(msSince(upstream_start_)));
  cleanup();
}

void RouterFilter::onUpstreamReset(http::StreamResetReason reason, std::string_view details) {
  upstream_ = nullptr;
  if (response_complete_ || destroyed_) return;
  cluster_->stats().upstream_rq_rx_reset.inc();
  if (response_started_) {
    config_->stats.rq_reset_after_downstream_response_started.inc();
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamConnectionTermination);
    cleanup();
    callbacks_->resetStream();
    return;
  }
  const bool protocol = reason == http::StreamResetReason::ProtocolError;
  sendUpstreamFailure(protocol ? 502 : 503,
                      protocol ? accesslog::kUpstreamProtocolError
                               : accesslog::kUpstreamConnectionTermination,
                      std::string("upstream connect error or disconnect/reset before headers. "
                                  "reset reason: ") +
                          (protocol ? "protocol error" : "connection termination"),
                      protocol ? "upstream_reset_before_response_started{protocol_error}"
                               : "upstream_reset_before_response_started{connection_termination}");
  (void)details;
}

void RouterFilter::onTimeout() {
  if (cluster_) cluster_->stats().upstream_rq_timeout.inc();
  if (response_started_) {
    callbacks_->streamInfo().setResponseFlag(accesslog::kUpstreamRequestTimeout);
    cleanup();
    callbacks_->resetStream();
    return;
  }
  sendUpstreamFailure(504, accesslog::kUpstreamRequestTimeout, "upstream request timeout",
                      "upstream_response_timeout");
}

void RouterFilter::sendUpstreamFailure(uint32_t code, accesslog::ResponseFlag flag,
                                       std::string body, std::string_view details) {
  callbacks_->streamInfo().setResponseFlag(flag);
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

void RouterFilter::onUpstreamAboveHigh() {
  // The upstream connection backed up: stop reading the client.
  if (!paused_downstream_) {
    paused_downstream_ = true;
    callbacks_->onDecoderFilterAboveWriteBufferHighWatermark();
  }
}

void RouterFilter::onUpstreamBelowLow() {
  if (paused_downstream_) {
    paused_downstream_ = false;
    callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
  }
}

void RouterFilter::DownstreamWatermarks::onAboveWriteBufferHighWatermark() {
  parent.downstream_backed_up_ = true;
  if (parent.upstream_) parent.upstream_->readDisable(true);
}

void RouterFilter::DownstreamWatermarks::onBelowWriteBufferLowWatermark() {
  if (!parent.downstream_backed_up_) return;
  parent.downstream_backed_up_ = false;
  if (parent.upstream_) parent.upstream_->readDisable(false);
}

void RouterFilter::cleanup() {
  timeout_timer_.reset();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (upstream_ != nullptr) {
    http::StreamEncoder* up = upstream_;
    upstream_ = nullptr;
    up->removeCallbacks(upstream_callbacks_);
    // A response that ended before the request did (an early 413, say)
    // leaves the upstream connection mid-request: it cannot be reused, so
    // the stream is reset (HTTP/1: the connection closes).
    if (!response_complete_ || !upstream_request_complete_) {
      up->resetStream(http::StreamResetReason::LocalReset);
    } else if (downstream_backed_up_) {
      up->readDisable(false);
    }
  }
  if (holds_request_slot_) {
    holds_request_slot_ = false;
    cluster_->releaseRequest();
    if (host_) {
      cluster_->stats().upstream_rq_active.dec();
      host_->stats().rq_active.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (registered_watermarks_) {
    registered_watermarks_ = false;
    callbacks_->removeDownstreamWatermarkCallbacks(downstream_watermarks_);
  }
  if (paused_downstream_) {
    paused_downstream_ = false;
    callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
  }
}

void RouterFilter::onDestroy() {
  if (destroyed_) return;
  cleanup();
  destroyed_ = true;
}

} // namespace legate::extensions::router
