#include "common/logger.h"

#include <map>
#include <mutex>
#include <vector>

#include "absl/strings/str_split.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace legate::log {
namespace {

constexpr const char* kComponents[] = {"main",     "config", "connection", "filter",
                                       "upstream", "admin",  "runtime",    "misc"};

struct State {
  std::mutex mu;
  spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  std::string format{kDefaultFormat};
  spdlog::level::level_enum level = spdlog::level::info;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

State& state() {
  static State* s = new State();
  return *s;
}

std::shared_ptr<spdlog::logger> makeLogger(State& s, std::string_view name) {
  auto logger = std::make_shared<spdlog::logger>(std::string(name), s.sink);
  logger->set_pattern(s.format);
  logger->set_level(s.level);
  logger->flush_on(spdlog::level::warn);
  return logger;
}

} // namespace

bool parseLevel(std::string_view name, spdlog::level::level_enum& out) {
  static const std::map<std::string_view, spdlog::level::level_enum> kLevels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warning", spdlog::level::warn},
      {"warn", spdlog::level::warn},   {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
  auto it = kLevels.find(name);
  if (it == kLevels.end()) {
    return false;
  }
  out = it->second;
  return true;
}

absl::Status init(const std::string& level, const std::string& component_levels,
                  const std::string& format, const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!parseLevel(level, s.level)) {
    return absl::InvalidArgumentError(
        "--log-level: '" + level +
        "' is not a level (trace, debug, info, warning, error, critical, off)");
  }
  if (!format.empty()) {
    s.format = format;
  }
  if (!path.empty()) {
    try {
      s.sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    } catch (const spdlog::spdlog_ex& e) {
      return absl::InvalidArgumentError("--log-path: cannot open '" + path + "': " + e.what());
    }
  }
  // Loggers handed out earlier stay valid: update them in place.
  for (const char* c : kComponents) {
    if (s.loggers.find(c) == s.loggers.end()) {
      s.loggers[c] = makeLogger(s, c);
    }
  }
  for (auto& [_, logger] : s.loggers) {
    logger->sinks() = {s.sink};
    logger->set_pattern(s.format);
    logger->set_level(s.level);
  }
  if (!component_levels.empty()) {
    for (absl::string_view item : absl::StrSplit(component_levels, ',')) {
      std::vector<absl::string_view> kv = absl::StrSplit(item, ':');
      spdlog::level::level_enum lvl;
      if (kv.size() != 2 || !parseLevel(std::string_view(kv[1].data(), kv[1].size()), lvl)) {
        return absl::InvalidArgumentError("--component-log-level: '" + std::string(item) +
                                          "' is not COMPONENT:LEVEL");
      }
      auto it = s.loggers.find(std::string(kv[0]));
      if (it == s.loggers.end()) {
        std::string known;
        for (const char* c : kComponents) known += std::string(known.empty() ? "" : ", ") + c;
        return absl::InvalidArgumentError("--component-log-level: unknown component '" +
                                          std::string(kv[0]) + "' (known: " + known + ")");
      }
      it->second->set_level(lvl);
    }
  }
  return absl::OkStatus();
}

std::string_view levelName(spdlog::level::level_enum level) {
  switch (level) {
  case spdlog::level::trace: return "trace";
  case spdlog::level::debug: return "debug";
  case spdlog::level::info: return "info";
  case spdlog::level::warn: return "warning";
  case spdlog::level::err: return "error";
  case spdlog::level::critical: return "critical";
  default: return "off";
  }
}

std::vector<std::pair<std::string, spdlog::level::level_enum>> levels() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  std::vector<std::pair<std::string, spdlog::level::level_enum>> out;
  for (const auto& [name, logger] : s.loggers) out.emplace_back(name, logger->level());
  return out;
}

bool setLevel(std::string_view component, spdlog::level::level_enum level) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.loggers.find(component);
  if (it == s.loggers.end()) return false;
  it->second->set_level(level);
  return true;
}

void setAllLevels(spdlog::level::level_enum level) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.level = level;
  for (auto& [_, logger] : s.loggers) logger->set_level(level);
}

spdlog::logger& get(std::string_view component) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.loggers.find(component);
  if (it == s.loggers.end()) {
    it = s.loggers.emplace(std::string(component), makeLogger(s, component)).first;
  }
  return *it->second;
}

} // namespace legate::log
