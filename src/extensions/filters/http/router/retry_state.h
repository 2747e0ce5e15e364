#pragma once

// The retry decisions for one downstream request: the route's retry policy
// merged with what the (trusted) request asks for (x-envoy-retry-on,
// x-envoy-retry-grpc-on, x-envoy-max-retries, x-envoy-retriable-status-codes,
// x-envoy-retriable-header-names), the retries left, the cluster's retry
// circuit breaker (max_retries or retry_budget), the jittered exponential
// back-off, and the hosts already tried (previous_hosts).
//
// A scheduled retry holds one unit of the retry breaker until the next
// decision or until this object goes; a decision not to retry after a retry
// counts upstream_rq_retry_success.
//
// Thread and lifetime: one per request, on its worker, owned by the router
// filter; destroying it cancels a pending back-off.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "event/dispatcher.h"
#include "http/header_map.h"
#include "router/retry_policy.h"
#include "upstream/cluster.h"

namespace legate::extensions::router {

class RetryState {
public:
  // What went wrong with an attempt that sent no usable response.
  enum class Failure {
    ConnectFailure,   // no connection (refused, connect timeout)
    Reset,            // the stream or connection was cut (or a protocol error)
    PerTryTimeout,    // per_try_timeout / per_try_idle_timeout (reset locally)
    Overflow,         // a circuit breaker refused: never retried
  };
  enum class Status { Yes, No, NoOverflow, NoRetryLimitExceeded };

  // Null when this request may not be retried (no policy and no
  // x-envoy-retry-on / x-envoy-retry-grpc-on, or retriable_request_headers
  // do not match).
  static std::unique_ptr<RetryState> create(const legate::router::RetryPolicy* policy,
                                            const http::HeaderMap& request,
                                            const upstream::Cluster& cluster,
                                            event::Dispatcher& dispatcher);
  ~RetryState();

  // Whether the policy asks to retry this response / this failure.
  bool wouldRetryResponse(const http::HeaderMap& response) const;
  // request_started: some of the request went upstream (reset-before-request).
  bool wouldRetryFailure(Failure failure, bool request_started) const;

  // Decides on a retry the policy would make (would_retry): retries left,
  // then the retry breaker. On Yes, do_retry runs after the back-off.
  Status shouldRetry(bool would_retry, std::function<void()> do_retry);

  // previous_hosts: remember the host of each attempt.
  void onHostAttempted(upstream::HostConstSharedPtr host) { attempted_.push_back(std::move(host)); }
  bool rejectsHost(const upstream::Host& host) const;
  uint32_t hostSelectionRetryCount() const;

  // A retry is waiting for its back-off to end.
  bool retryPending() const { return static_cast<bool>(do_retry_); }
  uint32_t retriesRemaining() const { return retries_remaining_; }
  // The back-off for retry number n (1-based): uniformly random in
  // [0, (2^n - 1) * base_interval), capped at max_interval (Envoy's fully
  // jittered exponential back-off). Exposed for tests.
  static std::chrono::milliseconds backOff(uint32_t n, std::chrono::milliseconds base,
                                           std::chrono::milliseconds max, uint64_t random);

private:
  RetryState(const legate::router::RetryPolicy* policy, const upstream::Cluster& cluster,
             event::Dispatcher& dispatcher);
  void releaseRetry();

  const legate::router::RetryPolicy* policy_; // may be null (header-only retries)
  const upstream::Cluster& cluster_;
  event::Dispatcher& dispatcher_;
  uint32_t retry_on_ = 0;
  uint32_t retries_remaining_ = 1;
  uint32_t retries_done_ = 0;
  std::vector<uint32_t> status_codes_;      // from the request header
  std::vector<std::string> header_names_;   // from the request header
  std::chrono::milliseconds base_interval_{25};
  std::chrono::milliseconds max_interval_{250};
  std::vector<upstream::HostConstSharedPtr> attempted_;
  std::function<void()> do_retry_;
  event::TimerPtr backoff_timer_;
  bool holds_retry_ = false;
};

} // namespace legate::extensions::router
