#include "accesslog/formatter.h"

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <random>

#include "absl/time/time.h"
#include "common/random.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/core/v3/substitution_format_string.pb.h"
#include "google/protobuf/struct.pb.h"
#include "stats/json.h"


// Envoy still accepts the deprecated v3 format fields; so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::accesslog {

const char* const kDefaultFormat =
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

namespace {

// An operator renders to a string; empty means "no value" (printed as "-").
using OperatorFn = std::function<std::string(const StreamInfo&)>;

// For operators whose values have a JSON type of their own (metadata): the value as
// JSON text ("{...}", "1", "true", "\"s\""), "" for no value.
using JsonOperatorFn = std::function<std::string(const StreamInfo&)>;

struct Part {
  std::string literal;
  OperatorFn op;      // null for a literal
  bool numeric = false;
  size_t max_len = 0; // 0 = no limit
  JsonOperatorFn json_op; // set for typed values; op then gives their text form
};

std::string addrOrEmpty(const network::Address& a) { return a.valid() ? a.asString() : ""; }
std::string ipOrEmpty(const network::Address& a) { return a.valid() ? a.ip() : ""; }
std::string portOrEmpty(const network::Address& a) {
  return a.valid() ? std::to_string(a.port()) : "";
}

// START_TIME: absl's strftime superset (%E3S, %Ez, ...) in UTC, plus Envoy's own
// specifiers, replaced first: %s (seconds since the epoch), %f (nanoseconds, 9
// digits) and %1f..%9f (that many fractional digits). "%%" stays a literal '%'.
std::string formatTime(std::chrono::system_clock::time_point tp, const std::string& fmt) {
  const auto since = tp.time_since_epoch();
  const auto secs = std::chrono::floor<std::chrono::seconds>(since);
  const int64_t nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  auto frac = [nanos](int digits) {
    std::string s = std::to_string(nanos);
    s.insert(0, 9 - s.size(), '0');
    return s.substr(0, static_cast<size_t>(digits));
  };
  std::string expanded;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      expanded += fmt[i];
      continue;
    }
    const char next = fmt[i + 1];
    if (next == 's') {
      expanded += std::to_string(secs.count());
      i += 1;
    } else if (next == 'f') {
      expanded += frac(9);
      i += 1;
    } else if (next >= '1' && next <= '9' && i + 2 < fmt.size() && fmt[i + 2] == 'f') {
      expanded += frac(next - '0');
      i += 2;
    } else {
      // Another specifier (or "%%"): absl formats it.
      expanded += fmt[i];
      expanded += next;
      i += 1;
    }
  }
  return absl::FormatTime(expanded, absl::FromChrono(tp), absl::UTCTimeZone());
}

std::string requestHeader(const http::HeaderMap* h, std::string_view name) {
  if (h == nullptr) return "";
  auto v = h->get(name);
  return v ? std::string(*v) : std::string();
}

// Envoy's %*_HEADERS_BYTES%: the header names and values, uncompressed. "" without headers.
std::string headerBytes(const http::HeaderMap* h) {
  return h == nullptr ? std::string() : std::to_string(h->byteSize());
}

// Read once: the host name does not change while legate runs.
const std::string& hostName() {
  static const std::string name = [] {
    char buf[256] = {};
    ::gethostname(buf, sizeof(buf) - 1);
    return std::string(buf);
  }();
  return name;
}

// A random version 4 UUID (%UNIQUE_ID%).
std::string uniqueId() {
  thread_local std::mt19937_64 engine{randomSeed()};
  const uint64_t hi = (engine() & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  const uint64_t lo = (engine() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[37];
  snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
           static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
           static_cast<unsigned>(lo >> 48),
           static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

// Milliseconds from a to b, "" (printed "-") when either is unknown.
using SteadyTime = std::chrono::steady_clock::time_point;
std::string msBetween(std::optional<SteadyTime> a, std::optional<SteadyTime> b) {
  if (!a || !b || *a == SteadyTime{} || *b == SteadyTime{}) return "";
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(*b - *a).count());
}

// A protobuf Value as JSON text, object keys in name order (stable lines).
void appendValueJson(std::string& out, const google::protobuf::Value& v) {
  switch (v.kind_case()) {
  case google::protobuf::Value::kNumberValue: {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.17g", v.number_value());
    out += buf;
    return;
  }
  case google::protobuf::Value::kStringValue: stats::appendJsonString(out, v.string_value()); return;
  case google::protobuf::Value::kBoolValue: out += v.bool_value() ? "true" : "false"; return;
  case google::protobuf::Value::kStructValue: {
    std::vector<const std::string*> keys;
    for (const auto& [k, _] : v.struct_value().fields()) keys.push_back(&k);
    std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
    out += '{';
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i) out += ',';
      stats::appendJsonString(out, *keys[i]);
      out += ':';
      appendValueJson(out, v.struct_value().fields().at(*keys[i]));
    }
    out += '}';
    return;
  }
  case google::protobuf::Value::kListValue: {
    out += '[';
    for (int i = 0; i < v.list_value().values_size(); ++i) {
      if (i) out += ',';
      appendValueJson(out, v.list_value().values(i));
    }
    out += ']';
    return;
  }
  default: out += "null"; return;
  }
}

