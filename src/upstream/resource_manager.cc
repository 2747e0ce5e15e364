#include "upstream/resource_manager.h"

#include <algorithm>
#include <cmath>

#include "config/unsupported.h"
#include "envoy/config/cluster/v3/circuit_breaker.pb.h"

namespace legate::upstream {

absl::StatusOr<std::array<CircuitBreakerThresholds, 2>>
parseCircuitBreakers(const envoy::config::cluster::v3::CircuitBreakers& proto,
                     const std::string& path) {
  if (auto st = config::rejectUnsupportedFields(proto, {"per_host_thresholds"}, path); !st.ok()) {
    return st;
  }
  std::array<CircuitBreakerThresholds, 2> out;
  std::array<bool, 2> seen{false, false};
  for (int i = 0; i < proto.thresholds_size(); ++i) {
    const auto& t = proto.thresholds(i);
    const std::string tpath = path + ".thresholds[" + std::to_string(i) + "]";
    if (auto st = config::rejectUnsupportedFields(t, {"max_connection_pools"}, tpath); !st.ok()) {
      return st;
    }
    const size_t p = t.priority() == envoy::config::core::v3::HIGH ? 1 : 0;
    if (seen[p]) continue; // the first entry for a priority wins
    seen[p] = true;
    CircuitBreakerThresholds& c = out[p];
    if (t.has_max_connections()) c.max_connections = t.max_connections().value();
    if (t.has_max_pending_requests()) c.max_pending_requests = t.max_pending_requests().value();
    if (t.has_max_requests()) c.max_requests = t.max_requests().value();
    if (t.has_max_retries()) c.max_retries = t.max_retries().value();
    c.track_remaining = t.track_remaining();
    if (t.has_retry_budget()) {
      CircuitBreakerThresholds::RetryBudget b;
      const auto& rb = t.retry_budget();
      if (rb.has_budget_percent()) {
        b.percent = rb.budget_percent().value();
        if (!(b.percent >= 0.0 && b.percent <= 100.0)) {
          return absl::InvalidArgumentError(tpath + ".retry_budget.budget_percent: must be "
                                                    "between 0 and 100");
        }
      }
      if (rb.has_min_retry_concurrency()) {
        b.min_retry_concurrency = rb.min_retry_concurrency().value();
      }
      c.retry_budget = b;
    }
  }
  return out;
}

ResourceManager::Breaker::Breaker(stats::Gauge& open, stats::Gauge* remaining, uint64_t max)
    : open_(open) {
  publish(0, max, remaining);
}

void ResourceManager::Breaker::publish(uint64_t now, uint64_t max, stats::Gauge* remaining) {
  open_.set(now >= max ? 1 : 0);
  if (remaining != nullptr) {
    remaining->set(static_cast<int64_t>(now >= max ? 0 : max - now));
  }
}

bool ResourceManager::Breaker::tryAcquire(uint64_t max, stats::Gauge* remaining) {
  uint64_t cur = count_.load(std::memory_order_relaxed);
  while (cur < max) {
    if (count_.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed)) {
      publish(cur + 1, max, remaining);
      return true;
    }
  }
  publish(cur, max, remaining);
  return false;
}

void ResourceManager::Breaker::release(uint64_t max, stats::Gauge* remaining) {
  const uint64_t now = count_.fetch_sub(1, std::memory_order_relaxed) - 1;
  publish(now, max, remaining);
}

namespace {
std::string priorityPrefix(const stats::Scope& cluster_scope, ResourcePriority p) {
  return cluster_scope.prefix() +
         (p == ResourcePriority::High ? "circuit_breakers.high." : "circuit_breakers.default.");
}
} // namespace

ResourceManager::ResourceManager(const CircuitBreakerThresholds& t, stats::Scope cluster_scope,
                                 ResourcePriority priority)
    : ResourceManager(t, stats::Scope(cluster_scope.store(), priorityPrefix(cluster_scope, priority))) {}

std::unique_ptr<std::array<stats::Gauge*, 4>>
ResourceManager::remainingGauges(const CircuitBreakerThresholds& t, stats::Scope& scope) {
  if (!t.track_remaining) return nullptr;
  return std::make_unique<std::array<stats::Gauge*, 4>>(std::array<stats::Gauge*, 4>{
      &scope.gauge("remaining_cx"), &scope.gauge("remaining_pending"), &scope.gauge("remaining_rq"),
      &scope.gauge("remaining_retries")});
}

ResourceManager::ResourceManager(const CircuitBreakerThresholds& t, stats::Scope&& scope)
    : thresholds_(t), remaining_(remainingGauges(t, scope)),
      connections_(scope.gauge("cx_open"), remaining(kCx), t.max_connections),
      pending_(scope.gauge("rq_pending_open"), remaining(kPending), t.max_pending_requests),
      requests_(scope.gauge("rq_open"), remaining(kRq), t.max_requests),
      retries_(scope.gauge("rq_retry_open"), remaining(kRetries), maxRetries()) {}

uint64_t ResourceManager::maxRetries() const {
  if (!thresholds_.retry_budget) return thresholds_.max_retries;
  const auto& b = *thresholds_.retry_budget;
  const double active = static_cast<double>(requests_.count() + pending_.count());
  const auto budget = static_cast<uint64_t>(std::floor(active * b.percent / 100.0));
  return std::max<uint64_t>(budget, b.min_retry_concurrency);
}

} // namespace legate::upstream
