#pragma once

// envoy.filters.http.router: the last HTTP filter. Matches nothing itself (the
// connection manager's route table did): it answers direct responses and
// redirects, picks the cluster, and proxies the request through one or more
// UpstreamRequests (attempts): the first, retries after a failure the retry
// policy covers (with back-off, on another host with previous_hosts), and
// hedged attempts on a per-try timeout. The response of one attempt streams
// back through the encoder filters; the route timeout covers all attempts.
//
// While retries are possible the request body is also kept (up to
// per_request_buffer_limit_bytes or the connection's buffer limit) so a
// retry can replay it; past the limit, retries are given up.
//
// Thread and lifetime: one per stream, on the worker; onDestroy() resets
// every attempt still running.

#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "event/dispatcher.h"
#include "extensions/filters/http/router/retry_state.h"
#include "extensions/filters/http/router/shadow_request.h"
#include "extensions/filters/http/router/upstream_request.h"
#include "http/conn_manager_config.h"
#include "http/filter.h"
#include "tracing/span.h"
#include "upstream/cluster_manager.h"
#include "upstream/load_balancer.h"

namespace legate::router {
class RouteAction;
}

namespace legate::extensions::router {

struct RouterConfig {
  const upstream::ClusterManager& cluster_manager;
  http::ConnectionManagerStats& stats;
  bool suppress_envoy_headers = false;
  // Router.start_child_span: a CLIENT span per attempt (as the connection
  // manager's tracing.spawn_upstream_span).
  bool start_child_span = false;
};

class RouterFilter : public http::StreamDecoderFilter, public upstream::LoadBalancerContext {
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

  // upstream::LoadBalancerContext: the route's hash_policy key, the client's
  // address, and previous_hosts rejecting hosts already tried.
  std::optional<uint64_t> computeHashKey() override { return hash_key_; }
  bool shouldSelectAnotherHost(const upstream::Host& host) override;
  uint32_t hostSelectionRetryCount() const override;
  const network::Address* downstreamRemoteAddress() const override;
  const network::Address* downstreamOriginalDestination() const override;
  std::optional<std::string_view> requestHeader(std::string_view name) const override;

  // For UpstreamRequest.
  http::DecoderFilterCallbacks& callbacks() { return *callbacks_; }
  const http::HeaderMap& upstreamRequestHeaders() const { return *request_headers_; }
  bool downstreamComplete() const { return request_complete_; }
  bool downstreamBackedUp() const { return downstream_backed_up_; }
  std::chrono::milliseconds perTryTimeout() const { return per_try_timeout_; }
  std::chrono::milliseconds perTryIdleTimeout() const { return per_try_idle_timeout_; }
  void onUpstreamReady(UpstreamRequest& req, const network::Connection& upstream);
  void onUpstream1xx(UpstreamRequest& req, http::HeaderMapPtr headers);
  void onUpstreamHeaders(UpstreamRequest& req, http::HeaderMapPtr headers, bool end_stream);
  void onUpstreamData(UpstreamRequest& req, Buffer& data, bool end_stream);
  void onUpstreamTrailers(UpstreamRequest& req, http::HeaderMapPtr trailers);
  void onUpstreamFailure(UpstreamRequest& req, RetryState::Failure failure,
                         http::StreamResetReason reason, std::string_view details);
  void onPerTryTimeout(UpstreamRequest& req, bool idle);

private:
  // The client is slow: pause reading the upstream, and resume.
  struct DownstreamWatermarks : public http::DownstreamWatermarkCallbacks {
    explicit DownstreamWatermarks(RouterFilter& p) : parent(p) {}
    void onAboveWriteBufferHighWatermark() override;
    void onBelowWriteBufferLowWatermark() override;
    RouterFilter& parent;
  };

  void setupTimeouts(http::HeaderMap& headers, const legate::router::RouteAction& action);
  // request_mirror_policies: starts the sampled shadows of this request.
  void startShadows(const http::HeaderMap& headers, bool end_stream);
  // The request was handed over completely (detach) or never will be (abandon).
  void releaseShadows(bool abandon);
  // Starts an attempt on a freshly chosen host (false: no host, replied).
  bool startAttempt(bool timeout_retry);
  void doRetry(bool timeout_retry);
  void onRequestComplete();
  void onResponseComplete(UpstreamRequest& req);
  void onGlobalTimeout();
  // Sets URX / UO after a refused retry.
  void noteRetryRefused(RetryState::Status status);
  // Host rq_timeout (and rq_error) for an attempt a per-try or route timeout cut.
  void chargeHostTimeout(const UpstreamRequest& req);
  void sendFailureReply(RetryState::Failure failure, http::StreamResetReason reason,
                        std::string_view details);
  void sendUpstreamFailure(uint32_t code, std::optional<accesslog::ResponseFlag> flag,
                           std::string body, std::string_view details);
  // Gives up keeping the body for retries (the limit was passed).
  void abandonRetryBuffering();
  void removeUpstream(UpstreamRequest& req);
  void resetOtherUpstreams(UpstreamRequest& keep);
  void cleanup();
  bool upstreamsInFlight() const { return !upstream_requests_.empty(); }

  std::shared_ptr<const RouterConfig> config_;
  DownstreamWatermarks downstream_watermarks_{*this};
  http::DecoderFilterCallbacks* callbacks_ = nullptr;
  http::HeaderMap* request_headers_ = nullptr;
  const legate::router::RouteAction* action_ = nullptr;
  const upstream::Cluster* cluster_ = nullptr;
  std::list<std::unique_ptr<UpstreamRequest>> upstream_requests_;
  std::list<ShadowLink> shadows_; // links stay put: each shadow points at its own
  UpstreamRequest* final_upstream_ = nullptr; // the attempt whose response is forwarded
  std::unique_ptr<RetryState> retry_state_;
  std::optional<uint64_t> hash_key_;
  // Tracing: the stream's span, and whether each attempt gets a child span.
  tracing::Span* span_ = nullptr;
  bool spawn_spans_ = false;
  std::string set_cookie_; // a hash_policy cookie generated for this client
  // The request as received so far, kept for retries while buffering_.
  Buffer retry_body_;
  http::HeaderMapPtr request_trailers_;
  uint32_t retry_buffer_limit_ = 0;
  bool buffering_ = false;
  uint32_t attempt_count_ = 0;
  bool hedge_on_per_try_timeout_ = false;
  bool include_attempt_count_ = false;
  bool include_attempt_count_in_response_ = false;
  bool include_timeout_retry_header_ = false;
  event::InlineTimer timeout_timer_; // armed for every request: no allocation
  std::chrono::milliseconds timeout_{0};
  std::chrono::milliseconds per_try_timeout_{0};
  std::chrono::milliseconds per_try_idle_timeout_{0};
  bool request_complete_ = false;
  bool response_started_ = false;
  bool response_complete_ = false;
  bool downstream_backed_up_ = false;
  bool registered_watermarks_ = false;
  bool destroyed_ = false;
  // The router is done with upstreams: the response completed, a local
  // reply went out, or the stream was reset.
  bool finished_ = false;
};

} // namespace legate::extensions::router
