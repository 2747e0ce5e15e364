#include "upstream/cluster.h"

#include "config/unsupported.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "google/protobuf/util/time_util.h"

namespace legate::upstream {

ClusterStats::ClusterStats(stats::Scope s)
    : upstream_cx_total(s.counter("upstream_cx_total")),
      upstream_cx_active(s.gauge("upstream_cx_active")),
      upstream_cx_connect_fail(s.counter("upstream_cx_connect_fail")),
      upstream_cx_connect_timeout(s.counter("upstream_cx_connect_timeout")),
      upstream_cx_connect_attempts_exceeded(s.counter("upstream_cx_connect_attempts_exceeded")),
      upstream_cx_overflow(s.counter("upstream_cx_overflow")),
      upstream_cx_none_healthy(s.counter("upstream_cx_none_healthy")),
      upstream_cx_destroy(s.counter("upstream_cx_destroy")),
      upstream_cx_destroy_local(s.counter("upstream_cx_destroy_local")),
      upstream_cx_destroy_remote(s.counter("upstream_cx_destroy_remote")),
      upstream_cx_rx_bytes_total(s.counter("upstream_cx_rx_bytes_total")),
      upstream_cx_rx_bytes_buffered(s.gauge("upstream_cx_rx_bytes_buffered")),
      upstream_cx_tx_bytes_total(s.counter("upstream_cx_tx_bytes_total")),
      upstream_cx_tx_bytes_buffered(s.gauge("upstream_cx_tx_bytes_buffered")),
      upstream_flow_control_paused_reading_total(
          s.counter("upstream_flow_control_paused_reading_total")),
      upstream_flow_control_resumed_reading_total(
          s.counter("upstream_flow_control_resumed_reading_total")),
      upstream_cx_connect_ms(s.histogram("upstream_cx_connect_ms")),
      upstream_cx_length_ms(s.histogram("upstream_cx_length_ms")),
      membership_total(s.gauge("membership_total")),
      membership_healthy(s.gauge("membership_healthy")),
      cx_open(s.gauge("circuit_breakers.default.cx_open")) {}

namespace {
using ClusterProto = envoy::config::cluster::v3::Cluster;
using envoy::config::core::v3::HealthStatus;

int64_t toMillis(const google::protobuf::Duration& d) {
  return google::protobuf::util::TimeUtil::DurationToMilliseconds(d);
}
} // namespace

absl::StatusOr<std::shared_ptr<upstream::Cluster>>
upstream::Cluster::create(const envoy::config::cluster::v3::Cluster& proto, stats::Store& store,
                          uint32_t workers) {
  const std::string where = "cluster '" + proto.name() + "'";
  if (proto.cluster_discovery_type_case() == ClusterProto::kClusterType) {
    return absl::InvalidArgumentError(where + ": custom cluster_type '" +
                                      proto.cluster_type().name() +
                                      "' is not implemented by legate");
  }
  if (proto.type() != ClusterProto::STATIC) {
    return absl::InvalidArgumentError(where + ": cluster type " +
                                      ClusterProto::DiscoveryType_Name(proto.type()) +
                                      " is not implemented by legate yet (STATIC is)");
  }
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"eds_cluster_config", "health_checks", "outlier_detection", "transport_socket",
           "transport_socket_matches", "typed_extension_protocol_options", "lb_subset_config",
           "ring_hash_lb_config", "maglev_lb_config", "original_dst_lb_config",
           "least_request_lb_config", "round_robin_lb_config", "load_balancing_policy",
           "upstream_bind_config", "filters", "upstream_connection_options",
           "common_lb_config", "lrs_server"},
          where);
      !st.ok()) {
    return st;
  }
  std::shared_ptr<upstream::Cluster> c(new upstream::Cluster());
  c->name_ = proto.name();
  if (proto.has_connect_timeout()) {
    c->connect_timeout_ = std::chrono::milliseconds(toMillis(proto.connect_timeout()));
  }
  if (proto.has_per_connection_buffer_limit_bytes()) {
    c->buffer_limit_ = proto.per_connection_buffer_limit_bytes().value();
  }
  switch (proto.lb_policy()) {
  case ClusterProto::ROUND_ROBIN:
    c->lb_policy_ = LbPolicy::RoundRobin;
    break;
  case ClusterProto::RANDOM:
    c->lb_policy_ = LbPolicy::Random;
    break;
  case ClusterProto::LEAST_REQUEST:
    c->lb_policy_ = LbPolicy::LeastRequest;
    break;
  default:
    return absl::InvalidArgumentError(where + ": lb_policy " +
                                      ClusterProto::LbPolicy_Name(proto.lb_policy()) +
                                      " is not implemented by legate yet (ROUND_ROBIN, RANDOM and "
                                      "LEAST_REQUEST are)");
  }
  for (const auto& t : proto.circuit_breakers().thresholds()) {
    if (t.priority() == envoy::config::core::v3::DEFAULT && t.has_max_connections()) {
      c->max_connections_ = t.max_connections().value();
    }
  }

  const auto& la = proto.load_assignment();
  uint32_t total = 0;
  for (int i = 0; i < la.endpoints_size(); ++i) {
    const auto& locality = la.endpoints(i);
    if (locality.priority() != 0) {
      return absl::InvalidArgumentError(where + ": load_assignment.endpoints[" + std::to_string(i) +
                                        "].priority " + std::to_string(locality.priority()) +
                                        ": only priority 0 is implemented by legate yet");
    }
    for (int j = 0; j < locality.lb_endpoints_size(); ++j) {
      const auto& lbe = locality.lb_endpoints(j);
      const std::string path = where + ": load_assignment.endpoints[" + std::to_string(i) +
                               "].lb_endpoints[" + std::to_string(j) + "]";
      if (lbe.has_endpoint_name()) {
        return absl::InvalidArgumentError(path + ": endpoint_name is not implemented by legate");
      }
      const auto& addr = lbe.endpoint().address();
      if (!addr.has_socket_address()) {
        return absl::InvalidArgumentError(path + ".endpoint.address: a socket_address is required");
      }
      auto a = network::Address::fromProto(addr.socket_address());
      if (!a.ok()) {
        return absl::InvalidArgumentError(path + ".endpoint.address.socket_address: " +
                                          std::string(a.status().message()));
      }
      ++total;
      const auto hs = lbe.health_status();
      if (hs == HealthStatus::UNHEALTHY || hs == HealthStatus::DRAINING ||
          hs == HealthStatus::TIMEOUT) {
        continue;
      }
      const uint32_t weight =
          lbe.has_load_balancing_weight() ? lbe.load_balancing_weight().value() : 1;
      c->hosts_.push_back(std::make_shared<Host>(*a, weight));
      c->total_weight_ += weight;
      if (weight != c->hosts_.front()->weight()) {
        c->weighted_ = true;
      }
    }
  }
  c->stats_ = std::make_unique<ClusterStats>(stats::Scope(store, "cluster." + c->name_ + "."));
  c->stats_->membership_total.set(total);
  c->stats_->membership_healthy.set(static_cast<int64_t>(c->hosts_.size()));
  c->lb_state_.resize(std::max<uint32_t>(workers, 1) + 1);
  for (auto& s : c->lb_state_) {
    s.current_weights.assign(c->hosts_.size(), 0);
  }
  return c;
}

