#include <algorithm>
#include <map>

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.pb.h"
#include "envoy/extensions/load_balancing_policies/cluster_provided/v3/cluster_provided.pb.h"
#include "envoy/extensions/load_balancing_policies/least_request/v3/least_request.pb.h"
#include "envoy/extensions/load_balancing_policies/maglev/v3/maglev.pb.h"
#include "envoy/extensions/load_balancing_policies/random/v3/random.pb.h"
#include "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.pb.h"
#include "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.pb.h"
#include "common/hash.h"
#include "gtest/gtest.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"
#include "runtime/runtime.h"
#include <cmath>

namespace legate::upstream {
namespace {

envoy::config::cluster::v3::Cluster makeCluster(const std::string& name,
                                                const std::vector<std::pair<int, int>>& ports_weights) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  auto* loc = c.mutable_load_assignment()->add_endpoints();
  for (auto [port, weight] : ports_weights) {
    auto* lbe = loc->add_lb_endpoints();
    auto* sa = lbe->mutable_endpoint()->mutable_address()->mutable_socket_address();
    sa->set_address("127.0.0.1");
    sa->set_port_value(port);
    if (weight > 0) lbe->mutable_load_balancing_weight()->set_value(weight);
  }
  return c;
}

TEST(ClusterTest, RoundRobinVisitsEveryHostInTurn) {
  stats::Store store;
  auto c = Cluster::create(makeCluster("rr", {{1001, 0}, {1002, 0}, {1003, 0}}), store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  std::map<uint16_t, int> counts;
  for (int i = 0; i < 30; ++i) counts[(*c)->chooseHost(0)->address().port()]++;
  EXPECT_EQ(counts[1001], 10);
  EXPECT_EQ(counts[1002], 10);
  EXPECT_EQ(counts[1003], 10);
  EXPECT_EQ(store.gauge("cluster.rr.membership_total").value(), 3);
  EXPECT_EQ((*c)->connectTimeout().count(), 5000) << "Envoy's default connect_timeout";
}

TEST(ClusterTest, WeightedRoundRobinFollowsWeightsAndInterleaves) {
  stats::Store store;
  auto c = Cluster::create(makeCluster("w", {{1, 3}, {2, 1}}), store, 1);
  ASSERT_TRUE(c.ok());
  std::map<uint16_t, int> counts;
  uint16_t prev = 0;
  int max_run = 0, run = 0;
  for (int i = 0; i < 400; ++i) {
    const uint16_t p = (*c)->chooseHost(0)->address().port();
    counts[p]++;
    run = p == prev ? run + 1 : 1;
    max_run = std::max(max_run, run);
    prev = p;
  }
  EXPECT_EQ(counts[1], 300);
  EXPECT_EQ(counts[2], 100);
  EXPECT_LE(max_run, 3) << "smooth weighting never bunches more than the weight";
}

TEST(ClusterTest, WorkersKeepIndependentRoundRobinState) {
  stats::Store store;
  auto c = Cluster::create(makeCluster("rr", {{1, 0}, {2, 0}}), store, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->chooseHost(0)->address().port(), 1);
  EXPECT_EQ((*c)->chooseHost(1)->address().port(), 1);
  EXPECT_EQ((*c)->chooseHost(0)->address().port(), 2);
}

TEST(ClusterTest, MaxConnectionsCircuitBreaker) {
  stats::Store store;
  auto proto = makeCluster("cb", {{1, 0}});
  auto* t = proto.mutable_circuit_breakers()->add_thresholds();
  t->mutable_max_connections()->set_value(2);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->tryAcquireConnection());
  EXPECT_TRUE((*c)->tryAcquireConnection());
  EXPECT_FALSE((*c)->tryAcquireConnection());
  EXPECT_EQ(store.gauge("cluster.cb.circuit_breakers.default.cx_open").value(), 1);
  (*c)->releaseConnection();
  EXPECT_EQ(store.gauge("cluster.cb.circuit_breakers.default.cx_open").value(), 0);
  EXPECT_TRUE((*c)->tryAcquireConnection());
}

TEST(ClusterTest, UnhealthyEndpointsAreNotChosen) {
  stats::Store store;
  auto proto = makeCluster("h", {{1, 0}, {2, 0}});
  proto.mutable_load_assignment()->mutable_endpoints(0)->mutable_lb_endpoints(0)->set_health_status(
      envoy::config::core::v3::UNHEALTHY);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) EXPECT_EQ((*c)->chooseHost(0)->address().port(), 2);
  EXPECT_EQ(store.gauge("cluster.h.membership_healthy").value(), 1);
  EXPECT_EQ(store.gauge("cluster.h.membership_total").value(), 2);
}

TEST(HostTest, HealthFlagsDecideHealth) {
  Host h(*network::Address::fromIpPort("127.0.0.1", 1), 1);
  EXPECT_EQ(h.health(), Host::Health::Healthy);
  EXPECT_EQ(h.healthFlagsString(), "healthy");
  h.healthFlagSet(Host::HealthFlag::DEGRADED_ACTIVE_HC);
  EXPECT_EQ(h.health(), Host::Health::Degraded);
  h.healthFlagSet(Host::HealthFlag::FAILED_OUTLIER_CHECK);
  EXPECT_EQ(h.health(), Host::Health::Unhealthy);
  EXPECT_TRUE(h.healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK));
  EXPECT_EQ(h.healthFlagsString(), "/failed_outlier_check/degraded_active_hc");
  h.healthFlagClear(Host::HealthFlag::FAILED_OUTLIER_CHECK);
  EXPECT_FALSE(h.healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK));
  EXPECT_EQ(h.health(), Host::Health::Degraded);
  h.healthFlagClear(Host::HealthFlag::DEGRADED_ACTIVE_HC);
  h.healthFlagSet(Host::HealthFlag::PENDING_ACTIVE_HC); // alone it is no verdict
  EXPECT_EQ(h.health(), Host::Health::Healthy);
}

TEST(ClusterTest, EndpointHealthStatusSetsEdsFlags) {
  stats::Store store;
  auto proto = makeCluster("eds", {{1, 0}, {2, 0}, {3, 0}, {4, 0}});
  auto* lbes = proto.mutable_load_assignment()->mutable_endpoints(0);
  lbes->mutable_lb_endpoints(0)->set_health_status(envoy::config::core::v3::HEALTHY);
  lbes->mutable_lb_endpoints(1)->set_health_status(envoy::config::core::v3::DEGRADED);
  lbes->mutable_lb_endpoints(2)->set_health_status(envoy::config::core::v3::DRAINING);
  lbes->mutable_lb_endpoints(3)->set_health_status(envoy::config::core::v3::TIMEOUT);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto& hosts = (*c)->hosts();
  ASSERT_EQ(hosts.size(), 4u);
  EXPECT_EQ(hosts[0]->health(), Host::Health::Healthy);
  EXPECT_EQ(hosts[1]->health(), Host::Health::Degraded);
  EXPECT_TRUE(hosts[1]->healthFlagGet(Host::HealthFlag::DEGRADED_EDS_HEALTH));
  EXPECT_EQ(hosts[2]->health(), Host::Health::Unhealthy);
  EXPECT_TRUE(hosts[2]->healthFlagGet(Host::HealthFlag::FAILED_EDS_HEALTH));
  EXPECT_TRUE(hosts[3]->healthFlagGet(Host::HealthFlag::FAILED_EDS_HEALTH));
}

