#include "event/timer_queue.h"

#include "common/loop_time.h"

namespace legate::event {

TimerQueue::~TimerQueue() {
  for (const Slot& s : heap_) {
    s.entry->index_ = Entry::kNotScheduled;
  }
}

void TimerQueue::schedule(Entry& e, MonotonicTime deadline) {
  if (running_ && deadline <= running_now_) {
    // Re-armed from inside an expiry callback with no delay: due on the next pass,
    // not this one, so a timer that always re-arms cannot spin this loop forever.
    deadline = running_now_ + std::chrono::nanoseconds(1);
  }
  const bool now_earliest = heap_.empty() || deadline < heap_.front().deadline;
  if (e.index_ != Entry::kNotScheduled) {
    const MonotonicTime old = heap_[e.index_].deadline;
    if (deadline >= old) {
      // Later (the usual re-arm): stay put, remember how much later.
      const auto later = std::chrono::ceil<std::chrono::milliseconds>(deadline - old).count();
      if (later < Entry::kOff) {
        e.later_ms_ = static_cast<uint32_t>(later);
        return;
      }
    }
    e.later_ms_ = 0;
    if (deadline < old) {
      siftUp(e.index_, {deadline, &e});
    } else {
      siftDown(e.index_, {deadline, &e});
    }
  } else {
    e.later_ms_ = 0;
    heap_.push_back({deadline, &e});
    siftUp(static_cast<uint32_t>(heap_.size() - 1), {deadline, &e});
  }
  // Only an earlier earliest deadline needs a wake-up re-armed; a later one is
  // caught when the loop wakes early and finds nothing due.
  if (on_earlier_ != nullptr && !running_ && now_earliest) {
    on_earlier_(on_earlier_ctx_, deadline);
  }
}

void TimerQueue::cancel(Entry& e) {
  if (e.index_ != Entry::kNotScheduled) { // disarmed ones too
    removeAt(e.index_);
  }
}

void TimerQueue::removeAt(uint32_t i) {
  Entry* gone = heap_[i].entry;
  gone->index_ = Entry::kNotScheduled;
  gone->later_ms_ = 0;
  const Slot last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    resettle(i, last);
  }
}

void TimerQueue::resettle(uint32_t i, Slot s) {
  if (i > 0 && s.deadline < heap_[parentOf(i)].deadline) {
    siftUp(i, s);
  } else {
    siftDown(i, s);
  }
}

// Both sifts carry s down (or up) the path, moving each slot it passes by one
// level, and write s once where it stops.
void TimerQueue::siftUp(uint32_t i, Slot s) {
  while (i > 0) {
    const uint32_t parent = parentOf(i);
    if (!(s.deadline < heap_[parent].deadline)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, s);
}

void TimerQueue::siftDown(uint32_t i, Slot s) {
  const uint32_t n = static_cast<uint32_t>(heap_.size());
  while (true) {
    const uint32_t first = firstChildOf(i);
    if (first >= n) break;
    const uint32_t end = first + kArity < n ? first + kArity : n;
    uint32_t least = first;
    for (uint32_t c = first + 1; c < end; ++c) {
      if (heap_[c].deadline < heap_[least].deadline) least = c;
    }
    if (!(heap_[least].deadline < s.deadline)) break;
    place(i, heap_[least]);
    i = least;
  }
  place(i, s);
}

void TimerQueue::runExpired(MonotonicTime now) {
  running_ = true;
  running_now_ = now;
  while (!heap_.empty() && heap_.front().deadline <= now) {
    const Slot top = heap_.front();
    Entry* e = top.entry;
    if (e->later_ms_ == Entry::kOff) {
      removeAt(0); // disarmed
      continue;
    }
    if (e->later_ms_ != 0) {
      // Pushed later: to its real place (which may be due too).
      const MonotonicTime real = top.deadline + std::chrono::milliseconds(e->later_ms_);
      e->later_ms_ = 0;
      siftDown(0, {real, e});
      continue;
    }
    removeAt(0);
    LoopTimeScope::refresh();
    e->expired(); // may schedule, cancel or destroy any entry, itself included
  }
  running_ = false;
}

} // namespace legate::event
