#pragma once

// A buffered, append-only log file: workers never touch the disk.
//
// Threads: write() may be called from any thread; it appends to an in-memory
// buffer under a short mutex and never blocks on I/O. One flush thread per
// file writes the buffer with write(2) every flush_interval, sooner when the
// buffer passes flush_threshold, and on flush() / destruction. Lines from one
// thread reach the file in the order that thread wrote them; a line is never
// split or interleaved with another.
//
// Lifetime: shared (std::shared_ptr) by every access log writing to the path.
// The destructor writes what is buffered and joins the flush thread, so no
// accepted line is lost on clean shutdown. The stats::Store must outlive it.
// The last owner may be a worker dropping an old config snapshot: that one
// destruction then waits for the final write, once per file per reload.
//
// Failures never stop the data path: when the buffer is over max_buffer the
// line is dropped and counted (access_log.lines_dropped); a failed write(2)
// (full disk, ...) drops that chunk and counts filesystem.write_failed.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "stats/stats.h"

namespace legate::accesslog {

class LogFile {
public:
  struct Options {
    // Envoy's file_flush_interval_msec default.
    std::chrono::milliseconds flush_interval{1000};
    // Wake the flush thread early once this much is buffered.
    size_t flush_threshold = 64 * 1024;
    // Above this, lines are dropped (not queued) until the flush thread catches up.
    size_t max_buffer = 16 * 1024 * 1024;
  };

  // Takes ownership of fd (closed on destruction) unless it is 0, 1 or 2.
  LogFile(int fd, std::string path, stats::Store& store, Options options);
  LogFile(int fd, std::string path, stats::Store& store);
  ~LogFile();
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  // Queues one line (including its newline). Any thread; never blocks on I/O.
  void write(std::string_view line);
  // Blocks until everything queued before the call has been written (or
  // failed). Not for worker threads: tests and shutdown.
  void flush();

  const std::string& path() const { return path_; }

  // Opens (O_APPEND, created 0644) or shares the file for path; /dev/stdout and
  // /dev/stderr use fds 1 and 2. Main thread (config load).
  static absl::StatusOr<std::shared_ptr<LogFile>> open(const std::string& path,
                                                       stats::Store& store);

private:
  void run();
  void writeAll(const std::string& data);

  const int fd_;
  const std::string path_;
  const Options options_;
  stats::Counter& write_buffered_;
  stats::Counter& write_completed_;
  stats::Counter& write_failed_;
  stats::Counter& flushed_by_timer_;
  stats::Counter& lines_dropped_;
  stats::Gauge& write_total_buffered_;

  std::mutex mu_;
  std::condition_variable wake_;    // flush thread waits here
  std::condition_variable flushed_; // flush() waits here
  std::string buffer_;              // guarded by mu_
  uint64_t queued_seq_ = 0;         // guarded by mu_: lines accepted so far
  uint64_t written_seq_ = 0;        // guarded by mu_: lines handed to write(2)
  bool flush_requested_ = false;    // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::thread thread_;              // started last, joined in the destructor
};

} // namespace legate::accesslog
