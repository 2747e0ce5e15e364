#include "stats/stat_name.h"

#include <algorithm>
#include <cstring>

namespace legate::stats {

NamePool& NamePool::get() {
  // Never destroyed: stats in static storage may read their names at exit.
  static NamePool* pool = new NamePool();
  return *pool;
}

NamePool::NamePool() : chunks_(new std::atomic<Entry*>[kMaxChunks]()) {
  intern(""); // id 0: a default StatName is the empty name
}

uint32_t NamePool::intern(std::string_view s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = ids_.find(s); it != ids_.end()) return it->second;
  if (next_ >= kMaxIds) return kNotFound;
  const uint32_t id = next_++;
  const uint32_t chunk = id >> kChunkBits;
  Entry* entries = chunks_[chunk].load(std::memory_order_relaxed);
  if (entries == nullptr) {
    entry_blocks_.push_back(std::make_unique<Entry[]>(kChunkMask + 1));
    entries = entry_blocks_.back().get();
  }
  const std::string_view stored = bytes_.store(s);
  entries[id & kChunkMask] = Entry{stored.data(), static_cast<uint32_t>(stored.size())};
  // Publishes the entry with its chunk (a reader holding this id loads the chunk).
  chunks_[chunk].store(entries, std::memory_order_release);
  ids_.emplace(stored, id);
  return id;
}

std::pair<std::string_view, std::string_view> StatName::split(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos) return {std::string_view(), name};
  return {name.substr(0, dot + 1), name.substr(dot + 1)};
}

namespace {

// prefix and suffix as split() gives them.
bool internPieces(std::string_view prefix, std::string_view suffix, StatName& out) {
  NamePool& pool = NamePool::get();
  const uint32_t p = pool.intern(prefix);
  const uint32_t s = pool.intern(suffix);
  if (p == NamePool::kNotFound || s == NamePool::kNotFound) return false;
  out = StatName{p, s};
  return true;
}

} // namespace

bool StatName::intern(std::string_view prefix, std::string_view name, StatName& out) {
  if (prefix.empty()) return intern(name, out);
  if (prefix.back() != '.' || name.find('.') != std::string_view::npos) {
    return intern(joinName(prefix, name), out);
  }
  return internPieces(prefix, name, out);
}

bool StatName::intern(std::string_view name, StatName& out) {
  const auto [prefix, suffix] = split(name);
  return internPieces(prefix, suffix, out);
}

std::string joinName(std::string_view prefix, std::string_view name) {
  std::string out;
  out.reserve(prefix.size() + name.size());
  out.append(prefix).append(name);
  return out;
}

std::string StatName::str() const { return joinName(prefixView(), suffixView()); }

bool StatName::less(const StatName& a, const StatName& b) {
  if (a.prefix == b.prefix) {
    return a.suffix != b.suffix && a.suffixView() < b.suffixView();
  }
  // Walk both two-piece strings in step.
  const std::string_view ap[2] = {a.prefixView(), a.suffixView()};
  const std::string_view bp[2] = {b.prefixView(), b.suffixView()};
  size_t ai = 0, bi = 0, ao = 0, bo = 0;
  while (true) {
    while (ai < 2 && ao == ap[ai].size()) ++ai, ao = 0;
    while (bi < 2 && bo == bp[bi].size()) ++bi, bo = 0;
    if (ai == 2 || bi == 2) return ai == 2 && bi != 2; // a ran out first: shorter sorts first
    const size_t n = std::min(ap[ai].size() - ao, bp[bi].size() - bo);
    if (const int c = std::memcmp(ap[ai].data() + ao, bp[bi].data() + bo, n); c != 0) {
      return c < 0; // memcmp orders bytes as unsigned char, as std::string_view does
    }
    ao += n;
    bo += n;
  }
}

} // namespace legate::stats
