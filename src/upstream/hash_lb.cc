#include "upstream/hash_lb.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/hash.h"

namespace legate::upstream {

RingHashTable::RingHashTable(const std::vector<HostConstSharedPtr>& hosts, uint64_t min_ring_size,
                             uint64_t max_ring_size)
    : hosts_(hosts) {
  double total = 0;
  for (const auto& h : hosts_) total += h->weight();
  double min_share = 1.0;
  for (const auto& h : hosts_) min_share = std::min(min_share, h->weight() / total);
  // Entries per unit of share: enough for the lightest host to get about
  // min_ring_size x its share, capped by max_ring_size.
  const double scale = std::min(std::ceil(min_share * static_cast<double>(min_ring_size)) / min_share,
                                static_cast<double>(max_ring_size));
  ring_.reserve(static_cast<size_t>(scale) + hosts_.size());
  double target = 0;
  uint64_t placed = 0;
  for (uint32_t i = 0; i < hosts_.size(); ++i) {
    const std::string key = hosts_[i]->address().asString() + "_";
    target += scale * (hosts_[i]->weight() / total);
    for (uint64_t n = 0; static_cast<double>(placed) < target; ++n, ++placed) {
      ring_.emplace_back(xxHash64(key + std::to_string(n)), i);
    }
  }
  std::sort(ring_.begin(), ring_.end());
}

const HostConstSharedPtr& RingHashTable::pick(uint64_t hash) const {
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(hash, uint32_t{0}));
  if (it == ring_.end()) it = ring_.begin();
  return hosts_[it->second];
}

MaglevTable::MaglevTable(const std::vector<HostConstSharedPtr>& hosts, uint64_t table_size)
    : hosts_(hosts), table_(table_size, UINT32_MAX) {
  struct Entry {
    uint64_t offset, skip, next = 0;
    double weight, target = 0;
  };
  double max_weight = 0;
  for (const auto& h : hosts_) max_weight = std::max<double>(max_weight, h->weight());
  std::vector<Entry> entries;
  for (const auto& h : hosts_) {
    const std::string key = h->address().asString();
    entries.push_back({xxHash64(key, 0) % table_size, xxHash64(key, 1) % (table_size - 1) + 1, 0,
                       h->weight() / max_weight});
  }
  uint64_t filled = 0;
  for (uint64_t round = 0; filled < table_size; ++round) {
    for (uint32_t i = 0; i < entries.size() && filled < table_size; ++i) {
      Entry& e = entries[i];
      // A host of weight w takes a turn in a fraction w of the rounds.
      if (static_cast<double>(round) * e.weight < e.target) continue;
      e.target += 1.0;
      uint64_t slot = (e.offset + e.skip * e.next) % table_size;
      while (table_[slot] != UINT32_MAX) {
        ++e.next;
        slot = (e.offset + e.skip * e.next) % table_size;
      }
      table_[slot] = i;
      ++e.next;
      ++filled;
    }
  }
}

const HostConstSharedPtr& MaglevTable::pick(uint64_t hash) const {
  return hosts_[table_[hash % table_.size()]];
}

} // namespace legate::upstream
