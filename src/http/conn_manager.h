#pragma once

// The HTTP connection manager: the network filter that turns a downstream
// connection into HTTP streams (through a codec), runs each stream through
// the configured HTTP filters (the router last), and writes the responses.
//
// Thread and lifetime: one per downstream connection, on its worker, owned by
// the connection's filter list. Streams are owned here and destroyed through
// the dispatcher's deferred-delete list (they may be on the stack when they end).

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "accesslog/stream_info.h"
#include "event/dispatcher.h"
#include "http/codec.h"
#include "http/conn_manager_config.h"
#include "http/filter.h"
#include "network/connection.h"
#include "network/filter.h"

namespace legate::http {

class ConnectionManager : public network::ReadFilter,
                          public network::ConnectionCallbacks,
                          public ServerConnectionCallbacks {
public:
  explicit ConnectionManager(std::shared_ptr<const ConnectionManagerConfig> config);
  ~ConnectionManager() override;

  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(Buffer& data, bool end_stream) override;

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // ServerConnectionCallbacks
  StreamDecoder& newStream(StreamEncoder& response_encoder) override;

  const ConnectionManagerConfig& config() const { return *config_; }
  network::Connection& connection() { return *connection_; }

private:
  class ActiveStream;
  friend class ActiveStream;

  void createCodec();
  void dispatchPending();
  void onStreamDone(ActiveStream& stream);
  void onIdleTimeout();
  void resetAllStreams();
  void closeConnection(network::ConnectionCloseType type);
  void startDrainClose();

  std::shared_ptr<const ConnectionManagerConfig> config_;
  // The stats live with the shared config (no per-connection reference: an idle
  // keep-alive connection is mostly its objects' sizes).
  ConnectionManagerStats& stats() const { return *config_->stats; }
  network::ReadFilterCallbacks* read_callbacks_ = nullptr;
  network::Connection* connection_ = nullptr;
  std::unique_ptr<ServerConnection> codec_;
  std::list<std::unique_ptr<ActiveStream>> streams_;
  event::TimerPtr idle_timer_;
  event::TimerPtr duration_timer_;
  std::chrono::steady_clock::time_point start_;
  uint64_t requests_ = 0;
  bool close_after_stream_ = false;
  bool codec_error_ = false;
  bool read_disabled_for_pipelining_ = false;
  bool above_high_watermark_ = false;
  bool dispatching_ = false;
  bool closed_ = false;
  bool counted_ = false; // onNewConnection ran and counted this connection
};

} // namespace legate::http
