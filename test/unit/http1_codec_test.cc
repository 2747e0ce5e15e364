// Unit tests for the HTTP/1.1 codec: request/response parsing, framing,
// rejections (with their details), smuggling regressions, fragmentation
// invariance, pipelining, and exact encoded bytes on both sides.

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "http/http1/client_connection.h"
#include "http/http1/server_connection.h"

namespace legate::http::http1 {
namespace {

std::string statusDetail(const absl::Status& s) { return std::string(s.message()); }

// Records what a StreamDecoder receives, merging data chunks so that results
// can be compared across fragmentations.
class Recorder : public StreamDecoder, public StreamCallbacks {
public:
  void decode1xxHeaders(HeaderMapPtr headers) override { informational.push_back(std::move(headers)); }
  void decodeHeaders(HeaderMapPtr h, bool end_stream) override {
    EXPECT_EQ(headers, nullptr) << "headers decoded twice";
    headers = std::move(h);
    if (end_stream) ended = true;
    log += "H" + std::string(end_stream ? "!" : "") + ";";
  }
  void decodeData(Buffer& data, bool end_stream) override {
    EXPECT_FALSE(ended);
    ++data_calls;
    body += data.toString();
    data.drain(data.length());
    if (end_stream) ended = true;
  }
  void decodeTrailers(HeaderMapPtr t) override {
    EXPECT_FALSE(ended);
    trailers = std::move(t);
    ended = true;
  }
  void onResetStream(StreamResetReason reason, std::string_view details) override {
    ++resets;
    reset_details = std::string(details);
  }

  // Fragmentation-independent summary.
  std::string describe() const {
    std::string out;
    if (headers) {
      for (const auto& e : headers->entries()) out.append(e.first).append("=").append(e.second).append("\n");
    }
    out += "body=" + body + "\n";
    if (trailers) {
      for (const auto& e : trailers->entries()) out.append("T ").append(e.first).append("=").append(e.second).append("\n");
    }
    out += ended ? "ended\n" : "open\n";
    return out;
  }

  std::vector<HeaderMapPtr> informational;
  HeaderMapPtr headers;
  HeaderMapPtr trailers;
  std::string body;
  std::string log;
  int data_calls = 0;
  bool ended = false;
  int resets = 0;
  std::string reset_details;
};

// Drives a server connection; records output and streams.
class ServerHarness : public ServerConnectionCallbacks {
public:
  explicit ServerHarness(CodecSettings settings = {})
      : settings_(settings),
        conn_([this](Buffer& data, bool end_stream) {
          output += data.toString();
          data.drain(data.length());
          ++writes;
          if (end_stream) closed = true;
        }, *this, settings_, [this](bool disable) { read_disabled += disable ? 1 : -1; }) {}

  StreamDecoder& newStream(StreamEncoder& encoder) override {
    streams.push_back(std::make_unique<Recorder>());
    encoders.push_back(&encoder);
    encoder.addCallbacks(*streams.back());
    if (on_new_stream) on_new_stream(encoder);
    return *streams.back();
  }

