#pragma once

// A route's hash_policy: how a request's hash for consistent-hashing load
// balancers (RING_HASH, MAGLEV) is computed, as Envoy does it.
//
// Policies are tried in order; each that yields a value folds it into the
// hash (rotate left by one, xor); a `terminal` policy that yielded a value
// ends the walk. A request no policy yields a value for has no hash (the
// balancer then picks at random).
//
// Thread: built on the main thread with the route table, then immutable.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "http/header_map.h"
#include "network/address.h"

namespace envoy::config::route::v3 {
class RouteAction_HashPolicy;
}

namespace legate::router {

class HashPolicy {
public:
  using Proto = envoy::config::route::v3::RouteAction_HashPolicy;
  static absl::StatusOr<std::unique_ptr<HashPolicy>>
  create(const google::protobuf::RepeatedPtrField<Proto>& protos, const std::string& path);

  // A cookie policy with a ttl whose cookie is missing generates one: this is
  // called with the Set-Cookie header value to add to the response.
  using SetCookie = std::function<void(std::string set_cookie_value)>;

  std::optional<uint64_t> generateHash(const http::HeaderMap& headers,
                                       const network::Address* downstream_remote,
                                       const SetCookie& set_cookie) const;

private:
  struct Entry {
    enum class Kind { Header, Cookie, SourceIp, QueryParameter, FilterState } kind;
    std::string name; // header (lower case), cookie, query parameter or filter state key
    std::optional<std::chrono::seconds> cookie_ttl;
    std::string cookie_path;
    bool terminal = false;
  };
  std::optional<uint64_t> evaluate(const Entry& e, const http::HeaderMap& headers,
                                   const network::Address* remote,
                                   const SetCookie& set_cookie) const;
  std::vector<Entry> entries_;
};

// The value of cookie `name` in the request's Cookie headers, if present.
std::optional<std::string_view> findCookie(const http::HeaderMap& headers, std::string_view name);

} // namespace legate::router
