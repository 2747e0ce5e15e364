#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "accesslog/access_log.h"
#include "accesslog/formatter.h"
#include "accesslog/filter.h"
#include "accesslog/log_file.h"
#include "config/extension_registry.h"
#include "envoy/config/accesslog/v3/accesslog.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/core/v3/substitution_format_string.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "stats/stats.h"

namespace legate::accesslog {
namespace {

StreamInfo sample() {
  StreamInfo i;
  i.start_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  i.downstream_remote = *network::Address::fromIpPort("127.0.0.9", 5555);
  i.downstream_local = *network::Address::fromIpPort("127.0.0.1", 10000);
  i.upstream_host = *network::Address::fromIpPort("127.0.0.1", 8080);
  i.upstream_cluster = "backend";
  i.bytes_received = 12;
  i.bytes_sent = 34;
  i.connection_id = 7;
  return i;
}

std::string fmt(const std::string& f, const StreamInfo& i) {
  auto formatter = parseTextFormat(f);
  EXPECT_TRUE(formatter.ok()) << formatter.status();
  return formatter.ok() ? (*formatter)->format(i) : "";
}

TEST(FormatterTest, TcpOperators) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
                "%DOWNSTREAM_LOCAL_PORT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %BYTES_RECEIVED% "
                "%BYTES_SENT% %CONNECTION_ID%",
                i),
            "127.0.0.9:5555 127.0.0.9 10000 127.0.0.1:8080 backend 12 34 7");
}

TEST(FormatterTest, StartTimeDefaultAndCustom) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%START_TIME%", i), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(fmt("%START_TIME(%Y/%m/%d %s %3f)%", i), "2023/11/14 1700000000 123");
}

TEST(FormatterTest, ResponseFlagsAndEmptyValues) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("[%RESPONSE_FLAGS%] [%REQ(:PATH)%]", i), "[-] [-]");
  i.setResponseFlag(kUpstreamConnectionFailure);
  i.setResponseFlag(kUpstreamRetryLimitExceeded);
  EXPECT_EQ(fmt("%RESPONSE_FLAGS%", i), "UF,URX");
}

TEST(FormatterTest, TruncationAndLiteralPercent) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%UPSTREAM_CLUSTER:3% 100% sure", i), "bac 100% sure");
}

TEST(FormatterTest, UnknownOperatorIsAnError) {
  auto f = parseTextFormat("%NOT_AN_OPERATOR%");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("NOT_AN_OPERATOR"), std::string::npos);
  EXPECT_FALSE(parseTextFormat("%REQ(%").ok());
}

TEST(FormatterTest, DefaultFormatRendersForTcp) {
  StreamInfo i = sample();
  const std::string line = fmt(kDefaultFormat, i);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_NE(line.find("\"- - -\" 0 - 12 34"), std::string::npos) << line;
  EXPECT_NE(line.find("\"127.0.0.1:8080\""), std::string::npos) << line;
}

TEST(FormatterTest, JsonFormatTypesNumbersAndEscapes) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["bytes"].set_string_value("%BYTES_SENT%");
  (*s.mutable_fields())["cluster"].set_string_value("c=%UPSTREAM_CLUSTER%");
  (*s.mutable_fields())["path"].set_string_value("%REQ(:PATH)%");
  (*s.mutable_fields())["fixed"].set_number_value(1);
  StreamInfo i = sample();
  i.upstream_cluster = "a\"b";
  auto f = parseJsonFormat(s, false, "json_format");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->format(i), "{\"bytes\":34,\"cluster\":\"c=a\\\"b\",\"fixed\":1,\"path\":null}\n");
  auto omit = parseJsonFormat(s, true, "json_format");
  ASSERT_TRUE(omit.ok());
  EXPECT_EQ((*omit)->format(i).find("path"), std::string::npos);
}

} // namespace
} // namespace legate::accesslog

namespace legate::accesslog {
namespace {

TEST(FormatterTest, HttpHeaderOperatorsWithAlternatives) {
  StreamInfo i = sample();
  http::HeaderMap req;
  req.add(":path", "/now");
  req.add("x-envoy-original-path", "/before");
  req.add("User-Agent", "curl");
  http::HeaderMap resp;
  resp.add(":status", "200");
  resp.add("x-served-by", "b1");
  i.request_headers = &req;
  i.response_headers = &resp;
  EXPECT_EQ(fmt("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(user-agent)% %RESP(X-Served-By)% "
                "%REQ(missing)% %TRAILER(grpc-status)%",
                i),
            "/before curl b1 - -");
  req.remove("x-envoy-original-path");
  EXPECT_EQ(fmt("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", i), "/now");
}

} // namespace
} // namespace legate::accesslog


