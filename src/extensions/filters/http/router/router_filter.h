#pragma once

// envoy.filters.http.router: the last HTTP filter. Matches nothing itself (the
// connection manager's route table did): it answers direct responses and
// redirects, picks the cluster and host, gets an upstream stream from the
// worker's connection pool, proxies the request and streams the response back
// through the encoder filters, with the route timeout and flow control.
//
// Thread and lifetime: one per stream, on the worker; onDestroy() releases
// the upstream (cancelling a pending pool request, or resetting the upstream
// stream if it is still running).

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "event/dispatcher.h"
#include "http/conn_manager_config.h"
#include "http/filter.h"
#include "upstream/cluster_manager.h"
#include "upstream/http_conn_pool.h"

namespace legate::extensions::router {

struct RouterConfig {
  const upstream::ClusterManager& cluster_manager;
  http::ConnectionManagerStats& stats;
  bool suppress_envoy_headers = false;
};

class RouterFilter : public http::StreamDecoderFilter, public upstream::PoolCallbacks {
public:
  explicit RouterFilter(std::shared_ptr<const RouterConfig> config) : config_(std::move(config)) {}

  // http::StreamDecoderFilter
  void setDecoderFilterCallbacks(http::DecoderFilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
  }
  http::FilterHeadersStatus decodeHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterDataStatus decodeData(Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus decodeTrailers(http::HeaderMap& trailers) override;
  void onDestroy() override;

  // upstream::PoolCallbacks
  void onPoolFailure(upstream::PoolFailureReason reason, std::string_view details) override;
  void onPoolReady(http::StreamEncoder& encoder, const network::Address& upstream_local) override;

private:
  // The upstream response and the upstream stream's events.
  struct Upstream : public http::StreamDecoder, public http::StreamCallbacks {
    explicit Upstream(RouterFilter& p) : parent(p) {}
    void decode1xxHeaders(http::HeaderMapPtr headers) override { parent.onUpstream1xx(std::move(headers)); }
    void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
      parent.onUpstreamHeaders(std::move(headers), end_stream);
    }
    void decodeData(Buffer& data, bool end_stream) override { parent.onUpstreamData(data, end_stream); }
    void decodeTrailers(http::HeaderMapPtr trailers) override {
      parent.onUpstreamTrailers(std::move(trailers));
    }
    void onResetStream(http::StreamResetReason reason, std::string_view details) override {
      parent.onUpstreamReset(reason, details);
    }
    void onAboveWriteBufferHighWatermark() override { parent.onUpstreamAboveHigh(); }
    void onBelowWriteBufferLowWatermark() override { parent.onUpstreamBelowLow(); }
    RouterFilter& parent;
  };
  void onUpstream1xx(http::HeaderMapPtr headers);
  void onUpstreamHeaders(http::HeaderMapPtr headers, bool end_stream);
  void onUpstreamData(Buffer& data, bool end_stream);
  void onUpstreamTrailers(http::HeaderMapPtr trailers);
  void onUpstreamReset(http::StreamResetReason reason, std::string_view details);
  void onUpstreamAboveHigh();
  void onUpstreamBelowLow();

  // The client is slow: pause reading the upstream, and resume.
  struct DownstreamWatermarks : public http::DownstreamWatermarkCallbacks {
    explicit DownstreamWatermarks(RouterFilter& p) : parent(p) {}
    void onAboveWriteBufferHighWatermark() override;
    void onBelowWriteBufferLowWatermark() override;
    RouterFilter& parent;
  };

  void sendUpstreamFailure(uint32_t code, accesslog::ResponseFlag flag, std::string body,
                           std::string_view details);
  void onTimeout();
  void cleanup();
  void onUpstreamComplete();
  void encodeRequestTo(http::StreamEncoder& encoder);

  // What the load balancer learns about this request: the route's hash
  // (hash_policy) and the client's address.
  struct LbContext : upstream::LoadBalancerContext {
    std::optional<uint64_t> hash;
    const network::Address* remote = nullptr;
    std::optional<uint64_t> computeHashKey() override { return hash; }
    const network::Address* downstreamRemoteAddress() const override { return remote; }
  };

  std::shared_ptr<const RouterConfig> config_;
  LbContext lb_context_;
  std::string set_cookie_; // a hash_policy cookie generated for this client
  DownstreamWatermarks downstream_watermarks_{*this};
  Upstream upstream_callbacks_{*this};
  http::DecoderFilterCallbacks* callbacks_ = nullptr;
  http::HeaderMap* request_headers_ = nullptr;
  const upstream::Cluster* cluster_ = nullptr;
  upstream::HostConstSharedPtr host_;
  upstream::Cancellable* pending_ = nullptr;
  http::StreamEncoder* upstream_ = nullptr;
  Buffer buffered_body_;
  http::HeaderMapPtr buffered_trailers_;
  event::TimerPtr timeout_timer_;
  std::chrono::milliseconds timeout_{0};
  std::chrono::steady_clock::time_point upstream_start_;
  bool request_complete_ = false;
  bool upstream_request_complete_ = false; // end of stream was encoded upstream
  bool response_started_ = false;
  bool response_complete_ = false;
  bool holds_request_slot_ = false;
  bool paused_downstream_ = false;
  bool downstream_backed_up_ = false;
  bool registered_watermarks_ = false;
  bool destroyed_ = false;
};

} // namespace legate::extensions::router
