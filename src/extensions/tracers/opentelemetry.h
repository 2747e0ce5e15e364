#pragma once

// envoy.tracers.opentelemetry over OTLP/HTTP: W3C trace context (traceparent,
// tracestate) and spans POSTed as a protobuf ExportTraceServiceRequest
// (content-type application/x-protobuf) to http_service.http_uri (its path,
// default /v1/traces) on a host of http_uri.cluster, with
// request_headers_to_add, batched like Zipkin (tracing.opentelemetry.
// min_flush_spans / flush_interval_ms). The protobuf is written by hand
// (otlp.h): the OTLP .proto files are not part of the Envoy API package the
// build uses, and the few messages needed are small and stable.
//
// Stats (Envoy's): tracing.opentelemetry.spans_sent, timer_flushed,
// http_reports_sent, http_reports_success (200), http_reports_failed
// (anything else, no host, connection failure, timeout); legate's
// spans_dropped (full worker queue) and http_reports_dropped (report queue full).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "extensions/tracers/tracer_factory.h"

namespace envoy::config::trace::v3 {
class OpenTelemetryConfig;
}

namespace legate::extensions::tracers {

absl::StatusOr<tracing::TracerSharedPtr> createOpenTelemetryTracer(
    const envoy::config::trace::v3::OpenTelemetryConfig& proto, const std::string& path,
    TracerContext& context);

// The serialized ExportTraceServiceRequest for one batch (exposed for tests).
std::string otlpExportRequest(const std::vector<tracing::SpanData>& spans,
                              const std::string& service_name);

}  // namespace legate::extensions::tracers