  absl::Status feed(std::string_view bytes) {
    input.add(bytes);
    return conn_.dispatch(input);
  }
  absl::Status feedBytewise(std::string_view bytes) {
    for (char c : bytes) {
      input.add(&c, 1);
      absl::Status s = conn_.dispatch(input);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  void respond(std::string_view status, std::string_view body = "",
               std::vector<std::pair<std::string, std::string>> extra = {}) {
    HeaderMap h;
    h.add(":status", status);
    for (auto& [k, v] : extra) h.add(k, v);
    encoders.back()->encodeHeaders(h, body.empty());
    if (!body.empty()) {
      Buffer b;
      b.add(body);
      encoders.back()->encodeData(b, true);
    }
  }

  Recorder& last() { return *streams.back(); }

  CodecSettings settings_;
  Http1ServerConnection conn_;
  std::vector<std::unique_ptr<Recorder>> streams;
  std::vector<StreamEncoder*> encoders;
  std::function<void(StreamEncoder&)> on_new_stream;
  Buffer input;
  std::string output;
  int writes = 0;
  bool closed = false;
  int read_disabled = 0;
};

class ClientHarness {
public:
  explicit ClientHarness(CodecSettings settings = {})
      : settings_(settings),
        conn_([this](Buffer& data, bool end_stream) {
          output += data.toString();
          data.drain(data.length());
          if (end_stream) closed = true;
        }, settings_, nullptr) {}

  StreamEncoder& start(std::string_view method, std::string_view path, bool end_stream,
                       std::vector<std::pair<std::string, std::string>> extra = {}) {
    decoder = std::make_unique<Recorder>();
    StreamEncoder& e = conn_.newStream(*decoder);
    e.addCallbacks(*decoder);
    HeaderMap h;
    h.add(":method", method);
    h.add(":path", path);
    h.add(":authority", "up.example");
    h.add(":scheme", "http");
    for (auto& [k, v] : extra) h.add(k, v);
    e.encodeHeaders(h, end_stream);
    return e;
  }
  absl::Status feed(std::string_view bytes) {
    input.add(bytes);
    return conn_.dispatch(input);
  }

  CodecSettings settings_;
  Http1ClientConnection conn_;
  std::unique_ptr<Recorder> decoder;
  Buffer input;
  std::string output;
  bool closed = false;
};

// ---------------------------------------------------------------------------
// Server: parsing

TEST(Http1Server, SimpleGet) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n").ok());
  ASSERT_EQ(s.streams.size(), 1u);
  Recorder& r = s.last();
  ASSERT_NE(r.headers, nullptr);
  EXPECT_EQ(r.headers->method(), "GET");
  EXPECT_EQ(r.headers->path(), "/a?b=1");
  EXPECT_EQ(r.headers->authority(), "example.com");
  EXPECT_FALSE(r.headers->has(":scheme"));
  EXPECT_FALSE(r.headers->has("host"));
  EXPECT_EQ(r.headers->get("user-agent").value_or(""), "t");
  EXPECT_EQ(r.log, "H!;");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(s.conn_.protocol(), Protocol::Http11);
  EXPECT_TRUE(s.conn_.wantsToWrite());
}

// Fields the parser accepted are marked wire-safe (the encoder skips re-checking
// them); pseudo-headers made from the request line are not fields and are not.
TEST(Http1Server, ParsedFieldsAreMarkedWireSafe) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\nX-A: 1\r\n\r\n").ok());
  Recorder& r = s.last();
  ASSERT_NE(r.headers, nullptr);
  int regular = 0;
  for (const HeaderMap::Entry& e : r.headers->entries()) {
    if (e.first[0] == ':') continue;
    ++regular;
    EXPECT_TRUE(e.wire_safe) << e.first;
  }
  EXPECT_EQ(regular, 2);
  r.headers->set("x-a", "2");
  auto safe = [&](std::string_view name) {
    for (const HeaderMap::Entry& e : r.headers->entries()) {
      if (e.first == name) return e.wire_safe;
    }
    ADD_FAILURE() << "no " << name;
    return false;
  };
  EXPECT_FALSE(safe("x-a")) << "a set() value is unchecked";
  // setWireSafe() marks legate's own values, new or replacing a parsed field...
  r.headers->setWireSafe("user-agent", "legate");
  EXPECT_TRUE(safe("user-agent"));
  r.headers->setWireSafe("x-new", "1");
  EXPECT_TRUE(safe("x-new"));
  // ...but an entry already unchecked stays so: its name may not be a token.
  r.headers->setWireSafe("x-a", "3");
  EXPECT_FALSE(safe("x-a"));
  r.headers->add("x-added", "v");
  EXPECT_FALSE(safe("x-added"));
}

// A head that outgrows the room reserved for it still comes out whole and in order.
TEST(Http1HeadWriter, BoundTooSmallSpillsIntoTheBuffer) {
  for (size_t bound : {0, 1, 7, 20, 4096}) {
    HeadWriter w(bound);
    std::string expected;
    for (int i = 0; i < 50; ++i) {
      const std::string piece = "field-" + std::to_string(i) + ": value\r\n";
      w.append(piece);
      expected += piece;
    }
    w.appendNumber(0);
    w.appendNumber(4294967295u);
    w.appendProperCase("x-proper-case");
    w.append("");
    expected += "04294967295X-Proper-Case";
    EXPECT_EQ(w.finish().toString(), expected) << bound;
  }
}

TEST(Http1Server, UpgradeRequestCarriesTheByteStreamAsBody) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
                     "Upgrade: websocket\r\n\r\nraw\x01"
                     "bytes")
                  .ok());
  Recorder& r = s.last();
  ASSERT_NE(r.headers, nullptr);
  EXPECT_EQ(r.headers->get("upgrade").value_or(""), "websocket");
  EXPECT_FALSE(r.ended); // the request lasts as long as the upgraded stream
  EXPECT_EQ(r.body, "raw\x01"
                    "bytes");
  // A 101 switches the connection: no framing, Connection: upgrade, and what
  // follows is written raw.
  HeaderMap h;
  h.add(":status", "101");
  h.add("upgrade", "websocket");
  s.encoders.back()->encodeHeaders(h, false);
  EXPECT_NE(s.output.find("HTTP/1.1 101 Switching Protocols\r\n"), std::string::npos);
  EXPECT_NE(s.output.find("upgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(s.output.find("connection: upgrade\r\n"), std::string::npos);
  EXPECT_EQ(s.output.find("transfer-encoding"), std::string::npos);
  s.output.clear();
  Buffer b;
  b.add("pong");
  s.encoders.back()->encodeData(b, false);
  EXPECT_EQ(s.output, "pong");
  ASSERT_TRUE(s.feed("more").ok());
  EXPECT_EQ(r.body, "raw\x01"
                    "bytesmore");
}

TEST(Http1Server, UpgradeHeaderWithoutAnUpgradeIsDropped) {
  // h2c, a missing "Connection: upgrade", or a body: served as plain requests.
  for (const char* req :
       {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
        "Content-Length: 0\r\n\r\n"}) {
    ServerHarness s;
    ASSERT_TRUE(s.feed(req).ok()) << req;
    Recorder& r = s.last();
    ASSERT_NE(r.headers, nullptr) << req;
    EXPECT_FALSE(r.headers->has("upgrade")) << req;
    EXPECT_TRUE(r.ended) << req;
  }
}

TEST(Http1Client, UpgradeRequestIsSentRawAnd101SwitchesTheResponse) {
  ClientHarness c;
  StreamEncoder& e = c.start("GET", "/ws", false, {{"connection", "upgrade"}, {"upgrade", "websocket"}});
  EXPECT_NE(c.output.find("connection: upgrade\r\n"), std::string::npos);
  EXPECT_EQ(c.output.find("transfer-encoding"), std::string::npos);
  c.output.clear();
  Buffer b;
  b.add("ping");
  e.encodeData(b, false);
  EXPECT_EQ(c.output, "ping");
  ASSERT_TRUE(c.feed("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: upgrade\r\n\r\npong")
                  .ok());
  EXPECT_FALSE(c.decoder->ended);
  EXPECT_EQ(c.decoder->body, "pong");
  EXPECT_FALSE(c.conn_.isReusable());
}

TEST(Http1Server, ContentLengthBodyStreamsPerDispatch) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello").ok());
  Recorder& r = s.last();
  EXPECT_EQ(r.log, "H;");
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.data_calls, 1);
  EXPECT_FALSE(r.ended);
  ASSERT_TRUE(s.feed("world").ok());
  EXPECT_EQ(r.body, "helloworld");
  EXPECT_EQ(r.data_calls, 2);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.headers->get("content-length").value_or(""), "10");
}

TEST(Http1Server, ContentLengthZeroEndsOnHeaders) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").ok());
  EXPECT_EQ(s.last().log, "H!;");
}

