#pragma once

// An HTTP/1.1 client for span collectors: POSTs report bodies to a host of a
// cluster, one request at a time on one kept-alive connection, from the main
// thread. Tracers never wait for it: post() queues (bounded; a full queue
// refuses) and the outcome comes back through a callback.
//
// A report fails (callback with no status) when no host is available, the
// connection fails or closes before the response, or the timeout passes; the
// connection is then dropped and the next report opens a new one (maybe to
// another host).
//
// Threading: main thread only. Lifetime: owned by its exporter; destroying it
// drops queued reports without calling back.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "event/dispatcher.h"
#include "http/codec.h"
#include "network/connection.h"
#include "network/filter.h"
#include "upstream/cluster.h"

namespace legate::extensions::tracers {

struct CollectorRequest {
  std::string path;
  std::string host;  // :authority
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::chrono::milliseconds timeout{5000};
};

class CollectorClient : public network::ConnectionCallbacks,
                        public network::ReadFilter,
                        public http::StreamDecoder {
 public:
  // status: the response code, or nullopt when the report failed.
  using Done = std::function<void(std::optional<uint32_t> status)>;

  CollectorClient(const upstream::Cluster& cluster, CollectorRequest request,
                  size_t max_queued = 16);
  ~CollectorClient() override;

  void start(event::Dispatcher& main);
  // False when the queue is full (the report is dropped; no callback).
  bool post(std::string body, Done done);

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override {}
  void onBelowWriteBufferLowWatermark() override {}
  // network::ReadFilter
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  network::FilterStatus onNewConnection() override { return network::FilterStatus::Continue; }
  network::FilterStatus onData(Buffer& data, bool end_stream) override;
  // http::StreamDecoder (the collector's response)
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(http::HeaderMapPtr trailers) override;

 private:
  struct Link;
  struct Pending {
    std::string body;
    Done done;
  };

  void sendNext();
  void encodeCurrent();
  void complete(std::optional<uint32_t> status);
  void closeLink();

  const upstream::Cluster& cluster_;
  const CollectorRequest request_;
  const size_t max_queued_;
  event::Dispatcher* main_ = nullptr;
  std::deque<Pending> queue_;
  std::unique_ptr<Link> link_;
  event::TimerPtr timeout_timer_;
  bool in_flight_ = false;  // queue_.front() is being sent
  bool connected_ = false;
  bool sending_ = false;  // inside sendNext (no recursion)
  uint32_t status_ = 0;
};

}  // namespace legate::extensions::tracers
