#pragma once

// Access log filters (envoy.config.accesslog.v3.AccessLogFilter): decide,
// before anything is formatted, whether a finished stream is logged.
//
// Built on the main thread at config load; immutable afterwards and evaluated
// concurrently by every worker (evaluate() is const and thread-safe).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "accesslog/stream_info.h"

namespace envoy::config::accesslog::v3 {
class AccessLogFilter;
}

namespace legate::accesslog {

class Filter {
public:
  virtual ~Filter() = default;
  // True when the stream is to be logged.
  virtual bool evaluate(const StreamInfo& info) const = 0;
};
using FilterPtr = std::unique_ptr<const Filter>;

// A source of uniformly distributed random numbers for runtime_filter; called
// on worker threads, so it must be thread-safe. Null = a thread-local engine.
using RandomFn = std::function<uint64_t()>;

// Builds a filter tree; path (e.g. "...access_log[0].filter") prefixes errors.
// Refused kinds (extension_filter, regex and range header matchers, list/or
// metadata value matchers) are errors naming the field.
absl::StatusOr<FilterPtr> createFilter(const envoy::config::accesslog::v3::AccessLogFilter& proto,
                                       const std::string& path, RandomFn random = nullptr);

} // namespace legate::accesslog
