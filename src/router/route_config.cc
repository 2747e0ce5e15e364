#include "router/route_config.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "config/unsupported.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "router/route_builder.h"

namespace legate::router {

namespace {

constexpr uint32_t kDefaultMaxDirectResponseBody = 4096;

// "host:8080" -> "host", "[::1]:80" -> "[::1]"; anything else unchanged.
std::string_view stripPort(std::string_view host) {
  size_t colon;
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.rfind("]:");
    if (close == std::string_view::npos)
      return host;
    colon = close + 1;
  } else {
    colon = host.rfind(':');
    if (colon == std::string_view::npos)
      return host;
  }
  const std::string_view port = host.substr(colon + 1);
  if (port.empty())
    return host;
  for (char c : port) {
    if (c < '0' || c > '9')
      return host;
  }
  return host.substr(0, colon);
}

bool isHttps(const http::HeaderMap& headers) {
  auto xfp = headers.get("x-forwarded-proto");
  return http::equalsIgnoreCase(xfp ? *xfp : headers.scheme(), "https");
}

}  // namespace

const Route* VirtualHost::route(const http::HeaderMap& headers, uint64_t random_value) const {
  if (require_tls_ != TlsRequirement::kNone && !isHttps(headers)) {
    const bool internal = headers.get("x-envoy-internal").value_or("") == "true";
    if (require_tls_ == TlsRequirement::kAll || !internal)
      return tls_redirect_route_.get();
  }
  const SplitPath sp = splitPath(headers.path());
  auto idx = index_.findFirst(sp.path, [&](uint32_t i) {
    return routes_[i]->matches(headers, sp.path, sp.query, random_value);
  });
  return idx ? routes_[*idx].get() : nullptr;
}

absl::StatusOr<std::shared_ptr<const RouteConfig>> RouteConfig::create(
    const envoy::config::route::v3::RouteConfiguration& proto, const std::string& path) {
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"vhds", "internal_only_headers", "cluster_specifier_plugins",
           "ignore_path_parameters_in_path_matching", "vhost_header", "route_specifiers"},
          path);
      !st.ok()) {
    return st;
  }
  auto config = std::shared_ptr<RouteConfig>(new RouteConfig());
  config->config_path_ = path;
  config->name_ = proto.name();
  config->ignore_port_ = proto.ignore_port_in_host_matching();
  config->most_specific_wins_ = proto.most_specific_header_mutations_wins();
  if (proto.has_validate_clusters())
    config->validate_clusters_ = proto.validate_clusters().value();
  config->typed_per_filter_config_ = RouteBuilder::copyTypedConfig(proto.typed_per_filter_config());
  const uint32_t max_body = proto.has_max_direct_response_body_size_bytes()
                                ? proto.max_direct_response_body_size_bytes().value()
                                : kDefaultMaxDirectResponseBody;
  auto mutations = buildHeaderMutations(proto, path);
  if (!mutations.ok())
    return mutations.status();
  config->mutations_ = std::move(*mutations);

  auto config_mirrors =
      buildMirrorPolicies(proto.request_mirror_policies(), path + ".request_mirror_policies");
  if (!config_mirrors.ok())
    return config_mirrors.status();

  // Domain -> the virtual host that declared it, for duplicate errors.
  absl::flat_hash_map<std::string, std::string> seen_domains;
  for (int v = 0; v < proto.virtual_hosts_size(); ++v) {
    const auto& vp = proto.virtual_hosts(v);
    const std::string vpath = path + ".virtual_hosts[" + std::to_string(v) + "]";
    if (auto st = config::rejectUnsupportedFields(
            vp,
            {"matcher", "virtual_clusters", "rate_limits", "cors", "retry_policy_typed_config"},
            vpath);
        !st.ok()) {
      return st;
    }
    auto vh = std::make_unique<VirtualHost>();
    vh->name_ = vp.name();
    vh->config_ = config.get();
    switch (vp.require_tls()) {
    case envoy::config::route::v3::VirtualHost::EXTERNAL_ONLY:
      vh->require_tls_ = VirtualHost::TlsRequirement::kExternalOnly;
      break;
    case envoy::config::route::v3::VirtualHost::ALL:
      vh->require_tls_ = VirtualHost::TlsRequirement::kAll;
      break;
    default:
      break;
    }
    if (vh->require_tls_ != VirtualHost::TlsRequirement::kNone) {
      vh->tls_redirect_route_ = RouteBuilder::tlsRedirect(vh.get());
    }
    auto vmut = buildHeaderMutations(vp, vpath);
    if (!vmut.ok())
      return vmut.status();
    vh->mutations_ = std::move(*vmut);
    vh->typed_per_filter_config_ = RouteBuilder::copyTypedConfig(vp.typed_per_filter_config());
    if (vp.has_retry_policy()) {
      auto rp = RetryPolicy::create(vp.retry_policy(), vpath + ".retry_policy");
      if (!rp.ok())
        return rp.status();
      vh->retry_policy_ = std::move(*rp);
    }
    if (vp.has_hedge_policy()) {
      auto hp = HedgePolicy::create(vp.hedge_policy(), vpath + ".hedge_policy");
      if (!hp.ok())
        return hp.status();
      vh->hedge_policy_ = std::move(*hp);
    }
    if (vp.has_per_request_buffer_limit_bytes())
      vh->buffer_limit_ = vp.per_request_buffer_limit_bytes().value();
    auto vmirrors =
        buildMirrorPolicies(vp.request_mirror_policies(), vpath + ".request_mirror_policies");
    if (!vmirrors.ok())
      return vmirrors.status();
    vh->mirror_policies_ = *vmirrors ? std::move(*vmirrors) : *config_mirrors;
    vh->include_request_attempt_count_ = vp.include_request_attempt_count();
    vh->include_attempt_count_in_response_ = vp.include_attempt_count_in_response();
    vh->include_is_timeout_retry_header_ = vp.include_is_timeout_retry_header();

    if (vp.domains_size() == 0) {
      return absl::InvalidArgumentError(vpath + ".domains: at least one domain is required");
    }
    for (int d = 0; d < vp.domains_size(); ++d) {
      std::string domain = vp.domains(d);
      http::toLowerInPlace(domain);
      const std::string dpath = vpath + ".domains[" + std::to_string(d) + "]";
      if (domain.empty())
        return absl::InvalidArgumentError(dpath + ": must not be empty");
      auto [it, inserted] = seen_domains.emplace(domain, vh->name_);
      if (!inserted) {
        return absl::InvalidArgumentError(dpath + ": duplicate domain '" + vp.domains(d) +
                                          "' (already in virtual host '" + it->second +
                                          "'); a domain must be unique across the route "
                                          "configuration");
      }
      const VirtualHost* ptr = vh.get();
      if (domain == "*") {
        config->default_vhost_ = ptr;
      } else if (domain.front() == '*') {
        const std::string suffix = domain.substr(1);
        config->suffix_domains_[suffix.size()].emplace(suffix, ptr);
      } else if (domain.back() == '*') {
        const std::string prefix = domain.substr(0, domain.size() - 1);
        config->prefix_domains_[prefix.size()].emplace(prefix, ptr);
      } else {
        config->exact_domains_.emplace(domain, ptr);
      }
    }

    for (int r = 0; r < vp.routes_size(); ++r) {
      const std::string rpath = vpath + ".routes[" + std::to_string(r) + "]";
      auto route = RouteBuilder::build(vp.routes(r), rpath, vh.get(), max_body);
      if (!route.ok())
        return route.status();
      const auto idx = static_cast<uint32_t>(vh->routes_.size());
      const Route& rt = **route;
      switch (rt.pathMatch()) {
      case Route::PathMatch::kPath:
        vh->index_.addExactPath(rt.pathMatchValue(), rt.caseSensitive(), idx);
        break;
      case Route::PathMatch::kPrefix:
      case Route::PathMatch::kPathSeparatedPrefix:
        vh->index_.addPrefix(rt.pathMatchValue(), rt.caseSensitive(), idx);
        break;
      case Route::PathMatch::kRegex:
        vh->index_.addUnindexed(idx);
        break;
      }
      vh->routes_.push_back(std::move(*route));
    }
    config->vhosts_.push_back(std::move(vh));
  }
  return std::shared_ptr<const RouteConfig>(std::move(config));
}

