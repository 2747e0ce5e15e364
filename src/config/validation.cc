#include "config/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/duration.pb.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "config/extension_registry.h"
#include "validate/validate.pb.h"

namespace legate::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

using Nanos = __int128;

// The bounds of one numeric rule set, in the value's own type.
template <typename T> struct Bounds {
  std::optional<T> const_value, gt, gte, lt, lte;
  std::vector<T> in, not_in;
};

template <typename T, typename R> Bounds<T> boundsOf(const R& r) {
  Bounds<T> b;
  if (r.has_const_()) b.const_value = r.const_();
  if (r.has_gt()) b.gt = r.gt();
  if (r.has_gte()) b.gte = r.gte();
  if (r.has_lt()) b.lt = r.lt();
  if (r.has_lte()) b.lte = r.lte();
  b.in.assign(r.in().begin(), r.in().end());
  b.not_in.assign(r.not_in().begin(), r.not_in().end());
  return b;
}

Nanos toNanos(const google::protobuf::Duration& d) {
  return static_cast<Nanos>(d.seconds()) * 1000000000 + d.nanos();
}

std::string formatNanos(Nanos n) {
  const bool negative = n < 0;
  if (negative) n = -n;
  const auto seconds = static_cast<int64_t>(n / 1000000000);
  auto nanos = static_cast<int64_t>(n % 1000000000);
  std::string out = absl::StrCat(negative ? "-" : "", seconds);
  if (nanos != 0) {
    std::string frac = absl::StrCat(nanos + 1000000000).substr(1);
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    absl::StrAppend(&out, ".", frac);
  }
  return out + "s";
}

Bounds<Nanos> durationBounds(const validate::DurationRules& r) {
  Bounds<Nanos> b;
  if (r.has_const_()) b.const_value = toNanos(r.const_());
  if (r.has_gt()) b.gt = toNanos(r.gt());
  if (r.has_gte()) b.gte = toNanos(r.gte());
  if (r.has_lt()) b.lt = toNanos(r.lt());
  if (r.has_lte()) b.lte = toNanos(r.lte());
  for (const auto& d : r.in()) b.in.push_back(toNanos(d));
  for (const auto& d : r.not_in()) b.not_in.push_back(toNanos(d));
  return b;
}

// Returns the violation of b by v, or "" when v satisfies it.
template <typename T>
std::string checkBounds(const Bounds<T>& b, T v, const std::function<std::string(T)>& fmt) {
  const std::string value = absl::StrCat("value ", fmt(v));
  if (b.const_value && !(v == *b.const_value)) {
    return absl::StrCat(value, " must equal ", fmt(*b.const_value));
  }
  const bool has_lower = b.gt || b.gte;
  const bool has_upper = b.lt || b.lte;
  const bool lower_ok = !has_lower || (b.gt ? v > *b.gt : v >= *b.gte);
  const bool upper_ok = !has_upper || (b.lt ? v < *b.lt : v <= *b.lte);
  const std::string lower = has_lower ? (b.gt ? "> " + fmt(*b.gt) : ">= " + fmt(*b.gte)) : "";
  const std::string upper = has_upper ? (b.lt ? "< " + fmt(*b.lt) : "<= " + fmt(*b.lte)) : "";
  if (has_lower && has_upper) {
    const T lo = b.gt ? *b.gt : *b.gte;
    const T hi = b.lt ? *b.lt : *b.lte;
    if (lo > hi) { // exclusive range: outside [hi, lo]
      if (!lower_ok && !upper_ok) return absl::StrCat(value, " must be ", lower, " or ", upper);
    } else if (!lower_ok || !upper_ok) {
      return absl::StrCat(value, " must be ", lower, " and ", upper);
    }
  } else if (!lower_ok) {
    return absl::StrCat(value, " must be ", lower);
  } else if (!upper_ok) {
    return absl::StrCat(value, " must be ", upper);
  }
  auto list = [&](const std::vector<T>& values) {
    std::vector<std::string> out;
    for (const T& x : values) out.push_back(fmt(x));
    return absl::StrJoin(out, ", ");
  };
  if (!b.in.empty() && std::find(b.in.begin(), b.in.end(), v) == b.in.end()) {
    return absl::StrCat(value, " must be one of [", list(b.in), "]");
  }
  if (std::find(b.not_in.begin(), b.not_in.end(), v) != b.not_in.end()) {
    return absl::StrCat(value, " must not be one of [", list(b.not_in), "]");
  }
  return "";
}

