#pragma once

// The bootstrap's layered_runtime as runtime::Layers (static, disk, admin). Without
// layered_runtime there is one admin layer, as in Envoy. rtds_layer is refused.
// Errors name the field path. Main thread, configuration time.

#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "runtime/runtime.h"

namespace legate::server {

absl::StatusOr<std::vector<runtime::Layer>>
runtimeLayers(const envoy::config::bootstrap::v3::Bootstrap& bootstrap);

} // namespace legate::server
