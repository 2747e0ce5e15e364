#pragma once

// Whether a request is traced, decided as Envoy does and recorded in its
// x-request-id so every proxy the id travels through decides the same way.
//
// The decision is the 15th character of the x-request-id UUID (the version
// digit, position 14): '9' sampled, 'a' forced by the service
// (x-envoy-force-trace), 'b' forced by the client (x-client-trace-id), '4'
// (a plain version-4 UUID) not traced. A request whose id already carries a
// decision keeps it; otherwise, in order: x-client-trace-id (client_sampling,
// runtime tracing.client_enabled), x-envoy-force-trace (internal requests
// only: the connection manager strips it from external ones), random sampling
// (random_sampling, runtime tracing.random_sampling, drawn from the id itself so
// every hop agrees). Last, overall_sampling (runtime tracing.global_enabled)
// can veto anything but a forced trace.
//
// Threading: plain functions; the stats are atomics.

#include <cstdint>
#include <optional>
#include <string_view>

#include "http/header_map.h"
#include "runtime/runtime.h"
#include "stats/stats.h"

namespace legate::tracing {

namespace headers {
inline constexpr std::string_view kXClientTraceId = "x-client-trace-id";
inline constexpr std::string_view kXEnvoyForceTrace = "x-envoy-force-trace";
inline constexpr std::string_view kXEnvoyDecoratorOperation = "x-envoy-decorator-operation";
}  // namespace headers

enum class Reason { NotTraceable, HealthCheck, Sampling, ServiceForced, ClientForced };

struct Decision {
  Reason reason = Reason::NotTraceable;
  bool traced = false;
};

// The HCM's tracing percentages (Envoy's defaults: 100% each). random is out
// of 10,000 (the runtime key takes 0-10000), the others out of 100.
struct Sampling {
  runtime::Fraction client{100, 100};
  runtime::Fraction random{10000, 10000};
  runtime::Fraction overall{100, 100};
};

// http.<prefix>.tracing.*
struct DecisionStats {
  explicit DecisionStats(stats::Scope scope);
  stats::Counter& random_sampling;
  stats::Counter& service_forced;
  stats::Counter& client_enabled;
  stats::Counter& not_traceable;
  stats::Counter& health_check;
};

// The decision an x-request-id carries (NotTraceable when it is no UUID).
Reason requestIdReason(std::string_view request_id);
// The id's first 8 hex digits as a number (Envoy's sampling draw), if any.
std::optional<uint64_t> requestIdInteger(std::string_view request_id);

// Makes the decision, rewrites x-request-id to carry it, counts it. The
// runtime snapshot is read once.
Decision decide(http::HeaderMap& headers, const Sampling& sampling, DecisionStats& stats);

}  // namespace legate::tracing
