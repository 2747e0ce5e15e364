#include "http/conn_manager.h"

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include <algorithm>
#include <cassert>

#include "common/logger.h"
#include "common/loop_time.h"
#include "common/random.h"
#include "http/http1/server_connection.h"
#include "http/path_utility.h"
#include "http/utility.h"
#include "network/drain.h"
#include "router/route.h"
#include "router/route_config.h"
#include "tracing/decision.h"

namespace legate::http {
namespace {

spdlog::logger& hcmLog() {
  static spdlog::logger& l = log::get("http");
  return l;
}

} // namespace

ConnectionManagerStats::ConnectionManagerStats(stats::Scope s)
    : downstream_cx_total(s.counter("downstream_cx_total")),
      downstream_cx_active(s.gauge("downstream_cx_active")),
      downstream_cx_http1_total(s.counter("downstream_cx_http1_total")),
      downstream_cx_http1_active(s.gauge("downstream_cx_http1_active")),
      downstream_cx_upgrades_total(s.counter("downstream_cx_upgrades_total")),
      downstream_cx_upgrades_active(s.gauge("downstream_cx_upgrades_active")),
      downstream_cx_destroy(s.counter("downstream_cx_destroy")),
      downstream_cx_destroy_remote(s.counter("downstream_cx_destroy_remote")),
      downstream_cx_destroy_local(s.counter("downstream_cx_destroy_local")),
      downstream_cx_destroy_active_rq(s.counter("downstream_cx_destroy_active_rq")),
      downstream_cx_protocol_error(s.counter("downstream_cx_protocol_error")),
      downstream_cx_idle_timeout(s.counter("downstream_cx_idle_timeout")),
      downstream_cx_delayed_close_timeout(s.counter("downstream_cx_delayed_close_timeout")),
      downstream_cx_max_duration_reached(s.counter("downstream_cx_max_duration_reached")),
      downstream_cx_max_requests_reached(s.counter("downstream_cx_max_requests_reached")),
      downstream_cx_drain_close(s.counter("downstream_cx_drain_close")),
      downstream_cx_rx_bytes_total(s.counter("downstream_cx_rx_bytes_total")),
      downstream_cx_rx_bytes_buffered(s.gauge("downstream_cx_rx_bytes_buffered")),
      downstream_cx_tx_bytes_total(s.counter("downstream_cx_tx_bytes_total")),
      downstream_cx_tx_bytes_buffered(s.gauge("downstream_cx_tx_bytes_buffered")),
      downstream_cx_length_ms(s.histogram("downstream_cx_length_ms")),
      downstream_rq_total(s.counter("downstream_rq_total")),
      downstream_rq_http1_total(s.counter("downstream_rq_http1_total")),
      downstream_rq_active(s.gauge("downstream_rq_active")),
      downstream_rq_completed(s.counter("downstream_rq_completed")),
      downstream_rq_1xx(s.counter("downstream_rq_1xx")),
      downstream_rq_2xx(s.counter("downstream_rq_2xx")),
      downstream_rq_3xx(s.counter("downstream_rq_3xx")),
      downstream_rq_4xx(s.counter("downstream_rq_4xx")),
      downstream_rq_5xx(s.counter("downstream_rq_5xx")),
      downstream_rq_rx_reset(s.counter("downstream_rq_rx_reset")),
      downstream_rq_tx_reset(s.counter("downstream_rq_tx_reset")),
      downstream_rq_timeout(s.counter("downstream_rq_timeout")),
      downstream_rq_idle_timeout(s.counter("downstream_rq_idle_timeout")),
      downstream_rq_header_timeout(s.counter("downstream_rq_header_timeout")),
      downstream_rq_too_large(s.counter("downstream_rq_too_large")),
      downstream_rq_redirected_with_normalized_path(
          s.counter("downstream_rq_redirected_with_normalized_path")),
      downstream_rq_response_before_rq_complete(
          s.counter("downstream_rq_response_before_rq_complete")),
      downstream_flow_control_paused_reading_total(
          s.counter("downstream_flow_control_paused_reading_total")),
      downstream_flow_control_resumed_reading_total(
          s.counter("downstream_flow_control_resumed_reading_total")),
      downstream_rq_rejected_via_ip_detection(s.counter("downstream_rq_rejected_via_ip_detection")),
      downstream_rq_time(s.histogram("downstream_rq_time")),
      no_route(s.counter("no_route")), no_cluster(s.counter("no_cluster")),
      rq_redirect(s.counter("rq_redirect")), rq_direct_response(s.counter("rq_direct_response")),
      rq_total(s.counter("rq_total")),
      rq_reset_after_downstream_response_started(
          s.counter("rq_reset_after_downstream_response_started")) {}

// ---------------------------------------------------------------------------
// ActiveStream: one request/response exchange and its filter chain.

class ConnectionManager::ActiveStream : public StreamDecoder,
                                        public StreamCallbacks,
                                        public FilterChainBuilder,
                                        public event::DeferredDeletable,
                                        public IntrusiveList<ActiveStream>::Hook {
public:
  ActiveStream(ConnectionManager& parent, StreamEncoder& encoder);
  ~ActiveStream() override;

  // StreamDecoder (from the codec)
  void decodeHeaders(HeaderMapPtr headers, bool end_stream) override;
  void decodeData(Buffer& data, bool end_stream) override;
  void decodeTrailers(HeaderMapPtr trailers) override;

  // StreamCallbacks (from the codec)
  void onResetStream(StreamResetReason reason, std::string_view details) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

  // FilterChainBuilder
  void addStreamDecoderFilter(StreamDecoderFilterSharedPtr filter) override;
  void addStreamEncoderFilter(StreamEncoderFilterSharedPtr filter) override;

  void onDownstreamAboveHigh();
  void onDownstreamBelowLow();
  // The codec rejected the request: reply (if nothing was sent yet), end.
  void sendProtocolErrorReply(uint32_t code, std::string_view details) {
    remote_complete_ = true; // nothing more will be read for this request
    sendLocalReplyImpl(code, "", nullptr, details, encoders_.size());
    if (!done_) {
      resetFromConnection("protocol_error");
    }
  }
  // The connection is going away: end the stream without a response.
  void resetFromConnection(const char* details);
  bool done() const { return done_; }

private:
  struct DecoderEntry;
  struct EncoderEntry;
  enum class Phase { Headers, Data, Trailers };

  // Request side.
  bool prepareRequest();
  // An upgrade request is allowed (upgrade_configs, per route) or answered
  // 403; a non-upgrade loses its Upgrade header. False: replied.
  bool authorizeUpgrade();
  void runDecodeHeaders(size_t start);
  void runDecodeData(size_t start, Buffer& data, bool end_stream);
  void runDecodeTrailers(size_t start);
  void continueDecodingFrom(size_t index);
  bool headersEndStream() const;

  // Response side (index counts encoder filters in encode order).
  void encodeHeadersFrom(size_t start, HeaderMapPtr headers, bool end_stream, std::string_view details);
  void runEncodeHeaders(size_t start);
  void runEncodeData(size_t start, Buffer& data, bool end_stream);
  void runEncodeTrailers(size_t start);
  void continueEncodingFrom(size_t index);
  void finalizeResponseHeaders(HeaderMap& headers);
  void writeHeaders(bool end_stream);
  void writeData(Buffer& data, bool end_stream);
  void writeTrailers();
  void sendLocalReplyImpl(uint32_t code, std::string_view body,
                          const std::function<void(HeaderMap&)>& modify, std::string_view details,
                          size_t encoder_start);
  void onEncodeComplete();
  void finish();
  // The first encoder (in encode order) a response made by decoder filter
  // `decoder_index` goes through: the encoder sides of filters configured
  // before it.
  size_t encoderStartFor(size_t decoder_index) const {
    for (size_t i = 0; i < encoders_.size(); ++i) {
      if (encoder_positions_[i] <= decoder_index) return i;
    }
    return encoders_.size();
  }
  // Tracing: the decision, the downstream span and its decorator, at the
  // request headers; the span's tags at the end.
  void startTracing();
  void finishTracing();
  const router::Route* cachedRoute() {
    if (!route_cached_ && request_headers_) {
      route_cached_ = true;
      cached_route_ = parent_.config_->route_config
                          ? parent_.config_->route_config->route(*request_headers_, random_)
                          : nullptr;
    }
    return cached_route_;
  }
  void resetStreamTimer();
  void onStreamIdleTimeout();
  void onRequestTimeout();

public:
  // The codec that served this stream, when the connection went idle with it
  // (it may still be on the call stack): destroyed with the stream, after the
  // current callback. First member, so it outlives the others.
  std::unique_ptr<ServerConnection> retired_codec_;

private:
  ConnectionManager& parent_;
  StreamEncoder& encoder_;
  const uint64_t id_;
  accesslog::StreamInfo info_;
  // Inline room for a typical chain (a filter or three and the router).
  absl::InlinedVector<std::unique_ptr<DecoderEntry>, 4> decoders_;
  std::vector<std::unique_ptr<EncoderEntry>> encoders_; // in encode order
  std::vector<size_t> encoder_positions_;               // config position of each
  absl::InlinedVector<DownstreamWatermarkCallbacks*, 1> watermark_callbacks_; // the router
  HeaderMapPtr request_headers_;
  HeaderMapPtr request_trailers_;
  HeaderMapPtr response_headers_;
  HeaderMapPtr response_trailers_;
  const router::Route* cached_route_ = nullptr;
  bool route_cached_ = false;
  bool upgrade_ = false; // an accepted upgrade request (e.g. websocket)
  tracing::SpanPtr active_span_;
  const std::string* decorated_operation_ = nullptr;
  bool decorated_propagate_ = true;
  uint64_t random_ = fastRandom();

  // Decode iteration: where it stopped and what waits behind it.
  bool decode_stopped_ = false;
  size_t decode_stop_index_ = 0;
  Phase decode_stop_phase_ = Phase::Headers;
  bool decode_stop_buffers_ = true;
  Buffer decode_buffer_;
  bool decode_trailers_pending_ = false;
  bool remote_complete_ = false;

  bool encode_stopped_ = false;
  size_t encode_stop_index_ = 0;
  Phase encode_stop_phase_ = Phase::Headers;
  bool encode_stop_buffers_ = true;
  Buffer encode_buffer_;
  bool encode_end_pending_ = false;
  bool encode_trailers_pending_ = false;
  bool response_started_ = false; // headers went to the codec
  bool local_complete_ = false;
  bool local_reply_sent_ = false;
  bool done_ = false;
  bool destroyed_filters_ = false;
  uint32_t read_disables_ = 0;

  event::InlineTimer idle_timer_; // armed for every request: no allocation
  event::TimerPtr request_timer_;
  event::TimerPtr headers_timer_;
  std::chrono::steady_clock::time_point start_ = loopNow();
};

// The callbacks a decoder filter sees; knows the filter's position.
struct ConnectionManager::ActiveStream::DecoderEntry : public DecoderFilterCallbacks {
  DecoderEntry(ActiveStream& s, StreamDecoderFilterSharedPtr f, size_t i)
      : stream(s), filter(std::move(f)), index(i) {}
  event::Dispatcher& dispatcher() override { return stream.parent_.connection_->dispatcher(); }
  const network::Connection& connection() override { return *stream.parent_.connection_; }
  const router::Route* route() override { return stream.cachedRoute(); }
  void clearRouteCache() override {
    stream.route_cached_ = false;
    stream.cached_route_ = nullptr;
  }
  accesslog::StreamInfo& streamInfo() override { return stream.info_; }
  uint64_t streamId() const override { return stream.id_; }
  void resetStream() override { stream.encoder_.resetStream(StreamResetReason::LocalReset); }
  uint32_t bufferLimit() const override { return stream.parent_.connection_->bufferLimit(); }
  void continueDecoding() override { stream.continueDecodingFrom(index); }
  const Buffer* decodingBuffer() override { return &stream.decode_buffer_; }
  void sendLocalReply(uint32_t code, std::string_view body,
                      const std::function<void(HeaderMap&)>& modify,
                      std::string_view details) override {
    // The reply goes through the encoder filters that came before this one.
    stream.sendLocalReplyImpl(code, body, modify, details, stream.encoderStartFor(index));
  }
  void encode1xxHeaders(HeaderMapPtr headers) override {
    if (stream.parent_.config_->proxy_100_continue) {
      stream.encoder_.encode1xxHeaders(*headers);
    }
  }
  void encodeHeaders(HeaderMapPtr headers, bool end_stream, std::string_view details) override {
    stream.encodeHeadersFrom(stream.encoderStartFor(index), std::move(headers), end_stream, details);
  }
  void encodeData(Buffer& data, bool end_stream) override {
    stream.runEncodeData(stream.encoderStartFor(index), data, end_stream);
  }
  void encodeTrailers(HeaderMapPtr trailers) override {
    stream.response_trailers_ = std::move(trailers);
    stream.runEncodeTrailers(stream.encoderStartFor(index));
  }
  void onDecoderFilterAboveWriteBufferHighWatermark() override {
    ++stream.read_disables_;
    stream.parent_.stats().downstream_flow_control_paused_reading_total.inc();
    stream.encoder_.readDisable(true);
  }
  void onDecoderFilterBelowWriteBufferLowWatermark() override {
    if (stream.read_disables_ > 0) {
      --stream.read_disables_;
      stream.parent_.stats().downstream_flow_control_resumed_reading_total.inc();
      stream.encoder_.readDisable(false);
    }
  }
  void addDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks& cb) override {
    stream.watermark_callbacks_.push_back(&cb);
    if (stream.parent_.above_high_watermark_) cb.onAboveWriteBufferHighWatermark();
  }
  void removeDownstreamWatermarkCallbacks(DownstreamWatermarkCallbacks& cb) override {
    auto& cbs = stream.watermark_callbacks_;
    cbs.erase(std::remove(cbs.begin(), cbs.end(), &cb), cbs.end());
  }
  HeaderMap* requestHeaders() override { return stream.request_headers_.get(); }
  tracing::Span* activeSpan() override { return stream.active_span_.get(); }
  const TracingConfig* tracingConfig() override { return stream.parent_.config_->tracing.get(); }

