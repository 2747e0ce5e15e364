#include <algorithm>
#include <atomic>
#include <event2/event.h>
#include <random>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include "event/dispatcher.h"
#include "event/timer_queue.h"
#include "gtest/gtest.h"

namespace legate::event {
namespace {

TEST(DispatcherTest, PostFromOtherThreadsRunsInOrderOnTheLoop) {
  Dispatcher d("test");
  std::vector<int> seen;
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    d.run();
  });
  for (int i = 0; i < 100; ++i) {
    d.post([&, i] {
      EXPECT_EQ(std::this_thread::get_id(), loop_thread);
      seen.push_back(i);
    });
  }
  d.exit();
  runner.join();
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(DispatcherTest, TimerFiresAndCanBeRearmedAndCancelled) {
  Dispatcher d("test");
  int fired = 0;
  TimerPtr cancelled = d.createTimer([&] { ADD_FAILURE() << "cancelled timer fired"; });
  cancelled->enableTimer(std::chrono::milliseconds(1));
  cancelled->disableTimer();
  EXPECT_FALSE(cancelled->enabled());
  TimerPtr t;
  t = d.createTimer([&] {
    if (++fired < 3) {
      t->enableTimer(std::chrono::milliseconds(1));
    } else {
      d.exit();
    }
  });
  t->enableTimer(std::chrono::milliseconds(1));
  EXPECT_TRUE(t->enabled());
  d.run();
  EXPECT_EQ(fired, 3);
}

struct Tracked : DeferredDeletable {
  explicit Tracked(int& c) : count(c) {}
  ~Tracked() override { ++count; }
  int& count;
};

TEST(DispatcherTest, DeferredDeleteRunsAfterTheCurrentCallback) {
  Dispatcher d("test");
  int destroyed = 0;
  d.post([&] {
    d.deferredDelete(std::make_unique<Tracked>(destroyed));
    EXPECT_EQ(destroyed, 0) << "must not be destroyed inline";
    d.post([&] {
      EXPECT_EQ(destroyed, 1);
      d.exit();
    });
  });
  d.run();
  EXPECT_EQ(destroyed, 1);
}

TEST(DispatcherTest, PendingDeferredDeletesRunOnDestruction) {
  int destroyed = 0;
  {
    Dispatcher d("test");
    d.deferredDelete(std::make_unique<Tracked>(destroyed));
  }
  EXPECT_EQ(destroyed, 1);
}

// A queue entry that records the order it expired in.
struct Probe final : TimerQueue::Entry {
  Probe(std::vector<int>& log, int id) : log(log), id(id) {}
  void expired() override {
    log.push_back(id);
    if (on_expire) on_expire();
  }
  std::vector<int>& log;
  int id;
  std::function<void()> on_expire;
};

// The queue against a reference: random schedules, reschedules and cancels, then
// everything due by a time must expire exactly once, in deadline order. Sizes
// from a few levels of the 4-ary heap to seven, with a partly filled last row.
TEST(TimerQueueTest, ExpiresInDeadlineOrderThroughRandomChurn) {
  for (const int n : {5, 200, 3001}) {
    SCOPED_TRACE(n);
    TimerQueue q;
    std::vector<int> log;
    std::vector<std::unique_ptr<Probe>> probes;
    for (int i = 0; i < n; ++i) probes.push_back(std::make_unique<Probe>(log, i));
    const MonotonicTime t0{};
    std::vector<int64_t> due(n, -1); // reference: deadline in ns, -1 = not scheduled
    std::mt19937 rng(7);
    for (int step = 0; step < 25 * n; ++step) {
      const int i = static_cast<int>(rng() % n);
      if (rng() % 4 == 0) {
        q.cancel(*probes[i]);
        due[i] = -1;
      } else {
        // Distinct deadlines, so the expected order is unique; whole
        // milliseconds, the grain of a deadline pushed later.
        const int64_t ms = static_cast<int64_t>(rng() % 1000000) * n + i;
        q.schedule(*probes[i], t0 + std::chrono::milliseconds(ms));
        due[i] = ms;
      }
    }
    size_t expected_count = 0;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(probes[i]->scheduled(), due[i] >= 0);
      if (due[i] >= 0) ++expected_count;
    }
    ASSERT_EQ(q.size(), expected_count);
    // Run up to the median-ish time, then to the end.
    const int64_t cut = 500000LL * n;
    q.runExpired(t0 + std::chrono::milliseconds(cut));
    std::vector<int> expected;
    for (int i = 0; i < n; ++i) {
      if (due[i] >= 0 && due[i] <= cut) expected.push_back(i);
    }
    std::sort(expected.begin(), expected.end(), [&](int a, int b) { return due[a] < due[b]; });
    EXPECT_EQ(log, expected);
    EXPECT_EQ(q.size(), expected_count - expected.size());
    for (int i : expected) EXPECT_FALSE(probes[i]->scheduled());
    log.clear();
    q.runExpired(t0 + std::chrono::milliseconds(1000000LL * n));
    expected.clear();
    for (int i = 0; i < n; ++i) {
      if (due[i] > cut) expected.push_back(i);
    }
    std::sort(expected.begin(), expected.end(), [&](int a, int b) { return due[a] < due[b]; });
    EXPECT_EQ(log, expected);
    EXPECT_EQ(q.size(), 0u);
  }
}

