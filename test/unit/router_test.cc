// Unit tests for the route table (src/router): virtual host selection, every
// match kind, every action, rewrites, redirects, header mutations, config
// errors with field paths, and the route index against first-match order.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "config/bootstrap_loader.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "router/route_config.h"

namespace legate::router {
namespace {

using envoy::config::route::v3::RouteConfiguration;

std::shared_ptr<const RouteConfig> build(const std::string& yaml) {
  RouteConfiguration proto;
  auto st = config::loadMessageFromYaml(yaml, "routes.yaml", proto);
  EXPECT_TRUE(st.ok()) << st.message();
  auto rc = RouteConfig::create(proto, "route_config");
  EXPECT_TRUE(rc.ok()) << rc.status().message();
  return rc.ok() ? *rc : nullptr;
}

// The error of a configuration that loads (passes proto validation) but that
// RouteConfig refuses.
std::string buildError(const std::string& yaml) {
  RouteConfiguration proto;
  auto st = config::loadMessageFromYaml(yaml, "routes.yaml", proto);
  EXPECT_TRUE(st.ok()) << st.message();
  auto rc = RouteConfig::create(proto, "route_config");
  EXPECT_FALSE(rc.ok());
  return rc.ok() ? "" : std::string(rc.status().message());
}

// A refusal by config::rejectUnsupportedFields: the message names where the
// field is (its message path) and the field, and says it is not implemented.
::testing::AssertionResult refused(const std::string& err, const std::string& where,
                                   const std::string& field) {
  if (err.rfind(where, 0) == 0 && err.find(field) != std::string::npos &&
      err.find("not implemented") != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "error '" << err << "' does not refuse '" << field << "' at '" << where << "'";
}

http::HeaderMap request(const std::string& authority, const std::string& path,
                        std::vector<std::pair<std::string, std::string>> extra = {}) {
  http::HeaderMap h;
  h.add(":method", "GET");
  h.add(":scheme", "http");
  h.add(":authority", authority);
  h.add(":path", path);
  for (auto& [k, v] : extra)
    h.add(k, v);
  return h;
}

// The name of the route matched (or "<none>").
std::string routeName(const RouteConfig& rc, const http::HeaderMap& h, uint64_t random = 0) {
  const Route* r = rc.route(h, random);
  return r == nullptr ? "<none>" : r->name();
}

std::string vhostName(const RouteConfig& rc, const std::string& authority) {
  const VirtualHost* vh = rc.findVirtualHost(authority);
  return vh == nullptr ? "<none>" : vh->name();
}

using SP = std::pair<std::string, std::string>;

std::string header(const http::HeaderMap& h, std::string_view name) {
  auto v = h.get(name);
  return v ? std::string(*v) : "<absent>";
}

// ---- virtual hosts ----

constexpr const char* kDomains = R"(
virtual_hosts:
- name: exact
  domains: ["www.example.com", "Mixed.Example.com", "example.com:8080"]
- name: suffix_short
  domains: ["*.com"]
- name: suffix_long
  domains: ["*.example.com"]
- name: suffix_dash
  domains: ["*-bar.example.org"]
- name: prefix_short
  domains: ["api.*"]
- name: prefix_long
  domains: ["api.example.*"]
- name: prefix_dash
  domains: ["foo-*"]
- name: default
  domains: ["*"]
)";

TEST(RouterDomains, SearchOrderExactSuffixPrefixDefault) {
  auto rc = build(kDomains);
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(vhostName(*rc, "www.example.com"), "exact");
  EXPECT_EQ(vhostName(*rc, "WWW.EXAMPLE.COM"), "exact");
  EXPECT_EQ(vhostName(*rc, "mixed.example.COM"), "exact");
  // Longest suffix wins over a shorter one.
  EXPECT_EQ(vhostName(*rc, "a.example.com"), "suffix_long");
  EXPECT_EQ(vhostName(*rc, "other.com"), "suffix_short");
  EXPECT_EQ(vhostName(*rc, "baz-bar.example.org"), "suffix_dash");
  // The wildcard matches at least one character.
  EXPECT_EQ(vhostName(*rc, "-bar.example.org"), "default");
  EXPECT_EQ(vhostName(*rc, ".com"), "default");
  // Suffix beats prefix.
  EXPECT_EQ(vhostName(*rc, "api.example.com"), "suffix_long");
  // Longest prefix wins.
  EXPECT_EQ(vhostName(*rc, "api.example.net"), "prefix_long");
  EXPECT_EQ(vhostName(*rc, "api.other.net"), "prefix_short");
  EXPECT_EQ(vhostName(*rc, "foo-x"), "prefix_dash");
  EXPECT_EQ(vhostName(*rc, "foo-"), "default");
  EXPECT_EQ(vhostName(*rc, "unknown.net"), "default");
  EXPECT_EQ(vhostName(*rc, ""), "default");
}

TEST(RouterDomains, PortTakesPartByDefault) {
  auto rc = build(kDomains);
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(vhostName(*rc, "example.com:8080"), "exact");
  // Envoy: "www.example.com:443" does not match "www.example.com"; here it
  // falls through to the prefix wildcard... none matches, so the default.
  EXPECT_EQ(vhostName(*rc, "www.example.com:443"), "default");
  // A suffix wildcard does not match when a port follows.
  EXPECT_EQ(vhostName(*rc, "a.example.com:80"), "default");
  // A prefix wildcard does.
  EXPECT_EQ(vhostName(*rc, "api.x:80"), "prefix_short");
}

TEST(RouterDomains, IgnorePortInHostMatching) {
  auto rc = build(R"(
ignore_port_in_host_matching: true
virtual_hosts:
- name: exact
  domains: ["www.example.com"]
- name: v6
  domains: ["[::1]"]
- name: default
  domains: ["*"]
)");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(vhostName(*rc, "www.example.com:443"), "exact");
  EXPECT_EQ(vhostName(*rc, "www.example.com"), "exact");
  EXPECT_EQ(vhostName(*rc, "[::1]:8080"), "v6");
  EXPECT_EQ(vhostName(*rc, "[::1]"), "v6");
}

TEST(RouterDomains, NoDefaultMeansNoRoute) {
  auto rc = build(R"(
virtual_hosts:
- name: a
  domains: ["a.com"]
  routes: [{name: r, match: {prefix: "/"}, route: {cluster: c}}]
)");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(routeName(*rc, request("a.com", "/")), "r");
  EXPECT_EQ(routeName(*rc, request("b.com", "/")), "<none>");
}

TEST(RouterDomains, DuplicatesAreErrors) {
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- {name: a, domains: ["a.com"]}
- {name: b, domains: ["b.com", "A.com"]}
)"),
            "route_config.virtual_hosts[1].domains[1]: duplicate domain 'A.com' (already in "
            "virtual host 'a'); a domain must be unique across the route configuration");
  EXPECT_NE(buildError(R"(
virtual_hosts:
- {name: a, domains: ["*"]}
- {name: b, domains: ["*"]}
)")
                .find("duplicate domain '*'"),
            std::string::npos);
}

// ---- path matching ----

TEST(RouterMatch, PathKinds) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: exact, match: {path: "/exact"}, route: {cluster: c}}
  - {name: exact_nocase, match: {path: "/NoCase", case_sensitive: false}, route: {cluster: c}}
  - {name: regex, match: {safe_regex: {regex: "/re/[0-9]+"}}, route: {cluster: c}}
  - {name: sep, match: {path_separated_prefix: "/api/dev"}, route: {cluster: c}}
  - {name: prefix_nocase, match: {prefix: "/Upper", case_sensitive: false}, route: {cluster: c}}
  - {name: prefix, match: {prefix: "/p"}, route: {cluster: c}}
  - {name: fallback, match: {prefix: "/"}, route: {cluster: c}}
)");
  ASSERT_NE(rc, nullptr);
  auto name = [&](const std::string& path) { return routeName(*rc, request("h", path)); };
  EXPECT_EQ(name("/exact"), "exact");
  EXPECT_EQ(name("/exact?x=1"), "exact");  // the query is not part of the path
  EXPECT_EQ(name("/exact/"), "fallback");
  EXPECT_EQ(name("/EXACT"), "fallback");  // case-sensitive by default
  EXPECT_EQ(name("/nocase"), "exact_nocase");
  EXPECT_EQ(name("/NOCASE?q"), "exact_nocase");
  EXPECT_EQ(name("/re/123"), "regex");
  EXPECT_EQ(name("/re/123?a=b"), "regex");
  EXPECT_EQ(name("/re/123x"), "fallback");  // full match only
  EXPECT_EQ(name("/x/re/1"), "fallback");
  EXPECT_EQ(name("/api/dev"), "sep");
  EXPECT_EQ(name("/api/dev/"), "sep");
  EXPECT_EQ(name("/api/dev/v1"), "sep");
  EXPECT_EQ(name("/api/dev?param=true"), "sep");
  EXPECT_EQ(name("/api/developer"), "fallback");
  EXPECT_EQ(name("/upperCASE"), "prefix_nocase");
  EXPECT_EQ(name("/pp"), "prefix");
  EXPECT_EQ(name("/P"), "fallback");
  EXPECT_EQ(name("x"), "<none>");
}

