#pragma once

// Custom span tags (envoy.type.tracing.v3.CustomTag), configured on the
// connection manager's tracing and on a route's tracing.
//
// Built on the main thread at config load; immutable afterwards and applied
// by workers to their streams' spans.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace envoy::type::tracing::v3 {
class CustomTag;
}
namespace legate::http {
class HeaderMap;
}

namespace legate::tracing {

class Span;

struct CustomTag {
  enum class Kind { Literal, RequestHeader };
  std::string tag;
  Kind kind = Kind::Literal;
  // The literal (environment tags are resolved at load), or the header name
  // (lower case).
  std::string value;
  std::string default_value;  // request_header: used when the header is absent
};
using CustomTags = std::vector<CustomTag>;

// From the protos; path names the repeated field ("...tracing.custom_tags").
// An environment tag whose variable is unset and has no default sets nothing
// (as Envoy); metadata tags are refused by path.
absl::StatusOr<CustomTags> parseCustomTags(
    const google::protobuf::RepeatedPtrField<envoy::type::tracing::v3::CustomTag>& proto,
    const std::string& path);

// Sets the tags on a sampled span (a span that is not sampled takes no tags).
// Envoy merges a route's tags with the connection manager's by tag name, the
// route's winning: a connection manager tag named by a route tag is skipped,
// even when the route tag yields no value. route may be null.
// request_headers may be null (a request-header tag then falls back to its
// default).
void applyCustomTags(Span& span, const http::HeaderMap* request_headers,
                     const CustomTags& connection_manager, const CustomTags* route);

}  // namespace legate::tracing
