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
//
// Memory: a cluster has some seventy stats, and a configuration may have ten
// thousand clusters, so a stat is small. A counter or gauge is 16 bytes, its name
// included: two ids into the process's pool of name pieces (stat_name.h), so
// "cluster.<name>." is stored once per cluster and "upstream_rq_total" once per
// process. The index is an open-addressing set of 4-byte positions hashed by those
// ids, and the name-ordered list the admin endpoints walk is a vector of pointers
// sorted when new stats have appeared. A histogram allocates its buckets on its first sample.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"

#include "stats/stat_name.h"

namespace legate::stats {

// What a counter and a gauge share, in 8 bytes: the name, packed as a StatName
// (4-byte prefix id, 3-byte suffix id), and the used flag.
class ScalarStat {
public:
  StatName statName() const {
    return {prefix_, suffix_[0] | (uint32_t{suffix_[1]} << 8) | (uint32_t{suffix_[2]} << 16)};
  }
  // Composed from the name pool: for expositions, not for hot paths.
  std::string name() const { return statName().str(); }
  bool used() const { return used_.load(std::memory_order_relaxed); }

protected:
  explicit ScalarStat(StatName name)
      : prefix_(name.prefix), suffix_{static_cast<uint8_t>(name.suffix),
                                      static_cast<uint8_t>(name.suffix >> 8),
                                      static_cast<uint8_t>(name.suffix >> 16)} {}
  // The first write sets the flag; every later one only reads it.
  void markUsed() {
    if (!used_.load(std::memory_order_relaxed)) used_.store(true, std::memory_order_relaxed);
  }

private:
  const uint32_t prefix_;
  const uint8_t suffix_[3];
  std::atomic<bool> used_{false};
};

class Counter : public ScalarStat {
public:
  explicit Counter(StatName name) : ScalarStat(name) {}
  void inc(uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
    markUsed();
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }
  // Admin /reset_counters only: a debugging aid, as in Envoy. The counter stays used.
  void reset() { value_.store(0, std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

class Gauge : public ScalarStat {
public:
  explicit Gauge(StatName name) : ScalarStat(name) {}
  void inc(int64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
    markUsed();
  }
  void dec(int64_t n = 1) {
    value_.fetch_sub(n, std::memory_order_relaxed);
    markUsed();
  }
  void set(int64_t v) {
    value_.store(v, std::memory_order_relaxed);
    markUsed();
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> value_{0};
};

static_assert(sizeof(Counter) == 16 && sizeof(Gauge) == 16,
              "a large configuration has hundreds of thousands of these");

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

  Histogram(StatName name, Unit unit, std::shared_ptr<const Bounds> bounds = defaultBounds());
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;
  void record(uint64_t value);
  StatName statName() const { return name_; }
  std::string name() const { return name_.str(); }
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
  std::atomic<uint64_t>* buckets();

  const StatName name_;
  const Unit unit_;
  const std::shared_ptr<const Bounds> bounds_;
  // bounds_->size() + 1 buckets: the last one counts values above every bound.
  // Null until the first sample: most of a large configuration's histograms
  // (per-cluster timings of idle clusters) never get one.
  std::atomic<std::atomic<uint64_t>*> buckets_{nullptr};
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

  Counter& counter(std::string_view name) { return counter({}, name); }
  Gauge& gauge(std::string_view name) { return gauge({}, name); }
  Histogram& histogram(std::string_view name, Histogram::Unit unit = Histogram::Unit::Milliseconds) {
    return histogram({}, name, unit);
  }
  // The stat named prefix + name, without composing it (Scope's form).
  Counter& counter(std::string_view prefix, std::string_view name);
  Gauge& gauge(std::string_view prefix, std::string_view name);
  Histogram& histogram(std::string_view prefix, std::string_view name, Histogram::Unit unit);

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
  // One kind of stat: stable storage, a name index, and the name order.
  // Stats are never removed. Guarded by the Store's mutex.
  template <class T>
  class Set {
  public:
    Set() = default;
    Set(const Set&) = delete; // the index points at stats_
    Set& operator=(const Set&) = delete;
    T* find(StatName name) const;
    template <class... Args>
    T& add(StatName name, Args&&... args);
    // Visits every stat in name order.
    template <class Fn>
    void forEachSorted(Fn&& fn) const;
    template <class Fn>
    void forEach(Fn&& fn) {
      for (T& t : stats_) fn(t);
    }

  private:
    // The index holds positions in stats_ (4 bytes a slot, not a pointer's 8),
    // hashed and compared by the name of the stat there.
    struct ByName {
      using is_transparent = void;
      const std::deque<T>* stats;
      size_t operator()(StatName n) const { return n.hash(); }
      size_t operator()(uint32_t i) const { return (*stats)[i].statName().hash(); }
      bool operator()(uint32_t a, uint32_t b) const { return a == b; }
      bool operator()(uint32_t a, StatName b) const { return (*stats)[a].statName() == b; }
      bool operator()(StatName a, uint32_t b) const { return a == (*stats)[b].statName(); }
    };
    std::deque<T> stats_; // creation order; emplace_back keeps addresses
    absl::flat_hash_set<uint32_t, ByName, ByName> index_{0, ByName{&stats_}, ByName{&stats_}};
    // stats_ in name order; sorted lazily when a walk finds stats it lacks.
    mutable std::vector<const T*> sorted_;
  };

  // The interned name of prefix + name; false if stats_matcher rejects it or (with
  // an error, once) if the name pool is full.
  bool resolve(std::string_view prefix, std::string_view name, StatName& out);

  mutable std::mutex mu_;
  bool pool_full_reported_ = false;
  Set<Counter> counters_;
  Set<Gauge> gauges_;
  Set<Histogram> histograms_;
  // What every stat the matcher rejected shares: updated, never exported.
  Counter rejected_counter_{StatName{}};
  Gauge rejected_gauge_{StatName{}};
  Histogram rejected_histogram_{StatName{}, Histogram::Unit::Unspecified};
  StoreConfig config_;
  std::shared_ptr<const TagProducer> tags_;
  SampleQueue* samples_ = nullptr;
  std::vector<std::shared_ptr<SampleQueue>> sample_queues_;
};

// A name prefix over a Store: Scope(store, "cluster.backend.").counter("upstream_cx_total").
class Scope {
public:
  Scope(Store& store, std::string prefix) : store_(store), prefix_(std::move(prefix)) {}
  Counter& counter(std::string_view name) { return store_.counter(prefix_, name); }
  Gauge& gauge(std::string_view name) { return store_.gauge(prefix_, name); }
  Histogram& histogram(std::string_view name,
                       Histogram::Unit unit = Histogram::Unit::Milliseconds) {
    return store_.histogram(prefix_, name, unit);
  }
  Store& store() const { return store_; }
  const std::string& prefix() const { return prefix_; }

private:
  Store& store_;
  std::string prefix_;
};

} // namespace legate::stats
