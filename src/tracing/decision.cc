#include "tracing/decision.h"

#include <string>

#include "common/hex.h"
#include "common/random.h"

namespace legate::tracing {
namespace {

constexpr std::string_view kXRequestId = "x-request-id";
constexpr size_t kUuidSize = 36;
constexpr size_t kReasonPosition = 14;

char reasonChar(Reason r) {
  switch (r) {
  case Reason::Sampling:
    return '9';
  case Reason::ServiceForced:
    return 'a';
  case Reason::ClientForced:
    return 'b';
  default:
    return '4';
  }
}

void setReason(http::HeaderMap& h, std::string_view id, Reason r) {
  if (id.size() != kUuidSize)
    return;
  std::string updated(id);
  updated[kReasonPosition] = reasonChar(r);
  h.set(kXRequestId, updated);
}

}  // namespace

DecisionStats::DecisionStats(stats::Scope s)
    : random_sampling(s.counter("tracing.random_sampling")),
      service_forced(s.counter("tracing.service_forced")),
      client_enabled(s.counter("tracing.client_enabled")),
      not_traceable(s.counter("tracing.not_traceable")),
      health_check(s.counter("tracing.health_check")) {}

Reason requestIdReason(std::string_view id) {
  if (id.size() != kUuidSize)
    return Reason::NotTraceable;
  switch (id[kReasonPosition]) {
  case '9':
    return Reason::Sampling;
  case 'a':
    return Reason::ServiceForced;
  case 'b':
    return Reason::ClientForced;
  default:
    return Reason::NotTraceable;
  }
}

std::optional<uint64_t> requestIdInteger(std::string_view id) {
  if (id.size() < 8)
    return std::nullopt;
  uint64_t v = 0;
  for (char c : id.substr(0, 8)) {
    const int d = hexDigitValue(c);
    if (d < 0)
      return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

Decision decide(http::HeaderMap& h, const Sampling& sampling, DecisionStats& stats) {
  Reason reason = Reason::NotTraceable;
  const auto id_view = h.get(kXRequestId);
  const std::string id = id_view ? std::string(*id_view) : std::string();
  if (auto draw_value = requestIdInteger(id)) {
    const uint64_t draw = *draw_value % 10000;
    const auto snap = runtime::snapshot();
    reason = requestIdReason(id);
    if (reason == Reason::NotTraceable) {
      if (h.has(headers::kXClientTraceId) &&
          snap->featureEnabled("tracing.client_enabled", sampling.client, fastRandom())) {
        reason = Reason::ClientForced;
      } else if (h.has(headers::kXEnvoyForceTrace)) {
        reason = Reason::ServiceForced;
      } else if (snap->featureEnabled("tracing.random_sampling", sampling.random, draw)) {
        reason = Reason::Sampling;
      }
    }
    if (reason != Reason::ServiceForced &&
        !snap->featureEnabled("tracing.global_enabled", sampling.overall, draw)) {
      reason = Reason::NotTraceable;
    }
    // Only a UUID can carry the decision; anything else stays untraced.
    if (id.size() != kUuidSize)
      reason = Reason::NotTraceable;
    if (reason != requestIdReason(id))
      setReason(h, id, reason);
  }
  switch (reason) {
  case Reason::Sampling:
    stats.random_sampling.inc();
    return {reason, true};
  case Reason::ServiceForced:
    stats.service_forced.inc();
    return {reason, true};
  case Reason::ClientForced:
    stats.client_enabled.inc();
    return {reason, true};
  case Reason::HealthCheck:
    stats.health_check.inc();
    return {reason, false};
  case Reason::NotTraceable:
    break;
  }
  stats.not_traceable.inc();
  return {Reason::NotTraceable, false};
}

}  // namespace legate::tracing
