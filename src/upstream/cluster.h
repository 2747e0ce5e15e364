#pragma once

// Upstream clusters: hosts, load balancing, circuit breakers and stats.
//
// Threading: a Cluster is built on the main thread from its proto and shared
// (as const) with every worker. Its settings never change. Its membership and
// host health change only on the main thread (setHosts, refreshHealth), which
// builds a new immutable HostSnapshot and publishes it; a worker notices the
// new version on its next pick (one atomic load) and adopts the snapshot, so
// choosing a host takes no lock. Counts are atomics (stats, circuit
// breakers); load-balancer state is per worker (indexed by the worker's index).

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "network/address.h"
#include "network/connection_stats.h"
#include "stats/stats.h"
#include "stats/status_code_counters.h"
#include "upstream/dns_cluster.h"
#include "upstream/host.h"
#include "upstream/health_checker.h"
#include "upstream/host_set.h"
#include "upstream/load_balancer.h"
#include "upstream/outlier_detection.h"
#include "upstream/resource_manager.h"

namespace envoy::config::cluster::v3 {
class Cluster;
}
namespace google::protobuf {
class Any;
}

namespace legate::upstream {

// Envoy's cluster.<name>.* stats that legate maintains, listed once: the list
// declares the members and names them to the Store.
#define LEGATE_CLUSTER_STATS(COUNTER, GAUGE, HISTOGRAM)                       \
  COUNTER(upstream_cx_total)                                                  \
  GAUGE(upstream_cx_active)                                                   \
  COUNTER(upstream_cx_connect_fail)                                           \
  COUNTER(upstream_cx_connect_timeout)                                        \
  COUNTER(upstream_cx_connect_attempts_exceeded)                              \
  COUNTER(upstream_cx_overflow)                                               \
  COUNTER(upstream_cx_none_healthy)                                           \
  COUNTER(upstream_cx_destroy)                                                \
  COUNTER(upstream_cx_destroy_local)                                          \
  COUNTER(upstream_cx_destroy_remote)                                         \
  COUNTER(upstream_cx_rx_bytes_total)                                         \
  GAUGE(upstream_cx_rx_bytes_buffered)                                        \
  COUNTER(upstream_cx_tx_bytes_total)                                         \
  GAUGE(upstream_cx_tx_bytes_buffered)                                        \
  COUNTER(upstream_flow_control_paused_reading_total)                         \
  COUNTER(upstream_flow_control_resumed_reading_total)                        \
  HISTOGRAM(upstream_cx_connect_ms, Milliseconds)                             \
  HISTOGRAM(upstream_cx_length_ms, Milliseconds)                              \
  GAUGE(membership_total)                                                     \
  GAUGE(membership_healthy)                                                   \
  GAUGE(membership_degraded)                                                  \
  COUNTER(membership_change)                                                  \
  COUNTER(lb_healthy_panic)                                                   \
  COUNTER(original_dst_host_invalid)                                          \
  /* DNS discovery. */                                                        \
  COUNTER(update_attempt)                                                     \
  COUNTER(update_success)                                                     \
  COUNTER(update_failure)                                                     \
  COUNTER(update_empty)                                                       \
  /* HTTP. */                                                                 \
  COUNTER(upstream_cx_http1_total)                                            \
  COUNTER(upstream_cx_idle_timeout)                                           \
  COUNTER(upstream_cx_max_requests)                                           \
  COUNTER(upstream_cx_destroy_with_active_rq)                                 \
  COUNTER(upstream_rq_total)                                                  \
  GAUGE(upstream_rq_active)                                                   \
  COUNTER(upstream_rq_completed)                                              \
  COUNTER(upstream_rq_pending_total)                                          \
  GAUGE(upstream_rq_pending_active)                                           \
  COUNTER(upstream_rq_pending_overflow)                                       \
  COUNTER(upstream_rq_pending_failure_eject)                                  \
  COUNTER(upstream_rq_timeout)                                                \
  COUNTER(upstream_rq_rx_reset)                                               \
  COUNTER(upstream_rq_tx_reset)                                               \
  COUNTER(upstream_rq_1xx)                                                    \
  COUNTER(upstream_rq_2xx)                                                    \
  COUNTER(upstream_rq_3xx)                                                    \
  COUNTER(upstream_rq_4xx)                                                    \
  COUNTER(upstream_rq_5xx)                                                    \
  HISTOGRAM(upstream_rq_time, Milliseconds)                                   \
  /* Retries, per-try timeouts and request mirroring (the router filter). */  \
  COUNTER(upstream_rq_retry)                                                  \
  COUNTER(upstream_rq_retry_success)                                          \
  COUNTER(upstream_rq_retry_overflow)                                         \
  COUNTER(upstream_rq_retry_limit_exceeded)                                   \
  COUNTER(upstream_rq_retry_backoff_exponential)                              \
  COUNTER(upstream_rq_per_try_timeout)                                        \
  COUNTER(upstream_rq_per_try_idle_timeout)                                   \
  COUNTER(retry_or_shadow_abandoned)

// A stat block (stats.h): a cluster's stats are one allocation, found by the Store
// through their prefix, reached by the cluster's users as members.
struct ClusterStats {
  ClusterStats(stats::Store& store, std::string_view prefix);
  void visitStats(stats::StatVisitor& v) {
    LEGATE_CLUSTER_STATS(LEGATE_STAT_VISIT_COUNTER, LEGATE_STAT_VISIT_GAUGE,
                         LEGATE_STAT_VISIT_HISTOGRAM)
  }
  LEGATE_CLUSTER_STATS(LEGATE_STAT_COUNTER, LEGATE_STAT_GAUGE, LEGATE_STAT_HISTOGRAM)
  stats::StatusCodeCounters upstream_rq_code; // upstream_rq_<code>, made on first use

