#include <algorithm>
#include <map>

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "gtest/gtest.h"
#include "upstream/cluster.h"
#include "upstream/cluster_manager.h"

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

TEST(ClusterTest, UnsupportedConfigurationIsRefusedByName) {
  stats::Store store;
  auto dns = makeCluster("d", {{1, 0}});
  dns.set_type(envoy::config::cluster::v3::Cluster::STRICT_DNS);
  auto r = Cluster::create(dns, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("STRICT_DNS"), std::string::npos) << r.status();

  auto hc = makeCluster("hc", {{1, 0}});
  hc.add_health_checks();
  r = Cluster::create(hc, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("health_checks"), std::string::npos);

  auto ring = makeCluster("ring", {{1, 0}});
  ring.set_lb_policy(envoy::config::cluster::v3::Cluster::RING_HASH);
  r = Cluster::create(ring, store, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("RING_HASH"), std::string::npos);

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