// Callbacks may cancel or destroy other due entries and re-arm themselves with no
// delay; a self-re-arming entry runs once per pass, not forever.
TEST(TimerQueueTest, CallbacksMayCancelOthersAndRearmThemselves) {
  {
    TimerQueue q;
    std::vector<int> log;
    Probe a(log, 1), c(log, 3);
    auto b = std::make_unique<Probe>(log, 2);
    const MonotonicTime t0{};
    q.schedule(a, t0 + std::chrono::milliseconds(1));
    q.schedule(*b, t0 + std::chrono::milliseconds(2));
    q.schedule(c, t0 + std::chrono::milliseconds(3));
    a.on_expire = [&] {
      q.cancel(*b); // what a TimerImpl's destructor does
      b.reset();    // a due entry destroyed before its turn
      q.schedule(a, t0); // already due: deferred to the next pass
    };
    q.runExpired(t0 + std::chrono::milliseconds(5));
    EXPECT_EQ(log, (std::vector<int>{1, 3}));
    EXPECT_TRUE(a.scheduled());
    log.clear();
    a.on_expire = nullptr;
    q.runExpired(t0 + std::chrono::milliseconds(6));
    EXPECT_EQ(log, (std::vector<int>{1}));
    EXPECT_EQ(q.size(), 0u);
  }
}

