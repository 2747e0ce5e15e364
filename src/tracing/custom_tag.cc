#include "tracing/custom_tag.h"

#include <cstdlib>
#include <optional>
#include <string_view>

#include "absl/strings/ascii.h"
#include "envoy/type/tracing/v3/custom_tag.pb.h"
#include "http/header_map.h"
#include "tracing/span.h"

namespace legate::tracing {
namespace {

void applyOne(Span& span, const http::HeaderMap* request_headers, const CustomTag& t) {
  if (t.kind == CustomTag::Kind::Literal) {
    if (!t.value.empty())
      span.setTag(t.tag, t.value);
    return;
  }
  std::optional<std::string_view> v;
  if (request_headers != nullptr)
    v = request_headers->get(t.value);
  if (v) {
    span.setTag(t.tag, *v);
  } else if (!t.default_value.empty()) {
    span.setTag(t.tag, t.default_value);
  }
}

bool namedIn(const CustomTags& tags, const std::string& name) {
  for (const auto& t : tags) {
    if (t.tag == name)
      return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<CustomTags> parseCustomTags(
    const google::protobuf::RepeatedPtrField<envoy::type::tracing::v3::CustomTag>& proto,
    const std::string& path) {
  using Proto = envoy::type::tracing::v3::CustomTag;
  CustomTags out;
  out.reserve(proto.size());
  for (int i = 0; i < proto.size(); ++i) {
    const Proto& t = proto[i];
    CustomTag tag;
    tag.tag = t.tag();
    switch (t.type_case()) {
    case Proto::kLiteral:
      tag.value = t.literal().value();
      break;
    case Proto::kEnvironment: {
      // Read once, at load (Envoy).
      const char* env = std::getenv(t.environment().name().c_str());
      tag.value = env != nullptr ? env : t.environment().default_value();
      break;
    }
    case Proto::kRequestHeader:
      tag.kind = CustomTag::Kind::RequestHeader;
      tag.value = absl::AsciiStrToLower(t.request_header().name());
      tag.default_value = t.request_header().default_value();
      break;
    default:
      return absl::InvalidArgumentError(path + "[" + std::to_string(i) +
                                        "].metadata: metadata custom tags are not implemented "
                                        "by legate yet");
    }
    out.push_back(std::move(tag));
  }
  return out;
}

void applyCustomTags(Span& span, const http::HeaderMap* request_headers,
                     const CustomTags& connection_manager, const CustomTags* route) {
  if (!span.sampled())
    return;
  for (const auto& t : connection_manager) {
    if (route != nullptr && namedIn(*route, t.tag))
      continue;
    applyOne(span, request_headers, t);
  }
  if (route == nullptr)
    return;
  for (const auto& t : *route)
    applyOne(span, request_headers, t);
}

}  // namespace legate::tracing
