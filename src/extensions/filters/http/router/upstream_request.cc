#include "extensions/filters/http/router/upstream_request.h"

#include "extensions/filters/http/router/router_filter.h"

namespace legate::extensions::router {

UpstreamRequest::UpstreamRequest(RouterFilter& parent, const upstream::Cluster& cluster,
                                 upstream::HostConstSharedPtr host, uint32_t attempt,
                                 bool timeout_retry)
    : parent_(parent), cluster_(cluster), host_(std::move(host)), attempt_(attempt),
      timeout_retry_(timeout_retry) {}

UpstreamRequest::~UpstreamRequest() { stop(); }

void UpstreamRequest::finishSpan() {
  if (!span_) return;
  tracing::Span& span = *span_;
  if (span.sampled()) {
    span.setTag("http.protocol", "HTTP/1.1");
    span.setTag("upstream_address", host_->address().asString());
    span.setTag("upstream_cluster", cluster_.name());
    span.setTag("upstream_cluster.name", cluster_.name());
    span.setTag("http.status_code", std::to_string(response_code_));
    span.setTag("response_size", std::to_string(response_bytes_));
    if (response_code_ == 0 || response_code_ >= 500) span.setTag("error", "true");
  }
  span.finish();
  span_.reset();
}

void UpstreamRequest::stop() {
  finishSpan();
  done_ = true;
  per_try_timer_.reset();
  idle_timer_.reset();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  // A finished exchange leaves the connection to the pool; anything else
  // (including a response that ended before the request did) cuts it.
  if (encoder_ != nullptr) detach(!(response_complete_ && encode_complete_));
  releaseSlot();
}

void UpstreamRequest::start() {
  upstream::ClusterStats& cs = cluster_.stats();
  if (!cluster_.tryAcquireRequest()) {
    // max_requests: Envoy counts this overflow as a pending overflow.
    cs.upstream_rq_pending_overflow.inc();
    done_ = true;
    parent_.onUpstreamFailure(*this, RetryState::Failure::Overflow,
                              http::StreamResetReason::Overflow, "overflow");
    return;
  }
  holds_slot_ = true;
  cs.upstream_rq_total.inc();
  cs.upstream_rq_active.inc();
  host_->stats().rq_active.fetch_add(1, std::memory_order_relaxed); // least-request balancing
  upstream::HostStats::add(host_->stats().rq_total);
  auto& pool = upstream::PoolRegistry::forThread(parent_.callbacks().dispatcher()).get(cluster_, host_);
  upstream::Cancellable* handle = pool.newStream(*this, *this);
  // The pool may have answered already (ready or failed): then it returns null.
  if (handle != nullptr && !done_ && encoder_ == nullptr) pending_ = handle;
}

void UpstreamRequest::onPoolFailure(upstream::PoolFailureReason reason, std::string_view details) {
  pending_ = nullptr;
  if (done_) return;
  done_ = true;
  releaseSlot();
  resumeDownstream();
  if (reason == upstream::PoolFailureReason::Overflow) {
    // A local limit, not the host's fault: nothing for outlier detection.
    parent_.onUpstreamFailure(*this, RetryState::Failure::Overflow,
                              http::StreamResetReason::Overflow, details);
  } else {
    outlierResult(upstream::OutlierResult::LocalOriginConnectFailed);
    parent_.onUpstreamFailure(*this, RetryState::Failure::ConnectFailure,
                              http::StreamResetReason::ConnectionFailure, details);
  }
}

void UpstreamRequest::onPoolReady(http::StreamEncoder& encoder,
                                  const network::Connection& upstream) {
  pending_ = nullptr;
  outlierResult(upstream::OutlierResult::LocalOriginConnectSuccess);
  encoder_ = &encoder;
  encoder.addCallbacks(*this);
  parent_.onUpstreamReady(*this, upstream);
  if (parent_.downstreamBackedUp()) readDisable(true);
  encodePending();
  maybeStartPerTryTimers();
}

void UpstreamRequest::encodePending() {
  const bool headers_only = pending_end_ && pending_body_.empty() && !pending_trailers_;
  encode_complete_ = headers_only;
  encoder_->encodeHeaders(parent_.upstreamRequestHeaders(), headers_only);
  if (encoder_ == nullptr) return;
  if (!pending_body_.empty() || (pending_end_ && !pending_trailers_ && !headers_only)) {
    Buffer body;
    body.move(pending_body_);
    encode_complete_ = pending_end_ && !pending_trailers_;
    encoder_->encodeData(body, encode_complete_);
    resumeDownstream();
  }
  if (encoder_ == nullptr) return;
  if (pending_trailers_) {
    encode_complete_ = true;
    encoder_->encodeTrailers(*pending_trailers_);
    pending_trailers_.reset();
  }
}

void UpstreamRequest::sendData(Buffer& data, bool end_stream) {
  if (done_ || response_complete_) {
    data.drain(data.length());
    return;
  }
  if (encoder_ == nullptr) {
    // Waiting for a connection: hold the body, bounded by the buffer limit
    // (reads from the client pause above it).
    pending_body_.move(data);
    pending_end_ = end_stream;
    if (pending_body_.length() > parent_.callbacks().bufferLimit()) pauseDownstream();
    return;
  }
  encode_complete_ = end_stream;
  encoder_->encodeData(data, end_stream);
}

void UpstreamRequest::sendTrailers(const http::HeaderMap& trailers) {
  if (done_ || response_complete_) return;
  if (encoder_ == nullptr) {
    pending_trailers_ = std::make_unique<http::HeaderMap>(trailers);
    pending_end_ = true;
    return;
  }
  encode_complete_ = true;
  encoder_->encodeTrailers(trailers);
}

void UpstreamRequest::onDownstreamComplete() { maybeStartPerTryTimers(); }

void UpstreamRequest::maybeStartPerTryTimers() {
  if (per_try_started_ || done_ || encoder_ == nullptr || response_complete_ ||
      !parent_.downstreamComplete()) {
    return;
  }
  per_try_started_ = true;
  event::Dispatcher& dispatcher = parent_.callbacks().dispatcher();
  if (const auto t = parent_.perTryTimeout(); t.count() > 0 && !response_started_) {
    per_try_timer_ = dispatcher.createTimer([this] {
      if (done_) return;
      parent_.onPerTryTimeout(*this, /*idle=*/false);
    });
    per_try_timer_->enableTimer(t);
  }
  if (const auto t = parent_.perTryIdleTimeout(); t.count() > 0) {
    idle_timer_ = dispatcher.createTimer([this] {
      if (done_) return;
      parent_.onPerTryTimeout(*this, /*idle=*/true);
    });
    idle_timer_->enableTimer(t);
  }
}

void UpstreamRequest::resetIdleTimer() {
  if (idle_timer_) idle_timer_->enableTimer(parent_.perTryIdleTimeout());
}

void UpstreamRequest::decode1xxHeaders(http::HeaderMapPtr headers) {
  if (done_) return;
  resetIdleTimer();
  parent_.onUpstream1xx(*this, std::move(headers));
}

void UpstreamRequest::decodeHeaders(http::HeaderMapPtr headers, bool end_stream) {
  if (done_) return;
  resetIdleTimer();
  response_started_ = true;
  response_code_ = headers->status();
  if (end_stream) response_complete_ = true;
  if (!outlier_timeout_recorded_) {
    if (auto* od = cluster_.outlierDetector()) od->putHttpResponseCode(host_, response_code_);
  }
  parent_.onUpstreamHeaders(*this, std::move(headers), end_stream);
}

void UpstreamRequest::decodeData(Buffer& data, bool end_stream) {
  if (done_) {
    data.drain(data.length());
    return;
  }
  resetIdleTimer();
  response_bytes_ += data.length();
  if (end_stream) response_complete_ = true;
  parent_.onUpstreamData(*this, data, end_stream);
}

void UpstreamRequest::decodeTrailers(http::HeaderMapPtr trailers) {
  if (done_) return;
  response_complete_ = true;
  parent_.onUpstreamTrailers(*this, std::move(trailers));
}

void UpstreamRequest::onResetStream(http::StreamResetReason reason, std::string_view details) {
  // The pool already dropped our callbacks: the stream is gone.
  encoder_ = nullptr;
  if (done_) return;
  done_ = true;
  per_try_timer_.reset();
  idle_timer_.reset();
  cluster_.stats().upstream_rq_rx_reset.inc();
  // A reset the host caused (or the connection died): a local-origin failure
  // in Envoy's terms, as legate saw it rather than the upstream said it.
  if (reason != http::StreamResetReason::LocalReset && !outlier_timeout_recorded_) {
    outlierResult(upstream::OutlierResult::LocalOriginConnectFailed);
  }
  releaseSlot();
  resumeDownstream();
  parent_.onUpstreamFailure(*this, RetryState::Failure::Reset, reason, details);
}

void UpstreamRequest::onAboveWriteBufferHighWatermark() {
  // The upstream connection backed up: stop reading the client.
  if (!done_) pauseDownstream();
}

void UpstreamRequest::onBelowWriteBufferLowWatermark() { resumeDownstream(); }

void UpstreamRequest::pauseDownstream() {
  if (paused_downstream_) return;
  paused_downstream_ = true;
  parent_.callbacks().onDecoderFilterAboveWriteBufferHighWatermark();
}

void UpstreamRequest::resumeDownstream() {
  if (!paused_downstream_) return;
  paused_downstream_ = false;
  parent_.callbacks().onDecoderFilterBelowWriteBufferLowWatermark();
}

void UpstreamRequest::readDisable(bool disable) {
  if (encoder_ == nullptr || read_disabled_ == disable) return;
  read_disabled_ = disable;
  encoder_->readDisable(disable);
}

void UpstreamRequest::reset() {
  stop();
  resumeDownstream();
}

void UpstreamRequest::detach(bool reset_stream) {
  http::StreamEncoder* e = encoder_;
  encoder_ = nullptr;
  e->removeCallbacks(*this);
  if (reset_stream) {
    e->resetStream(http::StreamResetReason::LocalReset);
  } else if (read_disabled_) {
    e->readDisable(false);
  }
  read_disabled_ = false;
}

void UpstreamRequest::outlierResult(upstream::OutlierResult result, uint64_t code) {
  if (auto* od = cluster_.outlierDetector()) od->putResult(host_, result, code);
}

void UpstreamRequest::recordOutlierTimeout() {
  if (outlier_timeout_recorded_) return;
  outlier_timeout_recorded_ = true;
  outlierResult(upstream::OutlierResult::LocalOriginTimeout, 504);
}

void UpstreamRequest::releaseSlot() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  cluster_.releaseRequest();
  cluster_.stats().upstream_rq_active.dec();
  host_->stats().rq_active.fetch_sub(1, std::memory_order_relaxed);
}

} // namespace legate::extensions::router
