// Every extension legate implements, added to the registry once, and the
// generic resolution of a configured extension to its factory.
#include <mutex>

#include "config/extension_registry.h"
#include "envoy/config/listener/v3/listener_components.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "extensions/factory.h"
#include "extensions/filters/network/tcp_proxy/config.h"
#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "extensions/filters/network/http_connection_manager/config.h"
#include "http/conn_manager.h"

namespace legate {
namespace extensions {
namespace {

class TcpProxyFactory : public NetworkFilterFactory {
public:
  absl::StatusOr<network::NetworkFilterFactoryCb> create(const google::protobuf::Any& typed_config,
                                                         const std::string& path,
                                                         FactoryContext& context) const override {
    envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy proto;
    if (!typed_config.UnpackTo(&proto)) {
      return absl::InvalidArgumentError(path + ": cannot decode TcpProxy config");
    }
    auto config = tcp_proxy::TcpProxyConfig::create(proto, path, context.cluster_manager,
                                                    context.store, context.filter_chain_name);
    if (!config.ok()) {
      return config.status();
    }
    return [config = std::move(*config)](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<tcp_proxy::TcpProxyFilter>(config));
    };
  }
};

class HttpConnectionManagerFactory : public NetworkFilterFactory {
public:
  absl::StatusOr<network::NetworkFilterFactoryCb> create(const google::protobuf::Any& typed_config,
                                                         const std::string& path,
                                                         FactoryContext& context) const override {
    envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager proto;
    if (!typed_config.UnpackTo(&proto)) {
      return absl::InvalidArgumentError(path + ": cannot decode HttpConnectionManager config");
    }
    auto config = http_connection_manager::createConfig(proto, path, context);
    if (!config.ok()) {
      return config.status();
    }
    return [config = std::move(*config)](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<http::ConnectionManager>(config));
    };
  }
};

} // namespace

absl::StatusOr<network::NetworkFilterFactoryCb>
createNetworkFilter(const envoy::config::listener::v3::Filter& filter, const std::string& path,
                    FactoryContext& context) {
  if (!filter.has_typed_config()) {
    return absl::InvalidArgumentError(path + ": filter '" + filter.name() +
                                      "' has no typed_config; legate needs typed_config with @type");
  }
  const std::string type(config::typeNameFromUrl(filter.typed_config().type_url()));
  const auto* info = config::ExtensionRegistry::get().findByType(type);
  if (info == nullptr || info->category != config::ExtensionCategory::NetworkFilter) {
    return absl::InvalidArgumentError(path + ".typed_config: network filter '" + filter.name() +
                                      "' (" + type + ") is not implemented by legate");
  }
  return static_cast<const NetworkFilterFactory*>(info->factory)
      ->create(filter.typed_config(), path + ".typed_config", context);
}

} // namespace extensions

namespace config {

void registerBuiltinExtensions(ExtensionRegistry& r) {
  static std::once_flag once;
  std::call_once(once, [&r] {
    static const extensions::TcpProxyFactory tcp_proxy;
    r.add({ExtensionCategory::NetworkFilter,
           "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
           "envoy.filters.network.tcp_proxy", &tcp_proxy});
    static const extensions::HttpConnectionManagerFactory hcm;
    r.add({ExtensionCategory::NetworkFilter,
           "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "envoy.filters.network.http_connection_manager", &hcm});
    // HTTP filters are built by the connection manager's config, keyed by these types.
    r.add({ExtensionCategory::HttpFilter, "envoy.extensions.filters.http.router.v3.Router",
           "envoy.filters.http.router", nullptr});
    // Read by upstream::Cluster (typed_extension_protocol_options).
    r.add({ExtensionCategory::UpstreamProtocolOptions,
           "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
           "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", nullptr});
    // Read by upstream::parseDnsClusterConfig (typed_dns_resolver_config).
    r.add({ExtensionCategory::DnsResolver,
           "envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig",
           "envoy.network.dns_resolver.cares", nullptr});
    // Read by router::RetryPolicy (retry_host_predicate).
    r.add({ExtensionCategory::RetryHostPredicate,
           "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
           "envoy.retry_host_predicates.previous_hosts", nullptr});
    // Access loggers are built by accesslog::create(), keyed by these types.
    r.add({ExtensionCategory::AccessLogger, "envoy.extensions.access_loggers.file.v3.FileAccessLog",
           "envoy.access_loggers.file", nullptr});
    r.add({ExtensionCategory::AccessLogger,
           "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
           "envoy.access_loggers.stdout", nullptr});
    r.add({ExtensionCategory::AccessLogger,
           "envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
           "envoy.access_loggers.stderr", nullptr});
    // Stats sinks are built by server::createStatsSinks, keyed by these types.
    r.add({ExtensionCategory::StatsSink, "envoy.config.metrics.v3.StatsdSink",
           "envoy.stat_sinks.statsd", nullptr});
    r.add({ExtensionCategory::StatsSink, "envoy.config.metrics.v3.DogStatsdSink",
           "envoy.stat_sinks.dog_statsd", nullptr});
    // Tracers are built by extensions::tracers::createTracer, keyed by these types.
    r.add({ExtensionCategory::Tracer, "envoy.config.trace.v3.ZipkinConfig", "envoy.tracers.zipkin",
           nullptr});
    r.add({ExtensionCategory::Tracer, "envoy.config.trace.v3.OpenTelemetryConfig",
           "envoy.tracers.opentelemetry", nullptr});
    // Load balancing policies are mapped onto legate's balancers by upstream::Cluster.
    for (const char* lb : {"round_robin.v3.RoundRobin", "least_request.v3.LeastRequest",
                           "random.v3.Random", "ring_hash.v3.RingHash", "maglev.v3.Maglev",
                           "cluster_provided.v3.ClusterProvided"}) {
      const std::string type = std::string("envoy.extensions.load_balancing_policies.") + lb;
      const std::string short_name = std::string(lb).substr(0, std::string(lb).find('.'));
      r.add({ExtensionCategory::LoadBalancingPolicy, type,
             "envoy.load_balancing_policies." + short_name, nullptr});
    }
    // Listener filters are applied by network::ActiveListener.
    r.add({ExtensionCategory::ListenerFilter,
           "envoy.extensions.filters.listener.original_dst.v3.OriginalDst",
           "envoy.filters.listener.original_dst", nullptr});
  });
}

} // namespace config
} // namespace legate
