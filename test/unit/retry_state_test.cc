// The router's per-request retry decisions (RetryState): which responses and
// failures are retried under each retry_on condition, the request headers
// that steer retries, retries left, the retry breaker, and the back-off.

#include <gtest/gtest.h>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "event/dispatcher.h"
#include "extensions/filters/http/router/retry_state.h"
#include "extensions/filters/http/router/shadow_request.h"
#include "stats/stats.h"

namespace legate::extensions::router {
namespace {

namespace ro = legate::router::retry_on;
using Failure = RetryState::Failure;
using Status = RetryState::Status;

class RetryStateTest : public ::testing::Test {
protected:
  RetryStateTest() {
    envoy::config::cluster::v3::Cluster proto;
    proto.set_name("c");
    auto* sa = proto.mutable_load_assignment()
                   ->add_endpoints()
                   ->add_lb_endpoints()
                   ->mutable_endpoint()
                   ->mutable_address()
                   ->mutable_socket_address();
    sa->set_address("127.0.0.1");
    sa->set_port_value(1);
    auto* t = proto.mutable_circuit_breakers()->add_thresholds();
    t->mutable_max_retries()->set_value(1);
    auto c = upstream::Cluster::create(proto, store_, 1);
    EXPECT_TRUE(c.ok()) << c.status();
    cluster_ = *c;
  }

  std::unique_ptr<RetryState> make(uint32_t retry_on, const http::HeaderMap& request = {}) {
    policy_.retry_on = retry_on;
    return RetryState::create(&policy_, request, *cluster_, dispatcher_);
  }

  static http::HeaderMap response(uint32_t code) {
    http::HeaderMap h;
    h.set(":status", std::to_string(code));
    return h;
  }

  uint64_t counter(const std::string& name) { return store_.counter("cluster.c." + name).value(); }

