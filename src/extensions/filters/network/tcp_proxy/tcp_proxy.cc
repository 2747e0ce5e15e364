#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"

#include "common/logger.h"
#include "common/loop_time.h"
#include "runtime/runtime.h"
#include "upstream/cluster_manager.h"

namespace legate::extensions::tcp_proxy {
namespace {

spdlog::logger& filterLog() {
  static spdlog::logger& l = log::get("filter");
  return l;
}

// Owns an upstream connection whose downstream is gone until the upstream has
// written what it holds (or idles out), then deletes itself.
class UpstreamFlusher : public network::ConnectionCallbacks, public event::DeferredDeletable {
public:
  static void start(std::unique_ptr<network::Connection> conn, TcpProxyStats& stats,
                    std::chrono::milliseconds timeout) {
    auto* self = new UpstreamFlusher(std::move(conn), stats);
    self->conn_->addConnectionCallbacks(*self);
    if (timeout.count() > 0) {
      self->timer_ = self->conn_->dispatcher().createTimer([self] {
        self->conn_->close(network::ConnectionCloseType::NoFlush);
      });
      self->timer_->enableTimer(timeout);
    }
    self->conn_->close(network::ConnectionCloseType::FlushWrite);
  }
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected || done_) {
      return;
    }
    done_ = true;
    stats_.upstream_flush_active.dec();
    timer_.reset();
    auto& dispatcher = conn_->dispatcher();
    dispatcher.deferredDelete(std::move(conn_));
    dispatcher.deferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
  }

private:
  UpstreamFlusher(std::unique_ptr<network::Connection> conn, TcpProxyStats& stats)
      : conn_(std::move(conn)), stats_(stats) {
    stats_.upstream_flush_total.inc();
    stats_.upstream_flush_active.inc();
  }
  std::unique_ptr<network::Connection> conn_;
  TcpProxyStats& stats_;
  event::TimerPtr timer_;
  bool done_ = false;
};

} // namespace

// Bridges the upstream connection's events and bytes back to the filter.
class TcpProxyFilter::UpstreamCallbacks : public network::ConnectionCallbacks,
                                          public network::ReadFilter {
public:
  explicit UpstreamCallbacks(TcpProxyFilter& parent) : parent_(&parent) {}
  void detach() { parent_ = nullptr; }

  void onEvent(network::ConnectionEvent event) override {
    if (parent_) parent_->onUpstreamEvent(event);
  }
  void onAboveWriteBufferHighWatermark() override {
    if (parent_) parent_->onUpstreamAboveHigh();
  }
  void onBelowWriteBufferLowWatermark() override {
    if (parent_) parent_->onUpstreamBelowLow();
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onNewConnection() override { return network::FilterStatus::Continue; }
  network::FilterStatus onData(Buffer& data, bool end_stream) override {
    if (parent_) {
      parent_->onUpstreamData(data, end_stream);
    } else {
      data.drain(data.length());
    }
    return network::FilterStatus::StopIteration;
  }

private:
  TcpProxyFilter* parent_;
};

TcpProxyFilter::TcpProxyFilter(TcpProxyConfigConstSharedPtr config) : config_(std::move(config)) {}

TcpProxyFilter::~TcpProxyFilter() {
  // The downstream connection is being destroyed; make sure nothing upstream
  // still points here.
  finalize();
  releaseUpstream(false);
}

void TcpProxyFilter::initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) {
  read_callbacks_ = &callbacks;
  downstream_ = &callbacks.connection();
  downstream_->addConnectionCallbacks(*this);
  downstream_->enableHalfClose(true);
  TcpProxyStats& st = config_->stats();
  downstream_->setConnectionStats(&st.connection);
}

