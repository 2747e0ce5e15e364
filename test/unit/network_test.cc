#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/listener/v3/listener_components.pb.h"
#include "event/dispatcher.h"
#include "gtest/gtest.h"
#include "network/address.h"
#include "network/connection.h"
#include "network/filter_chain.h"
#include "network/listener.h"
#include "network/splice_pipe.h"

namespace legate::network {
namespace {

Address addr(const std::string& ip, uint16_t port) { return *Address::fromIpPort(ip, port); }

TEST(AddressTest, ParsesAndPrints) {
  EXPECT_EQ(addr("127.0.0.1", 80).asString(), "127.0.0.1:80");
  EXPECT_EQ(addr("::1", 443).asString(), "[::1]:443");
  EXPECT_EQ(addr("127.0.0.1", 10000).statName(), "127.0.0.1_10000");
  EXPECT_FALSE(Address::fromIpPort("localhost", 80).ok());
  EXPECT_FALSE(Address::fromIpPort("127.0.0.1", 70000).ok());
}

TEST(CidrRangeTest, Contains) {
  auto r = *CidrRange::parse("10.1.0.0", 16);
  EXPECT_TRUE(r.contains(addr("10.1.200.3", 1)));
  EXPECT_FALSE(r.contains(addr("10.2.0.1", 1)));
  EXPECT_FALSE(r.contains(addr("::1", 1)));
  auto all = *CidrRange::parse("0.0.0.0", 0);
  EXPECT_TRUE(all.contains(addr("192.0.2.1", 1)));
  auto v6 = *CidrRange::parse("::1", 128);
  EXPECT_TRUE(v6.contains(addr("::1", 5)));
  EXPECT_FALSE(CidrRange::parse("10.0.0.0", 33).ok());
}

// Builds a listener from chain specs; each chain's one filter factory records
// the chain's name, so find() can be checked by name.
class FilterChainTest : public ::testing::Test {
protected:
  envoy::config::listener::v3::FilterChain* addChain(const std::string& name) {
    auto* fc = listener_.add_filter_chains();
    fc->set_name(name);
    fc->add_filters()->set_name("test");
    return fc;
  }
  std::unique_ptr<FilterChainManager> build() {
    auto mgr = FilterChainManager::create(
        listener_, "listener",
        [](const envoy::config::listener::v3::Filter&, const std::string&, const std::string&)
            -> absl::StatusOr<NetworkFilterFactoryCb> { return NetworkFilterFactoryCb{}; });
    EXPECT_TRUE(mgr.ok()) << mgr.status();
    return mgr.ok() ? std::move(*mgr) : nullptr;
  }
  std::string find(const FilterChainManager& m, const Address& local, const Address& remote) {
    const FilterChain* c = m.find(local, remote);
    return c ? c->name : "<none>";
  }
  envoy::config::listener::v3::Listener listener_;
};

TEST_F(FilterChainTest, MostSpecificCriteriaWinInEnvoysOrder) {
  addChain("any");
  auto* port = addChain("port_9000");
  port->mutable_filter_chain_match()->mutable_destination_port()->set_value(9000);
  auto* src = addChain("src_127_0_0_2");
  auto* r = src->mutable_filter_chain_match()->add_source_prefix_ranges();
  r->set_address_prefix("127.0.0.2");
  r->mutable_prefix_len()->set_value(32);
  auto* wide = addChain("src_127_8");
  auto* r2 = wide->mutable_filter_chain_match()->add_source_prefix_ranges();
  r2->set_address_prefix("127.0.0.0");
  r2->mutable_prefix_len()->set_value(8);
  auto mgr = build();
  ASSERT_TRUE(mgr);
  // Destination port is looked at first.
  EXPECT_EQ(find(*mgr, addr("127.0.0.1", 9000), addr("127.0.0.2", 5)), "port_9000");
  // Longest source prefix wins over a shorter one.
  EXPECT_EQ(find(*mgr, addr("127.0.0.1", 80), addr("127.0.0.2", 5)), "src_127_0_0_2");
  EXPECT_EQ(find(*mgr, addr("127.0.0.1", 80), addr("127.0.0.3", 5)), "src_127_8");
  // Nothing specific: the chain without criteria.
  EXPECT_EQ(find(*mgr, addr("10.0.0.1", 80), addr("10.0.0.9", 5)), "any");
}

TEST_F(FilterChainTest, NoMatchFallsBackToDefaultChainOrNothing) {
  auto* port = addChain("port_9000");
  port->mutable_filter_chain_match()->mutable_destination_port()->set_value(9000);
  {
    auto mgr = build();
    ASSERT_TRUE(mgr);
    EXPECT_EQ(find(*mgr, addr("127.0.0.1", 80), addr("127.0.0.1", 5)), "<none>");
  }
  listener_.mutable_default_filter_chain()->set_name("default");
  auto mgr = build();
  ASSERT_TRUE(mgr);
  EXPECT_EQ(find(*mgr, addr("127.0.0.1", 80), addr("127.0.0.1", 5)), "default");
}

TEST_F(FilterChainTest, RejectsDuplicateMatchesAndTls) {
  addChain("a");
  addChain("b");
  const NetworkFilterResolver resolver =
      [](const envoy::config::listener::v3::Filter&, const std::string&,
         const std::string&) -> absl::StatusOr<NetworkFilterFactoryCb> {
    return NetworkFilterFactoryCb{};
  };
  auto dup = FilterChainManager::create(listener_, "listener", resolver);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("same filter_chain_match"), std::string::npos);