// Rejects hosts whose port is in `avoid`, like the previous_hosts predicate.
struct AvoidPorts : LoadBalancerContext {
  std::vector<uint16_t> avoid;
  uint32_t retries = 0;
  int asked = 0;
  bool shouldSelectAnotherHost(const Host& h) override {
    ++asked;
    return std::find(avoid.begin(), avoid.end(), h.address().port()) != avoid.end();
  }
  uint32_t hostSelectionRetryCount() const override { return retries; }
};

TEST(ClusterTest, ContextRejectionsArePickedAgainUpToTheRetryCount) {
  stats::Store store;
  auto c = Cluster::create(makeCluster("sel", {{1, 0}, {2, 0}, {3, 0}}), store, 1);
  ASSERT_TRUE(c.ok());
  // Round robin would give 1 next; the context rejects 1 and 2.
  AvoidPorts ctx;
  ctx.avoid = {1, 2};
  ctx.retries = 5;
  EXPECT_EQ((*c)->chooseHost(0, &ctx)->address().port(), 3);
  EXPECT_EQ(ctx.asked, 3);
  // With no retries allowed, the first pick stands even if rejected.
  AvoidPorts none;
  none.avoid = {1, 2, 3};
  const uint16_t first = (*c)->chooseHost(0, &none)->address().port();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(none.asked, 0);
  // Retries run out: the last pick is used (three picks: 2, 3, 1).
  AvoidPorts all;
  all.avoid = {1, 2, 3};
  all.retries = 2;
  EXPECT_EQ((*c)->chooseHost(0, &all)->address().port(), 1);
  EXPECT_EQ(all.asked, 2);
}

