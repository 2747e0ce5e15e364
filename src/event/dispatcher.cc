#include "event/dispatcher.h"

#include "event/timer_queue.h"

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

// A timer is an entry in its dispatcher's TimerQueue; one allocation, and arming
// or cancelling it touches libevent only when the earliest deadline moves earlier.
class TimerImpl : public Timer, public TimerQueue::Entry {
public:
  TimerImpl(TimerQueue& queue, std::function<void()> cb) : queue_(queue), cb_(std::move(cb)) {}
  ~TimerImpl() override { queue_.cancel(*this); }
  void enableTimer(std::chrono::milliseconds after) override {
    queue_.schedule(*this, std::chrono::steady_clock::now() + after);
  }
  void disableTimer() override { queue_.cancel(*this); }
  bool enabled() const override { return scheduled(); }

private:
  void expired() override { cb_(); }

  TimerQueue& queue_;
  std::function<void()> cb_;
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
  timers_ = std::make_unique<TimerQueue>(base_);
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
  timers_.reset();
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
  return std::make_unique<TimerImpl>(*timers_, std::move(cb));
}

void FileEvent::registerImpl(Dispatcher& dispatcher, int fd, LibeventCb cb, void* owner) {
  event_assign(&ev_, dispatcher.base(), fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
               cb, owner);
  event_add(&ev_, nullptr);
}

bool FileEvent::registered() const { return event_initialized(&ev_) != 0; }

void FileEvent::reset() {
  if (registered()) {
    event_del(&ev_);
    ev_ = {}; // libevent allows reusing the memory once deleted; zero means "not registered"
  }
}

void FileEvent::activate(uint32_t events) {
  short what = 0;
  if (events & FileReadyType::Read) what |= EV_READ;
  if (events & FileReadyType::Write) what |= EV_WRITE;
  if (events & FileReadyType::Closed) what |= EV_CLOSED;
  event_active(&ev_, what, 0);
}

uint32_t FileEvent::readyTypes(short what) {
  uint32_t events = 0;
  if (what & EV_READ) events |= FileReadyType::Read;
  if (what & EV_WRITE) events |= FileReadyType::Write;
  if (what & EV_CLOSED) events |= FileReadyType::Closed;
  return events;
}

void Dispatcher::deferredDelete(std::unique_ptr<DeferredDeletable> obj) {
  to_delete_.push_back(std::move(obj));
  if (to_delete_.size() == 1) {
    event_active(deferred_event_, 0, 0);
  }
}

void Dispatcher::runDeferredDeletes() {
  // Destructors may defer more deletions; loop until quiet.
  // The two vectors trade places and keep their capacity, so steady traffic
  // allocates nothing here.
  while (!to_delete_.empty()) {
    deleting_batch_.swap(to_delete_);
    deleting_batch_.clear();
  }
}

} // namespace legate::event
