#include "event/dispatcher.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace legate::event {
namespace {

// A timer whose libevent event is embedded (one allocation per timer) and
// armed lazily: enableTimer() only touches libevent's timer heap when the new
// deadline is earlier than the one already armed. Pushing a deadline later (a
// stream's idle timeout on every read, say) just records it; when the armed
// event fires early, it re-arms for the rest. disableTimer() only clears the
// deadline; a stale armed event then fires once and does nothing.
class TimerImpl : public Timer {
public:
  TimerImpl(event_base* base, std::function<void()> cb) : cb_(std::move(cb)) {
    evtimer_assign(&ev_, base, &TimerImpl::onFire, this);
  }
  ~TimerImpl() override { event_del(&ev_); }
  void enableTimer(std::chrono::milliseconds after) override {
    const MonotonicTime now = std::chrono::steady_clock::now();
    deadline_ = now + after;
    enabled_ = true;
    if (armed_ && armed_for_ <= deadline_) {
      return; // fires no later than needed; onFire re-arms for the rest
    }
    arm(now);
  }
  void disableTimer() override { enabled_ = false; }
  bool enabled() const override { return enabled_; }

private:
  void arm(MonotonicTime now) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - now);
    const int64_t us = std::max<int64_t>(0, left.count());
    timeval tv;
    tv.tv_sec = static_cast<time_t>(us / 1000000);
    tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
    evtimer_add(&ev_, &tv);
    armed_ = true;
    armed_for_ = deadline_;
  }
  static void onFire(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<TimerImpl*>(arg);
    self->armed_ = false;
    if (!self->enabled_) {
      return;
    }
    const MonotonicTime now = std::chrono::steady_clock::now();
    if (now < self->deadline_) {
      self->arm(now); // the deadline moved on since this was armed
      return;
    }
    self->enabled_ = false;
    self->cb_();
  }

  std::function<void()> cb_;
  MonotonicTime deadline_{};
  MonotonicTime armed_for_{};
  bool enabled_ = false;
  bool armed_ = false; // ev_ is in libevent's timer heap, due at armed_for_
  ::event ev_;
};

class FileEventImpl : public FileEvent {
public:
  FileEventImpl(event_base* base, int fd, std::function<void(uint32_t)> cb) : cb_(std::move(cb)) {
    event_assign(&ev_, base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
                 &FileEventImpl::onReady, this);
    event_add(&ev_, nullptr);
  }
  ~FileEventImpl() override { event_del(&ev_); }
  void activate(uint32_t events) override {
    short what = 0;
    if (events & FileReadyType::Read) what |= EV_READ;
    if (events & FileReadyType::Write) what |= EV_WRITE;
    if (events & FileReadyType::Closed) what |= EV_CLOSED;
    event_active(&ev_, what, 0);
  }

private:
  static void onReady(evutil_socket_t, short what, void* arg) {
    uint32_t events = 0;
    if (what & EV_READ) events |= FileReadyType::Read;
    if (what & EV_WRITE) events |= FileReadyType::Write;
    if (what & EV_CLOSED) events |= FileReadyType::Closed;
    static_cast<FileEventImpl*>(arg)->cb_(events);
  }
  std::function<void(uint32_t)> cb_;
  ::event ev_;
};

} // namespace

Dispatcher::Dispatcher(std::string name) : name_(std::move(name)) {
  event_config* cfg = event_config_new();
  // Each loop is driven by one thread: no locking inside libevent.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (base_ == nullptr) {
    throw std::runtime_error("event_base_new failed");
  }
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  wake_event_ = event_new(
      base_, wake_fd_, EV_READ | EV_PERSIST,
      [](evutil_socket_t fd, short, void* arg) {
        uint64_t v;
        while (::read(fd, &v, sizeof(v)) > 0) {
        }
        static_cast<Dispatcher*>(arg)->runPosted();
      },
      this);
  event_add(wake_event_, nullptr);
  deferred_event_ = event_new(
      base_, -1, 0,
      [](evutil_socket_t, short, void* arg) { static_cast<Dispatcher*>(arg)->runDeferredDeletes(); },
      this);
}

Dispatcher::~Dispatcher() {
  runDeferredDeletes();
  event_free(deferred_event_);
  event_free(wake_event_);
  ::close(wake_fd_);
  event_base_free(base_);
}

void Dispatcher::run() {
  thread_id_ = std::this_thread::get_id();
  // Callbacks posted before run() (exit() included) are picked up by the wake
  // event on the first iteration, inside the loop, where loopbreak works.
  event_base_loop(base_, 0);
  runDeferredDeletes();
}

void Dispatcher::exit() {
  post([this] { event_base_loopbreak(base_); });
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
  return std::make_unique<TimerImpl>(base_, std::move(cb));
}

FileEventPtr Dispatcher::createFileEvent(int fd, std::function<void(uint32_t)> cb) {
  return std::make_unique<FileEventImpl>(base_, fd, std::move(cb));
}

void Dispatcher::deferredDelete(std::unique_ptr<DeferredDeletable> obj) {
  to_delete_.push_back(std::move(obj));
  if (to_delete_.size() == 1) {
    event_active(deferred_event_, 0, 0);
  }
}

void Dispatcher::runDeferredDeletes() {
  // Destructors may defer more deletions; loop until quiet.
  while (!to_delete_.empty()) {
    std::vector<std::unique_ptr<DeferredDeletable>> batch;
    batch.swap(to_delete_);
    batch.clear();
  }
}

} // namespace legate::event
