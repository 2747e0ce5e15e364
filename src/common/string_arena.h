#pragma once

// Append-only storage for many short strings: copies go back to back into large
// blocks that never move, so each costs its bytes and no allocation of its own,
// and the whole lot is freed as a few blocks (leaving no small holes in the heap
// between longer-lived objects). Not thread-safe; movable, not copyable.

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

namespace legate {

class StringArena {
public:
  explicit StringArena(size_t block_size = 64 * 1024) : block_size_(block_size) {}
  StringArena(StringArena&&) = default;
  StringArena& operator=(StringArena&&) = default;

  // A copy of s that lives as long as the arena.
  std::string_view store(std::string_view s);
  // Bytes held in blocks (used or not).
  size_t allocated() const { return allocated_; }

private:
  size_t block_size_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t used_ = 0; // in blocks_.back()
  std::vector<std::unique_ptr<char[]>> large_; // one string each
  size_t allocated_ = 0;
};

} // namespace legate