TEST(RouterMatch, Headers) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: exact_ic
    match: {prefix: "/", headers: [{name: x-a, string_match: {exact: "Foo", ignore_case: true}}]}
    route: {cluster: c}
  - name: prefix
    match: {prefix: "/", headers: [{name: x-b, string_match: {prefix: "pre"}}]}
    route: {cluster: c}
  - name: suffix
    match: {prefix: "/", headers: [{name: x-c, string_match: {suffix: "SUF", ignore_case: true}}]}
    route: {cluster: c}
  - name: contains
    match: {prefix: "/", headers: [{name: x-d, string_match: {contains: "MiD", ignore_case: true}}]}
    route: {cluster: c}
  - name: regex
    match: {prefix: "/", headers: [{name: x-e, string_match: {safe_regex: {regex: "[a-z]+"}}}]}
    route: {cluster: c}
  - name: present
    match: {prefix: "/", headers: [{name: x-f, present_match: true}]}
    route: {cluster: c}
  - name: range
    match: {prefix: "/", headers: [{name: x-g, range_match: {start: -10, end: 0}}]}
    route: {cluster: c}
  - name: inverted
    match: {prefix: "/", headers: [{name: x-h, string_match: {exact: "no"}, invert_match: true}]}
    route: {cluster: c}
  - name: missing_as_empty
    match: {prefix: "/", headers: [{name: x-i, string_match: {safe_regex: {regex: "^$"}}, treat_missing_header_as_empty: true}]}
    route: {cluster: c}
)");
  ASSERT_NE(rc, nullptr);
  auto name = [&](std::vector<std::pair<std::string, std::string>> h) {
    return routeName(*rc, request("h", "/", std::move(h)));
  };
  // No headers at all: only the treat-missing-as-empty route matches
  // (inverted matchers do not match a missing header).
  EXPECT_EQ(name({}), "missing_as_empty");
  EXPECT_EQ(name({{"x-a", "fOO"}}), "exact_ic");
  EXPECT_EQ(name({{"x-b", "prefix"}}), "prefix");
  EXPECT_EQ(name({{"x-b", "PREfix"}}), "missing_as_empty");
  EXPECT_EQ(name({{"x-c", "thesuf"}}), "suffix");
  EXPECT_EQ(name({{"x-d", "amidb"}}), "contains");
  EXPECT_EQ(name({{"x-e", "abc"}}), "regex");
  EXPECT_EQ(name({{"x-e", "abc1"}, {"x-i", "v"}}), "<none>");
  EXPECT_EQ(name({{"x-f", ""}}), "present");
  EXPECT_EQ(name({{"x-g", "-1"}}), "range");
  EXPECT_EQ(name({{"x-g", "0"}, {"x-i", "v"}}), "<none>");
  EXPECT_EQ(name({{"x-g", "-1x"}, {"x-i", "v"}}), "<none>");
  EXPECT_EQ(name({{"x-h", "yes"}}), "inverted");
  EXPECT_EQ(name({{"x-h", "no"}, {"x-i", "v"}}), "<none>");
  // A repeated header matches as its values joined with ','.
  EXPECT_EQ(name({{"x-a", "foo"}, {"x-a", "bar"}, {"x-i", "v"}}), "<none>");
  EXPECT_EQ(name({{"x-b", "a"}, {"x-b", "pre"}, {"x-i", "v"}}), "<none>");
  EXPECT_EQ(name({{"x-c", "a"}, {"x-c", "suf"}}), "suffix");
}

TEST(RouterMatch, PresentMatchFalseAndDeprecatedFields) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: absent
    match: {prefix: "/absent", headers: [{name: x-a, present_match: false}]}
    route: {cluster: c}
  - name: exact_match
    match: {prefix: "/dep", headers: [{name: x-a, exact_match: "v"}]}
    route: {cluster: c}
  - name: prefix_match
    match: {prefix: "/dep", headers: [{name: x-a, prefix_match: "pre"}]}
    route: {cluster: c}
  - name: suffix_match
    match: {prefix: "/dep", headers: [{name: x-a, suffix_match: "suf"}]}
    route: {cluster: c}
  - name: contains_match
    match: {prefix: "/dep", headers: [{name: x-a, contains_match: "mid"}]}
    route: {cluster: c}
  - name: regex_match
    match: {prefix: "/dep", headers: [{name: x-a, safe_regex_match: {regex: "r+"}}]}
    route: {cluster: c}
  - name: method
    match: {prefix: "/m", headers: [{name: ":method", string_match: {exact: "POST"}}]}
    route: {cluster: c}
)");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(routeName(*rc, request("h", "/absent")), "absent");
  EXPECT_EQ(routeName(*rc, request("h", "/absent", {{"x-a", "1"}})), "<none>");
  EXPECT_EQ(routeName(*rc, request("h", "/dep", {{"x-a", "v"}})), "exact_match");
  EXPECT_EQ(routeName(*rc, request("h", "/dep", {{"x-a", "prex"}})), "prefix_match");
  EXPECT_EQ(routeName(*rc, request("h", "/dep", {{"x-a", "xsuf"}})), "suffix_match");
  EXPECT_EQ(routeName(*rc, request("h", "/dep", {{"x-a", "amidb"}})), "contains_match");
  EXPECT_EQ(routeName(*rc, request("h", "/dep", {{"x-a", "rrr"}})), "regex_match");
  EXPECT_EQ(routeName(*rc, request("h", "/m")), "<none>");
  auto post = request("h", "/m");
  post.set(":method", "POST");
  EXPECT_EQ(routeName(*rc, post), "method");
}

TEST(RouterMatch, QueryParameters) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: string
    match: {prefix: "/", query_parameters: [{name: debug, string_match: {exact: "1"}}]}
    route: {cluster: c}
  - name: present
    match: {prefix: "/", query_parameters: [{name: flag, present_match: true}]}
    route: {cluster: c}
  - name: both
    match:
      prefix: "/"
      query_parameters:
      - {name: a, string_match: {prefix: "x", ignore_case: true}}
      - {name: b, string_match: {safe_regex: {regex: "[0-9]+"}}}
    route: {cluster: c}
)");
  ASSERT_NE(rc, nullptr);
  auto name = [&](const std::string& path) { return routeName(*rc, request("h", path)); };
  EXPECT_EQ(name("/?debug=1"), "string");
  EXPECT_EQ(name("/p?x=2&debug=1"), "string");
  EXPECT_EQ(name("/?debug=2"), "<none>");
  // Only the first value of a repeated parameter counts.
  EXPECT_EQ(name("/?debug=2&debug=1"), "<none>");
  EXPECT_EQ(name("/?flag"), "present");
  EXPECT_EQ(name("/?flag="), "present");
  EXPECT_EQ(name("/?flagx=1"), "<none>");
  EXPECT_EQ(name("/?a=Xy&b=12"), "both");
  EXPECT_EQ(name("/?a=Xy&b=1a"), "<none>");
  EXPECT_EQ(name("/?a=Xy"), "<none>");
  EXPECT_EQ(name("/debug=1"), "<none>");  // not a query
  EXPECT_EQ(name("/?debug=1#frag"), "string");
}