  ActiveStream& stream;
  StreamDecoderFilterSharedPtr filter;
  size_t index;
};

struct ConnectionManager::ActiveStream::EncoderEntry : public EncoderFilterCallbacks {
  EncoderEntry(ActiveStream& s, StreamEncoderFilterSharedPtr f, size_t i)
      : stream(s), filter(std::move(f)), index(i) {}
  event::Dispatcher& dispatcher() override { return stream.parent_.connection_->dispatcher(); }
  const network::Connection& connection() override { return *stream.parent_.connection_; }
  const router::Route* route() override { return stream.cached_route_; }
  void clearRouteCache() override {}
  accesslog::StreamInfo& streamInfo() override { return stream.info_; }
  uint64_t streamId() const override { return stream.id_; }
  void resetStream() override { stream.encoder_.resetStream(StreamResetReason::LocalReset); }
  uint32_t bufferLimit() const override { return stream.parent_.connection_->bufferLimit(); }
  void continueEncoding() override { stream.continueEncodingFrom(index); }
  const Buffer* encodingBuffer() override { return &stream.encode_buffer_; }

  ActiveStream& stream;
  StreamEncoderFilterSharedPtr filter;
  size_t index;
};

// ---------------------------------------------------------------------------

ConnectionManager::ActiveStream::ActiveStream(ConnectionManager& parent, StreamEncoder& encoder)
    : parent_(parent), encoder_(encoder), id_(fastRandom()) {
  encoder_.addCallbacks(*this);
  info_.connection_id = parent_.connection_->id();
  info_.filter_chain_name = parent_.config_->filter_chain_name;
  info_.downstream_local = parent_.connection_->localAddress();
  info_.downstream_remote = parent_.connection_->remoteAddress();
  ConnectionManagerStats& st = parent_.stats();
  st.downstream_rq_total.inc();
  st.downstream_rq_http1_total.inc();
  st.downstream_rq_active.inc();
  const auto& cfg = *parent_.config_;
  if (cfg.stream_idle_timeout.count() > 0) {
    idle_timer_.set<&ActiveStream::onStreamIdleTimeout>(
        parent_.connection_->dispatcher().timerQueue(), this);
    idle_timer_.enableTimer(cfg.stream_idle_timeout);
  }
  if (cfg.request_timeout.count() > 0) {
    request_timer_ = parent_.connection_->dispatcher().createTimer([this] { onRequestTimeout(); });
    request_timer_->enableTimer(cfg.request_timeout);
  }
  // The stream starts at the request's first byte; its headers must be
  // complete within request_headers_timeout (slowloris).
  if (cfg.request_headers_timeout.count() > 0) {
    headers_timer_ = parent_.connection_->dispatcher().createTimer([this] {
      parent_.stats().downstream_rq_header_timeout.inc();
      parent_.close_after_stream_ = true;
      remote_complete_ = true; // nothing more will be read for this request
      sendLocalReplyImpl(408, "request header timeout", nullptr, "request_header_timeout",
                         encoders_.size());
    });
    headers_timer_->enableTimer(cfg.request_headers_timeout);
  }
}

