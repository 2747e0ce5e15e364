#pragma once

// Protocol-neutral HTTP headers (and trailers).
//
// Names are stored lower-case (HTTP/2 and HTTP/3 require it; HTTP/1 names are
// case-insensitive), in insertion order, with pseudo-headers (":method",
// ":path", ":authority", ":scheme", ":status", ":protocol") kept before regular
// ones, as HTTP/2 requires on the wire. A small vector with linear lookup: real
// requests carry a dozen or two headers, where this beats hashing.
//
// Thread: not thread-safe; owned by one stream.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/swar.h"

namespace legate::http {

namespace headers {
inline constexpr std::string_view kMethod = ":method";
inline constexpr std::string_view kPath = ":path";
inline constexpr std::string_view kAuthority = ":authority";
inline constexpr std::string_view kScheme = ":scheme";
inline constexpr std::string_view kStatus = ":status";
inline constexpr std::string_view kProtocol = ":protocol";
inline constexpr std::string_view kHost = "host";
inline constexpr std::string_view kContentLength = "content-length";
inline constexpr std::string_view kTransferEncoding = "transfer-encoding";
inline constexpr std::string_view kConnection = "connection";
inline constexpr std::string_view kUpgrade = "upgrade";
inline constexpr std::string_view kKeepAlive = "keep-alive";
inline constexpr std::string_view kProxyConnection = "proxy-connection";
inline constexpr std::string_view kTe = "te";
inline constexpr std::string_view kExpect = "expect";
inline constexpr std::string_view kDate = "date";
inline constexpr std::string_view kServer = "server";
inline constexpr std::string_view kVia = "via";
inline constexpr std::string_view kXForwardedFor = "x-forwarded-for";
inline constexpr std::string_view kXForwardedProto = "x-forwarded-proto";
inline constexpr std::string_view kXRequestId = "x-request-id";
inline constexpr std::string_view kUserAgent = "user-agent";
inline constexpr std::string_view kContentType = "content-type";
} // namespace headers

class HeaderMap {
public:
  // A header as views into the map's own storage: valid until the map is
  // cleared, destroyed, or that header is set or removed. Copy the bytes out to
  // keep them longer.
  struct Entry {
    std::string_view first;  // the name, lower-case
    std::string_view second; // the value
    // The name is known to be a token and the value a field-value (the HTTP/1
    // parser checked them), so an encoder need not scan them again.
    bool wire_safe = false;
    bool operator==(const Entry& o) const { return first == o.first && second == o.second; }
  };

  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) { copyFrom(other); }
  HeaderMap& operator=(const HeaderMap& other);
  // Moving keeps the views valid: the bytes live in heap blocks that move along.
  // The moved-from map is left empty.
  HeaderMap(HeaderMap&& other) noexcept { *this = std::move(other); }
  HeaderMap& operator=(HeaderMap&& other) noexcept;

  // Adds a header (name is lower-cased); duplicates are kept, in order.
  void add(std::string_view name, std::string_view value);
  // add() for a field whose name the caller has checked is a token and whose
  // value is a field-value (RFC 9110 §5.1, §5.5): marks it wire_safe.
  void addWireSafe(std::string_view name, std::string_view value);
  // Replaces every header of that name with one value.
  void set(std::string_view name, std::string_view value);
  // set() for a value legate made itself from bytes that cannot break a
  // message (digits, a date, an address, a UUID, a literal) under a constant
  // lower-case name (the headers:: constants): marks it wire_safe, so the HTTP/1
  // encoder does not scan it again, and takes the name as it is, unfolded.
  void setWireSafe(std::string_view lower_name, std::string_view value) {
    setLower(lower_name, value, true);
  }
  // Removes every header of that name; returns how many were removed. Most
  // removes on the request path are of absent headers: those are answered
  // inline, without a call.
  size_t remove(std::string_view name) { return mayHave(name) ? removeName(name) : 0; }
  // Removes headers whose (lower-case) name starts with prefix.
  size_t removePrefix(std::string_view prefix);