std::string valueJson(const google::protobuf::Value& v) {
  std::string out;
  appendValueJson(out, v);
  return out;
}

// %DYNAMIC_METADATA(NS:KEY:...)%: the namespace's Struct, or the value at the key
// path in it; "" when absent.
const google::protobuf::Value* metadataValue(const StreamInfo& info, const std::string& ns,
                                             const std::vector<std::string>& path,
                                             google::protobuf::Value& whole) {
  if (info.dynamicMetadata() == nullptr) return nullptr;
  const auto& fm = info.dynamicMetadata()->filter_metadata();
  auto it = fm.find(ns);
  if (it == fm.end()) return nullptr;
  if (path.empty()) {
    *whole.mutable_struct_value() = it->second;
    return &whole;
  }
  const google::protobuf::Struct* st = &it->second;
  const google::protobuf::Value* v = nullptr;
  for (const std::string& key : path) {
    if (st == nullptr) return nullptr;
    auto f = st->fields().find(key);
    if (f == st->fields().end()) return nullptr;
    v = &f->second;
    st = v->has_struct_value() ? &v->struct_value() : nullptr;
  }
  return v;
}

// Envoy operators legate knows but does not produce yet: refused by name rather than
// printed as "-" forever.
bool notImplementedYet(const std::string& name) {
  static const char* const kNames[] = {
      "UPSTREAM_WIRE_BYTES_SENT", "UPSTREAM_WIRE_BYTES_RECEIVED", "UPSTREAM_HEADER_BYTES_SENT",
      "UPSTREAM_HEADER_BYTES_RECEIVED", "DOWNSTREAM_WIRE_BYTES_SENT",
      "DOWNSTREAM_WIRE_BYTES_RECEIVED", "DOWNSTREAM_HEADER_BYTES_SENT",
      "DOWNSTREAM_HEADER_BYTES_RECEIVED", "CLUSTER_METADATA", "UPSTREAM_METADATA", "METADATA",
      "UPSTREAM_HOST_NAME", "REQUEST_TX_DURATION", "ROUNDTRIP_DURATION", "COMMON_DURATION",
      "DOWNSTREAM_HANDSHAKE_DURATION", "RESPONSE_FLAGS_LONG", "GRPC_STATUS",
      "GRPC_STATUS_NUMBER", "ENVIRONMENT", "ACCESS_LOG_TYPE", "CUSTOM_FLAGS",
      "UPSTREAM_CLUSTER_RAW", "DOWNSTREAM_TRANSPORT_FAILURE_REASON", "START_TIME_LOCAL",
      "EMIT_TIME", "QUERY_PARAM", "PATH", "REQ_WITHOUT_QUERY"};
  for (const char* n : kNames) {
    if (name == n) return true;
  }
  // TLS facts: legate has no TLS yet.
  return name.rfind("DOWNSTREAM_PEER_", 0) == 0 || name.rfind("DOWNSTREAM_TLS_", 0) == 0 ||
         name.rfind("UPSTREAM_PEER_", 0) == 0 || name.rfind("UPSTREAM_TLS_", 0) == 0 ||
         name.rfind("DOWNSTREAM_LOCAL_URI_SAN", 0) == 0 ||
         name.rfind("DOWNSTREAM_LOCAL_DNS_SAN", 0) == 0 ||
         name.rfind("DOWNSTREAM_LOCAL_IP_SAN", 0) == 0 ||
         name.rfind("DOWNSTREAM_LOCAL_SUBJECT", 0) == 0;
}

