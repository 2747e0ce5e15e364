#include "config/yaml_to_proto.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/extension_registry.h"

namespace legate::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

constexpr int64_t kMaxDurationSeconds = 315576000000;
constexpr int kMaxNestingDepth = 100;
// Entries and elements converted per document: at most this many plus ten per
// node in the file. Aliases let a small file name one node many times and
// conversion expands every use; without a bound, an alias of an alias of ...
// ("billion laughs") would take all memory and time. A file without aliases
// converts fewer values than it has nodes.
constexpr size_t kConvertedNodesAllowance = 256 * 1024;
constexpr size_t kConvertedNodesPerNode = 10;

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A parsed scalar, in the representation its field's cpp_type needs.
struct ScalarValue {
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  bool b = false;
  std::string s;
  int e = 0;
};

std::string describeNode(const YamlNode& node) {
  switch (node.kind()) {
  case YamlNode::Kind::kSequence:
    return "a list";
  case YamlNode::Kind::kMap:
    return "an object";
  case YamlNode::Kind::kNull:
    return "null";
  case YamlNode::Kind::kScalar:
    break;
  }
  return absl::StrCat("'", node.scalar(), "'");
}

std::string describeType(const FieldDescriptor* fd) {
  switch (fd->type()) {
  case FieldDescriptor::TYPE_MESSAGE:
  case FieldDescriptor::TYPE_GROUP:
    return absl::StrCat("an object of type ", fd->message_type()->full_name());
  case FieldDescriptor::TYPE_ENUM:
    return absl::StrCat("a value of enum ", fd->enum_type()->full_name());
  case FieldDescriptor::TYPE_BYTES:
    return "a base64 string (bytes)";
  case FieldDescriptor::TYPE_STRING:
    return "a string";
  case FieldDescriptor::TYPE_BOOL:
    return "true or false";
  default:
    return absl::StrCat("a number (", fd->type_name(), ")");
  }
}

bool isWrapper(absl::string_view full_name) {
  static constexpr absl::string_view kWrappers[] = {
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  return std::find(std::begin(kWrappers), std::end(kWrappers), full_name) != std::end(kWrappers);
}

// "1.5s", "-0.25s", "10s" -> seconds and nanos (same sign). False when malformed.
bool parseDuration(absl::string_view text, int64_t& seconds, int32_t& nanos) {
  if (text.size() < 2 || text.back() != 's') return false;
  text.remove_suffix(1);
  bool negative = false;
  if (text.front() == '-' || text.front() == '+') {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  absl::string_view whole = text;
  absl::string_view frac;
  if (auto dot = text.find('.'); dot != absl::string_view::npos) {
    whole = text.substr(0, dot);
    frac = text.substr(dot + 1);
  }
  if ((whole.empty() && frac.empty()) || frac.size() > 9) return false;
  auto all_digits = [](absl::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
  };
  if (!all_digits(whole) || !all_digits(frac)) return false;
  uint64_t secs = 0;
  if (!whole.empty() && (!absl::SimpleAtoi(whole, &secs) || secs > kMaxDurationSeconds)) return false;
  int32_t n = 0;
  for (size_t i = 0; i < 9; ++i) n = n * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  seconds = negative ? -static_cast<int64_t>(secs) : static_cast<int64_t>(secs);
  nanos = negative ? -n : n;
  return true;
}

bool parseDouble(absl::string_view text, double& out) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "infinity" || lower == ".inf" || lower == "+.inf" || lower == "+infinity") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (lower == "-infinity" || lower == "-.inf") {
    out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (lower == "nan" || lower == ".nan") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // Only decimal notation: SimpleAtod would also take "inf", hex and the like.
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isdigit(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E';
      })) {
    return false;
  }
  return absl::SimpleAtod(text, &out);
}

class Converter {
public:
  Converter(std::string_view label, size_t max_converted, SourceMap& marks, ErrorList& errors)
      : label_(label), max_converted_(max_converted), marks_(marks), errors_(errors) {}

