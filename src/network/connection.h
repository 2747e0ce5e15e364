#pragma once

// A TCP connection on one worker: an fd, a transport socket, read and write
// buffers with watermarks, and the network filter chain.
//
// Thread and lifetime: created, used and destroyed on one dispatcher's thread.
// After close() the owner must not delete it inline from a callback; hand it to
// Dispatcher::deferredDelete().
//
// Flow control: the write buffer has a high watermark (buffer limit) and a low
// one (half of it). Crossing them tells the ConnectionCallbacks, so that the
// other side of a proxy stops/resumes reading: memory stays bounded by about
// two buffer limits per proxied pair whatever the peers do.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "common/buffer.h"
#include "common/loop_time.h"
#include "event/dispatcher.h"
#include "network/address.h"
#include "network/connection_stats.h"
#include "network/filter.h"
#include "network/splice_pipe.h"
#include "network/transport_socket.h"
#include "stats/stats.h"

namespace legate::network {

enum class ConnectionEvent { RemoteClose, LocalClose, Connected };

enum class ConnectionCloseType {
  FlushWrite, // write what is buffered, then close
  NoFlush,    // close now, dropping buffered data
};

class ConnectionCallbacks {
public:
  virtual ~ConnectionCallbacks() = default;
  virtual void onEvent(ConnectionEvent event) = 0;
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

class Connection;

// Told of bytes a spliced connection moved without its filters seeing them.
class SpliceObserver {
public:
  virtual ~SpliceObserver() = default;
  virtual void onSpliced(uint64_t bytes) = 0;
  // reader left bytes unread until its peer's pipe drains (flow control:
  // paused), and reads on once it has (resumed).
  virtual void onSpliceReading(Connection& reader, bool paused) = 0;
};

class Connection : public event::DeferredDeletable, private ReadFilterCallbacks {
public:
  enum class State { Connecting, Open, Closing, Closed };

  // Takes ownership of fd (non-blocking). connecting: a client socket whose
  // connect() is in progress.
  Connection(event::Dispatcher& dispatcher, int fd, TransportSocketPtr transport,
             Address local, Address remote, bool connecting);
  ~Connection() override;

  // A client connection to remote: socket + non-blocking connect. Failures are
  // reported through onEvent(RemoteClose) on a later loop iteration, never inline.
  static std::unique_ptr<Connection> connectTo(event::Dispatcher& dispatcher, const Address& remote,
                                               TransportSocketPtr transport);

  uint64_t id() const { return id_; }
  State state() const { return state_; }
  event::Dispatcher& dispatcher() { return dispatcher_; }
  const Address& localAddress() const { return local_; }
  // The original destination the original_dst listener filter read back
  // (SO_ORIGINAL_DST) replaces the socket's own address; ORIGINAL_DST
  // clusters connect only to a restored address.
  void restoreLocalAddress(Address original) {
    local_ = std::move(original);
    local_restored_ = true;
  }
  bool localAddressRestored() const { return local_restored_; }
  const Address& remoteAddress() const { return remote_; }
  TransportSocket& transportSocket() { return *transport_; }

  void addConnectionCallbacks(ConnectionCallbacks& cb) { callbacks_.push_back(&cb); }
  void removeConnectionCallbacks(ConnectionCallbacks& cb) {
    callbacks_.erase(std::remove(callbacks_.begin(), callbacks_.end(), &cb), callbacks_.end());
  }
  void addReadFilter(ReadFilterSharedPtr filter);
  void addWriteFilter(WriteFilterSharedPtr filter);
  // Calls onNewConnection on the read filters; false if no read filter exists.
  bool initializeReadFilters();

  // Moves data into the write buffer (through the write filters) and schedules a
  // write. end_stream half-closes our side once everything is written.
  void write(Buffer& data, bool end_stream);
  // FlushWrite: stop reading, write what is buffered, then close. With a
  // delayed-close timeout set, a peer that stops reading cannot hold the
  // connection: the close happens when the timeout passes without write
  // progress (each write that makes progress re-arms it), as Envoy's
  // delayed_close_timeout. Without one, the flush may wait forever.
  void close(ConnectionCloseType type);
  // Clamped to what 32 bits of milliseconds hold (49 days).
  void setDelayedCloseTimeout(std::chrono::milliseconds timeout) {
    delayed_close_timeout_ = std::chrono::duration<uint32_t, std::milli>(
        static_cast<uint32_t>(std::clamp<int64_t>(timeout.count(), 0, UINT32_MAX)));
  }
  // True when the connection was closed because the delayed-close timeout fired.
  bool delayedCloseTimedOut() const { return delayed_close_timed_out_; }
  // Counted: each disable needs a matching enable.
  void readDisable(bool disable);
  bool readEnabled() const { return read_disable_count_ == 0; }
  // With half-close on, a peer's FIN is delivered as end_stream and the
  // connection stays open until both directions are done.
  void enableHalfClose(bool enabled) { half_close_ = enabled; }
  void setBufferLimits(uint32_t limit);
  uint32_t bufferLimit() const { return buffer_limit_; }
  // stats (null: none) must outlive the connection; it is shared, not copied.
  void setConnectionStats(const ConnectionStats* stats) { stats_ = stats ? stats : &kNoStats; }

