#include "upstream/http_conn_pool.h"

#include "common/logger.h"
#include "common/loop_time.h"
#include "http/http1/client_connection.h"

namespace legate::upstream {
namespace {

spdlog::logger& poolLog() {
  static spdlog::logger& l = log::get("upstream");
  return l;
}


} // namespace

struct HttpConnPool::PendingRequest : public Cancellable {
  PendingRequest(HttpConnPool& p, http::StreamDecoder& d, PoolCallbacks& c)
      : pool(p), decoder(d), callbacks(c) {}
  void cancel() override {
    for (auto it = pool.pending_.begin(); it != pool.pending_.end(); ++it) {
      if (it->get() == this) {
        pool.cluster_.releasePending();
        pool.cluster_.stats().upstream_rq_pending_active.dec();
        pool.pending_.erase(it); // destroys this
        return;
      }
    }
  }
  HttpConnPool& pool;
  http::StreamDecoder& decoder;
  PoolCallbacks& callbacks;
};

// One upstream connection with its codec, serving one request at a time.
class HttpConnPool::ActiveClient : public network::ConnectionCallbacks,
                                   public network::ReadFilter,
                                   public http::StreamDecoder,
                                   public http::StreamEncoder,
                                   private http::StreamCallbacks {
public:
  explicit ActiveClient(HttpConnPool& pool) : pool_(pool) {
    const Cluster& cluster = pool_.cluster_;
    ClusterStats& cs = cluster.stats();
    conn_ = network::Connection::connectTo(pool_.dispatcher_, pool_.host_->address(),
                                           network::RawBufferSocket::create());
    conn_->setBufferLimits(cluster.perConnectionBufferLimit());
    conn_->setConnectionStats(&cluster.connectionStats());
    conn_->addConnectionCallbacks(*this);
    conn_->addReadFilter(std::shared_ptr<network::ReadFilter>(this, [](network::ReadFilter*) {}));
    http::CodecSettings settings;
    codec_ = std::make_unique<http::http1::Http1ClientConnection>(
        [this](Buffer& data, bool end_stream) {
          conn_->write(data, false);
          if (end_stream) close_after_ = true;
        },
        settings, [this](bool disable) { conn_->readDisable(disable); });
    cs.upstream_cx_total.inc();
    cs.upstream_cx_http1_total.inc();
    cs.upstream_cx_active.inc();
    pool_.host_->stats().cx_total.fetch_add(1, std::memory_order_relaxed);
    pool_.host_->stats().cx_active.fetch_add(1, std::memory_order_relaxed);
    connect_start_ = loopNow();
    remaining_ = cluster.maxRequestsPerConnection();
    connect_timer_ = pool_.dispatcher_.createTimer([this] {
      timed_out_ = true;
      conn_->closeWithFailure("connect timeout");
    });
    connect_timer_->enableTimer(cluster.connectTimeout());
  }

  ~ActiveClient() override {
    // Our read filter registration is non-owning; the connection must be
    // gone (or deferred) before this object.
  }

  // Binds a request stream to this connection.
  void attach(http::StreamDecoder& decoder) {
    if (idle_timer_) idle_timer_->disableTimer();
    inner_decoder_ = &decoder;
    request_complete_ = false;
    response_complete_ = false;
    stream_active_ = true;
    inner_encoder_ = &codec_->newStream(*this);
    // Resets the codec decides on (e.g. a request it cannot encode) reach us.
    inner_encoder_->addCallbacks(*this);
    ++requests_;
  }

  // --- network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected) {
      connect_timer_.reset();
      connected_ = true;
      conn_->initializeReadFilters();
      pool_.cluster_.stats().upstream_cx_connect_ms.record(
          static_cast<uint64_t>(msSince(connect_start_)));
      pool_.onClientConnected(*this);
      return;
    }
    if (closed_) return;
    closed_ = true;
    connect_timer_.reset();
    // Possibly inside its own callback: disarm it; it goes with this client.
    if (idle_timer_) idle_timer_->disableTimer();
    if (stream_active_ && !response_complete_) {
      // A close-delimited body ends here; otherwise the stream is cut.
      codec_->onRemoteClose();
    }
    std::string reason = conn_->failureReason();
    pool_.onClientClosed(*this, !connected_, timed_out_, reason);
  }
  // (Also the StreamCallbacks watermark hooks: the codec's stream buffers
  // nothing of its own, so both mean the connection's write buffer.)
  void onAboveWriteBufferHighWatermark() override {
    for (auto* cb : stream_callbacks_) cb->onAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    for (auto* cb : stream_callbacks_) cb->onBelowWriteBufferLowWatermark();
  }

  // --- network::ReadFilter: upstream bytes into the codec
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onNewConnection() override { return network::FilterStatus::Continue; }
  network::FilterStatus onData(Buffer& data, bool end_stream) override {
    const absl::Status st = codec_->dispatch(data);
    if (!st.ok()) {
      poolLog().debug("upstream {} protocol error: {}", pool_.host_->address().asString(),
                      std::string(st.message()));
      protocol_error_ = std::string(st.message());
      data.drain(data.length());
      conn_->close(network::ConnectionCloseType::NoFlush);
      return network::FilterStatus::StopIteration;
    }
    if (!data.empty() && !stream_active_) {
      // Bytes with no request outstanding: the connection is unusable.
      data.drain(data.length());
      conn_->close(network::ConnectionCloseType::NoFlush);
    }
    return network::FilterStatus::StopIteration;
  }

  // --- http::StreamDecoder: the response, passed on to the request's owner
  void decode1xxHeaders(http::HeaderMapPtr headers) override {
    if (inner_decoder_) inner_decoder_->decode1xxHeaders(std::move(headers));
  }
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
    if (end_stream) response_complete_ = true;
    if (inner_decoder_) inner_decoder_->decodeHeaders(std::move(headers), end_stream);
    maybeStreamDone();
  }
  void decodeData(Buffer& data, bool end_stream) override {
    if (end_stream) response_complete_ = true;
    if (inner_decoder_) {
      inner_decoder_->decodeData(data, end_stream);
    } else {
      data.drain(data.length());
    }
    maybeStreamDone();
  }
  void decodeTrailers(http::HeaderMapPtr trailers) override {
    response_complete_ = true;
    if (inner_decoder_) inner_decoder_->decodeTrailers(std::move(trailers));
    maybeStreamDone();
  }

  // --- http::StreamEncoder: the request, from the request's owner
  void encode1xxHeaders(const http::HeaderMap& h) override { inner_encoder_->encode1xxHeaders(h); }
  void encodeHeaders(const http::HeaderMap& h, bool end_stream) override {
    if (end_stream) request_complete_ = true;
    inner_encoder_->encodeHeaders(h, end_stream);
    maybeStreamDone();
  }
  void encodeData(Buffer& data, bool end_stream) override {
    if (end_stream) request_complete_ = true;
    inner_encoder_->encodeData(data, end_stream);
    maybeStreamDone();
  }
  void encodeTrailers(const http::HeaderMap& t) override {
    request_complete_ = true;
    inner_encoder_->encodeTrailers(t);
    maybeStreamDone();
  }
  void resetStream(http::StreamResetReason reason) override {
    // The owner gave up on the request: HTTP/1 can only drop the connection.
    if (!stream_active_) return;
    pool_.cluster_.stats().upstream_rq_tx_reset.inc();
    detachStream();
    conn_->close(network::ConnectionCloseType::NoFlush);
  }
  void readDisable(bool disable) override { conn_->readDisable(disable); }
  void addCallbacks(http::StreamCallbacks& cb) override { stream_callbacks_.push_back(&cb); }
  void removeCallbacks(http::StreamCallbacks& cb) override { std::erase(stream_callbacks_, &cb); }
  http::Protocol protocol() const override { return http::Protocol::Http11; }

  // --- http::StreamCallbacks: the codec reset the stream. While the
  // connection is closing, onClientClosed reports it instead.
  void onResetStream(http::StreamResetReason reason, std::string_view details) override {
    if (closed_ || !stream_active_) return;
    resetActiveStream(reason, details);
    conn_->close(network::ConnectionCloseType::NoFlush);
  }

  // The stream was cut by the connection: tell its owner.
  void resetActiveStream(http::StreamResetReason reason, std::string_view details) {
    if (!stream_active_) return;
    auto callbacks = stream_callbacks_;
    detachStream();
    for (auto* cb : callbacks) cb->onResetStream(reason, details);
  }

  void detachStream() {
    stream_active_ = false;
    inner_decoder_ = nullptr;
    stream_callbacks_.clear();
  }

  void maybeStreamDone() {
    if (!stream_active_ || !request_complete_ || !response_complete_) return;
    detachStream();
    const bool limit_reached = remaining_ > 0 && requests_ >= remaining_;
    if (limit_reached) pool_.cluster_.stats().upstream_cx_max_requests.inc();
    const bool reusable = !close_after_ && !limit_reached && codec_->isReusable() && !closed_;
    pool_.onStreamDone(*this, reusable);
  }

  void startIdleTimer() {
    const auto timeout = pool_.cluster_.idleTimeout();
    if (timeout.count() == 0) return;
    if (!idle_timer_) {
      // Created once per connection and re-armed on each return to the pool.
      idle_timer_ = pool_.dispatcher_.createTimer([this] {
        pool_.cluster_.stats().upstream_cx_idle_timeout.inc();
        conn_->close(network::ConnectionCloseType::NoFlush);
      });
    }
    idle_timer_->enableTimer(timeout);
  }

  network::Connection& connection() { return *conn_; }
  std::unique_ptr<network::Connection> releaseConnection() { return std::move(conn_); }
  bool streamActive() const { return stream_active_; }
  const std::string& protocolError() const { return protocol_error_; }
  // The pool list the client is in, and its place there.
  ClientList* list = nullptr;
  ClientList::iterator pos;

