#pragma once

// Process-wide drain state, set by the server when it starts draining and
// read by connection-level filters (the HTTP connection manager answers with
// "connection: close" while draining).

#include <atomic>

namespace legate::network {

inline std::atomic<bool>& drainingFlag() {
  static std::atomic<bool> flag{false};
  return flag;
}
inline bool isDraining() { return drainingFlag().load(std::memory_order_relaxed); }
inline void setDraining(bool draining) { drainingFlag().store(draining, std::memory_order_relaxed); }

} // namespace legate::network