TEST(RouterMatch, RuntimeFraction) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: canary
    match:
      prefix: "/"
      runtime_fraction:
        default_value: {numerator: 25, denominator: HUNDRED}
        runtime_key: routing.canary
    route: {cluster: canary}
  - {name: stable, match: {prefix: "/"}, route: {cluster: stable}}
)");
  ASSERT_NE(rc, nullptr);
  auto h = request("h", "/");
  EXPECT_EQ(routeName(*rc, h, 0), "canary");
  EXPECT_EQ(routeName(*rc, h, 24), "canary");
  EXPECT_EQ(routeName(*rc, h, 25), "stable");
  EXPECT_EQ(routeName(*rc, h, 99), "stable");
  EXPECT_EQ(routeName(*rc, h, 124), "canary");  // random % 100
  int canary = 0;
  for (uint64_t r = 0; r < 1000; ++r)
    canary += routeName(*rc, h, r) == "canary";
  EXPECT_EQ(canary, 250);
}

TEST(RouterMatch, UnsupportedMatchKindsAreRefused) {
  auto route_with = [](const std::string& match) {
    return R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: ok, match: {prefix: "/"}, route: {cluster: c}}
  - {match: )" +
           match + R"(, route: {cluster: c}}
)";
  };
  const std::string where = "route_config.virtual_hosts[0].routes[1].match";
  EXPECT_TRUE(refused(buildError(route_with(R"({prefix: "/", grpc: {}})")), where, "grpc"));
  EXPECT_TRUE(refused(buildError(route_with(R"({prefix: "/", tls_context: {presented: true}})")),
                      where, "tls_context"));
  EXPECT_EQ(buildError(route_with(R"({connect_matcher: {}})")),
            where + ".connect_matcher: CONNECT matching is not implemented by legate yet");
  EXPECT_TRUE(refused(
      buildError(route_with(
          R"({prefix: "/", dynamic_metadata: [{filter: f, path: [{key: k}], value: {present_match: true}}]})")),
      where, "dynamic_metadata"));
}

TEST(RouterMatch, RegexErrorsNameTheField) {
  const std::string err = buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/"}, route: {cluster: c}}
  - {match: {prefix: "/"}, route: {cluster: c}}
  - {match: {prefix: "/"}, route: {cluster: c}}
  - {match: {safe_regex: {regex: "(unclosed"}}, route: {cluster: c}}
)");
  EXPECT_EQ(err.rfind("route_config.virtual_hosts[0].routes[3].match.safe_regex: invalid regex "
                      "'(unclosed': ",
                      0),
            0u)
      << err;
  const std::string err2 = buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/", headers: [{name: x, string_match: {safe_regex: {regex: "[" }}}]}
    route: {cluster: c}
)");
  EXPECT_EQ(err2.rfind("route_config.virtual_hosts[0].routes[0].match.headers[0].string_match."
                       "safe_regex: invalid regex",
                       0),
            0u)
      << err2;
  // Envoy's program size limit (100).
  const std::string err3 = buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {safe_regex: {regex: "(a|b|c|d|e|f|g|h){20,40}"}}, route: {cluster: c}}
)");
  EXPECT_NE(err3.find("routes[0].match.safe_regex: regex '(a|b|c|d|e|f|g|h){20,40}' is too "
                      "complex"),
            std::string::npos)
      << err3;
}

// ---- route action ----

TEST(RouterAction, ClusterSpecifiersAndTimeouts) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: fixed
    match: {prefix: "/fixed"}
    route: {cluster: backend, timeout: 0s, idle_timeout: 2.5s}
  - name: header
    match: {prefix: "/header"}
    route: {cluster_header: X-Cluster, cluster_not_found_response_code: NOT_FOUND, timeout: 3s}
  - name: weighted
    match: {prefix: "/weighted"}
    route:
      weighted_clusters:
        clusters:
        - {name: a, weight: 1}
        - {name: b, weight: 0}
        - {name: c, weight: 3}
        - {cluster_header: x-pick, weight: 1}
  - name: weighted_header
    match: {prefix: "/wh"}
    route:
      weighted_clusters:
        header_name: x-random
        clusters: [{name: a, weight: 50}, {name: b, weight: 50}]
)");
  ASSERT_NE(rc, nullptr);
  const Route* fixed = rc->route(request("h", "/fixed"), 0);
  ASSERT_NE(fixed, nullptr);
  ASSERT_NE(fixed->routeAction(), nullptr);
  EXPECT_EQ(fixed->redirect(), nullptr);
  EXPECT_EQ(fixed->directResponse(), nullptr);
  EXPECT_EQ(fixed->routeAction()->pickCluster(request("h", "/fixed"), 7), "backend");
  EXPECT_EQ(fixed->routeAction()->timeout(), std::chrono::milliseconds(0));
  EXPECT_EQ(fixed->routeAction()->idleTimeout(), std::chrono::milliseconds(2500));
  EXPECT_EQ(fixed->routeAction()->clusterNotFoundResponseCode(), 503u);

  const Route* hdr = rc->route(request("h", "/header"), 0);
  ASSERT_NE(hdr, nullptr);
  EXPECT_EQ(hdr->routeAction()->pickCluster(request("h", "/header", {{"x-cluster", "dyn"}}), 0),
            "dyn");
  EXPECT_EQ(hdr->routeAction()->pickCluster(request("h", "/header"), 0), "");
  EXPECT_EQ(hdr->routeAction()->clusterNotFoundResponseCode(), 404u);
  EXPECT_EQ(hdr->routeAction()->timeout(), std::chrono::milliseconds(3000));
  EXPECT_FALSE(hdr->routeAction()->idleTimeout().has_value());

  const Route* w = rc->route(request("h", "/weighted"), 0);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->routeAction()->timeout(), std::chrono::milliseconds(15000));  // Envoy's default
  EXPECT_EQ(w->routeAction()->totalWeight(), 5u);
  auto h = request("h", "/weighted", {{"x-pick", "picked"}});
  EXPECT_EQ(w->routeAction()->pickCluster(h, 0), "a");
  EXPECT_EQ(w->routeAction()->pickCluster(h, 1), "c");
  EXPECT_EQ(w->routeAction()->pickCluster(h, 3), "c");
  EXPECT_EQ(w->routeAction()->pickCluster(h, 4), "picked");
  EXPECT_EQ(w->routeAction()->pickCluster(h, 5), "a");
  EXPECT_EQ(w->routeAction()->pickCluster(request("h", "/weighted"), 4), "");

  const Route* wh = rc->route(request("h", "/wh"), 0);
  ASSERT_NE(wh, nullptr);
  EXPECT_EQ(wh->routeAction()->pickCluster(request("h", "/wh", {{"x-random", "60"}}), 0), "b");
  EXPECT_EQ(wh->routeAction()->pickCluster(request("h", "/wh", {{"x-random", "bad"}}), 60), "b");
  EXPECT_EQ(wh->routeAction()->pickCluster(request("h", "/wh"), 10), "a");
}

TEST(RouterAction, WeightedClusterErrors) {
  auto cfg = [](const std::string& wc) {
    return R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      weighted_clusters: )" +
           wc + "\n";
  };
  EXPECT_EQ(buildError(cfg("{clusters: [{name: a, weight: 0}]}")),
            "route_config.virtual_hosts[0].routes[0].route.weighted_clusters: the sum of the "
            "cluster weights must be greater than 0");
  EXPECT_EQ(buildError(cfg("{total_weight: 10, clusters: [{name: a, weight: 3}]}")),
            "route_config.virtual_hosts[0].routes[0].route.weighted_clusters.total_weight: is 10 "
            "but the cluster weights add up to 3");
  EXPECT_EQ(buildError(cfg("{clusters: [{name: a, cluster_header: x, weight: 3}]}")),
            "route_config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0]: "
            "exactly one of name and cluster_header is required");
  EXPECT_TRUE(refused(buildError(cfg("{clusters: [{name: a, weight: 3, request_headers_to_add: "
                                     "[{header: {key: k, value: v}}]}]}")),
                      "route_config.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0]",
                      "request_headers_to_add"));
}

TEST(RouterAction, UpgradeConfigsPerRoute) {
  auto cfg = [](const std::string& extra) {
    return R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c, upgrade_configs: )" +
           extra + "}\n";
  };
  auto rc = build(cfg("[{upgrade_type: WebSocket}, {upgrade_type: custom, enabled: false}]"));
  ASSERT_NE(rc, nullptr);
  const Route* r = rc->route(request("h", "/"), 0);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->routeAction()->upgradeEnabled("websocket"), std::optional<bool>(true));
  EXPECT_EQ(r->routeAction()->upgradeEnabled("custom"), std::optional<bool>(false));
  EXPECT_EQ(r->routeAction()->upgradeEnabled("other"), std::nullopt);
  EXPECT_TRUE(refused(buildError(cfg("[{upgrade_type: CONNECT}]")),
                      "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0]",
                      "upgrade_type"));
  EXPECT_TRUE(refused(buildError(cfg("[{upgrade_type: websocket, connect_config: {}}]")),
                      "route_config.virtual_hosts[0].routes[0].route.upgrade_configs[0]",
                      "connect_config"));
}

