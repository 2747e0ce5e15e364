// Stats core, /stats text and JSON renderings, Prometheus exposition, tag
// extraction, sinks.

#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stats/json.h"
#include "stats/prometheus.h"
#include "stats/sink.h"
#include "stats/statsd.h"
#include "stats/status_code_counters.h"
#include "stats/stats.h"
#include "stats/text_format.h"

namespace legate::stats {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

StatsQuery query(std::string_view filter = "", bool used_only = false) {
  auto q = StatsQuery::create(filter, used_only);
  EXPECT_TRUE(q.ok()) << q.status();
  return *q;
}

TEST(StatsCore, CountersAndGaugesAreSharedByName) {
  Store store;
  store.counter("a.b").inc();
  store.counter("a.b").inc(4);
  EXPECT_EQ(store.counter("a.b").value(), 5u);
  Scope scope(store, "cluster.x.");
  scope.gauge("cx_active").inc(3);
  scope.gauge("cx_active").dec();
  EXPECT_EQ(store.gauge("cluster.x.cx_active").value(), 2);
  store.gauge("g").set(-7);
  EXPECT_EQ(store.gauge("g").value(), -7);
  store.counter("a.b").reset();
  EXPECT_EQ(store.counter("a.b").value(), 0u);
}

TEST(StatsCore, HistogramBucketsAndQuantiles) {
  Store store;
  Histogram& h = store.histogram("h");
  for (int i = 1; i <= 100; ++i) h.record(static_cast<uint64_t>(i));
  const auto s = h.snapshot();
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.sum, 5050);
  EXPECT_EQ(s.cumulative[0], 0u);  // <= 0.5
  EXPECT_EQ(s.cumulative[1], 1u);  // <= 1
  EXPECT_EQ(s.cumulative[2], 5u);  // <= 5
  EXPECT_EQ(s.cumulative[6], 100u); // <= 100
  EXPECT_NEAR(s.quantile(0.5), 50, 1);
  EXPECT_NEAR(s.quantile(0.9), 90, 1);
  EXPECT_GE(s.quantile(0), 0.5); // lands in the first non-empty bucket
  EXPECT_LE(s.quantile(0), 1);
  EXPECT_EQ(s.quantile(1), 100);
  EXPECT_EQ(Histogram::Snapshot{}.quantile(0.5), 0);
}

TEST(StatsCore, HistogramOverflowCountsTowardsTotal) {
  Store store;
  Histogram& h = store.histogram("h");
  h.record(5000000); // above the last bound
  const auto s = h.snapshot();
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.cumulative.back(), 0u);
}

TEST(StatsCore, NeverRecordedHistogramSnapshotsAsEmpty) {
  Store store;
  const Histogram& h = store.histogram("idle");
  const auto s = h.snapshot();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.sum, 0);
  ASSERT_FALSE(s.cumulative.empty());
  for (uint64_t c : s.cumulative) EXPECT_EQ(c, 0u);
}

TEST(StatsCore, IterationStaysSortedAsStatsAreAddedBetweenWalks) {
  Store store;
  std::vector<std::string> names;
  const auto walk = [&] {
    names.clear();
    store.forEachCounter([&](const Counter& c) { names.emplace_back(c.name()); });
  };
  store.counter("m");
  store.counter("c");
  walk();
  EXPECT_THAT(names, ::testing::ElementsAre("c", "m"));
  store.counter("z");
  store.counter("a");
  store.counter("c"); // existing: not a second entry
  walk();
  EXPECT_THAT(names, ::testing::ElementsAre("a", "c", "m", "z"));
  // Names longer than one arena chunk still come back whole.
  const std::string long_name(20000, 'q');
  store.counter(long_name).inc(3);
  EXPECT_EQ(store.counter(long_name).value(), 3u);
  walk();
  ASSERT_EQ(names.size(), 5u);
  EXPECT_EQ(names[3], long_name); // between "m" and "z"
  EXPECT_EQ(names[4], "z");
}

