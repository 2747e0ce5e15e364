#include "router/matchers.h"

#include <charconv>

#include "envoy/config/route/v3/route_components.pb.h"
#include "envoy/type/matcher/v3/regex.pb.h"
#include "envoy/type/matcher/v3/string.pb.h"
#include "re2/re2.h"

// Envoy still honours the deprecated fields (exact_match, append, total_weight,
// google_re2.max_program_size, ...); so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::router {

namespace {

re2::StringPiece piece(std::string_view s) {
  return re2::StringPiece(s.data(), s.size());
}

// Whole-string base-10 int64 with an optional sign, as Envoy's range_match.
std::optional<int64_t> parseInt64(std::string_view s) {
  if (s.empty())
    return std::nullopt;
  size_t start = 0;
  if (s[0] == '+')
    start = 1;  // from_chars accepts '-' but not '+'
  if (start == s.size())
    return std::nullopt;
  int64_t v = 0;
  const char* first = s.data() + start;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last)
    return std::nullopt;
  if (start == 1 && s.size() > 1 && s[1] == '-')
    return std::nullopt;  // "+-1"
  return v;
}

}  // namespace

std::string toLower(std::string_view s) {
  std::string out(s);
  http::toLowerInPlace(out);
  return out;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && http::equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

bool endsWithIgnoreCase(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         http::equalsIgnoreCase(s.substr(s.size() - suffix.size()), suffix);
}

absl::StatusOr<std::shared_ptr<const re2::RE2>> compileRegex(
    const envoy::type::matcher::v3::RegexMatcher& proto, const std::string& path) {
  re2::RE2::Options options(re2::RE2::Quiet);
  auto re = std::make_shared<const re2::RE2>(piece(proto.regex()), options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(path + ": invalid regex '" + proto.regex() +
                                      "': " + re->error());
  }
  // The deprecated google_re2.max_program_size still overrides the limit.
  int limit = kMaxRegexProgramSize;
  if (proto.has_google_re2() && proto.google_re2().has_max_program_size()) {
    limit = static_cast<int>(proto.google_re2().max_program_size().value());
  }
  if (re->ProgramSize() > limit) {
    return absl::InvalidArgumentError(
        path + ": regex '" + proto.regex() + "' is too complex: RE2 program size " +
        std::to_string(re->ProgramSize()) + " exceeds the maximum of " + std::to_string(limit) +
        " (Envoy's re2.max_program_size.error_level); simplify the pattern");
  }
  return re;
}

bool regexFullMatch(const re2::RE2& re, std::string_view text) {
  return re2::RE2::FullMatch(piece(text), re);
}

std::string regexReplaceAll(const re2::RE2& re, std::string_view text,
                            const std::string& substitution) {
  std::string out(text);
  re2::RE2::GlobalReplace(&out, re, piece(substitution));
  return out;
}

// ---- StringMatcher ----

absl::StatusOr<StringMatcher> StringMatcher::create(
    const envoy::type::matcher::v3::StringMatcher& proto, const std::string& path) {
  using P = envoy::type::matcher::v3::StringMatcher;
  StringMatcher m;
  m.ignore_case_ = proto.ignore_case();
  switch (proto.match_pattern_case()) {
  case P::kExact:
    m.kind_ = Kind::kExact;
    m.value_ = proto.exact();
    break;
  case P::kPrefix:
    m.kind_ = Kind::kPrefix;
    m.value_ = proto.prefix();
    break;
  case P::kSuffix:
    m.kind_ = Kind::kSuffix;
    m.value_ = proto.suffix();
    break;
  case P::kContains:
    m.kind_ = Kind::kContains;
    m.value_ = proto.contains();
    break;
  case P::kSafeRegex: {
    m.kind_ = Kind::kRegex;
    auto re = compileRegex(proto.safe_regex(), path + ".safe_regex");
    if (!re.ok())
      return re.status();
    m.regex_ = std::move(*re);
    m.ignore_case_ = false;
    break;
  }
  case P::kCustom:
    return absl::InvalidArgumentError(path +
                                      ".custom: custom string matchers are not implemented by "
                                      "legate yet; use exact, prefix, suffix, contains or "
                                      "safe_regex");
  case P::MATCH_PATTERN_NOT_SET:
    return absl::InvalidArgumentError(
        path + ": one of exact, prefix, suffix, contains or safe_regex is required");
  }
  if (m.ignore_case_)
    http::toLowerInPlace(m.value_);
  return m;
}

bool StringMatcher::match(std::string_view value) const {
  switch (kind_) {
  case Kind::kExact:
    return ignore_case_ ? http::equalsIgnoreCase(value, value_) : value == value_;
  case Kind::kPrefix:
    return ignore_case_ ? startsWithIgnoreCase(value, value_) : value.starts_with(value_);
  case Kind::kSuffix:
    return ignore_case_ ? endsWithIgnoreCase(value, value_) : value.ends_with(value_);
  case Kind::kContains:
    if (!ignore_case_)
      return value.find(value_) != std::string_view::npos;
    return toLower(value).find(value_) != std::string::npos;
  case Kind::kRegex:
    return regexFullMatch(*regex_, value);
  }
  return false;
}

// ---- HeaderMatcher ----

absl::StatusOr<HeaderMatcher> HeaderMatcher::create(
    const envoy::config::route::v3::HeaderMatcher& proto, const std::string& path) {
  using P = envoy::config::route::v3::HeaderMatcher;
  HeaderMatcher m;
  m.name_ = toLower(proto.name());
  if (m.name_.empty())
    return absl::InvalidArgumentError(path + ".name: must not be empty");
  m.invert_ = proto.invert_match();
  m.treat_missing_as_empty_ = proto.treat_missing_header_as_empty();

  // The deprecated direct fields are StringMatchers without ignore_case.
  auto fromString = [&](envoy::type::matcher::v3::StringMatcher sm,
                        const std::string& field) -> absl::Status {
    auto s = StringMatcher::create(sm, path + "." + field);
    if (!s.ok())
      return s.status();
    m.kind_ = Kind::kString;
    m.string_ = std::move(*s);
    return absl::OkStatus();
  };
  envoy::type::matcher::v3::StringMatcher sm;
  absl::Status st;
  switch (proto.header_match_specifier_case()) {
  case P::kExactMatch:
    sm.set_exact(proto.exact_match());
    st = fromString(sm, "exact_match");
    break;
  case P::kSafeRegexMatch:
    // Compile under the field's own name so errors point at it.
    {
      auto re = compileRegex(proto.safe_regex_match(), path + ".safe_regex_match");
      if (!re.ok())
        return re.status();
    }
    *sm.mutable_safe_regex() = proto.safe_regex_match();
    st = fromString(sm, "safe_regex_match");
    break;
  case P::kPrefixMatch:
    sm.set_prefix(proto.prefix_match());
    st = fromString(sm, "prefix_match");
    break;
  case P::kSuffixMatch:
    sm.set_suffix(proto.suffix_match());
    st = fromString(sm, "suffix_match");
    break;
  case P::kContainsMatch:
    sm.set_contains(proto.contains_match());
    st = fromString(sm, "contains_match");
    break;
  case P::kStringMatch:
    st = fromString(proto.string_match(), "string_match");
    break;
  case P::kRangeMatch:
    m.kind_ = Kind::kRange;
    m.range_start_ = proto.range_match().start();
    m.range_end_ = proto.range_match().end();
    if (m.range_start_ > m.range_end_) {
      return absl::InvalidArgumentError(path + ".range_match: start must not exceed end");
    }
    break;
  case P::kPresentMatch:
    m.kind_ = Kind::kPresent;
    m.present_ = proto.present_match();
    break;
  case P::HEADER_MATCH_SPECIFIER_NOT_SET:
    // Envoy: no specifier means "the header is present".
    m.kind_ = Kind::kPresent;
    m.present_ = true;
    break;
  }
  if (!st.ok())
    return st;
  return m;
}

bool HeaderMatcher::match(const http::HeaderMap& headers) const {
  // One field (the usual case) is matched in place; repeated fields are matched
  // as their values joined with ',' (RFC 9110 §5.3), which needs a copy.
  std::string_view value;
  std::string joined;
  size_t found = 0;
  for (const auto& e : headers.entries()) {
    if (e.first != name_)
      continue;
    if (++found == 1) {
      value = e.second;
      continue;
    }
    if (found == 2) joined.assign(value);
    joined.push_back(',');
    joined.append(e.second);
    value = joined;
  }
  if (kind_ == Kind::kPresent) {
    // Presence is tested on the request itself; treat_missing_header_as_empty
    // only gives other kinds an empty value to match.
    return ((found > 0) == present_) != invert_;
  }
  if (found == 0 && !treat_missing_as_empty_)
    return false;
  bool result = false;
  if (kind_ == Kind::kString) {
    result = string_->match(value);
  } else {
    auto v = parseInt64(value);
    result = v.has_value() && *v >= range_start_ && *v < range_end_;
  }
  return result != invert_;
}

// ---- query parameters ----

std::vector<QueryParam> parseQueryString(std::string_view query) {
  std::vector<QueryParam> out;
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos)
      end = query.size();
    std::string_view item = query.substr(start, end - start);
    if (!item.empty()) {
      const size_t eq = item.find('=');
      if (eq == std::string_view::npos) {
        out.push_back({item, std::string_view()});
      } else {
        out.push_back({item.substr(0, eq), item.substr(eq + 1)});
      }
    }
    start = end + 1;
  }
  return out;
}