ConnectionManager::ActiveStream::~ActiveStream() {
  if (!destroyed_filters_) {
    for (auto& d : decoders_) d->filter->onDestroy();
    for (auto& e : encoders_) e->filter->onDestroy();
  }
}

void ConnectionManager::ActiveStream::addStreamDecoderFilter(StreamDecoderFilterSharedPtr filter) {
  auto entry = std::make_unique<DecoderEntry>(*this, std::move(filter), decoders_.size());
  entry->filter->setDecoderFilterCallbacks(*entry);
  decoders_.push_back(std::move(entry));
}

void ConnectionManager::ActiveStream::addStreamEncoderFilter(StreamEncoderFilterSharedPtr filter) {
  // Encode order is the reverse of configuration order.
  auto entry = std::make_unique<EncoderEntry>(*this, std::move(filter), 0);
  entry->filter->setEncoderFilterCallbacks(*entry);
  encoders_.insert(encoders_.begin(), std::move(entry));
  encoder_positions_.insert(encoder_positions_.begin(), decoders_.size());
  for (size_t i = 0; i < encoders_.size(); ++i) encoders_[i]->index = i;
}

void ConnectionManager::ActiveStream::resetStreamTimer() {
  if (idle_timer_) idle_timer_.enableTimer(parent_.config_->stream_idle_timeout);
}

bool ConnectionManager::ActiveStream::prepareRequest() {
  const ConnectionManagerConfig& cfg = *parent_.config_;
  HeaderMap& h = *request_headers_;
  info_.protocol = protocolName(encoder_.protocol());
  if (h.method() == "CONNECT") {
    sendLocalReplyImpl(403, "", nullptr, "connect_not_supported", 0);
    return false;
  }
  const std::string_view path_in = h.path();
  if (path_in.empty() || (path_in[0] != '/' && path_in != "*")) {
    sendLocalReplyImpl(400, "", nullptr, "invalid_path", 0);
    return false;
  }
  if (path_in != "*") {
    // Each step copies the path only when it changes it (most paths it does
    // not change): path_value holds the rewritten path once there is one.
    std::string path_value;
    bool rewritten = false;
    const auto current = [&]() -> std::string_view {
      return rewritten ? std::string_view(path_value) : path_in;
    };
    const auto rewrite = [&](std::string next) {
      path_value = std::move(next);
      rewritten = true;
    };
    bool redirect = false;
    if (cfg.escaped_slashes != ConnectionManagerConfig::EscapedSlashesAction::KeepUnchanged &&
        path::hasEscapedSlashes(current())) {
      if (cfg.escaped_slashes == ConnectionManagerConfig::EscapedSlashesAction::RejectRequest) {
        sendLocalReplyImpl(400, "", nullptr, "escaped_slashes_not_allowed", 0);
        return false;
      }
      redirect =
          cfg.escaped_slashes == ConnectionManagerConfig::EscapedSlashesAction::UnescapeAndRedirect;
      rewrite(path::unescapeSlashes(current()));
    }
    if (cfg.normalize_path && !path::isNormal(current())) {
      auto normalized = path::normalize(current());
      if (!normalized) {
        sendLocalReplyImpl(400, "", nullptr, "path_normalization_failed", 0);
        return false;
      }
      rewrite(std::move(*normalized));
    }
    if (cfg.merge_slashes && path::hasSlashRuns(current())) {
      rewrite(path::mergeSlashes(current()));
    }
    if (redirect) {
      // UNESCAPE_AND_REDIRECT: the client asks again for the unescaped (and
      // normalized) path, so every party on the way sees the same path.
      parent_.stats().downstream_rq_redirected_with_normalized_path.inc();
      sendLocalReplyImpl(
          307, "", [&path_value](HeaderMap& r) { r.set("location", path_value); },
          "escaped_slashes_redirected", 0);
      return false;
    }
    if (rewritten && path_value != path_in) {
      h.set(headers::kPath, path_value); // path_in is not used after this
    }
  }
  if (h.scheme().empty()) {
    h.set(headers::kScheme, "http");
  }

  // Who is the client, and is the request internal? As Envoy: with
  // use_remote_address the peer is appended to x-forwarded-for; the request is
  // internal when x-forwarded-for then holds exactly one address and that
  // address is internal (RFC 1918, loopback, unique local).
  const network::Address& remote = parent_.connection_->remoteAddress();
  if (cfg.use_remote_address) {
    if (!cfg.skip_xff_append) {
      utility::appendXff(h, remote.ip());
    }
    h.setWireSafe(headers::kXForwardedProto, "http");
  } else if (!h.has(headers::kXForwardedProto)) {
    h.setWireSafe(headers::kXForwardedProto, "http");
  }
  bool internal = false;
  if (cfg.use_remote_address && cfg.skip_xff_append) {
    internal = utility::isInternalAddress(remote);
  } else if (auto xff = h.get(headers::kXForwardedFor);
             xff && xff->find(',') == std::string_view::npos) {
    internal = utility::isInternalIp(utility::trimmed(*xff));
  }
  if (internal) {
    h.set("x-envoy-internal", "true");
  } else {
    h.remove("x-envoy-internal");
    // Only internal requests may force a trace (Envoy strips it from others).
    h.remove(tracing::headers::kXEnvoyForceTrace);
    if (cfg.use_remote_address) {
      // External requests may not steer legate with x-envoy-* headers.
      h.removePrefix("x-envoy-");
      h.set("x-envoy-external-address", remote.ip());
    }
  }
  if (cfg.generate_request_id) {
    // Only an edge request (use_remote_address, from outside) gets a fresh id
    // in place of the client's, unless preserve_external_request_id (Envoy).
    const bool edge = cfg.use_remote_address && !internal;
    const bool keep = h.has(headers::kXRequestId) && (!edge || cfg.preserve_external_request_id);
    if (!keep) {
      char id[utility::kUuidLength];
      utility::makeUuid(id);
      h.setWireSafe(headers::kXRequestId, std::string_view(id, sizeof(id)));
    }
  }
  if (!cfg.via.empty()) {
    utility::appendVia(h, cfg.via);
  }
  return true;
}