TEST(StatNames, SplitAtTheLastDot) {
  EXPECT_EQ(StatName::split("cluster.a.b.upstream_rq"),
            std::make_pair(std::string_view("cluster.a.b."), std::string_view("upstream_rq")));
  EXPECT_EQ(StatName::split("plain"), std::make_pair(std::string_view(), std::string_view("plain")));
  EXPECT_EQ(StatName::split("ends."), std::make_pair(std::string_view("ends."), std::string_view()));
  EXPECT_EQ(StatName::split(""), std::make_pair(std::string_view(), std::string_view()));
}

TEST(StatNames, PiecesAreSharedAndComposeBack) {
  StatName a, b, c;
  ASSERT_TRUE(StatName::intern("cluster.one.upstream_rq_total", a));
  ASSERT_TRUE(StatName::intern("cluster.two.upstream_rq_total", b));
  ASSERT_TRUE(StatName::intern("cluster.one.upstream_cx_total", c));
  EXPECT_EQ(a.suffix, b.suffix); // one copy of the suffix
  EXPECT_EQ(a.prefix, c.prefix); // and of the prefix
  EXPECT_NE(a, b);
  EXPECT_EQ(a.str(), "cluster.one.upstream_rq_total");
  StatName again;
  ASSERT_TRUE(StatName::intern("cluster.one.upstream_rq_total", again));
  EXPECT_EQ(again, a);
  EXPECT_EQ(again.hash(), a.hash());
  EXPECT_EQ(StatName{}.str(), "");
}

TEST(StatNames, OrderIsTheComposedNamesByteOrder) {
  // Pairs where the split points differ, so piecewise order is not enough.
  const std::vector<std::string> names = {
      "a",   "a.",     "a.b",   "a.b.c", "a.bc",  "ab",   "ab.",   "a.b.", "b",  "a.a.z",
      "a.a", "a.a.a",  "",      ".",     "..",    "z.\xff", "z.\x01", "zz",   "a.b.c.d", "a.b.cd"};
  std::vector<StatName> stats;
  for (const auto& n : names) {
    StatName s;
    ASSERT_TRUE(StatName::intern(n, s));
    stats.push_back(s);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    for (size_t j = 0; j < names.size(); ++j) {
      EXPECT_EQ(StatName::less(stats[i], stats[j]), names[i] < names[j])
          << "'" << names[i] << "' vs '" << names[j] << "'";
    }
  }
}

TEST(StatNames, ScopeAndWholeNameReachTheSameStat) {
  // The Store interns prefix + name without composing it when the last '.' is at
  // the junction, and composes it otherwise: either way one name is one stat.
  Store store;
  EXPECT_EQ(&Scope(store, "cluster.a.").counter("upstream_rq_total"),
            &store.counter("cluster.a.upstream_rq_total"));
  EXPECT_EQ(&Scope(store, "cluster.a.").gauge("circuit_breakers.default.cx_open"),
            &store.gauge("cluster.a.circuit_breakers.default.cx_open"));
  EXPECT_EQ(&Scope(store, "http").counter(".rq_total"), &store.counter("http.rq_total"));
  EXPECT_EQ(&Scope(store, "").histogram("plain"), &store.histogram("plain"));
  std::vector<std::string> names;
  store.forEachCounter([&](const Counter& c) { names.emplace_back(c.name()); });
  EXPECT_THAT(names, ::testing::ElementsAre("cluster.a.upstream_rq_total", "http.rq_total"));
}

TEST(StatNames, MatcherJudgesTheWholeNameOfAScopedStat) {
  Store store;
  StoreConfig config;
  config.accept = [](std::string_view n) { return n != "cluster.a.upstream_rq_total"; };
  store.configure(std::move(config));
  Counter& rejected = Scope(store, "cluster.a.").counter("upstream_rq_total");
  Counter& kept = Scope(store, "cluster.a.").counter("upstream_cx_total");
  EXPECT_NE(&rejected, &kept);
  rejected.inc();
  kept.inc();
  std::vector<std::string> names;
  store.forEachCounter([&](const Counter& c) { names.emplace_back(c.name()); });
  EXPECT_THAT(names, ::testing::ElementsAre("cluster.a.upstream_cx_total"));
}

