#include "upstream/cluster.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "upstream/hash_lb.h"

#include "config/extension_registry.h"
#include "config/unsupported.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3/client_side_weighted_round_robin.pb.h"
#include "envoy/extensions/load_balancing_policies/cluster_provided/v3/cluster_provided.pb.h"
#include "envoy/extensions/load_balancing_policies/least_request/v3/least_request.pb.h"
#include "envoy/extensions/load_balancing_policies/maglev/v3/maglev.pb.h"
#include "envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.pb.h"
#include "envoy/extensions/load_balancing_policies/random/v3/random.pb.h"
#include "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.pb.h"
#include "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.pb.h"
#include "envoy/extensions/load_balancing_policies/subset/v3/subset.pb.h"
#include "envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "google/protobuf/util/time_util.h"

// Envoy still accepts the deprecated per-cluster HTTP option fields; so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::upstream {

ClusterStats::ClusterStats(stats::Store& store, std::string_view prefix)
    : upstream_rq_code(store, prefix, "upstream_rq_") {}

namespace {
using ClusterProto = upstream::Cluster::ClusterProto;
using envoy::config::core::v3::HealthStatus;

// An endpoint's health_status as Envoy's EDS health flags.
void applyEdsHealth(const Host& host, HealthStatus hs) {
  switch (hs) {
  case HealthStatus::UNHEALTHY:
  case HealthStatus::TIMEOUT:
    host.healthFlagSet(Host::HealthFlag::FAILED_EDS_HEALTH);
    break;
  case HealthStatus::DRAINING:
    host.healthFlagSet(Host::HealthFlag::FAILED_EDS_HEALTH);
    host.healthFlagSet(Host::HealthFlag::EDS_STATUS_DRAINING);
    break;
  case HealthStatus::DEGRADED:
    host.healthFlagSet(Host::HealthFlag::DEGRADED_EDS_HEALTH);
    break;
  default: // UNKNOWN, HEALTHY
    break;
  }
}

// Priority levels legate accepts (each is a small vector in every snapshot).
constexpr uint32_t kMaxPriorities = 128;
// Envoy's limits for the consistent-hash tables.
constexpr uint64_t kMaxRingSize = 8 * 1024 * 1024;
constexpr uint64_t kMaxMaglevTableSize = 5000011;

bool isPrime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

int64_t toMillis(const google::protobuf::Duration& d) {
  return google::protobuf::util::TimeUtil::DurationToMilliseconds(d);
}

// slow_start_config; nullopt when it has no window (slow start off).
// Cluster.SlowStartConfig and the extensions' common.v3.SlowStartConfig have
// the same fields.
template <class SlowStartProto>
absl::StatusOr<std::optional<upstream::Cluster::SlowStart>>
parseSlowStart(const SlowStartProto& proto, const std::string& path) {
  if (!proto.has_slow_start_window() || toMillis(proto.slow_start_window()) <= 0) {
    return std::nullopt;
  }
  upstream::Cluster::SlowStart ss;
  ss.window = std::chrono::milliseconds(toMillis(proto.slow_start_window()));
  if (proto.has_aggression()) {
    ss.aggression = proto.aggression().default_value();
    ss.aggression_key = proto.aggression().runtime_key();
    if (!(ss.aggression > 0)) {
      return absl::InvalidArgumentError(path + ".aggression.default_value: must be greater than 0");
    }
  }
  if (proto.has_min_weight_percent()) {
    ss.min_weight_percent = std::clamp(proto.min_weight_percent().value(), 0.0, 100.0);
  }
  return ss;
}
} // namespace

