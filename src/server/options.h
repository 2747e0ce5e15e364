#pragma once

// Command-line options, with Envoy's flag names. Parsed once on the main thread.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace legate::server {

enum class Mode { Serve, Validate };

struct Options {
  std::string config_path;         // -c / --config-path
  std::string config_yaml;         // --config-yaml, merged over the file
  Mode mode = Mode::Serve;         // --mode serve|validate
  uint32_t concurrency = 0;        // --concurrency; 0 = CPUs available to the process
  std::string log_level = "info";  // -l / --log-level
  std::string component_log_level; // --component-log-level "upstream:debug,connection:trace"
  std::string log_format;          // --log-format (spdlog pattern, Envoy's default if empty)
  std::string log_path;            // --log-path
  std::string admin_address_path;  // --admin-address-path: where to write the admin's "ip:port"
  uint32_t drain_time_s = 600;     // --drain-time-s
  uint32_t parent_shutdown_time_s = 900;
  std::string service_cluster;     // --service-cluster
  std::string service_node;        // --service-node
  std::string service_zone;        // --service-zone
  bool print_version = false;
  bool print_help = false;
  std::vector<std::string> argv;   // as given, for /server_info command_line_options
};

// Parses argv. An error names the flag and what was expected.
absl::StatusOr<Options> parseOptions(int argc, const char* const* argv);
std::string usage();

// CPUs this process may use: the affinity mask, capped by a cgroup v2/v1 CPU quota.
uint32_t availableCpus();

} // namespace legate::server
