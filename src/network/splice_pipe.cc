#include "network/splice_pipe.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

namespace legate::network {
namespace {

// fs.pipe-max-size, read once: the largest pipe an unprivileged process may ask for.
uint32_t pipeMaxSize() {
  static const uint32_t size = [] {
    unsigned long v = 1024 * 1024;
    if (FILE* f = std::fopen("/proc/sys/fs/pipe-max-size", "re")) {
      if (std::fscanf(f, "%lu", &v) != 1) v = 1024 * 1024;
      std::fclose(f);
    }
    return static_cast<uint32_t>(std::clamp<unsigned long>(v, 4096, 1u << 30));
  }();
  return size;
}

constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

// Idle pipes kept per thread: enough for the transfers of one event-loop
// iteration that find their receiver slow, few enough to hold only some fds.
constexpr size_t kMaxIdle = 4;
thread_local std::vector<std::unique_ptr<SplicePipe>> idle_pipes;

} // namespace

std::unique_ptr<SplicePipe> SplicePipe::acquire(uint32_t limit) {
  std::unique_ptr<SplicePipe> pipe;
  if (!idle_pipes.empty()) {
    pipe = std::move(idle_pipes.back());
    idle_pipes.pop_back();
  } else {
    pipe = std::make_unique<SplicePipe>();
    if (!pipe->open()) {
      return nullptr;
    }
  }
  pipe->grow(limit);
  pipe->limit_ = limit;
  return pipe;
}

void SplicePipe::release(std::unique_ptr<SplicePipe> pipe) {
  if (pipe && pipe->buffered_ == 0 && idle_pipes.size() < kMaxIdle) {
    idle_pipes.push_back(std::move(pipe));
  }
}

SplicePipe::~SplicePipe() {
  if (read_fd_ >= 0) {
    ::close(read_fd_);
    ::close(write_fd_);
  }
}

bool SplicePipe::open() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return false;
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  const int size = ::fcntl(write_fd_, F_GETPIPE_SZ);
  capacity_ = size > 0 ? static_cast<uint32_t>(size) : 65536;
  return true;
}

void SplicePipe::grow(uint32_t capacity) {
  const uint32_t want = std::min(capacity, pipeMaxSize());
  if (want <= capacity_) {
    return;
  }
  // An empty pipe takes a new size; the kernel rounds it up to a power of two
  // pages. Refused (the user's pipe-buffer quota): keep the current one.
  const int got = ::fcntl(write_fd_, F_SETPIPE_SZ, static_cast<int>(want));
  if (got > 0) {
    capacity_ = static_cast<uint32_t>(got);
  }
}

ssize_t SplicePipe::fillFrom(int fd, uint32_t max) {
  const uint32_t room = std::min(max, capacity() - std::min(buffered_, capacity()));
  if (room == 0) {
    errno = EAGAIN; // a zero-length splice would read as end of stream
    return -1;
  }
  for (;;) {
    const ssize_t rc = ::splice(fd, nullptr, write_fd_, nullptr, room, kFlags);
    if (rc > 0) {
      buffered_ += static_cast<uint32_t>(rc);
    }
    if (rc >= 0 || errno != EINTR) {
      return rc;
    }
  }
}

ssize_t SplicePipe::drainTo(int fd) {
  for (;;) {
    const ssize_t rc = ::splice(read_fd_, nullptr, fd, nullptr, buffered_, kFlags);
    if (rc > 0) {
      buffered_ -= static_cast<uint32_t>(rc);
    }
    if (rc >= 0 || errno != EINTR) {
      return rc;
    }
  }
}

} // namespace legate::network
