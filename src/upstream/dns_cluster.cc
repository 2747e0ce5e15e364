#include "upstream/dns_cluster.h"

#include <algorithm>
#include <random>

#include "common/random.h"
#include "config/extension_registry.h"
#include "config/unsupported.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.pb.h"
#include "google/protobuf/util/time_util.h"
#include "upstream/cluster.h"

// dns_resolvers, use_tcp_for_dns_lookups and dns_resolution_config are
// deprecated in favour of typed_dns_resolver_config; Envoy still honours them.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::upstream {

namespace {
using ClusterProto = envoy::config::cluster::v3::Cluster;

std::chrono::milliseconds toMs(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

absl::Status addResolvers(const google::protobuf::RepeatedPtrField<envoy::config::core::v3::Address>& in,
                          const std::string& path, DnsResolverSettings& out) {
  for (int i = 0; i < in.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    if (!in[i].has_socket_address()) {
      return absl::InvalidArgumentError(p + ": a socket_address is required");
    }
    auto a = network::Address::fromProto(in[i].socket_address());
    if (!a.ok()) {
      return absl::InvalidArgumentError(p + ".socket_address: " + std::string(a.status().message()));
    }
    out.resolvers.push_back(*a);
  }
  return absl::OkStatus();
}

void applyOptions(const envoy::config::core::v3::DnsResolverOptions& o, DnsResolverSettings& out) {
  out.use_tcp = o.use_tcp_for_dns_lookups();
  out.no_search = o.no_default_search_domain();
}

absl::Status parseResolver(const ClusterProto& proto, const std::string& where,
                           DnsResolverSettings& out) {
  using envoy::extensions::network::dns_resolver::cares::v3::CaresDnsResolverConfig;
  if (proto.has_typed_dns_resolver_config()) {
    const std::string path = where + ".typed_dns_resolver_config";
    const auto& any = proto.typed_dns_resolver_config().typed_config();
    const std::string type(config::typeNameFromUrl(any.type_url()));
    CaresDnsResolverConfig cares;
    if (type != CaresDnsResolverConfig::descriptor()->full_name() || !any.UnpackTo(&cares)) {
      return absl::InvalidArgumentError(path + ".typed_config: DNS resolver '" + type +
                                        "' is not implemented by legate (c-ares is: " +
                                        CaresDnsResolverConfig::descriptor()->full_name() + ")");
    }
    if (auto st = config::rejectUnsupportedFields(
            // udp_max_queries needs c-ares 1.20; Debian 12 ships 1.18.
            cares, {"use_resolvers_as_fallback", "filter_unroutable_families", "udp_max_queries"},
            path + ".typed_config");
        !st.ok()) {
      return st;
    }
    if (auto st = addResolvers(cares.resolvers(), path + ".typed_config.resolvers", out); !st.ok()) {
      return st;
    }
    applyOptions(cares.dns_resolver_options(), out);
    return absl::OkStatus();
  }
  if (proto.has_dns_resolution_config()) {
    const auto& c = proto.dns_resolution_config();
    applyOptions(c.dns_resolver_options(), out);
    return addResolvers(c.resolvers(), where + ".dns_resolution_config.resolvers", out);
  }
  out.use_tcp = proto.use_tcp_for_dns_lookups();
  return addResolvers(proto.dns_resolvers(), where + ".dns_resolvers", out);
}

uint32_t edsFlags(envoy::config::core::v3::HealthStatus hs) {
  using HS = envoy::config::core::v3::HealthStatus;
  using F = Host::HealthFlag;
  switch (hs) {
  case HS::UNHEALTHY:
  case HS::TIMEOUT:
    return static_cast<uint32_t>(F::FAILED_EDS_HEALTH);
  case HS::DRAINING:
    return static_cast<uint32_t>(F::FAILED_EDS_HEALTH) |
           static_cast<uint32_t>(F::EDS_STATUS_DRAINING);
  case HS::DEGRADED:
    return static_cast<uint32_t>(F::DEGRADED_EDS_HEALTH);
  default:
    return 0;
  }
}
} // namespace

absl::StatusOr<std::unique_ptr<DnsClusterConfig>>
parseDnsClusterConfig(const ClusterProto& proto, const std::string& where) {
  auto c = std::make_unique<DnsClusterConfig>();
  c->logical = proto.type() == ClusterProto::LOGICAL_DNS;
  if (proto.has_dns_refresh_rate()) c->refresh_rate = toMs(proto.dns_refresh_rate());
  c->respect_ttl = proto.respect_dns_ttl();
  switch (proto.dns_lookup_family()) {
  case ClusterProto::V4_ONLY:
    c->family = DnsLookupFamily::V4Only;
    break;
  case ClusterProto::V6_ONLY:
    c->family = DnsLookupFamily::V6Only;
    break;
  case ClusterProto::V4_PREFERRED:
    c->family = DnsLookupFamily::V4Preferred;
    break;
  case ClusterProto::ALL:
    c->family = DnsLookupFamily::All;
    break;
  default:
    c->family = DnsLookupFamily::Auto;
    break;
  }
  if (proto.has_dns_failure_refresh_rate()) {
    const auto& r = proto.dns_failure_refresh_rate();
    const auto base = toMs(r.base_interval());
    const auto max = r.has_max_interval() ? toMs(r.max_interval()) : base * 10;
    if (max < base) {
      return absl::InvalidArgumentError(where + ".dns_failure_refresh_rate.max_interval: must not "
                                                "be less than base_interval");
    }
    c->failure_backoff = std::make_pair(base, max);
  }
  if (proto.has_wait_for_warm_on_init()) c->wait_for_warm = proto.wait_for_warm_on_init().value();
  if (auto st = parseResolver(proto, where, c->resolver); !st.ok()) {
    return st;
  }

  const auto& la = proto.load_assignment();
  for (int i = 0; i < la.endpoints_size(); ++i) {
    const auto& locality = la.endpoints(i);
    for (int j = 0; j < locality.lb_endpoints_size(); ++j) {
      const auto& lbe = locality.lb_endpoints(j);
      const std::string path = where + ".load_assignment.endpoints[" + std::to_string(i) +
                               "].lb_endpoints[" + std::to_string(j) + "].endpoint.address";
      if (!lbe.endpoint().address().has_socket_address()) {
        return absl::InvalidArgumentError(path + ": a socket_address is required");
      }
      const auto& sa = lbe.endpoint().address().socket_address();
      if (sa.port_specifier_case() != envoy::config::core::v3::SocketAddress::kPortValue) {
        return absl::InvalidArgumentError(path + ".socket_address.port_value: a port number is "
                                                 "required for a DNS cluster");
      }
      if (sa.protocol() != envoy::config::core::v3::SocketAddress::TCP ||
          !sa.resolver_name().empty()) {
        return absl::InvalidArgumentError(path + ".socket_address: only TCP with the cluster's "
                                                 "resolver is implemented by legate");
      }
      DnsTarget t;
      t.hostname = sa.address();
      t.port = sa.port_value();
      t.weight = lbe.has_load_balancing_weight() ? lbe.load_balancing_weight().value() : 1;
      t.priority = locality.priority();
      t.locality = Host::makeLocality({locality.locality().region(), locality.locality().zone(),
                                       locality.locality().sub_zone()});
      t.health_flags = edsFlags(lbe.health_status());
      c->targets.push_back(std::move(t));
    }
  }
  if (c->logical && c->targets.size() != 1) {
    return absl::InvalidArgumentError(where + ".load_assignment: a LOGICAL_DNS cluster needs "
                                              "exactly one lb_endpoint (" +
                                      std::to_string(c->targets.size()) + " given)");
  }
  return c;
}

DnsDiscovery::DnsDiscovery(Cluster& cluster, const DnsClusterConfig& config,
                           event::Dispatcher& dispatcher, std::unique_ptr<DnsResolver> resolver)
    : cluster_(cluster), config_(config), dispatcher_(dispatcher), resolver_(std::move(resolver)),
      rng_state_(randomSeed()) {
  for (const auto& t : config_.targets) {
    auto target = std::make_unique<Target>();
    target->config = &t;
    Target* raw = target.get();
    target->timer = dispatcher_.createTimer([this, raw] { resolve(*raw); });
    targets_.push_back(std::move(target));
  }
}

DnsDiscovery::~DnsDiscovery() {
  // Outstanding queries die with the resolver, without calling back.
  resolver_.reset();
}

void DnsDiscovery::start(std::function<void()> on_initialized) {
  on_initialized_ = std::move(on_initialized);
  pending_initial_ = targets_.size();
  if (pending_initial_ == 0 && on_initialized_) {
    auto cb = std::move(on_initialized_);
    cb();
    return;
  }
  for (auto& t : targets_) {
    resolve(*t);
  }
}

void DnsDiscovery::resolve(Target& t) {
  cluster_.stats().update_attempt.inc();
  resolver_->resolve(t.config->hostname, config_.family,
                     [this, &t](DnsResolver::Status status, std::vector<DnsAnswer> answers) {
                       onResolved(t, status, std::move(answers));
                     });
}

HostConstSharedPtr DnsDiscovery::makeHost(const DnsTarget& cfg, const network::Address& ip) const {
  auto a = network::Address::fromIpPort(ip.ip(), cfg.port);
  auto host = std::make_shared<Host>(*a, cfg.weight, cfg.priority, cfg.locality, cfg.hostname);
  for (uint32_t bit = 1; bit != 0 && bit <= cfg.health_flags; bit <<= 1) {
    if ((cfg.health_flags & bit) != 0) host->healthFlagSet(static_cast<Host::HealthFlag>(bit));
  }
  return host;
}

std::chrono::milliseconds DnsDiscovery::failureDelay(Target& t) {
  if (!config_.failure_backoff) {
    return config_.refresh_rate;
  }
  // Jittered exponential back-off: the ceiling doubles per failure from the
  // base up to the max; the delay is drawn from its upper half.
  const auto [base, max] = *config_.failure_backoff;
  const uint32_t shift = std::min<uint32_t>(t.failures, 30);
  const int64_t ceiling = std::min<int64_t>(max.count(), base.count() << shift);
  rng_state_ = rng_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
  const int64_t half = std::max<int64_t>(ceiling / 2, 1);
  return std::chrono::milliseconds(half + static_cast<int64_t>((rng_state_ >> 33) % (half + 1)));
}

void DnsDiscovery::onResolved(Target& t, DnsResolver::Status status,
                              std::vector<DnsAnswer> answers) {
  ClusterStats& cs = cluster_.stats();
  std::chrono::milliseconds next = config_.refresh_rate;
  if (status == DnsResolver::Status::Failure) {
    cs.update_failure.inc();
    ++t.failures;
    next = failureDelay(t);
  } else {
    cs.update_success.inc();
    t.failures = 0;
    if (answers.empty()) cs.update_empty.inc();
    if (config_.respect_ttl && !answers.empty()) {
      auto ttl = answers.front().ttl;
      for (const auto& a : answers) ttl = std::min(ttl, a.ttl);
      if (ttl.count() > 0) next = std::chrono::duration_cast<std::chrono::milliseconds>(ttl);
    }
    std::vector<HostConstSharedPtr> hosts;
    if (config_.logical) {
      // One host: the first answer. An empty answer keeps the last one.
      if (!answers.empty()) {
        const bool same = !t.hosts.empty() && t.hosts.front()->address().ip() ==
                                                  answers.front().address.ip();
        hosts = same ? t.hosts
                     : std::vector<HostConstSharedPtr>{makeHost(*t.config, answers.front().address)};
      } else {
        hosts = t.hosts;
      }
    } else {
      for (const auto& a : answers) {
        auto it = std::find_if(t.hosts.begin(), t.hosts.end(), [&](const HostConstSharedPtr& h) {
          return h->address().ip() == a.address.ip();
        });
        hosts.push_back(it != t.hosts.end() ? *it : makeHost(*t.config, a.address));
      }
    }
    const bool same_set = hosts.size() == t.hosts.size() &&
                          std::all_of(hosts.begin(), hosts.end(), [&](const auto& h) {
                            return std::find(t.hosts.begin(), t.hosts.end(), h) != t.hosts.end();
                          });
    if (!same_set) {
      t.hosts = std::move(hosts);
      std::vector<HostConstSharedPtr> all;
      for (const auto& other : targets_) {
        all.insert(all.end(), other->hosts.begin(), other->hosts.end());
      }
      cluster_.setHosts(std::move(all));
    }
  }
  t.timer->enableTimer(next);
  if (!t.resolved_once) {
    t.resolved_once = true;
    if (--pending_initial_ == 0 && on_initialized_) {
      auto cb = std::move(on_initialized_);
      cb();
    }
  }
}

} // namespace legate::upstream
