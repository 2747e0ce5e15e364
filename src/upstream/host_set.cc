#include "upstream/host_set.h"

#include <algorithm>

namespace legate::upstream {

void HostList::add(HostConstSharedPtr h) {
  total_weight += h->weight();
  if (!hosts.empty() && h->weight() != hosts.front()->weight()) {
    weighted = true;
  }
  hosts.push_back(std::move(h));
}

double localityEffectiveWeight(uint32_t weight, size_t usable, size_t total,
                               uint32_t overprovisioning_factor) {
  if (total == 0 || weight == 0) return 0;
  const double availability =
      static_cast<double>(usable) * overprovisioning_factor / 100.0 / static_cast<double>(total);
  return weight * std::min(1.0, availability);
}

namespace {

// A level's availability in percent: its share of usable hosts, scaled up by
// the overprovisioning factor and capped at 100.
uint32_t availability(size_t usable, size_t total, uint32_t overprovisioning_factor) {
  if (total == 0) return 0;
  const uint64_t a = static_cast<uint64_t>(usable) * overprovisioning_factor / total;
  return static_cast<uint32_t>(std::min<uint64_t>(100, a));
}

// Hands out `budget` percent to the levels in priority order, each taking its
// availability normalized by the total; returns the first level with any
// availability (-1 if none) and what is left of the budget.
std::pair<int, uint32_t> distribute(std::vector<uint32_t>& load, const std::vector<uint32_t>& avail,
                                    uint32_t budget, uint32_t normalized_total) {
  int first = -1;
  for (size_t i = 0; i < avail.size(); ++i) {
    if (first < 0 && avail[i] > 0) first = static_cast<int>(i);
    load[i] = std::min<uint32_t>(budget, avail[i] * 100 / normalized_total);
    budget -= load[i];
  }
  return {first, budget};
}

} // namespace

PriorityState computePriorityState(const std::vector<HostAvailability>& levels,
                                   uint32_t overprovisioning_factor, double panic_threshold) {
  const size_t n = std::max<size_t>(levels.size(), 1);
  PriorityState st;
  st.healthy_load.assign(n, 0);
  st.degraded_load.assign(n, 0);
  st.panic.assign(n, false);
  std::vector<uint32_t> healthy_avail(n, 0), degraded_avail(n, 0);
  uint32_t sum = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    healthy_avail[i] = availability(levels[i].healthy, levels[i].total, overprovisioning_factor);
    degraded_avail[i] = availability(levels[i].degraded, levels[i].total, overprovisioning_factor);
    sum += healthy_avail[i] + degraded_avail[i];
  }
  const uint32_t normalized_total = std::min<uint32_t>(100, sum);
  if (normalized_total == 0) {
    // Nothing usable anywhere: everything to P0, which panics (unless
    // panic is disabled, when P0 then has nothing to offer).
    st.healthy_load[0] = 100;
    st.panic[0] = panic_threshold > 0;
    return st;
  }
  const auto [first_healthy, left] = distribute(st.healthy_load, healthy_avail, 100,
                                                normalized_total);
  const auto [first_degraded, rest] = distribute(st.degraded_load, degraded_avail, left,
                                                 normalized_total);
  if (rest != 0) {
    // Rounding leftovers go to the first level that can take them.
    if (first_healthy >= 0) {
      st.healthy_load[first_healthy] += rest;
    } else {
      st.degraded_load[first_degraded] += rest;
    }
  }
  // A level panics when too few of its hosts are usable, but never while the
  // levels together are fully available (failover covers it).
  if (normalized_total < 100) {
    for (size_t i = 0; i < levels.size(); ++i) {
      const auto& l = levels[i];
      const double usable_percent =
          l.total == 0 ? 0.0 : 100.0 * static_cast<double>(l.healthy + l.degraded) / l.total;
      st.panic[i] = usable_percent < panic_threshold;
    }
  }
  return st;
}

} // namespace legate::upstream
