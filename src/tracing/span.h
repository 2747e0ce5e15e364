#pragma once

// Spans and the tracer that makes them.
//
// A Tracer is one configured tracing provider (envoy.tracers.zipkin or
// envoy.tracers.opentelemetry): how contexts are read and written (B3 or W3C),
// how spans are named and identified, and the Exporter their records go to.
// The connection manager asks it for one span per downstream request; the
// router spawns a CLIENT child per upstream attempt when spawn_upstream_span is
// set. A span that is not sampled still carries ids (so the decision travels
// on to the next hop) but records nothing and reports nothing.
//
// Threading: a Tracer is built on the main thread and shared read-only by the
// workers; a Span lives on its stream's worker. finish() hands a sampled span's
// record to the Exporter (lock-free; see exporter.h).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/header_map.h"
#include "network/address.h"
#include "tracing/decision.h"
#include "tracing/trace_context.h"

namespace legate::event {
class Dispatcher;
}

namespace legate::tracing {

enum class SpanKind { Server, Client };

// What is reported of a finished span.
struct SpanData {
  uint64_t trace_id_high = 0;
  uint64_t trace_id_low = 0;
  uint64_t id = 0;
  uint64_t parent_id = 0;  // 0: a root span
  std::string name;
  SpanKind kind = SpanKind::Server;
  bool shared = false;   // B3 shared_span_context: the id is the caller's client span's
  int64_t start_us = 0;  // system clock, microseconds since the epoch
  int64_t duration_us = 0;
  std::vector<std::pair<std::string, std::string>> tags;
  std::string tracestate;  // W3C
  network::Address local;  // this proxy's side of the downstream connection
};

// Where finished, sampled spans go. report() is called on workers.
class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual void report(SpanData&& span) = 0;
  // Main thread, once, before the workers run: starts flushing.
  virtual void start(event::Dispatcher& main) = 0;
};

struct TracerOptions {
  enum class Propagation { B3, W3C };
  Propagation propagation = Propagation::B3;
  // B3: a SERVER span reuses the caller's span id (Zipkin's shared span).
  bool shared_span_context = false;
  // New traces get 128-bit ids (W3C ids are always 128-bit).
  bool trace_id_128bit = false;
  // Zipkin names the downstream span after the host; otherwise "ingress" or
  // "egress <host>", as Envoy.
  bool name_from_host = false;
  std::string node_id;  // node_id tag
  std::string zone;     // zone tag
};

class Tracer;

class Span {
 public:
  Span(const Tracer& tracer, SpanData data, bool sampled);

  bool sampled() const { return sampled_; }
  const SpanData& data() const { return data_; }
  // The trace id in lower-case hex as the tracer writes it: 32 digits for W3C
  // and 128-bit B3 ids, 16 for 64-bit B3 ids.
  std::string traceIdHex() const;
  void setOperation(std::string_view name);
  // No-op on a span that is not sampled.
  void setTag(std::string_view key, std::string_view value);
  // Writes this span's context into the request for the next hop.
  void injectContext(http::HeaderMap& headers) const;
  // A CLIENT span for an upstream attempt: same trace, this span its parent.
  std::unique_ptr<Span> spawnChild(std::string name) const;
  // Ends the span (idempotent); a sampled one goes to the exporter.
  void finish();

 private:
  const Tracer& tracer_;
  SpanData data_;
  const bool sampled_;
  const std::chrono::steady_clock::time_point start_steady_ = std::chrono::steady_clock::now();
  bool finished_ = false;
};
using SpanPtr = std::unique_ptr<Span>;

class Tracer {
 public:
  Tracer(TracerOptions options, std::shared_ptr<Exporter> exporter)
      : options_(std::move(options)), exporter_(std::move(exporter)) {}

  // The downstream request's span. egress: an outbound listener's connection
  // manager; independent_hop: spawn_upstream_span (the downstream span is then
  // a SERVER span even on egress, and attempts get CLIENT children).
  // start: the request's start (system clock).
  SpanPtr startSpan(const http::HeaderMap& request, const Decision& decision, bool egress,
                    bool independent_hop, const network::Address& local,
                    std::chrono::system_clock::time_point start) const;

  void inject(const Span& span, http::HeaderMap& headers) const;
  void report(SpanData&& span) const { exporter_->report(std::move(span)); }
  void start(event::Dispatcher& main) const { exporter_->start(main); }
  const TracerOptions& options() const { return options_; }

 private:
  const TracerOptions options_;
  const std::shared_ptr<Exporter> exporter_;
};
using TracerSharedPtr = std::shared_ptr<const Tracer>;

int64_t toMicros(std::chrono::system_clock::time_point t);

}  // namespace legate::tracing
