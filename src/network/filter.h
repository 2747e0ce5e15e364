#pragma once

// The network (L4) filter API: what a listener's filter chain is made of.
//
// A read filter sees a connection's new-connection event and the bytes read
// from it; a write filter sees the bytes about to be written. Each returns
// Continue (pass to the next filter) or StopIteration (stop here; the filter
// resumes the chain later with continueReading()). Filters are created per
// connection, on the connection's worker, and live as long as the connection.

#include <memory>

#include "common/buffer.h"

namespace legate::network {

class Connection;

enum class FilterStatus { Continue, StopIteration };

class ReadFilterCallbacks {
public:
  virtual ~ReadFilterCallbacks() = default;
  virtual Connection& connection() = 0;
  // Resumes iteration after the filter that stopped, with whatever is now in
  // the connection's read buffer.
  virtual void continueReading() = 0;
};

class ReadFilter {
public:
  virtual ~ReadFilter() = default;
  virtual void initializeReadFilterCallbacks(ReadFilterCallbacks& callbacks) = 0;
  // Once, when the connection is ready for filters.
  virtual FilterStatus onNewConnection() = 0;
  // data: bytes read so far and not yet consumed; a filter consumes by draining
  // or moving out of it. end_stream: the peer half-closed its side.
  virtual FilterStatus onData(Buffer& data, bool end_stream) = 0;
};

class WriteFilter {
public:
  virtual ~WriteFilter() = default;
  virtual FilterStatus onWrite(Buffer& data, bool end_stream) = 0;
};

using ReadFilterSharedPtr = std::shared_ptr<ReadFilter>;
using WriteFilterSharedPtr = std::shared_ptr<WriteFilter>;

} // namespace legate::network
