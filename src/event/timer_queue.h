#pragma once

// All of a dispatcher's timers in one intrusive binary min-heap. The dispatcher
// sleeps until the earliest deadline (epoll_wait's timeout) and then runs what is
// due.
//
// Why: a proxied request arms and cancels a couple of timers (stream idle, route
// timeout) and most of them never fire. Scheduling is a vector sift with no
// allocation once the heap has grown, and no system call.
//
// Pushing a deadline later, and disarming, are lazy: the entry keeps its place
// and remembers the later deadline (in whole milliseconds past its place, so it
// may fire up to 1 ms late) or that it is off. When its place comes due it is
// moved to its real deadline or dropped. A stream's idle timer is pushed later
// on every read and write, and a connection's idle timer is disarmed and
// re-armed around every request: neither touches the heap for it. The cost: the
// loop may wake at a stale deadline once and find nothing due.
//
// Thread: one queue per Dispatcher, used only on its thread.

#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/loop_time.h"

namespace legate::event {

using legate::MonotonicTime; // common/loop_time.h

class TimerQueue {
public:
  // Something schedulable; the queue keeps its position in the heap inside it, so
  // cancel and reschedule are O(log n) without searching.
  class Entry {
  public:
    // Armed: due to expire (not disarmed, not expired since).
    bool scheduled() const { return index_ != kNotScheduled && later_ms_ != kOff; }

  protected:
    Entry() = default;
    ~Entry() = default;
    // Called once per schedule when the deadline has passed; the entry is already
    // out of the queue, so it may schedule itself again or be destroyed.
    virtual void expired() = 0;

  private:
    friend class TimerQueue;
    static constexpr uint32_t kNotScheduled = std::numeric_limits<uint32_t>::max();
    static constexpr uint32_t kOff = std::numeric_limits<uint32_t>::max(); // disarmed
    MonotonicTime deadline_{}; // its place in the heap
    uint32_t index_ = kNotScheduled;
    uint32_t later_ms_ = 0; // due this much after deadline_; kOff: disarmed
  };

  TimerQueue() = default;
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Arms e due at deadline (moving it if it is armed).
  void schedule(Entry& e, MonotonicTime deadline);
  // Disarms e, lazily: it may stay in the queue until its old deadline.
  void disarm(Entry& e) {
    if (e.index_ != Entry::kNotScheduled) e.later_ms_ = Entry::kOff;
  }
  // Takes e out of the queue now (before e is destroyed); a no-op if it is not in it.
  void cancel(Entry& e);

  // Entries held, disarmed ones not yet dropped included.
  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  // When the loop must look next (no later than the earliest deadline, maybe
  // earlier); only when not empty().
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
