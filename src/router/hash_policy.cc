#include "router/hash_policy.h"

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "config/unsupported.h"
#include "envoy/config/route/v3/route_components.pb.h"
#include "google/protobuf/util/time_util.h"

namespace legate::router {

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string toLower(std::string s) {
  for (auto& ch : s) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return s;
}

// The value of query parameter `name` in a :path, as it appears (not decoded).
std::optional<std::string_view> findQueryParameter(std::string_view path, std::string_view name) {
  const size_t q = path.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = path.substr(q + 1);
  if (const size_t hash = query.find('#'); hash != std::string_view::npos) {
    query = query.substr(0, hash);
  }
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}
} // namespace

std::optional<std::string_view> findCookie(const http::HeaderMap& headers, std::string_view name) {
  for (std::string_view header : headers.getAll("cookie")) {
    while (!header.empty()) {
      const size_t semi = header.find(';');
      std::string_view pair = trim(header.substr(0, semi));
      const size_t eq = pair.find('=');
      if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == name) {
        std::string_view v = trim(pair.substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
        return v;
      }
      if (semi == std::string_view::npos) break;
      header.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<HashPolicy>>
HashPolicy::create(const google::protobuf::RepeatedPtrField<Proto>& protos, const std::string& path) {
  auto hp = std::make_unique<HashPolicy>();
  for (int i = 0; i < protos.size(); ++i) {
    const auto& p = protos[i];
    const std::string ppath = path + "[" + std::to_string(i) + "]";
    Entry e;
    e.terminal = p.terminal();
    switch (p.policy_specifier_case()) {
    case Proto::kHeader:
      if (auto st = config::rejectUnsupportedFields(p.header(), {"regex_rewrite"},
                                                    ppath + ".header");
          !st.ok()) {
        return st;
      }
      e.kind = Entry::Kind::Header;
      e.name = toLower(p.header().header_name());
      break;
    case Proto::kCookie:
      if (auto st = config::rejectUnsupportedFields(p.cookie(), {"attributes"}, ppath + ".cookie");
          !st.ok()) {
        return st;
      }
      e.kind = Entry::Kind::Cookie;
      e.name = p.cookie().name();
      if (p.cookie().has_ttl()) {
        e.cookie_ttl = std::chrono::seconds(p.cookie().ttl().seconds());
      }
      e.cookie_path = p.cookie().path();
      break;
    case Proto::kConnectionProperties:
      if (!p.connection_properties().source_ip()) continue; // hashes nothing
      e.kind = Entry::Kind::SourceIp;
      break;
    case Proto::kQueryParameter:
      e.kind = Entry::Kind::QueryParameter;
      e.name = p.query_parameter().name();
      break;
    case Proto::kFilterState:
      e.kind = Entry::Kind::FilterState;
      e.name = p.filter_state().key();
      break;
    default:
      return absl::InvalidArgumentError(ppath + ": this hash policy kind is not implemented by "
                                                "legate");
    }
    hp->entries_.push_back(std::move(e));
  }
  return hp;
}

std::optional<uint64_t> HashPolicy::evaluate(const Entry& e, const http::HeaderMap& headers,
                                             const network::Address* remote,
                                             const SetCookie& set_cookie) const {
  switch (e.kind) {
  case Entry::Kind::Header: {
    auto values = headers.getAll(e.name);
    if (values.empty()) return std::nullopt;
    if (values.size() == 1) return xxHash64(values.front());
    // Several values: hash them together (in the order received).
    std::string joined;
    for (auto v : values) {
      joined.append(v);
      joined.push_back('\n');
    }
    return xxHash64(joined);
  }
  case Entry::Kind::Cookie: {
    if (auto v = findCookie(headers, e.name)) return xxHash64(*v);
    if (!e.cookie_ttl || remote == nullptr) return std::nullopt;
    // No cookie yet: make one from the client's address, send it back, and
    // hash it, so this and the client's later requests land alike.
    const std::string value = absl::StrCat(absl::Hex(xxHash64(remote->asString()), absl::kZeroPad16));
    std::string cookie = e.name + "=\"" + value + "\"";
    if (e.cookie_ttl->count() > 0) absl::StrAppend(&cookie, "; Max-Age=", e.cookie_ttl->count());
    if (!e.cookie_path.empty()) cookie += "; Path=" + e.cookie_path;
    absl::StrAppend(&cookie, "; HttpOnly");
    if (set_cookie) set_cookie(std::move(cookie));
    return xxHash64(value);
  }
  case Entry::Kind::SourceIp:
    if (remote == nullptr) return std::nullopt;
    return xxHash64(remote->ip());
  case Entry::Kind::QueryParameter: {
    auto v = findQueryParameter(headers.path(), e.name);
    if (!v) return std::nullopt;
    return xxHash64(*v);
  }
  case Entry::Kind::FilterState:
    // No filter in legate stores hashable filter state yet: nothing to hash.
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<uint64_t> HashPolicy::generateHash(const http::HeaderMap& headers,
                                                 const network::Address* downstream_remote,
                                                 const SetCookie& set_cookie) const {
  std::optional<uint64_t> hash;
  for (const auto& e : entries_) {
    auto h = evaluate(e, headers, downstream_remote, set_cookie);
    if (!h) continue;
    hash = hash ? (((*hash << 1) | (*hash >> 63)) ^ *h) : *h;
    if (e.terminal) break;
  }
  return hash;
}

} // namespace legate::router