network::FilterStatus TcpProxyFilter::onNewConnection() {
  TcpProxyStats& st = config_->stats();
  st.downstream_cx_total.inc();
  info_.connection_id = downstream_->id();
  info_.filter_chain_name = config_->filterChainName();
  info_.downstream_local = downstream_->localAddress();
  info_.downstream_remote = downstream_->remoteAddress();
  // Nothing is read from the client until the upstream is there to take it.
  downstream_->readDisable(true);
  auto& dispatcher = downstream_->dispatcher();
  if (config_->idleTimeout().count() > 0) {
    idle_timer_ = dispatcher.createTimer([this] {
      config_->stats().idle_timeout.inc();
      closeDownstream(network::ConnectionCloseType::NoFlush, "idle_timeout");
    });
    idle_timer_->enableTimer(config_->idleTimeout());
  }
  if (config_->maxDownstreamConnectionDuration().count() > 0) {
    duration_timer_ = dispatcher.createTimer([this] {
      config_->stats().max_downstream_connection_duration.inc();
      info_.setResponseFlag(accesslog::kDurationTimeout);
      closeDownstream(network::ConnectionCloseType::NoFlush, "max_downstream_connection_duration");
    });
    duration_timer_->enableTimer(config_->maxDownstreamConnectionDuration());
  }
  const std::string& name = config_->pickCluster();
  cluster_ = config_->clusterManager().get(name);
  info_.upstream_cluster =
      cluster_ != nullptr ? std::string_view(cluster_->name()) : info_.keep(name);
  if (cluster_ == nullptr) {
    st.downstream_cx_no_route.inc();
    info_.setResponseFlag(accesslog::kNoClusterFound);
    closeDownstream(network::ConnectionCloseType::NoFlush, "no_cluster");
    return network::FilterStatus::StopIteration;
  }
  establishUpstream();
  return network::FilterStatus::StopIteration;
}

namespace {
// What tcp_proxy tells the balancer: the downstream connection's addresses.
struct ConnectionLbContext : upstream::LoadBalancerContext {
  explicit ConnectionLbContext(const network::Connection& c) : conn(c) {}
  const network::Address* downstreamRemoteAddress() const override { return &conn.remoteAddress(); }
  const network::Address* downstreamOriginalDestination() const override {
    return conn.localAddressRestored() ? &conn.localAddress() : nullptr;
  }
  const network::Connection& conn;
};
} // namespace

void TcpProxyFilter::establishUpstream() {
  upstream::ClusterStats& cs = cluster_->stats();
  ConnectionLbContext lb_ctx(*downstream_);
  host_ = cluster_->chooseHost(upstream::currentWorkerIndex(), &lb_ctx);
  if (!host_) {
    cs.upstream_cx_none_healthy.inc();
    info_.setResponseFlag(accesslog::kNoHealthyUpstream);
    closeDownstream(network::ConnectionCloseType::NoFlush, "no_healthy_upstream");
    return;
  }
  if (!cluster_->tryAcquireConnection()) {
    cs.upstream_cx_overflow.inc();
    info_.setResponseFlag(accesslog::kUpstreamOverflow);
    closeDownstream(network::ConnectionCloseType::NoFlush, "upstream_overflow");
    return;
  }
  holds_cx_slot_ = true;
  ++connect_attempts_;
  connect_timed_out_ = false;
  cs.upstream_cx_total.inc();
  cs.upstream_cx_active.inc();
  host_->stats().cx_total.fetch_add(1, std::memory_order_relaxed);
  host_->stats().cx_active.fetch_add(1, std::memory_order_relaxed);
  host_->stats().rq_active.fetch_add(1, std::memory_order_relaxed); // least request: one per connection
  upstream::HostStats::add(host_->stats().rq_total);
  info_.upstream_host = host_->address();
  connect_start_ = loopNow();

  auto& dispatcher = downstream_->dispatcher();
  upstream_callbacks_ = std::make_shared<UpstreamCallbacks>(*this);
  upstream_ = network::Connection::connectTo(dispatcher, host_->address(),
                                             network::RawBufferSocket::create());
  upstream_->setBufferLimits(cluster_->perConnectionBufferLimit());
  upstream_->enableHalfClose(true);
  upstream_->setConnectionStats(&cluster_->connectionStats());
  upstream_->addConnectionCallbacks(*upstream_callbacks_);
  upstream_->addReadFilter(upstream_callbacks_);
  connect_timer_ = dispatcher.createTimer([this] {
    connect_timed_out_ = true;
    if (upstream_) {
      upstream_->closeWithFailure("connect timeout");
    }
  });
  connect_timer_->enableTimer(cluster_->connectTimeout());
}

