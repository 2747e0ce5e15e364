#include "extensions/filters/network/http_connection_manager/config.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "accesslog/filter.h"
#include "accesslog/formatter.h"
#include "config/extension_registry.h"
#include "config/unsupported.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "extensions/filters/http/router/router_filter.h"
#include "extensions/tracers/tracer_factory.h"
#include "google/protobuf/util/time_util.h"
#include "router/route_builder.h"
#include "router/route_config.h"

namespace legate::extensions::http_connection_manager {

using Hcm = envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using google::protobuf::util::TimeUtil;

namespace {

std::chrono::milliseconds ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(d));
}

absl::StatusOr<http::HttpFilterFactoryCb>
routerFactory(const google::protobuf::Any& any, const std::string& path, FactoryContext& context,
              http::ConnectionManagerStats& stats) {
  envoy::extensions::filters::http::router::v3::Router proto;
  if (!any.UnpackTo(&proto)) {
    return absl::InvalidArgumentError(path + ": cannot decode the Router config");
  }
  if (auto st = config::rejectUnsupportedFields(
          proto, {"upstream_log", "upstream_log_options", "strict_check_headers",
                  "upstream_http_filters", "respect_expected_rq_timeout"},
          path);
      !st.ok()) {
    return st;
  }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  const bool start_child_span = proto.start_child_span();
#pragma GCC diagnostic pop
  auto cfg = std::make_shared<router::RouterConfig>(router::RouterConfig{
      context.cluster_manager, stats, proto.suppress_envoy_headers(), start_child_span});
  return [cfg](http::FilterChainBuilder& builder) {
    builder.addStreamDecoderFilter(std::make_shared<router::RouterFilter>(cfg));
  };
}

// The content type a SubstitutionFormatString renders: its own, or JSON's
// or text's default.
std::string contentTypeOf(const envoy::config::core::v3::SubstitutionFormatString& f) {
  if (!f.content_type().empty()) return f.content_type();
  return f.has_json_format() ? "application/json" : "text/plain";
}

absl::Status parseLocalReplyConfig(
    const envoy::extensions::filters::network::http_connection_manager::v3::LocalReplyConfig& proto, const std::string& path,
                                   http::ConnectionManagerConfig& cfg) {
  for (int i = 0; i < proto.mappers_size(); ++i) {
    const auto& m = proto.mappers(i);
    const std::string mpath = path + ".mappers[" + std::to_string(i) + "]";
    http::ConnectionManagerConfig::LocalReplyMapper mapper;
    auto filter = accesslog::createFilter(m.filter(), mpath + ".filter");
    if (!filter.ok()) return filter.status();
    mapper.filter = std::move(*filter);
    if (m.has_status_code()) mapper.status = m.status_code().value();
    if (m.has_body()) {
      if (!m.body().has_inline_string()) {
        return absl::InvalidArgumentError(mpath + ".body: only inline_string is implemented by "
                                                  "legate yet");
      }
      mapper.body = m.body().inline_string();
    }
    if (m.has_body_format_override()) {
      auto f = accesslog::fromProto(m.body_format_override(), true);
      if (!f.ok()) {
        return absl::InvalidArgumentError(mpath + ".body_format_override." +
                                          std::string(f.status().message()));
      }
      mapper.body_format = std::move(*f);
      mapper.content_type = contentTypeOf(m.body_format_override());
    }
    for (int j = 0; j < m.headers_to_add_size(); ++j) {
      const auto& h = m.headers_to_add(j);
      if (h.header().key().empty() || h.header().key()[0] == ':') {
        return absl::InvalidArgumentError(mpath + ".headers_to_add[" + std::to_string(j) +
                                          "].header.key: a regular header name is required");
      }
      mapper.headers_to_add.emplace_back(h.header().key(), h.header().value());
    }
    cfg.local_reply_mappers.push_back(std::move(mapper));
  }
  if (proto.has_body_format()) {
    auto f = accesslog::fromProto(proto.body_format(), true);
    if (!f.ok()) {
      return absl::InvalidArgumentError(path + ".body_format." + std::string(f.status().message()));
    }
    cfg.local_reply_body_format = std::move(*f);
    cfg.local_reply_content_type = contentTypeOf(proto.body_format());
  }
  return absl::OkStatus();
}