  // Zero-copy forwarding for a proxy that passes bytes through untouched
  // (tcp_proxy): from now on what this connection reads goes to peer's socket,
  // and what peer reads comes to this one's, through kernel pipes (splice(2)),
  // never entering user space. Byte counts, stats, end of stream (delivered to
  // the read filters as before, with an empty buffer) and close work as they do
  // when copying; a pipe holds at most about the buffer limit, and a side whose
  // pipe is not yet drained is not read (flow control). Only between two open
  // connections whose transports are plain sockets, that have nothing buffered
  // and no filter but the caller's; otherwise false, and nothing changes. A
  // direction whose pipe cannot be made (out of fds) copies instead.
  bool spliceWith(Connection& peer, SpliceObserver& observer);
  bool spliced() const { return splice_ != nullptr && splice_->peer != nullptr; }

  uint64_t bytesReceived() const { return bytes_rx_; }
  uint64_t bytesSent() const { return bytes_tx_; }
  // When the connection was made (the loop's time): the start of every
  // connection-length statistic, kept once here rather than by each owner.
  MonotonicTime startTime() const { return start_; }
  // Set when a connect() failed or timed out, or a read/write failed; empty
  // otherwise.
  const std::string& failureReason() const;
  // For connect timeouts, owned by whoever started the connection.
  void closeWithFailure(std::string reason);
  bool aboveHighWatermark() const { return above_high_; }
  // Bytes queued for the socket: the write buffer and, spliced, the pipe.
  size_t writeBufferLength() const {
    return write_buffer_.length() + (splice_ && splice_->in ? splice_->in->buffered() : 0);
  }

private:
  // ReadFilterCallbacks
  Connection& connection() override { return *this; }
  void continueReading() override;

  void onFileEvent(uint32_t events);
  void onConnectComplete();
  void onReadReady();
  void onWriteReady();
  void runReadFilters(size_t start);
  void closeSocket(ConnectionEvent event);
  void raiseEvent(ConnectionEvent event);
  void updateWriteWatermarks();
  // Spliced reads: socket -> the peer's pipe -> the peer's socket. False when
  // this connection closed meanwhile.
  bool spliceRead(uint64_t max);
  // Writes what the inbound pipe holds (after the write buffer); false when
  // this connection closed meanwhile.
  bool drainSplicePipe();
  void onBytesWritten(uint64_t n);
  void unsplice();
  void setFailureReason(std::string reason);
  // A read or write failed (IoResult::action Close): why, for access logs.
  void setIoFailure(const IoResult& r);

  // What few connections use, made on first use, so that every other
  // connection pays one pointer for it.
  struct Rare {
    std::vector<WriteFilterSharedPtr> write_filters;
    // The delayed-close timer; also reports a socket() failure in connectTo().
    event::TimerPtr delayed_close_timer;
    std::string failure_reason;
  };
  Rare& rare() {
    if (!rare_) rare_ = std::make_unique<Rare>();
    return *rare_;
  }
  event::Timer* delayedCloseTimer() const {
    return rare_ ? rare_->delayed_close_timer.get() : nullptr;
  }

  // Only connections that splice have one (tcp_proxy pairs): the pipe that
  // brings the peer's bytes to this socket, and the link to that peer.
  struct Splice {
    Connection* peer = nullptr;            // null once either side closed
    SpliceObserver* observer = nullptr;
    std::unique_ptr<SplicePipe> in;        // lent while the peer's bytes are on their way here
    bool peer_waiting = false;             // peer stopped reading until `in` drains
    bool paused = false;                   // with bytes left unread (flow control)
    bool copy = false;                     // no pipe could be made: our reads copy
  };

  struct ActiveReadFilter {
    ReadFilterSharedPtr filter;
    bool initialized = false;
  };

  // Ordered so that there are no padding holes: an idle keep-alive connection
  // is mostly this object (280 bytes, its buffers one pointer each, in
  // tcmalloc's 288-byte size class: crossing it costs 32).
  static std::atomic<uint64_t> next_id_;
  const uint64_t id_;
  event::Dispatcher& dispatcher_;
  int fd_;
  State state_;
  TransportSocketPtr transport_;
  Address local_;
  Address remote_;
  event::FileEvent file_event_; // registered while the fd is open
  std::unique_ptr<Splice> splice_;
  std::unique_ptr<Rare> rare_;
  // Inline room for what a proxied connection has (the listener's and one
  // filter's callbacks, one read filter): no heap arrays per connection.
  absl::InlinedVector<ConnectionCallbacks*, 2> callbacks_;
  absl::InlinedVector<ActiveReadFilter, 1> read_filters_;

  Buffer read_buffer_;
  Buffer write_buffer_;
  static const ConnectionStats kNoStats;
  const ConnectionStats* stats_ = &kNoStats; // never null
  uint64_t bytes_rx_ = 0;
  uint64_t bytes_tx_ = 0;
  const MonotonicTime start_ = loopNow();
  std::chrono::duration<uint32_t, std::milli> delayed_close_timeout_{0};
  uint32_t buffer_limit_ = 1024 * 1024;
  uint32_t read_disable_count_ = 0;
  bool local_restored_ = false;
  bool half_close_ = false;
  bool read_end_stream_ = false;     // peer's FIN seen
  bool read_end_delivered_ = false;  // and given to the filters
  bool write_end_stream_ = false;    // we were asked to half-close
  bool write_end_done_ = false;      // and did (buffer flushed, FIN sent)
  bool above_high_ = false;
  bool read_pending_ = false;        // readiness seen while reads were disabled
  bool peer_closed_hint_ = false;    // an event said the peer closed (FIN queued)
  bool immediate_error_ = false;
  bool delayed_close_timed_out_ = false;
  bool watch_failed_ = false; // epoll refused the fd: close on the first callback
};

using ConnectionPtr = std::unique_ptr<Connection>;

} // namespace legate::network
