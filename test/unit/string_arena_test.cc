#include <string>
#include <vector>

#include "common/string_arena.h"
#include "gtest/gtest.h"

namespace legate {
namespace {

TEST(StringArena, CopiesStayValidAsTheArenaGrows) {
  StringArena arena(256);
  std::vector<std::pair<std::string, std::string_view>> stored;
  for (int i = 0; i < 500; ++i) {
    std::string s = "path." + std::to_string(i) + std::string(static_cast<size_t>(i % 37), 'x');
    stored.emplace_back(s, arena.store(s));
  }
  const std::string big(1000, 'b'); // over a quarter block: a block of its own
  const std::string_view big_copy = arena.store(big);
  const std::string_view after = arena.store("after");
  for (const auto& [original, copy] : stored) EXPECT_EQ(copy, original);
  EXPECT_EQ(big_copy, big);
  EXPECT_EQ(after, "after");
  EXPECT_TRUE(arena.store("").empty());
  EXPECT_GE(arena.allocated(), big.size() + 256);
}

TEST(StringArena, MovedArenaKeepsItsStrings) {
  StringArena a(64);
  const std::string_view v = a.store("kept across the move");
  StringArena b = std::move(a);
  EXPECT_EQ(v, "kept across the move");
  EXPECT_EQ(b.store("more"), "more");
}

} // namespace
} // namespace legate
