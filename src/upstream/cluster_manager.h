#pragma once

// The clusters of a configuration, by name. Built on the main thread from
// static_resources.clusters, then read-only: workers look clusters up without
// locks.

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
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

  const Cluster* get(std::string_view name) const;
  const std::map<std::string, ClusterConstSharedPtr, std::less<>>& clusters() const {
    return clusters_;
  }

private:
  std::map<std::string, ClusterConstSharedPtr, std::less<>> clusters_;
};

// The index of the worker running on this thread (0..N-1), or N for the main
// thread; load balancers keep per-worker state by it.
uint32_t currentWorkerIndex();
void setCurrentWorkerIndex(uint32_t index);

} // namespace legate::upstream
