#include <set>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "event/dispatcher.h"
#include "gtest/gtest.h"
#include "runtime/runtime.h"
#include "upstream/cluster.h"
#include "upstream/outlier_detection.h"

namespace legate::upstream {
namespace {

using std::chrono::milliseconds;
using OD = envoy::config::cluster::v3::OutlierDetection;

// --- The arithmetic ------------------------------------------------------------

TEST(OutlierArithmeticTest, SuccessRateThresholdIsMeanMinusStdevTimesFactor) {
  // Rates 100, 100, 100, 100, 50: mean 90, population stdev 20.
  const auto t = successRateThreshold({100, 100, 100, 100, 50}, 1.9);
  EXPECT_DOUBLE_EQ(t.mean, 90);
  EXPECT_DOUBLE_EQ(t.ejection_threshold, 90 - 20 * 1.9);
  // 50 < 52: the outlier is below the threshold; with a factor of 2.5 it is not.
  EXPECT_LT(50, t.ejection_threshold);
  EXPECT_GT(50, successRateThreshold({100, 100, 100, 100, 50}, 2.5).ejection_threshold);
  // Identical rates: no spread, the threshold is the mean itself; nobody is below it.
  const auto same = successRateThreshold({80, 80, 80}, 1.9);
  EXPECT_DOUBLE_EQ(same.mean, 80);
  EXPECT_DOUBLE_EQ(same.ejection_threshold, 80);
  EXPECT_EQ(successRateThreshold({}, 1.9).mean, -1);
}

TEST(OutlierArithmeticTest, MaxEjectionPercent) {
  // (active + 1) / total within the limit.
  EXPECT_TRUE(ejectionAllowed(0, 10, 10, false));  // 1 of 10 = 10%
  EXPECT_FALSE(ejectionAllowed(1, 10, 10, false)); // 2 of 10 = 20%
  EXPECT_FALSE(ejectionAllowed(0, 3, 10, false));  // 1 of 3 = 33% > 10%
  EXPECT_TRUE(ejectionAllowed(0, 3, 34, false));
  EXPECT_TRUE(ejectionAllowed(1, 4, 50, false));   // 2 of 4 = 50%
  EXPECT_FALSE(ejectionAllowed(2, 4, 50, false));  // 3 of 4
  EXPECT_TRUE(ejectionAllowed(2, 3, 100, false));
  EXPECT_FALSE(ejectionAllowed(0, 5, 0, false));
  // always_eject_one_host: the first ejection whatever the percentage, no more.
  EXPECT_TRUE(ejectionAllowed(0, 3, 10, true));
  EXPECT_TRUE(ejectionAllowed(0, 5, 0, true));
  EXPECT_FALSE(ejectionAllowed(1, 3, 10, true));
  EXPECT_FALSE(ejectionAllowed(0, 0, 100, true));
}

TEST(OutlierArithmeticTest, EjectionTimeGrowsAndIsCapped) {
  const milliseconds base(1000), max(3500);
  uint32_t b = 0;
  std::vector<int64_t> times;
  for (int i = 0; i < 6; ++i) {
    b = nextEjectBackoff(b, base, max);
    times.push_back(ejectionTime(b, base, max).count());
  }
  EXPECT_EQ(times, (std::vector<int64_t>{1000, 2000, 3000, 3500, 3500, 3500}));
  EXPECT_EQ(b, 4u) << "the multiplier stops growing once it passes max";
  // Decrementing (healthy intervals) shortens the next ejection again.
  EXPECT_EQ(ejectionTime(nextEjectBackoff(0, base, max), base, max).count(), 1000);
}

// --- The detector, on a real cluster with a fake clock ---------------------------

envoy::config::cluster::v3::Cluster clusterProto(int hosts, const OD& od) {
  envoy::config::cluster::v3::Cluster c;
  c.set_name("od");
  auto* loc = c.mutable_load_assignment()->add_endpoints();
  for (int i = 0; i < hosts; ++i) {
    auto* sa =
        loc->add_lb_endpoints()->mutable_endpoint()->mutable_address()->mutable_socket_address();
    sa->set_address("127.0.0.1");
    sa->set_port_value(static_cast<uint32_t>(2000 + i));
  }
  *c.mutable_outlier_detection() = od;
  return c;
}

void setMs(google::protobuf::Duration* d, int64_t ms) {
  d->set_seconds(ms / 1000);
  d->set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
}

class DetectorTest : public ::testing::Test {
protected:
  void build(int hosts, const OD& od) {
    auto c = Cluster::create(clusterProto(hosts, od), store_, 1);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *c;
    od_ = cluster_->outlierDetector();
    ASSERT_NE(od_, nullptr);
    od_->setTimeSource([this] { return now_; });
    od_->seedRandom(1);
  }
  // Runs what workers posted to the main thread.
  void drainPosts() {
    dispatcher_.post([this] { dispatcher_.exit(); });
    dispatcher_.run();
  }
  void advance(milliseconds d) { now_ += d; }
  const HostConstSharedPtr& host(size_t i) { return cluster_->hosts()[i]; }
  bool ejected(size_t i) { return host(i)->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK); }
  uint64_t counter(const std::string& name) {
    return store_.counter("cluster.od.outlier_detection." + name).value();
  }
  int64_t active() { return store_.gauge("cluster.od.outlier_detection.ejections_active").value(); }
  std::set<uint16_t> balancedPorts() {
    std::set<uint16_t> ports;
    for (int i = 0; i < 30; ++i) ports.insert(cluster_->chooseHost(0)->address().port());
    return ports;
  }

