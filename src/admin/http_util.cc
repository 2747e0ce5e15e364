#include "admin/http_util.h"

#include "common/hex.h"
#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"

namespace legate::admin {

Response textResponse(int code, std::string body) {
  Response r;
  r.code = code;
  r.body = std::move(body);
  return r;
}

Response jsonResponse(std::string body) {
  Response r;
  r.content_type = kJson;
  r.body = std::move(body);
  return r;
}

namespace {
} // namespace

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hexDigitValue(s[i + 1]);
      const int lo = hexDigitValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

absl::flat_hash_map<std::string, std::string> parseQuery(std::string_view query) {
  absl::flat_hash_map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(absl::string_view(query.data(), query.size()), '&',
                                               absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    std::string key = percentDecode(std::string_view(part.data(), std::min(eq, part.size())));
    std::string value;
    if (eq != absl::string_view::npos) {
      const absl::string_view v = part.substr(eq + 1);
      value = percentDecode(std::string_view(v.data(), v.size()));
    }
    // The first occurrence wins, as in Envoy's query parsing.
    out.try_emplace(std::move(key), std::move(value));
  }
  return out;
}

std::pair<std::string, uint32_t> splitHostPort(std::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return {std::string(address), 0};
  }
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  uint32_t port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    port = 0;
  }
  return {std::string(host), port};
}

absl::StatusOr<std::string> protoToJson(const google::protobuf::Message& message,
                                        bool always_print_primitive_fields) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = always_print_primitive_fields;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot print ", message.GetTypeName(),
                                            " as JSON: ", status.ToString()));
  }
  return out;
}

std::string helpText(const std::vector<Endpoint>& endpoints) {
  std::vector<const Endpoint*> sorted;
  for (const auto& e : endpoints) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(),
            [](const Endpoint* a, const Endpoint* b) { return a->path < b->path; });
  std::string out = "admin commands are:\n";
  for (const Endpoint* e : sorted) {
    absl::StrAppend(&out, "  ", e->path, ": ", e->help, e->mutates ? " (POST)" : "", "\n");
  }
  return out;
}

namespace {
std::string htmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out.push_back(c);
    }
  }
  return out;
}
} // namespace

std::string indexHtml(const std::vector<Endpoint>& endpoints) {
  std::vector<const Endpoint*> sorted;
  for (const auto& e : endpoints) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(),
            [](const Endpoint* a, const Endpoint* b) { return a->path < b->path; });
  std::string out =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>legate admin</title></head>\n"
      "<body>\n<h1>legate admin</h1>\n<table>\n"
      "<tr><th>Command</th><th>Description</th></tr>\n";
  for (const Endpoint* e : sorted) {
    const std::string path = htmlEscape(e->path);
    // A mutation is a form that POSTs, so following a link never changes anything.
    const std::string command =
        e->mutates ? absl::StrCat("<form action=\"", path, "\" method=\"post\"><button type=\"submit\">",
                                  path, "</button></form>")
                   : absl::StrCat("<a href=\"", path, "\">", path, "</a>");
    absl::StrAppend(&out, "<tr><td>", command, "</td><td>", htmlEscape(e->help), "</td></tr>\n");
  }
  out += "</table>\n</body></html>\n";
  return out;
}

} // namespace legate::admin
