#pragma once

// Stat names, stored as two pieces from one process-wide pool of strings.
//
// A configuration with ten thousand clusters has some 640,000 stats whose names are
// "cluster.<name>." followed by one of a few dozen fixed suffixes. Storing each
// name whole costs ~40 bytes a stat; storing it as (prefix, suffix) ids into a pool
// where each distinct piece lives once costs 7 bytes, and the pool holds ~10,000
// prefixes and ~70 suffixes. A name is split at its last '.': the prefix is
// everything up to and including it, the suffix the rest ("" for neither).
//
// Threading: interning takes the pool's lock (configuration time only). Reading a
// piece back is lock-free: the pool's storage never moves, and an id is only ever
// obtained after its entry was written (through the lock that created it, or
// whatever made the stat holding it visible to the reader).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "common/string_view_hash.h"
#include "common/string_arena.h"

namespace legate::stats {

class NamePool {
public:
  // Ids fit in 24 bits (a stat stores its suffix id in three bytes).
  static constexpr uint32_t kMaxIds = 1u << 24;
  static constexpr uint32_t kNotFound = UINT32_MAX;
  // Id 0 is the empty string.
  static NamePool& get();

  // The id of s, adding it if new; kNotFound once the pool holds kMaxIds strings.
  uint32_t intern(std::string_view s);
  std::string_view view(uint32_t id) const {
    const Entry& e = chunks_[id >> kChunkBits].load(std::memory_order_acquire)[id & kChunkMask];
    return {e.data, e.size};
  }
private:
  NamePool();
  struct Entry {
    const char* data;
    uint32_t size;
  };
  static constexpr uint32_t kChunkBits = 12;
  static constexpr uint32_t kChunkMask = (1u << kChunkBits) - 1;
  static constexpr uint32_t kMaxChunks = kMaxIds >> kChunkBits;

  mutable std::mutex mu_;
  absl::flat_hash_map<std::string_view, uint32_t, StringViewHash> ids_; // views into bytes_
  uint32_t next_ = 0;
  std::unique_ptr<std::atomic<Entry*>[]> chunks_;
  std::vector<std::unique_ptr<Entry[]>> entry_blocks_;
  StringArena bytes_{16 * 1024};
};

// prefix + name as one string (abseil's StrCat as packaged takes no std::string_view).
std::string joinName(std::string_view prefix, std::string_view name);

// A name as (prefix id, suffix id) into the NamePool. Counters and gauges store it
// packed in 7 bytes (stats.h); this is the value form, for hashing and ordering.
struct StatName {
  uint32_t prefix = 0;
  uint32_t suffix = 0;

  // Splits name at its last '.' and interns both pieces; false if the pool is full.
  static bool intern(std::string_view name, StatName& out);
  // The same for the name prefix + name, composing it only when the split point
  // is not at their junction.
  static bool intern(std::string_view prefix, std::string_view name, StatName& out);
  // The two pieces of name, as intern() would split it.
  static std::pair<std::string_view, std::string_view> split(std::string_view name);

  std::string_view prefixView() const { return NamePool::get().view(prefix); }
  std::string_view suffixView() const { return NamePool::get().view(suffix); }
  std::string str() const;

  bool operator==(const StatName& o) const { return prefix == o.prefix && suffix == o.suffix; }
  // The composed names' byte order, without composing them.
  static bool less(const StatName& a, const StatName& b);
  size_t hash() const { return absl::Hash<std::pair<uint32_t, uint32_t>>{}({prefix, suffix}); }
};

} // namespace legate::stats
