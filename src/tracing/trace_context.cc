#include "tracing/trace_context.h"

#include <vector>

#include "common/hex.h"
#include "common/random.h"

namespace legate::tracing {
namespace {

constexpr char kDigits[] = "0123456789abcdef";

void putHex(std::string& out, uint64_t v) {
  for (int i = 15; i >= 0; --i)
    out.push_back(kDigits[(v >> (4 * i)) & 0xf]);
}

std::vector<std::string_view> splitDash(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t dash = s.find('-', start);
    parts.push_back(
        s.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start));
    if (dash == std::string_view::npos)
      return parts;
    start = dash + 1;
  }
}

bool isLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// 16 or 32 hex digits -> (high, low); nullopt otherwise or when all zero.
std::optional<std::pair<uint64_t, uint64_t>> parseTraceId(std::string_view s, bool lower_only) {
  if (s.size() == 16) {
    auto low = parseHex64(s, lower_only);
    if (!low || *low == 0)
      return std::nullopt;
    return std::make_pair(uint64_t{0}, *low);
  }
  if (s.size() == 32) {
    auto high = parseHex64(s.substr(0, 16), lower_only);
    auto low = parseHex64(s.substr(16), lower_only);
    if (!high || !low || (*high == 0 && *low == 0))
      return std::nullopt;
    return std::make_pair(*high, *low);
  }
  return std::nullopt;
}

// B3's sampling values: 1/true/d (debug implies sampled) and 0/false.
std::optional<bool> parseB3Sampled(std::string_view s) {
  if (s == "1" || s == "d" || s == "true")
    return true;
  if (s == "0" || s == "false")
    return false;
  return std::nullopt;
}

}  // namespace

std::string hex64(uint64_t v) {
  std::string out;
  out.reserve(16);
  putHex(out, v);
  return out;
}

std::string traceIdHex(uint64_t high, uint64_t low) {
  std::string out;
  out.reserve(32);
  if (high != 0)
    putHex(out, high);
  putHex(out, low);
  return out;
}

std::optional<uint64_t> parseHex64(std::string_view s, bool lower_only) {
  if (s.size() != 16)
    return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (lower_only && !isLowerHex(c))
      return std::nullopt;
    const int d = hexDigitValue(c);
    if (d < 0)
      return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

uint64_t randomId() {
  uint64_t v = 0;
  while (v == 0)
    v = fastRandom();
  return v;
}

std::optional<SpanContext> parseTraceparent(std::string_view value) {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2+1+32+1+16+1+2 = 55.
  constexpr size_t kSize = 55;
  if (value.size() < kSize)
    return std::nullopt;
  const std::string_view version = value.substr(0, 2);
  if (!isLowerHex(version[0]) || !isLowerHex(version[1]) || version == "ff")
    return std::nullopt;
  // Version 00 is exactly 55 characters; a later version may append fields
  // after another dash (W3C: parse what version 00 defines).
  if (version == "00" ? value.size() != kSize : (value.size() > kSize && value[kSize] != '-')) {
    return std::nullopt;
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-')
    return std::nullopt;
  auto trace = parseTraceId(value.substr(3, 32), /*lower_only=*/true);
  auto span = parseHex64(value.substr(36, 16), /*lower_only=*/true);
  const std::string_view flags = value.substr(53, 2);
  if (!trace || !span || *span == 0 || !isLowerHex(flags[0]) || !isLowerHex(flags[1])) {
    return std::nullopt;
  }
  SpanContext ctx;
  ctx.trace_id_high = trace->first;
  ctx.trace_id_low = trace->second;
  ctx.span_id = *span;
  ctx.sampled = (hexDigitValue(flags[1]) & 1) != 0;
  return ctx;
}

std::string formatTraceparent(uint64_t trace_high, uint64_t trace_low, uint64_t span_id,
                              bool sampled) {
  std::string out = "00-";
  out.reserve(55);
  putHex(out, trace_high);
  putHex(out, trace_low);
  out.push_back('-');
  putHex(out, span_id);
  out += sampled ? "-01" : "-00";
  return out;
}

Extracted extractW3c(const http::HeaderMap& h) {
  Extracted out;
  const auto parents = h.getAll(headers::kTraceparent);
  if (parents.size() != 1)
    return out;  // absent, or ambiguous: start afresh
  out.context = parseTraceparent(parents.front());
  if (!out.context)
    return out;
  out.sampled = out.context->sampled;
  const auto states = h.getAll(headers::kTracestate);
  for (size_t i = 0; i < states.size(); ++i) {
    if (i > 0)
      out.context->tracestate.push_back(',');
    out.context->tracestate.append(states[i]);
  }
  return out;
}

std::optional<Extracted> parseB3Single(std::string_view value) {
  Extracted out;
  if (value.size() == 1) {
    out.sampled = parseB3Sampled(value);
    if (!out.sampled)
      return std::nullopt;
    return out;
  }
  const std::vector<std::string_view> parts = splitDash(value);
  if (parts.size() < 2 || parts.size() > 4)
    return std::nullopt;
  auto trace = parseTraceId(parts[0], false);
  auto span = parseHex64(parts[1]);
  if (!trace || !span || *span == 0)
    return std::nullopt;
  SpanContext ctx;
  ctx.trace_id_high = trace->first;
  ctx.trace_id_low = trace->second;
  ctx.span_id = *span;
  if (parts.size() >= 3) {
    if (parts[2].size() != 1)
      return std::nullopt;
    ctx.sampled = parseB3Sampled(parts[2]);
    if (!ctx.sampled)
      return std::nullopt;
  }
  if (parts.size() == 4) {
    auto parent = parseHex64(parts[3]);
    if (!parent)
      return std::nullopt;
    ctx.parent_id = *parent;
  }
  out.sampled = ctx.sampled;
  out.context = std::move(ctx);
  return out;
}

Extracted extractB3(const http::HeaderMap& h) {
  if (auto single = h.get(headers::kB3)) {
    if (auto parsed = parseB3Single(*single))
      return *parsed;
  }
  Extracted out;
  if (auto s = h.get(headers::kB3Sampled))
    out.sampled = parseB3Sampled(*s);
  if (auto f = h.get(headers::kB3Flags); f && *f == "1")
    out.sampled = true;  // debug
  auto trace_text = h.get(headers::kB3TraceId);
  auto span_text = h.get(headers::kB3SpanId);
  if (!trace_text || !span_text)
    return out;
  auto trace = parseTraceId(*trace_text, false);
  auto span = parseHex64(*span_text);
  if (!trace || !span || *span == 0)
    return out;
  SpanContext ctx;
  ctx.trace_id_high = trace->first;
  ctx.trace_id_low = trace->second;
  ctx.span_id = *span;
  if (auto p = h.get(headers::kB3ParentSpanId)) {
    auto parent = parseHex64(*p);
    if (!parent)
      return out;  // a malformed parent spoils the context
    ctx.parent_id = *parent;
  }
  ctx.sampled = out.sampled;
  out.context = std::move(ctx);
  return out;
}

}  // namespace legate::tracing
