#include "upstream/outlier_detection.h"

#include <algorithm>
#include <cmath>

#include "common/logger.h"
#include "config/unsupported.h"
#include "envoy/config/cluster/v3/outlier_detection.pb.h"
#include "google/protobuf/util/time_util.h"
#include "runtime/runtime.h"
#include "upstream/cluster.h"

namespace legate::upstream {
namespace {

spdlog::logger& odLog() {
  static spdlog::logger& l = log::get("outlier");
  return l;
}

std::chrono::milliseconds ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

const char* typeName(EjectionType t) {
  switch (t) {
  case EjectionType::Consecutive5xx:
    return "consecutive_5xx";
  case EjectionType::ConsecutiveGatewayFailure:
    return "consecutive_gateway_failure";
  case EjectionType::ConsecutiveLocalOriginFailure:
    return "consecutive_local_origin_failure";
  case EjectionType::SuccessRate:
    return "success_rate";
  case EjectionType::LocalOriginSuccessRate:
    return "local_origin_success_rate";
  case EjectionType::FailurePercentage:
    return "failure_percentage";
  case EjectionType::LocalOriginFailurePercentage:
    return "failure_percentage_local_origin";
  }
  return "unknown";
}

bool isGatewayError(uint64_t code) { return code == 502 || code == 503 || code == 504; }

} // namespace

// --- Config ------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<const OutlierDetectionConfig>>
OutlierDetectionConfig::create(const envoy::config::cluster::v3::OutlierDetection& proto,
                               const std::string& path) {
  if (auto st = config::rejectUnsupportedFields(proto, {"monitors"}, path); !st.ok()) {
    return st;
  }
  auto c = std::make_shared<OutlierDetectionConfig>();
  auto u32 = [](const google::protobuf::UInt32Value& v, bool has, uint32_t def) {
    return has ? v.value() : def;
  };
  auto pct = [&u32](const google::protobuf::UInt32Value& v, bool has, uint32_t def) {
    return std::min<uint32_t>(100, u32(v, has, def));
  };
#define LEGATE_OD_U32(field) c->field = u32(proto.field(), proto.has_##field(), c->field)
#define LEGATE_OD_PCT(field) c->field = pct(proto.field(), proto.has_##field(), c->field)
  LEGATE_OD_U32(consecutive_5xx);
  LEGATE_OD_U32(consecutive_gateway_failure);
  LEGATE_OD_U32(consecutive_local_origin_failure);
  LEGATE_OD_U32(success_rate_minimum_hosts);
  LEGATE_OD_U32(success_rate_request_volume);
  LEGATE_OD_U32(success_rate_stdev_factor);
  LEGATE_OD_U32(failure_percentage_minimum_hosts);
  LEGATE_OD_U32(failure_percentage_request_volume);
  LEGATE_OD_PCT(max_ejection_percent);
  LEGATE_OD_PCT(failure_percentage_threshold);
  LEGATE_OD_PCT(enforcing_consecutive_5xx);
  LEGATE_OD_PCT(enforcing_consecutive_gateway_failure);
  LEGATE_OD_PCT(enforcing_consecutive_local_origin_failure);
  LEGATE_OD_PCT(enforcing_success_rate);
  LEGATE_OD_PCT(enforcing_local_origin_success_rate);
  LEGATE_OD_PCT(enforcing_failure_percentage);
  LEGATE_OD_PCT(enforcing_failure_percentage_local_origin);
#undef LEGATE_OD_U32
#undef LEGATE_OD_PCT
  c->split_external_local_origin_errors = proto.split_external_local_origin_errors();
  if (proto.has_successful_active_health_check_uneject_host()) {
    c->successful_active_health_check_uneject_host =
        proto.successful_active_health_check_uneject_host().value();
  }
  if (proto.has_always_eject_one_host()) {
    c->always_eject_one_host = proto.always_eject_one_host().value();
  }
  if (proto.has_interval()) c->interval = ms(proto.interval());
  if (proto.has_base_ejection_time()) c->base_ejection_time = ms(proto.base_ejection_time());
  if (proto.has_max_ejection_time_jitter()) {
    c->max_ejection_time_jitter = ms(proto.max_ejection_time_jitter());
  }
  if (c->interval.count() <= 0) {
    return absl::InvalidArgumentError(path + ".interval: must be at least 1ms");
  }
  if (c->base_ejection_time.count() <= 0) {
    return absl::InvalidArgumentError(path + ".base_ejection_time: must be at least 1ms");
  }
  if (proto.has_max_ejection_time()) {
    c->max_ejection_time = ms(proto.max_ejection_time());
    if (c->max_ejection_time < c->base_ejection_time) {
      return absl::InvalidArgumentError(path + ".max_ejection_time: must not be below "
                                               "base_ejection_time");
    }
  } else {
    // Envoy: the default (300 s) or base_ejection_time, whichever is larger.
    c->max_ejection_time = std::max(c->max_ejection_time, c->base_ejection_time);
  }
  return std::shared_ptr<const OutlierDetectionConfig>(std::move(c));
}

uint32_t OutlierDetectionConfig::enforcing(EjectionType t) const {
  switch (t) {
  case EjectionType::Consecutive5xx:
    return enforcing_consecutive_5xx;
  case EjectionType::ConsecutiveGatewayFailure:
    return enforcing_consecutive_gateway_failure;
  case EjectionType::ConsecutiveLocalOriginFailure:
    return enforcing_consecutive_local_origin_failure;
  case EjectionType::SuccessRate:
    return enforcing_success_rate;
  case EjectionType::LocalOriginSuccessRate:
    return enforcing_local_origin_success_rate;
  case EjectionType::FailurePercentage:
    return enforcing_failure_percentage;
  case EjectionType::LocalOriginFailurePercentage:
    return enforcing_failure_percentage_local_origin;
  }
  return 0;
}

OutlierDetectionConfig OutlierDetectionConfig::withRuntime() const {
  OutlierDetectionConfig c = *this;
  const auto snap = runtime::snapshot();
  auto u32 = [&snap](std::string_view key, uint32_t def) {
    return static_cast<uint32_t>(std::min<uint64_t>(snap->getInteger(key, def), UINT32_MAX));
  };
  auto pct = [&u32](std::string_view key, uint32_t def) {
    return std::min<uint32_t>(100, u32(key, def));
  };
  auto msKey = [&snap](std::string_view key, std::chrono::milliseconds def) {
    const uint64_t v = snap->getInteger(key, static_cast<uint64_t>(def.count()));
    return std::chrono::milliseconds(std::min<uint64_t>(v, INT32_MAX));
  };
  c.consecutive_5xx = u32("outlier_detection.consecutive_5xx", c.consecutive_5xx);
  c.consecutive_gateway_failure =
      u32("outlier_detection.consecutive_gateway_failure", c.consecutive_gateway_failure);
  c.consecutive_local_origin_failure = u32("outlier_detection.consecutive_local_origin_failure",
                                           c.consecutive_local_origin_failure);
  c.interval = std::max(std::chrono::milliseconds(1),
                        msKey("outlier_detection.interval_ms", c.interval));
  c.base_ejection_time = std::max(std::chrono::milliseconds(1),
                                  msKey("outlier_detection.base_ejection_time_ms",
                                        c.base_ejection_time));
  c.max_ejection_time =
      std::max(c.base_ejection_time,
               msKey("outlier_detection.max_ejection_time_ms", c.max_ejection_time));
  c.max_ejection_time_jitter =
      msKey("outlier_detection.max_ejection_time_jitter_ms", c.max_ejection_time_jitter);
  c.max_ejection_percent = pct("outlier_detection.max_ejection_percent", c.max_ejection_percent);
  c.success_rate_minimum_hosts =
      u32("outlier_detection.success_rate_minimum_hosts", c.success_rate_minimum_hosts);
  c.success_rate_request_volume =
      u32("outlier_detection.success_rate_request_volume", c.success_rate_request_volume);
  c.success_rate_stdev_factor =
      u32("outlier_detection.success_rate_stdev_factor", c.success_rate_stdev_factor);
  c.failure_percentage_threshold =
      pct("outlier_detection.failure_percentage_threshold", c.failure_percentage_threshold);
  c.failure_percentage_minimum_hosts = u32("outlier_detection.failure_percentage_minimum_hosts",
                                           c.failure_percentage_minimum_hosts);
  c.failure_percentage_request_volume = u32("outlier_detection.failure_percentage_request_volume",
                                            c.failure_percentage_request_volume);
  c.enforcing_consecutive_5xx =
      pct("outlier_detection.enforcing_consecutive_5xx", c.enforcing_consecutive_5xx);
  c.enforcing_consecutive_gateway_failure =
      pct("outlier_detection.enforcing_consecutive_gateway_failure",
          c.enforcing_consecutive_gateway_failure);
  c.enforcing_consecutive_local_origin_failure =
      pct("outlier_detection.enforcing_consecutive_local_origin_failure",
          c.enforcing_consecutive_local_origin_failure);
  c.enforcing_success_rate =
      pct("outlier_detection.enforcing_success_rate", c.enforcing_success_rate);
  c.enforcing_local_origin_success_rate =
      pct("outlier_detection.enforcing_local_origin_success_rate",
          c.enforcing_local_origin_success_rate);
  c.enforcing_failure_percentage =
      pct("outlier_detection.enforcing_failure_percentage", c.enforcing_failure_percentage);
  c.enforcing_failure_percentage_local_origin =
      pct("outlier_detection.enforcing_failure_percentage_local_origin",
          c.enforcing_failure_percentage_local_origin);
  return c;
}

// --- Stats -------------------------------------------------------------------

OutlierDetectionStats::OutlierDetectionStats(stats::Scope s)
    : ejections_enforced_total(s.counter("ejections_enforced_total")),
      ejections_active(s.gauge("ejections_active")),
      ejections_overflow(s.counter("ejections_overflow")),
      ejections_enforced_consecutive_5xx(s.counter("ejections_enforced_consecutive_5xx")),
      ejections_detected_consecutive_5xx(s.counter("ejections_detected_consecutive_5xx")),
      ejections_enforced_consecutive_gateway_failure(
          s.counter("ejections_enforced_consecutive_gateway_failure")),
      ejections_detected_consecutive_gateway_failure(
          s.counter("ejections_detected_consecutive_gateway_failure")),
      ejections_enforced_consecutive_local_origin_failure(
          s.counter("ejections_enforced_consecutive_local_origin_failure")),
      ejections_detected_consecutive_local_origin_failure(
          s.counter("ejections_detected_consecutive_local_origin_failure")),
      ejections_enforced_success_rate(s.counter("ejections_enforced_success_rate")),
      ejections_detected_success_rate(s.counter("ejections_detected_success_rate")),
      ejections_enforced_local_origin_success_rate(
          s.counter("ejections_enforced_local_origin_success_rate")),
      ejections_detected_local_origin_success_rate(
          s.counter("ejections_detected_local_origin_success_rate")),
      ejections_enforced_failure_percentage(s.counter("ejections_enforced_failure_percentage")),
      ejections_detected_failure_percentage(s.counter("ejections_detected_failure_percentage")),
      ejections_enforced_failure_percentage_local_origin(
          s.counter("ejections_enforced_failure_percentage_local_origin")),
      ejections_detected_failure_percentage_local_origin(
          s.counter("ejections_detected_failure_percentage_local_origin")),
      ejections_total(s.counter("ejections_total")),
      ejections_consecutive_5xx(s.counter("ejections_consecutive_5xx")),
      ejections_success_rate(s.counter("ejections_success_rate")) {}

stats::Counter& OutlierDetectionStats::detected(EjectionType t) {
  switch (t) {
  case EjectionType::Consecutive5xx:
    return ejections_detected_consecutive_5xx;
  case EjectionType::ConsecutiveGatewayFailure:
    return ejections_detected_consecutive_gateway_failure;
  case EjectionType::ConsecutiveLocalOriginFailure:
    return ejections_detected_consecutive_local_origin_failure;
  case EjectionType::SuccessRate:
    return ejections_detected_success_rate;
  case EjectionType::LocalOriginSuccessRate:
    return ejections_detected_local_origin_success_rate;
  case EjectionType::FailurePercentage:
    return ejections_detected_failure_percentage;
  case EjectionType::LocalOriginFailurePercentage:
    break;
  }
  return ejections_detected_failure_percentage_local_origin;
}

stats::Counter& OutlierDetectionStats::enforced(EjectionType t) {
  switch (t) {
  case EjectionType::Consecutive5xx:
    return ejections_enforced_consecutive_5xx;
  case EjectionType::ConsecutiveGatewayFailure:
    return ejections_enforced_consecutive_gateway_failure;
  case EjectionType::ConsecutiveLocalOriginFailure:
    return ejections_enforced_consecutive_local_origin_failure;
  case EjectionType::SuccessRate:
    return ejections_enforced_success_rate;
  case EjectionType::LocalOriginSuccessRate:
    return ejections_enforced_local_origin_success_rate;
  case EjectionType::FailurePercentage:
    return ejections_enforced_failure_percentage;
  case EjectionType::LocalOriginFailurePercentage:
    break;
  }
  return ejections_enforced_failure_percentage_local_origin;
}

// --- Arithmetic --------------------------------------------------------------

SuccessRateThreshold successRateThreshold(const std::vector<double>& rates, double stdev_factor) {
  SuccessRateThreshold out;
  if (rates.empty()) return out;
  double sum = 0;
  for (double r : rates) sum += r;
  const double mean = sum / static_cast<double>(rates.size());
  double variance = 0;
  for (double r : rates) variance += (r - mean) * (r - mean);
  variance /= static_cast<double>(rates.size());
  out.mean = mean;
  out.ejection_threshold = mean - std::sqrt(variance) * stdev_factor;
  return out;
}

bool ejectionAllowed(size_t active, size_t total, uint32_t max_percent, bool always_eject_one) {
  if (total == 0) return false;
  if (always_eject_one && active == 0) return true;
  // Integers, so 100 * 1 / 10 == 10 percent is within a 10 percent limit.
  return 100 * (active + 1) <= static_cast<size_t>(max_percent) * total;
}

uint32_t nextEjectBackoff(uint32_t backoff, std::chrono::milliseconds base,
                          std::chrono::milliseconds max) {
  return base * backoff < max ? backoff + 1 : backoff;
}

std::chrono::milliseconds ejectionTime(uint32_t backoff, std::chrono::milliseconds base,
                                       std::chrono::milliseconds max) {
  return std::min(base * std::max<uint32_t>(backoff, 1), max);
}

// --- Detector ----------------------------------------------------------------

OutlierDetector::OutlierDetector(Cluster& cluster,
                                 std::shared_ptr<const OutlierDetectionConfig> config,
                                 stats::Store& store)
    : cluster_(cluster), config_(std::move(config)),
      stats_(stats::Scope(store, "cluster." + cluster.name() + ".outlier_detection.")),
      now_([] { return std::chrono::steady_clock::now(); }) {
  refreshEffective();
}

void OutlierDetector::refreshEffective() {
  effective_ = config_->withRuntime();
  consecutive_5xx_.store(effective_.consecutive_5xx, std::memory_order_relaxed);
  consecutive_gateway_failure_.store(effective_.consecutive_gateway_failure,
                                     std::memory_order_relaxed);
  consecutive_local_origin_failure_.store(effective_.consecutive_local_origin_failure,
                                          std::memory_order_relaxed);
}

OutlierDetector::~OutlierDetector() = default;

void OutlierDetector::putHttpResponseCode(const HostConstSharedPtr& host, uint64_t code) {
  // (Split or not, a response is external; its connection's success was
  // reported when the pool handed it over.)
  reportExternal(host, code);
}

void OutlierDetector::putResult(const HostConstSharedPtr& host, OutlierResult result,
                                uint64_t code) {
  if (config_->split_external_local_origin_errors) {
    switch (result) {
    case OutlierResult::LocalOriginConnectFailed:
    case OutlierResult::LocalOriginTimeout:
      localOriginFailure(host);
      return;
    case OutlierResult::LocalOriginConnectSuccess:
    case OutlierResult::LocalOriginConnectSuccessFinal:
      localOriginSuccess(host);
      return;
    }
    return;
  }
  // Not split: local-origin results stand in for the response codes they
  // would have produced; a bare connect success says nothing yet.
  switch (result) {
  case OutlierResult::LocalOriginConnectFailed:
    reportExternal(host, 503);
    return;
  case OutlierResult::LocalOriginTimeout:
    reportExternal(host, code != 0 ? code : 504);
    return;
  case OutlierResult::LocalOriginConnectSuccessFinal:
    reportExternal(host, 200);
    return;
  case OutlierResult::LocalOriginConnectSuccess:
    return;
  }
}

void OutlierDetector::reportExternal(const HostConstSharedPtr& host, uint64_t code) {
  HostOutlierState& s = host->outlier();
  if (code < 500) {
    s.record(HostOutlierState::kExternal, true);
    s.consecutive_5xx.store(0, std::memory_order_relaxed);
    s.consecutive_gateway_failure.store(0, std::memory_order_relaxed);
    return;
  }
  s.record(HostOutlierState::kExternal, false);
  if (isGatewayError(code)) {
    if (s.consecutive_gateway_failure.fetch_add(1, std::memory_order_relaxed) + 1 ==
        consecutive_gateway_failure_.load(std::memory_order_relaxed)) {
      notifyMain(host, EjectionType::ConsecutiveGatewayFailure);
    }
  } else {
    s.consecutive_gateway_failure.store(0, std::memory_order_relaxed);
  }
  if (s.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1 ==
      consecutive_5xx_.load(std::memory_order_relaxed)) {
    notifyMain(host, EjectionType::Consecutive5xx);
  }
}

void OutlierDetector::localOriginFailure(const HostConstSharedPtr& host) {
  HostOutlierState& s = host->outlier();
  s.record(HostOutlierState::kLocal, false);
  if (s.consecutive_local_origin_failure.fetch_add(1, std::memory_order_relaxed) + 1 ==
      consecutive_local_origin_failure_.load(std::memory_order_relaxed)) {
    notifyMain(host, EjectionType::ConsecutiveLocalOriginFailure);
  }
}

void OutlierDetector::localOriginSuccess(const HostConstSharedPtr& host) {
  HostOutlierState& s = host->outlier();
  s.record(HostOutlierState::kLocal, true);
  s.consecutive_local_origin_failure.store(0, std::memory_order_relaxed);
}

void OutlierDetector::notifyMain(const HostConstSharedPtr& host, EjectionType type) {
  // Exactly one report makes a counter reach its threshold, so this runs once
  // per run of failures; the main thread resets the counter when it decides.
  if (main_ == nullptr) return;
  main_->post([this, host, type] { onConsecutiveError(host, type); });
}

void OutlierDetector::start(event::Dispatcher& main) {
  main_ = &main;
  refreshEffective();
  interval_timer_ = main.createTimer([this] {
    runInterval();
    interval_timer_->enableTimer(effective_.interval);
  });
  interval_timer_->enableTimer(effective_.interval);
}

bool OutlierDetector::isMember(const Host& host) const {
  for (const auto& h : cluster_.hosts()) {
    if (h.get() == &host) return true;
  }
  return false;
}

size_t OutlierDetector::activeEjections() const {
  size_t n = 0;
  for (const auto& h : cluster_.hosts()) {
    if (h->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) ++n;
  }
  return n;
}

void OutlierDetector::publishActive() {
  stats_.ejections_active.set(static_cast<int64_t>(activeEjections()));
  if (changed_) {
    changed_ = false;
    cluster_.refreshHealth();
  }
}

void OutlierDetector::onConsecutiveError(const HostConstSharedPtr& host, EjectionType type) {
  // The host may have left the cluster, or been ejected, since the worker posted.
  if (!isMember(*host) || host->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) return;
  HostOutlierState& s = host->outlier();
  // Start counting again, so a detection that is not enforced (enforcing
  // below 100) can fire again after another run of failures.
  switch (type) {
  case EjectionType::Consecutive5xx:
    stats_.ejections_consecutive_5xx.inc();
    s.consecutive_5xx.store(0, std::memory_order_relaxed);
    break;
  case EjectionType::ConsecutiveGatewayFailure:
    s.consecutive_gateway_failure.store(0, std::memory_order_relaxed);
    break;
  case EjectionType::ConsecutiveLocalOriginFailure:
    s.consecutive_local_origin_failure.store(0, std::memory_order_relaxed);
    break;
  default:
    break;
  }
  stats_.detected(type).inc();
  refreshEffective();
  ejectHost(host, type);
  publishActive();
}

bool OutlierDetector::ejectHost(const HostConstSharedPtr& host, EjectionType type) {
  const OutlierDetectionConfig& c = effective_;
  if (!ejectionAllowed(activeEjections(), cluster_.hosts().size(), c.max_ejection_percent,
                       c.always_eject_one_host)) {
    stats_.ejections_overflow.inc();
    return false;
  }
  if (type == EjectionType::Consecutive5xx || type == EjectionType::SuccessRate) {
    stats_.ejections_total.inc();
  }
  const uint32_t chance = c.enforcing(type);
  if (chance == 0 || (chance < 100 && rng_() % 100 >= chance)) return false;
  stats_.ejections_enforced_total.inc();
  stats_.enforced(type).inc();
  HostOutlierState& s = host->outlier();
  s.eject_backoff = nextEjectBackoff(s.eject_backoff, c.base_ejection_time, c.max_ejection_time);
  const auto max_jitter = static_cast<uint64_t>(c.max_ejection_time_jitter.count());
  s.jitter = std::chrono::milliseconds(max_jitter > 0 ? rng_() % (max_jitter + 1) : 0);
  s.last_ejection = now_();
  ++s.num_ejections;
  host->healthFlagSet(Host::HealthFlag::FAILED_OUTLIER_CHECK);
  changed_ = true;
  odLog().info("outlier detection: ejecting {} from cluster '{}' ({}, ejection {}, for {} ms)",
               host->address().asString(), cluster_.name(), typeName(type), s.num_ejections,
               (ejectionTime(s.eject_backoff, c.base_ejection_time, c.max_ejection_time) +
                s.jitter)
                   .count());
  return true;
}

void OutlierDetector::unejectHost(const Host& host) {
  HostOutlierState& s = host.outlier();
  host.healthFlagClear(Host::HealthFlag::FAILED_OUTLIER_CHECK);
  // A counter left near its threshold would eject again after a few errors.
  s.consecutive_5xx.store(0, std::memory_order_relaxed);
  s.consecutive_gateway_failure.store(0, std::memory_order_relaxed);
  s.consecutive_local_origin_failure.store(0, std::memory_order_relaxed);
  changed_ = true;
  odLog().info("outlier detection: {} returns to cluster '{}'", host.address().asString(),
               cluster_.name());
}

void OutlierDetector::onActiveHealthCheckSuccess(const HostConstSharedPtr& host) {
  if (!config_->successful_active_health_check_uneject_host ||
      !host->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) {
    return;
  }
  unejectHost(*host);
  publishActive();
}

void OutlierDetector::runInterval() {
  refreshEffective();
  const OutlierDetectionConfig& c = effective_;
  const auto now = now_();
  const auto& hosts = cluster_.hosts();
  // Per host: {external total, external successes, local total, local successes}.
  std::vector<std::array<uint64_t, 4>> counts(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    const Host& h = *hosts[i];
    HostOutlierState& s = h.outlier();
    if (h.healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) {
      if (now - s.last_ejection >=
          ejectionTime(s.eject_backoff, c.base_ejection_time, c.max_ejection_time) + s.jitter) {
        unejectHost(h);
      }
    } else if (s.eject_backoff > 0) {
      // Each interval spent healthy shortens the next ejection.
      --s.eject_backoff;
    }
    for (int o = 0; o < 2; ++o) {
      const uint64_t packed = s.interval_counts[o].exchange(0, std::memory_order_relaxed);
      counts[i][o * 2] = packed >> 32;
      counts[i][o * 2 + 1] = packed & 0xffffffffu;
      s.success_rate[o] = -1;
    }
  }
  processSuccessRates(HostOutlierState::kExternal, counts);
  if (c.split_external_local_origin_errors) {
    processSuccessRates(HostOutlierState::kLocal, counts);
  }
  publishActive();
}

void OutlierDetector::processSuccessRates(HostOutlierState::Origin origin,
                                          const std::vector<std::array<uint64_t, 4>>& counts) {
  const OutlierDetectionConfig& c = effective_;
  sr_numbers_[origin] = SuccessRateThreshold{};
  const auto& hosts = cluster_.hosts();
  const uint64_t sr_volume = std::max<uint64_t>(c.success_rate_request_volume, 1);
  const uint64_t fp_volume = std::max<uint64_t>(c.failure_percentage_request_volume, 1);
  std::vector<size_t> sr_hosts, fp_hosts;
  std::vector<double> rates(hosts.size(), -1), sr_rates;
  for (size_t i = 0; i < hosts.size(); ++i) {
    // Hosts ejected now (including those ejected by this pass) are not compared.
    if (hosts[i]->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) continue;
    const uint64_t total = counts[i][origin * 2];
    if (total == 0) continue;
    const uint64_t successes = counts[i][origin * 2 + 1];
    rates[i] = 100.0 * static_cast<double>(successes) / static_cast<double>(total);
    if (total >= sr_volume) {
      sr_hosts.push_back(i);
      sr_rates.push_back(rates[i]);
      hosts[i]->outlier().success_rate[origin] = rates[i];
    }
    if (total >= fp_volume) fp_hosts.push_back(i);
  }
  const bool local = origin == HostOutlierState::kLocal;
  if (!sr_hosts.empty() && sr_hosts.size() >= c.success_rate_minimum_hosts) {
    sr_numbers_[origin] = successRateThreshold(sr_rates, c.success_rate_stdev_factor / 1000.0);
    for (size_t i : sr_hosts) {
      if (rates[i] < sr_numbers_[origin].ejection_threshold) {
        const auto type = local ? EjectionType::LocalOriginSuccessRate : EjectionType::SuccessRate;
        if (!local) stats_.ejections_success_rate.inc();
        stats_.detected(type).inc();
        ejectHost(hosts[i], type);
      }
    }
  }
  if (!fp_hosts.empty() && fp_hosts.size() >= c.failure_percentage_minimum_hosts) {
    for (size_t i : fp_hosts) {
      if (hosts[i]->healthFlagGet(Host::HealthFlag::FAILED_OUTLIER_CHECK)) continue;
      if (100.0 - rates[i] >= static_cast<double>(c.failure_percentage_threshold)) {
        const auto type =
            local ? EjectionType::LocalOriginFailurePercentage : EjectionType::FailurePercentage;
        stats_.detected(type).inc();
        ejectHost(hosts[i], type);
      }
    }
  }
}

} // namespace legate::upstream
