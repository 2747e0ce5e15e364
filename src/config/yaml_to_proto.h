#pragma once

// YAML (and JSON, which is YAML) -> protobuf message, by walking
// the message descriptor with reflection, so that every error can name the
// line and column of the YAML node at fault (JsonStringToMessage cannot).
//
// Accepted forms follow the proto3 JSON mapping as Envoy uses it: proto or
// lowerCamelCase field names, integers as numbers or strings, enums by name or
// number, Duration as "1.5s" (or {seconds, nanos}), Timestamp as RFC 3339,
// wrappers as plain scalars, Struct/Value/ListValue as any YAML, and Any as
// "@type: type.googleapis.com/<name>" with the message's fields inline. An Any
// whose type legate does not implement (config/extension_registry.h) is refused.
//
// Not thread-safe by itself; used on the main thread while loading config.

#include <string_view>

#include <google/protobuf/message.h>

#include "config/source_map.h"
#include "config/yaml_document.h"

namespace legate::config {

// Parses text into out. On a syntax error appends "LABEL:LINE:COL: invalid
// YAML: message" to errors and returns false. Never throws.
bool parseYaml(std::string_view text, std::string_view source_label, YamlDocument& out,
               ErrorList& errors);

// Converts the document into out (fields are set on top of what out already
// holds). Records the location of every field set into marks under its path,
// and appends every conversion error to errors. Aliases expand: the values
// converted are bounded by the document's size, so an alias bomb is an error.
// Never throws.
void convertYamlToMessage(const YamlDocument& document, std::string_view source_label,
                          google::protobuf::Message& out, SourceMap& marks, ErrorList& errors);

// Edit distance between two strings (for "did you mean" suggestions).
size_t editDistance(std::string_view a, std::string_view b);

} // namespace legate::config
