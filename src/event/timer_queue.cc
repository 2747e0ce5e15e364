#include "event/timer_queue.h"

#include <event2/event.h>

#include <algorithm>

namespace legate::event {

TimerQueue::TimerQueue(event_base* base) {
  evtimer_assign(&ev_, base, &TimerQueue::onTimer, this);
}

TimerQueue::~TimerQueue() {
  event_del(&ev_);
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
  if (e.scheduled()) {
    const MonotonicTime old = e.deadline_;
    e.deadline_ = deadline;
    if (deadline < old) {
      siftUp(e.index_);
    } else {
      siftDown(e.index_);
    }
  } else {
    e.deadline_ = deadline;
    heap_.push_back(&e);
    e.index_ = static_cast<uint32_t>(heap_.size() - 1);
    siftUp(e.index_);
  }
  // Only an earlier earliest deadline needs libevent; a later one is caught when
  // the armed event fires early and re-arms.
  if (!running_ && heap_.front() == &e && (!armed_ || deadline < armed_for_)) {
    armForEarliest(std::chrono::steady_clock::now());
  }
}

void TimerQueue::cancel(Entry& e) {
  if (e.scheduled()) {
    removeAt(e.index_);
  }
}

void TimerQueue::removeAt(uint32_t i) {
  Entry* gone = heap_[i];
  gone->index_ = Entry::kNotScheduled;
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
    removeAt(0);
    e->expired(); // may schedule, cancel or destroy any entry, itself included
  }
  running_ = false;
  if (!heap_.empty()) {
    armForEarliest(std::chrono::steady_clock::now());
  }
}

void TimerQueue::armForEarliest(MonotonicTime now) {
  const MonotonicTime due = heap_.front()->deadline_;
  // Rounded up to whole microseconds: waking a little late is harmless, waking
  // early costs a pointless pass.
  const auto left = std::chrono::ceil<std::chrono::microseconds>(due - now);
  const int64_t us = std::max<int64_t>(0, left.count());
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  evtimer_add(&ev_, &tv);
  armed_ = true;
  armed_for_ = due;
}

void TimerQueue::onTimer(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<TimerQueue*>(arg);
  self->armed_ = false;
  self->runExpired(std::chrono::steady_clock::now());
}

} // namespace legate::event
