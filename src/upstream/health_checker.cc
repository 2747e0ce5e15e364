#include "upstream/health_checker.h"

#include "common/logger.h"
#include "config/unsupported.h"
#include "envoy/config/core/v3/health_check.pb.h"
#include "http/http1/client_connection.h"
#include "network/connection.h"
#include "network/transport_socket.h"
#include "upstream/cluster.h"

namespace legate::upstream {
namespace {

spdlog::logger& hcLog() {
  static spdlog::logger& l = log::get("hc");
  return l;
}

std::chrono::milliseconds ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
}

// Payload text is hex (Envoy's TCP health check): "0102" is two bytes.
absl::StatusOr<std::string> payloadFromProto(const envoy::config::core::v3::HealthCheck::Payload& p,
                                             const std::string& path) {
  if (!p.has_text()) return p.binary();
  const std::string& hex = p.text();
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError(path + ".text: hex payload of odd length");
  }
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(path + ".text: not a hex payload");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

} // namespace

absl::StatusOr<std::shared_ptr<const HealthCheckConfig>>
HealthCheckConfig::create(const envoy::config::core::v3::HealthCheck& proto,
                          const std::string& path) {
  using HC = envoy::config::core::v3::HealthCheck;
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"grpc_health_check", "custom_health_check", "alt_port", "event_log_path",
           "event_service", "event_logger", "tls_options", "transport_socket_match_criteria",
           "no_traffic_healthy_interval_unused"},
          path);
      !st.ok()) {
    return st;
  }
  auto c = std::make_shared<HealthCheckConfig>();
  c->timeout = ms(proto.timeout());
  c->interval = ms(proto.interval());
  if (proto.has_initial_jitter()) c->initial_jitter = ms(proto.initial_jitter());
  if (proto.has_interval_jitter()) c->interval_jitter = ms(proto.interval_jitter());
  c->interval_jitter_percent = proto.interval_jitter_percent();
  c->unhealthy_threshold = std::max<uint32_t>(1, proto.unhealthy_threshold().value());
  c->healthy_threshold = std::max<uint32_t>(1, proto.healthy_threshold().value());
  if (proto.has_no_traffic_interval()) c->no_traffic_interval = ms(proto.no_traffic_interval());
  c->no_traffic_healthy_interval = proto.has_no_traffic_healthy_interval()
                                       ? ms(proto.no_traffic_healthy_interval())
                                       : c->no_traffic_interval;
  c->unhealthy_interval =
      proto.has_unhealthy_interval() ? ms(proto.unhealthy_interval()) : c->interval;
  c->unhealthy_edge_interval =
      proto.has_unhealthy_edge_interval() ? ms(proto.unhealthy_edge_interval())
                                          : c->unhealthy_interval;
  c->healthy_edge_interval =
      proto.has_healthy_edge_interval() ? ms(proto.healthy_edge_interval()) : c->interval;
  c->reuse_connection = !proto.has_reuse_connection() || proto.reuse_connection().value();

  switch (proto.health_checker_case()) {
  case HC::kHttpHealthCheck: {
    const auto& h = proto.http_health_check();
    const std::string hpath = path + ".http_health_check";
    if (auto st = config::rejectUnsupportedFields(
            h, {"send", "receive", "response_buffer_size", "retriable_statuses",
                "service_name_matcher"},
            hpath);
        !st.ok()) {
      return st;
    }
    if (h.codec_client_type() != envoy::type::v3::HTTP1) {
      return absl::InvalidArgumentError(hpath + ".codec_client_type: only HTTP1 health checks are "
                                                "implemented by legate yet");
    }
    c->kind = Kind::Http;
    c->host = h.host();
    c->path = h.path();
    if (h.method() != envoy::config::core::v3::METHOD_UNSPECIFIED) {
      c->method = envoy::config::core::v3::RequestMethod_Name(h.method());
    }
    for (const auto& hv : h.request_headers_to_add()) {
      c->headers_to_add.emplace_back(hv.header().key(), hv.header().value());
    }
    for (const auto& name : h.request_headers_to_remove()) c->headers_to_remove.push_back(name);
    for (int i = 0; i < h.expected_statuses_size(); ++i) {
      const auto& r = h.expected_statuses(i);
      if (r.start() < 100 || r.end() > 600 || r.start() >= r.end()) {
        return absl::InvalidArgumentError(hpath + ".expected_statuses[" + std::to_string(i) +
                                          "]: a range [start, end) within 100..600 is expected");
      }
      c->expected_statuses.emplace_back(r.start(), r.end());
    }
    break;
  }
  case HC::kTcpHealthCheck: {
    const auto& t = proto.tcp_health_check();
    const std::string tpath = path + ".tcp_health_check";
    if (auto st = config::rejectUnsupportedFields(t, {"proxy_protocol_config"}, tpath); !st.ok()) {
      return st;
    }
    c->kind = Kind::Tcp;
    if (t.has_send()) {
      auto bytes = payloadFromProto(t.send(), tpath + ".send");
      if (!bytes.ok()) return bytes.status();
      c->send = std::move(*bytes);
    }
    for (int i = 0; i < t.receive_size(); ++i) {
      auto bytes = payloadFromProto(t.receive(i),
                                    tpath + ".receive[" + std::to_string(i) + "]");
      if (!bytes.ok()) return bytes.status();
      c->receive.push_back(std::move(*bytes));
    }
    break;
  }
  default:
    return absl::InvalidArgumentError(path + ": an http_health_check or tcp_health_check is "
                                             "required (others are not implemented by legate yet)");
  }
  return std::shared_ptr<const HealthCheckConfig>(std::move(c));
}

