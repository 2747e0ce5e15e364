#pragma once

// Counters per HTTP status code, named <prefix><code> (Envoy's
// cluster.<name>.upstream_rq_200), created on a code's first use so that a cluster
// pays only for the codes it sees.
//
// Threading: inc() from any thread. The first use of a code takes the Store's lock
// once; after that it is a relaxed atomic load and add. Lives as long as its Store.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "stats/stats.h"

namespace legate::stats {

class StatusCodeCounters {
public:
  // Named prefix + stem + code; stem is a string literal ("upstream_rq_"). The
  // prefix is kept as its name pool id (a cluster's block interned it already).
  StatusCodeCounters(Store& store, std::string_view prefix, const char* stem);
  ~StatusCodeCounters();
  StatusCodeCounters(const StatusCodeCounters&) = delete;
  StatusCodeCounters& operator=(const StatusCodeCounters&) = delete;

  // Codes outside 100..599 are not counted (the codecs refuse them anyway).
  void inc(uint32_t code);

private:
  static constexpr uint32_t kMin = 100, kMax = 599;
  using Table = std::array<std::atomic<Counter*>, kMax - kMin + 1>;

  Store& store_;
  const char* const stem_;
  const uint32_t prefix_; // name pool id
  // Allocated on the first inc() (a cluster that never answers costs nothing).
  std::atomic<Table*> table_{nullptr};
};

} // namespace legate::stats