TEST(StatNames, CountersAndGaugesAreSixteenBytes) {
  // The point of the pool: the name costs nothing per stat beyond two ids.
  Store store;
  Counter& c = store.counter("cluster.sized.upstream_rq_total");
  EXPECT_EQ(sizeof(c), 16u);
  EXPECT_EQ(c.name(), "cluster.sized.upstream_rq_total");
  EXPECT_EQ(&store.counter("cluster.sized.upstream_rq_total"), &c);
  // A gauge of the same name is a stat of its own.
  Gauge& g = store.gauge("cluster.sized.upstream_rq_total");
  g.set(5);
  c.inc();
  EXPECT_EQ(c.value(), 1u);
  EXPECT_EQ(g.value(), 5);
  EXPECT_EQ(store.histogram("cluster.sized.upstream_rq_time").name(), "cluster.sized.upstream_rq_time");
}

TEST(TextFormat, SortedCountersAndGaugesThenHistograms) {
  Store store;
  store.counter("z.counter").inc(2);
  store.gauge("a.gauge").set(3);
  store.counter("m.counter");
  store.histogram("b.hist").record(10);
  store.histogram("c.hist");
  const std::string text = renderText(store, StatsQuery());
  EXPECT_EQ(text.substr(0, text.find("b.hist")),
            "a.gauge: 3\nm.counter: 0\nz.counter: 2\n");
  EXPECT_THAT(text, HasSubstr("b.hist: P0(5,5) P25("));
  EXPECT_THAT(text, HasSubstr(" P99.5("));
  EXPECT_THAT(text, HasSubstr(" P100(10,10)\n"));
  EXPECT_THAT(text, HasSubstr("c.hist: No recorded values\n"));
}

TEST(TextFormat, FilterIsAPartialRegexMatch) {
  Store store;
  store.counter("cluster.backend.upstream_rq_total").inc();
  store.counter("cluster.other.upstream_rq_total");
  store.gauge("server.live").set(1);
  EXPECT_EQ(renderText(store, query("backend")), "cluster.backend.upstream_rq_total: 1\n");
  EXPECT_EQ(renderText(store, query("^server\\.")), "server.live: 1\n");
  EXPECT_EQ(renderText(store, query("rq_total$", true)), "cluster.backend.upstream_rq_total: 1\n");
}

TEST(TextFormat, BadRegexIsAnError) {
  auto q = StatsQuery::create("(unclosed", false);
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(q.status().message()), HasSubstr("(unclosed"));
}

