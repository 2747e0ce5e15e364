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
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  using Entry = std::pair<std::string, std::string>;

  // Adds a header (name is lower-cased); duplicates are kept, in order.
  void add(std::string_view name, std::string_view value);
  // Replaces every header of that name with one value.
  void set(std::string_view name, std::string_view value);
  // Removes every header of that name; returns how many were removed.
  size_t remove(std::string_view name);
  // Removes headers whose (lower-case) name starts with prefix.
  size_t removePrefix(std::string_view prefix);

  // The first value of name (name must be lower-case).
  std::optional<std::string_view> get(std::string_view name) const;
  std::vector<std::string_view> getAll(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }

  // Pseudo-header shortcuts ("" when absent).
  std::string_view method() const { return get(headers::kMethod).value_or(""); }
  std::string_view path() const { return get(headers::kPath).value_or(""); }
  std::string_view authority() const { return get(headers::kAuthority).value_or(""); }
  std::string_view scheme() const { return get(headers::kScheme).value_or(""); }
  // The :status as a number, or 0 if absent or malformed.
  uint32_t status() const;

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Sum of name and value lengths (for header size limits).
  size_t byteSize() const { return byte_size_; }
  void clear() {
    entries_.clear();
    byte_size_ = 0;
    pseudo_count_ = 0;
  }

  bool operator==(const HeaderMap& other) const { return entries_ == other.entries_; }

private:
  static constexpr size_t kInitialCapacity = 12;
  template <class Pred> size_t removeIf(Pred pred);

  std::vector<Entry> entries_;
  size_t pseudo_count_ = 0; // entries_[0, pseudo_count_) are pseudo-headers
  size_t byte_size_ = 0;
};

// Lower-cases ASCII in place.
void toLowerInPlace(std::string& s);
bool equalsIgnoreCase(std::string_view a, std::string_view b);

} // namespace legate::http
