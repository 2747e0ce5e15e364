// ORIGINAL_DST clusters (lb_policy CLUSTER_PROVIDED): the host is the request's
// original destination, made on demand.
//
// Workers pick without locks: a destination already in the adopted snapshot
// (HostSnapshot::by_address) is used as it is; a new one becomes a Host on the
// worker at once and is posted to the main thread, which adds it to the
// membership and publishes a new snapshot. Until the worker adopts that
// snapshot it keeps its new hosts in WorkerLbState::odst_pending, so a burst of
// requests to one new destination shares one host; an entry goes once the main
// thread has handled it (Host::seenByMain) and the worker adopts a newer
// snapshot, which then has it if it is still a member. Two workers may create a
// host for the same destination at the same time: the main thread keeps the
// first and reports the other removed, which drains whatever pooled
// connections it made. Every cleanup_interval the main thread removes the
// hosts no pick used since the previous sweep (Envoy's rule); requests in
// flight keep their host, its pooled connections drain.

#include <algorithm>
#include <charconv>

#include "upstream/cluster.h"

namespace legate::upstream {
namespace {

// "10.1.2.3:80" or "[2001:db8::1]:80" (Envoy's form of the header value).
std::optional<network::Address> parseIpAndPort(std::string_view text) {
  std::string_view ip;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    ip = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    ip = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  uint32_t value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return std::nullopt;
  }
  auto addr = network::Address::fromIpPort(ip, value);
  if (!addr.ok()) return std::nullopt;
  return *addr;
}

} // namespace

HostConstSharedPtr Cluster::chooseOriginalDst(WorkerLbState& st, LoadBalancerContext* ctx) const {
  if (ctx == nullptr) return nullptr;
  std::optional<network::Address> dst;
  if (odst_->use_http_header) {
    if (auto value = ctx->requestHeader(odst_->header_name)) {
      dst = parseIpAndPort(*value);
      if (!dst) {
        stats_->original_dst_host_invalid.inc();
        return nullptr;
      }
    }
  }
  if (!dst) {
    // Only an address the original_dst listener filter (or use_original_dst)
    // restored; the socket's own address would loop back to legate.
    const network::Address* restored = ctx->downstreamOriginalDestination();
    if (restored == nullptr) return nullptr;
    dst = *restored;
  }
  if (odst_->port_override) dst->setPort(*odst_->port_override);

  const std::string key = dst->asString();
  if (const auto* by_address = st.snapshot->by_address.get()) {
    if (auto it = by_address->find(key); it != by_address->end()) {
      it->second->markUsed();
      return it->second;
    }
  }
  if (!st.odst_pending) st.odst_pending = std::make_unique<std::vector<HostConstSharedPtr>>();
  std::vector<HostConstSharedPtr>& pending = *st.odst_pending;
  for (const auto& h : pending) {
    if (h->address() == *dst) {
      h->markUsed();
      return h;
    }
  }
  auto host = std::make_shared<Host>(*dst, 1);
  if (pending.size() >= kMaxPendingOriginalDstHosts) pending.clear();
  pending.push_back(host);
  if (post_to_main_) {
    Cluster* self = const_cast<Cluster*>(this); // membership changes on the main thread only
    (*post_to_main_)([self, host] { self->addOriginalDstHost(host); });
  }
  return host;
}

void Cluster::addOriginalDstHost(HostConstSharedPtr host) {
  // Marked seen only after the snapshot with it is published, so a worker that
  // drops its pending entry finds the host in the snapshot it adopts.
  for (const auto& m : members_) {
    if (m->address() == host->address()) {
      if (m != host) {
        // A duplicate: a new snapshot makes its worker drop it (see chooseHost),
        // then its pools drain.
        m->markUsed();
        host->markSeenByMain();
        publish();
        if (on_removed_) on_removed_({std::move(host)});
      }
      return;
    }
  }
  auto hosts = members_;
  hosts.push_back(host);
  setHosts(std::move(hosts));
  host->markSeenByMain();
}

void Cluster::cleanupOriginalDstHosts() {
  std::vector<HostConstSharedPtr> keep;
  for (const auto& h : members_) {
    if (h->takeUsed()) keep.push_back(h);
  }
  if (keep.size() != members_.size()) setHosts(std::move(keep));
}

} // namespace legate::upstream
