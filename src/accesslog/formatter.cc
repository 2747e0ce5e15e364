#include "accesslog/formatter.h"

#include <unistd.h>

#include <ctime>
#include <functional>
#include <map>
#include <optional>

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

struct Part {
  std::string literal;
  OperatorFn op;      // null for a literal
  bool numeric = false;
  size_t max_len = 0; // 0 = no limit
};

std::string addrOrEmpty(const network::Address& a) { return a.valid() ? a.asString() : ""; }
std::string ipOrEmpty(const network::Address& a) { return a.valid() ? a.ip() : ""; }
std::string portOrEmpty(const network::Address& a) {
  return a.valid() ? std::to_string(a.port()) : "";
}

// START_TIME with strftime plus Envoy's sub-second specifiers (%E3S, %6f, %s...).
std::string formatTime(std::chrono::system_clock::time_point tp, const std::string& fmt) {
  const auto since = tp.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  std::string expanded;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      expanded += fmt[i];
      continue;
    }
    // %E<n>S: seconds with n fractional digits; %<n>f: n fractional digits.
    auto frac = [&](int digits) {
      std::string s = std::to_string(nanos);
      s.insert(0, 9 - s.size(), '0');
      return s.substr(0, static_cast<size_t>(digits));
    };
    if (fmt[i + 1] == 'E' && i + 3 < fmt.size() && isdigit(fmt[i + 2]) && fmt[i + 3] == 'S') {
      expanded += "%S." + frac(fmt[i + 2] - '0');
      i += 3;
    } else if (isdigit(fmt[i + 1]) && i + 2 < fmt.size() && fmt[i + 2] == 'f') {
      expanded += frac(fmt[i + 1] - '0');
      i += 2;
    } else if (fmt[i + 1] == 's') {
      expanded += std::to_string(secs.count());
      i += 1;
    } else {
      expanded += fmt[i];
      expanded += fmt[i + 1];
      i += 1;
    }
  }
  const time_t t = static_cast<time_t>(secs.count());
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[256];
  const size_t n = strftime(buf, sizeof(buf), expanded.c_str(), &tm);
  return std::string(buf, n);
}

// Milliseconds from a to b, "" (printed "-") when either is unknown.
using SteadyTime = std::chrono::steady_clock::time_point;
std::string msBetween(std::optional<SteadyTime> a, std::optional<SteadyTime> b) {
  if (!a || !b || *a == SteadyTime{} || *b == SteadyTime{}) return "";
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(*b - *a).count());
}

