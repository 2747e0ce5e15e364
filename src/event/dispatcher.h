#pragma once

// One event loop per thread: the main thread's and each worker's. The loop is
// our own over epoll: file events, timers (one heap, the wait's timeout), posted
// callbacks and deferred deletes. libevent is only there for what is built on
// it (the admin server's evhttp, signals, c-ares sockets): a dispatcher whose
// base() was asked for runs libevent's loop with the epoll set nested in it.
//
// Thread: a Dispatcher is driven by exactly one thread (the one calling run()).
// post() and exit() may be called from any thread; everything else only from
// the loop's own thread. Timers and file events must be destroyed on that
// thread, before their Dispatcher.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/loop_time.h"
#include "event/timer_queue.h"

struct epoll_event;
struct event;
struct event_base;

namespace legate::event {

using MonotonicTime = std::chrono::steady_clock::time_point;

// A one-shot timer; enableTimer() re-arms it, destruction cancels it.
class Timer {
public:
  virtual ~Timer() = default;
  virtual void enableTimer(std::chrono::milliseconds after) = 0;
  virtual void disableTimer() = 0;
  virtual bool enabled() const = 0;
};
using TimerPtr = std::unique_ptr<Timer>;

// A timer that lives inside its owner: no allocation to create it, arming or
// cancelling it is a sift in the dispatcher's TimerQueue. For timers made per
// request (the stream idle timer, the route timeout). The callback is a member
// function of the owner, bound at compile time. Unset (false) until set();
// reset() cancels it and unsets it again. Destroy it on the dispatcher's thread.
class InlineTimer final : private TimerQueue::Entry {
public:
  InlineTimer() = default;
  ~InlineTimer() { reset(); }
  InlineTimer(const InlineTimer&) = delete;
  InlineTimer& operator=(const InlineTimer&) = delete;

  template <auto OnExpired, class Owner> void set(TimerQueue& queue, Owner* owner) {
    reset();
    queue_ = &queue;
    owner_ = owner;
    cb_ = [](void* o) { (static_cast<Owner*>(o)->*OnExpired)(); };
  }
  explicit operator bool() const { return queue_ != nullptr; }
  // Only once set().
  void enableTimer(std::chrono::milliseconds after) {
    queue_->schedule(*this, loopNow() + after);
  }
  void disableTimer() {
    if (queue_ != nullptr) queue_->disarm(*this);
  }
  bool enabled() const { return scheduled(); }
  void reset() {
    if (queue_ != nullptr) queue_->cancel(*this);
    queue_ = nullptr;
  }

private:
  void expired() override { cb_(owner_); }

  TimerQueue* queue_ = nullptr;
  void* owner_ = nullptr;
  void (*cb_)(void*) = nullptr;
};

enum FileReadyType : uint32_t { Read = 0x1, Write = 0x2, Closed = 0x4 };

class Dispatcher;

// An edge-triggered registration of a socket for read and write readiness.
// Edge-triggered: the callback fires on transitions, so the owner reads/writes
// until EAGAIN, and calls activate() to resume work it paused itself.
//
// A value that lives inside its owner, 32 bytes and no allocation (every
// connection holds one for its whole life): the epoll registration points at
// it. The callback is a member function of the owner, bound at compile time.
// Destroy it (or reset()) on the dispatcher's thread, before the dispatcher.
class FileEvent {
public:
  FileEvent() = default;
  ~FileEvent() { reset(); }
  FileEvent(const FileEvent&) = delete;
  FileEvent& operator=(const FileEvent&) = delete;

  // Watches fd (read, write and peer close, edge-triggered) and calls
  // (owner->*OnReady)(events) on readiness, events being FileReadyType bits.
  // The event must not be registered already; owner must outlive the
  // registration. Returns 0, or the errno of a failed registration (no
  // readiness will be reported; the owner is called once, as if activated,
  // so it can act on the failure from its callback). Registered either way.
  template <auto OnReady, class Owner>
  [[nodiscard]] int registerFd(Dispatcher& dispatcher, int fd, Owner* owner) {
    return registerImpl(dispatcher, fd, &onReady<Owner, OnReady>, owner);
  }
  // Stops watching; a no-op when not registered.
  void reset();
  bool registered() const { return dispatcher_ != nullptr; }
  // Runs the callback in this loop iteration as if these events fired: right
  // after the current callback when epoll reported a small batch, else after
  // the whole batch (Dispatcher::kSmallBatch). An owner that activates itself
  // from that run is not run again for it until later in the iteration, or the
  // next one. Only while registered.
  void activate(uint32_t events);

private:
  friend class Dispatcher;
  using Callback = void (*)(void* owner, uint32_t events);
  template <class Owner, auto OnReady>
  static void onReady(void* owner, uint32_t events) {
    (static_cast<Owner*>(owner)->*OnReady)(events);
  }
  int registerImpl(Dispatcher& dispatcher, int fd, Callback cb, void* owner);

