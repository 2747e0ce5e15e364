#pragma once

// The admin HTTP server: Envoy's admin endpoints (/ready, /stats,
// /stats/prometheus, /server_info, /config_dump, /listeners, /clusters, /help,
// POST /quitquitquit, /healthcheck/fail, /healthcheck/ok, /reset_counters) on
// libevent's evhttp.
//
// Threading and lifetime: created, used and destroyed on the main thread, whose
// event_base it runs on; the server::Instance and the event_base must outlive it.
// Handlers call into the Instance on the main thread. The AdminServer must not be
// destroyed from inside one of its own handlers: server::Instance::shutdown() is
// asynchronous by contract (it is called after the /quitquitquit reply is written).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accesslog/access_log.h"
#include "server/instance.h"

struct event_base;
struct evhttp;
struct evhttp_request;
struct event;

namespace legate::admin {

struct Endpoint;
struct Request;

class AdminServer {
public:
  // Binds address:port (port 0 = an ephemeral port) and starts serving on base.
  // address is a numeric IPv4 or IPv6 address ("127.0.0.1", "::1", "[::1]").
  // Errors name the address: "admin: cannot bind 127.0.0.1:9901: Address already in use".
  // access_logs: admin.access_log (and access_log_path), one line per admin request.
  static absl::StatusOr<std::unique_ptr<AdminServer>>
  create(event_base* base, const std::string& address, uint16_t port, server::Instance& server,
         std::vector<accesslog::AccessLogSharedPtr> access_logs = {});
  ~AdminServer(); // unbinds and drops open admin connections

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const { return port_; }

private:
  AdminServer(event_base* base, server::Instance& server);
  static void onRequest(evhttp_request* req, void* self);
  static void onReplyComplete(evhttp_request* req, void* self);
  static void onDeferredTimer(int fd, short what, void* self);
  void handle(evhttp_request* req);
  void logRequest(evhttp_request* req, const Request& request, int code, size_t body_bytes,
                  std::chrono::steady_clock::time_point start_steady,
                  std::chrono::system_clock::time_point start);
  // Runs the actions queued until a reply had been written (at most once each).
  void runDeferred();

  event_base* base_;
  server::Instance& server_;
  evhttp* http_ = nullptr;
  event* deferred_timer_ = nullptr;
  uint16_t port_ = 0;
  std::vector<Endpoint> endpoints_;
  std::vector<std::function<void()>> deferred_;
  std::vector<accesslog::AccessLogSharedPtr> access_logs_;
};

} // namespace legate::admin