  envoy::config::listener::v3::Listener tls;
  auto* fc = tls.add_filter_chains();
  fc->mutable_filter_chain_match()->add_server_names("example.com");
  auto st = FilterChainManager::create(tls, "listener", resolver);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("server_names"), std::string::npos);
}

// A connected pair of Connections on one dispatcher, over loopback TCP.
class ConnectionPairTest : public ::testing::Test, public ConnectionCallbacks {
protected:
  void SetUp() override {
    auto fd = createListenSocket(addr("127.0.0.1", 0), false, 16);
    ASSERT_TRUE(fd.ok()) << fd.status();
    listen_fd_ = *fd;
    const Address bound = Address::fromSocketName(listen_fd_);
    client_ = Connection::connectTo(d_, bound, RawBufferSocket::create());
    client_->addConnectionCallbacks(*this);
    runUntil([&] { return connected_; });
    int sfd = -1;
    for (int i = 0; i < 1000 && sfd < 0; ++i) {
      sfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK);
    }
    ASSERT_GE(sfd, 0);
    server_ = std::make_unique<Connection>(d_, sfd, RawBufferSocket::create(),
                                           Address::fromSocketName(sfd), Address::fromPeerName(sfd),
                                           false);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    ::close(listen_fd_);
  }
  void onEvent(ConnectionEvent e) override {
    if (e == ConnectionEvent::Connected) connected_ = true;
    else closed_ = true;
  }
  void onAboveWriteBufferHighWatermark() override { ++above_; }
  void onBelowWriteBufferLowWatermark() override { ++below_; }

  // Runs the loop in short slices until pred holds (bounded).
  void runUntil(const std::function<bool()>& pred) {
    for (int i = 0; i < 2000 && !pred(); ++i) {
      auto t = d_.createTimer([this] { d_.exit(); });
      t->enableTimer(std::chrono::milliseconds(1));
      d_.run();
    }
    ASSERT_TRUE(pred()) << "condition not reached";
  }

  event::Dispatcher d_{"test"};
  int listen_fd_ = -1;
  ConnectionPtr client_;
  ConnectionPtr server_;
  bool connected_ = false;
  bool closed_ = false;
  int above_ = 0;
  int below_ = 0;
};

// Collects what a connection reads.
struct Collector : ReadFilter {
  void initializeReadFilterCallbacks(ReadFilterCallbacks& cb) override { callbacks = &cb; }
  FilterStatus onNewConnection() override { return FilterStatus::Continue; }
  FilterStatus onData(Buffer& data, bool end) override {
    received += data.toString();
    data.drain(data.length());
    end_stream |= end;
    return FilterStatus::StopIteration;
  }
  ReadFilterCallbacks* callbacks = nullptr;
  std::string received;
  bool end_stream = false;
};

