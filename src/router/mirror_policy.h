#pragma once

// request_mirror_policies (envoy.config.route.v3.RouteAction.RequestMirrorPolicy)
// of a route, virtual host or route configuration, compiled once. The most
// specific non-empty list applies (route, else virtual host, else route
// configuration), as in Envoy.
//
// Thread and lifetime: built on the main thread with the RouteConfig,
// immutable afterwards.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace envoy::config::route::v3 {
class RouteAction_RequestMirrorPolicy;
}  // namespace envoy::config::route::v3

namespace legate::router {

struct MirrorPolicy {
  std::string cluster;         // or
  std::string cluster_header;  // the cluster is read from this request header
  // runtime_fraction: the default_value, which the runtime_key overrides
  // (read from the runtime per request by the router). Without
  // runtime_fraction every request is mirrored.
  uint64_t numerator = 1;
  uint64_t denominator = 1;
  std::string runtime_key;
  // disable_shadow_host_suffix_append: keep :authority as it is.
  bool keep_host = false;

  bool sampled(uint64_t random) const { return random % denominator < numerator; }
};

using MirrorPolicies = std::vector<MirrorPolicy>;

absl::StatusOr<std::shared_ptr<const MirrorPolicies>> buildMirrorPolicies(
    const google::protobuf::RepeatedPtrField<envoy::config::route::v3::RouteAction_RequestMirrorPolicy>&
        protos,
    const std::string& path);

}  // namespace legate::router
