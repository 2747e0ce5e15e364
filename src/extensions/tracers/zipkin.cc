#include "extensions/tracers/zipkin.h"

#include <sys/socket.h>

#include "config/unsupported.h"
#include "envoy/config/trace/v3/zipkin.pb.h"
#include "extensions/tracers/collector_client.h"
#include "stats/json.h"
#include "tracing/exporter.h"

namespace legate::extensions::tracers {
namespace {

using Zipkin = envoy::config::trace::v3::ZipkinConfig;

class ZipkinExporter : public tracing::BatchingExporter {
 public:
  ZipkinExporter(stats::Store& store, const upstream::Cluster& cluster, CollectorRequest request,
                 std::string service)
      : BatchingExporter(store, "tracing.zipkin.", "tracing.zipkin."),
        client_(cluster, std::move(request)),
        service_(std::move(service)),
        reports_sent_(store.counter("tracing.zipkin.reports_sent")),
        reports_dropped_(store.counter("tracing.zipkin.reports_dropped")),
        reports_failed_(store.counter("tracing.zipkin.reports_failed")) {}

 private:
  void onStart(event::Dispatcher& main) override { client_.start(main); }
  void send(std::vector<tracing::SpanData> batch) override {
    const bool queued =
        client_.post(zipkinJson(batch, service_), [this](std::optional<uint32_t> s) {
          if (!s) {
            reports_failed_.inc();
          } else if (*s == 202) {
            reports_sent_.inc();
          } else {
            reports_dropped_.inc();
          }
        });
    if (!queued)
      reports_dropped_.inc();
  }

  CollectorClient client_;
  const std::string service_;
  stats::Counter& reports_sent_;
  stats::Counter& reports_dropped_;
  stats::Counter& reports_failed_;
};

}  // namespace

std::string zipkinJson(const std::vector<tracing::SpanData>& spans, const std::string& service) {
  stats::Json list = stats::Json::array();
  for (const auto& s : spans) {
    stats::Json span = stats::Json::object();
    span.set("traceId", tracing::traceIdHex(s.trace_id_high, s.trace_id_low));
    span.set("id", tracing::hex64(s.id));
    if (s.parent_id != 0)
      span.set("parentId", tracing::hex64(s.parent_id));
    span.set("name", s.name);
    span.set("kind", s.kind == tracing::SpanKind::Server ? "SERVER" : "CLIENT");
    span.set("timestamp", s.start_us);
    span.set("duration", s.duration_us);
    stats::Json endpoint = stats::Json::object();
    endpoint.set("serviceName", service);
    if (s.local.port() != 0) {
      endpoint.set(s.local.family() == AF_INET6 ? "ipv6" : "ipv4", s.local.ip());
      endpoint.set("port", static_cast<unsigned>(s.local.port()));
    }
    span.set("localEndpoint", std::move(endpoint));
    if (!s.tags.empty()) {
      stats::Json tags = stats::Json::object();
      for (const auto& [k, v] : s.tags)
        tags.set(k, v);
      span.set("tags", std::move(tags));
    }
    if (s.shared)
      span.set("shared", true);
    list.push(std::move(span));
  }
  return list.dump();
}

absl::StatusOr<tracing::TracerSharedPtr> createZipkinTracer(const Zipkin& proto,
                                                            const std::string& path,
                                                            TracerContext& ctx) {
  if (auto st = config::rejectUnsupportedFields(proto, {"split_spans_for_request"}, path);
      !st.ok()) {
    return st;
  }
  if (proto.collector_endpoint_version() != Zipkin::HTTP_JSON) {
    return absl::InvalidArgumentError(
        path + ".collector_endpoint_version: " +
        Zipkin::CollectorEndpointVersion_Name(proto.collector_endpoint_version()) +
        " is not implemented by legate (HTTP_JSON is)");
  }
  const upstream::Cluster* cluster = ctx.cluster_manager.get(proto.collector_cluster());
  if (cluster == nullptr) {
    return absl::InvalidArgumentError(path + ".collector_cluster: unknown cluster '" +
                                      proto.collector_cluster() + "'");
  }
  if (proto.collector_endpoint().empty() || proto.collector_endpoint()[0] != '/') {
    return absl::InvalidArgumentError(path +
                                      ".collector_endpoint: a path starting with '/' is "
                                      "expected");
  }
  CollectorRequest req;
  req.path = proto.collector_endpoint();
  req.host =
      proto.collector_hostname().empty() ? proto.collector_cluster() : proto.collector_hostname();
  req.content_type = "application/json";
  req.timeout = std::chrono::milliseconds(5000);  // Envoy's fixed report timeout
  auto exporter = std::make_shared<ZipkinExporter>(
      ctx.store, *cluster, std::move(req), ctx.node_cluster.empty() ? "unknown" : ctx.node_cluster);

  tracing::TracerOptions options;
  options.propagation = tracing::TracerOptions::Propagation::B3;
  options.shared_span_context =
      !proto.has_shared_span_context() || proto.shared_span_context().value();
  options.trace_id_128bit = proto.trace_id_128bit();
  options.name_from_host = true;
  options.node_id = ctx.node_id;
  options.zone = ctx.zone;
  auto tracer = std::make_shared<const tracing::Tracer>(std::move(options), std::move(exporter));
  if (ctx.built != nullptr)
    ctx.built->push_back(tracer);
  return tracer;
}

}  // namespace legate::extensions::tracers
