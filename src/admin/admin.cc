#include "admin/admin.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "admin/http_util.h"

namespace legate::admin {

namespace {

// Limits for the admin listener: requests are small, and a stuck client must not
// pin a connection forever.
constexpr int kRequestTimeoutSeconds = 30;
constexpr size_t kMaxHeadersSize = 64 * 1024;
constexpr size_t kMaxBodySize = 1024 * 1024;
// How long a deferred action (shutdown after /quitquitquit) waits for its reply
// to be written before it runs anyway (client gone, write failed).
constexpr timeval kDeferredGrace = {1, 0};

const char* methodName(evhttp_cmd_type cmd) {
  switch (cmd) {
  case EVHTTP_REQ_GET: return "GET";
  case EVHTTP_REQ_POST: return "POST";
  case EVHTTP_REQ_HEAD: return "HEAD";
  case EVHTTP_REQ_PUT: return "PUT";
  case EVHTTP_REQ_DELETE: return "DELETE";
  case EVHTTP_REQ_OPTIONS: return "OPTIONS";
  case EVHTTP_REQ_TRACE: return "TRACE";
  case EVHTTP_REQ_CONNECT: return "CONNECT";
  case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "UNKNOWN";
}

const char* reasonPhrase(int code) {
  switch (code) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 413: return "Payload Too Large";
  case 405: return "Method Not Allowed";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  }
  return "Unknown";
}

std::string displayAddress(const std::string& address, uint16_t port) {
  return address.find(':') != std::string::npos ? absl::StrCat("[", address, "]:", port)
                                                : absl::StrCat(address, ":", port);
}

// A bound, listening, non-blocking socket, or an error naming the address.
absl::StatusOr<int> listenOn(const std::string& address_in, uint16_t port) {
  std::string address = address_in;
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin: invalid address '", address_in, "': expected a numeric IPv4 or IPv6 address"));
  }
  const std::string shown = displayAddress(address, port);
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("admin: cannot create a socket for ", shown, ": ",
                                            std::strerror(errno)));
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("admin: cannot bind ", shown, ": ", std::strerror(err)));
  }
  if (::listen(fd, 128) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("admin: cannot listen on ", shown, ": ", std::strerror(err)));
  }
  return fd;
}

} // namespace

AdminServer::AdminServer(event_base* base, server::Instance& server)
    : base_(base), server_(server) {
  addServerEndpoints(endpoints_, server_);
  addStatsEndpoints(endpoints_, server_);
  addConfigEndpoints(endpoints_, server_);
  addRuntimeEndpoints(endpoints_, server_);
  endpoints_.push_back({"/help", "print out list of admin commands", false,
                        [this](const Request&) { return textResponse(200, helpText(endpoints_)); }});
}