absl::Status upstream::Cluster::parseHttpProtocolOptions(const ClusterProto& proto,
                                                         const std::string& where, Cluster& c) {
  using envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
  auto apply_common = [&c](const envoy::config::core::v3::HttpProtocolOptions& common) {
    if (common.has_idle_timeout()) {
      c.idle_timeout_ = std::chrono::milliseconds(toMillis(common.idle_timeout()));
    }
    if (common.has_max_requests_per_connection()) {
      c.max_requests_per_connection_ = common.max_requests_per_connection().value();
    }
  };
  if (proto.has_max_requests_per_connection()) {
    c.max_requests_per_connection_ = proto.max_requests_per_connection().value();
  }
  if (proto.has_common_http_protocol_options()) {
    apply_common(proto.common_http_protocol_options());
  }
  if (proto.has_http2_protocol_options()) {
    return absl::InvalidArgumentError(where + ".http2_protocol_options: HTTP/2 upstreams are not "
                                              "implemented by legate yet");
  }
  static const std::string kHttpOptions =
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
  for (const auto& [key, any] : proto.typed_extension_protocol_options()) {
    const std::string path = where + ".typed_extension_protocol_options[\"" + key + "\"]";
    if (std::string(config::typeNameFromUrl(any.type_url())) != kHttpOptions) {
      return absl::InvalidArgumentError(path + ": '" + any.type_url() +
                                        "' is not implemented by legate");
    }
    HttpProtocolOptions opts;
    if (!any.UnpackTo(&opts)) {
      return absl::InvalidArgumentError(path + ": cannot decode HttpProtocolOptions");
    }
    if (opts.has_use_downstream_protocol_config() || opts.has_auto_config() ||
        (opts.has_explicit_http_config() && !opts.explicit_http_config().has_http_protocol_options())) {
      return absl::InvalidArgumentError(path + ": only explicit_http_config.http_protocol_options "
                                               "(HTTP/1.1 upstreams) is implemented by legate yet");
    }
    if (opts.http_filters_size() > 0 || opts.has_header_validation_config()) {
      return absl::InvalidArgumentError(path + ": upstream http_filters and header_validation_config "
                                               "are not implemented by legate yet");
    }
    apply_common(opts.common_http_protocol_options());
  }
  return absl::OkStatus();
}

template <class Config>
absl::Status upstream::Cluster::applySlowStart(const Config& cfg, const std::string& path,
                                              Cluster& c) {
  auto ss = parseSlowStart(cfg.slow_start_config(), path + ".slow_start_config");
  if (!ss.ok()) return ss.status();
  c.slow_start_ = *ss ? std::make_unique<const SlowStart>(**ss) : nullptr;
  return absl::OkStatus();
}

template <class Config>
absl::Status upstream::Cluster::applyLeastRequest(const Config& lr, const std::string& path,
                                                 Cluster& c) {
  if (auto st = applySlowStart(lr, path, c); !st.ok()) return st;
  if (lr.has_choice_count()) c.choice_count_ = std::max<uint32_t>(2, lr.choice_count().value());
  if (lr.has_active_request_bias()) {
    // The runtime key is not consulted: its default value applies (as when absent).
    c.active_request_bias_ = lr.active_request_bias().default_value();
    if (c.active_request_bias_ < 0) {
      return absl::InvalidArgumentError(path + ".active_request_bias: must not be negative");
    }
  }
  return absl::OkStatus();
}

template <class Config>
absl::Status upstream::Cluster::applyRingSizes(const Config& rh, const std::string& path,
                                              Cluster& c) {
  if (rh.has_minimum_ring_size()) c.min_ring_size_ = rh.minimum_ring_size().value();
  if (rh.has_maximum_ring_size()) c.max_ring_size_ = rh.maximum_ring_size().value();
  return checkRingSizes(c, path);
}

absl::Status upstream::Cluster::parseLbPolicy(const ClusterProto& proto, const std::string& where,
                                             Cluster& c) {
  // Settings of a policy other than the cluster's are ignored, as in Envoy.
  switch (proto.lb_policy()) {
  case ClusterProto::ROUND_ROBIN:
    c.lb_policy_ = LbPolicy::RoundRobin;
    if (proto.has_round_robin_lb_config()) {
      const std::string path = where + ".round_robin_lb_config";
      if (auto st = config::rejectUnsupportedFields(proto.round_robin_lb_config(),
                                                    {"locality_lb_config"}, path);
          !st.ok()) {
        return st;
      }
      return applySlowStart(proto.round_robin_lb_config(), path, c);
    }
    return absl::OkStatus();
  case ClusterProto::RANDOM:
    c.lb_policy_ = LbPolicy::Random;
    return absl::OkStatus();
  case ClusterProto::LEAST_REQUEST: {
    c.lb_policy_ = LbPolicy::LeastRequest;
    const auto& lr = proto.least_request_lb_config();
    if (auto st = config::rejectUnsupportedFields(lr, {"locality_lb_config", "selection_method"},
                                                  where + ".least_request_lb_config");
        !st.ok()) {
      return st;
    }
    return applyLeastRequest(lr, where + ".least_request_lb_config", c);
  }
  case ClusterProto::RING_HASH: {
    c.lb_policy_ = LbPolicy::RingHash;
    const auto& rh = proto.ring_hash_lb_config();
    const std::string path = where + ".ring_hash_lb_config";
    if (rh.hash_function() != ClusterProto::RingHashLbConfig::XX_HASH) {
      return absl::InvalidArgumentError(path + ".hash_function: only XX_HASH is implemented by "
                                               "legate");
    }
    return applyRingSizes(rh, path, c);
  }
  case ClusterProto::CLUSTER_PROVIDED:
    c.lb_policy_ = LbPolicy::ClusterProvided; // create() checks the type provides one
    return absl::OkStatus();
  case ClusterProto::MAGLEV: {
    c.lb_policy_ = LbPolicy::Maglev;
    if (proto.maglev_lb_config().has_table_size()) {
      c.maglev_table_size_ = proto.maglev_lb_config().table_size().value();
      return checkMaglevTableSize(c, where + ".maglev_lb_config.table_size");
    }
    return absl::OkStatus();
  }
  default:
    return absl::InvalidArgumentError(where + ".lb_policy: " +
                                      ClusterProto::LbPolicy_Name(proto.lb_policy()) +
                                      " is not implemented by legate yet (ROUND_ROBIN, RANDOM, "
                                      "LEAST_REQUEST, RING_HASH, MAGLEV and CLUSTER_PROVIDED "
                                      "are)");
  }
}

