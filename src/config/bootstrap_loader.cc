#include "config/bootstrap_loader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "config/source_map.h"
#include "config/validation.h"
#include "config/yaml_to_proto.h"

namespace legate::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// MergeFrom appends repeated fields, so an element the overlay put at [i]
// ends up at [i + n] where the base already had n. Finds, for each repeated
// field reached through singular messages set on both sides, that n.
void collectRepeatedOffsets(const Message& overlay, const Message& base, const std::string& path,
                            std::vector<std::pair<std::string, size_t>>& offsets) {
  std::vector<const FieldDescriptor*> fields;
  overlay.GetReflection()->ListFields(overlay, &fields);
  const auto* base_refl = base.GetReflection();
  for (const FieldDescriptor* fd : fields) {
    const std::string field_path = fieldPath(path, fd->name());
    if (fd->is_map()) continue;
    if (fd->is_repeated()) {
      const int n = base_refl->FieldSize(base, fd);
      if (n > 0) offsets.emplace_back(field_path, static_cast<size_t>(n));
    } else if (fd->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
               fd->message_type()->full_name() != "google.protobuf.Any" &&
               base_refl->HasField(base, fd)) {
      collectRepeatedOffsets(overlay.GetReflection()->GetMessage(overlay, fd),
                             base_refl->GetMessage(base, fd), field_path, offsets);
    }
  }
}

std::string shiftedPath(const std::string& path,
                        const std::vector<std::pair<std::string, size_t>>& offsets) {
  for (const auto& [prefix, offset] : offsets) {
    if (!absl::StartsWith(path, prefix + "[")) continue;
    const size_t open = prefix.size();
    const size_t close = path.find(']', open);
    size_t index = 0;
    if (close == std::string::npos ||
        !absl::SimpleAtoi(absl::string_view(path).substr(open + 1, close - open - 1), &index)) {
      continue;
    }
    return absl::StrCat(prefix, "[", index + offset, "]", absl::string_view(path).substr(close + 1));
  }
  return path;
}

bool parseAndConvert(std::string_view text, std::string_view label, Message& out, SourceMap& marks,
                     ErrorList& errors) {
  YamlDocument document;
  if (!parseYaml(text, label, document, errors)) return false;
  const size_t before = errors.count();
  convertYamlToMessage(document, label, out, marks, errors);
  return errors.count() == before;
}

} // namespace

absl::StatusOr<std::string> readConfigFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory; expected a configuration file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the configuration file: ",
                                                   err != 0 ? std::strerror(err) : "open failed"));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": error while reading the configuration file"));
  }
  return contents.str();
}

absl::StatusOr<envoy::config::bootstrap::v3::Bootstrap> loadBootstrap(const LoadOptions& options,
                                                                      SourceMap* marks_out) {
  envoy::config::bootstrap::v3::Bootstrap bootstrap;
  if (auto st = loadBootstrap(options, bootstrap, marks_out); !st.ok()) return st;
  return bootstrap;
}

absl::Status loadBootstrap(const LoadOptions& options,
                           envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                           SourceMap* marks_out) {
  bootstrap.Clear();
  if (options.path.empty() && options.config_yaml.empty()) {
    return absl::InvalidArgumentError("no configuration: pass -c FILE or --config-yaml");
  }
  SourceMap marks;
  ErrorList errors;
  if (!options.path.empty()) {
    const std::string extension =
        absl::AsciiStrToLower(std::filesystem::path(options.path).extension().string());
    if (extension != ".yaml" && extension != ".yml" && extension != ".json") {
      return absl::InvalidArgumentError(absl::StrCat(
          options.path, ": unsupported configuration file extension '", extension,
          "'; expected .yaml, .yml or .json"));
    }
    absl::StatusOr<std::string> text = readConfigFile(options.path);
    if (!text.ok()) return text.status();
    parseAndConvert(*text, options.path, bootstrap, marks, errors);
  }
  if (!options.config_yaml.empty()) {
    envoy::config::bootstrap::v3::Bootstrap overlay;
    SourceMap overlay_marks;
    if (parseAndConvert(options.config_yaml, "--config-yaml", overlay, overlay_marks, errors) &&
        errors.empty()) {
      std::vector<std::pair<std::string, size_t>> offsets;
      collectRepeatedOffsets(overlay, bootstrap, "", offsets);
      for (auto& [path, location] : overlay_marks.entries()) {
        if (path.empty()) continue; // the root keeps the file's location
        marks.record(shiftedPath(path, offsets), location);
      }
      bootstrap.MergeFrom(overlay);
    }
  }
  if (!errors.empty()) return errors.toStatus();
  validateMessage(bootstrap, "", &marks, errors);
  if (!errors.empty()) return errors.toStatus();
  if (marks_out != nullptr) *marks_out = std::move(marks);
  return absl::OkStatus();
}

google::protobuf::ArenaOptions bootstrapArenaOptions() {
  google::protobuf::ArenaOptions options;
  // Above the allocator's largest size class (256 KiB in tcmalloc): freed, the
  // blocks go back to the OS rather than wait in its per-size caches.
  options.start_block_size = 512 * 1024;
  options.max_block_size = 1024 * 1024;
  return options;
}

std::string locateErrors(const SourceMap& marks, std::string_view message) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(absl::string_view(message.data(), message.size()), '\n')) {
    if (!out.empty()) out += '\n';
    // A line that starts with a field path ("a.b[0].c: ...") gets the position
    // of the longest prefix of that path the source map knows.
    const size_t colon = line.find(": ");
    std::optional<SourceLocation> where;
    if (colon != absl::string_view::npos) {
      std::string path(line.substr(0, colon));
      while (!path.empty() && !where) {
        where = marks.find(path);
        if (where) break;
        const size_t cut = path.find_last_of(".[");
        if (cut == std::string::npos) break;
        path.resize(cut);
      }
    }
    if (where) {
      absl::StrAppend(&out, where->source, ":", where->line, ":", where->column, ": ");
    }
    absl::StrAppend(&out, line);
  }
  return out;
}

absl::Status loadMessageFromYaml(std::string_view text, std::string_view source_label,
                                 google::protobuf::Message& out) {
  out.Clear();
  SourceMap marks;
  ErrorList errors;
  if (!parseAndConvert(text, source_label, out, marks, errors)) return errors.toStatus();
  validateMessage(out, "", &marks, errors);
  return errors.toStatus();
}

} // namespace legate::config
