#include "common/random.h"

#include <random>

namespace legate {

uint64_t randomSeed() {
  // splitmix64 (Steele, Lea and Flood) over a per-thread counter whose start
  // comes from the OS once per thread.
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void detail::seedFastRandom() {
  uint64_t* s = fast_random_state;
  for (int i = 0; i < 4; ++i) s[i] = randomSeed();
  if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
}

} // namespace legate