bool HealthCheckConfig::expectedStatus(uint64_t status) const {
  if (expected_statuses.empty()) return status == 200;
  for (const auto& [start, end] : expected_statuses) {
    if (static_cast<int64_t>(status) >= start && static_cast<int64_t>(status) < end) return true;
  }
  return false;
}

HealthCheckStats::HealthCheckStats(stats::Scope s)
    : attempt(s.counter("attempt")), success(s.counter("success")), failure(s.counter("failure")),
      network_failure(s.counter("network_failure")), healthy(s.gauge("healthy")) {}

// One host's probe: its timers, its (reused) connection and its counts.
class HealthChecker::Session : public network::ConnectionCallbacks,
                               public network::ReadFilter,
                               public http::StreamDecoder {
public:
  Session(HealthChecker& parent, HostConstSharedPtr host)
      : parent_(parent), host_(std::move(host)) {
    interval_timer_ = parent_.main_.createTimer([this] { onInterval(); });
    timeout_timer_ = parent_.main_.createTimer([this] {
      hcLog().debug("health check of {} timed out", host_->address().asString());
      closeProbe();
      onResult(false, true, false);
    });
  }
  ~Session() override { closeProbe(); }

  void schedule(std::chrono::milliseconds after) { interval_timer_->enableTimer(after); }
  const Host& host() const { return *host_; }

  // --- network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected) {
      connected_ = true;
      probe_->conn->initializeReadFilters();
      if (in_check_) sendProbe();
      return;
    }
    // Closed: a check in progress fails (an HTTP response delimited by the
    // close was delivered through the codec first).
    if (probe_ && probe_->codec) probe_->codec->onRemoteClose();
    dropProbe();
    if (in_check_) onResult(false, true, false);
  }

  // --- network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onNewConnection() override { return network::FilterStatus::Continue; }
  network::FilterStatus onData(Buffer& data, bool) override {
    if (!in_check_) {
      data.drain(data.length()); // nothing asked: ignore (and the next check reconnects)
      closeProbe();
      return network::FilterStatus::StopIteration;
    }
    if (parent_.config_->kind == HealthCheckConfig::Kind::Tcp) {
      received_ += data.toString();
      data.drain(data.length());
      if (tcpReplyMatches()) {
        closeProbe();
        onResult(true, false, false);
      }
      return network::FilterStatus::StopIteration;
    }
    const absl::Status st = probe_->codec->dispatch(data);
    if (!st.ok()) {
      data.drain(data.length());
      closeProbe();
      if (in_check_) onResult(false, false, false);
    }
    return network::FilterStatus::StopIteration;
  }

  // --- http::StreamDecoder (the HTTP check's response)
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
    status_ = headers->status();
    immediate_fail_ = headers->has("x-envoy-immediate-health-check-fail");
    if (end_stream) onResponseComplete();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    data.drain(data.length());
    if (end_stream) onResponseComplete();
  }
  void decodeTrailers(http::HeaderMapPtr) override { onResponseComplete(); }

