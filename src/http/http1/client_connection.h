#pragma once

// HTTP/1.1 client codec: encodes requests onto an upstream connection and
// decodes the responses.
//
// Contract:
//   - One stream at a time (no client-side pipelining): newStream() may be
//     called only when no stream is active (wantsToWrite() is false); the
//     connection pool checks isReusable() first.
//   - A stream ends when both its request has been encoded and its response
//     decoded. A response may arrive before the request finished (early
//     response); the stream then stays open for encoding, and the connection is
//     not reused afterwards (we cannot know how much of the body the server
//     read).
//   - Responses: status line HTTP/1.1 or HTTP/1.0; 100 Continue goes to
//     decode1xxHeaders and decoding waits for the final response; other 1xx
//     (except 101) are skipped. No body for HEAD requests, 1xx, 204, 304. The
//     body is framed by chunked, Content-Length, or the connection's close
//     (onRemoteClose() ends it). 101 and 2xx to CONNECT turn the rest of the
//     connection into a close-delimited byte stream.
//   - Bytes that arrive with no response expected are a protocol error.
//   - dispatch is not reentrant (a nested call returns OK, consuming nothing);
//     newStream may be called from inside a decode callback.
//
// Thread: one worker; lives as long as its network connection.

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "http/codec.h"
#include "http/http1/encoder.h"
#include "http/http1/parser.h"

namespace legate::http::http1 {

class Http1ClientConnection : public ClientConnection, private ParserCallbacks {
public:
  Http1ClientConnection(CodecOutput output, const CodecSettings& settings,
                        std::function<void(bool)> read_disable);

  StreamEncoder& newStream(StreamDecoder& response_decoder) override;
  absl::Status dispatch(Buffer& data) override;
  void onRemoteClose() override;
  Protocol protocol() const override { return Protocol::Http11; }
  bool wantsToWrite() const override { return stream_active_; }

  // True when another request may be sent: no stream in progress, the last
  // response was complete and keep-alive (HTTP/1.1 without `Connection:
  // close`, or HTTP/1.0 with keep-alive), neither side asked to close, no
  // protocol error, no early response, the peer has not closed.
  bool isReusable() const;

private:
  class RequestEncoder final : public StreamEncoderBase {
  public:
    explicit RequestEncoder(Http1ClientConnection& connection);
    void encode1xxHeaders(const HeaderMap&) override {}
    void encodeHeaders(const HeaderMap& headers, bool end_stream) override;
    void resetStream(StreamResetReason reason) override;
    Protocol protocol() const override { return Protocol::Http11; }

    using StreamEncoderBase::notifyReset;
    using StreamEncoderBase::resetEncoder;

  private:
    void write(Buffer& data, bool end_of_message) override;
    Http1ClientConnection& connection_;
  };

  // ParserCallbacks
  void onMessageBegin() override {}
  absl::Status onHeadersComplete(MessageHead& head) override;
  void onBody(Buffer& data, bool end_stream) override;
  void onTrailers(HeaderMapPtr trailers) override;
  void onMessageComplete() override {}

  // Marks the response complete (and the stream, if the request is done too);
  // returns the decoder to deliver the final event to.
  StreamDecoder* completeResponse();
  void closeConnection(StreamResetReason reason, std::string_view details, bool write_close);

  CodecOutput output_;
  const CodecSettings settings_;
  const std::function<void(bool)> read_disable_;
  Parser parser_;
  RequestEncoder encoder_;
  StreamDecoder* decoder_ = nullptr;
  absl::Status error_;

  bool stream_active_ = false;
  bool request_complete_ = false;
  bool response_complete_ = false;
  bool request_is_head_ = false;
  bool request_is_connect_ = false;
  bool parser_reset_pending_ = false;
  bool keep_alive_ = true;     // the last response allows reuse
  bool request_close_ = false; // a request asked for `Connection: close`
  bool early_response_ = false;
  bool closed_ = false;
  bool dispatching_ = false;
};

} // namespace legate::http::http1
