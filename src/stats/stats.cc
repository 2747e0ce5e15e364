#include "stats/stats.h"

#include <algorithm>

namespace legate::stats {

void Histogram::record(uint64_t value) {
  const double v = static_cast<double>(value);
  size_t i = std::lower_bound(kBounds.begin(), kBounds.end(), v) - kBounds.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  uint64_t running = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // Count from the buckets rather than count_, so that a record() racing with this
  // snapshot cannot make the total smaller than the last cumulative bucket.
  s.count = running + buckets_[kBounds.size()].load(std::memory_order_relaxed);
  s.sum = static_cast<double>(sum_.load(std::memory_order_relaxed));
  return s;
}

double Histogram::Snapshot::quantile(double q) const {
  if (count == 0) {
    return 0;
  }
  const double rank = q * static_cast<double>(count);
  uint64_t prev_count = 0;
  double prev_bound = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    // Skip leading empty buckets so that P0 lands in the first bucket with a sample.
    if (cumulative[i] > 0 && static_cast<double>(cumulative[i]) >= rank) {
      const uint64_t in_bucket = cumulative[i] - prev_count; // > 0 by the test above
      const double frac = (rank - static_cast<double>(prev_count)) / static_cast<double>(in_bucket);
      return prev_bound + frac * (kBounds[i] - prev_bound);
    }
    prev_count = cumulative[i];
    prev_bound = kBounds[i];
  }
  return kBounds.back();
}

namespace {
template <class T, class Map, class... Args>
T& findOrCreate(std::mutex& mu, Map& map, std::string_view name, Args&&... args) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = map.find(name);
  if (it == map.end()) {
    it = map.emplace(std::string(name),
                     std::make_unique<T>(std::string(name), std::forward<Args>(args)...))
             .first;
  }
  return *it->second;
}
} // namespace

Counter& Store::counter(std::string_view name) { return findOrCreate<Counter>(mu_, counters_, name); }
Gauge& Store::gauge(std::string_view name) { return findOrCreate<Gauge>(mu_, gauges_, name); }
Histogram& Store::histogram(std::string_view name, Histogram::Unit unit) {
  return findOrCreate<Histogram>(mu_, histograms_, name, unit);
}

void Store::forEachCounter(const std::function<void(const Counter&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [_, c] : counters_) fn(*c);
}
void Store::forEachGauge(const std::function<void(const Gauge&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [_, g] : gauges_) fn(*g);
}
void Store::forEachHistogram(const std::function<void(const Histogram&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [_, h] : histograms_) fn(*h);
}

void Store::resetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [_, c] : counters_) c->reset();
}

} // namespace legate::stats