TEST_F(ConnectionPairTest, BytesFlowAndHalfCloseIsDelivered) {
  auto collector = std::make_shared<Collector>();
  server_->addReadFilter(collector);
  server_->enableHalfClose(true);
  server_->initializeReadFilters();
  Buffer b;
  b.add(std::string(200000, 'x'));
  client_->write(b, true);
  runUntil([&] { return collector->end_stream; });
  EXPECT_EQ(collector->received.size(), 200000u);
  EXPECT_EQ(server_->state(), Connection::State::Open) << "half-close keeps the other way open";
  // The other direction still works after the client's FIN.
  auto back = std::make_shared<Collector>();
  client_->addReadFilter(back);
  client_->initializeReadFilters();
  Buffer reply;
  reply.add("pong");
  server_->write(reply, false);
  runUntil([&] { return back->received == "pong"; });
}

TEST_F(ConnectionPairTest, WriteWatermarksFireAndReadDisableStopsReading) {
  client_->setBufferLimits(64 * 1024);
  auto collector = std::make_shared<Collector>();
  server_->addReadFilter(collector);
  server_->initializeReadFilters();
  server_->readDisable(true);
  // Write far more than the socket buffers hold: the write buffer passes high.
  Buffer big;
  big.add(std::string(16 * 1024 * 1024, 'y'));
  client_->write(big, false);
  EXPECT_EQ(above_, 1);
  runUntil([&] { return client_->writeBufferLength() < 16u * 1024 * 1024; });
  // With the reader disabled nothing arrives at the filter.
  EXPECT_TRUE(collector->received.empty());
  server_->readDisable(false);
  runUntil([&] { return collector->received.size() == 16u * 1024 * 1024; });
  EXPECT_EQ(below_, 1) << "low watermark once the buffer drained";
}

TEST_F(ConnectionPairTest, PeerCloseWithoutHalfCloseClosesTheConnection) {
  auto collector = std::make_shared<Collector>();
  server_->addReadFilter(collector);
  server_->initializeReadFilters();
  bool server_closed = false;
  struct CloseWatcher : ConnectionCallbacks {
    explicit CloseWatcher(bool& f) : flag(f) {}
    void onEvent(ConnectionEvent e) override {
      if (e == ConnectionEvent::RemoteClose) flag = true;
    }
    bool& flag;
  } watcher(server_closed);
  server_->addConnectionCallbacks(watcher);
  Buffer b;
  b.add("last words");
  client_->write(b, false);
  client_->close(ConnectionCloseType::FlushWrite);
  runUntil([&] { return server_closed; });
  EXPECT_EQ(collector->received, "last words") << "data before the FIN is delivered first";
}

TEST_F(ConnectionPairTest, SpliceWithRefusesWhatItCannotSplice) {
  struct Observer : SpliceObserver {
    void onSpliced(uint64_t) override {}
    void onSpliceReading(Connection&, bool) override {}
  } observer;
  EXPECT_FALSE(client_->spliceWith(*client_, observer)) << "not with itself";
  Buffer b;
  b.add("queued");
  client_->write(b, false); // bytes in the write buffer would be overtaken
  EXPECT_FALSE(client_->spliceWith(*server_, observer));
  EXPECT_FALSE(client_->spliced());
  EXPECT_FALSE(server_->spliced());
}

// A unix socket pair each side of a pipe: src[1] -> src[0] -> pipe -> dst[0] -> dst[1].
class SplicePipeTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, src_), 0);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, dst_), 0);
  }
  void TearDown() override {
    for (int fd : {src_[0], src_[1], dst_[0], dst_[1]}) ::close(fd);
  }
  std::string readAll(int fd) {
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  int src_[2];
  int dst_[2];
};

