#include "server/options.h"

#include <sched.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

namespace legate::server {
namespace {

absl::StatusOr<uint32_t> parseUint(const std::string& flag, const std::string& v) {
  if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9) {
    return absl::InvalidArgumentError(flag + ": '" + v + "' is not a non-negative integer");
  }
  return static_cast<uint32_t>(std::stoul(v));
}

} // namespace

std::string usage() {
  return R"(Usage: legate [options]

legate is an L7 proxy configured with Envoy's v3 API.

Options (Envoy's names):
  -c, --config-path FILE        bootstrap configuration (.yaml, .yml or .json)
  --config-yaml YAML            bootstrap YAML, merged over --config-path
  --mode serve|validate         validate: check the configuration and exit 0 or 1
  --concurrency N               worker threads (default: the CPUs this process may use)
  -l, --log-level LEVEL         trace, debug, info, warning, error, critical, off
  --component-log-level C:L,... per-component levels, e.g. upstream:debug,connection:trace
  --log-format FORMAT           log line format (default "[%Y-%m-%d %T.%e][%t][%l][%n] %v")
  --log-path FILE               write logs to FILE instead of stderr
  --admin-address-path FILE     write the admin's bound address (ip:port) to FILE
  --drain-time-s N              on SIGTERM/SIGINT, how long connections may finish (default 600)
  --parent-shutdown-time-s N    accepted for compatibility (no hot restart)
  --service-cluster NAME        node.cluster, if the bootstrap sets none
  --service-node NAME           node.id, if the bootstrap sets none
  --service-zone NAME           node.locality.zone, if the bootstrap sets none
  --version                     print the version and exit
  -h, --help                    print this help and exit
)";
}

absl::StatusOr<Options> parseOptions(int argc, const char* const* argv) {
  Options o;
  for (int i = 0; i < argc; ++i) {
    o.argv.emplace_back(argv[i]);
  }
  // Flags that take a value, by every spelling.
  static const std::map<std::string, std::string> kValueFlags = {
      {"-c", "config-path"},         {"--config-path", "config-path"},
      {"--config-yaml", "config-yaml"}, {"--mode", "mode"},
      {"--concurrency", "concurrency"}, {"-l", "log-level"},
      {"--log-level", "log-level"},  {"--component-log-level", "component-log-level"},
      {"--log-format", "log-format"}, {"--log-path", "log-path"},
      {"--drain-time-s", "drain-time-s"}, {"--parent-shutdown-time-s", "parent-shutdown-time-s"},
      {"--service-cluster", "service-cluster"}, {"--service-node", "service-node"},
      {"--service-zone", "service-zone"}, {"--drain-strategy", "drain-strategy"},
      {"--restart-epoch", "restart-epoch"}, {"--base-id", "base-id"},
      {"--admin-address-path", "admin-address-path"},
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--version") {
      o.print_version = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      o.print_help = true;
      continue;
    }
    if (arg == "--disable-hot-restart") {
      continue; // legate never hot-restarts
    }
    std::string value;
    bool has_inline = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_inline = true;
    }
    auto it = kValueFlags.find(arg);
    if (it == kValueFlags.end()) {
      return absl::InvalidArgumentError("unknown option '" + arg + "' (see legate --help)");
    }
    if (!has_inline) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError("option '" + arg + "' needs a value");
      }
      value = argv[++i];
    }
    const std::string& name = it->second;
    const std::string flag = "--" + name;
    if (name == "config-path") {
      o.config_path = value;
    } else if (name == "config-yaml") {
      o.config_yaml = value;
    } else if (name == "mode") {
      if (value == "serve") {
        o.mode = Mode::Serve;
      } else if (value == "validate") {
        o.mode = Mode::Validate;
      } else {
        return absl::InvalidArgumentError("--mode: '" + value + "' is not one of serve, validate");
      }
    } else if (name == "concurrency") {
      auto n = parseUint(flag, value);
      if (!n.ok()) return n.status();
      if (*n == 0 || *n > 1024) {
        return absl::InvalidArgumentError("--concurrency: must be between 1 and 1024");
      }
      o.concurrency = *n;
    } else if (name == "log-level") {
      o.log_level = value;
    } else if (name == "component-log-level") {
      o.component_log_level = value;
    } else if (name == "log-format") {
      o.log_format = value;
    } else if (name == "log-path") {
      o.log_path = value;
    } else if (name == "drain-time-s") {
      auto n = parseUint(flag, value);
      if (!n.ok()) return n.status();
      o.drain_time_s = *n;
    } else if (name == "parent-shutdown-time-s") {
      auto n = parseUint(flag, value);
      if (!n.ok()) return n.status();
      o.parent_shutdown_time_s = *n;
    } else if (name == "service-cluster") {
      o.service_cluster = value;
    } else if (name == "service-node") {
      o.service_node = value;
    } else if (name == "service-zone") {
      o.service_zone = value;
    } else if (name == "drain-strategy") {
      if (value != "gradual" && value != "immediate") {
        return absl::InvalidArgumentError("--drain-strategy: '" + value +
                                          "' is not one of gradual, immediate");
      }
    } else if (name == "restart-epoch") {
      if (value != "0") {
        return absl::InvalidArgumentError("--restart-epoch: legate does not hot-restart; only 0");
      }
    } else if (name == "admin-address-path") {
      o.admin_address_path = value;
    } else if (name == "base-id") {
      // Only meaningful for hot restart, which legate does not do.
    }
  }
  return o;
}

uint32_t availableCpus() {
  uint32_t cpus = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cpus = std::max(1, CPU_COUNT(&set));
  }
  // cgroup v2: "max 100000" or "<quota> <period>".
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota;
  uint64_t period = 0;
  if (v2 >> quota >> period && quota != "max" && period > 0) {
    const double q = std::stod(quota) / static_cast<double>(period);
    cpus = std::min<uint32_t>(cpus, std::max<uint32_t>(1, static_cast<uint32_t>(std::ceil(q))));
    return cpus;
  }
  // cgroup v1.
  std::ifstream q1("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  std::ifstream p1("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  int64_t q = -1;
  int64_t p = 0;
  if (q1 >> q && p1 >> p && q > 0 && p > 0) {
    const double c = static_cast<double>(q) / static_cast<double>(p);
    cpus = std::min<uint32_t>(cpus, std::max<uint32_t>(1, static_cast<uint32_t>(std::ceil(c))));
  }
  return cpus;
}

} // namespace legate::server
