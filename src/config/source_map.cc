#include "config/source_map.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace legate::config {

uint32_t SourceMap::sourceIndex(const std::string& source) {
  // Few sources (the file, --config-yaml): the last one is nearly always it.
  for (size_t i = sources_.size(); i > 0; --i) {
    if (sources_[i - 1] == source) return static_cast<uint32_t>(i - 1);
  }
  sources_.push_back(source);
  return static_cast<uint32_t>(sources_.size() - 1);
}

void SourceMap::record(std::string_view path, const SourceLocation& location) {
  const Entry entry{sourceIndex(location.source), location.line, location.column};
  auto it = locations_.find(path);
  if (it != locations_.end()) {
    it->second = entry;
  } else {
    locations_.emplace(paths_.store(path), entry);
  }
}

std::optional<SourceLocation> SourceMap::find(std::string_view path) const {
  auto it = locations_.find(path);
  if (it == locations_.end()) return std::nullopt;
  return expand(it->second);
}

void SourceMap::mergeFrom(const SourceMap& other) {
  for (const auto& [path, e] : other.locations_) record(path, other.expand(e));
}

std::vector<std::pair<std::string, SourceLocation>> SourceMap::entries() const {
  std::vector<std::pair<std::string, SourceLocation>> out;
  out.reserve(locations_.size());
  for (const auto& [path, e] : locations_) out.emplace_back(path, expand(e));
  return out;
}

void ErrorList::add(const SourceLocation* location, std::string_view path,
                    std::string_view message) {
  ++total_;
  if (lines_.size() >= kMaxErrors) return;
  std::string line;
  if (location != nullptr && !location->source.empty()) {
    absl::StrAppend(&line, location->source);
    if (location->line > 0) absl::StrAppend(&line, ":", location->line, ":", location->column);
    absl::StrAppend(&line, ": ");
  }
  if (!path.empty()) absl::StrAppend(&line, absl::string_view(path.data(), path.size()), ": ");
  absl::StrAppend(&line, absl::string_view(message.data(), message.size()));
  lines_.push_back(std::move(line));
}

std::string ErrorList::text() const {
  std::string out = absl::StrJoin(lines_, "\n");
  if (total_ > lines_.size()) {
    absl::StrAppend(&out, "\n(", total_ - lines_.size(), " more errors not shown)");
  }
  return out;
}

absl::Status ErrorList::toStatus() const {
  return empty() ? absl::OkStatus() : absl::InvalidArgumentError(text());
}

std::string fieldPath(std::string_view parent, std::string_view field_name) {
  absl::string_view p(parent.data(), parent.size());
  absl::string_view f(field_name.data(), field_name.size());
  return p.empty() ? std::string(f) : absl::StrCat(p, ".", f);
}

std::string indexPath(std::string_view parent, size_t index) {
  return absl::StrCat(absl::string_view(parent.data(), parent.size()), "[", index, "]");
}

std::string mapKeyPath(std::string_view parent, std::string_view key) {
  std::string out(parent);
  out += "[\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += "\"]";
  return out;
}

} // namespace legate::config