absl::StatusOr<Part> parseOperator(const std::string& name, const std::string& arg,
                                   bool has_arg) {
  Part p;
  using SI = const StreamInfo&;
  using Rare = StreamInfo::Rare;
  static const std::map<std::string, std::pair<OperatorFn, bool>> kSimple = {
      {"DURATION", {[](SI i) { return std::to_string(i.duration().count()); }, true}},
      {"BYTES_RECEIVED", {[](SI i) { return std::to_string(i.bytes_received); }, true}},
      {"BYTES_SENT", {[](SI i) { return std::to_string(i.bytes_sent); }, true}},
      {"RESPONSE_CODE", {[](SI i) { return std::to_string(i.response_code); }, true}},
      {"CONNECTION_ID", {[](SI i) { return std::to_string(i.connection_id); }, true}},
      {"UPSTREAM_CONNECTION_ID", {[](SI i) {
         return i.upstream_connection_id != 0 ? std::to_string(i.upstream_connection_id)
                                              : std::string();
       }, true}},
      {"RESPONSE_FLAGS", {[](SI i) {
         const std::string s = responseFlagsString(i.response_flags);
         return s == "-" ? std::string() : s;
       }, false}},
      {"PROTOCOL", {[](SI i) { return std::string(i.protocol); }, false}},
      {"UPSTREAM_PROTOCOL", {[](SI i) { return std::string(i.upstream_protocol); }, false}},
      {"UPSTREAM_HOST", {[](SI i) { return addrOrEmpty(i.upstream_host); }, false}},
      {"UPSTREAM_REMOTE_ADDRESS", {[](SI i) { return addrOrEmpty(i.upstream_host); }, false}},
      {"UPSTREAM_CLUSTER", {[](SI i) { return std::string(i.upstream_cluster); }, false}},
      {"UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", {[](SI i) { return ipOrEmpty(i.upstream_host); }, false}},
      {"UPSTREAM_REMOTE_PORT", {[](SI i) { return portOrEmpty(i.upstream_host); }, true}},
      {"UPSTREAM_LOCAL_ADDRESS", {[](SI i) { return addrOrEmpty(i.upstream_local); }, false}},
      {"UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", {[](SI i) { return ipOrEmpty(i.upstream_local); }, false}},
      {"UPSTREAM_LOCAL_PORT", {[](SI i) { return portOrEmpty(i.upstream_local); }, true}},
      {"UPSTREAM_TRANSPORT_FAILURE_REASON",
       {[](SI i) { return std::string(i.rareText(&Rare::upstream_transport_failure_reason)); },
        false}},
      {"DOWNSTREAM_REMOTE_ADDRESS", {[](SI i) { return addrOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_REMOTE_PORT", {[](SI i) { return portOrEmpty(i.downstream_remote); }, true}},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
       {[](SI i) { return addrOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_DIRECT_REMOTE_PORT", {[](SI i) { return portOrEmpty(i.downstream_remote); }, true}},
      {"DOWNSTREAM_LOCAL_ADDRESS", {[](SI i) { return addrOrEmpty(i.downstream_local); }, false}},
      {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_local); }, false}},
      {"DOWNSTREAM_LOCAL_PORT", {[](SI i) { return portOrEmpty(i.downstream_local); }, true}},
      {"CONNECTION_TERMINATION_DETAILS",
       {[](SI i) { return std::string(i.rareText(&Rare::termination_details)); }, false}},
      {"LOCAL_REPLY_BODY",
       {[](SI i) { return std::string(i.rareText(&Rare::local_reply_body)); }, false}},
      {"FILTER_CHAIN_NAME", {[](SI i) { return std::string(i.filter_chain_name); }, false}},
      {"REQUEST_DURATION",
       {[](SI i) { return msBetween(i.start_steady, i.last_request_rx); }, true}},
      {"RESPONSE_DURATION",
       {[](SI i) { return msBetween(i.start_steady, i.first_upstream_rx); }, true}},
      {"RESPONSE_TX_DURATION",
       {[](SI i) { return msBetween(i.first_upstream_rx, i.end_steady); }, true}},
      {"RESPONSE_CODE_DETAILS", {[](SI i) { return i.response_code_details; }, false}},
      // Envoy's stream id is the request id; a TCP connection has none here.
      {"STREAM_ID", {[](SI i) { return requestHeader(i.request_headers, "x-request-id"); }, false}},
      {"UNIQUE_ID", {[](SI) { return uniqueId(); }, false}},
      // virtual_clusters are refused at load, so no stream ever matches one.
      {"VIRTUAL_CLUSTER_NAME", {[](SI) { return std::string(); }, false}},
      {"REQUEST_HEADERS_BYTES", {[](SI i) { return headerBytes(i.request_headers); }, true}},
      {"RESPONSE_HEADERS_BYTES", {[](SI i) { return headerBytes(i.response_headers); }, true}},
      {"RESPONSE_TRAILERS_BYTES", {[](SI i) { return headerBytes(i.response_trailers); }, true}},
      {"UPSTREAM_REQUEST_ATTEMPT_COUNT", {[](SI i) {
         const uint32_t n = i.upstream_request_attempt_count != 0
                                ? i.upstream_request_attempt_count
                                : (i.upstream_host.valid() ? 1u : 0u);
         return std::to_string(n);
       }, true}},
      {"REQUESTED_SERVER_NAME",
       {[](SI i) { return std::string(i.rareText(&Rare::requested_server_name)); }, false}},
      {"ROUTE_NAME", {[](SI i) { return std::string(i.route_name); }, false}},
      // The active span's trace id ("-" without one), traced or not, as Envoy.
      {"TRACE_ID", {[](SI i) { return std::string(i.rareText(&Rare::trace_id)); }, false}},
      {"HOSTNAME", {[](SI) { return hostName(); }, false}},
  };
  if (name == "START_TIME") {
    const std::string fmt = has_arg && !arg.empty() ? arg : "%Y-%m-%dT%H:%M:%E3SZ";
    p.op = [fmt](SI i) { return formatTime(i.start_time, fmt); };
    return p;
  }
  // HTTP headers: %REQ(name)%, %REQ(name?alternative)%, %RESP(...)%, %TRAILER(...)%.
  // No value on a TCP connection.
  if (name == "REQ" || name == "RESP" || name == "TRAILER") {
    if (!has_arg || arg.empty()) {
      return absl::InvalidArgumentError("%" + name + "(...)% needs a header name");
    }
    std::string main_name = arg;
    std::string alt_name;
    if (const size_t q = arg.find('?'); q != std::string::npos) {
      main_name = arg.substr(0, q);
      alt_name = arg.substr(q + 1);
    }
    http::toLowerInPlace(main_name);
    http::toLowerInPlace(alt_name);
    const int which = name == "REQ" ? 0 : (name == "RESP" ? 1 : 2);
    p.op = [which, main_name, alt_name](SI i) {
      const http::HeaderMap* h =
          which == 0 ? i.request_headers : (which == 1 ? i.response_headers : i.response_trailers);
      if (h == nullptr) return std::string();
      auto v = h->get(main_name);
      if (!v && !alt_name.empty()) v = h->get(alt_name);
      return v ? std::string(*v) : std::string();
    };
    return p;
  }
  if (name == "DYNAMIC_METADATA") {
    if (!has_arg || arg.empty()) {
      return absl::InvalidArgumentError("%DYNAMIC_METADATA(...)% needs a namespace");
    }
    std::vector<std::string> path;
    for (size_t start = 0;;) {
      const size_t colon = arg.find(':', start);
      path.push_back(arg.substr(start, colon == std::string::npos ? colon : colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    const std::string ns = path.front();
    path.erase(path.begin());
    p.json_op = [ns, path](SI i) {
      google::protobuf::Value whole;
      const google::protobuf::Value* v = metadataValue(i, ns, path, whole);
      return v == nullptr || v->has_null_value() ? std::string() : valueJson(*v);
    };
    // Text: a string as it is, anything else as JSON.
    p.op = [ns, path](SI i) {
      google::protobuf::Value whole;
      const google::protobuf::Value* v = metadataValue(i, ns, path, whole);
      if (v == nullptr || v->has_null_value()) return std::string();
      return v->has_string_value() ? v->string_value() : valueJson(*v);
    };
    return p;
  }
  if (name == "FILTER_STATE" || name == "UPSTREAM_FILTER_STATE") {
    return absl::InvalidArgumentError("format operator '%" + name +
                                      "%' is not implemented by legate: no filter in legate "
                                      "stores filter state");
  }
  if (notImplementedYet(name)) {
    return absl::InvalidArgumentError("format operator '%" + name +
                                      "%' is not implemented by legate yet");
  }
  auto it = kSimple.find(name);
  if (it == kSimple.end() || has_arg) {
    return absl::InvalidArgumentError("unknown or unsupported format operator '%" + name +
                                      (has_arg ? "(" + arg + ")" : "") + "%'");
  }
  p.op = it->second.first;
  p.numeric = it->second.second;
  return p;
}

Part literalPart(std::string text) {
  Part p;
  p.literal = std::move(text);
  return p;
}

absl::StatusOr<std::vector<Part>> parseParts(const std::string& format) {
  std::vector<Part> parts;
  std::string literal;
  size_t i = 0;
  while (i < format.size()) {
    if (format[i] != '%') {
      literal += format[i++];
      continue;
    }
    const size_t end = format.find('%', i + 1);
    // An operator is %NAME% or %NAME(arg)% or %NAME(arg):N%; anything else is text.
    size_t j = i + 1;
    while (j < format.size() && (isupper(format[j]) || isdigit(format[j]) || format[j] == '_')) {
      ++j;
    }
    if (j == i + 1 || end == std::string::npos) {
      literal += format[i++];
      continue;
    }
    const std::string name = format.substr(i + 1, j - i - 1);
    std::string arg;
    bool has_arg = false;
    size_t k = j;
    if (k < format.size() && format[k] == '(') {
      const size_t close = format.find(')', k);
      if (close == std::string::npos) {
        return absl::InvalidArgumentError("unterminated '(' in format operator '%" + name + "'");
      }
      arg = format.substr(k + 1, close - k - 1);
      has_arg = true;
      k = close + 1;
    }
    size_t max_len = 0;
    if (k < format.size() && format[k] == ':') {
      size_t m = k + 1;
      while (m < format.size() && isdigit(format[m])) ++m;
      if (m == k + 1) {
        return absl::InvalidArgumentError("bad length after '%" + name + "(...):'");
      }
      max_len = std::stoul(format.substr(k + 1, m - k - 1));
      k = m;
    }
    if (k >= format.size() || format[k] != '%') {
      return absl::InvalidArgumentError("format operator '%" + name + "' is not closed by '%'");
    }
    if (!literal.empty()) {
      parts.push_back(literalPart(std::move(literal)));
      literal.clear();
    }
    auto op = parseOperator(name, arg, has_arg);
    if (!op.ok()) {
      return op.status();
    }
    op->max_len = max_len;
    parts.push_back(std::move(*op));
    i = k + 1;
  }
  if (!literal.empty()) {
    parts.push_back(literalPart(std::move(literal)));
  }
  return parts;
}

std::string render(const Part& p, const StreamInfo& info, bool dash_for_empty) {
  if (!p.op) {
    return p.literal;
  }
  std::string v = p.op(info);
  if (p.max_len && v.size() > p.max_len) {
    v.resize(p.max_len);
  }
  if (v.empty() && dash_for_empty) {
    return "-";
  }
  return v;
}

class TextFormatter : public Formatter {
public:
  // omit_empty: an empty value prints as nothing instead of "-" (omit_empty_values).
  TextFormatter(std::vector<Part> parts, bool omit_empty)
      : parts_(std::move(parts)), omit_empty_(omit_empty) {}
  std::string format(const StreamInfo& info) const override {
    std::string out;
    for (const auto& p : parts_) out += render(p, info, !omit_empty_);
    return out;
  }

private:
  std::vector<Part> parts_;
  bool omit_empty_;
};

// A json_format dictionary: each value a format string, a constant, or a nested
// dictionary. A value that is exactly one operator keeps its type (numbers stay
// numbers, metadata its JSON shape); text around operators makes a string.
class JsonFormatter : public Formatter {
public:
  struct Field {
    std::string key;
    std::vector<Part> parts;
    std::string constant; // for non-string JSON values, printed as given
    bool is_constant = false;
    std::vector<Field> children; // a nested dictionary
    bool is_object = false;
  };
  JsonFormatter(std::vector<Field> fields, bool omit_empty)
      : fields_(std::move(fields)), omit_empty_(omit_empty) {}
  std::string format(const StreamInfo& info) const override {
    std::string out;
    appendObject(out, fields_, info);
    out += '\n';
    return out;
  }

private:
  // Appends {...}; returns false when omit_empty left it with no member.
  bool appendObject(std::string& out, const std::vector<Field>& fields,
                    const StreamInfo& info) const {
    out += '{';
    bool first = true;
    for (const auto& f : fields) {
      std::string value; // JSON text
      if (f.is_object) {
        if (!appendObject(value, f.children, info) && omit_empty_) continue;
      } else if (f.is_constant) {
        value = f.constant;
      } else if (f.parts.size() == 1 && f.parts[0].op) {
        const Part& p = f.parts[0];
        std::string v;
        if (p.json_op && p.max_len == 0) {
          value = p.json_op(info);
        } else {
          v = render(p, info, false);
          if (v.empty()) {
          } else if (p.numeric) {
            value = v;
          } else {
            stats::appendJsonString(value, v);
          }
        }
      } else {
        std::string v;
        for (const auto& p : f.parts) v += render(p, info, !omit_empty_);
        if (!v.empty()) stats::appendJsonString(value, v);
      }
      if (value.empty()) {
        if (omit_empty_) continue;
        value = "null";
      }
      if (!first) out += ',';
      first = false;
      stats::appendJsonString(out, f.key);
      out += ':';
      out += value;
    }
    out += '}';
    return !first;
  }

  std::vector<Field> fields_;
  bool omit_empty_;
};

absl::StatusOr<std::vector<JsonFormatter::Field>> parseJsonFields(const google::protobuf::Struct& format,
                                                                  const std::string& path) {
  std::vector<JsonFormatter::Field> fields;
  for (const auto& [key, value] : format.fields()) {
    JsonFormatter::Field f;
    f.key = key;
    const std::string field_path = path + "." + key;
    switch (value.kind_case()) {
    case google::protobuf::Value::kStringValue: {
      auto parts = parseParts(value.string_value());
      if (!parts.ok()) {
        return absl::InvalidArgumentError(field_path + ": " + std::string(parts.status().message()));
      }
      f.parts = std::move(*parts);
      break;
    }
    case google::protobuf::Value::kNumberValue: {
      f.is_constant = true;
      char buf[64];
      snprintf(buf, sizeof(buf), "%.17g", value.number_value());
      f.constant = buf;
      break;
    }
    case google::protobuf::Value::kBoolValue:
      f.is_constant = true;
      f.constant = value.bool_value() ? "true" : "false";
      break;
    case google::protobuf::Value::kStructValue: {
      auto children = parseJsonFields(value.struct_value(), field_path);
      if (!children.ok()) return children.status();
      f.is_object = true;
      f.children = std::move(*children);
      break;
    }
    default:
      return absl::InvalidArgumentError(
          field_path + ": only strings, numbers, booleans and nested dictionaries are supported "
                       "(as in Envoy)");
    }
    fields.push_back(std::move(f));
  }
  std::sort(fields.begin(), fields.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  return fields;
}

} // namespace

absl::StatusOr<FormatterPtr> parseTextFormat(const std::string& format, bool omit_empty_values) {
  auto parts = parseParts(format);
  if (!parts.ok()) {
    return parts.status();
  }
  return std::make_unique<TextFormatter>(std::move(*parts), omit_empty_values);
}

absl::StatusOr<FormatterPtr> parseJsonFormat(const google::protobuf::Struct& format,
                                             bool omit_empty_values, const std::string& path) {
  auto fields = parseJsonFields(format, path);
  if (!fields.ok()) return fields.status();
  return std::make_unique<JsonFormatter>(std::move(*fields), omit_empty_values);
}

absl::StatusOr<FormatterPtr>
fromProto(const envoy::config::core::v3::SubstitutionFormatString& proto, bool has_proto) {
  using SFS = envoy::config::core::v3::SubstitutionFormatString;
  if (!has_proto) {
    return parseTextFormat(kDefaultFormat);
  }
  if (proto.formatters_size() > 0) {
    return absl::InvalidArgumentError(
        "formatters: formatter extensions are not implemented by legate yet");
  }
  // Errors name the field inside the SubstitutionFormatString.
  auto named = [](const char* field, absl::StatusOr<FormatterPtr> f) -> absl::StatusOr<FormatterPtr> {
    if (f.ok()) return f;
    return absl::InvalidArgumentError(std::string(field) + ": " + std::string(f.status().message()));
  };
  const bool omit = proto.omit_empty_values();
  switch (proto.format_case()) {
  case SFS::kTextFormat:
    return named("text_format", parseTextFormat(proto.text_format(), omit));
  case SFS::kTextFormatSource:
    if (!proto.text_format_source().has_inline_string()) {
      return absl::InvalidArgumentError(
          "text_format_source: only inline_string is implemented by legate yet");
    }
    return named("text_format_source.inline_string",
                 parseTextFormat(proto.text_format_source().inline_string(), omit));
  case SFS::kJsonFormat:
    return parseJsonFormat(proto.json_format(), omit, "json_format");
  default:
    return parseTextFormat(kDefaultFormat, omit);
  }
}

} // namespace legate::accesslog
