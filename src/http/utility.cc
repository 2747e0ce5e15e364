#include "http/utility.h"

#include <cstring>
#include <ctime>

#include "common/random.h"
#include "http/http1/encoder.h"

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
    headers.setWireSafe(headers::kXForwardedFor, ip); // an address legate formatted
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

namespace {

// The eight nibbles of v (most significant first) as lower-case hex, eight bytes
// at a time: spread one nibble per byte, then add '0' or 'a' - 10 per byte.
void hex8(uint32_t v, char* out) {
  uint64_t x = v;
  x = ((x & 0xffff0000ULL) << 16) | (x & 0x0000ffffULL);
  x = ((x & 0x0000ff000000ff00ULL) << 8) | (x & 0x000000ff000000ffULL);
  x = ((x & 0x00f000f000f000f0ULL) << 4) | (x & 0x000f000f000f000fULL);
  // x now has nibble i (from the least significant) in byte i; bytes > 9 get 'a'-'0'-10 more.
  const uint64_t above9 = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + above9 * ('a' - '0' - 10);
  // Most significant nibble first on the wire: reverse the byte order.
  x = __builtin_bswap64(x);
  std::memcpy(out, &x, 8);
}

} // namespace

void makeUuid(char* out) {
  uint64_t hi = fastRandom(), lo = fastRandom();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL; // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; // variant 10
  // 8-4-4-4-12: format 32 hex digits, then open the gaps for the dashes.
  char digits[32];
  hex8(static_cast<uint32_t>(hi >> 32), digits);
  hex8(static_cast<uint32_t>(hi), digits + 8);
  hex8(static_cast<uint32_t>(lo >> 32), digits + 16);
  hex8(static_cast<uint32_t>(lo), digits + 24);
  std::memcpy(out, digits, 8);
  out[8] = '-';
  std::memcpy(out + 9, digits + 8, 4);
  out[13] = '-';
  std::memcpy(out + 14, digits + 12, 4);
  out[18] = '-';
  std::memcpy(out + 19, digits + 16, 4);
  out[23] = '-';
  std::memcpy(out + 24, digits + 20, 12);
}

std::string makeUuid() {
  std::string out(kUuidLength, '-');
  makeUuid(out.data());
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
