#pragma once

// Envoy's /stats renderings of a Store: plain text and JSON.
//
// Threading: rendering reads the Store through its locked forEach* snapshots, so it
// is safe from any thread, but is meant for the main thread (admin server). The
// values are read with relaxed atomics: a rendering is not an atomic snapshot
// across stats, just as in Envoy.

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "stats/stats.h"

namespace re2 {
class RE2;
}

namespace legate::stats {

// Which stats an exposition includes: Envoy's `filter=REGEX` (RE2, partial match on
// the full stat name) and `usedonly` (stats ever written since start, even if
// now 0: see "Used" in stats.h; histograms with at least one sample). Cheap to copy (the regex is shared).
class StatsQuery {
public:
  StatsQuery() = default; // everything
  // InvalidArgument, naming the pattern and RE2's complaint, if filter does not compile.
  // An empty filter matches every name.
  static absl::StatusOr<StatsQuery> create(std::string_view filter, bool used_only);

  bool matches(std::string_view name) const;
  bool usedOnly() const { return used_only_; }
  // Whether a counter or gauge is in the exposition (name and usedonly).
  template <class Stat> bool selects(const Stat& stat) const {
    return (!used_only_ || stat.used()) && matches(stat.name());
  }

private:
  std::shared_ptr<const re2::RE2> regex_;
  bool used_only_ = false;
};

// Envoy's summary quantiles, in percent.
inline constexpr std::array<double, 10> kSupportedQuantiles = {0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100};

// "P0(a,a) P25(b,b) ... P100(j,j)" or "No recorded values". Envoy prints
// (interval,cumulative) pairs; legate has no flush intervals yet, so both halves
// are the cumulative value.
std::string histogramSummary(const Histogram::Snapshot& snapshot);

// `name: value` lines for counters and gauges merged in name order, then one
// `name: <summary>` line per histogram in name order.
std::string renderText(const Store& store, const StatsQuery& query);

// {"stats":[{"name":..,"value":..},...,{"histograms":{"supported_quantiles":[...],
//  "computed_quantiles":[{"name":..,"values":[{"interval":..,"cumulative":..},...]}]}}]}
// The histograms element is present only when some histogram is selected.
std::string renderJson(const Store& store, const StatsQuery& query);

} // namespace legate::stats
