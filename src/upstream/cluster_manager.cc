#include "upstream/cluster_manager.h"

#include <algorithm>

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
  cm->store_ = &store;
  const auto& clusters = bootstrap.static_resources().clusters();
  for (int i = 0; i < clusters.size(); ++i) {
    const auto& proto = clusters[i];
    if (cm->by_name_.contains(proto.name())) {
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
    cm->by_name_.emplace((*cluster)->name(), cluster->get());
    cm->clusters_.push_back(std::move(*cluster));
  }
  std::sort(cm->clusters_.begin(), cm->clusters_.end(),
            [](const ClusterSharedPtr& a, const ClusterSharedPtr& b) {
              return a->name() < b->name();
            });
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

absl::Status ClusterManager::initialize(event::Dispatcher& main, std::function<void()> on_ready,
                                        std::chrono::milliseconds max_wait) {
  on_ready_ = std::move(on_ready);
  std::vector<std::pair<DnsDiscovery*, bool>> to_start;
  for (auto& cluster : clusters_) {
    const DnsClusterConfig* dns = cluster->dnsConfig();
    if (dns == nullptr) continue;
    auto resolver = DnsResolver::create(main, dns->resolver);
    if (!resolver.ok()) {
      return absl::InternalError("cluster '" + cluster->name() + "': " +
                                 std::string(resolver.status().message()));
    }
    discoveries_.push_back(
        std::make_unique<DnsDiscovery>(*cluster, *dns, main, std::move(*resolver)));
    to_start.emplace_back(discoveries_.back().get(), dns->wait_for_warm);
    if (dns->wait_for_warm) ++warming_;
  }
  for (auto& cluster : clusters_) {
    if (const auto* odst = cluster->originalDstConfig()) {
      cluster->setMainThreadPoster([&main](std::function<void()> f) { main.post(std::move(f)); });
      Cluster* c = cluster.get();
      const auto interval = odst->cleanup_interval;
      auto self = std::make_shared<event::Timer*>(nullptr); // the timer re-arms itself
      auto timer = main.createTimer([c, self, interval] {
        c->cleanupOriginalDstHosts();
        (*self)->enableTimer(interval);
      });
      *self = timer.get();
      timer->enableTimer(interval);
      cleanup_timers_.push_back(std::move(timer));
    }
    for (const auto& hc : cluster->healthChecks()) {
      health_checkers_.push_back(std::make_unique<HealthChecker>(*cluster, hc, main, *store_));
      health_checkers_.back()->start();
    }
    if (auto* od = cluster->outlierDetector()) od->start(main);
  }
  // Counted before any starts: a discovery may answer at once.
  const bool waits = warming_ > 0;
  if (waits) {
    warm_timer_ = main.createTimer([this] {
      warming_ = 0;
      onClusterWarm();
    });
    warm_timer_->enableTimer(max_wait);
  }
  for (auto [d, waited] : to_start) {
    d->start(waited ? std::function<void()>([this] { onClusterWarm(); }) : nullptr);
  }
  if (!waits && on_ready_) {
    auto cb = std::move(on_ready_);
    cb();
  }
  return absl::OkStatus();
}

void ClusterManager::onClusterWarm() {
  if (warming_ > 0) --warming_;
  if (warming_ == 0 && on_ready_) {
    if (warm_timer_) warm_timer_->disableTimer();
    auto cb = std::move(on_ready_);
    cb();
  }
}

} // namespace legate::upstream
