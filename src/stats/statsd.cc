#include "stats/statsd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "stats/tag_extractor.h"

namespace legate::stats {

namespace {

// "1.2.3.4:5" / "[::1]:5" -> sockaddr; false if malformed.
bool parseAddress(const std::string& text, sockaddr_storage& ss, socklen_t& len) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string host = text.substr(0, colon);
  const int port = std::atoi(text.c_str() + colon + 1);
  if (port <= 0 || port > 65535) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  ss = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

} // namespace

StatsdSink::StatsdSink(Flavor flavor, std::string prefix, const TagProducer& tags)
    : flavor_(flavor), prefix_(prefix.empty() ? "envoy" : std::move(prefix)), tags_(tags) {}

StatsdSink::~StatsdSink() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::unique_ptr<StatsdSink>>
StatsdSink::udp(const std::string& address, Flavor flavor, std::string prefix,
                uint64_t max_datagram_bytes, const TagProducer& tags) {
  sockaddr_storage ss;
  socklen_t len = 0;
  if (!parseAddress(address, ss, len)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid statsd address '", address, "': expected a numeric IP and port"));
  }
  const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("statsd sink: cannot use UDP address ", address, ": ", std::strerror(err)));
  }
  std::unique_ptr<StatsdSink> sink(new StatsdSink(flavor, std::move(prefix), tags));
  sink->fd_ = fd;
  if (max_datagram_bytes > 0) sink->max_datagram_ = max_datagram_bytes;
  return sink;
}

std::unique_ptr<StatsdSink> StatsdSink::tcp(std::function<std::string()> pick_host,
                                            std::string prefix, const TagProducer& tags) {
  std::unique_ptr<StatsdSink> sink(new StatsdSink(Flavor::Statsd, std::move(prefix), tags));
  sink->tcp_ = true;
  sink->pick_host_ = std::move(pick_host);
  return sink;
}

std::string StatsdSink::line(std::string_view name, const std::string& value,
                             const char* type) const {
  if (flavor_ == Flavor::Statsd) {
    return absl::StrCat(prefix_, ".", absl::string_view(name.data(), name.size()), ":", value,
                        "|", type);
  }
  const TaggedName tagged = tags_.produce(name);
  std::string out = absl::StrCat(prefix_, ".", tagged.name, ":", value, "|", type);
  if (!tagged.tags.empty()) {
    out += "|#";
    for (size_t i = 0; i < tagged.tags.size(); ++i) {
      if (i > 0) out.push_back(',');
      absl::StrAppend(&out, tagged.tags[i].first, ":", tagged.tags[i].second);
    }
  }
  return out;
}

void StatsdSink::flush(const MetricSnapshot& snapshot) {
  std::vector<std::string> lines;
  lines.reserve(snapshot.counters.size() + snapshot.gauges.size() + snapshot.samples.size());
  for (const auto& c : snapshot.counters) {
    lines.push_back(line(c.counter->name(), absl::StrCat(c.delta), "c"));
  }
  for (const Gauge* g : snapshot.gauges) {
    lines.push_back(line(g->name(), absl::StrCat(g->value()), "g"));
  }
  for (const auto& s : snapshot.samples) {
    lines.push_back(line(s.histogram->name(), absl::StrCat(s.value), "ms"));
  }
  if (tcp_) {
    sendTcp(lines);
  } else {
    sendUdp(lines);
  }
}

void StatsdSink::sendUdp(const std::vector<std::string>& lines) {
  std::string datagram;
  auto send = [&] {
    if (!datagram.empty()) {
      // Non-blocking; a full socket buffer or an ICMP-refused peer drops this one.
      (void)::send(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      datagram.clear();
    }
  };
  for (const auto& l : lines) {
    if (!datagram.empty() && datagram.size() + 1 + l.size() > max_datagram_) send();
    if (!datagram.empty()) datagram.push_back('\n');
    datagram += l;
  }
  send();
}

void StatsdSink::closeTcp() {
  if (mid_line_) {
    // The peer saw the start of the first line; the next connection starts clean.
    const size_t nl = tcp_buffer_.find('\n');
    tcp_buffer_.erase(0, nl == std::string::npos ? tcp_buffer_.size() : nl + 1);
    mid_line_ = false;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  connecting_ = false;
}

// True once the socket is connected; starts or checks a non-blocking connect.
bool StatsdSink::tcpReady() {
  if (fd_ < 0) {
    sockaddr_storage ss;
    socklen_t len = 0;
    if (!parseAddress(pick_host_(), ss, len)) return false;
    fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0) return true;
    if (errno != EINPROGRESS) {
      closeTcp();
      return false;
    }
    connecting_ = true;
  }
  if (connecting_) {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return false; // still connecting: try at the next flush
    int err = 0;
    socklen_t elen = sizeof(err);
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) {
      closeTcp();
      return false;
    }
    connecting_ = false;
  }
  return true;
}

void StatsdSink::sendTcp(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    if (tcp_buffer_.size() + l.size() + 1 > kMaxTcpBuffer) break;
    tcp_buffer_ += l;
    tcp_buffer_.push_back('\n');
  }
  if (tcp_buffer_.empty() || !tcpReady()) return;
  while (!tcp_buffer_.empty()) {
    const ssize_t n = ::send(fd_, tcp_buffer_.data(), tcp_buffer_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      mid_line_ = tcp_buffer_[static_cast<size_t>(n) - 1] != '\n';
      tcp_buffer_.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return; // rest at the next flush
    if (n < 0 && errno == EINTR) continue;
    closeTcp(); // peer gone: reconnect (maybe to another host) at the next flush
    return;
  }
}

} // namespace legate::stats
