#pragma once

// A small ordered JSON document builder for the admin endpoints and stats
// exposition. Keys keep insertion order (Envoy's outputs are ordered), and the
// pretty printer uses protobuf's layout (one space per level), so hand-built
// documents look like the ones printed from protos.
//
// Threading: a plain value type; no shared state.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace legate::stats {

class Json {
public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default; // null
  Json(std::nullptr_t) {}
  Json(bool b) : kind_(Kind::Bool), bool_(b) {}
  Json(int v) : kind_(Kind::Int), int_(v) {}
  Json(unsigned v) : kind_(Kind::Uint), uint_(v) {}
  Json(int64_t v) : kind_(Kind::Int), int_(v) {}
  Json(uint64_t v) : kind_(Kind::Uint), uint_(v) {}
  Json(double v) : kind_(Kind::Double), double_(v) {}
  Json(std::string s) : kind_(Kind::String), string_(std::move(s)) {}
  Json(std::string_view s) : kind_(Kind::String), string_(s) {}
  Json(const char* s) : kind_(Kind::String), string_(s) {}

  static Json array() { Json j; j.kind_ = Kind::Array; return j; }
  static Json object() { Json j; j.kind_ = Kind::Object; return j; }

  // On an object: appends key (no de-duplication; callers add each key once) and
  // returns the stored value, valid until the next set() on this object.
  Json& set(std::string key, Json value);
  // On an array: appends and returns the stored value, valid until the next push().
  Json& push(Json value);

  // Compact ("{"a":1}") or pretty (protobuf's layout: newline + one space per level).
  std::string dump(bool pretty = false) const;

private:
  // A tagged struct rather than std::variant: GCC 12 warns falsely
  // (maybe-uninitialized) on moves of recursive variants.
  enum class Kind { Null, Bool, Int, Uint, Double, String, Array, Object };
  void write(std::string& out, bool pretty, int depth) const;

  Kind kind_ = Kind::Null;
  bool bool_ = false;
  int64_t int_ = 0;
  uint64_t uint_ = 0;
  double double_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

// Appends s as a JSON string literal (with quotes) to out.
void appendJsonString(std::string& out, std::string_view s);

} // namespace legate::stats
