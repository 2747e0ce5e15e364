#include "stats/stats.h"

#include <algorithm>

#include "stats/sink.h"
#include "stats/tag_extractor.h"

namespace legate::stats {

const std::shared_ptr<const Histogram::Bounds>& Histogram::defaultBounds() {
  static const auto* bounds = new std::shared_ptr<const Bounds>(std::make_shared<const Bounds>(
      Bounds{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
             600000, 1800000, 3600000}));
  return *bounds;
}

Histogram::Histogram(std::string name, Unit unit, std::shared_ptr<const Bounds> bounds)
    : name_(std::move(name)), unit_(unit), bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_->size() + 1]()) {}

void Histogram::record(uint64_t value) {
  const double v = static_cast<double>(value);
  const size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  if (SampleQueue* q = samples_.load(std::memory_order_acquire)) q->push(*this, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_->size());
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_->size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count comes from the buckets, so that a record() racing with this snapshot
  // cannot make the total smaller than the last cumulative bucket.
  s.count = running + buckets_[bounds_->size()].load(std::memory_order_relaxed);
  s.sum = static_cast<double>(sum_.load(std::memory_order_relaxed));
  return s;
}

double Histogram::Snapshot::quantile(double q) const {
  if (count == 0) {
    return 0;
  }
  const Bounds& b = *bounds;
  const double rank = q * static_cast<double>(count);
  uint64_t prev_count = 0;
  double prev_bound = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    // Skip leading empty buckets so that P0 lands in the first bucket with a sample.
    if (cumulative[i] > 0 && static_cast<double>(cumulative[i]) >= rank) {
      const uint64_t in_bucket = cumulative[i] - prev_count; // > 0 by the test above
      const double frac = (rank - static_cast<double>(prev_count)) / static_cast<double>(in_bucket);
      return prev_bound + frac * (b[i] - prev_bound);
    }
    prev_count = cumulative[i];
    prev_bound = b[i];
  }
  return b.empty() ? 0 : b.back();
}

Store::Store() : tags_(TagProducer::defaultProducer()) {}
Store::~Store() = default;

void Store::configure(StoreConfig config) {
  std::lock_guard<std::mutex> lock(mu_);
  config_ = std::move(config);
  tags_ = config_.tags != nullptr ? config_.tags : TagProducer::defaultProducer();
}

bool Store::accepted(std::string_view name) const { return !config_.accept || config_.accept(name); }

namespace {
// Finds name in map or creates it with make(name); the key views the stat's name.
template <class T, class Map, class Make>
T& findOrCreate(Map& map, std::string_view name, Make make) {
  auto it = map.find(name);
  if (it == map.end()) {
    std::unique_ptr<T> stat = make(std::string(name));
    const std::string_view key = stat->name();
    it = map.emplace(key, std::move(stat)).first;
  }
  return *it->second;
}
} // namespace

Counter& Store::counter(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepted(name)) return rejected_counter_;
  return findOrCreate<Counter>(counters_, name,
                               [](std::string n) { return std::make_unique<Counter>(std::move(n)); });
}

Gauge& Store::gauge(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepted(name)) return rejected_gauge_;
  return findOrCreate<Gauge>(gauges_, name,
                             [](std::string n) { return std::make_unique<Gauge>(std::move(n)); });
}

Histogram& Store::histogram(std::string_view name, Histogram::Unit unit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!accepted(name)) return rejected_histogram_;
  return findOrCreate<Histogram>(histograms_, name, [&](std::string n) {
    std::shared_ptr<const Histogram::Bounds> bounds = Histogram::defaultBounds();
    for (const auto& [match, b] : config_.histogram_buckets) {
      if (match(n)) {
        bounds = b;
        break;
      }
    }
    auto h = std::make_unique<Histogram>(std::move(n), unit, std::move(bounds));
    h->samples_.store(samples_, std::memory_order_release);
    return h;
  });
}

void Store::setSampleQueue(std::shared_ptr<SampleQueue> queue) {
  std::lock_guard<std::mutex> lock(mu_);
  samples_ = queue.get();
  if (queue != nullptr) sample_queues_.push_back(std::move(queue));
  for (auto& [_, h] : histograms_) h->samples_.store(samples_, std::memory_order_release);
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
