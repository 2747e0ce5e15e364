#pragma once

// The request matchers of a route (envoy.config.route.v3.HeaderMatcher,
// QueryParameterMatcher, envoy.type.matcher.v3.StringMatcher / RegexMatcher),
// compiled once on the main thread and then read-only: workers evaluate them
// concurrently without locks.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "http/header_map.h"

namespace re2 {
class RE2;
}
namespace envoy::type::matcher::v3 {
class RegexMatcher;
class StringMatcher;
}  // namespace envoy::type::matcher::v3
namespace envoy::config::route::v3 {
class HeaderMatcher;
class QueryParameterMatcher;
}  // namespace envoy::config::route::v3

namespace legate::router {

// Envoy's default limit on a regex's compiled program size
// (re2.max_program_size.error_level): bigger patterns are refused.
inline constexpr int kMaxRegexProgramSize = 100;

// Compiles a RegexMatcher with RE2. Errors are prefixed with path:
// "PATH: invalid regex: ..." or "PATH: regex ... is too complex ...".
absl::StatusOr<std::shared_ptr<const re2::RE2>> compileRegex(
    const envoy::type::matcher::v3::RegexMatcher& proto, const std::string& path);

// RE2 full match of the whole text.
bool regexFullMatch(const re2::RE2& re, std::string_view text);
// RE2::GlobalReplace semantics (every non-overlapping match replaced;
// \0..\9 in substitution refer to the match and its groups).
std::string regexReplaceAll(const re2::RE2& re, std::string_view text,
                            const std::string& substitution);

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix);
bool endsWithIgnoreCase(std::string_view s, std::string_view suffix);
std::string toLower(std::string_view s);

// An envoy.type.matcher.v3.StringMatcher: exact / prefix / suffix / contains
// (optionally ignoring ASCII case) or safe_regex (full match; ignore_case has
// no effect on it, as in Envoy).
class StringMatcher {
 public:
  static absl::StatusOr<StringMatcher> create(const envoy::type::matcher::v3::StringMatcher& proto,
                                              const std::string& path);
  bool match(std::string_view value) const;

 private:
  enum class Kind { kExact, kPrefix, kSuffix, kContains, kRegex };
  Kind kind_ = Kind::kExact;
  bool ignore_case_ = false;
  std::string value_;  // lower-cased when ignore_case_
  std::shared_ptr<const re2::RE2> regex_;
};

// An envoy.config.route.v3.HeaderMatcher. A header present several times is
// matched as its values joined with ',' (Envoy's rule). A missing header
// never matches (even inverted) unless treat_missing_header_as_empty, except
// for present_match, which tests presence itself.
class HeaderMatcher {
 public:
  static absl::StatusOr<HeaderMatcher> create(const envoy::config::route::v3::HeaderMatcher& proto,
                                              const std::string& path);
  bool match(const http::HeaderMap& headers) const;

 private:
  enum class Kind { kString, kRange, kPresent };
  std::string name_;  // lower-case
  Kind kind_ = Kind::kPresent;
  std::optional<StringMatcher> string_;
  int64_t range_start_ = 0;
  int64_t range_end_ = 0;  // exclusive
  bool present_ = true;
  bool invert_ = false;
  bool treat_missing_as_empty_ = false;
};

// One query parameter of a request, as written (not percent-decoded: Envoy
// matches the raw value).
struct QueryParam {
  std::string_view name;
  std::string_view value;
};
// Splits a query string ("a=1&b&c=3", without the '?') into parameters.
std::vector<QueryParam> parseQueryString(std::string_view query);

// An envoy.config.route.v3.QueryParameterMatcher: the first value of the
// named parameter must satisfy string_match; with present_match (or no
// specifier) the parameter only has to be present.
class QueryParameterMatcher {
 public:
  static absl::StatusOr<QueryParameterMatcher> create(
      const envoy::config::route::v3::QueryParameterMatcher& proto, const std::string& path);
  bool match(const std::vector<QueryParam>& params) const;

 private:
  std::string name_;
  std::optional<StringMatcher> string_;
  bool present_only_ = true;
};

// Splits ":path" into the path proper and the query (without '?'); a
// fragment ('#...') is dropped from both.
struct SplitPath {
  std::string_view path;
  std::string_view query;
};
SplitPath splitPath(std::string_view full_path);

}  // namespace legate::router
