#include "network/connection.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/logger.h"

namespace legate::network {

std::atomic<uint64_t> Connection::next_id_{0};
const ConnectionStats Connection::kNoStats{};

// Every idle keep-alive connection pays for this object: keep it in the 288-byte
// size class (what few connections use is behind a pointer: a splice link, and
// write filters, the delayed-close timer and a failure reason together; the
// byte counters are shared, the buffers are one pointer each).
static_assert(sizeof(Connection) <= 288);

namespace {
spdlog::logger& connLog() {
  static spdlog::logger& l = log::get("connection");
  return l;
}
} // namespace

Connection::Connection(event::Dispatcher& dispatcher, int fd, TransportSocketPtr transport,
                       Address local, Address remote, bool connecting)
    : id_(next_id_.fetch_add(1, std::memory_order_relaxed)), dispatcher_(dispatcher), fd_(fd),
      state_(connecting ? State::Connecting : State::Open), transport_(std::move(transport)),
      local_(std::move(local)), remote_(std::move(remote)) {
  if (fd_ >= 0) {
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (const int err = file_event_.registerFd<&Connection::onFileEvent>(dispatcher_, fd_, this);
        err != 0) {
      // Without its readiness events the connection would hang: it closes on
      // its first callback (registerFd activated one).
      watch_failed_ = true;
      setFailureReason(std::string("cannot watch the socket: ") + std::strerror(err));
    }
  }
}

Connection::~Connection() {
  if (fd_ >= 0) {
    file_event_.reset();
    ::close(fd_);
  }
  unsplice();
  if (stats_->rx_buffered) stats_->rx_buffered->dec(static_cast<int64_t>(read_buffer_.length()));
  if (stats_->tx_buffered) stats_->tx_buffered->dec(static_cast<int64_t>(writeBufferLength()));
}

std::unique_ptr<Connection> Connection::connectTo(event::Dispatcher& dispatcher,
                                                  const Address& remote,
                                                  TransportSocketPtr transport) {
  const int fd = ::socket(remote.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno; // before anything else can change it
    auto conn = std::make_unique<Connection>(dispatcher, -1, std::move(transport), Address(),
                                             remote, true);
    conn->setFailureReason(std::string("socket: ") + std::strerror(err));
    conn->immediate_error_ = true;
    // No fd to watch: report the failure on the next loop iteration, from a
    // timer the connection owns (so it dies with the connection).
    Connection* raw = conn.get();
    event::TimerPtr& timer = conn->rare().delayed_close_timer;
    timer = dispatcher.createTimer([raw] { raw->closeSocket(ConnectionEvent::RemoteClose); });
    timer->enableTimer(std::chrono::milliseconds(0));
    return conn;
  }
  const int rc = ::connect(fd, remote.sockAddr(), remote.sockAddrLen());
  const int err = rc == 0 ? 0 : errno;
  auto conn = std::make_unique<Connection>(dispatcher, fd, std::move(transport), Address(), remote,
                                           true);
  if (rc != 0 && err != EINPROGRESS) {
    conn->setFailureReason(std::strerror(err));
    conn->immediate_error_ = true;
    conn->file_event_.activate(event::FileReadyType::Write);
  }
  return conn;
}

void Connection::addReadFilter(ReadFilterSharedPtr filter) {
  filter->initializeReadFilterCallbacks(*this);
  read_filters_.push_back({std::move(filter), false});
}

void Connection::addWriteFilter(WriteFilterSharedPtr filter) {
  rare().write_filters.push_back(std::move(filter));
}

bool Connection::initializeReadFilters() {
  if (read_filters_.empty()) {
    return false;
  }
  runReadFilters(0);
  return true;
}

void Connection::continueReading() {
  // Resume after the filter that stopped: the first not-yet-initialized filter
  // gets onNewConnection, or, once all are, data flows through from the start.
  for (size_t i = 0; i < read_filters_.size(); ++i) {
    if (!read_filters_[i].initialized) {
      runReadFilters(i);
      return;
    }
  }
  if (read_buffer_.length() > 0 || (read_end_stream_ && !read_end_delivered_)) {
    runReadFilters(0);
  }
}

void Connection::runReadFilters(size_t start) {
  for (size_t i = start; i < read_filters_.size(); ++i) {
    if (state_ == State::Closed) {
      return;
    }
    ActiveReadFilter& f = read_filters_[i];
    if (!f.initialized) {
      // A filter sees onNewConnection before its first data.
      f.initialized = true;
      if (f.filter->onNewConnection() == FilterStatus::StopIteration) {
        return;
      }
    }
    const bool end = read_end_stream_;
    if (read_buffer_.empty() && !(end && !read_end_delivered_)) {
      return;
    }
    const size_t before = read_buffer_.length();
    if (end) {
      read_end_delivered_ = true;
    }
    const FilterStatus status = f.filter->onData(read_buffer_, end);
    if (stats_->rx_buffered && before != read_buffer_.length()) {
      stats_->rx_buffered->dec(static_cast<int64_t>(before - read_buffer_.length()));
    }
    if (status == FilterStatus::StopIteration) {
      return;
    }
  }
}

void Connection::write(Buffer& data, bool end_stream) {
  if (state_ == State::Closed || write_end_stream_) {
    data.drain(data.length());
    return;
  }
  if (rare_) {
    for (auto& f : rare_->write_filters) {
      if (f->onWrite(data, end_stream) == FilterStatus::StopIteration) {
        return;
      }
    }
  }
  const size_t n = data.length();
  write_buffer_.move(data);
  if (stats_->tx_buffered) stats_->tx_buffered->inc(static_cast<int64_t>(n));
  if (end_stream) {
    write_end_stream_ = true;
  }
  updateWriteWatermarks();
  if (state_ != State::Connecting && (n > 0 || end_stream)) {
    file_event_.activate(event::FileReadyType::Write);
  }
}

void Connection::setBufferLimits(uint32_t limit) { buffer_limit_ = limit; }

void Connection::updateWriteWatermarks() {
  if (buffer_limit_ == 0) {
    return;
  }
  const size_t len = write_buffer_.length();
  if (!above_high_ && len > buffer_limit_) {
    above_high_ = true;
    for (auto* cb : callbacks_) cb->onAboveWriteBufferHighWatermark();
  } else if (above_high_ && len <= buffer_limit_ / 2) {
    above_high_ = false;
    for (auto* cb : callbacks_) cb->onBelowWriteBufferLowWatermark();
  }
}

void Connection::readDisable(bool disable) {
  if (state_ == State::Closed) {
    return;
  }
  if (disable) {
    ++read_disable_count_;
    return;
  }
  if (read_disable_count_ == 0) {
    return;
  }
  if (--read_disable_count_ == 0 && state_ == State::Open) {
    // Edge-triggered: readiness that arrived while disabled will not fire
    // again, so look for it ourselves; also deliver data filters left behind.
    file_event_.activate(event::FileReadyType::Read);
  }
}

void Connection::close(ConnectionCloseType type) {
  if (state_ == State::Closed) {
    return;
  }
  if (type == ConnectionCloseType::NoFlush || writeBufferLength() == 0 ||
      state_ == State::Connecting) {
    closeSocket(ConnectionEvent::LocalClose);
    return;
  }
  if (state_ == State::Closing) {
    return;
  }
  // Flush first; reads stop mattering.
  state_ = State::Closing;
  if (delayed_close_timeout_.count() > 0) {
    event::TimerPtr& timer = rare().delayed_close_timer;
    timer = dispatcher_.createTimer([this] {
      connLog().debug("[C{}] delayed close timeout: {} bytes unwritten", id_,
                      writeBufferLength());
      delayed_close_timed_out_ = true;
      setFailureReason("delayed close timeout");
      closeSocket(ConnectionEvent::LocalClose);
    });
    timer->enableTimer(std::chrono::milliseconds(delayed_close_timeout_));
  }
  file_event_.activate(event::FileReadyType::Write);
}

void Connection::closeWithFailure(std::string reason) {
  if (failureReason().empty()) {
    setFailureReason(std::move(reason));
  }
  closeSocket(ConnectionEvent::LocalClose);
}

const std::string& Connection::failureReason() const {
  static const std::string kNone;
  return rare_ ? rare_->failure_reason : kNone;
}

void Connection::setFailureReason(std::string reason) {
  rare().failure_reason = std::move(reason);
}

void Connection::setIoFailure(const IoResult& r) {
  std::string reason =
      r.error != 0 ? std::string(std::strerror(r.error)) : transport_->failureReason();
  if (!reason.empty()) setFailureReason(std::move(reason));
}

void Connection::closeSocket(ConnectionEvent event) {
  if (state_ == State::Closed) {
    return;
  }
  state_ = State::Closed;
  file_event_.reset();
  if (event::Timer* timer = delayedCloseTimer()) timer->disableTimer();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  unsplice();
  if (splice_ && splice_->in) {
    // Bytes still in the pipe are dropped with the socket.
    if (stats_->tx_buffered) {
      stats_->tx_buffered->dec(static_cast<int64_t>(splice_->in->buffered()));
    }
    SplicePipe::release(std::move(splice_->in));
  }
  connLog().debug("[C{}] closed ({})", id_,
                  event == ConnectionEvent::RemoteClose ? "remote" : "local");
  raiseEvent(event);
}

void Connection::raiseEvent(ConnectionEvent event) {
  // Callbacks may close or add callbacks; iterate over a copy.
  auto callbacks = callbacks_;
  for (auto* cb : callbacks) {
    if (std::find(callbacks_.begin(), callbacks_.end(), cb) != callbacks_.end()) {
      cb->onEvent(event);
    }
  }
}

void Connection::onFileEvent(uint32_t events) {
  if (watch_failed_) {
    closeSocket(ConnectionEvent::RemoteClose);
    return;
  }
  if (events & event::FileReadyType::Closed) {
    peer_closed_hint_ = true;
  }
  if (state_ == State::Connecting) {
    if (events & (event::FileReadyType::Write | event::FileReadyType::Closed |
                  event::FileReadyType::Read)) {
      onConnectComplete();
    }
    return;
  }
  if (state_ != State::Closed && (events & event::FileReadyType::Write)) {
    onWriteReady();
  }
  if (state_ != State::Closed &&
      (events & (event::FileReadyType::Read | event::FileReadyType::Closed))) {
    onReadReady();
  }
}

void Connection::onConnectComplete() {
  int err = 0;
  if (!immediate_error_) {
    socklen_t len = sizeof(err);
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      setFailureReason(std::strerror(err));
    }
  }
  if (immediate_error_ || err != 0) {
    connLog().debug("[C{}] connect to {} failed: {}", id_, remote_.asString(), failureReason());
    closeSocket(ConnectionEvent::RemoteClose);
    return;
  }
  local_ = Address::fromSocketName(fd_);
  state_ = State::Open;
  raiseEvent(ConnectionEvent::Connected);
  if (state_ == State::Open) {
    // Anything written while connecting, and anything the peer already sent.
    onWriteReady();
    if (state_ == State::Open) {
      onReadReady();
    }
  }
}

