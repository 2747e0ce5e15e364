#include "http/header_map.h"

#include <algorithm>

namespace legate::http {

void toLowerInPlace(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  if (entries_.capacity() == 0) {
    // A proxied request or response carries about a dozen headers: one
    // allocation up front instead of growing 1, 2, 4, 8, 16 (and moving every
    // entry each time).
    entries_.reserve(kInitialCapacity);
  }
  std::string n(name);
  toLowerInPlace(n);
  byte_size_ += n.size() + value.size();
  if (!n.empty() && n[0] == ':') {
    entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(pseudo_count_),
                    Entry(std::move(n), std::string(value)));
    ++pseudo_count_;
  } else {
    entries_.emplace_back(std::move(n), std::string(value));
  }
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  std::string n(name);
  toLowerInPlace(n);
  for (auto& e : entries_) {
    if (e.first == n) {
      byte_size_ = byte_size_ - e.second.size() + value.size();
      e.second.assign(value);
      // Drop any later duplicates.
      size_t removed_bytes = 0;
      size_t removed_pseudo = 0;
      const Entry* keep = &e;
      auto it = std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& x) {
        if (&x != keep && x.first == n) {
          removed_bytes += x.first.size() + x.second.size();
          if (!n.empty() && n[0] == ':') ++removed_pseudo;
          return true;
        }
        return false;
      });
      entries_.erase(it, entries_.end());
      byte_size_ -= removed_bytes;
      pseudo_count_ -= removed_pseudo;
      return;
    }
  }
  add(n, value);
}

template <class Pred> size_t HeaderMap::removeIf(Pred pred) {
  size_t removed = 0;
  auto it = std::remove_if(entries_.begin(), entries_.end(), [&](const Entry& e) {
    if (!pred(e.first)) return false;
    byte_size_ -= e.first.size() + e.second.size();
    if (!e.first.empty() && e.first[0] == ':') --pseudo_count_;
    ++removed;
    return true;
  });
  entries_.erase(it, entries_.end());
  return removed;
}

size_t HeaderMap::remove(std::string_view name) {
  return removeIf([name](const std::string& n) { return n == name; });
}

size_t HeaderMap::removePrefix(std::string_view prefix) {
  return removeIf([prefix](const std::string& n) { return n.compare(0, prefix.size(), prefix) == 0; });
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.first == name) return std::string_view(e.second);
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderMap::getAll(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& e : entries_) {
    if (e.first == name) out.emplace_back(e.second);
  }
  return out;
}

uint32_t HeaderMap::status() const {
  auto s = get(headers::kStatus);
  if (!s || s->size() != 3) return 0;
  uint32_t v = 0;
  for (char c : *s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

} // namespace legate::http