TEST(PriorityLoadTest, FollowsEnvoysOverprovisionedFailover) {
  // All healthy: everything to P0.
  auto st = computePriorityState({{10, 10, 0}, {10, 10, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{100, 0}));
  EXPECT_EQ(st.panic, (std::vector<bool>{false, false}));
  // 72% healthy still counts as fully available with the 1.4 factor.
  st = computePriorityState({{100, 72, 0}, {10, 10, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{100, 0}));
  // Half healthy: P0 keeps 70%, P1 takes the rest.
  st = computePriorityState({{10, 5, 0}, {10, 10, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{70, 30}));
  EXPECT_EQ(st.panic, (std::vector<bool>{false, false})); // total availability is 100
  // overprovisioning_factor 100: health maps one to one.
  st = computePriorityState({{10, 8, 0}, {10, 10, 0}}, 100, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{80, 20}));
  // Both levels weak: load normalized over what there is; both panic.
  st = computePriorityState({{10, 2, 0}, {10, 2, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{50, 50}));
  EXPECT_EQ(st.panic, (std::vector<bool>{true, true}));
  // Only degraded hosts: their load goes to the degraded set.
  st = computePriorityState({{10, 0, 10}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{0}));
  EXPECT_EQ(st.degraded_load, (std::vector<uint32_t>{100}));
  // Healthy P1 is preferred over degraded P0 hosts.
  st = computePriorityState({{10, 0, 10}, {10, 10, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{0, 100}));
  EXPECT_EQ(st.degraded_load, (std::vector<uint32_t>{0, 0}));
  // Nothing usable: P0 takes all and panics; with panic disabled it does not.
  st = computePriorityState({{10, 0, 0}, {10, 0, 0}}, 140, 50);
  EXPECT_EQ(st.healthy_load, (std::vector<uint32_t>{100, 0}));
  EXPECT_TRUE(st.panic[0]);
  st = computePriorityState({{10, 0, 0}}, 140, 0);
  EXPECT_FALSE(st.panic[0]);
  // Loads always sum to 100 whatever the rounding.
  for (size_t h0 = 0; h0 <= 7; ++h0) {
    for (size_t d1 = 0; d1 <= 3; ++d1) {
      st = computePriorityState({{7, h0, 0}, {3, 0, d1}, {5, 1, 0}}, 140, 50);
      uint32_t sum = 0;
      for (auto v : st.healthy_load) sum += v;
      for (auto v : st.degraded_load) sum += v;
      EXPECT_EQ(sum, 100u) << h0 << " " << d1;
    }
  }
}

envoy::config::cluster::v3::Cluster makePriorityCluster(const std::string& name,
                                                        const std::vector<std::vector<int>>& levels) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  for (size_t p = 0; p < levels.size(); ++p) {
    auto* loc = c.mutable_load_assignment()->add_endpoints();
    loc->set_priority(static_cast<uint32_t>(p));
    for (int port : levels[p]) {
      auto* sa = loc->add_lb_endpoints()->mutable_endpoint()->mutable_address()
                     ->mutable_socket_address();
      sa->set_address("127.0.0.1");
      sa->set_port_value(port);
    }
  }
  return c;
}

std::map<uint16_t, int> countPicks(const Cluster& c, int n, uint32_t worker = 0) {
  std::map<uint16_t, int> counts;
  for (int i = 0; i < n; ++i) {
    auto h = c.chooseHost(worker);
    counts[h ? h->address().port() : 0]++;
  }
  return counts;
}

TEST(ClusterTest, PriorityFailoverFollowsHealth) {
  stats::Store store;
  auto c = Cluster::create(makePriorityCluster("prio", {{1, 2}, {3, 4}}), store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  auto counts = countPicks(**c, 1000);
  EXPECT_EQ(counts[3] + counts[4], 0); // P0 healthy: P1 idle
  // One of two P0 hosts fails: P0 keeps 70% of the traffic (1.4 x 50%).
  (*c)->hosts()[0]->healthFlagSet(Host::HealthFlag::FAILED_ACTIVE_HC);
  (*c)->refreshHealth();
  counts = countPicks(**c, 20000);
  EXPECT_EQ(counts[1], 0);
  EXPECT_NEAR(counts[2] / 20000.0, 0.70, 0.03);
  EXPECT_NEAR((counts[3] + counts[4]) / 20000.0, 0.30, 0.03);
  EXPECT_EQ(store.counter("cluster.prio.lb_healthy_panic").value(), 0u);
  // It comes back.
  (*c)->hosts()[0]->healthFlagClear(Host::HealthFlag::FAILED_ACTIVE_HC);
  (*c)->refreshHealth();
  counts = countPicks(**c, 1000);
  EXPECT_EQ(counts[1], 500);
  EXPECT_EQ(counts[2], 500);
}

TEST(ClusterTest, PanicBalancesOverAllHostsOfTheLevel) {
  stats::Store store;
  auto proto = makeCluster("panic", {{1, 0}, {2, 0}, {3, 0}, {4, 0}});
  for (int i = 1; i < 4; ++i) {
    proto.mutable_load_assignment()->mutable_endpoints(0)->mutable_lb_endpoints(i)->set_health_status(
        envoy::config::core::v3::UNHEALTHY);
  }
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  // 25% healthy < 50% threshold: all four get traffic.
  auto counts = countPicks(**c, 400);
  for (uint16_t p = 1; p <= 4; ++p) EXPECT_EQ(counts[p], 100) << p;
  EXPECT_EQ(store.counter("cluster.panic.lb_healthy_panic").value(), 400u);
  EXPECT_EQ(store.gauge("cluster.panic.membership_healthy").value(), 1);
  EXPECT_EQ(store.gauge("cluster.panic.membership_total").value(), 4);

  // healthy_panic_threshold 0 disables panic: only the healthy host.
  stats::Store store2;
  proto.mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(0);
  c = Cluster::create(proto, store2, 1);
  ASSERT_TRUE(c.ok());
  counts = countPicks(**c, 100);
  EXPECT_EQ(counts[1], 100);
  // A threshold of 20% is not reached by 25% healthy either.
  stats::Store store3;
  proto.mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(20);
  c = Cluster::create(proto, store3, 1);
  ASSERT_TRUE(c.ok());
  counts = countPicks(**c, 100);
  EXPECT_EQ(counts[1], 100);
}

TEST(ClusterTest, DegradedHostsServeOnlyWhenHealthyOnesDoNotSuffice) {
  stats::Store store;
  auto proto = makeCluster("deg", {{1, 0}, {2, 0}});
  proto.mutable_load_assignment()->mutable_endpoints(0)->mutable_lb_endpoints(1)->set_health_status(
      envoy::config::core::v3::DEGRADED);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(store.gauge("cluster.deg.membership_degraded").value(), 1);
  // Healthy availability 70%, degraded 70%: 70% healthy, 30% degraded.
  auto counts = countPicks(**c, 20000);
  EXPECT_NEAR(counts[1] / 20000.0, 0.70, 0.03);
  EXPECT_NEAR(counts[2] / 20000.0, 0.30, 0.03);
}

TEST(ClusterTest, OverprovisioningFactorFromThePolicy) {
  stats::Store store;
  auto proto = makePriorityCluster("op", {{1, 2}, {3}});
  proto.mutable_load_assignment()->mutable_policy()->mutable_overprovisioning_factor()->set_value(200);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  (*c)->hosts()[0]->healthFlagSet(Host::HealthFlag::FAILED_OUTLIER_CHECK);
  (*c)->refreshHealth();
  // 50% healthy x 2.0 = fully available: P1 gets nothing.
  auto counts = countPicks(**c, 1000);
  EXPECT_EQ(counts[2], 1000);
}

TEST(ClusterTest, MembershipChangesKeepStayingHostsAndReportRemovedOnes) {
  stats::Store store;
  auto c = Cluster::create(makeCluster("m", {{1, 0}, {2, 0}}), store, 2);
  ASSERT_TRUE(c.ok());
  std::vector<HostConstSharedPtr> removed;
  (*c)->setHostsRemovedCallback([&](std::vector<HostConstSharedPtr> r) { removed = r; });
  auto before = (*c)->hosts();
  EXPECT_EQ((*c)->chooseHost(1)->address().port(), 1); // worker 1 holds the old snapshot
  auto h3 = std::make_shared<Host>(*network::Address::fromIpPort("127.0.0.1", 3), 1);
  (*c)->setHosts({before[1], h3});
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], before[0]);
  EXPECT_EQ(store.counter("cluster.m.membership_change").value(), 1u);
  EXPECT_EQ(store.gauge("cluster.m.membership_total").value(), 2);
  // Both workers see the new membership on their next picks.
  for (uint32_t w : {0u, 1u}) {
    auto counts = countPicks(**c, 10, w);
    EXPECT_EQ(counts[1], 0);
    EXPECT_EQ(counts[2], 5);
    EXPECT_EQ(counts[3], 5);
  }
  // The host that stayed is the same object (its stats and pools carry on).
  EXPECT_EQ((*c)->hosts()[0], before[1]);
  // Same membership again: no change counted, nothing removed.
  removed.clear();
  (*c)->setHosts((*c)->hosts());
  EXPECT_TRUE(removed.empty());
  EXPECT_EQ(store.counter("cluster.m.membership_change").value(), 1u);
  // Empty cluster: no host.
  (*c)->setHosts({});
  EXPECT_EQ((*c)->chooseHost(0), nullptr);
  EXPECT_EQ(removed.size(), 2u);
}

struct HashCtx : LoadBalancerContext {
  uint64_t hash = 0;
  std::optional<uint64_t> computeHashKey() override { return hash; }
};

std::vector<HostConstSharedPtr> hostsOnPorts(int n, int first_port = 1) {
  std::vector<HostConstSharedPtr> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(std::make_shared<Host>(
        *network::Address::fromIpPort("10.0.0." + std::to_string(i + 1), first_port + i), 1));
  }
  return out;
}

TEST(LoadBalancerTest, RandomSpreadsEvenly) {
  stats::Store store;
  auto proto = makeCluster("rnd", {{1, 0}, {2, 0}, {3, 0}, {4, 0}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::RANDOM);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  auto counts = countPicks(**c, 40000);
  for (uint16_t p = 1; p <= 4; ++p) EXPECT_NEAR(counts[p] / 40000.0, 0.25, 0.02) << p;
}

TEST(LoadBalancerTest, LeastRequestPrefersLessLoadedHosts) {
  stats::Store store;
  auto proto = makeCluster("lr", {{1, 0}, {2, 0}, {3, 0}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  // Equal load: even spread.
  auto counts = countPicks(**c, 30000);
  for (uint16_t p = 1; p <= 3; ++p) EXPECT_NEAR(counts[p] / 30000.0, 1 / 3.0, 0.02);
  // Host 1 busy: with two choices it wins only when both picks are host 1 (1/9).
  (*c)->hosts()[0]->stats().rq_active = 10;
  counts = countPicks(**c, 30000);
  EXPECT_NEAR(counts[1] / 30000.0, 1 / 9.0, 0.02);
  // choice_count 5: (1/3)^5.
  stats::Store store5;
  proto.mutable_least_request_lb_config()->mutable_choice_count()->set_value(5);
  auto c5 = Cluster::create(proto, store5, 1);
  ASSERT_TRUE(c5.ok());
  (*c5)->hosts()[0]->stats().rq_active = 10;
  counts = countPicks(**c5, 30000);
  EXPECT_LT(counts[1] / 30000.0, 0.01);
  EXPECT_NEAR(counts[2] / 30000.0, 0.5, 0.03);
}

TEST(LoadBalancerTest, WeightedLeastRequestScalesWeightsByLoad) {
  stats::Store store;
  auto proto = makeCluster("wlr", {{1, 1}, {2, 3}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  auto counts = countPicks(**c, 4000);
  EXPECT_EQ(counts[1], 1000); // idle: by weight
  EXPECT_EQ(counts[2], 3000);
  // Host 2 has 5 active requests: 3 / (5 + 1)^1 = 0.5 against 1.
  (*c)->hosts()[1]->stats().rq_active = 5;
  counts = countPicks(**c, 3000);
  EXPECT_NEAR(counts[1], 2000, 2);
  EXPECT_NEAR(counts[2], 1000, 2);
  // active_request_bias 0: load is ignored.
  stats::Store store0;
  proto.mutable_least_request_lb_config()->mutable_active_request_bias()->set_default_value(0);
  auto c0 = Cluster::create(proto, store0, 1);
  ASSERT_TRUE(c0.ok());
  (*c0)->hosts()[1]->stats().rq_active = 5;
  counts = countPicks(**c0, 4000);
  EXPECT_EQ(counts[2], 3000);
}

// A cluster with slow start whose clock the test moves; hosts on ports 1 and
// 2 were there from the start (past their window), host 3 joins at time 0.
struct SlowStartFixture {
  SlowStartFixture(envoy::config::cluster::v3::Cluster::LbPolicy policy, double aggression,
                   double min_weight_percent = -1) {
    auto proto = makeCluster("ss", {{1, 0}, {2, 0}});
    proto.set_lb_policy(policy);
    auto* ss = policy == envoy::config::cluster::v3::Cluster::ROUND_ROBIN
                   ? proto.mutable_round_robin_lb_config()->mutable_slow_start_config()
                   : proto.mutable_least_request_lb_config()->mutable_slow_start_config();
    ss->mutable_slow_start_window()->set_seconds(100);
    ss->mutable_aggression()->set_default_value(aggression);
    ss->mutable_aggression()->set_runtime_key("ss.aggression");
    if (min_weight_percent >= 0) ss->mutable_min_weight_percent()->set_value(min_weight_percent);
    auto c = Cluster::create(proto, store, 1);
    EXPECT_TRUE(c.ok()) << c.status();
    cluster = *c;
    start = std::chrono::steady_clock::now();
    cluster->setClockForTest([this] { return start + offset; });
    for (const auto& h : cluster->hosts()) h->setActiveSince(start - std::chrono::hours(1));
    auto hosts = cluster->hosts();
    hosts.push_back(std::make_shared<Host>(*network::Address::fromIpPort("127.0.0.1", 3), 1));
    cluster->setHosts(hosts); // the new host's window starts now (offset 0)
  }
  // The new host's share of `n` picks at `seconds` into its window.
  double newShare(double seconds, int n = 3000) {
    offset = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(seconds));
    return countPicks(*cluster, n)[3] / static_cast<double>(n);
  }
  stats::Store store;
  std::shared_ptr<Cluster> cluster;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::duration offset{0};
};

// The new host's expected share with two full-weight hosts beside it.
double expectedShare(double seconds, double aggression, double min_percent = 10) {
  const double f = std::max(min_percent / 100, std::pow(std::max(seconds, 1.0) / 100, 1 / aggression));
  return f / (2 + f);
}

TEST(LoadBalancerTest, SlowStartRampsANewHostsWeightLinearly) {
  SlowStartFixture fx(envoy::config::cluster::v3::Cluster::ROUND_ROBIN, 1.0);
  // Under min_weight_percent the floor (10%) holds; then weight x t / window.
  for (double t : {0.0, 5.0, 25.0, 50.0, 75.0, 99.0}) {
    EXPECT_NEAR(fx.newShare(t), expectedShare(t, 1.0), 0.005) << "at " << t << " s";
  }
  EXPECT_NEAR(fx.newShare(0), 0.1 / 2.1, 0.005);
  EXPECT_NEAR(fx.newShare(50), 0.5 / 2.5, 0.005);
  // After the window: an equal third, plain round robin.
  EXPECT_NEAR(fx.newShare(100), 1.0 / 3, 0.001);
  EXPECT_NEAR(fx.newShare(1000), 1.0 / 3, 0.001);
}

TEST(LoadBalancerTest, SlowStartAggressionAndMinWeightShapeTheRamp) {
  // aggression 2: time_factor^(1/2) (a faster start).
  SlowStartFixture fast(envoy::config::cluster::v3::Cluster::ROUND_ROBIN, 2.0);
  EXPECT_NEAR(fast.newShare(25), 0.5 / 2.5, 0.005);
  EXPECT_NEAR(fast.newShare(64), 0.8 / 2.8, 0.005);
  // aggression 0.5: time_factor^2 (a slower start), above a 20% floor.
  SlowStartFixture slow(envoy::config::cluster::v3::Cluster::ROUND_ROBIN, 0.5, 20);
  EXPECT_NEAR(slow.newShare(10), 0.2 / 2.2, 0.005);  // 0.01 is under the floor
  EXPECT_NEAR(slow.newShare(70), 0.49 / 2.49, 0.005);
  // The aggression comes from the runtime when its key is set there.
  SlowStartFixture rt(envoy::config::cluster::v3::Cluster::ROUND_ROBIN, 1.0);
  runtime::Layer layer;
  layer.name = "static";
  layer.values["ss.aggression"] = "2";
  runtime::setLoader(std::make_shared<runtime::Loader>(std::vector<runtime::Layer>{layer}));
  EXPECT_NEAR(rt.newShare(25), 0.5 / 2.5, 0.005);
  runtime::setLoader(std::make_shared<runtime::Loader>());
  EXPECT_NEAR(rt.newShare(25), 0.25 / 2.25, 0.005);
}

TEST(LoadBalancerTest, SlowStartWithLeastRequestAndAfterActiveHealthChecks) {
  SlowStartFixture fx(envoy::config::cluster::v3::Cluster::LEAST_REQUEST, 1.0);
  EXPECT_NEAR(fx.newShare(50), 0.5 / 2.5, 0.01);
  EXPECT_NEAR(fx.newShare(200, 6000), 1.0 / 3, 0.05); // random choices again
  // A host that becomes healthy again (active HC) starts a new window.
  const auto& host = fx.cluster->hosts()[0];
  host->setActiveSince(fx.start + std::chrono::seconds(200));
  fx.cluster->refreshHealth();
  // Host 1 at 25 s into its window: 0.25 against 1 + 1.
  fx.offset = std::chrono::seconds(225);
  auto counts = countPicks(*fx.cluster, 3000);
  EXPECT_NEAR(counts[1] / 3000.0, 0.25 / 2.25, 0.01);
}

// A cluster of localities: {zone, locality weight, hosts (port, healthy)}.
struct LocalitySpec {
  std::string zone;
  int weight; // 0: unset
  std::vector<std::pair<int, bool>> hosts;
};
envoy::config::cluster::v3::Cluster localityCluster(const std::vector<LocalitySpec>& spec) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name("loc");
  c.mutable_common_lb_config()->mutable_locality_weighted_lb_config();
  for (const auto& l : spec) {
    auto* loc = c.mutable_load_assignment()->add_endpoints();
    loc->mutable_locality()->set_zone(l.zone);
    if (l.weight > 0) loc->mutable_load_balancing_weight()->set_value(l.weight);
    for (auto [port, healthy] : l.hosts) {
      auto* lbe = loc->add_lb_endpoints();
      auto* sa = lbe->mutable_endpoint()->mutable_address()->mutable_socket_address();
      sa->set_address("127.0.0.1");
      sa->set_port_value(port);
      if (!healthy) lbe->set_health_status(envoy::config::core::v3::UNHEALTHY);
    }
  }
  return c;
}

TEST(LoadBalancerTest, LocalityWeightsSplitTrafficThenHostsShareTheirLocality) {
  stats::Store store;
  // X weight 1 (ports 1, 2), Y weight 2 (ports 3, 4, 5), Z no weight (port 6).
  auto c = Cluster::create(localityCluster({{"x", 1, {{1, true}, {2, true}}},
                                            {"y", 2, {{3, true}, {4, true}, {5, true}}},
                                            {"z", 0, {{6, true}}}}),
                           store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  auto counts = countPicks(**c, 6000);
  EXPECT_NEAR(counts[1] + counts[2], 2000, 60);
  EXPECT_NEAR(counts[1], 1000, 60);
  EXPECT_NEAR(counts[3] + counts[4] + counts[5], 4000, 60);
  EXPECT_NEAR(counts[3], 1333, 60);
  EXPECT_EQ(counts[6], 0); // a locality without a weight gets nothing
}

TEST(LoadBalancerTest, LocalityWeightFollowsItsHealthWithOverprovisioning) {
  // Envoy's table: X weight 1, Y weight 2 (all healthy); X's share by its
  // healthy fraction: 100% -> 33%, 70% -> 33%, 50% -> 26%, 25% -> 15%, 0% -> 0%.
  struct Case {
    int healthy_of_x; // of 20
    double share;
  };
  for (auto [healthy, share] : std::vector<Case>{{20, 1.0 / 3}, {14, 0.98 / 2.98},
                                                  {10, 0.7 / 2.7}, {5, 0.35 / 2.35}, {0, 0.0}}) {
    std::vector<std::pair<int, bool>> x;
    for (int i = 0; i < 20; ++i) x.push_back({100 + i, i < healthy});
    stats::Store store;
    auto proto = localityCluster({{"x", 1, x}, {"y", 2, {{1, true}, {2, true}}}});
    // Without panic (most of the level's hosts may be down here).
    proto.mutable_common_lb_config()->mutable_healthy_panic_threshold()->set_value(0);
    auto c = Cluster::create(proto, store, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    auto counts = countPicks(**c, 10000);
    const double got = 1.0 - (counts[1] + counts[2]) / 10000.0;
    EXPECT_NEAR(got, share, 0.01) << healthy << " of 20 healthy in X";
  }
  EXPECT_NEAR(localityEffectiveWeight(1, 10, 20, 140), 0.7, 1e-9);
  EXPECT_NEAR(localityEffectiveWeight(3, 20, 20, 140), 3.0, 1e-9);
  EXPECT_EQ(localityEffectiveWeight(0, 20, 20, 140), 0.0);
}

TEST(LoadBalancerTest, LocalityWeightingIsRefusedWithHashingAndDuplicates) {
  stats::Store store;
  auto proto = localityCluster({{"x", 1, {{1, true}}}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::MAGLEV);
  auto r = Cluster::create(proto, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("common_lb_config.locality_weighted_lb_config"),
            std::string::npos);
  auto dup = localityCluster({{"x", 1, {{1, true}}}, {"x", 2, {{2, true}}}});
  r = Cluster::create(dup, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("load_assignment.endpoints[1].locality"), std::string::npos)
      << r.status();
  // Without locality weighting, repeated localities are fine.
  dup.clear_common_lb_config();
  dup.set_name("dup2");
  EXPECT_TRUE(Cluster::create(dup, store, 1).ok());
}

// Keys and their hosts under a consistent-hash policy.
std::map<uint64_t, const Host*> mapKeys(const Cluster& c, int keys) {
  std::map<uint64_t, const Host*> out;
  HashCtx ctx;
  for (int k = 0; k < keys; ++k) {
    ctx.hash = legate::xxHash64("key-" + std::to_string(k));
    out[ctx.hash] = c.chooseHost(0, &ctx).get();
  }
  return out;
}

// max_other_moved: the share of keys of hosts that stayed that may move.
void checkConsistentHashing(envoy::config::cluster::v3::Cluster::LbPolicy policy,
                            double max_other_moved) {
  stats::Store store;
  auto proto = makeCluster("ch", {});
  proto.set_lb_policy(policy);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok());
  auto hosts = hostsOnPorts(10);
  (*c)->setHosts(hosts);
  const int kKeys = 20000;
  auto before = mapKeys(**c, kKeys);
  // Same key, same host, every time (and from another worker).
  HashCtx ctx;
  ctx.hash = before.begin()->first;
  for (int i = 0; i < 10; ++i) EXPECT_EQ((*c)->chooseHost(1, &ctx).get(), before.begin()->second);
  // Spread: each host gets about a tenth.
  std::map<const Host*, int> per_host;
  for (auto& [k, h] : before) per_host[h]++;
  EXPECT_EQ(per_host.size(), 10u);
  for (auto& [h, n] : per_host) EXPECT_NEAR(n / double(kKeys), 0.1, 0.03) << h->address().asString();

  // Host 3 leaves: its keys move, others (nearly all) stay.
  const Host* gone = hosts[3].get();
  auto fewer = hosts;
  fewer.erase(fewer.begin() + 3);
  (*c)->setHosts(fewer);
  auto after = mapKeys(**c, kKeys);
  int moved = 0, moved_elsewhere = 0;
  for (auto& [k, h] : before) {
    if (after[k] != h) {
      ++moved;
      if (h != gone) ++moved_elsewhere;
    }
    EXPECT_NE(after[k], gone);
  }
  EXPECT_EQ(moved - moved_elsewhere, per_host[gone]); // every key of the gone host moved
  EXPECT_LE(moved_elsewhere / double(kKeys), max_other_moved);
  EXPECT_LE(moved / double(kKeys), 0.1 + 0.05 + max_other_moved); // about 1/N
  // It comes back (a new Host object, same address): its keys return.
  fewer.insert(fewer.begin() + 3, std::make_shared<Host>(gone->address(), 1));
  (*c)->setHosts(fewer);
  auto again = mapKeys(**c, kKeys);
  int same = 0;
  for (auto& [k, h] : before) same += again[k]->address() == h->address();
  EXPECT_GE(same / double(kKeys), 1.0 - 2 * max_other_moved);
}

TEST(LoadBalancerTest, RingHashIsConsistentAndRemapsMinimally) {
  // The gone host's keys move (about 1/10); the ring is rescaled for nine hosts,
  // whose extra points take a few percent of other keys (as in Envoy).
  checkConsistentHashing(envoy::config::cluster::v3::Cluster::RING_HASH, 0.08);
}

TEST(LoadBalancerTest, MaglevIsConsistentAndRemapsLittle) {
  // Maglev moves the gone host's keys plus a few percent of others.
  checkConsistentHashing(envoy::config::cluster::v3::Cluster::MAGLEV, 0.05);
}

TEST(LoadBalancerTest, ConsistentHashingFollowsWeights) {
  for (auto policy : {envoy::config::cluster::v3::Cluster::RING_HASH,
                      envoy::config::cluster::v3::Cluster::MAGLEV}) {
    stats::Store store;
    auto proto = makeCluster("chw", {{1, 1}, {2, 3}});
    proto.set_lb_policy(policy);
    auto c = Cluster::create(proto, store, 1);
    ASSERT_TRUE(c.ok());
    auto keys = mapKeys(**c, 20000);
    int on2 = 0;
    for (auto& [k, h] : keys) on2 += h->address().port() == 2;
    EXPECT_NEAR(on2 / 20000.0, 0.75, 0.04) << policy;
    // Without a hash key the pick is random: both hosts get some.
    auto counts = countPicks(**c, 2000);
    EXPECT_GT(counts[1], 200);
    EXPECT_GT(counts[2], 1000);
  }
}

TEST(LoadBalancerTest, HashTableSettingsAreChecked) {
  stats::Store store;
  auto proto = makeCluster("cfg", {{1, 0}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::MAGLEV);
  proto.mutable_maglev_lb_config()->mutable_table_size()->set_value(65536);
  auto r = Cluster::create(proto, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("maglev_lb_config.table_size"), std::string::npos);
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::RING_HASH);
  proto.mutable_ring_hash_lb_config()->set_hash_function(
      envoy::config::cluster::v3::Cluster::RingHashLbConfig::MURMUR_HASH_2);
  r = Cluster::create(proto, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("ring_hash_lb_config.hash_function"), std::string::npos);
  proto.mutable_ring_hash_lb_config()->set_hash_function(
      envoy::config::cluster::v3::Cluster::RingHashLbConfig::XX_HASH);
  proto.mutable_ring_hash_lb_config()->mutable_minimum_ring_size()->set_value(64);
  proto.mutable_ring_hash_lb_config()->mutable_maximum_ring_size()->set_value(256);
  r = Cluster::create(proto, store, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  auto* ss = proto.mutable_least_request_lb_config()->mutable_slow_start_config();
  ss->mutable_slow_start_window()->set_seconds(10);
  ss->mutable_aggression()->set_default_value(0);
  r = Cluster::create(proto, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "least_request_lb_config.slow_start_config.aggression.default_value"),
            std::string::npos)
      << r.status();
}

namespace lbp = envoy::extensions::load_balancing_policies;

// Appends a policy to the cluster's load_balancing_policy.
void addPolicy(envoy::config::cluster::v3::Cluster& c, const google::protobuf::Message& m) {
  auto* p = c.mutable_load_balancing_policy()->add_policies();
  p->mutable_typed_extension_config()->set_name("policy");
  p->mutable_typed_extension_config()->mutable_typed_config()->PackFrom(m);
}

TEST(TypedLbPolicyTest, FirstSupportedPolicyWinsOverLbPolicy) {
  stats::Store store;
  auto proto = makeCluster("typed", {{1, 0}, {2, 0}, {3, 0}});
  proto.set_lb_policy(envoy::config::cluster::v3::Cluster::RING_HASH); // superseded
  addPolicy(proto, lbp::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin());
  addPolicy(proto, lbp::random::v3::Random());
  addPolicy(proto, lbp::round_robin::v3::RoundRobin());
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->lbPolicy(), LbPolicy::Random) << "the first supported one, not a later one";
  // Plain round robin through its extension.
  stats::Store store2;
  proto.clear_load_balancing_policy();
  addPolicy(proto, lbp::round_robin::v3::RoundRobin());
  c = Cluster::create(proto, store2, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->lbPolicy(), LbPolicy::RoundRobin);
  auto counts = countPicks(**c, 30);
  for (uint16_t p = 1; p <= 3; ++p) EXPECT_EQ(counts[p], 10);
}

TEST(TypedLbPolicyTest, NoSupportedPolicyIsAnErrorNamingTheField) {
  stats::Store store;
  auto proto = makeCluster("none", {{1, 0}});
  addPolicy(proto, lbp::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin());
  auto r = Cluster::create(proto, store, 1, "static_resources.clusters[2]");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("static_resources.clusters[2].load_balancing_policy: none "
                                      "of its policies is implemented by legate"),
            std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("ClientSideWeightedRoundRobin"), std::string::npos);
  // An empty list too.
  auto empty = makeCluster("empty", {{1, 0}});
  empty.mutable_load_balancing_policy();
  r = Cluster::create(empty, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("load_balancing_policy"), std::string::npos);
}

TEST(TypedLbPolicyTest, LeastRequestSettingsAndSlowStartCarryOver) {
  stats::Store store;
  auto proto = makeCluster("lrt", {{1, 0}, {2, 0}, {3, 0}});
  lbp::least_request::v3::LeastRequest lr;
  lr.mutable_choice_count()->set_value(5);
  addPolicy(proto, lr);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->lbPolicy(), LbPolicy::LeastRequest);
  (*c)->hosts()[0]->stats().rq_active = 10;
  auto counts = countPicks(**c, 30000);
  EXPECT_LT(counts[1] / 30000.0, 0.01) << "choice_count 5: (1/3)^5";

  // active_request_bias on weighted hosts: 3 / (5 + 1)^0 = 3 against 1 (bias 0: by weight).
  stats::Store store2;
  auto weighted = makeCluster("lrw", {{1, 1}, {2, 3}});
  lr.mutable_active_request_bias()->set_default_value(0.0);
  addPolicy(weighted, lr);
  c = Cluster::create(weighted, store2, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  (*c)->hosts()[1]->stats().rq_active = 5;
  counts = countPicks(**c, 4000);
  EXPECT_EQ(counts[2], 3000);

  // FULL_SCAN is refused by name.
  stats::Store store3;
  auto full = makeCluster("lrf", {{1, 0}});
  lr.set_selection_method(lbp::least_request::v3::LeastRequest::FULL_SCAN);
  addPolicy(full, lr);
  auto r = Cluster::create(full, store3, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "load_balancing_policy.policies[0].typed_extension_config.typed_config"
                ".selection_method"),
            std::string::npos)
      << r.status();

  // slow_start_config: a bad aggression is named under the policy's path.
  stats::Store store4;
  auto ss = makeCluster("lrs", {{1, 0}});
  lbp::least_request::v3::LeastRequest slow;
  slow.mutable_slow_start_config()->mutable_slow_start_window()->set_seconds(10);
  slow.mutable_slow_start_config()->mutable_aggression()->set_default_value(-1);
  addPolicy(ss, slow);
  r = Cluster::create(ss, store4, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("typed_config.slow_start_config.aggression.default_value"),
            std::string::npos)
      << r.status();
}

// The legacy least_request_lb_config and the typed LeastRequest policy share their
// checks: a negative active_request_bias is refused under each one's own path.
TEST(TypedLbPolicyTest, NegativeActiveRequestBiasIsRefusedInBothForms) {
  stats::Store store;
  auto legacy = makeCluster("lr", {{1, 0}});
  legacy.set_lb_policy(envoy::config::cluster::v3::Cluster::LEAST_REQUEST);
  legacy.mutable_least_request_lb_config()->mutable_active_request_bias()->set_default_value(-0.5);
  auto r = Cluster::create(legacy, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(
                "least_request_lb_config.active_request_bias: must not be negative"),
            std::string::npos)
      << r.status();

  stats::Store store2;
  auto typed = makeCluster("lrt", {{1, 0}});
  lbp::least_request::v3::LeastRequest lr;
  lr.mutable_active_request_bias()->set_default_value(-0.5);
  addPolicy(typed, lr);
  r = Cluster::create(typed, store2, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("typed_config.active_request_bias: must not be negative"),
            std::string::npos)
      << r.status();
}

TEST(TypedLbPolicyTest, RoundRobinSlowStartRampsANewHost) {
  stats::Store store;
  auto proto = makeCluster("rrs", {{1, 0}, {2, 0}});
  lbp::round_robin::v3::RoundRobin rr;
  rr.mutable_slow_start_config()->mutable_slow_start_window()->set_seconds(100);
  addPolicy(proto, rr);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  const auto start = std::chrono::steady_clock::now();
  auto offset = std::chrono::seconds(0);
  (*c)->setClockForTest([&] { return start + offset; });
  for (const auto& h : (*c)->hosts()) h->setActiveSince(start - std::chrono::hours(1));
  auto hosts = (*c)->hosts();
  hosts.push_back(std::make_shared<Host>(*network::Address::fromIpPort("127.0.0.1", 3), 1));
  (*c)->setHosts(hosts);
  offset = std::chrono::seconds(50);
  auto counts = countPicks(**c, 3000);
  EXPECT_NEAR(counts[3] / 3000.0, 0.5 / 2.5, 0.01) << "half its weight at half the window";
}

TEST(TypedLbPolicyTest, LocalityLbConfigOfThePolicyDecides) {
  stats::Store store;
  // Two localities, weights 1 and 3, one host each.
  auto proto = localityCluster({{"x", 1, {{1, true}}}, {"y", 3, {{2, true}}}});
  lbp::random::v3::Random rnd;
  rnd.mutable_locality_lb_config()->mutable_locality_weighted_lb_config();
  addPolicy(proto, rnd);
  auto c = Cluster::create(proto, store, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  auto counts = countPicks(**c, 4000);
  EXPECT_NEAR(counts[1], 1000, 60);
  // Without it in the policy, common_lb_config's is ignored (as in Envoy): a
  // plain random spread over the two hosts.
  stats::Store store2;
  proto.clear_load_balancing_policy();
  addPolicy(proto, lbp::random::v3::Random());
  c = Cluster::create(proto, store2, 1);
  ASSERT_TRUE(c.ok()) << c.status();
  counts = countPicks(**c, 4000);
  EXPECT_NEAR(counts[1], 2000, 200);
  // Zone awareness is refused by name.
  stats::Store store3;
  proto.clear_load_balancing_policy();
  lbp::round_robin::v3::RoundRobin rr;
  rr.mutable_locality_lb_config()->mutable_zone_aware_lb_config();
  addPolicy(proto, rr);
  auto r = Cluster::create(proto, store3, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("typed_config.locality_lb_config.zone_aware_lb_config"),
            std::string::npos)
      << r.status();
}

TEST(TypedLbPolicyTest, RingHashAndMaglevSettings) {
  {
    stats::Store store;
    auto proto = makeCluster("rh", {});
    lbp::ring_hash::v3::RingHash rh;
    rh.mutable_minimum_ring_size()->set_value(64);
    rh.mutable_maximum_ring_size()->set_value(128);
    addPolicy(proto, rh);
    auto c = Cluster::create(proto, store, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->lbPolicy(), LbPolicy::RingHash);
    (*c)->setHosts(hostsOnPorts(4));
    HashCtx ctx;
    ctx.hash = 12345;
    const Host* first = (*c)->chooseHost(0, &ctx).get();
    for (int i = 0; i < 5; ++i) EXPECT_EQ((*c)->chooseHost(0, &ctx).get(), first);
  }
  {
    stats::Store store;
    auto proto = makeCluster("rhbad", {{1, 0}});
    lbp::ring_hash::v3::RingHash rh;
    rh.set_hash_function(lbp::ring_hash::v3::RingHash::MURMUR_HASH_2);
    addPolicy(proto, rh);
    auto r = Cluster::create(proto, store, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("typed_config.hash_function"), std::string::npos);
    proto.clear_load_balancing_policy();
    rh.set_hash_function(lbp::ring_hash::v3::RingHash::XX_HASH);
    rh.mutable_minimum_ring_size()->set_value(512);
    rh.mutable_maximum_ring_size()->set_value(256);
    addPolicy(proto, rh);
    r = Cluster::create(proto, store, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("typed_config.minimum_ring_size"), std::string::npos);
    proto.clear_load_balancing_policy();
    lbp::ring_hash::v3::RingHash by_name;
    by_name.mutable_consistent_hashing_lb_config()->set_use_hostname_for_hashing(true);
    addPolicy(proto, by_name);
    r = Cluster::create(proto, store, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("typed_config.consistent_hashing_lb_config"),
              std::string::npos)
        << r.status();
  }
  {
    stats::Store store;
    auto proto = makeCluster("mg", {{1, 1}, {2, 3}});
    lbp::maglev::v3::Maglev mg;
    mg.mutable_table_size()->set_value(65536);
    addPolicy(proto, mg);
    auto r = Cluster::create(proto, store, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("typed_config.table_size: must be a prime"),
              std::string::npos)
        << r.status();
    proto.clear_load_balancing_policy();
    mg.mutable_table_size()->set_value(1021);
    addPolicy(proto, mg);
    auto c = Cluster::create(proto, store, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->lbPolicy(), LbPolicy::Maglev);
    auto keys = mapKeys(**c, 20000);
    int on2 = 0;
    for (auto& [k, h] : keys) on2 += h->address().port() == 2;
    EXPECT_NEAR(on2 / 20000.0, 0.75, 0.05);
    // Locality weighting is refused with hashing, as with lb_policy.
    proto.clear_load_balancing_policy();
    lbp::maglev::v3::Maglev loc;
    loc.mutable_locality_weighted_lb_config();
    addPolicy(proto, loc);
    r = Cluster::create(proto, store, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("typed_config.locality_weighted_lb_config"),
              std::string::npos);
  }
}

// ORIGINAL_DST: a context with a restored original destination and headers.
struct OriginalDstCtx : LoadBalancerContext {
  std::optional<network::Address> dst;
  std::map<std::string, std::string> headers;
  const network::Address* downstreamOriginalDestination() const override {
    return dst ? &*dst : nullptr;
  }
  std::optional<std::string_view> requestHeader(std::string_view name) const override {
    auto it = headers.find(std::string(name));
    if (it == headers.end()) return std::nullopt;
    return std::string_view(it->second);
  }
};

envoy::config::cluster::v3::Cluster originalDstProto(const std::string& name) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name(name);
  c.set_type(envoy::config::cluster::v3::Cluster::ORIGINAL_DST);
  c.set_lb_policy(envoy::config::cluster::v3::Cluster::CLUSTER_PROVIDED);
  return c;
}

// A cluster whose main-thread tasks the test runs by hand, with what it removed.
struct OriginalDstFixture {
  explicit OriginalDstFixture(envoy::config::cluster::v3::Cluster proto) {
    auto c = Cluster::create(proto, store, 2);
    EXPECT_TRUE(c.ok()) << c.status();
    cluster = *c;
    cluster->setMainThreadPoster([this](std::function<void()> f) { tasks.push_back(std::move(f)); });
    cluster->setHostsRemovedCallback([this](std::vector<HostConstSharedPtr> hosts) {
      for (auto& h : hosts) removed.push_back(h);
    });
  }
  void runMain() {
    auto run = std::move(tasks);
    tasks.clear();
    for (auto& f : run) f();
  }
  stats::Store store;
  std::shared_ptr<Cluster> cluster;
  std::vector<std::function<void()>> tasks;
  std::vector<HostConstSharedPtr> removed;
};

network::Address addr(const std::string& ip, int port) {
  return *network::Address::fromIpPort(ip, port);
}

TEST(OriginalDstTest, ConfigurationRulesFollowEnvoy) {
  stats::Store store;
  auto rr = originalDstProto("rr");
  rr.set_lb_policy(envoy::config::cluster::v3::Cluster::ROUND_ROBIN);
  auto r = Cluster::create(rr, store, 1, "c");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.lb_policy: an ORIGINAL_DST cluster needs lb_policy "
                                      "CLUSTER_PROVIDED"),
            std::string::npos)
      << r.status();
  auto provided = makeCluster("static", {{1, 0}});
  provided.set_lb_policy(envoy::config::cluster::v3::Cluster::CLUSTER_PROVIDED);
  r = Cluster::create(provided, store, 1, "c");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.lb_policy: CLUSTER_PROVIDED needs"), std::string::npos)
      << r.status();
  auto la = originalDstProto("la");
  la.mutable_load_assignment()->set_cluster_name("la");
  r = Cluster::create(la, store, 1, "c");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.load_assignment"), std::string::npos);
  auto md = originalDstProto("md");
  md.mutable_original_dst_lb_config()->mutable_metadata_key()->set_key("k");
  r = Cluster::create(md, store, 1, "c");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.original_dst_lb_config.metadata_key"), std::string::npos);
  // The typed form: cluster_provided.
  auto typed = originalDstProto("typed");
  typed.clear_lb_policy();
  auto* p = typed.mutable_load_balancing_policy()->add_policies();
  p->mutable_typed_extension_config()->mutable_typed_config()->PackFrom(
      envoy::extensions::load_balancing_policies::cluster_provided::v3::ClusterProvided());
  r = Cluster::create(typed, store, 1, "c");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->originalDstConfig()->cleanup_interval.count(), 5000) << "Envoy's default";
  EXPECT_EQ((*r)->originalDstConfig()->header_name, "x-envoy-original-dst-host");
  EXPECT_EQ((*r)->hosts().size(), 0u);
}

