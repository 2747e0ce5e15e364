#include "stats/prometheus.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace legate::stats {

namespace {

std::string formatDouble(double v) {
  char buf[400]; // fixed notation of the largest double fits
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  return std::string(buf, end);
}

enum class Type { Counter, Gauge, Histogram };

const char* typeName(Type t) {
  switch (t) {
  case Type::Counter: return "counter";
  case Type::Gauge: return "gauge";
  case Type::Histogram: return "histogram";
  }
  return "untyped";
}

struct Family {
  Type type;
  std::vector<std::string> lines;
};

// Collects samples into families; enforces one type per metric name and unique
// label sets, which the format requires.
class Exposition {
public:
  // Returns the family for metric, or nullptr if that name belongs to another type.
  Family* family(const std::string& metric, Type type) {
    auto [it, inserted] = families_.try_emplace(metric, Family{type, {}});
    if (!inserted && it->second.type != type) return nullptr;
    if (inserted) order_[static_cast<int>(type)].push_back(metric);
    return &it->second;
  }
  // True the first time metric+labels is seen.
  bool firstSeries(const std::string& metric, const std::string& labels) {
    return series_.insert(metric + labels).second;
  }
  std::string render() const {
    std::string out;
    for (const auto& names : order_) {
      std::vector<std::string> sorted = names;
      std::sort(sorted.begin(), sorted.end());
      for (const auto& name : sorted) {
        const Family& f = families_.at(name);
        absl::StrAppend(&out, "# TYPE ", name, " ", typeName(f.type), "\n");
        for (const auto& line : f.lines) absl::StrAppend(&out, line, "\n");
      }
    }
    return out;
  }

private:
  std::map<std::string, Family> families_;
  std::vector<std::string> order_[3];
  std::set<std::string> series_;
};

// `a="x",b="y"` (no braces) from the tags.
std::string labelText(const TaggedName& tagged) {
  std::string out;
  for (const auto& [tag, value] : tagged.tags) {
    if (!out.empty()) out.push_back(',');
    absl::StrAppend(&out, sanitizePrometheusName(tag), "=\"", escapePrometheusLabelValue(value),
                    "\"");
  }
  return out;
}

std::string braced(const std::string& labels) {
  return labels.empty() ? std::string() : absl::StrCat("{", labels, "}");
}

} // namespace

std::string sanitizePrometheusName(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == ':';
    if (!ok) c = '_';
  }
  return out;
}

std::string prometheusMetricName(std::string_view name) {
  return absl::StrCat("envoy_", sanitizePrometheusName(name));
}

std::string escapePrometheusLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
    case '\\': out += "\\\\"; break;
    case '"': out += "\\\""; break;
    case '\n': out += "\\n"; break;
    default: out.push_back(c);
    }
  }
  return out;
}

std::string renderPrometheus(const Store& store, const StatsQuery& query) {
  Exposition exposition;
  const TagProducer& tags = store.tagProducer();
  auto addScalar = [&](std::string_view stat_name, Type type, const std::string& value) {
    const TaggedName tagged = tags.produce(stat_name);
    const std::string metric = prometheusMetricName(tagged.name);
    const std::string labels = braced(labelText(tagged));
    Family* family = exposition.family(metric, type);
    if (family == nullptr || !exposition.firstSeries(metric, labels)) return;
    family->lines.push_back(absl::StrCat(metric, labels, " ", value));
  };
  store.forEachCounter([&](const Counter& c) {
    const uint64_t v = c.value();
    if (!query.selects(c)) return;
    addScalar(c.name(), Type::Counter, absl::StrCat(v));
  });
  store.forEachGauge([&](const Gauge& g) {
    const int64_t v = g.value();
    if (!query.selects(g)) return;
    addScalar(g.name(), Type::Gauge, absl::StrCat(v));
  });
  store.forEachHistogram([&](const Histogram& h) {
    if (!query.matches(h.name())) return;
    const Histogram::Snapshot s = h.snapshot();
    if (query.usedOnly() && s.count == 0) return;
    const TaggedName tagged = tags.produce(h.name());
    const std::string metric = prometheusMetricName(tagged.name);
    const std::string labels = labelText(tagged);
    Family* family = exposition.family(metric, Type::Histogram);
    if (family == nullptr || !exposition.firstSeries(metric, labels)) return;
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < s.bounds->size(); ++i) {
      family->lines.push_back(absl::StrCat(metric, "_bucket{", labels, sep, "le=\"",
                                           formatDouble((*s.bounds)[i]), "\"} ",
                                           s.cumulative[i]));
    }
    family->lines.push_back(
        absl::StrCat(metric, "_bucket{", labels, sep, "le=\"+Inf\"} ", s.count));
    family->lines.push_back(absl::StrCat(metric, "_sum", braced(labels), " ", formatDouble(s.sum)));
    family->lines.push_back(absl::StrCat(metric, "_count", braced(labels), " ", s.count));
  });
  return exposition.render();
}

} // namespace legate::stats
