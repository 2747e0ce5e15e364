#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "network/transport_socket.h"

namespace legate::network {

TransportSocketPtr RawBufferSocket::create() {
  // Never destroyed: connections freed during static destruction still find it.
  static RawBufferSocket* const instance = new RawBufferSocket();
  return TransportSocketPtr(instance);
}

IoResult RawBufferSocket::doRead(int fd, Buffer& buffer, uint64_t max_bytes) {
  IoResult result;
  int slices = 1; // a full read means more is waiting: read bigger from then on
  while (result.bytes_processed < max_bytes) {
    size_t asked = 0;
    const ssize_t rc = buffer.readFrom(fd, max_bytes - result.bytes_processed, &asked, slices);
    if (rc > 0) {
      result.bytes_processed += static_cast<uint64_t>(rc);
      if (static_cast<size_t>(rc) < asked) {
        // The socket had no more: another read would only say EAGAIN.
        break;
      }
      slices = Buffer::kMaxReadSlices;
      continue;
    }
    if (rc == 0) {
      result.end_stream_read = true;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      result.error = errno;
      result.action = PostIoAction::Close;
    }
    break;
  }
  return result;
}

IoResult RawBufferSocket::doWrite(int fd, Buffer& buffer, bool end_stream) {
  IoResult result;
  while (!buffer.empty()) {
    size_t asked = 0;
    const ssize_t rc = buffer.writeTo(fd, &asked);
    if (rc > 0) {
      result.bytes_processed += static_cast<uint64_t>(rc);
      if (static_cast<size_t>(rc) < asked) {
        // The socket buffer is full: the next write-ready edge resumes.
        return result;
      }
      continue;
    }
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc < 0 && errno != EAGAIN) {
      result.error = errno;
      result.action = PostIoAction::Close;
    }
    return result;
  }
  if (end_stream) {
    ::shutdown(fd, SHUT_WR);
  }
  return result;
}

} // namespace legate::network
