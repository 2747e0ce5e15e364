#pragma once

// The transport-socket seam: how a connection moves bytes to and from its fd.
// Raw sockets now; TLS plugs in here later with the same interface.

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "common/buffer.h"

namespace legate::network {

enum class PostIoAction { KeepOpen, Close };

struct IoResult {
  PostIoAction action = PostIoAction::KeepOpen;
  uint64_t bytes_processed = 0;
  bool end_stream_read = false; // the peer half-closed (read returned 0)
  int error = 0;                 // with Close: the failing call's errno, if any
};

class TransportSocket {
public:
  virtual ~TransportSocket() = default;
  // Reads what is available (edge-triggered: until the socket gives less than
  // asked, EAGAIN, EOF or max_bytes). A short read means the receive queue was
  // empty; a FIN that was already queued with the data may then still be
  // unread: the caller reads again when the event said the peer closed.
  virtual IoResult doRead(int fd, Buffer& buffer, uint64_t max_bytes) = 0;
  // Writes as much of buffer as the peer takes (until a short write or EAGAIN);
  // end_stream half-closes the write side once buffer is empty.
  virtual IoResult doWrite(int fd, Buffer& buffer, bool end_stream) = 0;
  virtual std::string protocol() const { return ""; }
  // True when the bytes on the fd are the stream itself (no framing or
  // encryption), so that a proxy may splice(2) them from socket to socket.
  virtual bool canSplice() const { return false; }
  // "" or a short reason for the last failure when IoResult::error does not
  // say it (access logs).
  virtual std::string failureReason() const { return ""; }
  // Stateless transports are one instance shared by every connection:
  // TransportSocketPtr does not delete them.
  virtual bool shared() const { return false; }
};
struct TransportSocketDeleter {
  void operator()(TransportSocket* t) const {
    if (!t->shared()) delete t;
  }
};
using TransportSocketPtr = std::unique_ptr<TransportSocket, TransportSocketDeleter>;

// Plain sockets. It keeps no state (the connection knows when it sent its
// FIN and keeps the failure), so every connection shares one: create()
// allocates nothing.
class RawBufferSocket final : public TransportSocket {
public:
  static TransportSocketPtr create();
  IoResult doRead(int fd, Buffer& buffer, uint64_t max_bytes) override;
  // end_stream shuts the write side down once buffer is empty; the caller
  // asks for that once.
  IoResult doWrite(int fd, Buffer& buffer, bool end_stream) override;
  bool canSplice() const override { return true; }
  bool shared() const override { return true; }
};

} // namespace legate::network
