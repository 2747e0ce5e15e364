#pragma once

// Strict, incremental HTTP/1.1 message parser (RFC 9112), shared by the server
// codec (requests) and the client codec (responses).
//
// The parser is fed a Buffer in any fragmentation, down to one byte at a time.
// Lines (start line, header fields, chunk sizes, trailers) are parsed in place
// when they lie inside one buffer slice and copied into a bounded line buffer
// only when they straddle reads. Body bytes are never copied: they move slice
// by slice into a body Buffer handed to the callbacks once per execute() call
// (and before the end of the message), so memory stays bounded by what one read
// brought in.
//
// The parser stops at the end of each message (state Complete) and leaves any
// following bytes in the input: the owner decides when the next message may
// start and calls reset().
//
// Everything the parser rejects is returned as a non-OK absl::Status whose
// message is an Envoy-style detail string ("http1.invalid_characters", ...).
// After an error the parser must not be used again until reset().
//
// Thread: owned by one codec on one worker.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/buffer.h"
#include "http/codec.h"
#include "http/header_map.h"

namespace legate::http::http1 {

// Envoy-compatible rejection details.
namespace details {
inline constexpr std::string_view kInvalidCharacters = "http1.invalid_characters";
inline constexpr std::string_view kContentLengthAndChunked =
    "http1.content_length_and_chunked_not_allowed";
inline constexpr std::string_view kTransferEncodingNotAllowed =
    "http1.transfer_encoding_not_allowed";
inline constexpr std::string_view kInvalidContentLength = "http1.invalid_content_length";
inline constexpr std::string_view kInvalidTransferEncoding = "http1.invalid_transfer_encoding";
inline constexpr std::string_view kInvalidChunkSize = "http1.invalid_chunk_size";
inline constexpr std::string_view kInvalidUrl = "http1.invalid_url";
inline constexpr std::string_view kInvalidMethod = "http1.invalid_method";
inline constexpr std::string_view kInvalidVersion = "http1.invalid_version";
inline constexpr std::string_view kHttp10NotAccepted = "http1.http10_not_accepted";
inline constexpr std::string_view kInvalidStatus = "http1.invalid_status";
inline constexpr std::string_view kInvalidHost = "http1.invalid_host";
inline constexpr std::string_view kMissingHost = "http1.missing_host_header";
inline constexpr std::string_view kWhitespaceBeforeColon = "http1.whitespace_before_colon";
inline constexpr std::string_view kObsFold = "http1.obs_fold";
inline constexpr std::string_view kLineTooLong = "http1.line_too_long";
inline constexpr std::string_view kHeadersTooLarge = "http1.headers_too_large";
inline constexpr std::string_view kTooManyHeaders = "http1.too_many_headers";
inline constexpr std::string_view kUnexpectedUnderscore = "http1.unexpected_underscore";
inline constexpr std::string_view kBareLf = "http1.codec_error";
inline constexpr std::string_view kCodecError = "http1.codec_error";
inline constexpr std::string_view kPrematureClose = "http1.premature_close";
} // namespace details

enum class BodyFraming {
  None,           // no body: the message ends with its headers
  ContentLength,  // exactly content_length bytes (> 0)
  Chunked,        // chunked transfer coding, optional trailers
  CloseDelimited, // responses only: everything until the peer closes
};

// What the parser learned from a message head. Handed to
// ParserCallbacks::onHeadersComplete, which may adjust framing (a response to
// HEAD has no body whatever its Content-Length says) and mark a head
// informational (1xx: another head follows).
struct MessageHead {
  HeaderMapPtr headers;
  Protocol version = Protocol::Http11;
  uint32_t status = 0; // responses only
  bool keep_alive = true;
  bool has_content_length = false;
  bool chunked = false;
  uint64_t content_length = 0;
  BodyFraming framing = BodyFraming::None;
  bool informational = false;
  // Connection: upgrade with an Upgrade header (other than h2c, which is
  // ignored), on an HTTP/1.1 request without a body. Such a request's body is
  // the upgraded byte stream: everything until the peer closes.
  bool upgrade = false;
  bool has_upgrade_header = false; // any Upgrade header, upgrade or not
};

// Events for one message, in order: onMessageBegin, onHeadersComplete,
// onBody* (the last one with end_stream, unless trailers end the message),
// onTrailers?, onMessageComplete. Called once per event, never per byte.
class ParserCallbacks {
public:
  // The first byte of a message's start line arrived (leading empty lines are
  // skipped before it).
  virtual void onMessageBegin() = 0;
  // A non-OK status rejects the message. head.headers is moved out by the
  // callee; when head.framing is None after the call the message is complete.
  virtual absl::Status onHeadersComplete(MessageHead& head) = 0;
  // Body bytes; the callee may move them out. end_stream on the last chunk.
  virtual void onBody(Buffer& data, bool end_stream) = 0;
  // Trailers end the message.
  virtual void onTrailers(HeaderMapPtr trailers) = 0;
  virtual void onMessageComplete() = 0;

protected:
  ~ParserCallbacks() = default;
};

class Parser {
public:
  enum class Mode { Request, Response };

