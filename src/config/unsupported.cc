#include "config/unsupported.h"

#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace legate::config {

absl::Status rejectUnsupportedFields(const google::protobuf::Message& msg,
                                     std::initializer_list<std::string_view> fields,
                                     std::string_view where) {
  const auto* desc = msg.GetDescriptor();
  const auto* refl = msg.GetReflection();
  for (std::string_view name : fields) {
    const auto* field = desc->FindFieldByName(std::string(name));
    if (field == nullptr) {
      continue;
    }
    const bool set = field->is_repeated() ? refl->FieldSize(msg, field) > 0 : refl->HasField(msg, field);
    if (set) {
      const std::string path =
          where.empty() ? std::string(name) : std::string(where) + "." + std::string(name);
      return absl::InvalidArgumentError(path + ": " + desc->full_name() + "." + std::string(name) +
                                        " is not implemented by legate yet; remove it (see "
                                        "docs/architecture.md for what is supported)");
    }
  }
  return absl::OkStatus();
}

} // namespace legate::config
