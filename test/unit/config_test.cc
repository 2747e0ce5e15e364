// Unit tests for the configuration loader: YAML/JSON -> proto conversion,
// protoc-gen-validate checking, error locations and bootstrap loading.

#include <filesystem>
#include <fstream>
#include <string>

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/wrappers.pb.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/bootstrap_loader.h"
#include "config/source_map.h"
#include "config/extension_registry.h"
#include "config/validation.h"
#include "config/yaml_to_proto.h"
#include "envoy/admin/v3/config_dump_shared.pb.h"
#include "envoy/config/core/v3/address.pb.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/config/core/v3/extension.pb.h"
#include "envoy/config/core/v3/protocol.pb.h"
#include "envoy/config/metrics/v3/stats.pb.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "xds/type/matcher/v3/matcher.pb.h"

namespace legate::config {
namespace {

using envoy::config::bootstrap::v3::Bootstrap;
using envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kTcpProxyType[] = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";

// LEGATE_TESTDATA_DIR comes from CMake (absolute): __FILE__ may be relative to
// the build directory (ccache's base_dir rewriting), so it can't locate files.
std::filesystem::path testdata(const std::string& name) {
  return std::filesystem::path(LEGATE_TESTDATA_DIR) / "config" / name;
}

class ConfigTest : public ::testing::Test {
protected:
  void SetUp() override {
    // Only tcp_proxy is "implemented" here; the real binary registers the built-ins.
    ExtensionRegistry::get().add(
        ExtensionInfo{ExtensionCategory::NetworkFilter, kTcpProxyType, "envoy.filters.network.tcp_proxy", nullptr});
    // Make sure the generated descriptors of types used only through Any are linked in.
    ASSERT_NE(TcpProxy::descriptor(), nullptr);
    ASSERT_NE(envoy::extensions::access_loggers::file::v3::FileAccessLog::descriptor(), nullptr);
  }

  // Loads text into msg with the label "bad.yaml" and returns the error text ("" if OK).
  static std::string load(const std::string& text, google::protobuf::Message& msg) {
    absl::Status status = loadMessageFromYaml(text, "bad.yaml", msg);
    return status.ok() ? "" : std::string(status.message());
  }