template <typename T> std::string plainFormat(T v) { return absl::StrCat(v); }

size_t utf8Length(absl::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool isHeaderNameChar(unsigned char c) {
  return absl::ascii_isalnum(c) || absl::string_view("!#$%&'*+-.^_|~`").find(static_cast<char>(c)) !=
                                        absl::string_view::npos;
}

bool validHostname(absl::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (s.back() == '.') s.remove_suffix(1);
  for (absl::string_view label : absl::StrSplit(s, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!absl::ascii_isalnum(c) && c != '-') return false;
    }
  }
  return true;
}

bool validIp(const std::string& s, int family) {
  unsigned char buf[16];
  return inet_pton(family, s.c_str(), buf) == 1;
}

std::string quoted(absl::string_view s) { return absl::StrCat("'", s, "'"); }

class Validator {
public:
  static constexpr size_t kMaxDepth = 100;

  Validator(const SourceMap* marks, ErrorList& errors) : marks_(marks), errors_(errors) {}

  void validateMessage(const Message& msg, const std::string& path) {
    const Descriptor* desc = msg.GetDescriptor();
    if (desc->options().GetExtension(validate::disabled) || ignoredByOption(*desc)) return;
    if (ancestors_.size() > kMaxDepth) {
      error(path, "nesting is too deep to validate");
      return;
    }
    ancestors_.push_back(path);
    const Reflection* refl = msg.GetReflection();
    for (int i = 0; i < desc->oneof_decl_count(); ++i) {
      const google::protobuf::OneofDescriptor* oneof = desc->oneof_decl(i);
      if (oneof->is_synthetic() || !oneof->options().GetExtension(validate::required)) continue;
      if (!refl->HasOneof(msg, oneof)) {
        std::vector<std::string> names;
        for (int f = 0; f < oneof->field_count(); ++f) names.push_back(oneof->field(f)->name());
        error(path, absl::StrCat("none of the fields of oneof '", oneof->name(),
                                 "' is set; expected exactly one of: ", absl::StrJoin(names, ", ")));
      }
    }
    for (int i = 0; i < desc->field_count(); ++i) validateField(msg, desc->field(i), path);
    ancestors_.pop_back();
  }

private:
  // validate.ignored exists only in newer PGV versions: look it up by name.
  static bool ignoredByOption(const Descriptor& desc) {
    static const FieldDescriptor* ignored =
        google::protobuf::DescriptorPool::generated_pool()->FindExtensionByName("validate.ignored");
    if (ignored == nullptr || ignored->cpp_type() != FieldDescriptor::CPPTYPE_BOOL) return false;
    const Message& options = desc.options();
    return options.GetReflection()->HasField(options, ignored) &&
           options.GetReflection()->GetBool(options, ignored);
  }

  void error(const std::string& path, const std::string& message) {
    std::optional<SourceLocation> location;
    if (marks_ != nullptr) {
      location = marks_->find(path);
      for (auto it = ancestors_.rbegin(); !location && it != ancestors_.rend(); ++it) {
        location = marks_->find(*it);
      }
    }
    errors_.add(location ? &*location : nullptr, path, message);
  }

  static const validate::FieldRules& rulesOf(const FieldDescriptor* fd) {
    if (fd->options().HasExtension(validate::rules)) return fd->options().GetExtension(validate::rules);
    return validate::FieldRules::default_instance();
  }

