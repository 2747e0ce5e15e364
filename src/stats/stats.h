#pragma once

// The stats core: counters, gauges and histograms with Envoy's names.
//
// Threading: a Store is created on the main thread and outlives every worker.
// Looking a stat up by name takes a lock and is meant for configuration time
// (filters and clusters resolve their stats once, then keep references).
// Updating a stat is lock-free (relaxed atomics) and safe from any thread.
// References returned by the Store stay valid for the Store's lifetime.
//
// "Used" (Envoy's /stats?usedonly, the sinks): a counter or gauge is used once it
// has been written (inc, dec, set, even to 0 or by 0), a histogram once it has a
// sample; it stays used (a gauge back at 0, a counter after /reset_counters). The
// flag is set by the first write only: later writes pay a relaxed load of a byte
// on the cache line they are writing anyway, never an extra read-modify-write.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace legate::stats {

class Counter {
public:
  explicit Counter(std::string name) : name_(std::move(name)) {}
  void inc(uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
    markUsed(used_);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }
  bool used() const { return used_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }
  // Admin /reset_counters only: a debugging aid, as in Envoy. The counter stays used.
  void reset() { value_.store(0, std::memory_order_relaxed); }

  // The first write sets the flag; every later one only reads it.
  static void markUsed(std::atomic<bool>& used) {
    if (!used.load(std::memory_order_relaxed)) used.store(true, std::memory_order_relaxed);
  }

private:
  const std::string name_;
  std::atomic<uint64_t> value_{0};
  std::atomic<bool> used_{false};
};

class Gauge {
public:
  explicit Gauge(std::string name) : name_(std::move(name)) {}
  void inc(int64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
    Counter::markUsed(used_);
  }
  void dec(int64_t n = 1) {
    value_.fetch_sub(n, std::memory_order_relaxed);
    Counter::markUsed(used_);
  }
  void set(int64_t v) {
    value_.store(v, std::memory_order_relaxed);
    Counter::markUsed(used_);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }
  bool used() const { return used_.load(std::memory_order_relaxed); }
  const std::string& name() const { return name_; }

private:
  const std::string name_;
  std::atomic<int64_t> value_{0};
  std::atomic<bool> used_{false};
};

// A histogram of non-negative values (milliseconds or bytes) over bucket upper
// bounds (Envoy's defaults, or stats_config.histogram_bucket_settings). Recording is
// one relaxed atomic add on its bucket plus one on the sum.
class SampleQueue;

class Histogram {
public:
  enum class Unit { Milliseconds, Bytes, Unspecified };
  using Bounds = std::vector<double>; // ascending upper bounds
  // Envoy's default bucket upper bounds.
  static const std::shared_ptr<const Bounds>& defaultBounds();

  Histogram(std::string name, Unit unit, std::shared_ptr<const Bounds> bounds = defaultBounds());
  void record(uint64_t value);
  const std::string& name() const { return name_; }
  Unit unit() const { return unit_; }
  const Bounds& bounds() const { return *bounds_; }

  struct Snapshot {
    std::shared_ptr<const Bounds> bounds = defaultBounds();
    uint64_t count = 0;
    double sum = 0;
    // Cumulative counts per bounds entry (values <= bound).
    std::vector<uint64_t> cumulative;
    // Estimate of the q-quantile (0..1) by linear interpolation in buckets.
    double quantile(double q) const;
  };
  Snapshot snapshot() const;

private:
  const std::string name_;
  const Unit unit_;
  const std::shared_ptr<const Bounds> bounds_;
  // bounds_->size() + 1 buckets: the last one counts values above every bound.
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_{0};
  // Set while a stats sink wants every sample (statsd timers); see sink.h.
  std::atomic<SampleQueue*> samples_{nullptr};
  friend class Store;
};

// A stat name predicate (stats_config.stats_matcher, histogram bucket matches).
using NameMatcher = std::function<bool(std::string_view)>;

class TagProducer;

// What the bootstrap's stats_config asks of a Store. Applied once, at configuration
// time, before the stats it affects are created.
struct StoreConfig {
  // stats_matcher: a stat whose name this rejects is not stored or exported (its
  // owner gets a shared stand-in to update). Unset: accept all.
  NameMatcher accept;
  // histogram_bucket_settings: the first entry whose matcher accepts a histogram's
  // name gives its bounds.
  std::vector<std::pair<NameMatcher, std::shared_ptr<const Histogram::Bounds>>> histogram_buckets;
  // stats_tags / use_all_default_tags. Unset: Envoy's default extractors.
  std::shared_ptr<const TagProducer> tags;
};

class Store {
public:
  Store();
  ~Store();
  void configure(StoreConfig config);

  Counter& counter(std::string_view name);
  Gauge& gauge(std::string_view name);
  Histogram& histogram(std::string_view name, Histogram::Unit unit = Histogram::Unit::Milliseconds);

  // Snapshots in name order, for the admin endpoints and sinks.
  void forEachCounter(const std::function<void(const Counter&)>& fn) const;
  void forEachGauge(const std::function<void(const Gauge&)>& fn) const;
  void forEachHistogram(const std::function<void(const Histogram&)>& fn) const;

  // Admin /reset_counters: every counter back to zero.
  void resetCounters();

  // Sinks that want each histogram sample (sink.h): every histogram, present and
  // future, also pushes its values to queue. nullptr stops that. The Store keeps
  // every queue it was given alive, so a racing record() never sees a freed one.
  void setSampleQueue(std::shared_ptr<SampleQueue> queue);

  // The tag extraction for tagged expositions (Prometheus, DogStatsD).
  const TagProducer& tagProducer() const { return *tags_; }

private:
  bool accepted(std::string_view name) const;

  mutable std::mutex mu_;
  // Keys view the stat's own name (stats are never removed), so a name is stored once.
  std::map<std::string_view, std::unique_ptr<Counter>, std::less<>> counters_;
  std::map<std::string_view, std::unique_ptr<Gauge>, std::less<>> gauges_;
  std::map<std::string_view, std::unique_ptr<Histogram>, std::less<>> histograms_;
  // What every stat the matcher rejected shares: updated, never exported.
  Counter rejected_counter_{""};
  Gauge rejected_gauge_{""};
  Histogram rejected_histogram_{"", Histogram::Unit::Unspecified};
  StoreConfig config_;
  std::shared_ptr<const TagProducer> tags_;
  SampleQueue* samples_ = nullptr;
  std::vector<std::shared_ptr<SampleQueue>> sample_queues_;
};

// A name prefix over a Store: Scope(store, "cluster.backend.").counter("upstream_cx_total").
class Scope {
public:
  Scope(Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  Counter& counter(std::string_view name) { return store_.counter(prefix_ + std::string(name)); }
  Gauge& gauge(std::string_view name) { return store_.gauge(prefix_ + std::string(name)); }
  Histogram& histogram(std::string_view name,
                       Histogram::Unit unit = Histogram::Unit::Milliseconds) {
    return store_.histogram(prefix_ + std::string(name), unit);
  }
  Store& store() const { return store_; }
  const std::string& prefix() const { return prefix_; }

private:
  Store& store_;
  std::string prefix_;
};

} // namespace legate::stats
