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

// A text format. Unknown operators are errors naming the operator; Envoy operators
// legate does not implement yet are refused by name. omit_empty_values: an empty
// value prints as nothing instead of "-".
absl::StatusOr<FormatterPtr> parseTextFormat(const std::string& format,
                                             bool omit_empty_values = false);
// A JSON format (json_format, typed_json_format): each value is a text format, a
// number, a bool or a nested dictionary; a value that is exactly one operator keeps
// its type (numbers stay numbers, metadata its JSON shape). path names the field in
// errors ("json_format" -> "json_format.key: ...").
absl::StatusOr<FormatterPtr> parseJsonFormat(const google::protobuf::Struct& format,
                                             bool omit_empty_values, const std::string& path);
// From an envoy SubstitutionFormatString (text_format, text_format_source
// inline_string, json_format, omit_empty_values); an unset one gives the default
// format. Errors start with the field inside it ("text_format: ..."); content_type
// concerns local replies only and json_format_options' sorting is what legate
// always does (keys in name order).
absl::StatusOr<FormatterPtr>
fromProto(const envoy::config::core::v3::SubstitutionFormatString& proto, bool has_proto);

} // namespace legate::accesslog