// Pushed later and disarmed, an entry keeps its place until that comes due; it
// then moves to its real deadline or is dropped, and never fires early.
TEST(TimerQueueTest, LaterAndDisarmedEntriesAreSettledWhenTheirPlaceComesDue) {
  using std::chrono::milliseconds;
  TimerQueue q;
  std::vector<int> log;
  Probe a(log, 1), b(log, 2), c(log, 3);
  const MonotonicTime t0{};
  q.schedule(a, t0 + milliseconds(10));
  q.schedule(b, t0 + milliseconds(20));
  q.schedule(c, t0 + milliseconds(30));
  q.schedule(a, t0 + milliseconds(25)); // later: stays put
  q.disarm(b);
  EXPECT_TRUE(a.scheduled());
  EXPECT_FALSE(b.scheduled());
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.earliest(), t0 + milliseconds(10)); // a stale place: a wake-up early
  q.runExpired(t0 + milliseconds(22));
  EXPECT_TRUE(log.empty()) << "nothing was due";
  EXPECT_EQ(q.size(), 2u) << "the disarmed entry is dropped";
  EXPECT_EQ(q.earliest(), t0 + milliseconds(25));
  // Re-armed after a disarm, and moved earlier than its place: both exact.
  q.disarm(c);
  q.schedule(c, t0 + milliseconds(40));
  q.schedule(b, t0 + milliseconds(23));
  q.runExpired(t0 + milliseconds(30));
  EXPECT_EQ(log, (std::vector<int>{2, 1}));
  q.runExpired(t0 + milliseconds(39));
  EXPECT_EQ(log.size(), 2u);
  q.runExpired(t0 + milliseconds(40));
  EXPECT_EQ(log, (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(q.size(), 0u);
  // A deadline pushed later by a fraction of a millisecond fires by the next one.
  q.schedule(a, t0 + milliseconds(50));
  q.schedule(a, t0 + milliseconds(50) + std::chrono::microseconds(300));
  q.runExpired(t0 + milliseconds(50) + std::chrono::microseconds(299));
  EXPECT_EQ(log.size(), 3u);
  q.runExpired(t0 + milliseconds(51));
  EXPECT_EQ(log.size(), 4u);
  // Disarmed, then destroyed: cancel() takes it out there and then.
  {
    Probe gone(log, 4);
    q.schedule(gone, t0 + milliseconds(60));
    q.disarm(gone);
    EXPECT_EQ(q.size(), 1u);
    q.cancel(gone);
    EXPECT_EQ(q.size(), 0u);
  }
  q.runExpired(t0 + milliseconds(70));
  EXPECT_EQ(log.size(), 4u);
}

// Through a real dispatcher: pushing a deadline later, earlier, and cancelling.
TEST(DispatcherTest, TimersMovedEarlierAndLaterFireAtTheirLastDeadline) {
  Dispatcher d("test");
  std::vector<int> order;
  TimerPtr late = d.createTimer([&] { order.push_back(2); d.exit(); });
  TimerPtr early = d.createTimer([&] { order.push_back(1); });
  TimerPtr never = d.createTimer([&] { order.push_back(99); });
  early->enableTimer(std::chrono::milliseconds(200));
  late->enableTimer(std::chrono::milliseconds(1));
  never->enableTimer(std::chrono::milliseconds(2));
  late->enableTimer(std::chrono::milliseconds(30)); // later than armed
  early->enableTimer(std::chrono::milliseconds(5)); // earlier than before
  never->disableTimer();
  d.run();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_FALSE(early->enabled());
  EXPECT_FALSE(late->enabled());
}

// A file event lives inside its owner and calls the owner's member function.
struct FileEventOwner {
  Dispatcher* d = nullptr;
  FileEvent ev;
  uint32_t seen = 0;
  int calls = 0;
  void onReady(uint32_t events) {
    seen |= events;
    ++calls;
    d->exit();
  }
};

TEST(DispatcherTest, FileEventCallsItsOwnerAndUnregistersOnReset) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  Dispatcher d("test");
  FileEventOwner owner;
  owner.d = &d;
  EXPECT_FALSE(owner.ev.registered());
  EXPECT_EQ((owner.ev.registerFd<&FileEventOwner::onReady>(d, fds[0], &owner)), 0);
  EXPECT_TRUE(owner.ev.registered());
  d.run(); // the socket is writable: the edge on registration
  EXPECT_TRUE(owner.seen & FileReadyType::Write);
  owner.seen = 0;
  owner.ev.activate(FileReadyType::Read | FileReadyType::Closed);
  d.run();
  EXPECT_EQ(owner.seen, FileReadyType::Read | FileReadyType::Closed);
  owner.ev.reset();
  EXPECT_FALSE(owner.ev.registered());
  owner.ev.reset(); // a no-op when not registered
  // Unregistered: data arriving no longer calls the owner.
  const int calls = owner.calls;
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  d.post([&] { d.exit(); });
  d.run();
  EXPECT_EQ(owner.calls, calls);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A timer inside its owner: calls the owner's member function; reset() cancels
// and unsets it; destroying it cancels it.
struct TimerOwner {
  Dispatcher* d = nullptr;
  InlineTimer timer;
  int fired = 0;
  void onTimer() {
    ++fired;
    d->exit();
  }
};

TEST(DispatcherTest, InlineTimerCallsItsOwnerAndCancelsOnResetAndDestruction) {
  Dispatcher d("test");
  TimerOwner owner;
  owner.d = &d;
  EXPECT_FALSE(owner.timer);
  owner.timer.set<&TimerOwner::onTimer>(d.timerQueue(), &owner);
  EXPECT_TRUE(owner.timer);
  owner.timer.enableTimer(std::chrono::milliseconds(1));
  EXPECT_TRUE(owner.timer.enabled());
  d.run();
  EXPECT_EQ(owner.fired, 1);
  EXPECT_FALSE(owner.timer.enabled());
  // Reset: cancelled and unset; a plain timer set later proves the loop ran
  // past the cancelled deadline.
  owner.timer.enableTimer(std::chrono::milliseconds(1));
  owner.timer.reset();
  EXPECT_FALSE(owner.timer);
  EXPECT_EQ(d.timerQueue().size(), 0u);
  {
    auto gone = std::make_unique<TimerOwner>();
    gone->d = &d;
    gone->timer.set<&TimerOwner::onTimer>(d.timerQueue(), gone.get());
    gone->timer.enableTimer(std::chrono::milliseconds(1));
    EXPECT_EQ(d.timerQueue().size(), 1u);
  } // destroyed while armed: out of the queue
  EXPECT_EQ(d.timerQueue().size(), 0u);
  TimerPtr later = d.createTimer([&] { d.exit(); });
  later->enableTimer(std::chrono::milliseconds(10));
  d.run();
  EXPECT_EQ(owner.fired, 1);
}

// A socket pair whose first end is readable (one byte waiting).
struct ReadablePair {
  int fds[2] = {-1, -1};
  ReadablePair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    EXPECT_EQ(::write(fds[1], "x", 1), 1);
  }
  ~ReadablePair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
};

