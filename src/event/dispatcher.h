#pragma once

// One event loop (libevent) per thread: the main thread's and each worker's.
//
// Thread: a Dispatcher is driven by exactly one thread (the one calling run()).
// post() and exit() may be called from any thread; everything else only from
// the loop's own thread. Timers and file events must be destroyed on that
// thread, before their Dispatcher.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <event2/event_struct.h>

struct event_base;

namespace legate::event {

class TimerQueue;
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

enum FileReadyType : uint32_t { Read = 0x1, Write = 0x2, Closed = 0x4 };

class Dispatcher;

// An edge-triggered registration of a socket for read and write readiness.
// Edge-triggered: the callback fires on transitions, so the owner reads/writes
// until EAGAIN, and calls activate() to resume work it paused itself.
//
// A value that lives inside its owner: the libevent event itself, nothing else
// and no allocation (every connection holds one for its whole life). The
// callback is a member function of the owner, bound at compile time, so the
// event needs no room for a function and a context beside libevent's own.
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
  // registration.
  template <auto OnReady, class Owner>
  void registerFd(Dispatcher& dispatcher, int fd, Owner* owner) {
    registerImpl(dispatcher, fd, &onReady<Owner, OnReady>, owner);
  }
  // Stops watching; a no-op when not registered.
  void reset();
  bool registered() const;
  // Runs the callback on the next loop iteration as if these events fired.
  // Only while registered.
  void activate(uint32_t events);

private:
  using LibeventCb = void (*)(evutil_socket_t, short, void*);
  template <class Owner, auto OnReady>
  static void onReady(evutil_socket_t, short what, void* owner) {
    (static_cast<Owner*>(owner)->*OnReady)(readyTypes(what));
  }
  static uint32_t readyTypes(short what);
  void registerImpl(Dispatcher& dispatcher, int fd, LibeventCb cb, void* owner);

  ::event ev_{}; // all zero while not registered
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
  event_base* base() { return base_; }

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

  // Loop time, refreshed once per iteration (cheap).
  MonotonicTime approximateNow() const { return std::chrono::steady_clock::now(); }

private:
  void runPosted();
  void runDeferredDeletes();

  const std::string name_;
  event_base* base_;
  std::thread::id thread_id_{};
  int wake_fd_ = -1;
  ::event* wake_event_ = nullptr;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  ::event* deferred_event_ = nullptr;
  std::vector<std::unique_ptr<DeferredDeletable>> to_delete_;
  std::vector<std::unique_ptr<DeferredDeletable>> deleting_batch_;
  std::unique_ptr<TimerQueue> timers_;
  bool deleting_ = false;
};

} // namespace legate::event
