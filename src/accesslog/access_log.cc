#include "accesslog/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "common/logger.h"
#include "config/extension_registry.h"
#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb.h"


// Envoy still accepts the deprecated v3 format fields; so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::accesslog {
namespace {

// One open file per path, shared by every log that writes to it. Lines are
// written with one write(2) each on an O_APPEND fd, so lines from different
// workers never interleave. A failed write (full disk, ...) is counted and the
// line dropped: logging never stops the data path.
class LogFile {
public:
  LogFile(int fd, stats::Store& store)
      : fd_(fd), write_failed_(store.counter("filesystem.write_failed")),
        write_completed_(store.counter("filesystem.write_completed")) {}
  ~LogFile() {
    if (fd_ > 2) ::close(fd_);
  }
  void write(const std::string& line) {
    const ssize_t rc = ::write(fd_, line.data(), line.size());
    if (rc == static_cast<ssize_t>(line.size())) {
      write_completed_.inc();
    } else {
      write_failed_.inc();
    }
  }

private:
  int fd_;
  stats::Counter& write_failed_;
  stats::Counter& write_completed_;
};

absl::StatusOr<std::shared_ptr<LogFile>> openLogFile(const std::string& path, stats::Store& store) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<LogFile>>* files =
      new std::map<std::string, std::weak_ptr<LogFile>>();
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
  auto f = std::make_shared<LogFile>(fd, store);
  (*files)[path] = f;
  return f;
}

class FileAccessLog : public AccessLog {
public:
  FileAccessLog(std::shared_ptr<LogFile> file, FormatterPtr formatter)
      : file_(std::move(file)), formatter_(std::move(formatter)) {}
  void log(const StreamInfo& info) override { file_->write(formatter_->format(info)); }

private:
  std::shared_ptr<LogFile> file_;
  FormatterPtr formatter_;
};

} // namespace

absl::StatusOr<AccessLogSharedPtr> create(const envoy::config::accesslog::v3::AccessLog& proto,
                                          const std::string& path, stats::Store& store) {
  if (proto.has_filter()) {
    return absl::InvalidArgumentError(path + ".filter: access log filters are not implemented by "
                                             "legate yet");
  }
  if (!proto.has_typed_config()) {
    return absl::InvalidArgumentError(path + ": typed_config is required (access log '" +
                                      proto.name() + "')");
  }
  const std::string type(config::typeNameFromUrl(proto.typed_config().type_url()));
  const auto* info = config::ExtensionRegistry::get().findByType(type);
  if (info == nullptr || info->category != config::ExtensionCategory::AccessLogger) {
    return absl::InvalidArgumentError(path + ".typed_config: access logger '" + type +
                                      "' is not implemented by legate");
  }
  std::string file_path;
  absl::StatusOr<FormatterPtr> formatter;
  if (type == envoy::extensions::access_loggers::file::v3::FileAccessLog::descriptor()->full_name()) {
    envoy::extensions::access_loggers::file::v3::FileAccessLog cfg;
    proto.typed_config().UnpackTo(&cfg);
    file_path = cfg.path();
    using FAL = envoy::extensions::access_loggers::file::v3::FileAccessLog;
    switch (cfg.access_log_format_case()) {
    case FAL::kFormat:
      formatter = parseTextFormat(cfg.format());
      break;
    case FAL::kJsonFormat:
      formatter = parseJsonFormat(cfg.json_format(), false);
      break;
    case FAL::kTypedJsonFormat:
      formatter = parseJsonFormat(cfg.typed_json_format(), false);
      break;
    default:
      formatter = fromProto(cfg.log_format(), cfg.has_log_format());
    }
  } else if (type == envoy::extensions::access_loggers::stream::v3::StdoutAccessLog::descriptor()
                         ->full_name()) {
    envoy::extensions::access_loggers::stream::v3::StdoutAccessLog cfg;
    proto.typed_config().UnpackTo(&cfg);
    file_path = "/dev/stdout";
    formatter = fromProto(cfg.log_format(), cfg.has_log_format());
  } else {
    envoy::extensions::access_loggers::stream::v3::StderrAccessLog cfg;
    proto.typed_config().UnpackTo(&cfg);
    file_path = "/dev/stderr";
    formatter = fromProto(cfg.log_format(), cfg.has_log_format());
  }
  if (!formatter.ok()) {
    return absl::InvalidArgumentError(path + ".typed_config: " +
                                      std::string(formatter.status().message()));
  }
  auto file = openLogFile(file_path, store);
  if (!file.ok()) {
    return absl::InvalidArgumentError(path + ".typed_config.path: " +
                                      std::string(file.status().message()));
  }
  return std::make_shared<FileAccessLog>(std::move(*file), std::move(*formatter));
}

absl::StatusOr<std::vector<AccessLogSharedPtr>>
createAll(const google::protobuf::RepeatedPtrField<envoy::config::accesslog::v3::AccessLog>& protos,
          const std::string& path, stats::Store& store) {
  std::vector<AccessLogSharedPtr> out;
  for (int i = 0; i < protos.size(); ++i) {
    auto log = create(protos[i], path + "[" + std::to_string(i) + "]", store);
    if (!log.ok()) {
      return log.status();
    }
    out.push_back(std::move(*log));
  }
  return out;
}

} // namespace legate::accesslog
