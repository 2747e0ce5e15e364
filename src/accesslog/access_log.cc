#include "accesslog/access_log.h"

#include "accesslog/filter.h"
#include "accesslog/log_file.h"
#include "common/logger.h"
#include "config/extension_registry.h"
#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb.h"


// Envoy still accepts the deprecated v3 format fields; so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::accesslog {
namespace {

// Immutable after construction; log() runs on any worker. The filter decides
// before the (costlier) formatting; the line goes to the file's buffer.
class FileAccessLog : public AccessLog {
public:
  FileAccessLog(std::shared_ptr<LogFile> file, FormatterPtr formatter, FilterPtr filter)
      : file_(std::move(file)), formatter_(std::move(formatter)), filter_(std::move(filter)) {}
  void log(const StreamInfo& info) override {
    if (filter_ && !filter_->evaluate(info)) return;
    file_->write(formatter_->format(info));
  }

private:
  std::shared_ptr<LogFile> file_;
  FormatterPtr formatter_;
  FilterPtr filter_;
};

} // namespace

absl::StatusOr<AccessLogSharedPtr> create(const envoy::config::accesslog::v3::AccessLog& proto,
                                          const std::string& path, stats::Store& store) {
  FilterPtr filter;
  if (proto.has_filter()) {
    auto f = createFilter(proto.filter(), path + ".filter");
    if (!f.ok()) return f.status();
    filter = std::move(*f);
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
  // The field under typed_config the format came from, for errors.
  std::string format_field = "log_format.";
  if (type == envoy::extensions::access_loggers::file::v3::FileAccessLog::descriptor()->full_name()) {
    envoy::extensions::access_loggers::file::v3::FileAccessLog cfg;
    proto.typed_config().UnpackTo(&cfg);
    file_path = cfg.path();
    using FAL = envoy::extensions::access_loggers::file::v3::FileAccessLog;
    switch (cfg.access_log_format_case()) {
    case FAL::kFormat:
      formatter = parseTextFormat(cfg.format());
      format_field = "format: ";
      break;
    case FAL::kJsonFormat:
      formatter = parseJsonFormat(cfg.json_format(), false, "json_format");
      format_field = "";
      break;
    case FAL::kTypedJsonFormat:
      formatter = parseJsonFormat(cfg.typed_json_format(), false, "typed_json_format");
      format_field = "";
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
    return absl::InvalidArgumentError(path + ".typed_config." + format_field +
                                      std::string(formatter.status().message()));
  }
  auto file = LogFile::open(file_path, store);
  if (!file.ok()) {
    return absl::InvalidArgumentError(path + ".typed_config.path: " +
                                      std::string(file.status().message()));
  }
  return std::make_shared<FileAccessLog>(std::move(*file), std::move(*formatter),
                                         std::move(filter));
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
