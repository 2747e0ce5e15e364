// /stats (text, json, prometheus), /stats/prometheus, /reset_counters.

#include "absl/strings/str_cat.h"
#include "admin/http_util.h"
#include "stats/prometheus.h"
#include "stats/text_format.h"

namespace legate::admin {

namespace {

// Envoy's /stats/prometheus content type is plain text too.
Response renderStats(server::Instance& server, const Request& request, std::string format) {
  auto query = stats::StatsQuery::create(request.param("filter"), request.has("usedonly"));
  if (!query.ok()) {
    return textResponse(400, absl::StrCat(query.status().message(), "\n"));
  }
  if (format.empty() || format == "text") {
    return textResponse(200, stats::renderText(server.stats(), *query));
  }
  if (format == "json") {
    return jsonResponse(stats::renderJson(server.stats(), *query));
  }
  if (format == "prometheus") {
    return textResponse(200, stats::renderPrometheus(server.stats(), *query));
  }
  return textResponse(400, absl::StrCat("unknown format '", format,
                                        "': use format=text, format=json or format=prometheus\n"));
}

} // namespace

void addStatsEndpoints(std::vector<Endpoint>& out, server::Instance& server) {
  out.push_back({"/stats",
                 "print server stats (?filter=REGEX, ?usedonly, ?format=json|prometheus)", false,
                 [&server](const Request& r) { return renderStats(server, r, r.param("format")); }});
  out.push_back({"/stats/prometheus", "print server stats in prometheus format", false,
                 [&server](const Request& r) { return renderStats(server, r, "prometheus"); }});
  out.push_back({"/reset_counters", "reset all counters to zero", true,
                 [&server](const Request&) {
                   server.stats().resetCounters();
                   return textResponse(200, "OK\n");
                 }});
}

} // namespace legate::admin