  void convertValueIntoMessage(const YamlNode& node, Message& msg, const std::string& path,
                               const std::string& extension_name) {
    // Bounded recursion: a hostile or broken file must not exhaust the stack.
    struct DepthGuard {
      int& depth;
      explicit DepthGuard(int& d) : depth(++d) {}
      ~DepthGuard() { --depth; }
    } guard(depth_);
    if (depth_ > kMaxNestingDepth) {
      error(node, path, absl::StrCat("nesting is too deep; expected at most ", kMaxNestingDepth,
                                     " levels of objects"));
      return;
    }
    const std::string& type = msg.GetDescriptor()->full_name();
    if (type == "google.protobuf.Any") return convertAny(node, msg, path, extension_name);
    if (type == "google.protobuf.Duration" && node.isScalar()) return convertDuration(node, msg, path);
    if (type == "google.protobuf.Timestamp" && node.isScalar()) {
      return convertTimestamp(node, msg, path);
    }
    if (isWrapper(type)) return convertWrapper(node, msg, path);
    if (type == "google.protobuf.Value") return convertValue(node, msg, path);
    if (type == "google.protobuf.Struct") return convertStruct(node, msg, path);
    if (type == "google.protobuf.ListValue") return convertList(node, msg, path);
    if (type == "google.protobuf.Empty" && node.isNull()) return;
    convertMessage(node, msg, path, /*skip_type_key=*/false);
  }

private:
  // Counts one converted entry or element; false (with one error) past the bound.
  bool visit(const YamlNode& node, const std::string& path) {
    if (++visited_ <= max_converted_) return true;
    if (visited_ == max_converted_ + 1) { // the first value past the bound reports it
      error(node, path,
            absl::StrCat("the document expands to more than ", max_converted_,
                         " values through aliases; expected aliases that are not nested "
                         "in each other this deeply"));
    }
    return false;
  }

  SourceLocation locationOf(const YamlNode& node) const {
    return SourceLocation{label_, static_cast<int>(node.line()), static_cast<int>(node.column())};
  }

  void error(const YamlNode& node, const std::string& path, const std::string& message) {
    SourceLocation location = locationOf(node);
    errors_.add(&location, path, message);
  }

  void record(const std::string& path, const YamlNode& node) {
    if (node.line() == 0) return;
    marks_.record(path, locationOf(node));
  }

  // Scalars are located at their value; objects and lists at their key.
  void record(const std::string& path, const YamlNode& value, const YamlNode& key) {
    record(path, value.isScalar() ? value : key);
  }

  static const FieldDescriptor* findField(const Descriptor* desc, const std::string& key) {
    if (const FieldDescriptor* fd = desc->FindFieldByName(key)) return fd;
    for (int i = 0; i < desc->field_count(); ++i) {
      const FieldDescriptor* fd = desc->field(i);
      if (fd->json_name() == key || fd->camelcase_name() == key) return fd;
    }
    return nullptr;
  }

  static std::string suggestField(const Descriptor* desc, const std::string& key) {
    const size_t threshold = key.size() < 4 ? 1 : key.size() < 8 ? 2 : 3;
    size_t best = threshold + 1;
    std::string best_name;
    const std::string lower_key = absl::AsciiStrToLower(key);
    for (int i = 0; i < desc->field_count(); ++i) {
      const FieldDescriptor* fd = desc->field(i);
      for (const std::string& candidate : {fd->name(), fd->json_name()}) {
        size_t d = editDistance(lower_key, absl::AsciiStrToLower(candidate));
        if (d < best) {
          best = d;
          best_name = fd->name();
        }
      }
    }
    return best <= threshold ? best_name : std::string();
  }

  // Finds the scalar value of key in a YAML mapping, if any (never throws).
  static std::string scalarChild(const YamlNode& node, absl::string_view key) {
    if (!node.isMap()) return {};
    for (const auto& [k, v] : node.entries()) {
      if (k->isScalar() && k->scalar() == key && v->isScalar()) return v->scalar();
    }
    return {};
  }