  std::string writeTemp(const std::string& name, const std::string& contents) {
    std::filesystem::path path = std::filesystem::path(::testing::TempDir()) / name;
    std::ofstream(path) << contents;
    return path.string();
  }
};

// ---- conversion -----------------------------------------------------------

TEST_F(ConfigTest, ProtoAndCamelCaseFieldNames) {
  Bootstrap b;
  ASSERT_EQ(load(R"(
static_resources:
  clusters:
  - name: a
    connectTimeout: 1.5s
    per_connection_buffer_limit_bytes: 32768
  - name: b
    perConnectionBufferLimitBytes: "65536"
)",
                 b),
            "");
  ASSERT_EQ(b.static_resources().clusters_size(), 2);
  EXPECT_EQ(b.static_resources().clusters(0).connect_timeout().seconds(), 1);
  EXPECT_EQ(b.static_resources().clusters(0).connect_timeout().nanos(), 500000000);
  EXPECT_EQ(b.static_resources().clusters(0).per_connection_buffer_limit_bytes().value(), 32768u);
  EXPECT_EQ(b.static_resources().clusters(1).per_connection_buffer_limit_bytes().value(), 65536u);
}

TEST_F(ConfigTest, DurationForms) {
  google::protobuf::Duration d;
  ASSERT_EQ(load("0.25s", d), "");
  EXPECT_EQ(d.seconds(), 0);
  EXPECT_EQ(d.nanos(), 250000000);
  ASSERT_EQ(load("10s", d), "");
  EXPECT_EQ(d.seconds(), 10);
  EXPECT_EQ(d.nanos(), 0);
  ASSERT_EQ(load("{seconds: \"3\", nanos: 5}", d), "");
  EXPECT_EQ(d.seconds(), 3);
  EXPECT_EQ(d.nanos(), 5);
  EXPECT_THAT(load("10", d), AllOf(StartsWith("bad.yaml:1:1: "), HasSubstr("'10' is not a duration"),
                                   HasSubstr("\"10s\"")));
  EXPECT_THAT(load("1.0000000001s", d), HasSubstr("not a duration"));
}

TEST_F(ConfigTest, IntegersFromNumbersAndStringsWithRangeChecks) {
  google::protobuf::UInt32Value u32;
  ASSERT_EQ(load("4294967295", u32), "");
  EXPECT_EQ(u32.value(), 4294967295u);
  EXPECT_THAT(load("4294967296", u32),
              HasSubstr("'4294967296' is not a valid uint32; expected an integer from 0 to 4294967295"));
  EXPECT_THAT(load("-1", u32), HasSubstr("'-1' is not a valid uint32"));

  google::protobuf::Int32Value i32;
  ASSERT_EQ(load("\"-5\"", i32), "");
  EXPECT_EQ(i32.value(), -5);
  EXPECT_THAT(load("abc", i32), HasSubstr("bad.yaml:1:1: 'abc' is not a valid int32"));
  EXPECT_THAT(load("2147483648", i32), HasSubstr("expected an integer from -2147483648 to 2147483647"));
  EXPECT_THAT(load("1.5", i32), HasSubstr("not a valid int32"));

  google::protobuf::Int64Value i64;
  ASSERT_EQ(load("\"-9000000000\"", i64), "");
  EXPECT_EQ(i64.value(), -9000000000LL);

  google::protobuf::UInt64Value u64;
  ASSERT_EQ(load("18446744073709551615", u64), "");
  EXPECT_EQ(u64.value(), 18446744073709551615ULL);
  EXPECT_THAT(load("18446744073709551616", u64), HasSubstr("not a valid uint64"));
}

TEST_F(ConfigTest, FloatsBoolsStringsBytes) {
  google::protobuf::DoubleValue d;
  ASSERT_EQ(load("1.5e3", d), "");
  EXPECT_DOUBLE_EQ(d.value(), 1500.0);
  ASSERT_EQ(load("\"-0.25\"", d), "");
  EXPECT_DOUBLE_EQ(d.value(), -0.25);
  EXPECT_THAT(load("lots", d), HasSubstr("'lots' is not a number"));

  google::protobuf::FloatValue f;
  ASSERT_EQ(load("0.5", f), "");
  EXPECT_FLOAT_EQ(f.value(), 0.5f);
  EXPECT_THAT(load("1e39", f), HasSubstr("out of range; expected a float"));

  google::protobuf::BoolValue b;
  ASSERT_EQ(load("true", b), "");
  EXPECT_TRUE(b.value());
  EXPECT_THAT(load("maybe", b), HasSubstr("'maybe' is not a bool; expected true or false"));

  google::protobuf::StringValue s;
  ASSERT_EQ(load("\"hello: world\"", s), "");
  EXPECT_EQ(s.value(), "hello: world");

  google::protobuf::BytesValue bytes;
  ASSERT_EQ(load("aGVsbG8=", bytes), "");
  EXPECT_EQ(bytes.value(), "hello");
  EXPECT_THAT(load("\"not base64!\"", bytes), HasSubstr("is not valid base64"));
}

TEST_F(ConfigTest, EnumsByNameAndNumber) {
  envoy::config::cluster::v3::Cluster c;
  ASSERT_EQ(load("{name: x, connect_timeout: 1s, type: STRICT_DNS}", c), "");
  EXPECT_EQ(c.type(), envoy::config::cluster::v3::Cluster::STRICT_DNS);
  ASSERT_EQ(load("{name: x, connect_timeout: 1s, type: 0}", c), "");
  EXPECT_EQ(c.type(), envoy::config::cluster::v3::Cluster::STATIC);
  EXPECT_THAT(load("{name: x,\n type: STATIK}", c),
              AllOf(HasSubstr("bad.yaml:2:8: type: unknown value 'STATIK' for enum "
                              "envoy.config.cluster.v3.Cluster.DiscoveryType"),
                    HasSubstr("expected one of: STATIC, STRICT_DNS, LOGICAL_DNS, EDS, ORIGINAL_DST")));
}

TEST_F(ConfigTest, RepeatedMapAndStruct) {
  Bootstrap b;
  ASSERT_EQ(load(R"(
node:
  id: n1
  client_features: [a, b, c]
  metadata:
    region: eu
    weight: 3
    canary: true
    quoted: "true"
    tags: [x, 1]
    nested: {k: v}
    nothing: null
  locality: {zone: z1}
)",
                 b),
            "");
  ASSERT_EQ(b.node().client_features_size(), 3);
  EXPECT_EQ(b.node().client_features(2), "c");
  const auto& fields = b.node().metadata().fields();
  EXPECT_EQ(fields.at("region").string_value(), "eu");
  EXPECT_EQ(fields.at("weight").number_value(), 3);
  EXPECT_TRUE(fields.at("canary").bool_value());
  EXPECT_EQ(fields.at("quoted").string_value(), "true");
  ASSERT_EQ(fields.at("tags").list_value().values_size(), 2);
  EXPECT_EQ(fields.at("tags").list_value().values(1).number_value(), 1);
  EXPECT_EQ(fields.at("nested").struct_value().fields().at("k").string_value(), "v");
  EXPECT_TRUE(fields.at("nothing").has_null_value());
  EXPECT_EQ(b.node().locality().zone(), "z1");

