#pragma once

// The part of HTTP/1.1 stream encoding shared by the server (responses) and the
// client (requests): header serialization, body framing (Content-Length,
// chunked, close-delimited, none), trailers, stream callbacks.
//
// Every encode call produces exactly one Buffer handed to write(), so a
// response's head, body chunk and chunk framing leave in one writev.
//
// Thread: owned by one codec connection on one worker.

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "common/swar.h"
#include "http/codec.h"
#include "http/header_map.h"

namespace legate::http::http1 {

// "OK", "Not Found", ...; "" for codes we have no phrase for (the reason phrase
// is optional on the wire).
std::string_view reasonPhrase(uint32_t status);

// Writes one message head straight into a Buffer: the caller reserves an upper
// bound of the head's size once, pieces are then memcpy'd into the reserved room.
// Should the bound be short anyway, the rest goes through Buffer::add, so the bytes
// are always right; the bound only decides whether one copy is saved.
class HeadWriter {
public:
  explicit HeadWriter(size_t bound)
      : begin_(out_.reserve(bound)), p_(begin_), end_(begin_ + bound) {}
  HeadWriter(const HeadWriter&) = delete;
  HeadWriter& operator=(const HeadWriter&) = delete;

  void append(std::string_view s) {
    if (s.empty()) return;
    if (static_cast<size_t>(end_ - p_) >= s.size()) {
      swar::copyBytes(p_, s.data(), s.size());
      p_ += s.size();
    } else {
      overflow(s);
    }
  }
  void appendNumber(uint32_t v);
  // name in Train-Case ("content-type" -> "Content-Type").
  void appendProperCase(std::string_view name);
  // The finished head, ready to write.
  Buffer& finish();

  // A bound for a head carrying these headers plus a start line and the fields
  // the codec adds itself (Host, Transfer-Encoding, Connection, Content-Length).
  static size_t boundFor(const HeaderMap& headers, size_t start_line) {
    return headers.byteSize() + 4 * headers.size() + start_line + 128;
  }

private:
  void overflow(std::string_view s);

  Buffer out_;
  char* begin_;
  char* p_;
  char* end_;
  bool spilled_ = false; // the reserved room was committed; appends go through add()
};

class StreamEncoderBase : public StreamEncoder {
public:
  void encodeData(Buffer& data, bool end_stream) override;
  void encodeTrailers(const HeaderMap& trailers) override;
  void readDisable(bool disable) override;
  void addCallbacks(StreamCallbacks& callbacks) override;
  void removeCallbacks(StreamCallbacks& callbacks) override;

  // True once the whole message (through end_stream) has been encoded.
  bool encodeComplete() const { return complete_; }

protected:
  enum class Framing { None, ContentLength, Chunked, CloseDelimited };

  StreamEncoderBase(const CodecSettings& settings, const std::function<void(bool)>& read_disable)
      : settings_(settings), read_disable_(read_disable) {}

  // Hands one encode call's bytes to the connection. end_of_message is true on
  // the call that completes the message.
  virtual void write(Buffer& data, bool end_of_message) = 0;

  // Prepares for a new message.
  void resetEncoder();
  // Appends "name: value\r\n" in the configured case.
  void appendField(HeadWriter& out, std::string_view name, std::string_view value) const;
  // Appends the regular fields of headers, skipping pseudo-headers and the
  // fields the codec owns (framing, connection management); fields with bytes
  // that could split the message (CR, LF, NUL, non-token names) are dropped.
  // skip_content_length drops Content-Length too (204, 1xx); skip_host drops
  // Host (requests, where :authority is written as Host).
  void appendHeaders(HeadWriter& out, const HeaderMap& headers, bool skip_content_length,
                     bool skip_host) const;
  // Finishes the head: emits the header block, then completes the message if
  // end_stream.
  void finishHead(HeadWriter& head, bool end_stream);
  void notifyReset(StreamResetReason reason, std::string_view details);

  const CodecSettings& settings_;
  const std::function<void(bool)>& read_disable_;
  Framing framing_ = Framing::None;
  bool headers_encoded_ = false;
  bool complete_ = false;
  // A stream has one or two watchers (the router's upstream request, the HCM).
  using Callbacks = absl::InlinedVector<StreamCallbacks*, 2>;
  Callbacks callbacks_;
};

// Scans headers for what framing needs: a valid Content-Length, and whether
// Connection asks for close.
struct HeaderFacts {
  bool has_content_length = false;
  bool connection_close = false;
  bool connection_upgrade = false; // Connection lists "upgrade"
  bool has_upgrade = false;        // an Upgrade header is present
  bool upgrade() const { return connection_upgrade && has_upgrade; }
};
HeaderFacts scanHeaders(const HeaderMap& headers);

} // namespace legate::http::http1
