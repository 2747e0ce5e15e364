#pragma once

// The route table: envoy.config.route.v3.RouteConfiguration compiled into
// virtual hosts and routes, with the virtual host picked by :authority and the
// first matching route in order (see route_index.h for how thousands of routes
// stay fast).
//
// Thread and lifetime: RouteConfig::create runs on the main thread and
// validates everything; the result is immutable and shared with workers as
// std::shared_ptr<const RouteConfig>. Routes and virtual hosts live as long as
// the RouteConfig; pointers returned by route() are valid while the caller
// holds the snapshot.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "http/header_map.h"
#include "router/header_mutation.h"
#include "router/route.h"
#include "router/route_index.h"

namespace envoy::config::route::v3 {
class RouteConfiguration;
class VirtualHost;
}  // namespace envoy::config::route::v3

namespace legate::router {

class VirtualHost {
 public:
  enum class TlsRequirement { kNone, kExternalOnly, kAll };

  const std::string& name() const { return name_; }
  const RouteConfig& routeConfig() const { return *config_; }
  const std::vector<std::unique_ptr<Route>>& routes() const { return routes_; }
  const TypedPerFilterConfig& typedPerFilterConfig() const { return typed_per_filter_config_; }
  const HeaderMutationLevel& headerMutations() const { return mutations_; }
  TlsRequirement tlsRequirement() const { return require_tls_; }
  // Retry-related settings of the virtual host (routes fall back to its
  // retry_policy, hedge_policy and per_request_buffer_limit_bytes).
  const std::shared_ptr<const RetryPolicy>& retryPolicy() const { return retry_policy_; }
  const std::shared_ptr<const HedgePolicy>& hedgePolicy() const { return hedge_policy_; }
  std::optional<uint32_t> perRequestBufferLimit() const { return buffer_limit_; }
  // request_mirror_policies of the virtual host (else the route configuration's).
  const std::shared_ptr<const MirrorPolicies>& mirrorPolicies() const { return mirror_policies_; }
  // x-envoy-attempt-count on upstream requests / downstream responses.
  bool includeRequestAttemptCount() const { return include_request_attempt_count_; }
  bool includeAttemptCountInResponse() const { return include_attempt_count_in_response_; }
  // x-envoy-is-timeout-retry on upstream requests.
  bool includeIsTimeoutRetryHeader() const { return include_is_timeout_retry_header_; }

  // require_tls first (a request that is not https, per x-forwarded-proto,
  // gets a 301 to https; EXTERNAL_ONLY exempts x-envoy-internal: true), then
  // the first matching route in order; nullptr when none matches.
  const Route* route(const http::HeaderMap& headers, uint64_t random_value) const;

 private:
  friend class RouteConfig;
  std::string name_;
  const RouteConfig* config_ = nullptr;
  std::vector<std::unique_ptr<Route>> routes_;
  RouteIndex index_;
  HeaderMutationLevel mutations_;
  TypedPerFilterConfig typed_per_filter_config_;
  TlsRequirement require_tls_ = TlsRequirement::kNone;
  std::unique_ptr<Route> tls_redirect_route_;
  std::shared_ptr<const RetryPolicy> retry_policy_;
  std::shared_ptr<const HedgePolicy> hedge_policy_;
  std::optional<uint32_t> buffer_limit_;
  std::shared_ptr<const MirrorPolicies> mirror_policies_;
  bool include_request_attempt_count_ = false;
  bool include_attempt_count_in_response_ = false;
  bool include_is_timeout_retry_header_ = false;
};

class RouteConfig {
 public:
  // path: how errors name the message, e.g. "route_config" gives
  // "route_config.virtual_hosts[0].routes[3].match.safe_regex: invalid regex ...".
  static absl::StatusOr<std::shared_ptr<const RouteConfig>> create(
      const envoy::config::route::v3::RouteConfiguration& proto, const std::string& path);

  // The virtual host for :authority, then its first matching route; nullptr
  // when no virtual host or no route matches (Envoy's NR).
  // random_value drives runtime_fraction and weighted clusters.
  const Route* route(const http::HeaderMap& request_headers, uint64_t random_value) const;

  // Envoy's domain search: exact, then suffix wildcards ("*.foo.com",
  // "*-bar.foo.com"; longest first; the wildcard matches at least one
  // character), then prefix wildcards ("foo.*", "foo-*"; longest first), then
  // "*". Case-insensitive. The port in the authority takes part in the match
  // ("example.com:8080" does not match "example.com") unless
  // ignore_port_in_host_matching.
  const VirtualHost* findVirtualHost(std::string_view authority) const;

  const std::string& name() const { return name_; }
  const std::vector<std::unique_ptr<VirtualHost>>& virtualHosts() const { return vhosts_; }
  const HeaderMutationLevel& headerMutations() const { return mutations_; }
  bool mostSpecificHeaderMutationsWins() const { return most_specific_wins_; }
  const TypedPerFilterConfig& typedPerFilterConfig() const { return typed_per_filter_config_; }
  // validate_clusters as configured (nullopt: unset; Envoy then validates
  // static route configs and not RDS ones).
  std::optional<bool> validateClustersSetting() const { return validate_clusters_; }

  // Checks that every fixed cluster name (cluster, weighted_clusters names)
  // exists; errors name the route field. cluster_header routes are checked
  // per request.
  absl::Status validateClusters(const std::function<bool(std::string_view)>& exists) const;

 private:
  std::string name_;
  std::vector<std::unique_ptr<VirtualHost>> vhosts_;
  std::string config_path_; // how errors name this configuration
  absl::flat_hash_map<std::string, const VirtualHost*> exact_domains_;
  // Wildcards by the length of their fixed part, longest first.
  std::map<size_t, absl::flat_hash_map<std::string, const VirtualHost*>, std::greater<>>
      suffix_domains_;
  std::map<size_t, absl::flat_hash_map<std::string, const VirtualHost*>, std::greater<>>
      prefix_domains_;
  const VirtualHost* default_vhost_ = nullptr;
  bool ignore_port_ = false;
  HeaderMutationLevel mutations_;
  bool most_specific_wins_ = false;
  std::optional<bool> validate_clusters_;
  TypedPerFilterConfig typed_per_filter_config_;
};

}  // namespace legate::router
