#include "http/path_utility.h"

#include "common/hex.h"
#include <vector>

namespace legate::http::path {
namespace {


bool isUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::pair<std::string_view, std::string_view> split(std::string_view full) {
  const size_t q = full.find('?');
  if (q == std::string_view::npos) return {full, {}};
  return {full.substr(0, q), full.substr(q)};
}

} // namespace

std::optional<std::string> normalize(std::string_view full) {
  auto [p, query] = split(full);
  if (p.empty() || p[0] != '/') {
    return std::nullopt;
  }
  // Percent-decoding of unreserved characters, canonical hex for the rest.
  std::string decoded;
  decoded.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\0') return std::nullopt;
    if (c != '%') {
      decoded += c;
      continue;
    }
    if (i + 2 >= p.size()) return std::nullopt; // truncated escape
    const int hi = hexDigitValue(p[i + 1]);
    const int lo = hexDigitValue(p[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const char v = static_cast<char>(hi * 16 + lo);
    if (isUnreserved(v)) {
      decoded += v;
    } else {
      static const char kHex[] = "0123456789ABCDEF";
      decoded += '%';
      decoded += kHex[hi];
      decoded += kHex[lo];
    }
    i += 2;
  }
  // Remove dot segments (RFC 3986 5.2.4) over '/'-separated segments.
  std::vector<std::string_view> out;
  std::string_view rest(decoded);
  rest.remove_prefix(1);
  bool trailing_slash = false;
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    if (seg == ".") {
      trailing_slash = last;
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing_slash = last;
    } else {
      out.push_back(seg);
      trailing_slash = false;
    }
    if (last) break;
    rest.remove_prefix(slash + 1);
  }
  std::string result;
  result.reserve(decoded.size() + query.size());
  for (const auto& seg : out) {
    result += '/';
    result.append(seg);
  }
  if (trailing_slash || result.empty()) {
    result += '/';
  }
  result.append(query);
  return result;
}

bool isNormal(std::string_view full) {
  const std::string_view p = split(full).first;
  if (p.empty() || p[0] != '/') return false;
  const size_t n = p.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (c == '%' || c == '\0') return false;
    if (c == '/' && i + 1 < n && p[i + 1] == '.') {
      // "/." or "/.." ending the path or followed by '/': a dot segment.
      const size_t after = (i + 2 < n && p[i + 2] == '.') ? i + 3 : i + 2;
      if (after >= n || p[after] == '/') return false;
    }
  }
  return true;
}

bool hasSlashRuns(std::string_view full) {
  return split(full).first.find("//") != std::string_view::npos;
}

std::string mergeSlashes(std::string_view full) {
  auto [p, query] = split(full);
  std::string result;
  result.reserve(full.size());
  for (char c : p) {
    if (c == '/' && !result.empty() && result.back() == '/') continue;
    result += c;
  }
  result.append(query);
  return result;
}

bool hasEscapedSlashes(std::string_view full) {
  auto [p, query] = split(full);
  for (size_t i = 0; i + 2 < p.size(); ++i) {
    if (p[i] != '%') continue;
    const char a = p[i + 1];
    const char b = p[i + 2];
    if ((a == '2' && (b == 'f' || b == 'F')) || (a == '5' && (b == 'c' || b == 'C'))) {
      return true;
    }
  }
  return false;
}

std::string unescapeSlashes(std::string_view full) {
  auto [p, query] = split(full);
  std::string result;
  result.reserve(full.size());
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '%' && i + 2 < p.size()) {
      const char a = p[i + 1];
      const char b = p[i + 2];
      if (a == '2' && (b == 'f' || b == 'F')) {
        result += '/';
        i += 2;
        continue;
      }
      if (a == '5' && (b == 'c' || b == 'C')) {
        result += '\\';
        i += 2;
        continue;
      }
    }
    result += p[i];
  }
  result.append(query);
  return result;
}

} // namespace legate::http::path
