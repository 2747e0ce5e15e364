#pragma once

// Active health checking (Envoy's cluster.health_checks): HTTP/1.1 and TCP.
//
// Threading: everything runs on the main dispatcher. A HealthChecker keeps one
// session per host of its cluster; each session probes its host on its own
// timer and, when the host crosses a threshold, sets or clears the host's
// FAILED_ACTIVE_HC flag and asks the cluster to rebuild its snapshot
// (Cluster::refreshHealth), which is how workers learn of it.
//
// Semantics (Envoy's): a host with health checking starts failed and pending;
// its first successful check makes it healthy at once, later it takes
// healthy_threshold successes in a row (unhealthy_threshold failures the other
// way). A response carrying x-envoy-immediate-health-check-fail fails the host
// at once. Intervals: no_traffic_interval until the cluster has seen traffic,
// interval / unhealthy_interval after, the edge intervals right after a
// change, plus jitter.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "event/dispatcher.h"
#include "stats/stats.h"
#include "upstream/host.h"

namespace envoy::config::core::v3 {
class HealthCheck;
}

namespace legate::upstream {

class Cluster;

struct HealthCheckConfig {
  enum class Kind { Http, Tcp };
  Kind kind = Kind::Http;
  std::chrono::milliseconds timeout{1000};
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds initial_jitter{0};
  std::chrono::milliseconds interval_jitter{0};
  uint32_t interval_jitter_percent = 0;
  uint32_t unhealthy_threshold = 1;
  uint32_t healthy_threshold = 1;
  std::chrono::milliseconds no_traffic_interval{60000};
  std::chrono::milliseconds no_traffic_healthy_interval{60000};
  std::chrono::milliseconds unhealthy_interval{5000};
  std::chrono::milliseconds unhealthy_edge_interval{5000};
  std::chrono::milliseconds healthy_edge_interval{5000};
  bool reuse_connection = true;
  // HTTP
  std::string host; // empty: the cluster's name
  std::string path;
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers_to_add;
  std::vector<std::string> headers_to_remove;
  std::vector<std::pair<int64_t, int64_t>> expected_statuses; // [start, end)
  // TCP: bytes to send; blocks to find in the reply, in order.
  std::string send;
  std::vector<std::string> receive;

  // Parses and validates; errors start with `path` (the health_checks[i] path).
  static absl::StatusOr<std::shared_ptr<const HealthCheckConfig>>
  create(const envoy::config::core::v3::HealthCheck& proto, const std::string& path);
  bool expectedStatus(uint64_t status) const;
};

// cluster.<name>.health_check.*
struct HealthCheckStats {
  explicit HealthCheckStats(stats::Scope scope);
  stats::Counter& attempt;
  stats::Counter& success;
  stats::Counter& failure;
  stats::Counter& network_failure;
  stats::Gauge& healthy;
};

class HealthChecker {
public:
  HealthChecker(Cluster& cluster, std::shared_ptr<const HealthCheckConfig> config,
                event::Dispatcher& main, stats::Store& store);
  ~HealthChecker();

  // Marks every host failed and pending, and starts probing.
  void start();

private:
  class Session;
  friend class Session;

  // Sessions for hosts that joined, none for hosts that left.
  void syncHosts();
  std::chrono::milliseconds nextInterval(const Session& s, bool changed) const;
  bool clusterHadTraffic() const;
  void onHealthChanged();

  Cluster& cluster_;
  std::shared_ptr<const HealthCheckConfig> config_;
  event::Dispatcher& main_;
  HealthCheckStats stats_;
  std::map<const Host*, std::unique_ptr<Session>> sessions_;
  uint64_t seen_membership_changes_ = 0;
  event::TimerPtr sync_timer_;
  mutable std::minstd_rand rng_{randomSeed()};
};

} // namespace legate::upstream
