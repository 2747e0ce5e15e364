// The kernel's floor for a proxied request, with io_uring instead of epoll: the
// same blind relay as bench/relay.c (each client connection paired with its own
// upstream connection, bytes copied both ways, no HTTP at all), driven by one
// io_uring so that one io_uring_enter per pass of the loop submits every send
// the pass queued and waits for the next completions, where relay.c makes a
// recv and a send per message and an epoll_wait per pass.
//
//   cc -O2 -o relay_uring bench/relay_uring.c -luring && ./relay_uring LISTEN_PORT BACKEND_PORT
//
// bench/cpu_split.py (and bench/run.py, beside relay.c) builds and runs it when
// liburing is installed, to measure whether io_uring lowers the floor relay.c
// shows: the CPU per request the kernel charges an epoll-based proxy here.
//
// How it differs from relay.c:
// - A multishot accept and, per connection, one multishot recv that stays armed
//   for the connection's life: the kernel picks a buffer from a ring of provided
//   buffers for each message, so a request costs no recv submission at all.
// - The send goes out from the very buffer the recv filled (no copy in user
//   space); the buffer returns to the ring when its send completes. One send is
//   in flight per side at a time (so the bytes keep their order); the rest wait
//   in the side's queue and go out together, in one sendmsg, after it.
// - Each socket is also put in the ring's file table (two registrations per
//   connection, at its start and end), so that a request on it skips the file
//   lookup and reference count a plain fd costs.
// - The ring is IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN: the
//   kernel's completion work runs only inside our io_uring_enter, in batches,
//   and never interrupts the loop. Where the kernel refuses those flags it falls
//   back to COOP_TASKRUN, then to none.
// - Bounded buffering as in relay.c: a side holding OUT_LIMIT unsent bytes stops
//   its peer's reads (its multishot recv is cancelled) until all of them went; a
//   recv that finds the buffer ring empty (ENOBUFS) is armed again once a send
//   has returned a buffer.
// - Closing: a side that reads the end of its stream closes the pair once its
//   peer has sent what it holds; an error closes the pair at once. Sockets are
//   shut down first (which ends the requests the kernel holds on them), and each
//   descriptor is closed only when no request on it is left, so that a number
//   the kernel hands out again is never confused with the old connection.
//
// Loopback only; one thread. The sockets stay in blocking mode: io_uring never
// blocks on them (it waits for readiness itself), and there is no fcntl to make.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay_common.h"

// Output a side holds before it stops reading its peer.
#define OUT_LIMIT (256 * 1024)
// The provided buffers: NBUFS (a power of two) of BUF_SIZE bytes, in group BGID.
// A small message touches only the first lines of its buffer: 128, 512 and 2048
// buffers measured the same per request (at c=400, 64 were too few, 128 enough).
// -DNBUFS=, -DBUF_SIZE= and -DFIXED_FILES=0 (plain fds) are for trying others.
#ifndef NBUFS
#define NBUFS 2048
#endif
#ifndef BUF_SIZE
#define BUF_SIZE (16 * 1024)
#endif
#ifndef FIXED_FILES
#define FIXED_FILES 1
#endif
#define BGID 1
// At most this many queued buffers go out in one sendmsg.
#define SEND_BATCH 32
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 32768

// What a completion is for: the low bits of its user_data (the rest is the fd).
enum { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_CANCEL };
#define OP_BITS 3

struct side {
  int peer;                // the other connection of the pair; -1 when unused
  unsigned char recv_armed; // its multishot recv is in the kernel
  unsigned char throttled;  // its recv stopped: the peer holds OUT_LIMIT unsent bytes
  unsigned char starved;    // its recv ended with ENOBUFS: on the starved list
  unsigned char sending;    // a send from the head of the queue is in flight
  unsigned char closing;    // shut down; closed once its requests are done
  unsigned char drain;      // the peer's stream ended: close the pair once this side sent all
  int head, tail;          // buffer ids queued to send on this side; -1: none
  unsigned off;            // bytes of the head buffer already sent
  size_t queued;           // unsent bytes in the queue
  struct msghdr* msg;      // a send of several buffers, made when first needed
};

