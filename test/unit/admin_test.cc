// The admin server over real sockets: a blocking HTTP/1.1 client on a helper thread
// talks to an AdminServer whose event loop the test thread drives.

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "admin/admin.h"
#include "envoy/admin/v3/config_dump.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/options.h"

namespace legate::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

class FakeServer : public server::Instance {
public:
  FakeServer() {
    options_.concurrency = 2;
    options_.config_path = "envoy.yaml";
    options_.log_level = "debug";
    bootstrap_.mutable_node()->set_id("node-1");
    bootstrap_.mutable_node()->set_cluster("edge");
    auto* cluster = bootstrap_.mutable_static_resources()->add_clusters();
    cluster->set_name("backend");
    auto* t = cluster->mutable_circuit_breakers()->add_thresholds();
    t->mutable_max_connections()->set_value(7);
    auto* listener = bootstrap_.mutable_static_resources()->add_listeners();
    listener->set_name("tcp_in");
    listener->mutable_address()->mutable_socket_address()->set_address("127.0.0.1");
    listener->mutable_address()->mutable_socket_address()->set_port_value(10000);
    envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy tcp;
    tcp.set_stat_prefix("ingress_tcp");
    tcp.set_cluster("backend");
    auto* filter = listener->add_filter_chains()->add_filters();
    filter->set_name("envoy.filters.network.tcp_proxy");
    filter->mutable_typed_config()->PackFrom(tcp);
  }

  stats::Store& stats() override { return store_; }
  envoy::config::bootstrap::v3::Bootstrap bootstrap() const override { return bootstrap_; }
  const envoy::config::core::v3::Node& node() const override { return bootstrap_.node(); }
  const server::Options& options() const override { return options_; }
  server::ServerState state() const override {
    return hc_failed_ ? server::ServerState::Draining : state_;
  }
  std::chrono::seconds uptime() const override { return std::chrono::seconds(12); }
  void drainListeners(bool graceful, bool inbound_only) override {
    drained_ = true;
    drain_graceful_ = graceful;
    drain_inbound_only_ = inbound_only;
  }
  bool drained_ = false, drain_graceful_ = false, drain_inbound_only_ = false;
  runtime::Loader& runtime() override { return runtime_; }
  runtime::Loader runtime_;
  std::vector<server::ListenerInfo> listeners() const override {
    return {{"tcp_in", "127.0.0.1:10000"}, {"v6", "[::1]:10001"}};
  }
  std::vector<server::ClusterInfo> clusters() const override {
    server::HostInfo h;
    h.address = "127.0.0.1:8080";
    h.weight = 3;
    h.health = "healthy";
    h.stats = {{"cx_connect_fail", false, 1}, {"cx_total", false, 5}, {"rq_total", false, 9},
               {"cx_active", true, 2}, {"rq_active", true, 0}};
    server::ClusterInfo c;
    c.name = "backend";
    c.hosts = {h};
    // What the cluster's ResourceManager says (not re-read from the bootstrap).
    c.default_priority = {8, 1024, 1024, 3};
    c.high_priority = {1024, 1024, 1024, 3};
    return {c};
  }
  void setHealthCheckFailed(bool failed) override { hc_failed_ = failed; }
  bool healthCheckFailed() const override { return hc_failed_; }
  void shutdown() override { ++shutdowns_; }

  stats::Store store_;
  envoy::config::bootstrap::v3::Bootstrap bootstrap_;
  server::Options options_;
  server::ServerState state_ = server::ServerState::Live;
  bool hc_failed_ = false;
  int shutdowns_ = 0;
};

struct HttpResponse {
  int code = 0;
  std::map<std::string, std::string> headers; // lower-case names
  std::string body;
};

// Sends raw on a fresh connection and reads until the server closes it.
std::string exchange(uint16_t port, const std::string& raw) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  size_t sent = 0;
  while (sent < raw.size()) {
    const ssize_t n = ::send(fd, raw.data() + sent, raw.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

HttpResponse parse(const std::string& raw) {
  HttpResponse r;
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.size() < 12) {
    r.body = raw;
    return r;
  }
  r.code = std::stoi(raw.substr(9, 3));
  size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    const size_t eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    const size_t colon = line.find(':');
    r.headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    pos = eol + 2;
  }
  r.body = raw.substr(end + 4);
  return r;
}