absl::StatusOr<std::unique_ptr<AdminServer>>
AdminServer::create(event_base* base, const std::string& address, uint16_t port,
                    server::Instance& server, std::vector<accesslog::AccessLogSharedPtr> access_logs) {
  auto fd = listenOn(address, port);
  if (!fd.ok()) {
    return fd.status();
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(*fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    const int err = errno;
    ::close(*fd);
    return absl::InternalError(absl::StrCat("admin: getsockname: ", std::strerror(err)));
  }
  std::unique_ptr<AdminServer> self(new AdminServer(base, server));
  self->access_logs_ = std::move(access_logs);
  self->port_ = ntohs(bound.ss_family == AF_INET6
                          ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  self->http_ = evhttp_new(base);
  if (self->http_ == nullptr) {
    ::close(*fd);
    return absl::InternalError("admin: evhttp_new failed");
  }
  // From here the evhttp owns the socket (closes it when freed).
  if (evhttp_accept_socket_with_handle(self->http_, *fd) == nullptr) {
    ::close(*fd);
    return absl::InternalError(absl::StrCat("admin: cannot accept on ",
                                            displayAddress(address, self->port_)));
  }
  evhttp_set_timeout(self->http_, kRequestTimeoutSeconds);
  evhttp_set_max_headers_size(self->http_, kMaxHeadersSize);
  evhttp_set_max_body_size(self->http_, kMaxBodySize);
  evhttp_set_allowed_methods(self->http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
  evhttp_set_gencb(self->http_, &AdminServer::onRequest, self.get());
  self->deferred_timer_ = evtimer_new(base, &AdminServer::onDeferredTimer, self.get());
  return self;
}

AdminServer::~AdminServer() {
  if (deferred_timer_ != nullptr) {
    event_free(deferred_timer_);
  }
  if (http_ != nullptr) {
    evhttp_free(http_);
  }
}

void AdminServer::onRequest(evhttp_request* req, void* self) {
  static_cast<AdminServer*>(self)->handle(req);
}

void AdminServer::onReplyComplete(evhttp_request*, void* self) {
  static_cast<AdminServer*>(self)->runDeferred();
}

void AdminServer::onDeferredTimer(int, short, void* self) {
  static_cast<AdminServer*>(self)->runDeferred();
}

void AdminServer::runDeferred() {
  evtimer_del(deferred_timer_);
  // Move out first: an action may queue more (it may not destroy us; see admin.h).
  auto actions = std::move(deferred_);
  deferred_.clear();
  for (auto& action : actions) action();
}

void AdminServer::handle(evhttp_request* req) {
  const auto start = std::chrono::system_clock::now();
  const auto start_steady = std::chrono::steady_clock::now();
  Request request;
  request.method = methodName(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  request.path = path != nullptr && *path != '\0' ? path : "/";
  const char* query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  if (query != nullptr) {
    request.query = parseQuery(query);
  }

  Response response;
  const Endpoint* endpoint = nullptr;
  for (const auto& e : endpoints_) {
    if (e.path == request.path) {
      endpoint = &e;
      break;
    }
  }
  if (request.path == "/") {
    response = textResponse(200, indexHtml(endpoints_));
    response.content_type = kTextHtml;
  } else if (endpoint == nullptr) {
    response = textResponse(404, absl::StrCat("invalid path. ", helpText(endpoints_)));
  } else if (endpoint->mutates && request.method != "POST") {
    // legate's safe default: a mutation never runs on GET, so a link or a prefetch
    // cannot shut the server down.
    response = textResponse(
        405, absl::StrCat("This endpoint requires POST: ", endpoint->path, "\n"));
  } else {
    response = endpoint->handler(request);
  }
  if (response.code == 405) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
  }

  evkeyvalq* headers = evhttp_request_get_output_headers(req);
  evhttp_add_header(headers, "Content-Type", response.content_type.c_str());
  evhttp_add_header(headers, "Cache-Control", "no-cache, max-age=0");
  evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
  evbuffer_add(evhttp_request_get_output_buffer(req), response.body.data(), response.body.size());
  if (response.after_reply) {
    deferred_.push_back(std::move(response.after_reply));
    evhttp_request_set_on_complete_cb(req, &AdminServer::onReplyComplete, this);
    evtimer_add(deferred_timer_, &kDeferredGrace);
  }
  if (!access_logs_.empty()) {
    logRequest(req, request, response.code, response.body.size(), start_steady, start);
  }
  evhttp_send_reply(req, response.code, reasonPhrase(response.code), nullptr);
}

void AdminServer::logRequest(evhttp_request* req, const Request& request, int code,
                             size_t body_bytes, std::chrono::steady_clock::time_point start_steady,
                             std::chrono::system_clock::time_point start) {
  http::HeaderMap request_headers;
  request_headers.add(":method", request.method);
  const char* uri = evhttp_request_get_uri(req);
  request_headers.add(":path", uri != nullptr ? uri : request.path);
  request_headers.add(":scheme", "http");
  for (evkeyval* h = evhttp_request_get_input_headers(req)->tqh_first; h != nullptr;
       h = h->next.tqe_next) {
    std::string name = h->key;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name == "host") name = ":authority";
    request_headers.add(name, h->value);
  }
  http::HeaderMap response_headers;
  response_headers.add(":status", std::to_string(code));
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  for (evkeyval* h = out->tqh_first; h != nullptr; h = h->next.tqe_next) {
    std::string name = h->key;
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response_headers.add(name, h->value);
  }

  accesslog::StreamInfo info;
  info.start_time = start;
  info.start_steady = start_steady;
  info.end_steady = std::chrono::steady_clock::now();
  info.protocol = "HTTP/1.1"; // evhttp does not expose the request's version
  info.response_code = static_cast<uint32_t>(code);
  info.bytes_sent = body_bytes;
  info.bytes_received = evbuffer_get_length(evhttp_request_get_input_buffer(req));
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) {
    if (bufferevent* bev = evhttp_connection_get_bufferevent(conn)) {
      const int fd = bufferevent_getfd(bev);
      if (fd >= 0) {
        info.downstream_remote = network::Address::fromPeerName(fd);
        info.downstream_local = network::Address::fromSocketName(fd);
      }
    }
  }
  info.request_headers = &request_headers;
  info.response_headers = &response_headers;
  for (const auto& log : access_logs_) log->log(info);
}

} // namespace legate::admin
