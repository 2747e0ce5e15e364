#include "accesslog/log_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace legate::accesslog {

LogFile::LogFile(int fd, std::string path, stats::Store& store, Options options)
    : fd_(fd), path_(std::move(path)), options_(options),
      write_buffered_(store.counter("filesystem.write_buffered")),
      write_completed_(store.counter("filesystem.write_completed")),
      write_failed_(store.counter("filesystem.write_failed")),
      flushed_by_timer_(store.counter("filesystem.flushed_by_timer")),
      lines_dropped_(store.counter("access_log.lines_dropped")),
      write_total_buffered_(store.gauge("filesystem.write_total_buffered")),
      thread_([this] { run(); }) {}

LogFile::LogFile(int fd, std::string path, stats::Store& store)
    : LogFile(fd, std::move(path), store, Options{}) {}

LogFile::~LogFile() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join(); // the thread writes what is left before it exits
  if (fd_ > 2) ::close(fd_);
}

void LogFile::write(std::string_view line) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (buffer_.size() + line.size() > options_.max_buffer) {
      lines_dropped_.inc();
      return;
    }
    const bool was_below = buffer_.size() < options_.flush_threshold;
    buffer_.append(line);
    ++queued_seq_;
    wake = was_below && buffer_.size() >= options_.flush_threshold;
  }
  write_buffered_.inc();
  write_total_buffered_.inc(static_cast<int64_t>(line.size()));
  if (wake) wake_.notify_one();
}

void LogFile::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = queued_seq_;
  if (written_seq_ >= target) return;
  flush_requested_ = true;
  wake_.notify_one();
  flushed_.wait(lock, [&] { return written_seq_ >= target; });
}

void LogFile::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    const bool woken = wake_.wait_for(lock, options_.flush_interval, [this] {
      return stopping_ || flush_requested_ || buffer_.size() >= options_.flush_threshold;
    });
    if (buffer_.empty()) {
      flush_requested_ = false;
      flushed_.notify_all();
      if (stopping_) return;
      continue;
    }
    if (!woken) flushed_by_timer_.inc();
    std::string data;
    data.swap(buffer_);
    const uint64_t seq = queued_seq_;
    flush_requested_ = false;
    lock.unlock();
    // Only this thread writes to fd_, so chunks reach the file in queue order.
    writeAll(data);
    write_total_buffered_.dec(static_cast<int64_t>(data.size()));
    lock.lock();
    written_seq_ = seq;
    flushed_.notify_all();
  }
}

void LogFile::writeAll(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t rc = ::write(fd_, data.data() + off, data.size() - off);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      // Full disk, closed pipe, ...: the rest of this chunk is lost, the process goes on.
      write_failed_.inc();
      return;
    }
    off += static_cast<size_t>(rc);
  }
  write_completed_.inc();
}

absl::StatusOr<std::shared_ptr<LogFile>> LogFile::open(const std::string& path,
                                                       stats::Store& store) {
  // One LogFile per path while any access log uses it; leaked on purpose so it
  // outlives static destruction order.
  static std::mutex mu;
  static auto* files = new std::map<std::string, std::weak_ptr<LogFile>>();
  std::lock_guard<std::mutex> lock(mu);
  if (auto existing = (*files)[path].lock()) {
    return existing;
  }
  int fd;
  if (path == "/dev/stdout") {
    fd = 1;
  } else if (path == "/dev/stderr") {
    fd = 2;
  } else {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InvalidArgumentError("cannot open access log file '" + path +
                                        "': " + std::strerror(errno));
    }
  }
  auto f = std::make_shared<LogFile>(fd, path, store);
  (*files)[path] = f;
  return f;
}

} // namespace legate::accesslog