TEST(Http1Server, ChunkedWithExtensionsAndTrailers) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n6 ; a=\"b\"\r\n world\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n")
                  .ok());
  Recorder& r = s.last();
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.data_calls, 1); // one decodeData per dispatch
  ASSERT_NE(r.trailers, nullptr);
  EXPECT_EQ(r.trailers->get("x-sum").value_or(""), "1");
  EXPECT_EQ(r.trailers->size(), 2u);
  EXPECT_TRUE(r.ended);
  EXPECT_FALSE(r.headers->has("transfer-encoding"));
}

TEST(Http1Server, ChunkedWithoutTrailersEndsWithData) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
                     "A\r\n0123456789\r\n0\r\n\r\n")
                  .ok());
  EXPECT_EQ(s.last().body, "0123456789");
  EXPECT_TRUE(s.last().ended);
  EXPECT_EQ(s.last().trailers, nullptr);
}

TEST(Http1Server, AbsoluteFormWinsOverHost) {
  ServerHarness s;
  ASSERT_TRUE(
      s.feed("GET http://example.com:8080/a/b?c HTTP/1.1\r\nHost: other\r\n\r\n").ok());
  Recorder& r = s.last();
  EXPECT_EQ(r.headers->authority(), "example.com:8080");
  EXPECT_EQ(r.headers->path(), "/a/b?c");
  EXPECT_EQ(r.headers->scheme(), "http");
  EXPECT_FALSE(r.headers->has("host"));
  EXPECT_EQ(r.headers->getAll(":authority").size(), 1u);
}

TEST(Http1Server, AbsoluteFormWithoutPath) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET HTTPS://example.com HTTP/1.1\r\n\r\n").ok());
  EXPECT_EQ(s.last().headers->path(), "/");
  EXPECT_EQ(s.last().headers->scheme(), "https");
  s.respond("200");
  ASSERT_TRUE(s.feed("GET http://e.com?q=1 HTTP/1.1\r\n\r\n").ok());
  EXPECT_EQ(s.last().headers->path(), "/?q=1");
}

TEST(Http1Server, AbsoluteFormRefusedWhenDisabled) {
  CodecSettings settings;
  settings.allow_absolute_url = false;
  ServerHarness s(settings);
  EXPECT_EQ(statusDetail(s.feed("GET http://e.com/ HTTP/1.1\r\nHost: e.com\r\n\r\n")),
            "http1.invalid_url");
}

TEST(Http1Server, ConnectAndOptionsForms) {
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").ok());
    EXPECT_EQ(s.last().headers->authority(), "example.com:443");
    EXPECT_FALSE(s.last().headers->has(":path"));
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    EXPECT_EQ(s.last().headers->path(), "*");
  }
  const char* bad[] = {
      "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT example.com HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET example.com:443 HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http://user@x/ HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n",
  };
  for (const char* req : bad) {
    ServerHarness s;
    EXPECT_EQ(statusDetail(s.feed(req)), "http1.invalid_url") << req;
  }
}

TEST(Http1Server, Http10KeepAliveAndClose) {
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.0\r\n\r\n").ok());
    EXPECT_EQ(s.conn_.protocol(), Protocol::Http10);
    EXPECT_EQ(s.last().headers->authority(), "");
    s.respond("200", "hi", {{"content-length", "2"}});
    EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
    EXPECT_TRUE(s.closed);
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").ok());
    s.respond("200", "hi", {{"content-length", "2"}});
    EXPECT_EQ(s.output,
              "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nhi");
    EXPECT_FALSE(s.closed);
  }
  {
    // HTTP/1.0 keep-alive client, body without Content-Length: close-delimited.
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ok());
    s.respond("200", "body");
    EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody");
    EXPECT_TRUE(s.closed);
  }
  {
    CodecSettings settings;
    settings.accept_http_10 = false;
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed("GET / HTTP/1.0\r\n\r\n")), "http1.http10_not_accepted");
  }
}

TEST(Http1Server, ConnectionCloseRequest) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").ok());
  s.respond("204");
  EXPECT_EQ(s.output, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
  EXPECT_TRUE(s.closed);
  EXPECT_TRUE(s.conn_.closed());
}

TEST(Http1Server, Expect100Continue) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                     "Content-Length: 3\r\n\r\n")
                  .ok());
  EXPECT_EQ(s.last().headers->get("expect").value_or(""), "100-continue");
  HeaderMap cont;
  cont.add(":status", "100");
  s.encoders.back()->encode1xxHeaders(cont);
  EXPECT_EQ(s.output, "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(s.feed("abc").ok());
  EXPECT_EQ(s.last().body, "abc");
  EXPECT_TRUE(s.last().ended);
}

TEST(Http1Server, LeadingEmptyLinesIgnored) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  EXPECT_TRUE(s.last().ended);
}

TEST(Http1Server, ContentLengthRepeatsCollapse) {
  for (const char* cl : {"Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5, 5\r\n",
                         "Content-Length: 5,5\r\ncontent-length: 5\r\n"}) {
    ServerHarness s;
    ASSERT_TRUE(s.feed(std::string("POST / HTTP/1.1\r\nHost: h\r\n") + cl + "\r\nhello").ok())
        << cl;
    EXPECT_EQ(s.last().headers->getAll("content-length").size(), 1u);
    EXPECT_EQ(s.last().headers->get("content-length").value_or(""), "5");
    EXPECT_EQ(s.last().body, "hello");
    EXPECT_TRUE(s.last().ended);
  }
}

TEST(Http1Server, HeaderValuesTrimmedAndObsTextAllowed) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a b \t\r\nX-B:\r\nX-C: caf\xc3\xa9\r\n\r\n")
                  .ok());
  EXPECT_EQ(s.last().headers->get("x-a").value_or("?"), "a b");
  EXPECT_EQ(s.last().headers->get("x-b").value_or("?"), "");
  EXPECT_EQ(s.last().headers->get("x-c").value_or("?"), "caf\xc3\xa9");
}

