#pragma once

// The bootstrap's stats_config (stats_tags, use_all_default_tags, stats_matcher,
// histogram_bucket_settings) applied to a Store. Main thread, configuration time:
// before any stat is created, so every stat sees it.

#include "absl/status/status.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "stats/sink.h"
#include "stats/stats.h"
#include "upstream/cluster_manager.h"

namespace legate::server {

// Errors name the field path ("stats_config.stats_matcher.inclusion_list.patterns[0]...").
absl::Status configureStats(const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                            stats::Store& store);

// The bootstrap's stats_sinks (envoy.stat_sinks.statsd, envoy.stat_sinks.dog_statsd).
// A tcp_cluster_name must name a cluster of cm. Errors name the field path.
absl::StatusOr<std::vector<std::unique_ptr<stats::Sink>>>
createStatsSinks(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store,
                 const upstream::ClusterManager& cm);

} // namespace legate::server
