#pragma once

// One attempt of the router filter at a request: a stream on one upstream
// host, from the connection pool's answer to the end of the response. The
// router makes one per try (retries, hedged requests); each holds a
// max_requests circuit-breaker slot and counts upstream_rq_total/_active.
//
// The request body arriving before the pool is ready is held here (the
// router pauses the client above the buffer limit). The per-try timeout and
// per-try idle timeout start once the connection is ready and the whole
// request has arrived downstream; the per-try timeout stops when the response
// headers are accepted, the idle timeout runs until the response ends.
//
// Thread and lifetime: on the stream's worker, owned by the router filter,
// destroyed through the dispatcher's deferred-delete list (it may be on the
// stack when the router drops it). After reset() it calls nothing back.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/buffer.h"
#include "common/loop_time.h"
#include "event/dispatcher.h"
#include "http/codec.h"
#include "tracing/span.h"
#include "upstream/cluster.h"
#include "upstream/http_conn_pool.h"

namespace legate::extensions::router {

class RouterFilter;

class UpstreamRequest : public http::StreamDecoder,
                        public http::StreamCallbacks,
                        public upstream::PoolCallbacks,
                        public event::DeferredDeletable {
public:
  // attempt: 1 for the first try. timeout_retry: this try follows a per-try
  // timeout (x-envoy-is-timeout-retry).
  UpstreamRequest(RouterFilter& parent, const upstream::Cluster& cluster,
                  upstream::HostConstSharedPtr host, uint32_t attempt, bool timeout_retry);
  ~UpstreamRequest() override;

  // Asks the host's pool for a stream; may call back before returning.
  void start();

  // The request body and trailers, as they arrive (or replayed for a retry).
  void sendData(Buffer& data, bool end_stream);
  void sendTrailers(const http::HeaderMap& trailers);
  // The downstream request is complete: arms the per-try timers when ready.
  void onDownstreamComplete();

  // Drops the attempt: cancels the pool request or resets the stream
  // (HTTP/1: the connection closes), unless its exchange completed cleanly.
  // No callbacks reach the router afterwards.
  void reset();
  // The response was accepted: the per-try timeout no longer applies.
  void disablePerTryTimeout() { per_try_timer_.reset(); }
  void readDisable(bool disable);

  const upstream::HostConstSharedPtr& host() const { return host_; }
  uint32_t attempt() const { return attempt_; }
  bool timeoutRetry() const { return timeout_retry_; }
  // Some of the request went out on a connection (reset-before-request).
  bool requestStarted() const { return encoder_ != nullptr; }
  bool encodeComplete() const { return encode_complete_; }
  bool responseStarted() const { return response_started_; }
  bool responseComplete() const { return response_complete_; }
  // The response's :status as a number (0 before the headers or if malformed).
  uint32_t responseCode() const { return response_code_; }
  std::chrono::steady_clock::time_point startTime() const { return start_; }
  // Outlier detection: this attempt timed out (per-try or route timeout);
  // counted once, and its late response, if any, is not counted again.
  void recordOutlierTimeout();
  // Tracing: this attempt's CLIENT span (spawn_upstream_span), finished with
  // the attempt's outcome when the attempt ends.
  void setSpan(tracing::SpanPtr span) { span_ = std::move(span); }
  tracing::Span* span() const { return span_.get(); }
  // Hedging: a per-try timeout already started another attempt for this one.
  bool retried() const { return retried_; }
  void setRetried() { retried_ = true; }

  // upstream::PoolCallbacks
  void onPoolFailure(upstream::PoolFailureReason reason, std::string_view details) override;
  void onPoolReady(http::StreamEncoder& encoder, const network::Connection& upstream) override;

  // http::StreamDecoder: the response.
  void decode1xxHeaders(http::HeaderMapPtr headers) override;
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(http::HeaderMapPtr trailers) override;

  // http::StreamCallbacks
  void onResetStream(http::StreamResetReason reason, std::string_view details) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

private:
  void encodePending();
  void maybeStartPerTryTimers();
  void onResponseComplete();
  void resetIdleTimer();
  // Stops talking to the pool's stream (and resumes what we paused).
  void detach(bool reset_stream);
  void pauseDownstream();
  void resumeDownstream();
  void releaseSlot();
  // Reports to the cluster's outlier detector, if it has one.
  void outlierResult(upstream::OutlierResult result, uint64_t code = 0);
  // Ends the attempt: timers, pending pool request, connection (kept only
  // after a complete exchange), slot. reset() also resumes the downstream.
  void stop();
  void finishSpan();

  RouterFilter& parent_;
  const upstream::Cluster& cluster_;
  upstream::HostConstSharedPtr host_;
  const uint32_t attempt_;
  const bool timeout_retry_;
  std::chrono::steady_clock::time_point start_ = loopNow();

  upstream::Cancellable* pending_ = nullptr;
  http::StreamEncoder* encoder_ = nullptr;
  // Held until the pool is ready.
  Buffer pending_body_;
  http::HeaderMapPtr pending_trailers_;
  bool pending_end_ = false;

  event::TimerPtr per_try_timer_;
  event::TimerPtr idle_timer_;
  bool per_try_started_ = false;
  bool holds_slot_ = false;
  bool encode_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool paused_downstream_ = false;
  bool read_disabled_ = false;
  bool retried_ = false;
  bool outlier_timeout_recorded_ = false;
  bool done_ = false; // reset() or the pool failed: silent from now on
  tracing::SpanPtr span_;
  uint32_t response_code_ = 0;
  uint64_t response_bytes_ = 0;
};

} // namespace legate::extensions::router