void ConnectionManager::ActiveStream::decodeHeaders(HeaderMapPtr headers, bool end_stream) {
  request_headers_ = std::move(headers);
  remote_complete_ = end_stream;
  if (end_stream) info_.last_request_rx = loopNow();
  resetStreamTimer();
  headers_timer_.reset();
  if (!prepareRequest()) {
    return;
  }
  // Expect: 100-continue is answered here unless it is to be proxied.
  if (!parent_.config_->proxy_100_continue) {
    auto expect = request_headers_->get(headers::kExpect);
    if (expect && equalsIgnoreCase(*expect, "100-continue")) {
      request_headers_->remove(headers::kExpect);
      HeaderMap cont;
      cont.set(headers::kStatus, "100");
      encoder_.encode1xxHeaders(cont);
    }
  }
  for (const auto& factory : parent_.config_->filter_factories) {
    factory(*this);
  }
  if (!authorizeUpgrade()) {
    return;
  }
  startTracing();
  if (remote_complete_ && request_timer_) request_timer_.reset();
  runDecodeHeaders(0);
}

void ConnectionManager::ActiveStream::startTracing() {
  const TracingConfig* tc = parent_.config_->tracing.get();
  if (tc == nullptr) return;
  HeaderMap& h = *request_headers_;
  // A route with its own tracing decides with its sampling (Envoy: the route
  // matched when the decision is made, before any filter runs).
  const router::Route* route = cachedRoute();
  const router::RouteTracing* route_tracing = route != nullptr ? route->tracing() : nullptr;
  const tracing::Decision decision = tracing::decide(
      h, route_tracing != nullptr ? route_tracing->sampling : tc->sampling, *tc->stats);
  info_.traced = decision.traced;
  info_.trace_service_forced = decision.reason == tracing::Reason::ServiceForced;
  if (!tc->tracer) return;
  active_span_ = tc->tracer->startSpan(h, decision, tc->egress, tc->spawn_upstream_span,
                                       info_.downstream_local, info_.start_time);
  info_.rare().trace_id = active_span_->traceIdHex();
  if (route != nullptr && route->decorator()) {
    active_span_->setOperation(route->decorator()->operation);
    decorated_operation_ = &route->decorator()->operation;
    decorated_propagate_ = route->decorator()->propagate;
  }
  if (tc->egress) {
    // The receiving service may name its server span after our decorator.
    if (decorated_operation_ && decorated_propagate_) {
      h.set(tracing::headers::kXEnvoyDecoratorOperation, *decorated_operation_);
    }
  } else if (auto op = h.get(tracing::headers::kXEnvoyDecoratorOperation)) {
    if (!op->empty()) {
      active_span_->setOperation(*op);
      decorated_operation_ = nullptr; // the caller's name wins, and is not echoed
    }
    h.remove(tracing::headers::kXEnvoyDecoratorOperation);
  }
}

void ConnectionManager::ActiveStream::finishTracing() {
  if (!active_span_) return;
  tracing::Span& span = *active_span_;
  if (span.sampled()) {
    const TracingConfig& tc = *parent_.config_->tracing;
    if (const HeaderMap* h = request_headers_.get()) {
      if (auto id = h->get(headers::kXRequestId)) span.setTag("guid:x-request-id", *id);
      std::string_view scheme = h->get(headers::kXForwardedProto).value_or(h->scheme());
      std::string_view path = h->get("x-envoy-original-path").value_or(h->path());
      if (path.size() > tc.max_path_tag_length) path = path.substr(0, tc.max_path_tag_length);
      std::string url;
      url.reserve(scheme.size() + 3 + h->authority().size() + path.size());
      url.append(scheme).append("://").append(h->authority()).append(path);
      span.setTag("http.url", url);
      span.setTag("http.method", h->method());
      span.setTag("downstream_cluster",
                  h->get("x-envoy-downstream-service-cluster").value_or("-"));
      span.setTag("user_agent", h->get(headers::kUserAgent).value_or("-"));
      if (auto client = h->get(tracing::headers::kXClientTraceId)) {
        span.setTag("guid:x-client-trace-id", *client);
      }
    }
    span.setTag("http.protocol", info_.protocol.empty() ? "-" : info_.protocol);
    span.setTag("peer.address", info_.downstream_remote.ip());
    span.setTag("request_size", std::to_string(info_.bytes_received));
    if (!info_.upstream_cluster.empty()) {
      span.setTag("upstream_cluster", info_.upstream_cluster);
      span.setTag("upstream_cluster.name", info_.upstream_cluster);
    }
    if (info_.upstream_host.port() != 0) {
      span.setTag("upstream_address", info_.upstream_host.asString());
    }
    span.setTag("http.status_code", std::to_string(info_.response_code));
    span.setTag("response_size", std::to_string(info_.bytes_sent));
    span.setTag("response_flags", accesslog::responseFlagsString(info_.response_flags));
    if (info_.response_code == 0 || info_.response_code >= 500) span.setTag("error", "true");
    // The tags of the route the request ended on join the connection manager's.
    const router::RouteTracing* rt = cached_route_ != nullptr ? cached_route_->tracing() : nullptr;
    tc.applyCustomTags(span, request_headers_.get(), rt != nullptr ? &rt->custom_tags : nullptr);
  }
  span.finish();
}

bool ConnectionManager::ActiveStream::authorizeUpgrade() {
  HeaderMap& h = *request_headers_;
  // The codec leaves Upgrade only on requests it framed as upgrades.
  auto upgrade = h.get(headers::kUpgrade);
  if (!upgrade) return true;
  const std::string type = absl::AsciiStrToLower(std::string(utility::trimmed(*upgrade)));
  // Enabled by the connection manager's upgrade_configs, unless the route
  // says otherwise (Envoy's table: the route's setting wins).
  std::optional<bool> enabled;
  if (auto it = parent_.config_->upgrades.find(type); it != parent_.config_->upgrades.end()) {
    enabled = it->second;
  }
  if (!route_cached_) {
    route_cached_ = true;
    cached_route_ = parent_.config_->route_config
                        ? parent_.config_->route_config->route(h, random_)
                        : nullptr;
  }
  if (cached_route_ && cached_route_->routeAction()) {
    if (auto r = cached_route_->routeAction()->upgradeEnabled(type)) enabled = r;
  }
  if (!enabled.value_or(false)) {
    sendLocalReplyImpl(403, "", nullptr, "upgrade_failed", 0);
    return false;
  }
  upgrade_ = true;
  h.set(headers::kConnection, "upgrade");
  parent_.stats().downstream_cx_upgrades_total.inc();
  parent_.stats().downstream_cx_upgrades_active.inc();
  return true;
}

