#pragma once

// All of a dispatcher's timers in one intrusive binary min-heap. The dispatcher
// sleeps until the earliest deadline (epoll_wait's timeout) and then runs what is
// due.
//
// Why: a proxied request arms and cancels a couple of timers (stream idle, route
// timeout) and most of them never fire. Scheduling is a vector sift with no
// allocation once the heap has grown, and no system call.
//
// Thread: one queue per Dispatcher, used only on its thread.

#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

namespace legate::event {

using MonotonicTime = std::chrono::steady_clock::time_point;

class TimerQueue {
public:
  // Something schedulable; the queue keeps its position in the heap inside it, so
  // cancel and reschedule are O(log n) without searching.
  class Entry {
  public:
    bool scheduled() const { return index_ != kNotScheduled; }

  protected:
    Entry() = default;
    ~Entry() = default;
    // Called once per schedule when the deadline has passed; the entry is already
    // out of the queue, so it may schedule itself again or be destroyed.
    virtual void expired() = 0;

  private:
    friend class TimerQueue;
    static constexpr uint32_t kNotScheduled = std::numeric_limits<uint32_t>::max();
    MonotonicTime deadline_{};
    uint32_t index_ = kNotScheduled;
  };

  TimerQueue() = default;
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Puts e in the queue due at deadline (moving it if it already is).
  void schedule(Entry& e, MonotonicTime deadline);
  // Takes e out of the queue; a no-op if it is not in it.
  void cancel(Entry& e);

  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  // The earliest deadline; only when not empty().
  MonotonicTime earliest() const { return heap_.front()->deadline_; }
  // Runs every entry due by now.
  void runExpired(MonotonicTime now);

  // Called (outside runExpired) when a schedule() makes the earliest deadline
  // earlier, for a loop that has to re-arm something to wake in time.
  using EarlierFn = void (*)(void* ctx, MonotonicTime due);
  void onEarlier(EarlierFn fn, void* ctx) {
    on_earlier_ = fn;
    on_earlier_ctx_ = ctx;
  }

private:
  void siftUp(uint32_t i);
  void siftDown(uint32_t i);
  void place(Entry* e, uint32_t i) {
    heap_[i] = e;
    e->index_ = i;
  }
  void removeAt(uint32_t i);

  std::vector<Entry*> heap_;
  EarlierFn on_earlier_ = nullptr;
  void* on_earlier_ctx_ = nullptr;
  bool running_ = false;        // inside runExpired()
  MonotonicTime running_now_{}; // the time runExpired() is catching up to
};

} // namespace legate::event
