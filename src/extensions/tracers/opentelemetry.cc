#include "extensions/tracers/opentelemetry.h"

#include "config/unsupported.h"
#include "envoy/config/trace/v3/opentelemetry.pb.h"
#include "extensions/tracers/collector_client.h"
#include "google/protobuf/util/time_util.h"
#include "tracing/exporter.h"

namespace legate::extensions::tracers {
namespace {

// Protobuf wire format, just what OTLP needs.
class Writer {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void tag(uint32_t field, uint32_t wire_type) { varint((uint64_t{field} << 3) | wire_type); }
  void bytes(uint32_t field, std::string_view b) {
    tag(field, 2);
    varint(b.size());
    out_.append(b);
  }
  void uint(uint32_t field, uint64_t v) {
    tag(field, 0);
    varint(v);
  }
  void fixed64(uint32_t field, uint64_t v) {
    tag(field, 1);
    for (int i = 0; i < 8; ++i)
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void message(uint32_t field, const Writer& m) { bytes(field, m.out_); }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string bigEndian(uint64_t v) {
  std::string b(8, '\0');
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>((v >> (8 * (7 - i))) & 0xff);
  return b;
}

// KeyValue{key, AnyValue{string_value}}.
Writer keyValue(std::string_view key, std::string_view value) {
  Writer any;
  any.bytes(1, value);
  Writer kv;
  kv.bytes(1, key);
  kv.message(2, any);
  return kv;
}

class OtlpExporter : public tracing::BatchingExporter {
 public:
  OtlpExporter(stats::Store& store, const upstream::Cluster& cluster, CollectorRequest request,
               std::string service)
      : BatchingExporter(store, "tracing.opentelemetry.", "tracing.opentelemetry."),
        client_(cluster, std::move(request)),
        service_(std::move(service)),
        sent_(store.counter("tracing.opentelemetry.http_reports_sent")),
        success_(store.counter("tracing.opentelemetry.http_reports_success")),
        failed_(store.counter("tracing.opentelemetry.http_reports_failed")),
        dropped_(store.counter("tracing.opentelemetry.http_reports_dropped")) {}

 private:
  void onStart(event::Dispatcher& main) override { client_.start(main); }
  void send(std::vector<tracing::SpanData> batch) override {
    const bool queued = client_.post(
        otlpExportRequest(batch, service_),
        [this](std::optional<uint32_t> s) { (s && *s == 200 ? success_ : failed_).inc(); });
    if (queued) {
      sent_.inc();
    } else {
      dropped_.inc();
    }
  }

  CollectorClient client_;
  const std::string service_;
  stats::Counter& sent_;
  stats::Counter& success_;
  stats::Counter& failed_;
  stats::Counter& dropped_;
};

}  // namespace

std::string otlpExportRequest(const std::vector<tracing::SpanData>& spans,
                              const std::string& service_name) {
  // ExportTraceServiceRequest{resource_spans: [ResourceSpans{resource, scope_spans:
  // [ScopeSpans{scope, spans}]}]}
  Writer scope_spans;
  Writer scope;
  scope.bytes(1, "legate");
  scope.bytes(2, LEGATE_VERSION);
  scope_spans.message(1, scope);
  for (const auto& s : spans) {
    Writer span;
    span.bytes(1, bigEndian(s.trace_id_high) + bigEndian(s.trace_id_low));
    span.bytes(2, bigEndian(s.id));
    if (!s.tracestate.empty())
      span.bytes(3, s.tracestate);
    if (s.parent_id != 0)
      span.bytes(4, bigEndian(s.parent_id));
    span.bytes(5, s.name);
    span.uint(6, s.kind == tracing::SpanKind::Server ? 2 : 3);  // SPAN_KIND_SERVER / _CLIENT
    const uint64_t start_ns = static_cast<uint64_t>(s.start_us) * 1000;
    span.fixed64(7, start_ns);
    span.fixed64(8, start_ns + static_cast<uint64_t>(s.duration_us) * 1000);
    bool error = false;
    for (const auto& [k, v] : s.tags) {
      span.message(9, keyValue(k, v));
      if (k == "error" && v == "true")
        error = true;
    }
    if (error) {
      Writer status;
      status.uint(3, 2);  // STATUS_CODE_ERROR
      span.message(15, status);
    }
    scope_spans.message(2, span);
  }
  Writer resource;
  resource.message(1, keyValue("service.name", service_name));
  Writer resource_spans;
  resource_spans.message(1, resource);
  resource_spans.message(2, scope_spans);
  Writer request;
  request.message(1, resource_spans);
  return request.str();
}

absl::StatusOr<tracing::TracerSharedPtr> createOpenTelemetryTracer(
    const envoy::config::trace::v3::OpenTelemetryConfig& proto, const std::string& path,
    TracerContext& ctx) {
  if (auto st = config::rejectUnsupportedFields(
          proto, {"grpc_service", "resource_detectors", "sampler"}, path);
      !st.ok()) {
    return st;
  }
  if (!proto.has_http_service()) {
    return absl::InvalidArgumentError(path +
                                      ".http_service: required (legate exports OTLP over "
                                      "HTTP; grpc_service is not implemented yet)");
  }
  const auto& svc = proto.http_service();
  const std::string hpath = path + ".http_service.http_uri";
  const auto& uri = svc.http_uri();
  const upstream::Cluster* cluster = ctx.cluster_manager.get(uri.cluster());
  if (cluster == nullptr) {
    return absl::InvalidArgumentError(hpath + ".cluster: unknown cluster '" + uri.cluster() + "'");
  }
  // http://host[:port]/path -> Host and path.
  std::string_view rest = uri.uri();
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    return absl::InvalidArgumentError(hpath + ".uri: https is not implemented by legate yet");
  } else {
    return absl::InvalidArgumentError(hpath + ".uri: an http:// URI is expected");
  }
  const size_t slash = rest.find('/');
  CollectorRequest req;
  req.host = std::string(rest.substr(0, slash));
  req.path = slash == std::string_view::npos ? "/v1/traces" : std::string(rest.substr(slash));
  if (req.host.empty())
    return absl::InvalidArgumentError(hpath + ".uri: no host");
  req.content_type = "application/x-protobuf";
  req.timeout = std::chrono::milliseconds(
      google::protobuf::util::TimeUtil::DurationToMilliseconds(uri.timeout()));
  if (req.timeout.count() <= 0)
    req.timeout = std::chrono::milliseconds(5000);
  for (int i = 0; i < svc.request_headers_to_add_size(); ++i) {
    const auto& h = svc.request_headers_to_add(i).header();
    if (h.key().empty() || h.key()[0] == ':') {
      return absl::InvalidArgumentError(path + ".http_service.request_headers_to_add[" +
                                        std::to_string(i) +
                                        "].header.key: a regular header name is required");
    }
    req.headers.emplace_back(h.key(), h.value());
  }
  auto exporter = std::make_shared<OtlpExporter>(
      ctx.store, *cluster, std::move(req),
      proto.service_name().empty() ? "unknown_service:legate" : proto.service_name());
  tracing::TracerOptions options;
  options.propagation = tracing::TracerOptions::Propagation::W3C;
  options.node_id = ctx.node_id;
  options.zone = ctx.zone;
  auto tracer = std::make_shared<const tracing::Tracer>(std::move(options), std::move(exporter));
  if (ctx.built != nullptr)
    ctx.built->push_back(tracer);
  return tracer;
}

}  // namespace legate::extensions::tracers