private:
  HttpConnPool& pool_;
  std::unique_ptr<network::Connection> conn_;
  std::unique_ptr<http::http1::Http1ClientConnection> codec_;
  http::StreamDecoder* inner_decoder_ = nullptr;
  http::StreamEncoder* inner_encoder_ = nullptr;
  std::vector<http::StreamCallbacks*> stream_callbacks_;
  event::TimerPtr connect_timer_;
  event::TimerPtr idle_timer_;
  std::chrono::steady_clock::time_point connect_start_;
  uint64_t requests_ = 0;
  uint64_t remaining_ = 0; // max requests on this connection (0 = unlimited)
  bool connected_ = false;
  bool closed_ = false;
  bool timed_out_ = false;
  bool close_after_ = false;
  bool stream_active_ = false;
  bool request_complete_ = false;
  bool response_complete_ = false;
  std::string protocol_error_;
};

HttpConnPool::HttpConnPool(event::Dispatcher& dispatcher, const Cluster& cluster,
                           HostConstSharedPtr host)
    : dispatcher_(dispatcher), cluster_(cluster), host_(std::move(host)) {}

HttpConnPool::~HttpConnPool() {
  failPending(PoolFailureReason::ConnectionFailure, "pool destroyed");
  for (auto* list : {&connecting_, &ready_, &busy_}) {
    while (!list->empty()) {
      // Closing raises the close event, which removes the client.
      const size_t before = list->size();
      list->front()->connection().close(network::ConnectionCloseType::NoFlush);
      if (list->size() == before) list->pop_front();
    }
  }
}