bool ConnectionManager::ActiveStream::headersEndStream() const {
  return remote_complete_ && decode_buffer_.empty() && !decode_trailers_pending_;
}

void ConnectionManager::ActiveStream::runDecodeHeaders(size_t start) {
  for (size_t i = start; i < decoders_.size(); ++i) {
    if (local_reply_sent_ || done_) return;
    if (decoders_[i]->filter->decodeHeaders(*request_headers_, headersEndStream()) ==
        FilterHeadersStatus::StopIteration) {
      decode_stopped_ = true;
      decode_stop_index_ = i;
      decode_stop_phase_ = Phase::Headers;
      decode_stop_buffers_ = true;
      return;
    }
  }
}

void ConnectionManager::ActiveStream::decodeData(Buffer& data, bool end_stream) {
  remote_complete_ |= end_stream;
  info_.bytes_received += data.length();
  if (end_stream) info_.last_request_rx = loopNow();
  resetStreamTimer();
  if (remote_complete_ && request_timer_) request_timer_.reset();
  if (local_reply_sent_ || done_) {
    data.drain(data.length());
    if (done_ || local_complete_) {
      if (remote_complete_) onEncodeComplete();
    }
    return;
  }
  if (decode_stopped_) {
    // Envoy's semantics: the filter that stopped still sees the data (the
    // filters after it wait for continueDecoding or a Continue from here).
    const size_t idx = decode_stop_index_;
    const FilterDataStatus st = decoders_[idx]->filter->decodeData(data, end_stream);
    if (done_ || local_reply_sent_) return;
    if (st == FilterDataStatus::StopIterationNoBuffer) {
      return; // the filter took the data (or dropped it)
    }
    decode_buffer_.move(data);
    if (st == FilterDataStatus::Continue) {
      continueDecodingFrom(idx);
      return;
    }
    if (decode_buffer_.length() > parent_.connection_->bufferLimit()) {
      parent_.stats().downstream_rq_too_large.inc();
      sendLocalReplyImpl(413, "", nullptr, "request_payload_too_large", 0);
    }
    return;
  }
  runDecodeData(0, data, end_stream);
}

void ConnectionManager::ActiveStream::runDecodeData(size_t start, Buffer& data, bool end_stream) {
  for (size_t i = start; i < decoders_.size(); ++i) {
    if (local_reply_sent_ || done_) return;
    const FilterDataStatus st = decoders_[i]->filter->decodeData(data, end_stream);
    if (st == FilterDataStatus::Continue) continue;
    decode_stopped_ = true;
    decode_stop_index_ = i;
    decode_stop_phase_ = Phase::Data;
    decode_stop_buffers_ = st == FilterDataStatus::StopIterationAndBuffer;
    if (decode_stop_buffers_) {
      decode_buffer_.move(data);
      if (decode_buffer_.length() > parent_.connection_->bufferLimit()) {
        parent_.stats().downstream_rq_too_large.inc();
        sendLocalReplyImpl(413, "", nullptr, "request_payload_too_large", 0);
      }
    }
    return;
  }
}

void ConnectionManager::ActiveStream::decodeTrailers(HeaderMapPtr trailers) {
  request_trailers_ = std::move(trailers);
  remote_complete_ = true;
  info_.last_request_rx = loopNow();
  resetStreamTimer();
  if (request_timer_) request_timer_.reset();
  if (local_reply_sent_ || done_) {
    if (local_complete_) onEncodeComplete();
    return;
  }
  if (decode_stopped_) {
    // As with data: the stopped filter sees the trailers; the rest wait.
    const size_t idx = decode_stop_index_;
    decode_trailers_pending_ = true;
    if (decoders_[idx]->filter->decodeTrailers(*request_trailers_) ==
            FilterTrailersStatus::Continue &&
        !done_ && !local_reply_sent_) {
      continueDecodingFrom(idx);
    }
    return;
  }
  runDecodeTrailers(0);
}

void ConnectionManager::ActiveStream::runDecodeTrailers(size_t start) {
  for (size_t i = start; i < decoders_.size(); ++i) {
    if (local_reply_sent_ || done_) return;
    if (decoders_[i]->filter->decodeTrailers(*request_trailers_) ==
        FilterTrailersStatus::StopIteration) {
      decode_stopped_ = true;
      decode_stop_index_ = i;
      decode_stop_phase_ = Phase::Trailers;
      return;
    }
  }
}

void ConnectionManager::ActiveStream::continueDecodingFrom(size_t index) {
  if (!decode_stopped_ || decode_stop_index_ != index || done_ || local_reply_sent_) {
    return;
  }
  decode_stopped_ = false;
  const Phase phase = decode_stop_phase_;
  size_t next = index + 1;
  if (phase == Phase::Headers) {
    runDecodeHeaders(next);
    if (decode_stopped_ || done_ || local_reply_sent_) return;
  }
  if (phase != Phase::Trailers && (!decode_buffer_.empty() ||
                                   (remote_complete_ && !decode_trailers_pending_ &&
                                    phase == Phase::Data))) {
    Buffer data;
    data.move(decode_buffer_);
    runDecodeData(next, data, remote_complete_ && !decode_trailers_pending_);
    if (decode_stopped_ || done_ || local_reply_sent_) return;
  }
  if (decode_trailers_pending_) {
    decode_trailers_pending_ = false;
    runDecodeTrailers(next);
  }
}

// --- response side ---------------------------------------------------------

void ConnectionManager::ActiveStream::encodeHeadersFrom(size_t start, HeaderMapPtr headers,
                                                        bool end_stream,
                                                        std::string_view details) {
  if (response_started_ || done_) {
    return;
  }
  response_headers_ = std::move(headers);
  encode_end_pending_ = end_stream;
  if (!details.empty() && info_.response_code_details.empty()) {
    info_.response_code_details = std::string(details);
  }
  runEncodeHeaders(start);
}

void ConnectionManager::ActiveStream::runEncodeHeaders(size_t start) {
  for (size_t i = start; i < encoders_.size(); ++i) {
    if (encoders_[i]->filter->encodeHeaders(*response_headers_, encode_end_pending_) ==
        FilterHeadersStatus::StopIteration) {
      encode_stopped_ = true;
      encode_stop_index_ = i;
      encode_stop_phase_ = Phase::Headers;
      encode_stop_buffers_ = true;
      return;
    }
  }
  writeHeaders(encode_end_pending_);
}