TEST(Http1Server, UnderscoreActions) {
  const std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX_Foo: 1\r\nX-Bar: 2\r\n\r\n";
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed(req).ok());
    EXPECT_TRUE(s.last().headers->has("x_foo"));
  }
  {
    CodecSettings settings;
    settings.underscores = CodecSettings::UnderscoreAction::RejectRequest;
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed(req)), "http1.unexpected_underscore");
  }
  {
    CodecSettings settings;
    settings.underscores = CodecSettings::UnderscoreAction::DropHeader;
    ServerHarness s(settings);
    ASSERT_TRUE(s.feed(req).ok());
    EXPECT_FALSE(s.last().headers->has("x_foo"));
    EXPECT_TRUE(s.last().headers->has("x-bar"));
    EXPECT_EQ(s.conn_.droppedHeadersWithUnderscores(), 1u);
  }
}

TEST(Http1Server, HeaderLimits) {
  CodecSettings settings;
  settings.max_request_headers_kb = 1;
  settings.max_headers_count = 3;
  {
    ServerHarness s(settings);
    std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(600, 'a') +
                      "\r\nX-B: " + std::string(600, 'b') + "\r\n\r\n";
    EXPECT_EQ(statusDetail(s.feed(req)), "http1.headers_too_large");
  }
  {
    ServerHarness s(settings);
    std::string req = "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(2000, 'a');
    EXPECT_EQ(statusDetail(s.feedBytewise(req)), "http1.headers_too_large");
  }
  {
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed("GET /" + std::string(1100, 'a') + " HTTP/1.1\r\n")),
              "http1.line_too_long");
  }
  {
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed("GET /" + std::string(5000, 'a'))), "http1.line_too_long");
  }
  {
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")),
              "http1.too_many_headers");
  }
  {
    ServerHarness s(settings);
    EXPECT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n").ok());
  }
  {
    // Chunk-size lines are bounded too.
    ServerHarness s(settings);
    EXPECT_EQ(statusDetail(s.feed("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                  "\r\n1;" +
                                  std::string(2000, 'x'))),
              "http1.line_too_long");
  }
}

// Every rejection, with its detail.
struct Rejection {
  const char* name;
  std::string request;
  const char* detail;
};

class Http1ServerRejection : public testing::TestWithParam<Rejection> {};

