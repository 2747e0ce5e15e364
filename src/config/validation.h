#pragma once

// Generic protoc-gen-validate (PGV) rule checking, driven by the descriptors'
// options, so every Envoy message gets the constraints its .proto declares
// without generated validators:
//   - message: validate.disabled (and validate.ignored where the PGV version has it),
//     oneof validate.required, field message.required / message.skip;
//   - scalars: const, lt/lte/gt/gte (incl. exclusive ranges), in/not_in for every
//     integer and float kind, also through wrapper types (UInt32Value etc.);
//   - string: const, len, min/max_len, len/min/max_bytes, pattern, prefix, suffix,
//     contains, not_contains, in/not_in, ignore_empty, well_known_regex
//     (HTTP_HEADER_NAME/VALUE), hostname, ip, ipv4, ipv6, address;
//   - bytes: const, len, min/max_len, prefix, suffix, contains, in/not_in;
//   - bool const; enum const, defined_only, in/not_in;
//   - repeated min/max_items, unique, items; map min/max_pairs, keys, values;
//   - Duration required/const/lt/lte/gt/gte/in/not_in; Timestamp required;
//     Any required/in/not_in.
// It recurses into set sub-messages, repeated messages, map values and the
// unpacked content of Any fields (whose type must be one legate implements).
//
// Stateless apart from its arguments; call on any thread.

#include <string_view>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "config/source_map.h"

namespace legate::config {

// Validates msg (found at path, "" for a root) and appends every violation to
// errors, located through marks (may be null) at the field's path or, failing
// that, the nearest enclosing path that has a location.
void validateMessage(const google::protobuf::Message& msg, std::string_view path,
                     const SourceMap* marks, ErrorList& errors);

// Convenience for messages that do not come from a file (e.g. xDS resources).
absl::Status validateMessage(const google::protobuf::Message& msg);

} // namespace legate::config