TEST(OriginalDstTest, HostsAreMadeOnDemandSharedAndCleanedUp) {
  auto proto = originalDstProto("od");
  proto.mutable_cleanup_interval()->set_seconds(1);
  OriginalDstFixture fx(proto);
  EXPECT_EQ(fx.cluster->originalDstConfig()->cleanup_interval.count(), 1000);
  OriginalDstCtx ctx;
  // No restored destination: no host.
  EXPECT_EQ(fx.cluster->chooseHost(0, &ctx), nullptr);
  EXPECT_EQ(fx.cluster->chooseHost(0), nullptr);
  ctx.dst = addr("10.0.0.1", 80);
  auto h1 = fx.cluster->chooseHost(0, &ctx);
  ASSERT_NE(h1, nullptr);
  EXPECT_EQ(h1->address().asString(), "10.0.0.1:80");
  // Before the main thread adds it, the same worker reuses its new host.
  EXPECT_EQ(fx.cluster->chooseHost(0, &ctx), h1);
  EXPECT_EQ(fx.tasks.size(), 1u);
  // Another worker makes its own (it cannot see the first yet).
  auto dup = fx.cluster->chooseHost(1, &ctx);
  ASSERT_NE(dup, nullptr);
  EXPECT_NE(dup, h1);
  fx.runMain();
  ASSERT_EQ(fx.cluster->hosts().size(), 1u);
  EXPECT_EQ(fx.cluster->hosts()[0], h1);
  EXPECT_EQ(fx.store.gauge("cluster.od.membership_total").value(), 1);
  ASSERT_EQ(fx.removed.size(), 1u) << "the duplicate is reported removed (its pools drain)";
  EXPECT_EQ(fx.removed[0], dup);
  // Both workers now use the member.
  EXPECT_EQ(fx.cluster->chooseHost(1, &ctx), h1);
  EXPECT_EQ(fx.cluster->chooseHost(0, &ctx), h1);
  EXPECT_TRUE(fx.tasks.empty());
  // A second destination.
  ctx.dst = addr("10.0.0.2", 8080);
  auto h2 = fx.cluster->chooseHost(0, &ctx);
  fx.runMain();
  EXPECT_EQ(fx.cluster->hosts().size(), 2u);
  // Sweeps: a host used since the last sweep stays; one unused for a whole
  // interval goes.
  fx.cluster->cleanupOriginalDstHosts(); // both were used
  EXPECT_EQ(fx.cluster->hosts().size(), 2u);
  ctx.dst = addr("10.0.0.1", 80);
  EXPECT_EQ(fx.cluster->chooseHost(0, &ctx), h1);
  fx.removed.clear();
  fx.cluster->cleanupOriginalDstHosts();
  ASSERT_EQ(fx.cluster->hosts().size(), 1u);
  EXPECT_EQ(fx.cluster->hosts()[0], h1);
  ASSERT_EQ(fx.removed.size(), 1u);
  EXPECT_EQ(fx.removed[0], h2);
  fx.cluster->cleanupOriginalDstHosts();
  EXPECT_EQ(fx.cluster->hosts().size(), 0u);
  EXPECT_EQ(fx.store.gauge("cluster.od.membership_total").value(), 0);
  // It comes back as a new host.
  auto again = fx.cluster->chooseHost(0, &ctx);
  ASSERT_NE(again, nullptr);
  EXPECT_NE(again, h1);
  fx.runMain();
  EXPECT_EQ(fx.cluster->hosts().size(), 1u);
}

