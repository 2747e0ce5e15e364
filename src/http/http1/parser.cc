#include "http/http1/parser.h"

#include "common/hex.h"
#include <algorithm>
#include <cstring>
#include <limits>

#include "http/http1/chars.h"

namespace legate::http::http1 {

namespace {

absl::Status reject(std::string_view detail) {
  return absl::InvalidArgumentError(absl::string_view(detail.data(), detail.size()));
}

// Largest accepted Content-Length / chunk size: 2^63 - 1, so sizes always fit
// in a signed 64-bit offset wherever they travel next.
constexpr uint64_t kMaxBodySize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool parseDecimal(std::string_view s, uint64_t& out) {
  if (s.empty()) {
    return false;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (kMaxBodySize - d) / 10) {
      return false;
    }
    v = v * 10 + d;
  }
  out = v;
  return true;
}


} // namespace

Parser::Parser(Mode mode, const CodecSettings& settings, ParserCallbacks& callbacks)
    : mode_(mode), settings_(settings), callbacks_(callbacks),
      head_limit_(static_cast<size_t>(settings.max_request_headers_kb) * 1024) {
  resetHead();
}

void Parser::reset() {
  state_ = State::StartLine;
  begun_ = false;
  paused_ = false;
  line_buf_.clear();
  body_.drain(body_.length());
  remaining_ = 0;
  resetHead();
}

void Parser::resetHead() {
  head_bytes_ = 0;
  field_count_ = 0;
  head_ = MessageHead(); // its header map is made when a start line arrives
  trailers_.reset();
  authority_from_target_ = false;
  seen_host_ = false;
  is_connect_ = false;
  te_codings_ = 0;
  te_all_chunked_ = true;
  has_te_ = false;
  conn_close_ = false;
  conn_keep_alive_ = false;
  conn_upgrade_ = false;
  seen_upgrade_ = false;
}

bool Parser::isLineState() const {
  return state_ == State::StartLine || state_ == State::Headers || state_ == State::ChunkSize ||
         state_ == State::Trailers;
}

absl::Status Parser::lineLimitError() const {
  switch (state_) {
  case State::Headers:
  case State::Trailers:
    return reject(details::kHeadersTooLarge);
  default:
    return reject(details::kLineTooLong);
  }
}