TEST_P(Http1ServerRejection, Rejected) {
  const Rejection& p = GetParam();
  {
    ServerHarness s;
    absl::Status status = s.feed(p.request);
    EXPECT_EQ(statusDetail(status), p.detail) << p.name;
    // Errors are sticky.
    EXPECT_EQ(statusDetail(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n")), p.detail);
    // The stream (if opened) can still carry the 400, and the codec closes.
    if (!s.encoders.empty()) {
      s.respond("400");
      EXPECT_TRUE(s.closed) << p.name;
      EXPECT_NE(s.output.find("connection: close"), std::string::npos);
    }
  }
  {
    ServerHarness s;
    EXPECT_EQ(statusDetail(s.feedBytewise(p.request)), p.detail) << p.name << " (bytewise)";
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, Http1ServerRejection,
    testing::Values(
        // Smuggling regressions.
        Rejection{"ClAndTe",
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n0\r\n\r\n",
                  "http1.content_length_and_chunked_not_allowed"},
        Rejection{"TeAndCl",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "
                  "4\r\n\r\n0\r\n\r\n",
                  "http1.content_length_and_chunked_not_allowed"},
        Rejection{"TeChunkedThenTeOther",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
                  "x\r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeGzipChunked",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeChunkedChunked",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeIdentity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeEmpty", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeQuoted", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
                  "http1.invalid_transfer_encoding"},
        Rejection{"TeInHttp10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                  "http1.transfer_encoding_not_allowed"},
        Rejection{"ClList", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClRepeatedDifferent",
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClNonDigit", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClNegative", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClPlus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClEmpty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClOverflow",
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"ClJustOver63Bits",
                  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
                  "http1.invalid_content_length"},
        Rejection{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n",
                  "http1.whitespace_before_colon"},
        Rejection{"TabBeforeColon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\t: 5\r\n\r\n",
                  "http1.whitespace_before_colon"},
        Rejection{"BareLfEverywhere", "GET / HTTP/1.1\nHost: h\n\n", "http1.codec_error"},
        Rejection{"BareLfInHeaders", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
                  "http1.codec_error"},
        Rejection{"BareLfInChunk",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n",
                  "http1.codec_error"},
        Rejection{"NulInValue", std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 36),
                  "http1.invalid_characters"},
        Rejection{"CrInValue", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
                  "http1.invalid_characters"},
        Rejection{"CtlInValue", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n",
                  "http1.invalid_characters"},
        Rejection{"DelInValue", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n",
                  "http1.invalid_characters"},
        Rejection{"BadNameChar", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n",
                  "http1.invalid_characters"},
        Rejection{"EmptyName", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n",
                  "http1.invalid_characters"},
        Rejection{"NoColon", "GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", "http1.codec_error"},
        Rejection{"ObsFold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "http1.obs_fold"},
        Rejection{"ObsFoldTab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
                  "http1.obs_fold"},
        Rejection{"WhitespaceAfterStartLine", "GET / HTTP/1.1\r\n Host: h\r\n\r\n",
                  "http1.obs_fold"},
        Rejection{"BadChunkSizeHex",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"EmptyChunkSize",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"NegativeChunkSize",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"HugeChunkSize",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "8000000000000000\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"ChunkSizeTrailingGarbage",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"ChunkMissingCrlf",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabcX\r\n",
                  "http1.invalid_chunk_size"},
        Rejection{"ChunkMissingLf",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\rX",
                  "http1.invalid_chunk_size"},
        Rejection{"InvalidMethod", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "http1.invalid_method"},
        Rejection{"EmptyMethod", " / HTTP/1.1\r\nHost: h\r\n\r\n", "http1.invalid_method"},
        Rejection{"DoubleSpace", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "http1.invalid_url"},
        Rejection{"CtlInTarget", "GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", "http1.invalid_url"},
        Rejection{"MissingVersion", "GET /\r\nHost: h\r\n\r\n", "http1.invalid_version"},
        Rejection{"Http2Version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "http1.invalid_version"},
        Rejection{"Http12Version", "GET / HTTP/1.2\r\nHost: h\r\n\r\n", "http1.invalid_version"},
        Rejection{"LowercaseVersion", "GET / http/1.1\r\nHost: h\r\n\r\n",
                  "http1.invalid_version"},
        Rejection{"TrailingSpaceVersion", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
                  "http1.invalid_version"},
        Rejection{"MissingHost", "GET / HTTP/1.1\r\nX: y\r\n\r\n", "http1.missing_host_header"},
        Rejection{"EmptyHost", "GET / HTTP/1.1\r\nHost: \r\n\r\n", "http1.missing_host_header"},
        Rejection{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                  "http1.invalid_host"},
        Rejection{"HostWithSlash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "http1.invalid_host"},
        Rejection{"HostWithAt", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "http1.invalid_host"},
        Rejection{"BadTrailer",
                  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\nX : y\r\n\r\n",
                  "http1.whitespace_before_colon"},
        Rejection{"BareCrStartLine", "GET / HTTP/1.1\rHost: h\r\n\r\n", "http1.invalid_version"}),
    [](const testing::TestParamInfo<Rejection>& info) { return std::string(info.param.name); });

TEST(Http1Server, SmugglingTeChunkedWithClInPipelinedSecondRequest) {
  ServerHarness s;
  const std::string first = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string second = "POST /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 3\r\n\r\n0\r\n\r\n";
  ASSERT_TRUE(s.feed(first + second).ok());
  ASSERT_EQ(s.streams.size(), 1u);
  EXPECT_EQ(s.input.length(), second.size()); // pipelined bytes left unconsumed
  s.respond("200", "ok", {{"content-length", "2"}});
  EXPECT_EQ(statusDetail(s.conn_.dispatch(s.input)),
            "http1.content_length_and_chunked_not_allowed");
  ASSERT_EQ(s.streams.size(), 2u);
  // The 400 reply closes the connection.
  s.respond("400", "", {});
  EXPECT_TRUE(s.closed);
  EXPECT_NE(s.output.find("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close"),
            std::string::npos);
}

TEST(Http1Server, GarbageAfterMessageIsNextRequest) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nokXX\x01 / HTTP/1.1\r\n").ok());
  EXPECT_EQ(s.last().body, "ok");
  s.respond("200", "");
  EXPECT_EQ(statusDetail(s.conn_.dispatch(s.input)), "http1.invalid_method");
}

// ---------------------------------------------------------------------------
// Fragmentation invariance and pipelining

const std::vector<std::string>& validRequests() {
  static const std::vector<std::string> corpus = {
      "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
      "GET /a/b?c=d&e HTTP/1.1\r\nHost: h:8080\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
      "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
      "POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1\r\nz\r\n0\r\nX-Checksum: 42\r\nX-Other: a b\r\n\r\n",
      "GET http://example.org:81/abs?x HTTP/1.1\r\nHost: ignored\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
      "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
      "\r\nHEAD /h HTTP/1.1\r\nhOsT: mixed.case\r\nCoNtEnT-LeNgTh: 0\r\n\r\n",
      "DELETE /d HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nxyz",
  };
  return corpus;
}

TEST(Http1Server, BytewiseDispatchMatchesOneShot) {
  for (const std::string& req : validRequests()) {
    ServerHarness one;
    ASSERT_TRUE(one.feed(req).ok()) << req;
    ServerHarness bytes;
    ASSERT_TRUE(bytes.feedBytewise(req).ok()) << req;
    ASSERT_EQ(one.streams.size(), 1u);
    ASSERT_EQ(bytes.streams.size(), 1u);
    EXPECT_TRUE(one.last().ended) << req;
    EXPECT_EQ(one.last().describe(), bytes.last().describe()) << req;
    EXPECT_TRUE(one.input.empty());
    EXPECT_TRUE(bytes.input.empty());
  }
}

TEST(Http1Server, PipelinedRequestsDecodedOneAtATime) {
  ServerHarness s;
  std::string all;
  for (const std::string& req : validRequests()) all += req;
  ASSERT_TRUE(s.feed(all).ok());
  size_t expected = 1;
  while (true) {
    ASSERT_EQ(s.streams.size(), expected);
    EXPECT_TRUE(s.last().ended);
    ServerHarness single;
    ASSERT_TRUE(single.feed(validRequests()[expected - 1]).ok());
    EXPECT_EQ(s.last().describe(), single.last().describe());
    if (expected == validRequests().size()) break;
    EXPECT_FALSE(s.input.empty());
    // Nothing more is decoded until the response is done.
    ASSERT_TRUE(s.conn_.dispatch(s.input).ok());
    ASSERT_EQ(s.streams.size(), expected);
    s.respond("200", "", {{"content-length", "0"}});
    ASSERT_TRUE(s.conn_.dispatch(s.input).ok());
    ++expected;
  }
  EXPECT_TRUE(s.input.empty());
}

TEST(Http1Server, SynchronousResponseContinuesWithNextRequest) {
  ServerHarness s;
  // Respond from inside decodeHeaders (like a local reply).
  struct Responder : StreamDecoder {
    StreamEncoder* encoder;
    int* count;
    void decodeHeaders(HeaderMapPtr, bool end_stream) override {
      ++*count;
      HeaderMap h;
      h.add(":status", "404");
      encoder->encodeHeaders(h, true);
    }
    void decodeData(Buffer&, bool) override {}
    void decodeTrailers(HeaderMapPtr) override {}
  };
  struct Callbacks : ServerConnectionCallbacks {
    std::vector<std::unique_ptr<Responder>> responders;
    int count = 0;
    StreamDecoder& newStream(StreamEncoder& e) override {
      responders.push_back(std::make_unique<Responder>());
      responders.back()->encoder = &e;
      responders.back()->count = &count;
      return *responders.back();
    }
  } callbacks;
  std::string out;
  CodecSettings settings;
  Http1ServerConnection conn([&](Buffer& d, bool) { out += d.toString(); d.drain(d.length()); },
                             callbacks, settings, nullptr);
  Buffer in;
  in.add("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(conn.dispatch(in).ok());
  EXPECT_EQ(callbacks.count, 2);
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
                 "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
}

// ---------------------------------------------------------------------------
// Server: response encoding

TEST(Http1Server, ResponseContentLength) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  const int before = s.writes;
  s.respond("200", "hello", {{"content-length", "5"}, {"x-a", "b"}});
  EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello");
  EXPECT_EQ(s.writes - before, 2); // one Buffer per encode call
  EXPECT_FALSE(s.closed);
  EXPECT_FALSE(s.conn_.wantsToWrite());
}

TEST(Http1Server, ResponseChunkedWithTrailers) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  HeaderMap h;
  h.add(":status", "200");
  h.add("transfer-encoding", "chunked"); // the codec owns framing
  h.add("connection", "keep-alive");
  StreamEncoder& e = *s.encoders.back();
  e.encodeHeaders(h, false);
  Buffer b;
  b.add(std::string(26, 'x'));
  e.encodeData(b, false);
  HeaderMap t;
  t.add("grpc-status", "0");
  e.encodeTrailers(t);
  EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                      "1a\r\n" + std::string(26, 'x') + "\r\n0\r\ngrpc-status: 0\r\n\r\n");
  EXPECT_FALSE(s.closed);
}

TEST(Http1Server, ResponseChunkedEndWithData) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  s.respond("200", "abc");
  EXPECT_EQ(s.output,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
}

TEST(Http1Server, ResponseNoBodyCases) {
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("200", "ignored", {{"content-length", "7"}});
    EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n");
    EXPECT_FALSE(s.conn_.wantsToWrite());
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("200", "ignored");
    EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\n\r\n");
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("204", "", {{"content-length", "0"}});
    EXPECT_EQ(s.output, "HTTP/1.1 204 No Content\r\n\r\n");
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("304", "", {{"etag", "\"x\""}});
    EXPECT_EQ(s.output, "HTTP/1.1 304 Not Modified\r\netag: \"x\"\r\n\r\n");
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("200");
    EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  }
  {
    ServerHarness s;
    ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
    s.respond("599");
    EXPECT_EQ(s.output, "HTTP/1.1 599 \r\ncontent-length: 0\r\n\r\n");
  }
}

TEST(Http1Server, ProperCaseAndUnsafeHeadersDropped) {
  CodecSettings settings;
  settings.proper_case_headers = true;
  ServerHarness s(settings);
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  s.respond("200", "", {{"x-request-id", "1"}, {"x-bad", "a\r\nInjected: 1"}, {"x-ok", "v"}});
  EXPECT_EQ(s.output,
            "HTTP/1.1 200 OK\r\nX-Request-Id: 1\r\nX-Ok: v\r\nContent-Length: 0\r\n\r\n");
}

TEST(Http1Server, ShutdownNoticeClosesAfterResponse) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  s.conn_.shutdownNotice();
  s.respond("200");
  EXPECT_EQ(s.output, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  EXPECT_TRUE(s.closed);
}

TEST(Http1Server, EarlyResponseClosesConnection) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello").ok());
  s.respond("413");
  EXPECT_EQ(s.output,
            "HTTP/1.1 413 Content Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  EXPECT_TRUE(s.closed);
  // Further input is discarded; the finished stream sees nothing more.
  ASSERT_TRUE(s.feed("worldGET / HTTP/1.1\r\n\r\n").ok());
  EXPECT_TRUE(s.input.empty());
  EXPECT_EQ(s.last().body, "hello");
  EXPECT_EQ(s.streams.size(), 1u);
}

TEST(Http1Server, ResetStreamClosesAndNotifies) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n").ok());
  const int before = s.writes;
  s.encoders.back()->resetStream(StreamResetReason::LocalReset);
  EXPECT_EQ(s.writes - before, 1);
  EXPECT_TRUE(s.closed);
  EXPECT_EQ(s.last().resets, 1);
  EXPECT_TRUE(s.output.empty());
}

TEST(Http1Server, ReadDisableReachesConnection) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n").ok());
  s.encoders.back()->readDisable(true);
  EXPECT_EQ(s.read_disabled, 1);
  s.encoders.back()->readDisable(false);
  EXPECT_EQ(s.read_disabled, 0);
}

