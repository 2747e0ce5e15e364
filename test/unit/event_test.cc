#include <atomic>
#include <thread>
#include <vector>

#include "event/dispatcher.h"
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

} // namespace
} // namespace legate::event
