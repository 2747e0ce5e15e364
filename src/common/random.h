#pragma once

// Seeds for the proxy's many small random sources (load balancing, jitter,
// sampling, request ids). std::random_device is slow to construct (on some
// virtual machines a single construction costs tens of microseconds), and a
// STATIC cluster alone holds several engines, so constructing one per engine
// made start-up with thousands of clusters spend a quarter of its time there.
// Instead each thread draws entropy from the OS once and hands out
// well-mixed seeds from it. Nothing secret may come from these.

#include <cstdint>

namespace legate {

// A fresh 64-bit seed: cheap, thread-safe, never repeated within a thread.
uint64_t randomSeed();

namespace detail {
// This thread's xoshiro256** state. Zero-initialised, so reading it needs no
// guard; all-zero is the one state xoshiro must avoid, and means "not seeded".
inline thread_local uint64_t fast_random_state[4];
void seedFastRandom();
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
} // namespace detail

// The next draw of this thread's xoshiro256** generator (Blackman and Vigna),
// seeded from randomSeed() on the thread's first draw: statistically strong, a
// dozen instructions and 32 bytes of state. For the request path's draws
// (request ids, sampling and runtime fractions, retry jitter), which need
// uniqueness and spread, not unpredictability.
inline uint64_t fastRandom() {
  uint64_t* s = detail::fast_random_state;
  if ((s[0] | s[1] | s[2] | s[3]) == 0) [[unlikely]] detail::seedFastRandom();
  const uint64_t result = detail::rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = detail::rotl(s[3], 45);
  return result;
}

} // namespace legate