void ConnectionManager::ActiveStream::runEncodeData(size_t start, Buffer& data, bool end_stream) {
  if (done_) {
    data.drain(data.length());
    return;
  }
  resetStreamTimer();
  if (encode_stopped_) {
    // The encoder filter that stopped still sees the data (as on the
    // decode side); the ones after it wait.
    encode_end_pending_ = end_stream;
    const size_t idx = encode_stop_index_;
    const FilterDataStatus st = encoders_[idx]->filter->encodeData(data, end_stream);
    if (done_ || st == FilterDataStatus::StopIterationNoBuffer) return;
    encode_buffer_.move(data);
    if (st == FilterDataStatus::Continue) {
      continueEncodingFrom(idx);
      return;
    }
    if (encode_buffer_.length() > parent_.connection_->bufferLimit() && !response_started_) {
      // An encoder filter buffered more than allowed: 500, as Envoy.
      encode_stopped_ = false;
      encode_buffer_.drain(encode_buffer_.length());
      response_headers_.reset();
      sendLocalReplyImpl(500, "", nullptr, "response_payload_too_large", encoders_.size());
    }
    return;
  }
  for (size_t i = start; i < encoders_.size(); ++i) {
    const FilterDataStatus st = encoders_[i]->filter->encodeData(data, end_stream);
    if (st == FilterDataStatus::Continue) continue;
    encode_stopped_ = true;
    encode_stop_index_ = i;
    encode_stop_phase_ = Phase::Data;
    encode_stop_buffers_ = st == FilterDataStatus::StopIterationAndBuffer;
    encode_end_pending_ = end_stream;
    if (encode_stop_buffers_) encode_buffer_.move(data);
    return;
  }
  writeData(data, end_stream);
}

void ConnectionManager::ActiveStream::runEncodeTrailers(size_t start) {
  if (done_) return;
  if (encode_stopped_) {
    encode_trailers_pending_ = true;
    return;
  }
  for (size_t i = start; i < encoders_.size(); ++i) {
    if (encoders_[i]->filter->encodeTrailers(*response_trailers_) ==
        FilterTrailersStatus::StopIteration) {
      encode_stopped_ = true;
      encode_stop_index_ = i;
      encode_stop_phase_ = Phase::Trailers;
      return;
    }
  }
  writeTrailers();
}

void ConnectionManager::ActiveStream::continueEncodingFrom(size_t index) {
  if (!encode_stopped_ || encode_stop_index_ != index || done_) return;
  encode_stopped_ = false;
  const Phase phase = encode_stop_phase_;
  const size_t next = index + 1;
  if (phase == Phase::Headers) {
    const bool end = encode_end_pending_ && encode_buffer_.empty() && !encode_trailers_pending_;
    for (size_t i = next; i < encoders_.size(); ++i) {
      if (encoders_[i]->filter->encodeHeaders(*response_headers_, end) ==
          FilterHeadersStatus::StopIteration) {
        encode_stopped_ = true;
        encode_stop_index_ = i;
        return;
      }
    }
    writeHeaders(end);
  }
  if (phase != Phase::Trailers && (!encode_buffer_.empty() || phase == Phase::Data)) {
    Buffer data;
    data.move(encode_buffer_);
    const bool end = encode_end_pending_ && !encode_trailers_pending_;
    runEncodeData(next, data, end);
    if (encode_stopped_ || done_) return;
  }
  if (encode_trailers_pending_) {
    encode_trailers_pending_ = false;
    runEncodeTrailers(next);
  }
}

void ConnectionManager::ActiveStream::finalizeResponseHeaders(HeaderMap& h) {
  const ConnectionManagerConfig& cfg = *parent_.config_;
  // Hop-by-hop headers belong to the upstream connection, not this one.
  h.remove(headers::kConnection);
  h.remove(headers::kKeepAlive);
  h.remove(headers::kProxyConnection);
  h.remove(headers::kTransferEncoding);
  if (!(upgrade_ && h.status() == 101)) {
    h.remove(headers::kUpgrade); // kept on a 101 that completes an upgrade
  }
  switch (cfg.server_header_transformation) {
  case ConnectionManagerConfig::ServerHeaderTransformation::Overwrite:
    h.set(headers::kServer, cfg.server_name);
    break;
  case ConnectionManagerConfig::ServerHeaderTransformation::AppendIfAbsent:
    if (!h.has(headers::kServer)) h.set(headers::kServer, cfg.server_name);
    break;
  case ConnectionManagerConfig::ServerHeaderTransformation::PassThrough:
    break;
  }
  if (!h.has(headers::kDate)) {
    h.setWireSafe(headers::kDate, utility::httpDate());
  }
  if (request_headers_ && cfg.tracing) {
    // A forced trace's id goes back to the caller (Envoy).
    if (auto id = request_headers_->get(headers::kXRequestId);
        id && request_headers_->has(tracing::headers::kXEnvoyForceTrace)) {
      h.set(headers::kXRequestId, *id);
    }
    if (active_span_ && !cfg.tracing->egress) {
      // Our decorator, for the caller's client span.
      if (decorated_operation_ && decorated_propagate_) {
        h.set(tracing::headers::kXEnvoyDecoratorOperation, *decorated_operation_);
      }
    } else if (active_span_) {
      if (auto op = h.get(tracing::headers::kXEnvoyDecoratorOperation)) {
        if (!op->empty()) active_span_->setOperation(*op);
        h.remove(tracing::headers::kXEnvoyDecoratorOperation);
      }
    }
  }
  if (cfg.always_set_request_id_in_response && request_headers_) {
    if (auto id = request_headers_->get(headers::kXRequestId)) {
      h.set(headers::kXRequestId, *id);
    }
  }
  if (!cfg.via.empty()) {
    utility::appendVia(h, cfg.via);
  }
  // This connection ends after the response: draining, request limits, or an
  // unfinished request body (HTTP/1 cannot resynchronise).
  if (!remote_complete_ && encode_end_pending_) {
    parent_.close_after_stream_ = true;
  }
  if (network::isDraining() && !parent_.close_after_stream_) {
    parent_.stats().downstream_cx_drain_close.inc();
    parent_.close_after_stream_ = true;
  }
  if (parent_.close_after_stream_) {
    h.set(headers::kConnection, "close");
  }
  const uint32_t code = h.status();
  info_.response_code = code;
  ConnectionManagerStats& st = parent_.stats();
  if (code >= 500) st.downstream_rq_5xx.inc();
  else if (code >= 400) st.downstream_rq_4xx.inc();
  else if (code >= 300) st.downstream_rq_3xx.inc();
  else if (code >= 200) st.downstream_rq_2xx.inc();
  else st.downstream_rq_1xx.inc();
}

void ConnectionManager::ActiveStream::writeHeaders(bool end_stream) {
  finalizeResponseHeaders(*response_headers_);
  response_started_ = true;
  if (end_stream) local_complete_ = true;
  encoder_.encodeHeaders(*response_headers_, end_stream);
  if (end_stream) onEncodeComplete();
}

void ConnectionManager::ActiveStream::writeData(Buffer& data, bool end_stream) {
  if (!response_started_) {
    // Data without headers cannot happen through the filter chain; be safe.
    data.drain(data.length());
    return;
  }
  if (end_stream) local_complete_ = true;
  info_.bytes_sent += data.length();
  encoder_.encodeData(data, end_stream);
  if (end_stream) onEncodeComplete();
}

void ConnectionManager::ActiveStream::writeTrailers() {
  local_complete_ = true;
  encoder_.encodeTrailers(*response_trailers_);
  onEncodeComplete();
}

