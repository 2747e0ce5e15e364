#include "accesslog/filter.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/type/matcher/v3/string.pb.h"
#include "envoy/type/v3/percent.pb.h"
#include "runtime/runtime.h"

// HeaderMatcher's deprecated exact/prefix/suffix/contains fields are still
// valid Envoy config; we accept them.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::accesslog {
namespace {

namespace pb = envoy::config::accesslog::v3;

class ComparisonFilter : public Filter {
public:
  using ValueFn = uint64_t (*)(const StreamInfo&);
  // runtime_key (may be empty): a runtime value overriding value.
  ComparisonFilter(pb::ComparisonFilter::Op op, uint64_t value, std::string runtime_key, ValueFn fn)
      : op_(op), value_(value), runtime_key_(std::move(runtime_key)), fn_(fn) {}
  bool evaluate(const StreamInfo& info) const override {
    const uint64_t v = fn_(info);
    const uint64_t threshold =
        runtime_key_.empty() ? value_ : runtime::snapshot()->getInteger(runtime_key_, value_);
    switch (op_) {
    case pb::ComparisonFilter::GE: return v >= threshold;
    case pb::ComparisonFilter::LE: return v <= threshold;
    default: return v == threshold;
    }
  }

private:
  pb::ComparisonFilter::Op op_;
  uint64_t value_;
  std::string runtime_key_;
  ValueFn fn_;
};

class ConstantFilter : public Filter {
public:
  explicit ConstantFilter(bool v) : v_(v) {}
  bool evaluate(const StreamInfo&) const override { return v_; }

private:
  bool v_;
};

class CompositeFilter : public Filter {
public:
  CompositeFilter(std::vector<FilterPtr> filters, bool is_and)
      : filters_(std::move(filters)), is_and_(is_and) {}
  bool evaluate(const StreamInfo& info) const override {
    // Short-circuits like Envoy: and stops at the first false, or at the first true.
    for (const auto& f : filters_) {
      if (f->evaluate(info) != is_and_) return !is_and_;
    }
    return is_and_;
  }

private:
  std::vector<FilterPtr> filters_;
  bool is_and_;
};

uint64_t threadLocalRandom() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return engine();
}

class RuntimeFilter : public Filter {
public:
  // runtime_key: its runtime value (a numerator over denominator, or a
  // FractionalPercent) overrides numerator/denominator.
  RuntimeFilter(std::string runtime_key, uint64_t numerator, uint64_t denominator,
                bool independent, RandomFn random)
      : runtime_key_(std::move(runtime_key)), numerator_(numerator), denominator_(denominator),
        independent_(independent), random_(std::move(random)) {}
  bool evaluate(const StreamInfo& info) const override {
    uint64_t r;
    std::optional<std::string_view> id;
    if (!independent_ && info.request_headers != nullptr) {
      id = info.request_headers->get("x-request-id");
    }
    if (id && !id->empty()) {
      // Every log samples the same requests (as Envoy does with the request id).
      r = std::hash<std::string_view>{}(*id);
    } else {
      r = random_ ? random_() : threadLocalRandom();
    }
    return runtime::snapshot()->featureEnabled(runtime_key_, {numerator_, denominator_}, r);
  }

private:
  std::string runtime_key_;
  uint64_t numerator_;
  uint64_t denominator_;
  bool independent_;
  RandomFn random_;
};