  envoy::config::core::v3::Metadata m;
  ASSERT_EQ(load("filter_metadata:\n  envoy.lb: {canary: true}\n  com.acme: {x: 1}\n", m), "");
  EXPECT_EQ(m.filter_metadata().size(), 2u);
  EXPECT_TRUE(m.filter_metadata().at("envoy.lb").fields().at("canary").bool_value());
  EXPECT_THAT(load("filter_metadata: [1, 2]", m), HasSubstr("got a list; expected an object (a map)"));
  EXPECT_THAT(load("node: {client_features: abc}", b), HasSubstr("got 'abc'; expected a list"));
}

TEST_F(ConfigTest, NullLeavesFieldUnset) {
  Bootstrap b;
  ASSERT_EQ(load("node: ~\nadmin: null\nstats_flush_interval:\n", b), "");
  EXPECT_FALSE(b.has_node());
  EXPECT_FALSE(b.has_admin());
  EXPECT_FALSE(b.has_stats_flush_interval());
}

TEST_F(ConfigTest, TimestampRfc3339) {
  envoy::admin::v3::UpdateFailureState s;
  ASSERT_EQ(load("last_update_attempt: 2024-01-31T12:00:00.5Z", s), "");
  EXPECT_EQ(s.last_update_attempt().seconds(), 1706702400);
  EXPECT_EQ(s.last_update_attempt().nanos(), 500000000);
  EXPECT_THAT(load("last_update_attempt: yesterday", s), HasSubstr("'yesterday' is not a timestamp"));
}

TEST_F(ConfigTest, EmptyMessage) {
  envoy::config::core::v3::Metadata m;
  ASSERT_EQ(load("{}", m), "");
  EXPECT_EQ(m.filter_metadata().size(), 0u);
}

// ---- Any --------------------------------------------------------------------

constexpr char kListenerWithFilter[] = R"(
name: l
address: {socket_address: {address: 0.0.0.0, port_value: 80}}
filter_chains:
- filters:
  - name: %s
    typed_config:
      "@type": type.googleapis.com/%s
%s)";

std::string listenerWithFilter(const std::string& name, const std::string& type,
                               const std::string& body) {
  std::string out = kListenerWithFilter;
  out.replace(out.find("%s"), 2, name);
  out.replace(out.find("%s"), 2, type);
  out.replace(out.find("%s"), 2, body);
  return out;
}

TEST_F(ConfigTest, AnyWithImplementedExtensionUnpacks) {
  envoy::config::listener::v3::Listener l;
  ASSERT_EQ(load(listenerWithFilter("envoy.filters.network.tcp_proxy", kTcpProxyType,
                                    "      stat_prefix: ingress\n      cluster: backend\n"
                                    "      max_connect_attempts: 3\n"),
                 l),
            "");
  const auto& any = l.filter_chains(0).filters(0).typed_config();
  EXPECT_EQ(any.type_url(), std::string("type.googleapis.com/") + kTcpProxyType);
  TcpProxy tcp;
  ASSERT_TRUE(any.UnpackTo(&tcp));
  EXPECT_EQ(tcp.stat_prefix(), "ingress");
  EXPECT_EQ(tcp.cluster(), "backend");
  EXPECT_EQ(tcp.max_connect_attempts().value(), 3u);
}