private:
  struct Probe : event::DeferredDeletable {
    std::unique_ptr<network::Connection> conn;
    std::unique_ptr<http::http1::Http1ClientConnection> codec; // HTTP checks
  };

  void onInterval() {
    if (in_check_) return;
    in_check_ = true;
    parent_.stats_.attempt.inc();
    timeout_timer_->enableTimer(parent_.config_->timeout);
    if (probe_ && (!parent_.config_->reuse_connection ||
                   parent_.config_->kind == HealthCheckConfig::Kind::Tcp ||
                   !probe_->codec->isReusable())) {
      closeProbe();
    }
    if (!probe_) {
      openProbe();
      return; // sendProbe() once connected
    }
    sendProbe();
  }

  void openProbe() {
    probe_ = std::make_unique<Probe>();
    connected_ = false;
    received_.clear();
    probe_->conn = network::Connection::connectTo(parent_.main_, host_->address(),
                                                  network::RawBufferSocket::create());
    probe_->conn->addConnectionCallbacks(*this);
    probe_->conn->addReadFilter(
        std::shared_ptr<network::ReadFilter>(this, [](network::ReadFilter*) {}));
    if (parent_.config_->kind == HealthCheckConfig::Kind::Http) {
      network::Connection* conn = probe_->conn.get();
      probe_->codec = std::make_unique<http::http1::Http1ClientConnection>(
          [conn](Buffer& data, bool) { conn->write(data, false); }, http::CodecSettings{},
          [conn](bool disable) { conn->readDisable(disable); });
    }
  }

  void sendProbe() {
    if (!connected_) return;
    const HealthCheckConfig& cfg = *parent_.config_;
    if (cfg.kind == HealthCheckConfig::Kind::Tcp) {
      received_.clear();
      if (!cfg.send.empty()) {
        Buffer b;
        b.add(cfg.send);
        probe_->conn->write(b, false);
      }
      if (cfg.receive.empty()) {
        // Connect-only check: the connection is the answer.
        closeProbe();
        onResult(true, false, false);
      }
      return;
    }
    http::HeaderMap h;
    h.set(":method", cfg.method);
    h.set(":path", cfg.path);
    h.set(":scheme", "http");
    h.set(":authority", cfg.host.empty() ? parent_.cluster_.name() : cfg.host);
    h.set("user-agent", "Envoy/HC");
    for (const auto& [k, v] : cfg.headers_to_add) h.add(k, v);
    for (const auto& k : cfg.headers_to_remove) h.remove(k);
    if (!cfg.reuse_connection) h.set("connection", "close");
    status_ = 0;
    immediate_fail_ = false;
    probe_->codec->newStream(*this).encodeHeaders(h, true);
  }

  void onResponseComplete() {
    if (!in_check_) return;
    const bool ok = parent_.config_->expectedStatus(status_) && !immediate_fail_;
    if (!parent_.config_->reuse_connection || !probe_ || !probe_->codec->isReusable()) {
      closeProbe();
    }
    onResult(ok, false, immediate_fail_);
  }

  bool tcpReplyMatches() const {
    // Each block must appear, in order, not necessarily contiguous (Envoy).
    size_t from = 0;
    for (const auto& block : parent_.config_->receive) {
      const size_t at = received_.find(block, from);
      if (at == std::string::npos) return false;
      from = at + block.size();
    }
    return true;
  }

  void onResult(bool success, bool network_failure, bool immediate) {
    in_check_ = false;
    timeout_timer_->disableTimer();
    const HealthCheckConfig& cfg = *parent_.config_;
    bool changed = false;
    if (success) {
      parent_.stats_.success.inc();
      failures_ = 0;
      if (host_->healthFlagGet(Host::HealthFlag::FAILED_ACTIVE_HC)) {
        ++successes_;
        // The first check after start counts as enough (Envoy).
        if (first_ || successes_ >= cfg.healthy_threshold) {
          host_->healthFlagClear(Host::HealthFlag::FAILED_ACTIVE_HC);
          host_->setActiveSince(std::chrono::steady_clock::now()); // slow start begins
          changed = true;
        }
      }
    } else {
      parent_.stats_.failure.inc();
      if (network_failure) parent_.stats_.network_failure.inc();
      successes_ = 0;
      ++failures_;
      if (!host_->healthFlagGet(Host::HealthFlag::FAILED_ACTIVE_HC) &&
          (immediate || failures_ >= cfg.unhealthy_threshold)) {
        host_->healthFlagSet(Host::HealthFlag::FAILED_ACTIVE_HC);
        changed = true;
      }
    }
    if (host_->healthFlagGet(Host::HealthFlag::PENDING_ACTIVE_HC)) {
      host_->healthFlagClear(Host::HealthFlag::PENDING_ACTIVE_HC);
    }
    first_ = false;
    if (changed) {
      hcLog().info("health check: {} in cluster '{}' is now {}", host_->address().asString(),
                   parent_.cluster_.name(), success ? "healthy" : "unhealthy");
    }
    schedule(parent_.nextInterval(*this, changed));
    if (success && !host_->healthFlagGet(Host::HealthFlag::FAILED_ACTIVE_HC)) {
      // successful_active_health_check_uneject_host: a passing check ends an
      // outlier ejection.
      if (auto* od = parent_.cluster_.outlierDetector()) od->onActiveHealthCheckSuccess(host_);
    }
    if (changed) parent_.onHealthChanged(); // may not touch this session after
  }

  void dropProbe() {
    if (!probe_) return;
    probe_->conn->removeConnectionCallbacks(*this);
    parent_.main_.deferredDelete(std::move(probe_));
    connected_ = false;
  }
  void closeProbe() {
    if (!probe_) return;
    auto* conn = probe_->conn.get();
    dropProbe();
    conn->close(network::ConnectionCloseType::NoFlush);
  }

  friend class HealthChecker;
  HealthChecker& parent_;
  HostConstSharedPtr host_;
  std::unique_ptr<Probe> probe_;
  event::TimerPtr interval_timer_;
  event::TimerPtr timeout_timer_;
  std::string received_;
  uint64_t status_ = 0;
  uint32_t successes_ = 0;
  uint32_t failures_ = 0;
  bool connected_ = false;
  bool in_check_ = false;
  bool immediate_fail_ = false;
  bool first_ = true;
};

