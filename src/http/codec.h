#pragma once

// The protocol-neutral codec interfaces. A codec turns a connection's bytes
// into streams (headers, body chunks, trailers) and streams back into bytes.
// Everything between the downstream codec and the upstream codec (connection
// manager, filters, router) sees only these interfaces, so HTTP/1.1 and HTTP/2
// (and later HTTP/3) bridge in any combination.
//
// Thread: a codec and its streams live on one worker and are driven by its
// connection's events.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/buffer.h"
#include "http/header_map.h"

namespace legate::http {

using HeaderMapPtr = std::unique_ptr<HeaderMap>;

enum class Protocol { Http10, Http11, Http2 };

// Envoy's name for a protocol (%PROTOCOL%, the http.protocol span tag).
constexpr std::string_view protocolName(Protocol p) {
  switch (p) {
  case Protocol::Http10: return "HTTP/1.0";
  case Protocol::Http11: return "HTTP/1.1";
  case Protocol::Http2: return "HTTP/2";
  }
  return "";
}

enum class StreamResetReason {
  LocalReset,
  RemoteReset,
  ConnectionFailure,
  ConnectionTermination,
  Overflow,
  ProtocolError,
};

// Receives what was decoded for one stream: a request on the server side, a
// response on the client side.
class StreamDecoder {
public:
  virtual ~StreamDecoder() = default;
  // 1xx informational headers (client side: 100 Continue).
  virtual void decode1xxHeaders(HeaderMapPtr headers) {}
  virtual void decodeHeaders(HeaderMapPtr headers, bool end_stream) = 0;
  virtual void decodeData(Buffer& data, bool end_stream) = 0;
  virtual void decodeTrailers(HeaderMapPtr trailers) = 0;
};

class StreamCallbacks {
public:
  virtual ~StreamCallbacks() = default;
  virtual void onResetStream(StreamResetReason reason, std::string_view details) = 0;
  // The stream's send buffer crossed its high / low watermark.
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

// Sends one stream's headers, data and trailers.
class StreamEncoder {
public:
  virtual ~StreamEncoder() = default;
  virtual void encode1xxHeaders(const HeaderMap& headers) = 0;
  virtual void encodeHeaders(const HeaderMap& headers, bool end_stream) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  virtual void resetStream(StreamResetReason reason) = 0;
  // Stops (true) / resumes (false) delivering this stream's incoming data;
  // counted like Connection::readDisable.
  virtual void readDisable(bool disable) = 0;
  virtual void addCallbacks(StreamCallbacks& callbacks) = 0;
  virtual void removeCallbacks(StreamCallbacks& callbacks) = 0;
  virtual Protocol protocol() const = 0;
};

// Codec limits and behaviours from http_connection_manager / cluster options.
struct CodecSettings {
  uint32_t max_request_headers_kb = 60;
  uint32_t max_headers_count = 100;
  // headers_with_underscores_action: ALLOW, REJECT_REQUEST, DROP_HEADER.
  enum class UnderscoreAction { Allow, RejectRequest, DropHeader } underscores = UnderscoreAction::Allow;
  // Accept absolute-form request targets (proxies do).
  bool allow_absolute_url = true;
  // Accept HTTP/1.0 requests.
  bool accept_http_10 = true;
  // Header key case for HTTP/1 output: lower-case (false) or Proper-Case (true).
  bool proper_case_headers = false;
};

// Where a codec writes bytes (the network connection).
using CodecOutput = std::function<void(Buffer& data, bool end_stream)>;

class ServerConnectionCallbacks {
public:
  virtual ~ServerConnectionCallbacks() = default;
  // A new request stream begins; returns the decoder that receives it.
  // response_encoder stays valid until the stream completes or is reset.
  virtual StreamDecoder& newStream(StreamEncoder& response_encoder) = 0;
};

class ClientConnectionCallbacks {
public:
  virtual ~ClientConnectionCallbacks() = default;
};

class Connection {
public:
  virtual ~Connection() = default;
  // Consumes bytes read from the network. A non-OK status is a protocol error:
  // its message is the detail for logs and local replies (e.g.
  // "http1.invalid_characters"); the caller replies (server: 400) and closes.
  virtual absl::Status dispatch(Buffer& data) = 0;
  // The peer half-closed its side.
  virtual void onRemoteClose() {}
  virtual Protocol protocol() const = 0;
  // Server: stop accepting new streams after the current ones (drain).
  virtual void shutdownNotice() {}
  // True while a stream is in progress (e.g. for idle timers).
  virtual bool wantsToWrite() const { return false; }
};

class ServerConnection : public Connection {
public:
  // Between messages with nothing in progress (no stream, no partial request,
  // not closing, no error): the owner may destroy the codec and create a fresh
  // one for the next bytes, so an idle keep-alive connection keeps no codec.
  virtual bool idle() const { return false; }
};

class ClientConnection : public Connection {
public:
  // Starts a request stream; response_decoder receives the response.
  virtual StreamEncoder& newStream(StreamDecoder& response_decoder) = 0;
};

} // namespace legate::http