  stats::Store store_;
  event::Dispatcher dispatcher_{"test"};
  std::shared_ptr<upstream::Cluster> cluster_;
  legate::router::RetryPolicy policy_;
};

TEST_F(RetryStateTest, NoConditionsNoState) {
  EXPECT_EQ(make(0), nullptr);
  EXPECT_EQ(RetryState::create(nullptr, {}, *cluster_, dispatcher_), nullptr);
  http::HeaderMap req;
  req.set("x-envoy-retry-on", "5xx");
  auto s = RetryState::create(nullptr, req, *cluster_, dispatcher_);
  ASSERT_NE(s, nullptr) << "x-envoy-retry-on alone enables retries";
  EXPECT_EQ(s->retriesRemaining(), 1u);
}

TEST_F(RetryStateTest, ResponseConditions) {
  EXPECT_TRUE(make(ro::k5xx)->wouldRetryResponse(response(500)));
  EXPECT_TRUE(make(ro::k5xx)->wouldRetryResponse(response(503)));
  EXPECT_FALSE(make(ro::k5xx)->wouldRetryResponse(response(404)));
  EXPECT_FALSE(make(ro::kGatewayError)->wouldRetryResponse(response(500)));
  EXPECT_TRUE(make(ro::kGatewayError)->wouldRetryResponse(response(504)));
  EXPECT_TRUE(make(ro::kRetriable4xx)->wouldRetryResponse(response(409)));
  EXPECT_FALSE(make(ro::kRetriable4xx)->wouldRetryResponse(response(400)));
  policy_.retriable_status_codes = {418};
  EXPECT_TRUE(make(ro::kRetriableStatusCodes)->wouldRetryResponse(response(418)));
  EXPECT_FALSE(make(ro::k5xx)->wouldRetryResponse(response(418)));
  // An upstream Envoy that is overloaded is never retried; a rate-limited
  // answer only with envoy-ratelimited.
  auto overloaded = response(503);
  overloaded.set("x-envoy-overloaded", "true");
  EXPECT_FALSE(make(ro::k5xx)->wouldRetryResponse(overloaded));
  auto limited = response(503);
  limited.set("x-envoy-ratelimited", "true");
  EXPECT_FALSE(make(ro::k5xx)->wouldRetryResponse(limited));
  EXPECT_TRUE(make(ro::kEnvoyRateLimited)->wouldRetryResponse(limited));
  auto grpc = response(200);
  grpc.set("grpc-status", "14");
  EXPECT_TRUE(make(ro::kGrpcUnavailable)->wouldRetryResponse(grpc));
  EXPECT_FALSE(make(ro::kGrpcCancelled)->wouldRetryResponse(grpc));
}

TEST_F(RetryStateTest, HeaderListsCountOnlyWithTheirCondition) {
  http::HeaderMap req;
  req.set("x-envoy-retriable-status-codes", "429");
  req.set("x-envoy-retriable-header-names", " X-Again , x-other");
  auto with = make(ro::kRetriableStatusCodes | ro::kRetriableHeaders, req);
  EXPECT_TRUE(with->wouldRetryResponse(response(429)));
  auto again = response(200);
  again.set("x-again", "1");
  EXPECT_TRUE(with->wouldRetryResponse(again));
  auto without = make(ro::k5xx, req);
  EXPECT_FALSE(without->wouldRetryResponse(response(429)));
  EXPECT_FALSE(without->wouldRetryResponse(again));
}

TEST_F(RetryStateTest, FailureConditions) {
  EXPECT_TRUE(make(ro::kConnectFailure)->wouldRetryFailure(Failure::ConnectFailure, false));
  EXPECT_FALSE(make(ro::kConnectFailure)->wouldRetryFailure(Failure::Reset, true));
  for (uint32_t c : {ro::k5xx, ro::kGatewayError, ro::kReset}) {
    EXPECT_TRUE(make(c)->wouldRetryFailure(Failure::Reset, true));
    EXPECT_TRUE(make(c)->wouldRetryFailure(Failure::PerTryTimeout, true));
    EXPECT_TRUE(make(c)->wouldRetryFailure(Failure::ConnectFailure, false));
    EXPECT_FALSE(make(c)->wouldRetryFailure(Failure::Overflow, false)) << "overflow never";
  }
  EXPECT_TRUE(make(ro::kResetBeforeRequest)->wouldRetryFailure(Failure::Reset, false));
  EXPECT_FALSE(make(ro::kResetBeforeRequest)->wouldRetryFailure(Failure::Reset, true));
  EXPECT_FALSE(make(ro::kRetriable4xx)->wouldRetryFailure(Failure::Reset, true));
}

TEST_F(RetryStateTest, RetriesLeftBreakerAndSuccess) {
  policy_.num_retries = 2;
  auto s = make(ro::k5xx);
  int retried = 0;
  EXPECT_EQ(s->shouldRetry(false, [&] { ++retried; }), Status::No);
  EXPECT_EQ(s->shouldRetry(true, [&] { ++retried; }), Status::Yes);
  EXPECT_TRUE(s->retryPending());
  EXPECT_EQ(counter("upstream_rq_retry"), 1u);
  EXPECT_EQ(counter("upstream_rq_retry_backoff_exponential"), 1u);
  // A second retry while the first holds max_retries (1) overflows.
  auto other = make(ro::k5xx);
  EXPECT_EQ(other->shouldRetry(true, [] {}), Status::NoOverflow);
  EXPECT_EQ(counter("upstream_rq_retry_overflow"), 1u);
  // The retried attempt's answer is final: a success, and the breaker frees.
  EXPECT_EQ(s->shouldRetry(false, [] {}), Status::No);
  EXPECT_EQ(counter("upstream_rq_retry_success"), 1u);
  EXPECT_EQ(store_.gauge("cluster.c.circuit_breakers.default.rq_retry_open").value(), 0);
  EXPECT_EQ(s->shouldRetry(true, [] {}), Status::Yes);
  s->shouldRetry(false, [] {});
  EXPECT_EQ(s->shouldRetry(true, [] {}), Status::NoRetryLimitExceeded);
  EXPECT_EQ(counter("upstream_rq_retry_limit_exceeded"), 1u);
  EXPECT_EQ(retried, 0) << "the back-off timer never ran (no loop)";
}

TEST_F(RetryStateTest, MaxRetriesHeaderOverridesThePolicy) {
  http::HeaderMap req;
  req.set("x-envoy-max-retries", "5");
  EXPECT_EQ(make(ro::k5xx, req)->retriesRemaining(), 5u);
  req.set("x-envoy-max-retries", "lots");
  EXPECT_EQ(make(ro::k5xx, req)->retriesRemaining(), 1u);
}

TEST_F(RetryStateTest, RetriableRequestHeadersGateRetries) {
  envoy::config::route::v3::HeaderMatcher m;
  m.set_name(":method");
  m.mutable_string_match()->set_exact("GET");
  policy_.retriable_request_headers.push_back(*legate::router::HeaderMatcher::create(m, "m"));
  http::HeaderMap get;
  get.set(":method", "GET");
  http::HeaderMap post;
  post.set(":method", "POST");
  EXPECT_NE(make(ro::k5xx, get), nullptr);
  EXPECT_EQ(make(ro::k5xx, post), nullptr);
}

TEST_F(RetryStateTest, BackOffIsFullyJitteredExponentialAndCapped) {
  using std::chrono::milliseconds;
  const milliseconds base(25), max(250);
  // The ceiling for retry n is (2^n - 1) * base, capped at max.
  EXPECT_EQ(RetryState::backOff(1, base, max, 24).count(), 24);
  EXPECT_EQ(RetryState::backOff(1, base, max, 25).count(), 0);
  EXPECT_EQ(RetryState::backOff(2, base, max, 74).count(), 74);
  EXPECT_EQ(RetryState::backOff(2, base, max, 75).count(), 0);
  EXPECT_EQ(RetryState::backOff(3, base, max, 174).count(), 174);
  EXPECT_EQ(RetryState::backOff(10, base, max, 249).count(), 249);
  EXPECT_EQ(RetryState::backOff(10, base, max, 250).count(), 0);
  EXPECT_EQ(RetryState::backOff(64, base, max, ~0ull).count() < 250, true);
}

TEST(ShadowRequestTest, ShadowHostKeepsThePort) {
  EXPECT_EQ(ShadowRequest::shadowHost("svc"), "svc-shadow");
  EXPECT_EQ(ShadowRequest::shadowHost("svc.local:8080"), "svc.local-shadow:8080");
  EXPECT_EQ(ShadowRequest::shadowHost("[::1]:80"), "[::1]-shadow:80");
}

} // namespace
} // namespace legate::extensions::router