namespace legate::accesslog {
namespace {

using std::chrono::milliseconds;

TEST(FormatterTest, DurationOperators) {
  StreamInfo i = sample();
  const auto t0 = std::chrono::steady_clock::now();
  i.start_steady = t0;
  EXPECT_EQ(fmt("%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%", i), "- - -");
  i.last_request_rx = t0 + milliseconds(5);
  i.first_upstream_rx = t0 + milliseconds(7);
  EXPECT_EQ(fmt("%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%", i), "5 7 -");
  i.end_steady = t0 + milliseconds(20);
  EXPECT_EQ(fmt("%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION% %DURATION%", i),
            "5 7 13 20");
}

TEST(FormatterTest, DurationOperatorsAreJsonNumbers) {
  google::protobuf::Struct s;
  (*s.mutable_fields())["rq"].set_string_value("%REQUEST_DURATION%");
  (*s.mutable_fields())["rs"].set_string_value("%RESPONSE_DURATION%");
  StreamInfo i = sample();
  i.last_request_rx = i.start_steady + milliseconds(3);
  auto f = parseJsonFormat(s, false, "json_format");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->format(i), "{\"rq\":3,\"rs\":null}\n");
}

TEST(FormatterTest, DetailsAttemptsSniAndRoute) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%RESPONSE_CODE_DETAILS% %UPSTREAM_REQUEST_ATTEMPT_COUNT% "
                "%REQUESTED_SERVER_NAME% %ROUTE_NAME%",
                i),
            "- 1 - -");
  i.response_code_details = "via_upstream";
  i.route_name = "r1";
  i.rare().requested_server_name = "example.com";
  EXPECT_EQ(fmt("%RESPONSE_CODE_DETAILS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%", i),
            "via_upstream example.com r1");
  i.upstream_host = network::Address();
  EXPECT_EQ(fmt("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", i), "0");
  i.upstream_request_attempt_count = 3;
  EXPECT_EQ(fmt("%UPSTREAM_REQUEST_ATTEMPT_COUNT%", i), "3");
}

TEST(FormatterTest, AddressPortAndConnectionVariants) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_CONNECTION_ID% %UPSTREAM_PROTOCOL%", i),
            "- - -");
  i.upstream_local = *network::Address::fromIpPort("127.0.0.2", 4444);
  i.upstream_connection_id = 12;
  i.upstream_protocol = "HTTP/1.1";
  EXPECT_EQ(fmt("%UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% "
                "%UPSTREAM_LOCAL_PORT% %UPSTREAM_REMOTE_ADDRESS% "
                "%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_REMOTE_PORT% "
                "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_PORT% "
                "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %CONNECTION_ID% %UPSTREAM_CONNECTION_ID% "
                "%UPSTREAM_PROTOCOL% %VIRTUAL_CLUSTER_NAME% %STREAM_ID%",
                i),
            "127.0.0.2:4444 127.0.0.2 4444 127.0.0.1:8080 127.0.0.1 8080 127.0.0.9:5555 5555 "
            "127.0.0.1 7 12 HTTP/1.1 - -");
  http::HeaderMap req, resp;
  req.add(":method", "GET");
  req.add("x-request-id", "abc");
  resp.add(":status", "200");
  i.request_headers = &req;
  i.response_headers = &resp;
  EXPECT_EQ(fmt("%STREAM_ID% %REQUEST_HEADERS_BYTES% %RESPONSE_HEADERS_BYTES% "
                "%RESPONSE_TRAILERS_BYTES%",
                i),
            "abc 25 10 -");
  const std::string id = fmt("%UNIQUE_ID%", i);
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                              "[0-9a-f]{12}")))
      << id;
  EXPECT_NE(id, fmt("%UNIQUE_ID%", i));
}

TEST(FormatterTest, StartTimeEnvoySpecifiers) {
  StreamInfo i = sample();
  i.start_time += std::chrono::microseconds(456) + std::chrono::nanoseconds(789);
  EXPECT_EQ(fmt("%START_TIME(%s.%3f)%", i), "1700000000.123");
  EXPECT_EQ(fmt("%START_TIME(%s.%6f)%", i), "1700000000.123456");
  EXPECT_EQ(fmt("%START_TIME(%s.%9f)%", i), "1700000000.123456789");
  EXPECT_EQ(fmt("%START_TIME(%f)%", i), "123456789");
  EXPECT_EQ(fmt("%START_TIME(%1f|%2f)%", i), "1|12");
  EXPECT_EQ(fmt("%START_TIME(%Y-%m-%dT%H:%M:%E6SZ)%", i), "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(fmt("%START_TIME(%Ez %a %b %j %%s)%", i), "+00:00 Tue Nov 318 %s");
}

TEST(FormatterTest, OmitEmptyValuesInText) {
  envoy::config::core::v3::SubstitutionFormatString proto;
  proto.mutable_text_format_source()->set_inline_string("[%REQ(:PATH)%] %BYTES_SENT%");
  proto.set_omit_empty_values(true);
  auto f = fromProto(proto, true);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->format(sample()), "[] 34");
}