TEST(RouterAction, UnsupportedRouteActionFieldsAreRefused) {
  auto cfg = [](const std::string& extra) {
    return R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c, )" +
           extra + "}\n";
  };
  for (const char* f :
       {"max_stream_duration: {}",
        "priority: HIGH", "max_grpc_timeout: 1s", "internal_redirect_policy: {}",
        "hedge_policy: {initial_requests: 2}",
        "rate_limits: [{actions: "
        "[{generic_key: {descriptor_value: "
        "x}}]}]"}) {
    const std::string field = std::string(f).substr(0, std::string(f).find(':'));
    EXPECT_TRUE(refused(buildError(cfg(f)), "route_config.virtual_hosts[0].routes[0].route", field))
        << f;
  }
}

TEST(RouterTracing, RouteTracingWithEnvoysDefaults) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - name: quiet
    match: {prefix: "/quiet"}
    route: {cluster: c}
    tracing: {random_sampling: {numerator: 0}}
  - name: tuned
    match: {prefix: "/tuned"}
    route: {cluster: c}
    tracing:
      client_sampling: {numerator: 5, denominator: TEN_THOUSAND}
      overall_sampling: {numerator: 25, denominator: MILLION}
      custom_tags:
      - {tag: team, request_header: {name: X-Team, default_value: none}}
      - {tag: tier, literal: {value: gold}}
  - name: empty
    match: {prefix: "/empty"}
    route: {cluster: c}
    tracing: {}
  - name: plain
    match: {prefix: "/"}
    route: {cluster: c}
)");
  ASSERT_NE(rc, nullptr);
  auto tracingOf = [&](const std::string& path) {
    const Route* r = rc->route(request("h", path), 0);
    EXPECT_NE(r, nullptr) << path;
    return r != nullptr ? r->tracing() : nullptr;
  };
  // Only what is set changes; every unset field is 100% (Envoy's default for a
  // route's tracing), not the connection manager's value.
  const RouteTracing* quiet = tracingOf("/quiet");
  ASSERT_NE(quiet, nullptr);
  EXPECT_EQ(quiet->sampling.random.numerator, 0u);
  EXPECT_EQ(quiet->sampling.random.denominator, 100u);
  EXPECT_EQ(quiet->sampling.client.numerator, quiet->sampling.client.denominator);
  EXPECT_EQ(quiet->sampling.overall.numerator, quiet->sampling.overall.denominator);
  EXPECT_TRUE(quiet->custom_tags.empty());

  const RouteTracing* tuned = tracingOf("/tuned");
  ASSERT_NE(tuned, nullptr);
  EXPECT_EQ(tuned->sampling.client.numerator, 5u);
  EXPECT_EQ(tuned->sampling.client.denominator, 10000u);
  EXPECT_EQ(tuned->sampling.overall.numerator, 25u);
  EXPECT_EQ(tuned->sampling.overall.denominator, 1000000u);
  EXPECT_EQ(tuned->sampling.random.numerator, tuned->sampling.random.denominator);
  ASSERT_EQ(tuned->custom_tags.size(), 2u);
  EXPECT_EQ(tuned->custom_tags[0].tag, "team");
  EXPECT_EQ(tuned->custom_tags[0].kind, tracing::CustomTag::Kind::RequestHeader);
  EXPECT_EQ(tuned->custom_tags[0].value, "x-team");
  EXPECT_EQ(tuned->custom_tags[0].default_value, "none");
  EXPECT_EQ(tuned->custom_tags[1].value, "gold");

  // An empty tracing object still overrides (at 100% everywhere).
  const RouteTracing* empty = tracingOf("/empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->sampling.random.numerator, empty->sampling.random.denominator);
  EXPECT_EQ(tracingOf("/other"), nullptr);

  // Metadata custom tags are refused by their path.
  const std::string err = buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c}
    tracing:
      custom_tags:
      - {tag: m, metadata: {kind: {request: {}}, metadata_key: {key: k, path: [{key: a}]}}}
)");
  EXPECT_NE(err.find("route_config.virtual_hosts[0].routes[0].tracing.custom_tags[0].metadata"),
            std::string::npos)
      << err;
}

TEST(RouterAction, UnsupportedRouteVhostAndConfigFieldsAreRefused) {
  EXPECT_TRUE(refused(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  cors: {}
)"),
                      "route_config.virtual_hosts[0]", "cors"));
  EXPECT_TRUE(refused(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  virtual_clusters: [{name: vc, headers: [{name: ":path", string_match: {exact: "/"}}]}]
)"),
                      "route_config.virtual_hosts[0]", "virtual_clusters"));
  EXPECT_TRUE(refused(buildError(R"(
internal_only_headers: ["x-internal"]
virtual_hosts: [{name: vh, domains: ["*"]}]
)"),
                      "route_config", "internal_only_headers"));
}

TEST(RouterAction, TypedPerFilterConfigIsKept) {
  // Built in code: the YAML loader only accepts @types of registered
  // extensions, and this test registers none.
  RouteConfiguration proto;
  google::protobuf::Any any;
  envoy::config::route::v3::DirectResponseAction payload;
  payload.set_status(418);
  any.PackFrom(payload);
  (*proto.mutable_typed_per_filter_config())["envoy.filters.http.a"] = any;
  auto* vh = proto.add_virtual_hosts();
  vh->set_name("vh");
  vh->add_domains("*");
  (*vh->mutable_typed_per_filter_config())["envoy.filters.http.b"] = any;
  auto* r = vh->add_routes();
  r->mutable_match()->set_prefix("/");
  r->mutable_route()->set_cluster("c");
  (*r->mutable_typed_per_filter_config())["envoy.filters.http.c"] = any;
  auto rc = RouteConfig::create(proto, "route_config");
  ASSERT_TRUE(rc.ok()) << rc.status().message();
  EXPECT_EQ((*rc)->typedPerFilterConfig().count("envoy.filters.http.a"), 1u);
  const Route* route = (*rc)->route(request("h", "/"), 0);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->virtualHost().typedPerFilterConfig().count("envoy.filters.http.b"), 1u);
  ASSERT_EQ(route->typedPerFilterConfig().count("envoy.filters.http.c"), 1u);
  envoy::config::route::v3::DirectResponseAction back;
  ASSERT_TRUE(route->typedPerFilterConfig().at("envoy.filters.http.c").UnpackTo(&back));
  EXPECT_EQ(back.status(), 418u);
}

TEST(RouterAction, ValidateClusters) {
  auto rc = build(R"(
validate_clusters: true
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/a"}, route: {cluster: known}}
  - {match: {prefix: "/h"}, route: {cluster_header: x-c}}
  - match: {prefix: "/w"}
    route: {weighted_clusters: {clusters: [{name: known, weight: 1}, {name: missing, weight: 1}]}}
)");
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(rc->validateClustersSetting(), true);
  auto st = rc->validateClusters([](std::string_view n) { return n == "known"; });
  EXPECT_EQ(st.message(),
            "route_config.virtual_hosts[0].routes[2].route.weighted_clusters."
            "clusters[1].name: unknown cluster 'missing'");
  EXPECT_TRUE(rc->validateClusters([](std::string_view) { return true; }).ok());
}

// ---- rewrites ----