  Dispatcher* dispatcher_ = nullptr; // null while not registered
  void* owner_ = nullptr;
  Callback cb_ = nullptr;
  int fd_ = -1;
  // While queued_: where in the dispatcher's activation list (activated_, or
  // activating_ while that pass runs) this event is, so that reset() strikes
  // it out without a search (kNoSlot past 2^24 entries: searched).
  static constexpr uint32_t kNoSlot = (1u << 24) - 1;
  uint32_t slot_ : 24 = 0;
  uint32_t pending_ : 3 = 0;       // activate()d events not delivered yet
  uint32_t queued_ : 1 = 0;        // in an activation list
  uint32_t in_activating_ : 1 = 0; // ... the one being run
};

// Objects that may still be on the call stack when they are done are handed to
// the dispatcher, which destroys them after the current callback returns.
class DeferredDeletable {
public:
  virtual ~DeferredDeletable() = default;
};

class Dispatcher {
public:
  explicit Dispatcher(std::string name);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  const std::string& name() const { return name_; }
  // libevent's base for what is built on libevent, created on first use; from
  // then on run() drives libevent's loop (with this loop's epoll set inside).
  // On the loop's thread (or before run()).
  event_base* base();

  // Runs the loop until exit() is called. Binds the dispatcher to this thread.
  void run();
  // Thread-safe: makes run() return after the current iteration.
  void exit();
  // Thread-safe: runs cb on the loop's thread, in posting order.
  void post(std::function<void()> cb);
  // True on the loop's own thread (or before run() when nothing runs it yet).
  bool isThreadSafe() const;

  TimerPtr createTimer(std::function<void()> cb);
  // The queue behind createTimer(), for an object that is its own timer (derives
  // from TimerQueue::Entry, so arming it allocates nothing). It must cancel
  // itself before it is destroyed.
  TimerQueue& timerQueue() { return *timers_; }
  void deferredDelete(std::unique_ptr<DeferredDeletable> obj);

private:
  friend class FileEvent;
  static constexpr int kMaxReady = 128; // events taken per epoll_wait
  // When a wait returns at most this many events, what each callback activates
  // (the writes it queued) runs right after it; after a larger batch, once at
  // its end. Under light load a response or upstream request is then sent as
  // soon as it is made, not after the other events of its batch (p50 about 10 %
  // lower at c=10); under load, where batches are larger, the batch's sends go
  // out together and wake the process at the other end once, which is worth
  // 2-6 % CPU per request (docs/benchmarks-history.md, 2026-12-07 evening).
  static constexpr int kSmallBatch = 4;

  // One pass: waits up to timeout_ms for file events and runs them, then
  // activations, due timers and deferred deletes.
  void runOnce(int timeout_ms);
  void pollReady(int timeout_ms);
  void runActivated();
  void runDue();
  int msUntilNextWork() const;
  void runPosted();
  void runDeferredDeletes();
  void onWake(uint32_t events);
  // Under libevent (after base()): its loop runs ours.
  void runNested();
  void nestedNeedsWork();
  static void onTimerEarlier(void* self, MonotonicTime due);
  void forget(FileEvent& fe);

  const std::string name_;
  int epoll_fd_ = -1;
  std::unique_ptr<epoll_event[]> ready_; // kMaxReady entries
  int ready_count_ = 0;          // entries of the batch being run ...
  int ready_next_ = 0;           // ... and the next one to run
  std::vector<FileEvent*> activated_;
  std::vector<FileEvent*> activating_; // the activations being run
  std::thread::id thread_id_{};
  bool exit_requested_ = false;
  int wake_fd_ = -1;
  FileEvent wake_event_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  std::vector<std::unique_ptr<DeferredDeletable>> deleting_batch_;
  std::unique_ptr<TimerQueue> timers_;
  bool deleting_ = false;

  // Only once base() was called.
  event_base* base_ = nullptr;
  bool nested_ = false;           // inside libevent's loop
  bool in_pass_ = false;          // inside runOnce(), which re-kicks at its end
  ::event* nested_epoll_ = nullptr; // our epoll fd, readable
  ::event* nested_timer_ = nullptr; // the earliest deadline
  ::event* nested_kick_ = nullptr;  // activations or deletes waiting: a 0 s timer,
                                    // so libevent polls its own fds in between
  bool nested_timer_armed_ = false;
  MonotonicTime nested_timer_due_{};
};

} // namespace legate::event