  // The first value of name (name must be lower-case). Absent names are
  // answered inline.
  std::optional<std::string_view> get(std::string_view name) const {
    if (!mayHave(name)) return std::nullopt;
    return find(name);
  }
  std::vector<std::string_view> getAll(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

  // Pseudo-header shortcuts ("" when absent), asked several times per request:
  // only the leading pseudo-headers are looked at, each compared inline with the
  // constant name.
  std::string_view method() const { return pseudo(headers::kMethod); }
  std::string_view path() const { return pseudo(headers::kPath); }
  std::string_view authority() const { return pseudo(headers::kAuthority); }
  std::string_view scheme() const { return pseudo(headers::kScheme); }
  // The :status as a number, or 0 if absent or malformed.
  uint32_t status() const;

  std::span<const Entry> entries() const { return {entries_, size_}; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Sum of name and value lengths (for header size limits).
  size_t byteSize() const { return byte_size_; }
  // Forgets every header; keeps the entries' room and one block of bytes (the
  // slab's or the largest spilled one) for reuse.
  void clear();

  bool operator==(const HeaderMap& other) const;

private:
  // Names and values are copied into blocks that never move or shrink while
  // the map lives, so one allocation holds a whole request's bytes instead of
  // one std::string per long name or value. A set() appends the new value and
  // leaves the old bytes as garbage until clear(); header mutations are few per
  // request and bounded by the header limits, so this wastes little.
  //
  // The first allocation, made by the first header added, is a Slab: room for
  // the entries and bytes of a service-to-service request or response (a dozen
  // headers, a few hundred bytes) in one 1 KiB block. That is one allocation per
  // map on the request path instead of one for the entries and one for the
  // bytes, and a smaller footprint: with hundreds of streams in flight, what a
  // request touches no longer fits in the cache, and callgrind counted fewer
  // last-level misses per request with this than with 16 entries and 1,152
  // bytes. A map that outgrows it spills its entries to a larger array and its
  // bytes to further blocks; the slab stays until the map is destroyed or moved
  // from.
  static constexpr size_t kInitialEntries = 12;
  static constexpr size_t kSlabBytes = 544;
  struct Slab {
    // Raw room for the entries: an entry is created where it is written, so the
    // unused ones are never touched (an Entry is trivially copyable).
    alignas(Entry) unsigned char entries[sizeof(Entry) * kInitialEntries];
    char bytes[kSlabBytes];
  };
  static_assert(sizeof(Slab) == 1024, "one tcmalloc size class");
  static_assert(std::is_trivially_copyable_v<Entry> && std::is_trivially_destructible_v<Entry>);
  struct Block {
    std::unique_ptr<char[]> data;
    size_t capacity = 0;
  };

  // Room for n bytes, contiguous; returns where to write them (then advance
  // free_ past what was written). The common case, room in the current block,
  // is inline; a new block is out of line.
  char* reserveBytes(size_t n) {
    return static_cast<size_t>(end_ - free_) >= n ? free_ : newBlock(n);
  }
  char* newBlock(size_t n);
  // Creates the slab and makes its entries and bytes the map's current ones.
  void makeSlab();
  // Room for at least n entries.
  void reserveEntries(size_t n);
  std::string_view storeLower(std::string_view name);
  std::string_view store(std::string_view bytes) {
    if (bytes.empty()) return {};
    char* out = reserveBytes(bytes.size());
    swar::copyBytes(out, bytes.data(), bytes.size());
    free_ = out + bytes.size();
    return {out, bytes.size()};
  }
  // The first value of a pseudo-header ("" when absent): entries_[0,
  // pseudo_count_) holds every pseudo-header.
  std::string_view pseudo(std::string_view name) const {
    for (size_t i = 0; i < pseudo_count_; ++i) {
      if (entries_[i].first == name) return entries_[i].second;
    }
    return {};
  }
  void copyFrom(const HeaderMap& other);
  // set() past the folding: name is lower-case already; wire_safe marks the value.
  void setLower(std::string_view name, std::string_view value, bool wire_safe);
  template <class Pred> size_t removeIf(Pred pred);
  // get() and remove() past the name-class check.
  std::optional<std::string_view> find(std::string_view name) const;
  size_t removeName(std::string_view name);
  void insert(Entry e);

  Entry* entries_ = nullptr; // [0, size_) in use, room for capacity_
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
  std::unique_ptr<Slab> slab_;
  std::unique_ptr<Entry[]> spilled_; // the entries, once more than the slab holds
  std::vector<Block> blocks_;        // bytes beyond the slab's; nearly always none
  char* free_ = nullptr; // the unused part of the current block: [free_, end_)
  char* end_ = nullptr;
  size_t pseudo_count_ = 0; // entries_[0, pseudo_count_) are pseudo-headers
  size_t byte_size_ = 0;
  // One bit per (length, last byte) class of the names ever inserted since the
  // last clear(): most lookups and removes on the request path are for headers
  // that are absent (hop-by-hop fields, x-envoy-* controls), and a clear bit
  // answers those without a scan. Bits are not cleared on remove (a stale bit
  // only costs the scan).
  uint64_t name_bits_ = 0;
  static uint64_t nameBit(std::string_view name) {
    const unsigned last = name.empty() ? 0u : static_cast<unsigned char>(name.back());
    return uint64_t{1} << ((name.size() * 7 + last) & 63);
  }
  bool mayHave(std::string_view name) const { return (name_bits_ & nameBit(name)) != 0; }
};

// Lower-cases ASCII in place.
void toLowerInPlace(std::string& s);
// ASCII case-insensitive equality; the length check inline, the bytes compared
// eight at a time.
bool equalsIgnoreCaseSlow(std::string_view a, std::string_view b);
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && equalsIgnoreCaseSlow(a, b);
}
// equalsIgnoreCase() against a name already lower-case (the headers:: constants
// and the parser's tokens): only s is folded.
bool equalsLowerSlow(std::string_view s, std::string_view lower);
inline bool equalsLower(std::string_view s, std::string_view lower) {
  return s.size() == lower.size() && equalsLowerSlow(s, lower);
}

} // namespace legate::http
