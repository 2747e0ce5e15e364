// /runtime, /runtime_modify.

#include <map>

#include "absl/strings/str_cat.h"
#include "admin/http_util.h"
#include "stats/json.h"

namespace legate::admin {

namespace {

using stats::Json;

std::string fractionText(const runtime::Fraction& f) {
  return absl::StrCat(f.numerator, "/", f.denominator);
}

// Envoy's shape: {"layers": [names], "entries": {key: {"layer_values": [per layer,
// "" where absent], "final_value": ...}}}.
Response runtimeDump(server::Instance& server) {
  const auto snapshot = server.runtime().snapshot();
  const auto& layers = snapshot->layers();
  std::map<std::string, std::vector<std::string>> entries;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto note = [&](const std::string& key, std::string value) {
      auto& values = entries[key];
      values.resize(layers.size());
      values[i] = std::move(value);
    };
    for (const auto& [key, value] : layers[i].values) note(key, value);
    for (const auto& [key, f] : layers[i].fractions) note(key, fractionText(f));
  }
  Json doc = Json::object();
  Json& names = doc.set("layers", Json::array());
  for (const auto& l : layers) names.push(l.name);
  Json& out = doc.set("entries", Json::object());
  for (auto& [key, values] : entries) {
    values.resize(layers.size());
    Json& e = out.set(key, Json::object());
    Json& lv = e.set("layer_values", Json::array());
    std::string final_value;
    for (const auto& v : values) {
      lv.push(v);
      if (!v.empty()) final_value = v;
    }
    e.set("final_value", final_value);
  }
  return jsonResponse(doc.dump(true));
}

Response runtimeModify(server::Instance& server, const Request& request) {
  if (request.query.empty()) {
    return textResponse(400, "usage: POST /runtime_modify?key1=value1&key2=value2 "
                             "(an empty value removes the key from the admin layer)\n");
  }
  std::map<std::string, std::string> values(request.query.begin(), request.query.end());
  if (auto st = server.runtime().mergeAdminValues(values); !st.ok()) {
    return textResponse(503, absl::StrCat(st.message(), "\n"));
  }
  return textResponse(200, "OK\n");
}

} // namespace

void addRuntimeEndpoints(std::vector<Endpoint>& out, server::Instance& server) {
  out.push_back({"/runtime", "print runtime values", false,
                 [&server](const Request&) { return runtimeDump(server); }});
  out.push_back({"/runtime_modify", "modify runtime values (POST ?key=value)", true,
                 [&server](const Request& r) { return runtimeModify(server, r); }});
}

} // namespace legate::admin
