#include "network/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/logger.h"
#include "common/loop_time.h"

namespace legate::network {

absl::StatusOr<int> createListenSocket(const Address& addr, bool reuse_port, int backlog) {
  const int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError("cannot create a socket for " + addr.asString() + ": " +
                               std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (reuse_port) {
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  }
  if (addr.family() == AF_INET6) {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (::bind(fd, addr.sockAddr(), addr.sockAddrLen()) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::FailedPreconditionError("cannot bind " + addr.asString() + ": " +
                                         std::strerror(err));
  }
  if (::listen(fd, backlog) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::FailedPreconditionError("cannot listen on " + addr.asString() + ": " +
                                         std::strerror(err));
  }
  return fd;
}

std::optional<Address> originalDestination(int fd, int family) {
  // SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST
  // (linux/netfilter_ipv6/ip6_tables.h) are both 80; the kernel headers clash
  // with the libc ones, so the number is spelled here.
  constexpr int kSoOriginalDst = 80;
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  const int level = family == AF_INET6 ? SOL_IPV6 : SOL_IP;
  if (::getsockopt(fd, level, kSoOriginalDst, &ss, &len) != 0 || len == 0) {
    return std::nullopt; // not redirected, or no conntrack entry
  }
  // The kernel writes the address but not always its length.
  if (ss.ss_family == AF_INET) {
    len = sizeof(sockaddr_in);
  } else if (ss.ss_family == AF_INET6) {
    len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return Address(reinterpret_cast<sockaddr*>(&ss), len);
}

ListenerStats::ListenerStats(stats::Scope s)
    : downstream_cx_total(s.counter("downstream_cx_total")),
      downstream_cx_active(s.gauge("downstream_cx_active")),
      downstream_cx_destroy(s.counter("downstream_cx_destroy")),
      downstream_cx_overflow(s.counter("downstream_cx_overflow")),
      downstream_global_cx_overflow(s.counter("downstream_global_cx_overflow")),
      downstream_cx_overload_reject(s.counter("downstream_cx_overload_reject")),
      no_filter_chain_match(s.counter("no_filter_chain_match")),
      downstream_cx_length_ms(s.histogram("downstream_cx_length_ms")) {}

ListenerConfig::ListenerConfig(std::string name, Address address, uint32_t buffer_limit,
                               uint32_t max_accept, uint64_t max_connections,
                               std::unique_ptr<FilterChainManager> chains, stats::Store& store)
    : name_(std::move(name)), address_(std::move(address)), buffer_limit_(buffer_limit),
      max_accept_(max_accept), max_connections_(max_connections), chains_(std::move(chains)),
      stats_(std::make_unique<ListenerStats>(
          stats::Scope(store, "listener." + address_.statName() + "."))) {}

// One accepted connection and its bookkeeping.
class ActiveListener::ActiveConnection : public ConnectionCallbacks,
                                         public IntrusiveList<ActiveConnection>::Hook {
public:
  ActiveConnection(ActiveListener& parent, ConnectionPtr conn)
      : parent_(parent), conn_(std::move(conn)) {
    // One of the three allocations every idle connection holds (with the
    // Connection and the connection manager): tcmalloc's 48-byte class, where
    // 40 bytes leave room for one field more (the start time is the
    // connection's own).
    static_assert(sizeof(ActiveConnection) <= 48);
    conn_->addConnectionCallbacks(*this);
  }
  void onEvent(ConnectionEvent event) override {
    if (event == ConnectionEvent::RemoteClose || event == ConnectionEvent::LocalClose) {
      parent_.removeConnection(*this);
    }
  }
  Connection& connection() { return *conn_; }
  ConnectionPtr release() { return std::move(conn_); }

private:
  ActiveListener& parent_;
  ConnectionPtr conn_;
};

ActiveListener::ActiveListener(event::Dispatcher& dispatcher, ListenerConfigConstSharedPtr config,
                               int fd, ConnectionLimits& limits)
    : dispatcher_(dispatcher), config_(std::move(config)), fd_(fd), limits_(limits),
      reserve_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
  if (fd_ < 0) return; // bind_to_port: false
  if (const int err =
          accept_event_.registerFd<&ActiveListener::onAcceptEvent>(dispatcher_, fd_, this)) {
    // This worker cannot take this listener's connections (the others still do).
    log::get("main").error("listener {}: {} cannot watch its socket ({}): it accepts no "
                           "connections on this thread",
                           config_->name(), dispatcher_.name(), std::strerror(err));
    accept_event_.reset();
  }
}

void ActiveListener::onAcceptEvent(uint32_t events) {
  if (events & event::FileReadyType::Read) {
    onAcceptReady();
  }
}

ActiveListener::~ActiveListener() {
  stopListening();
  closeAllConnections();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void ActiveListener::stopListening() {
  if (fd_ >= 0) {
    accept_event_.reset();
    ::close(fd_);
    fd_ = -1;
  }
}

void ActiveListener::link(std::unique_ptr<ActiveConnection> c) {
  connections_.pushFront(*c.release());
  ++connection_count_;
}

std::unique_ptr<ActiveListener::ActiveConnection> ActiveListener::unlink(ActiveConnection& c) {
  connections_.remove(c);
  --connection_count_;
  return std::unique_ptr<ActiveConnection>(&c);
}

void ActiveListener::closeAllConnections() {
  while (!connections_.empty()) {
    // close() raises LocalClose, which removes the entry.
    const size_t before = connection_count_;
    connections_.front()->connection().close(ConnectionCloseType::NoFlush);
    if (connection_count_ == before) {
      unlink(*connections_.front()); // destroyed here
    }
  }
}

void ActiveListener::onAcceptReady() {
  uint32_t accepted = 0;
  while (fd_ >= 0) {
    if (accepted == config_->maxAcceptPerEvent()) {
      // Edge-triggered: come back for the rest after other work had a turn.
      accept_event_.activate(event::FileReadyType::Read);
      return;
    }
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        // Out of file descriptors. Left in the backlog, the connection would
        // never raise another edge: refuse it cleanly with the reserved fd.
        if (!rejectWithReserveFd()) {
          return;
        }
        ++accepted;
        continue;
      }
      if (errno != EAGAIN) {
        log::get("main").warn("listener {}: accept failed: {}", config_->name(),
                              std::strerror(errno));
      }
      return;
    }
    ++accepted;
    newConnection(fd);
  }
}

bool ActiveListener::rejectWithReserveFd() {
  const auto now = loopNow();
  if (now - last_fd_warning_ > std::chrono::seconds(1)) {
    last_fd_warning_ = now;
    log::get("main").warn("listener {}: out of file descriptors ({}); refusing connections",
                          config_->name(), std::strerror(errno));
  }
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ::close(fd);
      config_->stats().downstream_cx_overload_reject.inc();
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      return true;
    }
  }
  // No reserve (others took it): look again shortly rather than stall.
  if (!accept_retry_timer_) {
    accept_retry_timer_ = dispatcher_.createTimer([this] {
      if (accept_event_.registered()) accept_event_.activate(event::FileReadyType::Read);
    });
  }
  accept_retry_timer_->enableTimer(std::chrono::milliseconds(100));
  return false;
}