absl::StatusOr<QueryParameterMatcher> QueryParameterMatcher::create(
    const envoy::config::route::v3::QueryParameterMatcher& proto, const std::string& path) {
  QueryParameterMatcher m;
  m.name_ = proto.name();
  if (m.name_.empty())
    return absl::InvalidArgumentError(path + ".name: must not be empty");
  if (proto.has_string_match()) {
    auto s = StringMatcher::create(proto.string_match(), path + ".string_match");
    if (!s.ok())
      return s.status();
    m.string_ = std::move(*s);
    m.present_only_ = false;
  }
  return m;
}

bool QueryParameterMatcher::match(const std::vector<QueryParam>& params) const {
  for (const auto& p : params) {
    if (p.name != name_)
      continue;
    // Only the first occurrence counts.
    return present_only_ || string_->match(p.value);
  }
  return false;
}

SplitPath splitPath(std::string_view full_path) {
  SplitPath out;
  const size_t q = full_path.find_first_of("?#");
  if (q == std::string_view::npos) {
    out.path = full_path;
    return out;
  }
  out.path = full_path.substr(0, q);
  if (full_path[q] == '?') {
    std::string_view rest = full_path.substr(q + 1);
    const size_t hash = rest.find('#');
    out.query = hash == std::string_view::npos ? rest : rest.substr(0, hash);
  }
  return out;
}

}  // namespace legate::router