TEST(Http1Server, RemoteCloseMidRequestResets) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab").ok());
  s.conn_.onRemoteClose();
  EXPECT_EQ(s.last().resets, 1);
}

TEST(Http1Server, Http10ClientGetsNo1xx) {
  ServerHarness s;
  ASSERT_TRUE(s.feed("POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\n").ok());
  HeaderMap cont;
  cont.add(":status", "100");
  s.encoders.back()->encode1xxHeaders(cont);
  EXPECT_EQ(s.output, "");
}

// ---------------------------------------------------------------------------
// Client

TEST(Http1Client, EncodesRequestWithoutBody) {
  ClientHarness c;
  c.start("GET", "/x?y", true, {{"user-agent", "t"}, {"host", "dropped"}});
  EXPECT_EQ(c.output, "GET /x?y HTTP/1.1\r\nhost: up.example\r\nuser-agent: t\r\n\r\n");
  EXPECT_TRUE(c.conn_.wantsToWrite());
}

TEST(Http1Client, EncodesChunkedAndContentLengthBodies) {
  {
    ClientHarness c;
    StreamEncoder& e = c.start("POST", "/p", false);
    Buffer b;
    b.add("abc");
    e.encodeData(b, false);
    HeaderMap t;
    t.add("x-t", "1");
    e.encodeTrailers(t);
    EXPECT_EQ(c.output, "POST /p HTTP/1.1\r\nhost: up.example\r\ntransfer-encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");
  }
  {
    ClientHarness c;
    StreamEncoder& e = c.start("POST", "/p", false, {{"content-length", "3"}});
    Buffer b;
    b.add("abc");
    e.encodeData(b, true);
    EXPECT_EQ(c.output, "POST /p HTTP/1.1\r\nhost: up.example\r\ncontent-length: 3\r\n\r\nabc");
  }
}

