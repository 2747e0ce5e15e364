#pragma once

// An index over the routes of one virtual host, so that a lookup does not
// test thousands of routes one by one while keeping Envoy's "first route in
// order wins" rule exactly:
//
//  - exact `path` routes sit in hash maps (one case-sensitive, one keyed by
//    the lower-cased path for case_sensitive: false);
//  - `prefix` and `path_separated_prefix` routes sit in two byte tries (the
//    same split by case sensitivity);
//  - every other route (safe_regex) is in a plain sorted list.
//
// A lookup gathers the candidate indices from the maps and tries (every route
// whose path part could match), sorts them, and walks them merged with the
// unindexed list in ascending route order, stopping at the first route whose
// full match (path, headers, query, runtime fraction) succeeds. Indexes only
// ever over-approximate the path match, so the answer is the same as a
// linear scan.
//
// Thread: built once on the main thread, then read-only.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"

namespace legate::router {

class RouteIndex {
 public:
  // idx must be added in ascending order within each kind (the builder adds
  // routes in configuration order).
  void addExactPath(std::string_view path, bool case_sensitive, uint32_t idx);
  void addPrefix(std::string_view prefix, bool case_sensitive, uint32_t idx);
  void addUnindexed(uint32_t idx);

  // The smallest idx among the candidates for path (without query) for which
  // matches(idx) is true. Allocates nothing for up to kInlineCandidates
  // candidates (matches is a reference, the candidates are on the stack).
  std::optional<uint32_t> findFirst(std::string_view path,
                                    absl::FunctionRef<bool(uint32_t)> matches) const;

  size_t unindexedCount() const { return unindexed_.size(); }

 private:
  static constexpr size_t kInlineCandidates = 16;
  using Candidates = absl::InlinedVector<uint32_t, kInlineCandidates>;
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, uint32_t>> children;  // sorted by byte
      std::vector<uint32_t> routes;
    };
    std::vector<Node> nodes{Node{}};
    void insert(std::string_view key, uint32_t idx);
    // Appends the routes of every node on key's path (every stored prefix of key).
    void collect(std::string_view key, Candidates& out) const;
    bool empty() const { return nodes.size() == 1 && nodes[0].routes.empty(); }
  };

  absl::flat_hash_map<std::string, std::vector<uint32_t>> exact_;
  absl::flat_hash_map<std::string, std::vector<uint32_t>> exact_nocase_;
  Trie prefix_;
  Trie prefix_nocase_;
  std::vector<uint32_t> unindexed_;
};

}  // namespace legate::router
