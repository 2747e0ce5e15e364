#pragma once

// envoy.tracers.zipkin: B3 propagation, spans POSTed as Zipkin API v2 JSON
// (collector_endpoint_version HTTP_JSON) to collector_endpoint on a host of
// collector_cluster, batched (tracing.zipkin.min_flush_spans, default 5, or
// every tracing.zipkin.flush_interval_ms, default 5 s), from the main thread.
//
// Stats (Envoy's): tracing.zipkin.spans_sent, timer_flushed, reports_sent (the
// collector answered 202), reports_dropped (it answered anything else, or the
// report queue was full), reports_failed (no host, connection failure, reset,
// 5 s timeout); legate's tracing.zipkin.spans_dropped counts spans a full
// worker queue dropped.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "extensions/tracers/tracer_factory.h"

namespace envoy::config::trace::v3 {
class ZipkinConfig;
}

namespace legate::extensions::tracers {

absl::StatusOr<tracing::TracerSharedPtr> createZipkinTracer(
    const envoy::config::trace::v3::ZipkinConfig& proto, const std::string& path,
    TracerContext& context);

// The Zipkin v2 JSON list of spans (exposed for unit tests).
std::string zipkinJson(const std::vector<tracing::SpanData>& spans, const std::string& service);

}  // namespace legate::extensions::tracers
