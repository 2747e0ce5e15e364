#pragma once

// All of a dispatcher's timers in one intrusive binary min-heap, behind a single
// libevent timer armed for the earliest deadline.
//
// Why: a proxied request arms and cancels a couple of timers (stream idle, route
// timeout) and most of them never fire. Through libevent each of those is an
// evtimer_add/event_del on its own heap plus a clock read inside libevent; here
// scheduling is a vector sift with no allocation once the heap has grown, and
// libevent is touched only when the earliest deadline moves earlier.
//
// Thread: one queue per Dispatcher, used only on its thread.

#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

#include <event2/event_struct.h>

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

  explicit TimerQueue(event_base* base);
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Puts e in the queue due at deadline (moving it if it already is).
  void schedule(Entry& e, MonotonicTime deadline);
  // Takes e out of the queue; a no-op if it is not in it.
  void cancel(Entry& e);

  size_t size() const { return heap_.size(); }
  // Runs every entry due by now; what libevent's timer calls. Public for tests.
  void runExpired(MonotonicTime now);

private:
  static void onTimer(evutil_socket_t, short, void* arg);
  void armForEarliest(MonotonicTime now);
  void siftUp(uint32_t i);
  void siftDown(uint32_t i);
  void place(Entry* e, uint32_t i) {
    heap_[i] = e;
    e->index_ = i;
  }
  void removeAt(uint32_t i);

  std::vector<Entry*> heap_;
  ::event ev_;
  bool armed_ = false;          // ev_ is pending in libevent
  MonotonicTime armed_for_{};   // ... due at this time
  bool running_ = false;        // inside runExpired()
  MonotonicTime running_now_{}; // the time runExpired() is catching up to
};

} // namespace legate::event
