#pragma once

// Loading the bootstrap configuration: -c FILE (.yaml, .yml or .json) and/or
// --config-yaml STRING, converted to envoy.config.bootstrap.v3.Bootstrap,
// merged (the string over the file, with proto MergeFrom as Envoy does) and
// validated against the protoc-gen-validate rules of the Envoy API.
//
// Every error names where it is: "FILE:LINE:COL: FIELD.PATH: what was wrong;
// what was expected", one per line, at most ErrorList::kMaxErrors of them.
// Runs on the main thread; extensions must be registered before loading
// (main() calls registerBuiltinExtensions first).

#include <string>
#include <string_view>

#include <google/protobuf/arena.h>
#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/source_map.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"

namespace legate::config {

struct LoadOptions {
  std::string path;        // -c FILE (.yaml, .yml or .json); may be empty if config_yaml is given
  std::string config_yaml; // --config-yaml STRING, merged over the file with proto MergeFrom
};

// marks_out, if given, receives where each field path came from, so that
// errors found later (by the server, building listeners and clusters) can be
// located too (see locateErrors).
absl::StatusOr<envoy::config::bootstrap::v3::Bootstrap> loadBootstrap(const LoadOptions& options,
                                                                      SourceMap* marks_out = nullptr);
// The same into out (cleared first), for a bootstrap made on an arena (see
// bootstrapArenaOptions): a large configuration's message is tens of thousands of
// small objects, which freed one by one would stay behind in the allocator's
// caches as resident memory; an arena gives them back in a few blocks.
absl::Status loadBootstrap(const LoadOptions& options,
                           envoy::config::bootstrap::v3::Bootstrap& out,
                           SourceMap* marks_out = nullptr);

// Block sizes for an arena that holds a bootstrap while it is loaded or built:
// from 512 KiB, at most 1 MiB a block.
google::protobuf::ArenaOptions bootstrapArenaOptions();

// Prefixes each line of message that starts with a field path
// ("static_resources.clusters[0].type: ...") with "FILE:LINE:COL: " from marks.
std::string locateErrors(const SourceMap& marks, std::string_view message);

// Generic: YAML/JSON text -> any message, validated. source_label is used in
// errors (a file name or "--config-yaml"). out is cleared first.
absl::Status loadMessageFromYaml(std::string_view text, std::string_view source_label,
                                 google::protobuf::Message& out);

// Reads a whole file; errors name the file.
absl::StatusOr<std::string> readConfigFile(const std::string& path);

} // namespace legate::config
