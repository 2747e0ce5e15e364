#pragma once

// How extensions are built from configuration. Factories run on the main
// thread; what they return is immutable and shared by the workers.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/any.pb.h"
#include "network/filter_chain.h"
#include "stats/stats.h"
#include "tracing/span.h"
#include "upstream/cluster_manager.h"

namespace envoy::config::listener::v3 {
class Filter;
}

namespace legate::extensions {

// What a factory may use while building.
struct FactoryContext {
  stats::Store& store;
  const upstream::ClusterManager& cluster_manager;
  // Tracing: the node (span tags and service name), the bootstrap's tracer
  // (connection managers whose tracing names no provider use it), and where
  // every tracer built is listed (the server starts their exporters).
  std::string node_id;
  std::string node_cluster;
  std::string zone;
  tracing::TracerSharedPtr bootstrap_tracer;
  std::vector<tracing::TracerSharedPtr>* tracers = nullptr;
  // The listener being built has traffic_direction OUTBOUND (egress spans).
  bool outbound = false;
  // The name of the filter chain being built (%FILTER_CHAIN_NAME%).
  std::string filter_chain_name;
};

class NetworkFilterFactory {
public:
  virtual ~NetworkFilterFactory() = default;
  // typed_config has already been type-checked against this factory's type.
  virtual absl::StatusOr<network::NetworkFilterFactoryCb>
  create(const google::protobuf::Any& typed_config, const std::string& path,
         FactoryContext& context) const = 0;
};

// Resolves a listener's filter entry through the extension registry.
absl::StatusOr<network::NetworkFilterFactoryCb>
createNetworkFilter(const envoy::config::listener::v3::Filter& filter, const std::string& path,
                    FactoryContext& context);

} // namespace legate::extensions