  Parser(Mode mode, const CodecSettings& settings, ParserCallbacks& callbacks);

  // Consumes bytes from data until data is empty, the message is complete, or
  // pause() was called from a callback. Returns a non-OK detail on rejection.
  absl::Status execute(Buffer& data);
  // The peer closed: ends a close-delimited body (onBody(end_stream=true)).
  // Returns true if that completed the message.
  bool onEof();
  // Ready for the next message (clears pause and error state).
  void reset();
  // Called from a callback: execute() returns right after it, leaving the
  // remaining bytes in its input.
  void pause() { paused_ = true; }

  bool complete() const { return state_ == State::Complete; }
  // A message has begun (its first start-line byte arrived) and is not complete.
  bool inMessage() const { return begun_ && state_ != State::Complete; }
  // Bytes of a line that straddled reads are held (e.g. a lone leading CR).
  bool hasPartialLine() const { return !line_buf_.empty(); }
  bool inCloseDelimitedBody() const { return state_ == State::CloseDelimited; }
  uint64_t droppedHeadersWithUnderscores() const { return dropped_underscores_; }

private:
  enum class State {
    StartLine,
    Headers,
    Body,
    ChunkSize,
    ChunkData,
    ChunkDataCr,
    ChunkDataLf,
    Trailers,
    CloseDelimited,
    Complete,
  };

  bool isLineState() const;
  absl::Status takeLines(std::string_view front, size_t& used);
  absl::Status processLine(std::string_view line);
  absl::Status parseRequestLine(std::string_view line);
  absl::Status parseStatusLine(std::string_view line);
  absl::Status parseTarget(std::string_view method, std::string_view target);
  absl::Status parseField(std::string_view line, bool trailer);
  absl::Status parseContentLength(std::string_view value, std::string_view& first);
  absl::Status parseTransferEncoding(std::string_view value);
  void parseConnection(std::string_view value);
  absl::Status headersComplete();
  absl::Status parseChunkSize(std::string_view line);
  absl::Status trailersComplete();
  void flushBody(bool end_stream);
  void completeMessage();
  void resetHead();
  absl::Status lineLimitError() const;

  const Mode mode_;
  const CodecSettings& settings_;
  ParserCallbacks& callbacks_;
  const size_t head_limit_;

  State state_ = State::StartLine;
  bool begun_ = false;
  bool paused_ = false;
  std::string line_buf_; // a line that straddles input slices (bounded)
  size_t head_bytes_ = 0;  // bytes of the current head / trailer section
  uint32_t field_count_ = 0;

  MessageHead head_;
  HeaderMapPtr trailers_;
  bool authority_from_target_ = false;
  bool seen_host_ = false;
  bool is_connect_ = false;
  uint32_t te_codings_ = 0; // transfer codings seen across all TE lines
  bool te_all_chunked_ = true;
  bool has_te_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool conn_upgrade_ = false;
  bool seen_upgrade_ = false;

  uint64_t remaining_ = 0; // body or chunk bytes still expected
  Buffer body_;            // body bytes gathered during one execute()
  uint64_t dropped_underscores_ = 0;
};

} // namespace legate::http::http1
