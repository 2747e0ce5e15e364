#pragma once

// A mirrored copy of a request (request_mirror_policies), sent fire-and-forget
// to a shadow cluster with ":authority" suffixed "-shadow".
//
// The copy streams while the main request does: the router hands it the
// headers, then a copy of each body chunk and the trailers. It never slows
// or fails the main request: it is never waited for, it holds at most the
// buffer limit of body while its connection is not ready or backs up (past
// that it is abandoned), and its response is read and dropped. It counts in
// the shadow cluster's upstream_rq_* stats and takes its max_requests slot.
//
// Thread and lifetime: on the worker of the main request, but it owns
// itself: it outlives the main request (until its response ends, it fails,
// or its timeout fires) and then deletes itself through the dispatcher's
// deferred-delete list. The router holds it through a ShadowLink that the
// shadow clears when it goes, and detaches the link when the request has been
// handed over completely (or abandons the shadow if the request never was).

#include <chrono>
#include <cstdint>
#include <string>

#include "common/buffer.h"
#include "common/loop_time.h"
#include "event/dispatcher.h"
#include "http/codec.h"
#include "upstream/cluster.h"
#include "upstream/http_conn_pool.h"

namespace legate::extensions::router {

class ShadowRequest;

// The router's handle on a shadow: null once the shadow is gone.
struct ShadowLink {
  ShadowRequest* shadow = nullptr;
};

class ShadowRequest : public http::StreamDecoder,
                      public http::StreamCallbacks,
                      public upstream::PoolCallbacks,
                      public event::DeferredDeletable {
public:
  // Starts a shadow of `headers` (copied; :authority gets "-shadow" unless
  // keep_host) on `cluster`. timeout: the route timeout (0: none);
  // buffer_limit: the most body held unsent. Fills link (or leaves it null
  // if the shadow could not start: no host, breaker full).
  static void start(event::Dispatcher& dispatcher, const upstream::Cluster& cluster,
                    const http::HeaderMap& headers, bool keep_host, bool end_stream,
                    std::chrono::milliseconds timeout, uint32_t buffer_limit, ShadowLink& link);

  // The main request's body and trailers (copied).
  void sendData(const Buffer& data, bool end_stream);
  void sendTrailers(const http::HeaderMap& trailers);
  // The router lets go: the shadow finishes on its own.
  void detach() { link_ = nullptr; }
  // The main request ended before it was complete: so does the shadow.
  void abandon() { finish(/*abandoned=*/true); }

  // :authority of a shadow: "-shadow" after the host, before any port.
  static std::string shadowHost(std::string_view host);

  // upstream::PoolCallbacks
  void onPoolFailure(upstream::PoolFailureReason reason, std::string_view details) override;
  void onPoolReady(http::StreamEncoder& encoder, const network::Connection& upstream) override;
  // http::StreamDecoder: the response, dropped.
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(http::HeaderMapPtr trailers) override;
  // http::StreamCallbacks
  void onResetStream(http::StreamResetReason reason, std::string_view details) override;
  void onAboveWriteBufferHighWatermark() override { backed_up_ = true; }
  void onBelowWriteBufferLowWatermark() override { backed_up_ = false; }

private:
  ShadowRequest(event::Dispatcher& dispatcher, const upstream::Cluster& cluster,
                std::chrono::milliseconds timeout, uint32_t buffer_limit, ShadowLink& link);
  void begin(upstream::HostConstSharedPtr host, bool end_stream);
  void encodePending();
  void finish(bool abandoned);
  // Reports to the cluster's outlier detector, if it has one (as attempts do).
  void outlierResult(upstream::OutlierResult result, uint64_t code = 0);

  event::Dispatcher& dispatcher_;
  const upstream::Cluster& cluster_;
  const uint32_t buffer_limit_;
  ShadowLink* link_;
  upstream::HostConstSharedPtr host_;
  http::HeaderMap headers_;
  upstream::Cancellable* pending_ = nullptr;
  http::StreamEncoder* encoder_ = nullptr;
  Buffer pending_body_;
  http::HeaderMapPtr pending_trailers_;
  bool pending_end_ = false;
  event::TimerPtr timeout_timer_;
  std::chrono::milliseconds timeout_;
  std::chrono::steady_clock::time_point start_ = loopNow();
  bool holds_slot_ = false;
  bool encode_complete_ = false;
  bool response_complete_ = false;
  bool backed_up_ = false;
  bool done_ = false;
};

} // namespace legate::extensions::router
