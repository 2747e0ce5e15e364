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

struct event_base;
struct event;

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

// An edge-triggered registration of a socket for read and write readiness.
// Edge-triggered: the callback fires on transitions, so the owner reads/writes
// until EAGAIN, and calls activate() to resume work it paused itself.
class FileEvent {
public:
  virtual ~FileEvent() = default;
  // Runs the callback on the next loop iteration as if these events fired.
  virtual void activate(uint32_t events) = 0;
};
using FileEventPtr = std::unique_ptr<FileEvent>;

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
  // cb(ctx, events) on readiness. A plain function and a pointer rather than a
  // std::function: every connection holds one of these for its whole life.
  using FileReadyCb = void (*)(void* ctx, uint32_t events);
  FileEventPtr createFileEvent(int fd, FileReadyCb cb, void* ctx);
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
