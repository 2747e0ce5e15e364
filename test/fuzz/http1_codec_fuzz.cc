// libFuzzer target for the HTTP/1.1 codec. The input is fed to a server
// connection (as requests) and to a client connection (as a response), split
// at points derived from the input. The server side answers every request,
// exercising the encoder, and re-encodes each decoded request through a client
// connection into a second server: what the proxy would forward must decode to
// the same request (a cheap differential check against smuggling bugs).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/http1/client_connection.h"
#include "http/http1/server_connection.h"

namespace legate::http::http1 {
namespace {

// An invariant of the codec: abort (a crash for libFuzzer) when it fails.
#define check(condition) checkAt((condition), __LINE__)
void checkAt(bool condition, int line) {
  if (!condition) {
    std::fprintf(stderr, "http1_codec_fuzz: check failed at line %d\n", line);
    std::abort();
  }
}

struct Captured : StreamDecoder {
  HeaderMapPtr headers;
  HeaderMapPtr trailers;
  std::string body;
  bool ended = false;
  void decode1xxHeaders(HeaderMapPtr) override {}
  void decodeHeaders(HeaderMapPtr h, bool end_stream) override {
    check(headers == nullptr && !ended);
    headers = std::move(h);
    ended = end_stream;
  }
  void decodeData(Buffer& data, bool end_stream) override {
    check(headers != nullptr && !ended);
    body += data.toString();
    data.drain(data.length());
    ended = end_stream;
  }
  void decodeTrailers(HeaderMapPtr t) override {
    check(headers != nullptr && !ended);
    trailers = std::move(t);
    ended = true;
  }
};

// Re-encodes a decoded request with the client codec and decodes it again.
void checkReencode(const Captured& request) {
  // HTTP/1.0 requests may lack Host; the proxy supplies one before forwarding.
  if (request.headers->authority().empty()) {
    return;
  }
  std::string wire;
  CodecSettings settings;
  Http1ClientConnection client(
      [&](Buffer& d, bool) {
        wire += d.toString();
        d.drain(d.length());
      },
      settings, nullptr);
  Captured ignored;
  StreamEncoder& encoder = client.newStream(ignored);
  const bool has_body = !request.body.empty() || request.trailers != nullptr;
  encoder.encodeHeaders(*request.headers, !has_body);
  if (has_body) {
    Buffer b;
    b.add(request.body);
    if (request.trailers) {
      encoder.encodeData(b, false);
      encoder.encodeTrailers(*request.trailers);
    } else {
      encoder.encodeData(b, true);
    }
  }
  if (request.headers->method() == "CONNECT") {
    return;
  }
  struct One : ServerConnectionCallbacks {
    Captured decoded;
    int streams = 0;
    StreamDecoder& newStream(StreamEncoder&) override {
      ++streams;
      return decoded;
    }
  } callbacks;
  Http1ServerConnection server([](Buffer& d, bool) { d.drain(d.length()); }, callbacks, settings,
                               nullptr);
  Buffer in;
  in.add(wire);
  const absl::Status status = server.dispatch(in);
  check(status.ok());
  check(callbacks.streams == 1 && callbacks.decoded.ended);
  check(callbacks.decoded.headers->method() == request.headers->method());
  check(callbacks.decoded.headers->path() == request.headers->path());
  check(callbacks.decoded.headers->authority() == request.headers->authority());
  check(callbacks.decoded.body == request.body);
  // Trailers survive, except the fields the encoder owns.
  const auto forwarded = [](const HeaderMapPtr& t) {
    std::vector<HeaderMap::Entry> out;
    if (t) {
      for (const auto& e : t->entries()) {
        if (e.first != "connection" && e.first != "keep-alive" && e.first != "proxy-connection" &&
            e.first != "transfer-encoding" && e.first != "content-length" && e.first != "host") {
          out.push_back(e);
        }
      }
    }
    return out;
  };
  check(forwarded(request.trailers) == forwarded(callbacks.decoded.trailers));
}

class FuzzServer : public ServerConnectionCallbacks {
public:
  FuzzServer(const CodecSettings& settings, uint8_t flags)
      : flags_(flags), conn_(
                           [this](Buffer& d, bool end_stream) {
                             check(!closed_);
                             d.drain(d.length());
                             closed_ = end_stream;
                           },
                           *this, settings, [](bool) {}) {}

