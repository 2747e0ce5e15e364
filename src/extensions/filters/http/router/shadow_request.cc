#include "extensions/filters/http/router/shadow_request.h"

#include "common/loop_time.h"
#include "upstream/cluster_manager.h"

namespace legate::extensions::router {

std::string ShadowRequest::shadowHost(std::string_view host) {
  // "[::1]:80" and "a:80" keep their port after the suffix.
  size_t colon = std::string_view::npos;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close != std::string_view::npos && close + 1 < host.size() && host[close + 1] == ':') {
      colon = close + 1;
    }
  } else {
    colon = host.rfind(':');
  }
  if (colon == std::string_view::npos) return std::string(host) + "-shadow";
  return std::string(host.substr(0, colon)) + "-shadow" + std::string(host.substr(colon));
}

void ShadowRequest::start(event::Dispatcher& dispatcher, const upstream::Cluster& cluster,
                          const http::HeaderMap& headers, bool keep_host, bool end_stream,
                          std::chrono::milliseconds timeout, uint32_t buffer_limit,
                          ShadowLink& link) {
  link.shadow = nullptr;
  upstream::HostConstSharedPtr host = cluster.chooseHost(upstream::currentWorkerIndex());
  if (!host) {
    cluster.stats().upstream_cx_none_healthy.inc();
    return;
  }
  if (!cluster.tryAcquireRequest()) {
    cluster.stats().upstream_rq_pending_overflow.inc();
    return;
  }
  auto* s = new ShadowRequest(dispatcher, cluster, timeout, buffer_limit, link);
  s->holds_slot_ = true;
  s->headers_ = headers;
  if (!keep_host) {
    s->headers_.set(http::headers::kAuthority, shadowHost(headers.authority()));
  }
  link.shadow = s;
  s->begin(std::move(host), end_stream);
}

ShadowRequest::ShadowRequest(event::Dispatcher& dispatcher, const upstream::Cluster& cluster,
                             std::chrono::milliseconds timeout, uint32_t buffer_limit,
                             ShadowLink& link)
    : dispatcher_(dispatcher), cluster_(cluster), buffer_limit_(buffer_limit), link_(&link),
      timeout_(timeout) {}

void ShadowRequest::begin(upstream::HostConstSharedPtr host, bool end_stream) {
  upstream::ClusterStats& cs = cluster_.stats();
  cs.upstream_rq_total.inc();
  cs.upstream_rq_active.inc();
  pending_end_ = end_stream;
  if (timeout_.count() > 0) {
    timeout_timer_ = dispatcher_.createTimer([this] {
      cluster_.stats().upstream_rq_timeout.inc();
      if (!response_complete_) outlierResult(upstream::OutlierResult::LocalOriginTimeout, 504);
      finish(/*abandoned=*/true);
    });
    timeout_timer_->enableTimer(timeout_);
  }
  host_ = host;
  auto& pool = upstream::PoolRegistry::forThread(dispatcher_).get(cluster_, host);
  upstream::Cancellable* handle = pool.newStream(*this, *this);
  if (handle != nullptr && !done_ && encoder_ == nullptr) pending_ = handle;
}

void ShadowRequest::sendData(const Buffer& data, bool end_stream) {
  if (done_) return;
  if (encoder_ == nullptr) {
    // Not connected yet: hold a bounded copy.
    if (pending_body_.length() + data.length() > buffer_limit_) {
      cluster_.stats().retry_or_shadow_abandoned.inc();
      finish(/*abandoned=*/true);
      return;
    }
    pending_body_.addCopy(data);
    pending_end_ = end_stream;
    return;
  }
  if (backed_up_) {
    // The shadow host reads slower than the client sends: drop the shadow
    // rather than hold more (or slow the client).
    cluster_.stats().retry_or_shadow_abandoned.inc();
    finish(/*abandoned=*/true);
    return;
  }
  Buffer copy;
  copy.addCopy(data);
  encode_complete_ = end_stream;
  encoder_->encodeData(copy, end_stream);
}

void ShadowRequest::sendTrailers(const http::HeaderMap& trailers) {
  if (done_) return;
  if (encoder_ == nullptr) {
    pending_trailers_ = std::make_unique<http::HeaderMap>(trailers);
    pending_end_ = true;
    return;
  }
  encode_complete_ = true;
  encoder_->encodeTrailers(trailers);
}

