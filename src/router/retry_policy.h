#pragma once

// A route's (or virtual host's) retry_policy and hedge_policy
// (envoy.config.route.v3.RetryPolicy / HedgePolicy), compiled once.
//
// Thread and lifetime: built on the main thread with the RouteConfig,
// immutable afterwards and shared by the routes that use it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "router/matchers.h"

namespace envoy::config::route::v3 {
class RetryPolicy;
class HedgePolicy;
}  // namespace envoy::config::route::v3

namespace legate::router {

// The retry_on conditions (Envoy's names in comments).
namespace retry_on {
inline constexpr uint32_t k5xx = 1u << 0;                   // 5xx
inline constexpr uint32_t kGatewayError = 1u << 1;          // gateway-error
inline constexpr uint32_t kConnectFailure = 1u << 2;        // connect-failure
inline constexpr uint32_t kRetriable4xx = 1u << 3;          // retriable-4xx
inline constexpr uint32_t kRefusedStream = 1u << 4;         // refused-stream
inline constexpr uint32_t kRetriableStatusCodes = 1u << 5;  // retriable-status-codes
inline constexpr uint32_t kReset = 1u << 6;                 // reset
inline constexpr uint32_t kRetriableHeaders = 1u << 7;      // retriable-headers
inline constexpr uint32_t kEnvoyRateLimited = 1u << 8;      // envoy-ratelimited
inline constexpr uint32_t kResetBeforeRequest = 1u << 9;    // reset-before-request
inline constexpr uint32_t kHttp3PostConnectFailure = 1u << 10;  // http3-post-connect-failure
// gRPC (x-envoy-retry-grpc-on and retry_on): the response's grpc-status.
inline constexpr uint32_t kGrpcCancelled = 1u << 11;          // cancelled
inline constexpr uint32_t kGrpcDeadlineExceeded = 1u << 12;   // deadline-exceeded
inline constexpr uint32_t kGrpcResourceExhausted = 1u << 13;  // resource-exhausted
inline constexpr uint32_t kGrpcUnavailable = 1u << 14;        // unavailable
inline constexpr uint32_t kGrpcInternal = 1u << 15;           // internal
}  // namespace retry_on

// Parses a comma-separated retry_on list. Unknown names go to *unknown (the
// first one), if given; the known ones are still returned.
uint32_t parseRetryOn(std::string_view list, std::string* unknown = nullptr);

// A parsed comma-separated list of status codes (x-envoy-retriable-status-codes);
// entries that are not numbers are skipped, as Envoy does.
std::vector<uint32_t> parseStatusCodeList(std::string_view list);

struct RetryPolicy {
  static absl::StatusOr<std::shared_ptr<const RetryPolicy>> create(
      const envoy::config::route::v3::RetryPolicy& proto, const std::string& path);

  uint32_t retry_on = 0;
  uint32_t num_retries = 1;  // Envoy's default once a policy exists
  std::chrono::milliseconds per_try_timeout{0};       // 0 = none
  std::chrono::milliseconds per_try_idle_timeout{0};  // 0 = none
  std::chrono::milliseconds base_interval{25};
  std::chrono::milliseconds max_interval{250};  // default 10x base_interval
  std::vector<uint32_t> retriable_status_codes;
  // A response matching any of these is retriable (retriable-headers).
  std::vector<HeaderMatcher> retriable_headers;
  // When non-empty, only requests matching one of these are retried.
  std::vector<HeaderMatcher> retriable_request_headers;
  // host_selection_retry_max_attempts (Envoy's default: one more pick).
  uint32_t host_selection_max_attempts = 1;
  // retry_host_predicate envoy.retry_host_predicates.previous_hosts.
  bool previous_hosts = false;
};

struct HedgePolicy {
  static absl::StatusOr<std::shared_ptr<const HedgePolicy>> create(
      const envoy::config::route::v3::HedgePolicy& proto, const std::string& path);
  bool hedge_on_per_try_timeout = false;
};

}  // namespace legate::router
