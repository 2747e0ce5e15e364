#include "stats/json.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace legate::stats {

Json& Json::set(std::string key, Json value) {
  object_.emplace_back(std::move(key), std::move(value));
  return object_.back().second;
}

Json& Json::push(Json value) {
  array_.push_back(std::move(value));
  return array_.back();
}

std::string Json::dump(bool pretty) const {
  std::string out;
  write(out, pretty, 0);
  if (pretty) {
    out.push_back('\n');
  }
  return out;
}

void appendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (c < 0x20) {
        absl::StrAppendFormat(&out, "\\u%04x", c);
      } else {
        out.push_back(static_cast<char>(c));
      }
    }
  }
  out.push_back('"');
}

namespace {
void newline(std::string& out, int depth) {
  out.push_back('\n');
  out.append(static_cast<size_t>(depth), ' ');
}
} // namespace

void Json::write(std::string& out, bool pretty, int depth) const {
  switch (kind_) {
  case Kind::Null: out += "null"; return;
  case Kind::Bool: out += bool_ ? "true" : "false"; return;
  case Kind::Int: absl::StrAppend(&out, int_); return;
  case Kind::Uint: absl::StrAppend(&out, uint_); return;
  case Kind::Double: {
    // JSON has no NaN/Infinity; null is what a reader can handle.
    if (!std::isfinite(double_)) {
      out += "null";
      return;
    }
    // Shortest fixed-notation text that reads back as the same double.
    char buf[400]; // fixed notation of the largest double fits
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), double_, std::chars_format::fixed);
    out.append(buf, end);
    return;
  }
  case Kind::String: appendJsonString(out, string_); return;
  case Kind::Array:
    out.push_back('[');
    for (size_t i = 0; i < array_.size(); ++i) {
      if (i > 0) out.push_back(',');
      if (pretty) newline(out, depth + 1);
      array_[i].write(out, pretty, depth + 1);
    }
    if (pretty && !array_.empty()) newline(out, depth);
    out.push_back(']');
    return;
  case Kind::Object:
    out.push_back('{');
    for (size_t i = 0; i < object_.size(); ++i) {
      if (i > 0) out.push_back(',');
      if (pretty) newline(out, depth + 1);
      appendJsonString(out, object_[i].first);
      out += pretty ? ": " : ":";
      object_[i].second.write(out, pretty, depth + 1);
    }
    if (pretty && !object_.empty()) newline(out, depth);
    out.push_back('}');
    return;
  }
}

} // namespace legate::stats