void Connection::onReadReady() {
  if (state_ != State::Open) {
    return;
  }
  if (read_disable_count_ > 0) {
    read_pending_ = true;
    // Bytes filters left behind stay there; nothing more is read until enabled.
    return;
  }
  read_pending_ = false;
  const uint64_t max = buffer_limit_ == 0 ? 16 * Buffer::kSliceSize : buffer_limit_;
  if (!read_end_stream_ && spliced() && !splice_->copy) {
    if (!spliceRead(max)) {
      return;
    }
  } else if (!read_end_stream_) {
    IoResult r = transport_->doRead(fd_, read_buffer_, max);
    if (peer_closed_hint_ && r.action == PostIoAction::KeepOpen && !r.end_stream_read &&
        r.bytes_processed > 0 && r.bytes_processed < max) {
      // doRead stops at a short read; the peer's FIN may sit behind the data
      // and no new edge would announce it.
      const IoResult more = transport_->doRead(fd_, read_buffer_, max - r.bytes_processed);
      r.action = more.action;
      r.bytes_processed += more.bytes_processed;
      r.end_stream_read = more.end_stream_read;
      r.error = more.error;
    }
    bytes_rx_ += r.bytes_processed;
    if (r.bytes_processed > 0) {
      if (stats_->rx_total) stats_->rx_total->inc(r.bytes_processed);
      if (stats_->rx_buffered) stats_->rx_buffered->inc(static_cast<int64_t>(r.bytes_processed));
    }
    if (r.action == PostIoAction::Close) {
      setIoFailure(r);
      closeSocket(ConnectionEvent::RemoteClose);
      return;
    }
    if (r.end_stream_read) {
      read_end_stream_ = true;
    }
    if (r.bytes_processed >= max && !r.end_stream_read) {
      // Read budget spent with more possibly waiting: come back next iteration
      // (fairness between connections on this worker).
      file_event_.activate(event::FileReadyType::Read);
    }
  }
  if (!read_buffer_.empty() || (read_end_stream_ && !read_end_delivered_)) {
    if (read_end_stream_ && !half_close_) {
      // No half-close: the peer's FIN closes us once filters saw the data.
      runReadFilters(0);
      if (state_ == State::Open) {
        closeSocket(ConnectionEvent::RemoteClose);
      }
      return;
    }
    runReadFilters(0);
  }
  if (state_ == State::Open && read_end_stream_ && write_end_done_) {
    closeSocket(ConnectionEvent::RemoteClose);
  }
}

