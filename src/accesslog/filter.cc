#include "accesslog/filter.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <string_view>
#include <vector>

#include "common/random.h"
#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/data/accesslog/v3/accesslog.pb.h"
#include "envoy/type/matcher/v3/metadata.pb.h"
#include "envoy/type/matcher/v3/value.pb.h"
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

// traceable_filter: Envoy documents it as "requests that are traceable", and
// what its filter matches is a trace decision that says traced with the reason
// "forced by the service" (x-envoy-force-trace from an internal caller); a
// randomly sampled or client-forced (x-client-trace-id) trace does not match.
// legate matches the same, so a config logs the same requests in both. A stream
// whose connection manager has no tracing is never traceable; a caller's own
// sampled flag (B3, traceparent) is no decision of ours and does not count.
class TraceableFilter : public Filter {
public:
  bool evaluate(const StreamInfo& info) const override {
    return info.traced && info.trace_service_forced;
  }
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
  thread_local std::mt19937_64 engine{randomSeed()};
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

// exact / prefix / suffix / contains, optionally ignoring case (Envoy's StringMatcher
// without regexes). Present: matches nothing (callers test presence themselves).
struct StringMatch {
  enum class Kind { Present, Exact, Prefix, Suffix, Contains };
  Kind kind = Kind::Present;
  std::string value;
  bool ignore_case = false;

