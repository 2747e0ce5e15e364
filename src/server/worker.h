#pragma once

// A worker: one thread, one dispatcher, and the ActiveListeners it accepts on.
// Everything a worker owns is touched only on its thread; the main thread talks
// to it by posting.

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "event/dispatcher.h"
#include "network/listener.h"

namespace legate::server {

class Worker {
public:
  Worker(uint32_t index, network::ConnectionLimits& limits);
  ~Worker();

  struct ListenerSocket {
    network::ListenerConfigConstSharedPtr config;
    int fd;
  };
  // Starts the thread, which begins accepting on the given sockets.
  void start(std::vector<ListenerSocket> sockets);
  // Stops accepting on the listeners named (all when names is empty); existing
  // connections carry on (drain).
  void stopListeners(std::vector<std::string> names = {});
  // Closes every connection and stops the thread; joins it.
  void stop();
  // For posting work to this worker's thread.
  event::Dispatcher& dispatcher() { return dispatcher_; }

private:
  // use_original_dst: this worker's listener for an address, or nullptr.
  network::ActiveListener* findListener(const network::Address& a) const;

  const uint32_t index_;
  network::ConnectionLimits& limits_;
  event::Dispatcher dispatcher_;
  std::thread thread_;
  std::vector<std::unique_ptr<network::ActiveListener>> listeners_;
};

} // namespace legate::server