TEST_F(SplicePipeTest, MovesBytesIntactAndTakesNoMoreThanItsLimit) {
  auto pipe = SplicePipe::acquire(8192);
  ASSERT_NE(pipe, nullptr) << std::strerror(errno);
  EXPECT_EQ(pipe->capacity(), 8192u) << "a larger pipe is limited to what was asked";
  std::string data(20000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + 3);
  ASSERT_EQ(::write(src_[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));

  std::string out;
  for (int round = 0; round < 10 && out.size() < data.size(); ++round) {
    for (int i = 0; i < 100 && pipe->fillFrom(src_[0], 1 << 20) > 0; ++i) {
    }
    EXPECT_EQ(errno, EAGAIN) << "full, or nothing left to read: not end of stream";
    if (out.size() + pipe->buffered() < data.size()) {
      EXPECT_EQ(pipe->buffered(), 8192u) << "filled to its limit while bytes were waiting";
    }
    ASSERT_GT(pipe->drainTo(dst_[0]), 0);
    EXPECT_EQ(pipe->buffered(), 0u);
    out += readAll(dst_[1]);
  }
  EXPECT_EQ(out, data);
  // Nothing to read: EAGAIN; the writer shuts down: end of stream.
  EXPECT_EQ(pipe->fillFrom(src_[0], 1 << 20), -1);
  EXPECT_EQ(errno, EAGAIN);
  ::shutdown(src_[1], SHUT_WR);
  EXPECT_EQ(pipe->fillFrom(src_[0], 1 << 20), 0);
}

TEST_F(SplicePipeTest, ReleasedEmptyPipesAreReusedAndFullOnesAreNot) {
  auto first = SplicePipe::acquire(65536);
  ASSERT_NE(first, nullptr);
  SplicePipe* const raw = first.get();
  SplicePipe::release(std::move(first));
  auto again = SplicePipe::acquire(65536);
  EXPECT_EQ(again.get(), raw) << "an empty pipe goes back to the thread's pool";

  // One holding bytes is closed with them; the next acquire is empty.
  ASSERT_EQ(::write(src_[1], "abc", 3), 3);
  ASSERT_EQ(again->fillFrom(src_[0], 100), 3);
  SplicePipe::release(std::move(again));
  auto fresh = SplicePipe::acquire(65536);
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(fresh->buffered(), 0u) << "the pipe with 3 bytes was closed, not pooled";
}

TEST(ConnectTest, RefusedConnectReportsRemoteCloseWithReason) {
  event::Dispatcher d("test");
  // A port nobody listens on: bind, read the port, close.
  auto fd = createListenSocket(addr("127.0.0.1", 0), false, 1);
  ASSERT_TRUE(fd.ok());
  const Address dead = Address::fromSocketName(*fd);
  ::close(*fd);
  auto conn = Connection::connectTo(d, dead, RawBufferSocket::create());
  struct Watch : ConnectionCallbacks {
    void onEvent(ConnectionEvent e) override { last = e; ++events; }
    ConnectionEvent last = ConnectionEvent::Connected;
    int events = 0;
  } w;
  conn->addConnectionCallbacks(w);
  for (int i = 0; i < 2000 && w.events == 0; ++i) {
    auto t = d.createTimer([&] { d.exit(); });
    t->enableTimer(std::chrono::milliseconds(1));
    d.run();
  }
  EXPECT_EQ(w.events, 1);
  EXPECT_EQ(w.last, ConnectionEvent::RemoteClose);
  EXPECT_NE(conn->failureReason().find("refused"), std::string::npos) << conn->failureReason();
}

// epoll refuses some fds (a regular file: EPERM). A connection on one must not
// hang without events: it closes on its first callback, saying why.
TEST(ConnectTest, AnFdEpollRefusesClosesTheConnectionWithAReason) {
  event::Dispatcher d("test");
  char path[] = "/tmp/legate-network-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  Connection conn(d, fd, RawBufferSocket::create(), Address(), Address(), false);
  struct Watch : ConnectionCallbacks {
    void onEvent(ConnectionEvent e) override { last = e; ++events; }
    ConnectionEvent last = ConnectionEvent::Connected;
    int events = 0;
  } w;
  conn.addConnectionCallbacks(w);
  d.post([&] { d.exit(); });
  d.run();
  EXPECT_EQ(w.events, 1);
  EXPECT_EQ(w.last, ConnectionEvent::RemoteClose);
  EXPECT_EQ(conn.state(), Connection::State::Closed);
  EXPECT_NE(conn.failureReason().find("cannot watch the socket"), std::string::npos)
      << conn.failureReason();
}

TEST(ListenSocketTest, BindConflictNamesTheAddress) {
  auto a = createListenSocket(addr("127.0.0.1", 0), false, 1);
  ASSERT_TRUE(a.ok());
  const Address bound = Address::fromSocketName(*a);
  auto b = createListenSocket(bound, false, 1);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("cannot bind " + bound.asString()), std::string::npos);
  EXPECT_NE(b.status().message().find("Address already in use"), std::string::npos);
  ::close(*a);
}

} // namespace
} // namespace legate::network
