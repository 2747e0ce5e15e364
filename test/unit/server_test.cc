#include "config/bootstrap_loader.h"
#include "config/extension_registry.h"
#include "gtest/gtest.h"
#include "server/options.h"
#include "server/server.h"

namespace legate::server {
namespace {

absl::StatusOr<Options> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "legate");
  return parseOptions(static_cast<int>(args.size()), args.data());
}

TEST(OptionsTest, EnvoyFlagNamesInBothSpellings) {
  auto o = parse({"-c", "a.yaml", "--config-yaml", "x: 1", "--mode", "validate", "--concurrency=3",
                  "-l", "debug", "--component-log-level", "upstream:trace", "--drain-time-s", "5",
                  "--log-path", "/tmp/x.log", "--disable-hot-restart"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->config_path, "a.yaml");
  EXPECT_EQ(o->config_yaml, "x: 1");
  EXPECT_EQ(o->mode, Mode::Validate);
  EXPECT_EQ(o->concurrency, 3u);
  EXPECT_EQ(o->log_level, "debug");
  EXPECT_EQ(o->component_log_level, "upstream:trace");
  EXPECT_EQ(o->drain_time_s, 5u);
  EXPECT_EQ(o->log_path, "/tmp/x.log");
  EXPECT_EQ(parse({"--config-path=b.json"})->config_path, "b.json");
}

TEST(OptionsTest, BadFlagsSayWhatIsWrong) {
  auto unknown = parse({"--frobnicate"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown option '--frobnicate'"), std::string::npos);
  auto bad = parse({"--concurrency", "abc"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--concurrency: 'abc'"), std::string::npos);
  EXPECT_FALSE(parse({"--concurrency", "0"}).ok());
  EXPECT_FALSE(parse({"--mode", "nope"}).ok());
  EXPECT_FALSE(parse({"-c"}).ok());
  EXPECT_FALSE(parse({"--restart-epoch", "1"}).ok());
}

TEST(OptionsTest, AvailableCpusIsAtLeastOne) { EXPECT_GE(availableCpus(), 1u); }

class ConfigModelTest : public ::testing::Test {
protected:
  void SetUp() override { config::registerBuiltinExtensions(config::ExtensionRegistry::get()); }
  absl::Status build(const std::string& yaml) {
    envoy::config::bootstrap::v3::Bootstrap b;
    auto st = config::loadMessageFromYaml(yaml, "test.yaml", b);
    if (!st.ok()) return st;
    stats::Store store;
    auto model = buildConfigModel(b, store, 1);
    return model.status();
  }
  static constexpr const char* kCluster = R"(
  clusters:
  - name: backend
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
)";
  std::string listener(const std::string& cluster, const std::string& extra = "") {
    return std::string(R"(
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
)") + extra + R"(
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: t
          cluster: )" + cluster + "\n" + kCluster;
  }
};

TEST_F(ConfigModelTest, ValidTcpProxyBuilds) { EXPECT_TRUE(build(listener("backend")).ok()); }

TEST_F(ConfigModelTest, UnknownClusterIsNamed) {
  auto st = build(listener("nope"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("static_resources.listeners[0].filter_chains[0].filters[0]"
                              ".typed_config.cluster: unknown cluster 'nope'"),
            std::string::npos)
      << st;
}

TEST_F(ConfigModelTest, UnsupportedListenerFieldIsRefused) {
  auto st = build(listener("backend", "    listener_filters:\n    - name: x\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("listener_filters"), std::string::npos) << st;
}

// load_balancing_policy as YAML: an Envoy policy legate does not implement is
// read and skipped, the next one is used; with none supported the error names
// the field.
TEST_F(ConfigModelTest, LoadBalancingPolicySkipsWhatLegateDoesNotImplement) {
  const std::string policies = R"(
    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.client_side_weighted_round_robin
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin
            blackout_period: 5s
)";
  const std::string rr = R"(      - typed_extension_config:
          name: envoy.load_balancing_policies.least_request
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest
            choice_count: 3
)";
  auto with = [&](const std::string& extra) {
    std::string yaml = listener("backend");
    const std::string at = "  - name: backend\n";
    yaml.insert(yaml.find(at) + at.size(), extra);
    return yaml;
  };
  EXPECT_TRUE(build(with(policies + rr)).ok()) << build(with(policies + rr));
  auto st = build(with(policies));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("static_resources.clusters[0].load_balancing_policy: none of its "
                              "policies is implemented by legate"),
            std::string::npos)
      << st;
  // A type the Envoy API does not have is still refused where it is written.
  std::string unknown = policies;
  unknown.replace(unknown.find("client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin"),
                  std::string("client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin")
                      .size(),
                  "nope.v3.Nope");
  st = build(with(unknown));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("unknown type"), std::string::npos) << st;
}

TEST_F(ConfigModelTest, OriginalDstListenerFilterAndHandOffFields) {
  const std::string filter = R"(    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
    listener_filters_timeout: 1s
    use_original_dst: true
    bind_to_port: false
)";
  EXPECT_TRUE(build(listener("backend", filter)).ok()) << build(listener("backend", filter));
  // Another listener filter type is refused by name.
  const std::string other = R"(    listener_filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: x
        cluster: backend
)";
  auto st = build(listener("backend", other));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("static_resources.listeners[0].listener_filters[0].typed_config: "
                              "'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy' is not a "
                              "listener filter legate implements"),
            std::string::npos)
      << st;
  // What stays refused: transparent sockets, a disabled-filter matcher.
  st = build(listener("backend", "    transparent: true\n"));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("transparent"), std::string::npos) << st;
  const std::string disabled = R"(    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
      filter_disabled: { destination_port_range: { start: 1, end: 2 } }
)";
  st = build(listener("backend", disabled));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("listener_filters[0].filter_disabled"), std::string::npos) << st;
}

} // namespace
} // namespace legate::server