namespace {
namespace lbp = envoy::extensions::load_balancing_policies;

// A typed policy's locality_lb_config: locality weighting, or refused zone awareness.
absl::Status parseTypedLocality(const lbp::common::v3::LocalityLbConfig& proto,
                                const std::string& path, bool& locality_weighted) {
  if (proto.has_zone_aware_lb_config()) {
    return absl::InvalidArgumentError(path + ".zone_aware_lb_config: zone-aware balancing is not "
                                             "implemented by legate yet");
  }
  locality_weighted = proto.has_locality_weighted_lb_config();
  return absl::OkStatus();
}

// The policies legate maps onto its balancers (registered as extensions in
// src/extensions/builtin.cc, so the loader accepts them).
bool isMappedLbPolicy(const std::string& type) {
  for (const auto* d : {lbp::round_robin::v3::RoundRobin::descriptor(),
                        lbp::least_request::v3::LeastRequest::descriptor(),
                        lbp::random::v3::Random::descriptor(),
                        lbp::ring_hash::v3::RingHash::descriptor(),
                        lbp::maglev::v3::Maglev::descriptor(),
                        lbp::cluster_provided::v3::ClusterProvided::descriptor()}) {
    if (d->full_name() == type) return true;
  }
  return false;
}

// The Envoy policies legate does not map (their types are compiled in so that
// a policy list naming them can be read and they can be skipped).
std::vector<const google::protobuf::Descriptor*> skippableLbPolicies() {
  return {lbp::client_side_weighted_round_robin::v3::ClientSideWeightedRoundRobin::descriptor(),
          lbp::pick_first::v3::PickFirst::descriptor(), lbp::subset::v3::Subset::descriptor(),
          lbp::wrr_locality::v3::WrrLocality::descriptor()};
}
} // namespace

absl::Status upstream::Cluster::parseLoadBalancingPolicy(const ClusterProto& proto,
                                                        const std::string& where, Cluster& c) {
  // As Envoy: the first policy legate supports is used, the others are skipped.
  const std::string field = where + ".load_balancing_policy";
  const auto& policies = proto.load_balancing_policy().policies();
  std::vector<std::string> skipped;
  for (int i = 0; i < policies.size(); ++i) {
    const auto& any = policies[i].typed_extension_config().typed_config();
    const std::string type(config::typeNameFromUrl(any.type_url()));
    if (!isMappedLbPolicy(type)) {
      skipped.push_back(type.empty() ? "(no @type)" : type);
      continue;
    }
    return applyTypedLbPolicy(any, type,
                              field + ".policies[" + std::to_string(i) +
                                  "].typed_extension_config.typed_config",
                              c);
  }
  (void)skippableLbPolicies(); // links their descriptors into the binary
  std::string msg = field + ": none of its policies is implemented by legate";
  if (!skipped.empty()) {
    msg += " (";
    for (size_t i = 0; i < skipped.size(); ++i) msg += (i > 0 ? ", " : "") + skipped[i];
    msg += ")";
  }
  return absl::InvalidArgumentError(
      msg + "; expected one of envoy.load_balancing_policies.round_robin, least_request, random, "
            "ring_hash, maglev (cluster_provided with ORIGINAL_DST clusters)");
}

