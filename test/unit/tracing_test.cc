// Trace context propagation (W3C traceparent, B3 single and multi headers),
// the x-request-id trace decision (with a connection manager's or a route's
// sampling) and custom tags.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "envoy/type/tracing/v3/custom_tag.pb.h"
#include "google/protobuf/text_format.h"
#include "runtime/runtime.h"
#include "tracing/custom_tag.h"
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


// A route's tracing replaces the connection manager's sampling with
// FractionalPercents of any denominator, drawn from the same id.
TEST(Decision, RouteSamplingOverridesTheConnectionManagers) {
  stats::Store store;
  DecisionStats st(stats::Scope(store, "http.t."));
  const std::string id = "12345678-aaaa-4bbb-8ccc-dddddddddddd";  // draw 9896
  auto traced = [&](const Sampling& s, std::vector<std::pair<std::string, std::string>> extra = {}) {
    http::HeaderMap h;
    h.set("x-request-id", id);
    for (auto& [k, v] : extra) h.set(k, v);
    return decide(h, s, st);
  };
  // The connection manager samples everything; a route with random_sampling 0
  // (out of 100) samples nothing; the route's unset fields are 100%.
  Sampling hcm;
  EXPECT_TRUE(traced(hcm).traced);
  Sampling route;
  route.random = {0, 100};
  EXPECT_FALSE(traced(route).traced);
  EXPECT_EQ(traced(route).reason, Reason::NotTraceable);
  // The draw is taken modulo the route's denominator: 9896 % 100 = 96.
  route.random = {96, 100};
  EXPECT_FALSE(traced(route).traced);
  route.random = {97, 100};
  EXPECT_TRUE(traced(route).traced);
  route.random = {9896, 1000000};
  EXPECT_FALSE(traced(route).traced);
  route.random = {9897, 1000000};
  EXPECT_TRUE(traced(route).traced);
  // The other way round: a connection manager that samples nothing, a route
  // that samples everything.
  Sampling quiet;
  quiet.random = {0, 10000};
  EXPECT_FALSE(traced(quiet).traced);
  EXPECT_TRUE(traced(Sampling{}).traced);
  // client_sampling and overall_sampling from the route too.
  Sampling no_client;
  no_client.random = {0, 100};
  no_client.client = {0, 100};
  EXPECT_EQ(traced(no_client, {{"x-client-trace-id", "c"}}).reason, Reason::NotTraceable);
  Sampling veto;
  veto.overall = {0, 100};
  EXPECT_EQ(traced(veto, {{"x-client-trace-id", "c"}}).reason, Reason::NotTraceable);
  EXPECT_EQ(traced(veto, {{"x-envoy-force-trace", "1"}}).reason, Reason::ServiceForced);
  // The runtime keys still override, with the route's fraction as default
  // (an integer value is read over the default's denominator).
  auto before = runtime::loader();
  runtime::setLoader(std::make_shared<runtime::Loader>(std::vector<runtime::Layer>{
      runtime::Layer{"static", {{"tracing.random_sampling", "97"}}, {}, false}}));
  route.random = {0, 100};
  EXPECT_TRUE(traced(route).traced);
  runtime::setLoader(before);
}

TEST(Span, TraceIdHexAsTheTracerWritesIt) {
  class Null : public Exporter {
   public:
    void report(SpanData&&) override {}
    void start(event::Dispatcher&) override {}
  };
  auto exporter = std::make_shared<Null>();
  auto start = [&](TracerOptions::Propagation p, bool wide,
                   std::vector<std::pair<std::string, std::string>> in) {
    TracerOptions o;
    o.propagation = p;
    o.trace_id_128bit = wide;
    auto tracer = std::make_shared<Tracer>(o, exporter);
    http::HeaderMap req;
    req.add(":authority", "svc");
    for (auto& [k, v] : in) req.add(k, v);
    SpanPtr span = tracer->startSpan(req, Decision{}, false, false, network::Address(),
                                     std::chrono::system_clock::now());
    std::string hex = span->traceIdHex();
    span->finish();
    return hex;
  };
  using P = TracerOptions::Propagation;
  EXPECT_EQ(start(P::B3, false, {{"b3", "463ac35c9f6413ad-a2fb4a1d1a96d312-0"}}),
            "463ac35c9f6413ad");
  EXPECT_EQ(start(P::B3, false, {{"b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312"}}),
            "463ac35c9f6413ad48485a3953bb6124");
  EXPECT_EQ(start(P::B3, false, {}).size(), 16u);
  EXPECT_EQ(start(P::B3, true, {}).size(), 32u);
  // W3C ids are always 32 digits, a zero high half included.
  EXPECT_EQ(start(P::W3C, false,
                  {{"traceparent", "00-0000000000000000a3ce929d0e0e4736-00f067aa0ba902b7-01"}}),
            "0000000000000000a3ce929d0e0e4736");
  EXPECT_EQ(start(P::W3C, false, {}).size(), 32u);
}

