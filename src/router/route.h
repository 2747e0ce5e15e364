#pragma once

// One route of the route table (envoy.config.route.v3.Route): its match and
// its action, as plain data plus the helpers the router filter needs.
//
// Thread and lifetime: built on the main thread as part of a RouteConfig and
// owned by it; immutable afterwards, so workers use it without locks for as
// long as they hold the RouteConfig's shared_ptr.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "accesslog/stream_info.h"
#include "router/hash_policy.h"
#include "google/protobuf/any.pb.h"
#include "http/header_map.h"
#include "router/header_mutation.h"
#include "router/matchers.h"
#include "router/mirror_policy.h"
#include "router/retry_policy.h"
#include "tracing/custom_tag.h"
#include "tracing/decision.h"

namespace legate::router {

class VirtualHost;
class RouteConfig;

// typed_per_filter_config: kept for the filters that will read it, keyed by
// filter name.
using TypedPerFilterConfig = std::map<std::string, google::protobuf::Any, std::less<>>;

// How a matched route rewrites the path: prefix_rewrite replaces the part of
// the path the route matched (the prefix for prefix and path_separated_prefix
// routes, the whole path for path and safe_regex routes); regex_rewrite
// substitutes every match of the pattern (RE2::GlobalReplace) in the path.
// Both work on the path without its query, which is kept.
class PathRewriter {
 public:
  bool active() const { return has_prefix_ || regex_ != nullptr; }
  // The new ":path" for full_path ("/a/b?x=1").
  std::string rewrite(std::string_view full_path) const;

  bool has_prefix_ = false;
  std::string prefix_;
  size_t matched_len_ = 0;   // prefix routes: length of the matched prefix
  bool whole_path_ = false;  // path / regex routes: the whole path is replaced
  std::shared_ptr<const re2::RE2> regex_;
  std::string substitution_;
};

// One entry of weighted_clusters.
struct WeightedClusterEntry {
  std::string name;            // or
  std::string cluster_header;  // the cluster is read from this request header
  uint32_t weight = 0;
  // runtime_key_prefix + "." + name: a runtime value overriding weight ("" if none).
  std::string runtime_key;
};

// RouteAction: forward to a cluster.
class RouteAction {
 public:
  enum class HostRewrite { kNone, kLiteral, kAuto, kHeader, kPathRegex };

  // The cluster for this request: the fixed cluster; the value of
  // cluster_header ("" when the header is missing); or a weighted pick
  // (random % total weight, over the entries in order; the random value comes
  // from weighted_clusters.header_name when that header holds a valid uint64).
  // A view of the route's own name or of the header's value (valid while
  // `headers` is unchanged).
  std::string_view pickCluster(const http::HeaderMap& headers, uint64_t random) const;

  const std::string& cluster() const { return cluster_; }
  const std::string& clusterHeader() const { return choice().cluster_header; }
  const std::vector<WeightedClusterEntry>& weightedClusters() const { return choice().weighted; }
  uint64_t totalWeight() const { return choice().total_weight; }
  // cluster_not_found_response_code as an HTTP status (503 by default).
  uint32_t clusterNotFoundResponseCode() const { return cluster_not_found_code_; }

  // Upstream timeout: 15 s unless configured; zero means none.
  std::chrono::milliseconds timeout() const { return timeout_; }
  // idle_timeout: nullopt when unset (the connection manager's stream idle
  // timeout applies); zero disables it.
  std::optional<std::chrono::milliseconds> idleTimeout() const { return idle_timeout_; }

  HostRewrite hostRewrite() const { return rewrites().host; }
  const std::string& hostRewriteLiteral() const { return rewrites().host_literal; }
  const std::string& hostRewriteHeader() const { return rewrites().host_header; }
  // auto_host_rewrite needs the chosen upstream host, so the router filter
  // applies it after load balancing (rewritePathAndHost does not).
  bool autoHostRewrite() const { return rewrites().host == HostRewrite::kAuto; }
  bool appendXForwardedHost() const { return rewrites().append_x_forwarded_host; }
  const PathRewriter& pathRewriter() const { return rewrites().path; }
  // hash_policy: the request hash for consistent-hashing clusters; nullptr if none.
  const HashPolicy* hashPolicy() const { return hash_policy_.get(); }
  // upgrade_configs: whether this route enables (true) or disables (false) an
  // upgrade type (lower case); nullopt leaves it to the connection manager.
  std::optional<bool> upgradeEnabled(std::string_view type) const {
    auto it = upgrades_.find(type);
    if (it == upgrades_.end()) return std::nullopt;
    return it->second;
  }

