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
