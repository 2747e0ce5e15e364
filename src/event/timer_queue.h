#pragma once

// All of a dispatcher's timers in one intrusive min-heap. The dispatcher
// sleeps until the earliest deadline (epoll_wait's timeout) and then runs what is
// due.
//
// Why: a proxied request arms and cancels a couple of timers (stream idle, route
// timeout) and most of them never fire. Scheduling is a vector sift with no
// allocation once the heap has grown, and no system call.
//
// The heap is 4-ary and holds each entry's deadline beside its pointer, so a
// sift compares keys in the heap's own array (a node's four children share one
// cache line) and touches an entry only to tell it its new place. Cancelling a
// stream's timers moves the heap's last entry into the hole and sifts it down:
// with hundreds of streams in flight, a binary heap of bare pointers read two
// cold entries per level over twice the levels (perf put those sifts at about
// 0.2 µs of a request at 400 connections).
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
    uint32_t index_ = kNotScheduled; // its slot in the heap
    uint32_t later_ms_ = 0;          // due this much after its slot's deadline; kOff: disarmed
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
  MonotonicTime earliest() const { return heap_.front().deadline; }
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
  // A heap slot: the entry and the deadline it is ordered by (its place).
  struct Slot {
    MonotonicTime deadline;
    Entry* entry;
  };
  static constexpr uint32_t kArity = 4;
  static uint32_t parentOf(uint32_t i) { return (i - 1) / kArity; }
  static uint32_t firstChildOf(uint32_t i) { return kArity * i + 1; }

  void siftUp(uint32_t i, Slot s);
  void siftDown(uint32_t i, Slot s);
  // Puts s in slot i, from which it is sifted whichever way it belongs.
  void resettle(uint32_t i, Slot s);
  void place(uint32_t i, Slot s) {
    heap_[i] = s;
    s.entry->index_ = i;
  }
  void removeAt(uint32_t i);

  std::vector<Slot> heap_;
  EarlierFn on_earlier_ = nullptr;
  void* on_earlier_ctx_ = nullptr;
  bool running_ = false;        // inside runExpired()
  MonotonicTime running_now_{}; // the time runExpired() is catching up to
};

} // namespace legate::event
