#pragma once

// Envoy's substitution format strings ("%START_TIME% %BYTES_SENT% ...") and
// JSON formats, parsed once at config time into a list of parts.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accesslog/stream_info.h"

namespace envoy::config::core::v3 {
class SubstitutionFormatString;
}
namespace google::protobuf {
class Struct;
}

namespace legate::accesslog {

// Envoy's default access log format.
extern const char* const kDefaultFormat;

class Formatter {
public:
  virtual ~Formatter() = default;
  virtual std::string format(const StreamInfo& info) const = 0;
};
using FormatterPtr = std::unique_ptr<Formatter>;

// A text format. Unknown operators are errors naming the operator.
absl::StatusOr<FormatterPtr> parseTextFormat(const std::string& format);
// A JSON format: each value is a text format; a value that is exactly one
// numeric operator prints as a JSON number.
absl::StatusOr<FormatterPtr> parseJsonFormat(const google::protobuf::Struct& format,
                                             bool omit_empty_values);
// From an envoy SubstitutionFormatString (text_format, text_format_source
// inline_string, json_format); an unset one gives the default format.
absl::StatusOr<FormatterPtr>
fromProto(const envoy::config::core::v3::SubstitutionFormatString& proto, bool has_proto);

} // namespace legate::accesslog
