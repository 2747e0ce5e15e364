// Trace context propagation (W3C traceparent, B3 single and multi headers) and
// the x-request-id trace decision.
#include <gtest/gtest.h>

#include "runtime/runtime.h"
#include "tracing/decision.h"
#include "tracing/span.h"
#include "tracing/trace_context.h"

namespace legate::tracing {
namespace {

TEST(Traceparent, ParsesVersion00) {
  auto c = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace_id_high, 0x0af7651916cd43ddULL);
  EXPECT_EQ(c->trace_id_low, 0x8448eb211c80319cULL);
  EXPECT_EQ(c->span_id, 0xb7ad6b7169203331ULL);
  EXPECT_TRUE(c->sampled.value());
  auto n = parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
  ASSERT_TRUE(n);
  EXPECT_FALSE(n->sampled.value());
  // Other flag bits do not make a trace sampled; bit 0 does.
  EXPECT_TRUE(
      parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03")->sampled.value());
  EXPECT_FALSE(
      parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02")->sampled.value());
}

TEST(Traceparent, MalformedIsIgnored) {
  for (const char* bad : {
           "",
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",      // no flags
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",  // v00 is 55 chars
           "00-00000000000000000000000000000000-b7ad6b7169203331-01",   // zero trace id
           "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",   // zero parent id
           "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",   // upper case
           "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   // version ff
           "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",   // separator
           "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",   // not hex
           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",    // short parent
           "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // short version
       }) {
    EXPECT_FALSE(parseTraceparent(bad)) << bad;
  }
  // A later version may carry more fields after a dash.
  EXPECT_TRUE(parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz"));
  EXPECT_FALSE(parseTraceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01xyz"));
}

TEST(Traceparent, FormatRoundTrips) {
  const std::string s = formatTraceparent(0x1, 0x2, 0xabc, true);
  EXPECT_EQ(s, "00-00000000000000010000000000000002-0000000000000abc-01");
  auto c = parseTraceparent(s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace_id_low, 2u);
  EXPECT_EQ(formatTraceparent(0x1, 0x2, 0xabc, false).substr(53), "00");
}

TEST(W3c, TracestateIsKeptAndTwoTraceparentsAreIgnored) {
  http::HeaderMap h;
  h.add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  h.add("tracestate", "a=1");
  h.add("tracestate", "b=2");
  Extracted e = extractW3c(h);
  ASSERT_TRUE(e.context);
  EXPECT_EQ(e.context->tracestate, "a=1,b=2");
  h.add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01");
  EXPECT_FALSE(extractW3c(h).context);
}

TEST(B3, SingleHeaderForms) {
  auto full = parseB3Single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  ASSERT_TRUE(full && full->context);
  EXPECT_EQ(full->context->trace_id_high, 0x80f198ee56343ba8ULL);
  EXPECT_EQ(full->context->span_id, 0xe457b5a2e4d86bd1ULL);
  EXPECT_EQ(full->context->parent_id, 0x05e3ac9a4f6e3b90ULL);
  EXPECT_TRUE(full->sampled.value());
  auto short_id = parseB3Single("64fe8b2a57d3eff7-e457b5a2e4d86bd1");
  ASSERT_TRUE(short_id && short_id->context);
  EXPECT_EQ(short_id->context->trace_id_high, 0u);
  EXPECT_FALSE(short_id->sampled);
  auto debug = parseB3Single("64fe8b2a57d3eff7-e457b5a2e4d86bd1-d");
  EXPECT_TRUE(debug->sampled.value());
  auto deny = parseB3Single("0");
  ASSERT_TRUE(deny);
  EXPECT_FALSE(deny->context);
  EXPECT_FALSE(deny->sampled.value());
  for (const char* bad :
       {"2", "x", "64fe8b2a57d3eff7", "64fe8b2a57d3eff7-e457b5a2e4d86bd",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-2", "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-zz",
        "0000000000000000-e457b5a2e4d86bd1", "64fe8b2a57d3eff7-0000000000000000",
        "64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-9"}) {
    EXPECT_FALSE(parseB3Single(bad)) << bad;
  }
}

TEST(B3, MultiHeaders) {
  http::HeaderMap h;
  h.add("x-b3-traceid", "463ac35c9f6413ad");
  h.add("x-b3-spanid", "a2fb4a1d1a96d312");
  h.add("x-b3-parentspanid", "0020000000000001");
  h.add("x-b3-sampled", "1");
  Extracted e = extractB3(h);
  ASSERT_TRUE(e.context);
  EXPECT_EQ(e.context->trace_id_low, 0x463ac35c9f6413adULL);
  EXPECT_EQ(e.context->parent_id, 0x20000000000001ULL);
  EXPECT_TRUE(e.sampled.value());
  // The single header wins.
  h.add("b3", "0000000000000abc-0000000000000def-0");
  e = extractB3(h);
  EXPECT_EQ(e.context->trace_id_low, 0xabcu);
  EXPECT_FALSE(e.sampled.value());
  // A span id without a trace id is no context; flags 1 (debug) samples.
  http::HeaderMap lone;
  lone.add("x-b3-spanid", "a2fb4a1d1a96d312");
  lone.add("x-b3-flags", "1");
  e = extractB3(lone);
  EXPECT_FALSE(e.context);
  EXPECT_TRUE(e.sampled.value());
  // A malformed single header falls back to the multi headers.
  http::HeaderMap fallback;
  fallback.add("b3", "nonsense");
  fallback.add("x-b3-traceid", "463ac35c9f6413ad");
  fallback.add("x-b3-spanid", "a2fb4a1d1a96d312");
  EXPECT_TRUE(extractB3(fallback).context);
}

TEST(Span, B3InjectionAndChildren) {
  class Null : public Exporter {
   public:
    void report(SpanData&& s) override { reported.push_back(std::move(s)); }
    void start(event::Dispatcher&) override {}
    std::vector<SpanData> reported;
  };
  auto exporter = std::make_shared<Null>();
  TracerOptions o;
  o.propagation = TracerOptions::Propagation::B3;
  o.shared_span_context = true;
  o.name_from_host = true;
  Tracer tracer(o, exporter);
  http::HeaderMap req;
  req.add(":authority", "svc");
  req.add("b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-1");
  SpanPtr span = tracer.startSpan(req, Decision{}, false, true, network::Address(),
                                  std::chrono::system_clock::now());
  EXPECT_TRUE(span->sampled());  // the caller's decision beats ours (not traced)
  EXPECT_EQ(span->data().id, 0xa2fb4a1d1a96d312ULL);
  EXPECT_TRUE(span->data().shared);
  EXPECT_EQ(span->data().name, "svc");
  SpanPtr child = span->spawnChild("router c egress");
  http::HeaderMap out;
  out.add("b3", "stale");
  child->injectContext(out);
  EXPECT_FALSE(out.has("b3"));
  EXPECT_EQ(out.get("x-b3-traceid").value(), "463ac35c9f6413ad");
  EXPECT_EQ(out.get("x-b3-parentspanid").value(), "a2fb4a1d1a96d312");
  EXPECT_EQ(out.get("x-b3-spanid").value(), hex64(child->data().id));
  EXPECT_EQ(out.get("x-b3-sampled").value(), "1");
  child->finish();
  span->finish();
  span->finish();
  EXPECT_EQ(exporter->reported.size(), 2u);

  // Not sampled: ids still travel, nothing is reported.
  http::HeaderMap plain;
  plain.add(":authority", "svc");
  SpanPtr quiet = tracer.startSpan(plain, Decision{}, false, false, network::Address(),
                                   std::chrono::system_clock::now());
  http::HeaderMap q;
  quiet->injectContext(q);
  EXPECT_EQ(q.get("x-b3-sampled").value(), "0");
  EXPECT_FALSE(q.has("x-b3-parentspanid"));
  quiet->setTag("k", "v");
  quiet->finish();
  EXPECT_EQ(exporter->reported.size(), 2u);
}

TEST(Decision, RequestIdCarriesTheDecision) {
  stats::Store store;
  DecisionStats st(stats::Scope(store, "http.t."));
  Sampling all;
  http::HeaderMap h;
  h.set("x-request-id", "12345678-aaaa-4bbb-8ccc-dddddddddddd");
  Decision d = decide(h, all, st);
  EXPECT_TRUE(d.traced);
  EXPECT_EQ(d.reason, Reason::Sampling);
  EXPECT_EQ(h.get("x-request-id").value(), "12345678-aaaa-9bbb-8ccc-dddddddddddd");
  EXPECT_EQ(st.random_sampling.value(), 1u);

  // Random sampling draws from the id (0x12345678 % 10000 = 9896): stable.
  Sampling some;
  some.random = {9896, 10000};
  http::HeaderMap below;
  below.set("x-request-id", "12345678-aaaa-4bbb-8ccc-dddddddddddd");
  EXPECT_FALSE(decide(below, some, st).traced);
  some.random = {9897, 10000};
  http::HeaderMap above;
  above.set("x-request-id", "12345678-aaaa-4bbb-8ccc-dddddddddddd");
  EXPECT_TRUE(decide(above, some, st).traced);

  Sampling none;
  none.random = {0, 10000};
  http::HeaderMap forced;
  forced.set("x-request-id", "12345678-aaaa-4bbb-8ccc-dddddddddddd");
  forced.set("x-envoy-force-trace", "true");
  d = decide(forced, none, st);
  EXPECT_EQ(d.reason, Reason::ServiceForced);
  EXPECT_EQ(forced.get("x-request-id").value()[14], 'a');

  http::HeaderMap client;
  client.set("x-request-id", "12345678-aaaa-4bbb-8ccc-dddddddddddd");
  client.set("x-client-trace-id", "abc");
  d = decide(client, none, st);
  EXPECT_EQ(d.reason, Reason::ClientForced);
  EXPECT_EQ(client.get("x-request-id").value()[14], 'b');

  // overall_sampling vetoes a client-forced trace but not a service-forced one.
  Sampling veto;
  veto.overall = {0, 100};
  http::HeaderMap vc;
  vc.set("x-request-id", "12345678-aaaa-bbbb-8ccc-dddddddddddd");
  EXPECT_FALSE(decide(vc, veto, st).traced);
  EXPECT_EQ(vc.get("x-request-id").value()[14], '4');
  http::HeaderMap vf;
  vf.set("x-request-id", "12345678-aaaa-abbb-8ccc-dddddddddddd");
  EXPECT_TRUE(decide(vf, veto, st).traced);

  // No id, or one that is no UUID: not traceable.
  http::HeaderMap missing;
  EXPECT_EQ(decide(missing, all, st).reason, Reason::NotTraceable);
  http::HeaderMap odd;
  odd.set("x-request-id", "not-a-uuid");
  EXPECT_EQ(decide(odd, all, st).reason, Reason::NotTraceable);
  EXPECT_EQ(odd.get("x-request-id").value(), "not-a-uuid");
}

}  // namespace
}  // namespace legate::tracing
