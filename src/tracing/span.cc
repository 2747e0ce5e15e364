#include "tracing/span.h"

namespace legate::tracing {

int64_t toMicros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

Span::Span(const Tracer& tracer, SpanData data, bool sampled)
    : tracer_(tracer), data_(std::move(data)), sampled_(sampled) {}

void Span::setOperation(std::string_view name) {
  data_.name = std::string(name);
}

void Span::setTag(std::string_view key, std::string_view value) {
  if (!sampled_)
    return;
  for (auto& [k, v] : data_.tags) {
    if (k == key) {
      v = std::string(value);
      return;
    }
  }
  data_.tags.emplace_back(std::string(key), std::string(value));
}

std::string Span::traceIdHex() const {
  if (tracer_.options().propagation == TracerOptions::Propagation::W3C) {
    // W3C ids are 16 bytes whatever their value (a zero high half included).
    return hex64(data_.trace_id_high) + hex64(data_.trace_id_low);
  }
  return tracing::traceIdHex(data_.trace_id_high, data_.trace_id_low);
}

void Span::injectContext(http::HeaderMap& headers) const {
  tracer_.inject(*this, headers);
}

std::unique_ptr<Span> Span::spawnChild(std::string name) const {
  SpanData child;
  child.trace_id_high = data_.trace_id_high;
  child.trace_id_low = data_.trace_id_low;
  child.id = randomId();
  child.parent_id = data_.id;
  child.name = std::move(name);
  child.kind = SpanKind::Client;
  child.start_us = toMicros(std::chrono::system_clock::now());
  child.tracestate = data_.tracestate;
  child.local = data_.local;
  if (sampled_) {
    child.tags.reserve(12);
    child.tags.emplace_back("component", "proxy");
    if (!tracer_.options().node_id.empty())
      child.tags.emplace_back("node_id", tracer_.options().node_id);
    if (!tracer_.options().zone.empty())
      child.tags.emplace_back("zone", tracer_.options().zone);
  }
  return std::make_unique<Span>(tracer_, std::move(child), sampled_);
}

void Span::finish() {
  if (finished_)
    return;
  finished_ = true;
  if (!sampled_)
    return;
  data_.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start_steady_)
                          .count();
  tracer_.report(std::move(data_));
}

SpanPtr Tracer::startSpan(const http::HeaderMap& request, const Decision& decision, bool egress,
                          bool independent_hop, const network::Address& local,
                          std::chrono::system_clock::time_point start) const {
  const bool w3c = options_.propagation == TracerOptions::Propagation::W3C;
  const Extracted in = w3c ? extractW3c(request) : extractB3(request);
  // A decision the caller made (sampled flag) is respected; else ours.
  const bool sampled = in.sampled.value_or(decision.traced);

  SpanData d;
  d.kind = (egress && !independent_hop) ? SpanKind::Client : SpanKind::Server;
  if (in.context) {
    d.trace_id_high = in.context->trace_id_high;
    d.trace_id_low = in.context->trace_id_low;
    d.tracestate = in.context->tracestate;
    if (!w3c && options_.shared_span_context && d.kind == SpanKind::Server) {
      d.id = in.context->span_id;
      d.parent_id = in.context->parent_id;
      d.shared = true;
    } else {
      d.id = randomId();
      d.parent_id = in.context->span_id;
    }
  } else {
    d.trace_id_low = randomId();
    if (w3c || options_.trace_id_128bit)
      d.trace_id_high = randomId();
    d.id = randomId();
  }
  const std::string_view host = request.authority();
  if (options_.name_from_host) {
    d.name = std::string(host);
  } else {
    d.name = egress ? "egress " + std::string(host) : "ingress";
  }
  d.start_us = toMicros(start);
  d.local = local;
  if (sampled) {
    d.tags.reserve(20);
    d.tags.emplace_back("component", "proxy");
    if (!options_.node_id.empty())
      d.tags.emplace_back("node_id", options_.node_id);
    if (!options_.zone.empty())
      d.tags.emplace_back("zone", options_.zone);
  }
  return std::make_unique<Span>(*this, std::move(d), sampled);
}

void Tracer::inject(const Span& span, http::HeaderMap& h) const {
  const SpanData& d = span.data();
  if (options_.propagation == TracerOptions::Propagation::W3C) {
    h.set(headers::kTraceparent,
          formatTraceparent(d.trace_id_high, d.trace_id_low, d.id, span.sampled()));
    if (!d.tracestate.empty())
      h.set(headers::kTracestate, d.tracestate);
    return;
  }
  // B3 multi-header, as Envoy's Zipkin tracer writes it. A single `b3` header
  // from the caller would now name the wrong parent: it goes.
  h.remove(headers::kB3);
  h.set(headers::kB3TraceId, traceIdHex(d.trace_id_high, d.trace_id_low));
  h.set(headers::kB3SpanId, hex64(d.id));
  if (d.parent_id != 0) {
    h.set(headers::kB3ParentSpanId, hex64(d.parent_id));
  } else {
    h.remove(headers::kB3ParentSpanId);
  }
  h.set(headers::kB3Sampled, span.sampled() ? "1" : "0");
}

}  // namespace legate::tracing
