#pragma once

// The batching half of a span exporter, shared by the Zipkin and OpenTelemetry
// tracers: workers hand finished spans over without locks or syscalls, the
// main thread batches them and a subclass encodes and sends each batch.
//
// Hand-over: each worker thread appends to its own bounded single-producer ring
// (registered under a lock on the thread's first span only). A full ring drops
// the span and counts it (tracing.<name>.spans_dropped): a slow or dead
// collector can never hold a worker or grow memory without bound. When the
// spans queued reach min_flush_spans, the worker posts one wake-up to the main
// thread, which drains every ring and sends a batch; a timer (flush_interval)
// sends whatever is pending and counts tracing.<name>.timer_flushed.
// tracing.<name>.spans_sent counts the spans handed to the subclass to send.
//
// Runtime (Envoy's keys): <runtime_prefix>min_flush_spans (default 5) and
// <runtime_prefix>flush_interval_ms (default 5000), read at each flush.
//
// Threading: report() from any thread; everything else on the main thread.
// Lifetime: shared; what is posted to the main thread holds a weak pointer.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "event/dispatcher.h"
#include "stats/stats.h"
#include "tracing/span.h"

namespace legate::tracing {

class BatchingExporter : public Exporter, public std::enable_shared_from_this<BatchingExporter> {
 public:
  // stat_prefix: "tracing.zipkin." ...; runtime_prefix: the same by Envoy's keys.
  BatchingExporter(stats::Store& store, std::string stat_prefix, std::string runtime_prefix,
                   size_t ring_capacity = 4096);
  ~BatchingExporter() override;

  void report(SpanData&& span) final;
  void start(event::Dispatcher& main) final;

  static constexpr uint64_t kDefaultMinFlushSpans = 5;
  static constexpr uint64_t kDefaultFlushIntervalMs = 5000;

 protected:
  // Main thread: encode and send (never block; count the outcome).
  virtual void send(std::vector<SpanData> batch) = 0;
  // Main thread, from start(): set up what sending needs.
  virtual void onStart(event::Dispatcher& main) { (void)main; }
  stats::Store& store() { return store_; }

 private:
  struct Ring {
    explicit Ring(size_t cap) : slots(new SpanData*[cap]), capacity(cap) {}
    std::unique_ptr<SpanData*[]> slots;
    const size_t capacity;
    alignas(64) std::atomic<uint64_t> head{0};  // producer
    alignas(64) std::atomic<uint64_t> tail{0};  // consumer
  };
  Ring& ringForThisThread();
  void drain();
  void flush();
  void onTimer();

  stats::Store& store_;
  const std::string runtime_prefix_;
  const size_t ring_capacity_;
  const uint64_t id_;
  stats::Counter& spans_sent_;
  stats::Counter& timer_flushed_;
  stats::Counter& spans_dropped_;

  std::mutex rings_mu_;
  std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<event::Dispatcher*> main_{nullptr};
  std::atomic<uint64_t> queued_{0};
  std::atomic<uint64_t> min_flush_{kDefaultMinFlushSpans};
  std::atomic<bool> wake_posted_{false};

  // Main thread.
  std::vector<SpanData> pending_;
  event::TimerPtr timer_;
};

}  // namespace legate::tracing
