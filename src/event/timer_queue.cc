#include "event/timer_queue.h"

#include "common/loop_time.h"

namespace legate::event {

TimerQueue::~TimerQueue() {
  for (Entry* e : heap_) {
    e->index_ = Entry::kNotScheduled;
  }
}

void TimerQueue::schedule(Entry& e, MonotonicTime deadline) {
  if (running_ && deadline <= running_now_) {
    // Re-armed from inside an expiry callback with no delay: due on the next pass,
    // not this one, so a timer that always re-arms cannot spin this loop forever.
    deadline = running_now_ + std::chrono::nanoseconds(1);
  }
  const bool now_earliest = heap_.empty() || deadline < heap_.front()->deadline_;
  if (e.index_ != Entry::kNotScheduled) {
    const MonotonicTime old = e.deadline_;
    if (deadline >= old) {
      // Later (the usual re-arm): stay put, remember how much later.
      const auto later = std::chrono::ceil<std::chrono::milliseconds>(deadline - old).count();
      if (later < Entry::kOff) {
        e.later_ms_ = static_cast<uint32_t>(later);
        return;
      }
    }
    e.deadline_ = deadline;
    e.later_ms_ = 0;
    if (deadline < old) {
      siftUp(e.index_);
    } else {
      siftDown(e.index_);
    }
  } else {
    e.deadline_ = deadline;
    e.later_ms_ = 0;
    heap_.push_back(&e);
    e.index_ = static_cast<uint32_t>(heap_.size() - 1);
    siftUp(e.index_);
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
  Entry* gone = heap_[i];
  gone->index_ = Entry::kNotScheduled;
  gone->later_ms_ = 0;
  Entry* last = heap_.back();
  heap_.pop_back();
  if (last == gone) {
    return;
  }
  place(last, i);
  if (i > 0 && last->deadline_ < heap_[(i - 1) / 2]->deadline_) {
    siftUp(i);
  } else {
    siftDown(i);
  }
}

void TimerQueue::siftUp(uint32_t i) {
  Entry* e = heap_[i];
  while (i > 0) {
    const uint32_t parent = (i - 1) / 2;
    if (!(e->deadline_ < heap_[parent]->deadline_)) break;
    place(heap_[parent], i);
    i = parent;
  }
  place(e, i);
}

void TimerQueue::siftDown(uint32_t i) {
  Entry* e = heap_[i];
  const uint32_t n = static_cast<uint32_t>(heap_.size());
  while (true) {
    uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->deadline_ < heap_[child]->deadline_) ++child;
    if (!(heap_[child]->deadline_ < e->deadline_)) break;
    place(heap_[child], i);
    i = child;
  }
  place(e, i);
}

void TimerQueue::runExpired(MonotonicTime now) {
  running_ = true;
  running_now_ = now;
  while (!heap_.empty() && heap_.front()->deadline_ <= now) {
    Entry* e = heap_.front();
    if (e->later_ms_ == Entry::kOff) {
      removeAt(0); // disarmed
      continue;
    }
    if (e->later_ms_ != 0) {
      // Pushed later: to its real place (which may be due too).
      e->deadline_ += std::chrono::milliseconds(e->later_ms_);
      e->later_ms_ = 0;
      siftDown(0);
      continue;
    }
    removeAt(0);
    LoopTimeScope::refresh();
    e->expired(); // may schedule, cancel or destroy any entry, itself included
  }
  running_ = false;
}

} // namespace legate::event