HostConstSharedPtr upstream::Cluster::chooseHost(uint32_t worker) const {
  if (hosts_.empty()) {
    return nullptr;
  }
  WorkerLbState& st = lb_state_[std::min<size_t>(worker, lb_state_.size() - 1)];
  const size_t n = hosts_.size();
  switch (lb_policy_) {
  case LbPolicy::Random:
    return hosts_[st.rng() % n];
  case LbPolicy::LeastRequest: {
    // Power of two choices over active connections.
    const auto& a = hosts_[st.rng() % n];
    const auto& b = hosts_[st.rng() % n];
    return a->stats().cx_active.load(std::memory_order_relaxed) <=
                   b->stats().cx_active.load(std::memory_order_relaxed)
               ? a
               : b;
  }
  case LbPolicy::RoundRobin:
    break;
  }
  if (!weighted_) {
    return hosts_[st.rr_index++ % n];
  }
  // Smooth weighted round robin: every pick raises each host by its weight and
  // lowers the winner by the total, which interleaves hosts by weight.
  size_t best = 0;
  for (size_t i = 0; i < n; ++i) {
    st.current_weights[i] += hosts_[i]->weight();
    if (st.current_weights[i] > st.current_weights[best]) {
      best = i;
    }
  }
  st.current_weights[best] -= total_weight_;
  return hosts_[best];
}

bool upstream::Cluster::tryAcquireConnection() const {
  uint32_t cur = open_connections_.load(std::memory_order_relaxed);
  while (cur < max_connections_) {
    if (open_connections_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) {
      stats_->cx_open.set(cur + 1 >= max_connections_ ? 1 : 0);
      return true;
    }
  }
  stats_->cx_open.set(1);
  return false;
}

void upstream::Cluster::releaseConnection() const {
  const uint32_t now = open_connections_.fetch_sub(1, std::memory_order_relaxed) - 1;
  if (now < max_connections_) {
    stats_->cx_open.set(0);
  }
}

} // namespace legate::upstream
