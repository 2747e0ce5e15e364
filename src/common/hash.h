#pragma once

// xxHash64 (the XX_HASH of Envoy's ring hash and hash policies), header-only.

#include <cstdint>
#include <string_view>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace legate {

inline uint64_t xxHash64(std::string_view data, uint64_t seed = 0) {
  return XXH64(data.data(), data.size(), seed);
}

} // namespace legate