  void validateField(const Message& msg, const FieldDescriptor* fd, const std::string& parent) {
    const Reflection* refl = msg.GetReflection();
    const validate::FieldRules& rules = rulesOf(fd);
    const std::string path = fieldPath(parent, fd->name());
    if (fd->is_map()) {
      const int n = refl->FieldSize(msg, fd);
      const auto& r = rules.map();
      if (r.has_min_pairs() && static_cast<uint64_t>(n) < r.min_pairs()) {
        error(path, absl::StrCat("has ", n, " entries; expected at least ", r.min_pairs()));
      }
      if (r.has_max_pairs() && static_cast<uint64_t>(n) > r.max_pairs()) {
        error(path, absl::StrCat("has ", n, " entries; expected at most ", r.max_pairs()));
      }
      const FieldDescriptor* key_fd = fd->message_type()->map_key();
      const FieldDescriptor* value_fd = fd->message_type()->map_value();
      for (int i = 0; i < n; ++i) {
        const Message& entry = refl->GetRepeatedMessage(msg, fd, i);
        const std::string entry_path = mapKeyPath(path, scalarText(entry, key_fd, -1));
        if (r.has_keys()) checkValue(r.keys(), entry, key_fd, -1, entry_path);
        checkValue(r.values(), entry, value_fd, -1, entry_path);
      }
      return;
    }
    if (fd->is_repeated()) {
      const int n = refl->FieldSize(msg, fd);
      const auto& r = rules.repeated();
      if (r.has_min_items() && static_cast<uint64_t>(n) < r.min_items()) {
        error(path, absl::StrCat("has ", n, " items; expected at least ", r.min_items()));
      }
      if (r.has_max_items() && static_cast<uint64_t>(n) > r.max_items()) {
        error(path, absl::StrCat("has ", n, " items; expected at most ", r.max_items()));
      }
      absl::flat_hash_set<std::string> seen;
      for (int i = 0; i < n; ++i) {
        const std::string element_path = indexPath(path, i);
        if (r.unique() && fd->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
          std::string text = scalarText(msg, fd, i);
          if (!seen.insert(text).second) {
            error(element_path, absl::StrCat("value ", quoted(text),
                                             " appears more than once; expected unique items"));
          }
        }
        checkValue(r.items(), msg, fd, i, element_path);
      }
      return;
    }
    // Only the member of a oneof that is set is validated, as PGV does.
    if (fd->real_containing_oneof() != nullptr && !refl->HasField(msg, fd)) return;
    if (fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (!refl->HasField(msg, fd)) {
        if (rules.message().required() || (rules.has_duration() && rules.duration().required()) ||
            (rules.has_any() && rules.any().required()) ||
            (rules.has_timestamp() && rules.timestamp().required())) {
          error(path, absl::StrCat("required field is missing; expected ",
                                   fd->message_type()->full_name()));
        }
        return;
      }
    } else if (fd->has_presence() && !refl->HasField(msg, fd)) {
      return;
    }
    checkValue(rules, msg, fd, -1, path);
  }