void TcpProxyFilter::onUpstreamEvent(network::ConnectionEvent event) {
  upstream::ClusterStats& cs = cluster_->stats();
  if (event == network::ConnectionEvent::Connected) {
    connected_ = true;
    connect_timer_.reset();
    cs.upstream_cx_connect_ms.record(static_cast<uint64_t>(msSince(connect_start_)));
    upstream_start_ = loopNow();
    info_.upstream_local = upstream_->localAddress();
    info_.upstream_connection_id = upstream_->id();
    upstream_->initializeReadFilters();
    const bool spliced = runtime::snapshot()->getBoolean("legate.tcp_proxy.splice", false) &&
                         downstream_->spliceWith(*upstream_, *this);
    filterLog().debug("[C{}] connected upstream {} ({}){}", downstream_->id(),
                      host_->address().asString(), cluster_->name(), spliced ? ", splicing" : "");
    downstream_->readDisable(false);
    if (auto* od = cluster_->outlierDetector()) {
      od->putResult(host_, upstream::OutlierResult::LocalOriginConnectSuccessFinal);
    }
    return;
  }
  // The upstream closed.
  if (!connected_) {
    onConnectFailure();
    return;
  }
  cs.upstream_cx_destroy.inc();
  if (event == network::ConnectionEvent::RemoteClose) {
    cs.upstream_cx_destroy_remote.inc();
  } else {
    cs.upstream_cx_destroy_local.inc();
  }
  releaseUpstream(false);
  closeDownstream(network::ConnectionCloseType::FlushWrite, "upstream_closed");
}

void TcpProxyFilter::onConnectFailure() {
  upstream::ClusterStats& cs = cluster_->stats();
  connect_timer_.reset();
  if (connect_timed_out_) {
    cs.upstream_cx_connect_timeout.inc();
  } else {
    cs.upstream_cx_connect_fail.inc();
  }
  host_->stats().cx_connect_fail.fetch_add(1, std::memory_order_relaxed);
  if (auto* od = cluster_->outlierDetector()) {
    od->putResult(host_, connect_timed_out_ ? upstream::OutlierResult::LocalOriginTimeout
                                            : upstream::OutlierResult::LocalOriginConnectFailed);
  }
  info_.setResponseFlag(accesslog::kUpstreamConnectionFailure);
  std::string& reason = info_.rare().upstream_transport_failure_reason;
  reason = connect_timed_out_ ? "connect timeout" : upstream_->failureReason();
  filterLog().debug("[C{}] upstream connect to {} failed: {}", downstream_->id(),
                    host_->address().asString(), reason);
  releaseUpstream(false);
  if (connect_attempts_ < config_->maxConnectAttempts()) {
    establishUpstream();
    return;
  }
  cs.upstream_cx_connect_attempts_exceeded.inc();
  info_.setResponseFlag(accesslog::kUpstreamRetryLimitExceeded);
  closeDownstream(network::ConnectionCloseType::NoFlush, "upstream_connect_failed");
}

network::FilterStatus TcpProxyFilter::onData(Buffer& data, bool end_stream) {
  if (end_stream) {
    downstream_end_stream_ = true;
  }
  if (upstream_ && connected_) {
    resetIdleTimer();
    upstream_->write(data, end_stream);
  }
  return network::FilterStatus::StopIteration;
}

void TcpProxyFilter::onUpstreamData(Buffer& data, bool end_stream) {
  resetIdleTimer();
  downstream_->write(data, end_stream);
}

void TcpProxyFilter::resetIdleTimer() {
  if (idle_timer_) {
    idle_timer_->enableTimer(config_->idleTimeout());
  }
}

void TcpProxyFilter::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::Connected) {
    return;
  }
  // The downstream closed: a peer close lets the upstream flush what it holds.
  idle_timer_.reset();
  duration_timer_.reset();
  if (upstream_ && !connected_) {
    // Still connecting: nothing to flush.
    releaseUpstream(false);
  } else {
    // The peer closed, or the downstream finished cleanly in both directions
    // (its FIN was forwarded): what is queued for the upstream is still owed.
    releaseUpstream(event == network::ConnectionEvent::RemoteClose || downstream_end_stream_);
  }
  finalize();
}

