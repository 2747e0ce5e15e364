#pragma once

// Trace context propagation: the ids that tie the spans of one request across
// processes, read from and written to HTTP headers.
//
// Formats:
//   - W3C Trace Context (the OpenTelemetry tracer): `traceparent:
//     00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (bit 0 of the flags
//     is "sampled") and `tracestate`, passed on unchanged.
//   - B3 (the Zipkin tracer): the multi-header form (x-b3-traceid, -spanid,
//     -parentspanid, -sampled, -flags) and the single `b3` header
//     (`<trace>-<span>[-<sampling>[-<parent>]]`, or only `<sampling>`).
//
// A malformed header is ignored (as if absent): the request starts a new trace
// rather than failing or continuing a context it cannot trust.
//
// Threading: plain functions and values; any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/header_map.h"

namespace legate::tracing {

namespace headers {
inline constexpr std::string_view kTraceparent = "traceparent";
inline constexpr std::string_view kTracestate = "tracestate";
inline constexpr std::string_view kB3 = "b3";
inline constexpr std::string_view kB3TraceId = "x-b3-traceid";
inline constexpr std::string_view kB3SpanId = "x-b3-spanid";
inline constexpr std::string_view kB3ParentSpanId = "x-b3-parentspanid";
inline constexpr std::string_view kB3Sampled = "x-b3-sampled";
inline constexpr std::string_view kB3Flags = "x-b3-flags";
}  // namespace headers

// What a request carries from the caller's side of the trace.
struct SpanContext {
  uint64_t trace_id_high = 0;  // 0 for a 64-bit trace id
  uint64_t trace_id_low = 0;
  uint64_t span_id = 0;    // the caller's span: the parent of ours
  uint64_t parent_id = 0;  // the caller's span's parent (B3 only; 0 = none)
  std::optional<bool> sampled;
  std::string tracestate;  // W3C only
};

// An extraction: a context, or only a sampling decision (B3 allows that), or nothing.
struct Extracted {
  std::optional<SpanContext> context;
  std::optional<bool> sampled;  // the caller's decision, with or without a context
};

// W3C. nullopt when absent or malformed.
std::optional<SpanContext> parseTraceparent(std::string_view value);
std::string formatTraceparent(uint64_t trace_high, uint64_t trace_low, uint64_t span_id,
                              bool sampled);
Extracted extractW3c(const http::HeaderMap& headers);

// B3: the single header wins over the multi-header form (Envoy's order).
std::optional<Extracted> parseB3Single(std::string_view value);
Extracted extractB3(const http::HeaderMap& headers);

// 16 (or 32 with a high part) lower-case hex digits.
std::string hex64(uint64_t v);
std::string traceIdHex(uint64_t high, uint64_t low);
// Exactly 16 hex digits (either case for B3, lower only when strict) -> value.
std::optional<uint64_t> parseHex64(std::string_view s, bool lower_only = false);

// A random non-zero 64-bit id (thread-local generator).
uint64_t randomId();

}  // namespace legate::tracing