TEST(Http1Client, RefusesUnsafeRequestLine) {
  ClientHarness c;
  c.start("GET", "/a b", true);
  EXPECT_EQ(c.decoder->resets, 1);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.output, "");
}

TEST(Http1Client, DecodesContentLengthResponseAndReuses) {
  ClientHarness c;
  c.start("GET", "/", true);
  ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhel").ok());
  EXPECT_EQ(c.decoder->headers->status(), 200u);
  EXPECT_FALSE(c.decoder->ended);
  EXPECT_FALSE(c.conn_.isReusable());
  ASSERT_TRUE(c.feed("lo").ok());
  EXPECT_EQ(c.decoder->body, "hello");
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.isReusable());
  EXPECT_FALSE(c.conn_.wantsToWrite());
  // A second request on the same connection.
  c.output.clear();
  c.start("GET", "/2", true);
  ASSERT_TRUE(c.feed("HTTP/1.1 204 No Content\r\n\r\n").ok());
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.isReusable());
}

TEST(Http1Client, DecodesChunkedWithTrailersBytewise) {
  const std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "4\r\nwiki\r\n5;e\r\npedia\r\n0\r\nX-T: 1\r\n\r\n";
  ClientHarness c;
  c.start("GET", "/", true);
  for (char ch : resp) ASSERT_TRUE(c.feed(std::string(1, ch)).ok());
  EXPECT_EQ(c.decoder->body, "wikipedia");
  ASSERT_NE(c.decoder->trailers, nullptr);
  EXPECT_EQ(c.decoder->trailers->get("x-t").value_or(""), "1");
  EXPECT_TRUE(c.conn_.isReusable());
}

TEST(Http1Client, CloseDelimitedResponse) {
  ClientHarness c;
  c.start("GET", "/", true);
  ASSERT_TRUE(c.feed("HTTP/1.0 200 OK\r\n\r\nsome").ok());
  ASSERT_TRUE(c.feed(" body").ok());
  EXPECT_FALSE(c.decoder->ended);
  c.conn_.onRemoteClose();
  EXPECT_EQ(c.decoder->body, "some body");
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_FALSE(c.conn_.isReusable());
}

TEST(Http1Client, Http10KeepAliveResponse) {
  ClientHarness c;
  c.start("GET", "/", true);
  ASSERT_TRUE(c.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx").ok());
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.isReusable());
}

TEST(Http1Client, ConnectionCloseNotReusable) {
  {
    ClientHarness c;
    c.start("GET", "/", true);
    ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").ok());
    EXPECT_TRUE(c.decoder->ended);
    EXPECT_FALSE(c.conn_.isReusable());
  }
  {
    ClientHarness c;
    c.start("GET", "/", true, {{"connection", "close"}});
    EXPECT_NE(c.output.find("connection: close\r\n"), std::string::npos);
    ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").ok());
    EXPECT_FALSE(c.conn_.isReusable());
  }
}

TEST(Http1Client, NoBodyResponses) {
  {
    ClientHarness c;
    c.start("HEAD", "/", true);
    ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n").ok());
    EXPECT_EQ(c.decoder->log, "H!;");
    EXPECT_TRUE(c.conn_.isReusable());
  }
  {
    ClientHarness c;
    c.start("GET", "/", true);
    ASSERT_TRUE(c.feed("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n").ok());
    EXPECT_EQ(c.decoder->log, "H!;");
  }
  {
    ClientHarness c;
    c.start("GET", "/", true);
    ASSERT_TRUE(c.feed("HTTP/1.1 204 No Content\r\n\r\n").ok());
    EXPECT_EQ(c.decoder->log, "H!;");
  }
}

TEST(Http1Client, ContinueThenFinalAndOther1xxSkipped) {
  ClientHarness c;
  StreamEncoder& e = c.start("POST", "/", false,
                             {{"expect", "100-continue"}, {"content-length", "2"}});
  ASSERT_TRUE(c.feed("HTTP/1.1 100 Continue\r\n\r\n").ok());
  ASSERT_EQ(c.decoder->informational.size(), 1u);
  EXPECT_EQ(c.decoder->informational[0]->status(), 100u);
  EXPECT_EQ(c.decoder->headers, nullptr);
  Buffer b;
  b.add("ok");
  e.encodeData(b, true);
  ASSERT_TRUE(c.feed("HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 201 Created\r\n"
                     "Content-Length: 0\r\n\r\n")
                  .ok());
  EXPECT_EQ(c.decoder->informational.size(), 1u);
  EXPECT_EQ(c.decoder->headers->status(), 201u);
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.isReusable());
}

TEST(Http1Client, EarlyResponse) {
  ClientHarness c;
  StreamEncoder& e = c.start("POST", "/", false, {{"content-length", "10"}});
  ASSERT_TRUE(c.feed("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n").ok());
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.wantsToWrite()); // the request is still being sent
  Buffer b;
  b.add("0123456789");
  e.encodeData(b, true);
  EXPECT_FALSE(c.conn_.wantsToWrite());
  EXPECT_FALSE(c.conn_.isReusable());
}

TEST(Http1Client, ResponseRejections) {
  struct Case {
    std::string response;
    const char* detail;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n", "http1.invalid_characters"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
       "http1.content_length_and_chunked_not_allowed"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "http1.invalid_content_length"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
       "http1.invalid_transfer_encoding"},
      {"HTTP/1.1 200 OK\r\nX : y\r\n\r\n", "http1.whitespace_before_colon"},
      {"HTTP/1.1 200 OK\nX: y\n\n", "http1.codec_error"},
      {"HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", "http1.obs_fold"},
      {"HTTP/2.0 200 OK\r\n\r\n", "http1.invalid_version"},
      {"HTTP/1.1 2000 OK\r\n\r\n", "http1.invalid_status"},
      {"HTTP/1.1 099 OK\r\n\r\n", "http1.invalid_status"},
      {"HTTP/1.1 200 O\x01K\r\n\r\n", "http1.invalid_status"},
      {"ICY 200 OK\r\n\r\n", "http1.invalid_status"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", "http1.invalid_chunk_size"},
  };
  for (const Case& tc : cases) {
    ClientHarness c;
    c.start("GET", "/", true);
    EXPECT_EQ(statusDetail(c.feed(tc.response)), tc.detail) << tc.response;
    EXPECT_FALSE(c.conn_.isReusable());
  }
}