static struct io_uring ring;
static struct io_uring_buf_ring* br;
static char* buffers;
static unsigned buf_len[NBUFS]; // bytes a queued buffer holds
static int buf_next[NBUFS];     // the next buffer in its side's queue
static int returned;            // buffers given back this pass, not yet published
static struct side* sides;
static int max_fd;
static int* starved_list; // sides whose recv ran out of buffers
static int starved_count;
static int listen_fd;
static int fixed; // the sockets are in the ring's file table, at their fd's index

static void die_err(const char* what, int err) {
  fprintf(stderr, "%s: %s\n", what, strerror(err));
  exit(1);
}

static uint64_t tag(int fd, int op) {
  return ((uint64_t)fd << OP_BITS) | (uint64_t)op;
}

// A free submission slot; a full queue is submitted first to make room.
static struct io_uring_sqe* sqe_for(int fd, int op) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (!sqe) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
    if (!sqe) die_err("io_uring_get_sqe", EBUSY);
  }
  io_uring_sqe_set_data64(sqe, tag(fd, op));
  return sqe;
}

// After the prep (which clears the flags): the sqe's fd is the socket's slot in
// the file table, when there is one.
static void on_slot(struct io_uring_sqe* sqe) {
  if (fixed) sqe->flags |= IOSQE_FIXED_FILE;
}

// Puts fd into the file table at its own index (or -1 there: empties the slot).
static int set_slot(int index, int fd) {
  return fixed ? io_uring_register_files_update(&ring, (unsigned)index, &fd, 1) : 0;
}

// Hands a buffer back to the ring; the pass publishes them all at its end.
static void give_back(int bid) {
  io_uring_buf_ring_add(br, buffers + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                        io_uring_buf_ring_mask(NBUFS), returned++);
}

static void give_back_queue(struct side* s) {
  for (int bid = s->head; bid >= 0;) {
    int next = buf_next[bid];
    give_back(bid);
    bid = next;
  }
  s->head = s->tail = -1;
  s->off = 0;
}

static void arm_recv(int fd) {
  struct io_uring_sqe* sqe = sqe_for(fd, OP_RECV);
  io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
  on_slot(sqe);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = BGID;
  sides[fd].recv_armed = 1;
}

static void arm_accept(void) {
  io_uring_prep_multishot_accept(sqe_for(listen_fd, OP_ACCEPT), listen_fd, NULL, NULL, 0);
}

// Starts sending the side's queue, unless a send is in flight: the head buffer
// with send, or up to SEND_BATCH buffers with one sendmsg when more are queued.
static void start_send(int fd) {
  struct side* s = &sides[fd];
  if (s->sending || s->head < 0 || s->closing) return;
  char* first = buffers + (size_t)s->head * BUF_SIZE + s->off;
  struct io_uring_sqe* sqe = sqe_for(fd, OP_SEND);
  if (buf_next[s->head] < 0) {
    io_uring_prep_send(sqe, fd, first, buf_len[s->head] - s->off, MSG_NOSIGNAL);
  } else {
    if (!s->msg) {
      s->msg = calloc(1, sizeof *s->msg + SEND_BATCH * sizeof(struct iovec));
      if (!s->msg) die("calloc");
      s->msg->msg_iov = (struct iovec*)(s->msg + 1);
    }
    struct iovec* iov = s->msg->msg_iov;
    size_t n = 0;
    for (int bid = s->head; bid >= 0 && n < SEND_BATCH; bid = buf_next[bid], n++) {
      iov[n].iov_base = n ? buffers + (size_t)bid * BUF_SIZE : first;
      iov[n].iov_len = n ? buf_len[bid] : buf_len[bid] - s->off;
    }
    s->msg->msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, fd, s->msg, MSG_NOSIGNAL);
  }
  on_slot(sqe);
  s->sending = 1;
}

