#pragma once

// A YAML document as a read-only tree, built from libyaml's event parser.
// JSON is YAML, so JSON files load the same way.
//
// The tree holds what configuration loading needs and nothing more: the kind
// of each node, a scalar's text and whether it was written plain (so `5` and
// `"5"` can differ where the target is a google.protobuf.Value), and the
// 1-based line and column where each node starts. Rules follow what Envoy
// users rely on: a plain empty scalar, `~`, `null`, `Null` and `NULL` are null;
// anchors and aliases work (an alias is the anchored node itself, not a copy);
// merge keys (`<<`) are not special, as in Envoy. Unlike a loader that reads
// only the first document and ignores the rest, a file with a second document
// is refused: configuration that is silently not read is a trap.
//
// Nodes live as long as their YamlDocument. Not thread-safe for writing;
// a parsed document may be read from any thread.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace legate::config {

class YamlNode {
public:
  enum class Kind : uint8_t { kNull, kScalar, kSequence, kMap };

  Kind kind() const { return kind_; }
  bool isNull() const { return kind_ == Kind::kNull; }
  bool isScalar() const { return kind_ == Kind::kScalar; }
  bool isSequence() const { return kind_ == Kind::kSequence; }
  bool isMap() const { return kind_ == Kind::kMap; }

  // A scalar's text (empty for other kinds).
  const std::string& scalar() const { return text_; }
  // True for a scalar written without quotes, block style or an explicit tag:
  // only such a scalar may read as a number, a boolean or null.
  bool plain() const { return plain_; }

  // Where the node starts, 1-based; 0 for the empty document's null root.
  uint32_t line() const { return line_; }
  uint32_t column() const { return column_; }

  // Sequence items, or map entries (key, value) in file order.
  size_t size() const { return kind_ == Kind::kMap ? entries_.size() : items_.size(); }
  const YamlNode& operator[](size_t i) const { return *items_[i]; }
  const std::vector<std::pair<const YamlNode*, const YamlNode*>>& entries() const {
    return entries_;
  }

private:
  friend class YamlDocument;
  Kind kind_ = Kind::kNull;
  bool plain_ = false;
  uint32_t line_ = 0;
  uint32_t column_ = 0;
  std::string text_;
  std::vector<const YamlNode*> items_;
  std::vector<std::pair<const YamlNode*, const YamlNode*>> entries_;
};

class YamlDocument {
public:
  struct Error {
    std::string message;
    uint32_t line = 0; // 1-based; 0 when unknown
    uint32_t column = 0;
  };

  YamlDocument() = default;
  YamlDocument(const YamlDocument&) = delete;
  YamlDocument& operator=(const YamlDocument&) = delete;

  // Parses text (one document; none is an empty document whose root is null).
  // On a syntax error returns false and fills error; the document is then empty.
  bool parse(std::string_view text, Error& error);

  const YamlNode& root() const { return root_ != nullptr ? *root_ : empty_; }
  // Nodes in the file (an alias is not a node of its own).
  size_t nodeCount() const { return nodes_.size(); }

private:
  std::deque<YamlNode> nodes_; // stable addresses
  const YamlNode* root_ = nullptr;
  YamlNode empty_;
};

} // namespace legate::config