class AdminTest : public ::testing::Test {
protected:
  void SetUp() override {
    base_ = event_base_new();
    auto admin = AdminServer::create(base_, "127.0.0.1", 0, server_);
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = std::move(*admin);
    ASSERT_NE(admin_->port(), 0);
  }
  void TearDown() override {
    admin_.reset();
    event_base_free(base_);
  }

  // Drives the loop on this thread until cond() or a deadline.
  template <class Cond> bool runUntil(Cond cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!cond()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

  HttpResponse request(const std::string& method, const std::string& target) {
    const std::string raw = method + " " + target +
                            " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                            "Content-Length: 0\r\n\r\n";
    auto reply = std::async(std::launch::async, exchange, admin_->port(), raw);
    EXPECT_TRUE(runUntil([&] {
      return reply.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    }));
    return parse(reply.get());
  }
  HttpResponse get(const std::string& target) { return request("GET", target); }
  HttpResponse post(const std::string& target) { return request("POST", target); }

  FakeServer server_;
  event_base* base_ = nullptr;
  std::unique_ptr<AdminServer> admin_;
};

TEST_F(AdminTest, ReadyFollowsServerState) {
  auto r = get("/ready");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "LIVE\n");
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=UTF-8");
  EXPECT_EQ(r.headers["cache-control"], "no-cache, max-age=0");
  EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");

  server_.state_ = server::ServerState::Draining;
  r = get("/ready");
  EXPECT_EQ(r.code, 503);
  EXPECT_EQ(r.body, "DRAINING\n");
  server_.state_ = server::ServerState::PreInitializing;
  EXPECT_EQ(get("/ready").body, "PRE_INITIALIZING\n");
  server_.state_ = server::ServerState::Initializing;
  EXPECT_EQ(get("/ready").body, "INITIALIZING\n");
}

TEST_F(AdminTest, HealthcheckFailAndOk) {
  EXPECT_EQ(post("/healthcheck/fail").body, "OK\n");
  EXPECT_TRUE(server_.hc_failed_);
  auto r = get("/ready");
  EXPECT_EQ(r.code, 503);
  EXPECT_EQ(r.body, "DRAINING\n");
  EXPECT_EQ(post("/healthcheck/ok").code, 200);
  EXPECT_FALSE(server_.hc_failed_);
  EXPECT_EQ(get("/ready").code, 200);
}

TEST_F(AdminTest, MutationsNeedPost) {
  for (const char* path : {"/quitquitquit", "/healthcheck/fail", "/healthcheck/ok",
                           "/reset_counters"}) {
    auto r = get(path);
    EXPECT_EQ(r.code, 405) << path;
    EXPECT_THAT(r.body, HasSubstr("requires POST")) << path;
    EXPECT_EQ(r.headers["allow"], "POST");
  }
  EXPECT_EQ(server_.shutdowns_, 0);
  EXPECT_FALSE(server_.hc_failed_);
}

TEST_F(AdminTest, QuitQuitQuitShutsDownAfterReplying) {
  auto r = post("/quitquitquit");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "OK\n");
  EXPECT_TRUE(runUntil([&] { return server_.shutdowns_ > 0; }));
  EXPECT_EQ(server_.shutdowns_, 1);
}

TEST_F(AdminTest, ServerInfo) {
  auto r = get("/server_info");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_THAT(r.body, HasSubstr("\"version\": \"legate/"));
  EXPECT_THAT(r.body, HasSubstr("\"state\": \"LIVE\""));
  EXPECT_THAT(r.body, HasSubstr("\"uptime_current_epoch\": \"12s\""));
  EXPECT_THAT(r.body, HasSubstr("\"uptime_all_epochs\": \"12s\""));
  EXPECT_THAT(r.body, HasSubstr("\"hot_restart_version\": \"disabled\""));
  EXPECT_THAT(r.body, HasSubstr("\"concurrency\": 2"));
  EXPECT_THAT(r.body, HasSubstr("\"config_path\": \"envoy.yaml\""));
  EXPECT_THAT(r.body, HasSubstr("\"log_level\": \"debug\""));
  EXPECT_THAT(r.body, HasSubstr("\"drain_time\": \"600s\""));
  EXPECT_THAT(r.body, HasSubstr("\"mode\": \"Serve\""));
  EXPECT_THAT(r.body, HasSubstr("\"id\": \"node-1\""));
  server_.state_ = server::ServerState::Draining;
  EXPECT_THAT(get("/server_info").body, HasSubstr("\"state\": \"DRAINING\""));
}