  // retry_policy / hedge_policy: the route's, else its virtual host's; null
  // when neither has one.
  const RetryPolicy* retryPolicy() const { return retry_policy_.get(); }
  const HedgePolicy* hedgePolicy() const { return hedge_policy_.get(); }
  // per_request_buffer_limit_bytes of the route, else of its virtual host:
  // how much request body is kept for retries and mirrors (nullopt: the
  // connection's buffer limit).
  std::optional<uint32_t> perRequestBufferLimit() const { return buffer_limit_; }
  // request_mirror_policies: the route's, else its virtual host's, else the
  // route configuration's; null when none.
  const MirrorPolicies* mirrorPolicies() const { return mirror_policies_.get(); }

 private:
  friend class RouteBuilder;
  std::map<std::string, bool, std::less<>> upgrades_;
  std::string cluster_;
  // cluster_header or weighted_clusters. Most routes name one cluster and a
  // table may have tens of thousands, so this (and Rewrites) is allocated only
  // for the routes that have it.
  struct ClusterChoice {
    std::string cluster_header;
    std::vector<WeightedClusterEntry> weighted;
    uint64_t total_weight = 0;
    std::string random_header;          // weighted_clusters.header_name
    bool weights_from_runtime = false;  // some entry has a runtime_key
  };
  // Host and path rewriting.
  struct Rewrites {
    HostRewrite host = HostRewrite::kNone;
    std::string host_literal;
    std::string host_header;
    std::shared_ptr<const re2::RE2> host_regex;
    std::string host_regex_substitution;
    bool append_x_forwarded_host = false;
    PathRewriter path;
    bool any() const { return host != HostRewrite::kNone || append_x_forwarded_host || path.active(); }
  };
  const ClusterChoice& choice() const;
  const Rewrites& rewrites() const;
  std::unique_ptr<ClusterChoice> choice_;
  std::unique_ptr<Rewrites> rewrites_;
  uint32_t cluster_not_found_code_ = 503;
  std::chrono::milliseconds timeout_{15000};
  std::optional<std::chrono::milliseconds> idle_timeout_;
  std::unique_ptr<const HashPolicy> hash_policy_;
  std::shared_ptr<const RetryPolicy> retry_policy_;
  std::shared_ptr<const HedgePolicy> hedge_policy_;
  std::optional<uint32_t> buffer_limit_;
  std::shared_ptr<const MirrorPolicies> mirror_policies_;

  friend class Route;
};

// RedirectAction: answer with a redirect.
class RedirectAction {
 public:
  // The Location for this request, as Envoy builds it: scheme (scheme_redirect,
  // https_redirect, else the request's x-forwarded-proto / :scheme), host
  // (host_redirect, else the request's :authority, without its port when
  // port_redirect is set or when the scheme changes and the port was the old
  // scheme's default), port_redirect,
  // then the path: path_redirect (its own query wins; otherwise the request's
  // query is kept unless strip_query), prefix/regex rewrite of the request
  // path, or the request path.
  std::string location(const http::HeaderMap& request) const;
  // 301 (default), 302, 303, 307 or 308.
  uint32_t responseCode() const { return response_code_; }

 private:
  friend class RouteBuilder;
  friend class VirtualHost;
  std::string scheme_;  // "" keeps the request's
  std::string host_;
  std::string port_;  // ":8443" or ""
  std::string path_;
  bool has_path_ = false;
  bool path_has_query_ = false;
  PathRewriter rewriter_;
  bool strip_query_ = false;
  uint32_t response_code_ = 301;
  // The require_tls redirect: "https://" + :authority + :path, unchanged.
  bool tls_redirect_ = false;
};

// Route.tracing (envoy.config.route.v3.Tracing). Its presence overrides the
// connection manager's tracing for requests this route matched: the trace
// decision uses these three fractions instead of the connection manager's (a
// field left unset is 100%, as Envoy documents, not the connection manager's
// value), still under the runtime keys tracing.client_enabled,
// tracing.random_sampling and tracing.global_enabled; custom_tags join the
// connection manager's, a tag of the same name here winning.
struct RouteTracing {
  tracing::Sampling sampling;
  tracing::CustomTags custom_tags;
};

// DirectResponseAction: answer locally.
struct DirectResponse {
  uint32_t status = 200;
  std::string body;
};

class Route {
 public:
  const std::string& name() const { return name_; }
  const VirtualHost& virtualHost() const { return *vhost_; }

