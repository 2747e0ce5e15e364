#include "event/dispatcher.h"

#include "common/logger.h"
#include "common/loop_time.h"
#include "event/timer_queue.h"

#include <event2/event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace legate::event {
namespace {

// A timer is an entry in its dispatcher's TimerQueue; one allocation, and arming
// or cancelling it is a sift in the queue's heap.
class TimerImpl : public Timer, public TimerQueue::Entry {
public:
  TimerImpl(TimerQueue& queue, std::function<void()> cb) : queue_(queue), cb_(std::move(cb)) {}
  ~TimerImpl() override { queue_.cancel(*this); }
  void enableTimer(std::chrono::milliseconds after) override {
    queue_.schedule(*this, loopNow() + after);
  }
  void disableTimer() override { queue_.disarm(*this); }
  bool enabled() const override { return scheduled(); }

private:
  void expired() override { cb_(); }

  TimerQueue& queue_;
  std::function<void()> cb_;
};

// epoll's report as FileReadyType bits. An error is reported as readable and
// writable, so the owner's next read or write meets it; a hang-up (both
// directions shut) also as the peer's close.
uint32_t readyTypes(uint32_t epoll_events) {
  uint32_t events = 0;
  if (epoll_events & (EPOLLERR | EPOLLHUP)) {
    events |= FileReadyType::Read | FileReadyType::Write;
  }
  if (epoll_events & EPOLLIN) events |= FileReadyType::Read;
  if (epoll_events & EPOLLOUT) events |= FileReadyType::Write;
  if (epoll_events & (EPOLLRDHUP | EPOLLHUP)) events |= FileReadyType::Closed;
  return events;
}

timeval toTimeval(MonotonicTime due, MonotonicTime now) {
  // Rounded up to whole microseconds: waking a little late is harmless, waking
  // early costs a pointless pass.
  const auto left = std::chrono::ceil<std::chrono::microseconds>(due - now);
  const int64_t us = std::max<int64_t>(0, left.count());
  timeval tv;
  tv.tv_sec = static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  return tv;
}

} // namespace

Dispatcher::Dispatcher(std::string name)
    : name_(std::move(name)), ready_(new epoll_event[kMaxReady]),
      timers_(std::make_unique<TimerQueue>()) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    const std::string err = std::strerror(errno);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw std::runtime_error("event loop " + name_ + ": " + err);
  }
  if (const int err = wake_event_.registerFd<&Dispatcher::onWake>(*this, wake_fd_, this)) {
    wake_event_.reset();
    ::close(epoll_fd_);
    ::close(wake_fd_);
    throw std::runtime_error("event loop " + name_ + ": watching its wake-up fd: " +
                             std::strerror(err));
  }
  timers_->onEarlier(&Dispatcher::onTimerEarlier, this);
}

Dispatcher::~Dispatcher() {
  runDeferredDeletes();
  wake_event_.reset();
  timers_.reset();
  if (base_ != nullptr) {
    event_free(nested_epoll_);
    event_free(nested_timer_);
    event_free(nested_kick_);
    event_base_free(base_);
  }
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

event_base* Dispatcher::base() {
  if (base_ == nullptr) {
    event_config* cfg = event_config_new();
    // Each loop is driven by one thread: no locking inside libevent.
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    base_ = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base_ == nullptr) {
      throw std::runtime_error("event_base_new failed");
    }
    nested_epoll_ = event_new(
        base_, epoll_fd_, EV_READ | EV_PERSIST,
        [](evutil_socket_t, short, void* arg) { static_cast<Dispatcher*>(arg)->runOnce(0); },
        this);
    nested_timer_ = evtimer_new(
        base_,
        [](evutil_socket_t, short, void* arg) {
          auto* self = static_cast<Dispatcher*>(arg);
          self->nested_timer_armed_ = false;
          self->runOnce(0);
        },
        this);
    nested_kick_ = evtimer_new(
        base_, [](evutil_socket_t, short, void* arg) { static_cast<Dispatcher*>(arg)->runOnce(0); },
        this);
    event_add(nested_epoll_, nullptr);
  }
  return base_;
}

