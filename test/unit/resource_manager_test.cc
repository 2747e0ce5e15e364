// Circuit breakers: every threshold, both priorities, the retry budget and the
// remaining_* gauges of track_remaining.

#include "envoy/config/cluster/v3/circuit_breaker.pb.h"
#include "gtest/gtest.h"
#include "upstream/resource_manager.h"

namespace legate::upstream {
namespace {

using envoy::config::cluster::v3::CircuitBreakers;

std::array<CircuitBreakerThresholds, 2> parse(const CircuitBreakers& proto) {
  auto t = parseCircuitBreakers(proto, "cb");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : std::array<CircuitBreakerThresholds, 2>{};
}

TEST(ResourceManagerTest, EnvoyDefaults) {
  const auto t = parse(CircuitBreakers());
  for (const auto& p : t) {
    EXPECT_EQ(p.max_connections, 1024u);
    EXPECT_EQ(p.max_pending_requests, 1024u);
    EXPECT_EQ(p.max_requests, 1024u);
    EXPECT_EQ(p.max_retries, 3u);
    EXPECT_FALSE(p.retry_budget.has_value());
    EXPECT_FALSE(p.track_remaining);
  }
}

TEST(ResourceManagerTest, PrioritiesParseSeparatelyAndTheFirstEntryWins) {
  CircuitBreakers proto;
  auto* d = proto.add_thresholds();
  d->mutable_max_retries()->set_value(7);
  auto* h = proto.add_thresholds();
  h->set_priority(envoy::config::core::v3::HIGH);
  h->mutable_max_requests()->set_value(9);
  auto* dup = proto.add_thresholds();
  dup->mutable_max_retries()->set_value(100);
  const auto t = parse(proto);
  EXPECT_EQ(t[0].max_retries, 7u);
  EXPECT_EQ(t[0].max_requests, 1024u);
  EXPECT_EQ(t[1].max_requests, 9u);
  EXPECT_EQ(t[1].max_retries, 3u);
}

TEST(ResourceManagerTest, UnimplementedFieldsAreRefusedByPath) {
  CircuitBreakers proto;
  proto.add_thresholds();
  proto.add_thresholds()->mutable_max_connection_pools()->set_value(1);
  auto t = parseCircuitBreakers(proto, "c.circuit_breakers");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("c.circuit_breakers.thresholds[1].max_connection_pools"),
            std::string_view::npos)
      << t.status();
  CircuitBreakers per_host;
  per_host.add_per_host_thresholds()->mutable_max_connections()->set_value(1);
  t = parseCircuitBreakers(per_host, "c.circuit_breakers");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("per_host_thresholds"), std::string_view::npos);
}

TEST(ResourceManagerTest, MaxRetriesOpensAndTracksRemaining) {
  stats::Store store;
  CircuitBreakerThresholds t;
  t.max_retries = 2;
  t.track_remaining = true;
  ResourceManager rm(t, stats::Scope(store, "cluster.c."), ResourcePriority::Default);
  auto& open = store.gauge("cluster.c.circuit_breakers.default.rq_retry_open");
  auto& remaining = store.gauge("cluster.c.circuit_breakers.default.remaining_retries");
  EXPECT_EQ(remaining.value(), 2);
  EXPECT_EQ(store.gauge("cluster.c.circuit_breakers.default.remaining_cx").value(), 1024);
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_EQ(remaining.value(), 1);
  EXPECT_EQ(open.value(), 0);
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_EQ(open.value(), 1);
  EXPECT_EQ(remaining.value(), 0);
  EXPECT_FALSE(rm.tryAcquireRetry());
  rm.releaseRetry();
  EXPECT_EQ(open.value(), 0);
  EXPECT_EQ(remaining.value(), 1);
  EXPECT_TRUE(rm.tryAcquireRetry());
}

TEST(ResourceManagerTest, RemainingGaugesOnlyWithTrackRemaining) {
  stats::Store store;
  ResourceManager rm(CircuitBreakerThresholds{}, stats::Scope(store, "cluster.n."),
                     ResourcePriority::High);
  EXPECT_TRUE(rm.tryAcquireRequest());
  bool found_remaining = false;
  bool found_high = false;
  store.forEachGauge([&](const stats::Gauge& g) {
    if (g.name().find("remaining_") != std::string::npos) found_remaining = true;
    if (g.name() == "cluster.n.circuit_breakers.high.rq_open") found_high = true;
  });
  EXPECT_FALSE(found_remaining);
  EXPECT_TRUE(found_high);
}

TEST(ResourceManagerTest, RetryBudgetScalesWithActiveRequestsAndHasAFloor) {
  stats::Store store;
  CircuitBreakerThresholds t;
  t.max_retries = 1; // ignored once a budget is set
  t.retry_budget = CircuitBreakerThresholds::RetryBudget{25.0, 2};
  ResourceManager rm(t, stats::Scope(store, "cluster.b."), ResourcePriority::Default);
  // No traffic: the floor (min_retry_concurrency) applies.
  EXPECT_EQ(rm.maxRetries(), 2u);
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_FALSE(rm.tryAcquireRetry());
  // 16 active + 4 pending requests: 25% of 20 = 5 retries.
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(rm.tryAcquireRequest());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(rm.tryAcquirePending());
  EXPECT_EQ(rm.maxRetries(), 5u);
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_TRUE(rm.tryAcquireRetry());
  EXPECT_FALSE(rm.tryAcquireRetry());
  EXPECT_EQ(rm.openRetries(), 5u);
}

TEST(ResourceManagerTest, RetryBudgetPercentIsValidated) {
  CircuitBreakers proto;
  proto.add_thresholds()->mutable_retry_budget()->mutable_budget_percent()->set_value(150);
  auto t = parseCircuitBreakers(proto, "cb");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("cb.thresholds[0].retry_budget.budget_percent"),
            std::string_view::npos);
}

} // namespace
} // namespace legate::upstream
