#include "accesslog/formatter.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"

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
  auto f = parseJsonFormat(s, false);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->format(i), "{\"bytes\":34,\"cluster\":\"c=a\\\"b\",\"fixed\":1,\"path\":null}\n");
  auto omit = parseJsonFormat(s, true);
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