void ActiveListener::newConnection(int fd) {
  Address local = Address::fromSocketName(fd);
  Address remote = Address::fromPeerName(fd);
  const ListenerConfig::AcceptOptions& opts = config_->acceptOptions();
  bool restored = false;
  if (opts.original_dst || opts.use_original_dst) {
    // envoy.filters.listener.original_dst: needs no bytes, so it never waits
    // (listener_filters_timeout has nothing to time).
    if (auto original = originalDestination(fd, local.family())) {
      local = *original;
      restored = true;
    }
  }
  if (restored && opts.use_original_dst && lookup_) {
    ActiveListener* target = lookup_(local);
    if (target != nullptr && target != this) {
      target->takeConnection(fd, std::move(local), std::move(remote), restored);
      return;
    }
  }
  takeConnection(fd, std::move(local), std::move(remote), restored);
}

void ActiveListener::takeConnection(int fd, Address local, Address remote, bool local_restored) {
  const ListenerConfig& cfg = *config_;
  ListenerStats& st = cfg.stats();
  if (limits_.global_active.load(std::memory_order_relaxed) >= limits_.global_max) {
    st.downstream_global_cx_overflow.inc();
    ::close(fd);
    return;
  }
  if (cfg.activeConnections().load(std::memory_order_relaxed) >= cfg.maxConnections()) {
    st.downstream_cx_overflow.inc();
    ::close(fd);
    return;
  }
  const FilterChain* chain = cfg.filterChains().find(local, remote);
  if (chain == nullptr || chain->factories.empty()) {
    st.no_filter_chain_match.inc();
    ::close(fd);
    return;
  }
  auto conn = std::make_unique<Connection>(dispatcher_, fd, RawBufferSocket::create(),
                                           local, std::move(remote), false);
  if (local_restored) conn->restoreLocalAddress(std::move(local));
  conn->setBufferLimits(cfg.bufferLimit());
  st.downstream_cx_total.inc();
  st.downstream_cx_active.inc();
  cfg.activeConnections().fetch_add(1, std::memory_order_relaxed);
  limits_.global_active.fetch_add(1, std::memory_order_relaxed);

  // A factory may close the connection, which hands it to deferred delete: it
  // stays valid until this returns, but the ActiveConnection no longer owns it.
  Connection& connection = *conn;
  link(std::make_unique<ActiveConnection>(*this, std::move(conn)));
  for (const auto& factory : chain->factories) {
    if (connection.state() == Connection::State::Closed) break;
    factory(connection);
  }
  if (connection.state() != Connection::State::Closed) {
    connection.initializeReadFilters();
  }
}

void ActiveListener::removeConnection(ActiveConnection& c) {
  ListenerStats& st = config_->stats();
  st.downstream_cx_active.dec();
  st.downstream_cx_destroy.inc();
  st.downstream_cx_length_ms.record(static_cast<uint64_t>(msSince(c.connection().startTime())));
  config_->activeConnections().fetch_sub(1, std::memory_order_relaxed);
  limits_.global_active.fetch_sub(1, std::memory_order_relaxed);
  // We are inside the connection's own callback: both die after it returns.
  std::unique_ptr<ActiveConnection> node = unlink(c);
  dispatcher_.deferredDelete(node->release());
  struct Holder : event::DeferredDeletable {
    explicit Holder(std::unique_ptr<ActiveConnection> a) : active(std::move(a)) {}
    std::unique_ptr<ActiveConnection> active;
  };
  dispatcher_.deferredDelete(std::make_unique<Holder>(std::move(node)));
}

} // namespace legate::network