void ConnectionManager::ActiveStream::sendLocalReplyImpl(
    uint32_t code, std::string_view body, const std::function<void(HeaderMap&)>& modify,
    std::string_view details, size_t encoder_start) {
  if (done_) return;
  if (info_.response_code_details.empty()) {
    info_.response_code_details = std::string(details);
  }
  if (response_started_) {
    // Too late for a reply: the client already has headers. Reset instead.
    parent_.stats().rq_reset_after_downstream_response_started.inc();
    encoder_.resetStream(StreamResetReason::LocalReset);
    return;
  }
  local_reply_sent_ = true;
  decode_stopped_ = false;
  decode_buffer_.drain(decode_buffer_.length());
  encode_stopped_ = false;
  encode_buffer_.drain(encode_buffer_.length());
  auto headers = std::make_unique<HeaderMap>();
  std::string text(body.empty() ? utility::statusText(code) : std::string(body));
  std::string content_type = "text/plain";
  // local_reply_config: the first matching mapper, then the body format.
  const ConnectionManagerConfig& cfg = *parent_.config_;
  if (!cfg.local_reply_mappers.empty() || cfg.local_reply_body_format) {
    info_.response_code = code;
    info_.request_headers = request_headers_.get();
    const accesslog::Formatter* format = cfg.local_reply_body_format.get();
    if (format != nullptr) content_type = cfg.local_reply_content_type;
    for (const auto& m : cfg.local_reply_mappers) {
      if (!m.filter->evaluate(info_)) continue;
      if (m.status) code = *m.status;
      if (m.body) text = *m.body;
      for (const auto& [k, v] : m.headers_to_add) headers->add(k, v);
      if (m.body_format) {
        format = m.body_format.get();
        content_type = m.content_type;
      }
      break;
    }
    if (format != nullptr) {
      info_.response_code = code;
      info_.rare().local_reply_body = text;
      text = format->format(info_);
    }
  }
  headers->set(headers::kStatus, std::to_string(code));
  const bool is_head = request_headers_ && request_headers_->method() == "HEAD";
  if (!text.empty()) {
    headers->set(headers::kContentLength, std::to_string(text.size()));
    headers->set(headers::kContentType, content_type);
  }
  if (modify) modify(*headers);
  const bool has_body = !text.empty() && !is_head;
  response_headers_ = std::move(headers);
  encode_end_pending_ = !has_body;
  runEncodeHeaders(encoder_start);
  if (has_body && !done_) {
    Buffer b;
    b.add(text);
    runEncodeData(encoder_start, b, true);
  }
}

void ConnectionManager::ActiveStream::onEncodeComplete() {
  if (done_) return;
  if (!remote_complete_) {
    // HTTP/1: the rest of the request can't be skipped reliably; the
    // connection closes after this response (connection: close was set).
    parent_.stats().downstream_rq_response_before_rq_complete.inc();
    parent_.close_after_stream_ = true;
  }
  finish();
}

void ConnectionManager::ActiveStream::finish() {
  if (done_) return;
  done_ = true;
  idle_timer_.reset();
  request_timer_.reset();
  headers_timer_.reset();
  info_.end_steady = loopNow();
  ConnectionManagerStats& st = parent_.stats();
  st.downstream_rq_active.dec();
  st.downstream_rq_completed.inc();
  if (upgrade_) st.downstream_cx_upgrades_active.dec();
  st.downstream_rq_time.record(static_cast<uint64_t>(info_.duration().count()));
  for (auto& d : decoders_) d->filter->onDestroy();
  for (auto& e : encoders_) e->filter->onDestroy();
  destroyed_filters_ = true;
  info_.request_headers = request_headers_.get();
  info_.response_headers = response_headers_.get();
  info_.response_trailers = response_trailers_.get();
  if (cached_route_ != nullptr) info_.route_name = cached_route_->name();
  finishTracing();
  for (const auto& log : parent_.config_->access_logs) {
    log->log(info_);
  }
  encoder_.removeCallbacks(*this);
  parent_.onStreamDone(*this);
}

void ConnectionManager::ActiveStream::onResetStream(StreamResetReason reason,
                                                    std::string_view details) {
  if (done_) return;
  if (reason == StreamResetReason::LocalReset) {
    parent_.stats().downstream_rq_tx_reset.inc();
  } else {
    parent_.stats().downstream_rq_rx_reset.inc();
    info_.setResponseFlag(accesslog::kDownstreamConnectionTermination);
  }
  if (info_.response_code_details.empty()) info_.response_code_details = std::string(details);
  parent_.close_after_stream_ = true;
  finish();
}

void ConnectionManager::ActiveStream::resetFromConnection(const char* details) {
  if (done_) return;
  parent_.stats().downstream_rq_rx_reset.inc();
  info_.setResponseFlag(accesslog::kDownstreamConnectionTermination);
  if (info_.response_code_details.empty()) info_.response_code_details = details;
  finish();
}

void ConnectionManager::ActiveStream::onAboveWriteBufferHighWatermark() { onDownstreamAboveHigh(); }
void ConnectionManager::ActiveStream::onBelowWriteBufferLowWatermark() { onDownstreamBelowLow(); }

void ConnectionManager::ActiveStream::onDownstreamAboveHigh() {
  for (auto* cb : watermark_callbacks_) cb->onAboveWriteBufferHighWatermark();
}
void ConnectionManager::ActiveStream::onDownstreamBelowLow() {
  for (auto* cb : watermark_callbacks_) cb->onBelowWriteBufferLowWatermark();
}

void ConnectionManager::ActiveStream::onStreamIdleTimeout() {
  parent_.stats().downstream_rq_idle_timeout.inc();
  info_.setResponseFlag(accesslog::kStreamIdleTimeout);
  if (response_started_) {
    encoder_.resetStream(StreamResetReason::LocalReset);
  } else {
    sendLocalReplyImpl(408, "stream timeout", nullptr, "stream_idle_timeout", encoders_.size());
  }
}

void ConnectionManager::ActiveStream::onRequestTimeout() {
  parent_.stats().downstream_rq_timeout.inc();
  if (response_started_) {
    encoder_.resetStream(StreamResetReason::LocalReset);
  } else {
    sendLocalReplyImpl(408, "request timeout", nullptr, "request_overall_timeout",
                       encoders_.size());
  }
}

// ---------------------------------------------------------------------------
// ConnectionManager

// One per downstream connection, idle or not (see the member order).
// With make_shared's 16-byte control block: tcmalloc's 112-byte class, paid by
// every idle keep-alive connection (bench/idle_memory.py measures it).
static_assert(sizeof(ConnectionManager) <= 96);

namespace {
// Memory per idle connection stays small because an idle keep-alive connection
// holds no codec (440 bytes). But a busy connection is idle only for a moment
// between requests, and making a codec for each request and freeing it again
// costs about 330 instructions. So up to kKeptIdleCodecs idle connections of a
// worker keep theirs: a bound (about 60 KiB) however many connections there are.
constexpr uint32_t kKeptIdleCodecs = 128;
// Idle connections of this thread (a worker) holding their codec.
thread_local uint32_t kept_idle_codecs = 0;
} // namespace

bool ConnectionManager::keepIdleCodec() {
  if (kept_idle_codecs >= kKeptIdleCodecs) return false;
  ++kept_idle_codecs;
  codec_kept_idle_ = true;
  return true;
}

void ConnectionManager::releaseIdleCodec() {
  if (!codec_kept_idle_) return;
  codec_kept_idle_ = false;
  assert(kept_idle_codecs > 0);
  --kept_idle_codecs;
}

ConnectionManager::ConnectionManager(std::shared_ptr<const ConnectionManagerConfig> config)
    : config_(std::move(config)) {}

ConnectionManager::~ConnectionManager() {
  releaseIdleCodec();
  closed_ = true;
  if (connection_ != nullptr) connection_->dispatcher().timerQueue().cancel(*this);
  resetAllStreams();
}

