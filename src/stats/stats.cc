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

Histogram::Histogram(StatName name, Unit unit, const std::shared_ptr<const Bounds>* bounds)
    : name_(name), unit_(unit), bounds_(bounds) {}

static_assert(sizeof(Histogram) == 40, "a cluster's stat block holds three");

Histogram::~Histogram() { delete[] buckets_.load(std::memory_order_acquire); }

std::atomic<uint64_t>* Histogram::buckets() {
  std::atomic<uint64_t>* b = buckets_.load(std::memory_order_acquire);
  if (b != nullptr) return b;
  // First sample: racing recorders each allocate; one wins, the others free theirs.
  auto* fresh = new std::atomic<uint64_t>[bounds().size() + 1]();
  if (buckets_.compare_exchange_strong(b, fresh, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
    return fresh;
  }
  delete[] fresh;
  return b;
}

void Histogram::record(uint64_t value) {
  const double v = static_cast<double>(value);
  const Bounds& b = bounds();
  const size_t i = std::lower_bound(b.begin(), b.end(), v) - b.begin();
  buckets()[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  if (SampleQueue* q = samples_.load(std::memory_order_acquire)) q->push(*this, value);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = *bounds_;
  const Bounds& bounds = *s.bounds;
  s.cumulative.resize(bounds.size());
  const std::atomic<uint64_t>* buckets = buckets_.load(std::memory_order_acquire);
  if (buckets == nullptr) return s; // never recorded: all zero
  uint64_t running = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    running += buckets[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  // The count comes from the buckets, so that a record() racing with this snapshot
  // cannot make the total smaller than the last cumulative bucket.
  s.count = running + buckets[bounds.size()].load(std::memory_order_relaxed);
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
  bucket_bounds_.clear();
  for (const auto& [match, bounds] : config_.histogram_buckets) {
    bucket_bounds_.push_back(&bounds_kept_.emplace_back(bounds));
  }
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
void Store::Set<T>::forEachSorted(Fn&& fn, const Store& store, Kind kind) const {
  if (sorted_.size() < stats_.size() + block_members_) {
    // Stats and blocks are only appended: sort the newcomers and merge them in.
    const size_t old_size = sorted_.size();
    sorted_.reserve(stats_.size() + block_members_);
    for (size_t i = sorted_stats_; i < stats_.size(); ++i) sorted_.push_back(&stats_[i]);
    sorted_stats_ = stats_.size();
    store.forEachBlockMember<T>(sorted_blocks_, kind, [&](T& t) { sorted_.push_back(&t); });
    sorted_blocks_ = store.blocks_.size();
    auto by_name = [](const T* a, const T* b) { return StatName::less(a->statName(), b->statName()); };
    std::sort(sorted_.begin() + old_size, sorted_.end(), by_name);
    std::inplace_merge(sorted_.begin(), sorted_.begin() + old_size, sorted_.end(), by_name);
  }
  for (const T* t : sorted_) fn(*t);
}

template <class T>
T* Store::blockMember(StatName name, Kind kind) const {
  auto it = blocks_by_prefix_.find(name.prefix);
  if (it == blocks_by_prefix_.end()) return nullptr;
  for (uint32_t b = it->second; b != UINT32_MAX; b = blocks_[b].next) {
    const BlockEntry& e = blocks_[b];
    auto m = e.layout->by_suffix.find(name.suffix);
    if (m == e.layout->by_suffix.end()) continue;
    const BlockLayout::Member& member = e.layout->members[m->second];
    if (member.kind != kind) continue;
    T* t = reinterpret_cast<T*>(static_cast<char*>(e.holder->object()) + member.offset);
    // An unexported member (rejected, or shadowed by an older stat) has no name.
    if (t->statName() == name) return t;
  }
  return nullptr;
}

template <class T, class Fn>
void Store::forEachBlockMember(size_t from, Kind kind, Fn&& fn, bool exported_only) const {
  for (size_t b = from; b < blocks_.size(); ++b) {
    const BlockEntry& e = blocks_[b];
    char* base = static_cast<char*>(e.holder->object());
    for (const BlockLayout::Member& m : e.layout->members) {
      if (m.kind != kind) continue;
      T& t = *reinterpret_cast<T*>(base + m.offset);
      if (!exported_only || !(t.statName() == StatName{})) fn(t);
    }
  }
}

void Store::reportPoolFull(std::string_view prefix, std::string_view name) {
  if (pool_full_reported_) return;
  pool_full_reported_ = true;
  log::get("misc").error("the stats name pool is full ({} distinct name pieces): '{}{}' and "
                         "every later new stat are counted but not exported",
                         NamePool::kMaxIds, prefix, name);
}

void* Store::block(std::string_view prefix, const void* key,
                   const std::function<std::unique_ptr<BlockHolder>()>& make) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t prefix_id = NamePool::get().intern(prefix);
  const bool named = prefix_id != NamePool::kNotFound;
  if (!named) reportPoolFull(prefix, "*");
  if (named) {
    if (auto it = blocks_by_prefix_.find(prefix_id); it != blocks_by_prefix_.end()) {
      for (uint32_t b = it->second; b != UINT32_MAX; b = blocks_[b].next) {
        if (blocks_[b].layout->key == key) return blocks_[b].holder->object();
      }
    }
  }
  std::unique_ptr<BlockHolder> holder = make();
  char* base = static_cast<char*>(holder->object());

  // The first block of a type teaches its layout: where each member sits.
  const BlockLayout* layout = nullptr;
  for (const auto& l : layouts_) {
    if (l->key == key) layout = l.get();
  }
  if (layout == nullptr) {
    struct Learn final : StatVisitor {
      BlockLayout& l;
      char* base;
      Learn(BlockLayout& layout, char* b) : l(layout), base(b) {}
      void add(void* member, std::string_view name, Kind kind, Histogram::Unit unit) {
        // Contract violations of the block's code, not of any configuration.
        const uint32_t suffix = NamePool::get().intern(name);
        if (name.empty() || name.find('.') != std::string_view::npos ||
            suffix == NamePool::kNotFound) {
          log::get("misc").critical("stat block member '{}': not a one-piece name, or the name "
                                    "pool is full",
                                    name);
          std::abort();
        }
        l.by_suffix.emplace(suffix, static_cast<uint32_t>(l.members.size()));
        l.members.push_back({kind, unit, suffix,
                             static_cast<uint32_t>(static_cast<char*>(member) - base)});
      }
      void counter(Counter& c, std::string_view n) override {
        add(&c, n, Kind::Counter, Histogram::Unit::Unspecified);
      }
      void gauge(Gauge& g, std::string_view n) override {
        add(&g, n, Kind::Gauge, Histogram::Unit::Unspecified);
      }
      void histogram(Histogram& h, std::string_view n, Histogram::Unit unit) override {
        add(&h, n, Kind::Histogram, unit);
      }
    };
    auto fresh = std::make_unique<BlockLayout>();
    fresh->key = key;
    Learn learn(*fresh, base);
    holder->visitStats(learn);
    layout = layouts_.emplace_back(std::move(fresh)).get();
  }

  // Name the members, unless stats_matcher rejects a name or a stat made on its
  // own already has it.
  size_t exported[3] = {0, 0, 0};
  if (named) {
    for (const BlockLayout::Member& m : layout->members) {
      const StatName name{prefix_id, m.suffix};
      const std::string_view suffix = NamePool::get().view(m.suffix);
      if (config_.accept && !config_.accept(joinName(prefix, suffix))) continue;
      char* at = base + m.offset;
      const bool taken = m.kind == Kind::Counter ? counters_.find(name) != nullptr
                         : m.kind == Kind::Gauge ? gauges_.find(name) != nullptr
                                                 : histograms_.find(name) != nullptr;
      if (taken) {
        log::get("misc").error("stat '{}{}' exists already; the copy in its stat block is not "
                               "exported",
                               prefix, suffix);
        continue;
      }
      ++exported[static_cast<size_t>(m.kind)];
      switch (m.kind) {
      case Kind::Counter:
        reinterpret_cast<Counter*>(at)->name_.set(name);
        break;
      case Kind::Gauge:
        reinterpret_cast<Gauge*>(at)->name_.set(name);
        break;
      case Kind::Histogram: {
        auto* h = reinterpret_cast<Histogram*>(at);
        h->name_.set(name);
        h->unit_ = m.unit;
        h->bounds_ = bucketsFor(joinName(prefix, suffix));
        break;
      }
      }
    }
  }
  counters_.addBlockMembers(exported[static_cast<size_t>(Kind::Counter)]);
  gauges_.addBlockMembers(exported[static_cast<size_t>(Kind::Gauge)]);
  histograms_.addBlockMembers(exported[static_cast<size_t>(Kind::Histogram)]);

  const auto index = static_cast<uint32_t>(blocks_.size());
  BlockEntry& entry = blocks_.emplace_back(BlockEntry{std::move(holder), layout, prefix_id});
  // Every member histogram follows the sample queue, exported or not (a rejected
  // one records nothing anyone reads, but a block's members are all alike).
  forEachBlockMember<Histogram>(index, Kind::Histogram, followSampleQueue(), false);
  if (named) {
    auto [it, inserted] = blocks_by_prefix_.try_emplace(prefix_id, index);
    if (!inserted) {
      entry.next = it->second; // newest first
      it->second = index;
    }
  }
  return base;
}

bool Store::resolve(std::string_view prefix, std::string_view name, StatName& out) {
  // The whole name is composed only for a stats_matcher to judge.
  if (config_.accept && !config_.accept(joinName(prefix, name))) return false;
  if (StatName::intern(prefix, name, out)) return true;
  reportPoolFull(prefix, name);
  return false;
}

Counter& Store::counter(std::string_view prefix, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_counter_;
  if (Counter* c = counters_.find(n)) return *c;
  if (Counter* c = blockMember<Counter>(n, Kind::Counter)) return *c;
  return counters_.add(n);
}

Gauge& Store::gauge(std::string_view prefix, std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_gauge_;
  if (Gauge* g = gauges_.find(n)) return *g;
  if (Gauge* g = blockMember<Gauge>(n, Kind::Gauge)) return *g;
  return gauges_.add(n);
}

Histogram& Store::histogram(std::string_view prefix, std::string_view name, Histogram::Unit unit) {
  std::lock_guard<std::mutex> lock(mu_);
  StatName n;
  if (!resolve(prefix, name, n)) return rejected_histogram_;
  if (Histogram* h = histograms_.find(n)) return *h;
  if (Histogram* h = blockMember<Histogram>(n, Kind::Histogram)) return *h;
  Histogram& h = histograms_.add(n, unit,
                                 config_.histogram_buckets.empty()
                                     ? &Histogram::defaultBounds()
                                     : bucketsFor(joinName(prefix, name)));
  followSampleQueue()(h);
  return h;
}

const std::shared_ptr<const Histogram::Bounds>* Store::bucketsFor(const std::string& name) const {
  for (size_t i = 0; i < config_.histogram_buckets.size(); ++i) {
    if (config_.histogram_buckets[i].first(name)) return bucket_bounds_[i];
  }
  return &Histogram::defaultBounds();
}

void Store::setSampleQueue(std::shared_ptr<SampleQueue> queue) {
  std::lock_guard<std::mutex> lock(mu_);
  samples_ = queue.get();
  if (queue != nullptr) sample_queues_.push_back(std::move(queue));
  histograms_.forEach(followSampleQueue());
  // A block's unexported histograms too, as they follow it from their creation.
  forEachBlockMember<Histogram>(0, Kind::Histogram, followSampleQueue(), false);
}

void Store::forEachCounter(const std::function<void(const Counter&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.forEachSorted(fn, *this, Kind::Counter);
}
void Store::forEachGauge(const std::function<void(const Gauge&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_.forEachSorted(fn, *this, Kind::Gauge);
}
void Store::forEachHistogram(const std::function<void(const Histogram&)>& fn) const {
  std::lock_guard<std::mutex> lock(mu_);
  histograms_.forEachSorted(fn, *this, Kind::Histogram);
}

void Store::resetCounters() {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.forEach([](Counter& c) { c.reset(); });
  forEachBlockMember<Counter>(0, Kind::Counter, [](Counter& c) { c.reset(); });
}

} // namespace legate::stats