Cancellable* HttpConnPool::newStream(http::StreamDecoder& response_decoder,
                                     PoolCallbacks& callbacks) {
  if (!ready_.empty()) {
    ActiveClient& client = *ready_.front();
    moveClient(client, busy_, false);
    attach(client, response_decoder, callbacks);
    return nullptr;
  }
  ClusterStats& cs = cluster_.stats();
  if (!cluster_.tryAcquirePending()) {
    cs.upstream_rq_pending_overflow.inc();
    callbacks.onPoolFailure(PoolFailureReason::Overflow, "pending requests overflow");
    return nullptr;
  }
  cs.upstream_rq_pending_total.inc();
  cs.upstream_rq_pending_active.inc();
  // One new connection per waiting request, as far as max_connections allows;
  // otherwise the request waits for a busy connection to free up.
  if (pending_.size() >= connecting_.size()) {
    if (cluster_.tryAcquireConnection()) {
      createClient();
    } else {
      cs.upstream_cx_overflow.inc();
      if (busy_.empty() && connecting_.empty()) {
        cluster_.releasePending();
        cs.upstream_rq_pending_active.dec();
        callbacks.onPoolFailure(PoolFailureReason::Overflow, "connections overflow");
        return nullptr;
      }
    }
  }
  pending_.push_back(std::make_unique<PendingRequest>(*this, response_decoder, callbacks));
  return pending_.back().get();
}

