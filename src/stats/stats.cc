#include "stats/stats.h"

#include <algorithm>
#include <cstring>

#include "common/logger.h"
#include "stats/sink.h"
#include "stats/tag_extractor.h"

namespace legate::stats {

const std::shared_ptr<const Histogram::Bounds>& Histogram::defaultBounds() {
  static const auto* bounds = new std::shared_ptr<const Bounds>(std::make_shared<const Bounds>(
      Bounds{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
             600000, 1800000, 3600000}));
  return *bounds;
}

Histogram::Histogram(StatName name, Unit unit, std::shared_ptr<const Bounds> bounds)
    : name_(name), unit_(unit), bounds_(std::move(bounds)) {}

Histogram::~Histogram() { delete[] buckets_.load(std::memory_order_acquire); }

std::atomic<uint64_t>* Histogram::buckets() {
  std::atomic<uint64_t>* b = buckets_.load(std::memory_order_acquire);
  if (b != nullptr) return b;
  // First sample: racing recorders each allocate; one wins, the others free theirs.
  auto* fresh = new std::atomic<uint64_t>[bounds_->size() + 1]();
  if (buckets_.compare_exchange_strong(b, fresh, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
    return fresh;
  }
  delete[] fresh;
  return b;
}

void Histogram::record(uint64_t value) {
  const double v = static_cast<double>(value);
  const size_t i = std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin();
  buckets()[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  if (SampleQueue* q = samples_.load(std::memory_order_acquire)) q->push(*this, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  s.cumulative.resize(bounds_->size());
  const std::atomic<uint64_t>* buckets = buckets_.load(std::memory_order_acquire);
  if (buckets == nullptr) return s; // never recorded: all zero
  uint64_t running = 0;
  for (size_t i = 0; i < bounds_->size(); ++i) {
    running += buckets[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count comes from the buckets, so that a record() racing with this snapshot
  // cannot make the total smaller than the last cumulative bucket.
  s.count = running + buckets[bounds_->size()].load(std::memory_order_relaxed);
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


template <class T>
T* Store::Set<T>::find(StatName name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : const_cast<T*>(&stats_[*it]);
}

template <class T>
template <class... Args>
T& Store::Set<T>::add(StatName name, Args&&... args) {
  T& stat = stats_.emplace_back(name, std::forward<Args>(args)...);
  index_.insert(static_cast<uint32_t>(stats_.size() - 1));
  return stat;
}

template <class T>
template <class Fn>
void Store::Set<T>::forEachSorted(Fn&& fn) const {
  if (sorted_.size() < stats_.size()) {
    // Stats are only appended: sort the newcomers and merge them in.
    const size_t old_size = sorted_.size();
    sorted_.reserve(stats_.size());
    for (size_t i = old_size; i < stats_.size(); ++i) sorted_.push_back(&stats_[i]);
    auto by_name = [](const T* a, const T* b) { return StatName::less(a->statName(), b->statName()); };
    std::sort(sorted_.begin() + old_size, sorted_.end(), by_name);
    std::inplace_merge(sorted_.begin(), sorted_.begin() + old_size, sorted_.end(), by_name);
  }
  for (const T* t : sorted_) fn(*t);
}

bool Store::resolve(std::string_view prefix, std::string_view name, StatName& out) {
  // The whole name is composed only for a stats_matcher to judge.
  if (config_.accept && !config_.accept(joinName(prefix, name))) return false;
  if (StatName::intern(prefix, name, out)) return true;
  if (!pool_full_reported_) {
    pool_full_reported_ = true;
    log::get("misc").error("the stats name pool is full ({} distinct name pieces): '{}{}' and "
                           "every later new stat are counted but not exported",
                           NamePool::kMaxIds, prefix, name);
  }
  return false;
}

Counter& Store::counter(std::string_view prefix, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_counter_;
  if (Counter* c = counters_.find(n)) return *c;
  return counters_.add(n);
}

Gauge& Store::gauge(std::string_view prefix, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_gauge_;
  if (Gauge* g = gauges_.find(n)) return *g;
  return gauges_.add(n);
}

Histogram& Store::histogram(std::string_view prefix, std::string_view name, Histogram::Unit unit) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_histogram_;
  if (Histogram* h = histograms_.find(n)) return *h;
  std::shared_ptr<const Histogram::Bounds> bounds = Histogram::defaultBounds();
  if (!config_.histogram_buckets.empty()) {
    const std::string full = joinName(prefix, name);
    for (const auto& [match, b] : config_.histogram_buckets) {
      if (match(full)) {
        bounds = b;
        break;
      }
    }
  }
  Histogram& h = histograms_.add(n, unit, std::move(bounds));
  h.samples_.store(samples_, std::memory_order_release);
  return h;
}

void Store::setSampleQueue(std::shared_ptr<SampleQueue> queue) {
  std::lock_guard<std::mutex> lock(mu_);
  samples_ = queue.get();
  if (queue != nullptr) sample_queues_.push_back(std::move(queue));
  histograms_.forEach([&](Histogram& h) { h.samples_.store(samples_, std::memory_order_release); });
}

void Store::forEachCounter(const std::function<void(const Counter&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.forEachSorted(fn);
}
void Store::forEachGauge(const std::function<void(const Gauge&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_.forEachSorted(fn);
}
void Store::forEachHistogram(const std::function<void(const Histogram&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  histograms_.forEachSorted(fn);
}

void Store::resetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.forEach([](Counter& c) { c.reset(); });
}

} // namespace legate::stats
