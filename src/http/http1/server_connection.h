#pragma once

// HTTP/1.1 server codec: decodes requests from a downstream connection and
// encodes the responses.
//
// Dispatch contract (one request at a time):
//   - dispatch(data) consumes bytes in any fragmentation. The first byte of a
//     request line opens a stream (ServerConnectionCallbacks::newStream), so a
//     request rejected while its head is parsed still has an encoder for the
//     400 reply.
//   - Once a request is complete (headers, body, trailers decoded), dispatch
//     stops and leaves any further (pipelined) bytes in `data` unconsumed. The
//     caller calls dispatch again once the response has been encoded; if the
//     response completes inside a decode callback, the same dispatch call goes
//     on with the next request.
//   - A response encoded through the stream's encoder completes the stream
//     when it ends (end_stream on headers, data or trailers).
//   - The codec closes the connection after a response (the last output call
//     has end_stream = true and the response carries `connection: close`) when
//     the request asked for it (HTTP/1.0 without keep-alive, `Connection:
//     close`), when the response is close-delimited (HTTP/1.0 client, no
//     Content-Length), when the response ends before the request did (early
//     reply), after shutdownNotice(), or after a protocol error.
//   - After the codec closed, dispatch discards its input. A non-OK dispatch
//     status is sticky; the caller replies 400 through the open stream (if any)
//     and the codec closes after that reply.
//   - dispatch is not reentrant: a call made from inside a decode callback
//     returns OK without consuming anything.
//
// Thread: one worker; lives as long as its network connection.

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "http/codec.h"
#include "http/http1/encoder.h"
#include "http/http1/parser.h"

namespace legate::http::http1 {

class Http1ServerConnection : public ServerConnection, private ParserCallbacks {
public:
  Http1ServerConnection(CodecOutput output, ServerConnectionCallbacks& callbacks,
                        const CodecSettings& settings, std::function<void(bool)> read_disable);

  absl::Status dispatch(Buffer& data) override;
  void onRemoteClose() override;
  Protocol protocol() const override { return request_version_; }
  void shutdownNotice() override { shutdown_ = true; }
  bool wantsToWrite() const override { return stream_active_; }
  bool idle() const override {
    return !stream_active_ && !parser_.inMessage() && !parser_.hasPartialLine() && !closed_ && !shutdown_ && error_.ok() &&
           !dispatching_;
  }

  // Header fields dropped under UnderscoreAction::DropHeader (for the
  // downstream_rq_... stat).
  uint64_t droppedHeadersWithUnderscores() const { return parser_.droppedHeadersWithUnderscores(); }
  // The codec has asked the connection to close (output got end_stream).
  bool closed() const { return closed_; }

private:
  class ResponseEncoder final : public StreamEncoderBase {
  public:
    explicit ResponseEncoder(Http1ServerConnection& connection);
    void encode1xxHeaders(const HeaderMap& headers) override;
    void encodeHeaders(const HeaderMap& headers, bool end_stream) override;
    void resetStream(StreamResetReason reason) override;
    Protocol protocol() const override { return connection_.request_version_; }

    using StreamEncoderBase::notifyReset;
    using StreamEncoderBase::resetEncoder;

  private:
    void write(Buffer& data, bool end_of_message) override;
    Http1ServerConnection& connection_;
  };

  // ParserCallbacks
  void onMessageBegin() override;
  absl::Status onHeadersComplete(MessageHead& head) override;
  void onBody(Buffer& data, bool end_stream) override;
  void onTrailers(HeaderMapPtr trailers) override;
  void onMessageComplete() override {}

  void writeResponse(Buffer& data, bool end_of_message);
  void closeConnection();

  CodecOutput output_;
  ServerConnectionCallbacks& callbacks_;
  const CodecSettings settings_;
  const std::function<void(bool)> read_disable_;
  Parser parser_;
  ResponseEncoder encoder_;
  StreamDecoder* decoder_ = nullptr;
  absl::Status error_;

  Protocol request_version_ = Protocol::Http11;
  bool stream_active_ = false;
  bool request_complete_ = false;
  bool request_is_head_ = false;
  bool request_is_upgrade_ = false;
  bool request_keep_alive_ = true;
  bool close_after_response_ = false;
  bool shutdown_ = false;
  bool closed_ = false;
  bool dispatching_ = false;
};

} // namespace legate::http::http1
