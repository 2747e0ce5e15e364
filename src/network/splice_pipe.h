#pragma once

// A kernel pipe that carries one direction of a spliced connection pair: bytes
// move socket -> pipe -> socket with splice(2) and never enter user space.
//
// Pipes are lent per transfer, not kept per connection: a connection takes one
// from its thread's pool when it reads and gives it back as soon as the bytes are
// written out, so a worker that forwards for thousands of connections usually
// holds one pipe (two fds) in all. Only a direction whose receiver is slower
// keeps its pipe while the bytes wait.
//
// Thread and lifetime: a lent pipe belongs to the connection that writes its
// bytes to its socket (so that what is in flight outlives the sender), on that
// connection's dispatcher thread.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <sys/types.h>

namespace legate::network {

class SplicePipe {
public:
  SplicePipe() = default;
  SplicePipe(const SplicePipe&) = delete;
  SplicePipe& operator=(const SplicePipe&) = delete;
  ~SplicePipe();

  // An empty pipe that takes at most `limit` bytes (a pooled pipe may be
  // larger; fs.pipe-max-size caps growth, and a refused resize keeps what the
  // pipe has): one of this thread's idle pipes, else a new one; null with errno
  // set when none can be made (out of fds).
  static std::unique_ptr<SplicePipe> acquire(uint32_t limit);
  // Gives an empty pipe back to this thread's pool (a few are kept; the rest,
  // and pipes that still hold bytes, are closed).
  static void release(std::unique_ptr<SplicePipe> pipe);

  // What the pipe takes: the kernel's size for it, or the asked limit if lower.
  uint32_t capacity() const { return std::min(capacity_, limit_); }
  // Bytes in the pipe, not yet written out.
  uint32_t buffered() const { return buffered_; }

  // Moves up to max bytes from the socket fd into the pipe's free room: as
  // splice(2), > 0 bytes, 0 at end of stream, -1 with errno (EAGAIN: nothing to
  // read, or no room left; the latter only while the pipe holds bytes).
  ssize_t fillFrom(int fd, uint32_t max);
  // Moves what the pipe holds to the socket fd: as splice(2), -1 with errno
  // (EAGAIN: the socket buffer is full).
  ssize_t drainTo(int fd);

private:
  bool open();
  void grow(uint32_t capacity);

  int read_fd_ = -1;
  int write_fd_ = -1;
  uint32_t capacity_ = 0; // the kernel's
  uint32_t limit_ = 0;
  uint32_t buffered_ = 0;
};

} // namespace legate::network