absl::Status upstream::Cluster::applyTypedLbPolicy(const google::protobuf::Any& any,
                                                  const std::string& type,
                                                  const std::string& path, Cluster& c) {
  auto decode = [&](google::protobuf::Message& m) -> absl::Status {
    if (!any.UnpackTo(&m)) {
      return absl::InvalidArgumentError(path + ": cannot decode " + type);
    }
    return absl::OkStatus();
  };
  if (type == lbp::round_robin::v3::RoundRobin::descriptor()->full_name()) {
    lbp::round_robin::v3::RoundRobin rr;
    if (auto st = decode(rr); !st.ok()) return st;
    c.lb_policy_ = LbPolicy::RoundRobin;
    if (auto st = applySlowStart(rr, path, c); !st.ok()) return st;
    return parseTypedLocality(rr.locality_lb_config(), path + ".locality_lb_config",
                              c.locality_weighted_);
  }
  if (type == lbp::least_request::v3::LeastRequest::descriptor()->full_name()) {
    lbp::least_request::v3::LeastRequest lr;
    if (auto st = decode(lr); !st.ok()) return st;
    c.lb_policy_ = LbPolicy::LeastRequest;
    if (lr.selection_method() != lbp::least_request::v3::LeastRequest::N_CHOICES ||
        (lr.has_enable_full_scan() && lr.enable_full_scan().value())) {
      return absl::InvalidArgumentError(path + ".selection_method: FULL_SCAN is not implemented "
                                               "by legate yet (N_CHOICES is)");
    }
    if (auto st = applyLeastRequest(lr, path, c); !st.ok()) return st;
    return parseTypedLocality(lr.locality_lb_config(), path + ".locality_lb_config",
                              c.locality_weighted_);
  }
  if (type == lbp::random::v3::Random::descriptor()->full_name()) {
    lbp::random::v3::Random rnd;
    if (auto st = decode(rnd); !st.ok()) return st;
    c.lb_policy_ = LbPolicy::Random;
    return parseTypedLocality(rnd.locality_lb_config(), path + ".locality_lb_config",
                              c.locality_weighted_);
  }
  if (type == lbp::ring_hash::v3::RingHash::descriptor()->full_name()) {
    lbp::ring_hash::v3::RingHash rh;
    if (auto st = decode(rh); !st.ok()) return st;
    c.lb_policy_ = LbPolicy::RingHash;
    if (auto st = config::rejectUnsupportedFields(
            rh, {"use_hostname_for_hashing", "hash_balance_factor", "consistent_hashing_lb_config",
                 "locality_weighted_lb_config"},
            path);
        !st.ok()) {
      return st;
    }
    if (rh.hash_function() == lbp::ring_hash::v3::RingHash::MURMUR_HASH_2) {
      return absl::InvalidArgumentError(path + ".hash_function: only XX_HASH (the default) is "
                                               "implemented by legate");
    }
    return applyRingSizes(rh, path, c);
  }
  if (type == lbp::maglev::v3::Maglev::descriptor()->full_name()) {
    lbp::maglev::v3::Maglev mg;
    if (auto st = decode(mg); !st.ok()) return st;
    c.lb_policy_ = LbPolicy::Maglev;
    if (auto st = config::rejectUnsupportedFields(
            mg, {"consistent_hashing_lb_config", "locality_weighted_lb_config"}, path);
        !st.ok()) {
      return st;
    }
    if (mg.has_table_size()) c.maglev_table_size_ = mg.table_size().value();
    return checkMaglevTableSize(c, path + ".table_size");
  }
  if (type == lbp::cluster_provided::v3::ClusterProvided::descriptor()->full_name()) {
    c.lb_policy_ = LbPolicy::ClusterProvided;
    return absl::OkStatus(); // create() checks the cluster type provides one
  }
  return absl::InvalidArgumentError(path + ": '" + type + "' is not implemented by legate");
}