void ShadowRequest::onPoolFailure(upstream::PoolFailureReason reason, std::string_view) {
  pending_ = nullptr;
  if (!done_ && reason != upstream::PoolFailureReason::Overflow) {
    outlierResult(upstream::OutlierResult::LocalOriginConnectFailed);
  }
  finish(/*abandoned=*/true);
}

void ShadowRequest::onPoolReady(http::StreamEncoder& encoder, const network::Connection&) {
  pending_ = nullptr;
  outlierResult(upstream::OutlierResult::LocalOriginConnectSuccess);
  encoder_ = &encoder;
  encoder.addCallbacks(*this);
  encodePending();
}

void ShadowRequest::encodePending() {
  const bool headers_only = pending_end_ && pending_body_.empty() && !pending_trailers_;
  encode_complete_ = headers_only;
  encoder_->encodeHeaders(headers_, headers_only);
  if (encoder_ == nullptr) return;
  if (!pending_body_.empty() || (pending_end_ && !pending_trailers_ && !headers_only)) {
    encode_complete_ = pending_end_ && !pending_trailers_;
    encoder_->encodeData(pending_body_, encode_complete_);
    pending_body_.drain(pending_body_.length());
  }
  if (encoder_ == nullptr) return;
  if (pending_trailers_) {
    encode_complete_ = true;
    encoder_->encodeTrailers(*pending_trailers_);
    pending_trailers_.reset();
  }
}

void ShadowRequest::decodeHeaders(http::HeaderMapPtr headers, bool end_stream) {
  if (done_) return;
  const uint32_t code = headers->status();
  cluster_.stats().countResponseCode(code);
  if (auto* od = cluster_.outlierDetector()) od->putHttpResponseCode(host_, code);
  if (end_stream) {
    response_complete_ = true;
    finish(/*abandoned=*/false);
  }
}

void ShadowRequest::decodeData(Buffer& data, bool end_stream) {
  data.drain(data.length());
  if (done_ || !end_stream) return;
  response_complete_ = true;
  finish(/*abandoned=*/false);
}

void ShadowRequest::decodeTrailers(http::HeaderMapPtr) {
  if (done_) return;
  response_complete_ = true;
  finish(/*abandoned=*/false);
}

void ShadowRequest::onResetStream(http::StreamResetReason reason, std::string_view) {
  encoder_ = nullptr; // the pool dropped the stream
  if (!done_) {
    cluster_.stats().upstream_rq_rx_reset.inc();
    if (reason != http::StreamResetReason::LocalReset) {
      outlierResult(upstream::OutlierResult::LocalOriginConnectFailed);
    }
  }
  finish(/*abandoned=*/true);
}

void ShadowRequest::outlierResult(upstream::OutlierResult result, uint64_t code) {
  if (auto* od = cluster_.outlierDetector()) od->putResult(host_, result, code);
}

void ShadowRequest::finish(bool abandoned) {
  if (done_) return;
  done_ = true;
  timeout_timer_.reset();
  if (pending_ != nullptr) {
    pending_->cancel();
    pending_ = nullptr;
  }
  if (encoder_ != nullptr) {
    http::StreamEncoder* e = encoder_;
    encoder_ = nullptr;
    e->removeCallbacks(*this);
    // Only a finished exchange leaves the connection to the pool.
    if (!(response_complete_ && encode_complete_)) e->resetStream(http::StreamResetReason::LocalReset);
  }
  upstream::ClusterStats& cs = cluster_.stats();
  if (holds_slot_) {
    holds_slot_ = false;
    cluster_.releaseRequest();
    cs.upstream_rq_active.dec();
  }
  if (!abandoned && response_complete_) {
    cs.upstream_rq_completed.inc();
    cs.upstream_rq_time.record(static_cast<uint64_t>(msSince(start_)));
  }
  pending_body_.drain(pending_body_.length());
  if (link_ != nullptr) {
    link_->shadow = nullptr;
    link_ = nullptr;
  }
  dispatcher_.deferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
}

} // namespace legate::extensions::router
