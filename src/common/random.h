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

} // namespace legate
