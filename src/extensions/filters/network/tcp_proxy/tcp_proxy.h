#pragma once

// The per-connection tcp_proxy filter: picks a cluster and host, connects
// upstream (retrying up to max_connect_attempts), then moves bytes both ways
// with half-close and watermark flow control, and logs the connection at its end.
//
// Thread and lifetime: lives on the downstream connection's worker, owned by
// that connection's filter list. The upstream connection is owned here; if the
// downstream goes away while the upstream still has bytes to flush, the
// upstream is handed to an UpstreamFlusher that owns it until it is done.
//
// Bytes are copied through user space. With runtime key legate.tcp_proxy.splice
// true, the two connections splice once connected (zero-copy, socket to socket
// through kernel pipes) when no other filter is on the connection: less CPU in
// the proxy, but a sender on the same host (loopback) pays for its socket pages
// staying pinned longer; docs/benchmarks-history.md (2026-12-04, evening) has the measurements.

#include <memory>

#include "accesslog/stream_info.h"
#include "event/dispatcher.h"
#include "extensions/filters/network/tcp_proxy/config.h"
#include "network/connection.h"
#include "network/filter.h"
#include "upstream/cluster.h"

namespace legate::extensions::tcp_proxy {

class TcpProxyFilter : public network::ReadFilter,
                       public network::ConnectionCallbacks,
                       public network::SpliceObserver {
public:
  explicit TcpProxyFilter(TcpProxyConfigConstSharedPtr config);
  ~TcpProxyFilter() override;

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(Buffer& data, bool end_stream) override;

  // network::ConnectionCallbacks, for the downstream connection.
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // network::SpliceObserver: bytes moved socket to socket count as activity;
  // a full pipe pauses its reader as a full write buffer does.
  void onSpliced(uint64_t) override { resetIdleTimer(); }
  void onSpliceReading(network::Connection& reader, bool paused) override;

private:
  class UpstreamCallbacks;
  friend class UpstreamCallbacks;

  void establishUpstream();
  void onUpstreamEvent(network::ConnectionEvent event);
  void onUpstreamData(Buffer& data, bool end_stream);
  void onConnectFailure();
  void onUpstreamAboveHigh();
  void onUpstreamBelowLow();
  void resetIdleTimer();
  void closeDownstream(network::ConnectionCloseType type, const char* details);
  // Releases the upstream: closes it, or hands it to a flusher when asked to
  // flush and it still has bytes to write.
  void releaseUpstream(bool flush);
  void finalize();

  TcpProxyConfigConstSharedPtr config_;
  network::ReadFilterCallbacks* read_callbacks_ = nullptr;
  network::Connection* downstream_ = nullptr;
  // Shared with the upstream connection's filter list, which keeps it alive
  // (detached) for as long as that connection exists.
  std::shared_ptr<UpstreamCallbacks> upstream_callbacks_;
  std::unique_ptr<network::Connection> upstream_;
  const upstream::Cluster* cluster_ = nullptr;
  upstream::HostConstSharedPtr host_;
  bool holds_cx_slot_ = false;
  bool connected_ = false;
  bool connect_timed_out_ = false;
  bool downstream_read_disabled_by_upstream_ = false;
  bool upstream_read_disabled_by_downstream_ = false;
  bool finalized_ = false;
  bool downstream_end_stream_ = false; // the client's FIN was seen (and forwarded)
  uint32_t connect_attempts_ = 0;
  std::chrono::steady_clock::time_point connect_start_;
  std::chrono::steady_clock::time_point upstream_start_;
  event::TimerPtr connect_timer_;
  event::TimerPtr idle_timer_;
  event::TimerPtr duration_timer_;
  accesslog::StreamInfo info_;
};

} // namespace legate::extensions::tcp_proxy
