#pragma once

// The http_connection_manager's configuration: built once on the main thread
// from envoy.extensions.filters.network.http_connection_manager.v3
// .HttpConnectionManager, shared immutably by every connection.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "accesslog/access_log.h"
#include "accesslog/filter.h"
#include "accesslog/formatter.h"
#include "http/codec.h"
#include "http/filter.h"
#include "network/connection_stats.h"
#include "stats/stats.h"
#include "tracing/custom_tag.h"
#include "tracing/decision.h"
#include "tracing/span.h"

namespace legate::router {
class RouteConfig;
}

namespace legate::http {

// Envoy's http.<stat_prefix>.* stats.
struct ConnectionManagerStats {
  explicit ConnectionManagerStats(stats::Scope scope);
  stats::Counter& downstream_cx_total;
  stats::Gauge& downstream_cx_active;
  stats::Counter& downstream_cx_http1_total;
  stats::Gauge& downstream_cx_http1_active;
  stats::Counter& downstream_cx_upgrades_total;
  stats::Gauge& downstream_cx_upgrades_active;
  stats::Counter& downstream_cx_destroy;
  stats::Counter& downstream_cx_destroy_remote;
  stats::Counter& downstream_cx_destroy_local;
  stats::Counter& downstream_cx_destroy_active_rq;
  stats::Counter& downstream_cx_protocol_error;
  stats::Counter& downstream_cx_idle_timeout;
  stats::Counter& downstream_cx_delayed_close_timeout;
  stats::Counter& downstream_cx_max_duration_reached;
  stats::Counter& downstream_cx_max_requests_reached;
  stats::Counter& downstream_cx_drain_close;
  stats::Counter& downstream_cx_rx_bytes_total;
  stats::Gauge& downstream_cx_rx_bytes_buffered;
  stats::Counter& downstream_cx_tx_bytes_total;
  stats::Gauge& downstream_cx_tx_bytes_buffered;
  // The four above, as every downstream connection's byte counters.
  network::ConnectionStats connection{&downstream_cx_rx_bytes_total,
                                      &downstream_cx_rx_bytes_buffered,
                                      &downstream_cx_tx_bytes_total,
                                      &downstream_cx_tx_bytes_buffered};
  stats::Histogram& downstream_cx_length_ms;
  stats::Counter& downstream_rq_total;
  stats::Counter& downstream_rq_http1_total;
  stats::Gauge& downstream_rq_active;
  stats::Counter& downstream_rq_completed;
  stats::Counter& downstream_rq_1xx;
  stats::Counter& downstream_rq_2xx;
  stats::Counter& downstream_rq_3xx;
  stats::Counter& downstream_rq_4xx;
  stats::Counter& downstream_rq_5xx;
  stats::Counter& downstream_rq_rx_reset;
  stats::Counter& downstream_rq_tx_reset;
  stats::Counter& downstream_rq_timeout;
  stats::Counter& downstream_rq_idle_timeout;
  stats::Counter& downstream_rq_header_timeout;
  stats::Counter& downstream_rq_too_large;
  stats::Counter& downstream_rq_redirected_with_normalized_path;
  stats::Counter& downstream_rq_response_before_rq_complete;
  stats::Counter& downstream_flow_control_paused_reading_total;
  stats::Counter& downstream_flow_control_resumed_reading_total;
  stats::Counter& downstream_rq_rejected_via_ip_detection;
  stats::Histogram& downstream_rq_time;
  // Router stats share the prefix in Envoy (http.<prefix>.no_route, ...).
  stats::Counter& no_route;
  stats::Counter& no_cluster;
  stats::Counter& rq_redirect;
  stats::Counter& rq_direct_response;
  stats::Counter& rq_total;
  stats::Counter& rq_reset_after_downstream_response_started;
};

// HttpConnectionManager.tracing: how requests are sampled and what their spans
// say. tracer null: decisions are made and counted, no spans (Envoy's null tracer).
struct TracingConfig {
  using CustomTag = tracing::CustomTag;
  tracing::TracerSharedPtr tracer;
  tracing::Sampling sampling;
  // The listener's traffic_direction is OUTBOUND: spans are "egress".
  bool egress = false;
  // spawn_upstream_span: a CLIENT span per upstream attempt (the router's).
  bool spawn_upstream_span = false;
  uint32_t max_path_tag_length = 256;
  std::vector<CustomTag> custom_tags;
  std::unique_ptr<tracing::DecisionStats> stats; // http.<prefix>.tracing.*

  // custom_tags onto span, with the request's headers (may be null), merged
  // with the tags of the route's tracing (may be null; its tags win by name).
  void applyCustomTags(tracing::Span& span, const HeaderMap* request_headers,
                       const tracing::CustomTags* route_tags = nullptr) const {
    tracing::applyCustomTags(span, request_headers, custom_tags, route_tags);
  }
};

struct ConnectionManagerConfig {
  enum class CodecType { Auto, Http1 };
  enum class ServerHeaderTransformation { Overwrite, AppendIfAbsent, PassThrough };
  enum class EscapedSlashesAction { KeepUnchanged, RejectRequest, UnescapeAndRedirect, UnescapeAndForward };

  std::string stat_prefix;
  std::string filter_chain_name; // of the listener's chain this manager is in
  std::unique_ptr<ConnectionManagerStats> stats;
  CodecType codec_type = CodecType::Auto;
  CodecSettings codec_settings;
  std::shared_ptr<const router::RouteConfig> route_config;
  std::vector<HttpFilterFactoryCb> filter_factories;
  std::vector<accesslog::AccessLogSharedPtr> access_logs;

  std::string server_name = "legate";
  ServerHeaderTransformation server_header_transformation = ServerHeaderTransformation::Overwrite;
  bool generate_request_id = true;
  bool preserve_external_request_id = false;
  bool always_set_request_id_in_response = false;
  bool use_remote_address = false;
  uint32_t xff_num_trusted_hops = 0;
  bool skip_xff_append = false;
  std::string via;
  bool proxy_100_continue = false;
  // Safe default (DESIGN.md §9): normalize unless the config says otherwise.
  bool normalize_path = true;
  bool merge_slashes = false;
  EscapedSlashesAction escaped_slashes = EscapedSlashesAction::KeepUnchanged;

  std::chrono::milliseconds stream_idle_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds request_timeout{0};
  std::chrono::milliseconds request_headers_timeout{0};
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)};
  std::chrono::milliseconds max_connection_duration{0};
  std::chrono::milliseconds drain_timeout{5000};
  // Grace for flushing the last bytes when legate closes a connection: a peer
  // that reads nothing for this long is cut off (0 = wait for the flush forever).
  std::chrono::milliseconds delayed_close_timeout{1000};
  // upgrade_configs: upgrade type (lower case) -> enabled. A type not listed
  // is refused (403) unless a route enables it.
  std::map<std::string, bool, std::less<>> upgrades;
  uint32_t max_requests_per_connection = 0;

  // local_reply_config: the first mapper whose filter matches rewrites the
  // status, body and headers of a local reply; body_format then renders it.
  struct LocalReplyMapper {
    accesslog::FilterPtr filter;
    std::optional<uint32_t> status;
    std::optional<std::string> body;
    accesslog::FormatterPtr body_format; // body_format_override
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers_to_add;
  };
  std::vector<LocalReplyMapper> local_reply_mappers;
  accesslog::FormatterPtr local_reply_body_format; // null: the plain body
  std::string local_reply_content_type = "text/plain";

  std::unique_ptr<TracingConfig> tracing; // null: tracing is not configured
};

} // namespace legate::http
