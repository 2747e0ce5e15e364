#pragma once

// Prometheus text exposition (format 0.0.4) of a Store, as Envoy prints it on
// /stats/prometheus: Envoy's default tag extraction turns stat names into a metric
// name plus labels (cluster.backend.upstream_rq_200 ->
// envoy_cluster_upstream_rq{envoy_cluster_name="backend",envoy_response_code="200"}).
//
// Threading: pure functions over the Store's locked snapshots; see text_format.h.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stats/stats.h"
#include "stats/tag_extractor.h"
#include "stats/text_format.h"

namespace legate::stats {

// "envoy_" + name with every character outside [a-zA-Z0-9_:] replaced by '_'.
// Also used for label names ("envoy.cluster_name" -> "envoy_cluster_name" without
// the prefix): see sanitizePrometheusName.
std::string prometheusMetricName(std::string_view name);
std::string sanitizePrometheusName(std::string_view name);

// Escapes a label value: backslash, double quote and newline.
std::string escapePrometheusLabelValue(std::string_view value);

// The whole exposition, tags from the store's TagProducer: one `# TYPE` line per metric family (counters, then gauges,
// then histograms, each family in metric-name order), histograms as cumulative
// `_bucket{le=..}` lines ending with le="+Inf", then `_sum` and `_count`.
// A stat whose metric name is already taken by a family of another type, or whose
// labels repeat a sample already printed, is left out, so the output always parses.
std::string renderPrometheus(const Store& store, const StatsQuery& query);

} // namespace legate::stats