// The whole lines at the start of front, while the parser is in a line state:
// used counts the bytes they spanned, which the caller drains in one go rather
// than line by line. A line without its LF yet is kept in line_buf_ (bounded)
// and counted as used. An empty line ends a head or trailers and calls the
// callbacks, which may change the buffer front points into: the walk stops
// after it, and the caller reads the buffer afresh.
absl::Status Parser::takeLines(std::string_view front, size_t& used) {
  while (used < front.size() && isLineState() && !paused_) {
    const char* p = front.data() + used;
    const size_t n = front.size() - used;
    if (state_ == State::StartLine && !begun_ && line_buf_.empty() && p[0] != '\r' &&
        p[0] != '\n') {
      begun_ = true;
      callbacks_.onMessageBegin();
    }
    const bool counts_to_head = state_ != State::ChunkSize;
    const auto* lf = static_cast<const char*>(std::memchr(p, '\n', n));
    const size_t take = lf == nullptr ? n : static_cast<size_t>(lf - p);
    // Bound the line (and, for heads, the whole section) before buffering.
    const size_t line_len = line_buf_.size() + take;
    if (line_len > head_limit_ || (counts_to_head && head_bytes_ + line_len > head_limit_)) {
      return lineLimitError();
    }
    if (lf == nullptr) {
      line_buf_.append(p, n);
      used += n;
      return absl::OkStatus();
    }
    std::string_view line;
    if (line_buf_.empty()) {
      line = std::string_view(p, take);
    } else {
      line_buf_.append(p, take);
      line = line_buf_;
    }
    if (line.empty() || line.back() != '\r') {
      return reject(details::kBareLf); // RFC 9112 §2.2: we require CRLF
    }
    line.remove_suffix(1);
    if (counts_to_head) {
      head_bytes_ += line.size() + 2;
    }
    const bool ends_section = line.empty();
    // The line view may point into the buffer: processed before it is drained.
    absl::Status status = processLine(line);
    used += take + 1;
    line_buf_.clear();
    if (!status.ok() || ends_section) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::execute(Buffer& data) {
  while (!data.empty() && !paused_ && state_ != State::Complete) {
    if (isLineState()) {
      const std::string_view front = data.frontView();
      if (front.empty()) {
        break;
      }
      size_t used = 0;
      const absl::Status status = takeLines(front, used);
      data.drain(used);
      if (!status.ok()) {
        return status;
      }
      continue;
    }

    switch (state_) {
    case State::Body:
    case State::ChunkData: {
      const uint64_t n = std::min<uint64_t>(remaining_, data.length());
      body_.move(data, static_cast<size_t>(n));
      remaining_ -= n;
      if (remaining_ == 0) {
        if (state_ == State::Body) {
          flushBody(true);
          completeMessage();
        } else {
          state_ = State::ChunkDataCr;
        }
      }
      break;
    }
    case State::ChunkDataCr:
    case State::ChunkDataLf: {
      char c = 0;
      data.copyOut(&c, 1);
      if (c != (state_ == State::ChunkDataCr ? '\r' : '\n')) {
        return reject(details::kInvalidChunkSize);
      }
      data.drain(1);
      state_ = state_ == State::ChunkDataCr ? State::ChunkDataLf : State::ChunkSize;
      break;
    }
    case State::CloseDelimited:
      body_.move(data);
      break;
    default:
      break;
    }
  }
  // Deliver what arrived in this call: one decodeData per dispatch.
  if (!paused_ && !body_.empty() && state_ != State::Complete) {
    flushBody(false);
  }
  return absl::OkStatus();
}

bool Parser::onEof() {
  if (state_ != State::CloseDelimited) {
    return false;
  }
  flushBody(true);
  completeMessage();
  return true;
}

void Parser::flushBody(bool end_stream) {
  callbacks_.onBody(body_, end_stream);
  body_.drain(body_.length());
}

void Parser::completeMessage() {
  state_ = State::Complete;
  callbacks_.onMessageComplete();
}

absl::Status Parser::processLine(std::string_view line) {
  switch (state_) {
  case State::StartLine:
    if (line.empty() && !begun_) {
      return absl::OkStatus(); // RFC 9112 §2.2: ignore empty lines before a request/status line
    }
    state_ = State::Headers;
    head_.headers = std::make_unique<HeaderMap>();
    return mode_ == Mode::Request ? parseRequestLine(line) : parseStatusLine(line);
  case State::Headers:
    if (line.empty()) {
      return headersComplete();
    }
    return parseField(line, false);
  case State::ChunkSize:
    return parseChunkSize(line);
  case State::Trailers:
    if (line.empty()) {
      return trailersComplete();
    }
    return parseField(line, true);
  default:
    return reject(details::kCodecError);
  }
}

absl::Status Parser::parseRequestLine(std::string_view line) {
  // request-line = method SP request-target SP HTTP-version, single spaces.
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return reject(isToken(line) ? details::kInvalidUrl : details::kInvalidMethod);
  }
  const std::string_view method = line.substr(0, sp1);
  if (!isToken(method)) {
    return reject(details::kInvalidMethod);
  }
  const std::string_view rest = line.substr(sp1 + 1);
  const size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos) {
    return reject(isTarget(rest) ? details::kInvalidVersion : details::kInvalidUrl);
  }
  const std::string_view target = rest.substr(0, sp2);
  const std::string_view version = rest.substr(sp2 + 1);
  if (target.empty() || !isTarget(target)) {
    return reject(details::kInvalidUrl);
  }
  if (version == "HTTP/1.1") {
    head_.version = Protocol::Http11;
  } else if (version == "HTTP/1.0") {
    if (!settings_.accept_http_10) {
      // Envoy's default: HTTP/1.0 only with accept_http_10 (426 otherwise).
      return reject(details::kHttp10NotAccepted);
    }
    head_.version = Protocol::Http10;
  } else {
    return reject(details::kInvalidVersion);
  }
  head_.headers->add(headers::kMethod, method);
  return parseTarget(method, target);
}

