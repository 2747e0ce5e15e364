#include "config/extension_registry.h"

namespace legate::config {

std::string_view categoryName(ExtensionCategory c) {
  switch (c) {
  case ExtensionCategory::NetworkFilter:
    return "network filter";
  case ExtensionCategory::HttpFilter:
    return "HTTP filter";
  case ExtensionCategory::AccessLogger:
    return "access logger";
  case ExtensionCategory::UpstreamProtocolOptions:
    return "upstream protocol options";
  case ExtensionCategory::StatsSink:
    return "stats sink";
  case ExtensionCategory::DnsResolver:
    return "DNS resolver";
  case ExtensionCategory::RetryHostPredicate:
    return "retry host predicate";
  case ExtensionCategory::Tracer:
    return "tracer";
  case ExtensionCategory::LoadBalancingPolicy:
    return "load balancing policy";
  case ExtensionCategory::ListenerFilter:
    return "listener filter";
  }
  return "extension";
}

ExtensionRegistry& ExtensionRegistry::get() {
  static ExtensionRegistry* registry = new ExtensionRegistry();
  return *registry;
}

void ExtensionRegistry::add(ExtensionInfo info) {
  name_to_type_[info.envoy_name] = info.type_name;
  std::string key = info.type_name;
  by_type_[key] = std::move(info);
}

const ExtensionInfo* ExtensionRegistry::findByType(std::string_view type_name) const {
  auto it = by_type_.find(type_name);
  return it == by_type_.end() ? nullptr : &it->second;
}

const ExtensionInfo* ExtensionRegistry::findByName(std::string_view envoy_name) const {
  auto it = name_to_type_.find(envoy_name);
  return it == name_to_type_.end() ? nullptr : findByType(it->second);
}

std::vector<const ExtensionInfo*> ExtensionRegistry::all() const {
  std::vector<const ExtensionInfo*> out;
  for (const auto& [_, info] : by_type_) out.push_back(&info);
  return out;
}

bool isSkippableExtensionSlot(std::string_view path) {
  constexpr std::string_view kSuffix = ".typed_extension_config.typed_config";
  return path.size() >= kSuffix.size() &&
         path.substr(path.size() - kSuffix.size()) == kSuffix &&
         path.find("load_balancing_policy.policies[") != std::string_view::npos;
}

std::string_view typeNameFromUrl(std::string_view type_url) {
  auto slash = type_url.rfind('/');
  return slash == std::string_view::npos ? type_url : type_url.substr(slash + 1);
}

} // namespace legate::config