// Owners that, when called, destroy the other one: whichever epoll reports first
// must be the only one called, even though both were in the same batch.
struct Killer {
  FileEvent ev;
  std::unique_ptr<Killer>* other = nullptr;
  int* calls = nullptr;
  void onReady(uint32_t) {
    ++*calls;
    other->reset(); // its FileEvent unregisters; its memory is freed
  }
};

// Two killers of each other, watching fd_a and fd_b, counting their calls in *calls.
void makeKillerPair(Dispatcher& d, int fd_a, int fd_b, int* calls, std::unique_ptr<Killer>& a,
                    std::unique_ptr<Killer>& b) {
  a = std::make_unique<Killer>();
  b = std::make_unique<Killer>();
  a->other = &b;
  b->other = &a;
  a->calls = b->calls = calls;
  ASSERT_EQ((a->ev.registerFd<&Killer::onReady>(d, fd_a, a.get())), 0);
  ASSERT_EQ((b->ev.registerFd<&Killer::onReady>(d, fd_b, b.get())), 0);
}

TEST(DispatcherTest, AnEventResetByAnEarlierCallbackOfTheSameBatchIsNotCalled) {
  Dispatcher d("test");
  ReadablePair p1, p2;
  int calls = 0;
  std::unique_ptr<Killer> a, b;
  makeKillerPair(d, p1.fds[0], p2.fds[0], &calls, a, b);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  d.post([&] { d.exit(); }); // the wake-up comes after both sockets' edges
  d.run();
  EXPECT_EQ(calls, 1);
  EXPECT_NE(a == nullptr, b == nullptr);
  // Activated, then reset before its turn: not called either.
  Killer& survivor = a ? *a : *b;
  auto c = std::make_unique<Killer>();
  std::unique_ptr<Killer> none;
  int c_calls = 0;
  c->other = &none;
  c->calls = &c_calls;
  int quiet[2]; // a pipe's read end with nothing to read: no edge of its own
  ASSERT_EQ(::pipe2(quiet, O_NONBLOCK), 0);
  ASSERT_EQ((c->ev.registerFd<&Killer::onReady>(d, quiet[0], c.get())), 0);
  d.post([&] {
    c->ev.activate(FileReadyType::Read);
    c.reset();
    d.exit();
  });
  d.run();
  EXPECT_EQ(c_calls, 0);
  // Both activated, and whichever runs first destroys the other in the same
  // pass: the other is struck out of the list being run.
  int quiet2[2];
  ASSERT_EQ(::pipe2(quiet2, O_NONBLOCK), 0);
  int pass_calls = 0;
  std::unique_ptr<Killer> e, f;
  makeKillerPair(d, quiet[0], quiet2[0], &pass_calls, e, f);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  d.post([&] {
    e->ev.activate(FileReadyType::Read);
    f->ev.activate(FileReadyType::Read);
    d.exit();
  });
  d.run();
  EXPECT_EQ(pass_calls, 1);
  EXPECT_NE(e == nullptr, f == nullptr);
  e.reset();
  f.reset();
  ::close(quiet2[0]);
  ::close(quiet2[1]);
  survivor.ev.reset();
  ::close(quiet[0]);
  ::close(quiet[1]);
}