TEST(FormatterTest, DynamicMetadataTextAndTyped) {
  StreamInfo i = sample();
  EXPECT_EQ(fmt("%DYNAMIC_METADATA(ns:k)%", i), "-");
  auto md = std::make_shared<envoy::config::core::v3::Metadata>();
  google::protobuf::Struct& ns = (*md->mutable_filter_metadata())["ns"];
  (*ns.mutable_fields())["s"].set_string_value("hello world");
  (*ns.mutable_fields())["n"].set_number_value(3);
  google::protobuf::Struct& inner = *(*ns.mutable_fields())["o"].mutable_struct_value();
  (*inner.mutable_fields())["b"].set_bool_value(true);
  i.rare().dynamic_metadata = md;
  EXPECT_EQ(fmt("%DYNAMIC_METADATA(ns:s)% %DYNAMIC_METADATA(ns:s):5% %DYNAMIC_METADATA(ns:n)% "
                "%DYNAMIC_METADATA(ns:o:b)% %DYNAMIC_METADATA(ns:o)% %DYNAMIC_METADATA(ns:nope)% "
                "%DYNAMIC_METADATA(other)%",
                i),
            "hello world hello 3 true {\"b\":true} - -");
  google::protobuf::Struct s;
  (*s.mutable_fields())["all"].set_string_value("%DYNAMIC_METADATA(ns)%");
  (*s.mutable_fields())["n"].set_string_value("%DYNAMIC_METADATA(ns:n)%");
  (*s.mutable_fields())["s"].set_string_value("%DYNAMIC_METADATA(ns:s)%");
  auto f = parseJsonFormat(s, false, "json_format");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->format(i), "{\"all\":{\"n\":3,\"o\":{\"b\":true},\"s\":\"hello world\"},"
                             "\"n\":3,\"s\":\"hello world\"}\n");
}

TEST(FormatterTest, JsonNestedDictionariesAndOmitEmpty) {
  google::protobuf::Struct s;
  google::protobuf::Struct& up = *(*s.mutable_fields())["upstream"].mutable_struct_value();
  (*up.mutable_fields())["host"].set_string_value("%UPSTREAM_HOST%");
  (*up.mutable_fields())["port"].set_string_value("%UPSTREAM_REMOTE_PORT%");
  google::protobuf::Struct& rq = *(*s.mutable_fields())["request"].mutable_struct_value();
  (*rq.mutable_fields())["path"].set_string_value("%REQ(:PATH)%");
  (*s.mutable_fields())["code"].set_string_value("%RESPONSE_CODE%");
  StreamInfo i = sample();
  i.response_code = 200;
  auto f = parseJsonFormat(s, false, "json_format");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->format(i), "{\"code\":200,\"request\":{\"path\":null},"
                             "\"upstream\":{\"host\":\"127.0.0.1:8080\",\"port\":8080}}\n");
  auto omit = parseJsonFormat(s, true, "json_format");
  ASSERT_TRUE(omit.ok());
  EXPECT_EQ((*omit)->format(i),
            "{\"code\":200,\"upstream\":{\"host\":\"127.0.0.1:8080\",\"port\":8080}}\n");
  (*rq.mutable_fields())["bad"].set_string_value("%NOPE%");
  (*s.mutable_fields())["request"].mutable_struct_value()->CopyFrom(rq);
  auto bad = parseJsonFormat(s, false, "json_format");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "json_format.request.bad: unknown or unsupported format operator '%NOPE%'");
}

TEST(FormatterTest, TraceId) {
  StreamInfo i = sample();
  // No span (no tracer, or TCP): "-", and null in JSON.
  EXPECT_EQ(fmt("[%TRACE_ID%]", i), "[-]");
  google::protobuf::Struct json;
  (*json.mutable_fields())["trace"].set_string_value("%TRACE_ID%");
  auto jf = parseJsonFormat(json, false, "json_format");
  ASSERT_TRUE(jf.ok()) << jf.status();
  EXPECT_EQ((*jf)->format(i), "{\"trace\":null}\n");
  // The span's id as its tracer writes it.
  i.rare().trace_id = "463ac35c9f6413ad48485a3953bb6124";
  EXPECT_EQ(fmt("[%TRACE_ID%]", i), "[463ac35c9f6413ad48485a3953bb6124]");
  EXPECT_EQ((*jf)->format(i), "{\"trace\":\"463ac35c9f6413ad48485a3953bb6124\"}\n");
  // An argument is an error, as for the other plain operators.
  EXPECT_FALSE(parseTextFormat("%TRACE_ID(x)%").ok());
}

TEST(FormatterTest, RefusedOperatorsAreNamed) {
  for (const char* op : {"%FILTER_STATE(k)%", "%UPSTREAM_WIRE_BYTES_SENT%",
                         "%DOWNSTREAM_PEER_SUBJECT%", "%CLUSTER_METADATA(a:b)%"}) {
    auto f = parseTextFormat(op);
    ASSERT_FALSE(f.ok()) << op;
    EXPECT_NE(f.status().message().find(std::string(op).substr(0, std::string(op).find('('))),
              std::string::npos)
        << f.status();
    EXPECT_NE(f.status().message().find("not implemented by legate"), std::string::npos)
        << f.status();
  }
}

// ---- Filters ---------------------------------------------------------------

envoy::config::accesslog::v3::AccessLogFilter parseFilter(const std::string& text) {
  envoy::config::accesslog::v3::AccessLogFilter f;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &f)) << text;
  return f;
}

