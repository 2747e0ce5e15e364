#pragma once

// Internal to the router layer: compiles one envoy.config.route.v3.Route into
// a Route, validating it and refusing what legate does not implement.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "router/route.h"

namespace envoy::config::route::v3 {
class Route;
class RouteMatch;
class RouteAction;
class RedirectAction;
class DirectResponseAction;
class Tracing;
}  // namespace envoy::config::route::v3

namespace legate::router {

// An upgrade_configs entry's upgrade_type as legate keys it (lower case);
// CONNECT is refused (not implemented). `path` is the entry's field path.
absl::StatusOr<std::string> upgradeTypeKey(const std::string& upgrade_type,
                                           const std::string& path);

class RouteBuilder {
 public:
  // path: "route_config.virtual_hosts[0].routes[3]". max_body: the route
  // configuration's max_direct_response_body_size_bytes.
  static absl::StatusOr<std::unique_ptr<Route>> build(const envoy::config::route::v3::Route& proto,
                                                      const std::string& path,
                                                      const VirtualHost* vhost, uint32_t max_body);
  // The require_tls redirect route of a virtual host.
  static std::unique_ptr<Route> tlsRedirect(const VirtualHost* vhost);

  // Copies a typed_per_filter_config map.
  template <class Map>
  static TypedPerFilterConfig copyTypedConfig(const Map& m) {
    TypedPerFilterConfig out;
    for (const auto& [k, v] : m)
      out.emplace(k, v);
    return out;
  }

 private:
  static absl::Status buildMatch(const envoy::config::route::v3::RouteMatch& proto,
                                 const std::string& path, Route& route);
  static absl::StatusOr<std::unique_ptr<RouteAction>> buildRouteAction(
      const envoy::config::route::v3::RouteAction& proto, const std::string& path,
      const Route& route);
  static absl::StatusOr<std::unique_ptr<RedirectAction>> buildRedirect(
      const envoy::config::route::v3::RedirectAction& proto, const std::string& path,
      const Route& route);
  static absl::StatusOr<std::unique_ptr<DirectResponse>> buildDirectResponse(
      const envoy::config::route::v3::DirectResponseAction& proto, const std::string& path,
      uint32_t max_body);
  static absl::StatusOr<std::unique_ptr<const RouteTracing>> buildTracing(
      const envoy::config::route::v3::Tracing& proto, const std::string& path);
};

}  // namespace legate::router