TEST(RouterRewrite, PrefixRewrite) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: p, match: {prefix: "/old/"}, route: {cluster: c, prefix_rewrite: "/new/"}}
  - {name: root, match: {prefix: "/Root", case_sensitive: false}, route: {cluster: c, prefix_rewrite: "/"}}
  - {name: exact, match: {path: "/exact"}, route: {cluster: c, prefix_rewrite: "/replaced"}}
  - {name: re, match: {safe_regex: {regex: "/re/.*"}}, route: {cluster: c, prefix_rewrite: "/whole"}}
  - {name: sep, match: {path_separated_prefix: "/api"}, route: {cluster: c, prefix_rewrite: "/v2"}}
  - {name: none, match: {prefix: "/"}, route: {cluster: c}}
)");
  ASSERT_NE(rc, nullptr);
  auto rewrite = [&](const std::string& path, bool with_original = true) {
    auto h = request("h", path);
    const Route* r = rc->route(h, 0);
    EXPECT_NE(r, nullptr);
    if (r == nullptr)
      return std::pair<std::string, std::string>();
    r->rewritePathAndHost(h, with_original);
    return std::pair(std::string(h.path()), header(h, "x-envoy-original-path"));
  };
  EXPECT_EQ(rewrite("/old/x/y?q=1"), SP("/new/x/y?q=1", "/old/x/y?q=1"));
  EXPECT_EQ(rewrite("/ROOTfoo"), SP("/foo", "/ROOTfoo"));
  EXPECT_EQ(rewrite("/exact?a"), SP("/replaced?a", "/exact?a"));
  EXPECT_EQ(rewrite("/re/abc?z"), SP("/whole?z", "/re/abc?z"));
  EXPECT_EQ(rewrite("/api/users"), SP("/v2/users", "/api/users"));
  // No rewrite configured: nothing changes and no x-envoy-original-path.
  EXPECT_EQ(rewrite("/other?k"), SP("/other?k", "<absent>"));
  EXPECT_EQ(rewrite("/old/z", false), SP("/new/z", "<absent>"));
}

TEST(RouterRewrite, RegexRewriteAsEnvoyDocuments) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/service/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "^/service/([^/]+)(/.*)$"}, substitution: "\\2/instance/\\1"}
  - match: {prefix: "/xxx/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "one"}, substitution: "two"}
  - match: {prefix: "/first/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "^(.*?)one(.*)$"}, substitution: "\\1two\\2"}
  - match: {prefix: "/aaa/"}
    route:
      cluster: c
      regex_rewrite: {pattern: {regex: "(?i)/xxx/"}, substitution: "/yyy/"}
)");
  ASSERT_NE(rc, nullptr);
  auto rewrite = [&](const std::string& path) {
    auto h = request("h", path);
    const Route* r = rc->route(h, 0);
    EXPECT_NE(r, nullptr);
    if (r != nullptr)
      r->rewritePathAndHost(h);
    return std::string(h.path());
  };
  EXPECT_EQ(rewrite("/service/foo/v1/api"), "/v1/api/instance/foo");
  EXPECT_EQ(rewrite("/service/foo/v1/api?one=1"), "/v1/api/instance/foo?one=1");
  EXPECT_EQ(rewrite("/xxx/one/yyy/one/zzz?one"), "/xxx/two/yyy/two/zzz?one");
  EXPECT_EQ(rewrite("/first/one/yyy/one/zzz"), "/first/two/yyy/one/zzz");
  EXPECT_EQ(rewrite("/aaa/XxX/bbb"), "/aaa/yyy/bbb");
}

TEST(RouterRewrite, BothRewritesIsAnError) {
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c, prefix_rewrite: "/x", regex_rewrite: {pattern: {regex: "a"}, substitution: "b"}}
)"),
            "route_config.virtual_hosts[0].routes[0].route: prefix_rewrite and regex_rewrite "
            "cannot both be set");
}

TEST(RouterRewrite, HostRewrites) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/literal"}, route: {cluster: c, host_rewrite_literal: new.host}}
  - {match: {prefix: "/xfh"}, route: {cluster: c, host_rewrite_literal: new.host, append_x_forwarded_host: true}}
  - {match: {prefix: "/header"}, route: {cluster: c, host_rewrite_header: X-Host}}
  - {match: {prefix: "/auto"}, route: {cluster: c, auto_host_rewrite: true}}
  - match: {prefix: "/regex"}
    route:
      cluster: c
      host_rewrite_path_regex: {pattern: {regex: "^/regex/([^/]+)/.*$"}, substitution: "\\1.svc"}
)");
  ASSERT_NE(rc, nullptr);
  auto apply = [&](http::HeaderMap h) {
    const Route* r = rc->route(h, 0);
    EXPECT_NE(r, nullptr);
    if (r != nullptr)
      r->rewritePathAndHost(h);
    return h;
  };
  auto h = apply(request("orig", "/literal"));
  EXPECT_EQ(h.authority(), "new.host");
  EXPECT_EQ(header(h, "x-forwarded-host"), "<absent>");
  h = apply(request("orig", "/xfh", {{"x-forwarded-host", "first"}}));
  EXPECT_EQ(h.authority(), "new.host");
  EXPECT_EQ(header(h, "x-forwarded-host"), "first,orig");
  h = apply(request("orig", "/header", {{"x-host", "from.header"}}));
  EXPECT_EQ(h.authority(), "from.header");
  h = apply(request("orig", "/header"));
  EXPECT_EQ(h.authority(), "orig");
  h = apply(request("orig", "/auto"));
  EXPECT_EQ(h.authority(), "orig");  // applied by the router after load balancing
  EXPECT_TRUE(rc->route(request("orig", "/auto"), 0)->routeAction()->autoHostRewrite());
  h = apply(request("orig", "/regex/tenant/x?q"));
  EXPECT_EQ(h.authority(), "tenant.svc");
  EXPECT_EQ(h.path(), "/regex/tenant/x?q");
}

// ---- redirects and direct responses ----

TEST(RouterRedirect, Locations) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {path: "/old-path-1"}, redirect: {path_redirect: "/new-path-1"}}
  - {match: {path: "/old-path-2"}, redirect: {path_redirect: "/new-path-2", strip_query: true}}
  - {match: {path: "/old-path-3"}, redirect: {path_redirect: "/new-path-3?foo=1", strip_query: true}}
  - {match: {prefix: "/https"}, redirect: {https_redirect: true}}
  - {match: {prefix: "/scheme"}, redirect: {scheme_redirect: "HTTP", response_code: FOUND}}
  - {match: {prefix: "/host"}, redirect: {host_redirect: "other.com", response_code: SEE_OTHER}}
  - {match: {prefix: "/port"}, redirect: {port_redirect: 8443, response_code: TEMPORARY_REDIRECT}}
  - {match: {prefix: "/pre/"}, redirect: {prefix_rewrite: "/post/", response_code: PERMANENT_REDIRECT}}
  - match: {prefix: "/re/"}
    redirect: {regex_rewrite: {pattern: {regex: "^/re/(.*)$"}, substitution: "/x/\\1"}, strip_query: true}
)");
  ASSERT_NE(rc, nullptr);
  auto loc = [&](const std::string& authority, const std::string& path,
                 std::vector<std::pair<std::string, std::string>> extra = {}) {
    auto h = request(authority, path, std::move(extra));
    const Route* r = rc->route(h, 0);
    EXPECT_TRUE(r != nullptr && r->redirect() != nullptr);
    if (r == nullptr || r->redirect() == nullptr)
      return std::pair<uint32_t, std::string>();
    return std::pair(r->redirect()->responseCode(), r->redirect()->location(h));
  };
  using P = std::pair<uint32_t, std::string>;
  EXPECT_EQ(loc("h.com", "/old-path-1?bar=1"), P(301, "http://h.com/new-path-1?bar=1"));
  EXPECT_EQ(loc("h.com", "/old-path-2?bar=1"), P(301, "http://h.com/new-path-2"));
  EXPECT_EQ(loc("h.com", "/old-path-3?bar=1"), P(301, "http://h.com/new-path-3?foo=1"));
  EXPECT_EQ(loc("h.com", "/https/a?b"), P(301, "https://h.com/https/a?b"));
  // http://h:80 must not become https://h:80.
  EXPECT_EQ(loc("h.com:80", "/https"), P(301, "https://h.com/https"));
  EXPECT_EQ(loc("h.com:8080", "/https"), P(301, "https://h.com:8080/https"));
  EXPECT_EQ(loc("h.com:443", "/scheme", {{"x-forwarded-proto", "https"}}),
            P(302, "http://h.com/scheme"));
  EXPECT_EQ(loc("h.com:80", "/scheme"), P(302, "http://h.com:80/scheme"));  // same scheme
  EXPECT_EQ(loc("h.com:80", "/host?q"), P(303, "http://other.com/host?q"));
  EXPECT_EQ(loc("h.com:80", "/port"), P(307, "http://h.com:8443/port"));
  EXPECT_EQ(loc("[::1]:80", "/port"), P(307, "http://[::1]:8443/port"));
  EXPECT_EQ(loc("h.com", "/pre/a/b?c"), P(308, "http://h.com/post/a/b?c"));
  EXPECT_EQ(loc("h.com", "/re/a/b?c"), P(301, "http://h.com/x/a/b"));
}

