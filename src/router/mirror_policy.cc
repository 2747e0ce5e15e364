#include "router/mirror_policy.h"

#include "config/unsupported.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "http/header_map.h"

namespace legate::router {

absl::StatusOr<std::shared_ptr<const MirrorPolicies>> buildMirrorPolicies(
    const google::protobuf::RepeatedPtrField<envoy::config::route::v3::RouteAction_RequestMirrorPolicy>&
        protos,
    const std::string& path) {
  if (protos.empty())
    return std::shared_ptr<const MirrorPolicies>();
  auto out = std::make_shared<MirrorPolicies>();
  for (int i = 0; i < protos.size(); ++i) {
    const auto& p = protos.Get(i);
    const std::string ppath = path + "[" + std::to_string(i) + "]";
    // Mirrored requests get no span of their own (the tracer spans only the main
    // request and its attempts), so a sampling choice for them has nothing to act on.
    if (auto st = config::rejectUnsupportedFields(p, {"trace_sampled"}, ppath); !st.ok())
      return st;
    MirrorPolicy m;
    m.cluster = p.cluster();
    m.cluster_header = p.cluster_header();
    http::toLowerInPlace(m.cluster_header);
    if (m.cluster.empty() == m.cluster_header.empty()) {
      return absl::InvalidArgumentError(ppath + ": exactly one of cluster and cluster_header is "
                                                "required");
    }
    if (p.has_runtime_fraction()) {
      const auto& pct = p.runtime_fraction().default_value();
      m.numerator = pct.numerator();
      switch (pct.denominator()) {
      case envoy::type::v3::FractionalPercent::TEN_THOUSAND:
        m.denominator = 10000;
        break;
      case envoy::type::v3::FractionalPercent::MILLION:
        m.denominator = 1000000;
        break;
      default:
        m.denominator = 100;
        break;
      }
      m.runtime_key = p.runtime_fraction().runtime_key();
    }
    m.keep_host = p.disable_shadow_host_suffix_append();
    out->push_back(std::move(m));
  }
  return std::shared_ptr<const MirrorPolicies>(std::move(out));
}

}  // namespace legate::router
