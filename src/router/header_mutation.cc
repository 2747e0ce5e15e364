#include "router/header_mutation.h"

#include <utility>

#include "envoy/config/core/v3/base.pb.h"

// Envoy still honours the deprecated fields (exact_match, append, total_weight,
// google_re2.max_program_size, ...); so do we.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace legate::router {

namespace {

// Envoy's rule (HeaderUtility::isModifiableHeader): pseudo-headers and host
// belong to the request line / authority and are changed only by the
// dedicated rewrite options.
bool isModifiable(const std::string& lower_name) {
  return !lower_name.empty() && lower_name[0] != ':' && lower_name != "host";
}

// One %OPERATOR% / %OPERATOR(arg)% / %OPERATOR(arg):N% at value[start]
// (which is '%'); returns its length, or 0 if it is not well formed.
size_t operatorLength(const std::string& value, size_t start) {
  size_t i = start + 1;
  while (i < value.size() && ((value[i] >= 'A' && value[i] <= 'Z') ||
                              (value[i] >= '0' && value[i] <= '9') || value[i] == '_')) {
    ++i;
  }
  if (i == start + 1)
    return 0;
  if (i < value.size() && value[i] == '(') {
    const size_t close = value.find(')', i);
    if (close == std::string::npos)
      return 0;
    i = close + 1;
  }
  if (i < value.size() && value[i] == ':') {
    ++i;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9')
      ++i;
  }
  if (i >= value.size() || value[i] != '%')
    return 0;
  return i + 1 - start;
}

}  // namespace

absl::StatusOr<std::vector<HeaderMutations::Part>> HeaderMutations::parseHeaderValue(
    const std::string& value) {
  std::vector<Part> parts;
  std::string literal;
  size_t i = 0;
  while (i < value.size()) {
    if (value[i] != '%') {
      literal.push_back(value[i++]);
      continue;
    }
    if (i + 1 < value.size() && value[i + 1] == '%') {  // "%%" is a literal '%'
      literal.push_back('%');
      i += 2;
      continue;
    }
    const size_t len = operatorLength(value, i);
    if (len == 0) {
      return absl::InvalidArgumentError("'" + value + "': a '%' at offset " + std::to_string(i) +
                                        " does not start a %OPERATOR% (write %% for a literal %)");
    }
    // Each operator gets its own formatter, so that an empty result can be
    // told apart from text (the access-log formatter prints it as "-").
    auto f = accesslog::parseTextFormat(value.substr(i, len));
    if (!f.ok())
      return f.status();
    if (!literal.empty())
      parts.push_back(Part{std::move(literal), nullptr});
    literal.clear();
    parts.push_back(Part{"", std::shared_ptr<const accesslog::Formatter>(std::move(*f))});
    i += len;
  }
  if (!literal.empty() || parts.empty())
    parts.push_back(Part{std::move(literal), nullptr});
  return parts;
}

std::string HeaderMutations::Add::format(const accesslog::StreamInfo& info) const {
  if (parts.size() == 1 && parts[0].op == nullptr)
    return parts[0].literal;
  std::string out;
  for (const auto& p : parts) {
    if (p.op == nullptr) {
      out += p.literal;
      continue;
    }
    std::string v = p.op->format(info);
    // An operator with no value contributes nothing to a header, as in Envoy
    // (so keep_empty_value decides whether the header is added at all).
    if (v != "-")
      out += v;
  }
  return out;
}

absl::StatusOr<HeaderMutations> HeaderMutations::create(const AddList& add,
                                                        const std::string& add_path,
                                                        const RemoveList& remove,
                                                        const std::string& remove_path) {
  using HVO = envoy::config::core::v3::HeaderValueOption;
  HeaderMutations m;
  for (int i = 0; i < add.size(); ++i) {
    const HVO& opt = add[i];
    const std::string path = add_path + "[" + std::to_string(i) + "]";
    Add a;
    a.name = opt.header().key();
    http::toLowerInPlace(a.name);
    if (!isModifiable(a.name)) {
      return absl::InvalidArgumentError(path + ".header.key: '" + opt.header().key() +
                                        "': ':'-prefixed or host headers may not be modified");
    }
    const std::string& value =
        opt.header().raw_value().empty() ? opt.header().value() : opt.header().raw_value();
    auto parts = parseHeaderValue(value);
    if (!parts.ok()) {
      return absl::InvalidArgumentError(path +
                                        ".header.value: " + std::string(parts.status().message()));
    }
    a.parts = std::move(*parts);
    if (opt.has_append()) {
      if (opt.append_action() != HVO::APPEND_IF_EXISTS_OR_ADD) {
        return absl::InvalidArgumentError(
            path + ": both append and append_action are set; use append_action only");
      }
      a.action =
          opt.append().value() ? Action::kAppendIfExistsOrAdd : Action::kOverwriteIfExistsOrAdd;
    } else {
      switch (opt.append_action()) {
      case HVO::ADD_IF_ABSENT:
        a.action = Action::kAddIfAbsent;
        break;
      case HVO::OVERWRITE_IF_EXISTS_OR_ADD:
        a.action = Action::kOverwriteIfExistsOrAdd;
        break;
      case HVO::OVERWRITE_IF_EXISTS:
        a.action = Action::kOverwriteIfExists;
        break;
      default:
        a.action = Action::kAppendIfExistsOrAdd;
        break;
      }
    }
    a.keep_empty = opt.keep_empty_value();
    m.add_.push_back(std::move(a));
  }
  for (int i = 0; i < remove.size(); ++i) {
    std::string name = remove[i];
    http::toLowerInPlace(name);
    if (!isModifiable(name)) {
      return absl::InvalidArgumentError(remove_path + "[" + std::to_string(i) + "]: '" + remove[i] +
                                        "': ':'-prefixed or host headers may not be removed");
    }
    m.remove_.push_back(std::move(name));
  }
  return m;
}

void HeaderMutations::apply(http::HeaderMap& headers, const accesslog::StreamInfo& info) const {
  for (const auto& name : remove_)
    headers.remove(name);
  if (add_.empty())
    return;

  // Evaluate every value first, so each formatter and each existence test
  // sees the headers as they were before this level's additions.
  std::vector<std::pair<const std::string*, std::string>> overwrite;
  std::vector<std::pair<const std::string*, std::string>> append;
  for (const auto& a : add_) {
    std::string value = a.format(info);
    if (value.empty() && !a.keep_empty)
      continue;
    switch (a.action) {
    case Action::kAppendIfExistsOrAdd:
      append.emplace_back(&a.name, std::move(value));
      break;
    case Action::kAddIfAbsent:
      if (!headers.has(a.name))
        append.emplace_back(&a.name, std::move(value));
      break;
    case Action::kOverwriteIfExists:
      if (headers.has(a.name))
        overwrite.emplace_back(&a.name, std::move(value));
      break;
    case Action::kOverwriteIfExistsOrAdd:
      overwrite.emplace_back(&a.name, std::move(value));
      break;
    }
  }
  for (const auto& [name, value] : overwrite)
    headers.set(*name, value);
  for (const auto& [name, value] : append)
    headers.add(*name, value);
}

}  // namespace legate::router