void HttpConnPool::createClient() {
  auto client = std::make_unique<ActiveClient>(*this);
  ActiveClient& c = *client;
  c.list = &connecting_;
  c.pos = connecting_.insert(connecting_.end(), std::move(client));
}

void HttpConnPool::moveClient(ActiveClient& client, ClientList& to, bool to_front) {
  // splice keeps the iterator valid; it now points into `to`.
  to.splice(to_front ? to.begin() : to.end(), *client.list, client.pos);
  client.list = &to;
}

void HttpConnPool::attach(ActiveClient& client, http::StreamDecoder& decoder,
                          PoolCallbacks& callbacks) {
  client.attach(decoder);
  callbacks.onPoolReady(client, client.connection());
}

void HttpConnPool::onClientConnected(ActiveClient& client) {
  if (!pending_.empty()) {
    auto req = std::move(pending_.front());
    pending_.pop_front();
    cluster_.releasePending();
    cluster_.stats().upstream_rq_pending_active.dec();
    moveClient(client, busy_, false);
    attach(client, req->decoder, req->callbacks);
    return;
  }
  moveClient(client, ready_, true);
  client.startIdleTimer();
}

void HttpConnPool::onStreamDone(ActiveClient& client, bool reusable) {
  if (!reusable || (draining_ && pending_.empty())) {
    client.connection().close(network::ConnectionCloseType::NoFlush);
    return;
  }
  if (!pending_.empty()) {
    auto req = std::move(pending_.front());
    pending_.pop_front();
    cluster_.releasePending();
    cluster_.stats().upstream_rq_pending_active.dec();
    attach(client, req->decoder, req->callbacks);
    return;
  }
  moveClient(client, ready_, true);
  client.startIdleTimer();
}

