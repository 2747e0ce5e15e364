#pragma once

// Eight bytes at a time ("SIMD within a register") for the byte loops on the
// request path: lower-casing header names, comparing them case-insensitively,
// validating field values. Plain 64-bit arithmetic (little-endian, as loadPartial
// asserts), which the compiler keeps in registers. Loops over words leave the
// last len % 8 bytes to their callers; loadPartial and copyBytes serve those and
// short strings.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace legate::swar {

inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighBits = 0x8080808080808080ULL;

inline uint64_t load(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}
inline void store(char* p, uint64_t w) { std::memcpy(p, &w, sizeof(w)); }

inline uint32_t load4(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// Loads n < 8 bytes, zero-filled, byte i in bits 8i..8i+7 (little-endian, as
// load()). Without a variable-length memcpy, which is a library call: two
// overlapping four-byte loads for 4..7 bytes (the overlap ORs a byte with
// itself), the first, middle and last byte for 1..3.
inline uint64_t loadPartial(const char* p, size_t n) {
  static_assert(std::endian::native == std::endian::little, "byte i in bits 8i..8i+7");
  if (n >= 4) {
    return uint64_t{load4(p)} | (uint64_t{load4(p + n - 4)} << ((n - 4) * 8));
  }
  if (n == 0) return 0;
  const auto byte = [p](size_t i) { return uint64_t{static_cast<unsigned char>(p[i])}; };
  return byte(0) | (byte(n / 2) << (n / 2 * 8)) | (byte(n - 1) << ((n - 1) * 8));
}

// memcpy for the short strings of a message head (names, most values): up to 16
// bytes inline, as two overlapping loads and stores of the widest size that
// fits, so the call into the library is paid only by longer strings. The ranges
// must not overlap.
inline void copyBytes(char* out, const char* in, size_t n) {
  if (n >= 8) {
    if (n > 16) {
      std::memcpy(out, in, n);
      return;
    }
    const uint64_t head = load(in), tail = load(in + n - 8);
    store(out, head);
    store(out + n - 8, tail);
  } else if (n >= 4) {
    const uint32_t head = load4(in), tail = load4(in + n - 4);
    std::memcpy(out, &head, 4);
    std::memcpy(out + n - 4, &tail, 4);
  } else if (n > 0) {
    const char first = in[0], middle = in[n / 2], last = in[n - 1];
    out[0] = first;
    out[n / 2] = middle;
    out[n - 1] = last;
  }
}

// ASCII 'A'..'Z' lower-cased in every byte; other bytes (non-ASCII included)
// unchanged. Each byte's low seven bits plus a bias cannot carry into the next
// byte, so the high bit of each sum answers ">= 'A'" and "> 'Z'" per byte.
inline uint64_t lower(uint64_t w) {
  const uint64_t low7 = w & ~kHighBits;
  const uint64_t at_least_a = low7 + kOnes * (0x80 - 'A');
  const uint64_t above_z = low7 + kOnes * (0x80 - 'Z' - 1);
  const uint64_t upper = at_least_a & ~above_z & ~w & kHighBits;
  return w | (upper >> 2); // 0x80 >> 2 == 0x20, the case bit
}

inline void store4(char* p, uint32_t w) { std::memcpy(p, &w, sizeof(w)); }
// Four bytes: lower() on the zero-extended word (zero bytes stay zero).
inline uint32_t lower4(uint32_t w) { return static_cast<uint32_t>(lower(w)); }

// Non-zero if some byte is below n (n <= 128). May flag bytes above a true hit
// (borrows), never misses one: use it to pick a slow path, not to locate.
inline uint64_t hasByteBelow(uint64_t w, uint8_t n) { return (w - kOnes * n) & ~w & kHighBits; }

// Non-zero if some byte equals b (same caveat).
inline uint64_t hasByte(uint64_t w, uint8_t b) {
  const uint64_t x = w ^ (kOnes * b);
  return (x - kOnes) & ~x & kHighBits;
}

} // namespace legate::swar
