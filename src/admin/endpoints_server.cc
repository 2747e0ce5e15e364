// /ready, /server_info, /quitquitquit, /healthcheck/fail, /healthcheck/ok.

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logger.h"
#include "common/memory_stats.h"
#include "stats/json.h"
#include "admin/http_util.h"
#include "envoy/admin/v3/server_info.pb.h"
#include "server/options.h"

namespace legate::admin {

namespace {

using envoy::admin::v3::CommandLineOptions;
using envoy::admin::v3::ServerInfo;

// Envoy's state names, as /ready prints them.
const char* stateName(server::ServerState state) {
  switch (state) {
  case server::ServerState::Live: return "LIVE";
  case server::ServerState::Draining: return "DRAINING";
  case server::ServerState::PreInitializing: return "PRE_INITIALIZING";
  case server::ServerState::Initializing: return "INITIALIZING";
  }
  return "UNKNOWN";
}

ServerInfo::State stateProto(server::ServerState state) {
  switch (state) {
  case server::ServerState::Live: return ServerInfo::LIVE;
  case server::ServerState::Draining: return ServerInfo::DRAINING;
  case server::ServerState::PreInitializing: return ServerInfo::PRE_INITIALIZING;
  case server::ServerState::Initializing: return ServerInfo::INITIALIZING;
  }
  return ServerInfo::LIVE;
}

Response serverInfo(server::Instance& server) {
  ServerInfo info;
  info.set_version(absl::StrCat("legate/", LEGATE_VERSION));
  info.set_state(stateProto(server.state()));
  const int64_t uptime = server.uptime().count();
  info.mutable_uptime_current_epoch()->set_seconds(uptime);
  // No hot restart: all epochs are the current one.
  info.mutable_uptime_all_epochs()->set_seconds(uptime);
  info.set_hot_restart_version("disabled");

  const server::Options& o = server.options();
  CommandLineOptions* cl = info.mutable_command_line_options();
  cl->set_concurrency(o.concurrency);
  cl->set_config_path(o.config_path);
  cl->set_config_yaml(o.config_yaml);
  cl->set_log_level(o.log_level);
  cl->set_component_log_level(o.component_log_level);
  cl->set_log_format(o.log_format);
  cl->set_log_path(o.log_path);
  cl->set_service_cluster(o.service_cluster);
  cl->set_service_node(o.service_node);
  cl->set_service_zone(o.service_zone);
  cl->mutable_drain_time()->set_seconds(o.drain_time_s);
  cl->mutable_parent_shutdown_time()->set_seconds(o.parent_shutdown_time_s);
  cl->set_mode(o.mode == server::Mode::Validate ? CommandLineOptions::Validate
                                                : CommandLineOptions::Serve);
  cl->set_disable_hot_restart(true);
  *info.mutable_node() = server.node();

  auto json = protoToJson(info, /*always_print_primitive_fields=*/true);
  if (!json.ok()) {
    return textResponse(500, absl::StrCat(json.status().message(), "\n"));
  }
  return jsonResponse(*std::move(json));
}

// Envoy's admin.v3.Memory from the allocator's own statistics (tcmalloc in the
// release build, glibc's otherwise; uint64 fields are JSON strings, as proto3 maps
// them). total_physical_bytes is the resident set size.
Response memory() {
  const memory::Stats m = memory::current();
  stats::Json doc = stats::Json::object();
  doc.set("allocated", absl::StrCat(m.allocated));
  doc.set("heap_size", absl::StrCat(m.heap_size));
  doc.set("pageheap_unmapped", absl::StrCat(m.pageheap_unmapped));
  doc.set("pageheap_free", absl::StrCat(m.pageheap_free));
  doc.set("total_thread_cache", absl::StrCat(m.total_thread_cache));
  doc.set("total_physical_bytes", absl::StrCat(m.physical));
  return jsonResponse(doc.dump(true));
}

std::string loggingText() {
  std::string out = "active loggers:\n";
  for (const auto& [name, level] : log::levels()) {
    absl::StrAppend(&out, "  ", name, ": ", std::string(log::levelName(level)), "\n");
  }
  return out;
}

Response loggingUsage(std::string problem) {
  return textResponse(
      400, absl::StrCat(problem,
                        "\nusage: POST /logging?level=<level> (every component), "
                        "/logging?<component>=<level>, or /logging?paths=<component>:<level>,...\n"
                        "levels: trace debug info warning error critical off\n",
                        loggingText()));
}

// GET lists the levels; changing them takes POST (?level=, ?<component>=, ?paths=).
Response logging(const Request& request) {
  if (request.query.empty()) {
    return textResponse(200, loggingText());
  }
  if (request.method != "POST") {
    return textResponse(405, "This endpoint requires POST to change levels: /logging\n");
  }
  // Check everything before changing anything.
  std::vector<std::pair<std::string, spdlog::level::level_enum>> changes;
  std::optional<spdlog::level::level_enum> all;
  const auto known = log::levels();
  auto isComponent = [&known](const std::string& name) {
    for (const auto& [n, _] : known) {
      if (n == name) return true;
    }
    return false;
  };
  for (const auto& [key, value] : request.query) {
    spdlog::level::level_enum level;
    if (key == "paths") {
      for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        std::vector<std::string> kv = absl::StrSplit(item, ':');
        if (kv.size() != 2 || !log::parseLevel(kv[1], level) || !isComponent(kv[0])) {
          return loggingUsage(absl::StrCat("invalid paths entry '", item, "'"));
        }
        changes.emplace_back(kv[0], level);
      }
      continue;
    }
    if (!log::parseLevel(value, level)) {
      return loggingUsage(absl::StrCat("invalid level '", value, "'"));
    }
    if (key == "level") {
      all = level;
    } else if (isComponent(key)) {
      changes.emplace_back(key, level);
    } else {
      return loggingUsage(absl::StrCat("unknown component '", key, "'"));
    }
  }
  if (all) log::setAllLevels(*all);
  for (const auto& [name, level] : changes) log::setLevel(name, level);
  return textResponse(200, loggingText());
}

} // namespace

