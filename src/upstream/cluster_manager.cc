#include "upstream/cluster_manager.h"

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "upstream/http_conn_pool.h"

namespace legate::upstream {

namespace {
thread_local uint32_t tls_worker_index = 0;
}

uint32_t currentWorkerIndex() { return tls_worker_index; }
void setCurrentWorkerIndex(uint32_t index) { tls_worker_index = index; }

absl::StatusOr<std::unique_ptr<ClusterManager>>
ClusterManager::create(const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                       stats::Store& store, uint32_t workers) {
  auto cm = std::make_unique<ClusterManager>();
  const auto& clusters = bootstrap.static_resources().clusters();
  for (int i = 0; i < clusters.size(); ++i) {
    const auto& proto = clusters[i];
    if (cm->clusters_.count(proto.name()) != 0) {
      return absl::InvalidArgumentError("static_resources.clusters[" + std::to_string(i) +
                                        "].name: duplicate cluster name '" + proto.name() + "'");
    }
    auto cluster = Cluster::create(proto, store, workers,
                                   "static_resources.clusters[" + std::to_string(i) + "]");
    if (!cluster.ok()) {
      return cluster.status();
    }
    ClusterManager* self = cm.get();
    (*cluster)->setHostsRemovedCallback(
        [self](std::vector<HostConstSharedPtr> hosts) { self->onHostsRemoved(std::move(hosts)); });
    cm->clusters_.emplace(proto.name(), std::move(*cluster));
  }
  store.gauge("cluster_manager.active_clusters").set(static_cast<int64_t>(cm->clusters_.size()));
  store.counter("cluster_manager.cluster_added").inc(cm->clusters_.size());
  return cm;
}

void ClusterManager::setWorkerDispatchers(std::vector<event::Dispatcher*> workers) {
  workers_ = std::move(workers);
}

void ClusterManager::onHostsRemoved(std::vector<HostConstSharedPtr> hosts) {
  // The hosts travel with the posts, so they outlive every worker's drain.
  auto shared = std::make_shared<const std::vector<HostConstSharedPtr>>(std::move(hosts));
  for (auto* d : workers_) {
    d->post([shared] {
      if (auto* registry = PoolRegistry::existingForThread()) {
        registry->drainHosts(*shared);
      }
    });
  }
}

const Cluster* ClusterManager::get(std::string_view name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

} // namespace legate::upstream