FilterPtr makeFilter(const std::string& text, RandomFn random = nullptr) {
  auto f = createFilter(parseFilter(text), "f", std::move(random));
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

std::string filterError(const std::string& text) {
  auto f = createFilter(parseFilter(text), "access_log[0].filter");
  EXPECT_FALSE(f.ok());
  return f.ok() ? "" : std::string(f.status().message());
}

StreamInfo withCode(uint32_t code) {
  StreamInfo i = sample();
  i.response_code = code;
  return i;
}

TEST(FilterTest, StatusCodeComparisons) {
  auto ge = makeFilter("status_code_filter { comparison { op: GE value { default_value: 500 "
                       "runtime_key: \"ignored\" } } }");
  EXPECT_FALSE(ge->evaluate(withCode(200)));
  EXPECT_FALSE(ge->evaluate(withCode(499)));
  EXPECT_TRUE(ge->evaluate(withCode(500)));
  EXPECT_TRUE(ge->evaluate(withCode(503)));
  auto le = makeFilter("status_code_filter { comparison { op: LE value { default_value: 399 } } }");
  EXPECT_TRUE(le->evaluate(withCode(200)));
  EXPECT_FALSE(le->evaluate(withCode(404)));
  auto eq = makeFilter("status_code_filter { comparison { op: EQ value { default_value: 404 } } }");
  EXPECT_TRUE(eq->evaluate(withCode(404)));
  EXPECT_FALSE(eq->evaluate(withCode(403)));
  // EQ is the proto default op; no value is 0 (local replies before a code exist).
  auto zero = makeFilter("status_code_filter { comparison { } }");
  EXPECT_TRUE(zero->evaluate(withCode(0)));
  EXPECT_FALSE(zero->evaluate(withCode(200)));
}

TEST(FilterTest, DurationComparisons) {
  StreamInfo i = sample();
  i.end_steady = i.start_steady + milliseconds(250);
  EXPECT_TRUE(makeFilter("duration_filter { comparison { op: GE value { default_value: 100 } } }")
                  ->evaluate(i));
  EXPECT_FALSE(makeFilter("duration_filter { comparison { op: LE value { default_value: 100 } } }")
                   ->evaluate(i));
  EXPECT_TRUE(makeFilter("duration_filter { comparison { op: EQ value { default_value: 250 } } }")
                  ->evaluate(i));
}

TEST(FilterTest, NotHealthCheckAlwaysLogs) {
  // legate has no health-check responder yet: no stream is a health check.
  EXPECT_TRUE(makeFilter("not_health_check_filter {}")->evaluate(sample()));
}

TEST(FilterTest, RuntimeSamplesAgainstRandomValue) {
  uint64_t next = 0;
  auto random = [&next] { return next; };
  auto half = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 50 } }",
                         random);
  StreamInfo i = sample();
  next = 49;
  EXPECT_TRUE(half->evaluate(i));
  next = 50;
  EXPECT_FALSE(half->evaluate(i));
  next = 149; // modulo the denominator
  EXPECT_TRUE(half->evaluate(i));
  auto tiny = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 1 "
                         "denominator: TEN_THOUSAND } }",
                         random);
  next = 0;
  EXPECT_TRUE(tiny->evaluate(i));
  next = 1;
  EXPECT_FALSE(tiny->evaluate(i));
  auto million = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 10 "
                            "denominator: MILLION } }",
                            random);
  next = 1000009;
  EXPECT_TRUE(million->evaluate(i));
  next = 10;
  EXPECT_FALSE(million->evaluate(i));
  // No percent_sampled: 0%.
  next = 0;
  EXPECT_FALSE(makeFilter("runtime_filter { runtime_key: \"k\" }", random)->evaluate(i));
  // The default thread-local source stays within bounds.
  auto all = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 100 } }");
  auto none = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 0 } }");
  for (int n = 0; n < 100; ++n) {
    EXPECT_TRUE(all->evaluate(i));
    EXPECT_FALSE(none->evaluate(i));
  }
}

TEST(FilterTest, RuntimeUsesRequestIdUnlessIndependent) {
  int calls = 0;
  auto random = [&calls] {
    ++calls;
    return uint64_t{0};
  };
  http::HeaderMap req;
  req.add("x-request-id", "a0b1c2d3-0000-4000-8000-000000000001");
  StreamInfo i = sample();
  i.request_headers = &req;
  auto shared = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: 37 } }",
                           random);
  const bool first = shared->evaluate(i);
  for (int n = 0; n < 10; ++n) EXPECT_EQ(shared->evaluate(i), first);
  EXPECT_EQ(calls, 0);
  auto independent = makeFilter("runtime_filter { runtime_key: \"k\" percent_sampled { numerator: "
                                "37 } use_independent_randomness: true }",
                                random);
  EXPECT_TRUE(independent->evaluate(i));
  EXPECT_EQ(calls, 1);
}