TEST_F(ConfigTest, AnyWithUnknownTypeIsRefusedNamingTheExtension) {
  envoy::config::listener::v3::Listener l;
  const std::string error = load(
      listenerWithFilter("envoy.filters.network.http_connection_manager",
                         "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                         "      stat_prefix: ingress\n"),
      l);
  EXPECT_THAT(error,
              AllOf(StartsWith("bad.yaml:8:16: filter_chains[0].filters[0].typed_config: legate does not "
                               "implement the extension 'type.googleapis.com/"
                               "envoy.extensions.filters.network.http_connection_manager.v3."
                               "HttpConnectionManager' (name: envoy.filters.network.http_connection_manager)"),
                    HasSubstr(kTcpProxyType)));
}

TEST_F(ConfigTest, AnyWithKnownButUnimplementedTypeIsRefused) {
  envoy::config::listener::v3::Listener l;
  const std::string error =
      load(listenerWithFilter("envoy.access_loggers.file",
                              "envoy.extensions.access_loggers.file.v3.FileAccessLog", "      path: /dev/null\n"),
           l);
  EXPECT_THAT(error, HasSubstr("legate does not implement the extension "
                               "'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog' "
                               "(name: envoy.access_loggers.file)"));
  EXPECT_THAT(error, Not(HasSubstr("unknown type")));
}

TEST_F(ConfigTest, AnyWithoutTypeIsRefused) {
  envoy::config::core::v3::TypedExtensionConfig t;
  EXPECT_THAT(load("name: x\ntyped_config:\n  stat_prefix: a\n", t),
              HasSubstr("bad.yaml:3:3: typed_config: missing '@type'"));
}

TEST_F(ConfigTest, AnyContentErrorsContinueThePath) {
  envoy::config::listener::v3::Listener l;
  EXPECT_THAT(load(listenerWithFilter("envoy.filters.network.tcp_proxy", kTcpProxyType,
                                      "      stat_prefix: ingress\n      clustr: backend\n"),
                   l),
              HasSubstr("bad.yaml:10:7: filter_chains[0].filters[0].typed_config.clustr: unknown field; "
                        "did you mean 'cluster'?"));
  // Validation recurses into the unpacked Any, and still knows the line.
  EXPECT_EQ(load(listenerWithFilter("envoy.filters.network.tcp_proxy", kTcpProxyType,
                                    "      stat_prefix: \"\"\n      cluster: backend\n"),
                 l),
            "bad.yaml:9:20: filter_chains[0].filters[0].typed_config.stat_prefix: value is empty; "
            "expected at least 1 character");
}

// ---- rejections ---------------------------------------------------------------

TEST_F(ConfigTest, UnknownFieldWithSuggestionAndLineColumn) {
  Bootstrap b;
  EXPECT_EQ(load("static_resources:\n  clusters:\n  - name: x\n    conect_timeout: 1s\n", b),
            "bad.yaml:4:5: static_resources.clusters[0].conect_timeout: unknown field; did you mean "
            "'connect_timeout'?");
  EXPECT_EQ(load("frobnicate: 1\n", b),
            "bad.yaml:1:1: frobnicate: unknown field; envoy.config.bootstrap.v3.Bootstrap has no such field");
}

TEST_F(ConfigTest, WrongTypes) {
  Bootstrap b;
  EXPECT_EQ(load("node:\n  id: {a: 1}\n", b), "bad.yaml:2:7: node.id: got an object; expected a string");
  EXPECT_EQ(load("node: hello\n", b),
            "bad.yaml:1:7: node: got 'hello'; expected an object (envoy.config.core.v3.Node)");
  EXPECT_THAT(load("static_resources: {clusters: [{name: a, per_connection_buffer_limit_bytes: abc}]}", b),
              HasSubstr("static_resources.clusters[0].per_connection_buffer_limit_bytes: 'abc' is not a "
                        "valid uint32"));
}

TEST_F(ConfigTest, OneofTwoMembersSet) {
  envoy::config::core::v3::SocketAddress a;
  EXPECT_EQ(load("address: 1.2.3.4\nport_value: 80\nnamed_port: http\n", a),
            "bad.yaml:3:1: named_port: 'port_value' is already set and both belong to oneof "
            "'port_specifier'; expected only one of them");
}

TEST_F(ConfigTest, DuplicateKeys) {
  Bootstrap b;
  EXPECT_EQ(load("node:\n  id: a\n  id: b\n", b),
            "bad.yaml:3:3: node.id: duplicate key 'id' (first set on line 2); expected each key once");
}

TEST_F(ConfigTest, MalformedYamlReportsPosition) {
  Bootstrap b;
  EXPECT_THAT(load("node:\n  id: [a, b\n", b), StartsWith("bad.yaml:3:1: invalid YAML: "));
  EXPECT_THAT(load("a: b: c\n", b), StartsWith("bad.yaml:1:5: invalid YAML: "));
}

TEST_F(ConfigTest, AnchorsAliasesAndOneDocument) {
  Bootstrap b;
  EXPECT_EQ(load("admin:\n  address:\n    socket_address: &a {address: 127.0.0.1, port_value: 9}\n"
                 "static_resources:\n  listeners:\n  - name: l\n    address:\n"
                 "      socket_address: *a\n",
                 b),
            "");
  EXPECT_EQ(b.static_resources().listeners(0).address().socket_address().port_value(), 9u);
  EXPECT_THAT(load("node:\n  id: a\n---\nnode:\n  id: b\n", b),
              StartsWith("bad.yaml:3:1: invalid YAML: a second document starts here"));
  // JSON missing its last brace: found at the end of the file, pointing back at the opening one.
  EXPECT_THAT(load("{\"node\": {\"id\": \"a\",}", b),
              AllOf(StartsWith("bad.yaml:2:1: invalid YAML: "),
                    HasSubstr("flow mapping from line 1, column 1")));
}

TEST_F(ConfigTest, AliasBombIsAnErrorNotAnExplosion) {
  // Seven levels of ten aliases each would expand to 10^7 values.
  std::string text = "node:\n  metadata:\n    l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int level = 1; level <= 6; ++level) {
    const std::string prev = "*l" + std::to_string(level - 1);
    text += "    l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + prev;
    text += "]\n";
  }
  Bootstrap b;
  EXPECT_THAT(load(text, b), AllOf(StartsWith("bad.yaml:"), HasSubstr("expands to more than"),
                                   HasSubstr("through aliases")));
}

