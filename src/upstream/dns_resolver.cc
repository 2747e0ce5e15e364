#include "upstream/dns_resolver.h"

#include <ares.h>
#include <event2/event.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace legate::upstream {

struct DnsResolver::Query {
  DnsResolver* owner;
  std::string name;
  DnsLookupFamily family;
  Callback cb;
  bool second_step = false; // AUTO / V4_PREFERRED fallback under way
};

struct DnsResolver::SocketWatch {
  int fd;
  ::event* ev = nullptr;
  ~SocketWatch() {
    if (ev != nullptr) event_free(ev);
  }
};

namespace {
std::once_flag ares_init_once;
} // namespace

DnsResolver::DnsResolver(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}

absl::StatusOr<std::unique_ptr<DnsResolver>>
DnsResolver::create(event::Dispatcher& dispatcher, const DnsResolverSettings& settings) {
  std::call_once(ares_init_once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  std::unique_ptr<DnsResolver> r(new DnsResolver(dispatcher));
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS;
  opts.sock_state_cb = [](void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<DnsResolver*>(data)->onSocketState(fd, readable != 0, writable != 0);
  };
  opts.sock_state_cb_data = r.get();
  opts.flags = 0;
  if (settings.use_tcp) opts.flags |= ARES_FLAG_USEVC;
  if (settings.no_search) opts.flags |= ARES_FLAG_NOSEARCH;
  // Names go to DNS only, not /etc/hosts, so what the configured servers say
  // is what the cluster gets.
  char lookups[] = "b";
  opts.lookups = lookups;
  mask |= ARES_OPT_LOOKUPS;
  if (int rc = ares_init_options(&r->channel_, &opts, mask); rc != ARES_SUCCESS) {
    return absl::InternalError(std::string("c-ares initialization failed: ") + ares_strerror(rc));
  }
  if (!settings.resolvers.empty()) {
    std::vector<ares_addr_port_node> nodes(settings.resolvers.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& a = settings.resolvers[i];
      auto& n = nodes[i];
      n.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
      n.family = a.family();
      if (a.family() == AF_INET) {
        std::memcpy(&n.addr.addr4, &reinterpret_cast<const sockaddr_in*>(a.sockAddr())->sin_addr,
                    sizeof(n.addr.addr4));
      } else {
        std::memcpy(&n.addr.addr6, &reinterpret_cast<const sockaddr_in6*>(a.sockAddr())->sin6_addr,
                    sizeof(n.addr.addr6));
      }
      n.udp_port = a.port();
      n.tcp_port = a.port();
    }
    if (int rc = ares_set_servers_ports(r->channel_, nodes.data()); rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(std::string("c-ares rejected the resolvers: ") +
                                        ares_strerror(rc));
    }
  }
  r->timer_ = dispatcher.createTimer([raw = r.get()] {
    ares_process_fd(raw->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    raw->rearmTimer();
  });
  return r;
}

DnsResolver::~DnsResolver() {
  destroying_ = true;
  if (channel_ != nullptr) {
    ares_destroy(channel_); // outstanding queries end with ARES_EDESTRUCTION
  }
  watches_.clear();
}

void DnsResolver::resolve(const std::string& name, DnsLookupFamily family, Callback cb) {
  auto* q = new Query{this, name, family, std::move(cb)};
  int af = AF_UNSPEC;
  switch (family) {
  case DnsLookupFamily::V4Only:
  case DnsLookupFamily::V4Preferred:
    af = AF_INET;
    break;
  case DnsLookupFamily::V6Only:
  case DnsLookupFamily::Auto:
    af = AF_INET6;
    break;
  case DnsLookupFamily::All:
    af = AF_UNSPEC;
    break;
  }
  startLookup(q, af);
}

void DnsResolver::startLookup(Query* q, int family) {
  ares_addrinfo_hints hints{};
  hints.ai_family = family;
  hints.ai_flags = ARES_AI_NOSORT;
  ares_getaddrinfo(
      channel_, q->name.c_str(), nullptr, &hints,
      [](void* arg, int status, int, ares_addrinfo* result) {
        auto* query = static_cast<Query*>(arg);
        query->owner->onLookupDone(query, status, result);
      },
      q);
  rearmTimer();
}

void DnsResolver::onLookupDone(Query* q, int status, ares_addrinfo* result) {
  std::unique_ptr<Query> owned(q);
  if (status == ARES_EDESTRUCTION || destroying_) {
    if (result != nullptr) ares_freeaddrinfo(result);
    return;
  }
  std::vector<DnsAnswer> answers;
  if (status == ARES_SUCCESS && result != nullptr) {
    for (auto* n = result->nodes; n != nullptr; n = n->ai_next) {
      if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
      network::Address a(n->ai_addr, static_cast<socklen_t>(n->ai_addrlen));
      const bool dup = std::any_of(answers.begin(), answers.end(),
                                   [&](const DnsAnswer& x) { return x.address == a; });
      if (!dup) {
        answers.push_back({a, std::chrono::seconds(std::max(0, n->ai_ttl))});
      }
    }
  }
  if (result != nullptr) ares_freeaddrinfo(result);
  const bool empty_ok = status == ARES_ENOTFOUND || status == ARES_ENODATA;
  const bool ok = status == ARES_SUCCESS || empty_ok;
  const bool fallback =
      q->family == DnsLookupFamily::Auto || q->family == DnsLookupFamily::V4Preferred;
  if (fallback && !q->second_step && answers.empty()) {
    // The preferred family gave nothing (or failed): ask for the other one.
    q->second_step = true;
    startLookup(owned.release(), q->family == DnsLookupFamily::Auto ? AF_INET : AF_INET6);
    return;
  }
  Callback cb = std::move(q->cb);
  owned.reset();
  cb(ok ? Status::Success : Status::Failure, std::move(answers));
}

void DnsResolver::onSocketState(int fd, bool readable, bool writable) {
  auto it = std::find_if(watches_.begin(), watches_.end(),
                         [fd](const auto& w) { return w->fd == fd; });
  if (!readable && !writable) {
    if (it != watches_.end()) watches_.erase(it);
    return;
  }
  if (it == watches_.end()) {
    watches_.push_back(std::make_unique<SocketWatch>());
    watches_.back()->fd = fd;
    it = std::prev(watches_.end());
  }
  SocketWatch& w = **it;
  if (w.ev != nullptr) {
    event_free(w.ev);
    w.ev = nullptr;
  }
  // Level-triggered: c-ares reads what it wants per call, and is called
  // again while data remains.
  const short what = static_cast<short>(EV_PERSIST | (readable ? EV_READ : 0) |
                                        (writable ? EV_WRITE : 0));
  w.ev = event_new(
      dispatcher_.base(), fd, what,
      [](evutil_socket_t s, short events, void* arg) {
        auto* self = static_cast<DnsResolver*>(arg);
        ares_process_fd(self->channel_, (events & EV_READ) != 0 ? s : ARES_SOCKET_BAD,
                        (events & EV_WRITE) != 0 ? s : ARES_SOCKET_BAD);
        self->rearmTimer();
      },
      this);
  event_add(w.ev, nullptr);
}

void DnsResolver::rearmTimer() {
  if (destroying_ || !timer_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    timer_->disableTimer();
    return;
  }
  timer_->enableTimer(std::chrono::milliseconds(tv.tv_sec * 1000 + tv.tv_usec / 1000 + 1));
}

} // namespace legate::upstream
