#pragma once

// What a caller tells the load balancer about the request it picks a host
// for. The router filter (and tcp_proxy) pass one to Cluster::chooseHost();
// every hook has a neutral default, so a caller overrides only what it knows.
//
// Thread: used on the calling worker only, for the duration of chooseHost().

#include <cstdint>
#include <optional>
#include <string_view>

#include "network/address.h"

namespace legate::upstream {

class Host;

struct LoadBalancerContext {
  virtual ~LoadBalancerContext() = default;

  // The request's hash for consistent-hashing balancers (RING_HASH, MAGLEV);
  // nullopt lets them pick as if at random.
  virtual std::optional<uint64_t> computeHashKey() { return std::nullopt; }

  // Asked after each pick: true makes the balancer pick again (e.g. the retry
  // host predicate previous_hosts rejects a host already tried), at most
  // hostSelectionRetryCount() more times; the last pick is used regardless
  // (Envoy's host_selection_retry_max_attempts).
  virtual bool shouldSelectAnotherHost(const Host&) { return false; }
  virtual uint32_t hostSelectionRetryCount() const { return 0; }

  // The downstream peer (source-IP hashing, ORIGINAL_DST); nullptr if unknown.
  virtual const network::Address* downstreamRemoteAddress() const { return nullptr; }

  // The downstream connection's original destination when the original_dst
  // listener filter restored it (ORIGINAL_DST clusters); nullptr otherwise.
  virtual const network::Address* downstreamOriginalDestination() const { return nullptr; }

  // The request's first value of header `name` (lower case), if it has one
  // (ORIGINAL_DST's use_http_header). Valid while chooseHost() runs.
  virtual std::optional<std::string_view> requestHeader(std::string_view /*name*/) const {
    return std::nullopt;
  }
};

} // namespace legate::upstream
