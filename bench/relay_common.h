// What bench/relay.c and bench/relay_uring.c share: the command line, dying on a
// setup error, the loopback addresses, TCP_NODELAY, the descriptor limit and the
// listening socket.
// Each relay is one .c file compiled alone (bench/run.py's build_c); this header
// sits beside them.

#ifndef LEGATE_BENCH_RELAY_COMMON_H
#define LEGATE_BENCH_RELAY_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

static void die(const char* what) {
  perror(what);
  exit(1);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// The command line, LISTEN_PORT BACKEND_PORT; exits with the usage otherwise.
static void relay_ports(int argc, char** argv, int* listen_port, int* backend_port) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LISTEN_PORT BACKEND_PORT\n", argv[0]);
    exit(2);
  }
  *listen_port = atoi(argv[1]);
  *backend_port = atoi(argv[2]);
}

// Raises the descriptor limit to its hard maximum; returns how many descriptors
// (and so per-descriptor table entries) to provide for, at most 2^20.
static int raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1048576) ? (int)rl.rlim_cur : 1048576;
}

// A socket listening on 127.0.0.1:port; type_flags adds to SOCK_STREAM (e.g.
// SOCK_NONBLOCK).
static int listen_loopback(int port, int type_flags) {
  struct sockaddr_in addr = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM | type_flags, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) < 0 || listen(fd, 4096) < 0) die("listen");
  return fd;
}

#endif
