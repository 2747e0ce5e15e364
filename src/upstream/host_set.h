#pragma once

// Host sets by priority, and the immutable snapshot of them that workers
// balance over.
//
// Threading: a HostSnapshot is built on the main thread whenever membership or
// health changes and is never modified afterwards; workers hold it through a
// shared_ptr (see Cluster), so reading it takes no lock.

#include <cstdint>
#include <memory>
#include <vector>

#include "upstream/host.h"

namespace legate::upstream {

class HashTable; // consistent-hash lookup built for one HostList (hash_lb.h)

// One list a balancer picks from, with what balancers precompute for it.
struct HostList {
  std::vector<HostConstSharedPtr> hosts;
  uint64_t total_weight = 0;
  bool weighted = false; // some weights differ
  std::shared_ptr<const HashTable> hash_table; // RING_HASH and MAGLEV only
  void add(HostConstSharedPtr h);
};

// The hosts of one priority level.
struct HostSet {
  HostList all;
  HostList healthy;
  HostList degraded;
};

// Host counts of one priority level, the input to the priority load.
struct HostAvailability {
  size_t total = 0;
  size_t healthy = 0;
  size_t degraded = 0;
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
};

} // namespace legate::upstream
