#pragma once

// legate refuses configuration it would otherwise silently ignore: a field it
// does not implement yet, when set, is an error naming the field.

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace legate::config {

// Error if any of the named fields of msg is set (non-default). where: the
// field path of msg ("static_resources.clusters[0]"; "" for the root); the
// error starts with the offending field's path so it can be located.
absl::Status rejectUnsupportedFields(const google::protobuf::Message& msg,
                                     std::initializer_list<std::string_view> fields,
                                     std::string_view where);

} // namespace legate::config