// HttpConnectionManager.tracing. Percentages become fractions as Envoy keeps
// them: random_sampling out of 10,000, the others out of 100 (rounded).
absl::StatusOr<std::unique_ptr<http::TracingConfig>>
parseTracing(const Hcm::Tracing& proto, const std::string& path, const std::string& stat_prefix,
             FactoryContext& context) {
  if (auto st = config::rejectUnsupportedFields(proto, {"verbose"}, path); !st.ok()) return st;
  auto tc = std::make_unique<http::TracingConfig>();
  auto pct = [](const envoy::type::v3::Percent& p, double scale) {
    return static_cast<uint64_t>(std::llround(p.value() * scale / 100.0));
  };
  if (proto.has_client_sampling()) tc->sampling.client = {pct(proto.client_sampling(), 100), 100};
  if (proto.has_random_sampling()) {
    tc->sampling.random = {pct(proto.random_sampling(), 10000), 10000};
  }
  if (proto.has_overall_sampling()) {
    tc->sampling.overall = {pct(proto.overall_sampling(), 100), 100};
  }
  if (proto.has_max_path_tag_length()) {
    tc->max_path_tag_length = proto.max_path_tag_length().value();
  }
  tc->spawn_upstream_span = proto.has_spawn_upstream_span() && proto.spawn_upstream_span().value();
  tc->egress = context.outbound;
  auto tags = tracing::parseCustomTags(proto.custom_tags(), path + ".custom_tags");
  if (!tags.ok()) return tags.status();
  tc->custom_tags = std::move(*tags);
  if (proto.has_provider()) {
    extensions::tracers::TracerContext tctx{context.store, context.cluster_manager,
                                            context.node_id,  context.node_cluster,
                                            context.zone,     context.tracers};
    auto tracer = extensions::tracers::createTracer(proto.provider(), path + ".provider", tctx);
    if (!tracer.ok()) return tracer.status();
    tc->tracer = std::move(*tracer);
  } else {
    tc->tracer = context.bootstrap_tracer; // may be null: decisions only
  }
  tc->stats = std::make_unique<tracing::DecisionStats>(
      stats::Scope(context.store, "http." + stat_prefix + "."));
  return tc;
}

} // namespace