TEST(Http1Client, UnsolicitedBytesAreAnError) {
  ClientHarness c;
  EXPECT_EQ(statusDetail(c.feed("HTTP/1.1 200 OK\r\n\r\n")), "http1.codec_error");
  ClientHarness d;
  d.start("GET", "/", true);
  EXPECT_EQ(statusDetail(d.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nX")),
            "http1.codec_error");
  EXPECT_TRUE(d.decoder->ended);
  EXPECT_FALSE(d.conn_.isReusable());
}

TEST(Http1Client, PrematureCloseResetsStream) {
  ClientHarness c;
  c.start("GET", "/", true);
  ASSERT_TRUE(c.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab").ok());
  c.conn_.onRemoteClose();
  EXPECT_EQ(c.decoder->resets, 1);
  EXPECT_EQ(c.decoder->reset_details, "http1.premature_close");
  EXPECT_FALSE(c.conn_.isReusable());
}

TEST(Http1Client, ResetStreamClosesConnection) {
  ClientHarness c;
  StreamEncoder& e = c.start("POST", "/", false);
  e.resetStream(StreamResetReason::LocalReset);
  EXPECT_TRUE(c.closed);
  EXPECT_EQ(c.decoder->resets, 1);
  EXPECT_FALSE(c.conn_.isReusable());
}

TEST(Http1Client, ReuseFromInsideFinalCallback) {
  // The pool may start the next request from the final decode callback.
  struct Reuser : StreamDecoder {
    Http1ClientConnection* conn;
    Recorder next;
    bool reused = false;
    void decodeHeaders(HeaderMapPtr, bool end_stream) override {
      if (end_stream && conn->isReusable()) {
        StreamEncoder& e = conn->newStream(next);
        HeaderMap h;
        h.add(":method", "GET");
        h.add(":path", "/2");
        h.add(":authority", "a");
        e.encodeHeaders(h, true);
        reused = true;
      }
    }
    void decodeData(Buffer&, bool) override {}
    void decodeTrailers(HeaderMapPtr) override {}
  };
  std::string out;
  CodecSettings settings;
  Http1ClientConnection conn([&](Buffer& d, bool) { out += d.toString(); d.drain(d.length()); },
                             settings, nullptr);
  Reuser reuser;
  reuser.conn = &conn;
  StreamEncoder& e = conn.newStream(reuser);
  HeaderMap h;
  h.add(":method", "GET");
  h.add(":path", "/1");
  h.add(":authority", "a");
  e.encodeHeaders(h, true);
  Buffer in;
  in.add("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(conn.dispatch(in).ok());
  EXPECT_TRUE(reuser.reused);
  in.add("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  ASSERT_TRUE(conn.dispatch(in).ok());
  EXPECT_EQ(reuser.next.body, "hi");
  EXPECT_TRUE(reuser.next.ended);
}

// Round trip: a request encoded by the client decodes to the same headers and
// body on the server; the server's response decodes on the client.
TEST(Http1Codec, RoundTrip) {
  ClientHarness c;
  StreamEncoder& e = c.start("POST", "/rt", false, {{"x-a", "1"}});
  Buffer b;
  b.add("payload");
  e.encodeData(b, false);
  HeaderMap t;
  t.add("x-trailer", "v");
  e.encodeTrailers(t);
  ServerHarness s;
  ASSERT_TRUE(s.feed(c.output).ok());
  EXPECT_EQ(s.last().headers->path(), "/rt");
  EXPECT_EQ(s.last().headers->authority(), "up.example");
  EXPECT_EQ(s.last().body, "payload");
  EXPECT_EQ(s.last().trailers->get("x-trailer").value_or(""), "v");
  s.respond("200", "response body");
  ASSERT_TRUE(c.feed(s.output).ok());
  EXPECT_EQ(c.decoder->body, "response body");
  EXPECT_TRUE(c.decoder->ended);
  EXPECT_TRUE(c.conn_.isReusable());
}

// The parser takes a slice's whole lines in place and drains them together.
// A callback at the end of a head may change the buffer under it (here it drops
// what is left, as a closing connection would): the parser must read the
// buffer afresh after it, not walk on through the old view.
TEST(Http1Parser, HeadCallbackMayEmptyTheBufferItIsParsing) {
  struct Callbacks : ParserCallbacks {
    Buffer* data = nullptr;
    std::vector<uint32_t> statuses;
    bool drop_rest = true;
    void onMessageBegin() override {}
    absl::Status onHeadersComplete(MessageHead& head) override {
      statuses.push_back(head.status);
      head.informational = head.status < 200; // as the client connection marks it
      if (drop_rest) data->drain(data->length());
      return absl::OkStatus();
    }
    void onBody(Buffer&, bool) override {}
    void onTrailers(HeaderMapPtr) override {}
    void onMessageComplete() override {}
  };
  const std::string wire = "HTTP/1.1 100 Continue\r\nx-a: 1\r\n\r\n"
                           "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
  CodecSettings settings;
  Callbacks cb;
  Parser parser(Parser::Mode::Response, settings, cb);
  Buffer data;
  data.add(wire);
  cb.data = &data;
  ASSERT_TRUE(parser.execute(data).ok());
  EXPECT_EQ(cb.statuses, std::vector<uint32_t>{100});
  EXPECT_TRUE(data.empty());
  // Left alone, the same bytes in one slice give both heads and leave nothing.
  Callbacks keep;
  keep.drop_rest = false;
  Parser whole(Parser::Mode::Response, settings, keep);
  Buffer again;
  again.add(wire);
  keep.data = &again;
  ASSERT_TRUE(whole.execute(again).ok());
  EXPECT_EQ(keep.statuses, (std::vector<uint32_t>{100, 200}));
  EXPECT_TRUE(again.empty());
}

} // namespace
} // namespace legate::http::http1