absl::Status Parser::parseTarget(std::string_view method, std::string_view target) {
  if (target.empty() || !isTarget(target)) {
    return reject(details::kInvalidUrl);
  }
  is_connect_ = method == "CONNECT";
  if (is_connect_) {
    // authority-form only: uri-host ":" port (RFC 9112 §3.2.3).
    const size_t colon = target.rfind(':');
    uint64_t port = 0;
    if (!isAuthority(target) || colon == std::string_view::npos || colon == 0 ||
        !parseDecimal(target.substr(colon + 1), port) || port > 65535) {
      return reject(details::kInvalidUrl);
    }
    head_.headers->add(headers::kAuthority, target);
    authority_from_target_ = true;
    return absl::OkStatus();
  }
  if (target[0] == '/') {
    head_.headers->add(headers::kPath, target); // origin-form
    return absl::OkStatus();
  }
  if (target == "*") {
    if (method != "OPTIONS") {
      return reject(details::kInvalidUrl);
    }
    head_.headers->add(headers::kPath, target); // asterisk-form
    return absl::OkStatus();
  }
  // absolute-form: scheme "://" authority [ path-abempty ] [ "?" query ].
  if (!settings_.allow_absolute_url) {
    return reject(details::kInvalidUrl);
  }
  const size_t sep = target.find("://");
  if (sep == std::string_view::npos) {
    return reject(details::kInvalidUrl);
  }
  const std::string_view scheme = target.substr(0, sep);
  const bool http = equalsLower(scheme, "http");
  if (!http && !equalsLower(scheme, "https")) {
    return reject(details::kInvalidUrl);
  }
  std::string_view after = target.substr(sep + 3);
  const size_t path_start = after.find_first_of("/?");
  const std::string_view authority = after.substr(0, path_start);
  // userinfo ('@') is refused: RFC 9110 §4.2.4 deprecates it in http(s) URIs.
  if (!isAuthority(authority)) {
    return reject(details::kInvalidUrl);
  }
  head_.headers->add(headers::kScheme, http ? "http" : "https");
  head_.headers->add(headers::kAuthority, authority);
  if (path_start == std::string_view::npos) {
    head_.headers->add(headers::kPath, "/");
  } else if (after[path_start] == '?') {
    std::string path = "/";
    path.append(after.substr(path_start));
    head_.headers->add(headers::kPath, path);
  } else {
    head_.headers->add(headers::kPath, after.substr(path_start));
  }
  authority_from_target_ = true;
  return absl::OkStatus();
}

absl::Status Parser::parseStatusLine(std::string_view line) {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]; a missing
  // final SP (common in the wild) is tolerated.
  if (line.size() < 12 || line[8] != ' ') {
    return reject(line.substr(0, 5) == "HTTP/" && line.size() >= 12 ? details::kInvalidVersion
                                                                       : details::kInvalidStatus);
  }
  const std::string_view version = line.substr(0, 8);
  if (version == "HTTP/1.1") {
    head_.version = Protocol::Http11;
  } else if (version == "HTTP/1.0") {
    head_.version = Protocol::Http10;
  } else {
    return reject(details::kInvalidVersion);
  }
  const std::string_view code = line.substr(9, 3);
  uint64_t status = 0;
  if (!parseDecimal(code, status) || status < 100 || status > 599) {
    return reject(details::kInvalidStatus);
  }
  if (line.size() > 12) {
    if (line[12] != ' ' || !isFieldValue(line.substr(13))) {
      return reject(details::kInvalidStatus);
    }
  }
  head_.status = static_cast<uint32_t>(status);
  head_.headers->add(headers::kStatus, code);
  return absl::OkStatus();
}

