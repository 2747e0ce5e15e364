#include "extensions/tracers/collector_client.h"

#include "common/logger.h"
#include "http/http1/client_connection.h"
#include "network/transport_socket.h"
#include "upstream/cluster_manager.h"

namespace legate::extensions::tracers {
namespace {

spdlog::logger& tracingLog() {
  static spdlog::logger& l = log::get("tracing");
  return l;
}

}  // namespace

struct CollectorClient::Link : event::DeferredDeletable {
  std::unique_ptr<network::Connection> conn;
  std::unique_ptr<http::http1::Http1ClientConnection> codec;
};

CollectorClient::CollectorClient(const upstream::Cluster& cluster, CollectorRequest request,
                                 size_t max_queued)
    : cluster_(cluster), request_(std::move(request)), max_queued_(max_queued) {}

CollectorClient::~CollectorClient() {
  queue_.clear();
  in_flight_ = false;
  if (link_) {
    // Not inside a callback of the link here: it can go at once.
    link_->conn->removeConnectionCallbacks(*this);
    link_->conn->close(network::ConnectionCloseType::NoFlush);
    link_.reset();
  }
}

void CollectorClient::start(event::Dispatcher& main) {
  main_ = &main;
  timeout_timer_ = main.createTimer([this] {
    tracingLog().debug("span report to cluster '{}' timed out", cluster_.name());
    closeLink();
    complete(std::nullopt);
  });
}

bool CollectorClient::post(std::string body, Done done) {
  if (main_ == nullptr || queue_.size() >= max_queued_)
    return false;
  queue_.push_back({std::move(body), std::move(done)});
  sendNext();
  return true;
}

void CollectorClient::sendNext() {
  if (sending_)
    return;
  sending_ = true;
  while (!in_flight_ && !queue_.empty()) {
    if (!link_) {
      upstream::HostConstSharedPtr host = cluster_.chooseHost(upstream::currentWorkerIndex());
      if (!host) {
        tracingLog().debug("no host in collector cluster '{}'", cluster_.name());
        Pending p = std::move(queue_.front());
        queue_.pop_front();
        if (p.done)
          p.done(std::nullopt);
        continue;
      }
      link_ = std::make_unique<Link>();
      connected_ = false;
      link_->conn = network::Connection::connectTo(*main_, host->address(),
                                                   network::RawBufferSocket::create());
      link_->conn->addConnectionCallbacks(*this);
      link_->conn->addReadFilter(
          std::shared_ptr<network::ReadFilter>(this, [](network::ReadFilter*) {}));
      network::Connection* conn = link_->conn.get();
      link_->codec = std::make_unique<http::http1::Http1ClientConnection>(
          [conn](Buffer& data, bool) { conn->write(data, false); }, http::CodecSettings{},
          [conn](bool disable) { conn->readDisable(disable); });
    }
    in_flight_ = true;
    status_ = 0;
    timeout_timer_->enableTimer(request_.timeout);
    if (connected_)
      encodeCurrent();  // else once connected
  }
  sending_ = false;
}

void CollectorClient::encodeCurrent() {
  const Pending& p = queue_.front();
  http::HeaderMap h;
  h.set(":method", "POST");
  h.set(":path", request_.path);
  h.set(":scheme", "http");
  h.set(":authority", request_.host);
  h.set("content-type", request_.content_type);
  h.set("content-length", std::to_string(p.body.size()));
  for (const auto& [k, v] : request_.headers)
    h.add(k, v);
  http::StreamEncoder& encoder = link_->codec->newStream(*this);
  if (p.body.empty()) {
    encoder.encodeHeaders(h, true);
    return;
  }
  encoder.encodeHeaders(h, false);
  if (!link_)
    return;  // the encoder failed and closed
  Buffer b;
  b.add(p.body);
  encoder.encodeData(b, true);
}

void CollectorClient::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::Connected) {
    connected_ = true;
    link_->conn->initializeReadFilters();
    if (in_flight_)
      encodeCurrent();
    return;
  }
  // Closed: a response delimited by the close is delivered first.
  if (link_ && link_->codec && in_flight_)
    link_->codec->onRemoteClose();
  if (link_) {
    link_->conn->removeConnectionCallbacks(*this);
    main_->deferredDelete(std::move(link_));
  }
  connected_ = false;
  if (in_flight_)
    complete(std::nullopt);
}

network::FilterStatus CollectorClient::onData(Buffer& data, bool) {
  if (!link_ || !in_flight_) {
    data.drain(data.length());  // nothing asked for: drop the connection
    closeLink();
    return network::FilterStatus::StopIteration;
  }
  const absl::Status st = link_->codec->dispatch(data);
  if (!st.ok()) {
    data.drain(data.length());
    closeLink();
    if (in_flight_)
      complete(std::nullopt);
  }
  return network::FilterStatus::StopIteration;
}

void CollectorClient::decodeHeaders(http::HeaderMapPtr headers, bool end_stream) {
  status_ = headers->status();
  if (end_stream)
    complete(status_);
}

void CollectorClient::decodeData(Buffer& data, bool end_stream) {
  data.drain(data.length());
  if (end_stream)
    complete(status_);
}

void CollectorClient::decodeTrailers(http::HeaderMapPtr) {
  complete(status_);
}

void CollectorClient::complete(std::optional<uint32_t> status) {
  if (!in_flight_)
    return;
  in_flight_ = false;
  timeout_timer_->disableTimer();
  Pending p = std::move(queue_.front());
  queue_.pop_front();
  if (link_ && (!status || !link_->codec->isReusable()))
    closeLink();
  if (p.done)
    p.done(status);
  sendNext();
}

void CollectorClient::closeLink() {
  if (!link_)
    return;
  std::unique_ptr<Link> link = std::move(link_);
  connected_ = false;
  link->conn->removeConnectionCallbacks(*this);
  link->conn->close(network::ConnectionCloseType::NoFlush);
  // The codec may be on the stack (a response callback closes it).
  main_->deferredDelete(std::move(link));
}

}  // namespace legate::extensions::tracers
