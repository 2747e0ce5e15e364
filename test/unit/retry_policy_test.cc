// Route and virtual host retry_policy / hedge_policy: defaults, every field,
// inheritance from the virtual host, and refusals by field path.

#include <gtest/gtest.h>

#include <string>

#include "config/bootstrap_loader.h"
#include "config/extension_registry.h"
#include "envoy/config/route/v3/route.pb.h"
#include "http/header_map.h"
#include "router/route_config.h"

namespace legate::router {
namespace {

using envoy::config::route::v3::RouteConfiguration;

absl::StatusOr<std::shared_ptr<const RouteConfig>> load(const std::string& yaml) {
  // The YAML loader takes only registered @types (the server registers this one).
  config::ExtensionRegistry::get().add(
      {config::ExtensionCategory::RetryHostPredicate,
       "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate",
       "envoy.retry_host_predicates.previous_hosts", nullptr});
  RouteConfiguration proto;
  auto st = config::loadMessageFromYaml(yaml, "routes.yaml", proto);
  if (!st.ok()) return st;
  return RouteConfig::create(proto, "route_config");
}

const RouteAction& action(const RouteConfig& rc, size_t route) {
  return *rc.virtualHosts()[0]->routes()[route]->routeAction();
}

TEST(RetryPolicyTest, ParsesEveryFieldWithEnvoyDefaults) {
  auto rc = load(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /a}
    route:
      cluster: c
      retry_policy:
        retry_on: "5xx, reset,connect-failure,retriable-status-codes,retriable-headers"
        num_retries: 4
        per_try_timeout: 0.5s
        per_try_idle_timeout: 0.2s
        retry_back_off: {base_interval: 0.1s}
        retriable_status_codes: [418, 429]
        retriable_headers: [{name: x-retry, present_match: true}]
        retriable_request_headers: [{name: ":method", string_match: {exact: GET}}]
        host_selection_retry_max_attempts: 3
        retry_host_predicate:
        - name: envoy.retry_host_predicates.previous_hosts
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
      hedge_policy: {hedge_on_per_try_timeout: true}
  - match: {prefix: /b}
    route:
      cluster: c
      retry_policy: {}
)");
  ASSERT_TRUE(rc.ok()) << rc.status();
  const RetryPolicy* p = action(**rc, 0).retryPolicy();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->retry_on, retry_on::k5xx | retry_on::kReset | retry_on::kConnectFailure |
                             retry_on::kRetriableStatusCodes | retry_on::kRetriableHeaders);
  EXPECT_EQ(p->num_retries, 4u);
  EXPECT_EQ(p->per_try_timeout.count(), 500);
  EXPECT_EQ(p->per_try_idle_timeout.count(), 200);
  EXPECT_EQ(p->base_interval.count(), 100);
  EXPECT_EQ(p->max_interval.count(), 1000) << "max_interval defaults to 10x base_interval";
  EXPECT_EQ(p->retriable_status_codes, (std::vector<uint32_t>{418, 429}));
  ASSERT_EQ(p->retriable_headers.size(), 1u);
  http::HeaderMap h;
  h.set("x-retry", "1");
  EXPECT_TRUE(p->retriable_headers[0].match(h));
  EXPECT_EQ(p->retriable_request_headers.size(), 1u);
  EXPECT_EQ(p->host_selection_max_attempts, 3u);
  EXPECT_TRUE(p->previous_hosts);
  ASSERT_NE(action(**rc, 0).hedgePolicy(), nullptr);
  EXPECT_TRUE(action(**rc, 0).hedgePolicy()->hedge_on_per_try_timeout);

  const RetryPolicy* d = action(**rc, 1).retryPolicy();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->retry_on, 0u);
  EXPECT_EQ(d->num_retries, 1u) << "Envoy retries once when a policy exists";
  EXPECT_EQ(d->base_interval.count(), 25);
  EXPECT_EQ(d->max_interval.count(), 250);
  EXPECT_EQ(d->host_selection_max_attempts, 1u);
  EXPECT_FALSE(d->previous_hosts);
  EXPECT_EQ(action(**rc, 1).hedgePolicy(), nullptr);
}

TEST(RetryPolicyTest, RoutesInheritTheVirtualHostPolicyUnlessTheyHaveTheirOwn) {
  auto rc = load(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  retry_policy: {retry_on: gateway-error, num_retries: 2}
  hedge_policy: {hedge_on_per_try_timeout: true}
  per_request_buffer_limit_bytes: 4096
  include_request_attempt_count: true
  include_attempt_count_in_response: true
  include_is_timeout_retry_header: true
  routes:
  - match: {prefix: /own}
    per_request_buffer_limit_bytes: 100
    route: {cluster: c, retry_policy: {retry_on: reset}}
  - match: {prefix: /}
    route: {cluster: c}
)");
  ASSERT_TRUE(rc.ok()) << rc.status();
  const VirtualHost& vh = *(*rc)->virtualHosts()[0];
  EXPECT_TRUE(vh.includeRequestAttemptCount());
  EXPECT_TRUE(vh.includeAttemptCountInResponse());
  EXPECT_TRUE(vh.includeIsTimeoutRetryHeader());
  EXPECT_EQ(action(**rc, 0).retryPolicy()->retry_on, retry_on::kReset);
  EXPECT_EQ(action(**rc, 0).perRequestBufferLimit(), 100u);
  EXPECT_NE(action(**rc, 0).hedgePolicy(), nullptr);
  EXPECT_EQ(action(**rc, 1).retryPolicy()->retry_on, retry_on::kGatewayError);
  EXPECT_EQ(action(**rc, 1).retryPolicy()->num_retries, 2u);
  EXPECT_EQ(action(**rc, 1).perRequestBufferLimit(), 4096u);
}