  StreamDecoder& newStream(StreamEncoder& encoder) override {
    streams_.push_back(std::make_unique<Captured>());
    encoder_ = &encoder;
    responded_ = false;
    return *streams_.back();
  }

  void respond(uint32_t status) {
    if (encoder_ == nullptr || responded_) {
      return;
    }
    responded_ = true;
    HeaderMap h;
    h.add(":status", std::to_string(status));
    const bool with_cl = flags_ & 0x10;
    const bool trailers = flags_ & 0x20;
    if (flags_ & 0x40) {
      HeaderMap cont;
      cont.add(":status", "100");
      encoder_->encode1xxHeaders(cont);
    }
    if (with_cl) {
      h.add("content-length", "4");
    }
    encoder_->encodeHeaders(h, false);
    Buffer b;
    b.add("body");
    if (trailers) {
      encoder_->encodeData(b, false);
      HeaderMap t;
      t.add("x-t", "1");
      encoder_->encodeTrailers(t);
    } else {
      encoder_->encodeData(b, true);
    }
    encoder_ = nullptr;
  }

  void run(std::string_view input, size_t split_a, size_t split_b) {
    const size_t cuts[] = {split_a, split_b, input.size()};
    Buffer in;
    size_t pos = 0;
    for (size_t cut : cuts) {
      if (cut < pos || cut > input.size()) {
        continue;
      }
      in.add(input.substr(pos, cut - pos));
      pos = cut;
      for (int rounds = 0; rounds < 1000; ++rounds) {
        const size_t before = in.length();
        const size_t streams_before = streams_.size();
        const absl::Status status = conn_.dispatch(in);
        if (!status.ok()) {
          respond(400);
          check(closed_ || encoder_ == nullptr);
          return;
        }
        if (!streams_.empty() && streams_.back()->ended && !responded_) {
          checkReencode(*streams_.back());
          respond(200);
        }
        if (closed_ || (in.length() == before && streams_.size() == streams_before)) {
          break;
        }
      }
    }
    conn_.onRemoteClose();
  }

private:
  const uint8_t flags_;
  Http1ServerConnection conn_;
  std::vector<std::unique_ptr<Captured>> streams_;
  StreamEncoder* encoder_ = nullptr;
  bool responded_ = true;
  bool closed_ = false;
};

void runClient(const CodecSettings& settings, uint8_t flags, std::string_view input,
               size_t split) {
  Http1ClientConnection conn([](Buffer& d, bool) { d.drain(d.length()); }, settings, nullptr);
  Captured decoder;
  StreamEncoder& encoder = conn.newStream(decoder);
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "POST", "CONNECT"};
  HeaderMap h;
  h.add(":method", kMethods[flags & 3]);
  h.add(":path", "/");
  h.add(":authority", "example.com:443");
  const bool body = (flags & 3) == 2;
  encoder.encodeHeaders(h, !body);
  Buffer in;
  in.add(input.substr(0, split));
  absl::Status status = conn.dispatch(in);
  if (body) {
    Buffer b;
    b.add("request");
    encoder.encodeData(b, true);
  }
  if (status.ok()) {
    in.add(input.substr(split));
    status = conn.dispatch(in);
  }
  if (status.ok()) {
    conn.onRemoteClose();
  }
  if (conn.isReusable()) {
    check(decoder.ended);
  }
}

} // namespace
} // namespace legate::http::http1

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace legate::http::http1;
  if (size < 2) {
    return 0;
  }
  const uint8_t flags = data[0];
  const uint8_t split_seed = data[1];
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  legate::http::CodecSettings settings;
  settings.max_request_headers_kb = (flags & 0x80) ? 1 : 60;
  settings.max_headers_count = (flags & 0x80) ? 8 : 100;
  settings.underscores = static_cast<legate::http::CodecSettings::UnderscoreAction>(flags % 3);
  settings.accept_http_10 = !(flags & 0x08);
  settings.allow_absolute_url = !(flags & 0x04);
  settings.proper_case_headers = flags & 0x01;
  const size_t split_a = input.empty() ? 0 : split_seed % (input.size() + 1);
  const size_t split_b = input.empty() ? 0 : (split_a + (split_seed * 7u)) % (input.size() + 1);
  {
    FuzzServer server(settings, flags);
    server.run(input, split_a, split_b);
  }
  runClient(settings, flags >> 2, input, split_a);
  return 0;
}