TEST(OriginalDstTest, HttpHeaderAndPortOverride) {
  auto proto = originalDstProto("hdr");
  proto.mutable_original_dst_lb_config()->set_use_http_header(true);
  OriginalDstFixture fx(proto);
  OriginalDstCtx ctx;
  ctx.dst = addr("10.0.0.9", 9);
  ctx.headers["x-envoy-original-dst-host"] = "192.0.2.1:8443";
  auto h = fx.cluster->chooseHost(0, &ctx);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->address().asString(), "192.0.2.1:8443") << "the header wins";
  ctx.headers["x-envoy-original-dst-host"] = "[2001:db8::1]:80";
  h = fx.cluster->chooseHost(0, &ctx);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->address().asString(), "[2001:db8::1]:80");
  for (const char* bad : {"192.0.2.1", "host:80", "192.0.2.1:", "192.0.2.1:70000", "[::1]",
                          "::1:80", "192.0.2.1:80x", ""}) {
    ctx.headers["x-envoy-original-dst-host"] = bad;
    EXPECT_EQ(fx.cluster->chooseHost(0, &ctx), nullptr) << bad;
  }
  EXPECT_EQ(fx.store.counter("cluster.hdr.original_dst_host_invalid").value(), 8u);
  // No header: the connection's original destination.
  ctx.headers.clear();
  h = fx.cluster->chooseHost(0, &ctx);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->address().asString(), "10.0.0.9:9");

  // A custom header name (case-insensitive in config) and upstream_port_override.
  auto custom = originalDstProto("custom");
  custom.mutable_original_dst_lb_config()->set_use_http_header(true);
  custom.mutable_original_dst_lb_config()->set_http_header_name("X-Dest");
  custom.mutable_original_dst_lb_config()->mutable_upstream_port_override()->set_value(7000);
  OriginalDstFixture cx(custom);
  OriginalDstCtx ctx2;
  ctx2.headers["x-envoy-original-dst-host"] = "192.0.2.1:1";
  EXPECT_EQ(cx.cluster->chooseHost(0, &ctx2), nullptr) << "only the configured header counts";
  ctx2.headers["x-dest"] = "192.0.2.5:1";
  h = cx.cluster->chooseHost(0, &ctx2);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->address().asString(), "192.0.2.5:7000");
  // Without use_http_header the header means nothing.
  OriginalDstFixture plain(originalDstProto("plain"));
  ctx.headers["x-envoy-original-dst-host"] = "192.0.2.1:8443";
  h = plain.cluster->chooseHost(0, &ctx);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->address().asString(), "10.0.0.9:9");
  ctx.dst.reset();
  EXPECT_EQ(plain.cluster->chooseHost(0, &ctx), nullptr);
}