absl::StatusOr<Part> parseOperator(const std::string& name, const std::string& arg,
                                   bool has_arg) {
  Part p;
  using SI = const StreamInfo&;
  static const std::map<std::string, std::pair<OperatorFn, bool>> kSimple = {
      {"DURATION", {[](SI i) { return std::to_string(i.duration().count()); }, true}},
      {"BYTES_RECEIVED", {[](SI i) { return std::to_string(i.bytes_received); }, true}},
      {"BYTES_SENT", {[](SI i) { return std::to_string(i.bytes_sent); }, true}},
      {"RESPONSE_CODE", {[](SI i) { return std::to_string(i.response_code); }, true}},
      {"CONNECTION_ID", {[](SI i) { return std::to_string(i.connection_id); }, true}},
      {"RESPONSE_FLAGS", {[](SI i) {
         const std::string s = responseFlagsString(i.response_flags);
         return s == "-" ? std::string() : s;
       }, false}},
      {"PROTOCOL", {[](SI i) { return i.protocol; }, false}},
      {"UPSTREAM_HOST", {[](SI i) { return addrOrEmpty(i.upstream_host); }, false}},
      {"UPSTREAM_REMOTE_ADDRESS", {[](SI i) { return addrOrEmpty(i.upstream_host); }, false}},
      {"UPSTREAM_CLUSTER", {[](SI i) { return i.upstream_cluster; }, false}},
      {"UPSTREAM_LOCAL_ADDRESS", {[](SI i) { return addrOrEmpty(i.upstream_local); }, false}},
      {"UPSTREAM_TRANSPORT_FAILURE_REASON",
       {[](SI i) { return i.upstream_transport_failure_reason; }, false}},
      {"DOWNSTREAM_REMOTE_ADDRESS", {[](SI i) { return addrOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_REMOTE_PORT", {[](SI i) { return portOrEmpty(i.downstream_remote); }, true}},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
       {[](SI i) { return addrOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_remote); }, false}},
      {"DOWNSTREAM_LOCAL_ADDRESS", {[](SI i) { return addrOrEmpty(i.downstream_local); }, false}},
      {"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
       {[](SI i) { return ipOrEmpty(i.downstream_local); }, false}},
      {"DOWNSTREAM_LOCAL_PORT", {[](SI i) { return portOrEmpty(i.downstream_local); }, true}},
      {"CONNECTION_TERMINATION_DETAILS", {[](SI i) { return i.termination_details; }, false}},
      {"LOCAL_REPLY_BODY", {[](SI i) { return i.local_reply_body; }, false}},
      {"FILTER_CHAIN_NAME", {[](SI i) { return i.filter_chain_name; }, false}},
      {"REQUEST_DURATION",
       {[](SI i) { return msBetween(i.start_steady, i.last_request_rx); }, true}},
      {"RESPONSE_DURATION",
       {[](SI i) { return msBetween(i.start_steady, i.first_upstream_rx); }, true}},
      {"RESPONSE_TX_DURATION",
       {[](SI i) { return msBetween(i.first_upstream_rx, i.end_steady); }, true}},
      {"RESPONSE_CODE_DETAILS", {[](SI i) { return i.termination_details; }, false}},
      {"UPSTREAM_REQUEST_ATTEMPT_COUNT", {[](SI i) {
         const uint32_t n = i.upstream_request_attempt_count != 0
                                ? i.upstream_request_attempt_count
                                : (i.upstream_host.valid() ? 1u : 0u);
         return std::to_string(n);
       }, true}},
      {"REQUESTED_SERVER_NAME", {[](SI i) { return i.requested_server_name; }, false}},
      {"ROUTE_NAME", {[](SI i) { return i.route_name; }, false}},
      {"HOSTNAME", {[](SI) {
         char buf[256] = {};
         ::gethostname(buf, sizeof(buf) - 1);
         return std::string(buf);
       }, false}},
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
  auto it = kSimple.find(name);
  if (it == kSimple.end() || has_arg) {
    return absl::InvalidArgumentError("unknown or unsupported format operator '%" + name +
                                      (has_arg ? "(" + arg + ")" : "") + "%'");
  }
  p.op = it->second.first;
  p.numeric = it->second.second;
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
      parts.push_back(Part{std::move(literal), nullptr});
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
    parts.push_back(Part{std::move(literal), nullptr});
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
  explicit TextFormatter(std::vector<Part> parts) : parts_(std::move(parts)) {}
  std::string format(const StreamInfo& info) const override {
    std::string out;
    for (const auto& p : parts_) out += render(p, info, true);
    return out;
  }

private:
  std::vector<Part> parts_;
};

class JsonFormatter : public Formatter {
public:
  struct Field {
    std::string key;
    std::vector<Part> parts;
    std::string constant; // for non-string JSON values, printed as given
    bool is_constant = false;
  };
  JsonFormatter(std::vector<Field> fields, bool omit_empty)
      : fields_(std::move(fields)), omit_empty_(omit_empty) {}
  std::string format(const StreamInfo& info) const override {
    std::string out = "{";
    bool first = true;
    for (const auto& f : fields_) {
      std::string value;
      bool as_number = false;
      if (f.is_constant) {
        value = f.constant;
        as_number = true;
      } else if (f.parts.size() == 1 && f.parts[0].op) {
        value = render(f.parts[0], info, false);
        as_number = f.parts[0].numeric && !value.empty();
      } else {
        for (const auto& p : f.parts) value += render(p, info, true);
      }
      if (value.empty() && omit_empty_) {
        continue;
      }
      if (!first) out += ',';
      first = false;
      stats::appendJsonString(out, f.key);
      out += ':';
      if (as_number) {
        out += value;
      } else if (value.empty()) {
        out += "null";
      } else {
        stats::appendJsonString(out, value);
      }
    }
    out += "}\n";
    return out;
  }

private:
  std::vector<Field> fields_;
  bool omit_empty_;
};

} // namespace

absl::StatusOr<FormatterPtr> parseTextFormat(const std::string& format) {
  auto parts = parseParts(format);
  if (!parts.ok()) {
    return parts.status();
  }
  return std::make_unique<TextFormatter>(std::move(*parts));
}

absl::StatusOr<FormatterPtr> parseJsonFormat(const google::protobuf::Struct& format,
                                             bool omit_empty_values) {
  std::vector<JsonFormatter::Field> fields;
  for (const auto& [key, value] : format.fields()) {
    JsonFormatter::Field f;
    f.key = key;
    switch (value.kind_case()) {
    case google::protobuf::Value::kStringValue: {
      auto parts = parseParts(value.string_value());
      if (!parts.ok()) {
        return absl::InvalidArgumentError("json_format." + key + ": " +
                                          std::string(parts.status().message()));
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
    default:
      return absl::InvalidArgumentError("json_format." + key +
                                        ": only string, number and bool values are supported");
    }
    fields.push_back(std::move(f));
  }
  std::sort(fields.begin(), fields.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });
  return std::make_unique<JsonFormatter>(std::move(fields), omit_empty_values);
}

absl::StatusOr<FormatterPtr>
fromProto(const envoy::config::core::v3::SubstitutionFormatString& proto, bool has_proto) {
  using SFS = envoy::config::core::v3::SubstitutionFormatString;
  if (!has_proto) {
    return parseTextFormat(kDefaultFormat);
  }
  if (proto.formatters_size() > 0) {
    return absl::InvalidArgumentError(
        "log_format.formatters: formatter extensions are not implemented by legate yet");
  }
  switch (proto.format_case()) {
  case SFS::kTextFormat:
    return parseTextFormat(proto.text_format());
  case SFS::kTextFormatSource:
    if (!proto.text_format_source().has_inline_string()) {
      return absl::InvalidArgumentError(
          "log_format.text_format_source: only inline_string is implemented by legate yet");
    }
    return parseTextFormat(proto.text_format_source().inline_string());
  case SFS::kJsonFormat:
    return parseJsonFormat(proto.json_format(), proto.omit_empty_values());
  default:
    return parseTextFormat(kDefaultFormat);
  }
}

} // namespace legate::accesslog
