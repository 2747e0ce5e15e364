#pragma once

// The HTTP connection manager: the network filter that turns a downstream
// connection into HTTP streams (through a codec), runs each stream through
// the configured HTTP filters (the router last), and writes the responses.
//
// Thread and lifetime: one per downstream connection, on its worker, owned by
// the connection's filter list. Streams are owned here and destroyed through
// the dispatcher's deferred-delete list (they may be on the stack when they end).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "accesslog/stream_info.h"
#include "common/intrusive_list.h"
#include "event/dispatcher.h"
#include "event/timer_queue.h"
#include "http/codec.h"
#include "http/conn_manager_config.h"
#include "http/filter.h"
#include "network/connection.h"
#include "network/filter.h"

namespace legate::http {

class ConnectionManager : public network::ReadFilter,
                          public network::ConnectionCallbacks,
                          public ServerConnectionCallbacks,
                          private event::TimerQueue::Entry {
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
  // An idle connection drops its codec unless one of the worker's bounded slots
  // for idle codecs is free: then it takes the slot and keeps the codec. The slot
  // is given back when the codec is used again or the connection goes.
  bool keepIdleCodec();
  void releaseIdleCodec();
  void dispatchPending();
  void onStreamDone(ActiveStream& stream);
  // The connection's idle timer is this object itself, an entry in the
  // dispatcher's timer queue: every idle keep-alive connection has one armed,
  // and a separate Timer would be another allocation (80 bytes) per connection.
  void armIdleTimer();
  void disarmIdleTimer() { connection_->dispatcher().timerQueue().disarm(*this); }
  void expired() override { onIdleTimeout(); }
  void onIdleTimeout();
  void resetAllStreams();
  void closeConnection(network::ConnectionCloseType type);

  // The stats live with the shared config (no per-connection reference: an idle
  // keep-alive connection is mostly its objects' sizes).
  ConnectionManagerStats& stats() const { return *config_->stats; }

  // Sized for memory per idle connection: 96 bytes, so that with make_shared's
  // control block it fits tcmalloc's 112-byte class. The flags are bits, so they
  // and the counter share one 8-byte word after the bases; the connection's
  // start time is the Connection's own.
  uint32_t requests_ = 0; // saturates: compared with a 32-bit limit only
  bool close_after_stream_ : 1 = false;
  bool codec_error_ : 1 = false;
  bool read_disabled_for_pipelining_ : 1 = false;
  bool above_high_watermark_ : 1 = false;
  bool dispatching_ : 1 = false;
  bool closed_ : 1 = false;
  bool counted_ : 1 = false; // onNewConnection ran and counted this connection
  bool codec_kept_idle_ : 1 = false; // idle, holding one of the worker's kept codecs
  std::shared_ptr<const ConnectionManagerConfig> config_;
  network::Connection* connection_ = nullptr;
  std::unique_ptr<ServerConnection> codec_;
  IntrusiveList<ActiveStream> streams_; // owned: deferred-deleted when unlinked
  event::TimerPtr duration_timer_;
};

} // namespace legate::http
