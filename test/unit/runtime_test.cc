// Runtime layers, snapshots, featureEnabled, the disk layer reader.

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "runtime/runtime.h"

namespace legate::runtime {
namespace {

TEST(Runtime, LaterLayersOverrideAndTypesParse) {
  Layer a{"a", {{"n", "5"}, {"b", "true"}, {"d", "0.25"}, {"s", "x"}}, {}, false};
  Layer b{"b", {{"n", "7"}}, {{"f", Fraction{3, 10000}}}, false};
  Snapshot s({a, b});
  EXPECT_EQ(s.getInteger("n", 1), 7u);
  EXPECT_EQ(s.getInteger("missing", 9), 9u);
  EXPECT_EQ(s.getInteger("s", 9), 9u);
  EXPECT_TRUE(s.getBoolean("b", false));
  EXPECT_DOUBLE_EQ(s.getDouble("d", 0), 0.25);
  EXPECT_EQ(*s.get("s"), "x");
  EXPECT_EQ(s.getFraction("f", {}).denominator, 10000u);
  // An integer value is a numerator over the default's denominator.
  EXPECT_EQ(s.getFraction("n", {1, 1000000}).numerator, 7u);
  EXPECT_EQ(s.getFraction("n", {1, 1000000}).denominator, 1000000u);
}

TEST(Runtime, FeatureEnabled) {
  Snapshot s({Layer{"l", {{"half", "50"}, {"none", "0"}}, {}, false}});
  EXPECT_TRUE(s.featureEnabled("half", {0, 100}, 49));
  EXPECT_FALSE(s.featureEnabled("half", {0, 100}, 50));
  EXPECT_TRUE(s.featureEnabled("absent", {100, 100}, 99));
  int on = 0;
  for (int i = 0; i < 10000; ++i) on += s.featureEnabled("half", {0, 100}) ? 1 : 0;
  EXPECT_GT(on, 4000);
  EXPECT_LT(on, 6000);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(s.featureEnabled("none", {100, 100}));
}

TEST(Runtime, AdminLayerMergeAndRemove) {
  Loader loader({Layer{"s", {{"k", "1"}}, {}, false}, Layer{"admin", {}, {}, true}});
  auto before = loader.snapshot();
  ASSERT_TRUE(loader.mergeAdminValues({{"k", "2"}, {"new", "x"}}).ok());
  EXPECT_EQ(loader.snapshot()->getInteger("k", 0), 2u);
  EXPECT_EQ(before->getInteger("k", 0), 1u); // an old snapshot never changes
  ASSERT_TRUE(loader.mergeAdminValues({{"k", ""}}).ok());
  EXPECT_EQ(loader.snapshot()->getInteger("k", 0), 1u);
  Loader no_admin({Layer{"s", {}, {}, false}});
  EXPECT_FALSE(no_admin.mergeAdminValues({{"k", "1"}}).ok());
}

TEST(Runtime, DiskLayer) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("legate_rt_" + std::to_string(::getpid()));
  fs::create_directories(dir / "a" / "b");
  std::ofstream(dir / "a" / "b" / "c") << "  42\n";
  std::ofstream(dir / ".hidden") << "1";
  Layer layer;
  ASSERT_TRUE(readDiskLayer(dir.string(), layer).ok());
  EXPECT_EQ(layer.values.size(), 1u);
  EXPECT_EQ(layer.values["a.b.c"], "42");
  Layer empty;
  EXPECT_TRUE(readDiskLayer((dir / "nope").string(), empty).ok());
  EXPECT_TRUE(empty.values.empty());
  fs::remove_all(dir);
}

} // namespace
} // namespace legate::runtime
