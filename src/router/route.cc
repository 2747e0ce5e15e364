#include "router/route.h"

#include <charconv>

#include "re2/re2.h"
#include "router/route_config.h"
#include "runtime/runtime.h"

namespace legate::router {

namespace {

constexpr std::string_view kOriginalPath = "x-envoy-original-path";
constexpr std::string_view kForwardedHost = "x-forwarded-host";

// Position of the ':' before the port in an authority, or npos ("[::1]:80",
// "host:80"; a bare IPv6 literal has no port).
size_t portStart(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.rfind("]:");
    return close == std::string_view::npos ? std::string_view::npos : close + 1;
  }
  return host.rfind(':');
}

void setAuthority(http::HeaderMap& headers, std::string_view host, bool append_xfh) {
  if (append_xfh) {
    const std::string old(headers.authority());
    if (!old.empty()) {
      auto existing = headers.get(kForwardedHost);
      if (existing && !existing->empty()) {
        headers.set(kForwardedHost, std::string(*existing) + "," + old);
      } else {
        headers.set(kForwardedHost, old);
      }
    }
  }
  headers.set(http::headers::kAuthority, host);
}

}  // namespace

std::string PathRewriter::rewrite(std::string_view full_path) const {
  const size_t q = full_path.find_first_of("?#");
  const std::string_view path = full_path.substr(0, q);
  const std::string_view rest =
      q == std::string_view::npos ? std::string_view() : full_path.substr(q);
  std::string out;
  if (has_prefix_) {
    const size_t cut = whole_path_ ? path.size() : std::min(matched_len_, path.size());
    out = prefix_;
    out.append(path.substr(cut));
  } else if (regex_ != nullptr) {
    out = regexReplaceAll(*regex_, path, substitution_);
  } else {
    out = path;
  }
  out.append(rest);
  return out;
}

namespace {
// What an optional part of a route reads as when the route has none: one shared,
// default-constructed T (never destroyed, as routes may outlive static destruction).
template <class T>
const T& orDefault(const std::unique_ptr<T>& part) {
  static const T* none = new T();
  return part != nullptr ? *part : *none;
}
} // namespace

const Route::Extras& Route::extras() const { return orDefault(extras_); }
const RouteAction::ClusterChoice& RouteAction::choice() const { return orDefault(choice_); }
const RouteAction::Rewrites& RouteAction::rewrites() const { return orDefault(rewrites_); }

std::string_view RouteAction::pickCluster(const http::HeaderMap& headers, uint64_t random) const {
  if (!cluster_.empty())
    return cluster_;
  const ClusterChoice& c = choice();
  if (!c.cluster_header.empty())
    return headers.get(c.cluster_header).value_or("");
  if (c.weighted.empty() || c.total_weight == 0)
    return "";
  if (!c.random_header.empty()) {
    if (auto v = headers.get(c.random_header); v && !v->empty()) {
      uint64_t parsed = 0;
      auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), parsed);
      if (ec == std::errc() && ptr == v->data() + v->size())
        random = parsed;
    }
  }
  // Weights from the runtime when runtime_key_prefix is set (the configured weight
  // is each key's default), else as configured.
  std::shared_ptr<const runtime::Snapshot> snapshot;
  uint64_t total = c.total_weight;
  if (c.weights_from_runtime) {
    snapshot = runtime::snapshot();
    total = 0;
    for (const auto& w : c.weighted) {
      total += w.runtime_key.empty() ? w.weight : snapshot->getInteger(w.runtime_key, w.weight);
    }
    if (total == 0) return "";
  }
  const uint64_t selected = random % total;
  uint64_t end = 0;
  for (const auto& w : c.weighted) {
    end += snapshot != nullptr && !w.runtime_key.empty() ? snapshot->getInteger(w.runtime_key, w.weight)
                                                         : w.weight;
    if (selected < end) {
      if (!w.name.empty())
        return w.name;
      return headers.get(w.cluster_header).value_or("");
    }
  }
  return "";  // unreachable: selected < total
}

std::string RedirectAction::location(const http::HeaderMap& request) const {
  if (tls_redirect_) {
    return "https://" + std::string(request.authority()) + std::string(request.path());
  }
  // The request's own scheme: x-forwarded-proto (set by the connection
  // manager), else :scheme.
  const std::string request_scheme(request.get("x-forwarded-proto").value_or(request.scheme()));
  std::string scheme = scheme_.empty() ? request_scheme : scheme_;
  if (scheme.empty())
    scheme = "http";
  std::string host = host_;
  if (host.empty()) {
    host = std::string(request.authority());
    const size_t colon = portStart(host);
    if (colon != std::string::npos) {
      // Envoy drops the request's port when port_redirect replaces it, or when
      // the scheme changes and the port was the old scheme's default
      // (http://foo:80 must not become https://foo:80).
      const std::string_view port = std::string_view(host).substr(colon);
      bool strip = !port_.empty();
      if (scheme != request_scheme) {
        strip = strip || (request_scheme == "http" && port == ":80") ||
                (request_scheme == "https" && port == ":443");
      }
      if (strip)
        host.resize(colon);
    }
  }
  const std::string_view full = request.path();
  std::string path;
  if (has_path_) {
    path = path_;
    if (!path_has_query_ && !strip_query_) {
      const size_t q = full.find('?');
      if (q != std::string_view::npos)
        path.append(full.substr(q));
    }
  } else {
    path = rewriter_.active() ? rewriter_.rewrite(full) : std::string(full);
    if (strip_query_) {
      const size_t q = path.find('?');
      if (q != std::string::npos)
        path.resize(q);
    }
  }
  return scheme + "://" + host + port_ + path;
}

