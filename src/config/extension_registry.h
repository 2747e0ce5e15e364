#pragma once

// The one registry of extensions legate implements, keyed by the proto type
// name of their typed_config (e.g. "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")
// and also reachable by Envoy's well-known name (e.g. "envoy.filters.network.tcp_proxy").
//
// The built-in extensions are added once at start-up, before any config is
// loaded, by registerBuiltinExtensions() (src/extensions/builtin.cc); the
// registry is only read afterwards, so lookups take no lock.

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace legate::config {

enum class ExtensionCategory {
  NetworkFilter,
  HttpFilter,
  AccessLogger,
  // Typed options attached to clusters (typed_extension_protocol_options).
  UpstreamProtocolOptions,
  // Bootstrap stats_sinks.
  StatsSink,
  // typed_dns_resolver_config of DNS clusters.
  DnsResolver,
  // Route retry_policy.retry_host_predicate.
  RetryHostPredicate,
  // Tracing providers (HttpConnectionManager.tracing.provider, bootstrap tracing).
  Tracer,
  // Cluster.load_balancing_policy.policies[].typed_extension_config.
  LoadBalancingPolicy,
  // Listener.listener_filters.
  ListenerFilter,
};

std::string_view categoryName(ExtensionCategory c);

struct ExtensionInfo {
  ExtensionCategory category;
  std::string type_name;   // full proto message name of the typed_config
  std::string envoy_name;  // Envoy's extension name
  const void* factory;     // category-specific factory, cast by the category's owner
};

class ExtensionRegistry {
public:
  static ExtensionRegistry& get();
  void add(ExtensionInfo info);
  // By proto type name (no type.googleapis.com/ prefix).
  const ExtensionInfo* findByType(std::string_view type_name) const;
  const ExtensionInfo* findByName(std::string_view envoy_name) const;
  std::vector<const ExtensionInfo*> all() const;

private:
  std::map<std::string, ExtensionInfo, std::less<>> by_type_;
  std::map<std::string, std::string, std::less<>> name_to_type_;
};

// Defined in src/extensions/builtin.cc: adds every extension legate implements.
// Idempotent; main() calls it first thing.
void registerBuiltinExtensions(ExtensionRegistry& registry);

// "type.googleapis.com/a.b.C" -> "a.b.C"
std::string_view typeNameFromUrl(std::string_view type_url);

// True when legate implements the extension whose typed_config has this type.
// The config loader refuses every Any whose type this says no to.
inline bool isExtensionImplemented(std::string_view type_name) {
  return ExtensionRegistry::get().findByType(type_name) != nullptr;
}

// Slots where Envoy takes the first extension it supports and skips the others
// (Cluster.load_balancing_policy.policies[].typed_extension_config.typed_config,
// given by its field path): there the loader keeps an Envoy API type legate does
// not implement instead of refusing it, and the slot's owner skips it.
bool isSkippableExtensionSlot(std::string_view field_path);

} // namespace legate::config