TEST_F(ConfigTest, ReportsAllErrorsCappedAtTwenty) {
  Bootstrap b;
  std::string text = "node:\n";
  for (int i = 0; i < 25; ++i) text += "  bogus" + std::to_string(i) + ": 1\n";
  const std::string error = load(text, b);
  EXPECT_EQ(std::count(error.begin(), error.end(), '\n'), 20);
  EXPECT_THAT(error, HasSubstr("bad.yaml:2:3: node.bogus0: unknown field"));
  EXPECT_THAT(error, HasSubstr("bad.yaml:21:3: node.bogus19: unknown field"));
  EXPECT_THAT(error, Not(HasSubstr("bogus20")));
  EXPECT_THAT(error, HasSubstr("(5 more errors not shown)"));
}

TEST_F(ConfigTest, DeepNestingIsBounded) {
  Bootstrap b;
  std::string text = "node: {metadata: ";
  for (int i = 0; i < 150; ++i) text += "{a: ";
  text += "1";
  for (int i = 0; i < 150; ++i) text += "}";
  text += "}";
  EXPECT_THAT(load(text, b), HasSubstr("nesting is too deep"));
}

TEST_F(ConfigTest, AnyTypeMustBeAUrl) {
  envoy::config::core::v3::TypedExtensionConfig t;
  EXPECT_EQ(load("name: x\ntyped_config: {\"@type\": TcpProxy}\n", t),
            "bad.yaml:2:25: typed_config: '@type: TcpProxy' is not a type URL; expected "
            "'type.googleapis.com/<message name>'");
}

// ---- validation -------------------------------------------------------------------

TEST_F(ConfigTest, NumericBoundOnPort) {
  auto result = loadBootstrap({testdata("bad_port.yaml").string(), ""});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(std::string(result.status().message()),
            testdata("bad_port.yaml").string() +
                ":7:21: static_resources.listeners[0].address.socket_address.port_value: value 70000 "
                "must be <= 65535");
}