// Both write paths (buffer and pipe) count what went out the same way.
inline void Connection::onBytesWritten(uint64_t n) {
  bytes_tx_ += n;
  if (stats_->tx_total) stats_->tx_total->inc(n);
  if (event::Timer* timer = delayedCloseTimer()) {
    timer->enableTimer(std::chrono::milliseconds(delayed_close_timeout_)); // progress: wait again
  }
}

void Connection::onWriteReady() {
  if (state_ != State::Open && state_ != State::Closing) {
    return;
  }
  // Spliced bytes queue behind the write buffer, and the FIN behind both.
  const bool piped = splice_ && splice_->in;
  const size_t before = write_buffer_.length();
  // The FIN once: after the last bytes, never again.
  const IoResult r =
      transport_->doWrite(fd_, write_buffer_, write_end_stream_ && !write_end_done_ && !piped);
  if (r.bytes_processed > 0) {
    if (stats_->tx_buffered) {
      stats_->tx_buffered->dec(static_cast<int64_t>(before - write_buffer_.length()));
    }
    onBytesWritten(r.bytes_processed);
  }
  if (r.action == PostIoAction::Close) {
    setIoFailure(r);
    closeSocket(ConnectionEvent::RemoteClose);
    return;
  }
  if (piped && write_buffer_.empty()) {
    if (!drainSplicePipe()) {
      return;
    }
    if (splice_->in->buffered() == 0) {
      SplicePipe::release(std::move(splice_->in)); // drained: back to the pool
      if (write_end_stream_ && !write_end_done_) {
        transport_->doWrite(fd_, write_buffer_, true); // nothing left to write: the FIN
      }
    }
  }
  updateWriteWatermarks();
  const bool drained = write_buffer_.empty() && (!piped || !splice_->in);
  if (state_ == State::Closing && drained) {
    closeSocket(ConnectionEvent::LocalClose);
    return;
  }
  if (write_end_stream_ && drained && !write_end_done_) {
    write_end_done_ = true;
    if (read_end_stream_ && read_end_delivered_) {
      closeSocket(ConnectionEvent::LocalClose);
    }
  }
}