TEST_F(AdminTest, Stats) {
  server_.store_.counter("cluster.backend.upstream_cx_total").inc(4);
  server_.store_.counter("cluster.backend.upstream_rq_200").inc(2);
  server_.store_.gauge("server.live").set(1);
  server_.store_.counter("listener_manager.listener_create_failure");
  server_.store_.histogram("cluster.backend.upstream_cx_length_ms").record(7);

  auto r = get("/stats");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=UTF-8");
  EXPECT_THAT(r.body, StartsWith("cluster.backend.upstream_cx_total: 4\n"
                                 "cluster.backend.upstream_rq_200: 2\n"
                                 "listener_manager.listener_create_failure: 0\n"
                                 "server.live: 1\n"
                                 "cluster.backend.upstream_cx_length_ms: P0("));

  EXPECT_EQ(get("/stats?filter=%5Eserver%5C.").body, "server.live: 1\n");
  EXPECT_EQ(get("/stats?filter=rq_[0-9]+").body, "cluster.backend.upstream_rq_200: 2\n");
  EXPECT_THAT(get("/stats?usedonly").body, Not(HasSubstr("listener_create_failure")));

  r = get("/stats?format=json&filter=live");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.body, "{\n \"stats\": [\n  {\n   \"name\": \"server.live\",\n   \"value\": 1\n  }\n ]\n}\n");

  r = get("/stats?format=prometheus");
  EXPECT_THAT(r.body, HasSubstr("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"backend\"} 4\n"));
  EXPECT_THAT(r.body, HasSubstr("envoy_cluster_upstream_rq{envoy_cluster_name=\"backend\","
                                "envoy_response_code=\"200\"} 2\n"));
  r = get("/stats/prometheus?usedonly");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=UTF-8");
  EXPECT_THAT(r.body, HasSubstr("# TYPE envoy_server_live gauge\nenvoy_server_live 1\n"));
  EXPECT_THAT(r.body, HasSubstr("envoy_cluster_upstream_cx_length_ms_bucket{envoy_cluster_name="
                                "\"backend\",le=\"10\"} 1\n"));
  EXPECT_THAT(r.body, Not(HasSubstr("listener_create_failure")));

  r = get("/stats?filter=(oops");
  EXPECT_EQ(r.code, 400);
  EXPECT_THAT(r.body, HasSubstr("invalid filter regex"));
  EXPECT_EQ(get("/stats?format=xml").code, 400);
}

TEST_F(AdminTest, ResetCounters) {
  server_.store_.counter("a").inc(3);
  server_.store_.gauge("g").set(3);
  EXPECT_EQ(post("/reset_counters").code, 200);
  EXPECT_EQ(server_.store_.counter("a").value(), 0u);
  EXPECT_EQ(server_.store_.gauge("g").value(), 3);
}

TEST_F(AdminTest, ConfigDump) {
  auto r = get("/config_dump");
  ASSERT_EQ(r.code, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_THAT(r.body, StartsWith("{\n \"configs\": [\n  {\n   \"@type\": "
                                 "\"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump\","));
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\""));
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/envoy.admin.v3.ListenersConfigDump\""));
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\""));
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\""));
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/"
                                "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\""));
  EXPECT_THAT(r.body, HasSubstr("\"stat_prefix\": \"ingress_tcp\""));
  EXPECT_THAT(r.body, HasSubstr("\"static_clusters\""));
  EXPECT_THAT(r.body, HasSubstr("\"static_listeners\""));
  EXPECT_THAT(r.body, HasSubstr("\"last_updated\""));
  // It reads back as a ConfigDump.
  envoy::admin::v3::ConfigDump dump;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &dump).ok());
  EXPECT_EQ(dump.configs_size(), 3);
  envoy::admin::v3::BootstrapConfigDump bootstrap;
  ASSERT_TRUE(dump.configs(0).UnpackTo(&bootstrap));
  EXPECT_EQ(bootstrap.bootstrap().node().id(), "node-1");
}