  bool matches(std::string_view v) const {
    const std::string_view want = value;
    auto eq = [this](std::string_view a, std::string_view b) {
      return ignore_case ? equalsIgnoreCase(a, b) : a == b;
    };
    switch (kind) {
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
};

// A StringMatcher; regexes (and anything newer) are refused naming path.
absl::StatusOr<StringMatch> stringMatch(const envoy::type::matcher::v3::StringMatcher& s,
                                        const std::string& path) {
  using SM = envoy::type::matcher::v3::StringMatcher;
  StringMatch m;
  m.ignore_case = s.ignore_case();
  switch (s.match_pattern_case()) {
  case SM::kExact: m.kind = StringMatch::Kind::Exact; m.value = s.exact(); break;
  case SM::kPrefix: m.kind = StringMatch::Kind::Prefix; m.value = s.prefix(); break;
  case SM::kSuffix: m.kind = StringMatch::Kind::Suffix; m.value = s.suffix(); break;
  case SM::kContains: m.kind = StringMatch::Kind::Contains; m.value = s.contains(); break;
  case SM::kSafeRegex:
    return absl::InvalidArgumentError(path + ".safe_regex: regex matching in access log filters "
                                             "is not implemented by legate yet");
  default:
    return absl::InvalidArgumentError(path + ": this match pattern is not implemented by legate");
  }
  return m;
}

// A route HeaderMatcher restricted to exact/prefix/suffix/contains/present
// (plain or through string_match, with ignore_case) and invert_match.
class HeaderFilter : public Filter {
public:
  using Kind = StringMatch::Kind;
  HeaderFilter(std::string name, StringMatch match, bool present, bool invert,
               bool missing_as_empty)
      : name_(std::move(name)), match_(std::move(match)), present_(present), invert_(invert),
        missing_as_empty_(missing_as_empty) {
    http::toLowerInPlace(name_);
  }
  bool evaluate(const StreamInfo& info) const override {
    std::vector<std::string_view> values;
    if (info.request_headers != nullptr) values = info.request_headers->getAll(name_);
    bool match;
    if (match_.kind == Kind::Present) {
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
      match = match_.matches(joined);
    }
    return match != invert_;
  }

private:
  std::string name_;
  StringMatch match_;
  bool present_;
  bool invert_;
  bool missing_as_empty_;
};

absl::StatusOr<FilterPtr> createHeaderFilter(const envoy::config::route::v3::HeaderMatcher& m,
                                             const std::string& path) {
  using HM = envoy::config::route::v3::HeaderMatcher;
  using Kind = HeaderFilter::Kind;
  if (m.name().empty()) {
    return absl::InvalidArgumentError(path + ".name: a header name is required");
  }
  StringMatch match;
  bool present = true;
  switch (m.header_match_specifier_case()) {
  case HM::HEADER_MATCH_SPECIFIER_NOT_SET: break; // no specifier: "is present"
  case HM::kPresentMatch: present = m.present_match(); break;
  case HM::kExactMatch: match = {Kind::Exact, m.exact_match()}; break;
  case HM::kPrefixMatch: match = {Kind::Prefix, m.prefix_match()}; break;
  case HM::kSuffixMatch: match = {Kind::Suffix, m.suffix_match()}; break;
  case HM::kContainsMatch: match = {Kind::Contains, m.contains_match()}; break;
  case HM::kStringMatch: {
    auto sm = stringMatch(m.string_match(), path + ".string_match");
    if (!sm.ok()) return sm.status();
    match = std::move(*sm);
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
  return std::make_unique<HeaderFilter>(m.name(), std::move(match), present, m.invert_match(),
                                        m.treat_missing_header_as_empty());
}

// gRPC's status of a stream as Envoy finds it: grpc-status in the trailers, else in
// the headers, else the HTTP status mapped as gRPC specifies, else UNKNOWN (2).
uint32_t grpcStatus(const StreamInfo& info) {
  constexpr uint32_t kUnknown = 2;
  for (const http::HeaderMap* h : {info.response_trailers, info.response_headers}) {
    if (h == nullptr) continue;
    if (auto v = h->get("grpc-status")) {
      uint32_t n = 0;
      if (v->empty() || v->size() > 9) return kUnknown;
      for (char c : *v) {
        if (c < '0' || c > '9') return kUnknown;
        n = n * 10 + static_cast<uint32_t>(c - '0');
      }
      return n;
    }
  }
  switch (info.response_code) {
  case 400: return 13; // INTERNAL
  case 401: return 16; // UNAUTHENTICATED
  case 403: return 7;  // PERMISSION_DENIED
  case 404: return 12; // UNIMPLEMENTED
  case 429:
  case 502:
  case 503:
  case 504: return 14; // UNAVAILABLE
  default: return kUnknown;
  }
}

class GrpcStatusFilter : public Filter {
public:
  GrpcStatusFilter(std::vector<uint32_t> statuses, bool exclude)
      : statuses_(std::move(statuses)), exclude_(exclude) {}
  bool evaluate(const StreamInfo& info) const override {
    const uint32_t status = grpcStatus(info);
    const bool found = std::find(statuses_.begin(), statuses_.end(), status) != statuses_.end();
    return found != exclude_;
  }

private:
  std::vector<uint32_t> statuses_;
  bool exclude_;
};

// legate logs once per stream, at its end: DownstreamEnd for HTTP, TcpConnectionEnd
// for tcp_proxy.
class LogTypeFilter : public Filter {
public:
  LogTypeFilter(std::vector<int> types, bool exclude) : types_(std::move(types)), exclude_(exclude) {}
  bool evaluate(const StreamInfo& info) const override {
    const int type = info.protocol.empty() ? envoy::data::accesslog::v3::TcpConnectionEnd
                                           : envoy::data::accesslog::v3::DownstreamEnd;
    const bool found = std::find(types_.begin(), types_.end(), type) != types_.end();
    return found != exclude_;
  }

private:
  std::vector<int> types_;
  bool exclude_;
};

// A ValueMatcher of the kinds legate implements (null, double exact/range, string,
// bool, present).
struct ValueMatch {
  using V = google::protobuf::Value;
  envoy::type::matcher::v3::ValueMatcher::MatchPatternCase kind;
  double exact = 0, start = 0, end = 0;
  bool is_range = false;
  StringMatch string;
  bool flag = false;

  bool matches(const V& v) const {
    using VM = envoy::type::matcher::v3::ValueMatcher;
    switch (kind) {
    case VM::kNullMatch: return v.kind_case() == V::kNullValue;
    case VM::kDoubleMatch:
      if (v.kind_case() != V::kNumberValue) return false;
      return is_range ? v.number_value() >= start && v.number_value() < end
                      : v.number_value() == exact;
    case VM::kStringMatch: return v.kind_case() == V::kStringValue && string.matches(v.string_value());
    case VM::kBoolMatch: return v.kind_case() == V::kBoolValue && v.bool_value() == flag;
    case VM::kPresentMatch: return (v.kind_case() != V::KIND_NOT_SET) == flag;
    default: return false;
    }
  }
};

// metadata_filter: the dynamic metadata value at filter + path against a value
// matcher; a missing key gives match_if_key_not_found (default true).
class MetadataFilter : public Filter {
public:
  MetadataFilter(std::string ns, std::vector<std::string> path, ValueMatch match, bool invert,
                 bool if_missing)
      : ns_(std::move(ns)), path_(std::move(path)), match_(std::move(match)), invert_(invert),
        if_missing_(if_missing) {}
  bool evaluate(const StreamInfo& info) const override {
    const google::protobuf::Value* v = find(info);
    if (v == nullptr || v->kind_case() == google::protobuf::Value::KIND_NOT_SET) return if_missing_;
    return match_.matches(*v) != invert_;
  }

private:
  const google::protobuf::Value* find(const StreamInfo& info) const {
    if (info.dynamicMetadata() == nullptr) return nullptr;
    const auto& fm = info.dynamicMetadata()->filter_metadata();
    auto it = fm.find(ns_);
    if (it == fm.end()) return nullptr;
    const google::protobuf::Struct* st = &it->second;
    const google::protobuf::Value* v = nullptr;
    for (const std::string& key : path_) {
      if (st == nullptr) return nullptr;
      auto f = st->fields().find(key);
      if (f == st->fields().end()) return nullptr;
      v = &f->second;
      st = v->has_struct_value() ? &v->struct_value() : nullptr;
    }
    return v;
  }

  std::string ns_;
  std::vector<std::string> path_;
  ValueMatch match_;
  bool invert_;
  bool if_missing_;
};

absl::StatusOr<FilterPtr> createMetadataFilter(const pb::MetadataFilter& proto,
                                               const std::string& path) {
  using VM = envoy::type::matcher::v3::ValueMatcher;
  // Without a matcher Envoy logs every stream (the key cannot be looked up).
  if (!proto.has_matcher()) return std::make_unique<ConstantFilter>(true);
  const auto& m = proto.matcher();
  const std::string mpath = path + ".matcher";
  std::vector<std::string> keys;
  for (int i = 0; i < m.path_size(); ++i) keys.push_back(m.path(i).key());
  if (m.filter().empty() || keys.empty()) {
    return absl::InvalidArgumentError(mpath + ": filter and a non-empty path are required");
  }
  ValueMatch match;
  const VM& vm = m.value();
  match.kind = vm.match_pattern_case();
  switch (match.kind) {
  case VM::kNullMatch: break;
  case VM::kDoubleMatch:
    if (vm.double_match().has_range()) {
      match.is_range = true;
      match.start = vm.double_match().range().start();
      match.end = vm.double_match().range().end();
    } else {
      match.exact = vm.double_match().exact();
    }
    break;
  case VM::kStringMatch: {
    auto sm = stringMatch(vm.string_match(), mpath + ".value.string_match");
    if (!sm.ok()) return sm.status();
    match.string = std::move(*sm);
    break;
  }
  case VM::kBoolMatch: match.flag = vm.bool_match(); break;
  case VM::kPresentMatch: match.flag = vm.present_match(); break;
  case VM::kListMatch:
  case VM::kOrMatch:
    return absl::InvalidArgumentError(mpath + ".value: list_match and or_match are not "
                                              "implemented by legate yet");
  default: return absl::InvalidArgumentError(mpath + ".value: a value matcher is required");
  }
  const bool if_missing =
      !proto.has_match_if_key_not_found() || proto.match_if_key_not_found().value();
  return std::make_unique<MetadataFilter>(m.filter(), std::move(keys), std::move(match),
                                          m.invert(), if_missing);
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
  case F::kTraceableFilter: return std::make_unique<TraceableFilter>();
  case F::kGrpcStatusFilter: {
    std::vector<uint32_t> statuses;
    for (int s : proto.grpc_status_filter().statuses()) statuses.push_back(static_cast<uint32_t>(s));
    return std::make_unique<GrpcStatusFilter>(std::move(statuses),
                                              proto.grpc_status_filter().exclude());
  }
  case F::kMetadataFilter:
    return createMetadataFilter(proto.metadata_filter(), path + ".metadata_filter");
  case F::kLogTypeFilter: {
    std::vector<int> types(proto.log_type_filter().types().begin(),
                           proto.log_type_filter().types().end());
    return std::make_unique<LogTypeFilter>(std::move(types), proto.log_type_filter().exclude());
  }
  case F::kExtensionFilter: return refuse(path, "extension_filter");
  default:
    return absl::InvalidArgumentError(path + ": an access log filter must set one filter kind");
  }
}

} // namespace legate::accesslog
