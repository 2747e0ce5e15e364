#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "network/transport_socket.h"

namespace legate::network {

IoResult RawBufferSocket::doRead(int fd, Buffer& buffer, uint64_t max_bytes) {
  IoResult result;
  while (result.bytes_processed < max_bytes) {
    const ssize_t rc = buffer.readFrom(fd, max_bytes - result.bytes_processed);
    if (rc > 0) {
      result.bytes_processed += static_cast<uint64_t>(rc);
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
      failure_reason_ = std::strerror(errno);
      result.action = PostIoAction::Close;
    }
    break;
  }
  return result;
}

IoResult RawBufferSocket::doWrite(int fd, Buffer& buffer, bool end_stream) {
  IoResult result;
  while (!buffer.empty()) {
    const ssize_t rc = buffer.writeTo(fd);
    if (rc > 0) {
      result.bytes_processed += static_cast<uint64_t>(rc);
      continue;
    }
    if (rc < 0 && errno == EINTR) {
      continue;
    }
    if (rc < 0 && errno != EAGAIN) {
      failure_reason_ = std::strerror(errno);
      result.action = PostIoAction::Close;
    }
    return result;
  }
  if (end_stream && !shutdown_write_) {
    ::shutdown(fd, SHUT_WR);
    shutdown_write_ = true;
  }
  return result;
}

} // namespace legate::network
