#include "http/header_map.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <new>

#include "common/swar.h"

namespace legate::http {

namespace {

// Copies n bytes from in to out, lower-casing ASCII letters. Eight bytes at a
// time; the last (n % 8) bytes as one more word that overlaps the previous one
// (lower-casing is idempotent, so the overlap is rewritten with the same bytes),
// and names under eight bytes as two overlapping four-byte words. out may equal
// in; otherwise the ranges must not overlap.
void copyLower(char* out, const char* in, size_t n) {
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      swar::store(out + i, swar::lower(swar::load(in + i)));
    }
    if (i < n) swar::store(out + n - 8, swar::lower(swar::load(in + n - 8)));
    return;
  }
  if (n >= 4) {
    const uint32_t head = swar::lower4(swar::load4(in));
    const uint32_t tail = swar::lower4(swar::load4(in + n - 4));
    swar::store4(out, head);
    swar::store4(out + n - 4, tail);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const char c = in[i];
    out[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  }
}

// Name equality for lookups: most stored names differ from the one sought in
// length or last byte ("x-envoy-...", "content-..." share prefixes), so those are
// checked before calling memcmp.
inline bool sameName(std::string_view stored, std::string_view name) {
  const size_t n = name.size();
  return stored.size() == n &&
         (n == 0 || (stored[n - 1] == name[n - 1] && std::memcmp(stored.data(), name.data(), n - 1) == 0));
}

// a == b ignoring ASCII case (sizes equal, checked by the callers), eight bytes
// at a time: words under eight bytes loaded whole, longer strings ending on the
// last eight bytes, which overlap the word before when n % 8 != 0. b is folded
// too unless the caller knows it is lower-case already.
template <bool kFoldB> bool foldedEquals(std::string_view a, std::string_view b) {
  const auto fold_b = [](uint64_t w) { return kFoldB ? swar::lower(w) : w; };
  const size_t n = a.size();
  if (n < 8) {
    return swar::lower(swar::loadPartial(a.data(), n)) == fold_b(swar::loadPartial(b.data(), n));
  }
  for (size_t i = 0; i + 8 <= n; i += 8) {
    if (swar::lower(swar::load(a.data() + i)) != fold_b(swar::load(b.data() + i))) return false;
  }
  return swar::lower(swar::load(a.data() + n - 8)) == fold_b(swar::load(b.data() + n - 8));
}

} // namespace

void toLowerInPlace(std::string& s) { copyLower(s.data(), s.data(), s.size()); }

bool equalsIgnoreCaseSlow(std::string_view a, std::string_view b) {
  return foldedEquals<true>(a, b);
}