void Dispatcher::run() {
  thread_id_ = std::this_thread::get_id();
  exit_requested_ = false;
  // Callbacks posted before run() (exit() included) are picked up by the wake
  // event on the first pass.
  while (!exit_requested_) {
    if (base_ != nullptr) {
      runNested();
      break;
    }
    runOnce(msUntilNextWork());
  }
  runDeferredDeletes();
}

int Dispatcher::msUntilNextWork() const {
  if (!activated_.empty() || !to_delete_.empty()) {
    return 0;
  }
  if (timers_->empty()) {
    return -1;
  }
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(timers_->earliest() -
                                                                 std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
}

void Dispatcher::runOnce(int timeout_ms) {
  in_pass_ = true;
  {
    LoopTimeScope loop_time; // each callback below refreshes it first
    pollReady(timeout_ms);
    runActivated();
    runDue();
    runDeferredDeletes();
  }
  in_pass_ = false;
  if (nested_) {
    if (exit_requested_) {
      event_base_loopbreak(base_);
    } else {
      nestedNeedsWork();
    }
  }
}

void Dispatcher::pollReady(int timeout_ms) {
  int n = ::epoll_wait(epoll_fd_, ready_.get(), kMaxReady, timeout_ms);
  if (n < 0) {
    if (errno != EINTR) {
      log::get("main").error("event loop {}: epoll_wait: {}", name_, std::strerror(errno));
    }
    return;
  }
  ready_count_ = n;
  const bool small_batch = n <= kSmallBatch;
  for (ready_next_ = 0; ready_next_ < ready_count_;) {
    FileEvent* fe = static_cast<FileEvent*>(ready_[ready_next_++].data.ptr);
    if (fe == nullptr) {
      continue; // reset by an earlier callback of this batch
    }
    // Activations waiting for this pass ride along.
    const uint32_t events = readyTypes(ready_[ready_next_ - 1].events) | fe->pending_;
    fe->pending_ = 0;
    LoopTimeScope::refresh();
    fe->cb_(fe->owner_, events);
    if (small_batch) runActivated();
  }
  ready_count_ = ready_next_ = 0;
}

void Dispatcher::runActivated() {
  if (activated_.empty()) {
    return;
  }
  // Only what was activated before this pass: an owner that re-activates itself
  // (a read budget spent) runs again after the next wait, not in a loop here.
  activating_.swap(activated_);
  for (FileEvent* fe : activating_) {
    if (fe != nullptr) fe->in_activating_ = 1; // same slots, the other list
  }
  for (size_t i = 0; i < activating_.size(); ++i) {
    FileEvent* fe = activating_[i];
    if (fe == nullptr) {
      continue;
    }
    fe->queued_ = 0;
    const uint32_t events = fe->pending_;
    fe->pending_ = 0;
    if (events != 0) {
      LoopTimeScope::refresh();
      fe->cb_(fe->owner_, events);
    }
  }
  activating_.clear();
}

void Dispatcher::runDue() {
  if (!timers_->empty()) {
    const MonotonicTime now = std::chrono::steady_clock::now();
    if (timers_->earliest() <= now) {
      timers_->runExpired(now);
    }
  }
}

void Dispatcher::runNested() {
  nested_ = true;
  nestedNeedsWork();
  event_base_loop(base_, 0);
  nested_ = false;
}

void Dispatcher::nestedNeedsWork() {
  if (in_pass_) {
    return; // the pass looks again when it ends
  }
  if ((!activated_.empty() || !to_delete_.empty()) && !evtimer_pending(nested_kick_, nullptr)) {
    // Not event_active(): libevent runs events activated from a callback in the
    // same pass, so an owner that re-activates itself every pass would keep
    // libevent from ever polling its own fds (signals, admin, c-ares).
    const timeval now{0, 0};
    evtimer_add(nested_kick_, &now);
  }
  if (!timers_->empty()) {
    const MonotonicTime due = timers_->earliest();
    if (!nested_timer_armed_ || due < nested_timer_due_) {
      const timeval tv = toTimeval(due, std::chrono::steady_clock::now());
      evtimer_add(nested_timer_, &tv);
      nested_timer_armed_ = true;
      nested_timer_due_ = due;
    }
  }
}

void Dispatcher::onTimerEarlier(void* self, MonotonicTime) {
  auto* d = static_cast<Dispatcher*>(self);
  if (d->nested_) {
    d->nestedNeedsWork();
  }
}

void Dispatcher::exit() {
  post([this] { exit_requested_ = true; });
}

void Dispatcher::post(std::function<void()> cb) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    was_empty = posted_.empty();
    posted_.push_back(std::move(cb));
  }
  if (was_empty) {
    const uint64_t one = 1;
    ssize_t rc;
    do {
      rc = ::write(wake_fd_, &one, sizeof(one));
    } while (rc < 0 && errno == EINTR);
  }
}