TEST(RetryPolicyTest, RefusesWhatItDoesNotImplementByPath) {
  const std::string head = R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route:
      cluster: c
)";
  struct Case {
    std::string yaml;
    std::string error;
  } cases[] = {
      {"      retry_policy: {retry_on: \"5xx,sometimes\"}\n",
       "route_config.virtual_hosts[0].routes[0].route.retry_policy.retry_on: 'sometimes'"},
      {"      retry_policy: {retry_priority: {name: envoy.retry_priorities.previous_priorities}}\n",
       "route.retry_policy.retry_priority"},
      {"      retry_policy: {retry_back_off: {base_interval: 1s, max_interval: 0.5s}}\n",
       "retry_policy.retry_back_off.max_interval"},
      {"      retry_policy:\n        retry_host_predicate: [{name: envoy.retry_host_predicates.omit_canary_hosts}]\n",
       "retry_policy.retry_host_predicate[0]: retry host predicate "
       "'envoy.retry_host_predicates.omit_canary_hosts'"},
      {"      hedge_policy: {initial_requests: 2}\n", "route.hedge_policy.initial_requests"},
  };
  for (const auto& c : cases) {
    auto rc = load(head + c.yaml);
    ASSERT_FALSE(rc.ok()) << c.yaml;
    EXPECT_NE(rc.status().message().find(c.error), std::string_view::npos)
        << rc.status().message();
  }
}

TEST(RetryPolicyTest, ParsesRetryOnAndStatusCodeLists) {
  std::string unknown;
  EXPECT_EQ(parseRetryOn(" 5xx ,gateway-error,,unavailable", &unknown),
            retry_on::k5xx | retry_on::kGatewayError | retry_on::kGrpcUnavailable);
  EXPECT_TRUE(unknown.empty());
  EXPECT_EQ(parseRetryOn("reset,nope,worse", &unknown), retry_on::kReset);
  EXPECT_EQ(unknown, "nope");
  EXPECT_EQ(parseStatusCodeList("500, 429,x,,503"), (std::vector<uint32_t>{500, 429, 503}));
}

TEST(MirrorPolicyTest, MostSpecificListWinsAndFieldsParse) {
  auto rc = load(R"(
request_mirror_policies: [{cluster: from_config}]
virtual_hosts:
- name: v
  domains: ["*"]
  request_mirror_policies:
  - cluster: from_vhost
    runtime_fraction: {default_value: {numerator: 5, denominator: TEN_THOUSAND}, runtime_key: k}
    disable_shadow_host_suffix_append: true
  routes:
  - match: {prefix: /own}
    route: {cluster: c, request_mirror_policies: [{cluster_header: X-Mirror}]}
  - match: {prefix: /}
    route: {cluster: c}
- name: w
  domains: ["w"]
  routes:
  - match: {prefix: /}
    route: {cluster: c}
)");
  ASSERT_TRUE(rc.ok()) << rc.status();
  const MirrorPolicies* own = action(**rc, 0).mirrorPolicies();
  ASSERT_NE(own, nullptr);
  ASSERT_EQ(own->size(), 1u);
  EXPECT_EQ((*own)[0].cluster_header, "x-mirror");
  const MirrorPolicies* vh = action(**rc, 1).mirrorPolicies();
  ASSERT_EQ(vh->size(), 1u);
  EXPECT_EQ((*vh)[0].cluster, "from_vhost");
  EXPECT_EQ((*vh)[0].numerator, 5u);
  EXPECT_EQ((*vh)[0].denominator, 10000u);
  EXPECT_EQ((*vh)[0].runtime_key, "k");
  EXPECT_TRUE((*vh)[0].keep_host);
  EXPECT_TRUE((*vh)[0].sampled(10004));
  EXPECT_FALSE((*vh)[0].sampled(10005));
  const auto& w = *(*rc)->virtualHosts()[1]->routes()[0]->routeAction();
  ASSERT_NE(w.mirrorPolicies(), nullptr);
  EXPECT_EQ((*w.mirrorPolicies())[0].cluster, "from_config");
  EXPECT_TRUE((*w.mirrorPolicies())[0].sampled(12345)) << "no runtime_fraction: always";

  auto bad = load(R"(
virtual_hosts:
- name: v
  domains: ["*"]
  routes:
  - match: {prefix: /}
    route: {cluster: c, request_mirror_policies: [{cluster: m, trace_sampled: false}]}
)");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("route.request_mirror_policies[0].trace_sampled"),
            std::string_view::npos)
      << bad.status();
}

} // namespace
} // namespace legate::router