// What a callback activates (a write it queued) runs right after that callback
// when epoll reported a small batch, and once after the whole batch otherwise.
struct Writer {
  FileEvent ev;
  std::vector<std::string>* log = nullptr;
  void onReady(uint32_t) { log->push_back("write"); }
};
struct Reader {
  FileEvent ev;
  std::vector<std::string>* log = nullptr;
  Writer* writer = nullptr;
  void onReady(uint32_t) {
    log->push_back("read");
    writer->ev.activate(FileReadyType::Write);
  }
};

std::vector<std::string> runOneBatch(size_t readers) {
  Dispatcher d("test");
  std::vector<std::string> log;
  Writer w;
  w.log = &log;
  int quiet[2]; // never readable: the writer only runs when activated
  EXPECT_EQ(::pipe2(quiet, O_NONBLOCK), 0);
  EXPECT_EQ((w.ev.registerFd<&Writer::onReady>(d, quiet[0], &w)), 0);
  std::vector<std::unique_ptr<ReadablePair>> pairs;
  std::vector<std::unique_ptr<Reader>> rs;
  for (size_t i = 0; i < readers; ++i) {
    pairs.push_back(std::make_unique<ReadablePair>());
    rs.push_back(std::make_unique<Reader>());
    rs.back()->log = &log;
    rs.back()->writer = &w;
    EXPECT_EQ((rs.back()->ev.registerFd<&Reader::onReady>(d, pairs.back()->fds[0], rs.back().get())), 0);
  }
  d.post([&] { d.exit(); }); // its wake-up is one more event of the same batch
  d.run();
  for (auto& r : rs) r->ev.reset();
  w.ev.reset();
  ::close(quiet[0]);
  ::close(quiet[1]);
  return log;
}

TEST(DispatcherTest, ActivationsRunAfterEachCallbackOfASmallBatchAndAfterALargeOne) {
  // Two readable sockets and the wake-up: three events, a small batch.
  EXPECT_EQ(runOneBatch(2), (std::vector<std::string>{"read", "write", "read", "write"}));
  // Six and the wake-up: the write runs once, after them all.
  EXPECT_EQ(runOneBatch(6), (std::vector<std::string>{"read", "read", "read", "read", "read",
                                                      "read", "write"}));
}

// An owner that re-activates itself every time (a read budget always spent)
// runs once per pass: timers and posted callbacks still get their turn.
struct Spinner {
  FileEvent ev;
  int calls = 0;
  void onReady(uint32_t) {
    ++calls;
    ev.activate(FileReadyType::Read);
  }
};

TEST(DispatcherTest, ASelfReactivatingEventDoesNotStarveTheLoop) {
  Dispatcher d("test");
  ReadablePair p;
  Spinner s;
  ASSERT_EQ((s.ev.registerFd<&Spinner::onReady>(d, p.fds[0], &s)), 0);
  bool fired = false;
  TimerPtr t = d.createTimer([&] {
    fired = true;
    d.exit();
  });
  t->enableTimer(std::chrono::milliseconds(20));
  d.run();
  EXPECT_TRUE(fired);
  EXPECT_GT(s.calls, 1);
  s.ev.reset();
}

// Under libevent too: a self-re-activating owner leaves libevent room to poll
// its own fds and run its own timers (the main thread's signals, admin, c-ares).
TEST(DispatcherTest, ASelfReactivatingEventDoesNotStarveLibeventsOwnEvents) {
  Dispatcher d("test");
  ReadablePair p;
  Spinner s;
  struct Seen {
    Dispatcher* d;
    bool fired = false;
  } seen{&d};
  ::event* ev = evtimer_new(
      d.base(),
      [](evutil_socket_t, short, void* arg) {
        auto* st = static_cast<Seen*>(arg);
        st->fired = true;
        st->d->exit();
      },
      &seen);
  const timeval soon{0, 2000};
  evtimer_add(ev, &soon);
  ASSERT_EQ((s.ev.registerFd<&Spinner::onReady>(d, p.fds[0], &s)), 0);
  // A backstop on our own timer heap, which runs either way: if it is what
  // ends the loop, libevent's timer was starved.
  TimerPtr backstop = d.createTimer([&] { d.exit(); });
  backstop->enableTimer(std::chrono::seconds(2));
  d.run();
  EXPECT_TRUE(seen.fired) << "libevent's own timer never ran";
  EXPECT_GT(s.calls, 1);
  s.ev.reset();
  event_free(ev);
}

