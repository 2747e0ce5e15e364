#pragma once

// Asynchronous DNS resolution with c-ares on the main thread's dispatcher.
//
// Thread and lifetime: created, used and destroyed on the thread of the
// dispatcher it is given (the main thread). Its sockets are watched with
// level-triggered libevent events on that dispatcher and its timeouts with a
// dispatcher timer, so resolution never blocks the loop. Destroying the
// resolver drops every outstanding query without calling its callback.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "event/dispatcher.h"
#include "network/address.h"

struct ares_channeldata;
struct ares_addrinfo;
struct event;

namespace legate::upstream {

// envoy.config.cluster.v3.Cluster.DnsLookupFamily.
enum class DnsLookupFamily { V4Only, V6Only, Auto, V4Preferred, All };

struct DnsResolverSettings {
  std::vector<network::Address> resolvers; // empty: the system's (/etc/resolv.conf)
  bool use_tcp = false;                    // dns_resolver_options.use_tcp_for_dns_lookups
  bool no_search = false;                  // dns_resolver_options.no_default_search_domain
};

struct DnsAnswer {
  network::Address address; // port 0
  std::chrono::seconds ttl;
};

class DnsResolver {
public:
  enum class Status { Success, Failure };
  // Success with no answers means the name has no address of the family
  // (NXDOMAIN / NODATA); Failure means the lookup itself failed (timeout,
  // refused, bad server) and the previous answer should stand.
  using Callback = std::function<void(Status, std::vector<DnsAnswer>)>;

  static absl::StatusOr<std::unique_ptr<DnsResolver>> create(event::Dispatcher& dispatcher,
                                                            const DnsResolverSettings& settings);
  ~DnsResolver();

  // AUTO asks for IPv6 and falls back to IPv4 when that gives nothing;
  // V4_PREFERRED the other way round; ALL asks for both. The callback may run
  // before resolve() returns (IP literals).
  void resolve(const std::string& name, DnsLookupFamily family, Callback cb);

private:
  struct Query;
  struct SocketWatch;
  explicit DnsResolver(event::Dispatcher& dispatcher);
  void startLookup(Query* q, int family);
  void onLookupDone(Query* q, int status, ares_addrinfo* result);
  void onSocketState(int fd, bool readable, bool writable);
  void rearmTimer();

  event::Dispatcher& dispatcher_;
  ares_channeldata* channel_ = nullptr;
  std::vector<std::unique_ptr<SocketWatch>> watches_;
  event::TimerPtr timer_;
  bool destroying_ = false;
};

} // namespace legate::upstream