TEST(FilterTest, AndOrCombinations) {
  const std::string is5xx =
      "status_code_filter { comparison { op: GE value { default_value: 500 } } }";
  const std::string slow =
      "duration_filter { comparison { op: GE value { default_value: 100 } } }";
  auto both = makeFilter("and_filter { filters { " + is5xx + " } filters { " + slow + " } }");
  auto either = makeFilter("or_filter { filters { " + is5xx + " } filters { " + slow + " } }");
  StreamInfo fast_ok = withCode(200);
  fast_ok.end_steady = fast_ok.start_steady + milliseconds(1);
  StreamInfo fast_err = withCode(503);
  fast_err.end_steady = fast_err.start_steady + milliseconds(1);
  StreamInfo slow_ok = withCode(200);
  slow_ok.end_steady = slow_ok.start_steady + milliseconds(500);
  StreamInfo slow_err = withCode(502);
  slow_err.end_steady = slow_err.start_steady + milliseconds(500);
  EXPECT_FALSE(both->evaluate(fast_ok));
  EXPECT_FALSE(both->evaluate(fast_err));
  EXPECT_FALSE(both->evaluate(slow_ok));
  EXPECT_TRUE(both->evaluate(slow_err));
  EXPECT_FALSE(either->evaluate(fast_ok));
  EXPECT_TRUE(either->evaluate(fast_err));
  EXPECT_TRUE(either->evaluate(slow_ok));
  EXPECT_TRUE(either->evaluate(slow_err));
  // Nested: (5xx and slow) or a flag.
  auto nested = makeFilter("or_filter { filters { and_filter { filters { " + is5xx +
                           " } filters { " + slow + " } } } filters { response_flag_filter { "
                           "flags: \"UF\" } } }");
  EXPECT_TRUE(nested->evaluate(slow_err));
  EXPECT_FALSE(nested->evaluate(fast_err));
  fast_err.setResponseFlag(kUpstreamConnectionFailure);
  EXPECT_TRUE(nested->evaluate(fast_err));
  // Errors inside name the nested path; fewer than two filters is an error.
  EXPECT_NE(filterError("and_filter { filters { " + is5xx + " } filters { extension_filter {} } }")
                .find("access_log[0].filter.and_filter.filters[1].extension_filter"),
            std::string::npos);
  EXPECT_NE(filterError("or_filter { filters { " + is5xx + " } }").find("or_filter.filters"),
            std::string::npos);
}

TEST(FilterTest, HeaderMatchers) {
  http::HeaderMap req;
  req.add(":path", "/api/v1/users");
  req.add("x-tenant", "Acme");
  req.add("x-multi", "a");
  req.add("x-multi", "b");
  StreamInfo i = sample();
  i.request_headers = &req;
  auto eval = [&i](const std::string& matcher) {
    return makeFilter("header_filter { header { " + matcher + " } }")->evaluate(i);
  };
  EXPECT_TRUE(eval("name: \"x-tenant\""));   // no specifier: present
  EXPECT_FALSE(eval("name: \"x-missing\""));
  EXPECT_TRUE(eval("name: \"X-Tenant\" present_match: true"));
  EXPECT_TRUE(eval("name: \"x-missing\" present_match: false"));
  EXPECT_FALSE(eval("name: \"x-tenant\" present_match: false"));
  EXPECT_TRUE(eval("name: \"x-tenant\" exact_match: \"Acme\""));
  EXPECT_FALSE(eval("name: \"x-tenant\" exact_match: \"acme\""));
  EXPECT_TRUE(eval("name: \":path\" prefix_match: \"/api/\""));
  EXPECT_TRUE(eval("name: \":path\" suffix_match: \"/users\""));
  EXPECT_TRUE(eval("name: \":path\" contains_match: \"/v1/\""));
  EXPECT_FALSE(eval("name: \":path\" contains_match: \"/v2/\""));
  EXPECT_TRUE(eval("name: \"x-tenant\" string_match { exact: \"acme\" ignore_case: true }"));
  EXPECT_FALSE(eval("name: \"x-tenant\" string_match { exact: \"acme\" }"));
  EXPECT_TRUE(eval("name: \":path\" string_match { prefix: \"/API\" ignore_case: true }"));
  EXPECT_TRUE(eval("name: \":path\" string_match { suffix: \"users\" }"));
  EXPECT_TRUE(eval("name: \":path\" string_match { contains: \"V1\" ignore_case: true }"));
  EXPECT_FALSE(eval("name: \":path\" string_match { contains: \"V1\" }"));
  EXPECT_TRUE(eval("name: \"x-multi\" exact_match: \"a,b\""));
  // invert_match flips every kind, including a missing header.
  EXPECT_FALSE(eval("name: \"x-tenant\" exact_match: \"Acme\" invert_match: true"));
  EXPECT_TRUE(eval("name: \"x-missing\" exact_match: \"Acme\" invert_match: true"));
  EXPECT_FALSE(eval("name: \"x-tenant\" invert_match: true"));
  // Missing header: no match, unless it is to be treated as empty.
  EXPECT_FALSE(eval("name: \"x-missing\" string_match { exact: \"\" }"));
  EXPECT_TRUE(eval("name: \"x-missing\" string_match { exact: \"\" } "
                   "treat_missing_header_as_empty: true"));
  // A TCP connection has no request headers.
  StreamInfo tcp = sample();
  EXPECT_FALSE(makeFilter("header_filter { header { name: \"x-tenant\" } }")->evaluate(tcp));
  // Unimplemented kinds are refused with the field path.
  EXPECT_NE(filterError("header_filter { header { name: \"a\" safe_regex_match { regex: \".*\" } } }")
                .find("access_log[0].filter.header_filter.header.safe_regex_match"),
            std::string::npos);
  EXPECT_NE(filterError("header_filter { header { name: \"a\" range_match { start: 1 end: 2 } } }")
                .find("header_filter.header.range_match"),
            std::string::npos);
  EXPECT_NE(filterError("header_filter { header { name: \"a\" string_match { safe_regex { regex: "
                        "\".*\" } } } }")
                .find("header_filter.header.string_match.safe_regex"),
            std::string::npos);
  EXPECT_NE(filterError("header_filter { header { } }").find("header_filter.header.name"),
            std::string::npos);
}

