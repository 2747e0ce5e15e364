#include "server/worker.h"

#include <pthread.h>

#include <algorithm>

#include "common/logger.h"
#include "upstream/cluster_manager.h"
#include "upstream/http_conn_pool.h"

namespace legate::server {

Worker::Worker(uint32_t index, network::ConnectionLimits& limits)
    : index_(index), limits_(limits), dispatcher_("worker_" + std::to_string(index)) {}

Worker::~Worker() { stop(); }

void Worker::start(std::vector<ListenerSocket> sockets) {
  thread_ = std::thread([this, sockets = std::move(sockets)] {
    const std::string name = "wrk:" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    upstream::setCurrentWorkerIndex(index_);
    for (const auto& s : sockets) {
      listeners_.push_back(
          std::make_unique<network::ActiveListener>(dispatcher_, s.config, s.fd, limits_));
    }
    for (auto& l : listeners_) {
      l->setListenerLookup([this](const network::Address& a) { return findListener(a); });
    }
    dispatcher_.run();
    // Shutting down: connections first (their filters reference the
    // listeners' configs), then whatever they deferred.
    for (auto& l : listeners_) {
      l->stopListening();
      l->closeAllConnections();
    }
    listeners_.clear();
    // Upstream pools (and their connections) belong to this thread.
    upstream::PoolRegistry::clearForThread();
  });
}

void Worker::stopListeners(std::vector<std::string> names) {
  dispatcher_.post([this, names = std::move(names)] {
    for (auto& l : listeners_) {
      if (names.empty() ||
          std::find(names.begin(), names.end(), l->config().name()) != names.end()) {
        l->stopListening();
      }
    }
  });
}

network::ActiveListener* Worker::findListener(const network::Address& a) const {
  // As Envoy: the listener with exactly that address, else one on a wildcard
  // address of the same family and port.
  for (const auto& l : listeners_) {
    if (l->config().address() == a) return l.get();
  }
  for (const auto& l : listeners_) {
    const network::Address& la = l->config().address();
    if (la.family() == a.family() && la.port() == a.port() &&
        (la.ip() == "0.0.0.0" || la.ip() == "::")) {
      return l.get();
    }
  }
  return nullptr;
}

void Worker::stop() {
  if (thread_.joinable()) {
    dispatcher_.exit();
    thread_.join();
  }
}

} // namespace legate::server
