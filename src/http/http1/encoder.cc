#include "http/http1/encoder.h"

#include <algorithm>

#include "http/http1/chars.h"

namespace legate::http::http1 {

std::string_view reasonPhrase(uint32_t status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 102: return "Processing";
  case 103: return "Early Hints";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 203: return "Non-Authoritative Information";
  case 204: return "No Content";
  case 205: return "Reset Content";
  case 206: return "Partial Content";
  case 300: return "Multiple Choices";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 407: return "Proxy Authentication Required";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 421: return "Misdirected Request";
  case 422: return "Unprocessable Content";
  case 425: return "Too Early";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}

HeaderFacts scanHeaders(const HeaderMap& headers) {
  HeaderFacts facts;
  for (const HeaderMap::Entry& e : headers.entries()) {
    const std::string_view name = e.first, value = e.second;
    if (name == headers::kContentLength) {
      facts.has_content_length = true;
    } else if (name == headers::kConnection) {
      forEachListElement(value, [&](std::string_view element) {
        if (equalsIgnoreCase(element, "close")) {
          facts.connection_close = true;
        } else if (equalsIgnoreCase(element, "upgrade")) {
          facts.connection_upgrade = true;
        }
        return true;
      });
    } else if (name == headers::kUpgrade) {
      facts.has_upgrade = true;
    }
  }
  return facts;
}

void StreamEncoderBase::resetEncoder() {
  framing_ = Framing::None;
  headers_encoded_ = false;
  complete_ = false;
  callbacks_.clear();
}

void HeadWriter::appendNumber(uint32_t v) {
  char digits[10];
  size_t n = 0;
  do {
    digits[sizeof(digits) - 1 - n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  append(std::string_view(digits + sizeof(digits) - n, n));
}

void HeadWriter::appendProperCase(std::string_view name) {
  char chunk[64];
  bool upper = true;
  while (!name.empty()) {
    const size_t n = std::min(name.size(), sizeof(chunk));
    for (size_t i = 0; i < n; ++i) {
      char c = name[i];
      if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - ('a' - 'A'));
      upper = c == '-';
      chunk[i] = c;
    }
    append(std::string_view(chunk, n));
    name.remove_prefix(n);
  }
}

void HeadWriter::overflow(std::string_view s) {
  if (!spilled_) {
    out_.commit(static_cast<size_t>(p_ - begin_));
    spilled_ = true;
    begin_ = p_ = end_ = nullptr;
  }
  out_.add(s);
}

Buffer& HeadWriter::finish() {
  if (!spilled_) {
    out_.commit(static_cast<size_t>(p_ - begin_));
    spilled_ = true;
    begin_ = p_ = end_ = nullptr;
  }
  return out_;
}

void StreamEncoderBase::appendField(HeadWriter& out, std::string_view name,
                                    std::string_view value) const {
  if (settings_.proper_case_headers) {
    out.appendProperCase(name);
  } else {
    out.append(name);
  }
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void StreamEncoderBase::appendHeaders(HeadWriter& out, const HeaderMap& headers,
                                      bool skip_content_length, bool skip_host) const {
  for (const HeaderMap::Entry& e : headers.entries()) {
    const std::string_view name = e.first, value = e.second;
    if (name.empty() || name[0] == ':') {
      continue;
    }
    // Hop-by-hop fields the codec manages itself.
    if (name == headers::kTransferEncoding || name == headers::kConnection ||
        name == headers::kKeepAlive || name == headers::kProxyConnection) {
      continue;
    }
    if ((skip_content_length && name == headers::kContentLength) ||
        (skip_host && name == headers::kHost)) {
      continue;
    }
    if (!e.wire_safe && (!isToken(name) || !isFieldValue(value))) {
      continue; // would corrupt or split the message
    }
    appendField(out, name, value);
  }
}

void StreamEncoderBase::finishHead(HeadWriter& head, bool end_stream) {
  head.append("\r\n");
  headers_encoded_ = true;
  if (end_stream) {
    complete_ = true;
  }
  write(head.finish(), end_stream);
}

void StreamEncoderBase::encodeData(Buffer& data, bool end_stream) {
  if (complete_ || !headers_encoded_) {
    data.drain(data.length());
    return;
  }
  Buffer out;
  switch (framing_) {
  case Framing::None:
    data.drain(data.length()); // HEAD / 204 / 304: no body on the wire
    break;
  case Framing::ContentLength:
  case Framing::CloseDelimited:
    out.move(data);
    break;
  case Framing::Chunked:
    if (!data.empty()) {
      char hex[24];
      size_t len = 0;
      size_t n = data.length();
      char digits[16];
      size_t d = 0;
      do {
        digits[d++] = "0123456789abcdef"[n & 0xf];
        n >>= 4;
      } while (n != 0);
      while (d > 0) {
        hex[len++] = digits[--d];
      }
      hex[len++] = '\r';
      hex[len++] = '\n';
      out.add(hex, len);
      out.move(data);
      out.add("\r\n");
    }
    if (end_stream) {
      out.add("0\r\n\r\n");
    }
    break;
  }
  if (end_stream) {
    complete_ = true;
  }
  if (!out.empty() || end_stream) {
    write(out, end_stream);
  }
}

void StreamEncoderBase::encodeTrailers(const HeaderMap& trailers) {
  if (complete_ || !headers_encoded_) {
    return;
  }
  complete_ = true;
  if (framing_ == Framing::Chunked) {
    // Trailers exist only in the chunked coding; otherwise they end the body.
    HeadWriter block(HeadWriter::boundFor(trailers, 3));
    block.append("0\r\n");
    appendHeaders(block, trailers, true, true);
    block.append("\r\n");
    write(block.finish(), true);
    return;
  }
  Buffer out;
  write(out, true);
}

void StreamEncoderBase::readDisable(bool disable) {
  if (read_disable_) {
    read_disable_(disable);
  }
}

void StreamEncoderBase::addCallbacks(StreamCallbacks& callbacks) {
  callbacks_.push_back(&callbacks);
}

void StreamEncoderBase::removeCallbacks(StreamCallbacks& callbacks) {
  callbacks_.erase(std::remove(callbacks_.begin(), callbacks_.end(), &callbacks),
                   callbacks_.end());
}

void StreamEncoderBase::notifyReset(StreamResetReason reason, std::string_view details) {
  // Callbacks may remove themselves while being notified: iterate a copy.
  const Callbacks callbacks = std::move(callbacks_);
  callbacks_.clear();
  for (StreamCallbacks* cb : callbacks) {
    cb->onResetStream(reason, details);
  }
}

} // namespace legate::http::http1