void HttpConnPool::onClientClosed(ActiveClient& client, bool during_connect, bool timed_out,
                                  std::string_view reason) {
  ClusterStats& cs = cluster_.stats();
  cluster_.releaseConnection();
  cs.upstream_cx_active.dec();
  cs.upstream_cx_destroy.inc();
  host_->stats().cx_active.fetch_sub(1, std::memory_order_relaxed);
  std::unique_ptr<ActiveClient> owned = std::move(*client.pos);
  client.list->erase(client.pos);
  if (during_connect) {
    if (timed_out) {
      cs.upstream_cx_connect_timeout.inc();
    } else {
      cs.upstream_cx_connect_fail.inc();
    }
    host_->stats().cx_connect_fail.fetch_add(1, std::memory_order_relaxed);
    // Requests that no remaining connection (connecting, or busy and later
    // reusable) can serve fail now rather than wait for nothing.
    while (!pending_.empty() && pending_.size() > connecting_.size() && busy_.empty()) {
      auto req = std::move(pending_.front());
      pending_.pop_front();
      cluster_.releasePending();
      cs.upstream_rq_pending_active.dec();
      cs.upstream_rq_pending_failure_eject.inc();
      req->callbacks.onPoolFailure(timed_out ? PoolFailureReason::Timeout
                                             : PoolFailureReason::ConnectionFailure,
                                   reason);
    }
  } else if (client.streamActive()) {
    cs.upstream_cx_destroy_with_active_rq.inc();
    const std::string details = client.protocolError().empty()
                                    ? "upstream connection closed"
                                    : client.protocolError();
    client.resetActiveStream(client.protocolError().empty()
                                 ? http::StreamResetReason::ConnectionTermination
                                 : http::StreamResetReason::ProtocolError,
                             details);
  }
  processPending();
  if (owned) {
    // We are inside the connection's close callback: both go after it returns.
    dispatcher_.deferredDelete(owned->releaseConnection());
    struct Holder : event::DeferredDeletable {
      explicit Holder(std::unique_ptr<ActiveClient> c) : client(std::move(c)) {}
      std::unique_ptr<ActiveClient> client;
    };
    dispatcher_.deferredDelete(std::make_unique<Holder>(std::move(owned)));
  }
}

void HttpConnPool::processPending() {
  // A connection went away: waiting requests that no connecting client will
  // serve get a new connection where max_connections allows. With none
  // possible and nothing left to free up, they fail as an overflow rather
  // than wait for nothing.
  ClusterStats& cs = cluster_.stats();
  while (pending_.size() > connecting_.size()) {
    if (cluster_.tryAcquireConnection()) {
      createClient();
      continue;
    }
    cs.upstream_cx_overflow.inc();
    if (!busy_.empty() || !connecting_.empty()) {
      return;
    }
    auto req = std::move(pending_.front());
    pending_.pop_front();
    cluster_.releasePending();
    cs.upstream_rq_pending_active.dec();
    cs.upstream_rq_pending_overflow.inc();
    req->callbacks.onPoolFailure(PoolFailureReason::Overflow, "connections overflow");
  }
}

void HttpConnPool::failPending(PoolFailureReason reason, std::string_view details) {
  while (!pending_.empty()) {
    auto req = std::move(pending_.front());
    pending_.pop_front();
    cluster_.releasePending();
    cluster_.stats().upstream_rq_pending_active.dec();
    req->callbacks.onPoolFailure(reason, details);
  }
}

namespace {
thread_local std::unique_ptr<PoolRegistry> tls_registry;
}

void HttpConnPool::drain() {
  draining_ = true;
  while (!ready_.empty()) {
    const size_t before = ready_.size();
    ready_.front()->connection().close(network::ConnectionCloseType::NoFlush);
    if (ready_.size() == before) ready_.pop_front();
  }
}

void PoolRegistry::drainHosts(const std::vector<HostConstSharedPtr>& hosts) {
  for (const auto& h : hosts) {
    auto it = pools_.find(h.get());
    if (it != pools_.end()) {
      it->second->drain();
    }
  }
  // Pools drained earlier that have nothing left go now (this one's newly
  // drained ones too, if they had no active request).
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (it->second->draining() && it->second->empty()) {
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
}

PoolRegistry* PoolRegistry::existingForThread() { return tls_registry.get(); }

HttpConnPool& PoolRegistry::get(const Cluster& cluster, const HostConstSharedPtr& host) {
  auto& slot = pools_[host.get()];
  if (!slot) {
    slot = std::make_unique<HttpConnPool>(dispatcher_, cluster, host);
  }
  return *slot;
}

PoolRegistry& PoolRegistry::forThread(event::Dispatcher& dispatcher) {
  if (!tls_registry) {
    tls_registry = std::make_unique<PoolRegistry>(dispatcher);
  }
  return *tls_registry;
}

void PoolRegistry::clearForThread() { tls_registry.reset(); }

} // namespace legate::upstream
