#pragma once

// Circuit breakers of a cluster (Envoy's circuit_breakers.thresholds), one
// ResourceManager per routing priority (DEFAULT, HIGH).
//
// Each breaker counts what is open across all workers (connections, pending
// requests, requests, retries) against its maximum. tryAcquire* counts one
// more when under the maximum, else refuses; release* gives it back. The
// gauges circuit_breakers.<priority>.{cx,rq_pending,rq,rq_retry}_open are 1
// while a breaker is at its maximum; with track_remaining,
// remaining_{cx,pending,rq,retries} show what is left.
//
// Retries are limited by max_retries, or, when retry_budget is set, by the
// budget instead: budget_percent of the active plus pending requests, but
// never below min_retry_concurrency.
//
// Thread: shared by every worker; counts are relaxed atomics, no locks.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "stats/stats.h"

namespace envoy::config::cluster::v3 {
class CircuitBreakers;
}

namespace legate::upstream {

enum class ResourcePriority { Default = 0, High = 1 };

struct CircuitBreakerThresholds {
  struct RetryBudget {
    double percent = 20.0;
    uint32_t min_retry_concurrency = 3;
  };
  uint32_t max_connections = 1024;
  uint32_t max_pending_requests = 1024;
  uint32_t max_requests = 1024;
  uint32_t max_retries = 3;
  std::optional<RetryBudget> retry_budget;
  bool track_remaining = false;
};

// The thresholds of both priorities from a cluster's circuit_breakers (the
// first entry for a priority applies, as in Envoy). path: the field's path,
// for errors ("static_resources.clusters[0].circuit_breakers").
absl::StatusOr<std::array<CircuitBreakerThresholds, 2>>
parseCircuitBreakers(const envoy::config::cluster::v3::CircuitBreakers& proto,
                     const std::string& path);

class ResourceManager {
public:
  // scope: the cluster's ("cluster.<name>."); the priority adds
  // "circuit_breakers.default." or "circuit_breakers.high.".
  ResourceManager(const CircuitBreakerThresholds& thresholds, stats::Scope cluster_scope,
                  ResourcePriority priority);

  bool tryAcquireConnection() {
    return connections_.tryAcquire(thresholds_.max_connections, remaining(kCx));
  }
  void releaseConnection() { connections_.release(thresholds_.max_connections, remaining(kCx)); }
  bool tryAcquirePending() {
    return pending_.tryAcquire(thresholds_.max_pending_requests, remaining(kPending));
  }
  void releasePending() { pending_.release(thresholds_.max_pending_requests, remaining(kPending)); }
  bool tryAcquireRequest() {
    return requests_.tryAcquire(thresholds_.max_requests, remaining(kRq));
  }
  void releaseRequest() { requests_.release(thresholds_.max_requests, remaining(kRq)); }
  bool tryAcquireRetry() { return retries_.tryAcquire(maxRetries(), remaining(kRetries)); }
  void releaseRetry() { retries_.release(maxRetries(), remaining(kRetries)); }

  const CircuitBreakerThresholds& thresholds() const { return thresholds_; }
  // The retry limit now: max_retries, or what the retry budget allows.
  uint64_t maxRetries() const;
  uint64_t openConnections() const { return connections_.count(); }
  uint64_t openPending() const { return pending_.count(); }
  uint64_t openRequests() const { return requests_.count(); }
  uint64_t openRetries() const { return retries_.count(); }

private:
  // One breaker: a count and its "open" gauge; with track_remaining, its
  // "remaining" gauge is passed in (most clusters have none: the four pointers
  // live apart, so a manager is 120 bytes, not 144).
  class Breaker {
  public:
    Breaker(stats::Gauge& open, stats::Gauge* remaining, uint64_t max);
    bool tryAcquire(uint64_t max, stats::Gauge* remaining);
    void release(uint64_t max, stats::Gauge* remaining);
    uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  private:
    void publish(uint64_t now, uint64_t max, stats::Gauge* remaining);
    std::atomic<uint64_t> count_{0};
    stats::Gauge& open_;
  };
  enum Kind { kCx, kPending, kRq, kRetries };
  stats::Gauge* remaining(Kind k) const { return remaining_ ? (*remaining_)[k] : nullptr; }

  // The breakers' gauges are resolved once, from "cluster.<name>.circuit_breakers.<p>."
  // (a scope that is not kept: ten thousand clusters would hold 20,000 prefixes).
  ResourceManager(const CircuitBreakerThresholds& thresholds, stats::Scope&& priority_scope);
  // remaining_* by Kind with track_remaining, else null.
  static std::unique_ptr<std::array<stats::Gauge*, 4>>
  remainingGauges(const CircuitBreakerThresholds& thresholds, stats::Scope& scope);

  const CircuitBreakerThresholds thresholds_;
  // remaining_{cx,pending,rq,retries}, by Kind; null without track_remaining.
  const std::unique_ptr<std::array<stats::Gauge*, 4>> remaining_;
  Breaker connections_;
  Breaker pending_;
  Breaker requests_;
  Breaker retries_;
};

} // namespace legate::upstream
