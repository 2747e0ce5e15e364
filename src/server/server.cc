#include "server/server.h"

#include <event2/event.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "common/logger.h"
#include "common/memory_stats.h"
#include "config/bootstrap_loader.h"
#include "config/extension_registry.h"
#include "config/unsupported.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb.h"
#include "extensions/factory.h"
#include "extensions/tracers/tracer_factory.h"
#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "network/drain.h"
#include "server/runtime_config.h"
#include "server/stats_config.h"
#include "google/protobuf/struct.pb.h"

namespace legate::server {
namespace {

spdlog::logger& mainLog() {
  static spdlog::logger& l = log::get("main");
  return l;
}

// A runtime number as a connection limit. Converting a double at or past 2^64
// (or negative, or NaN) to uint64_t is undefined behaviour, so clamp first.
uint64_t connectionLimit(double n) {
  if (!(n > 0)) return 0;
  if (n >= 18446744073709551615.0) return UINT64_MAX;
  return static_cast<uint64_t>(n);
}

// A number from the static runtime layers ("a.b.c" flat keys or nested maps).
std::optional<double> staticRuntimeNumber(const envoy::config::bootstrap::v3::Bootstrap& b,
                                          const std::string& key) {
  std::optional<double> found;
  for (const auto& layer : b.layered_runtime().layers()) {
    if (!layer.has_static_layer()) {
      continue;
    }
    const auto& fields = layer.static_layer().fields();
    auto it = fields.find(key);
    if (it != fields.end() && it->second.has_number_value()) {
      found = it->second.number_value();
      continue;
    }
    // Nested form: {overload: {global_downstream_max_connections: N}}.
    const google::protobuf::Struct* s = &layer.static_layer();
    size_t start = 0;
    while (s != nullptr) {
      const size_t dot = key.find('.', start);
      const std::string part = key.substr(start, dot == std::string::npos ? dot : dot - start);
      auto f = s->fields().find(part);
      if (f == s->fields().end()) {
        break;
      }
      if (dot == std::string::npos) {
        if (f->second.has_number_value()) found = f->second.number_value();
        break;
      }
      s = f->second.has_struct_value() ? &f->second.struct_value() : nullptr;
      start = dot + 1;
    }
  }
  return found;
}

// admin.access_log, and the deprecated admin.access_log_path as a file log with
// Envoy's default format.
absl::StatusOr<std::vector<accesslog::AccessLogSharedPtr>>
adminAccessLogs(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store) {
  const auto& admin = bootstrap.admin();
  if (auto st = config::rejectUnsupportedFields(admin, {"profile_path", "socket_options"}, "admin");
      !st.ok()) {
    return st;
  }
  auto logs = accesslog::createAll(admin.access_log(), "admin.access_log", store);
  if (!logs.ok()) return logs.status();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const std::string& path = admin.access_log_path();
#pragma GCC diagnostic pop
  if (!path.empty()) {
    envoy::config::accesslog::v3::AccessLog proto;
    proto.set_name("envoy.access_loggers.file");
    envoy::extensions::access_loggers::file::v3::FileAccessLog file;
    file.set_path(path);
    proto.mutable_typed_config()->PackFrom(file);
    auto log = accesslog::create(proto, "admin.access_log_path", store);
    if (!log.ok()) return log.status();
    logs->push_back(std::move(*log));
  }
  return logs;
}

// listener_filters: envoy.filters.listener.original_dst is the one legate has.
// It reads no bytes, so listener_filters_timeout and
// continue_on_listener_filters_timeout have nothing to apply to.
absl::Status parseListenerFilters(const envoy::config::listener::v3::Listener& proto,
                                  const std::string& where,
                                  network::ListenerConfig::AcceptOptions& accept) {
  // Naming the type also links its descriptor in, so the loader can read it.
  static const std::string kOriginalDst =
      envoy::extensions::filters::listener::original_dst::v3::OriginalDst::descriptor()->full_name();
  for (int i = 0; i < proto.listener_filters_size(); ++i) {
    const auto& f = proto.listener_filters(i);
    const std::string path = where + ".listener_filters[" + std::to_string(i) + "]";
    if (auto st = config::rejectUnsupportedFields(f, {"config_discovery", "filter_disabled"}, path);
        !st.ok()) {
      return st;
    }
    if (!f.has_typed_config()) {
      return absl::InvalidArgumentError(path + ".typed_config: required; legate implements the "
                                               "listener filter envoy.filters.listener.original_dst");
    }
    const std::string type(config::typeNameFromUrl(f.typed_config().type_url()));
    if (type != kOriginalDst) {
      return absl::InvalidArgumentError(path + ".typed_config: '" + type +
                                        "' is not a listener filter legate implements (" +
                                        kOriginalDst + " is)");
    }
    accept.original_dst = true;
  }
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<std::unique_ptr<ConfigModel>>
buildConfigModel(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, stats::Store& store,
                 uint32_t workers) {
  auto model = std::make_unique<ConfigModel>();
  if (auto st = config::rejectUnsupportedFields(
          bootstrap,
          {"dynamic_resources", "cluster_manager", "hds_config", "flags_path",
           "stats_flush_on_admin", "watchdog", "watchdogs", "overload_manager",
           "default_socket_interface", "bootstrap_extensions", "fatal_actions", "dns_resolution_config",
           "typed_dns_resolver_config", "inline_headers", "default_regex_engine",
           "xds_delegate_extension", "xds_config_tracker_extension", "listener_manager",
           "application_log_config", "certificate_provider_instances", "node_context_params"},
          "");
      !st.ok()) {
    return st;
  }
  if (auto st = config::rejectUnsupportedFields(bootstrap.static_resources(), {"secrets"},
                                                "static_resources");
      !st.ok()) {
    return st;
  }
  // Before any stat exists, so the matcher, tags and buckets apply to all of them.
  if (auto st = configureStats(bootstrap, store); !st.ok()) {
    return st;
  }
  auto layers = runtimeLayers(bootstrap);
  if (!layers.ok()) {
    return layers.status();
  }
  model->runtime = std::make_shared<runtime::Loader>(std::move(*layers));
  if (auto logs = adminAccessLogs(bootstrap, store); !logs.ok()) {
    return logs.status();
  } else {
    model->admin_access_logs = std::move(*logs);
  }
  auto cm = upstream::ClusterManager::create(bootstrap, store, workers);
  if (!cm.ok()) {
    return cm.status();
  }
  model->cluster_manager = std::move(*cm);
  auto sinks = createStatsSinks(bootstrap, store, *model->cluster_manager);
  if (!sinks.ok()) {
    return sinks.status();
  }
  model->stats_sinks = std::move(*sinks);
  if (bootstrap.has_stats_flush_interval()) {
    const auto& d = bootstrap.stats_flush_interval();
    model->stats_flush_interval =
        std::chrono::milliseconds(d.seconds() * 1000 + d.nanos() / 1000000);
  }
  if (auto n = staticRuntimeNumber(bootstrap, "overload.global_downstream_max_connections")) {
    model->global_max_connections = connectionLimit(*n);
  }

  extensions::FactoryContext ctx{store,
                                 *model->cluster_manager,
                                 bootstrap.node().id(),
                                 bootstrap.node().cluster(),
                                 bootstrap.node().locality().zone(),
                                 nullptr,
                                 &model->tracers,
                                 false,
                                 ""};
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (bootstrap.has_tracing() && bootstrap.tracing().has_http()) {
    // The bootstrap's tracer: for connection managers whose tracing names no provider.
    extensions::tracers::TracerContext tctx{store, *model->cluster_manager, ctx.node_id,
                                            ctx.node_cluster, ctx.zone, &model->tracers};
    auto tracer = extensions::tracers::createTracer(bootstrap.tracing().http(), "tracing.http", tctx);
    if (!tracer.ok()) return tracer.status();
    ctx.bootstrap_tracer = std::move(*tracer);
  }
#pragma GCC diagnostic pop
  std::set<std::string> names;
  const auto& listeners = bootstrap.static_resources().listeners();
  for (int i = 0; i < listeners.size(); ++i) {
    const auto& proto = listeners[i];
    const std::string where = "static_resources.listeners[" + std::to_string(i) + "]";
    if (auto st = config::rejectUnsupportedFields(
            proto,
            {"transparent", "freebind", "socket_options",
             "udp_listener_config", "api_listener", "connection_balance_config",
             "additional_addresses", "internal_listener", "access_log", "tcp_fast_open_queue_length",
             "enable_mptcp", "max_connections_to_accept_per_socket_event_unused"},
            where);
        !st.ok()) {
      return st;
    }
    if (!proto.address().has_socket_address()) {
      return absl::InvalidArgumentError(where + ".address: a socket_address is required");
    }
    auto addr = network::Address::fromProto(proto.address().socket_address());
    if (!addr.ok()) {
      return absl::InvalidArgumentError(where + ".address.socket_address: " +
                                        std::string(addr.status().message()));
    }
    ConfigModel::Listener l;
    l.name = proto.name().empty() ? addr->asString() : proto.name();
    ctx.outbound = proto.traffic_direction() == envoy::config::core::v3::OUTBOUND;
    if (!names.insert(l.name).second) {
      return absl::InvalidArgumentError(where + ".name: duplicate listener name '" + l.name + "'");
    }
    // SO_REUSEPORT would let two listeners share an address and split its
    // connections between them; refuse that, as Envoy does.
    if (addr->port() != 0) {
      for (const auto& other : model->listeners) {
        if (other.address == *addr) {
          return absl::InvalidArgumentError(where + ".address: listener '" + l.name +
                                            "' has the same address " + addr->asString() +
                                            " as listener '" + other.name + "'");
        }
      }
    }
    l.address = *addr;
    l.outbound = proto.traffic_direction() == envoy::config::core::v3::OUTBOUND;
    l.buffer_limit = proto.has_per_connection_buffer_limit_bytes()
                         ? proto.per_connection_buffer_limit_bytes().value()
                         : 1024 * 1024;
    l.max_accept = proto.has_max_connections_to_accept_per_socket_event()
                       ? proto.max_connections_to_accept_per_socket_event().value()
                       : 64;
    l.backlog = proto.has_tcp_backlog_size() ? proto.tcp_backlog_size().value() : 128;
    l.reuse_port = !proto.has_enable_reuse_port() || proto.enable_reuse_port().value();
    if (auto st = parseListenerFilters(proto, where, l.accept); !st.ok()) {
      return st;
    }
    l.accept.use_original_dst = proto.has_use_original_dst() && proto.use_original_dst().value();
    l.accept.bind_to_port = !proto.has_bind_to_port() || proto.bind_to_port().value();
    auto chains = network::FilterChainManager::create(
        proto, where,
        [&ctx](const envoy::config::listener::v3::Filter& f, const std::string& path,
               const std::string& chain_name) {
          ctx.filter_chain_name = chain_name;
          return extensions::createNetworkFilter(f, path, ctx);
        });
    if (!chains.ok()) {
      return chains.status();
    }
    l.chains = std::move(*chains);
    model->listeners.push_back(std::move(l));
  }
  return model;
}

Server::Server(Options options, envoy::config::bootstrap::v3::Bootstrap& bootstrap,
               config::SourceMap marks)
    : options_(std::move(options)), marks_(std::move(marks)) {
  // --service-* fill in what the bootstrap's node leaves empty, as in Envoy.
  auto* node = bootstrap.mutable_node();
  if (node->cluster().empty() && !options_.service_cluster.empty()) {
    node->set_cluster(options_.service_cluster);
  }
  if (node->id().empty() && !options_.service_node.empty()) {
    node->set_id(options_.service_node);
  }
  if (!node->has_locality() && !options_.service_zone.empty()) {
    node->mutable_locality()->set_zone(options_.service_zone);
  }
  node_ = *node;
  if (!bootstrap.SerializeToString(&bootstrap_wire_)) {
    // A message the loader built and validated: cannot fail short of a bug.
    mainLog().critical("the bootstrap does not serialize");
    std::abort();
  }
}

envoy::config::bootstrap::v3::Bootstrap Server::bootstrap() const {
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  if (!bootstrap.ParseFromString(bootstrap_wire_)) {
    // Our own serialization of a message that was valid: cannot fail short of a bug.
    mainLog().error("the retained bootstrap does not parse back; /config_dump shows it empty");
  }
  return bootstrap;
}

Server::~Server() {
  for (auto& w : workers_) {
    w->stop();
  }
  workers_.clear();
  admin_.reset();
  for (auto* ev : signal_events_) {
    event_free(ev);
  }
}

absl::Status Server::initialize() {
  absl::Status status;
  {
    // The build reads the bootstrap from a copy on an arena, freed in a few large
    // blocks once the build is done. A heap copy's thousands of small blocks would
    // be left as holes between the long-lived objects the build allocated around
    // them, which the allocator cannot give back (with 10,000 clusters, ~2.5 MB of
    // the 16 MB such holes came to before this and the source map's arena).
    google::protobuf::Arena arena(config::bootstrapArenaOptions());
    auto* bootstrap = google::protobuf::Arena::CreateMessage<envoy::config::bootstrap::v3::Bootstrap>(&arena);
    if (!bootstrap->ParseFromString(bootstrap_wire_)) {
      return absl::InternalError("the bootstrap does not parse back from its wire form");
    }
    status = initializeFrom(*bootstrap);
  }
  // Parsing and building left free pages behind (the YAML tree, the source map,
  // the arena): give them back now rather than carry them as resident memory.
  memory::releaseFreeMemory();
  return status;
}

absl::Status Server::initializeFrom(const envoy::config::bootstrap::v3::Bootstrap& bootstrap) {
  concurrency_ = options_.concurrency != 0 ? options_.concurrency : availableCpus();
  auto model = buildConfigModel(bootstrap, store_, concurrency_);
  if (!model.ok()) {
    config_error_ = true;
    return absl::InvalidArgumentError(config::locateErrors(marks_, std::string(model.status().message())));
  }
  model_ = std::move(*model);
  // The source map only serves to place configuration errors; from here on the
  // configuration is built, and a large one's map is most of what loading it left.
  marks_ = config::SourceMap();
  runtime_ = model_->runtime;
  runtime::setLoader(runtime_);
  for (const auto& tracer : model_->tracers) tracer->start(dispatcher_);
  limits_.global_max = model_->global_max_connections;

  // Bind every socket before starting anything, so a conflict is reported
  // with nothing half-started. One socket per worker with SO_REUSEPORT.
  std::vector<std::vector<Worker::ListenerSocket>> per_worker(concurrency_);
  for (auto& l : model_->listeners) {
    network::Address addr = l.address;
    std::vector<int> fds;
    for (uint32_t w = 0; w < concurrency_; ++w) {
      if (!l.accept.bind_to_port) {
        fds.push_back(-1); // takes connections other listeners hand over (use_original_dst)
        continue;
      }
      if (w > 0 && !l.reuse_port) {
        fds.push_back(::dup(fds.front()));
        continue;
      }
      auto fd = network::createListenSocket(addr, l.reuse_port, static_cast<int>(l.backlog));
      if (!fd.ok()) {
        for (int f : fds) ::close(f);
        return absl::FailedPreconditionError("listener '" + l.name +
                                             "': " + std::string(fd.status().message()));
      }
      if (w == 0) {
        // Port 0 picks a port; the other workers bind the same one.
        addr = network::Address::fromSocketName(*fd);
      }
      fds.push_back(*fd);
    }
    const auto limit = staticRuntimeNumber(bootstrap, "envoy.resource_limits.listener." +
                                                           l.name + ".connection_limit");
    const uint64_t max_cx = limit ? connectionLimit(*limit) : UINT64_MAX;
    auto config = std::make_shared<network::ListenerConfig>(l.name, addr, l.buffer_limit,
                                                            l.max_accept, max_cx,
                                                            std::move(l.chains), store_);
    config->setAcceptOptions(l.accept);
    listener_configs_.push_back(config);
    for (uint32_t w = 0; w < concurrency_; ++w) {
      per_worker[w].push_back({config, fds[w]});
    }
    mainLog().info("listener '{}' on {}{}", l.name, addr.asString(),
                   l.accept.bind_to_port ? "" : " (not bound: bind_to_port false)");
  }
  store_.gauge("listener_manager.total_listeners_active")
      .set(static_cast<int64_t>(listener_configs_.size()));
  store_.counter("listener_manager.listener_added").inc(listener_configs_.size());

  if (bootstrap.has_admin() && bootstrap.admin().has_address()) {
    const auto& sa = bootstrap.admin().address().socket_address();
    auto admin = admin::AdminServer::create(dispatcher_.base(), sa.address(),
                                            static_cast<uint16_t>(sa.port_value()), *this,
                                            model_->admin_access_logs);
    if (!admin.ok()) {
      for (auto& ws : per_worker) {
        for (auto& s : ws) ::close(s.fd);
      }
      return admin.status();
    }
    admin_ = std::move(*admin);
    mainLog().info("admin on {}:{}", sa.address(), admin_->port());
    if (!options_.admin_address_path.empty()) {
      // Written after binding, so a reader that sees the file can connect.
      const std::string tmp = options_.admin_address_path + ".tmp";
      std::FILE* f = std::fopen(tmp.c_str(), "w");
      const bool v6 = sa.address().find(':') != std::string::npos;
      if (f == nullptr ||
          std::fprintf(f, v6 ? "[%s]:%u\n" : "%s:%u\n", sa.address().c_str(), admin_->port()) < 0 ||
          std::fclose(f) != 0 || std::rename(tmp.c_str(), options_.admin_address_path.c_str()) != 0) {
        return absl::FailedPreconditionError("--admin-address-path: cannot write '" +
                                             options_.admin_address_path + "'");
      }
    }
  }

  // Workers start once the clusters have warmed (the first DNS answers), as
  // Envoy's listeners wait for cluster initialization; sockets are bound, so
  // early connections wait in the backlog.
  initializing_ = true;
  auto per_worker_shared =
      std::make_shared<std::vector<std::vector<Worker::ListenerSocket>>>(std::move(per_worker));
  if (auto st = model_->cluster_manager->initialize(
          dispatcher_, [this, per_worker_shared] { startWorkers(std::move(*per_worker_shared)); });
      !st.ok()) {
    return st;
  }
  store_.gauge("server.concurrency").set(concurrency_);
  return absl::OkStatus();
}

void Server::startWorkers(std::vector<std::vector<Worker::ListenerSocket>> per_worker) {
  for (uint32_t w = 0; w < concurrency_; ++w) {
    workers_.push_back(std::make_unique<Worker>(w, limits_));
    workers_.back()->start(std::move(per_worker[w]));
  }
  std::vector<event::Dispatcher*> worker_dispatchers;
  for (auto& w : workers_) {
    worker_dispatchers.push_back(&w->dispatcher());
  }
  model_->cluster_manager->setWorkerDispatchers(std::move(worker_dispatchers));
  initializing_ = false;
  if (draining_) {
    for (auto& w : workers_) w->stopListeners();
  }
}

int Server::run() {
  upstream::setCurrentWorkerIndex(options_.concurrency != 0 ? options_.concurrency
                                                            : availableCpus());
  if (auto st = initialize(); !st.ok()) {
    if (config_error_) {
      std::fprintf(stderr, "legate: configuration error:\n%s\n", std::string(st.message()).c_str());
    } else {
      mainLog().critical("{}", std::string(st.message()));
      std::fprintf(stderr, "legate: %s\n", std::string(st.message()).c_str());
    }
    return 1;
  }
  for (int sig : {SIGTERM, SIGINT}) {
    ::event* ev = evsignal_new(
        dispatcher_.base(), sig,
        [](evutil_socket_t signo, short, void* arg) {
          auto* self = static_cast<Server*>(arg);
          if (self->draining_) {
            mainLog().warn("signal {} during drain: exiting now", signo);
            self->shutdown();
          } else {
            mainLog().info("signal {}: draining listeners (up to {}s)", signo,
                           self->options_.drain_time_s);
            self->startDrain();
          }
        },
        this);
    evsignal_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  stats_timer_ = dispatcher_.createTimer([this] {
    refreshServerStats();
    stats_timer_->enableTimer(std::chrono::seconds(1));
  });
  refreshServerStats();
  stats_timer_->enableTimer(std::chrono::seconds(1));
  if (!model_->stats_sinks.empty()) {
    flusher_ = std::make_unique<stats::Flusher>(store_, std::move(model_->stats_sinks));
    flush_timer_ = dispatcher_.createTimer([this] {
      flusher_->flush();
      flush_timer_->enableTimer(model_->stats_flush_interval);
    });
    flush_timer_->enableTimer(model_->stats_flush_interval);
  }
  mainLog().info("legate {} started with {} worker(s)", LEGATE_VERSION, concurrency_);
  dispatcher_.run();
  mainLog().info("shutting down");
  for (auto& w : workers_) {
    w->stop();
  }
  workers_.clear();
  admin_.reset();
  mainLog().info("exiting");
  return 0;
}

void Server::startDrain() {
  if (draining_) {
    return;
  }
  draining_ = true;
  network::setDraining(true);
  for (auto& w : workers_) {
    w->stopListeners();
  }
  drain_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(options_.drain_time_s);
  drain_timer_ = dispatcher_.createTimer([this] { onDrainTick(); });
  onDrainTick();
}

void Server::onDrainTick() {
  const uint64_t active = activeConnections();
  if (active == 0) {
    mainLog().info("drain complete: no connections left");
    shutdown();
    return;
  }
  if (std::chrono::steady_clock::now() >= drain_deadline_) {
    mainLog().info("drain time over: closing {} connection(s)", active);
    shutdown();
    return;
  }
  drain_timer_->enableTimer(std::chrono::milliseconds(100));
}

void Server::shutdown() {
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  dispatcher_.exit();
}

void Server::drainListeners(bool graceful, bool inbound_only) {
  if (listeners_drained_ || draining_) {
    return;
  }
  listeners_drained_ = true;
  std::vector<std::string> names;
  for (const auto& l : model_->listeners) {
    if (inbound_only && l.outbound) {
      continue;
    }
    names.push_back(l.name);
  }
  if (names.empty()) {
    return;
  }
  auto stop = [this, names] {
    for (auto& w : workers_) {
      w->stopListeners(names);
    }
    mainLog().info("drain_listeners: stopped accepting on {} listener(s)", names.size());
  };
  if (!graceful) {
    stop();
    return;
  }
  // Graceful: connections learn they should close (network::setDraining) for the
  // drain time, then the listeners stop accepting.
  network::setDraining(true);
  drain_listeners_timer_ = dispatcher_.createTimer(stop);
  drain_listeners_timer_->enableTimer(std::chrono::seconds(options_.drain_time_s));
}

ServerState Server::state() const {
  if (draining_ || listeners_drained_ || health_check_failed_) return ServerState::Draining;
  return initializing_ ? ServerState::Initializing : ServerState::Live;
}

std::chrono::seconds Server::uptime() const {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                          start_time_);
}

uint64_t Server::activeConnections() const {
  return limits_.global_active.load(std::memory_order_relaxed);
}

void Server::refreshServerStats() {
  store_.gauge("server.uptime").set(uptime().count());
  store_.gauge("server.live").set(state() == ServerState::Live ? 1 : 0);
  store_.gauge("server.state").set(state() == ServerState::Live ? 0 : 1);
  store_.gauge("server.total_connections").set(static_cast<int64_t>(activeConnections()));
  store_.gauge("server.hot_restart_epoch").set(0);
  const memory::Stats mem = memory::current();
  store_.gauge("server.memory_allocated").set(static_cast<int64_t>(mem.allocated));
  store_.gauge("server.memory_heap_size").set(static_cast<int64_t>(mem.heap_size));
  store_.gauge("server.memory_physical_size").set(static_cast<int64_t>(mem.physical));
}

std::vector<ListenerInfo> Server::listeners() const {
  std::vector<ListenerInfo> out;
  for (const auto& l : listener_configs_) {
    out.push_back({l->name(), l->address().asString()});
  }
  return out;
}

std::vector<ClusterInfo> Server::clusters() const {
  std::vector<ClusterInfo> out;
  if (!model_) {
    return out;
  }
  for (const auto& cluster : model_->cluster_manager->clusters()) {
    ClusterInfo ci;
    ci.name = cluster->name();
    if (const auto* od = cluster->outlierDetector()) {
      using Origin = upstream::HostOutlierState;
      ci.outlier_detection = true;
      const auto ext = od->successRateNumbers(Origin::kExternal);
      const auto local = od->successRateNumbers(Origin::kLocal);
      ci.success_rate_average = ext.mean;
      ci.success_rate_ejection_threshold = ext.ejection_threshold;
      ci.local_origin_success_rate_average = local.mean;
      ci.local_origin_success_rate_ejection_threshold = local.ejection_threshold;
    }
    for (const auto& h : cluster->hosts()) {
      HostInfo hi;
      hi.address = h->address().asString();
      hi.weight = h->weight();
      hi.health = h->healthFlagsString();
      h->stats().forEach([&hi](const char* stat, bool gauge, uint64_t value) {
        hi.stats.push_back({stat, gauge, value});
      });
      hi.success_rate = h->outlier().success_rate[upstream::HostOutlierState::kExternal];
      hi.local_origin_success_rate = h->outlier().success_rate[upstream::HostOutlierState::kLocal];
      ci.hosts.push_back(std::move(hi));
    }
    // Read from the cluster's breakers: the limits requests are held to.
    for (auto [priority, out] : {std::pair{upstream::ResourcePriority::Default, &ci.default_priority},
                                 std::pair{upstream::ResourcePriority::High, &ci.high_priority}}) {
      const upstream::ResourceManager& rm = cluster->resourceManager(priority);
      out->max_connections = rm.thresholds().max_connections;
      out->max_pending_requests = rm.thresholds().max_pending_requests;
      out->max_requests = rm.thresholds().max_requests;
      out->max_retries = rm.maxRetries();
    }
    out.push_back(std::move(ci));
  }
  return out;
}

} // namespace legate::server