bool equalsLowerSlow(std::string_view s, std::string_view lower) {
  assert(std::none_of(lower.begin(), lower.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  return foldedEquals<false>(s, lower);
}

HeaderMap& HeaderMap::operator=(const HeaderMap& other) {
  if (this != &other) {
    clear();
    copyFrom(other);
  }
  return *this;
}

HeaderMap& HeaderMap::operator=(HeaderMap&& other) noexcept {
  if (this != &other) {
    entries_ = std::exchange(other.entries_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    slab_ = std::move(other.slab_);
    spilled_ = std::move(other.spilled_);
    blocks_ = std::move(other.blocks_);
    other.blocks_.clear();
    free_ = std::exchange(other.free_, nullptr);
    end_ = std::exchange(other.end_, nullptr);
    pseudo_count_ = std::exchange(other.pseudo_count_, 0);
    byte_size_ = std::exchange(other.byte_size_, 0);
    name_bits_ = std::exchange(other.name_bits_, 0);
  }
  return *this;
}

bool HeaderMap::operator==(const HeaderMap& other) const {
  return std::equal(entries_, entries_ + size_, other.entries_, other.entries_ + other.size_);
}

void HeaderMap::copyFrom(const HeaderMap& other) {
  size_t bytes = 0;
  for (const Entry& e : other.entries()) bytes += e.first.size() + e.second.size();
  reserveEntries(other.size_);
  if (bytes > 0) reserveBytes(bytes); // one block for the lot
  for (const Entry& e : other.entries()) {
    new (entries_ + size_++) Entry{store(e.first), store(e.second), e.wire_safe};
  }
  pseudo_count_ = other.pseudo_count_;
  name_bits_ = other.name_bits_;
  byte_size_ = other.byte_size_;
}

void HeaderMap::clear() {
  size_ = 0;
  if (!blocks_.empty()) {
    // Keep the largest block (the last: blocks only grow) for the next use.
    Block keep = std::move(blocks_.back());
    blocks_.clear();
    free_ = keep.data.get();
    end_ = free_ + keep.capacity;
    blocks_.push_back(std::move(keep));
  } else if (slab_) {
    free_ = slab_->bytes;
    end_ = free_ + kSlabBytes;
  }
  byte_size_ = 0;
  pseudo_count_ = 0;
  name_bits_ = 0;
}

void HeaderMap::makeSlab() {
  slab_ = std::make_unique_for_overwrite<Slab>(); // nothing written yet
  entries_ = reinterpret_cast<Entry*>(slab_->entries);
  capacity_ = kInitialEntries;
  free_ = slab_->bytes;
  end_ = free_ + kSlabBytes;
}

void HeaderMap::reserveEntries(size_t n) {
  if (n <= capacity_) return;
  if (!slab_) {
    makeSlab();
    if (n <= capacity_) return;
  }
  size_t capacity = capacity_;
  while (capacity < n) capacity *= 2;
  auto grown = std::make_unique_for_overwrite<Entry[]>(capacity);
  std::copy(entries_, entries_ + size_, grown.get());
  spilled_ = std::move(grown);
  entries_ = spilled_.get();
  capacity_ = static_cast<uint32_t>(capacity);
}

char* HeaderMap::newBlock(size_t n) {
  if (!slab_) {
    makeSlab();
    if (n <= kSlabBytes) return free_;
  }
  const size_t last = blocks_.empty() ? kSlabBytes : blocks_.back().capacity;
  const size_t capacity = std::max(n, last * 2);
  blocks_.push_back(Block{std::make_unique_for_overwrite<char[]>(capacity), capacity});
  free_ = blocks_.back().data.get();
  end_ = free_ + capacity;
  return free_;
}

std::string_view HeaderMap::storeLower(std::string_view name) {
  if (name.empty()) return {};
  char* out = reserveBytes(name.size());
  copyLower(out, name.data(), name.size());
  free_ = out + name.size();
  return {out, name.size()};
}

void HeaderMap::insert(Entry e) {
  if (size_ == capacity_) reserveEntries(size_ + 1);
  byte_size_ += e.first.size() + e.second.size();
  name_bits_ |= nameBit(e.first);
  if (!e.first.empty() && e.first[0] == ':') {
    // Pseudo-headers stay first: shift the regular ones up by one (a parsed
    // head's pseudo-headers come first, so usually there are none).
    if (size_ > pseudo_count_) {
      std::memmove(static_cast<void*>(entries_ + pseudo_count_ + 1), entries_ + pseudo_count_,
                   (size_ - pseudo_count_) * sizeof(Entry));
    }
    new (entries_ + pseudo_count_) Entry(e);
    ++pseudo_count_;
  } else {
    new (entries_ + size_) Entry(e);
  }
  ++size_;
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  const std::string_view n = storeLower(name);
  insert(Entry{n, store(value), false});
}

void HeaderMap::addWireSafe(std::string_view name, std::string_view value) {
  const std::string_view n = storeLower(name);
  insert(Entry{n, store(value), true});
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  // The name is folded once, into a stack buffer when it fits, so every
  // comparison in setLower() is a plain one. setWireSafe()'s names are
  // lower-case constants and skip this frame (six calls a request).
  char folded[64];
  if (name.size() <= sizeof(folded)) {
    copyLower(folded, name.data(), name.size());
    setLower(std::string_view(folded, name.size()), value, false);
    return;
  }
  std::string long_name(name);
  toLowerInPlace(long_name);
  setLower(long_name, value, false);
}

void HeaderMap::setLower(std::string_view n, std::string_view value, bool wire_safe) {
  assert(std::none_of(n.begin(), n.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));
  size_t i = mayHave(n) ? 0 : size_;
  while (i < size_ && !sameName(entries_[i].first, n)) ++i;
  if (i == size_) {
    insert(Entry{store(n), store(value), wire_safe});
    return;
  }
  Entry& e = entries_[i];
  const std::string_view v = store(value);
  byte_size_ = byte_size_ - e.second.size() + v.size();
  e.second = v;
  // An entry marked wire-safe has a name the parser or legate checked; it
  // stays marked only if the new value is one legate vouches for too.
  e.wire_safe = wire_safe && e.wire_safe;
  // Drop any later duplicates, compacting in place only if there are some.
  size_t out = i + 1;
  for (size_t j = i + 1; j < size_; ++j) {
    const Entry& x = entries_[j];
    if (sameName(x.first, n)) {
      byte_size_ -= x.first.size() + x.second.size();
      if (!x.first.empty() && x.first[0] == ':') --pseudo_count_;
      continue;
    }
    if (out != j) entries_[out] = x;
    ++out;
  }
  size_ = static_cast<uint32_t>(out);
}

template <class Pred> size_t HeaderMap::removeIf(Pred pred) {
  size_t removed = 0;
  Entry* end = std::remove_if(entries_, entries_ + size_, [&](const Entry& e) {
    if (!pred(e.first)) return false;
    byte_size_ -= e.first.size() + e.second.size();
    if (!e.first.empty() && e.first[0] == ':') --pseudo_count_;
    ++removed;
    return true;
  });
  size_ = static_cast<uint32_t>(end - entries_);
  return removed;
}

size_t HeaderMap::removeName(std::string_view name) {
  return removeIf([name](std::string_view n) { return sameName(n, name); });
}

size_t HeaderMap::removePrefix(std::string_view prefix) {
  return removeIf([prefix](std::string_view n) { return n.substr(0, prefix.size()) == prefix; });
}

std::optional<std::string_view> HeaderMap::find(std::string_view name) const {
  for (const Entry& e : entries()) {
    if (sameName(e.first, name)) return e.second;
  }
  return std::nullopt;
}

std::vector<std::string_view> HeaderMap::getAll(std::string_view name) const {
  std::vector<std::string_view> out;
  if (!mayHave(name)) return out;
  for (const Entry& e : entries()) {
    if (sameName(e.first, name)) out.emplace_back(e.second);
  }
  return out;
}

uint32_t HeaderMap::status() const {
  // Asked a few times per response (the router, the manager, the encoder).
  const std::string_view s = pseudo(headers::kStatus);
  if (s.size() != 3) return 0;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

} // namespace legate::http
