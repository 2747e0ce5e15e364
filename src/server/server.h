#pragma once

// The server: owns the configuration, the stats, the clusters, the listeners'
// sockets, the workers and the admin server, and runs the main thread's loop
// (admin, signals, drain, stats refresh).

#include <chrono>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "admin/admin.h"
#include "config/source_map.h"
#include "event/dispatcher.h"
#include "network/listener.h"
#include "server/instance.h"
#include "runtime/runtime.h"
#include "server/options.h"
#include "stats/sink.h"
#include "tracing/span.h"
#include "server/worker.h"
#include "upstream/cluster_manager.h"

namespace legate::server {

// Everything the bootstrap describes, built and checked but not yet bound:
// what --mode validate builds, and what serving starts from.
struct ConfigModel {
  std::unique_ptr<upstream::ClusterManager> cluster_manager;
  struct Listener {
    std::string name;
    network::Address address;
    // OUTBOUND listeners stay up on /drain_listeners?inboundonly.
    bool outbound = false;
    std::unique_ptr<network::FilterChainManager> chains;
    uint32_t buffer_limit;
    uint32_t max_accept;
    uint32_t backlog;
    bool reuse_port;
    network::ListenerConfig::AcceptOptions accept;
  };
  std::vector<Listener> listeners;
  uint64_t global_max_connections = UINT64_MAX;
  std::vector<std::unique_ptr<stats::Sink>> stats_sinks;
  std::vector<accesslog::AccessLogSharedPtr> admin_access_logs;
  std::shared_ptr<runtime::Loader> runtime;
  std::chrono::milliseconds stats_flush_interval{5000};
  // Every tracer the configuration built; their exporters start on the main
  // dispatcher before the workers do.
  std::vector<tracing::TracerSharedPtr> tracers;
};

absl::StatusOr<std::unique_ptr<ConfigModel>>
buildConfigModel(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store,
                 uint32_t workers);

class Server : public Instance {
public:
  // marks: where each field of the bootstrap came from (to locate errors). The
  // options fill in bootstrap's node; the server keeps the bootstrap's wire form,
  // so the caller may free it (or its arena) once the server is constructed.
  Server(Options options, envoy::config::bootstrap::v3::Bootstrap& bootstrap,
         config::SourceMap marks = {});
  ~Server() override;

  // Builds, binds and serves until shutdown; returns the process exit code.
  int run();

  // Instance
  stats::Store& stats() override { return store_; }
  envoy::config::bootstrap::v3::Bootstrap bootstrap() const override;
  const envoy::config::core::v3::Node& node() const override { return node_; }
  const Options& options() const override { return options_; }
  ServerState state() const override;
  std::chrono::seconds uptime() const override;
  std::vector<ListenerInfo> listeners() const override;
  std::vector<ClusterInfo> clusters() const override;
  void setHealthCheckFailed(bool failed) override { health_check_failed_ = failed; }
  bool healthCheckFailed() const override { return health_check_failed_; }
  void shutdown() override;
  void drainListeners(bool graceful, bool inbound_only) override;
  runtime::Loader& runtime() override { return *runtime_; }

private:
  absl::Status initialize();
  absl::Status initializeFrom(const envoy::config::bootstrap::v3::Bootstrap& bootstrap);
  void startWorkers(std::vector<std::vector<Worker::ListenerSocket>> per_worker);
  void startDrain();
  void onDrainTick();
  void refreshServerStats();
  uint64_t activeConnections() const;

  Options options_;
  // The bootstrap in wire form: initialize() builds from a copy on an arena,
  // /config_dump parses another (see initialize()).
  std::string bootstrap_wire_;
  envoy::config::core::v3::Node node_;
  config::SourceMap marks_;
  bool config_error_ = false;
  stats::Store store_;
  event::Dispatcher dispatcher_{"main"};
  std::unique_ptr<ConfigModel> model_;
  std::vector<network::ListenerConfigConstSharedPtr> listener_configs_;
  network::ConnectionLimits limits_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::vector<::event*> signal_events_;
  event::TimerPtr stats_timer_;
  std::shared_ptr<runtime::Loader> runtime_ = std::make_shared<runtime::Loader>();
  std::unique_ptr<stats::Flusher> flusher_; // stats sinks, flushed every stats_flush_interval
  event::TimerPtr flush_timer_;
  event::TimerPtr drain_timer_;
  std::chrono::steady_clock::time_point start_time_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drain_deadline_;
  bool draining_ = false;
  bool initializing_ = false;
  bool listeners_drained_ = false; // /drain_listeners ran
  event::TimerPtr drain_listeners_timer_;
  bool health_check_failed_ = false;
  bool shutting_down_ = false;
  uint32_t concurrency_ = 1;
};

} // namespace legate::server
