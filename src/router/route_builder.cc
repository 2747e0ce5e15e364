#include "router/route_builder.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "config/unsupported.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "google/protobuf/util/time_util.h"
#include "re2/re2.h"
#include "router/route_config.h"

// Envoy still honours the deprecated fields (exact_match, append, total_weight,
// google_re2.max_program_size, ...); so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::router {

namespace {

using RouteProto = envoy::config::route::v3::Route;
using MatchProto = envoy::config::route::v3::RouteMatch;
using ActionProto = envoy::config::route::v3::RouteAction;
using RedirectProto = envoy::config::route::v3::RedirectAction;

absl::Status invalid(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(path + ": " + what);
}

std::chrono::milliseconds toMillis(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

uint64_t denominatorOf(envoy::type::v3::FractionalPercent::DenominatorType d) {
  switch (d) {
  case envoy::type::v3::FractionalPercent::TEN_THOUSAND:
    return 10000;
  case envoy::type::v3::FractionalPercent::MILLION:
    return 1000000;
  default:
    return 100;
  }
}

// prefix_rewrite / regex_rewrite relative to the route's match.
absl::Status buildRewriter(bool has_prefix, const std::string& prefix,
                           const envoy::type::matcher::v3::RegexMatchAndSubstitute* regex,
                           const std::string& regex_path, const Route& route, PathRewriter& out) {
  if (has_prefix) {
    out.has_prefix_ = true;
    out.prefix_ = prefix;
    out.whole_path_ = route.pathMatch() == Route::PathMatch::kPath ||
                      route.pathMatch() == Route::PathMatch::kRegex;
    out.matched_len_ = route.pathMatchValue().size();
  }
  if (regex != nullptr) {
    auto re = compileRegex(regex->pattern(), regex_path + ".pattern");
    if (!re.ok())
      return re.status();
    out.regex_ = std::move(*re);
    out.substitution_ = regex->substitution();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RouteBuilder::buildMatch(const MatchProto& proto, const std::string& path,
                                      Route& route) {
  // Match kinds legate does not evaluate yet: refusing them keeps a route
  // from matching more requests than the configuration meant.
  if (proto.path_specifier_case() == MatchProto::kConnectMatcher) {
    return invalid(path + ".connect_matcher", "CONNECT matching is not implemented by legate yet");
  }
  if (proto.path_specifier_case() == MatchProto::kPathMatchPolicy) {
    return invalid(path + ".path_match_policy",
                   "path match policy extensions (URI templates) are not implemented by legate "
                   "yet; use prefix, path, safe_regex or path_separated_prefix");
  }
  if (auto st = config::rejectUnsupportedFields(
          proto, {"grpc", "tls_context", "dynamic_metadata", "filter_state"}, path);
      !st.ok()) {
    return st;
  }
  route.case_sensitive_ = !proto.has_case_sensitive() || proto.case_sensitive().value();
  switch (proto.path_specifier_case()) {
  case MatchProto::kPrefix:
    route.path_match_ = Route::PathMatch::kPrefix;
    route.match_value_ = proto.prefix();
    break;
  case MatchProto::kPath:
    route.path_match_ = Route::PathMatch::kPath;
    route.match_value_ = proto.path();
    break;
  case MatchProto::kSafeRegex: {
    route.path_match_ = Route::PathMatch::kRegex;
    auto re = compileRegex(proto.safe_regex(), path + ".safe_regex");
    if (!re.ok())
      return re.status();
    route.path_regex_ = std::move(*re);
    route.case_sensitive_ = true;  // case_sensitive is ignored for regexes, as in Envoy
    break;
  }
  case MatchProto::kPathSeparatedPrefix: {
    route.path_match_ = Route::PathMatch::kPathSeparatedPrefix;
    const std::string& v = proto.path_separated_prefix();
    if (v.empty() || v.find_first_of("?#") != std::string::npos || v.back() == '/') {
      return invalid(path + ".path_separated_prefix",
                     "'" + v + "' must be non-empty, contain no '?' or '#' and not end in '/'");
    }
    route.match_value_ = v;
    break;
  }
  default:
    return invalid(path, "one of prefix, path, safe_regex or path_separated_prefix is required");
  }
  if (!route.case_sensitive_)
    http::toLowerInPlace(route.match_value_);

  if (proto.has_runtime_fraction()) {
    // default_value, unless the runtime has runtime_key (checked per request).
    const auto& pct = proto.runtime_fraction().default_value();
    route.runtime_fraction_ = std::make_unique<const Route::RuntimeFraction>(Route::RuntimeFraction{
        pct.numerator(), denominatorOf(pct.denominator()), proto.runtime_fraction().runtime_key()});
  }
  for (int i = 0; i < proto.headers_size(); ++i) {
    auto m = HeaderMatcher::create(proto.headers(i), path + ".headers[" + std::to_string(i) + "]");
    if (!m.ok())
      return m.status();
    route.header_matchers_.push_back(std::move(*m));
  }
  for (int i = 0; i < proto.query_parameters_size(); ++i) {
    auto m = QueryParameterMatcher::create(proto.query_parameters(i),
                                           path + ".query_parameters[" + std::to_string(i) + "]");
    if (!m.ok())
      return m.status();
    route.query_matchers_.push_back(std::move(*m));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> upgradeTypeKey(const std::string& upgrade_type,
                                           const std::string& path) {
  std::string type = absl::AsciiStrToLower(upgrade_type);
  if (type == "connect") {
    return absl::InvalidArgumentError(path + ".upgrade_type: CONNECT is not implemented by "
                                             "legate yet (other upgrade types are)");
  }
  return type;
}

absl::StatusOr<std::unique_ptr<RouteAction>> RouteBuilder::buildRouteAction(
    const ActionProto& proto, const std::string& path, const Route& route) {
  if (auto st = config::rejectUnsupportedFields(proto,
                                                {"cluster_specifier_plugin",
                                                 "inline_cluster_specifier_plugin",
                                                 "metadata_match",
                                                 "path_rewrite_policy",
                                                 "early_data_policy",
                                                 "retry_policy_typed_config",
                                                 "priority",
                                                 "rate_limits",
                                                 "include_vh_rate_limits",
                                                 "cors",
                                                 "max_grpc_timeout",
                                                 "grpc_timeout_offset",
                                                 "internal_redirect_policy",
                                                 "internal_redirect_action",
                                                 "max_internal_redirects",
                                                 "max_stream_duration"},
                                                path);
      !st.ok()) {
    return st;
  }
  auto a = std::make_unique<RouteAction>();
  if (proto.hash_policy_size() > 0) {
    auto hp = HashPolicy::create(proto.hash_policy(), path + ".hash_policy");
    if (!hp.ok()) return hp.status();
    a->hash_policy_ = std::move(*hp);
  }
  switch (proto.cluster_specifier_case()) {
  case ActionProto::kCluster:
    if (proto.cluster().empty())
      return invalid(path + ".cluster", "must not be empty");
    a->cluster_ = proto.cluster();
    break;
  case ActionProto::kClusterHeader:
    a->choice_ = std::make_unique<RouteAction::ClusterChoice>();
    a->choice_->cluster_header = proto.cluster_header();
    http::toLowerInPlace(a->choice_->cluster_header);
    if (a->choice_->cluster_header.empty())
      return invalid(path + ".cluster_header", "must not be empty");
    break;
  case ActionProto::kWeightedClusters: {
    a->choice_ = std::make_unique<RouteAction::ClusterChoice>();
    RouteAction::ClusterChoice& choice = *a->choice_;
    const auto& wc = proto.weighted_clusters();
    const std::string wpath = path + ".weighted_clusters";
    if (wc.clusters_size() == 0)
      return invalid(wpath + ".clusters", "at least one is required");
    for (int i = 0; i < wc.clusters_size(); ++i) {
      const auto& c = wc.clusters(i);
      const std::string cpath = wpath + ".clusters[" + std::to_string(i) + "]";
      // Per-cluster headers and overrides need the picked cluster at header
      // finalization time; not wired yet.
      if (auto st = config::rejectUnsupportedFields(
              c,
              {"metadata_match", "request_headers_to_add", "request_headers_to_remove",
               "response_headers_to_add", "response_headers_to_remove", "typed_per_filter_config",
               "host_rewrite_literal"},
              cpath);
          !st.ok()) {
        return st;
      }
      WeightedClusterEntry e;
      e.name = c.name();
      e.cluster_header = c.cluster_header();
      http::toLowerInPlace(e.cluster_header);
      if (e.name.empty() == e.cluster_header.empty()) {
        return invalid(cpath, "exactly one of name and cluster_header is required");
      }
      e.weight = c.has_weight() ? c.weight().value() : 0;
      if (!wc.runtime_key_prefix().empty() && !e.name.empty()) {
        e.runtime_key = wc.runtime_key_prefix() + "." + e.name;
        choice.weights_from_runtime = true;
      }
      choice.total_weight += e.weight;
      choice.weighted.push_back(std::move(e));
    }
    if (choice.total_weight == 0) {
      return invalid(wpath, "the sum of the cluster weights must be greater than 0");
    }
    if (choice.total_weight > std::numeric_limits<uint32_t>::max()) {
      return invalid(wpath, "the sum of the cluster weights must not exceed 4294967295");
    }
    if (wc.has_total_weight() && wc.total_weight().value() > 0 &&
        wc.total_weight().value() != choice.total_weight) {
      return invalid(wpath + ".total_weight", "is " + std::to_string(wc.total_weight().value()) +
                                                  " but the cluster weights add up to " +
                                                  std::to_string(choice.total_weight));
    }
    // runtime_key_prefix: each cluster's weight may come from the runtime
    // (prefix.<cluster>), the configured weight being the default (pickCluster).
    choice.random_header = wc.header_name();
    http::toLowerInPlace(choice.random_header);
    break;
  }
  default:
    return invalid(path, "one of cluster, cluster_header or weighted_clusters is required");
  }

  switch (proto.cluster_not_found_response_code()) {
  case ActionProto::NOT_FOUND:
    a->cluster_not_found_code_ = 404;
    break;
  case ActionProto::INTERNAL_SERVER_ERROR:
    a->cluster_not_found_code_ = 500;
    break;
  default:
    a->cluster_not_found_code_ = 503;
    break;
  }

  if (!proto.prefix_rewrite().empty() && proto.has_regex_rewrite()) {
    return invalid(path, "prefix_rewrite and regex_rewrite cannot both be set");
  }
  RouteAction::Rewrites rewrites;
  if (auto st = buildRewriter(!proto.prefix_rewrite().empty(), proto.prefix_rewrite(),
                              proto.has_regex_rewrite() ? &proto.regex_rewrite() : nullptr,
                              path + ".regex_rewrite", route, rewrites.path);
      !st.ok()) {
    return st;
  }

  switch (proto.host_rewrite_specifier_case()) {
  case ActionProto::kHostRewriteLiteral:
    rewrites.host = RouteAction::HostRewrite::kLiteral;
    rewrites.host_literal = proto.host_rewrite_literal();
    break;
  case ActionProto::kAutoHostRewrite:
    if (proto.auto_host_rewrite().value())
      rewrites.host = RouteAction::HostRewrite::kAuto;
    break;
  case ActionProto::kHostRewriteHeader:
    rewrites.host = RouteAction::HostRewrite::kHeader;
    rewrites.host_header = proto.host_rewrite_header();
    http::toLowerInPlace(rewrites.host_header);
    break;
  case ActionProto::kHostRewritePathRegex: {
    rewrites.host = RouteAction::HostRewrite::kPathRegex;
    auto re = compileRegex(proto.host_rewrite_path_regex().pattern(),
                           path + ".host_rewrite_path_regex.pattern");
    if (!re.ok())
      return re.status();
    rewrites.host_regex = std::move(*re);
    rewrites.host_regex_substitution = proto.host_rewrite_path_regex().substitution();
    break;
  }
  default:
    break;
  }
  rewrites.append_x_forwarded_host = proto.append_x_forwarded_host();
  if (rewrites.any()) a->rewrites_ = std::make_unique<RouteAction::Rewrites>(std::move(rewrites));

  if (proto.has_timeout())
    a->timeout_ = toMillis(proto.timeout());
  if (proto.has_idle_timeout())
    a->idle_timeout_ = toMillis(proto.idle_timeout());
  if (proto.has_retry_policy()) {
    auto rp = RetryPolicy::create(proto.retry_policy(), path + ".retry_policy");
    if (!rp.ok())
      return rp.status();
    a->retry_policy_ = std::move(*rp);
  }
  if (proto.has_hedge_policy()) {
    auto hp = HedgePolicy::create(proto.hedge_policy(), path + ".hedge_policy");
    if (!hp.ok())
      return hp.status();
    a->hedge_policy_ = std::move(*hp);
  }
  auto mirrors =
      buildMirrorPolicies(proto.request_mirror_policies(), path + ".request_mirror_policies");
  if (!mirrors.ok())
    return mirrors.status();
  a->mirror_policies_ = std::move(*mirrors);
  for (int i = 0; i < proto.upgrade_configs_size(); ++i) {
    const auto& uc = proto.upgrade_configs(i);
    const std::string upath = path + ".upgrade_configs[" + std::to_string(i) + "]";
    if (auto st = config::rejectUnsupportedFields(uc, {"connect_config"}, upath); !st.ok()) {
      return st;
    }
    auto type = upgradeTypeKey(uc.upgrade_type(), upath);
    if (!type.ok()) return type.status();
    a->upgrades_[*type] = !uc.has_enabled() || uc.enabled().value();
  }
  return a;
}

absl::StatusOr<std::unique_ptr<RedirectAction>> RouteBuilder::buildRedirect(
    const RedirectProto& proto, const std::string& path, const Route& route) {
  auto r = std::make_unique<RedirectAction>();
  if (proto.scheme_rewrite_specifier_case() == RedirectProto::kHttpsRedirect) {
    if (proto.https_redirect())
      r->scheme_ = "https";
  } else if (proto.scheme_rewrite_specifier_case() == RedirectProto::kSchemeRedirect) {
    r->scheme_ = proto.scheme_redirect();
    http::toLowerInPlace(r->scheme_);
  }
  r->host_ = proto.host_redirect();
  if (proto.port_redirect() != 0) {
    if (proto.port_redirect() > 65535) {
      return invalid(path + ".port_redirect", "must be a port number (1-65535)");
    }
    r->port_ = ":" + std::to_string(proto.port_redirect());
  }
  switch (proto.path_rewrite_specifier_case()) {
  case RedirectProto::kPathRedirect:
    r->has_path_ = true;
    r->path_ = proto.path_redirect();
    r->path_has_query_ = r->path_.find('?') != std::string::npos;
    break;
  case RedirectProto::kPrefixRewrite:
    if (auto st = buildRewriter(true, proto.prefix_rewrite(), nullptr, "", route, r->rewriter_);
        !st.ok()) {
      return st;
    }
    break;
  case RedirectProto::kRegexRewrite:
    if (auto st = buildRewriter(false, "", &proto.regex_rewrite(), path + ".regex_rewrite", route,
                                r->rewriter_);
        !st.ok()) {
      return st;
    }
    break;
  default:
    break;
  }
  switch (proto.response_code()) {
  case RedirectProto::FOUND:
    r->response_code_ = 302;
    break;
  case RedirectProto::SEE_OTHER:
    r->response_code_ = 303;
    break;
  case RedirectProto::TEMPORARY_REDIRECT:
    r->response_code_ = 307;
    break;
  case RedirectProto::PERMANENT_REDIRECT:
    r->response_code_ = 308;
    break;
  default:
    r->response_code_ = 301;
    break;
  }
  r->strip_query_ = proto.strip_query();
  return r;
}

absl::StatusOr<std::unique_ptr<DirectResponse>> RouteBuilder::buildDirectResponse(
    const envoy::config::route::v3::DirectResponseAction& proto, const std::string& path,
    uint32_t max_body) {
  auto d = std::make_unique<DirectResponse>();
  if (proto.status() < 200 || proto.status() >= 600) {
    return invalid(path + ".status", "must be in [200, 600)");
  }
  d->status = proto.status();
  if (proto.has_body()) {
    const auto& body = proto.body();
    switch (body.specifier_case()) {
    case envoy::config::core::v3::DataSource::kInlineString:
      d->body = body.inline_string();
      break;
    case envoy::config::core::v3::DataSource::kInlineBytes:
      d->body = body.inline_bytes();
      break;
    case envoy::config::core::v3::DataSource::kFilename:
      return invalid(path + ".body.filename",
                     "reading a direct response body from a file is not implemented by legate "
                     "yet; use inline_string or inline_bytes");
    case envoy::config::core::v3::DataSource::kEnvironmentVariable:
      return invalid(path + ".body.environment_variable",
                     "reading a direct response body from the environment is not implemented by "
                     "legate yet; use inline_string or inline_bytes");
    default:
      break;
    }
    if (d->body.size() > max_body) {
      return invalid(path + ".body", "is " + std::to_string(d->body.size()) +
                                         " bytes, over max_direct_response_body_size_bytes (" +
                                         std::to_string(max_body) + ")");
    }
  }
  return d;
}

absl::StatusOr<std::unique_ptr<const RouteTracing>> RouteBuilder::buildTracing(
    const envoy::config::route::v3::Tracing& proto, const std::string& path) {
  auto t = std::make_unique<RouteTracing>();
  // Unset fields stay at tracing::Sampling's 100%: Envoy's default for each,
  // whatever the connection manager says.
  auto fraction = [](const envoy::type::v3::FractionalPercent& p) {
    return runtime::Fraction{p.numerator(), denominatorOf(p.denominator())};
  };
  if (proto.has_client_sampling())
    t->sampling.client = fraction(proto.client_sampling());
  if (proto.has_random_sampling())
    t->sampling.random = fraction(proto.random_sampling());
  if (proto.has_overall_sampling())
    t->sampling.overall = fraction(proto.overall_sampling());
  auto tags = tracing::parseCustomTags(proto.custom_tags(), path + ".custom_tags");
  if (!tags.ok())
    return tags.status();
  t->custom_tags = std::move(*tags);
  return t;
}

absl::StatusOr<std::unique_ptr<Route>> RouteBuilder::build(const RouteProto& proto,
                                                           const std::string& path,
                                                           const VirtualHost* vhost,
                                                           uint32_t max_body) {
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"filter_action", "non_forwarding_action", "stat_prefix"},
          path);
      !st.ok()) {
    return st;
  }
  auto route = std::make_unique<Route>();
  route->name_ = proto.name();
  route->vhost_ = vhost;
  Route::Extras extras;
  if (proto.has_decorator()) {
    extras.decorator = Route::Decorator{
        proto.decorator().operation(),
        !proto.decorator().has_propagate() || proto.decorator().propagate().value()};
  }
  if (proto.has_tracing()) {
    auto t = buildTracing(proto.tracing(), path + ".tracing");
    if (!t.ok())
      return t.status();
    route->tracing_ = std::move(*t);
  }
  if (!proto.has_match())
    return invalid(path + ".match", "is required");
  if (auto st = buildMatch(proto.match(), path + ".match", *route); !st.ok())
    return st;

  switch (proto.action_case()) {
  case RouteProto::kRoute: {
    auto a = buildRouteAction(proto.route(), path + ".route", *route);
    if (!a.ok())
      return a.status();
    route->route_action_ = std::move(*a);
    // The virtual host's retry settings apply where the route has none.
    if (vhost != nullptr) {
      RouteAction& ra = *route->route_action_;
      if (!ra.retry_policy_)
        ra.retry_policy_ = vhost->retryPolicy();
      if (!ra.hedge_policy_)
        ra.hedge_policy_ = vhost->hedgePolicy();
      if (!ra.mirror_policies_)
        ra.mirror_policies_ = vhost->mirrorPolicies();
      ra.buffer_limit_ = vhost->perRequestBufferLimit();
    }
    if (proto.has_per_request_buffer_limit_bytes())
      route->route_action_->buffer_limit_ = proto.per_request_buffer_limit_bytes().value();
    break;
  }
  case RouteProto::kRedirect: {
    auto r = buildRedirect(proto.redirect(), path + ".redirect", *route);
    if (!r.ok())
      return r.status();
    route->redirect_ = std::move(*r);
    break;
  }
  case RouteProto::kDirectResponse: {
    auto d = buildDirectResponse(proto.direct_response(), path + ".direct_response", max_body);
    if (!d.ok())
      return d.status();
    route->direct_response_ = std::move(*d);
    break;
  }
  default:
    return invalid(path, "one of route, redirect or direct_response is required");
  }

  auto mutations = buildHeaderMutations(proto, path);
  if (!mutations.ok())
    return mutations.status();
  extras.mutations = std::move(*mutations);
  // The virtual host's and the route configuration's levels are built before
  // their routes.
  const HeaderMutationLevel& vhost_level = vhost->headerMutations();
  const HeaderMutationLevel& config_level = vhost->routeConfig().headerMutations();
  route->mutates_request_ = !extras.mutations.request.empty() ||
                            !vhost_level.request.empty() || !config_level.request.empty();
  route->mutates_response_ = !extras.mutations.response.empty() ||
                             !vhost_level.response.empty() || !config_level.response.empty();
  extras.typed_per_filter_config = copyTypedConfig(proto.typed_per_filter_config());
  if (extras.decorator || !extras.mutations.request.empty() ||
      !extras.mutations.response.empty() || !extras.typed_per_filter_config.empty()) {
    route->extras_ = std::make_unique<const Route::Extras>(std::move(extras));
  }
  return route;
}

std::unique_ptr<Route> RouteBuilder::tlsRedirect(const VirtualHost* vhost) {
  auto route = std::make_unique<Route>();
  route->name_ = "require_tls";
  route->vhost_ = vhost;
  route->tls_redirect_route_ = true;
  route->redirect_ = std::make_unique<RedirectAction>();
  route->redirect_->tls_redirect_ = true;
  route->redirect_->response_code_ = 301;
  return route;
}

}  // namespace legate::router
