#pragma once

// Upstream clusters: hosts, load balancing, circuit breakers and stats.
//
// Threading: a Cluster is built on the main thread from its proto and then
// shared immutably (shared_ptr<const>) with every worker. What changes at run
// time is counted with atomics (stats, circuit-breaker counts) or kept per
// worker (load-balancer state, indexed by the worker's index), so choosing a
// host takes no lock.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/address.h"
#include "stats/stats.h"
#include "upstream/host.h"
#include "upstream/load_balancer.h"
#include "upstream/resource_manager.h"

namespace envoy::config::cluster::v3 {
class Cluster;
}

namespace legate::upstream {

// Envoy's cluster.<name>.* stats that legate maintains.
struct ClusterStats {
  explicit ClusterStats(stats::Scope scope);
  stats::Counter& upstream_cx_total;
  stats::Gauge& upstream_cx_active;
  stats::Counter& upstream_cx_connect_fail;
  stats::Counter& upstream_cx_connect_timeout;
  stats::Counter& upstream_cx_connect_attempts_exceeded;
  stats::Counter& upstream_cx_overflow;
  stats::Counter& upstream_cx_none_healthy;
  stats::Counter& upstream_cx_destroy;
  stats::Counter& upstream_cx_destroy_local;
  stats::Counter& upstream_cx_destroy_remote;
  stats::Counter& upstream_cx_rx_bytes_total;
  stats::Gauge& upstream_cx_rx_bytes_buffered;
  stats::Counter& upstream_cx_tx_bytes_total;
  stats::Gauge& upstream_cx_tx_bytes_buffered;
  stats::Counter& upstream_flow_control_paused_reading_total;
  stats::Counter& upstream_flow_control_resumed_reading_total;
  stats::Histogram& upstream_cx_connect_ms;
  stats::Histogram& upstream_cx_length_ms;
  stats::Gauge& membership_total;
  stats::Gauge& membership_healthy;
  // HTTP.
  stats::Counter& upstream_cx_http1_total;
  stats::Counter& upstream_cx_idle_timeout;
  stats::Counter& upstream_cx_max_requests;
  stats::Counter& upstream_cx_destroy_with_active_rq;
  stats::Counter& upstream_rq_total;
  stats::Gauge& upstream_rq_active;
  stats::Counter& upstream_rq_completed;
  stats::Counter& upstream_rq_pending_total;
  stats::Gauge& upstream_rq_pending_active;
  stats::Counter& upstream_rq_pending_overflow;
  stats::Counter& upstream_rq_pending_failure_eject;
  stats::Counter& upstream_rq_timeout;
  stats::Counter& upstream_rq_rx_reset;
  stats::Counter& upstream_rq_tx_reset;
  stats::Counter& upstream_rq_1xx;
  stats::Counter& upstream_rq_2xx;
  stats::Counter& upstream_rq_3xx;
  stats::Counter& upstream_rq_4xx;
  stats::Counter& upstream_rq_5xx;
  stats::Histogram& upstream_rq_time;
};

enum class LbPolicy { RoundRobin, Random, LeastRequest };

class Cluster {
public:
  using ClusterProto = envoy::config::cluster::v3::Cluster;
  // Validates what legate supports of the proto; errors start with the field
  // path under `where` (the cluster's own path, e.g. "static_resources.clusters[0]").
  static absl::StatusOr<std::shared_ptr<Cluster>>
  create(const envoy::config::cluster::v3::Cluster& proto, stats::Store& store, uint32_t workers,
         const std::string& where = "cluster");

  const std::string& name() const { return name_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  uint32_t perConnectionBufferLimit() const { return buffer_limit_; }
  // Every host of the cluster, whatever its health (admin, main thread).
  const std::vector<HostConstSharedPtr>& hosts() const { return all_hosts_; }
  ClusterStats& stats() const { return *stats_; }
  LbPolicy lbPolicy() const { return lb_policy_; }

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
  HostConstSharedPtr pickOnce(uint32_t worker) const;
  static absl::Status parseHttpProtocolOptions(const ClusterProto& proto, const std::string& where,
                                               Cluster& c);

  // Per-worker load-balancer state, padded to its own cache line.
  struct alignas(64) WorkerLbState {
    uint64_t rr_index = 0;
    std::vector<int64_t> current_weights; // smooth weighted round robin
    std::minstd_rand rng{std::random_device{}()};
  };

  std::string name_;
  std::chrono::milliseconds connect_timeout_{5000};
  uint32_t buffer_limit_ = 1024 * 1024;
  std::vector<HostConstSharedPtr> all_hosts_;
  std::vector<HostConstSharedPtr> hosts_; // the ones balancers pick from
  bool weighted_ = false;
  int64_t total_weight_ = 0;
  LbPolicy lb_policy_ = LbPolicy::RoundRobin;
  std::unique_ptr<ClusterStats> stats_;
  std::array<std::unique_ptr<ResourceManager>, 2> resource_managers_;
  uint32_t max_requests_per_connection_ = 0;
  std::chrono::milliseconds idle_timeout_{std::chrono::hours(1)};
  mutable std::vector<WorkerLbState> lb_state_;
};
using ClusterConstSharedPtr = std::shared_ptr<const Cluster>;

} // namespace legate::upstream
