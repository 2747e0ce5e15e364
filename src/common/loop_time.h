#pragma once

// loopNow(): the monotonic time for the timestamps an event loop's callbacks take.
//
// An event loop reads the clock once before each callback it runs (a file event,
// an activation, a due timer, its deferred deletes) and loopNow() answers that
// reading for as long as the callback runs. A proxied request used to read the
// clock about fourteen times (its start, the upstream request's, the timers it
// arms, the latency samples and access-log times it records); now it costs the
// reading of the one or two callbacks it passes through.
//
// The price is precision: the timestamps of one callback are equal, and early by
// at most how long that callback has been running (microseconds; the stats and
// the access log count milliseconds). A timer armed in a callback is due that
// much early. nginx's and libevent's cached loop time make the same trade with a
// coarser grain (one reading per loop pass).
//
// Off a loop's callback (set-up, tests, libevent's own callbacks under a nested
// loop) loopNow() reads the clock.
//
// Thread: each thread has its own reading; LoopTimeScope is used only by the
// event loop that drives the thread.

#include <chrono>
#include <cstdint>

namespace legate {

using MonotonicTime = std::chrono::steady_clock::time_point;

namespace loop_time_detail {
struct State {
  MonotonicTime now{};
  bool in_loop = false;
};
inline constinit thread_local State t_state{};
} // namespace loop_time_detail

inline MonotonicTime loopNow() noexcept {
  const loop_time_detail::State& s = loop_time_detail::t_state;
  return s.in_loop ? s.now : std::chrono::steady_clock::now();
}

// Whole milliseconds from t to loopNow().
inline int64_t msSince(MonotonicTime t) noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(loopNow() - t).count();
}

// For the event loop: while a scope lives on the thread, loopNow() answers the
// last refresh(). The loop refreshes before each callback it runs, the first
// included (the scope itself does not read the clock).
class LoopTimeScope {
public:
  LoopTimeScope() noexcept : was_in_loop_(loop_time_detail::t_state.in_loop) {
    loop_time_detail::t_state.in_loop = true;
  }
  ~LoopTimeScope() { loop_time_detail::t_state.in_loop = was_in_loop_; }
  LoopTimeScope(const LoopTimeScope&) = delete;
  LoopTimeScope& operator=(const LoopTimeScope&) = delete;

  // Before each callback.
  static void refresh() noexcept {
    loop_time_detail::t_state.now = std::chrono::steady_clock::now();
  }

private:
  const bool was_in_loop_;
};

} // namespace legate
