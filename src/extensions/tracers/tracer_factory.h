#pragma once

// Tracing providers (envoy.config.trace.v3.Tracing.Http): envoy.tracers.zipkin
// and envoy.tracers.opentelemetry, built on the main thread into a shared
// tracing::Tracer. Every tracer built is also listed in the context so the
// server can start its exporter on the main dispatcher.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "stats/stats.h"
#include "tracing/span.h"
#include "upstream/cluster_manager.h"

namespace envoy::config::trace::v3 {
class Tracing_Http;
}

namespace legate::extensions::tracers {

struct TracerContext {
  stats::Store& store;
  const upstream::ClusterManager& cluster_manager;
  std::string node_id;
  std::string node_cluster;  // the service name spans are reported under
  std::string zone;
  // Every tracer built, to start once the main dispatcher runs.
  std::vector<tracing::TracerSharedPtr>* built = nullptr;
};

absl::StatusOr<tracing::TracerSharedPtr> createTracer(
    const envoy::config::trace::v3::Tracing_Http& provider, const std::string& path,
    TracerContext& context);

}  // namespace legate::extensions::tracers