  void convertMessage(const YamlNode& node, Message& msg, const std::string& path,
                      bool skip_type_key) {
    const Descriptor* desc = msg.GetDescriptor();
    if (!node.isMap()) {
      error(node, path,
            absl::StrCat("got ", describeNode(node), "; expected an object (", desc->full_name(),
                         ")"));
      return;
    }
    const Reflection* refl = msg.GetReflection();
    const std::string extension_name = scalarChild(node, "name");
    absl::flat_hash_map<std::string, int> seen_keys; // key -> 1-based line
    absl::flat_hash_map<const OneofDescriptor*, const FieldDescriptor*> oneofs_set;
    for (const auto& [key_node, value_node] : node.entries()) {
      if (!visit(*key_node, path)) return;
      const YamlNode& key = *key_node;
      const YamlNode& value = *value_node;
      if (!key.isScalar()) {
        error(key, path, absl::StrCat("got ", describeNode(key), " as a key; expected a field name"));
        continue;
      }
      const std::string& name = key.scalar();
      if (auto [seen, inserted] = seen_keys.emplace(name, locationOf(key).line); !inserted) {
        error(key, fieldPath(path, name),
              absl::StrCat("duplicate key '", name, "' (first set on line ", seen->second,
                           "); expected each key once"));
        continue;
      }
      if (skip_type_key && name == "@type") continue;
      const FieldDescriptor* fd = findField(desc, name);
      if (fd == nullptr) {
        std::string suggestion = suggestField(desc, name);
        error(key, fieldPath(path, name),
              suggestion.empty()
                  ? absl::StrCat("unknown field; ", desc->full_name(), " has no such field")
                  : absl::StrCat("unknown field; did you mean '", suggestion, "'?"));
        continue;
      }
      if (value.isNull()) continue;
      if (const OneofDescriptor* oneof = fd->real_containing_oneof()) {
        auto [other, inserted] = oneofs_set.emplace(oneof, fd);
        if (!inserted) {
          error(key, fieldPath(path, fd->name()),
                absl::StrCat("'", other->second->name(), "' is already set and both belong to oneof '",
                             oneof->name(), "'; expected only one of them"));
          continue;
        }
      }
      const std::string field_path = fieldPath(path, fd->name());
      record(field_path, value, key);
      if (fd->is_map()) {
        convertMapField(value, msg, fd, field_path);
      } else if (fd->is_repeated()) {
        convertRepeatedField(value, msg, fd, field_path, extension_name);
      } else if (fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        convertValueIntoMessage(value, *refl->MutableMessage(&msg, fd), field_path, extension_name);
      } else {
        ScalarValue v;
        if (parseScalar(value, fd, field_path, v)) storeScalar(msg, fd, v, /*add=*/false);
      }
    }
  }

  void convertRepeatedField(const YamlNode& node, Message& msg, const FieldDescriptor* fd,
                            const std::string& path, const std::string& extension_name) {
    if (!node.isSequence()) {
      error(node, path, absl::StrCat("got ", describeNode(node), "; expected a list of ",
                                     describeType(fd), " values"));
      return;
    }
    const Reflection* refl = msg.GetReflection();
    for (size_t i = 0; i < node.size(); ++i) {
      const YamlNode& element = node[i];
      if (!visit(element, path)) return;
      const std::string element_path = indexPath(path, i);
      record(element_path, element);
      if (element.isNull()) {
        error(element, element_path, absl::StrCat("got null; expected ", describeType(fd)));
        continue;
      }
      if (fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        convertValueIntoMessage(element, *refl->AddMessage(&msg, fd), element_path,
                                scalarChild(element, "name").empty() ? extension_name
                                                                     : scalarChild(element, "name"));
      } else {
        ScalarValue v;
        if (parseScalar(element, fd, element_path, v)) storeScalar(msg, fd, v, /*add=*/true);
      }
    }
  }