// Closes a shut-down side once the kernel holds no request on it.
static void maybe_close(int fd) {
  struct side* s = &sides[fd];
  if (!s->closing || s->recv_armed || s->sending) return;
  set_slot(fd, -1);
  close(fd);
  free(s->msg);
  memset(s, 0, sizeof *s);
  s->peer = -1;
  s->head = s->tail = -1;
}

static void close_side(int fd) {
  struct side* s = &sides[fd];
  if (s->closing || s->peer < 0) return;
  s->closing = 1;
  // Ends the requests on it: the recv reads the end, a waiting send fails.
  shutdown(fd, SHUT_RDWR);
  // Queued buffers go back now, or when a send in flight, which still reads
  // from them, completes.
  if (!s->sending) give_back_queue(s);
  s->queued = 0;
  if (s->recv_armed || s->sending)
    io_uring_prep_cancel_fd(sqe_for(fd, OP_CANCEL), fd,
                            IORING_ASYNC_CANCEL_ALL | (fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
  maybe_close(fd);
}

static void close_pair(int fd) {
  int peer = sides[fd].peer;
  close_side(fd);
  if (peer >= 0) close_side(peer);
}

static void on_accept(struct io_uring_cqe* cqe, const struct sockaddr_in* backend) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept();
  if (cqe->res < 0) {
    if (cqe->res != -ECANCELED) fprintf(stderr, "relay_uring: accept: %s\n", strerror(-cqe->res));
    return;
  }
  int c = cqe->res;
  // The upstream side connects blocking (loopback: at once), as in relay.c.
  int u = socket(AF_INET, SOCK_STREAM, 0);
  if (u < 0 || u >= max_fd || c >= max_fd || connect(u, (const struct sockaddr*)backend, sizeof *backend) < 0) {
    perror("relay_uring: upstream");
    close(c);
    if (u >= 0) close(u);
    return;
  }
  if (set_slot(c, c) < 0 || set_slot(u, u) < 0) {
    fprintf(stderr, "relay_uring: the file table refused a socket\n");
    set_slot(c, -1);
    close(c);
    close(u);
    return;
  }
  no_delay(c);
  no_delay(u);
  sides[c].peer = u;
  sides[u].peer = c;
  arm_recv(c);
  arm_recv(u);
}

static void on_recv(int from, struct io_uring_cqe* cqe) {
  struct side* s = &sides[from];
  int res = cqe->res;
  int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (!more) s->recv_armed = 0;
  if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
    int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (s->closing || s->peer < 0) {
      give_back(bid);
    } else {
      struct side* t = &sides[s->peer];
      buf_len[bid] = (unsigned)res;
      buf_next[bid] = -1;
      if (t->tail >= 0)
        buf_next[t->tail] = bid;
      else
        t->head = bid;
      t->tail = bid;
      t->queued += (size_t)res;
      start_send(s->peer);
      if (t->queued >= OUT_LIMIT && !s->throttled) {
        s->throttled = 1; // read again once the peer sent all
        if (s->recv_armed) io_uring_prep_cancel64(sqe_for(from, OP_CANCEL), tag(from, OP_RECV), 0);
      }
    }
  }
  if (more) return;
  if (s->closing) {
    maybe_close(from);
  } else if (res == 0) { // the end: the pair goes once the peer sent what it holds
    struct side* t = &sides[s->peer];
    if (t->head < 0 && !t->sending)
      close_pair(from);
    else
      t->drain = 1;
  } else if (res == -ENOBUFS) { // armed again when a send gives a buffer back
    if (!s->starved) {
      s->starved = 1;
      starved_list[starved_count++] = from;
    }
  } else if (res > 0 || res == -ECANCELED) { // ended by a cancel (throttled), or by the kernel
    if (!s->throttled) arm_recv(from);
  } else {
    close_pair(from);
  }
}

