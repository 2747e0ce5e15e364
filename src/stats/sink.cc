#include "stats/sink.h"

namespace legate::stats {

namespace {
std::atomic<uint64_t> next_queue_id{1};

// The calling thread's ring of the queue it last pushed to. Threads push to one
// queue in practice (the process has one Store); another queue re-registers.
struct ThreadRing {
  uint64_t queue_id = 0;
  void* ring = nullptr;
};
thread_local ThreadRing t_ring;
} // namespace

SampleQueue::SampleQueue(size_t per_thread_capacity)
    : capacity_(per_thread_capacity), id_(next_queue_id.fetch_add(1)) {}

SampleQueue::~SampleQueue() = default;

SampleQueue::Ring& SampleQueue::ringForThisThread() {
  if (t_ring.queue_id != id_) {
    auto ring = std::make_unique<Ring>(capacity_);
    Ring* raw = ring.get();
    {
      std::lock_guard<std::mutex> lock(mu_);
      rings_.push_back(std::move(ring));
    }
    t_ring = {id_, raw};
  }
  return *static_cast<Ring*>(t_ring.ring);
}

void SampleQueue::push(const Histogram& histogram, uint64_t value) {
  Ring& r = ringForThisThread();
  const uint64_t head = r.head.load(std::memory_order_relaxed);
  if (head - r.tail.load(std::memory_order_acquire) >= r.capacity) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  r.entries[head % r.capacity] = {&histogram, value};
  r.head.store(head + 1, std::memory_order_release);
}

Flusher::Flusher(Store& store, std::vector<std::unique_ptr<Sink>> sinks)
    : store_(store), sinks_(std::move(sinks)) {
  if (!sinks_.empty()) {
    samples_ = std::make_shared<SampleQueue>();
    store_.setSampleQueue(samples_);
  }
}

Flusher::~Flusher() {
  if (samples_ != nullptr) store_.setSampleQueue(nullptr);
}

void Flusher::flush() {
  if (sinks_.empty()) return;
  MetricSnapshot snapshot;
  store_.forEachCounter([&](const Counter& c) {
    if (!c.used()) return;
    const uint64_t value = c.value();
    auto it = last_counter_values_.try_emplace(&c, 0).first;
    // A /reset_counters since the last flush: everything counted is new.
    const uint64_t delta = value >= it->second ? value - it->second : value;
    it->second = value;
    snapshot.counters.push_back({&c, delta});
  });
  store_.forEachGauge([&](const Gauge& g) {
    if (g.used()) snapshot.gauges.push_back(&g);
  });
  samples_->drain([&](const Histogram& h, uint64_t v) { snapshot.samples.push_back({&h, v}); });
  // legate's own: histogram samples a full ring dropped (a sink was not keeping up).
  const uint64_t dropped = samples_->dropped();
  store_.counter("stats.sink_samples_dropped").inc(dropped - last_dropped_);
  last_dropped_ = dropped;
  for (auto& sink : sinks_) sink->flush(snapshot);
}

} // namespace legate::stats