// epoll refuses a regular file (EPERM): registration says so, and the owner
// is called once so it can act on it.
TEST(DispatcherTest, ARefusedRegistrationReturnsTheErrorAndCallsTheOwnerOnce) {
  Dispatcher d("test");
  char path[] = "/tmp/legate-event-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  FileEventOwner owner;
  owner.d = &d;
  EXPECT_EQ((owner.ev.registerFd<&FileEventOwner::onReady>(d, fd, &owner)), EPERM);
  EXPECT_TRUE(owner.ev.registered());
  d.run();
  EXPECT_EQ(owner.calls, 1);
  owner.ev.reset();
  ::close(fd);
}

// Once something asks for libevent's base, libevent's loop runs ours: file
// events, activations, timers, posts, deferred deletes and libevent's own
// events all still run, and exit() still ends run().
TEST(DispatcherTest, EverythingRunsUnderLibeventOnceItsBaseIsUsed) {
  for (bool before_run : {true, false}) {
    SCOPED_TRACE(before_run ? "base() before run()" : "base() from inside the loop");
    Dispatcher d("test");
    ReadablePair p;
    FileEventOwner owner; // exits the loop when called: not yet registered
    owner.d = &d;
    int destroyed = 0;
    bool timer_fired = false, libevent_fired = false;
    ::event* ev = nullptr;
    TimerPtr t = d.createTimer([&] {
      timer_fired = true;
      EXPECT_EQ((owner.ev.registerFd<&FileEventOwner::onReady>(d, p.fds[0], &owner)), 0);
    });
    auto start = [&] {
      ev = evtimer_new(
          d.base(), [](evutil_socket_t, short, void* arg) { *static_cast<bool*>(arg) = true; },
          &libevent_fired);
      const timeval now{0, 0};
      evtimer_add(ev, &now);
      d.deferredDelete(std::make_unique<Tracked>(destroyed));
      t->enableTimer(std::chrono::milliseconds(5));
    };
    if (before_run) {
      start();
    } else {
      d.post(start);
    }
    d.run();
    EXPECT_TRUE(timer_fired);
    EXPECT_TRUE(libevent_fired);
    EXPECT_EQ(destroyed, 1);
    EXPECT_TRUE(owner.seen & FileReadyType::Read);
    // Activation under libevent.
    owner.seen = 0;
    owner.ev.activate(FileReadyType::Write);
    d.run();
    EXPECT_EQ(owner.seen, FileReadyType::Write);
    owner.ev.reset();
    event_free(ev);
  }
}

// loopNow(): one clock reading per callback. Within a callback it does not move;
// the next callback (a posted one, each due timer) gets a fresh reading; off the
// loop it is the clock itself.
TEST(DispatcherTest, LoopTimeIsReadOncePerCallback) {
  using std::chrono::milliseconds;
  const auto pause = milliseconds(3);
  const MonotonicTime off_loop = loopNow();
  std::this_thread::sleep_for(pause);
  EXPECT_GE(loopNow() - off_loop, pause);

  Dispatcher d("test");
  MonotonicTime first_start{}, first_end{}, second{}, timer_a{}, timer_b{};
  d.post([&] {
    first_start = loopNow();
    std::this_thread::sleep_for(pause);
    first_end = loopNow();
    d.post([&] { second = loopNow(); }); // a later callback
  });
  // Two timers due together: the second is called after the first has slept.
  TimerPtr a, b;
  a = d.createTimer([&] {
    timer_a = loopNow();
    std::this_thread::sleep_for(pause);
  });
  b = d.createTimer([&] {
    timer_b = loopNow();
    d.exit();
  });
  const MonotonicTime armed = loopNow();
  a->enableTimer(milliseconds(20));
  b->enableTimer(milliseconds(20));
  d.run();
  EXPECT_EQ(first_start, first_end);
  EXPECT_GE(second - first_start, pause);
  EXPECT_GE(timer_a - armed, milliseconds(20)); // read when called, not when armed
  EXPECT_GE(timer_b - timer_a, pause);
  // Off the loop again: the clock.
  const MonotonicTime after = loopNow();
  std::this_thread::sleep_for(pause);
  EXPECT_GE(loopNow() - after, pause);
}

} // namespace
} // namespace legate::event