absl::Status upstream::Cluster::parseOriginalDst(const ClusterProto& proto,
                                                const std::string& where, bool typed_lb,
                                                Cluster& c) {
  const bool provided = c.lb_policy_ == LbPolicy::ClusterProvided;
  const std::string lb_field = where + (typed_lb ? ".load_balancing_policy" : ".lb_policy");
  if (proto.type() != ClusterProto::ORIGINAL_DST) {
    if (provided) {
      return absl::InvalidArgumentError(
          lb_field + ": CLUSTER_PROVIDED needs a cluster type that provides its load balancer "
                     "(ORIGINAL_DST); a " + ClusterProto::DiscoveryType_Name(proto.type()) +
          " cluster does not");
    }
    return absl::OkStatus(); // original_dst_lb_config of another type is ignored, as in Envoy
  }
  // As Envoy: ORIGINAL_DST balances by itself, and its hosts come from requests.
  if (!provided) {
    return absl::InvalidArgumentError(lb_field + ": an ORIGINAL_DST cluster needs lb_policy "
                                                 "CLUSTER_PROVIDED (or the cluster_provided "
                                                 "load_balancing_policy)");
  }
  if (proto.has_load_assignment()) {
    return absl::InvalidArgumentError(where + ".load_assignment: ORIGINAL_DST clusters must have "
                                              "no load assignment configured");
  }
  if (proto.health_checks_size() > 0) {
    return absl::InvalidArgumentError(where + ".health_checks: not implemented by legate for "
                                              "ORIGINAL_DST clusters");
  }
  auto odst = std::make_unique<OriginalDstConfig>();
  const auto& lb = proto.original_dst_lb_config();
  if (auto st = config::rejectUnsupportedFields(lb, {"metadata_key"},
                                                where + ".original_dst_lb_config");
      !st.ok()) {
    return st;
  }
  odst->use_http_header = lb.use_http_header();
  if (!lb.http_header_name().empty()) {
    odst->header_name = lb.http_header_name();
    std::transform(odst->header_name.begin(), odst->header_name.end(), odst->header_name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  }
  if (lb.has_upstream_port_override()) {
    odst->port_override = static_cast<uint16_t>(lb.upstream_port_override().value());
  }
  if (proto.has_cleanup_interval()) {
    odst->cleanup_interval =
        std::chrono::milliseconds(std::max<int64_t>(1, toMillis(proto.cleanup_interval())));
  }
  c.odst_ = std::move(odst);
  return absl::OkStatus();
}

absl::Status upstream::Cluster::checkRingSizes(const Cluster& c, const std::string& path) {
  if (c.max_ring_size_ > kMaxRingSize) {
    return absl::InvalidArgumentError(path + ".maximum_ring_size: at most " +
                                      std::to_string(kMaxRingSize));
  }
  if (c.min_ring_size_ > c.max_ring_size_ || c.min_ring_size_ == 0) {
    return absl::InvalidArgumentError(path + ".minimum_ring_size: must be between 1 and "
                                             "maximum_ring_size");
  }
  return absl::OkStatus();
}

absl::Status upstream::Cluster::checkMaglevTableSize(const Cluster& c, const std::string& path) {
  if (!isPrime(c.maglev_table_size_) || c.maglev_table_size_ > kMaxMaglevTableSize) {
    return absl::InvalidArgumentError(path + ": must be a prime number no larger than " +
                                      std::to_string(kMaxMaglevTableSize));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<upstream::Cluster>>
upstream::Cluster::create(const envoy::config::cluster::v3::Cluster& proto, stats::Store& store,
                          uint32_t workers, const std::string& where) {
  if (proto.cluster_discovery_type_case() == ClusterProto::kClusterType) {
    return absl::InvalidArgumentError(where + ".cluster_type: custom cluster type '" +
                                      proto.cluster_type().name() +
                                      "' is not implemented by legate");
  }
  if (proto.type() != ClusterProto::STATIC && proto.type() != ClusterProto::STRICT_DNS &&
      proto.type() != ClusterProto::LOGICAL_DNS && proto.type() != ClusterProto::ORIGINAL_DST) {
    return absl::InvalidArgumentError(where + ".type: cluster type " +
                                      ClusterProto::DiscoveryType_Name(proto.type()) +
                                      " is not implemented by legate yet (STATIC, STRICT_DNS, "
                                      "LOGICAL_DNS and ORIGINAL_DST are)");
  }
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"eds_cluster_config", "transport_socket",
           "transport_socket_matches", "lb_subset_config",
           "upstream_bind_config", "filters", "upstream_connection_options", "lrs_server"},
          where);
      !st.ok()) {
    return st;
  }
  std::shared_ptr<upstream::Cluster> c(new upstream::Cluster());
  c->name_ = proto.name();
  for (int i = 0; i < proto.health_checks_size(); ++i) {
    auto hc = HealthCheckConfig::create(proto.health_checks(i),
                                        where + ".health_checks[" + std::to_string(i) + "]");
    if (!hc.ok()) return hc.status();
    if (!c->health_checks_) c->health_checks_ = std::make_unique<HealthChecks>();
    c->health_checks_->push_back(std::move(*hc));
  }
  if (proto.type() == ClusterProto::STRICT_DNS || proto.type() == ClusterProto::LOGICAL_DNS) {
    auto dns = parseDnsClusterConfig(proto, where);
    if (!dns.ok()) {
      return dns.status();
    }
    c->dns_ = std::move(*dns);
  }
  if (proto.has_connect_timeout()) {
    c->connect_timeout_ = std::chrono::milliseconds(toMillis(proto.connect_timeout()));
  }
  if (proto.has_per_connection_buffer_limit_bytes()) {
    c->buffer_limit_ = proto.per_connection_buffer_limit_bytes().value();
  }
  // load_balancing_policy supersedes lb_policy (and its *_lb_config), as in Envoy.
  const bool typed_lb = proto.has_load_balancing_policy();
  if (auto st = typed_lb ? parseLoadBalancingPolicy(proto, where, *c)
                         : parseLbPolicy(proto, where, *c);
      !st.ok()) {
    return st;
  }
  if (auto st = parseOriginalDst(proto, where, typed_lb, *c); !st.ok()) {
    return st;
  }
  auto thresholds = parseCircuitBreakers(proto.circuit_breakers(), where + ".circuit_breakers");
  if (!thresholds.ok()) {
    return thresholds.status();
  }
  if (auto st = parseHttpProtocolOptions(proto, where, *c); !st.ok()) {
    return st;
  }

  if (proto.has_common_lb_config()) {
    const auto& lb = proto.common_lb_config();
    if (auto st = config::rejectUnsupportedFields(
            lb,
            {"zone_aware_lb_config", "update_merge_window",
             "ignore_new_hosts_until_first_hc", "close_connections_on_host_set_change",
             "consistent_hashing_lb_config", "override_host_status"},
            where + ".common_lb_config");
        !st.ok()) {
      return st;
    }
    if (lb.has_healthy_panic_threshold()) {
      c->panic_threshold_ = std::clamp(lb.healthy_panic_threshold().value(), 0.0, 100.0);
    }
    // With load_balancing_policy, the policy's own locality_lb_config decides
    // (Envoy ignores this one then).
    if (lb.has_locality_weighted_lb_config() && !typed_lb) {
      if (c->lb_policy_ == LbPolicy::RingHash || c->lb_policy_ == LbPolicy::Maglev) {
        return absl::InvalidArgumentError(
            where + ".common_lb_config.locality_weighted_lb_config: not implemented by legate "
                    "with RING_HASH or MAGLEV (ROUND_ROBIN, LEAST_REQUEST and RANDOM have it)");
      }
      c->locality_weighted_ = true;
    }
  }
  auto hosts = parseLoadAssignment(proto, where, *c);
  if (!hosts.ok()) {
    return hosts.status();
  }
  c->stats_ = &store.block<ClusterStats>("cluster." + c->name_ + ".");
  c->connection_stats_ = {&c->stats_->upstream_cx_rx_bytes_total,
                          &c->stats_->upstream_cx_rx_bytes_buffered,
                          &c->stats_->upstream_cx_tx_bytes_total,
                          &c->stats_->upstream_cx_tx_bytes_buffered};
  for (size_t p = 0; p < c->resource_managers_.size(); ++p) {
    c->resource_managers_[p] = std::make_unique<ResourceManager>(
        (*thresholds)[p], stats::Scope(store, "cluster." + c->name_ + "."),
        static_cast<ResourcePriority>(p));
  }
  if (proto.has_outlier_detection()) {
    auto od = OutlierDetectionConfig::create(proto.outlier_detection(),
                                             where + ".outlier_detection");
    if (!od.ok()) return od.status();
    c->outlier_detector_ = std::make_unique<OutlierDetector>(*c, std::move(*od), store);
  }
  c->lb_state_.resize(std::max<uint32_t>(workers, 1) + 1);
  c->members_ = std::move(*hosts);
  c->publish();
  return c;
}