TEST(FilterTest, ResponseFlags) {
  StreamInfo i = sample();
  auto any = makeFilter("response_flag_filter {}");
  auto uf_or_uh = makeFilter("response_flag_filter { flags: \"UF\" flags: \"UH\" }");
  auto envoy_only = makeFilter("response_flag_filter { flags: \"RL\" }");
  EXPECT_FALSE(any->evaluate(i));
  EXPECT_FALSE(uf_or_uh->evaluate(i));
  i.setResponseFlag(kNoRouteFound);
  EXPECT_TRUE(any->evaluate(i));
  EXPECT_FALSE(uf_or_uh->evaluate(i));
  i.setResponseFlag(kNoHealthyUpstream);
  EXPECT_TRUE(uf_or_uh->evaluate(i));
  EXPECT_FALSE(envoy_only->evaluate(i)); // legate never sets RL
  EXPECT_NE(filterError("response_flag_filter { flags: \"UF\" flags: \"XYZ\" }")
                .find("access_log[0].filter.response_flag_filter.flags[1]"),
            std::string::npos);
}

TEST(FilterTest, GrpcStatusFromTrailersHeadersOrHttpCode) {
  FilterPtr f = makeFilter("grpc_status_filter { statuses: UNAVAILABLE statuses: INTERNAL }");
  FilterPtr not_ok = makeFilter("grpc_status_filter { statuses: OK exclude: true }");
  StreamInfo i = withCode(200);
  http::HeaderMap headers, trailers;
  headers.add(":status", "200");
  i.response_headers = &headers;
  EXPECT_FALSE(f->evaluate(i)); // 200 without grpc-status: UNKNOWN
  EXPECT_TRUE(not_ok->evaluate(i));
  trailers.add("grpc-status", "14");
  i.response_trailers = &trailers;
  EXPECT_TRUE(f->evaluate(i));
  headers.add("grpc-status", "0"); // trailers win
  EXPECT_TRUE(f->evaluate(i));
  i.response_trailers = nullptr;
  EXPECT_FALSE(f->evaluate(i));
  EXPECT_FALSE(not_ok->evaluate(i)); // OK is excluded
  StreamInfo local = withCode(503);  // no grpc-status anywhere: 503 maps to UNAVAILABLE
  EXPECT_TRUE(f->evaluate(local));
  EXPECT_TRUE(f->evaluate(withCode(400))); // INTERNAL
  EXPECT_FALSE(f->evaluate(withCode(404))); // UNIMPLEMENTED
}

TEST(FilterTest, MetadataFilter) {
  auto md = std::make_shared<envoy::config::core::v3::Metadata>();
  google::protobuf::Struct& ns = (*md->mutable_filter_metadata())["envoy.test"];
  (*ns.mutable_fields())["user"].set_string_value("alice");
  (*(*ns.mutable_fields())["o"].mutable_struct_value()->mutable_fields())["n"].set_number_value(5);
  StreamInfo with = sample();
  with.rare().dynamic_metadata = md;
  StreamInfo without = sample();
  FilterPtr user = makeFilter(
      "metadata_filter { matcher { filter: \"envoy.test\" path { key: \"user\" } "
      "value { string_match { prefix: \"ali\" } } } }");
  EXPECT_TRUE(user->evaluate(with));
  EXPECT_TRUE(user->evaluate(without)); // missing key: logged by default
  FilterPtr strict = makeFilter(
      "metadata_filter { matcher { filter: \"envoy.test\" path { key: \"user\" } "
      "value { string_match { exact: \"bob\" } } } match_if_key_not_found { value: false } }");
  EXPECT_FALSE(strict->evaluate(with));
  EXPECT_FALSE(strict->evaluate(without));
  FilterPtr range = makeFilter(
      "metadata_filter { matcher { filter: \"envoy.test\" path { key: \"o\" } path { key: \"n\" } "
      "value { double_match { range { start: 1 end: 6 } } } invert: true } }");
  EXPECT_FALSE(range->evaluate(with)); // 5 is in [1,6), inverted
  EXPECT_NE(filterError("metadata_filter { matcher { filter: \"a\" path { key: \"b\" } "
                        "value { list_match { } } } }")
                .find("access_log[0].filter.metadata_filter.matcher.value"),
            std::string::npos);
}

