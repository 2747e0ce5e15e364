// /config_dump, /listeners, /clusters.

#include <algorithm>
#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "admin/http_util.h"
#include "envoy/admin/v3/config_dump.pb.h"
#include "envoy/admin/v3/config_dump_shared.pb.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "google/protobuf/field_mask.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/util/field_mask_util.h"
#include "stats/json.h"

namespace legate::admin {

namespace {

using stats::Json;

// When the static configuration was loaded: the server's start.
google::protobuf::Timestamp loadTime(server::Instance& server) {
  const auto start = std::chrono::system_clock::now() - server.uptime();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch());
  google::protobuf::Timestamp ts;
  ts.set_seconds(ns.count() / 1000000000);
  ts.set_nanos(static_cast<int32_t>(ns.count() % 1000000000));
  return ts;
}

// Keeps only the fields of message that paths name ("cluster.name": the name of the
// cluster field). Unlike FieldMaskUtil::TrimMessage this descends into Any fields
// (unpacking, trimming and repacking them), as Envoy's ?mask= does for packed configs.
void trimToPaths(google::protobuf::Message& message, const std::vector<std::string>& paths) {
  using google::protobuf::FieldDescriptor;
  if (message.GetDescriptor()->full_name() == "google.protobuf.Any") {
    auto* any = static_cast<google::protobuf::Any*>(&message);
    const auto* desc = google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(
        std::string(any->type_url().substr(any->type_url().rfind('/') + 1)));
    if (desc == nullptr) return;
    std::unique_ptr<google::protobuf::Message> inner(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc)->New());
    if (!any->UnpackTo(inner.get())) return;
    trimToPaths(*inner, paths);
    any->PackFrom(*inner);
    return;
  }
  // first component -> the rest of each path under it ("" = the whole field).
  std::map<std::string, std::vector<std::string>> by_field;
  for (const auto& p : paths) {
    const size_t dot = p.find('.');
    by_field[p.substr(0, dot)].push_back(dot == std::string::npos ? "" : p.substr(dot + 1));
  }
  const auto* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* f : fields) {
    auto it = by_field.find(f->name());
    if (it == by_field.end()) {
      reflection->ClearField(&message, f);
      continue;
    }
    const auto& rest = it->second;
    if (std::find(rest.begin(), rest.end(), "") != rest.end() ||
        f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      continue; // the whole field
    }
    if (f->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(message, f); ++i) {
        trimToPaths(*reflection->MutableRepeatedMessage(&message, f, i), rest);
      }
    } else {
      trimToPaths(*reflection->MutableMessage(&message, f), rest);
    }
  }
}

// Packs message into out, trimmed to mask's paths when mask has any (Envoy's ?mask=).
void addConfig(const google::protobuf::Message& message, const google::protobuf::FieldMask& mask,
               envoy::admin::v3::ConfigDump& out) {
  if (mask.paths().empty()) {
    out.add_configs()->PackFrom(message);
    return;
  }
  std::unique_ptr<google::protobuf::Message> trimmed(message.New());
  trimmed->CopyFrom(message);
  trimToPaths(*trimmed, {mask.paths().begin(), mask.paths().end()});
  out.add_configs()->PackFrom(*trimmed);
}

// Appends to out, as Any, every element of message's repeated message field named
// resource (Envoy's /config_dump?resource=static_clusters).
void collectResource(const google::protobuf::Message& message, const std::string& resource,
                     const google::protobuf::FieldMask& mask, envoy::admin::v3::ConfigDump& out) {
  const auto* field = message.GetDescriptor()->FindFieldByName(resource);
  if (field == nullptr || !field->is_repeated() ||
      field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
    return;
  }
  const auto* reflection = message.GetReflection();
  for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
    addConfig(reflection->GetRepeatedMessage(message, field, i), mask, out);
  }
}