  // Exactly one of these is non-null.
  const RouteAction* routeAction() const { return route_action_.get(); }
  const RedirectAction* redirect() const { return redirect_.get(); }
  const DirectResponse* directResponse() const { return direct_response_.get(); }

  const TypedPerFilterConfig& typedPerFilterConfig() const { return extras().typed_per_filter_config; }

  // The route's decorator: the operation name of its trace spans, and
  // whether it is propagated (x-envoy-decorator-operation). Null if none.
  struct Decorator {
    std::string operation;
    bool propagate = true;
  };
  const Decorator* decorator() const {
    return extras_ != nullptr && extras_->decorator ? &*extras_->decorator : nullptr;
  }
  // The route's tracing override; null when it has none.
  const RouteTracing* tracing() const { return tracing_.get(); }

  // Whether this route matches. path/query: the :path split by splitPath.
  bool matches(const http::HeaderMap& headers, std::string_view path, std::string_view query,
               uint64_t random_value) const;

  // For a RouteAction: rewrites :authority (host_rewrite_literal,
  // host_rewrite_header, host_rewrite_path_regex; appending the old value to
  // x-forwarded-host when append_x_forwarded_host), then :path (prefix_rewrite
  // or regex_rewrite, keeping the query; the original :path is saved in
  // x-envoy-original-path when insert_original_path, as Envoy does unless
  // suppress_envoy_headers). Envoy applies it after finalizeRequestHeaders.
  void rewritePathAndHost(http::HeaderMap& headers, bool insert_original_path = true) const;

  // request_headers_to_add/_remove of the route, its virtual host and the
  // route configuration: most specific first (route, virtual host, route
  // configuration; later levels may overwrite earlier ones), or the reverse
  // with most_specific_header_mutations_wins.
  void finalizeRequestHeaders(http::HeaderMap& headers, const accesslog::StreamInfo& info) const;
  // The same for response_headers_to_add/_remove.
  void finalizeResponseHeaders(http::HeaderMap& headers, const accesslog::StreamInfo& info) const;

  // Match kind, for the route index.
  enum class PathMatch { kPrefix, kPath, kRegex, kPathSeparatedPrefix };
  PathMatch pathMatch() const { return path_match_; }
  const std::string& pathMatchValue() const { return match_value_; }
  bool caseSensitive() const { return case_sensitive_; }

 private:
  friend class RouteBuilder;
  friend class VirtualHost;

  bool pathMatches(std::string_view path) const;

  // Ordered without padding holes (a table may have tens of thousands of routes).
  std::string name_;
  const VirtualHost* vhost_ = nullptr;
  bool tls_redirect_route_ = false;  // require_tls: no header mutations
  bool case_sensitive_ = true;
  // Whether any of the three levels (route, virtual host, route configuration)
  // mutates request or response headers: most tables mutate none, and then
  // finalize*Headers return at once instead of visiting three empty levels.
  bool mutates_request_ = false;
  bool mutates_response_ = false;
  PathMatch path_match_ = PathMatch::kPrefix;
  std::string match_value_;  // lower-cased when !case_sensitive_
  std::shared_ptr<const re2::RE2> path_regex_;
  // match.runtime_fraction, for the routes that set it.
  struct RuntimeFraction {
    uint64_t numerator = 0;
    uint64_t denominator = 100;
    std::string runtime_key; // overrides the default fraction when set in the runtime
  };
  std::unique_ptr<const RuntimeFraction> runtime_fraction_;
  std::vector<HeaderMatcher> header_matchers_;
  std::vector<QueryParameterMatcher> query_matchers_;

  std::unique_ptr<RouteAction> route_action_;
  std::unique_ptr<RedirectAction> redirect_;
  std::unique_ptr<DirectResponse> direct_response_;

  // What most routes leave unset; allocated only for a route that sets some of it
  // (a table may have tens of thousands of routes).
  struct Extras {
    HeaderMutationLevel mutations;
    TypedPerFilterConfig typed_per_filter_config;
    std::optional<Decorator> decorator;
  };
  const Extras& extras() const;
  std::unique_ptr<const Extras> extras_;
  std::unique_ptr<const RouteTracing> tracing_;
};

}  // namespace legate::router
