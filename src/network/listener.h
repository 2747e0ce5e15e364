#pragma once

// Listeners: the immutable per-listener configuration (main thread, shared),
// the listening sockets (one per worker, SO_REUSEPORT, bound on the main thread
// so a bind error is reported before anything starts), and the per-worker
// ActiveListener that accepts connections and owns them for their lifetime.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/intrusive_list.h"
#include "event/dispatcher.h"
#include "network/address.h"
#include "network/connection.h"
#include "network/filter_chain.h"
#include "stats/stats.h"

namespace legate::network {

// Creates a non-blocking listening TCP socket bound to addr.
// Errors read like "cannot bind 127.0.0.1:10000: Address already in use".
absl::StatusOr<int> createListenSocket(const Address& addr, bool reuse_port, int backlog);

struct ListenerStats {
  explicit ListenerStats(stats::Scope scope);
  stats::Counter& downstream_cx_total;
  stats::Gauge& downstream_cx_active;
  stats::Counter& downstream_cx_destroy;
  stats::Counter& downstream_cx_overflow;
  stats::Counter& downstream_global_cx_overflow;
  stats::Counter& downstream_cx_overload_reject; // refused: out of file descriptors
  stats::Counter& no_filter_chain_match;
  stats::Histogram& downstream_cx_length_ms;
};

// Limits shared by every listener of the process.
struct ConnectionLimits {
  uint64_t global_max = UINT64_MAX; // overload.global_downstream_max_connections
  std::atomic<uint64_t> global_active{0};
};

class ListenerConfig {
public:
  ListenerConfig(std::string name, Address address, uint32_t buffer_limit, uint32_t max_accept,
                 uint64_t max_connections, std::unique_ptr<FilterChainManager> chains,
                 stats::Store& store);
  const std::string& name() const { return name_; }
  // The configured address; the bound port may differ when it was 0.
  const Address& address() const { return address_; }
  void setBoundAddress(const Address& a) { address_ = a; }
  uint32_t bufferLimit() const { return buffer_limit_; }
  uint32_t maxAcceptPerEvent() const { return max_accept_; }
  uint64_t maxConnections() const { return max_connections_; }
  const FilterChainManager& filterChains() const { return *chains_; }
  ListenerStats& stats() const { return *stats_; }
  std::atomic<uint64_t>& activeConnections() const { return active_; }

  // What the accept path applies before the filter chain match (set before
  // the config is shared).
  struct AcceptOptions {
    // The envoy.filters.listener.original_dst listener filter (also implied by
    // use_original_dst, as in Envoy): the local address becomes the original
    // destination of a redirected connection.
    bool original_dst = false;
    // use_original_dst: a connection whose original destination is another
    // listener's address is handed to that listener.
    bool use_original_dst = false;
    // bind_to_port: false means no socket; the listener only takes hand-offs.
    bool bind_to_port = true;
  };
  void setAcceptOptions(const AcceptOptions& o) { accept_ = o; }
  const AcceptOptions& acceptOptions() const { return accept_; }

private:
  AcceptOptions accept_;
  std::string name_;
  Address address_;
  uint32_t buffer_limit_;
  uint32_t max_accept_;
  uint64_t max_connections_;
  std::unique_ptr<FilterChainManager> chains_;
  std::unique_ptr<ListenerStats> stats_;
  mutable std::atomic<uint64_t> active_{0};
};
using ListenerConfigConstSharedPtr = std::shared_ptr<const ListenerConfig>;

// The original destination of an accepted connection that netfilter
// redirected (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), if the kernel has one.
std::optional<Address> originalDestination(int fd, int family);

// Accepts on one worker. Thread: the worker's dispatcher thread only.
class ActiveListener {
public:
  // fd < 0: nothing to accept on (bind_to_port: false); connections come only
  // from other listeners (use_original_dst).
  ActiveListener(event::Dispatcher& dispatcher, ListenerConfigConstSharedPtr config, int fd,
                 ConnectionLimits& limits);
  ~ActiveListener();

  // Stops accepting (closes the socket); existing connections carry on.
  void stopListening();
  size_t connectionCount() const { return connection_count_; }
  // Closes every connection now (end of drain).
  void closeAllConnections();
  const ListenerConfig& config() const { return *config_; }

  // use_original_dst: the worker's listener for an address, or nullptr.
  using ListenerLookup = std::function<ActiveListener*(const Address&)>;
  void setListenerLookup(ListenerLookup lookup) { lookup_ = std::move(lookup); }

private:
  class ActiveConnection;
  void onAcceptEvent(uint32_t events);
  void onAcceptReady();
  void newConnection(int fd);
  // Limits, filter chain match and the connection; `local_restored` when
  // `local` is the original destination.
  void takeConnection(int fd, Address local, Address remote, bool local_restored);
  void removeConnection(ActiveConnection& c);
  // accept() ran out of file descriptors: accept the next connection with the
  // reserved fd and close it at once (counted), or retry later. False: stop.
  bool rejectWithReserveFd();

  event::Dispatcher& dispatcher_;
  ListenerConfigConstSharedPtr config_;
  int fd_;
  ConnectionLimits& limits_;
  int reserve_fd_; // kept open so that fd exhaustion can still refuse cleanly
  std::chrono::steady_clock::time_point last_fd_warning_{};
  event::TimerPtr accept_retry_timer_;
  event::FileEvent accept_event_;
  // The live connections (each ActiveConnection carries its links and is owned
  // through the list): no list node per connection.
  void link(std::unique_ptr<ActiveConnection> c);
  std::unique_ptr<ActiveConnection> unlink(ActiveConnection& c);
  IntrusiveList<ActiveConnection> connections_;
  size_t connection_count_ = 0;
  ListenerLookup lookup_;
};

} // namespace legate::network
