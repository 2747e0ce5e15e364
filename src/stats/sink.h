#pragma once

// Stats sinks (Envoy's stats_sinks) and the flush that feeds them.
//
// Every stats_flush_interval the main thread's Flusher takes a MetricSnapshot of
// the Store: counters as deltas since the last flush, gauges as values, and the
// histogram samples recorded since then. Sinks get it on the main thread and must
// not block (UDP sends, non-blocking TCP writes with a bounded buffer).
//
// Histogram samples reach the flush through a SampleQueue: each recording thread
// appends to its own single-producer ring (no lock, no shared cache line with other
// threads); the flush drains every ring. A full ring drops the sample and counts it
// (stats.sink_samples_dropped): a worker never waits for a sink.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "stats/stats.h"

namespace legate::stats {

class SampleQueue {
public:
  explicit SampleQueue(size_t per_thread_capacity = 16384);
  ~SampleQueue();

  // Any thread. Lock-free after the calling thread's first push.
  void push(const Histogram& histogram, uint64_t value);
  // Main thread: hands every queued sample to fn, oldest first per thread.
  template <class Fn> void drain(Fn&& fn);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

private:
  struct Entry {
    const Histogram* histogram;
    uint64_t value;
  };
  struct Ring {
    explicit Ring(size_t cap) : entries(new Entry[cap]), capacity(cap) {}
    std::unique_ptr<Entry[]> entries;
    const size_t capacity;
    alignas(64) std::atomic<uint64_t> head{0}; // written by the producer
    alignas(64) std::atomic<uint64_t> tail{0}; // written by the consumer
  };
  Ring& ringForThisThread();

  const size_t capacity_;
  const uint64_t id_; // tells this queue's thread-local ring from another queue's
  std::mutex mu_;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<uint64_t> dropped_{0};
};

template <class Fn> void SampleQueue::drain(Fn&& fn) {
  std::vector<Ring*> rings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : rings_) rings.push_back(r.get());
  }
  for (Ring* r : rings) {
    const uint64_t tail = r->tail.load(std::memory_order_relaxed);
    const uint64_t head = r->head.load(std::memory_order_acquire);
    for (uint64_t i = tail; i < head; ++i) {
      const Entry& e = r->entries[i % r->capacity];
      fn(*e.histogram, e.value);
    }
    r->tail.store(head, std::memory_order_release);
  }
}

struct MetricSnapshot {
  struct CounterDelta {
    const Counter* counter;
    uint64_t delta;
  };
  struct Sample {
    const Histogram* histogram;
    uint64_t value;
  };
  std::vector<CounterDelta> counters; // used counters (stats.h)
  std::vector<const Gauge*> gauges;   // used gauges (stats.h)
  std::vector<Sample> samples;        // histogram values recorded since the last flush
};

class Sink {
public:
  virtual ~Sink() = default;
  // Main thread. Must not block.
  virtual void flush(const MetricSnapshot& snapshot) = 0;
};

// Takes snapshots and hands them to the sinks. Main thread only.
class Flusher {
public:
  Flusher(Store& store, std::vector<std::unique_ptr<Sink>> sinks);
  ~Flusher();
  void flush();
  bool empty() const { return sinks_.empty(); }

private:
  Store& store_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  std::shared_ptr<SampleQueue> samples_;
  std::unordered_map<const Counter*, uint64_t> last_counter_values_;
  uint64_t last_dropped_ = 0;
};

} // namespace legate::stats
