#pragma once

// STRICT_DNS and LOGICAL_DNS discovery: the settings a cluster's proto gives,
// and the driver that resolves its names on the main thread and turns answers
// into the cluster's membership.
//
// STRICT_DNS: every lb_endpoint names a host; each answer address becomes a
// Host (with the endpoint's port, weight, priority, locality and health), and
// addresses that stay keep their Host object. LOGICAL_DNS: exactly one
// endpoint; the cluster has one host, the first answer; when the first answer
// changes a new Host replaces it, so new connections go to the latest address
// while in-flight requests finish on the old one.
//
// Thread and lifetime: DnsDiscovery lives on the main thread, owned by the
// ClusterManager, and must be destroyed before the cluster it updates.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "event/dispatcher.h"
#include "upstream/dns_resolver.h"
#include "upstream/host.h"

namespace envoy::config::cluster::v3 {
class Cluster;
}

namespace legate::upstream {

class Cluster;

struct DnsTarget {
  std::string hostname;
  uint32_t port = 0;
  uint32_t weight = 1;
  uint32_t priority = 0;
  std::shared_ptr<const Locality> locality; // Host::makeLocality
  uint32_t health_flags = 0; // from the endpoint's health_status
};

struct DnsClusterConfig {
  bool logical = false;
  std::vector<DnsTarget> targets;
  std::chrono::milliseconds refresh_rate{5000};   // dns_refresh_rate
  bool respect_ttl = false;                       // respect_dns_ttl
  DnsLookupFamily family = DnsLookupFamily::Auto; // dns_lookup_family
  // dns_failure_refresh_rate: jittered exponential back-off between these;
  // unset: failures retry at refresh_rate.
  std::optional<std::pair<std::chrono::milliseconds, std::chrono::milliseconds>> failure_backoff;
  DnsResolverSettings resolver;
  bool wait_for_warm = true; // wait_for_warm_on_init
};

// Reads the DNS settings of a STRICT_DNS / LOGICAL_DNS cluster; errors start
// with the field path under `where`.
absl::StatusOr<std::unique_ptr<DnsClusterConfig>>
parseDnsClusterConfig(const envoy::config::cluster::v3::Cluster& proto, const std::string& where);

class DnsDiscovery {
public:
  DnsDiscovery(Cluster& cluster, const DnsClusterConfig& config, event::Dispatcher& dispatcher,
               std::unique_ptr<DnsResolver> resolver);
  ~DnsDiscovery();

  // Resolves every name now; on_initialized runs once each has answered or
  // failed once.
  void start(std::function<void()> on_initialized);

private:
  struct Target {
    const DnsTarget* config;
    std::vector<HostConstSharedPtr> hosts;
    event::TimerPtr timer;
    bool resolved_once = false;
    uint32_t failures = 0;
  };
  void resolve(Target& t);
  void onResolved(Target& t, DnsResolver::Status status, std::vector<DnsAnswer> answers);
  std::chrono::milliseconds failureDelay(Target& t);
  HostConstSharedPtr makeHost(const DnsTarget& cfg, const network::Address& ip) const;

  Cluster& cluster_;
  const DnsClusterConfig& config_;
  event::Dispatcher& dispatcher_;
  std::unique_ptr<DnsResolver> resolver_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::function<void()> on_initialized_;
  size_t pending_initial_ = 0;
  uint64_t rng_state_;
};

} // namespace legate::upstream