static void on_send(int to, int res) {
  struct side* s = &sides[to];
  s->sending = 0;
  if (s->closing) {
    give_back_queue(s);
    maybe_close(to);
    return;
  }
  if (res == -EINTR || res == -EAGAIN) res = 0; // sent nothing: send the rest again
  if (res < 0) {
    close_pair(to);
    return;
  }
  // The buffers sent in full go back; a short send leaves the rest for the next.
  s->queued -= (size_t)res;
  while (res > 0) {
    unsigned left = buf_len[s->head] - s->off;
    if ((unsigned)res < left) {
      s->off += (unsigned)res;
      break;
    }
    res -= (int)left;
    int bid = s->head;
    s->head = buf_next[bid];
    if (s->head < 0) s->tail = -1;
    s->off = 0;
    give_back(bid);
  }
  if (s->head >= 0) {
    start_send(to);
    return;
  }
  if (s->drain) {
    close_pair(to);
    return;
  }
  // All went: a peer throttled for this side reads again.
  struct side* p = &sides[s->peer];
  if (p->throttled) {
    p->throttled = 0;
    if (!p->recv_armed && !p->starved) arm_recv(s->peer);
  }
}

static void setup_ring(void) {
  static const unsigned tries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int ret = -EINVAL;
  for (size_t i = 0; i < sizeof tries / sizeof tries[0] && ret == -EINVAL; i++) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = tries[i] | IORING_SETUP_CQSIZE;
    p.cq_entries = CQ_ENTRIES;
    ret = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
  }
  if (ret < 0) die_err("io_uring_queue_init_params", -ret);

  size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
  br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (br == MAP_FAILED) die("mmap");
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)br;
  reg.ring_entries = NBUFS;
  reg.bgid = BGID;
  ret = io_uring_register_buf_ring(&ring, &reg, 0);
  if (ret < 0) die_err("io_uring_register_buf_ring", -ret);
  // A file table with a slot per possible fd: a request on a socket in it skips
  // the lookup and reference count of its file. Without one, plain fds do.
  fixed = FIXED_FILES && io_uring_register_files_sparse(&ring, (unsigned)max_fd) == 0;
  io_uring_buf_ring_init(br);
  buffers = malloc((size_t)NBUFS * BUF_SIZE);
  if (!buffers) die("malloc");
  for (int i = 0; i < NBUFS; i++) give_back(i);
  io_uring_buf_ring_advance(br, returned);
  returned = 0;
}

int main(int argc, char** argv) {
  int listen_port, backend_port;
  relay_ports(argc, argv, &listen_port, &backend_port);
  max_fd = raise_nofile();
  sides = calloc((size_t)max_fd, sizeof *sides);
  starved_list = calloc((size_t)max_fd, sizeof *starved_list);
  if (!sides || !starved_list) die("calloc");
  for (int i = 0; i < max_fd; i++) sides[i].peer = sides[i].head = sides[i].tail = -1;

  listen_fd = listen_loopback(listen_port, 0);
  struct sockaddr_in backend = loopback(backend_port);
  setup_ring();
  arm_accept();

  for (;;) {
    // Buffers given back last pass become the kernel's, and recvs that ran out of
    // them are armed again; then one io_uring_enter submits what the pass queued
    // and waits for at least one completion.
    if (returned) {
      io_uring_buf_ring_advance(br, returned);
      returned = 0;
      int n = starved_count;
      starved_count = 0;
      for (int i = 0; i < n; i++) {
        int fd = starved_list[i];
        struct side* s = &sides[fd];
        if (!s->starved) continue;
        s->starved = 0;
        if (!s->closing && s->peer >= 0 && !s->recv_armed && !s->throttled) arm_recv(fd);
      }
    }
    int ret = io_uring_submit_and_wait(&ring, 1);
    if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) die_err("io_uring_submit_and_wait", -ret);
    unsigned head, seen = 0;
    struct io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      int fd = (int)(cqe->user_data >> OP_BITS);
      switch ((int)(cqe->user_data & ((1u << OP_BITS) - 1))) {
      case OP_ACCEPT:
        on_accept(cqe, &backend);
        break;
      case OP_RECV:
        on_recv(fd, cqe);
        break;
      case OP_SEND:
        on_send(fd, cqe->res);
        break;
      default: // OP_CANCEL: its target's own completion says what happened
        break;
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}