TEST(TextFormat, UsedOnly) {
  Store store;
  store.counter("used").inc();
  store.counter("unused");
  store.gauge("zero");
  store.histogram("empty");
  store.histogram("full").record(1);
  const std::string text = renderText(store, query("", true));
  EXPECT_THAT(text, HasSubstr("used: 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("unused")));
  EXPECT_THAT(text, Not(HasSubstr("zero")));
  EXPECT_THAT(text, Not(HasSubstr("empty")));
  EXPECT_THAT(text, HasSubstr("full: P0("));
}

// Envoy's "used": ever written since start, whatever the value is now.
TEST(TextFormat, UsedOnlyMeansEverWrittenNotNonZero) {
  Store store;
  Gauge& up_down = store.gauge("up_down");
  EXPECT_FALSE(up_down.used());
  up_down.inc();
  up_down.dec();
  store.gauge("set_to_zero").set(0);
  store.gauge("never_set");
  Counter& reset = store.counter("reset");
  reset.inc(3);
  store.resetCounters();
  store.counter("by_zero").inc(0);
  store.counter("never_counted");
  EXPECT_TRUE(up_down.used());
  EXPECT_TRUE(reset.used());
  const std::string text = renderText(store, query("", true));
  EXPECT_EQ(text, "by_zero: 0\nreset: 0\nset_to_zero: 0\nup_down: 0\n");
  const std::string prom = renderPrometheus(store, query("up_down", true));
  EXPECT_THAT(prom, HasSubstr("envoy_up_down 0\n"));
  // Without usedonly every stat is listed.
  EXPECT_THAT(renderText(store, query()), HasSubstr("never_set: 0\n"));
}

TEST(TextFormat, Json) {
  Store store;
  store.counter("b").inc(2);
  store.gauge("a").set(-1);
  EXPECT_EQ(renderJson(store, StatsQuery()),
            "{\n \"stats\": [\n  {\n   \"name\": \"a\",\n   \"value\": -1\n  },\n  {\n"
            "   \"name\": \"b\",\n   \"value\": 2\n  }\n ]\n}\n");
  store.histogram("h").record(1);
  store.histogram("none");
  const std::string json = renderJson(store, StatsQuery());
  EXPECT_THAT(json, HasSubstr("\"supported_quantiles\": [\n     0,\n     25,"));
  EXPECT_THAT(json, HasSubstr("\"name\": \"h\""));
  EXPECT_THAT(json, HasSubstr("\"interval\": 1,\n"));
  EXPECT_THAT(json, HasSubstr("\"interval\": null,\n"));
}

TEST(Json, EscapesAndNesting) {
  Json doc = Json::object();
  doc.set("s", "a\"b\\c\n\x01");
  doc.set("n", 1.5);
  doc.set("empty", Json::array());
  EXPECT_EQ(doc.dump(), "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"n\":1.5,\"empty\":[]}");
}

TEST(Prometheus, DefaultTagExtraction) {
  auto t = extractTags("cluster.backend.upstream_cx_total");
  EXPECT_EQ(t.name, "cluster.upstream_cx_total");
  ASSERT_EQ(t.tags.size(), 1u);
  EXPECT_EQ(t.tags[0].first, "envoy.cluster_name");
  EXPECT_EQ(t.tags[0].second, "backend");

  t = extractTags("listener.127.0.0.1_10000.downstream_cx_total");
  EXPECT_EQ(t.name, "listener.downstream_cx_total");
  ASSERT_EQ(t.tags.size(), 1u);
  EXPECT_EQ(t.tags[0].second, "127.0.0.1_10000");

  t = extractTags("listener.[__1]_10000.downstream_cx_total");
  EXPECT_EQ(t.name, "listener.downstream_cx_total");

  t = extractTags("tcp.ingress_tcp.downstream_cx_total");
  EXPECT_EQ(t.name, "tcp.downstream_cx_total");
  EXPECT_EQ(t.tags[0].first, "envoy.tcp_prefix");
  EXPECT_EQ(t.tags[0].second, "ingress_tcp");

  t = extractTags("http.ingress_http.downstream_rq_total");
  EXPECT_EQ(t.name, "http.downstream_rq_total");
  EXPECT_EQ(t.tags[0].first, "envoy.http_conn_manager_prefix");

  t = extractTags("cluster.backend.upstream_rq_200");
  EXPECT_EQ(t.name, "cluster.upstream_rq");
  ASSERT_EQ(t.tags.size(), 2u);
  EXPECT_EQ(t.tags[1].first, "envoy.response_code");
  EXPECT_EQ(t.tags[1].second, "200");

  t = extractTags("listener.0.0.0.0_10000.http.ingress.downstream_rq_2xx");
  EXPECT_EQ(t.name, "listener.http.downstream_rq_xx");
  ASSERT_EQ(t.tags.size(), 3u);
  EXPECT_EQ(t.tags[2].first, "envoy.response_code_class");
  EXPECT_EQ(t.tags[2].second, "2");

  for (const char* plain : {"listener_manager.total_listeners_active", "server.live",
                            "cluster_manager.active_clusters", "listener.admin.downstream_cx_total"}) {
    t = extractTags(plain);
    EXPECT_EQ(t.name, plain);
    EXPECT_TRUE(t.tags.empty()) << plain;
  }
}

TEST(Prometheus, NamesAndEscaping) {
  EXPECT_EQ(prometheusMetricName("cluster.upstream-rq:x"), "envoy_cluster_upstream_rq:x");
  EXPECT_EQ(escapePrometheusLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(Prometheus, Exposition) {
  Store store;
  store.counter("cluster.backend.upstream_cx_total").inc(3);
  store.counter("cluster.web.upstream_cx_total").inc(1);
  store.gauge("server.live").set(1);
  store.counter("tcp.in.downstream_cx_total").inc(2);
  store.counter("cluster.a\"b.upstream_cx_total");
  const std::string out = renderPrometheus(store, StatsQuery());
  EXPECT_THAT(out, HasSubstr("# TYPE envoy_cluster_upstream_cx_total counter\n"
                             "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"a\\\"b\"} 0\n"
                             "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"backend\"} 3\n"
                             "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"web\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("# TYPE envoy_tcp_downstream_cx_total counter\n"
                             "envoy_tcp_downstream_cx_total{envoy_tcp_prefix=\"in\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("# TYPE envoy_server_live gauge\nenvoy_server_live 1\n"));
  // Counters come before gauges.
  EXPECT_LT(out.find("counter\n"), out.find("gauge\n"));
  // Exactly one TYPE line for the family.
  EXPECT_EQ(out.find("# TYPE envoy_cluster_upstream_cx_total"),
            out.rfind("# TYPE envoy_cluster_upstream_cx_total"));
}

TEST(Prometheus, Histogram) {
  Store store;
  Histogram& h = store.histogram("cluster.backend.upstream_rq_time");
  h.record(3);
  h.record(20);
  h.record(10000000);
  store.histogram("server.initialization_time_ms");
  const std::string out = renderPrometheus(store, StatsQuery());
  const std::string l = "{envoy_cluster_name=\"backend\",le=";
  EXPECT_THAT(out, HasSubstr("# TYPE envoy_cluster_upstream_rq_time histogram\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"0.5\"} 0\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"1\"} 0\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"5\"} 1\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"10\"} 1\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"25\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("envoy_cluster_upstream_rq_time_bucket" + l + "\"300000\"} 2\n"));
  EXPECT_THAT(out, HasSubstr("envoy_cluster_upstream_rq_time_bucket" + l + "\"3600000\"} 2\n"
                             "envoy_cluster_upstream_rq_time_bucket" + l + "\"+Inf\"} 3\n"
                             "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"backend\"} 10000023\n"
                             "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"backend\"} 3\n"));
  EXPECT_THAT(out, HasSubstr("envoy_server_initialization_time_ms_bucket{le=\"0.5\"} 0\n"));
  EXPECT_THAT(out, HasSubstr("envoy_server_initialization_time_ms_sum 0\n"
                             "envoy_server_initialization_time_ms_count 0\n"));
}

TEST(Prometheus, TypeClashAndDuplicatesAreLeftOut) {
  Store store;
  store.counter("server.thing").inc();
  store.gauge("server.thing").set(2); // same metric name, other type
  store.counter("cluster.x.upstream_rq_200").inc();
  store.counter("cluster.x.upstream_rq").inc(); // same metric, no response code label: distinct
  const std::string out = renderPrometheus(store, StatsQuery());
  EXPECT_THAT(out, HasSubstr("envoy_server_thing 1\n"));
  EXPECT_THAT(out, Not(HasSubstr("envoy_server_thing 2")));
  EXPECT_THAT(out, Not(HasSubstr("gauge")));
  EXPECT_THAT(out, HasSubstr(
      "envoy_cluster_upstream_rq{envoy_cluster_name=\"x\",envoy_response_code=\"200\"} 1\n"));
}

TEST(Prometheus, FilterAndUsedOnly) {
  Store store;
  store.counter("cluster.a.upstream_cx_total").inc();
  store.counter("cluster.b.upstream_cx_total");
  store.gauge("server.live").set(1);
  const std::string out = renderPrometheus(store, query("cluster", true));
  EXPECT_EQ(out, "# TYPE envoy_cluster_upstream_cx_total counter\n"
                 "envoy_cluster_upstream_cx_total{envoy_cluster_name=\"a\"} 1\n");
}

} // namespace
} // namespace legate::stats

namespace legate::stats {
namespace {

TEST(TagProducer, MoreDefaultTags) {
  auto t = extractTags("vhost.api.vcluster.slow.upstream_rq_503");
  EXPECT_EQ(t.name, "vhost.vcluster.upstream_rq");
  ASSERT_EQ(t.tags.size(), 3u);
  EXPECT_EQ(t.tags[0], (std::pair<std::string, std::string>("envoy.virtual_host", "api")));
  EXPECT_EQ(t.tags[1], (std::pair<std::string, std::string>("envoy.virtual_cluster", "slow")));
  EXPECT_EQ(t.tags[2], (std::pair<std::string, std::string>("envoy.response_code", "503")));

  t = extractTags("listener_manager.worker_1.dispatcher.loop_duration_us");
  EXPECT_EQ(t.name, "listener_manager.dispatcher.loop_duration_us");
  EXPECT_EQ(t.tags[0], (std::pair<std::string, std::string>("envoy.worker_id", "1")));

  t = extractTags("http.ingress.user_agent.ios.downstream_cx_total");
  EXPECT_EQ(t.name, "http.user_agent.downstream_cx_total");
  ASSERT_EQ(t.tags.size(), 2u);
  EXPECT_EQ(t.tags[1], (std::pair<std::string, std::string>("envoy.http_user_agent", "ios")));

  t = extractTags("listener.127.0.0.1_443.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(t.name, "listener.ssl.ciphers");
  EXPECT_EQ(t.tags[1].first, "envoy.ssl_cipher");
  EXPECT_EQ(t.tags[1].second, "ECDHE-RSA-AES128-GCM-SHA256");

  EXPECT_GE(TagProducer::defaultTagNames().size(), 25u);
}

TEST(TagProducer, CustomTagsFixedValuesAndNoDefaults) {
  auto p = TagProducer::create({{"my.shard", R"(\.shard\.((\d+)\.))", "", false},
                                {"envoy.cluster_name", "", "", false},
                                {"region", "", "eu", true}},
                               /*use_default_tags=*/false, "stats_config");
  ASSERT_TRUE(p.ok()) << p.status();
  auto t = (*p)->produce("cluster.web.shard.7.upstream_rq_200");
  // Only the named default (cluster_name) runs: no response_code extraction.
  EXPECT_EQ(t.name, "cluster.shard.upstream_rq_200");
  ASSERT_EQ(t.tags.size(), 3u);
  EXPECT_EQ(t.tags[0], (std::pair<std::string, std::string>("my.shard", "7")));
  EXPECT_EQ(t.tags[2], (std::pair<std::string, std::string>("region", "eu")));

  auto bad = TagProducer::create({{"x", "(", "", false}}, true, "stats_config");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("stats_config.stats_tags[0].regex"));
  bad = TagProducer::create({{"not.a.default", "", "", false}}, true, "stats_config");
  EXPECT_FALSE(bad.ok());
}

TEST(StoreConfig, MatcherRejectsAndBucketsApply) {
  Store store;
  StoreConfig config;
  config.accept = [](std::string_view n) { return n.find("secret") == std::string_view::npos; };
  config.histogram_buckets.emplace_back(
      [](std::string_view n) { return n.starts_with("fast."); },
      std::make_shared<const Histogram::Bounds>(Histogram::Bounds{1, 2, 3}));
  store.configure(std::move(config));
  store.counter("secret.a").inc(5);
  store.counter("secret.b").inc(1);
  store.counter("public.a").inc(2);
  int n = 0;
  store.forEachCounter([&](const Counter& c) {
    ++n;
    EXPECT_EQ(c.name(), "public.a");
  });
  EXPECT_EQ(n, 1);
  Histogram& h = store.histogram("fast.h");
  EXPECT_EQ(h.bounds().size(), 3u);
  h.record(2);
  h.record(9);
  const std::string prom = renderPrometheus(store, StatsQuery());
  EXPECT_THAT(prom, HasSubstr("envoy_fast_h_bucket{le=\"2\"} 1\n"));
  EXPECT_THAT(prom, HasSubstr("envoy_fast_h_bucket{le=\"3\"} 1\n"));
  EXPECT_THAT(prom, HasSubstr("envoy_fast_h_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_THAT(prom, HasSubstr("envoy_fast_h_count 2\n"));
  EXPECT_EQ(store.histogram("slow.h").bounds().size(), Histogram::defaultBounds()->size());
}

// A stat block as an owner declares one (cluster.h's ClusterStats is the real one).
struct TestBlock {
  TestBlock(Store&, std::string_view) {}
  void visitStats(StatVisitor& v) {
    v.counter(rq_total, "rq_total");
    v.gauge(cx_active, "cx_active");
    v.histogram(rq_time, "rq_time", Histogram::Unit::Milliseconds);
    v.counter(secret_count, "secret_count");
  }
  Counter rq_total;
  Gauge cx_active;
  Histogram rq_time;
  Counter secret_count;
};

std::vector<std::string> counterNames(const Store& store) {
  std::vector<std::string> names;
  store.forEachCounter([&](const Counter& c) { names.push_back(c.name()); });
  return names;
}

TEST(StatBlocks, MembersAreTheStatsOfTheirNames) {
  Store store;
  TestBlock& b = store.block<TestBlock>("cluster.a.");
  EXPECT_EQ(&store.block<TestBlock>("cluster.a."), &b); // one block per prefix
  EXPECT_NE(&store.block<TestBlock>("cluster.b."), &b);
  b.rq_total.inc(3);
  EXPECT_EQ(&store.counter("cluster.a.rq_total"), &b.rq_total);
  EXPECT_EQ(&Scope(store, "cluster.a.").gauge("cx_active"), &b.cx_active);
  EXPECT_EQ(&store.histogram("cluster.a.rq_time"), &b.rq_time);
  EXPECT_EQ(b.rq_total.name(), "cluster.a.rq_total");
  EXPECT_EQ(b.rq_time.unit(), Histogram::Unit::Milliseconds);
  // A name of another kind, or not in the block, is a stat of its own.
  EXPECT_NE(static_cast<void*>(&store.counter("cluster.a.cx_active")), static_cast<void*>(&b.cx_active));
  store.counter("cluster.a.other").inc();
  EXPECT_THAT(counterNames(store),
              ::testing::ElementsAre("cluster.a.cx_active", "cluster.a.other", "cluster.a.rq_total",
                                     "cluster.a.secret_count", "cluster.b.rq_total",
                                     "cluster.b.secret_count"));
  store.resetCounters();
  EXPECT_EQ(b.rq_total.value(), 0u);
}

TEST(StatBlocks, WalksStaySortedAsBlocksAndStatsAppear) {
  Store store;
  store.counter("m");
  EXPECT_THAT(counterNames(store), ::testing::ElementsAre("m"));
  store.block<TestBlock>("z.");
  store.counter("b");
  store.block<TestBlock>("a.");
  EXPECT_THAT(counterNames(store),
              ::testing::ElementsAre("a.rq_total", "a.secret_count", "b", "m", "z.rq_total",
                                     "z.secret_count"));
  std::vector<std::string> gauges;
  store.forEachGauge([&](const Gauge& g) { gauges.push_back(g.name()); });
  EXPECT_THAT(gauges, ::testing::ElementsAre("a.cx_active", "z.cx_active"));
  const std::string prom = renderPrometheus(store, StatsQuery());
  EXPECT_THAT(prom, HasSubstr("envoy_a_rq_total 0\n"));
  EXPECT_THAT(prom, HasSubstr("envoy_z_rq_time_count 0\n"));
}

TEST(StatBlocks, MatcherAndBucketsApplyToMembers) {
  Store store;
  StoreConfig config;
  config.accept = [](std::string_view n) { return n.find("secret") == std::string_view::npos; };
  config.histogram_buckets.emplace_back(
      [](std::string_view n) { return n.ends_with(".rq_time"); },
      std::make_shared<const Histogram::Bounds>(Histogram::Bounds{1, 2, 3}));
  store.configure(std::move(config));
  TestBlock& b = store.block<TestBlock>("c.");
  b.secret_count.inc(); // updated, never exported
  EXPECT_THAT(counterNames(store), ::testing::ElementsAre("c.rq_total"));
  EXPECT_NE(&store.counter("c.secret_count"), &b.secret_count);
  EXPECT_EQ(b.rq_time.bounds().size(), 3u);
}

TEST(StatBlocks, AnOlderStatOfTheSameNameStaysTheOneExported) {
  Store store;
  Counter& older = store.counter("d.rq_total");
  older.inc(7);
  TestBlock& b = store.block<TestBlock>("d.");
  b.rq_total.inc(1);
  EXPECT_EQ(&store.counter("d.rq_total"), &older);
  EXPECT_THAT(counterNames(store), ::testing::ElementsAre("d.rq_total", "d.secret_count"));
  store.forEachCounter([&](const Counter& c) {
    if (c.name() == "d.rq_total") {
      EXPECT_EQ(c.value(), 7u);
    }
  });
}

TEST(StatBlocks, MemberHistogramsFeedTheSampleQueue) {
  Store store;
  std::vector<MetricSnapshot> got;
  TestBlock& before = store.block<TestBlock>("e.");
  std::vector<std::unique_ptr<Sink>> sinks;
  struct Capture : Sink {
    std::vector<MetricSnapshot>* out;
    explicit Capture(std::vector<MetricSnapshot>* o) : out(o) {}
    void flush(const MetricSnapshot& s) override { out->push_back(s); }
  };
  sinks.push_back(std::make_unique<Capture>(&got));
  Flusher flusher(store, std::move(sinks));
  TestBlock& after = store.block<TestBlock>("f.");
  before.rq_time.record(4);
  after.rq_time.record(5);
  flusher.flush();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].samples.size(), 2u);
}

} // namespace
} // namespace legate::stats

namespace legate::stats {
namespace {

struct CaptureSink : Sink {
  std::vector<MetricSnapshot>* out;
  explicit CaptureSink(std::vector<MetricSnapshot>* o) : out(o) {}
  void flush(const MetricSnapshot& s) override { out->push_back(s); }
};

TEST(Flusher, CounterDeltasUsedGaugesAndSamplesFromManyThreads) {
  Store store;
  std::vector<MetricSnapshot> got;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(std::make_unique<CaptureSink>(&got));
  Counter& c = store.counter("c");
  store.counter("never");
  Gauge& g = store.gauge("g");
  Histogram& h = store.histogram("h");
  Flusher flusher(store, std::move(sinks));
  c.inc(5);
  g.set(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 1000; ++i) h.record(7);
    });
  }
  for (auto& t : threads) t.join();
  flusher.flush();
  c.inc(2);
  g.set(0); // still sent: it was used
  flusher.flush();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got[0].counters.size(), 1u);
  EXPECT_EQ(got[0].counters[0].delta, 5u);
  EXPECT_EQ(got[1].counters[0].delta, 2u);
  ASSERT_EQ(got[1].gauges.size(), 1u);
  EXPECT_EQ(got[0].samples.size(), 4000u);
  EXPECT_TRUE(got[1].samples.empty());
}

TEST(Statsd, LineFormats) {
  auto plain = StatsdSink::udp("127.0.0.1:9", StatsdSink::Flavor::Statsd, "", 0,
                               *TagProducer::defaultProducer());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->line("cluster.a.upstream_rq_200", "3", "c"), "envoy.cluster.a.upstream_rq_200:3|c");
  auto dog = StatsdSink::udp("[::1]:9", StatsdSink::Flavor::DogStatsd, "p", 0,
                             *TagProducer::defaultProducer());
  ASSERT_TRUE(dog.ok());
  EXPECT_EQ((*dog)->line("cluster.a.upstream_rq_200", "3", "c"),
            "p.cluster.upstream_rq:3|c|#envoy.cluster_name:a,envoy.response_code:200");
  EXPECT_EQ((*dog)->line("server.live", "1", "g"), "p.server.live:1|g");
  EXPECT_FALSE(StatsdSink::udp("nope", StatsdSink::Flavor::Statsd, "", 0,
                               *TagProducer::defaultProducer()).ok());
}

TEST(StatusCodeCounters, MadeOnFirstUse) {
  Store store;
  StatusCodeCounters codes(store, "cluster.a.", "upstream_rq_");
  codes.inc(200);
  codes.inc(200);
  codes.inc(503);
  codes.inc(42); // ignored
  EXPECT_EQ(store.counter("cluster.a.upstream_rq_200").value(), 2u);
  EXPECT_EQ(store.counter("cluster.a.upstream_rq_503").value(), 1u);
  int n = 0;
  store.forEachCounter([&](const Counter&) { ++n; });
  EXPECT_EQ(n, 2);
}

} // namespace
} // namespace legate::stats