TEST_F(ConfigTest, RequiredOneofAndEmptyStringPointAtParent) {
  Bootstrap b;
  EXPECT_EQ(load("admin:\n  address:\n    socket_address:\n      address: \"\"\n", b),
            "bad.yaml:3:5: admin.address.socket_address: none of the fields of oneof 'port_specifier' is "
            "set; expected exactly one of: port_value, named_port\n"
            "bad.yaml:4:16: admin.address.socket_address.address: value is empty; expected at least 1 "
            "character");
}

TEST_F(ConfigTest, MessageRequired) {
  envoy::config::metrics::v3::HistogramBucketSettings h;
  EXPECT_EQ(load("buckets: [1, 2]\n", h),
            "bad.yaml:1:1: match: required field is missing; expected envoy.type.matcher.v3.StringMatcher");
}

TEST_F(ConfigTest, WrapperRules) {
  TcpProxy t;
  EXPECT_EQ(load("stat_prefix: s\ncluster: c\nmax_connect_attempts: 0\n", t),
            "bad.yaml:3:23: max_connect_attempts: value 0 must be >= 1");
  envoy::config::core::v3::CidrRange r;
  EXPECT_EQ(load("address_prefix: 10.0.0.0\nprefix_len: 129\n", r),
            "bad.yaml:2:13: prefix_len: value 129 must be <= 128");
  ASSERT_EQ(load("address_prefix: 10.0.0.0\nprefix_len: 8\n", r), "");
  EXPECT_EQ(r.prefix_len().value(), 8u);
}

TEST_F(ConfigTest, EnumDefinedOnly) {
  envoy::config::cluster::v3::Cluster c;
  EXPECT_THAT(load("name: x\nconnect_timeout: 1s\nlb_policy: 99\n", c),
              AllOf(StartsWith("bad.yaml:3:12: lb_policy: value 99 is not defined in enum "
                               "envoy.config.cluster.v3.Cluster.LbPolicy; expected one of: ROUND_ROBIN"),
                    Not(HasSubstr("\n"))));
}

TEST_F(ConfigTest, RepeatedRules) {
  envoy::config::metrics::v3::HistogramBucketSettings h;
  const std::string match = "match: {exact: x}\n";
  EXPECT_EQ(load(match + "buckets: []\n", h), "bad.yaml:2:1: buckets: has 0 items; expected at least 1");
  EXPECT_EQ(load(match + "buckets: [1, 2, 1]\n", h),
            "bad.yaml:2:17: buckets[2]: value '1' appears more than once; expected unique items");
  EXPECT_EQ(load(match + "buckets: [5, -1]\n", h), "bad.yaml:2:14: buckets[1]: value -1 must be > 0");
  envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy::WeightedCluster w;
  EXPECT_THAT(load("clusters: []", w), HasSubstr("clusters: has 0 items; expected at least 1"));
}

TEST_F(ConfigTest, MapRules) {
  envoy::config::core::v3::Metadata m;
  EXPECT_EQ(load("filter_metadata:\n  \"\": {a: 1}\n", m),
            "bad.yaml:2:3: filter_metadata[\"\"]: value is empty; expected at least 1 character");
  xds::type::matcher::v3::Matcher::MatcherTree::MatchMap mm;
  EXPECT_EQ(load("map: {}\n", mm), "bad.yaml:1:1: map: has 0 entries; expected at least 1");
}

TEST_F(ConfigTest, DurationRules) {
  envoy::config::cluster::v3::Cluster c;
  EXPECT_EQ(load("name: x\nconnect_timeout: 0s\n", c), "bad.yaml:2:18: connect_timeout: value 0s must be > 0s");
  ASSERT_EQ(load("name: x\nconnect_timeout: 0.001s\n", c), "");
  EXPECT_EQ(c.connect_timeout().nanos(), 1000000);
}

TEST_F(ConfigTest, AnyRequired) {
  envoy::config::core::v3::TypedExtensionConfig t;
  EXPECT_EQ(load("name: envoy.filters.network.tcp_proxy\n", t),
            "bad.yaml:1:1: typed_config: required field is missing; expected google.protobuf.Any");
}