TEST(RouterRedirect, RequireTls) {
  auto rc = build(R"(
virtual_hosts:
- name: all
  domains: ["all.com"]
  require_tls: ALL
  routes: [{name: r, match: {prefix: "/"}, route: {cluster: c}}]
- name: ext
  domains: ["ext.com"]
  require_tls: EXTERNAL_ONLY
  routes: [{name: r, match: {prefix: "/"}, route: {cluster: c}}]
)");
  ASSERT_NE(rc, nullptr);
  auto h = request("all.com", "/a?b");
  const Route* r = rc->route(h, 0);
  ASSERT_NE(r, nullptr);
  ASSERT_NE(r->redirect(), nullptr);
  EXPECT_EQ(r->redirect()->responseCode(), 301u);
  EXPECT_EQ(r->redirect()->location(h), "https://all.com/a?b");
  EXPECT_EQ(routeName(*rc, request("all.com", "/", {{"x-forwarded-proto", "https"}})), "r");
  EXPECT_EQ(routeName(*rc, request("ext.com", "/", {{"x-envoy-internal", "true"}})), "r");
  EXPECT_EQ(routeName(*rc, request("ext.com", "/")), "require_tls");
}

TEST(RouterDirectResponse, BodyAndLimits) {
  auto rc = build(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/s"}, direct_response: {status: 200, body: {inline_string: "hello"}}}
  - {match: {prefix: "/b"}, direct_response: {status: 503, body: {inline_bytes: "aGk="}}}
  - {match: {prefix: "/e"}, direct_response: {status: 204}}
)");
  ASSERT_NE(rc, nullptr);
  const Route* s = rc->route(request("h", "/s"), 0);
  ASSERT_NE(s, nullptr);
  ASSERT_NE(s->directResponse(), nullptr);
  EXPECT_EQ(s->directResponse()->status, 200u);
  EXPECT_EQ(s->directResponse()->body, "hello");
  EXPECT_EQ(rc->route(request("h", "/b"), 0)->directResponse()->body, "hi");
  EXPECT_EQ(rc->route(request("h", "/b"), 0)->directResponse()->status, 503u);
  EXPECT_EQ(rc->route(request("h", "/e"), 0)->directResponse()->body, "");

  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/"}, direct_response: {status: 200, body: {filename: "/etc/motd"}}}
)"),
            "route_config.virtual_hosts[0].routes[0].direct_response.body.filename: reading a "
            "direct response body from a file is not implemented by legate yet; use inline_string "
            "or inline_bytes");
  EXPECT_EQ(buildError(R"(
max_direct_response_body_size_bytes: 4
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: "hello"}}}
)"),
            "route_config.virtual_hosts[0].routes[0].direct_response.body: is 5 bytes, over "
            "max_direct_response_body_size_bytes (4)");
}

// ---- header mutations ----

constexpr const char* kMutations = R"(
request_headers_to_add:
- header: {key: x-level, value: config}
  append_action: OVERWRITE_IF_EXISTS_OR_ADD
- header: {key: x-config, value: c}
request_headers_to_remove: [x-remove-config]
response_headers_to_add:
- header: {key: x-resp, value: config}
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add:
  - header: {key: x-level, value: vhost}
    append_action: OVERWRITE_IF_EXISTS_OR_ADD
  - header: {key: x-vhost, value: v}
  response_headers_to_add:
  - header: {key: x-resp, value: vhost}
  response_headers_to_remove: [server]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c}
    request_headers_to_add:
    - header: {key: x-level, value: route}
      append_action: OVERWRITE_IF_EXISTS_OR_ADD
    - header: {key: x-append, value: added}
    - header: {key: x-if-absent, value: new}
      append_action: ADD_IF_ABSENT
    - header: {key: x-if-absent-2, value: new}
      append_action: ADD_IF_ABSENT
    - header: {key: x-overwrite-if-exists, value: new}
      append_action: OVERWRITE_IF_EXISTS
    - header: {key: x-overwrite-if-exists-2, value: new}
      append_action: OVERWRITE_IF_EXISTS
    - header: {key: x-legacy-append, value: two}
      append: true
    - header: {key: x-legacy-overwrite, value: two}
      append: false
    - header: {key: x-empty, value: ""}
    - header: {key: x-empty-kept, value: ""}
      keep_empty_value: true
    - header: {key: x-code, value: "code=%RESPONSE_CODE%"}
    - header: {key: x-pct, value: "100%% of %START_TIME(%Y)%"}
    - header: {key: x-up-empty, value: "%UPSTREAM_CLUSTER%"}
    - header: {key: x-up-mixed, value: "[%UPSTREAM_CLUSTER%]"}
    request_headers_to_remove: [x-remove-route]
    response_headers_to_add:
    - header: {key: x-resp, value: route}
)";

TEST(RouterHeaders, RequestOrderAndAppendActions) {
  auto rc = build(kMutations);
  ASSERT_NE(rc, nullptr);
  auto h = request("h", "/",
                   {{"x-append", "orig"},
                    {"x-if-absent", "orig"},
                    {"x-overwrite-if-exists", "orig"},
                    {"x-legacy-append", "one"},
                    {"x-legacy-overwrite", "one"},
                    {"x-remove-route", "1"},
                    {"x-remove-config", "1"}});
  const Route* r = rc->route(h, 0);
  ASSERT_NE(r, nullptr);
  accesslog::StreamInfo info;
  info.response_code = 201;
  r->finalizeRequestHeaders(h, info);
  // Route, then virtual host, then route config: the least specific
  // overwrite runs last.
  EXPECT_EQ(h.getAll("x-level"), std::vector<std::string_view>{"config"});
  EXPECT_EQ(h.getAll("x-append"), (std::vector<std::string_view>{"orig", "added"}));
  EXPECT_EQ(h.getAll("x-if-absent"), std::vector<std::string_view>{"orig"});
  EXPECT_EQ(header(h, "x-if-absent-2"), "new");
  EXPECT_EQ(h.getAll("x-overwrite-if-exists"), std::vector<std::string_view>{"new"});
  EXPECT_EQ(header(h, "x-overwrite-if-exists-2"), "<absent>");
  EXPECT_EQ(h.getAll("x-legacy-append"), (std::vector<std::string_view>{"one", "two"}));
  EXPECT_EQ(h.getAll("x-legacy-overwrite"), std::vector<std::string_view>{"two"});
  EXPECT_EQ(header(h, "x-empty"), "<absent>");
  EXPECT_EQ(header(h, "x-empty-kept"), "");
  EXPECT_EQ(header(h, "x-code"), "code=201");
  EXPECT_EQ(header(h, "x-pct").substr(0, 10), "100% of 20") << header(h, "x-pct");
  // An operator without a value adds nothing (not the access log's "-").
  EXPECT_EQ(header(h, "x-up-empty"), "<absent>");
  EXPECT_EQ(header(h, "x-up-mixed"), "[]");
  EXPECT_EQ(header(h, "x-remove-route"), "<absent>");
  EXPECT_EQ(header(h, "x-remove-config"), "<absent>");
  EXPECT_EQ(header(h, "x-vhost"), "v");
  EXPECT_EQ(header(h, "x-config"), "c");
}

TEST(RouterHeaders, MostSpecificWins) {
  auto rc = build(std::string("most_specific_header_mutations_wins: true\n") + kMutations);
  ASSERT_NE(rc, nullptr);
  auto h = request("h", "/");
  const Route* r = rc->route(h, 0);
  ASSERT_NE(r, nullptr);
  accesslog::StreamInfo info;
  r->finalizeRequestHeaders(h, info);
  EXPECT_EQ(h.getAll("x-level"), std::vector<std::string_view>{"route"});
}

TEST(RouterHeaders, ResponseOrder) {
  auto rc = build(kMutations);
  ASSERT_NE(rc, nullptr);
  const Route* r = rc->route(request("h", "/"), 0);
  ASSERT_NE(r, nullptr);
  http::HeaderMap resp;
  resp.add(":status", "200");
  resp.add("server", "upstream");
  accesslog::StreamInfo info;
  r->finalizeResponseHeaders(resp, info);
  EXPECT_EQ(resp.getAll("x-resp"), (std::vector<std::string_view>{"route", "vhost", "config"}));
  EXPECT_EQ(header(resp, "server"), "<absent>");
}

