#include "server/runtime_config.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "config/unsupported.h"
#include "google/protobuf/struct.pb.h"

namespace legate::server {

namespace {

std::string numberText(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// A FractionalPercent given as a struct {numerator, denominator}.
std::optional<runtime::Fraction> fractionOf(const google::protobuf::Struct& s) {
  auto num = s.fields().find("numerator");
  if (num == s.fields().end() || !num->second.has_number_value()) return std::nullopt;
  runtime::Fraction f;
  f.numerator = static_cast<uint64_t>(num->second.number_value());
  auto den = s.fields().find("denominator");
  if (den != s.fields().end()) {
    const auto& d = den->second;
    const std::string name = d.has_string_value() ? d.string_value() : "";
    const double n = d.has_number_value() ? d.number_value() : -1;
    if (name == "TEN_THOUSAND" || n == 1) f.denominator = 10000;
    else if (name == "MILLION" || n == 2) f.denominator = 1000000;
  }
  return f;
}

absl::Status flatten(const google::protobuf::Struct& s, const std::string& prefix,
                     const std::string& where, runtime::Layer& layer) {
  for (const auto& [name, value] : s.fields()) {
    const std::string key = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
    switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue:
      layer.values[key] = numberText(value.number_value());
      break;
    case google::protobuf::Value::kBoolValue:
      layer.values[key] = value.bool_value() ? "true" : "false";
      break;
    case google::protobuf::Value::kStringValue:
      layer.values[key] = value.string_value();
      break;
    case google::protobuf::Value::kStructValue:
      if (auto f = fractionOf(value.struct_value())) {
        layer.fractions[key] = *f;
      } else if (auto st = flatten(value.struct_value(), key, where, layer); !st.ok()) {
        return st;
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", key, ": a runtime value must be a number, bool, string, "
                                        "FractionalPercent or nested map"));
    }
  }
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<std::vector<runtime::Layer>>
runtimeLayers(const envoy::config::bootstrap::v3::Bootstrap& bootstrap) {
  std::vector<runtime::Layer> layers;
  if (!bootstrap.has_layered_runtime()) {
    runtime::Layer admin;
    admin.name = "admin";
    admin.is_admin = true;
    layers.push_back(std::move(admin));
    return layers;
  }
  const auto& protos = bootstrap.layered_runtime().layers();
  for (int i = 0; i < protos.size(); ++i) {
    const auto& p = protos[i];
    const std::string where = absl::StrCat("layered_runtime.layers[", i, "]");
    runtime::Layer layer;
    layer.name = p.name();
    if (p.has_static_layer()) {
      if (auto st = flatten(p.static_layer(), "", where + ".static_layer", layer); !st.ok()) {
        return st;
      }
    } else if (p.has_disk_layer()) {
      const auto& d = p.disk_layer();
      std::string dir = d.symlink_root();
      if (!d.subdirectory().empty()) dir = absl::StrCat(dir, "/", d.subdirectory());
      if (d.append_service_cluster() && !bootstrap.node().cluster().empty()) {
        dir = absl::StrCat(dir, "/", bootstrap.node().cluster());
      }
      if (auto st = runtime::readDiskLayer(dir, layer); !st.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".disk_layer: ", st.message()));
      }
    } else if (p.has_admin_layer()) {
      layer.is_admin = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": only static_layer, disk_layer and admin_layer are supported "
                              "(rtds_layer needs xDS)"));
    }
    layers.push_back(std::move(layer));
  }
  return layers;
}

} // namespace legate::server
