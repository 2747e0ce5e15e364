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
//
// Stat blocks: an owner that always creates the same few dozen stats under one
// prefix (a cluster) declares them as members of one struct and gets it from
// Store::block<T>(prefix). The block is one allocation; the owner reaches its stats
// as members (no reference per stat), and the index holds one entry per block, not
// one per stat. By name, a block's stats are found, walked and exported exactly as
// stats created one by one.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

#include "stats/stat_name.h"

namespace legate::stats {

// A StatName in 7 bytes (4-byte prefix id, 3-byte suffix id: suffix ids fit in 24
// bits), so that a stat's name and one byte of its own fit in 8.
class PackedStatName {
public:
  explicit PackedStatName(StatName name) { set(name); }
  StatName get() const {
    uint32_t prefix;
    std::memcpy(&prefix, bytes_, 4);
    return {prefix, bytes_[4] | (uint32_t{bytes_[5]} << 8) | (uint32_t{bytes_[6]} << 16)};
  }
  void set(StatName name) {
    std::memcpy(bytes_, &name.prefix, 4);
    bytes_[4] = static_cast<uint8_t>(name.suffix);
    bytes_[5] = static_cast<uint8_t>(name.suffix >> 8);
    bytes_[6] = static_cast<uint8_t>(name.suffix >> 16);
  }

private:
  uint8_t bytes_[7]; // byte-aligned, so that the owner's next byte fills the eighth
};
static_assert(sizeof(PackedStatName) == 7);

// What a counter and a gauge share, in 8 bytes: the name and the used flag.
class ScalarStat {
public:
  StatName statName() const { return name_.get(); }
  // Composed from the name pool: for expositions, not for hot paths.
  std::string name() const { return statName().str(); }
  bool used() const { return used_.load(std::memory_order_relaxed); }

protected:
  explicit ScalarStat(StatName name) : name_(name) {}
  // The first write sets the flag; every later one only reads it.
  void markUsed() {
    if (!used_.load(std::memory_order_relaxed)) used_.store(true, std::memory_order_relaxed);
  }

private:
  friend class Store; // names a block's members once it has placed them (Store::block)
  PackedStatName name_;
  std::atomic<bool> used_{false};
};

class Counter : public ScalarStat {
public:
  // Unnamed: a member of a stat block, named by Store::block.
  Counter() : ScalarStat(StatName{}) {}
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
  Gauge() : ScalarStat(StatName{}) {} // a stat block's member, as Counter()
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
  enum class Unit : uint8_t { Milliseconds, Bytes, Unspecified };
  using Bounds = std::vector<double>; // ascending upper bounds
  // Envoy's default bucket upper bounds.
  static const std::shared_ptr<const Bounds>& defaultBounds();

  // bounds: kept alive elsewhere for the histogram's life (the Store keeps every
  // bounds it was configured with; the default ones are never freed).
  Histogram(StatName name, Unit unit,
            const std::shared_ptr<const Bounds>* bounds = &defaultBounds());
  // A stat block's member: named, given its unit and bounds by Store::block.
  Histogram() : Histogram(StatName{}, Unit::Unspecified) {}
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;
  void record(uint64_t value);
  StatName statName() const { return name_.get(); }
  std::string name() const { return statName().str(); }
  Unit unit() const { return unit_; }
  const Bounds& bounds() const { return **bounds_; }

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

