#include "upstream/host.h"

#include <memory>

namespace legate::upstream {

namespace {
constexpr uint32_t bit(Host::HealthFlag f) { return static_cast<uint32_t>(f); }
constexpr uint32_t kUnhealthyMask =
    bit(Host::HealthFlag::FAILED_ACTIVE_HC) | bit(Host::HealthFlag::FAILED_OUTLIER_CHECK) |
    bit(Host::HealthFlag::FAILED_EDS_HEALTH) | bit(Host::HealthFlag::EDS_STATUS_DRAINING) |
    bit(Host::HealthFlag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL) |
    bit(Host::HealthFlag::ACTIVE_HC_TIMEOUT);
constexpr uint32_t kDegradedMask =
    bit(Host::HealthFlag::DEGRADED_ACTIVE_HC) | bit(Host::HealthFlag::DEGRADED_EDS_HEALTH);
} // namespace

Host::Health Host::healthFromFlags(uint32_t flags) {
  if ((flags & kUnhealthyMask) != 0) return Health::Unhealthy;
  if ((flags & kDegradedMask) != 0) return Health::Degraded;
  return Health::Healthy;
}

std::string Host::healthFlagsString() const {
  static const std::pair<HealthFlag, const char*> kNames[] = {
      {HealthFlag::FAILED_ACTIVE_HC, "failed_active_hc"},
      {HealthFlag::FAILED_OUTLIER_CHECK, "failed_outlier_check"},
      {HealthFlag::FAILED_EDS_HEALTH, "failed_eds_health"},
      {HealthFlag::DEGRADED_ACTIVE_HC, "degraded_active_hc"},
      {HealthFlag::DEGRADED_EDS_HEALTH, "degraded_eds_health"},
      {HealthFlag::PENDING_DYNAMIC_REMOVAL, "pending_dynamic_removal"},
      {HealthFlag::PENDING_ACTIVE_HC, "pending_active_hc"},
      {HealthFlag::EXCLUDED_VIA_IMMEDIATE_HC_FAIL, "excluded_via_immediate_hc_fail"},
      {HealthFlag::ACTIVE_HC_TIMEOUT, "active_hc_timeout"},
      {HealthFlag::EDS_STATUS_DRAINING, "eds_status_draining"},
  };
  const uint32_t flags = healthFlags();
  if (flags == 0) return "healthy";
  std::string out;
  for (const auto& [f, name] : kNames) {
    if ((flags & bit(f)) != 0) {
      out += '/';
      out += name;
    }
  }
  return out;
}

} // namespace legate::upstream
