#include "http/utility.h"

#include "http/http1/encoder.h"

#include <ctime>
#include <random>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace legate::http::utility {

bool isInternalIp(std::string_view ip) {
  auto a = network::Address::fromIpPort(ip, 0);
  return a.ok() && isInternalAddress(*a);
}

bool isInternalAddress(const network::Address& addr) {
  static const network::CidrRange kRanges[] = {
      *network::CidrRange::parse("10.0.0.0", 8),    *network::CidrRange::parse("172.16.0.0", 12),
      *network::CidrRange::parse("192.168.0.0", 16), *network::CidrRange::parse("127.0.0.0", 8),
      *network::CidrRange::parse("fd00::", 8),       *network::CidrRange::parse("::1", 128),
  };
  for (const auto& r : kRanges) {
    if (r.contains(addr)) return true;
  }
  return false;
}

void appendXff(HeaderMap& headers, std::string_view ip) {
  auto existing = headers.get(headers::kXForwardedFor);
  if (existing && !existing->empty()) {
    headers.set(headers::kXForwardedFor, std::string(*existing) + ", " + std::string(ip));
  } else {
    headers.set(headers::kXForwardedFor, ip);
  }
}

std::optional<std::string> clientFromXff(const HeaderMap& headers, uint32_t num_trusted_hops) {
  auto xff = headers.get(headers::kXForwardedFor);
  if (!xff) return std::nullopt;
  std::vector<std::string> parts;
  for (absl::string_view p : absl::StrSplit(absl::string_view(xff->data(), xff->size()), ',')) {
    parts.emplace_back(absl::StripAsciiWhitespace(p));
  }
  if (parts.size() < static_cast<size_t>(num_trusted_hops) + 1) return std::nullopt;
  return parts[parts.size() - 1 - num_trusted_hops];
}

void appendVia(HeaderMap& headers, std::string_view via) {
  auto existing = headers.get(headers::kVia);
  if (existing && !existing->empty()) {
    headers.set(headers::kVia, std::string(*existing) + ", " + std::string(via));
  } else {
    headers.set(headers::kVia, via);
  }
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string makeUuid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL; // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; // variant 10
  // 8-4-4-4-12 lower-case hex digits (formatted by hand: this runs for every
  // request, and snprintf costs more than the rest of the id together).
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(36, '-');
  size_t pos = 0;
  auto put = [&](uint64_t v, int nibbles) {
    for (int i = nibbles - 1; i >= 0; --i) {
      out[pos++] = kDigits[(v >> (4 * i)) & 0xf];
    }
  };
  put(hi >> 32, 8);
  ++pos;
  put(hi >> 16, 4);
  ++pos;
  put(hi, 4);
  ++pos;
  put(lo >> 48, 4);
  ++pos;
  put(lo, 12);
  return out;
}

std::string httpDate() {
  thread_local time_t cached_at = 0;
  thread_local std::string cached;
  const time_t now = time(nullptr);
  if (now != cached_at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_at = now;
  }
  return cached;
}

std::string statusText(uint32_t code) {
  const std::string_view phrase = http1::reasonPhrase(code);
  return phrase.empty() ? "Unknown" : std::string(phrase);
}

} // namespace legate::http::utility