void addServerEndpoints(std::vector<Endpoint>& out, server::Instance& server) {
  out.push_back({"/ready", "print server state, return 200 if LIVE, otherwise return 503", false,
                 [&server](const Request&) {
                   const server::ServerState state = server.state();
                   return textResponse(state == server::ServerState::Live ? 200 : 503,
                                       absl::StrCat(stateName(state), "\n"));
                 }});
  out.push_back({"/server_info", "print server version/status information", false,
                 [&server](const Request&) { return serverInfo(server); }});
  out.push_back({"/memory", "print current allocation/heap usage", false,
                 [](const Request&) { return memory(); }});
  // Not in the mutating table: a plain GET lists the levels; the handler refuses a
  // change without POST.
  out.push_back({"/logging",
                 "query/change logging levels (POST ?level=, ?<component>=<level>, ?paths=)",
                 false, [](const Request& r) { return logging(r); }});
  out.push_back({"/drain_listeners", "drain listeners (?graceful, ?inboundonly)", true,
                 [&server](const Request& r) {
                   server.drainListeners(r.has("graceful"), r.has("inboundonly"));
                   return textResponse(200, "OK\n");
                 }});
  out.push_back({"/quitquitquit", "exit the server", true, [&server](const Request&) {
                   Response r = textResponse(200, "OK\n");
                   // After the reply is written, so the caller learns it worked.
                   r.after_reply = [&server] { server.shutdown(); };
                   return r;
                 }});
  out.push_back({"/healthcheck/fail", "cause the server to fail health checks", true,
                 [&server](const Request&) {
                   server.setHealthCheckFailed(true);
                   return textResponse(200, "OK\n");
                 }});
  out.push_back({"/healthcheck/ok", "cause the server to pass health checks", true,
                 [&server](const Request&) {
                   server.setHealthCheckFailed(false);
                   return textResponse(200, "OK\n");
                 }});
}

} // namespace legate::admin