Response configDump(server::Instance& server, const Request& request) {
  const envoy::config::bootstrap::v3::Bootstrap bootstrap = server.bootstrap();
  const google::protobuf::Timestamp updated = loadTime(server);

  envoy::admin::v3::BootstrapConfigDump bootstrap_dump;
  *bootstrap_dump.mutable_bootstrap() = bootstrap;
  *bootstrap_dump.mutable_last_updated() = updated;

  envoy::admin::v3::ClustersConfigDump clusters;
  for (const auto& cluster : bootstrap.static_resources().clusters()) {
    auto* entry = clusters.add_static_clusters();
    entry->mutable_cluster()->PackFrom(cluster);
    *entry->mutable_last_updated() = updated;
  }

  envoy::admin::v3::ListenersConfigDump listeners;
  for (const auto& listener : bootstrap.static_resources().listeners()) {
    auto* entry = listeners.add_static_listeners();
    entry->mutable_listener()->PackFrom(listener);
    *entry->mutable_last_updated() = updated;
  }

  // ?include_eds: the endpoints of static clusters (their load_assignment).
  envoy::admin::v3::EndpointsConfigDump endpoints;
  for (const auto& cluster : bootstrap.static_resources().clusters()) {
    if (!cluster.has_load_assignment()) continue;
    auto* entry = endpoints.add_static_endpoint_configs();
    envoy::config::endpoint::v3::ClusterLoadAssignment cla = cluster.load_assignment();
    if (cla.cluster_name().empty()) cla.set_cluster_name(cluster.name());
    entry->mutable_endpoint_config()->PackFrom(cla);
    *entry->mutable_last_updated() = updated;
  }

  // ?mask=a.b,c: a FieldMask applied to each dumped config (or resource).
  google::protobuf::FieldMask mask;
  if (const std::string m = request.param("mask"); !m.empty()) {
    google::protobuf::util::FieldMaskUtil::FromString(m, &mask);
  }

  // Envoy's order: bootstrap, clusters, endpoints (only with include_eds), listeners.
  std::vector<const google::protobuf::Message*> dumps = {&bootstrap_dump, &clusters};
  if (request.has("include_eds")) dumps.push_back(&endpoints);
  dumps.push_back(&listeners);
  envoy::admin::v3::ConfigDump dump;
  const std::string resource = request.param("resource");
  if (resource.empty()) {
    for (const auto* m : dumps) addConfig(*m, mask, dump);
  } else {
    for (const auto* m : dumps) collectResource(*m, resource, mask, dump);
    if (dump.configs().empty()) {
      return textResponse(404, absl::StrCat("no resource '", resource,
                                            "' in the config dump (try static_clusters or "
                                            "static_listeners)\n"));
    }
  }

  auto json = protoToJson(dump, /*always_print_primitive_fields=*/false);
  if (!json.ok()) {
    return textResponse(500, absl::StrCat(json.status().message(), "\n"));
  }
  return jsonResponse(*std::move(json));
}

Json socketAddress(const std::string& address) {
  auto [host, port] = splitHostPort(address);
  Json sa = Json::object();
  sa.set("address", host);
  sa.set("port_value", port);
  Json out = Json::object();
  out.set("socket_address", std::move(sa));
  return out;
}

Response listeners(server::Instance& server, const Request& request) {
  const auto infos = server.listeners();
  if (request.param("format") == "json") {
    Json statuses = Json::array();
    for (const auto& l : infos) {
      Json& s = statuses.push(Json::object());
      s.set("name", l.name);
      s.set("local_address", socketAddress(l.address));
    }
    Json doc = Json::object();
    doc.set("listener_statuses", std::move(statuses));
    return jsonResponse(doc.dump(true));
  }
  std::string out;
  for (const auto& l : infos) absl::StrAppend(&out, l.name, "::", l.address, "\n");
  return textResponse(200, std::move(out));
}

Json thresholdsJson(const server::CircuitBreakerInfo& t, bool high) {
  Json j = Json::object();
  if (high) j.set("priority", "HIGH");
  j.set("max_connections", t.max_connections);
  j.set("max_pending_requests", t.max_pending_requests);
  j.set("max_requests", t.max_requests);
  j.set("max_retries", t.max_retries);
  return j;
}

