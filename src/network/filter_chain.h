#pragma once

// A listener's filter chains and filter_chain_match selection.
//
// Built on the main thread, shared immutably with workers. Selection follows
// Envoy's order of criteria: destination port, destination IP, (server names,
// transport protocol and application protocols come with TLS), direct source
// IP, source type, source IP, source port; at each step the most specific
// match wins and chains without that criterion are the fallback.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/address.h"

namespace envoy::config::listener::v3 {
class Listener;
class Filter;
class FilterChain;
} // namespace envoy::config::listener::v3

namespace legate::network {

class Connection;

// Adds one network filter to a new connection (runs on the worker).
using NetworkFilterFactoryCb = std::function<void(Connection&)>;

// Turns one listener filter entry into its factory; `path` is for errors,
// `chain_name` is the name of the filter chain it is in (%FILTER_CHAIN_NAME%).
using NetworkFilterResolver = std::function<absl::StatusOr<NetworkFilterFactoryCb>(
    const envoy::config::listener::v3::Filter& filter, const std::string& path,
    const std::string& chain_name)>;

struct FilterChain {
  std::string name;
  std::vector<NetworkFilterFactoryCb> factories;

  // Match criteria (empty = wildcard).
  std::optional<uint32_t> destination_port;
  std::vector<CidrRange> prefix_ranges;
  std::vector<CidrRange> direct_source_prefix_ranges;
  enum class SourceType { Any, SameIpOrLoopback, External } source_type = SourceType::Any;
  std::vector<CidrRange> source_prefix_ranges;
  std::vector<uint32_t> source_ports;
};

class FilterChainManager {
public:
  static absl::StatusOr<std::unique_ptr<FilterChainManager>>
  create(const envoy::config::listener::v3::Listener& listener, const std::string& where,
         const NetworkFilterResolver& resolver);

  // The chain for a connection, or nullptr (then the connection is refused).
  const FilterChain* find(const Address& local, const Address& remote) const;
  const std::vector<std::unique_ptr<FilterChain>>& chains() const { return chains_; }

private:
  std::vector<std::unique_ptr<FilterChain>> chains_;
  std::unique_ptr<FilterChain> default_chain_;
};

} // namespace legate::network
