#pragma once

// Passive health checking: Envoy's outlier detection (cluster.outlier_detection).
//
// What callers saw of each attempt on a host (a response code, a connect
// failure, a reset, a timeout) goes into the host's HostOutlierState with
// relaxed atomics, on whatever worker saw it. Two kinds of detector read it:
//
// - Consecutive failures (5xx, gateway failures 502/503/504, local-origin
//   failures): the worker whose report makes a counter reach its threshold
//   posts the host to the main thread, which decides.
// - Success rate and failure percentage: every `interval` the main thread
//   takes each host's request counts of the interval and compares hosts.
//
// Local-origin failures are what legate itself saw: a connection refused or
// reset, a connect or request timeout. Without split_external_local_origin_errors
// they count as 503 (504 for timeouts) towards the 5xx and gateway detectors;
// with it they feed only the local-origin detectors, and responses only the others.
//
// An ejection sets the host's FAILED_OUTLIER_CHECK flag and rebuilds the
// cluster's snapshot, so balancers drop it exactly as they drop a host that
// failed active health checking (panic threshold included). It lasts
// base_ejection_time x the host's ejection multiplier (capped by
// max_ejection_time) plus jitter; the multiplier grows with each ejection
// and shrinks by one for each interval the host spends un-ejected.
//
// Threading: a detector belongs to its Cluster. put*() may be called from any
// thread and never blocks; everything else runs on the main thread, after
// start(). Reports before start() (or in --mode validate) only count.
// Envoy's runtime keys (outlier_detection.*) override the configuration; the
// main thread reads them at each interval and at each decision, and workers
// see new consecutive thresholds from the next interval on.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "event/dispatcher.h"
#include "stats/stats.h"
#include "upstream/host.h"

namespace envoy::config::cluster::v3 {
class OutlierDetection;
}

namespace legate::upstream {

class Cluster;

// Envoy's Outlier::Result: what happened at the connection level.
enum class OutlierResult {
  LocalOriginConnectFailed,       // connect failed, or the connection was reset
  LocalOriginTimeout,             // legate timed out (connect, per-try or route timeout)
  LocalOriginConnectSuccess,      // connected; a response code will follow (HTTP)
  LocalOriginConnectSuccessFinal, // connected, and nothing else will follow (TCP)
};

enum class EjectionType {
  Consecutive5xx,
  ConsecutiveGatewayFailure,
  ConsecutiveLocalOriginFailure,
  SuccessRate,
  LocalOriginSuccessRate,
  FailurePercentage,
  LocalOriginFailurePercentage,
};

struct OutlierDetectionConfig {
  uint32_t consecutive_5xx = 5;
  uint32_t consecutive_gateway_failure = 5;
  uint32_t consecutive_local_origin_failure = 5;
  std::chrono::milliseconds interval{10000};
  std::chrono::milliseconds base_ejection_time{30000};
  std::chrono::milliseconds max_ejection_time{300000}; // at least base_ejection_time
  std::chrono::milliseconds max_ejection_time_jitter{0};
  uint32_t max_ejection_percent = 10;
  bool always_eject_one_host = false;
  bool split_external_local_origin_errors = false;
  bool successful_active_health_check_uneject_host = true;
  uint32_t success_rate_minimum_hosts = 5;
  uint32_t success_rate_request_volume = 100;
  uint32_t success_rate_stdev_factor = 1900; // thousandths
  uint32_t failure_percentage_threshold = 85;
  uint32_t failure_percentage_minimum_hosts = 5;
  uint32_t failure_percentage_request_volume = 50;
  // enforcing_*: the percent chance that a detected outlier is ejected.
  uint32_t enforcing_consecutive_5xx = 100;
  uint32_t enforcing_consecutive_gateway_failure = 0;
  uint32_t enforcing_consecutive_local_origin_failure = 100;
  uint32_t enforcing_success_rate = 100;
  uint32_t enforcing_local_origin_success_rate = 100;
  uint32_t enforcing_failure_percentage = 0;
  uint32_t enforcing_failure_percentage_local_origin = 0;

