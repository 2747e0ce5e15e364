#pragma once

// The clusters of a configuration, by name. Built on the main thread from
// static_resources.clusters; the set of clusters is then fixed, so workers
// look clusters up without locks. A cluster's hosts may change (on the main
// thread); hosts that leave have their pooled connections drained on every
// worker, through the dispatchers given to setWorkerDispatchers().

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "event/dispatcher.h"
#include "upstream/cluster.h"

namespace envoy::config::bootstrap::v3 {
class Bootstrap;
}

namespace legate::upstream {

class ClusterManager {
public:
  static absl::StatusOr<std::unique_ptr<ClusterManager>>
  create(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store,
         uint32_t workers);

  // Every request's route resolves its cluster here: one hash probe, so a
  // table of 10,000 clusters costs a request no more than one of 10.
  const Cluster* get(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  // Sorted by name.
  const std::vector<ClusterSharedPtr>& clusters() const { return clusters_; }

  // Main thread, once the workers run: where to post pool drains.
  void setWorkerDispatchers(std::vector<event::Dispatcher*> workers);

  // Main thread, after create() (not in --mode validate): starts discovery
  // (DNS resolution on `main`), active health checks and outlier detection. on_ready runs once every cluster that waits
  // for warming (wait_for_warm_on_init, default true) has its first answer
  // or failure, or after `max_wait` at the latest; at once if none waits.
  absl::Status initialize(event::Dispatcher& main, std::function<void()> on_ready,
                          std::chrono::milliseconds max_wait = std::chrono::seconds(15));

private:
  void onHostsRemoved(std::vector<HostConstSharedPtr> hosts);

  void onClusterWarm();

  std::vector<ClusterSharedPtr> clusters_;
  absl::flat_hash_map<std::string_view, Cluster*> by_name_; // keys view each cluster's name()
  std::vector<event::Dispatcher*> workers_;
  // Declared after clusters_: destroyed first (they update clusters).
  std::vector<std::unique_ptr<DnsDiscovery>> discoveries_;
  std::vector<std::unique_ptr<HealthChecker>> health_checkers_;
  stats::Store* store_ = nullptr;
  std::function<void()> on_ready_;
  size_t warming_ = 0;
  event::TimerPtr warm_timer_;
  std::vector<event::TimerPtr> cleanup_timers_; // ORIGINAL_DST clusters' host sweeps
};

// The index of the worker running on this thread (0..N-1), or N for the main
// thread; load balancers keep per-worker state by it.
uint32_t currentWorkerIndex();
void setCurrentWorkerIndex(uint32_t index);

} // namespace legate::upstream