class ResponseFlagFilter : public Filter {
public:
  // mask 0 with any_ = true: any flag set.
  ResponseFlagFilter(uint32_t mask, bool any) : mask_(mask), any_(any) {}
  bool evaluate(const StreamInfo& info) const override {
    return any_ ? info.response_flags != 0 : (info.response_flags & mask_) != 0;
  }

private:
  uint32_t mask_;
  bool any_;
};

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// A route HeaderMatcher restricted to exact/prefix/suffix/contains/present
// (plain or through string_match, with ignore_case) and invert_match.
class HeaderFilter : public Filter {
public:
  enum class Kind { Present, Exact, Prefix, Suffix, Contains };
  HeaderFilter(std::string name, Kind kind, std::string value, bool present, bool ignore_case,
               bool invert, bool missing_as_empty)
      : name_(std::move(name)), kind_(kind), value_(std::move(value)), present_(present),
        ignore_case_(ignore_case), invert_(invert), missing_as_empty_(missing_as_empty) {
    http::toLowerInPlace(name_);
  }
  bool evaluate(const StreamInfo& info) const override {
    std::vector<std::string_view> values;
    if (info.request_headers != nullptr) values = info.request_headers->getAll(name_);
    bool match;
    if (kind_ == Kind::Present) {
      match = values.empty() != present_;
    } else if (values.empty() && !missing_as_empty_) {
      match = false;
    } else {
      // Several values are matched as one comma-joined value, as Envoy does.
      std::string joined;
      for (size_t i = 0; i < values.size(); ++i) {
        if (i) joined += ',';
        joined += values[i];
      }
      match = matchValue(joined);
    }
    return match != invert_;
  }

private:
  bool matchValue(std::string_view v) const {
    const std::string_view want = value_;
    auto eq = [this](std::string_view a, std::string_view b) {
      return ignore_case_ ? equalsIgnoreCase(a, b) : a == b;
    };
    switch (kind_) {
    case Kind::Exact: return eq(v, want);
    case Kind::Prefix: return v.size() >= want.size() && eq(v.substr(0, want.size()), want);
    case Kind::Suffix:
      return v.size() >= want.size() && eq(v.substr(v.size() - want.size()), want);
    case Kind::Contains:
      if (want.size() > v.size()) return false;
      for (size_t i = 0; i + want.size() <= v.size(); ++i) {
        if (eq(v.substr(i, want.size()), want)) return true;
      }
      return false;
    default: return false;
    }
  }

  std::string name_;
  Kind kind_;
  std::string value_;
  bool present_;
  bool ignore_case_;
  bool invert_;
  bool missing_as_empty_;
};

absl::StatusOr<FilterPtr> createHeaderFilter(const envoy::config::route::v3::HeaderMatcher& m,
                                             const std::string& path) {
  using HM = envoy::config::route::v3::HeaderMatcher;
  using SM = envoy::type::matcher::v3::StringMatcher;
  using Kind = HeaderFilter::Kind;
  if (m.name().empty()) {
    return absl::InvalidArgumentError(path + ".name: a header name is required");
  }
  Kind kind = Kind::Present;
  std::string value;
  bool present = true;
  bool ignore_case = false;
  switch (m.header_match_specifier_case()) {
  case HM::HEADER_MATCH_SPECIFIER_NOT_SET: break; // no specifier: "is present"
  case HM::kPresentMatch: present = m.present_match(); break;
  case HM::kExactMatch: kind = Kind::Exact; value = m.exact_match(); break;
  case HM::kPrefixMatch: kind = Kind::Prefix; value = m.prefix_match(); break;
  case HM::kSuffixMatch: kind = Kind::Suffix; value = m.suffix_match(); break;
  case HM::kContainsMatch: kind = Kind::Contains; value = m.contains_match(); break;
  case HM::kStringMatch: {
    const SM& s = m.string_match();
    ignore_case = s.ignore_case();
    switch (s.match_pattern_case()) {
    case SM::kExact: kind = Kind::Exact; value = s.exact(); break;
    case SM::kPrefix: kind = Kind::Prefix; value = s.prefix(); break;
    case SM::kSuffix: kind = Kind::Suffix; value = s.suffix(); break;
    case SM::kContains: kind = Kind::Contains; value = s.contains(); break;
    case SM::kSafeRegex:
      return absl::InvalidArgumentError(
          path + ".string_match.safe_regex: regex header matching in access log filters is not "
                 "implemented by legate yet");
    default:
      return absl::InvalidArgumentError(path + ".string_match: this match pattern is not "
                                               "implemented by legate");
    }
    break;
  }
  case HM::kSafeRegexMatch:
    return absl::InvalidArgumentError(path + ".safe_regex_match: regex header matching in access "
                                             "log filters is not implemented by legate yet");
  case HM::kRangeMatch:
    return absl::InvalidArgumentError(path + ".range_match: range header matching in access log "
                                             "filters is not implemented by legate yet");
  default:
    return absl::InvalidArgumentError(path + ": this header match kind is not implemented by "
                                             "legate");
  }
  return std::make_unique<HeaderFilter>(m.name(), kind, std::move(value), present, ignore_case,
                                        m.invert_match(), m.treat_missing_header_as_empty());
}

