#pragma once

// Consistent-hash lookup tables for RING_HASH and MAGLEV, built once per host
// list on the main thread (in the cluster's snapshot) and read by workers.
//
// Hosts are keyed by their address ("ip:port"), hashed with xxHash64, so the
// same hosts give the same table in every process.

#include <cstdint>
#include <utility>
#include <vector>

#include "upstream/host_set.h"

namespace legate::upstream {

class HashTable {
public:
  virtual ~HashTable() = default;
  // The host for a request hash. The list the table was built from is non-empty.
  virtual const HostConstSharedPtr& pick(uint64_t hash) const = 0;
};

// Envoy's ketama-style ring: each host gets ring entries in proportion to its
// weight, at least enough that the lightest host has about min_ring_size x its
// share, at most max_ring_size in all. A request takes the first entry at or
// after its hash (wrapping).
class RingHashTable : public HashTable {
public:
  RingHashTable(const std::vector<HostConstSharedPtr>& hosts, uint64_t min_ring_size,
                uint64_t max_ring_size);
  const HostConstSharedPtr& pick(uint64_t hash) const override;
  size_t size() const { return ring_.size(); }

private:
  std::vector<HostConstSharedPtr> hosts_;
  std::vector<std::pair<uint64_t, uint32_t>> ring_; // (hash, host index), sorted
};

// Maglev (Eisenbud et al., NSDI 2016): a table of table_size (prime) slots
// filled by each host's permutation (offset, skip from two hashes of its key)
// in turns, heavier hosts taking turns more often; a request takes slot
// hash % table_size.
class MaglevTable : public HashTable {
public:
  MaglevTable(const std::vector<HostConstSharedPtr>& hosts, uint64_t table_size);
  const HostConstSharedPtr& pick(uint64_t hash) const override;

private:
  std::vector<HostConstSharedPtr> hosts_;
  std::vector<uint32_t> table_; // host index per slot
};

} // namespace legate::upstream
