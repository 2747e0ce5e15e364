#pragma once

// Request path normalization (http_connection_manager's normalize_path,
// merge_slashes, path_with_escaped_slashes_action), applied to :path before
// routing so that routing and the upstream see the same canonical path.

#include <optional>
#include <string>
#include <string_view>

namespace legate::http::path {

// RFC 3986: percent-decode unreserved characters, upper-case the hex of the
// remaining escapes, remove dot segments. Only the part before '?' is changed.
// nullopt: the path is invalid (not starting with '/', bad escape, NUL).
std::optional<std::string> normalize(std::string_view path);
// True if normalize(path) would return path unchanged: the path part starts
// with '/' and has no '%', no NUL and no "." or ".." segment. Most request
// paths; a scan with no copy.
bool isNormal(std::string_view path);

// Collapses runs of '/' in the path part.
std::string mergeSlashes(std::string_view path);
// True if the path part has a run of '/' (mergeSlashes would change it).
bool hasSlashRuns(std::string_view path);

// True if the path part contains %2F, %2f, %5C or %5c.
bool hasEscapedSlashes(std::string_view path);
// Decodes %2F/%5C (either case) in the path part to '/' and '\\'.
std::string unescapeSlashes(std::string_view path);

} // namespace legate::http::path