absl::StatusOr<std::shared_ptr<const http::ConnectionManagerConfig>>
createConfig(const Hcm& proto, const std::string& path, FactoryContext& context) {
  if (auto st = config::rejectUnsupportedFields(
          proto,
          {"rds", "scoped_routes", "add_user_agent", "http2_protocol_options",
           "http3_protocol_options", "scheme_header_transformation",
           "access_log_flush_interval", "flush_access_log_on_new_request", "access_log_options",
           "original_ip_detection_extensions", "early_header_mutation_extensions",
           "internal_address_config", "set_current_client_cert_details",
           "request_id_extension", "strip_matching_host_port",
           "strip_any_host_port", "stream_error_on_invalid_http_message",
           "path_normalization_options", "strip_trailing_host_dot", "proxy_status_config",
           "typed_header_validation_config", "append_x_forwarded_port", "append_local_overload",
           "add_proxy_protocol_connection_state", "represent_ipv4_remote_address_as_ipv4_mapped_ipv6"},
          path);
      !st.ok()) {
    return st;
  }
  auto cfg = std::make_shared<http::ConnectionManagerConfig>();
  cfg->stat_prefix = proto.stat_prefix();
  cfg->filter_chain_name = context.filter_chain_name;
  cfg->stats = std::make_unique<http::ConnectionManagerStats>(
      stats::Scope(context.store, "http." + proto.stat_prefix() + "."));
  switch (proto.codec_type()) {
  case Hcm::AUTO:
    cfg->codec_type = http::ConnectionManagerConfig::CodecType::Auto;
    break;
  case Hcm::HTTP1:
    cfg->codec_type = http::ConnectionManagerConfig::CodecType::Http1;
    break;
  default:
    return absl::InvalidArgumentError(path + ".codec_type: " +
                                      Hcm::CodecType_Name(proto.codec_type()) +
                                      " is not implemented by legate yet (AUTO and HTTP1 are)");
  }
  if (!proto.has_route_config()) {
    return absl::InvalidArgumentError(path + ".route_config: an inline route_config is required "
                                             "(RDS comes with xDS)");
  }
  auto routes = legate::router::RouteConfig::create(proto.route_config(), path + ".route_config");
  if (!routes.ok()) {
    return routes.status();
  }
  cfg->route_config = std::move(*routes);
  // Static routes must name existing clusters unless validate_clusters is
  // explicitly false (Envoy's default for inline route configs).
  if (cfg->route_config->validateClustersSetting().value_or(true)) {
    if (auto st = cfg->route_config->validateClusters([&context](std::string_view name) {
          return context.cluster_manager.get(name) != nullptr;
        });
        !st.ok()) {
      return st;
    }
  }

  // HTTP filters: the router, last.
  if (proto.http_filters_size() == 0) {
    return absl::InvalidArgumentError(path + ".http_filters: at least the router filter "
                                             "(envoy.filters.http.router) is required");
  }
  for (int i = 0; i < proto.http_filters_size(); ++i) {
    const auto& f = proto.http_filters(i);
    const std::string fpath = path + ".http_filters[" + std::to_string(i) + "]";
    if (!f.has_typed_config()) {
      return absl::InvalidArgumentError(fpath + ": filter '" + f.name() +
                                        "' needs typed_config with @type");
    }
    const std::string type(config::typeNameFromUrl(f.typed_config().type_url()));
    if (type != envoy::extensions::filters::http::router::v3::Router::descriptor()->full_name()) {
      if (f.is_optional()) continue; // Envoy skips optional filters it does not know
      return absl::InvalidArgumentError(fpath + ".typed_config: HTTP filter '" + f.name() + "' (" +
                                        type + ") is not implemented by legate yet");
    }
    if (i != proto.http_filters_size() - 1) {
      return absl::InvalidArgumentError(fpath + ": the router filter must be the last HTTP filter");
    }
    auto cb = routerFactory(f.typed_config(), fpath + ".typed_config", context, *cfg->stats);
    if (!cb.ok()) return cb.status();
    cfg->filter_factories.push_back(std::move(*cb));
  }

  if (!proto.server_name().empty()) cfg->server_name = proto.server_name();
  switch (proto.server_header_transformation()) {
  case Hcm::APPEND_IF_ABSENT:
    cfg->server_header_transformation =
        http::ConnectionManagerConfig::ServerHeaderTransformation::AppendIfAbsent;
    break;
  case Hcm::PASS_THROUGH:
    cfg->server_header_transformation =
        http::ConnectionManagerConfig::ServerHeaderTransformation::PassThrough;
    break;
  default:
    break;
  }
  if (proto.has_generate_request_id()) cfg->generate_request_id = proto.generate_request_id().value();
  cfg->preserve_external_request_id = proto.preserve_external_request_id();
  cfg->always_set_request_id_in_response = proto.always_set_request_id_in_response();
  if (proto.has_use_remote_address()) cfg->use_remote_address = proto.use_remote_address().value();
  cfg->xff_num_trusted_hops = proto.xff_num_trusted_hops();
  cfg->skip_xff_append = proto.skip_xff_append();
  cfg->via = proto.via();
  cfg->proxy_100_continue = proto.proxy_100_continue();
  if (proto.has_normalize_path()) cfg->normalize_path = proto.normalize_path().value();
  cfg->merge_slashes = proto.merge_slashes();
  switch (proto.path_with_escaped_slashes_action()) {
  case Hcm::REJECT_REQUEST:
    cfg->escaped_slashes = http::ConnectionManagerConfig::EscapedSlashesAction::RejectRequest;
    break;
  case Hcm::UNESCAPE_AND_REDIRECT:
    cfg->escaped_slashes = http::ConnectionManagerConfig::EscapedSlashesAction::UnescapeAndRedirect;
    break;
  case Hcm::UNESCAPE_AND_FORWARD:
    cfg->escaped_slashes = http::ConnectionManagerConfig::EscapedSlashesAction::UnescapeAndForward;
    break;
  default:
    break;
  }
  if (proto.has_stream_idle_timeout()) cfg->stream_idle_timeout = ms(proto.stream_idle_timeout());
  if (proto.has_request_timeout()) cfg->request_timeout = ms(proto.request_timeout());
  if (proto.has_request_headers_timeout()) {
    cfg->request_headers_timeout = ms(proto.request_headers_timeout());
  }
  if (proto.has_drain_timeout()) cfg->drain_timeout = ms(proto.drain_timeout());
  for (int i = 0; i < proto.upgrade_configs_size(); ++i) {
    const auto& uc = proto.upgrade_configs(i);
    const std::string upath = path + ".upgrade_configs[" + std::to_string(i) + "]";
    if (uc.filters_size() > 0) {
      return absl::InvalidArgumentError(upath + ".filters: a separate filter chain per upgrade "
                                        "type is not implemented by legate yet");
    }
    auto type = legate::router::upgradeTypeKey(uc.upgrade_type(), upath);
    if (!type.ok()) return type.status();
    cfg->upgrades[*type] = !uc.has_enabled() || uc.enabled().value();
  }
  if (proto.has_delayed_close_timeout()) {
    cfg->delayed_close_timeout = ms(proto.delayed_close_timeout());
  }
  if (proto.has_max_request_headers_kb()) {
    cfg->codec_settings.max_request_headers_kb = proto.max_request_headers_kb().value();
  }
  const auto& common = proto.common_http_protocol_options();
  if (auto st = config::rejectUnsupportedFields(common, {"max_stream_duration"},
                                                path + ".common_http_protocol_options");
      !st.ok()) {
    return st;
  }
  if (common.has_idle_timeout()) cfg->idle_timeout = ms(common.idle_timeout());
  if (common.has_max_connection_duration()) {
    cfg->max_connection_duration = ms(common.max_connection_duration());
  }
  if (common.has_max_headers_count()) {
    cfg->codec_settings.max_headers_count = common.max_headers_count().value();
  }
  if (common.has_max_requests_per_connection()) {
    cfg->max_requests_per_connection = common.max_requests_per_connection().value();
  }
  switch (common.headers_with_underscores_action()) {
  case envoy::config::core::v3::HttpProtocolOptions::REJECT_REQUEST:
    cfg->codec_settings.underscores = http::CodecSettings::UnderscoreAction::RejectRequest;
    break;
  case envoy::config::core::v3::HttpProtocolOptions::DROP_HEADER:
    cfg->codec_settings.underscores = http::CodecSettings::UnderscoreAction::DropHeader;
    break;
  default:
    break;
  }
  const auto& h1 = proto.http_protocol_options();
  if (auto st = config::rejectUnsupportedFields(
          h1,
          {"default_host_for_http_10", "enable_trailers", "allow_chunked_length",
           "override_stream_error_on_invalid_http_message", "send_fully_qualified_url",
           "use_balsa_parser", "allow_custom_methods"},
          path + ".http_protocol_options");
      !st.ok()) {
    return st;
  }
  if (h1.has_allow_absolute_url()) {
    cfg->codec_settings.allow_absolute_url = h1.allow_absolute_url().value();
  }
  cfg->codec_settings.accept_http_10 = h1.accept_http_10();
  if (h1.has_header_key_format()) {
    if (!h1.header_key_format().has_proper_case_words()) {
      return absl::InvalidArgumentError(path + ".http_protocol_options.header_key_format: only "
                                               "proper_case_words is implemented by legate yet");
    }
    cfg->codec_settings.proper_case_headers = true;
  }
  if (proto.has_local_reply_config()) {
    if (auto st = parseLocalReplyConfig(proto.local_reply_config(), path + ".local_reply_config",
                                        *cfg);
        !st.ok()) {
      return st;
    }
  }
  auto logs = accesslog::createAll(proto.access_log(), path + ".access_log", context.store);
  if (!logs.ok()) return logs.status();
  cfg->access_logs = std::move(*logs);
  if (proto.has_tracing()) {
    auto tc = parseTracing(proto.tracing(), path + ".tracing", proto.stat_prefix(), context);
    if (!tc.ok()) return tc.status();
    cfg->tracing = std::move(*tc);
  }
  return cfg;
}

} // namespace legate::extensions::http_connection_manager
