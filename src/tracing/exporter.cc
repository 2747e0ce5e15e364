#include "tracing/exporter.h"

#include <algorithm>
#include <utility>

#include "runtime/runtime.h"

namespace legate::tracing {
namespace {

std::atomic<uint64_t> next_exporter_id{1};

// This thread's ring of each exporter it reported to (a thread reports to one
// or two exporters in practice; ids are never reused).
struct ThreadRings {
  std::vector<std::pair<uint64_t, void*>> rings;
};
thread_local ThreadRings t_rings;

}  // namespace

BatchingExporter::BatchingExporter(stats::Store& store, std::string stat_prefix,
                                   std::string runtime_prefix, size_t ring_capacity)
    : store_(store),
      runtime_prefix_(std::move(runtime_prefix)),
      ring_capacity_(ring_capacity),
      id_(next_exporter_id.fetch_add(1)),
      spans_sent_(store.counter(stat_prefix + "spans_sent")),
      timer_flushed_(store.counter(stat_prefix + "timer_flushed")),
      spans_dropped_(store.counter(stat_prefix + "spans_dropped")) {}

BatchingExporter::~BatchingExporter() {
  for (auto& r : rings_) {
    const uint64_t head = r->head.load(std::memory_order_acquire);
    for (uint64_t i = r->tail.load(std::memory_order_relaxed); i < head; ++i) {
      delete r->slots[i % r->capacity];
    }
  }
}

BatchingExporter::Ring& BatchingExporter::ringForThisThread() {
  for (const auto& [id, ring] : t_rings.rings) {
    if (id == id_)
      return *static_cast<Ring*>(ring);
  }
  auto ring = std::make_unique<Ring>(ring_capacity_);
  Ring* raw = ring.get();
  {
    std::lock_guard<std::mutex> lock(rings_mu_);
    rings_.push_back(std::move(ring));
  }
  t_rings.rings.emplace_back(id_, raw);
  return *raw;
}

void BatchingExporter::report(SpanData&& span) {
  event::Dispatcher* main = main_.load(std::memory_order_acquire);
  if (main == nullptr) {
    spans_dropped_.inc();  // not started (validation only)
    return;
  }
  Ring& r = ringForThisThread();
  const uint64_t head = r.head.load(std::memory_order_relaxed);
  if (head - r.tail.load(std::memory_order_acquire) >= r.capacity) {
    spans_dropped_.inc();
    return;
  }
  r.slots[head % r.capacity] = new SpanData(std::move(span));
  r.head.store(head + 1, std::memory_order_release);
  const uint64_t queued = queued_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (queued >= min_flush_.load(std::memory_order_relaxed) &&
      !wake_posted_.exchange(true, std::memory_order_acq_rel)) {
    std::weak_ptr<BatchingExporter> weak = weak_from_this();
    main->post([weak] {
      if (auto self = weak.lock()) {
        self->wake_posted_.store(false, std::memory_order_release);
        self->drain();
        if (self->pending_.size() >= self->min_flush_.load(std::memory_order_relaxed)) {
          self->flush();
        }
      }
    });
  }
}

void BatchingExporter::start(event::Dispatcher& main) {
  if (main_.load() != nullptr)
    return;
  onStart(main);
  const auto snap = runtime::snapshot();
  min_flush_.store(std::max<uint64_t>(
      1, snap->getInteger(runtime_prefix_ + "min_flush_spans", kDefaultMinFlushSpans)));
  timer_ = main.createTimer([this] { onTimer(); });
  timer_->enableTimer(std::chrono::milliseconds(
      snap->getInteger(runtime_prefix_ + "flush_interval_ms", kDefaultFlushIntervalMs)));
  main_.store(&main, std::memory_order_release);
}

void BatchingExporter::drain() {
  std::vector<Ring*> rings;
  {
    std::lock_guard<std::mutex> lock(rings_mu_);
    rings.reserve(rings_.size());
    for (auto& r : rings_)
      rings.push_back(r.get());
  }
  uint64_t taken = 0;
  for (Ring* r : rings) {
    const uint64_t tail = r->tail.load(std::memory_order_relaxed);
    const uint64_t head = r->head.load(std::memory_order_acquire);
    for (uint64_t i = tail; i < head; ++i) {
      std::unique_ptr<SpanData> s(r->slots[i % r->capacity]);
      pending_.push_back(std::move(*s));
    }
    taken += head - tail;
    r->tail.store(head, std::memory_order_release);
  }
  queued_.fetch_sub(taken, std::memory_order_relaxed);
}

void BatchingExporter::flush() {
  if (pending_.empty())
    return;
  spans_sent_.inc(pending_.size());
  std::vector<SpanData> batch;
  batch.swap(pending_);
  send(std::move(batch));
}

void BatchingExporter::onTimer() {
  timer_flushed_.inc();
  drain();
  flush();
  const auto snap = runtime::snapshot();
  min_flush_.store(std::max<uint64_t>(
      1, snap->getInteger(runtime_prefix_ + "min_flush_spans", kDefaultMinFlushSpans)));
  timer_->enableTimer(std::chrono::milliseconds(
      snap->getInteger(runtime_prefix_ + "flush_interval_ms", kDefaultFlushIntervalMs)));
}

}  // namespace legate::tracing