  void convertMapField(const YamlNode& node, Message& msg, const FieldDescriptor* fd,
                       const std::string& path) {
    if (!node.isMap()) {
      error(node, path, absl::StrCat("got ", describeNode(node), "; expected an object (a map)"));
      return;
    }
    const Reflection* refl = msg.GetReflection();
    const FieldDescriptor* key_fd = fd->message_type()->map_key();
    const FieldDescriptor* value_fd = fd->message_type()->map_value();
    absl::flat_hash_map<std::string, int> seen_keys;
    for (const auto& [key_node, value_node] : node.entries()) {
      if (!visit(*key_node, path)) return;
      const YamlNode& key = *key_node;
      const YamlNode& value = *value_node;
      if (!key.isScalar()) {
        error(key, path, absl::StrCat("got ", describeNode(key), " as a map key; expected a scalar"));
        continue;
      }
      const std::string entry_path = mapKeyPath(path, key.scalar());
      if (auto [seen, inserted] = seen_keys.emplace(key.scalar(), locationOf(key).line); !inserted) {
        error(key, entry_path,
              absl::StrCat("duplicate key '", key.scalar(), "' (first set on line ", seen->second,
                           "); expected each key once"));
        continue;
      }
      record(entry_path, value, key);
      ScalarValue k;
      if (!parseScalar(key, key_fd, entry_path, k)) continue;
      Message* entry = refl->AddMessage(&msg, fd);
      storeScalar(*entry, key_fd, k, /*add=*/false);
      if (value.isNull()) continue;
      if (value_fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        convertValueIntoMessage(value, *entry->GetReflection()->MutableMessage(entry, value_fd),
                                entry_path, std::string());
      } else {
        ScalarValue v;
        if (parseScalar(value, value_fd, entry_path, v)) storeScalar(*entry, value_fd, v, false);
      }
    }
  }

