#include "extensions/filters/network/tcp_proxy/config.h"

#include "common/random.h"
#include "config/unsupported.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "google/protobuf/util/time_util.h"

namespace legate::extensions::tcp_proxy {

using google::protobuf::util::TimeUtil;

TcpProxyStats::TcpProxyStats(stats::Scope s)
    : downstream_cx_total(s.counter("downstream_cx_total")),
      downstream_cx_no_route(s.counter("downstream_cx_no_route")),
      downstream_cx_tx_bytes_total(s.counter("downstream_cx_tx_bytes_total")),
      downstream_cx_tx_bytes_buffered(s.gauge("downstream_cx_tx_bytes_buffered")),
      downstream_cx_rx_bytes_total(s.counter("downstream_cx_rx_bytes_total")),
      downstream_cx_rx_bytes_buffered(s.gauge("downstream_cx_rx_bytes_buffered")),
      downstream_flow_control_paused_reading_total(
          s.counter("downstream_flow_control_paused_reading_total")),
      downstream_flow_control_resumed_reading_total(
          s.counter("downstream_flow_control_resumed_reading_total")),
      idle_timeout(s.counter("idle_timeout")),
      max_downstream_connection_duration(s.counter("max_downstream_connection_duration")),
      upstream_flush_total(s.counter("upstream_flush_total")),
      upstream_flush_active(s.gauge("upstream_flush_active")) {}

absl::StatusOr<TcpProxyConfigConstSharedPtr>
TcpProxyConfig::create(const envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy& proto,
                       const std::string& path, const upstream::ClusterManager& cm,
                       stats::Store& store, std::string filter_chain_name) {
  using TcpProxy = envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"on_demand", "metadata_match", "downstream_idle_timeout", "upstream_idle_timeout",
           "hash_policy", "tunneling_config", "access_log_flush_interval",
           "flush_access_log_on_connected", "access_log_options"},
          path);
      !st.ok()) {
    return st;
  }
  std::shared_ptr<TcpProxyConfig> c(new TcpProxyConfig(cm));
  c->filter_chain_name_ = std::move(filter_chain_name);
  c->stats_ = std::make_unique<TcpProxyStats>(stats::Scope(store, "tcp." + proto.stat_prefix() + "."));
  if (proto.cluster_specifier_case() == TcpProxy::kCluster) {
    if (cm.get(proto.cluster()) == nullptr) {
      return absl::InvalidArgumentError(path + ".cluster: unknown cluster '" + proto.cluster() +
                                        "' (not in static_resources.clusters)");
    }
    c->clusters_.push_back({proto.cluster(), 1});
    c->total_weight_ = 1;
  } else if (proto.cluster_specifier_case() == TcpProxy::kWeightedClusters) {
    const auto& wc = proto.weighted_clusters().clusters();
    for (int i = 0; i < wc.size(); ++i) {
      const std::string p = path + ".weighted_clusters.clusters[" + std::to_string(i) + "]";
      if (wc[i].has_metadata_match()) {
        return absl::InvalidArgumentError(p + ".metadata_match: not implemented by legate yet");
      }
      if (cm.get(wc[i].name()) == nullptr) {
        return absl::InvalidArgumentError(p + ".name: unknown cluster '" + wc[i].name() + "'");
      }
      c->total_weight_ += wc[i].weight();
      c->clusters_.push_back({wc[i].name(), c->total_weight_});
    }
  } else {
    return absl::InvalidArgumentError(path + ": one of 'cluster' or 'weighted_clusters' is required");
  }
  if (c->total_weight_ == 0) {
    return absl::InvalidArgumentError(path + ".weighted_clusters: total weight must be > 0");
  }
  if (proto.has_max_connect_attempts()) {
    c->max_connect_attempts_ = proto.max_connect_attempts().value();
  }
  if (proto.has_idle_timeout()) {
    c->idle_timeout_ = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(proto.idle_timeout()));
  }
  if (proto.has_max_downstream_connection_duration()) {
    c->max_duration_ = std::chrono::milliseconds(
        TimeUtil::DurationToMilliseconds(proto.max_downstream_connection_duration()));
  }
  auto logs = accesslog::createAll(proto.access_log(), path + ".access_log", store);
  if (!logs.ok()) {
    return logs.status();
  }
  c->access_logs_ = std::move(*logs);
  return c;
}

const std::string& TcpProxyConfig::pickCluster() const {
  if (clusters_.size() == 1) {
    return clusters_.front().name;
  }
  thread_local std::minstd_rand rng{randomSeed()};
  const uint64_t r = rng() % total_weight_;
  for (const auto& wc : clusters_) {
    if (r < wc.cumulative_weight) {
      return wc.name;
    }
  }
  return clusters_.back().name;
}

} // namespace legate::extensions::tcp_proxy
