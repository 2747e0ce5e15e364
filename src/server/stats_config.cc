#include "server/stats_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "router/matchers.h"
#include "config/extension_registry.h"
#include "config/unsupported.h"
#include "envoy/config/metrics/v3/stats.pb.h"
#include "stats/statsd.h"
#include "stats/tag_extractor.h"

namespace legate::server {

namespace {

// Any of the patterns of a ListStringMatcher.
absl::StatusOr<stats::NameMatcher>
anyOf(const envoy::type::matcher::v3::ListStringMatcher& list, const std::string& where) {
  std::vector<router::StringMatcher> matchers;
  for (int i = 0; i < list.patterns_size(); ++i) {
    auto m = router::StringMatcher::create(list.patterns(i),
                                           absl::StrCat(where, ".patterns[", i, "]"));
    if (!m.ok()) return m.status();
    matchers.push_back(std::move(*m));
  }
  return stats::NameMatcher([matchers = std::move(matchers)](std::string_view name) {
    for (const auto& m : matchers) {
      if (m.match(name)) return true;
    }
    return false;
  });
}

} // namespace

absl::Status configureStats(const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                            stats::Store& store) {
  if (!bootstrap.has_stats_config()) {
    return absl::OkStatus();
  }
  const auto& sc = bootstrap.stats_config();
  stats::StoreConfig config;

  std::vector<stats::TagSpec> tags;
  for (const auto& t : sc.stats_tags()) {
    stats::TagSpec spec;
    spec.name = t.tag_name();
    spec.regex = t.regex();
    spec.has_fixed_value = t.tag_value_case() == envoy::config::metrics::v3::TagSpecifier::kFixedValue;
    spec.fixed_value = t.fixed_value();
    tags.push_back(std::move(spec));
  }
  const bool use_defaults = !sc.has_use_all_default_tags() || sc.use_all_default_tags().value();
  auto producer = stats::TagProducer::create(tags, use_defaults, "stats_config");
  if (!producer.ok()) return producer.status();
  config.tags = std::move(*producer);

  if (sc.has_stats_matcher()) {
    const auto& m = sc.stats_matcher();
    const std::string where = "stats_config.stats_matcher";
    switch (m.stats_matcher_case()) {
    case envoy::config::metrics::v3::StatsMatcher::kRejectAll:
      if (m.reject_all()) config.accept = [](std::string_view) { return false; };
      break;
    case envoy::config::metrics::v3::StatsMatcher::kExclusionList: {
      auto any = anyOf(m.exclusion_list(), where + ".exclusion_list");
      if (!any.ok()) return any.status();
      config.accept = [any = std::move(*any)](std::string_view n) { return !any(n); };
      break;
    }
    case envoy::config::metrics::v3::StatsMatcher::kInclusionList: {
      auto any = anyOf(m.inclusion_list(), where + ".inclusion_list");
      if (!any.ok()) return any.status();
      config.accept = std::move(*any);
      break;
    }
    default:
      break;
    }
  }

  for (int i = 0; i < sc.histogram_bucket_settings_size(); ++i) {
    const auto& hb = sc.histogram_bucket_settings(i);
    const std::string where = absl::StrCat("stats_config.histogram_bucket_settings[", i, "]");
    auto m = router::StringMatcher::create(hb.match(), where + ".match");
    if (!m.ok()) return m.status();
    stats::Histogram::Bounds bounds(hb.buckets().begin(), hb.buckets().end());
    std::sort(bounds.begin(), bounds.end());
    config.histogram_buckets.emplace_back(
        [m = std::move(*m)](std::string_view name) { return m.match(name); },
        std::make_shared<const stats::Histogram::Bounds>(std::move(bounds)));
  }
  store.configure(std::move(config));
  return absl::OkStatus();
}

namespace {

// "ip:port" of a socket_address, or an error at where.
absl::StatusOr<std::string> udpAddress(const envoy::config::core::v3::Address& a,
                                       const std::string& where) {
  if (!a.has_socket_address()) {
    return absl::InvalidArgumentError(where + ": only socket_address is supported");
  }
  const auto& sa = a.socket_address();
  if (sa.protocol() != envoy::config::core::v3::SocketAddress::UDP &&
      sa.protocol() != envoy::config::core::v3::SocketAddress::TCP) {
    return absl::InvalidArgumentError(where + ".socket_address.protocol: unsupported");
  }
  if (auto st = config::rejectUnsupportedFields(
          sa, {"named_port", "resolver_name", "ipv4_compat", "network_namespace_filepath"},
          where + ".socket_address");
      !st.ok()) {
    return st;
  }
  const bool v6 = sa.address().find(':') != std::string::npos;
  return v6 ? absl::StrCat("[", sa.address(), "]:", sa.port_value())
            : absl::StrCat(sa.address(), ":", sa.port_value());
}

} // namespace

absl::StatusOr<std::vector<std::unique_ptr<stats::Sink>>>
createStatsSinks(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store,
                 const upstream::ClusterManager& cm) {
  std::vector<std::unique_ptr<stats::Sink>> sinks;
  for (int i = 0; i < bootstrap.stats_sinks_size(); ++i) {
    const auto& proto = bootstrap.stats_sinks(i);
    const std::string where = absl::StrCat("stats_sinks[", i, "]");
    if (!proto.has_typed_config()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".typed_config: required (", proto.name(), ")"));
    }
    const std::string type(config::typeNameFromUrl(proto.typed_config().type_url()));
    const std::string cfg = where + ".typed_config";
    if (type == "envoy.config.metrics.v3.StatsdSink") {
      envoy::config::metrics::v3::StatsdSink s;
      if (!proto.typed_config().UnpackTo(&s)) {
        return absl::InvalidArgumentError(cfg + ": cannot decode StatsdSink");
      }
      if (s.statsd_specifier_case() == envoy::config::metrics::v3::StatsdSink::kTcpClusterName) {
        const upstream::Cluster* cluster = cm.get(s.tcp_cluster_name());
        if (cluster == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat(cfg, ".tcp_cluster_name: unknown cluster '",
                                                         s.tcp_cluster_name(), "'"));
        }
        // Round robin over the cluster's hosts, asked again after each failure.
        auto pick = [cluster, next = size_t{0}]() mutable -> std::string {
          const auto& hosts = cluster->hosts();
          if (hosts.empty()) return "";
          return hosts[next++ % hosts.size()]->address().asString();
        };
        sinks.push_back(stats::StatsdSink::tcp(std::move(pick), s.prefix(), store.tagProducer()));
        continue;
      }
      auto address = udpAddress(s.address(), cfg + ".address");
      if (!address.ok()) return address.status();
      auto sink = stats::StatsdSink::udp(*address, stats::StatsdSink::Flavor::Statsd, s.prefix(), 0,
                                         store.tagProducer());
      if (!sink.ok()) return absl::InvalidArgumentError(cfg + ".address: " + std::string(sink.status().message()));
      sinks.push_back(std::move(*sink));
    } else if (type == "envoy.config.metrics.v3.DogStatsdSink") {
      envoy::config::metrics::v3::DogStatsdSink s;
      if (!proto.typed_config().UnpackTo(&s)) {
        return absl::InvalidArgumentError(cfg + ": cannot decode DogStatsdSink");
      }
      auto address = udpAddress(s.address(), cfg + ".address");
      if (!address.ok()) return address.status();
      const uint64_t max = s.has_max_bytes_per_datagram() ? s.max_bytes_per_datagram().value() : 0;
      auto sink = stats::StatsdSink::udp(*address, stats::StatsdSink::Flavor::DogStatsd, s.prefix(),
                                         max, store.tagProducer());
      if (!sink.ok()) return absl::InvalidArgumentError(cfg + ".address: " + std::string(sink.status().message()));
      sinks.push_back(std::move(*sink));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg, ": stats sink type '", type, "' is not supported"));
    }
  }
  return sinks;
}

} // namespace legate::server
