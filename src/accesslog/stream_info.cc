#include "accesslog/stream_info.h"

#include "common/loop_time.h"

#include <utility>

namespace legate::accesslog {

namespace {
const std::pair<uint32_t, const char*> kFlagNames[] = {
      {kDownstreamConnectionTermination, "DC"},
      {kNoHealthyUpstream, "UH"},
      {kUpstreamConnectionFailure, "UF"},
      {kUpstreamRequestTimeout, "UT"},
      {kUpstreamConnectionTermination, "UC"},
      {kUpstreamOverflow, "UO"},
      {kNoRouteFound, "NR"},
      {kUpstreamRetryLimitExceeded, "URX"},
      {kUpstreamRemoteReset, "UR"},
      {kUpstreamProtocolError, "UPE"},
      {kNoClusterFound, "NC"},
      {kStreamIdleTimeout, "SI"},
      {kDurationTimeout, "DT"},
};
} // namespace

std::optional<uint32_t> responseFlagFromName(std::string_view name) {
  for (const auto& [bit, n] : kFlagNames) {
    if (name == n) return bit;
  }
  // Envoy's flags legate does not produce (yet).
  static const char* const kEnvoyOnly[] = {"LH",  "LR",   "DI",   "FI",   "RL", "UAEX",
                                           "RLSE", "IH",  "DPE",  "UMSDR", "RFCF", "NFCF",
                                           "OM",   "DF",   "DO",   "DR"};
  for (const char* n : kEnvoyOnly) {
    if (name == n) return 0u;
  }
  return std::nullopt;
}

std::string responseFlagsString(uint32_t flags) {
  std::string out;
  for (const auto& [bit, name] : kFlagNames) {
    if (flags & bit) {
      if (!out.empty()) out += ',';
      out += name;
    }
  }
  return out.empty() ? "-" : out;
}

std::chrono::milliseconds StreamInfo::duration() const {
  const auto end = end_steady == std::chrono::steady_clock::time_point{}
                       ? loopNow()
                       : end_steady;
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - start_steady);
}

} // namespace legate::accesslog
