#pragma once

// An upstream host: an address with its weight, priority, locality, health
// flags and per-host counters.
//
// Threading: hosts are shared (shared_ptr<const Host>) between the cluster's
// host-set snapshots and every worker's connection pools. The address, weight,
// priority and locality never change. Health flags are set and cleared on the
// main thread (health checker, outlier detector, discovery) and read lock-free
// by workers; after changing them the main thread asks the cluster to rebuild
// its snapshots (Cluster::refreshHealth()), which is when balancers see it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "network/address.h"

namespace legate::upstream {

// Envoy's per-host stats (admin /clusters). Connections: counted by the HTTP pools
// and tcp_proxy. Requests: rq_total and rq_active per attempt sent to the host
// (tcp_proxy: per connection); rq_success / rq_error per attempt's outcome (a
// non-5xx / 5xx response; a reset, connect failure or timeout is an error);
// rq_timeout per attempt cut by a per-try or route timeout.
struct HostStats {
  std::atomic<uint64_t> cx_total{0};
  std::atomic<int64_t> cx_active{0};
  std::atomic<uint64_t> cx_connect_fail{0};
  std::atomic<int64_t> rq_active{0}; // least-request balancing reads this
  std::atomic<uint64_t> rq_total{0};
  std::atomic<uint64_t> rq_success{0};
  std::atomic<uint64_t> rq_error{0};
  std::atomic<uint64_t> rq_timeout{0};

  static void add(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

  // Every stat in Envoy's /clusters order: counters by name, then gauges by name.
  // fn(name, is_gauge, value); gauges below 0 (a racing decrement) read as 0.
  template <class Fn> void forEach(Fn&& fn) const {
    auto c = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
    auto g = [](const std::atomic<int64_t>& v) {
      const int64_t x = v.load(std::memory_order_relaxed);
      return x < 0 ? uint64_t{0} : static_cast<uint64_t>(x);
    };
    fn("cx_connect_fail", false, c(cx_connect_fail));
    fn("cx_total", false, c(cx_total));
    fn("rq_error", false, c(rq_error));
    fn("rq_success", false, c(rq_success));
    fn("rq_timeout", false, c(rq_timeout));
    fn("rq_total", false, c(rq_total));
    fn("cx_active", true, g(cx_active));
    fn("rq_active", true, g(rq_active));
  }
};

// Outlier detection's state of one host (upstream/outlier_detection.h drives
// it). The counters are bumped by workers with relaxed atomics; the rest
// belongs to the main thread.
struct HostOutlierState {
  enum Origin { kExternal = 0, kLocal = 1 };
  // Any thread: failures in a row, reset by a success of the same kind.
  std::atomic<uint32_t> consecutive_5xx{0};
  std::atomic<uint32_t> consecutive_gateway_failure{0};
  std::atomic<uint32_t> consecutive_local_origin_failure{0};
  // Any thread: this interval's requests per origin, the total in the high 32
  // bits and the successes in the low 32, so one atomic add records a result
  // and one exchange on the main thread takes both numbers consistently.
  std::atomic<uint64_t> interval_counts[2] = {0, 0};
  void record(Origin o, bool success) {
    interval_counts[o].fetch_add((uint64_t{1} << 32) | (success ? 1u : 0u),
                                 std::memory_order_relaxed);
  }
  // Main thread only.
  uint32_t num_ejections = 0; // ever
  uint32_t eject_backoff = 0; // multiplier of base_ejection_time
  std::chrono::steady_clock::time_point last_ejection{};
  std::chrono::milliseconds jitter{0}; // added to this ejection's time
  // The last interval's success rate (percent) where computed, else -1.
  double success_rate[2] = {-1, -1};
};

// envoy.config.core.v3.Locality, the parts legate compares.
struct Locality {
  std::string region;
  std::string zone;
  std::string sub_zone;
  bool operator==(const Locality&) const = default;
  auto operator<=>(const Locality&) const = default;
};

class Host {
public:
  // Envoy's host health flags (HostHealthFlag); any "failed" one makes the
  // host unhealthy, any "degraded" one (without a failed one) degraded.
  enum class HealthFlag : uint32_t {
    FAILED_ACTIVE_HC = 1u << 0,
    FAILED_OUTLIER_CHECK = 1u << 1,
    FAILED_EDS_HEALTH = 1u << 2,
    DEGRADED_ACTIVE_HC = 1u << 3,
    DEGRADED_EDS_HEALTH = 1u << 4,
    PENDING_DYNAMIC_REMOVAL = 1u << 5,
    PENDING_ACTIVE_HC = 1u << 6,
    EXCLUDED_VIA_IMMEDIATE_HC_FAIL = 1u << 7,
    ACTIVE_HC_TIMEOUT = 1u << 8,
    EDS_STATUS_DRAINING = 1u << 9,
  };
  enum class Health { Unhealthy, Degraded, Healthy };

