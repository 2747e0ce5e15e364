#pragma once

// Where each field of a converted configuration came from, and the list of
// errors found while converting or validating it.
//
// Field paths use proto field names, "[index]" for repeated elements and
// "[\"key\"]" for map entries, and continue into the content of Any fields
// (e.g. static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix).
//
// Both classes are plain values used on the main thread during config loading.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/string_view_hash.h"
#include "common/string_arena.h"

namespace legate::config {

// A position in a configuration source; line and column are 1-based.
struct SourceLocation {
  std::string source; // a file name or "--config-yaml"
  int line = 0;
  int column = 0;
};

// Field path -> location of the YAML node that set it. A configuration has one
// entry per field it sets (a 10,000-cluster file: hundreds of thousands), so an
// entry keeps the source as an index into the few distinct sources.
class SourceMap {
public:
  SourceMap() = default;
  SourceMap(SourceMap&&) = default;
  SourceMap& operator=(SourceMap&&) = default;
  SourceMap(const SourceMap& other) { mergeFrom(other); }
  SourceMap& operator=(const SourceMap& other) {
    if (this != &other) {
      *this = SourceMap();
      mergeFrom(other);
    }
    return *this;
  }

  void record(std::string_view path, const SourceLocation& location);
  std::optional<SourceLocation> find(std::string_view path) const;
  // Adds every entry of other, overriding existing paths.
  void mergeFrom(const SourceMap& other);
  std::vector<std::pair<std::string, SourceLocation>> entries() const;
  size_t size() const { return locations_.size(); }

private:
  struct Entry {
    uint32_t source;
    int32_t line;
    int32_t column;
  };
  uint32_t sourceIndex(const std::string& source);
  SourceLocation expand(const Entry& e) const { return {sources_[e.source], e.line, e.column}; }

  std::vector<std::string> sources_;
  // Keys are views into paths_: hundreds of thousands of ~100-byte paths stored
  // back to back, freed in large blocks (a heap string each would leave holes
  // between the objects built meanwhile, which the allocator cannot give back).
  // The blocks are larger than the allocator's largest size class (256 KiB in
  // tcmalloc), so that once freed they go back to the OS with the free pages;
  // smaller ones would wait in its per-size caches as resident memory.
  StringArena paths_{1024 * 1024};
  absl::flat_hash_map<std::string_view, Entry, StringViewHash> locations_;
};

// Collects errors in order, keeping the first kMaxErrors. Each is rendered as
// "SOURCE:LINE:COL: FIELD.PATH: message" (parts that are unknown are left out).
class ErrorList {
public:
  static constexpr size_t kMaxErrors = 20;

  void add(const SourceLocation* location, std::string_view path, std::string_view message);
  bool empty() const { return total_ == 0; }
  size_t count() const { return total_; }
  const std::vector<std::string>& lines() const { return lines_; }
  // All errors, one per line, plus a note when some were left out.
  std::string text() const;
  // InvalidArgumentError(text()), or OK when empty.
  absl::Status toStatus() const;

private:
  std::vector<std::string> lines_;
  size_t total_ = 0;
};

// Path helpers shared by the converter and the validator.
std::string fieldPath(std::string_view parent, std::string_view field_name);
std::string indexPath(std::string_view parent, size_t index);
std::string mapKeyPath(std::string_view parent, std::string_view key);

} // namespace legate::config