const VirtualHost* RouteConfig::findVirtualHost(std::string_view authority) const {
  std::string host(ignore_port_ ? stripPort(authority) : authority);
  http::toLowerInPlace(host);
  if (!exact_domains_.empty()) {
    auto it = exact_domains_.find(host);
    if (it != exact_domains_.end())
      return it->second;
  }
  const absl::string_view h(host.data(), host.size());
  for (const auto& [len, domains] : suffix_domains_) {
    if (len >= host.size())
      continue;  // the wildcard matches at least one character
    auto it = domains.find(h.substr(host.size() - len));
    if (it != domains.end())
      return it->second;
  }
  for (const auto& [len, domains] : prefix_domains_) {
    if (len >= host.size())
      continue;
    auto it = domains.find(h.substr(0, len));
    if (it != domains.end())
      return it->second;
  }
  return default_vhost_;
}

const Route* RouteConfig::route(const http::HeaderMap& request_headers,
                                uint64_t random_value) const {
  const VirtualHost* vh = findVirtualHost(request_headers.authority());
  return vh == nullptr ? nullptr : vh->route(request_headers, random_value);
}

absl::Status RouteConfig::validateClusters(
    const std::function<bool(std::string_view)>& exists) const {
  for (size_t v = 0; v < vhosts_.size(); ++v) {
    const auto& routes = vhosts_[v]->routes();
    for (size_t r = 0; r < routes.size(); ++r) {
      const RouteAction* a = routes[r]->routeAction();
      if (a == nullptr)
        continue;
      // Routes sit in their proto order, so the path is rebuilt rather than kept
      // per route (a 10,000-route table would hold 10,000 ~110-byte strings).
      const auto configPath = [&] {
        return absl::StrCat(config_path_, ".virtual_hosts[", v, "].routes[", r, "]");
      };
      if (!a->cluster().empty() && !exists(a->cluster())) {
        return absl::InvalidArgumentError(configPath() +
                                          ".route.cluster: unknown cluster '" + a->cluster() + "'");
      }
      for (size_t i = 0; i < a->weightedClusters().size(); ++i) {
        const auto& w = a->weightedClusters()[i];
        if (!w.name.empty() && !exists(w.name)) {
          return absl::InvalidArgumentError(
              configPath() + ".route.weighted_clusters.clusters[" + std::to_string(i) +
              "].name: unknown cluster '" + w.name + "'");
        }
      }
      if (const MirrorPolicies* mirrors = a->mirrorPolicies()) {
        for (const auto& m : *mirrors) {
          if (!m.cluster.empty() && !exists(m.cluster)) {
            return absl::InvalidArgumentError(configPath() +
                                              ": request mirror cluster '" + m.cluster +
                                              "' is unknown");
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace legate::router