void Dispatcher::onWake(uint32_t) {
  uint64_t v;
  while (::read(wake_fd_, &v, sizeof(v)) > 0) {
  }
  runPosted();
}

bool Dispatcher::isThreadSafe() const {
  return thread_id_ == std::thread::id() || thread_id_ == std::this_thread::get_id();
}

void Dispatcher::runPosted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(post_mu_);
    batch.swap(posted_);
  }
  for (auto& cb : batch) {
    cb();
  }
}

TimerPtr Dispatcher::createTimer(std::function<void()> cb) {
  return std::make_unique<TimerImpl>(*timers_, std::move(cb));
}

int FileEvent::registerImpl(Dispatcher& dispatcher, int fd, Callback cb, void* owner) {
  dispatcher_ = &dispatcher;
  owner_ = owner;
  cb_ = cb;
  fd_ = fd;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = this;
  if (::epoll_ctl(dispatcher.epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    log::get("main").error("event loop {}: watching fd {}: {}", dispatcher.name_, fd,
                           std::strerror(err));
    activate(FileReadyType::Read | FileReadyType::Write); // the owner's chance to act on it
    return err;
  }
  return 0;
}

void FileEvent::reset() {
  if (dispatcher_ == nullptr) {
    return;
  }
  ::epoll_ctl(dispatcher_->epoll_fd_, EPOLL_CTL_DEL, fd_, nullptr);
  dispatcher_->forget(*this);
  dispatcher_ = nullptr;
  owner_ = nullptr;
  cb_ = nullptr;
  fd_ = -1;
  pending_ = 0;
  queued_ = 0;
  in_activating_ = 0;
}

void Dispatcher::forget(FileEvent& fe) {
  // The batch being run and the activation lists may still point here.
  for (int i = ready_next_; i < ready_count_; ++i) {
    if (ready_[i].data.ptr == &fe) ready_[i].data.ptr = nullptr;
  }
  if (fe.queued_) {
    std::vector<FileEvent*>& list = fe.in_activating_ ? activating_ : activated_;
    if (fe.slot_ < list.size() && list[fe.slot_] == &fe) {
      list[fe.slot_] = nullptr;
    } else {
      std::replace(list.begin(), list.end(), &fe, static_cast<FileEvent*>(nullptr));
    }
  }
}

void FileEvent::activate(uint32_t events) {
  pending_ = pending_ | (events & 0x7);
  if (!queued_) {
    std::vector<FileEvent*>& list = dispatcher_->activated_;
    queued_ = 1;
    in_activating_ = 0;
    slot_ = list.size() < kNoSlot ? static_cast<uint32_t>(list.size()) : kNoSlot;
    list.push_back(this);
    if (dispatcher_->nested_) dispatcher_->nestedNeedsWork();
  }
}

void Dispatcher::deferredDelete(std::unique_ptr<DeferredDeletable> obj) {
  to_delete_.push_back(std::move(obj));
  if (to_delete_.size() == 1 && nested_) {
    nestedNeedsWork();
  }
}

void Dispatcher::runDeferredDeletes() {
  // Destructors may defer more deletions; loop until quiet.
  // The two vectors trade places and keep their capacity, so steady traffic
  // allocates nothing here.
  if (to_delete_.empty()) {
    return;
  }
  LoopTimeScope::refresh(); // destructors may record times
  while (!to_delete_.empty()) {
    deleting_batch_.swap(to_delete_);
    deleting_batch_.clear();
  }
}

} // namespace legate::event