  // The value of a scalar field (element index, or -1 when singular) as text.
  static std::string scalarText(const Message& msg, const FieldDescriptor* fd, int index) {
    const Reflection* r = msg.GetReflection();
    const bool rep = index >= 0;
    switch (fd->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(msg, fd, index) : r->GetInt32(msg, fd));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(msg, fd, index) : r->GetInt64(msg, fd));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r->GetRepeatedUInt32(msg, fd, index) : r->GetUInt32(msg, fd));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(msg, fd, index) : r->GetUInt64(msg, fd));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r->GetRepeatedDouble(msg, fd, index) : r->GetDouble(msg, fd));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return absl::StrCat(rep ? r->GetRepeatedFloat(msg, fd, index) : r->GetFloat(msg, fd));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(msg, fd, index) : r->GetBool(msg, fd)) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::StrCat(rep ? r->GetRepeatedEnumValue(msg, fd, index) : r->GetEnumValue(msg, fd));
    case FieldDescriptor::CPPTYPE_STRING:
      return rep ? r->GetRepeatedString(msg, fd, index) : r->GetString(msg, fd);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
    }
    return "";
  }

  void checkValue(const validate::FieldRules& rules, const Message& msg, const FieldDescriptor* fd,
                  int index, const std::string& path) {
    if (fd->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      checkScalar(rules, msg, fd, index, path);
      return;
    }
    const Reflection* refl = msg.GetReflection();
    const Message& sub = index < 0 ? refl->GetMessage(msg, fd) : refl->GetRepeatedMessage(msg, fd, index);
    const Descriptor* desc = sub.GetDescriptor();
    const std::string& type = desc->full_name();
    if (absl::StartsWith(type, "google.protobuf.") && absl::EndsWith(type, "Value") &&
        type != "google.protobuf.Value" && type != "google.protobuf.ListValue") {
      checkScalar(rules, sub, desc->FindFieldByName("value"), -1, path);
      return;
    }
    if (type == "google.protobuf.Duration") {
      if (rules.has_duration()) {
        const Reflection* r = sub.GetReflection();
        google::protobuf::Duration d;
        d.set_seconds(r->GetInt64(sub, desc->FindFieldByName("seconds")));
        d.set_nanos(r->GetInt32(sub, desc->FindFieldByName("nanos")));
        std::string violation = checkBounds<Nanos>(durationBounds(rules.duration()), toNanos(d),
                                                   formatNanos);
        if (!violation.empty()) error(path, violation);
      }
      return;
    }
    if (type == "google.protobuf.Timestamp" || type == "google.protobuf.Struct" ||
        type == "google.protobuf.Value" || type == "google.protobuf.ListValue") {
      return;
    }
    if (type == "google.protobuf.Any") {
      checkAny(rules, msg, sub, path);
      return;
    }
    if (rules.message().skip()) return;
    validateMessage(sub, path);
  }

  void checkAny(const validate::FieldRules& rules, const Message& parent, const Message& any,
                const std::string& path) {
    const Descriptor* any_desc = any.GetDescriptor();
    const std::string type_url =
        any.GetReflection()->GetString(any, any_desc->FindFieldByName("type_url"));
    if (rules.has_any()) {
      const auto& in = rules.any().in();
      if (!in.empty() && std::find(in.begin(), in.end(), type_url) == in.end()) {
        error(path, absl::StrCat("type ", quoted(type_url), " is not allowed here; expected one of: ",
                                 absl::StrJoin(in, ", ")));
        return;
      }
      const auto& not_in = rules.any().not_in();
      if (std::find(not_in.begin(), not_in.end(), type_url) != not_in.end()) {
        error(path, absl::StrCat("type ", quoted(type_url), " is not allowed here"));
        return;
      }
    }
    if (type_url.empty()) {
      error(path, "missing '@type'; expected '@type: type.googleapis.com/<message name>'");
      return;
    }
    const std::string type_name(typeNameFromUrl(type_url));
    const Descriptor* desc =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type_name);
    const bool keep = desc != nullptr && isSkippableExtensionSlot(path);
    if (desc == nullptr || (!keep && !isExtensionImplemented(type_name))) {
      std::string message = absl::StrCat("legate does not implement the extension ", quoted(type_url));
      const FieldDescriptor* name_fd = parent.GetDescriptor()->FindFieldByName("name");
      if (name_fd != nullptr && name_fd->type() == FieldDescriptor::TYPE_STRING &&
          !name_fd->is_repeated()) {
        const std::string name = parent.GetReflection()->GetString(parent, name_fd);
        if (!name.empty()) absl::StrAppend(&message, " (name: ", name, ")");
      }
      error(path, message + "; expected one of the extensions legate implements");
      return;
    }
    std::unique_ptr<Message> inner(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(desc)->New());
    if (!inner->ParsePartialFromString(
            any.GetReflection()->GetString(any, any_desc->FindFieldByName("value")))) {
      error(path, absl::StrCat("the value of the Any is not a valid ", type_name));
      return;
    }
    validateMessage(*inner, path);
  }

  void checkScalar(const validate::FieldRules& rules, const Message& msg, const FieldDescriptor* fd,
                   int index, const std::string& path) {
    const Reflection* r = msg.GetReflection();
    const bool rep = index >= 0;
    std::string violation;
    auto i64 = [&] {
      return fd->cpp_type() == FieldDescriptor::CPPTYPE_INT32
                 ? static_cast<int64_t>(rep ? r->GetRepeatedInt32(msg, fd, index) : r->GetInt32(msg, fd))
                 : (rep ? r->GetRepeatedInt64(msg, fd, index) : r->GetInt64(msg, fd));
    };
    auto u64 = [&] {
      return fd->cpp_type() == FieldDescriptor::CPPTYPE_UINT32
                 ? static_cast<uint64_t>(rep ? r->GetRepeatedUInt32(msg, fd, index)
                                             : r->GetUInt32(msg, fd))
                 : (rep ? r->GetRepeatedUInt64(msg, fd, index) : r->GetUInt64(msg, fd));
    };
    auto dbl = [&] {
      return fd->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT
                 ? static_cast<double>(rep ? r->GetRepeatedFloat(msg, fd, index) : r->GetFloat(msg, fd))
                 : (rep ? r->GetRepeatedDouble(msg, fd, index) : r->GetDouble(msg, fd));
    };
    using R = validate::FieldRules;
    switch (rules.type_case()) {
    case R::kFloat:
      violation = checkBounds<float>(boundsOf<float>(rules.float_()), static_cast<float>(dbl()),
                                     plainFormat<float>);
      break;
    case R::kDouble:
      violation = checkBounds<double>(boundsOf<double>(rules.double_()), dbl(), plainFormat<double>);
      break;
    case R::kInt32:
      violation = checkBounds<int32_t>(boundsOf<int32_t>(rules.int32()), static_cast<int32_t>(i64()),
                                       plainFormat<int32_t>);
      break;
    case R::kSint32:
      violation = checkBounds<int32_t>(boundsOf<int32_t>(rules.sint32()),
                                       static_cast<int32_t>(i64()), plainFormat<int32_t>);
      break;
    case R::kSfixed32:
      violation = checkBounds<int32_t>(boundsOf<int32_t>(rules.sfixed32()),
                                       static_cast<int32_t>(i64()), plainFormat<int32_t>);
      break;
    case R::kInt64:
      violation = checkBounds<int64_t>(boundsOf<int64_t>(rules.int64()), i64(), plainFormat<int64_t>);
      break;
    case R::kSint64:
      violation = checkBounds<int64_t>(boundsOf<int64_t>(rules.sint64()), i64(), plainFormat<int64_t>);
      break;
    case R::kSfixed64:
      violation =
          checkBounds<int64_t>(boundsOf<int64_t>(rules.sfixed64()), i64(), plainFormat<int64_t>);
      break;
    case R::kUint32:
      violation = checkBounds<uint32_t>(boundsOf<uint32_t>(rules.uint32()),
                                        static_cast<uint32_t>(u64()), plainFormat<uint32_t>);
      break;
    case R::kFixed32:
      violation = checkBounds<uint32_t>(boundsOf<uint32_t>(rules.fixed32()),
                                        static_cast<uint32_t>(u64()), plainFormat<uint32_t>);
      break;
    case R::kUint64:
      violation =
          checkBounds<uint64_t>(boundsOf<uint64_t>(rules.uint64()), u64(), plainFormat<uint64_t>);
      break;
    case R::kFixed64:
      violation =
          checkBounds<uint64_t>(boundsOf<uint64_t>(rules.fixed64()), u64(), plainFormat<uint64_t>);
      break;
    case R::kBool: {
      const bool v = rep ? r->GetRepeatedBool(msg, fd, index) : r->GetBool(msg, fd);
      if (rules.bool_().has_const_() && v != rules.bool_().const_()) {
        violation = absl::StrCat("value ", v ? "true" : "false", " must equal ",
                                 rules.bool_().const_() ? "true" : "false");
      }
      break;
    }
    case R::kEnum:
      violation = checkEnum(rules.enum_(), fd,
                            rep ? r->GetRepeatedEnumValue(msg, fd, index) : r->GetEnumValue(msg, fd));
      break;
    case R::kString:
      violation = checkString(rules.string(), rep ? r->GetRepeatedString(msg, fd, index)
                                                  : r->GetString(msg, fd));
      break;
    case R::kBytes:
      violation = checkBytes(rules.bytes(),
                             rep ? r->GetRepeatedString(msg, fd, index) : r->GetString(msg, fd));
      break;
    default:
      break;
    }
    if (!violation.empty()) error(path, violation);
  }

  static std::string checkEnum(const validate::EnumRules& r, const FieldDescriptor* fd, int v) {
    const auto* enum_desc = fd->enum_type();
    auto name = [&](int number) {
      const auto* value = enum_desc != nullptr ? enum_desc->FindValueByNumber(number) : nullptr;
      return value != nullptr ? value->name() : absl::StrCat(number);
    };
    if (r.has_const_() && v != r.const_()) {
      return absl::StrCat("value ", name(v), " must equal ", name(r.const_()));
    }
    if (r.defined_only() && enum_desc != nullptr && enum_desc->FindValueByNumber(v) == nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < enum_desc->value_count(); ++i) names.push_back(enum_desc->value(i)->name());
      return absl::StrCat("value ", v, " is not defined in enum ", enum_desc->full_name(),
                          "; expected one of: ", absl::StrJoin(names, ", "));
    }
    std::vector<std::string> names;
    for (int x : r.in()) names.push_back(name(x));
    if (!r.in().empty() && std::find(r.in().begin(), r.in().end(), v) == r.in().end()) {
      return absl::StrCat("value ", name(v), " must be one of [", absl::StrJoin(names, ", "), "]");
    }
    if (std::find(r.not_in().begin(), r.not_in().end(), v) != r.not_in().end()) {
      return absl::StrCat("value ", name(v), " is not allowed here");
    }
    return "";
  }

  static std::string checkLengths(absl::string_view what, size_t n, bool has_exact, uint64_t exact,
                                  bool has_min, uint64_t min, bool has_max, uint64_t max) {
    if (has_exact && n != exact) return absl::StrCat("is ", n, " ", what, " long; expected exactly ", exact);
    if (has_min && n < min) {
      if (n == 0) {
        // "1 character", "2 characters"
        return absl::StrCat("is empty; expected at least ", min, " ",
                            min == 1 ? what.substr(0, what.size() - 1) : what);
      }
      return absl::StrCat("is ", n, " ", what, " long; expected at least ", min);
    }
    if (has_max && n > max) return absl::StrCat("is ", n, " ", what, " long; expected at most ", max);
    return "";
  }

  std::string checkString(const validate::StringRules& r, const std::string& v) {
    if (r.ignore_empty() && v.empty()) return "";
    const std::string value = absl::StrCat("value ", quoted(v));
    if (r.has_const_() && v != r.const_()) return absl::StrCat(value, " must equal ", quoted(r.const_()));
    std::string length = checkLengths("characters", utf8Length(v), r.has_len(), r.len(),
                                      r.has_min_len(), r.min_len(), r.has_max_len(), r.max_len());
    if (length.empty()) {
      length = checkLengths("bytes", v.size(), r.has_len_bytes(), r.len_bytes(), r.has_min_bytes(),
                            r.min_bytes(), r.has_max_bytes(), r.max_bytes());
    }
    if (!length.empty()) return absl::StrCat(v.empty() ? "value" : value, " ", length);
    if (r.has_pattern() && !matchesPattern(r.pattern(), v)) {
      return absl::StrCat(value, " does not match the pattern ", quoted(r.pattern()));
    }
    if (r.has_prefix() && !absl::StartsWith(v, r.prefix())) {
      return absl::StrCat(value, " must start with ", quoted(r.prefix()));
    }
    if (r.has_suffix() && !absl::EndsWith(v, r.suffix())) {
      return absl::StrCat(value, " must end with ", quoted(r.suffix()));
    }
    if (r.has_contains() && !absl::StrContains(v, r.contains())) {
      return absl::StrCat(value, " must contain ", quoted(r.contains()));
    }
    if (r.has_not_contains() && absl::StrContains(v, r.not_contains())) {
      return absl::StrCat(value, " must not contain ", quoted(r.not_contains()));
    }
    if (!r.in().empty() && std::find(r.in().begin(), r.in().end(), v) == r.in().end()) {
      return absl::StrCat(value, " must be one of [", absl::StrJoin(r.in(), ", "), "]");
    }
    if (std::find(r.not_in().begin(), r.not_in().end(), v) != r.not_in().end()) {
      return absl::StrCat(value, " is not allowed here");
    }
    switch (r.well_known_case()) {
    case validate::StringRules::kWellKnownRegex:
      return checkHeaderRegex(r.well_known_regex(), r.strict(), v);
    case validate::StringRules::kHostname:
      if (r.hostname() && !validHostname(v)) return value + " is not a valid hostname";
      break;
    case validate::StringRules::kIp:
      if (r.ip() && !validIp(v, AF_INET) && !validIp(v, AF_INET6)) {
        return value + " is not a valid IP address";
      }
      break;
    case validate::StringRules::kIpv4:
      if (r.ipv4() && !validIp(v, AF_INET)) return value + " is not a valid IPv4 address";
      break;
    case validate::StringRules::kIpv6:
      if (r.ipv6() && !validIp(v, AF_INET6)) return value + " is not a valid IPv6 address";
      break;
    case validate::StringRules::kAddress:
      if (r.address() && !validIp(v, AF_INET) && !validIp(v, AF_INET6) && !validHostname(v)) {
        return value + " is not a valid hostname or IP address";
      }
      break;
    default:
      break;
    }
    return "";
  }

  static std::string checkHeaderRegex(validate::KnownRegex regex, bool strict, const std::string& v) {
    // RFC 7230 token for names; values exclude control characters but HTAB.
    // Non-strict mode only rejects NUL, CR and LF, as PGV does.
    auto bad = [&](unsigned char c, bool is_name) {
      if (!strict) return c == 0 || c == '\r' || c == '\n';
      if (is_name) return !isHeaderNameChar(c);
      return (c < 0x20 && c != '\t') || c == 0x7f;
    };
    if (regex == validate::HTTP_HEADER_NAME) {
      absl::string_view s(v);
      if (strict && absl::StartsWith(s, ":")) s.remove_prefix(1);
      if (s.empty() && strict) return absl::StrCat("value ", quoted(v), " is not a valid HTTP header name");
      for (unsigned char c : s) {
        if (bad(c, true)) return absl::StrCat("value ", quoted(v), " is not a valid HTTP header name");
      }
    } else if (regex == validate::HTTP_HEADER_VALUE) {
      for (unsigned char c : v) {
        if (bad(c, false)) {
          return absl::StrCat("value ", quoted(v),
                              " is not a valid HTTP header value (control characters are not allowed)");
        }
      }
    }
    return "";
  }

  static std::string checkBytes(const validate::BytesRules& r, const std::string& v) {
    if (r.has_const_() && v != r.const_()) return "value must equal the required constant bytes";
    std::string length = checkLengths("bytes", v.size(), r.has_len(), r.len(), r.has_min_len(),
                                      r.min_len(), r.has_max_len(), r.max_len());
    if (!length.empty()) return absl::StrCat("value ", length);
    if (r.has_prefix() && !absl::StartsWith(v, r.prefix())) return "value has the wrong prefix";
    if (r.has_suffix() && !absl::EndsWith(v, r.suffix())) return "value has the wrong suffix";
    if (r.has_contains() && !absl::StrContains(v, r.contains())) return "value lacks required bytes";
    if (!r.in().empty() && std::find(r.in().begin(), r.in().end(), v) == r.in().end()) {
      return "value is not one of the allowed values";
    }
    if (std::find(r.not_in().begin(), r.not_in().end(), v) != r.not_in().end()) {
      return "value is not allowed here";
    }
    return "";
  }

  // PGV patterns are RE2 syntax; the ones Envoy uses are also valid ECMAScript.
  // A pattern std::regex cannot compile is not enforced.
  bool matchesPattern(const std::string& pattern, const std::string& v) {
    auto it = patterns_.find(pattern);
    if (it == patterns_.end()) {
      std::shared_ptr<std::regex> compiled;
      try {
        compiled = std::make_shared<std::regex>(pattern, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        compiled = nullptr;
      }
      it = patterns_.emplace(pattern, std::move(compiled)).first;
    }
    if (it->second == nullptr) return true;
    try {
      return std::regex_search(v, *it->second);
    } catch (const std::regex_error&) {
      return true;
    }
  }

  const SourceMap* marks_;
  ErrorList& errors_;
  std::vector<std::string> ancestors_;
  std::map<std::string, std::shared_ptr<std::regex>> patterns_;
};

} // namespace

void validateMessage(const google::protobuf::Message& msg, std::string_view path,
                     const SourceMap* marks, ErrorList& errors) {
  Validator(marks, errors).validateMessage(msg, std::string(path));
}

absl::Status validateMessage(const google::protobuf::Message& msg) {
  ErrorList errors;
  validateMessage(msg, "", nullptr, errors);
  return errors.toStatus();
}

} // namespace legate::config
