#include "config/yaml_document.h"

#include <yaml.h>

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace legate::config {
namespace {

// Owns one libyaml parser and the event it last produced.
class EventReader {
public:
  explicit EventReader(std::string_view text) {
    ok_ = yaml_parser_initialize(&parser_) != 0;
    if (ok_) {
      yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()),
                                   text.size());
    }
  }
  ~EventReader() {
    clearEvent();
    if (ok_) yaml_parser_delete(&parser_);
  }
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  bool initialized() const { return ok_; }

  // The next event, or nullptr on a syntax error (see parser()).
  const yaml_event_t* next() {
    clearEvent();
    if (yaml_parser_parse(&parser_, &event_) == 0) return nullptr;
    have_event_ = true;
    return &event_;
  }

  const yaml_parser_t& parser() const { return parser_; }

private:
  void clearEvent() {
    if (have_event_) yaml_event_delete(&event_);
    have_event_ = false;
  }

  yaml_parser_t parser_{};
  yaml_event_t event_{};
  bool ok_ = false;
  bool have_event_ = false;
};

uint32_t oneBased(size_t zero_based) {
  return static_cast<uint32_t>(std::min<size_t>(zero_based, UINT32_MAX - 1) + 1);
}

// absl::string_view: the key type abseil's string hashing and StrCat take here.
absl::string_view chars(const yaml_char_t* s) {
  return s == nullptr ? absl::string_view() : absl::string_view(reinterpret_cast<const char*>(s));
}

bool isNullScalar(const yaml_event_t& e) {
  const absl::string_view tag = chars(e.data.scalar.tag);
  if (tag == "tag:yaml.org,2002:null") return true;
  if (!tag.empty() || e.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const std::string_view v(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
  return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
}

YamlDocument::Error syntaxError(const yaml_parser_t& p, std::string_view text) {
  YamlDocument::Error error;
  if (p.error == YAML_MEMORY_ERROR) {
    error.message = "out of memory while parsing";
    return error;
  }
  if (p.error == YAML_READER_ERROR) {
    // Bad encoding: libyaml gives a byte offset, not a mark.
    const size_t offset = std::min(p.problem_offset, text.size());
    const std::string_view before = text.substr(0, offset);
    const size_t last_newline = before.rfind('\n');
    error.line = oneBased(static_cast<size_t>(std::count(before.begin(), before.end(), '\n')));
    error.column = oneBased(last_newline == std::string_view::npos ? offset : offset - last_newline - 1);
    error.message = p.problem != nullptr ? p.problem : "invalid encoding";
    if (p.problem_value != -1) absl::StrAppendFormat(&error.message, " (byte 0x%02x)", p.problem_value);
    return error;
  }
  error.line = oneBased(p.problem_mark.line);
  error.column = oneBased(p.problem_mark.column);
  error.message = p.problem != nullptr ? p.problem : "syntax error";
  if (p.context != nullptr) {
    absl::StrAppend(&error.message, ", ", p.context, " from line ",
                    oneBased(p.context_mark.line), ", column ", oneBased(p.context_mark.column));
  }
  return error;
}

} // namespace

bool YamlDocument::parse(std::string_view text, Error& error) {
  nodes_.clear();
  root_ = nullptr;
  EventReader reader(text);
  if (!reader.initialized()) {
    error = Error{"out of memory while parsing", 0, 0};
    return false;
  }

  struct Frame {
    YamlNode* node;
    const YamlNode* key = nullptr; // a map's key awaiting its value
    std::string anchor;
  };
  std::vector<Frame> stack;
  absl::flat_hash_map<std::string, const YamlNode*> anchors;
  int documents = 0;
  const auto fail = [&](Error e) {
    nodes_.clear();
    root_ = nullptr;
    error = std::move(e);
    return false;
  };
  const auto place = [&](const YamlNode* node) {
    if (stack.empty()) {
      root_ = node;
      return;
    }
    Frame& top = stack.back();
    if (top.node->kind_ == YamlNode::Kind::kSequence) {
      top.node->items_.push_back(node);
    } else if (top.key == nullptr) {
      top.key = node;
    } else {
      top.node->entries_.emplace_back(top.key, node);
      top.key = nullptr;
    }
  };
  const auto make = [&](YamlNode::Kind kind, const yaml_mark_t& mark) {
    YamlNode& node = nodes_.emplace_back();
    node.kind_ = kind;
    node.line_ = oneBased(mark.line);
    node.column_ = oneBased(mark.column);
    return &node;
  };

  for (;;) {
    const yaml_event_t* e = reader.next();
    if (e == nullptr) return fail(syntaxError(reader.parser(), text));
    switch (e->type) {
    case YAML_STREAM_END_EVENT:
      return true;
    case YAML_DOCUMENT_START_EVENT:
      if (++documents > 1) {
        return fail(Error{"a second document starts here; expected one document per file",
                          oneBased(e->start_mark.line), oneBased(e->start_mark.column)});
      }
      break;
    case YAML_SCALAR_EVENT: {
      const bool null = isNullScalar(*e);
      YamlNode* node = make(null ? YamlNode::Kind::kNull : YamlNode::Kind::kScalar, e->start_mark);
      if (!null) {
        node->text_.assign(reinterpret_cast<const char*>(e->data.scalar.value), e->data.scalar.length);
        node->plain_ = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && e->data.scalar.tag == nullptr;
      }
      if (e->data.scalar.anchor != nullptr) anchors[chars(e->data.scalar.anchor)] = node;
      place(node);
      break;
    }
    case YAML_ALIAS_EVENT: {
      // An anchor is usable once its node is complete: no node contains itself.
      const auto it = anchors.find(chars(e->data.alias.anchor));
      if (it == anchors.end()) {
        return fail(Error{absl::StrCat("alias '*", chars(e->data.alias.anchor),
                                       "' names no anchor defined before it"),
                          oneBased(e->start_mark.line), oneBased(e->start_mark.column)});
      }
      place(it->second);
      break;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      const bool seq = e->type == YAML_SEQUENCE_START_EVENT;
      YamlNode* node = make(seq ? YamlNode::Kind::kSequence : YamlNode::Kind::kMap, e->start_mark);
      const yaml_char_t* anchor =
          seq ? e->data.sequence_start.anchor : e->data.mapping_start.anchor;
      stack.push_back(Frame{node, nullptr, std::string(chars(anchor))});
      break;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
      Frame done = std::move(stack.back());
      stack.pop_back();
      if (!done.anchor.empty()) anchors[done.anchor] = done.node;
      place(done.node);
      break;
    }
    default: // stream start, document end
      break;
    }
  }
}

} // namespace legate::config