  bool parseScalar(const YamlNode& node, const FieldDescriptor* fd, const std::string& path,
                   ScalarValue& out) {
    if (!node.isScalar()) {
      error(node, path, absl::StrCat("got ", describeNode(node), "; expected ", describeType(fd)));
      return false;
    }
    const std::string& text = node.scalar();
    switch (fd->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64: {
      const bool is32 = fd->cpp_type() == FieldDescriptor::CPPTYPE_INT32;
      const int64_t lo = is32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
      const int64_t hi = is32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
      if (!absl::SimpleAtoi(av(text), &out.i) || out.i < lo || out.i > hi) {
        error(node, path,
              absl::StrCat("'", text, "' is not a valid ", fd->type_name(),
                           "; expected an integer from ", lo, " to ", hi));
        return false;
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      const bool is32 = fd->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
      const uint64_t hi =
          is32 ? std::numeric_limits<uint32_t>::max() : std::numeric_limits<uint64_t>::max();
      const bool negative = !text.empty() && text.front() == '-';
      if (negative || !absl::SimpleAtoi(av(text), &out.u) || out.u > hi) {
        error(node, path,
              absl::StrCat("'", text, "' is not a valid ", fd->type_name(),
                           "; expected an integer from 0 to ", hi));
        return false;
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (!parseDouble(text, out.d)) {
        error(node, path, absl::StrCat("'", text, "' is not a number; expected a ", fd->type_name()));
        return false;
      }
      if (fd->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(out.d) &&
          std::fabs(out.d) > FLT_MAX) {
        error(node, path, absl::StrCat("'", text, "' is out of range; expected a float"));
        return false;
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      std::string lower = absl::AsciiStrToLower(text);
      if (lower != "true" && lower != "false") {
        error(node, path, absl::StrCat("'", text, "' is not a bool; expected true or false"));
        return false;
      }
      out.b = lower == "true";
      return true;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (fd->type() != FieldDescriptor::TYPE_BYTES) {
        out.s = text;
        return true;
      }
      if (!absl::Base64Unescape(av(text), &out.s) && !absl::WebSafeBase64Unescape(av(text), &out.s)) {
        error(node, path, absl::StrCat("'", text, "' is not valid base64; expected base64 bytes"));
        return false;
      }
      return true;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor* enum_desc = fd->enum_type();
      int64_t number = 0;
      if (absl::SimpleAtoi(av(text), &number)) {
        const bool known = enum_desc->FindValueByNumber(static_cast<int>(number)) != nullptr;
        if (number < std::numeric_limits<int32_t>::min() ||
            number > std::numeric_limits<int32_t>::max() || (!known && enum_desc->file()->syntax() != google::protobuf::FileDescriptor::SYNTAX_PROTO3)) {
          error(node, path,
                absl::StrCat(number, " is not a value of enum ", enum_desc->full_name(),
                             "; expected one of: ", enumNames(enum_desc)));
          return false;
        }
        out.e = static_cast<int>(number);
        return true;
      }
      const EnumValueDescriptor* value = enum_desc->FindValueByName(text);
      if (value == nullptr) {
        error(node, path,
              absl::StrCat("unknown value '", text, "' for enum ", enum_desc->full_name(),
                           "; expected one of: ", enumNames(enum_desc)));
        return false;
      }
      out.e = value->number();
      return true;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
    }
    error(node, path, "internal error: not a scalar field");
    return false;
  }

  static std::string enumNames(const EnumDescriptor* desc) {
    std::vector<std::string> names;
    for (int i = 0; i < desc->value_count(); ++i) names.push_back(desc->value(i)->name());
    return absl::StrJoin(names, ", ");
  }

  static void storeScalar(Message& msg, const FieldDescriptor* fd, const ScalarValue& v, bool add) {
    const Reflection* r = msg.GetReflection();
    switch (fd->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      add ? r->AddInt32(&msg, fd, static_cast<int32_t>(v.i))
          : r->SetInt32(&msg, fd, static_cast<int32_t>(v.i));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      add ? r->AddInt64(&msg, fd, v.i) : r->SetInt64(&msg, fd, v.i);
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      add ? r->AddUInt32(&msg, fd, static_cast<uint32_t>(v.u))
          : r->SetUInt32(&msg, fd, static_cast<uint32_t>(v.u));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      add ? r->AddUInt64(&msg, fd, v.u) : r->SetUInt64(&msg, fd, v.u);
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      add ? r->AddDouble(&msg, fd, v.d) : r->SetDouble(&msg, fd, v.d);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      add ? r->AddFloat(&msg, fd, static_cast<float>(v.d))
          : r->SetFloat(&msg, fd, static_cast<float>(v.d));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      add ? r->AddBool(&msg, fd, v.b) : r->SetBool(&msg, fd, v.b);
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      add ? r->AddString(&msg, fd, v.s) : r->SetString(&msg, fd, v.s);
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      add ? r->AddEnumValue(&msg, fd, v.e) : r->SetEnumValue(&msg, fd, v.e);
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
    }
  }

  void convertDuration(const YamlNode& node, Message& msg, const std::string& path) {
    int64_t seconds = 0;
    int32_t nanos = 0;
    if (!parseDuration(node.scalar(), seconds, nanos)) {
      error(node, path,
            absl::StrCat("'", node.scalar(),
                         "' is not a duration; expected seconds with an 's' suffix, such as "
                         "\"10s\" or \"0.25s\" (at most 9 fractional digits)"));
      return;
    }
    const Descriptor* desc = msg.GetDescriptor();
    msg.GetReflection()->SetInt64(&msg, desc->FindFieldByName("seconds"), seconds);
    msg.GetReflection()->SetInt32(&msg, desc->FindFieldByName("nanos"), nanos);
  }

  void convertTimestamp(const YamlNode& node, Message& msg, const std::string& path) {
    google::protobuf::Timestamp ts;
    if (!google::protobuf::util::TimeUtil::FromString(node.scalar(), &ts)) {
      error(node, path,
            absl::StrCat("'", node.scalar(),
                         "' is not a timestamp; expected RFC 3339 such as \"2024-01-31T12:00:00Z\""));
      return;
    }
    const Descriptor* desc = msg.GetDescriptor();
    msg.GetReflection()->SetInt64(&msg, desc->FindFieldByName("seconds"), ts.seconds());
    msg.GetReflection()->SetInt32(&msg, desc->FindFieldByName("nanos"), ts.nanos());
  }

  void convertWrapper(const YamlNode& node, Message& msg, const std::string& path) {
    const FieldDescriptor* value_fd = msg.GetDescriptor()->FindFieldByName("value");
    ScalarValue v;
    if (parseScalar(node, value_fd, path, v)) storeScalar(msg, value_fd, v, /*add=*/false);
  }

  // google.protobuf.Value from any YAML: plain true/false and numbers keep their type.
  void convertValue(const YamlNode& node, Message& msg, const std::string& path) {
    if (depth_ > kMaxNestingDepth) {
      error(node, path, absl::StrCat("nesting is too deep; expected at most ", kMaxNestingDepth,
                                     " levels of objects"));
      return;
    }
    struct DepthGuard {
      int& depth;
      explicit DepthGuard(int& d) : depth(++d) {}
      ~DepthGuard() { --depth; }
    } guard(depth_);
    const Descriptor* desc = msg.GetDescriptor();
    const Reflection* r = msg.GetReflection();
    switch (node.kind()) {
    case YamlNode::Kind::kMap:
      convertStruct(node, *r->MutableMessage(&msg, desc->FindFieldByName("struct_value")), path);
      return;
    case YamlNode::Kind::kSequence:
      convertList(node, *r->MutableMessage(&msg, desc->FindFieldByName("list_value")), path);
      return;
    case YamlNode::Kind::kScalar: {
      const std::string& text = node.scalar();
      const bool plain = node.plain();
      double number = 0;
      if (plain && (text == "true" || text == "false")) {
        r->SetBool(&msg, desc->FindFieldByName("bool_value"), text == "true");
      } else if (plain && parseDouble(text, number)) {
        r->SetDouble(&msg, desc->FindFieldByName("number_value"), number);
      } else {
        r->SetString(&msg, desc->FindFieldByName("string_value"), text);
      }
      return;
    }
    case YamlNode::Kind::kNull:
      r->SetEnumValue(&msg, desc->FindFieldByName("null_value"), 0);
      return;
    }
  }

  void convertStruct(const YamlNode& node, Message& msg, const std::string& path) {
    if (!node.isMap()) {
      error(node, path, absl::StrCat("got ", describeNode(node), "; expected an object (Struct)"));
      return;
    }
    const FieldDescriptor* fields_fd = msg.GetDescriptor()->FindFieldByName("fields");
    const FieldDescriptor* key_fd = fields_fd->message_type()->map_key();
    const FieldDescriptor* value_fd = fields_fd->message_type()->map_value();
    absl::flat_hash_map<std::string, int> seen_keys;
    for (const auto& [key_node, value_node] : node.entries()) {
      if (!visit(*key_node, path)) return;
      if (!key_node->isScalar()) {
        error(*key_node, path, "a non-scalar key; expected a string key");
        continue;
      }
      const std::string& key = key_node->scalar();
      const std::string entry_path = fieldPath(path, key);
      if (auto [seen, inserted] = seen_keys.emplace(key, locationOf(*key_node).line); !inserted) {
        error(*key_node, entry_path,
              absl::StrCat("duplicate key '", key, "' (first set on line ", seen->second,
                           "); expected each key once"));
        continue;
      }
      record(entry_path, *value_node, *key_node);
      Message* entry = msg.GetReflection()->AddMessage(&msg, fields_fd);
      entry->GetReflection()->SetString(entry, key_fd, key);
      convertValue(*value_node, *entry->GetReflection()->MutableMessage(entry, value_fd), entry_path);
    }
  }

  void convertList(const YamlNode& node, Message& msg, const std::string& path) {
    if (!node.isSequence()) {
      error(node, path, absl::StrCat("got ", describeNode(node), "; expected a list"));
      return;
    }
    const FieldDescriptor* values_fd = msg.GetDescriptor()->FindFieldByName("values");
    for (size_t i = 0; i < node.size(); ++i) {
      if (!visit(node[i], path)) return;
      const std::string element_path = indexPath(path, i);
      record(element_path, node[i]);
      convertValue(node[i], *msg.GetReflection()->AddMessage(&msg, values_fd), element_path);
    }
  }

  void convertAny(const YamlNode& node, Message& any, const std::string& path,
                  const std::string& extension_name) {
    if (!node.isMap()) {
      error(node, path,
            absl::StrCat("got ", describeNode(node),
                         "; expected an object with '@type: type.googleapis.com/<message name>'"));
      return;
    }
    const YamlNode* type_value = nullptr;
    for (const auto& [k, v] : node.entries()) {
      if (k->isScalar() && k->scalar() == "@type") type_value = v;
    }
    if (type_value == nullptr || !type_value->isScalar() || type_value->scalar().empty()) {
      error(node, path,
            "missing '@type'; expected '@type: type.googleapis.com/<message name>' next to the "
            "extension's fields");
      return;
    }
    const YamlNode& type_node = *type_value;
    const std::string& type_url = type_node.scalar();
    if (type_url.find('/') == std::string::npos) {
      error(type_node, path,
            absl::StrCat("'@type: ", type_url,
                         "' is not a type URL; expected 'type.googleapis.com/<message name>'"));
      return;
    }
    const std::string type_name(typeNameFromUrl(type_url));
    const Descriptor* desc =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
    // In a slot where Envoy skips what it does not support, an Envoy type
    // legate does not implement is kept for the slot's owner to skip.
    const bool keep = desc != nullptr && isSkippableExtensionSlot(path);
    if (desc == nullptr || (!keep && !isExtensionImplemented(type_name))) {
      std::string message = absl::StrCat("legate does not implement the extension '", type_url, "'");
      if (!extension_name.empty()) absl::StrAppend(&message, " (name: ", extension_name, ")");
      if (desc == nullptr) absl::StrAppend(&message, ", an unknown type");
      absl::StrAppend(&message, "; expected one of the extensions legate implements");
      std::vector<std::string> known;
      for (const ExtensionInfo* info : ExtensionRegistry::get().all()) {
        known.push_back(absl::StrCat(info->type_name, " (", info->envoy_name, ")"));
      }
      if (!known.empty() && known.size() <= 12) {
        absl::StrAppend(&message, ": ", absl::StrJoin(known, ", "));
      }
      error(type_node, path, message);
      return;
    }
    std::unique_ptr<Message> inner(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc)->New());
    const size_t errors_before = errors_.count();
    convertMessage(node, *inner, path, /*skip_type_key=*/true);
    if (errors_.count() != errors_before) return;
    const Descriptor* any_desc = any.GetDescriptor();
    any.GetReflection()->SetString(&any, any_desc->FindFieldByName("type_url"), type_url);
    any.GetReflection()->SetString(&any, any_desc->FindFieldByName("value"),
                                   inner->SerializePartialAsString());
  }

  std::string label_;
  size_t max_converted_;
  SourceMap& marks_;
  ErrorList& errors_;
  int depth_ = 0;
  size_t visited_ = 0;
};

} // namespace

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool parseYaml(std::string_view text, std::string_view source_label, YamlDocument& out,
               ErrorList& errors) {
  YamlDocument::Error e;
  if (out.parse(text, e)) return true;
  SourceLocation location{std::string(source_label), static_cast<int>(e.line),
                          static_cast<int>(e.column)};
  errors.add(&location, "", absl::StrCat("invalid YAML: ", e.message));
  return false;
}

void convertYamlToMessage(const YamlDocument& document, std::string_view source_label,
                          google::protobuf::Message& out, SourceMap& marks, ErrorList& errors) {
  const YamlNode& node = document.root();
  Converter converter(source_label,
                      kConvertedNodesAllowance + kConvertedNodesPerNode * document.nodeCount(),
                      marks, errors);
  try {
    if (node.line() != 0) {
      marks.record("", SourceLocation{std::string(source_label), static_cast<int>(node.line()),
                                      static_cast<int>(node.column())});
    }
    if (node.isNull()) return; // an empty document sets nothing
    converter.convertValueIntoMessage(node, out, "", std::string());
  } catch (const std::exception& e) {
    SourceLocation location{std::string(source_label), 0, 0};
    errors.add(&location, "", absl::StrCat("internal error while converting: ", e.what()));
  }
}

} // namespace legate::config
