#pragma once

// Access logs: file, stdout and stderr sinks with a formatter and an optional
// filter, built from envoy.config.accesslog.v3.AccessLog on the main thread
// and shared with the workers (log() is thread-safe). log() evaluates the
// filter, formats, and queues the line on the file's buffered writer
// (log_file.h): it never waits for the disk. stdout/stderr use the same writer.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "accesslog/formatter.h"
#include "stats/stats.h"

namespace envoy::config::accesslog::v3 {
class AccessLog;
}

namespace legate::accesslog {

class AccessLog {
public:
  virtual ~AccessLog() = default;
  virtual void log(const StreamInfo& info) = 0;
};
using AccessLogSharedPtr = std::shared_ptr<AccessLog>;

// Builds one access log; path is the config field path used in errors.
absl::StatusOr<AccessLogSharedPtr> create(const envoy::config::accesslog::v3::AccessLog& proto,
                                          const std::string& path, stats::Store& store);

absl::StatusOr<std::vector<AccessLogSharedPtr>>
createAll(const google::protobuf::RepeatedPtrField<envoy::config::accesslog::v3::AccessLog>& protos,
          const std::string& path, stats::Store& store);

} // namespace legate::accesslog