envoy::type::tracing::v3::CustomTag tagProto(const std::string& text) {
  envoy::type::tracing::v3::CustomTag t;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &t)) << text;
  return t;
}

CustomTags tags(std::vector<std::string> texts) {
  google::protobuf::RepeatedPtrField<envoy::type::tracing::v3::CustomTag> protos;
  for (const auto& t : texts) *protos.Add() = tagProto(t);
  auto parsed = parseCustomTags(protos, "x.custom_tags");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : CustomTags{};
}

TEST(CustomTags, RouteTagsJoinAndWinByName) {
  class Keep : public Exporter {
   public:
    void report(SpanData&& s) override { reported.push_back(std::move(s)); }
    void start(event::Dispatcher&) override {}
    std::vector<SpanData> reported;
  };
  auto exporter = std::make_shared<Keep>();
  Tracer tracer(TracerOptions{}, exporter);
  http::HeaderMap req;
  req.add(":authority", "svc");
  req.add("x-team", "blue");
  Decision traced{Reason::Sampling, true};
  auto tagsOf = [&](const CustomTags& hcm, const CustomTags* route) {
    SpanPtr span = tracer.startSpan(req, traced, false, false, network::Address(),
                                    std::chrono::system_clock::now());
    applyCustomTags(*span, &req, hcm, route);
    span->finish();
    std::map<std::string, std::string> out;
    for (auto& [k, v] : exporter->reported.back().tags) out[k] = v;
    out.erase("component");
    return out;
  };
  const CustomTags hcm = tags({R"(tag: "lit" literal { value: "hcm" })",
                               R"(tag: "team" request_header { name: "X-Team" })",
                               R"(tag: "shadowed" literal { value: "hcm" })"});
  using M = std::map<std::string, std::string>;
  EXPECT_EQ(tagsOf(hcm, nullptr), (M{{"lit", "hcm"}, {"team", "blue"}, {"shadowed", "hcm"}}));
  // The route's tag of the same name wins, even when it has no value for this
  // request (its header is absent and it has no default): the connection
  // manager's is not used then either.
  const CustomTags route = tags({R"(tag: "lit" literal { value: "route" })",
                                 R"(tag: "shadowed" request_header { name: "x-absent" })",
                                 R"(tag: "extra" request_header { name: "x-absent" default_value: "d" })"});
  EXPECT_EQ(tagsOf(hcm, &route), (M{{"lit", "route"}, {"team", "blue"}, {"extra", "d"}}));
  // A span that is not sampled takes no tags.
  SpanPtr quiet = tracer.startSpan(req, Decision{}, false, false, network::Address(),
                                   std::chrono::system_clock::now());
  applyCustomTags(*quiet, &req, hcm, &route);
  EXPECT_TRUE(quiet->data().tags.empty());
}

TEST(CustomTags, EnvironmentAtLoadAndMetadataRefused) {
  ::setenv("LEGATE_CUSTOM_TAG_TEST", "from-env", 1);
  ::unsetenv("LEGATE_CUSTOM_TAG_TEST_UNSET");
  const CustomTags t = tags({R"(tag: "e" environment { name: "LEGATE_CUSTOM_TAG_TEST" })",
                             R"(tag: "d" environment { name: "LEGATE_CUSTOM_TAG_TEST_UNSET" default_value: "dv" })",
                             R"(tag: "n" environment { name: "LEGATE_CUSTOM_TAG_TEST_UNSET" })"});
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].value, "from-env");
  EXPECT_EQ(t[1].value, "dv");
  EXPECT_EQ(t[2].value, "");  // kept (it shadows by name), sets nothing
  google::protobuf::RepeatedPtrField<envoy::type::tracing::v3::CustomTag> protos;
  *protos.Add() = tagProto(R"(tag: "ok" literal { value: "v" })");
  *protos.Add() = tagProto(R"(tag: "m" metadata { kind { request {} } metadata_key { key: "k" } })");
  auto parsed = parseCustomTags(protos, "x.custom_tags");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("x.custom_tags[1].metadata"), std::string::npos)
      << parsed.status();
}

}  // namespace
}  // namespace legate::tracing