TEST(FilterTest, LogTypeFilter) {
  FilterPtr http_only = makeFilter("log_type_filter { types: DownstreamEnd }");
  FilterPtr not_tcp = makeFilter("log_type_filter { types: TcpConnectionEnd exclude: true }");
  StreamInfo tcp = sample();
  StreamInfo http = sample();
  http.protocol = "HTTP/1.1";
  EXPECT_FALSE(http_only->evaluate(tcp));
  EXPECT_TRUE(http_only->evaluate(http));
  EXPECT_FALSE(not_tcp->evaluate(tcp));
  EXPECT_TRUE(not_tcp->evaluate(http));
}

TEST(FilterTest, TraceableMatchesServiceForcedTraces) {
  auto traceable = makeFilter("traceable_filter {}");
  // No tracing on the connection manager (or TCP): never traceable.
  EXPECT_FALSE(traceable->evaluate(sample()));
  // Forced by the service (x-envoy-force-trace): Envoy's filter matches these...
  StreamInfo forced = sample();
  forced.traced = true;
  forced.trace_service_forced = true;
  EXPECT_TRUE(traceable->evaluate(forced));
  // ...and not a randomly sampled or client-forced trace (traced, other reason).
  StreamInfo sampled = sample();
  sampled.traced = true;
  EXPECT_FALSE(traceable->evaluate(sampled));
  // It composes like any other filter.
  auto either = makeFilter("or_filter { filters { traceable_filter {} } filters { "
                           "status_code_filter { comparison { op: GE value { default_value: 500 } "
                           "} } } }");
  EXPECT_TRUE(either->evaluate(forced));
  EXPECT_FALSE(either->evaluate(sampled));
  sampled.response_code = 503;
  EXPECT_TRUE(either->evaluate(sampled));
}

TEST(FilterTest, RefusedKindsNameTheField) {
  for (const char* k : {"extension_filter"}) {
    const std::string kind = k;
    const std::string msg = filterError(kind + " {}");
    EXPECT_NE(msg.find("access_log[0].filter." + kind), std::string::npos) << msg;
    EXPECT_NE(msg.find("not implemented"), std::string::npos) << msg;
  }
  EXPECT_NE(filterError("").find("access_log[0].filter"), std::string::npos);
}

// ---- The buffered writer ---------------------------------------------------

std::string tempPath(const std::string& name) {
  std::string p = testing::TempDir() + "legate_alog_" + std::to_string(::getpid()) + "_" + name;
  ::unlink(p.c_str());
  return p;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int openAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

TEST(LogFileTest, ManyThreadsAllLinesInOrderPerThreadNoneLostAfterDestruction) {
  const std::string path = tempPath("threads");
  stats::Store store;
  constexpr int kThreads = 4;
  constexpr int kLines = 5000;
  {
    LogFile::Options opts;
    opts.flush_threshold = 4096; // many flushes while writers run
    LogFile file(openAppend(path), path, store, opts);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&file, t] {
        for (int n = 0; n < kLines; ++n) {
          file.write("t" + std::to_string(t) + " " + std::to_string(n) + "\n");
        }
      });
    }
    for (auto& th : threads) th.join();
  } // destructor flushes and joins
  std::istringstream lines(readFile(path));
  std::string line;
  std::vector<int> next(kThreads, 0);
  int total = 0;
  while (std::getline(lines, line)) {
    int t = -1, n = -1;
    ASSERT_EQ(sscanf(line.c_str(), "t%d %d", &t, &n), 2) << line;
    ASSERT_TRUE(t >= 0 && t < kThreads) << line;
    EXPECT_EQ(n, next[t]) << "thread " << t;
    next[t] = n + 1;
    ++total;
  }
  EXPECT_EQ(total, kThreads * kLines);
  EXPECT_EQ(store.counter("filesystem.write_buffered").value(), uint64_t{kThreads * kLines});
  // How many flushes happen depends on when the flush thread gets scheduled
  // (on a loaded machine, possibly only the final one).
  EXPECT_GE(store.counter("filesystem.write_completed").value(), 1u);
  EXPECT_EQ(store.counter("filesystem.write_failed").value(), 0u);
  EXPECT_EQ(store.counter("access_log.lines_dropped").value(), 0u);
  EXPECT_EQ(store.gauge("filesystem.write_total_buffered").value(), 0);
  ::unlink(path.c_str());
}

TEST(LogFileTest, NothingReachesDiskUntilIntervalThresholdOrFlush) {
  const std::string path = tempPath("lazy");
  stats::Store store;
  LogFile::Options opts;
  opts.flush_interval = std::chrono::hours(1);
  opts.flush_threshold = 100;
  LogFile file(openAppend(path), path, store, opts);
  file.write("short\n");
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(readFile(path), "");
  file.flush();
  EXPECT_EQ(readFile(path), "short\n");
  // Passing the threshold wakes the flush thread without flush().
  file.write(std::string(120, 'x') + "\n");
  for (int n = 0; n < 200 && readFile(path).size() < 127; ++n) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(readFile(path).size(), 6u + 121u);
  EXPECT_EQ(store.counter("filesystem.flushed_by_timer").value(), 0u);
  ::unlink(path.c_str());
}