  // locality: shared by the hosts of one locality (see makeLocality); null for none.
  Host(network::Address address, uint32_t weight, uint32_t priority = 0,
       std::shared_ptr<const Locality> locality = nullptr, std::string hostname = {})
      : address_(std::move(address)), hostname_(std::move(hostname)),
        locality_(std::move(locality)), weight_(weight == 0 ? 1 : weight), priority_(priority) {}
  // What hosts of locality l share: null when l is empty (most clusters name no
  // locality, and a Locality is three strings).
  static std::shared_ptr<const Locality> makeLocality(Locality l) {
    return l == Locality{} ? nullptr : std::make_shared<const Locality>(std::move(l));
  }

  const network::Address& address() const { return address_; }
  // The DNS name the host came from (STRICT_DNS, LOGICAL_DNS), else empty.
  const std::string& hostname() const { return hostname_; }
  const Locality& locality() const {
    static const Locality kNone;
    return locality_ ? *locality_ : kNone;
  }
  uint32_t weight() const { return weight_; }
  uint32_t priority() const { return priority_; }
  HostStats& stats() const { return stats_; }
  HostOutlierState& outlier() const { return outlier_; }

  // Main thread sets/clears; any thread reads.
  void healthFlagSet(HealthFlag f) const {
    health_flags_.fetch_or(static_cast<uint32_t>(f), std::memory_order_relaxed);
  }
  void healthFlagClear(HealthFlag f) const {
    health_flags_.fetch_and(~static_cast<uint32_t>(f), std::memory_order_relaxed);
  }
  bool healthFlagGet(HealthFlag f) const {
    return (health_flags_.load(std::memory_order_relaxed) & static_cast<uint32_t>(f)) != 0;
  }
  uint32_t healthFlags() const { return health_flags_.load(std::memory_order_relaxed); }
  Health health() const { return healthFromFlags(healthFlags()); }
  static Health healthFromFlags(uint32_t flags);
  // As Envoy's /clusters prints health_flags: "healthy", or "/failed_active_hc/..." per flag.
  std::string healthFlagsString() const;

  // Since when the host has served: when it joined the cluster, or last became
  // healthy through active health checking (slow_start_config ramps from
  // here). Main thread sets; any thread reads.
  // ORIGINAL_DST clusters: every pick marks its host used; the cleanup sweep
  // (main thread) takes the mark, and removes hosts that had none.
  void markUsed() const { used_.store(true, std::memory_order_relaxed); }
  bool takeUsed() const { return used_.exchange(false, std::memory_order_relaxed); }
  // ORIGINAL_DST clusters: set by the main thread once it handled a host a
  // worker made on demand (see original_dst.cc).
  void markSeenByMain() const { seen_by_main_.store(true, std::memory_order_release); }
  bool seenByMain() const { return seen_by_main_.load(std::memory_order_acquire); }

  std::chrono::steady_clock::time_point activeSince() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(active_since_.load(std::memory_order_relaxed)));
  }
  void setActiveSince(std::chrono::steady_clock::time_point t) const {
    active_since_.store(t.time_since_epoch().count(), std::memory_order_relaxed);
  }

private:
  const network::Address address_;
  const std::string hostname_;
  const std::shared_ptr<const Locality> locality_;
  const uint32_t weight_;
  const uint32_t priority_;
  mutable std::atomic<uint32_t> health_flags_{0};
  mutable std::atomic<bool> used_{true};
  mutable std::atomic<bool> seen_by_main_{false};
  mutable std::atomic<std::chrono::steady_clock::rep> active_since_{
      std::chrono::steady_clock::now().time_since_epoch().count()};
  mutable HostStats stats_;
  mutable HostOutlierState outlier_;
};
using HostConstSharedPtr = std::shared_ptr<const Host>;

} // namespace legate::upstream