absl::Status Parser::parseField(std::string_view line, bool trailer) {
  // field-line = field-name ":" OWS field-value OWS
  if (isOws(line[0])) {
    return reject(details::kObsFold); // also whitespace right after the start line
  }
  size_t i = 0;
  while (i < line.size() && isTchar(line[i])) {
    ++i;
  }
  if (i == line.size()) {
    return reject(details::kCodecError); // no colon
  }
  if (line[i] != ':') {
    return reject(isOws(line[i]) ? details::kWhitespaceBeforeColon
                                 : details::kInvalidCharacters);
  }
  if (i == 0) {
    return reject(details::kInvalidCharacters);
  }
  const std::string_view name = line.substr(0, i);
  const std::string_view value = trimOws(line.substr(i + 1));
  if (!isFieldValue(value)) {
    return reject(details::kInvalidCharacters);
  }
  if (++field_count_ > settings_.max_headers_count) {
    return reject(details::kTooManyHeaders);
  }
  if (mode_ == Mode::Request && settings_.underscores != CodecSettings::UnderscoreAction::Allow &&
      name.find('_') != std::string_view::npos) {
    if (settings_.underscores == CodecSettings::UnderscoreAction::RejectRequest) {
      return reject(details::kUnexpectedUnderscore);
    }
    ++dropped_underscores_;
    return absl::OkStatus();
  }
  if (trailer) {
    if (!trailers_) {
      trailers_ = std::make_unique<HeaderMap>();
    }
    trailers_->addWireSafe(name, value);
    return absl::OkStatus();
  }

  // Framing and routing fields; dispatch on length first so ordinary fields
  // cost one comparison.
  switch (name.size()) {
  case 4:
    if (mode_ == Mode::Request && equalsLower(name, headers::kHost)) {
      // RFC 9112 §3.2: more than one Host is an error; an absolute-form
      // target's authority wins over Host, which is then dropped.
      if (seen_host_) {
        return reject(details::kInvalidHost);
      }
      seen_host_ = true;
      if (!isAuthority(value)) {
        return reject(value.empty() ? details::kMissingHost : details::kInvalidHost);
      }
      if (!authority_from_target_) {
        head_.headers->add(headers::kAuthority, value);
      }
      return absl::OkStatus();
    }
    break;
  case 10:
    if (equalsLower(name, headers::kConnection)) {
      parseConnection(value);
    }
    break;
  case 7:
    if (equalsLower(name, headers::kUpgrade)) {
      head_.has_upgrade_header = true;
      seen_upgrade_ |= !equalsLower(value, "h2c");
    }
    break;
  case 14:
    if (equalsLower(name, headers::kContentLength)) {
      std::string_view first;
      absl::Status status = parseContentLength(value, first);
      if (!status.ok()) {
        return status;
      }
      if (!first.empty()) {
        head_.headers->add(headers::kContentLength, first);
      }
      return absl::OkStatus();
    }
    break;
  case 17:
    if (equalsLower(name, headers::kTransferEncoding)) {
      // Framing is conveyed by end_stream; the field itself is not forwarded.
      return parseTransferEncoding(value);
    }
    break;
  default:
    break;
  }
  head_.headers->addWireSafe(name, value); // a token and a field-value: checked above
  return absl::OkStatus();
}

absl::Status Parser::parseContentLength(std::string_view value, std::string_view& first) {
  // Content-Length = 1*DIGIT, possibly repeated as a list or in several field
  // lines; identical repeats collapse to one (RFC 9110 §8.6), others are
  // refused. `first` is set to the value to record when this is the first one.
  bool ok = true;
  bool any = false;
  forEachListElement(value, [&](std::string_view element) {
    uint64_t v = 0;
    if (!parseDecimal(element, v) || (head_.has_content_length && v != head_.content_length)) {
      ok = false;
      return false;
    }
    if (!head_.has_content_length) {
      head_.has_content_length = true;
      head_.content_length = v;
      first = element;
    }
    any = true;
    return true;
  });
  if (!ok || !any) {
    return reject(details::kInvalidContentLength);
  }
  return absl::OkStatus();
}

absl::Status Parser::parseTransferEncoding(std::string_view value) {
  // Only exactly one coding, "chunked", is accepted (across all TE lines): a
  // proxy that forwards other codings invites request smuggling. Checked in
  // headersComplete(), once every TE line has been seen.
  has_te_ = true;
  bool valid = true;
  forEachListElement(value, [&](std::string_view element) {
    if (!isToken(element)) {
      valid = false;
      return false;
    }
    ++te_codings_;
    if (!equalsLower(element, "chunked")) {
      te_all_chunked_ = false;
    }
    return true;
  });
  if (!valid) {
    return reject(details::kInvalidTransferEncoding);
  }
  return absl::OkStatus();
}