// Only with an idle timeout configured; re-arming moves the deadline.
void ConnectionManager::armIdleTimer() {
  if (config_->idle_timeout.count() > 0) {
    connection_->dispatcher().timerQueue().schedule(
        *this, loopNow() + config_->idle_timeout);
  }
}

void ConnectionManager::resetAllStreams() {
  // Finishing a stream removes it from streams_.
  while (!streams_.empty()) {
    ActiveStream* s = streams_.front();
    if (s->done()) {
      streams_.remove(*s);
      connection_->dispatcher().deferredDelete(std::unique_ptr<ActiveStream>(s));
      continue;
    }
    s->resetFromConnection("downstream_connection_closed");
  }
}

void ConnectionManager::initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) {
  connection_ = &callbacks.connection();
  connection_->addConnectionCallbacks(*this);
  connection_->setConnectionStats(&stats().connection);
}

network::FilterStatus ConnectionManager::onNewConnection() {
  stats().downstream_cx_total.inc();
  stats().downstream_cx_active.inc();
  stats().downstream_cx_http1_total.inc();
  stats().downstream_cx_http1_active.inc();
  counted_ = true;
  connection_->setDelayedCloseTimeout(config_->delayed_close_timeout);
  auto& dispatcher = connection_->dispatcher();
  armIdleTimer();
  if (config_->max_connection_duration.count() > 0) {
    duration_timer_ = dispatcher.createTimer([this] {
      stats().downstream_cx_max_duration_reached.inc();
      if (streams_.empty()) {
        closeConnection(network::ConnectionCloseType::FlushWrite);
      } else {
        close_after_stream_ = true;
      }
    });
    duration_timer_->enableTimer(config_->max_connection_duration);
  }
  // The codec is created by the first bytes (onData) and dropped again
  // whenever the connection is idle between requests.
  return network::FilterStatus::Continue;
}

void ConnectionManager::createCodec() {
  codec_ = std::make_unique<http1::Http1ServerConnection>(
      [this](Buffer& data, bool end_stream) {
        connection_->write(data, false);
        if (end_stream) {
          close_after_stream_ = true;
          if (streams_.empty() || (streams_.single() && streams_.front()->done())) {
            closeConnection(network::ConnectionCloseType::FlushWrite);
          }
        }
      },
      *this, config_->codec_settings,
      [this](bool disable) { connection_->readDisable(disable); });
}

StreamDecoder& ConnectionManager::newStream(StreamEncoder& response_encoder) {
  disarmIdleTimer();
  if (requests_ < UINT32_MAX) ++requests_;
  if (config_->max_requests_per_connection > 0 &&
      requests_ >= config_->max_requests_per_connection) {
    stats().downstream_cx_max_requests_reached.inc();
    close_after_stream_ = true;
  }
  auto* stream = new ActiveStream(*this, response_encoder);
  streams_.pushBack(*stream);
  return *stream;
}

network::FilterStatus ConnectionManager::onData(Buffer& data, bool end_stream) {
  if (closed_ || codec_error_) {
    data.drain(data.length());
    return network::FilterStatus::StopIteration;
  }
  if (!codec_) {
    createCodec();
  } else {
    releaseIdleCodec();
  }
  dispatching_ = true;
  const absl::Status st = codec_->dispatch(data);
  dispatching_ = false;
  if (!st.ok()) {
    codec_error_ = true;
    stats().downstream_cx_protocol_error.inc();
    const std::string details(st.message());
    hcmLog().debug("[C{}] protocol error: {}", connection_->id(), details);
    // The codec opened a stream for the request it rejected: answer on it
    // (the codec closes the connection after that reply).
    const uint32_t code = (details == "http1.headers_too_large" ||
                           details == "http1.too_many_headers" || details == "http1.line_too_long")
                              ? 431
                              : (details == "http1.http10_not_accepted" ? 426 : 400);
    ActiveStream* active = streams_.back();
    if (active != nullptr && !active->done()) {
      active->sendProtocolErrorReply(code, details);
    }
    data.drain(data.length());
    close_after_stream_ = true;
    closeConnection(network::ConnectionCloseType::FlushWrite);
    return network::FilterStatus::StopIteration;
  }
  if (!data.empty() && !read_disabled_for_pipelining_ && !closed_) {
    // A pipelined request waits for the current response; stop reading so it
    // cannot grow without bound meanwhile.
    read_disabled_for_pipelining_ = true;
    connection_->readDisable(true);
  }
  if (end_stream && !closed_) {
    codec_->onRemoteClose();
  }
  if (codec_ && data.empty() && streams_.empty() && !closed_ && codec_->idle() &&
      !keepIdleCodec()) {
    codec_.reset(); // not on the stack any more: dispatch returned
  }
  return network::FilterStatus::StopIteration;
}

void ConnectionManager::onStreamDone(ActiveStream& stream) {
  if (stream.linked()) {
    if (streams_.single() && !dispatching_ && !close_after_stream_ && !closed_ && codec_ &&
        codec_->idle() && !keepIdleCodec()) {
      // Idle keep-alive connections keep no codec beyond the worker's kept few;
      // the next request's first bytes make a fresh one (onData).
      stream.retired_codec_ = std::move(codec_);
    }
    streams_.remove(stream);
    connection_->dispatcher().deferredDelete(std::unique_ptr<ActiveStream>(&stream));
  }
  if (closed_) return;
  if (close_after_stream_) {
    closeConnection(network::ConnectionCloseType::FlushWrite);
    return;
  }
  if (streams_.empty()) {
    armIdleTimer();
  }
  if (read_disabled_for_pipelining_) {
    // The next pipelined request is in the read buffer; resuming reads
    // delivers it to onData on the next loop iteration.
    read_disabled_for_pipelining_ = false;
    connection_->readDisable(false);
  }
}

void ConnectionManager::onIdleTimeout() {
  if (!streams_.empty()) return;
  stats().downstream_cx_idle_timeout.inc();
  closeConnection(network::ConnectionCloseType::FlushWrite);
}

void ConnectionManager::closeConnection(network::ConnectionCloseType type) {
  if (closed_) return;
  connection_->close(type);
}

void ConnectionManager::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::Connected || closed_) return;
  closed_ = true;
  connection_->dispatcher().timerQueue().cancel(*this);
  duration_timer_.reset();
  if (connection_->delayedCloseTimedOut()) {
    stats().downstream_cx_delayed_close_timeout.inc();
  }
  if (!streams_.empty()) {
    stats().downstream_cx_destroy_active_rq.inc();
  }
  // Streams still running lose their connection.
  resetAllStreams();
  if (!counted_) return; // closed before onNewConnection: nothing was counted
  stats().downstream_cx_destroy.inc();
  if (event == network::ConnectionEvent::RemoteClose) {
    stats().downstream_cx_destroy_remote.inc();
  } else {
    stats().downstream_cx_destroy_local.inc();
  }
  stats().downstream_cx_active.dec();
  stats().downstream_cx_http1_active.dec();
  stats().downstream_cx_length_ms.record(static_cast<uint64_t>(msSince(connection_->startTime())));
}

void ConnectionManager::onAboveWriteBufferHighWatermark() {
  above_high_watermark_ = true;
  streams_.forEach([](ActiveStream& s) { s.onDownstreamAboveHigh(); });
}

void ConnectionManager::onBelowWriteBufferLowWatermark() {
  above_high_watermark_ = false;
  streams_.forEach([](ActiveStream& s) { s.onDownstreamBelowLow(); });
}

} // namespace legate::http
