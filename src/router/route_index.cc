#include "router/route_index.h"

#include <algorithm>

#include "http/header_map.h"

namespace legate::router {

void RouteIndex::Trie::insert(std::string_view key, uint32_t idx) {
  uint32_t node = 0;
  for (char ch : key) {
    const auto c = static_cast<unsigned char>(ch);
    auto& children = nodes[node].children;
    auto it = std::lower_bound(children.begin(), children.end(), c,
                               [](const auto& p, unsigned char v) { return p.first < v; });
    if (it != children.end() && it->first == c) {
      node = it->second;
      continue;
    }
    const auto child = static_cast<uint32_t>(nodes.size());
    children.insert(it, {c, child});
    // children refers into nodes: it must not be used after nodes grows.
    nodes.emplace_back();
    node = child;
  }
  nodes[node].routes.push_back(idx);
}

void RouteIndex::Trie::collect(std::string_view key, Candidates& out) const {
  uint32_t node = 0;
  size_t i = 0;
  while (true) {
    const auto& n = nodes[node];
    out.insert(out.end(), n.routes.begin(), n.routes.end());
    if (i == key.size())
      return;
    const auto c = static_cast<unsigned char>(key[i++]);
    auto it = std::lower_bound(n.children.begin(), n.children.end(), c,
                               [](const auto& p, unsigned char v) { return p.first < v; });
    if (it == n.children.end() || it->first != c)
      return;
    node = it->second;
  }
}

void RouteIndex::addExactPath(std::string_view path, bool case_sensitive, uint32_t idx) {
  if (case_sensitive) {
    exact_[std::string(path)].push_back(idx);
  } else {
    std::string lower(path);
    http::toLowerInPlace(lower);
    exact_nocase_[lower].push_back(idx);
  }
}

void RouteIndex::addPrefix(std::string_view prefix, bool case_sensitive, uint32_t idx) {
  if (case_sensitive) {
    prefix_.insert(prefix, idx);
  } else {
    std::string lower(prefix);
    http::toLowerInPlace(lower);
    prefix_nocase_.insert(lower, idx);
  }
}

void RouteIndex::addUnindexed(uint32_t idx) {
  unindexed_.push_back(idx);
}

std::optional<uint32_t> RouteIndex::findFirst(std::string_view path,
                                              absl::FunctionRef<bool(uint32_t)> matches) const {
  Candidates candidates;
  if (!exact_.empty()) {
    // absl's flat_hash_map with std::string keys accepts absl::string_view.
    auto it = exact_.find(absl::string_view(path.data(), path.size()));
    if (it != exact_.end())
      candidates.insert(candidates.end(), it->second.begin(), it->second.end());
  }
  prefix_.collect(path, candidates);
  if (!exact_nocase_.empty() || !prefix_nocase_.empty()) {
    std::string lower(path);
    http::toLowerInPlace(lower);
    auto it = exact_nocase_.find(lower);
    if (it != exact_nocase_.end()) {
      candidates.insert(candidates.end(), it->second.begin(), it->second.end());
    }
    prefix_nocase_.collect(lower, candidates);
  }
  std::sort(candidates.begin(), candidates.end());

  // Merge the sorted candidates with the sorted unindexed routes.
  size_t a = 0;
  size_t b = 0;
  while (a < candidates.size() || b < unindexed_.size()) {
    uint32_t idx;
    if (b == unindexed_.size() || (a < candidates.size() && candidates[a] < unindexed_[b])) {
      idx = candidates[a++];
    } else {
      idx = unindexed_[b++];
    }
    if (matches(idx))
      return idx;
  }
  return std::nullopt;
}

}  // namespace legate::router