HealthChecker::HealthChecker(Cluster& cluster, std::shared_ptr<const HealthCheckConfig> config,
                             event::Dispatcher& main, stats::Store& store)
    : cluster_(cluster), config_(std::move(config)), main_(main),
      stats_(stats::Scope(store, "cluster." + cluster.name() + ".health_check.")) {}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start() {
  syncHosts();
  // Membership can change (DNS): look for new and removed hosts now and then.
  sync_timer_ = main_.createTimer([this] {
    if (cluster_.stats().membership_change.value() != seen_membership_changes_) syncHosts();
    sync_timer_->enableTimer(std::chrono::seconds(1));
  });
  sync_timer_->enableTimer(std::chrono::seconds(1));
}

void HealthChecker::syncHosts() {
  seen_membership_changes_ = cluster_.stats().membership_change.value();
  std::map<const Host*, HostConstSharedPtr> current;
  for (const auto& h : cluster_.hosts()) current.emplace(h.get(), h);
  bool changed = false;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (current.count(it->first) == 0) {
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [key, host] : current) {
    if (sessions_.count(key) != 0) continue;
    // New hosts are failed until their first check passes (Envoy).
    host->healthFlagSet(Host::HealthFlag::FAILED_ACTIVE_HC);
    host->healthFlagSet(Host::HealthFlag::PENDING_ACTIVE_HC);
    changed = true;
    auto s = std::make_unique<Session>(*this, host);
    std::chrono::milliseconds first{0};
    if (config_->initial_jitter.count() > 0) {
      first = std::chrono::milliseconds(
          std::uniform_int_distribution<int64_t>(0, config_->initial_jitter.count())(rng_));
    }
    s->schedule(first);
    sessions_.emplace(key, std::move(s));
  }
  if (changed) onHealthChanged();
}

bool HealthChecker::clusterHadTraffic() const {
  return cluster_.stats().upstream_rq_total.value() > 0 ||
         cluster_.stats().upstream_cx_total.value() > 0;
}

std::chrono::milliseconds HealthChecker::nextInterval(const Session& s, bool changed) const {
  const bool healthy = !s.host().healthFlagGet(Host::HealthFlag::FAILED_ACTIVE_HC);
  std::chrono::milliseconds base;
  if (!clusterHadTraffic()) {
    base = healthy ? config_->no_traffic_healthy_interval : config_->no_traffic_interval;
  } else if (changed) {
    base = healthy ? config_->healthy_edge_interval : config_->unhealthy_edge_interval;
  } else {
    base = healthy ? config_->interval : config_->unhealthy_interval;
  }
  int64_t jitter = 0;
  if (config_->interval_jitter.count() > 0) {
    jitter += std::uniform_int_distribution<int64_t>(0, config_->interval_jitter.count())(rng_);
  }
  if (config_->interval_jitter_percent > 0) {
    const int64_t max = base.count() * config_->interval_jitter_percent / 100;
    if (max > 0) jitter += std::uniform_int_distribution<int64_t>(0, max)(rng_);
  }
  return base + std::chrono::milliseconds(jitter);
}

void HealthChecker::onHealthChanged() {
  int64_t healthy = 0;
  for (const auto& [key, s] : sessions_) {
    if (!s->host().healthFlagGet(Host::HealthFlag::FAILED_ACTIVE_HC)) ++healthy;
  }
  stats_.healthy.set(healthy);
  cluster_.refreshHealth();
}

} // namespace legate::upstream
