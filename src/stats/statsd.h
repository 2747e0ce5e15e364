#pragma once

// Envoy's statsd sinks: envoy.stat_sinks.statsd (plain statsd over UDP, or over TCP
// to a host of a cluster) and envoy.stat_sinks.dog_statsd (DogStatsD tags over UDP).
//
// Wire format, one metric per line: `<prefix>.<name>:<value>|<type>` with type `c`
// (counter delta since the last flush), `g` (gauge value) or `ms` (one histogram
// sample). DogStatsD uses the tag-extracted name and appends `|#tag:value,...`.
// UDP lines are packed into datagrams of at most max_datagram_bytes, separated by
// '\n'; TCP lines each end with '\n'.
//
// Threading: main thread only (the Flusher's). Never blocks: UDP sends are
// non-blocking and a failed send is dropped; the TCP socket is non-blocking, its
// connect completes across flushes, and its buffer is bounded (oldest data is kept,
// new lines are dropped past the bound).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "stats/sink.h"

namespace legate::stats {

class StatsdSink : public Sink {
public:
  enum class Flavor { Statsd, DogStatsd };

  // UDP to "ip:port" / "[ipv6]:port". Errors name the address.
  static absl::StatusOr<std::unique_ptr<StatsdSink>>
  udp(const std::string& address, Flavor flavor, std::string prefix, uint64_t max_datagram_bytes,
      const TagProducer& tags);
  // TCP to whatever pick_host returns ("ip:port"), asked again after each failure.
  static std::unique_ptr<StatsdSink> tcp(std::function<std::string()> pick_host,
                                         std::string prefix, const TagProducer& tags);
  ~StatsdSink() override;

  void flush(const MetricSnapshot& snapshot) override;

  // One metric line without its terminator (exposed for unit tests).
  std::string line(std::string_view name, const std::string& value, const char* type) const;

  static constexpr size_t kDefaultDatagramBytes = 1432; // fits a 1500-byte MTU
  static constexpr size_t kMaxTcpBuffer = 4 * 1024 * 1024;

private:
  StatsdSink(Flavor flavor, std::string prefix, const TagProducer& tags);
  void sendUdp(const std::vector<std::string>& lines);
  void sendTcp(const std::vector<std::string>& lines);
  bool tcpReady();
  void closeTcp();

  const Flavor flavor_;
  const std::string prefix_;
  const TagProducer& tags_;
  int fd_ = -1;
  bool tcp_ = false;
  bool connecting_ = false;
  bool mid_line_ = false; // the last TCP send ended inside a line
  size_t max_datagram_ = kDefaultDatagramBytes;
  std::function<std::string()> pick_host_;
  std::string tcp_buffer_;
};

} // namespace legate::stats
