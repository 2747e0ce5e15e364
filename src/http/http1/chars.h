#pragma once

// Character classes of RFC 9110 / 9112 as 256-entry tables: one load per byte,
// no branches per class.

#include <array>
#include <cstdint>
#include <string_view>

#include "common/swar.h"

namespace legate::http::http1 {

namespace chars_internal {

constexpr bool isAlpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool isDigit(int c) { return c >= '0' && c <= '9'; }

constexpr std::array<bool, 256> makeTchar() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = isAlpha(c) || isDigit(c);
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}

// field-vchar / SP / HTAB: VCHAR, obs-text (0x80-0xFF), SP, HTAB. Not NUL, CR,
// LF, other controls or DEL.
constexpr std::array<bool, 256> makeFieldValue() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 0x20 && c != 0x7f) || c == '\t';
  }
  return t;
}

// request-target bytes: visible ASCII only.
constexpr std::array<bool, 256> makeTarget() {
  std::array<bool, 256> t{};
  for (int c = 0x21; c < 0x7f; ++c) {
    t[c] = true;
  }
  return t;
}

// uri-host [ ":" port ] of RFC 3986: unreserved, sub-delims, pct-encoded,
// IP-literal brackets and the port colon. Excludes '/', '?', '#', '@' and
// whitespace, which would let a Host confuse routing.
constexpr std::array<bool, 256> makeAuthority() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = isAlpha(c) || isDigit(c);
  }
  for (char c : std::string_view("-._~!$&'()*+,;=:[]%")) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}

inline constexpr std::array<bool, 256> kTchar = makeTchar();
inline constexpr std::array<bool, 256> kFieldValue = makeFieldValue();
inline constexpr std::array<bool, 256> kTarget = makeTarget();
inline constexpr std::array<bool, 256> kAuthority = makeAuthority();

} // namespace chars_internal

inline bool isTchar(char c) { return chars_internal::kTchar[static_cast<unsigned char>(c)]; }

inline bool allOf(const std::array<bool, 256>& table, std::string_view s) {
  for (char c : s) {
    if (!table[static_cast<unsigned char>(c)]) {
      return false;
    }
  }
  return true;
}

inline bool isToken(std::string_view s) { return !s.empty() && allOf(chars_internal::kTchar, s); }
// Eight bytes at a time: a word with no control byte and no DEL is all valid
// (obs-text included); only a word that might hold one (HTAB is a control byte,
// and allowed) is checked byte by byte.
inline bool isFieldValue(std::string_view s) {
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    const uint64_t w = swar::load(s.data() + i);
    if ((swar::hasByteBelow(w, 0x20) | swar::hasByte(w, 0x7f)) != 0 &&
        !allOf(chars_internal::kFieldValue, s.substr(i, 8))) {
      return false;
    }
  }
  return allOf(chars_internal::kFieldValue, s.substr(i));
}
inline bool isTarget(std::string_view s) { return allOf(chars_internal::kTarget, s); }
inline bool isAuthority(std::string_view s) {
  return !s.empty() && allOf(chars_internal::kAuthority, s);
}

inline bool isOws(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Calls fn(element) for each non-empty, OWS-trimmed element of a
// comma-separated list (RFC 9110 §5.6.1: empty elements are ignored). Stops and
// returns false as soon as fn returns false.
template <typename Fn> bool forEachListElement(std::string_view value, Fn&& fn) {
  while (true) {
    const size_t comma = value.find(',');
    std::string_view element = trimOws(value.substr(0, comma));
    if (!element.empty() && !fn(element)) {
      return false;
    }
    if (comma == std::string_view::npos) {
      return true;
    }
    value.remove_prefix(comma + 1);
  }
}

} // namespace legate::http::http1