  stats::Store store_;
  event::Dispatcher dispatcher_{"main"};
  std::shared_ptr<Cluster> cluster_;
  OutlierDetector* od_ = nullptr;
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

TEST_F(DetectorTest, DefaultsFollowEnvoy) {
  build(3, OD());
  const auto& c = od_->config();
  EXPECT_EQ(c.consecutive_5xx, 5u);
  EXPECT_EQ(c.interval, milliseconds(10000));
  EXPECT_EQ(c.base_ejection_time, milliseconds(30000));
  EXPECT_EQ(c.max_ejection_time, milliseconds(300000));
  EXPECT_EQ(c.max_ejection_percent, 10u);
  EXPECT_EQ(c.enforcing_consecutive_5xx, 100u);
  EXPECT_EQ(c.enforcing_consecutive_gateway_failure, 0u);
  EXPECT_EQ(c.enforcing_consecutive_local_origin_failure, 100u);
  EXPECT_EQ(c.enforcing_success_rate, 100u);
  EXPECT_EQ(c.enforcing_failure_percentage, 0u);
  EXPECT_EQ(c.success_rate_stdev_factor, 1900u);
  EXPECT_EQ(c.failure_percentage_threshold, 85u);
  EXPECT_TRUE(c.successful_active_health_check_uneject_host);
  OD od;
  setMs(od.mutable_base_ejection_time(), 400000);
  auto cfg = OutlierDetectionConfig::create(od, "od");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ((*cfg)->max_ejection_time, milliseconds(400000)) << "max follows a larger base";
  setMs(od.mutable_max_ejection_time(), 1000);
  EXPECT_FALSE(OutlierDetectionConfig::create(od, "od").ok());
}

TEST_F(DetectorTest, MonitorsAreRefusedByName) {
  OD od;
  od.add_monitors()->set_name("x");
  auto cfg = OutlierDetectionConfig::create(od, "clusters[0].outlier_detection");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(std::string(cfg.status().message()).find("clusters[0].outlier_detection.monitors"),
            std::string::npos);
}

TEST_F(DetectorTest, Consecutive5xxEjectsLeavesBalancersAndReturns) {
  OD od;
  od.mutable_consecutive_5xx()->set_value(3);
  od.mutable_max_ejection_percent()->set_value(50);
  setMs(od.mutable_interval(), 200);
  setMs(od.mutable_base_ejection_time(), 1000);
  build(3, od);
  od_->start(dispatcher_);
  // A success in between starts the count over.
  od_->putHttpResponseCode(host(1), 503);
  od_->putHttpResponseCode(host(1), 500);
  od_->putHttpResponseCode(host(1), 200);
  od_->putHttpResponseCode(host(1), 500);
  od_->putHttpResponseCode(host(1), 500);
  drainPosts();
  EXPECT_FALSE(ejected(1));
  od_->putHttpResponseCode(host(1), 500);
  drainPosts();
  EXPECT_TRUE(ejected(1));
  EXPECT_EQ(counter("ejections_detected_consecutive_5xx"), 1u);
  EXPECT_EQ(counter("ejections_enforced_consecutive_5xx"), 1u);
  EXPECT_EQ(counter("ejections_enforced_total"), 1u);
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(balancedPorts(), (std::set<uint16_t>{2000, 2002}));
  EXPECT_EQ(host(1)->healthFlagsString(), "/failed_outlier_check");
  // Not yet: 999 ms.
  advance(milliseconds(999));
  od_->runInterval();
  EXPECT_TRUE(ejected(1));
  advance(milliseconds(1));
  od_->runInterval();
  EXPECT_FALSE(ejected(1));
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(balancedPorts(), (std::set<uint16_t>{2000, 2001, 2002}));
}

TEST_F(DetectorTest, EjectionTimeGrowsWithRepeatedEjectionsAndShrinksWhenHealthy) {
  OD od;
  od.mutable_consecutive_5xx()->set_value(1);
  od.mutable_max_ejection_percent()->set_value(100);
  setMs(od.mutable_interval(), 100);
  setMs(od.mutable_base_ejection_time(), 1000);
  setMs(od.mutable_max_ejection_time(), 2500);
  build(2, od);
  auto ejectNow = [&] {
    od_->onConsecutiveError(host(0), EjectionType::Consecutive5xx);
    ASSERT_TRUE(ejected(0));
  };
  // How long the host stays out, probed in 100 ms intervals.
  auto timeOut = [&] {
    int64_t waited = 0;
    while (ejected(0) && waited < 10000) {
      advance(milliseconds(100));
      waited += 100;
      od_->runInterval();
    }
    return waited;
  };
  ejectNow();
  EXPECT_EQ(timeOut(), 1000);
  ejectNow(); // at once: the multiplier is 2
  EXPECT_EQ(timeOut(), 2000);
  ejectNow(); // 3 x 1000 capped at 2500
  EXPECT_EQ(timeOut(), 2500);
  EXPECT_EQ(host(0)->outlier().num_ejections, 3u);
  // Healthy intervals bring the multiplier down one by one.
  for (int i = 0; i < 2; ++i) od_->runInterval();
  ejectNow();
  EXPECT_EQ(timeOut(), 2000);
}

TEST_F(DetectorTest, JitterIsAddedWithinItsBound) {
  OD od;
  od.mutable_max_ejection_percent()->set_value(100);
  setMs(od.mutable_base_ejection_time(), 1000);
  setMs(od.mutable_max_ejection_time_jitter(), 500);
  build(2, od);
  od_->onConsecutiveError(host(0), EjectionType::Consecutive5xx);
  const auto jitter = host(0)->outlier().jitter;
  EXPECT_GE(jitter.count(), 0);
  EXPECT_LE(jitter.count(), 500);
  advance(milliseconds(1000) + jitter - milliseconds(1));
  od_->runInterval();
  EXPECT_TRUE(ejected(0));
  advance(milliseconds(1));
  od_->runInterval();
  EXPECT_FALSE(ejected(0));
}

TEST_F(DetectorTest, MaxEjectionPercentOverflowsAndAlwaysEjectOneHost) {
  OD od;
  od.mutable_max_ejection_percent()->set_value(50);
  build(4, od);
  for (size_t i = 0; i < 4; ++i) od_->onConsecutiveError(host(i), EjectionType::Consecutive5xx);
  EXPECT_EQ(active(), 2);
  EXPECT_EQ(counter("ejections_overflow"), 2u);
  EXPECT_EQ(counter("ejections_detected_consecutive_5xx"), 4u);
  EXPECT_EQ(counter("ejections_enforced_consecutive_5xx"), 2u);

  // The default 10% of 3 hosts ejects nobody...
  stats::Store store2;
  auto c = Cluster::create(clusterProto(3, OD()), store2, 1);
  ASSERT_TRUE(c.ok());
  (*c)->outlierDetector()->onConsecutiveError((*c)->hosts()[0], EjectionType::Consecutive5xx);
  EXPECT_EQ(store2.counter("cluster.od.outlier_detection.ejections_overflow").value(), 1u);
  EXPECT_EQ(store2.gauge("cluster.od.outlier_detection.ejections_active").value(), 0);
  // ...unless always_eject_one_host, which allows exactly one.
  OD one;
  one.mutable_always_eject_one_host()->set_value(true);
  stats::Store store3;
  c = Cluster::create(clusterProto(3, one), store3, 1);
  ASSERT_TRUE(c.ok());
  for (size_t i = 0; i < 3; ++i) {
    (*c)->outlierDetector()->onConsecutiveError((*c)->hosts()[i], EjectionType::Consecutive5xx);
  }
  EXPECT_EQ(store3.gauge("cluster.od.outlier_detection.ejections_active").value(), 1);
  EXPECT_EQ(store3.counter("cluster.od.outlier_detection.ejections_overflow").value(), 2u);
}

TEST_F(DetectorTest, EnforcementPercentages) {
  // Gateway failures are detected by default but enforced at 0%: counted, never ejected,
  // and detected again after another run of failures.
  OD od;
  od.mutable_max_ejection_percent()->set_value(100);
  od.mutable_consecutive_gateway_failure()->set_value(2);
  od.mutable_consecutive_5xx()->set_value(100);
  build(2, od);
  od_->start(dispatcher_);
  for (int run = 0; run < 2; ++run) {
    od_->putHttpResponseCode(host(0), 502);
    od_->putHttpResponseCode(host(0), 502);
    drainPosts(); // the main thread decides, and starts the count over
  }
  EXPECT_EQ(counter("ejections_detected_consecutive_gateway_failure"), 2u);
  EXPECT_EQ(counter("ejections_enforced_consecutive_gateway_failure"), 0u);
  EXPECT_FALSE(ejected(0));
  // A 500 is a 5xx but not a gateway failure: it breaks the gateway run.
  od_->putHttpResponseCode(host(0), 502);
  od_->putHttpResponseCode(host(0), 500);
  od_->putHttpResponseCode(host(0), 502);
  drainPosts();
  EXPECT_EQ(counter("ejections_detected_consecutive_gateway_failure"), 2u);
}

TEST_F(DetectorTest, LocalOriginFailuresCountAs5xxUnlessSplit) {
  OD od;
  od.mutable_consecutive_5xx()->set_value(3);
  od.mutable_max_ejection_percent()->set_value(100);
  build(2, od);
  od_->start(dispatcher_);
  od_->putResult(host(0), OutlierResult::LocalOriginConnectFailed);
  od_->putResult(host(0), OutlierResult::LocalOriginConnectSuccess); // says nothing yet
  od_->putResult(host(0), OutlierResult::LocalOriginTimeout, 504);
  od_->putResult(host(0), OutlierResult::LocalOriginConnectFailed);
  drainPosts();
  EXPECT_TRUE(ejected(0));
  EXPECT_EQ(counter("ejections_enforced_consecutive_5xx"), 1u);
  // TCP: a final connect success is a success.
  od_->putResult(host(1), OutlierResult::LocalOriginConnectFailed);
  od_->putResult(host(1), OutlierResult::LocalOriginConnectFailed);
  od_->putResult(host(1), OutlierResult::LocalOriginConnectSuccessFinal);
  od_->putResult(host(1), OutlierResult::LocalOriginConnectFailed);
  drainPosts();
  EXPECT_FALSE(ejected(1));
}

TEST_F(DetectorTest, SplitLocalOriginFailuresHaveTheirOwnDetector) {
  OD od;
  od.set_split_external_local_origin_errors(true);
  od.mutable_consecutive_local_origin_failure()->set_value(2);
  od.mutable_consecutive_5xx()->set_value(2);
  od.mutable_max_ejection_percent()->set_value(100);
  build(2, od);
  od_->start(dispatcher_);
  // Interleaved: the local-origin run is not broken by 5xx responses and vice versa.
  od_->putResult(host(0), OutlierResult::LocalOriginConnectFailed);
  od_->putHttpResponseCode(host(0), 200);
  od_->putResult(host(0), OutlierResult::LocalOriginTimeout, 504);
  drainPosts();
  EXPECT_TRUE(ejected(0));
  EXPECT_EQ(counter("ejections_enforced_consecutive_local_origin_failure"), 1u);
  EXPECT_EQ(counter("ejections_detected_consecutive_5xx"), 0u);
  // A connect success breaks the local-origin run; responses go to the 5xx detector.
  od_->putResult(host(1), OutlierResult::LocalOriginConnectFailed);
  od_->putResult(host(1), OutlierResult::LocalOriginConnectSuccess);
  od_->putHttpResponseCode(host(1), 500);
  od_->putResult(host(1), OutlierResult::LocalOriginConnectFailed);
  od_->putHttpResponseCode(host(1), 500);
  drainPosts();
  EXPECT_TRUE(ejected(1));
  EXPECT_EQ(counter("ejections_enforced_consecutive_5xx"), 1u);
  EXPECT_EQ(counter("ejections_enforced_consecutive_local_origin_failure"), 1u);
}

TEST_F(DetectorTest, SuccessRateEjectsTheOutlier) {
  OD od;
  od.mutable_enforcing_consecutive_5xx()->set_value(0);
  od.mutable_success_rate_minimum_hosts()->set_value(5);
  od.mutable_success_rate_request_volume()->set_value(100);
  od.mutable_max_ejection_percent()->set_value(100);
  build(6, od);
  // Five hosts with enough volume: four perfect, one at 50%; one host under the volume.
  for (size_t h = 0; h < 5; ++h) {
    for (int i = 0; i < 100; ++i) od_->putHttpResponseCode(host(h), h == 4 && i % 2 ? 500 : 200);
  }
  for (int i = 0; i < 99; ++i) od_->putHttpResponseCode(host(5), 500);
  od_->runInterval();
  EXPECT_TRUE(ejected(4));
  EXPECT_FALSE(ejected(5)) << "below success_rate_request_volume";
  EXPECT_EQ(counter("ejections_detected_success_rate"), 1u);
  EXPECT_EQ(counter("ejections_enforced_success_rate"), 1u);
  const auto n = od_->successRateNumbers(HostOutlierState::kExternal);
  EXPECT_DOUBLE_EQ(n.mean, 90);
  EXPECT_DOUBLE_EQ(n.ejection_threshold, 90 - 20 * 1.9);
  EXPECT_DOUBLE_EQ(host(0)->outlier().success_rate[HostOutlierState::kExternal], 100);
  EXPECT_DOUBLE_EQ(host(5)->outlier().success_rate[HostOutlierState::kExternal], -1);
  // The next interval starts from zero: no volume, nothing computed.
  od_->runInterval();
  EXPECT_EQ(od_->successRateNumbers(HostOutlierState::kExternal).mean, -1);
  EXPECT_DOUBLE_EQ(host(0)->outlier().success_rate[HostOutlierState::kExternal], -1);
}

TEST_F(DetectorTest, SuccessRateNeedsMinimumHosts) {
  OD od;
  od.mutable_enforcing_consecutive_5xx()->set_value(0);
  od.mutable_success_rate_request_volume()->set_value(10);
  od.mutable_max_ejection_percent()->set_value(100);
  build(4, od); // default minimum: 5 hosts
  for (size_t h = 0; h < 4; ++h) {
    for (int i = 0; i < 10; ++i) od_->putHttpResponseCode(host(h), h == 3 ? 500 : 200);
  }
  od_->runInterval();
  EXPECT_FALSE(ejected(3));
  EXPECT_EQ(counter("ejections_detected_success_rate"), 0u);
}

TEST_F(DetectorTest, FailurePercentage) {
  OD od;
  od.mutable_enforcing_consecutive_5xx()->set_value(0);
  od.mutable_success_rate_minimum_hosts()->set_value(100); // success rate off
  od.mutable_failure_percentage_threshold()->set_value(50);
  od.mutable_failure_percentage_minimum_hosts()->set_value(3);
  od.mutable_failure_percentage_request_volume()->set_value(10);
  od.mutable_enforcing_failure_percentage()->set_value(100);
  od.mutable_max_ejection_percent()->set_value(100);
  build(4, od);
  // 50% failures (at the threshold), 40%, 0%, and 90% under the volume.
  for (int i = 0; i < 10; ++i) {
    od_->putHttpResponseCode(host(0), i < 5 ? 500 : 200);
    od_->putHttpResponseCode(host(1), i < 4 ? 500 : 200);
    od_->putHttpResponseCode(host(2), 200);
    if (i < 9) od_->putHttpResponseCode(host(3), i < 8 ? 500 : 200);
  }
  od_->runInterval();
  EXPECT_TRUE(ejected(0));
  EXPECT_FALSE(ejected(1));
  EXPECT_FALSE(ejected(2));
  EXPECT_FALSE(ejected(3));
  EXPECT_EQ(counter("ejections_enforced_failure_percentage"), 1u);
  // Not enforced by default (enforcing_failure_percentage 0): detected only.
  stats::Store store2;
  OD quiet = od;
  quiet.clear_enforcing_failure_percentage();
  auto c = Cluster::create(clusterProto(3, quiet), store2, 1);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 10; ++i) {
    for (size_t h = 0; h < 3; ++h) {
      (*c)->outlierDetector()->putHttpResponseCode((*c)->hosts()[h], h == 0 ? 500 : 200);
    }
  }
  (*c)->outlierDetector()->runInterval();
  EXPECT_EQ(store2.counter("cluster.od.outlier_detection.ejections_detected_failure_percentage")
                .value(),
            1u);
  EXPECT_EQ(store2.gauge("cluster.od.outlier_detection.ejections_active").value(), 0);
}

TEST_F(DetectorTest, LocalOriginSuccessRateAndFailurePercentageWhenSplit) {
  OD od;
  od.set_split_external_local_origin_errors(true);
  od.mutable_enforcing_consecutive_local_origin_failure()->set_value(0);
  od.mutable_success_rate_minimum_hosts()->set_value(100);
  od.mutable_failure_percentage_minimum_hosts()->set_value(3);
  od.mutable_failure_percentage_request_volume()->set_value(10);
  od.mutable_enforcing_failure_percentage_local_origin()->set_value(100);
  od.mutable_max_ejection_percent()->set_value(100);
  build(3, od);
  for (int i = 0; i < 10; ++i) {
    od_->putResult(host(0), OutlierResult::LocalOriginConnectFailed);
    od_->putResult(host(1), OutlierResult::LocalOriginConnectSuccess);
    od_->putResult(host(2), OutlierResult::LocalOriginConnectSuccess);
    // External 5xx do not count towards the local-origin detectors.
    od_->putHttpResponseCode(host(1), 500);
  }
  od_->runInterval();
  EXPECT_TRUE(ejected(0));
  EXPECT_FALSE(ejected(1));
  EXPECT_EQ(counter("ejections_enforced_failure_percentage_local_origin"), 1u);
  EXPECT_EQ(counter("ejections_detected_failure_percentage"), 0u);
}

TEST_F(DetectorTest, ActiveHealthCheckSuccessUnejects) {
  OD od;
  od.mutable_max_ejection_percent()->set_value(100);
  build(2, od);
  od_->onConsecutiveError(host(0), EjectionType::Consecutive5xx);
  ASSERT_TRUE(ejected(0));
  od_->onActiveHealthCheckSuccess(host(0));
  EXPECT_FALSE(ejected(0));
  EXPECT_EQ(active(), 0);
  OD keep = od;
  keep.mutable_successful_active_health_check_uneject_host()->set_value(false);
  build(2, keep);
  od_->onConsecutiveError(host(0), EjectionType::Consecutive5xx);
  od_->onActiveHealthCheckSuccess(host(0));
  EXPECT_TRUE(ejected(0));
}

TEST_F(DetectorTest, PanicThresholdStillAppliesToEjectedHosts) {
  OD od;
  od.mutable_max_ejection_percent()->set_value(100);
  build(2, od);
  od_->onConsecutiveError(host(0), EjectionType::Consecutive5xx);
  od_->onConsecutiveError(host(1), EjectionType::Consecutive5xx);
  EXPECT_EQ(active(), 2);
  // Nothing healthy: the balancer panics and uses every host, as for active HC.
  EXPECT_EQ(balancedPorts(), (std::set<uint16_t>{2000, 2001}));
  EXPECT_GT(store_.counter("cluster.od.lb_healthy_panic").value(), 0u);
}

TEST_F(DetectorTest, RuntimeKeysOverrideTheConfiguration) {
  runtime::Layer layer;
  layer.name = "static";
  layer.values = {{"outlier_detection.consecutive_5xx", "2"},
                  {"outlier_detection.base_ejection_time_ms", "500"},
                  {"outlier_detection.max_ejection_percent", "100"},
                  {"outlier_detection.interval_ms", "250"}};
  runtime::setLoader(std::make_shared<runtime::Loader>(std::vector<runtime::Layer>{layer}));
  OD od;
  od.mutable_consecutive_5xx()->set_value(50);
  build(2, od);
  od_->start(dispatcher_);
  EXPECT_EQ(od_->effective().consecutive_5xx, 2u);
  EXPECT_EQ(od_->effective().interval, milliseconds(250));
  EXPECT_EQ(od_->config().consecutive_5xx, 50u) << "the configuration itself is unchanged";
  od_->putHttpResponseCode(host(0), 503);
  od_->putHttpResponseCode(host(0), 503);
  drainPosts();
  EXPECT_TRUE(ejected(0)) << "2 of 2 hosts may go with the runtime's 100%";
  advance(milliseconds(500));
  od_->runInterval();
  EXPECT_FALSE(ejected(0));
  runtime::setLoader(std::make_shared<runtime::Loader>());
  od_->runInterval();
  EXPECT_EQ(od_->effective().consecutive_5xx, 50u);
}

} // namespace
} // namespace legate::upstream
