#pragma once

// envoy.filters.network.tcp_proxy: configuration, validated once on the main
// thread and shared immutably by every connection's filter.

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accesslog/access_log.h"
#include "network/connection_stats.h"
#include "stats/stats.h"
#include "upstream/cluster_manager.h"

namespace envoy::extensions::filters::network::tcp_proxy::v3 {
class TcpProxy;
}

namespace legate::extensions::tcp_proxy {

// Envoy's tcp.<stat_prefix>.* stats.
struct TcpProxyStats {
  explicit TcpProxyStats(stats::Scope scope);
  stats::Counter& downstream_cx_total;
  stats::Counter& downstream_cx_no_route;
  stats::Counter& downstream_cx_tx_bytes_total;
  stats::Gauge& downstream_cx_tx_bytes_buffered;
  stats::Counter& downstream_cx_rx_bytes_total;
  stats::Gauge& downstream_cx_rx_bytes_buffered;
  // The four above, as every downstream connection's byte counters.
  network::ConnectionStats connection{&downstream_cx_rx_bytes_total,
                                      &downstream_cx_rx_bytes_buffered,
                                      &downstream_cx_tx_bytes_total,
                                      &downstream_cx_tx_bytes_buffered};
  stats::Counter& downstream_flow_control_paused_reading_total;
  stats::Counter& downstream_flow_control_resumed_reading_total;
  stats::Counter& idle_timeout;
  stats::Counter& max_downstream_connection_duration;
  stats::Counter& upstream_flush_total;
  stats::Gauge& upstream_flush_active;
};

class TcpProxyConfig {
public:
  static absl::StatusOr<std::shared_ptr<const TcpProxyConfig>>
  create(const envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy& proto,
         const std::string& path, const upstream::ClusterManager& cm, stats::Store& store,
         std::string filter_chain_name = "");

  // The cluster name for a new connection (weighted_clusters picks by weight).
  const std::string& pickCluster() const;
  const upstream::ClusterManager& clusterManager() const { return cm_; }
  TcpProxyStats& stats() const { return *stats_; }
  uint32_t maxConnectAttempts() const { return max_connect_attempts_; }
  std::chrono::milliseconds idleTimeout() const { return idle_timeout_; } // 0 = none
  std::chrono::milliseconds maxDownstreamConnectionDuration() const { return max_duration_; }
  const std::vector<accesslog::AccessLogSharedPtr>& accessLogs() const { return access_logs_; }
  // The listener's chain this filter is in (%FILTER_CHAIN_NAME%).
  const std::string& filterChainName() const { return filter_chain_name_; }

private:
  explicit TcpProxyConfig(const upstream::ClusterManager& cm) : cm_(cm) {}

  const upstream::ClusterManager& cm_;
  std::unique_ptr<TcpProxyStats> stats_;
  struct WeightedCluster {
    std::string name;
    uint64_t cumulative_weight;
  };
  std::vector<WeightedCluster> clusters_;
  uint64_t total_weight_ = 0;
  uint32_t max_connect_attempts_ = 1;
  std::chrono::milliseconds idle_timeout_{std::chrono::hours(1)};
  std::chrono::milliseconds max_duration_{0};
  std::vector<accesslog::AccessLogSharedPtr> access_logs_;
  std::string filter_chain_name_;
};
using TcpProxyConfigConstSharedPtr = std::shared_ptr<const TcpProxyConfig>;

} // namespace legate::extensions::tcp_proxy
