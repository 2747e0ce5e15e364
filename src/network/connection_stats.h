#pragma once

// The byte counters a connection keeps up to date, in their own header so that
// the stats structs that own one (per listener filter or cluster, not per
// connection) need not include the connection.

namespace legate::stats {
class Counter;
class Gauge;
} // namespace legate::stats

namespace legate::network {

// Any member may be null. A connection holds a pointer to one of these, owned
// next to the counters it names and living at least as long as the connection
// (every idle connection would otherwise carry four pointers).
struct ConnectionStats {
  stats::Counter* rx_total = nullptr;
  stats::Gauge* rx_buffered = nullptr;
  stats::Counter* tx_total = nullptr;
  stats::Gauge* tx_buffered = nullptr;
};

} // namespace legate::network