bool Connection::spliceWith(Connection& peer, SpliceObserver& observer) {
  const auto eligible = [](const Connection& c) {
    return c.state_ == State::Open && !c.splice_ && c.transport_->canSplice() &&
           c.read_filters_.size() <= 1 && (!c.rare_ || c.rare_->write_filters.empty()) &&
           c.read_buffer_.empty() && c.write_buffer_.empty() && !c.read_end_stream_ &&
           !c.write_end_stream_;
  };
  if (&peer == this || !eligible(*this) || !eligible(peer)) {
    return false;
  }
  splice_ = std::make_unique<Splice>();
  peer.splice_ = std::make_unique<Splice>();
  splice_->peer = &peer;
  splice_->observer = &observer;
  peer.splice_->peer = this;
  peer.splice_->observer = &observer;
  return true;
}

bool Connection::spliceRead(uint64_t max) {
  Connection& peer = *splice_->peer;
  Splice& link = *peer.splice_; // its pipe takes our bytes
  if (!link.in) {
    link.in = SplicePipe::acquire(static_cast<uint32_t>(std::min<uint64_t>(max, UINT32_MAX)));
    if (!link.in) {
      connLog().debug("[C{}] no pipe to splice through ({}): copying", id_, std::strerror(errno));
      splice_->copy = true;
      file_event_.activate(event::FileReadyType::Read); // read again, the copying way
      return true;
    }
  }
  uint64_t total = 0;
  bool full = false;
  bool peer_writable = true; // until a drain leaves bytes: then only its write-ready edge helps
  while (total < max) {
    const ssize_t rc =
        link.in->fillFrom(fd_, static_cast<uint32_t>(std::min<uint64_t>(max - total, UINT32_MAX)));
    if (rc == 0) {
      read_end_stream_ = true;
      break;
    }
    if (rc < 0) {
      if (errno == EAGAIN) {
        // Nothing to read, or (only while it holds bytes) no room in the pipe.
        full = link.in->buffered() > 0;
        break;
      }
      setFailureReason(std::strerror(errno));
      closeSocket(ConnectionEvent::RemoteClose);
      return false;
    }
    const auto n = static_cast<uint64_t>(rc);
    total += n;
    bytes_rx_ += n;
    if (stats_->rx_total) stats_->rx_total->inc(n);
    if (peer.stats_->tx_buffered) peer.stats_->tx_buffered->inc(static_cast<int64_t>(n));
    if (peer_writable) {
      if (!peer.drainSplicePipe() || state_ != State::Open) {
        // The peer failed and closed, and we may have been closed with it.
        return state_ == State::Open;
      }
      peer_writable = link.in->buffered() == 0;
    }
  }
  if (full) {
    // The peer's write-ready wakes us once the pipe has drained. That is flow
    // control (counted once until then) when the pipe is full, and so when we
    // left bytes unread; not when the peer is merely still writing what we read.
    link.peer_waiting = true;
    if (!link.paused) {
      int unread = 0;
      link.paused = link.in->buffered() >= link.in->capacity() ||
                    (::ioctl(fd_, FIONREAD, &unread) == 0 && unread > 0);
      if (link.paused && splice_->observer) splice_->observer->onSpliceReading(*this, true);
    }
  } else {
    if (link.in->buffered() == 0) {
      SplicePipe::release(std::move(link.in));
    }
    if (total >= max && !read_end_stream_) {
      file_event_.activate(event::FileReadyType::Read); // budget spent, as when copying
    }
  }
  if (total > 0 && splice_->observer) {
    splice_->observer->onSpliced(total);
  }
  return state_ == State::Open;
}

