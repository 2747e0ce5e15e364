#pragma once

// The HTTP filter API: a few hooks per direction and one small callbacks
// object per filter.
//
// Decoder filters see the request in configuration order (the router last);
// encoder filters see the response in reverse order. Each hook returns
// Continue (pass on to the next filter) or a Stop status; a stopped filter
// resumes the chain later with continueDecoding()/continueEncoding() (after an
// async call, or once it has buffered what it needs).
//
// Thread and lifetime: filters are created per stream on the connection's
// worker and destroyed with the stream; onDestroy() is called first, after
// which no callback may be used.

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "accesslog/stream_info.h"
#include "common/buffer.h"
#include "http/codec.h"
#include "http/header_map.h"

namespace legate::event {
class Dispatcher;
}
namespace legate::network {
class Connection;
}
namespace legate::router {
class Route;
}
namespace legate::tracing {
class Span;
}

namespace legate::http {

struct TracingConfig;

enum class FilterHeadersStatus { Continue, StopIteration };
enum class FilterDataStatus {
  Continue,
  // Stop; the connection manager buffers this and later data for the filter
  // (bounded by the buffer limit: over it, 413 on requests / 500 on responses).
  StopIterationAndBuffer,
  // Stop; the filter took (or dropped) the data itself.
  StopIterationNoBuffer,
};
enum class FilterTrailersStatus { Continue, StopIteration };

// Told when the downstream connection backs up (a slow client), so whoever
// feeds the response (the router's upstream) can stop reading.
class DownstreamWatermarkCallbacks {
public:
  virtual ~DownstreamWatermarkCallbacks() = default;
  virtual void onAboveWriteBufferHighWatermark() = 0;
  virtual void onBelowWriteBufferLowWatermark() = 0;
};

class StreamFilterCallbacks {
public:
  virtual ~StreamFilterCallbacks() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual const network::Connection& connection() = 0;
  // The route for the current request headers (looked up once, cached).
  virtual const router::Route* route() = 0;
  virtual void clearRouteCache() = 0;
  virtual accesslog::StreamInfo& streamInfo() = 0;
  virtual uint64_t streamId() const = 0;
  // Ends the stream abruptly (downstream connection reset for HTTP/1).
  virtual void resetStream() = 0;
  virtual uint32_t bufferLimit() const = 0;
  // The stream's trace span (null when the request is not traced or tracing
  // is not configured) and the connection manager's tracing settings (null
  // when not configured).
  virtual tracing::Span* activeSpan() { return nullptr; }
  virtual const TracingConfig* tracingConfig() { return nullptr; }
};

class DecoderFilterCallbacks : public virtual StreamFilterCallbacks {
public:
  virtual void continueDecoding() = 0;
  // What StopIterationAndBuffer collected so far (may be null).
  virtual const Buffer* decodingBuffer() = 0;
  // Replies from here: the response goes through the encoder filters (those
  // before this one in decode order) and the request stops.
  virtual void sendLocalReply(uint32_t code, std::string_view body,
                              const std::function<void(HeaderMap&)>& modify_headers,
                              std::string_view details) = 0;
  // The response, from the filter that makes it (the router).
  virtual void encode1xxHeaders(HeaderMapPtr headers) = 0;
  virtual void encodeHeaders(HeaderMapPtr headers, bool end_stream, std::string_view details) = 0;
  virtual void encodeData(Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(HeaderMapPtr trailers) = 0;
  // Flow control towards the downstream: the upstream backed up (stop reading
  // the client), or drained.
  virtual void onDecoderFilterAboveWriteBufferHighWatermark() = 0;
  virtual void onDecoderFilterBelowWriteBufferLowWatermark() = 0;
  virtual void addDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks& cb) = 0;
  virtual void removeDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks& cb) = 0;
  // The request headers (valid from decodeHeaders on).
  virtual HeaderMap* requestHeaders() = 0;
};

class EncoderFilterCallbacks : public virtual StreamFilterCallbacks {
public:
  virtual void continueEncoding() = 0;
  virtual const Buffer* encodingBuffer() = 0;
};

class StreamDecoderFilter {
public:
  virtual ~StreamDecoderFilter() = default;
  virtual void setDecoderFilterCallbacks(DecoderFilterCallbacks& callbacks) = 0;
  virtual FilterHeadersStatus decodeHeaders(HeaderMap& headers, bool end_stream) = 0;
  virtual FilterDataStatus decodeData(Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus decodeTrailers(HeaderMap& trailers) = 0;
  virtual void onDestroy() {}
};

class StreamEncoderFilter {
public:
  virtual ~StreamEncoderFilter() = default;
  virtual void setEncoderFilterCallbacks(EncoderFilterCallbacks& callbacks) = 0;
  virtual FilterHeadersStatus encodeHeaders(HeaderMap& headers, bool end_stream) = 0;
  virtual FilterDataStatus encodeData(Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus encodeTrailers(HeaderMap& trailers) = 0;
  virtual void onDestroy() {}
};

using StreamDecoderFilterSharedPtr = std::shared_ptr<StreamDecoderFilter>;
using StreamEncoderFilterSharedPtr = std::shared_ptr<StreamEncoderFilter>;

// Adds a stream's filters (created per stream by each configured factory).
class FilterChainBuilder {
public:
  virtual ~FilterChainBuilder() = default;
  virtual void addStreamDecoderFilter(StreamDecoderFilterSharedPtr filter) = 0;
  virtual void addStreamEncoderFilter(StreamEncoderFilterSharedPtr filter) = 0;
};
using HttpFilterFactoryCb = std::function<void(FilterChainBuilder&)>;

} // namespace legate::http