void Parser::parseConnection(std::string_view value) {
  forEachListElement(value, [&](std::string_view element) {
    if (equalsLower(element, "close")) {
      conn_close_ = true;
    } else if (equalsLower(element, "keep-alive")) {
      conn_keep_alive_ = true;
    } else if (equalsLower(element, "upgrade")) {
      conn_upgrade_ = true;
    }
    return true;
  });
}

absl::Status Parser::headersComplete() {
  if (mode_ == Mode::Request) {
    if (head_.version == Protocol::Http11 && !seen_host_ && !authority_from_target_) {
      return reject(details::kMissingHost);
    }
  }
  if (has_te_) {
    if (head_.has_content_length) {
      return reject(details::kContentLengthAndChunked);
    }
    if (mode_ == Mode::Request && head_.version == Protocol::Http10) {
      return reject(details::kTransferEncodingNotAllowed); // RFC 9112 §6.1
    }
    if (te_codings_ != 1 || !te_all_chunked_) {
      return reject(details::kInvalidTransferEncoding);
    }
    head_.chunked = true;
  }
  head_.keep_alive = head_.version == Protocol::Http11 ? !conn_close_
                                                       : (conn_keep_alive_ && !conn_close_);
  if (head_.chunked) {
    head_.framing = BodyFraming::Chunked;
  } else if (head_.has_content_length) {
    head_.framing = head_.content_length > 0 ? BodyFraming::ContentLength : BodyFraming::None;
  } else {
    head_.framing = mode_ == Mode::Request ? BodyFraming::None : BodyFraming::CloseDelimited;
  }
  head_.upgrade = conn_upgrade_ && seen_upgrade_ && head_.version == Protocol::Http11 &&
                  (mode_ == Mode::Response || (!head_.has_content_length && !head_.chunked));
  if (mode_ == Mode::Request && head_.upgrade) {
    head_.framing = BodyFraming::CloseDelimited; // the upgraded stream, until close
  }

  absl::Status status = callbacks_.onHeadersComplete(head_);
  if (!status.ok()) {
    return status;
  }
  if (head_.informational) {
    // 1xx: another head follows on the same message.
    state_ = State::StartLine;
    begun_ = false;
    resetHead();
    return absl::OkStatus();
  }
  switch (head_.framing) {
  case BodyFraming::None:
    completeMessage();
    break;
  case BodyFraming::ContentLength:
    remaining_ = head_.content_length;
    state_ = State::Body;
    break;
  case BodyFraming::Chunked:
    state_ = State::ChunkSize;
    break;
  case BodyFraming::CloseDelimited:
    state_ = State::CloseDelimited;
    break;
  }
  return absl::OkStatus();
}

absl::Status Parser::parseChunkSize(std::string_view line) {
  // chunk-size = 1*HEXDIG, then [ chunk-ext ] which we validate but ignore.
  size_t i = 0;
  uint64_t size = 0;
  while (i < line.size()) {
    const int d = hexDigitValue(line[i]);
    if (d < 0) {
      break;
    }
    if (size > (kMaxBodySize >> 4)) {
      return reject(details::kInvalidChunkSize);
    }
    size = (size << 4) | static_cast<uint64_t>(d);
    ++i;
  }
  if (i == 0) {
    return reject(details::kInvalidChunkSize);
  }
  // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): after the
  // digits only nothing, or optional whitespace then ';' and field characters.
  std::string_view ext = line.substr(i);
  if (!ext.empty()) {
    while (!ext.empty() && isOws(ext.front())) {
      ext.remove_prefix(1);
    }
    if (ext.empty() || ext[0] != ';' || !isFieldValue(ext)) {
      return reject(details::kInvalidChunkSize);
    }
  }
  if (size == 0) {
    state_ = State::Trailers;
    head_bytes_ = 0;
    field_count_ = 0;
    return absl::OkStatus();
  }
  remaining_ = size;
  state_ = State::ChunkData;
  return absl::OkStatus();
}

absl::Status Parser::trailersComplete() {
  if (!trailers_ || trailers_->empty()) {
    flushBody(true);
  } else {
    if (!body_.empty()) {
      flushBody(false);
    }
    callbacks_.onTrailers(std::move(trailers_));
  }
  completeMessage();
  return absl::OkStatus();
}

} // namespace legate::http::http1
