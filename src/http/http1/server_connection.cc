#include "http/http1/server_connection.h"

#include <string>

namespace legate::http::http1 {

Http1ServerConnection::Http1ServerConnection(CodecOutput output,
                                             ServerConnectionCallbacks& callbacks,
                                             const CodecSettings& settings,
                                             std::function<void(bool)> read_disable)
    : output_(std::move(output)), callbacks_(callbacks), settings_(settings),
      read_disable_(std::move(read_disable)), parser_(Parser::Mode::Request, settings_, *this),
      encoder_(*this) {}

absl::Status Http1ServerConnection::dispatch(Buffer& data) {
  if (!error_.ok()) {
    return error_;
  }
  if (dispatching_) {
    return absl::OkStatus();
  }
  if (closed_) {
    data.drain(data.length());
    return absl::OkStatus();
  }
  dispatching_ = true;
  absl::Status status;
  while (!data.empty() && !closed_) {
    if (parser_.complete()) {
      if (stream_active_) {
        break; // the response is still being encoded: leave pipelined bytes
      }
      parser_.reset();
    }
    status = parser_.execute(data);
    if (!status.ok() || !parser_.complete()) {
      break;
    }
  }
  dispatching_ = false;
  if (closed_) {
    data.drain(data.length());
  }
  if (!status.ok()) {
    error_ = status;
    // The caller replies 400 on the open stream and the codec closes after it;
    // with no stream open there is nothing to reply on.
    close_after_response_ = true;
  }
  return status;
}

void Http1ServerConnection::onRemoteClose() {
  if (stream_active_ && !request_complete_) {
    // The request can never complete.
    stream_active_ = false;
    closed_ = true;
    decoder_ = nullptr;
    encoder_.notifyReset(StreamResetReason::ConnectionTermination, details::kPrematureClose);
  }
}

void Http1ServerConnection::onMessageBegin() {
  stream_active_ = true;
  request_complete_ = false;
  request_version_ = Protocol::Http11;
  request_is_head_ = false;
  request_is_upgrade_ = false;
  request_keep_alive_ = true;
  close_after_response_ = false;
  encoder_.resetEncoder();
  decoder_ = &callbacks_.newStream(encoder_);
}

absl::Status Http1ServerConnection::onHeadersComplete(MessageHead& head) {
  request_version_ = head.version;
  request_is_head_ = head.headers->method() == "HEAD";
  request_keep_alive_ = head.keep_alive;
  request_is_upgrade_ = head.upgrade;
  if (head.has_upgrade_header && !head.upgrade) {
    // Hop-by-hop, and not an upgrade this codec will carry (h2c, a request
    // with a body, HTTP/1.0, no "Connection: upgrade"): it stops here, with
    // h2c's settings. So a request that still has Upgrade is an upgrade.
    head.headers->remove(headers::kUpgrade);
    head.headers->remove("http2-settings");
  }
  if (!stream_active_ || decoder_ == nullptr) {
    parser_.pause(); // the stream was answered or reset already
    return absl::OkStatus();
  }
  const bool end_stream = head.framing == BodyFraming::None;
  if (end_stream) {
    request_complete_ = true; // before the callback, which may respond at once
  }
  decoder_->decodeHeaders(std::move(head.headers), end_stream);
  return absl::OkStatus();
}

void Http1ServerConnection::onBody(Buffer& data, bool end_stream) {
  if (!stream_active_ || decoder_ == nullptr) {
    parser_.pause();
    return;
  }
  if (end_stream) {
    request_complete_ = true;
  }
  decoder_->decodeData(data, end_stream);
}

void Http1ServerConnection::onTrailers(HeaderMapPtr trailers) {
  if (!stream_active_ || decoder_ == nullptr) {
    parser_.pause();
    return;
  }
  request_complete_ = true;
  decoder_->decodeTrailers(std::move(trailers));
}

void Http1ServerConnection::writeResponse(Buffer& data, bool end_of_message) {
  if (!end_of_message) {
    output_(data, false);
    return;
  }
  // The response completes the stream. Update state before output, which may
  // re-enter us through the connection.
  const bool close = close_after_response_;
  stream_active_ = false;
  decoder_ = nullptr;
  if (close) {
    closed_ = true;
    parser_.pause();
  }
  output_(data, close);
}

void Http1ServerConnection::closeConnection() {
  closed_ = true;
  stream_active_ = false;
  decoder_ = nullptr;
  parser_.pause();
  Buffer empty;
  output_(empty, true);
}

namespace {

// "HTTP/1.1 <status> <reason>\r\n"
void appendStatusLine(HeadWriter& head, uint32_t status, std::string_view reason) {
  head.append("HTTP/1.1 ");
  head.appendNumber(status);
  head.append(" ");
  head.append(reason);
  head.append("\r\n");
}

} // namespace

Http1ServerConnection::ResponseEncoder::ResponseEncoder(Http1ServerConnection& connection)
    : StreamEncoderBase(connection.settings_, connection.read_disable_), connection_(connection) {}

void Http1ServerConnection::ResponseEncoder::encode1xxHeaders(const HeaderMap& headers) {
  // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
  if (headers_encoded_ || !connection_.stream_active_ ||
      connection_.request_version_ == Protocol::Http10) {
    return;
  }
  uint32_t status = headers.status();
  if (status < 100 || status > 199 || status == 101) {
    status = 100;
  }
  const std::string_view reason = reasonPhrase(status);
  HeadWriter head(HeadWriter::boundFor(headers, 15 + reason.size()));
  appendStatusLine(head, status, reason);
  appendHeaders(head, headers, true, false);
  head.append("\r\n");
  connection_.output_(head.finish(), false);
}

void Http1ServerConnection::ResponseEncoder::encodeHeaders(const HeaderMap& headers,
                                                           bool end_stream) {
  if (headers_encoded_ || !connection_.stream_active_) {
    return;
  }
  uint32_t status = headers.status();
  if (status < 100 || status > 599) {
    status = 500;
  }
  const HeaderFacts facts = scanHeaders(headers);
  // 101 to an upgrade request: from here on the connection carries the
  // upgraded byte stream, both ways, until one side closes.
  const bool upgraded = status == 101 && connection_.request_is_upgrade_;
  const bool no_body = !upgraded && (connection_.request_is_head_ || status < 200 ||
                                     status == 204 || status == 304);
  bool close = !connection_.request_keep_alive_ || connection_.shutdown_ ||
               !connection_.request_complete_ || !connection_.error_.ok() ||
               facts.connection_close;
  bool content_length_zero = false;
  if (upgraded) {
    framing_ = Framing::CloseDelimited;
    close = true;
  } else if (no_body) {
    framing_ = Framing::None;
  } else if (facts.has_content_length) {
    framing_ = Framing::ContentLength;
  } else if (end_stream) {
    // Without framing a response would be read until close: say it is empty.
    framing_ = Framing::None;
    content_length_zero = true;
  } else if (connection_.request_version_ == Protocol::Http11) {
    framing_ = Framing::Chunked;
  } else {
    framing_ = Framing::CloseDelimited;
    close = true;
  }
  connection_.close_after_response_ = close;

  const std::string_view reason = reasonPhrase(status);
  HeadWriter head(HeadWriter::boundFor(headers, 15 + reason.size()));
  appendStatusLine(head, status, reason);
  appendHeaders(head, headers, status < 200 || status == 204, false);
  if (upgraded) {
    appendField(head, headers::kConnection, "upgrade");
    connection_.close_after_response_ = true;
    finishHead(head, end_stream);
    return;
  }
  if (content_length_zero) {
    appendField(head, headers::kContentLength, "0");
  }
  if (framing_ == Framing::Chunked) {
    appendField(head, headers::kTransferEncoding, "chunked");
  }
  if (close) {
    appendField(head, headers::kConnection, "close");
  } else if (connection_.request_version_ == Protocol::Http10) {
    appendField(head, headers::kConnection, "keep-alive");
  }
  finishHead(head, end_stream);
}

void Http1ServerConnection::ResponseEncoder::resetStream(StreamResetReason reason) {
  if (!connection_.stream_active_) {
    return;
  }
  complete_ = true;
  connection_.closeConnection();
  notifyReset(reason, "");
}

void Http1ServerConnection::ResponseEncoder::write(Buffer& data, bool end_of_message) {
  connection_.writeResponse(data, end_of_message);
}

} // namespace legate::http::http1
