#pragma once

// IP socket addresses (IPv4, IPv6) and CIDR ranges.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace envoy::config::core::v3 {
class SocketAddress;
class CidrRange;
} // namespace envoy::config::core::v3

namespace legate::network {

class Address {
public:
  Address() = default;
  explicit Address(const sockaddr* sa, socklen_t len);

  // "127.0.0.1", "::1" plus a port. Errors name the bad text.
  static absl::StatusOr<Address> fromIpPort(std::string_view ip, uint32_t port);
  // An envoy SocketAddress with port_value (named ports and resolvers are refused).
  static absl::StatusOr<Address> fromProto(const envoy::config::core::v3::SocketAddress& sa);
  static Address fromSocketName(int fd);
  static Address fromPeerName(int fd);

  int family() const { return storage_.sa.sa_family; }
  bool valid() const { return len_ != 0; }
  uint16_t port() const;
  void setPort(uint16_t port);
  const sockaddr* sockAddr() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t sockAddrLen() const { return len_; }

  std::string ip() const;       // "127.0.0.1" / "::1"
  std::string asString() const; // "127.0.0.1:80" / "[::1]:80"
  // The form used in stat names (listener.<statName>.downstream_cx_total):
  // asString() with every ':' turned into '_', as Envoy does.
  std::string statName() const;
  bool operator==(const Address& o) const;

private:
  // IPv4 or IPv6 only: 28 bytes, not sockaddr_storage's 128 (every connection
  // keeps two of these).
  union Storage {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
  };
  Storage storage_{};
  socklen_t len_ = 0;
};

// An address prefix: 10.0.0.0/8, ::1/128.
class CidrRange {
public:
  static absl::StatusOr<CidrRange> fromProto(const envoy::config::core::v3::CidrRange& proto);
  static absl::StatusOr<CidrRange> parse(std::string_view ip, uint32_t prefix_len);
  bool contains(const Address& addr) const;
  uint32_t prefixLen() const { return prefix_len_; }
  std::string asString() const;

private:
  int family_ = AF_INET;
  uint8_t bytes_[16] = {};
  uint32_t prefix_len_ = 0;
};

} // namespace legate::network
