#pragma once

// What the rest of the process (admin endpoints, sinks) may ask of the server.
// Implemented by server::Server; every method is called on the main thread.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "runtime/runtime.h"
#include "stats/stats.h"

namespace legate::server {

struct Options;

// Envoy's admin.v3.ServerInfo.State names.
enum class ServerState { Live, Draining, PreInitializing, Initializing };

struct ListenerInfo {
  std::string name;
  std::string address;  // "127.0.0.1:10000", the address as bound (real port)
};

struct HostInfo {
  std::string address;  // "127.0.0.1:8080"
  uint32_t weight = 1;
  std::string health;   // Envoy's health_flags text: "healthy" or "/failed_active_hc/..."
  // Outlier detection's last interval, in percent; -1 where not computed.
  double success_rate = -1;
  double local_origin_success_rate = -1;
  struct Stat {
    const char* name;
    bool gauge;
    uint64_t value;
  };
  std::vector<Stat> stats; // Envoy's order (upstream::HostStats::forEach)
};

// A priority's circuit breaker limits, as the cluster's ResourceManager has them.
struct CircuitBreakerInfo {
  uint64_t max_connections = 0, max_pending_requests = 0, max_requests = 0, max_retries = 0;
};

struct ClusterInfo {
  std::string name;
  std::vector<HostInfo> hosts;
  bool outlier_detection = false;
  // Outlier detection's last interval (-1 where not computed): the mean
  // success rate and the ejection threshold, external and local origin.
  double success_rate_average = -1;
  double success_rate_ejection_threshold = -1;
  double local_origin_success_rate_average = -1;
  double local_origin_success_rate_ejection_threshold = -1;
  CircuitBreakerInfo default_priority, high_priority;
};

class Instance {
public:
  virtual ~Instance() = default;
  virtual stats::Store& stats() = 0;
  // The bootstrap as loaded (with --service-* applied), for /config_dump. A copy:
  // a running server keeps only its wire form (a large one's message is ~1 KB per
  // cluster of resident memory that nothing on the data path reads).
  virtual envoy::config::bootstrap::v3::Bootstrap bootstrap() const = 0;
  virtual const envoy::config::core::v3::Node& node() const = 0;
  virtual const Options& options() const = 0;
  virtual ServerState state() const = 0;
  virtual std::chrono::seconds uptime() const = 0;
  virtual std::vector<ListenerInfo> listeners() const = 0;
  virtual std::vector<ClusterInfo> clusters() const = 0;
  // /healthcheck/fail and /healthcheck/ok: failing makes state() Draining.
  virtual void setHealthCheckFailed(bool failed) = 0;
  virtual bool healthCheckFailed() const = 0;
  // /quitquitquit: begin an orderly shutdown (returns at once).
  virtual void shutdown() = 0;
  // /drain_listeners: stop accepting on every listener (inbound_only: all but those
  // with traffic_direction OUTBOUND); open connections carry on. graceful: first
  // drain (HTTP connections close after their current request) for --drain-time-s,
  // then stop accepting. The process keeps running; /ready answers DRAINING.
  virtual void drainListeners(bool graceful, bool inbound_only) = 0;
  // The layered runtime (/runtime, /runtime_modify).
  virtual runtime::Loader& runtime() = 0;
};

} // namespace legate::server
