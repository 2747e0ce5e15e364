#pragma once

// Small HTTP helpers shared by the connection manager and the router.

#include <optional>
#include <string>
#include <string_view>

#include "http/header_map.h"
#include "network/address.h"

namespace legate::http::utility {

// RFC 1918, loopback, link-local, unique-local: Envoy's "internal" addresses.
bool isInternalIp(std::string_view ip);
bool isInternalAddress(const network::Address& addr);

// Appends ip to x-forwarded-for ("a, b, ip").
void appendXff(HeaderMap& headers, std::string_view ip);
// The client per x-forwarded-for, trusting the last num_trusted_hops entries
// (Envoy's xff_num_trusted_hops); nullopt when the header has too few entries.
std::optional<std::string> clientFromXff(const HeaderMap& headers, uint32_t num_trusted_hops);
void appendVia(HeaderMap& headers, std::string_view via);
// s without leading and trailing spaces and tabs.
std::string_view trimmed(std::string_view s);

// A random version 4 UUID.
std::string makeUuid();
// The same into out[0, kUuidLength), no allocation (the request path).
inline constexpr size_t kUuidLength = 36;
void makeUuid(char* out);
// The current time as an IMF-fixdate (RFC 9110 §5.6.7), cached per second.
std::string httpDate();
// "Not Found" for 404, ...; "Unknown" for codes without a phrase.
std::string statusText(uint32_t code);

} // namespace legate::http::utility
