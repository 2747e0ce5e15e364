#pragma once

// Host sets by priority, and the immutable snapshot of them that workers
// balance over.
//
// Threading: a HostSnapshot is built on the main thread whenever membership or
// health changes and is never modified afterwards; workers hold it through a
// shared_ptr (see Cluster), so reading it takes no lock.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "upstream/host.h"

namespace legate::upstream {

class HashTable; // consistent-hash lookup built for one HostList (hash_lb.h)

// One list a balancer picks from, with what balancers precompute for it.
struct HostList {
  std::vector<HostConstSharedPtr> hosts;
  uint64_t total_weight = 0;
  std::shared_ptr<const HashTable> hash_table; // RING_HASH and MAGLEV only
  uint32_t state_index = 0; // where each worker keeps its balancer state for this list
  bool weighted = false;    // some weights differ
  void add(HostConstSharedPtr h);
};

// The hosts of one locality of a priority level (locality-weighted balancing).
struct LocalityHosts {
  Locality locality;
  uint32_t weight = 0; // LocalityLbEndpoints.load_balancing_weight (unset: 0, no traffic)
  HostList all;
  HostList healthy;
  HostList degraded;
};

// Envoy's effective locality weights of a level, for its healthy or its
// degraded hosts: weight x min(1, overprovisioning x usable / total).
struct LocalityWeights {
  std::vector<double> effective; // by index into HostSet::localities
  double total = 0;              // 0: no locality is usable, balance over the level
  uint32_t state_index = 0;      // the workers' weighted round robin state over localities
};
double localityEffectiveWeight(uint32_t weight, size_t usable, size_t total,
                               uint32_t overprovisioning_factor);

// The hosts of one priority level.
struct HostSet {
  HostList all;
  HostList healthy;
  HostList degraded;
  // The level's localities and their weights, with locality_weighted_lb_config
  // only (null otherwise: a cluster is usually one level, and ten thousand
  // clusters are ten thousand of these).
  struct Localities {
    std::vector<LocalityHosts> hosts;
    LocalityWeights healthy;
    LocalityWeights degraded;
  };
  std::unique_ptr<Localities> localities;
};

// Host counts of one priority level, the input to the priority load.
struct HostAvailability {
  size_t total = 0;
  size_t healthy = 0;
  size_t degraded = 0;
  uint32_t state_count = 0; // balancer states a worker keeps (see HostList::state_index)
  // slow_start_config: until when some usable host is still ramping up.
  std::chrono::steady_clock::time_point slow_start_until{};
};

// Envoy's priority load: the percentage of traffic each level takes for its
// healthy and for its degraded hosts (together summing to 100), and which
// levels are in panic (balance over all their hosts whatever their health).
struct PriorityState {
  std::vector<uint32_t> healthy_load;
  std::vector<uint32_t> degraded_load;
  std::vector<bool> panic;
};

// overprovisioning_factor is in percent (Envoy's default 140);
// panic_threshold in percent (default 50; 0 disables panic).
PriorityState computePriorityState(const std::vector<HostAvailability>& levels,
                                   uint32_t overprovisioning_factor, double panic_threshold);

struct HostSnapshot {
  uint64_t version = 0;
  std::vector<HostSet> priorities;
  PriorityState state;
  size_t total = 0;
  size_t healthy = 0;
  size_t degraded = 0;
  uint32_t state_count = 0; // balancer states a worker keeps (see HostList::state_index)
  // slow_start_config: until when some usable host is still ramping up.
  std::chrono::steady_clock::time_point slow_start_until{};
  // ORIGINAL_DST clusters only (null otherwise): every host by its "ip:port".
  std::unique_ptr<std::unordered_map<std::string, HostConstSharedPtr>> by_address;
};

} // namespace legate::upstream