bool Route::pathMatches(std::string_view path) const {
  switch (path_match_) {
  case PathMatch::kPrefix:
    return case_sensitive_ ? path.starts_with(match_value_)
                           : startsWithIgnoreCase(path, match_value_);
  case PathMatch::kPath:
    return case_sensitive_ ? path == match_value_ : http::equalsIgnoreCase(path, match_value_);
  case PathMatch::kRegex:
    return regexFullMatch(*path_regex_, path);
  case PathMatch::kPathSeparatedPrefix: {
    const bool prefix =
        case_sensitive_ ? path.starts_with(match_value_) : startsWithIgnoreCase(path, match_value_);
    return prefix && (path.size() == match_value_.size() || path[match_value_.size()] == '/');
  }
  }
  return false;
}

bool Route::matches(const http::HeaderMap& headers, std::string_view path, std::string_view query,
                    uint64_t random_value) const {
  if (!pathMatches(path))
    return false;
  // Envoy: the route takes the request when random % denominator < numerator.
  if (const RuntimeFraction* f = runtime_fraction_.get()) {
    const runtime::Fraction def{f->numerator, f->denominator};
    const bool enabled =
        f->runtime_key.empty()
            ? random_value % def.denominator < def.numerator
            : runtime::snapshot()->featureEnabled(f->runtime_key, def, random_value);
    if (!enabled) return false;
  }
  for (const auto& m : header_matchers_) {
    if (!m.match(headers))
      return false;
  }
  if (!query_matchers_.empty()) {
    const auto params = parseQueryString(query);
    for (const auto& m : query_matchers_) {
      if (!m.match(params))
        return false;
    }
  }
  return true;
}

void Route::rewritePathAndHost(http::HeaderMap& headers, bool insert_original_path) const {
  if (route_action_ == nullptr)
    return;
  if (route_action_->rewrites_ == nullptr)
    return;
  const RouteAction::Rewrites& a = *route_action_->rewrites_;
  switch (a.host) {
  case RouteAction::HostRewrite::kLiteral:
    setAuthority(headers, a.host_literal, a.append_x_forwarded_host);
    break;
  case RouteAction::HostRewrite::kHeader: {
    auto v = headers.get(a.host_header);
    if (v && !v->empty())
      setAuthority(headers, std::string(*v), a.append_x_forwarded_host);
    break;
  }
  case RouteAction::HostRewrite::kPathRegex: {
    const SplitPath sp = splitPath(headers.path());
    const std::string host = regexReplaceAll(*a.host_regex, sp.path, a.host_regex_substitution);
    if (!host.empty())
      setAuthority(headers, host, a.append_x_forwarded_host);
    break;
  }
  case RouteAction::HostRewrite::kAuto:
  case RouteAction::HostRewrite::kNone:
    break;
  }
  if (a.path.active()) {
    const std::string original(headers.path());
    const std::string rewritten = a.path.rewrite(original);
    if (insert_original_path)
      headers.set(kOriginalPath, original);
    headers.set(http::headers::kPath, rewritten);
  }
}

void Route::finalizeRequestHeaders(http::HeaderMap& headers,
                                   const accesslog::StreamInfo& info) const {
  if (tls_redirect_route_ || !mutates_request_)
    return;
  const RouteConfig& config = vhost_->routeConfig();
  const HeaderMutations* levels[3] = {&extras().mutations.request, &vhost_->headerMutations().request,
                                      &config.headerMutations().request};
  if (config.mostSpecificHeaderMutationsWins())
    std::swap(levels[0], levels[2]);
  for (const auto* level : levels)
    level->apply(headers, info);
}

void Route::finalizeResponseHeaders(http::HeaderMap& headers,
                                    const accesslog::StreamInfo& info) const {
  if (tls_redirect_route_ || !mutates_response_)
    return;
  const RouteConfig& config = vhost_->routeConfig();
  const HeaderMutations* levels[3] = {&extras().mutations.response, &vhost_->headerMutations().response,
                                      &config.headerMutations().response};
  if (config.mostSpecificHeaderMutationsWins())
    std::swap(levels[0], levels[2]);
  for (const auto* level : levels)
    level->apply(headers, info);
}

}  // namespace legate::router
