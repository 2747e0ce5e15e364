#pragma once

// A hasher for tables keyed by std::string_view. abseil as packaged hashes a
// std::string_view through std::hash (murmur, a byte at a time); XXH3 is several
// times faster on the 20-120 byte keys of the source map and the stats name pool.
// Out of line, so that headers using it do not pull in xxhash.

#include <cstddef>
#include <string_view>

namespace legate {

struct StringViewHash {
  size_t operator()(std::string_view s) const;
};

} // namespace legate