bool Connection::drainSplicePipe() {
  SplicePipe* pipe = splice_->in.get();
  if (pipe == nullptr || !write_buffer_.empty()) {
    return true; // the write buffer goes first, on the next write-ready
  }
  while (pipe->buffered() > 0) {
    const uint32_t asked = pipe->buffered();
    const ssize_t rc = pipe->drainTo(fd_);
    if (rc > 0) {
      onBytesWritten(static_cast<uint64_t>(rc));
      if (stats_->tx_buffered) stats_->tx_buffered->dec(rc);
      if (static_cast<uint32_t>(rc) < asked) {
        break; // the socket buffer is full: the next write-ready edge resumes
      }
      continue;
    }
    if (rc < 0 && errno == EAGAIN) {
      break;
    }
    setFailureReason(std::strerror(rc < 0 ? errno : EPIPE));
    closeSocket(ConnectionEvent::RemoteClose);
    return false;
  }
  if (pipe->buffered() == 0 && splice_->peer_waiting) {
    // The reader stopped for this pipe; it takes it back when it reads on.
    splice_->peer_waiting = false;
    const bool paused = std::exchange(splice_->paused, false);
    Connection* reader = splice_->peer;
    if (reader && reader->state_ == State::Open) {
      if (paused && splice_->observer) splice_->observer->onSpliceReading(*reader, false);
      reader->file_event_.activate(event::FileReadyType::Read);
    }
  }
  return true;
}

void Connection::unsplice() {
  if (!splice_ || !splice_->peer) {
    return;
  }
  Connection& peer = *splice_->peer;
  peer.splice_->peer = nullptr;
  peer.splice_->observer = nullptr;
  if (splice_->peer_waiting && peer.state_ == State::Open) {
    peer.file_event_.activate(event::FileReadyType::Read); // it copies from now on
  }
  splice_->peer = nullptr;
  splice_->observer = nullptr;
}

} // namespace legate::network
