#pragma once

// HTTP/1.1 connection pools to upstream hosts: one pool per host per worker.
//
// A pool keeps idle keep-alive connections for reuse, opens new ones (up to
// the cluster's max_connections) when none is idle, and queues requests while
// connections are being established (up to max_pending_requests). A
// connection serves one request at a time; it returns to the idle list when
// both the request and the response are complete and the codec says it can
// be reused, and is closed after max_requests_per_connection requests or
// when idle for the idle timeout.
//
// The idle connection used next is the one that went idle last (as Envoy):
// its socket and state are still warm in the caches, and the connections a
// burst opened and the steady load no longer needs stay at the back until
// their idle timeout closes them.
//
// Thread and lifetime: owned by the worker's PoolRegistry, used on that
// worker only. Callers hold a Cancellable for a pending request and must
// cancel it if they go away before the pool calls back.

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "event/dispatcher.h"
#include "http/codec.h"
#include "network/connection.h"
#include "upstream/cluster.h"

namespace legate::upstream {

enum class PoolFailureReason { Overflow, ConnectionFailure, Timeout };

class PoolCallbacks {
public:
  virtual ~PoolCallbacks() = default;
  virtual void onPoolFailure(PoolFailureReason reason, std::string_view details) = 0;
  // The request may now be encoded; responses go to the decoder given to
  // newStream(). upstream is the connection it goes on (its local address and id
  // are what access logs show).
  virtual void onPoolReady(http::StreamEncoder& request_encoder,
                           const network::Connection& upstream) = 0;
};

class Cancellable {
public:
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

class HttpConnPool {
public:
  HttpConnPool(event::Dispatcher& dispatcher, const Cluster& cluster, HostConstSharedPtr host);
  ~HttpConnPool();

  // Either calls back at once (ready or failed: returns nullptr) or queues the
  // request and returns a handle to cancel it.
  Cancellable* newStream(http::StreamDecoder& response_decoder, PoolCallbacks& callbacks);

  const Host& host() const { return *host_; }
  // The host left the cluster: idle connections close now, busy ones close
  // when their request ends (unless a queued request takes them over).
  void drain();
  bool draining() const { return draining_; }
  bool empty() const {
    return connecting_.empty() && ready_.empty() && busy_.empty() && pending_.empty();
  }
  size_t idleCount() const { return ready_.size(); }
  size_t busyCount() const { return busy_.size(); }
  size_t pendingCount() const { return pending_.size(); }

private:
  class ActiveClient;
  struct PendingRequest;
  friend class ActiveClient;

  void createClient();
  void attach(ActiveClient& client, http::StreamDecoder& decoder, PoolCallbacks& callbacks);
  void onClientConnected(ActiveClient& client);
  void onClientClosed(ActiveClient& client, bool during_connect, bool timed_out,
                      std::string_view reason);
  void onStreamDone(ActiveClient& client, bool reusable);
  void processPending();
  void failPending(PoolFailureReason reason, std::string_view details);
  using ClientList = std::list<std::unique_ptr<ActiveClient>>;
  // Moves client (in O(1): it knows its place) to the front or the back of to.
  void moveClient(ActiveClient& client, ClientList& to, bool to_front);

  event::Dispatcher& dispatcher_;
  const Cluster& cluster_;
  HostConstSharedPtr host_;
  ClientList connecting_;
  ClientList ready_; // the most recently idle first
  ClientList busy_;
  std::list<std::unique_ptr<PendingRequest>> pending_;
  bool draining_ = false;
};

// The pools of one worker, by host. Installed per worker thread.
class PoolRegistry {
public:
  explicit PoolRegistry(event::Dispatcher& dispatcher) : dispatcher_(dispatcher) {}
  HttpConnPool& get(const Cluster& cluster, const HostConstSharedPtr& host);

  // Hosts that left their cluster: drain their pools; pools drained earlier
  // that are now empty are dropped.
  void drainHosts(const std::vector<HostConstSharedPtr>& hosts);

  // The registry of the calling worker thread (created on first use).
  static PoolRegistry& forThread(event::Dispatcher& dispatcher);
  // The calling thread's registry if it has one, else nullptr.
  static PoolRegistry* existingForThread();
  // Drops the calling thread's pools (worker shutdown, before its dispatcher goes).
  static void clearForThread();

private:
  event::Dispatcher& dispatcher_;
  std::unordered_map<const Host*, std::unique_ptr<HttpConnPool>> pools_;
};

} // namespace legate::upstream
