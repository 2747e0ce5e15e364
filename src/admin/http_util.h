#pragma once

// The pieces the admin endpoints share: a parsed request, a response, and the
// endpoint table entry. Internal to legate_admin.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "server/instance.h"

namespace legate::admin {

inline constexpr char kTextPlain[] = "text/plain; charset=UTF-8";
inline constexpr char kJson[] = "application/json";

struct Request {
  std::string method; // "GET", "POST", "HEAD", ...
  std::string path;   // without the query
  // Decoded query parameters; a key without '=' maps to "" (`?usedonly`).
  absl::flat_hash_map<std::string, std::string> query;

  bool has(const std::string& key) const { return query.contains(key); }
  std::string param(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::string() : it->second;
  }
};

struct Response {
  int code = 200;
  std::string content_type = kTextPlain;
  std::string body;
  // Run on the main thread once the reply has been written (e.g. shutdown after
  // /quitquitquit has answered), or after a short grace period if it never is.
  std::function<void()> after_reply;
};

Response textResponse(int code, std::string body);
Response jsonResponse(std::string body);

using Handler = std::function<Response(const Request&)>;

struct Endpoint {
  std::string path;
  std::string help;
  bool mutates; // POST only: a GET gets 405
  Handler handler;
};

// Percent-decodes a query component; '+' stays '+' so that regexes like
// `filter=rq_[0-9]+` work as typed. Malformed escapes are kept literally.
std::string percentDecode(std::string_view s);
absl::flat_hash_map<std::string, std::string> parseQuery(std::string_view query);

// "127.0.0.1:8080" / "[::1]:8080" -> ("127.0.0.1", 8080). port 0 if absent or bad.
std::pair<std::string, uint32_t> splitHostPort(std::string_view address);

// Endpoint groups, each in its own file. Handlers capture server by reference.
void addServerEndpoints(std::vector<Endpoint>& out, server::Instance& server);
void addStatsEndpoints(std::vector<Endpoint>& out, server::Instance& server);
void addConfigEndpoints(std::vector<Endpoint>& out, server::Instance& server);
void addRuntimeEndpoints(std::vector<Endpoint>& out, server::Instance& server);

// Pretty JSON as Envoy prints protos: proto field names (snake_case), protobuf's
// indentation, Any fields with their @type (resolved in the generated pool, so the
// packed type must be linked in). always_print_primitive_fields for /server_info.
absl::StatusOr<std::string> protoToJson(const google::protobuf::Message& message,
                                        bool always_print_primitive_fields);

// The /help text for the table.
std::string helpText(const std::vector<Endpoint>& endpoints);
// The admin home page (GET /): every endpoint, GET ones as links, mutations as
// buttons of POST forms.
std::string indexHtml(const std::vector<Endpoint>& endpoints);
inline constexpr char kTextHtml[] = "text/html; charset=UTF-8";

} // namespace legate::admin
