#include "accesslog/stream_info.h"

namespace legate::accesslog {

std::string responseFlagsString(uint32_t flags) {
  static const std::pair<uint32_t, const char*> kNames[] = {
      {kDownstreamConnectionTermination, "DC"},
      {kNoHealthyUpstream, "UH"},
      {kUpstreamConnectionFailure, "UF"},
      {kUpstreamRequestTimeout, "UT"},
      {kUpstreamConnectionTermination, "UC"},
      {kUpstreamOverflow, "UO"},
      {kNoRouteFound, "NR"},
      {kUpstreamRetryLimitExceeded, "URX"},
      {kUpstreamRemoteReset, "UR"},
      {kNoClusterFound, "NC"},
      {kStreamIdleTimeout, "SI"},
      {kDurationTimeout, "DT"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if (flags & bit) {
      if (!out.empty()) out += ',';
      out += name;
    }
  }
  return out.empty() ? "-" : out;
}

std::chrono::milliseconds StreamInfo::duration() const {
  const auto end = end_steady == std::chrono::steady_clock::time_point{}
                       ? std::chrono::steady_clock::now()
                       : end_steady;
  return std::chrono::duration_cast<std::chrono::milliseconds>(end - start_steady);
}

} // namespace legate::accesslog