absl::Status refuse(const std::string& path, const std::string& field) {
  return absl::InvalidArgumentError(path + "." + field +
                                    ": this access log filter is not implemented by legate");
}

absl::StatusOr<std::vector<FilterPtr>>
createList(const google::protobuf::RepeatedPtrField<pb::AccessLogFilter>& protos,
           const std::string& path, const RandomFn& random) {
  if (protos.size() < 2) {
    return absl::InvalidArgumentError(path + ": at least two filters are required");
  }
  std::vector<FilterPtr> out;
  for (int i = 0; i < protos.size(); ++i) {
    auto f = createFilter(protos[i], path + "[" + std::to_string(i) + "]", random);
    if (!f.ok()) return f.status();
    out.push_back(std::move(*f));
  }
  return out;
}

} // namespace

absl::StatusOr<FilterPtr> createFilter(const pb::AccessLogFilter& proto, const std::string& path,
                                       RandomFn random) {
  using F = pb::AccessLogFilter;
  switch (proto.filter_specifier_case()) {
  case F::kStatusCodeFilter: {
    const auto& c = proto.status_code_filter().comparison();
    return std::make_unique<ComparisonFilter>(
        c.op(), c.value().default_value(), c.value().runtime_key(),
        [](const StreamInfo& i) -> uint64_t { return i.response_code; });
  }
  case F::kDurationFilter: {
    const auto& c = proto.duration_filter().comparison();
    return std::make_unique<ComparisonFilter>(
        c.op(), c.value().default_value(), c.value().runtime_key(),
        [](const StreamInfo& i) -> uint64_t {
          return static_cast<uint64_t>(std::max<int64_t>(0, i.duration().count()));
        });
  }
  case F::kNotHealthCheckFilter:
    // legate does not answer health checks yet, so no stream is ever one: always log.
    return std::make_unique<ConstantFilter>(true);
  case F::kRuntimeFilter: {
    const auto& r = proto.runtime_filter();
    uint64_t denominator = 100;
    switch (r.percent_sampled().denominator()) {
    case envoy::type::v3::FractionalPercent::TEN_THOUSAND: denominator = 10000; break;
    case envoy::type::v3::FractionalPercent::MILLION: denominator = 1000000; break;
    default: break;
    }
    // Without percent_sampled Envoy samples 0% unless the runtime key says otherwise.
    return std::make_unique<RuntimeFilter>(r.runtime_key(), r.percent_sampled().numerator(),
                                           denominator, r.use_independent_randomness(),
                                           std::move(random));
  }
  case F::kAndFilter:
  case F::kOrFilter: {
    const bool is_and = proto.has_and_filter();
    auto list = createList(is_and ? proto.and_filter().filters() : proto.or_filter().filters(),
                           path + (is_and ? ".and_filter.filters" : ".or_filter.filters"), random);
    if (!list.ok()) return list.status();
    return std::make_unique<CompositeFilter>(std::move(*list), is_and);
  }
  case F::kHeaderFilter:
    return createHeaderFilter(proto.header_filter().header(), path + ".header_filter.header");
  case F::kResponseFlagFilter: {
    uint32_t mask = 0;
    const auto& flags = proto.response_flag_filter().flags();
    for (int i = 0; i < flags.size(); ++i) {
      auto bit = responseFlagFromName(flags[i]);
      if (!bit) {
        return absl::InvalidArgumentError(path + ".response_flag_filter.flags[" +
                                          std::to_string(i) + "]: unknown response flag '" +
                                          flags[i] + "'");
      }
      mask |= *bit;
    }
    return std::make_unique<ResponseFlagFilter>(mask, flags.empty());
  }
  case F::kTraceableFilter: return refuse(path, "traceable_filter");
  case F::kGrpcStatusFilter: return refuse(path, "grpc_status_filter");
  case F::kMetadataFilter: return refuse(path, "metadata_filter");
  case F::kLogTypeFilter: return refuse(path, "log_type_filter");
  case F::kExtensionFilter: return refuse(path, "extension_filter");
  default:
    return absl::InvalidArgumentError(path + ": an access log filter must set one filter kind");
  }
}

} // namespace legate::accesslog
