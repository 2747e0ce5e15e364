#include "common/string_arena.h"

#include <cstring>

namespace legate {

std::string_view StringArena::store(std::string_view s) {
  if (s.empty()) return {};
  if (s.size() > block_size_ / 4) {
    // A long string gets a block of its own; the current block stays in use.
    large_.push_back(std::make_unique<char[]>(s.size()));
    std::memcpy(large_.back().get(), s.data(), s.size());
    allocated_ += s.size();
    return {large_.back().get(), s.size()};
  }
  if (blocks_.empty() || used_ + s.size() > block_size_) {
    blocks_.push_back(std::make_unique<char[]>(block_size_));
    used_ = 0;
    allocated_ += block_size_;
  }
  char* at = blocks_.back().get() + used_;
  std::memcpy(at, s.data(), s.size());
  used_ += s.size();
  return {at, s.size()};
}

} // namespace legate
