#pragma once

// request_headers_to_add / _remove and response_headers_to_add / _remove of
// one level of the route table (route, virtual host or route configuration).
// Built on the main thread; apply() runs on workers against an immutable
// object.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "accesslog/formatter.h"
#include "accesslog/stream_info.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "http/header_map.h"

namespace envoy::config::core::v3 {
class HeaderValueOption;
}

namespace legate::router {

class HeaderMutations {
 public:
  using AddList = google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>;
  using RemoveList = google::protobuf::RepeatedPtrField<std::string>;

  // add_path / remove_path name the fields in errors
  // ("route_config.virtual_hosts[0].request_headers_to_add[2].header.key: ...").
  // Pseudo-headers (':'-prefixed) and host may be neither added nor removed,
  // as in Envoy; values are %...% substitution formats.
  static absl::StatusOr<HeaderMutations> create(const AddList& add, const std::string& add_path,
                                                const RemoveList& remove,
                                                const std::string& remove_path);

  // Envoy's order within one level: removals first; then every value is
  // formatted against the headers as they are now; then overwrites are set,
  // then appends are added. A value that formats to "" is skipped unless
  // keep_empty_value.
  void apply(http::HeaderMap& headers, const accesslog::StreamInfo& info) const;

  bool empty() const { return add_.empty() && remove_.empty(); }

 private:
  enum class Action {
    kAppendIfExistsOrAdd,
    kAddIfAbsent,
    kOverwriteIfExistsOrAdd,
    kOverwriteIfExists
  };
  struct Part {
    std::string literal;                             // when op is null
    std::shared_ptr<const accesslog::Formatter> op;  // one %OPERATOR%
  };
  // Envoy's header value syntax: text with %OPERATOR%s; "%%" is a literal '%'.
  static absl::StatusOr<std::vector<Part>> parseHeaderValue(const std::string& value);

  struct Add {
    std::string name;         // lower-case
    std::vector<Part> parts;  // literal text and %OPERATOR%s, in order
    std::string format(const accesslog::StreamInfo& info) const;
    Action action = Action::kAppendIfExistsOrAdd;
    bool keep_empty = false;
  };
  std::vector<Add> add_;
  std::vector<std::string> remove_;
};

// The request / response mutations of one level.
struct HeaderMutationLevel {
  HeaderMutations request;
  HeaderMutations response;
};

// Builds both from a message that has the four standard fields
// (request_headers_to_add, request_headers_to_remove, response_headers_to_add,
// response_headers_to_remove): Route, VirtualHost and RouteConfiguration.
template <class Proto>
absl::StatusOr<HeaderMutationLevel> buildHeaderMutations(const Proto& proto,
                                                         const std::string& path) {
  auto req = HeaderMutations::create(
      proto.request_headers_to_add(), path + ".request_headers_to_add",
      proto.request_headers_to_remove(), path + ".request_headers_to_remove");
  if (!req.ok())
    return req.status();
  auto resp = HeaderMutations::create(
      proto.response_headers_to_add(), path + ".response_headers_to_add",
      proto.response_headers_to_remove(), path + ".response_headers_to_remove");
  if (!resp.ok())
    return resp.status();
  return HeaderMutationLevel{std::move(*req), std::move(*resp)};
}

}  // namespace legate::router
