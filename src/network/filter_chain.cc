#include "network/filter_chain.h"

#include <set>

#include "config/unsupported.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/listener/v3/listener_components.pb.h"

namespace legate::network {
namespace {

using envoy::config::listener::v3::FilterChainMatch;

absl::StatusOr<std::unique_ptr<FilterChain>>
buildChain(const envoy::config::listener::v3::FilterChain& proto, const std::string& path,
           const NetworkFilterResolver& resolver) {
  auto chain = std::make_unique<FilterChain>();
  chain->name = proto.name();
  if (auto st = config::rejectUnsupportedFields(
          proto, {"transport_socket", "transport_socket_connect_timeout", "filter_chain_match_name"},
          path);
      !st.ok()) {
    return st;
  }
  const FilterChainMatch& m = proto.filter_chain_match();
  if (auto st = config::rejectUnsupportedFields(m, {"server_names", "application_protocols"},
                                                path + ".filter_chain_match");
      !st.ok()) {
    return st;
  }
  if (!m.transport_protocol().empty() && m.transport_protocol() != "raw_buffer") {
    return absl::InvalidArgumentError(path + ".filter_chain_match.transport_protocol: '" +
                                      m.transport_protocol() +
                                      "' is not implemented by legate yet (raw_buffer is)");
  }
  if (m.has_destination_port()) {
    chain->destination_port = m.destination_port().value();
  }
  auto ranges = [&](const auto& list, const char* field,
                    std::vector<CidrRange>& out) -> absl::Status {
    for (int i = 0; i < list.size(); ++i) {
      auto r = CidrRange::fromProto(list[i]);
      if (!r.ok()) {
        return absl::InvalidArgumentError(path + ".filter_chain_match." + field + "[" +
                                          std::to_string(i) + "]: " +
                                          std::string(r.status().message()));
      }
      out.push_back(*r);
    }
    return absl::OkStatus();
  };
  if (auto st = ranges(m.prefix_ranges(), "prefix_ranges", chain->prefix_ranges); !st.ok()) {
    return st;
  }
  if (auto st = ranges(m.direct_source_prefix_ranges(), "direct_source_prefix_ranges",
                       chain->direct_source_prefix_ranges);
      !st.ok()) {
    return st;
  }
  if (auto st = ranges(m.source_prefix_ranges(), "source_prefix_ranges",
                       chain->source_prefix_ranges);
      !st.ok()) {
    return st;
  }
  switch (m.source_type()) {
  case FilterChainMatch::SAME_IP_OR_LOOPBACK:
    chain->source_type = FilterChain::SourceType::SameIpOrLoopback;
    break;
  case FilterChainMatch::EXTERNAL:
    chain->source_type = FilterChain::SourceType::External;
    break;
  default:
    break;
  }
  chain->source_ports.assign(m.source_ports().begin(), m.source_ports().end());
  for (int i = 0; i < proto.filters_size(); ++i) {
    auto cb = resolver(proto.filters(i), path + ".filters[" + std::to_string(i) + "]",
                       chain->name);
    if (!cb.ok()) {
      return cb.status();
    }
    chain->factories.push_back(std::move(*cb));
  }
  return chain;
}

// -1: does not match; 0: the chain has no such criterion; >0: matched, higher
// is more specific.
int longestPrefix(const std::vector<CidrRange>& ranges, const Address& addr) {
  if (ranges.empty()) {
    return 0;
  }
  int best = -1;
  for (const auto& r : ranges) {
    if (r.contains(addr)) {
      best = std::max(best, static_cast<int>(r.prefixLen()) + 1);
    }
  }
  return best;
}

bool isLoopbackOrSame(const Address& local, const Address& remote) {
  const std::string rip = remote.ip();
  if (rip == local.ip()) {
    return true;
  }
  if (remote.family() == AF_INET) {
    return rip.rfind("127.", 0) == 0;
  }
  return rip == "::1";
}

} // namespace

absl::StatusOr<std::unique_ptr<FilterChainManager>>
FilterChainManager::create(const envoy::config::listener::v3::Listener& listener,
                           const std::string& where, const NetworkFilterResolver& resolver) {
  auto mgr = std::make_unique<FilterChainManager>();
  std::set<std::string> seen_matches;
  for (int i = 0; i < listener.filter_chains_size(); ++i) {
    const std::string path = where + ".filter_chains[" + std::to_string(i) + "]";
    const auto& proto = listener.filter_chains(i);
    std::string key;
    proto.filter_chain_match().SerializeToString(&key);
    if (!seen_matches.insert(key).second) {
      return absl::InvalidArgumentError(
          path + ": another filter chain of this listener has the same filter_chain_match");
    }
    auto chain = buildChain(proto, path, resolver);
    if (!chain.ok()) {
      return chain.status();
    }
    mgr->chains_.push_back(std::move(*chain));
  }
  if (listener.has_default_filter_chain()) {
    auto chain = buildChain(listener.default_filter_chain(), where + ".default_filter_chain",
                            resolver);
    if (!chain.ok()) {
      return chain.status();
    }
    mgr->default_chain_ = std::move(*chain);
  }
  if (mgr->chains_.empty() && !mgr->default_chain_) {
    return absl::InvalidArgumentError(where +
                                      ": a listener needs filter_chains or a default_filter_chain");
  }
  return mgr;
}

const FilterChain* FilterChainManager::find(const Address& local, const Address& remote) const {
  std::vector<const FilterChain*> candidates;
  candidates.reserve(chains_.size());
  for (const auto& c : chains_) {
    candidates.push_back(c.get());
  }
  // Narrow by one criterion: keep the most specific matches, else the wildcards.
  auto narrow = [&candidates](const std::function<int(const FilterChain&)>& score) {
    int best = -1;
    for (const auto* c : candidates) {
      best = std::max(best, score(*c));
    }
    std::vector<const FilterChain*> kept;
    if (best >= 0) {
      for (const auto* c : candidates) {
        if (score(*c) == best) {
          kept.push_back(c);
        }
      }
    }
    candidates.swap(kept);
  };
  narrow([&](const FilterChain& c) {
    if (!c.destination_port) return 0;
    return *c.destination_port == local.port() ? 1 : -1;
  });
  narrow([&](const FilterChain& c) { return longestPrefix(c.prefix_ranges, local); });
  narrow([&](const FilterChain& c) { return longestPrefix(c.direct_source_prefix_ranges, remote); });
  narrow([&](const FilterChain& c) {
    switch (c.source_type) {
    case FilterChain::SourceType::Any:
      return 0;
    case FilterChain::SourceType::SameIpOrLoopback:
      return isLoopbackOrSame(local, remote) ? 1 : -1;
    case FilterChain::SourceType::External:
      return isLoopbackOrSame(local, remote) ? -1 : 1;
    }
    return 0;
  });
  narrow([&](const FilterChain& c) { return longestPrefix(c.source_prefix_ranges, remote); });
  narrow([&](const FilterChain& c) {
    if (c.source_ports.empty()) return 0;
    for (uint32_t p : c.source_ports) {
      if (p == remote.port()) return 1;
    }
    return -1;
  });
  if (!candidates.empty()) {
    return candidates.front();
  }
  return default_chain_.get();
}

} // namespace legate::network
