#pragma once

// Logging: spdlog, with Envoy's levels, components and default format.
// Components ("main", "config", "connection", "upstream", "admin", ...) each have
// a logger whose level --component-log-level can set independently.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "spdlog/spdlog.h"

namespace legate::log {

// Envoy's default --log-format.
inline constexpr std::string_view kDefaultFormat = "[%Y-%m-%d %T.%e][%t][%l][%n] %v";

// Sets up every component logger: sink (stderr or --log-path), format and level.
// Errors name the bad level or component.
absl::Status init(const std::string& level, const std::string& component_levels,
                  const std::string& format, const std::string& path);

// The logger for a component; created with the current defaults if needed.
// The reference stays valid for the process; hot paths should keep it.
spdlog::logger& get(std::string_view component);

// Parses "trace|debug|info|warning|warn|error|critical|off".
bool parseLevel(std::string_view name, spdlog::level::level_enum& out);

// Envoy's name for a level ("warning", not "warn").
std::string_view levelName(spdlog::level::level_enum level);

// Every component logger and its level, in name order (admin /logging).
std::vector<std::pair<std::string, spdlog::level::level_enum>> levels();

// Sets one component's level (false if there is no such component), or every
// component's (setAllLevels, also the default for loggers made later).
bool setLevel(std::string_view component, spdlog::level::level_enum level);
void setAllLevels(spdlog::level::level_enum level);

} // namespace legate::log

#define LEGATE_LOG(component, level, ...) ::legate::log::get(component).level(__VA_ARGS__)