  // Set at construction, or for a block's member by Store::block before the
  // block is handed out; fixed after that. 40 bytes in all: a cluster has three.
  PackedStatName name_;
  Unit unit_;
  const std::shared_ptr<const Bounds>* bounds_;
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

// How a stat block lists its members (see Store::block): each member once, with the
// name it has under the block's prefix. Names have no '.': a block's stats are the
// prefix's own.
class StatVisitor {
public:
  virtual void counter(Counter& c, std::string_view name) = 0;
  virtual void gauge(Gauge& g, std::string_view name) = 0;
  virtual void histogram(Histogram& h, std::string_view name, Histogram::Unit unit) = 0;

protected:
  ~StatVisitor() = default;
};

// A block's members from one list (see ClusterStats): LIST(LEGATE_STAT_COUNTER,
// LEGATE_STAT_GAUGE, LEGATE_STAT_HISTOGRAM) declares them, and inside visitStats
// LIST(LEGATE_STAT_VISIT_COUNTER, ...) names them, so no member can go unnamed.
#define LEGATE_STAT_COUNTER(name) ::legate::stats::Counter name;
#define LEGATE_STAT_GAUGE(name) ::legate::stats::Gauge name;
#define LEGATE_STAT_HISTOGRAM(name, unit) ::legate::stats::Histogram name;
#define LEGATE_STAT_VISIT_COUNTER(name) v.counter(name, #name);
#define LEGATE_STAT_VISIT_GAUGE(name) v.gauge(name, #name);
#define LEGATE_STAT_VISIT_HISTOGRAM(name, unit) \
  v.histogram(name, #name, ::legate::stats::Histogram::Unit::unit);

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

  // The stat block of type T under prefix (which ends with '.'): made on first use,
  // the same object for every later call with that prefix, kept as long as the
  // Store. T is constructed as T(store, prefix) under the Store's lock (so its
  // constructor must not create stats) and lists its members through
  // `void visitStats(StatVisitor&)`, always in the same order. A member whose name
  // stats_matcher rejects is updated but never exported, as a rejected stat is. A
  // name that already exists as a stat created on its own stays that stat, and the
  // block's member is not exported (an error is logged: the two would otherwise
  // be exported under one name).
  template <class T>
  T& block(std::string_view prefix) {
    return *static_cast<T*>(block(prefix, blockKey<T>(), [&]() -> std::unique_ptr<BlockHolder> {
      return std::make_unique<BlockOf<T>>(*this, prefix);
    }));
  }

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
  // A stat block, owned by the Store: its object and how to list its members.
  class BlockHolder {
  public:
    virtual ~BlockHolder() = default;
    virtual void* object() = 0;
    virtual void visitStats(StatVisitor& v) = 0;
  };
  template <class T>
  class BlockOf final : public BlockHolder {
  public:
    BlockOf(Store& store, std::string_view prefix) : block_(store, prefix) {}
    void* object() override { return &block_; }
    void visitStats(StatVisitor& v) override { block_.visitStats(v); }

  private:
    T block_;
  };
  // One address per block type, as the key of its layout.
  template <class T>
  static const void* blockKey() {
    static const char key = 0;
    return &key;
  }
  void* block(std::string_view prefix, const void* key,
              const std::function<std::unique_ptr<BlockHolder>()>& make);

  // Where each member of a block type sits, learnt from its first block.
  enum class Kind : uint8_t { Counter, Gauge, Histogram };
  struct BlockLayout {
    struct Member {
      Kind kind;
      Histogram::Unit unit;
      uint32_t suffix; // name pool id of the member's name
      uint32_t offset; // from the block object's address
    };
    const void* key;
    std::vector<Member> members;
    absl::flat_hash_map<uint32_t, uint32_t> by_suffix; // suffix id -> index in members
  };
  struct BlockEntry {
    std::unique_ptr<BlockHolder> holder;
    const BlockLayout* layout;
    uint32_t prefix;              // name pool id; 0 if the pool was full
    uint32_t next = UINT32_MAX;   // the next block with the same prefix (blocks_)
  };
  // The exported block member named name, of kind `kind`, or nullptr.
  template <class T>
  T* blockMember(StatName name, Kind kind) const;
  // Calls fn(T&) for every member of kind `kind` of blocks_[from..]: the exported
  // ones, or all of them.
  template <class T, class Fn>
  void forEachBlockMember(size_t from, Kind kind, Fn&& fn, bool exported_only = true) const;
  // Points a histogram at the current sample queue (setSampleQueue).
  auto followSampleQueue() const {
    return [q = samples_](Histogram& h) { h.samples_.store(q, std::memory_order_release); };
  }
  // Logs, once, that the name pool is full: prefix + name and later new stats are
  // counted but not exported.
  void reportPoolFull(std::string_view prefix, std::string_view name);

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
    // Visits every stat in name order, the store's block members of `kind` included.
    template <class Fn>
    void forEachSorted(Fn&& fn, const Store& store, Kind kind) const;
    // Exported block members of this kind: counted so that walks notice new ones.
    void addBlockMembers(size_t n) { block_members_ += n; }
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
    // stats_ and the blocks' members in name order; sorted lazily when a walk
    // finds stats it lacks. sorted_stats_ / sorted_blocks_: how many of stats_ and of
    // the Store's blocks it holds.
    mutable std::vector<const T*> sorted_;
    mutable size_t sorted_stats_ = 0;
    mutable size_t sorted_blocks_ = 0;
    size_t block_members_ = 0;
  };

  // The interned name of prefix + name; false if stats_matcher rejects it or (with
  // an error, once) if the name pool is full.
  bool resolve(std::string_view prefix, std::string_view name, StatName& out);
  // stats_config.histogram_bucket_settings' bounds for a histogram's whole name.
  const std::shared_ptr<const Histogram::Bounds>* bucketsFor(const std::string& name) const;

  mutable std::mutex mu_;
  bool pool_full_reported_ = false;
  Set<Counter> counters_;
  Set<Gauge> gauges_;
  Set<Histogram> histograms_;
  // Stat blocks in creation order; by the name pool id of their prefix (the first
  // of a chain through BlockEntry::next), and their layouts by type.
  std::vector<BlockEntry> blocks_;
  absl::flat_hash_map<uint32_t, uint32_t> blocks_by_prefix_;
  std::vector<std::unique_ptr<BlockLayout>> layouts_;
  // What every stat the matcher rejected shares: updated, never exported.
  Counter rejected_counter_{StatName{}};
  Gauge rejected_gauge_{StatName{}};
  Histogram rejected_histogram_{StatName{}, Histogram::Unit::Unspecified};
  StoreConfig config_;
  // Every bucket setting's bounds the Store was ever configured with: histograms
  // point at these (a later configure() must not free what they point at).
  std::deque<std::shared_ptr<const Histogram::Bounds>> bounds_kept_;
  // bounds_kept_ entries of config_.histogram_buckets, in the same order.
  std::vector<const std::shared_ptr<const Histogram::Bounds>*> bucket_bounds_;
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