  // Errors start with `path` (the cluster's outlier_detection field path).
  static absl::StatusOr<std::shared_ptr<const OutlierDetectionConfig>>
  create(const envoy::config::cluster::v3::OutlierDetection& proto, const std::string& path);
  uint32_t enforcing(EjectionType t) const;
  // This configuration with Envoy's runtime overrides applied (the global
  // outlier_detection.* keys: consecutive_5xx, interval_ms, base_ejection_time_ms,
  // max_ejection_percent, enforcing_*, ...).
  OutlierDetectionConfig withRuntime() const;
};

// cluster.<name>.outlier_detection.*
struct OutlierDetectionStats {
  explicit OutlierDetectionStats(stats::Scope scope);
  stats::Counter& ejections_enforced_total;
  stats::Gauge& ejections_active;
  stats::Counter& ejections_overflow;
  stats::Counter& ejections_enforced_consecutive_5xx;
  stats::Counter& ejections_detected_consecutive_5xx;
  stats::Counter& ejections_enforced_consecutive_gateway_failure;
  stats::Counter& ejections_detected_consecutive_gateway_failure;
  stats::Counter& ejections_enforced_consecutive_local_origin_failure;
  stats::Counter& ejections_detected_consecutive_local_origin_failure;
  stats::Counter& ejections_enforced_success_rate;
  stats::Counter& ejections_detected_success_rate;
  stats::Counter& ejections_enforced_local_origin_success_rate;
  stats::Counter& ejections_detected_local_origin_success_rate;
  stats::Counter& ejections_enforced_failure_percentage;
  stats::Counter& ejections_detected_failure_percentage;
  stats::Counter& ejections_enforced_failure_percentage_local_origin;
  stats::Counter& ejections_detected_failure_percentage_local_origin;
  // Deprecated in Envoy, still kept there: ejections (enforced or not) that
  // passed max_ejection_percent, and detections, of the two oldest detectors.
  stats::Counter& ejections_total;
  stats::Counter& ejections_consecutive_5xx;
  stats::Counter& ejections_success_rate;
  stats::Counter& detected(EjectionType t);
  stats::Counter& enforced(EjectionType t);
};

// --- The arithmetic, as pure functions (unit tested) -------------------------

// Envoy's success-rate rule: mean and mean - stdev x factor over the hosts'
// success rates (percent; population standard deviation).
struct SuccessRateThreshold {
  double mean = -1;
  double ejection_threshold = -1;
};
SuccessRateThreshold successRateThreshold(const std::vector<double>& rates, double stdev_factor);

// May one more host be ejected when `active` of `total` already are?
// (active + 1) / total must stay within max_percent, unless always_eject_one
// and none is ejected yet.
bool ejectionAllowed(size_t active, size_t total, uint32_t max_percent, bool always_eject_one);

// The ejection multiplier after one more ejection: it grows while
// base x multiplier is still under max.
uint32_t nextEjectBackoff(uint32_t backoff, std::chrono::milliseconds base,
                          std::chrono::milliseconds max);

// How long an ejection with this multiplier lasts (before jitter).
std::chrono::milliseconds ejectionTime(uint32_t backoff, std::chrono::milliseconds base,
                                       std::chrono::milliseconds max);

class OutlierDetector {
public:
  using TimeSource = std::function<std::chrono::steady_clock::time_point()>;

  OutlierDetector(Cluster& cluster, std::shared_ptr<const OutlierDetectionConfig> config,
                  stats::Store& store);
  ~OutlierDetector();

  const OutlierDetectionConfig& config() const { return *config_; }
  OutlierDetectionStats& stats() { return stats_; }

  // --- Any thread ------------------------------------------------------------
  // An upstream response's status code.
  void putHttpResponseCode(const HostConstSharedPtr& host, uint64_t code);
  // A connection-level result; `code` is what an HTTP caller answered for a
  // timeout (504), counted in its place when local and external are not split.
  void putResult(const HostConstSharedPtr& host, OutlierResult result, uint64_t code = 0);

  // --- Main thread -------------------------------------------------------------
  // Starts the interval timer; consecutive-failure ejections now reach `main`.
  void start(event::Dispatcher& main);
  // A consecutive detector fired for host (posted from the worker that saw it).
  void onConsecutiveError(const HostConstSharedPtr& host, EjectionType type);
  // One interval: un-ejects hosts whose time is over, runs the success-rate
  // and failure-percentage detectors on the interval's counts.
  void runInterval();
  // An active health check passed: un-ejects (successful_active_health_check_uneject_host).
  void onActiveHealthCheckSuccess(const HostConstSharedPtr& host);
  // For /clusters: the last interval's mean success rate and ejection
  // threshold, per origin (-1 when not computed).
  SuccessRateThreshold successRateNumbers(HostOutlierState::Origin o) const {
    return sr_numbers_[o];
  }
  // The settings in force: the configuration with the runtime's overrides as
  // of the last interval (or the last main-thread decision).
  const OutlierDetectionConfig& effective() const { return effective_; }
  // Tests: a fake clock and a seeded random source.
  void setTimeSource(TimeSource now) { now_ = std::move(now); }
  void seedRandom(uint32_t seed) { rng_.seed(seed); }

private:
  void reportExternal(const HostConstSharedPtr& host, uint64_t code);
  void localOriginFailure(const HostConstSharedPtr& host);
  void localOriginSuccess(const HostConstSharedPtr& host);
  void notifyMain(const HostConstSharedPtr& host, EjectionType type);
  // Main thread.
  bool isMember(const Host& host) const;
  size_t activeEjections() const;
  // Returns true when the host was ejected.
  bool ejectHost(const HostConstSharedPtr& host, EjectionType type);
  void unejectHost(const Host& host);
  void processSuccessRates(HostOutlierState::Origin origin,
                           const std::vector<std::array<uint64_t, 4>>& counts);
  void publishActive();
  // Re-reads the runtime's overrides (main thread) and hands workers the
  // thresholds they compare against.
  void refreshEffective();

  Cluster& cluster_;
  std::shared_ptr<const OutlierDetectionConfig> config_;
  OutlierDetectionStats stats_;
  OutlierDetectionConfig effective_; // main thread
  // The consecutive thresholds of effective_, for workers (relaxed; a runtime
  // change reaches them at the next interval, so no worker reads the runtime).
  std::atomic<uint32_t> consecutive_5xx_{0};
  std::atomic<uint32_t> consecutive_gateway_failure_{0};
  std::atomic<uint32_t> consecutive_local_origin_failure_{0};
  // Set once by start(), before any worker runs.
  event::Dispatcher* main_ = nullptr;
  event::TimerPtr interval_timer_;
  TimeSource now_;
  std::minstd_rand rng_{randomSeed()};
  SuccessRateThreshold sr_numbers_[2];
  bool changed_ = false; // a flag changed during this pass: refresh once
};

} // namespace legate::upstream