TEST(ClusterTest, UnsupportedConfigurationIsRefusedByName) {
  stats::Store store;
  auto dns = makeCluster("d", {{1, 0}});
  dns.set_type(envoy::config::cluster::v3::Cluster::EDS);
  auto r = Cluster::create(dns, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("EDS"), std::string::npos) << r.status();

  auto hc = makeCluster("hc", {{1, 0}});
  hc.add_health_checks();
  r = Cluster::create(hc, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("health_checks"), std::string::npos);

  auto ring = makeCluster("ring", {{1, 0}});
  ring.set_lb_policy(envoy::config::cluster::v3::Cluster::CLUSTER_PROVIDED);
  r = Cluster::create(ring, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("CLUSTER_PROVIDED"), std::string::npos);

  auto host = makeCluster("host", {});
  auto* sa = host.mutable_load_assignment()->mutable_endpoints(0)->add_lb_endpoints()
                 ->mutable_endpoint()->mutable_address()->mutable_socket_address();
  sa->set_address("backend.internal");
  sa->set_port_value(80);
  r = Cluster::create(host, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not an IP address"), std::string::npos);
}

TEST(ClusterManagerTest, DuplicateNamesAreRefused) {
  stats::Store store;
  envoy::config::bootstrap::v3::Bootstrap b;
  *b.mutable_static_resources()->add_clusters() = makeCluster("same", {{1, 0}});
  *b.mutable_static_resources()->add_clusters() = makeCluster("same", {{2, 0}});
  auto cm = ClusterManager::create(b, store, 1);
  ASSERT_FALSE(cm.ok());
  EXPECT_NE(cm.status().message().find("static_resources.clusters[1].name: duplicate cluster name 'same'"),
            std::string::npos)
      << cm.status();
}

} // namespace
} // namespace legate::upstream