TEST_F(ConfigTest, StringRules) {
  envoy::config::core::v3::SchemeHeaderTransformation s;
  ASSERT_EQ(load("scheme_to_overwrite: https", s), "");
  EXPECT_EQ(load("scheme_to_overwrite: ftp", s),
            "bad.yaml:1:22: scheme_to_overwrite: value 'ftp' must be one of [http, https]");

  envoy::config::core::v3::UpstreamHttpProtocolOptions o;
  EXPECT_EQ(load("override_auto_sni_header: \"\"", o), ""); // ignore_empty
  EXPECT_EQ(load("override_auto_sni_header: x-sni", o), "");
  EXPECT_EQ(load("override_auto_sni_header: \"bad header\"", o),
            "bad.yaml:1:27: override_auto_sni_header: value 'bad header' is not a valid HTTP header name");

  envoy::config::core::v3::HeaderValue h;
  EXPECT_EQ(load("key: x-a\nvalue: \"ok\\tvalue\"", h), "");
  EXPECT_THAT(load("key: \"\"\n", h), HasSubstr("key: value is empty"));
}

TEST_F(ConfigTest, ValidateMessageWithoutSource) {
  envoy::config::core::v3::SocketAddress a;
  a.set_address("1.2.3.4");
  a.set_port_value(70000);
  EXPECT_EQ(std::string(validateMessage(a).message()), "port_value: value 70000 must be <= 65535");
  a.set_port_value(80);
  EXPECT_TRUE(validateMessage(a).ok());
}

TEST_F(ConfigTest, EditDistance) {
  EXPECT_EQ(editDistance("conect_timeout", "connect_timeout"), 1u);
  EXPECT_EQ(editDistance("", "abc"), 3u);
  EXPECT_EQ(editDistance("kitten", "sitting"), 3u);
}

// ---- loadBootstrap --------------------------------------------------------------------

void expectRealisticBootstrap(const Bootstrap& b) {
  ASSERT_EQ(b.static_resources().listeners_size(), 1);
  const auto& listener = b.static_resources().listeners(0);
  EXPECT_EQ(listener.address().socket_address().port_value(), 10000u);
  TcpProxy tcp;
  ASSERT_TRUE(listener.filter_chains(0).filters(0).typed_config().UnpackTo(&tcp));
  EXPECT_EQ(tcp.stat_prefix(), "tcp");
  EXPECT_EQ(tcp.cluster(), "backend");
  ASSERT_EQ(b.static_resources().clusters_size(), 1);
  const auto& cluster = b.static_resources().clusters(0);
  EXPECT_EQ(cluster.type(), envoy::config::cluster::v3::Cluster::STATIC);
  EXPECT_EQ(cluster.connect_timeout().nanos(), 250000000);
  EXPECT_EQ(cluster.load_assignment()
                .endpoints(0)
                .lb_endpoints(0)
                .endpoint()
                .address()
                .socket_address()
                .port_value(),
            8080u);
}

TEST_F(ConfigTest, LoadsRealisticYamlBootstrap) {
  auto result = loadBootstrap({testdata("tcp_proxy.yaml").string(), ""});
  ASSERT_TRUE(result.ok()) << result.status();
  expectRealisticBootstrap(*result);
  EXPECT_EQ(result->admin().address().socket_address().port_value(), 9901u);
  TcpProxy tcp;
  ASSERT_TRUE(result->static_resources().listeners(0).filter_chains(0).filters(0).typed_config().UnpackTo(&tcp));
  EXPECT_EQ(tcp.idle_timeout().seconds(), 300);
}

TEST_F(ConfigTest, LoadsJsonBootstrap) {
  auto result = loadBootstrap({testdata("tcp_proxy.json").string(), ""});
  ASSERT_TRUE(result.ok()) << result.status();
  expectRealisticBootstrap(*result);
}

TEST_F(ConfigTest, JsonErrorsHaveLineAndColumn) {
  const std::string path = writeTemp("bad.json", "{\n  \"node\": {\n    \"idd\": \"x\"\n  }\n}\n");
  auto result = loadBootstrap({path, ""});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(std::string(result.status().message()), path + ":3:5: node.idd: unknown field; did you mean 'id'?");
}