TEST(LogFileTest, FlushedByTimer) {
  const std::string path = tempPath("timer");
  stats::Store store;
  LogFile::Options opts;
  opts.flush_interval = milliseconds(20);
  LogFile file(openAppend(path), path, store, opts);
  file.write("tick\n");
  for (int n = 0; n < 200 && readFile(path).empty(); ++n) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(readFile(path), "tick\n");
  EXPECT_GE(store.counter("filesystem.flushed_by_timer").value(), 1u);
  ::unlink(path.c_str());
}

TEST(LogFileTest, BufferCapDropsAndCounts) {
  const std::string path = tempPath("cap");
  stats::Store store;
  LogFile::Options opts;
  opts.flush_interval = std::chrono::hours(1);
  opts.flush_threshold = 1 << 20;
  opts.max_buffer = 100;
  LogFile file(openAppend(path), path, store, opts);
  const std::string line(29, 'a'); // 30 bytes with the newline
  for (int n = 0; n < 10; ++n) file.write(line + "\n");
  EXPECT_EQ(store.counter("access_log.lines_dropped").value(), 7u);
  EXPECT_EQ(store.counter("filesystem.write_buffered").value(), 3u);
  EXPECT_EQ(store.gauge("filesystem.write_total_buffered").value(), 90);
  file.flush();
  EXPECT_EQ(readFile(path).size(), 90u);
  // Room again after the flush.
  file.write(line + "\n");
  file.flush();
  EXPECT_EQ(readFile(path).size(), 120u);
  EXPECT_EQ(store.counter("access_log.lines_dropped").value(), 7u);
  ::unlink(path.c_str());
}

TEST(LogFileTest, FullDiskIsCountedAndLoggingGoesOn) {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "no /dev/full";
  stats::Store store;
  {
    LogFile file(fd, "/dev/full", store);
    file.write("lost\n");
    file.flush();
    EXPECT_EQ(store.counter("filesystem.write_failed").value(), 1u);
    file.write("lost too\n");
  }
  EXPECT_EQ(store.counter("filesystem.write_failed").value(), 2u);
  EXPECT_EQ(store.counter("filesystem.write_completed").value(), 0u);
}

TEST(LogFileTest, OpenSharesOnePerPathAndReportsErrors) {
  const std::string path = tempPath("shared");
  stats::Store store;
  auto a = LogFile::open(path, store);
  auto b = LogFile::open(path, store);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  auto bad = LogFile::open(testing::TempDir() + "no/such/dir/x.log", store);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cannot open access log file"), std::string::npos);
  ::unlink(path.c_str());
}

// ---- create(): filters wired in front of the file --------------------------

class AccessLogTest : public testing::Test {
protected:
  // The unit test does not link the built-in extension list; add the file
  // logger's type the way src/extensions/builtin.cc does.
  static void SetUpTestSuite() {
    auto& r = config::ExtensionRegistry::get();
    if (r.findByType("envoy.extensions.access_loggers.file.v3.FileAccessLog") == nullptr) {
      r.add({config::ExtensionCategory::AccessLogger,
             "envoy.extensions.access_loggers.file.v3.FileAccessLog", "envoy.access_loggers.file",
             nullptr});
    }
  }
};

envoy::config::accesslog::v3::AccessLog fileLogProto(const std::string& path,
                                                     const std::string& filter_text) {
  envoy::config::accesslog::v3::AccessLog proto;
  proto.set_name("envoy.access_loggers.file");
  envoy::extensions::access_loggers::file::v3::FileAccessLog cfg;
  cfg.set_path(path);
  cfg.mutable_log_format()->mutable_text_format_source()->set_inline_string(
      "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\n");
  proto.mutable_typed_config()->PackFrom(cfg);
  if (!filter_text.empty()) *proto.mutable_filter() = parseFilter(filter_text);
  return proto;
}

TEST_F(AccessLogTest, StatusCodeFilterLogsOnly5xx) {
  const std::string path = tempPath("create");
  stats::Store store;
  {
    auto log = create(fileLogProto(path, "status_code_filter { comparison { op: GE value { "
                                         "default_value: 500 } } }"),
                      "access_log[0]", store);
    ASSERT_TRUE(log.ok()) << log.status();
    for (uint32_t code : {200u, 503u, 404u, 500u}) {
      StreamInfo i = withCode(code);
      i.response_code_details = code == 503 ? "upstream_reset" : "via_upstream";
      (*log)->log(i);
    }
  } // last user of the file: flushed on destruction
  EXPECT_EQ(readFile(path), "503 upstream_reset\n500 via_upstream\n");
  EXPECT_EQ(store.counter("filesystem.write_buffered").value(), 2u);
  ::unlink(path.c_str());
}

TEST_F(AccessLogTest, RefusedFilterNamesThePath) {
  stats::Store store;
  auto log = create(fileLogProto(tempPath("refused"), "extension_filter {}"),
                    "static_resources.listeners[0].access_log[0]", store);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find(
                "static_resources.listeners[0].access_log[0].filter.extension_filter"),
            std::string::npos)
      << log.status();
}

} // namespace
} // namespace legate::accesslog