  // An upstream response's status: its class (upstream_rq_<N>xx) and its code.
  void countResponseCode(uint32_t code) {
    if (code >= 500) upstream_rq_5xx.inc();
    else if (code >= 400) upstream_rq_4xx.inc();
    else if (code >= 300) upstream_rq_3xx.inc();
    else if (code >= 200) upstream_rq_2xx.inc();
    else upstream_rq_1xx.inc();
    upstream_rq_code.inc(code);
  }
};

// ClusterProvided: the cluster type picks the host (ORIGINAL_DST).
enum class LbPolicy { RoundRobin, Random, LeastRequest, RingHash, Maglev, ClusterProvided };

class Cluster {
public:
  using ClusterProto = envoy::config::cluster::v3::Cluster;
  // slow_start_config of ROUND_ROBIN / LEAST_REQUEST.
  struct SlowStart {
    std::chrono::milliseconds window{0};
    double aggression = 1.0;      // aggression.default_value
    std::string aggression_key;   // aggression.runtime_key (may be empty)
    double min_weight_percent = 10.0;
  };
  // ORIGINAL_DST: original_dst_lb_config and cleanup_interval.
  struct OriginalDstConfig {
    bool use_http_header = false;
    std::string header_name = "x-envoy-original-dst-host";
    std::optional<uint16_t> port_override; // upstream_port_override
    std::chrono::milliseconds cleanup_interval{5000};
  };
  // Validates what legate supports of the proto; errors start with the field
  // path under `where` (the cluster's own path, e.g. "static_resources.clusters[0]").
  static absl::StatusOr<std::shared_ptr<Cluster>>
  create(const envoy::config::cluster::v3::Cluster& proto, stats::Store& store, uint32_t workers,
         const std::string& where = "cluster");

