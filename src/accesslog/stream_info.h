#pragma once

// What happened on a connection (and, later, an HTTP stream): the facts access
// logs and stats are made of. Filled in by the filters on the worker, read at
// the end of the connection.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/loop_time.h"
#include "http/header_map.h"
#include "network/address.h"

namespace envoy::config::core::v3 {
class Metadata;
}

namespace legate::accesslog {

// Envoy's response flags, with their short names.
enum ResponseFlag : uint32_t {
  kNoHealthyUpstream = 1u << 0,           // UH
  kUpstreamConnectionFailure = 1u << 1,   // UF
  kUpstreamOverflow = 1u << 2,            // UO
  kNoRouteFound = 1u << 3,                // NR
  kUpstreamRetryLimitExceeded = 1u << 4,  // URX
  kNoClusterFound = 1u << 5,              // NC
  kDownstreamConnectionTermination = 1u << 6, // DC
  kUpstreamConnectionTermination = 1u << 7,   // UC
  kStreamIdleTimeout = 1u << 8,           // SI
  kDurationTimeout = 1u << 9,             // DT
  kUpstreamRequestTimeout = 1u << 10,     // UT
  kUpstreamRemoteReset = 1u << 11,        // UR
  kUpstreamProtocolError = 1u << 12,      // UPE
};

// "UF,URX" for the flags set, "-" for none.
std::string responseFlagsString(uint32_t flags);

// The bit for one of Envoy's response flag short names. Envoy names legate
// never sets (RL, UAEX, ...) give 0: valid in config, never matched. nullopt
// for a name Envoy does not know either.
std::optional<uint32_t> responseFlagFromName(std::string_view name);

struct StreamInfo {
  std::chrono::system_clock::time_point start_time = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point start_steady = loopNow();
  std::chrono::steady_clock::time_point end_steady{};
  // HTTP: when the request's end_stream was decoded (set by the connection
  // manager), when the first upstream response byte arrived (set by the
  // router), and when the last response byte was sent (end_steady is used).
  std::optional<std::chrono::steady_clock::time_point> last_request_rx;
  std::optional<std::chrono::steady_clock::time_point> first_upstream_rx;
  uint64_t connection_id = 0;
  uint64_t upstream_connection_id = 0; // 0: no upstream connection
  network::Address downstream_local;
  network::Address downstream_remote;
  network::Address upstream_host;
  network::Address upstream_local;
  // Names owned by what outlives every stream and connection that uses them:
  // a protocol's name (a literal), the cluster's own name (clusters live as
  // long as the configuration), the listener's filter chain's, the route's.
  // A name with no such owner goes through keep().
  std::string_view protocol;          // "" for raw TCP
  std::string_view upstream_protocol; // "" for raw TCP or no upstream
  std::string_view upstream_cluster;
  std::string_view filter_chain_name;
  std::string_view route_name; // "" if none or unnamed
  uint32_t response_code = 0;
  uint32_t response_flags = 0;
  // Upstream requests made (retries included); 0 = not recorded, in which case
  // %UPSTREAM_REQUEST_ATTEMPT_COUNT% derives 1/0 from upstream_host.
  uint32_t upstream_request_attempt_count = 0;
  // HTTP streams whose connection manager has tracing: the trace decision
  // (traced: sampled or forced; trace_service_forced: forced by
  // x-envoy-force-trace, what traceable_filter matches).
  bool traced = false;
  bool trace_service_forced = false;
  uint64_t bytes_received = 0; // from downstream
  uint64_t bytes_sent = 0;     // to downstream
  // HTTP: why the response code is what it is ("via_upstream", "route_not_found", ...).
  std::string response_code_details;
  // HTTP streams: the headers as they are when the stream ends (owned by the
  // stream, valid while it logs). Null for TCP connections.
  const http::HeaderMap* request_headers = nullptr;
  const http::HeaderMap* response_headers = nullptr;
  const http::HeaderMap* response_trailers = nullptr;

  // What most streams never set, allocated by its first writer (rare()), so
  // that each of the many streams in flight carries one pointer for it.
  struct Rare {
    // Why legate closed the connection (tcp_proxy).
    std::string termination_details;
    std::string upstream_transport_failure_reason;
    // The body of a local reply before local_reply_config formats it
    // (%LOCAL_REPLY_BODY%).
    std::string local_reply_body;
    // The trace id of the stream's span in hex (%TRACE_ID%; "" when there is
    // no span: no tracer, or TCP).
    std::string trace_id;
    // SNI from the downstream TLS handshake; "" without TLS.
    std::string requested_server_name;
    // Filters' dynamic metadata (%DYNAMIC_METADATA%, metadata_filter); null =
    // none. No filter in legate writes any yet.
    std::shared_ptr<const envoy::config::core::v3::Metadata> dynamic_metadata;
    // Storage for keep().
    std::string kept;
  };
  Rare& rare() {
    if (!rare_) rare_ = std::make_unique<Rare>();
    return *rare_;
  }
  // A rare text field ("" when unset), e.g. rareText(&Rare::trace_id).
  std::string_view rareText(std::string Rare::*field) const {
    return rare_ ? std::string_view(rare_.get()->*field) : std::string_view();
  }
  const envoy::config::core::v3::Metadata* dynamicMetadata() const {
    return rare_ ? rare_->dynamic_metadata.get() : nullptr;
  }
  // A copy of `name` that lives as long as this StreamInfo, for a view field
  // whose text has no longer-lived owner (one per StreamInfo: a cluster name
  // that names no cluster).
  std::string_view keep(std::string_view name) {
    Rare& r = rare();
    r.kept.assign(name.data(), name.size());
    return r.kept;
  }

  void setResponseFlag(ResponseFlag f) { response_flags |= f; }
  std::chrono::milliseconds duration() const;

private:
  std::unique_ptr<Rare> rare_;
};

} // namespace legate::accesslog
