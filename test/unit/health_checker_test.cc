#include "envoy/config/core/v3/health_check.pb.h"
#include "gtest/gtest.h"
#include "upstream/health_checker.h"

namespace legate::upstream {
namespace {

envoy::config::core::v3::HealthCheck base() {
  envoy::config::core::v3::HealthCheck hc;
  hc.mutable_timeout()->set_seconds(1);
  hc.mutable_interval()->set_seconds(2);
  hc.mutable_unhealthy_threshold()->set_value(3);
  hc.mutable_healthy_threshold()->set_value(2);
  return hc;
}

TEST(HealthCheckConfigTest, HttpDefaultsAndExpectedStatuses) {
  auto hc = base();
  hc.mutable_http_health_check()->set_path("/healthz");
  auto c = HealthCheckConfig::create(hc, "hc");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->kind, HealthCheckConfig::Kind::Http);
  EXPECT_EQ((*c)->interval, std::chrono::milliseconds(2000));
  // Unset intervals follow Envoy's defaults.
  EXPECT_EQ((*c)->unhealthy_interval, std::chrono::milliseconds(2000));
  EXPECT_EQ((*c)->unhealthy_edge_interval, std::chrono::milliseconds(2000));
  EXPECT_EQ((*c)->healthy_edge_interval, std::chrono::milliseconds(2000));
  EXPECT_EQ((*c)->no_traffic_interval, std::chrono::milliseconds(60000));
  EXPECT_TRUE((*c)->reuse_connection);
  // Without expected_statuses only 200 is healthy.
  EXPECT_TRUE((*c)->expectedStatus(200));
  EXPECT_FALSE((*c)->expectedStatus(204));
  auto* r = hc.mutable_http_health_check()->add_expected_statuses();
  r->set_start(200);
  r->set_end(300);
  c = HealthCheckConfig::create(hc, "hc");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE((*c)->expectedStatus(204));
  EXPECT_FALSE((*c)->expectedStatus(300));
}

TEST(HealthCheckConfigTest, TcpHexPayloads) {
  auto hc = base();
  hc.mutable_tcp_health_check()->mutable_send()->set_text("50494E47");
  hc.mutable_tcp_health_check()->add_receive()->set_text("504f");
  auto c = HealthCheckConfig::create(hc, "hc");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->send, "PING");
  ASSERT_EQ((*c)->receive.size(), 1u);
  EXPECT_EQ((*c)->receive[0], "PO");
  hc.mutable_tcp_health_check()->mutable_send()->set_text("5G");
  c = HealthCheckConfig::create(hc, "hc");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("hc.tcp_health_check.send.text"),
            std::string::npos);
}

TEST(HealthCheckConfigTest, UnimplementedKindsAreRefusedByName) {
  auto hc = base();
  hc.mutable_grpc_health_check();
  auto c = HealthCheckConfig::create(hc, "clusters[0].health_checks[0]");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("grpc_health_check"), std::string::npos);
  hc = base();
  hc.mutable_http_health_check()->set_path("/");
  hc.mutable_http_health_check()->set_codec_client_type(envoy::type::v3::HTTP2);
  EXPECT_FALSE(HealthCheckConfig::create(hc, "hc").ok());
}

} // namespace
} // namespace legate::upstream