TEST_F(ConfigTest, ConfigYamlMergesOverFile) {
  auto result = loadBootstrap(
      {testdata("tcp_proxy.yaml").string(),
       "node: {id: overridden}\n"
       "static_resources:\n"
       "  clusters:\n"
       "  - {name: extra, connect_timeout: 2s, type: STATIC}\n"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->node().id(), "overridden");
  EXPECT_EQ(result->node().cluster(), "test"); // kept from the file
  ASSERT_EQ(result->static_resources().clusters_size(), 2);
  EXPECT_EQ(result->static_resources().clusters(1).name(), "extra");
  EXPECT_EQ(result->static_resources().listeners_size(), 1);
}

TEST_F(ConfigTest, ConfigYamlAlone) {
  auto result = loadBootstrap({"", "node: {id: only-flag}"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->node().id(), "only-flag");
}

TEST_F(ConfigTest, ConfigYamlErrorsPointAtTheFlagWithMergedIndex) {
  auto result = loadBootstrap(
      {testdata("tcp_proxy.yaml").string(),
       "static_resources:\n  clusters:\n  - name: extra\n    connect_timeout: 0s\n"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(std::string(result.status().message()),
            "--config-yaml:4:22: static_resources.clusters[1].connect_timeout: value 0s must be > 0s");
  auto conversion = loadBootstrap({"", "nodee: {}"});
  ASSERT_FALSE(conversion.ok());
  EXPECT_EQ(std::string(conversion.status().message()), "--config-yaml:1:1: nodee: unknown field; did you mean 'node'?");
}

TEST_F(ConfigTest, FileErrors) {
  auto none = loadBootstrap({});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(std::string(none.status().message()), "no configuration: pass -c FILE or --config-yaml");

  auto missing = loadBootstrap({"does/not/exist.yaml", ""});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(missing.status().message()),
            "does/not/exist.yaml: cannot read the configuration file: No such file or directory");

  auto extension = loadBootstrap({writeTemp("config.txt", "node: {}"), ""});
  ASSERT_FALSE(extension.ok());
  EXPECT_THAT(std::string(extension.status().message()),
              HasSubstr("config.txt: unsupported configuration file extension '.txt'; expected .yaml, "
                        ".yml or .json"));

  auto yml = loadBootstrap({writeTemp("config.yml", "node: {id: y}"), ""});
  ASSERT_TRUE(yml.ok()) << yml.status();
  EXPECT_EQ(yml->node().id(), "y");
}

TEST_F(ConfigTest, UnimplementedExtensionInBootstrapFile) {
  const std::string path = writeTemp("hcm.yaml", R"(static_resources:
  listeners:
  - name: http
    address: {socket_address: {address: 0.0.0.0, port_value: 80}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: http
)");
  auto result = loadBootstrap({path, ""});
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()),
              StartsWith(path + ":9:20: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: "
                                "legate does not implement the extension 'type.googleapis.com/"
                                "envoy.extensions.filters.network.http_connection_manager.v3."
                                "HttpConnectionManager' (name: envoy.filters.network.http_connection_manager)"));
}

TEST(SourceMapStorage, CopiesAndMovesKeepEveryPath) {
  SourceMap map;
  for (int i = 0; i < 1000; ++i) {
    map.record("static_resources.clusters[" + std::to_string(i) + "].name", {"f.yaml", i + 1, 3});
  }
  map.record("static_resources.clusters[7].name", {"g.yaml", 70, 1}); // overrides
  SourceMap copy = map;
  SourceMap moved = std::move(map);
  for (const SourceMap* m : {&copy, &moved}) {
    ASSERT_EQ(m->size(), 1000u);
    const auto at = m->find("static_resources.clusters[999].name");
    ASSERT_TRUE(at.has_value());
    EXPECT_EQ(at->line, 1000);
    const auto seven = m->find("static_resources.clusters[7].name");
    ASSERT_TRUE(seven.has_value());
    EXPECT_EQ(seven->source, "g.yaml");
    EXPECT_FALSE(m->find("static_resources.clusters[1000].name").has_value());
  }
}

} // namespace
} // namespace legate::config
