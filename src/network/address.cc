#include "network/address.h"

#include <arpa/inet.h>

#include <cstring>

#include "envoy/config/core/v3/address.pb.h"

namespace legate::network {

Address::Address(const sockaddr* sa, socklen_t len) {
  len_ = std::min<socklen_t>(len, sizeof(storage_));
  std::memcpy(&storage_, sa, len_);
}

absl::StatusOr<Address> Address::fromIpPort(std::string_view ip, uint32_t port) {
  if (port > 65535) {
    return absl::InvalidArgumentError("port " + std::to_string(port) + " is out of range 0..65535");
  }
  std::string text(ip);
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    a.len_ = sizeof(sockaddr_in);
    return a;
  }
  std::memset(&a.storage_, 0, sizeof(a.storage_));
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    a.len_ = sizeof(sockaddr_in6);
    return a;
  }
  return absl::InvalidArgumentError("'" + text +
                                    "' is not an IP address (hostnames need a DNS cluster type)");
}

absl::StatusOr<Address> Address::fromProto(const envoy::config::core::v3::SocketAddress& sa) {
  if (sa.protocol() != envoy::config::core::v3::SocketAddress::TCP) {
    return absl::InvalidArgumentError("only TCP socket addresses are supported");
  }
  if (sa.port_specifier_case() == envoy::config::core::v3::SocketAddress::kNamedPort) {
    return absl::InvalidArgumentError("named ports are not supported; use port_value");
  }
  if (!sa.resolver_name().empty()) {
    return absl::InvalidArgumentError("custom resolver '" + sa.resolver_name() +
                                      "' is not implemented by legate");
  }
  return fromIpPort(sa.address(), sa.port_value());
}

Address Address::fromSocketName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Address();
  }
  return Address(reinterpret_cast<sockaddr*>(&ss), len);
}

Address Address::fromPeerName(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Address();
  }
  return Address(reinterpret_cast<sockaddr*>(&ss), len);
}

uint16_t Address::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

void Address::setPort(uint16_t port) {
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
  }
}

std::string Address::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof(buf));
  }
  return buf;
}

std::string Address::asString() const {
  if (family() == AF_INET6) {
    return "[" + ip() + "]:" + std::to_string(port());
  }
  return ip() + ":" + std::to_string(port());
}

std::string Address::statName() const {
  std::string s = asString();
  for (char& c : s) {
    if (c == ':') c = '_';
  }
  return s;
}

bool Address::operator==(const Address& o) const {
  return len_ == o.len_ && std::memcmp(&storage_, &o.storage_, len_) == 0;
}

absl::StatusOr<CidrRange> CidrRange::parse(std::string_view ip, uint32_t prefix_len) {
  auto addr = Address::fromIpPort(ip, 0);
  if (!addr.ok()) {
    return addr.status();
  }
  CidrRange r;
  r.family_ = addr->family();
  const uint32_t max_len = r.family_ == AF_INET ? 32 : 128;
  if (prefix_len > max_len) {
    return absl::InvalidArgumentError("prefix_len " + std::to_string(prefix_len) +
                                      " is longer than " + std::to_string(max_len));
  }
  r.prefix_len_ = prefix_len;
  if (r.family_ == AF_INET) {
    std::memcpy(r.bytes_, &reinterpret_cast<const sockaddr_in*>(addr->sockAddr())->sin_addr, 4);
  } else {
    std::memcpy(r.bytes_, &reinterpret_cast<const sockaddr_in6*>(addr->sockAddr())->sin6_addr, 16);
  }
  return r;
}

absl::StatusOr<CidrRange> CidrRange::fromProto(const envoy::config::core::v3::CidrRange& proto) {
  const uint32_t len = proto.has_prefix_len() ? proto.prefix_len().value()
                                              : (proto.address_prefix().find(':') !=
                                                         std::string::npos
                                                     ? 128
                                                     : 32);
  return parse(proto.address_prefix(), len);
}

bool CidrRange::contains(const Address& addr) const {
  if (addr.family() != family_) {
    return false;
  }
  const uint8_t* b =
      family_ == AF_INET
          ? reinterpret_cast<const uint8_t*>(
                &reinterpret_cast<const sockaddr_in*>(addr.sockAddr())->sin_addr)
          : reinterpret_cast<const uint8_t*>(
                &reinterpret_cast<const sockaddr_in6*>(addr.sockAddr())->sin6_addr);
  uint32_t bits = prefix_len_;
  for (int i = 0; bits > 0; ++i) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((b[i] & mask) != (bytes_[i] & mask)) {
      return false;
    }
    bits = bits >= 8 ? bits - 8 : 0;
  }
  return true;
}

std::string CidrRange::asString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family_, bytes_, buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix_len_);
}

} // namespace legate::network
