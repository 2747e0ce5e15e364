#include "http/http1/client_connection.h"

#include <cstdlib>
#include <string>

#include "http/http1/chars.h"

namespace legate::http::http1 {

namespace {
absl::Status reject(std::string_view detail) {
  return absl::InvalidArgumentError(absl::string_view(detail.data(), detail.size()));
}
} // namespace

Http1ClientConnection::Http1ClientConnection(CodecOutput output, const CodecSettings& settings,
                                             std::function<void(bool)> read_disable)
    : output_(std::move(output)), settings_(settings), read_disable_(std::move(read_disable)),
      parser_(Parser::Mode::Response, settings_, *this), encoder_(*this) {}

bool Http1ClientConnection::isReusable() const {
  return !stream_active_ && !closed_ && error_.ok() && keep_alive_ && !request_close_ &&
         !early_response_;
}

StreamEncoder& Http1ClientConnection::newStream(StreamDecoder& response_decoder) {
  if (stream_active_) {
    std::abort(); // contract violation: one stream at a time on HTTP/1.1
  }
  stream_active_ = true;
  request_complete_ = false;
  response_complete_ = false;
  request_is_head_ = false;
  request_is_connect_ = false;
  decoder_ = &response_decoder;
  encoder_.resetEncoder();
  if (dispatching_) {
    parser_reset_pending_ = true; // the parser is still on our call stack
  } else {
    parser_.reset();
    parser_reset_pending_ = false;
  }
  return encoder_;
}

absl::Status Http1ClientConnection::dispatch(Buffer& data) {
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
  if (data.empty()) {
    return absl::OkStatus();
  }
  if (parser_reset_pending_) {
    parser_.reset();
    parser_reset_pending_ = false;
  }
  absl::Status status;
  if (!stream_active_ || response_complete_) {
    status = reject(details::kCodecError); // a response nobody asked for
  } else {
    dispatching_ = true;
    status = parser_.execute(data);
    dispatching_ = false;
    if (closed_) {
      data.drain(data.length());
    } else if (status.ok() && !data.empty()) {
      status = reject(details::kCodecError); // bytes after the response
    }
  }
  if (!status.ok()) {
    error_ = status;
    keep_alive_ = false;
  }
  return status;
}

void Http1ClientConnection::onRemoteClose() {
  if (closed_) {
    return;
  }
  if (stream_active_ && !response_complete_ && error_.ok()) {
    if (parser_.inCloseDelimitedBody()) {
      closed_ = true;
      parser_.onEof(); // ends the body through onBody(end_stream = true)
      return;
    }
    closeConnection(StreamResetReason::ConnectionTermination, details::kPrematureClose, false);
    return;
  }
  closed_ = true;
}

void Http1ClientConnection::closeConnection(StreamResetReason reason, std::string_view details,
                                            bool write_close) {
  closed_ = true;
  const bool had_stream = stream_active_;
  stream_active_ = false;
  decoder_ = nullptr;
  parser_.pause();
  if (write_close) {
    Buffer empty;
    output_(empty, true);
  }
  if (had_stream) {
    encoder_.notifyReset(reason, details);
  }
}

StreamDecoder* Http1ClientConnection::completeResponse() {
  StreamDecoder* decoder = decoder_;
  response_complete_ = true;
  if (!request_complete_) {
    early_response_ = true;
  } else {
    stream_active_ = false;
    decoder_ = nullptr;
  }
  return decoder;
}

absl::Status Http1ClientConnection::onHeadersComplete(MessageHead& head) {
  if (!stream_active_ || decoder_ == nullptr || response_complete_) {
    parser_.pause();
    return absl::OkStatus();
  }
  const uint32_t status = head.status;
  if (status < 200 && status != 101) {
    head.informational = true;
    head.framing = BodyFraming::None;
    if (status == 100) {
      decoder_->decode1xxHeaders(std::move(head.headers));
    }
    return absl::OkStatus();
  }
  keep_alive_ = head.keep_alive;
  if (status == 101 || (request_is_connect_ && status / 100 == 2)) {
    head.framing = BodyFraming::CloseDelimited; // the connection becomes a byte stream
  } else if (request_is_head_ || status == 204 || status == 304) {
    head.framing = BodyFraming::None;
  }
  if (head.framing == BodyFraming::CloseDelimited) {
    keep_alive_ = false;
  }
  const bool end_stream = head.framing == BodyFraming::None;
  StreamDecoder* decoder = end_stream ? completeResponse() : decoder_;
  decoder->decodeHeaders(std::move(head.headers), end_stream);
  return absl::OkStatus();
}

void Http1ClientConnection::onBody(Buffer& data, bool end_stream) {
  if (decoder_ == nullptr || response_complete_) {
    parser_.pause();
    return;
  }
  StreamDecoder* decoder = end_stream ? completeResponse() : decoder_;
  decoder->decodeData(data, end_stream);
}

void Http1ClientConnection::onTrailers(HeaderMapPtr trailers) {
  if (decoder_ == nullptr || response_complete_) {
    parser_.pause();
    return;
  }
  completeResponse()->decodeTrailers(std::move(trailers));
}

Http1ClientConnection::RequestEncoder::RequestEncoder(Http1ClientConnection& connection)
    : StreamEncoderBase(connection.settings_, connection.read_disable_), connection_(connection) {}

void Http1ClientConnection::RequestEncoder::encodeHeaders(const HeaderMap& headers,
                                                          bool end_stream) {
  if (headers_encoded_ || !connection_.stream_active_ || connection_.request_complete_) {
    return;
  }
  const std::string_view method = headers.method();
  const std::string_view authority = headers.authority();
  connection_.request_is_head_ = method == "HEAD";
  connection_.request_is_connect_ = method == "CONNECT";
  std::string_view target = connection_.request_is_connect_ ? authority : headers.path();
  if (target.empty()) {
    target = "/";
  }
  if (!isToken(method) || !isTarget(target) ||
      (!authority.empty() && !isFieldValue(authority))) {
    // Would not survive as a request line: never let it split the message.
    resetStream(StreamResetReason::ProtocolError);
    return;
  }
  const HeaderFacts facts = scanHeaders(headers);
  if (facts.connection_close) {
    connection_.request_close_ = true;
  }
  const bool upgrade = facts.upgrade() && !facts.has_content_length;
  if (facts.has_content_length) {
    framing_ = Framing::ContentLength;
  } else if (connection_.request_is_connect_ || upgrade) {
    // Tunnel / upgraded bytes pass through raw, even before the 101 arrives.
    framing_ = Framing::CloseDelimited;
  } else if (end_stream) {
    framing_ = Framing::None;
  } else {
    framing_ = Framing::Chunked;
  }

  HeadWriter head(HeadWriter::boundFor(headers, method.size() + target.size() + 12) +
                  authority.size());
  head.append(method);
  head.append(" ");
  head.append(target);
  head.append(" HTTP/1.1\r\n");
  if (!authority.empty()) {
    appendField(head, headers::kHost, authority);
  }
  appendHeaders(head, headers, false, !authority.empty());
  if (framing_ == Framing::Chunked) {
    appendField(head, headers::kTransferEncoding, "chunked");
  }
  if (upgrade) {
    appendField(head, headers::kConnection, "upgrade");
  } else if (connection_.request_close_) {
    appendField(head, headers::kConnection, "close");
  }
  finishHead(head, end_stream);
}

void Http1ClientConnection::RequestEncoder::resetStream(StreamResetReason reason) {
  if (!connection_.stream_active_) {
    return;
  }
  complete_ = true;
  connection_.closeConnection(reason, "", true);
}

void Http1ClientConnection::RequestEncoder::write(Buffer& data, bool end_of_message) {
  if (end_of_message) {
    connection_.request_complete_ = true;
    if (connection_.response_complete_) {
      connection_.stream_active_ = false;
      connection_.decoder_ = nullptr;
    }
  }
  connection_.output_(data, false);
}

} // namespace legate::http::http1