void TcpProxyFilter::onAboveWriteBufferHighWatermark() {
  // The client reads slower than the upstream sends: stop reading upstream.
  if (upstream_ && !upstream_read_disabled_by_downstream_) {
    upstream_read_disabled_by_downstream_ = true;
    cluster_->stats().upstream_flow_control_paused_reading_total.inc();
    upstream_->readDisable(true);
  }
}

void TcpProxyFilter::onBelowWriteBufferLowWatermark() {
  if (upstream_ && upstream_read_disabled_by_downstream_) {
    upstream_read_disabled_by_downstream_ = false;
    cluster_->stats().upstream_flow_control_resumed_reading_total.inc();
    upstream_->readDisable(false);
  }
}

void TcpProxyFilter::onUpstreamAboveHigh() {
  // The upstream reads slower than the client sends: stop reading the client.
  if (!downstream_read_disabled_by_upstream_) {
    downstream_read_disabled_by_upstream_ = true;
    config_->stats().downstream_flow_control_paused_reading_total.inc();
    downstream_->readDisable(true);
  }
}

void TcpProxyFilter::onUpstreamBelowLow() {
  if (downstream_read_disabled_by_upstream_) {
    downstream_read_disabled_by_upstream_ = false;
    config_->stats().downstream_flow_control_resumed_reading_total.inc();
    downstream_->readDisable(false);
  }
}

void TcpProxyFilter::onSpliceReading(network::Connection& reader, bool paused) {
  // The counters the watermark callbacks above keep when copying.
  if (&reader == upstream_.get()) {
    auto& st = cluster_->stats();
    (paused ? st.upstream_flow_control_paused_reading_total
            : st.upstream_flow_control_resumed_reading_total).inc();
  } else {
    auto& st = config_->stats();
    (paused ? st.downstream_flow_control_paused_reading_total
            : st.downstream_flow_control_resumed_reading_total).inc();
  }
}

void TcpProxyFilter::closeDownstream(network::ConnectionCloseType type, const char* details) {
  if (info_.rare().termination_details.empty()) {
    info_.rare().termination_details = details;
  }
  if (downstream_->state() != network::Connection::State::Closed) {
    downstream_->close(type);
  }
}

void TcpProxyFilter::releaseUpstream(bool flush) {
  connect_timer_.reset();
  if (!upstream_) {
    return;
  }
  upstream_callbacks_->detach();
  upstream_->removeConnectionCallbacks(*upstream_callbacks_);
  if (holds_cx_slot_) {
    holds_cx_slot_ = false;
    cluster_->releaseConnection();
    cluster_->stats().upstream_cx_active.dec();
    host_->stats().cx_active.fetch_sub(1, std::memory_order_relaxed);
    host_->stats().rq_active.fetch_sub(1, std::memory_order_relaxed);
    if (connected_) {
      cluster_->stats().upstream_cx_length_ms.record(static_cast<uint64_t>(msSince(upstream_start_)));
    }
  }
  auto& dispatcher = upstream_->dispatcher();
  if (flush && upstream_->state() == network::Connection::State::Open &&
      upstream_->writeBufferLength() > 0) {
    UpstreamFlusher::start(std::move(upstream_), config_->stats(), config_->idleTimeout());
  } else {
    upstream_->close(network::ConnectionCloseType::NoFlush);
    dispatcher.deferredDelete(std::move(upstream_));
  }
  // The connection's filter list still holds the (detached) callbacks, so they
  // outlive any frame of theirs that may be on the stack right now.
  upstream_callbacks_.reset();
}

void TcpProxyFilter::finalize() {
  if (finalized_) {
    return;
  }
  finalized_ = true;
  info_.end_steady = loopNow();
  info_.bytes_received = downstream_ ? downstream_->bytesReceived() : 0;
  info_.bytes_sent = downstream_ ? downstream_->bytesSent() : 0;
  if (info_.rare().termination_details.empty()) {
    info_.rare().termination_details = "downstream_closed";
  }
  for (const auto& log : config_->accessLogs()) {
    log->log(info_);
  }
}

} // namespace legate::extensions::tcp_proxy