TEST_F(AdminTest, ConfigDumpResource) {
  auto r = get("/config_dump?resource=static_clusters");
  ASSERT_EQ(r.code, 200) << r.body;
  EXPECT_THAT(r.body, HasSubstr("\"@type\": \"type.googleapis.com/"
                                "envoy.admin.v3.ClustersConfigDump.StaticCluster\""));
  EXPECT_THAT(r.body, Not(HasSubstr("BootstrapConfigDump")));
  EXPECT_THAT(r.body, Not(HasSubstr("static_listeners")));
  r = get("/config_dump?resource=nothing_like_this");
  EXPECT_EQ(r.code, 404);
  EXPECT_THAT(r.body, HasSubstr("nothing_like_this"));
}

TEST_F(AdminTest, Listeners) {
  auto r = get("/listeners");
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body, "tcp_in::127.0.0.1:10000\nv6::[::1]:10001\n");
  r = get("/listeners?format=json");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_THAT(r.body, HasSubstr("\"listener_statuses\": ["));
  EXPECT_THAT(r.body, HasSubstr("\"name\": \"tcp_in\",\n   \"local_address\": {\n    "
                                "\"socket_address\": {\n     \"address\": \"127.0.0.1\",\n"
                                "     \"port_value\": 10000\n"));
  EXPECT_THAT(r.body, HasSubstr("\"address\": \"::1\",\n     \"port_value\": 10001"));
}

TEST_F(AdminTest, Clusters) {
  auto r = get("/clusters");
  EXPECT_EQ(r.code, 200);
  EXPECT_THAT(r.body, HasSubstr("backend::default_priority::max_connections::8\n"));
  EXPECT_THAT(r.body, HasSubstr("backend::default_priority::max_retries::3\n"));
  EXPECT_THAT(r.body, HasSubstr("backend::high_priority::max_connections::1024\n"));
  EXPECT_THAT(r.body, HasSubstr("backend::added_via_api::false\n"));
  EXPECT_THAT(r.body, HasSubstr("backend::127.0.0.1:8080::cx_connect_fail::1\n"
                                "backend::127.0.0.1:8080::cx_total::5\n"
                                "backend::127.0.0.1:8080::rq_total::9\n"
                                "backend::127.0.0.1:8080::cx_active::2\n"
                                "backend::127.0.0.1:8080::rq_active::0\n"
                                "backend::127.0.0.1:8080::health_flags::healthy\n"
                                "backend::127.0.0.1:8080::weight::3\n"));
  r = get("/clusters?format=json");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_THAT(r.body, HasSubstr("\"cluster_statuses\": ["));
  EXPECT_THAT(r.body, HasSubstr("\"name\": \"backend\""));
  EXPECT_THAT(r.body, HasSubstr("\"socket_address\": {\n       \"address\": \"127.0.0.1\",\n"
                                "       \"port_value\": 8080"));
  EXPECT_THAT(r.body, HasSubstr("\"name\": \"cx_total\",\n       \"value\": \"5\""));
  EXPECT_THAT(r.body, HasSubstr("\"eds_health_status\": \"HEALTHY\""));
  EXPECT_THAT(r.body, HasSubstr("\"weight\": 3"));
}

TEST_F(AdminTest, HelpAndUnknownPaths) {
  auto r = get("/help");
  EXPECT_EQ(r.code, 200);
  EXPECT_THAT(r.body, StartsWith("admin commands are:\n"));
  for (const char* path : {"/clusters", "/config_dump", "/healthcheck/fail", "/healthcheck/ok",
                           "/help", "/listeners", "/quitquitquit", "/ready", "/reset_counters",
                           "/server_info", "/stats", "/stats/prometheus"}) {
    EXPECT_THAT(r.body, HasSubstr(std::string("  ") + path + ": ")) << path;
  }
  EXPECT_EQ(get("/").code, 200);
  r = get("/nope");
  EXPECT_EQ(r.code, 404);
  EXPECT_THAT(r.body, HasSubstr("admin commands are:"));
}

TEST_F(AdminTest, BindConflictNamesTheAddress) {
  auto second = AdminServer::create(base_, "127.0.0.1", admin_->port(), server_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(),
            "admin: cannot bind 127.0.0.1:" + std::to_string(admin_->port()) +
                ": Address already in use");
  auto bad = AdminServer::create(base_, "not-an-ip", 0, server_);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("not-an-ip"));
}

TEST_F(AdminTest, DestructionUnbinds) {
  const uint16_t port = admin_->port();
  admin_.reset();
  auto again = AdminServer::create(base_, "127.0.0.1", port, server_);
  EXPECT_TRUE(again.ok()) << again.status();
}

} // namespace
} // namespace legate::admin