// A route knows at build time whether any level mutates headers, and skips the
// levels when none does: each level alone must still be applied.
TEST(RouterHeaders, EachLevelAppliesOnItsOwn) {
  const std::string route = R"(  routes:
  - match: {prefix: "/"}
    route: {cluster: c}
)";
  const std::string add_request = "[{header: {key: x-added, value: yes}}]";
  const std::string add_response = "[{header: {key: x-resp-added, value: yes}}]";
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"config", "request_headers_to_add: " + add_request + "\nresponse_headers_to_add: " +
                     add_response + "\nvirtual_hosts:\n- name: vh\n  domains: [\"*\"]\n" + route},
      {"virtual host", "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n  request_headers_to_add: " +
                           add_request + "\n  response_headers_to_add: " + add_response + "\n" +
                           route},
      {"route", "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n" + route +
                    "    request_headers_to_add: " + add_request +
                    "\n    response_headers_to_add: " + add_response + "\n"},
      {"none", "virtual_hosts:\n- name: vh\n  domains: [\"*\"]\n" + route},
  };
  for (const auto& [level, yaml] : configs) {
    auto rc = build(yaml);
    ASSERT_NE(rc, nullptr) << level;
    auto h = request("h", "/");
    const Route* r = rc->route(h, 0);
    ASSERT_NE(r, nullptr) << level;
    accesslog::StreamInfo info;
    r->finalizeRequestHeaders(h, info);
    http::HeaderMap resp;
    resp.add(":status", "200");
    r->finalizeResponseHeaders(resp, info);
    const bool expected = level != "none";
    EXPECT_EQ(header(h, "x-added"), expected ? "yes" : "<absent>") << level;
    EXPECT_EQ(header(resp, "x-resp-added"), expected ? "yes" : "<absent>") << level;
  }
}

TEST(RouterHeaders, ProtectedHeadersAreErrors) {
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: ok, value: v}}, {header: {key: ":path", value: v}}]
)"),
            "route_config.virtual_hosts[0].request_headers_to_add[1].header.key: ':path': "
            "':'-prefixed or host headers may not be modified");
  EXPECT_EQ(buildError(R"(
response_headers_to_add: [{header: {key: Host, value: v}}]
virtual_hosts: [{name: vh, domains: ["*"]}]
)"),
            "route_config.response_headers_to_add[0].header.key: 'Host': ':'-prefixed or host "
            "headers may not be modified");
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: "/"}, route: {cluster: c}, request_headers_to_remove: [host]}
)"),
            "route_config.virtual_hosts[0].routes[0].request_headers_to_remove[0]: 'host': "
            "':'-prefixed or host headers may not be removed");
  EXPECT_NE(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: x, value: "%NOT_AN_OPERATOR%"}}]
)")
                .find("route_config.virtual_hosts[0].request_headers_to_add[0].header.value: "),
            std::string::npos);
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: x, value: "50% off"}}]
)"),
            "route_config.virtual_hosts[0].request_headers_to_add[0].header.value: '50% off': a "
            "'%' at offset 2 does not start a %OPERATOR% (write %% for a literal %)");
  EXPECT_EQ(buildError(R"(
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: x, value: v}, append: true, append_action: ADD_IF_ABSENT}]
)"),
            "route_config.virtual_hosts[0].request_headers_to_add[0]: both append and "
            "append_action are set; use append_action only");
}

// ---- the route index against first-match order ----

// 10,000 routes of every indexed kind, with traps: earlier prefix routes that
// shadow later exact routes, case-insensitive routes mixed with sensitive
// ones, a regex in the middle, and routes that only match on a header.
RouteConfiguration bigConfig() {
  RouteConfiguration rc;
  auto* vh = rc.add_virtual_hosts();
  vh->set_name("big");
  vh->add_domains("*");
  auto add = [&](const std::string& name) {
    auto* r = vh->add_routes();
    r->set_name(name);
    r->mutable_route()->set_cluster("c");
    return r->mutable_match();
  };
  for (int i = 0; i < 2000; ++i)
    add("exact" + std::to_string(i))->set_path("/svc" + std::to_string(i) + "/x");
  // A prefix that shadows the later exact route "/shadowed/exact".
  add("shadowing_prefix")->set_prefix("/shadowed/");
  for (int i = 0; i < 2000; ++i) {
    add("prefix" + std::to_string(i))->set_prefix("/p" + std::to_string(i) + "/");
  }
  add("shadowed_exact")->set_path("/shadowed/exact");
  // A header-only candidate before a plain one on the same prefix.
  {
    auto* m = add("needs_header");
    m->set_prefix("/hdr/");
    auto* hm = m->add_headers();
    hm->set_name("x-special");
    hm->set_present_match(true);
  }
  add("hdr_plain")->set_prefix("/hdr/");
  // A regex route in the middle, before longer prefixes that also match.
  add("regex_mid")->mutable_safe_regex()->set_regex("/rx/[0-9]+/.*");
  for (int i = 0; i < 2000; ++i) {
    auto* m = add("nocase" + std::to_string(i));
    m->set_prefix("/CI" + std::to_string(i) + "/");
    m->mutable_case_sensitive()->set_value(false);
  }
  add("rx_longer_prefix")->set_prefix("/rx/1");
  for (int i = 0; i < 1990; ++i) {
    add("sep" + std::to_string(i))->set_path_separated_prefix("/sep" + std::to_string(i));
  }
  // An exact route that is shadowed by nothing, but comes after a shorter
  // prefix "/p1/" (prefix1) that matches it: the prefix must win.
  add("late_exact_under_prefix")->set_path("/p1/late");
  // Case-insensitive exact and sensitive exact on the same path: first wins.
  {
    auto* m = add("exact_nocase_first");
    m->set_path("/Dual");
    m->mutable_case_sensitive()->set_value(false);
  }
  add("exact_sensitive_second")->set_path("/dual");
  for (int i = 0; i < 2001; ++i) {
    add("tail" + std::to_string(i))->set_path("/tail/" + std::to_string(i));
  }
  add("catch_all")->set_prefix("/");
  return rc;
}

// The reference: Envoy's semantics as a plain linear scan.
const Route* linearScan(const VirtualHost& vh, const http::HeaderMap& h, uint64_t random) {
  const SplitPath sp = splitPath(h.path());
  for (const auto& r : vh.routes()) {
    if (r->matches(h, sp.path, sp.query, random))
      return r.get();
  }
  return nullptr;
}

TEST(RouterIndex, TenThousandRoutesKeepFirstMatchOrder) {
  auto proto = bigConfig();
  auto rc = RouteConfig::create(proto, "route_config");
  ASSERT_TRUE(rc.ok()) << rc.status().message();
  const RouteConfig& config = **rc;
  ASSERT_EQ(config.virtualHosts()[0]->routes().size(), 10001u);
  auto name = [&](const std::string& path,
                  std::vector<std::pair<std::string, std::string>> extra = {}) {
    return routeName(config, request("h", path, std::move(extra)));
  };
  EXPECT_EQ(name("/svc0/x"), "exact0");
  EXPECT_EQ(name("/svc1999/x?q=1"), "exact1999");
  EXPECT_EQ(name("/svc1999/xy"), "catch_all");
  EXPECT_EQ(name("/shadowed/exact"), "shadowing_prefix");
  EXPECT_EQ(name("/p1/late"), "prefix1");
  EXPECT_EQ(name("/p10/late"), "prefix10");
  EXPECT_EQ(name("/p1999/"), "prefix1999");
  EXPECT_EQ(name("/hdr/a"), "hdr_plain");
  EXPECT_EQ(name("/hdr/a", {{"x-special", "1"}}), "needs_header");
  EXPECT_EQ(name("/rx/12/a"), "regex_mid");
  EXPECT_EQ(name("/rx/1"), "rx_longer_prefix");
  EXPECT_EQ(name("/ci5/x"), "nocase5");
  EXPECT_EQ(name("/Ci1999/"), "nocase1999");
  EXPECT_EQ(name("/sep7"), "sep7");
  EXPECT_EQ(name("/sep7/a"), "sep7");
  EXPECT_EQ(name("/sep7a"), "catch_all");
  EXPECT_EQ(name("/sep1989/z"), "sep1989");
  EXPECT_EQ(name("/dual"), "exact_nocase_first");
  EXPECT_EQ(name("/DUAL"), "exact_nocase_first");
  EXPECT_EQ(name("/tail/1987"), "tail1987");
  EXPECT_EQ(name("/nothing"), "catch_all");

  // Every answer agrees with a linear scan.
  const VirtualHost& vh = *config.virtualHosts()[0];
  std::vector<std::string> paths = {
      "/",        "/svc5/x", "/p5/",   "/p55/x", "/CI7/",           "/ci77/a", "/sep12",  "/sep12/",
      "/sep123x", "/tail/5", "/rx/9/", "/hdr/",  "/shadowed/exact", "/Dual",   "/p1/late"};
  for (int i = 0; i < 2000; i += 37) {
    paths.push_back("/svc" + std::to_string(i) + "/x");
    paths.push_back("/P" + std::to_string(i) + "/y");
    paths.push_back("/ci" + std::to_string(i) + "/y");
    paths.push_back("/tail/" + std::to_string(i));
  }
  for (const auto& p : paths) {
    auto h = request("h", p);
    EXPECT_EQ(config.route(h, 0), linearScan(vh, h, 0)) << p;
  }
}