absl::StatusOr<std::vector<HostConstSharedPtr>>
upstream::Cluster::parseLoadAssignment(const ClusterProto& proto, const std::string& where,
                                       Cluster& c) {
  const auto& la = proto.load_assignment();
  const std::string la_path = where + ".load_assignment";
  if (la.has_policy()) {
    if (auto st = config::rejectUnsupportedFields(
            la.policy(), {"drop_overloads", "endpoint_stale_after", "weighted_priority_health"},
            la_path + ".policy");
        !st.ok()) {
      return st;
    }
    if (la.policy().has_overprovisioning_factor()) {
      c.overprovisioning_factor_ = la.policy().overprovisioning_factor().value();
    }
  }
  if (!la.named_endpoints().empty()) {
    return absl::InvalidArgumentError(la_path + ".named_endpoints: not implemented by legate");
  }
  // Locality weights, kept only for locality_weighted_lb_config (the only user);
  // one entry per locality and priority, as in Envoy.
  if (c.locality_weighted_) c.locality_weights_ = std::make_unique<LocalityWeightMap>();
  for (int i = 0; c.locality_weights_ && i < la.endpoints_size(); ++i) {
    const auto& locality = la.endpoints(i);
    const Locality loc{locality.locality().region(), locality.locality().zone(),
                       locality.locality().sub_zone()};
    const uint32_t weight =
        locality.has_load_balancing_weight() ? locality.load_balancing_weight().value() : 0;
    if (!c.locality_weights_->emplace(std::make_pair(locality.priority(), loc), weight).second) {
      return absl::InvalidArgumentError(la_path + ".endpoints[" + std::to_string(i) +
                                        "].locality: the same locality appears twice at "
                                        "priority " +
                                        std::to_string(locality.priority()));
    }
  }
  std::vector<HostConstSharedPtr> hosts;
  if (c.dns_) {
    return hosts; // names: DnsDiscovery fills the membership
  }
  for (int i = 0; i < la.endpoints_size(); ++i) {
    const auto& locality = la.endpoints(i);
    const std::string lpath = la_path + ".endpoints[" + std::to_string(i) + "]";
    if (locality.priority() >= kMaxPriorities) {
      return absl::InvalidArgumentError(lpath + ".priority: " + std::to_string(locality.priority()) +
                                        " is above legate's limit of " +
                                        std::to_string(kMaxPriorities - 1));
    }
    if (locality.has_leds_cluster_locality_config()) {
      return absl::InvalidArgumentError(lpath + ".leds_cluster_locality_config: not implemented "
                                                "by legate");
    }
    const auto loc = Host::makeLocality({locality.locality().region(), locality.locality().zone(),
                                         locality.locality().sub_zone()});
    for (int j = 0; j < locality.lb_endpoints_size(); ++j) {
      const auto& lbe = locality.lb_endpoints(j);
      const std::string path = lpath + ".lb_endpoints[" + std::to_string(j) + "]";
      if (lbe.has_endpoint_name()) {
        return absl::InvalidArgumentError(path + ".endpoint_name: not implemented by legate");
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
      const uint32_t weight =
          lbe.has_load_balancing_weight() ? lbe.load_balancing_weight().value() : 1;
      auto host = std::make_shared<Host>(*a, weight, locality.priority(), loc,
                                         lbe.endpoint().hostname());
      applyEdsHealth(*host, lbe.health_status());
      hosts.push_back(std::move(host));
    }
  }
  return hosts;
}

void upstream::Cluster::setHosts(std::vector<HostConstSharedPtr> hosts) {
  std::vector<HostConstSharedPtr> removed;
  for (const auto& old : members_) {
    if (std::find(hosts.begin(), hosts.end(), old) == hosts.end()) {
      removed.push_back(old);
    }
  }
  const bool changed = !removed.empty() || hosts.size() != members_.size();
  const auto now = this->now();
  for (const auto& h : hosts) {
    if (std::find(members_.begin(), members_.end(), h) == members_.end()) {
      h->setActiveSince(now); // a new member: slow start runs from here
    }
  }
  members_ = std::move(hosts);
  if (changed) {
    stats_->membership_change.inc();
  }
  publish();
  if (!removed.empty() && on_removed_) {
    on_removed_(std::move(removed));
  }
}

void upstream::Cluster::refreshHealth() { publish(); }

void upstream::Cluster::publish() {
  auto snap = std::make_shared<HostSnapshot>();
  // Only the main thread publishes: the next version follows the last one.
  snap->version = version_.load(std::memory_order_relaxed) + 1;
  uint32_t levels = 1;
  for (const auto& h : members_) {
    levels = std::max(levels, h->priority() + 1);
  }
  snap->priorities.resize(levels);
  auto add_to = [](HostList& all, HostList& healthy, HostList& degraded,
                   const HostConstSharedPtr& h) {
    all.add(h);
    switch (h->health()) {
    case Host::Health::Healthy:
      healthy.add(h);
      break;
    case Host::Health::Degraded:
      degraded.add(h);
      break;
    case Host::Health::Unhealthy:
      break;
    }
  };
  for (const auto& h : members_) {
    HostSet& set = snap->priorities[h->priority()];
    add_to(set.all, set.healthy, set.degraded, h);
    if (locality_weighted_) {
      if (!set.localities) set.localities = std::make_unique<HostSet::Localities>();
      auto& localities = set.localities->hosts;
      auto it = std::find_if(localities.begin(), localities.end(),
                             [&](const LocalityHosts& l) { return l.locality == h->locality(); });
      if (it == localities.end()) {
        LocalityHosts& l = localities.emplace_back();
        l.locality = h->locality();
        l.weight = 0;
        if (locality_weights_) {
          auto w = locality_weights_->find({h->priority(), h->locality()});
          if (w != locality_weights_->end()) l.weight = w->second;
        }
        it = localities.end() - 1;
      }
      add_to(it->all, it->healthy, it->degraded, h);
    }
  }
  uint32_t states = 0;
  auto slow_start_until = std::chrono::steady_clock::time_point{};
  for (auto& set : snap->priorities) {
    snap->healthy += set.healthy.hosts.size();
    snap->degraded += set.degraded.hosts.size();
    for (HostList* list : {&set.all, &set.healthy, &set.degraded}) {
      list->state_index = states++;
    }
    if (HostSet::Localities* locs = set.localities.get()) {
      for (auto& l : locs->hosts) {
        for (HostList* list : {&l.all, &l.healthy, &l.degraded}) {
          list->state_index = states++;
        }
        locs->healthy.effective.push_back(localityEffectiveWeight(
            l.weight, l.healthy.hosts.size(), l.all.hosts.size(), overprovisioning_factor_));
        locs->degraded.effective.push_back(localityEffectiveWeight(
            l.weight, l.degraded.hosts.size(), l.all.hosts.size(), overprovisioning_factor_));
      }
      for (LocalityWeights* lw : {&locs->healthy, &locs->degraded}) {
        for (double w : lw->effective) lw->total += w;
        lw->state_index = states++;
      }
    }
    if (slow_start_) {
      for (const HostList* list : {&set.healthy, &set.degraded}) {
        for (const auto& h : list->hosts) {
          slow_start_until = std::max(slow_start_until, h->activeSince() + slow_start_->window);
        }
      }
    }
  }
  snap->state_count = states;
  snap->slow_start_until = slow_start_until;
  if (odst_) {
    snap->by_address = std::make_unique<decltype(snap->by_address)::element_type>();
    for (const auto& h : members_) snap->by_address->emplace(h->address().asString(), h);
  }
  snap->total = members_.size();
  if (lb_policy_ == LbPolicy::RingHash || lb_policy_ == LbPolicy::Maglev) {
    for (auto& set : snap->priorities) {
      for (HostList* list : {&set.all, &set.healthy, &set.degraded}) {
        if (list->hosts.empty()) continue;
        if (lb_policy_ == LbPolicy::RingHash) {
          list->hash_table =
              std::make_shared<RingHashTable>(list->hosts, min_ring_size_, max_ring_size_);
        } else {
          list->hash_table = std::make_shared<MaglevTable>(list->hosts, maglev_table_size_);
        }
      }
    }
  }
  std::vector<HostAvailability> avail;
  for (const auto& set : snap->priorities) {
    avail.push_back({set.all.hosts.size(), set.healthy.hosts.size(), set.degraded.hosts.size()});
  }
  snap->state = computePriorityState(avail, overprovisioning_factor_, panic_threshold_);
  stats_->membership_total.set(static_cast<int64_t>(snap->total));
  stats_->membership_healthy.set(static_cast<int64_t>(snap->healthy));
  stats_->membership_degraded.set(static_cast<int64_t>(snap->degraded));
  const uint64_t v = snap->version;
  snapshot_.store(std::move(snap));
  version_.store(v, std::memory_order_release);
}

} // namespace legate::upstream