  const std::string& name() const { return name_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  uint32_t perConnectionBufferLimit() const { return buffer_limit_; }
  ClusterStats& stats() const { return *stats_; }
  // upstream_cx_{rx,tx}_bytes_{total,buffered}, as every upstream connection's
  // byte counters (network::Connection::setConnectionStats).
  const network::ConnectionStats& connectionStats() const { return connection_stats_; }
  LbPolicy lbPolicy() const { return lb_policy_; }
  // ORIGINAL_DST settings; nullptr for other cluster types.
  const OriginalDstConfig* originalDstConfig() const { return odst_.get(); }
  // STRICT_DNS / LOGICAL_DNS settings; nullptr for a STATIC cluster.
  const DnsClusterConfig* dnsConfig() const { return dns_.get(); }
  // health_checks, parsed and validated (the cluster manager runs them).
  const std::vector<std::shared_ptr<const HealthCheckConfig>>& healthChecks() const {
    static const HealthChecks kNone;
    return health_checks_ ? *health_checks_ : kNone;
  }

  // outlier_detection, or nullptr. Its put*() reports may be made from any
  // thread; the rest of it is the main thread's.
  OutlierDetector* outlierDetector() const { return outlier_detector_.get(); }

  // --- Main thread only ---------------------------------------------------
  // Every host of the cluster, whatever its health.
  const std::vector<HostConstSharedPtr>& hosts() const { return members_; }
  // Replaces the membership. Hosts that stay must be passed as the same Host
  // objects (their pools, stats and flags carry on). Publishes a new snapshot,
  // then reports the hosts that left to the removal callback.
  void setHosts(std::vector<HostConstSharedPtr> hosts);
  // Rebuilds the snapshot after health flags changed.
  void refreshHealth();
  // Called (main thread) with the hosts setHosts() removed; the cluster
  // manager uses it to drain their pooled connections on every worker.
  void setHostsRemovedCallback(std::function<void(std::vector<HostConstSharedPtr>)> cb) {
    on_removed_ = std::move(cb);
  }
  // ORIGINAL_DST: how a host a worker made reaches the main thread (the
  // cluster manager sets it before workers run; tests may queue the tasks).
  using MainThreadPoster = std::function<void(std::function<void()>)>;
  void setMainThreadPoster(MainThreadPoster post) {
    post_to_main_ = std::make_unique<MainThreadPoster>(std::move(post));
  }
  // ORIGINAL_DST: adds a host a worker made; one whose address is already a
  // member is reported removed instead (its pools drain).
  void addOriginalDstHost(HostConstSharedPtr host);
  // ORIGINAL_DST, every cleanup_interval: removes the hosts no pick used since
  // the previous sweep.
  void cleanupOriginalDstHosts();
  // The snapshot balancers use now.
  std::shared_ptr<const HostSnapshot> snapshot() const { return snapshot_.load(); }
  // Tests: the clock slow start reads (default: steady_clock). Set before any
  // host is added that should start at the new clock's time.
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  void setClockForTest(Clock clock) { clock_ = std::make_unique<Clock>(std::move(clock)); }

  // --- Any thread -----------------------------------------------------------
  // Picks a host for a new upstream request/connection on worker `worker`;
  // nullptr if the cluster has no usable host. With a context, a pick the
  // context rejects (shouldSelectAnotherHost) is retried up to
  // hostSelectionRetryCount() more times; the last pick stands.
  HostConstSharedPtr chooseHost(uint32_t worker, LoadBalancerContext* ctx = nullptr) const;

  // Circuit breakers of a routing priority (see resource_manager.h).
  ResourceManager& resourceManager(ResourcePriority p = ResourcePriority::Default) const {
    return *resource_managers_[static_cast<size_t>(p)];
  }
  // The default priority's breakers: tryAcquire counts one more when under
  // the limit.
  bool tryAcquireConnection() const { return resourceManager().tryAcquireConnection(); }
  void releaseConnection() const { resourceManager().releaseConnection(); }
  uint32_t maxConnections() const { return resourceManager().thresholds().max_connections; }
  bool tryAcquirePending() const { return resourceManager().tryAcquirePending(); }
  void releasePending() const { resourceManager().releasePending(); }
  bool tryAcquireRequest() const { return resourceManager().tryAcquireRequest(); }
  void releaseRequest() const { resourceManager().releaseRequest(); }

  // HTTP/1 upstream settings.
  uint32_t maxRequestsPerConnection() const { return max_requests_per_connection_; } // 0 = no limit
  std::chrono::milliseconds idleTimeout() const { return idle_timeout_; }            // 0 = none

private:
  Cluster() = default;
  static absl::Status parseHttpProtocolOptions(const ClusterProto& proto, const std::string& where,
                                               Cluster& c);
  static absl::StatusOr<std::vector<HostConstSharedPtr>>
  parseLoadAssignment(const ClusterProto& proto, const std::string& where, Cluster& c);
  void publish();

  // What a pick in slow start needs: the time and the aggression now.
  struct Ramp {
    std::chrono::steady_clock::time_point now;
    double aggression;
  };
  double rampedWeight(const Host& h, const Ramp& ramp) const;
  // Per-worker load-balancer state, padded to its own cache line. States are
  // indexed by HostList::state_index / LocalityWeights::state_index.
  struct ListState {
    uint64_t rr_index = 0;
    std::vector<double> current_weights; // smooth weighted round robin
  };
  struct alignas(64) WorkerLbState {
    uint64_t version = 0;
    std::shared_ptr<const HostSnapshot> snapshot;
    std::vector<ListState> lists;
    std::minstd_rand rng{randomSeed()};
    // ORIGINAL_DST: hosts this worker made that its snapshot may not have yet
    // (made on the first such host, so that the state fits one cache line).
    std::unique_ptr<std::vector<HostConstSharedPtr>> odst_pending;
  };
  static_assert(sizeof(WorkerLbState) == 64, "one cache line per worker and cluster");
  static constexpr size_t kMaxPendingOriginalDstHosts = 256;
  HostConstSharedPtr chooseOriginalDst(WorkerLbState& st, LoadBalancerContext* ctx) const;
  HostConstSharedPtr pickOnce(WorkerLbState& st, LoadBalancerContext* ctx) const;
  HostConstSharedPtr pickFromList(const HostList& list, ListState& ls, std::minstd_rand& rng,
                                  std::optional<uint64_t> hash, const Ramp* ramp) const;
  HostConstSharedPtr roundRobin(const HostList& list, ListState& ls, const Ramp* ramp) const;
  HostConstSharedPtr leastRequestChoices(const HostList& list, std::minstd_rand& rng) const;
  HostConstSharedPtr leastRequestWeighted(const HostList& list, ListState& ls,
                                          const Ramp* ramp) const;
  static size_t pickLocality(const LocalityWeights& weights, ListState& ls);
  static absl::Status parseLbPolicy(const ClusterProto& proto, const std::string& where,
                                    Cluster& c);
  // load_balancing_policy: the first policy legate maps onto its balancers.
  static absl::Status parseLoadBalancingPolicy(const ClusterProto& proto, const std::string& where,
                                               Cluster& c);
  static absl::Status applyTypedLbPolicy(const google::protobuf::Any& any, const std::string& type,
                                         const std::string& path, Cluster& c);
  static absl::Status parseOriginalDst(const ClusterProto& proto, const std::string& where,
                                       bool typed_lb, Cluster& c);
  // What the legacy *_lb_config messages and the typed load_balancing_policy
  // messages share (same field names): defined and used in cluster.cc only.
  template <class Config>
  static absl::Status applySlowStart(const Config& cfg, const std::string& path, Cluster& c);
  template <class Config>
  static absl::Status applyLeastRequest(const Config& lr, const std::string& path, Cluster& c);
  template <class Config>
  static absl::Status applyRingSizes(const Config& rh, const std::string& path, Cluster& c);
  static absl::Status checkRingSizes(const Cluster& c, const std::string& path);
  static absl::Status checkMaglevTableSize(const Cluster& c, const std::string& path);

  std::string name_;
  std::unique_ptr<DnsClusterConfig> dns_;
  std::unique_ptr<OriginalDstConfig> odst_;
  // What only some clusters use is behind pointers: ten thousand clusters are
  // ten thousand of these objects.
  std::unique_ptr<MainThreadPoster> post_to_main_; // ORIGINAL_DST only
  using HealthChecks = std::vector<std::shared_ptr<const HealthCheckConfig>>;
  std::unique_ptr<HealthChecks> health_checks_;
  std::unique_ptr<OutlierDetector> outlier_detector_;
  std::chrono::milliseconds connect_timeout_{5000};
  uint32_t buffer_limit_ = 1024 * 1024;
  LbPolicy lb_policy_ = LbPolicy::RoundRobin;
  uint32_t choice_count_ = 2;         // least_request_lb_config
  uint32_t overprovisioning_factor_ = 140;
  double active_request_bias_ = 1.0;  // least_request_lb_config
  uint64_t min_ring_size_ = 1024;     // ring_hash_lb_config
  uint64_t max_ring_size_ = 8 * 1024 * 1024;
  uint64_t maglev_table_size_ = 65537; // maglev_lb_config
  double panic_threshold_ = 50.0;
  std::unique_ptr<const SlowStart> slow_start_;
  std::unique_ptr<Clock> clock_; // tests only; else steady_clock
  std::chrono::steady_clock::time_point now() const {
    return clock_ ? (*clock_)() : std::chrono::steady_clock::now();
  }
  // common_lb_config.locality_weighted_lb_config, and the localities' weights
  // by (priority, locality).
  using LocalityWeightMap = std::map<std::pair<uint32_t, Locality>, uint32_t>;
  std::unique_ptr<LocalityWeightMap> locality_weights_;
  ClusterStats* stats_ = nullptr; // the Store's block: outlives the cluster
  network::ConnectionStats connection_stats_;
  std::array<std::unique_ptr<ResourceManager>, 2> resource_managers_;
  uint32_t max_requests_per_connection_ = 0;
  bool locality_weighted_ = false; // common_lb_config.locality_weighted_lb_config
  std::chrono::milliseconds idle_timeout_{std::chrono::hours(1)};
  // Membership (main thread) and what workers see of it.
  std::vector<HostConstSharedPtr> members_;
  std::function<void(std::vector<HostConstSharedPtr>)> on_removed_;
  std::atomic<std::shared_ptr<const HostSnapshot>> snapshot_;
  std::atomic<uint64_t> version_{0};
  mutable std::vector<WorkerLbState> lb_state_;
};
using ClusterConstSharedPtr = std::shared_ptr<const Cluster>;
using ClusterSharedPtr = std::shared_ptr<Cluster>;

} // namespace legate::upstream
