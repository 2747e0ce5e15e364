#include <array>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"

namespace legate {
namespace {

// fastRandom feeds request ids, sampling and retry jitter: draws must not
// repeat, every bit must vary, and threads must not share a stream.
TEST(FastRandom, DrawsDoNotRepeatAndEveryBitVaries) {
  std::set<uint64_t> seen;
  std::array<int, 64> ones{};
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = fastRandom();
    EXPECT_TRUE(seen.insert(v).second) << "draw " << i << " repeated " << v;
    for (int b = 0; b < 64; ++b) ones[b] += static_cast<int>((v >> b) & 1);
  }
  // Each bit is set in about half of the draws: 10,000 +- 71 (one standard
  // deviation); 9,000-11,000 is over 14 deviations wide, so a fair generator
  // never fails it, and a stuck or biased bit always does.
  for (int b = 0; b < 64; ++b) {
    EXPECT_GT(ones[b], kDraws * 45 / 100) << "bit " << b;
    EXPECT_LT(ones[b], kDraws * 55 / 100) << "bit " << b;
  }
}

TEST(FastRandom, ThreadsDrawFromTheirOwnStreams) {
  constexpr int kThreads = 4;
  constexpr int kDraws = 1000;
  std::vector<std::vector<uint64_t>> draws(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&draws, t] {
      for (int i = 0; i < kDraws; ++i) draws[t].push_back(fastRandom());
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& d : draws) all.insert(d.begin(), d.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kDraws));
}

} // namespace
} // namespace legate