Response clusters(server::Instance& server, const Request& request) {
  const auto infos = server.clusters();
  if (request.param("format") == "json") {
    Json statuses = Json::array();
    for (const auto& c : infos) {
      Json& s = statuses.push(Json::object());
      s.set("name", c.name);
      Json& hosts = s.set("host_statuses", Json::array());
      for (const auto& h : c.hosts) {
        Json& hs = hosts.push(Json::object());
        hs.set("address", socketAddress(h.address));
        Json& stat_list = hs.set("stats", Json::array());
        for (const auto& st : h.stats) {
          Json& e = stat_list.push(Json::object());
          e.set("name", st.name);
          // uint64 is a JSON string in proto3's mapping, as Envoy prints it.
          e.set("value", absl::StrCat(st.value));
          if (st.gauge) e.set("type", "GAUGE");
        }
        // Envoy's HostHealthStatus from the health flags ("/failed_active_hc/...").
        auto flag = [&h](const char* name) {
          return h.health.find(absl::StrCat("/", name)) != std::string::npos;
        };
        Json& health = hs.set("health_status", Json::object());
        for (const auto& [field, name] :
             {std::pair{"failed_active_health_check", "failed_active_hc"},
              std::pair{"failed_outlier_check", "failed_outlier_check"},
              std::pair{"failed_active_degraded_check", "degraded_active_hc"},
              std::pair{"pending_dynamic_removal", "pending_dynamic_removal"},
              std::pair{"pending_active_hc", "pending_active_hc"},
              std::pair{"excluded_via_immediate_hc_fail", "excluded_via_immediate_hc_fail"},
              std::pair{"active_hc_timeout", "active_hc_timeout"}}) {
          if (flag(name)) health.set(field, true);
        }
        health.set("eds_health_status", flag("failed_eds_health")     ? "UNHEALTHY"
                                        : flag("eds_status_draining") ? "DRAINING"
                                        : flag("degraded_eds_health") ? "DEGRADED"
                                                                      : "HEALTHY");
        hs.set("weight", h.weight);
        // Percentages as Envoy's Percent message, only where computed.
        if (h.success_rate >= 0) {
          hs.set("success_rate", Json::object()).set("value", h.success_rate);
        }
        if (h.local_origin_success_rate >= 0) {
          hs.set("local_origin_success_rate", Json::object())
              .set("value", h.local_origin_success_rate);
        }
      }
      if (c.success_rate_average >= 0) {
        Json& od = s.set("success_rate_ejection_threshold", Json::object());
        od.set("value", c.success_rate_ejection_threshold);
      }
      if (c.local_origin_success_rate_average >= 0) {
        Json& od = s.set("local_origin_success_rate_ejection_threshold", Json::object());
        od.set("value", c.local_origin_success_rate_ejection_threshold);
      }
      Json& cb = s.set("circuit_breakers", Json::object());
      Json& thresholds = cb.set("thresholds", Json::array());
      thresholds.push(thresholdsJson(c.default_priority, false));
      thresholds.push(thresholdsJson(c.high_priority, true));
      s.set("observability_name", c.name);
    }
    Json doc = Json::object();
    doc.set("cluster_statuses", std::move(statuses));
    return jsonResponse(doc.dump(true));
  }

  std::string out;
  for (const auto& c : infos) {
    absl::StrAppend(&out, c.name, "::observability_name::", c.name, "\n");
    for (const auto& [prefix, t] : {std::pair{"default_priority", c.default_priority},
                                    std::pair{"high_priority", c.high_priority}}) {
      absl::StrAppend(&out, c.name, "::", prefix, "::max_connections::", t.max_connections, "\n",
                      c.name, "::", prefix, "::max_pending_requests::", t.max_pending_requests, "\n",
                      c.name, "::", prefix, "::max_requests::", t.max_requests, "\n",
                      c.name, "::", prefix, "::max_retries::", t.max_retries, "\n");
    }
    if (c.outlier_detection) {
      absl::StrAppend(
          &out, c.name, "::outlier::success_rate_average::", c.success_rate_average, "\n", c.name,
          "::outlier::success_rate_ejection_threshold::", c.success_rate_ejection_threshold, "\n",
          c.name, "::outlier::local_origin_success_rate_average::",
          c.local_origin_success_rate_average, "\n", c.name,
          "::outlier::local_origin_success_rate_ejection_threshold::",
          c.local_origin_success_rate_ejection_threshold, "\n");
    }
    absl::StrAppend(&out, c.name, "::added_via_api::false\n");
    for (const auto& h : c.hosts) {
      const std::string p = absl::StrCat(c.name, "::", h.address, "::");
      for (const auto& st : h.stats) absl::StrAppend(&out, p, st.name, "::", st.value, "\n");
      absl::StrAppend(&out, p, "health_flags::", h.health, "\n", p, "weight::", h.weight, "\n", p,
                      "success_rate::", h.success_rate, "\n", p,
                      "local_origin_success_rate::", h.local_origin_success_rate, "\n");
    }
  }
  return textResponse(200, std::move(out));
}

} // namespace

void addConfigEndpoints(std::vector<Endpoint>& out, server::Instance& server) {
  out.push_back({"/config_dump",
                 "dump current Envoy configs (?resource=static_clusters|..., ?mask=, ?include_eds)",
                 false, [&server](const Request& r) { return configDump(server, r); }});
  out.push_back({"/listeners", "print listener info (?format=json)", false,
                 [&server](const Request& r) { return listeners(server, r); }});
  out.push_back({"/clusters", "upstream cluster status (?format=json)", false,
                 [&server](const Request& r) { return clusters(server, r); }});
}

} // namespace legate::admin
