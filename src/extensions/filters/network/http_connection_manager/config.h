#pragma once

// envoy.filters.network.http_connection_manager: turns the proto into an
// http::ConnectionManagerConfig (validated, immutable) and a network filter
// factory that adds a ConnectionManager to each new connection.

#include <string>

#include "absl/status/statusor.h"
#include "extensions/factory.h"
#include "http/conn_manager_config.h"

namespace envoy::extensions::filters::network::http_connection_manager::v3 {
class HttpConnectionManager;
}

namespace legate::extensions::http_connection_manager {

absl::StatusOr<std::shared_ptr<const http::ConnectionManagerConfig>> createConfig(
    const envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager&
        proto,
    const std::string& path, FactoryContext& context);

} // namespace legate::extensions::http_connection_manager
