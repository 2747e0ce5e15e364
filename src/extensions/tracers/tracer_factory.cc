#include "extensions/tracers/tracer_factory.h"

#include "config/extension_registry.h"
#include "envoy/config/trace/v3/http_tracer.pb.h"
#include "envoy/config/trace/v3/opentelemetry.pb.h"
#include "envoy/config/trace/v3/zipkin.pb.h"
#include "extensions/tracers/opentelemetry.h"
#include "extensions/tracers/zipkin.h"

namespace legate::extensions::tracers {

absl::StatusOr<tracing::TracerSharedPtr> createTracer(
    const envoy::config::trace::v3::Tracing_Http& provider, const std::string& path,
    TracerContext& ctx) {
  if (!provider.has_typed_config()) {
    return absl::InvalidArgumentError(path + ": tracer '" + provider.name() +
                                      "' needs typed_config with @type");
  }
  const auto& any = provider.typed_config();
  const std::string type(config::typeNameFromUrl(any.type_url()));
  const std::string cpath = path + ".typed_config";
  if (type == envoy::config::trace::v3::ZipkinConfig::descriptor()->full_name()) {
    envoy::config::trace::v3::ZipkinConfig proto;
    if (!any.UnpackTo(&proto))
      return absl::InvalidArgumentError(cpath + ": cannot decode ZipkinConfig");
    return createZipkinTracer(proto, cpath, ctx);
  }
  if (type == envoy::config::trace::v3::OpenTelemetryConfig::descriptor()->full_name()) {
    envoy::config::trace::v3::OpenTelemetryConfig proto;
    if (!any.UnpackTo(&proto)) {
      return absl::InvalidArgumentError(cpath + ": cannot decode OpenTelemetryConfig");
    }
    return createOpenTelemetryTracer(proto, cpath, ctx);
  }
  return absl::InvalidArgumentError(cpath + ": tracer '" + provider.name() + "' (" + type +
                                    ") is not implemented by legate (envoy.tracers.zipkin and "
                                    "envoy.tracers.opentelemetry are)");
}

}  // namespace legate::extensions::tracers
