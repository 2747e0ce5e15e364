#include "stats/text_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"
#include "stats/json.h"

namespace legate::stats {

absl::StatusOr<StatsQuery> StatsQuery::create(std::string_view filter, bool used_only) {
  StatsQuery q;
  q.used_only_ = used_only;
  if (!filter.empty()) {
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_shared<RE2>(re2::StringPiece(filter.data(), filter.size()), options);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid filter regex '", absl::string_view(filter.data(), filter.size()),
                       "': ", re->error()));
    }
    q.regex_ = std::move(re);
  }
  return q;
}

bool StatsQuery::matches(std::string_view name) const {
  return regex_ == nullptr ||
         RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *regex_);
}

namespace {

// Shortest decimal text that reads back as v ("1", "0.5", "1.025").
std::string formatDouble(double v) {
  if (std::isnan(v)) return "nan";
  char buf[400]; // fixed notation of the largest double fits
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  return std::string(buf, end);
}

// name -> rendered value, counters and gauges together.
std::vector<std::pair<std::string, Json>> scalarStats(const Store& store, const StatsQuery& query) {
  std::vector<std::pair<std::string, Json>> out;
  store.forEachCounter([&](const Counter& c) {
    const uint64_t v = c.value();
    if (!query.selects(c)) return;
    out.emplace_back(c.name(), Json(v));
  });
  store.forEachGauge([&](const Gauge& g) {
    const int64_t v = g.value();
    if (!query.selects(g)) return;
    out.emplace_back(g.name(), Json(v));
  });
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::vector<std::pair<std::string, Histogram::Snapshot>> histogramStats(const Store& store,
                                                                        const StatsQuery& query) {
  std::vector<std::pair<std::string, Histogram::Snapshot>> out;
  store.forEachHistogram([&](const Histogram& h) {
    if (!query.matches(h.name())) return;
    Histogram::Snapshot s = h.snapshot();
    if (query.usedOnly() && s.count == 0) return;
    out.emplace_back(h.name(), std::move(s));
  });
  return out; // forEachHistogram is already in name order
}

} // namespace

std::string histogramSummary(const Histogram::Snapshot& snapshot) {
  if (snapshot.count == 0) {
    return "No recorded values";
  }
  std::string out;
  for (double q : kSupportedQuantiles) {
    const std::string v = formatDouble(snapshot.quantile(q / 100));
    if (!out.empty()) out.push_back(' ');
    absl::StrAppend(&out, "P", formatDouble(q), "(", v, ",", v, ")");
  }
  return out;
}

std::string renderText(const Store& store, const StatsQuery& query) {
  std::string out;
  for (const auto& [name, value] : scalarStats(store, query)) {
    absl::StrAppend(&out, name, ": ", value.dump(), "\n");
  }
  for (const auto& [name, snapshot] : histogramStats(store, query)) {
    absl::StrAppend(&out, name, ": ", histogramSummary(snapshot), "\n");
  }
  return out;
}

std::string renderJson(const Store& store, const StatsQuery& query) {
  Json stats = Json::array();
  for (auto& [name, value] : scalarStats(store, query)) {
    Json& entry = stats.push(Json::object());
    entry.set("name", name);
    entry.set("value", std::move(value));
  }
  const auto histograms = histogramStats(store, query);
  if (!histograms.empty()) {
    Json quantiles = Json::array();
    for (double q : kSupportedQuantiles) quantiles.push(q);
    Json computed = Json::array();
    for (const auto& [name, snapshot] : histograms) {
      Json& entry = computed.push(Json::object());
      entry.set("name", name);
      Json& values = entry.set("values", Json::array());
      for (double q : kSupportedQuantiles) {
        Json& pair = values.push(Json::object());
        Json v = snapshot.count == 0 ? Json() : Json(snapshot.quantile(q / 100));
        pair.set("interval", v);
        pair.set("cumulative", v);
      }
    }
    Json& element = stats.push(Json::object());
    Json& body = element.set("histograms", Json::object());
    body.set("supported_quantiles", std::move(quantiles));
    body.set("computed_quantiles", std::move(computed));
  }
  Json doc = Json::object();
  doc.set("stats", std::move(stats));
  return doc.dump(true);
}

} // namespace legate::stats
