#include "common/string_view_hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace legate {

size_t StringViewHash::operator()(std::string_view s) const {
  return static_cast<size_t>(XXH3_64bits(s.data(), s.size()));
}

} // namespace legate