TEST(RouterIndex, HundredThousandLookups) {
  auto proto = bigConfig();
  auto rc = RouteConfig::create(proto, "route_config");
  ASSERT_TRUE(rc.ok()) << rc.status().message();
  std::vector<http::HeaderMap> reqs;
  for (int i = 0; i < 100; ++i) {
    reqs.push_back(request("h", "/svc" + std::to_string(i * 17) + "/x"));
    reqs.push_back(request("h", "/p" + std::to_string(i * 13) + "/a/b?c=d"));
    reqs.push_back(request("h", "/ci" + std::to_string(i * 11) + "/a"));
    reqs.push_back(request("h", "/tail/" + std::to_string(i * 19)));
    reqs.push_back(request("h", "/nothing/" + std::to_string(i)));
  }
  size_t found = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100000; ++i) {
    found += (*rc)->route(reqs[i % reqs.size()], i) != nullptr;
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  EXPECT_EQ(found, 100000u);
  std::printf("100000 lookups over 10001 routes: %.1f ms (%.0f ns/lookup)\n",
              elapsed.count() / 1000.0, elapsed.count() * 1000.0 / 100000);
}

}  // namespace
}  // namespace legate::router

namespace legate::router {
namespace {

const HashPolicy* hashPolicyOf(const std::shared_ptr<const RouteConfig>& rc) {
  const Route* r = rc->route(request("h", "/"), 0);
  return r == nullptr || r->routeAction() == nullptr ? nullptr : r->routeAction()->hashPolicy();
}

std::shared_ptr<const RouteConfig> withHashPolicy(const std::string& policies) {
  return build(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: c
      hash_policy: )" + policies + "\n");
}

TEST(HashPolicyTest, HeaderCookieQueryAndSourceIp) {
  auto rc = withHashPolicy(R"([{header: {header_name: X-User}}])");
  const HashPolicy* hp = hashPolicyOf(rc);
  ASSERT_NE(hp, nullptr);
  auto a = hp->generateHash(request("h", "/", {{"x-user", "alice"}}), nullptr, nullptr);
  auto a2 = hp->generateHash(request("h", "/other", {{"x-user", "alice"}}), nullptr, nullptr);
  auto b = hp->generateHash(request("h", "/", {{"x-user", "bob"}}), nullptr, nullptr);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a, a2); // same key, same hash
  EXPECT_NE(a, b);
  EXPECT_FALSE(hp->generateHash(request("h", "/"), nullptr, nullptr)); // no header, no hash

  rc = withHashPolicy(R"([{query_parameter: {name: session}}])");
  hp = hashPolicyOf(rc);
  auto q1 = hp->generateHash(request("h", "/p?x=1&session=abc"), nullptr, nullptr);
  auto q2 = hp->generateHash(request("h", "/q?session=abc"), nullptr, nullptr);
  ASSERT_TRUE(q1);
  EXPECT_EQ(q1, q2);
  EXPECT_FALSE(hp->generateHash(request("h", "/p?sessionx=abc"), nullptr, nullptr));

  rc = withHashPolicy(R"([{connection_properties: {source_ip: true}}])");
  hp = hashPolicyOf(rc);
  auto ip1 = *network::Address::fromIpPort("10.1.2.3", 1000);
  auto ip1b = *network::Address::fromIpPort("10.1.2.3", 2000);
  auto ip2 = *network::Address::fromIpPort("10.1.2.4", 1000);
  EXPECT_EQ(hp->generateHash(request("h", "/"), &ip1, nullptr),
            hp->generateHash(request("h", "/"), &ip1b, nullptr)); // the port does not count
  EXPECT_NE(hp->generateHash(request("h", "/"), &ip1, nullptr),
            hp->generateHash(request("h", "/"), &ip2, nullptr));
}

TEST(HashPolicyTest, CookieIsReadOrGeneratedWithSetCookie) {
  auto rc = withHashPolicy(R"([{cookie: {name: sticky, ttl: 3600s, path: /app}}])");
  const HashPolicy* hp = hashPolicyOf(rc);
  ASSERT_NE(hp, nullptr);
  auto client = *network::Address::fromIpPort("10.0.0.9", 5555);
  std::string set_cookie;
  auto generated = hp->generateHash(request("h", "/"), &client,
                                    [&](std::string c) { set_cookie = std::move(c); });
  ASSERT_TRUE(generated);
  // sticky="<16 hex digits>"; Max-Age=3600; Path=/app; HttpOnly
  ASSERT_EQ(set_cookie.rfind("sticky=\"", 0), 0u) << set_cookie;
  EXPECT_NE(set_cookie.find("; Max-Age=3600; Path=/app; HttpOnly"), std::string::npos) << set_cookie;
  const std::string value = set_cookie.substr(8, 16);
  // The client sends it back: same hash, no new cookie.
  set_cookie.clear();
  auto returned = hp->generateHash(request("h", "/", {{"cookie", "a=b; sticky=\"" + value + "\""}}),
                                   &client, [&](std::string c) { set_cookie = std::move(c); });
  EXPECT_EQ(returned, generated);
  EXPECT_TRUE(set_cookie.empty());

  // Without a ttl a missing cookie gives no hash and no Set-Cookie.
  rc = withHashPolicy(R"([{cookie: {name: sticky}}])");
  hp = hashPolicyOf(rc);
  EXPECT_FALSE(hp->generateHash(request("h", "/"), &client,
                                [&](std::string c) { set_cookie = std::move(c); }));
  EXPECT_TRUE(set_cookie.empty());
}

TEST(HashPolicyTest, PoliciesCombineAndTerminalStops) {
  auto rc_both = withHashPolicy(R"([{header: {header_name: a}}, {header: {header_name: b}}])");
  auto rc_a = withHashPolicy(R"([{header: {header_name: a}}])");
  auto rc_terminal =
      withHashPolicy(R"([{header: {header_name: a}, terminal: true}, {header: {header_name: b}}])");
  auto both = hashPolicyOf(rc_both);
  auto only_a = hashPolicyOf(rc_a);
  auto terminal = hashPolicyOf(rc_terminal);
  auto h = request("h", "/", {{"a", "1"}, {"b", "2"}});
  EXPECT_NE(both->generateHash(h, nullptr, nullptr), only_a->generateHash(h, nullptr, nullptr));
  EXPECT_EQ(terminal->generateHash(h, nullptr, nullptr), only_a->generateHash(h, nullptr, nullptr));
  // A terminal policy that yields nothing does not stop the walk.
  auto no_a = request("h", "/", {{"b", "2"}});
  EXPECT_TRUE(terminal->generateHash(no_a, nullptr, nullptr));
}

TEST(HashPolicyTest, UnsupportedPartsAreRefusedByPath) {
  RouteConfiguration proto;
  auto st = config::loadMessageFromYaml(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route:
      cluster: c
      hash_policy: [{cookie: {name: s, attributes: [{name: SameSite, value: Lax}]}}]
)", "routes.yaml", proto);
  ASSERT_TRUE(st.ok()) << st.message();
  auto rc = RouteConfig::create(proto, "route_config");
  ASSERT_FALSE(rc.ok());
  EXPECT_NE(rc.status().message().find("hash_policy[0].cookie.attributes"), std::string::npos)
      << rc.status().message();
}

} // namespace
} // namespace legate::router
