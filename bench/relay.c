// The kernel's floor for a proxied request: a blind relay that pairs each
// client connection with its own upstream connection and copies bytes both
// ways, with no HTTP at all (no parsing, no header changes, no pooling).
//
//   cc -O2 -o relay bench/relay.c && ./relay LISTEN_PORT BACKEND_PORT
//
// bench/run.py and bench/cpu_split.py build and run it beside the proxies. With
// wrk's keep-alive requests and the backend's keep-alive responses it serves as
// an HTTP proxy would, making the same reads and writes per request (a recv and
// a send each way) and so sending the same TCP segments. Being idle more, it
// waits in epoll_wait more often than a proxy does.
// Its CPU per request is therefore about what the kernel charges any proxy for
// a request here, with next to nothing spent in user space.
//
// Loopback only; one thread; edge-triggered epoll. What a pass of the loop reads
// is sent at the end of the pass, as a proxy's event loop does under load (a
// small pass sends after each event); a side holding OUT_LIMIT unsent bytes
// stops reading its peer until its socket takes them.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_common.h"

struct side {
  int peer;      // the other connection of the pair; -1 when unused
  int queued;    // on this pass's flush list
  int throttled; // 1: its reads stopped, the peer's output being full; 2: to resume
  char* out;     // bytes read from the peer, not yet taken by this side's socket
  size_t off, len, cap;
};

// Output a side holds before it stops reading its peer.
#define OUT_LIMIT (256 * 1024)
// A pass with at most this many events sends after each one, so that under light
// load a message is not held back by the others (legate's event loop does the same).
#define SMALL_BATCH 4

static struct side* sides;
static int max_fd;
static char buf[65536];
static int* flush_list; // sides with output, sent at the end of each pass
static int flush_count;
static int* resume_list; // throttled sides whose peer drained: read at the next pass
static int resume_count;

static void close_pair(int fd) {
  int fds[2] = {fd, sides[fd].peer};
  for (int i = 0; i < 2; i++) {
    if (fds[i] < 0) continue;
    struct side* s = &sides[fds[i]];
    free(s->out);
    s->out = NULL;
    s->off = s->len = s->cap = 0;
    s->peer = -1;
    s->throttled = 0;
    close(fds[i]);
  }
}

static void queue_flush(int fd) {
  if (!sides[fd].queued) {
    sides[fd].queued = 1;
    flush_list[flush_count++] = fd;
  }
}

static void append(int to, const char* data, size_t n) {
  struct side* s = &sides[to];
  if (s->off == s->len) s->off = s->len = 0;
  if (s->len + n > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < s->len + n) cap *= 2;
    char* grown = realloc(s->out, cap);
    if (!grown) die("realloc");
    s->out = grown;
    s->cap = cap;
  }
  memcpy(s->out + s->len, data, n);
  s->len += n;
  queue_flush(to);
}

// Reads what `from` has and queues it for its peer, until `from` has nothing
// more, the peer holds OUT_LIMIT bytes, or the pair is gone.
static void relay(int from) {
  int to = sides[from].peer;
  if (to < 0) return;
  for (;;) {
    if (sides[to].len - sides[to].off >= OUT_LIMIT) {
      sides[from].throttled = 1; // read again once `to` drains
      return;
    }
    ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) { // the end, or an error: the pair goes (a blind relay keeps no half-open state)
      close_pair(from);
      return;
    }
    append(to, buf, (size_t)n);
    // Edge-triggered: a short read emptied the socket, and new bytes bring a new
    // event; a full one may have left more behind.
    if ((size_t)n < sizeof buf) return;
  }
}

// Sends what `to` holds. A full socket keeps the rest: its EPOLLOUT edge
// queues it again. Once all went, a peer throttled for it reads again next pass.
static void flush(int to) {
  struct side* s = &sides[to];
  while (s->off < s->len) {
    ssize_t w = send(to, s->out + s->off, s->len - s->off, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) {
      close_pair(to);
      return;
    }
    s->off += (size_t)w;
  }
  int from = s->peer;
  if (from >= 0 && sides[from].throttled == 1) {
    sides[from].throttled = 2;
    resume_list[resume_count++] = from;
  }
}

// Sends every side on the flush list.
static void flush_queued(void) {
  for (int i = 0; i < flush_count; i++) {
    int fd = flush_list[i];
    sides[fd].queued = 0;
    if (sides[fd].peer >= 0) flush(fd);
  }
  flush_count = 0;
}

static void accept_all(int lfd, int ep, const struct sockaddr_in* backend) {
  for (;;) {
    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    if (c < 0) return;
    // The upstream side connects blocking (loopback: at once), then turns
    // non-blocking like its client.
    int u = socket(AF_INET, SOCK_STREAM, 0);
    if (u < 0 || u >= max_fd || c >= max_fd || connect(u, (const struct sockaddr*)backend, sizeof *backend) < 0 ||
        fcntl(u, F_SETFL, O_NONBLOCK) < 0) {
      perror("relay: upstream");
      close(c);
      if (u >= 0) close(u);
      continue;
    }
    no_delay(c);
    no_delay(u);
    sides[c].peer = u;
    sides[u].peer = c;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
    e.data.fd = c;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &e) < 0) die("epoll_ctl");
    e.data.fd = u;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, u, &e) < 0) die("epoll_ctl");
  }
}

int main(int argc, char** argv) {
  int listen_port, backend_port;
  relay_ports(argc, argv, &listen_port, &backend_port);
  max_fd = raise_nofile();
  sides = calloc((size_t)max_fd, sizeof *sides);
  flush_list = calloc((size_t)max_fd, sizeof *flush_list);
  resume_list = calloc((size_t)max_fd, sizeof *resume_list);
  if (!sides || !flush_list || !resume_list) die("calloc");
  for (int i = 0; i < max_fd; i++) sides[i].peer = -1;

  int lfd = listen_loopback(listen_port, SOCK_NONBLOCK);
  struct sockaddr_in backend = loopback(backend_port);
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");

  struct epoll_event ready[128];
  for (;;) {
    int n = epoll_wait(ep, ready, 128, resume_count ? 0 : -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    int resuming = resume_count;
    resume_count = 0;
    for (int i = 0; i < resuming; i++) {
      int fd = resume_list[i];
      if (sides[fd].throttled != 2) continue; // closed meanwhile
      sides[fd].throttled = 0;
      relay(fd);
    }
    for (int i = 0; i < n; i++) {
      int fd = ready[i].data.fd;
      if (fd == lfd) {
        accept_all(lfd, ep, &backend);
        continue;
      }
      if (sides[fd].peer < 0) continue; // closed earlier in this pass
      if (ready[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) relay(fd);
      if (sides[fd].peer >= 0 && (ready[i].events & EPOLLOUT) && sides[fd].off < sides[fd].len) queue_flush(fd);
      if (n <= SMALL_BATCH) flush_queued();
    }
    // What a larger pass read goes out together at its end: the process at the
    // other end is woken once for a batch rather than for every message.
    flush_queued();
  }
}
