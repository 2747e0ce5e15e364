"""tcp_proxy end to end: bytes intact, half-close, load balancing, connect failures
and retries, timeouts, listener/cluster stats, filter chain match, connection limit."""

import os
import random
import socket
import struct
import subprocess
import threading
import time
import unittest

from harness import (BlackholeServer, EchoServer, HoldServer, LegateTestCase, SinkServer,
                     bootstrap, closed_by_peer, connect, free_port, recv_all, recv_exact,
                     pipe_fd_count, refused_port, sha256, socket_address, splice_runtime,
                     static_cluster, tcp_listener, tcp_proxy_filter, wait_until)

MIB = 1 << 20


def send_all_then_shutdown(sock, data, chunk=1 << 20):
    view = memoryview(data)
    for off in range(0, len(view), chunk):
        sock.sendall(view[off:off + chunk])
    sock.shutdown(socket.SHUT_WR)



def _tcp_socket_states():
    """inode -> TCP state (hex, as /proc/net/tcp shows it; 0A is LISTEN)."""
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    states[fields[9]] = fields[3]
        except OSError:
            pass
    return states


def settled_fd_count(pid, timeout=5.0):
    """The process's descriptor count once it holds no TCP socket but listeners and
    the same descriptors twice in a row (an admin connection being accepted and
    closed comes and goes between a listing and a readlink)."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        fds = os.listdir("/proc/%d/fd" % pid)
        states = _tcp_socket_states()
        busy = 0
        targets = []
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                busy += 1  # closed since the listing: not settled
                continue
            targets.append((fd, target))
            if target.startswith("socket:["):
                # Only listeners may remain. A socket missing from the tables is one
                # the peer reset that legate has not closed yet: still an fd, so busy.
                if states.get(target[len("socket:["):-1]) != "0A":
                    busy += 1
        targets.sort()
        if busy == 0 and targets == previous:
            return len(fds)
        previous = targets if busy == 0 else None
        if time.monotonic() > deadline:
            raise AssertionError("legate's descriptors did not settle (%d busy) after %.0fs"
                                 % (busy, timeout))
        time.sleep(0.05)

def skip_if_sanitized(test, lg):
    """Skips a test that exhausts legate's fds when legate runs with ASan/UBSan:
    UBSan's vptr check opens a pipe to probe memory, and out of fds it reports
    false errors."""
    if lg.sanitized():
        test.skipTest("exhausts fds: needs a build without sanitizers")


class TcpProxyData(LegateTestCase):
    """Payload integrity through the proxy, copying (the default)."""

    splice = False

    def data_bootstrap(self, listeners, clusters):
        extra = {"layered_runtime": splice_runtime()} if self.splice else {}
        return bootstrap(listeners, clusters, **extra)

    def proxy_to(self, upstream_port, **tcp_extra):
        lg = self.start_legate(self.data_bootstrap(
            [tcp_listener("l", "up", stat_prefix="data", **tcp_extra)],
            [static_cluster("up", [upstream_port])]))
        self.pipes_at_start = pipe_fd_count(lg.pid)
        return lg

    def assert_mode(self, lg):
        """The bytes went the way this class says: splicing leaves the worker's
        pooled pipe open (two fds); copying never makes one."""
        pipes = pipe_fd_count(lg.pid) - self.pipes_at_start
        if self.splice:
            self.assertGreaterEqual(pipes, 2, "splicing on, but no pipe was made")
        else:
            self.assertEqual(pipes, 0, "copying, but a pipe was made")

    def test_32mib_client_to_upstream(self):
        sink = self.server(SinkServer, keep=False)
        lg = self.proxy_to(sink.port)
        payload = random.randbytes(32 * MIB)
        c = self.client(lg.port("l"), timeout=30)
        send_all_then_shutdown(c, payload)
        # The sink closes after EOF; the client then sees EOF too.
        self.assertEqual(recv_all(c)[1], 0)
        wait_until(lambda: 0 in sink.digests, 30, what="upstream EOF")
        self.assertEqual(sink.lengths[0], len(payload))
        self.assertEqual(sink.digests[0], sha256(payload))
        lg.wait_for_stat("tcp.data.downstream_cx_rx_bytes_total", lambda v: v == len(payload))
        lg.wait_for_stat("cluster.up.upstream_cx_tx_bytes_total", lambda v: v == len(payload))
        self.assert_mode(lg)

    def test_32mib_upstream_to_client(self):
        payload = random.randbytes(32 * MIB)
        sink = self.server(SinkServer, greeting=payload, keep=False, close_after_greeting=True)
        lg = self.proxy_to(sink.port)
        c = self.client(lg.port("l"), timeout=30)
        digest, length, _ = recv_all(c)
        self.assertEqual(length, len(payload))
        self.assertEqual(digest, sha256(payload))
        lg.wait_for_stat("tcp.data.downstream_cx_tx_bytes_total", lambda v: v == len(payload))
        lg.wait_for_stat("cluster.up.upstream_cx_rx_bytes_total", lambda v: v == len(payload))
        self.assert_mode(lg)

    def test_32mib_echo_both_directions_at_once(self):
        echo = self.server(EchoServer)
        lg = self.proxy_to(echo.port)
        payload = random.randbytes(32 * MIB)
        c = self.client(lg.port("l"), timeout=30)
        sender = self.thread(send_all_then_shutdown, c, payload)
        digest, length, _ = recv_all(c)
        sender.get()
        self.assertEqual(length, len(payload))
        self.assertEqual(digest, sha256(payload))
        self.assert_mode(lg)

    def test_50_concurrent_connections_through_echo(self):
        echo = self.server(EchoServer)
        lg = self.proxy_to(echo.port)
        port = lg.port("l")
        n, size = 50, 2 * MIB
        base = random.randbytes(size)

        def one(i):
            payload = i.to_bytes(4, "big") + base[4:]
            s = connect(port, timeout=60)
            try:
                t = threading.Thread(target=send_all_then_shutdown, args=(s, payload, 256 * 1024))
                t.start()
                digest, length, _ = recv_all(s)
                t.join(60)
                return digest == sha256(payload) and length == size
            finally:
                s.close()

        workers = [self.thread(one, i) for i in range(n)]
        results = [w.get(timeout=120) for w in workers]
        self.assertEqual(results.count(True), n, "connections with corrupted or short data")
        lg.wait_for_stat("tcp.data.downstream_cx_total", lambda v: v == n)
        lg.wait_for_stat("tcp.data.downstream_cx_rx_bytes_total", lambda v: v == n * size)
        lg.wait_for_stat("tcp.data.downstream_cx_tx_bytes_total", lambda v: v == n * size)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)

    def test_half_close_both_ways(self):
        sink = self.server(SinkServer, reply=b"reply-after-eof")
        lg = self.proxy_to(sink.port)
        c = self.client(lg.port("l"))
        c.sendall(b"request")
        sink.wait_accepted(1)
        c.shutdown(socket.SHUT_WR)
        # The upstream sees EOF, with everything the client sent before it.
        wait_until(lambda: 0 in sink.eof, 5, what="upstream EOF after client half-close")
        self.assertEqual(bytes(sink.received[0]), b"request")
        # Its reply still flows back on the half-open connection, then EOF.
        digest, length, head = recv_all(c)
        self.assertEqual(head, b"reply-after-eof")
        wait_until(lambda: 0 in sink.finished, 5, what="upstream close")
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        lg.wait_for_stat(lg.listener_stat_prefix("l") + "downstream_cx_active", lambda v: v == 0)

    def test_data_and_fin_before_upstream_connects(self):
        # The client's bytes and FIN arrive while legate is still connecting upstream;
        # both must be delivered once the upstream is there.
        sink = self.server(SinkServer, reply=b"got it")
        lg = self.proxy_to(sink.port)
        for i in range(20):
            c = connect(lg.port("l"))
            c.sendall(b"early-%02d" % i)
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_all(c)[2], b"got it")
            c.close()
        wait_until(lambda: len(sink.finished) == 20, 5, what="20 upstream connections done")
        for i in range(20):
            self.assertEqual(bytes(sink.received[i]), b"early-%02d" % i)

    def test_upstream_half_close_keeps_client_to_upstream_direction(self):
        # The upstream says its piece and shuts down its write side first; the client
        # still gets to send afterwards.
        sink = self.server(SinkServer, greeting=b"banner", close_after_greeting=True)
        lg = self.proxy_to(sink.port)
        c = self.client(lg.port("l"))
        self.assertEqual(recv_exact(c, 6), b"banner")
        c.settimeout(5)
        self.assertEqual(c.recv(10), b"", "client should see the upstream's EOF")
        c.sendall(b"late data")
        c.shutdown(socket.SHUT_WR)
        wait_until(lambda: 0 in sink.eof, 5, what="upstream EOF")
        self.assertEqual(bytes(sink.received[0]), b"late data")


    def test_both_directions_done_still_flushes_to_a_slow_upstream(self):
        # The upstream reads nothing for a while. The client sends until legate
        # holds some of it, then its FIN: legate's downstream is done both ways and
        # closes while bytes for the upstream are still queued. They must be
        # delivered, not dropped with the downstream.
        hold = self.server(HoldServer, rcvbuf=16 * 1024)
        # The cluster's buffer limit is large, so legate reads what the client sends
        # (copying; splicing, it reads while its pipe has room).
        lg = self.start_legate(self.data_bootstrap(
            [tcp_listener("l", "up", stat_prefix="data")],
            [static_cluster("up", [hold.port], per_connection_buffer_limit_bytes=16 * MIB)]))
        c = self.client(lg.port("l"))
        up = hold.take()
        payload = self.send_until_legate_holds_some(lg, c)
        c.shutdown(socket.SHUT_WR)
        # legate has the client's bytes, and just after them its FIN, queued for
        # the upstream; now the upstream finishes its side.
        up.sendall(b"ok")
        up.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(c)[2], b"ok")
        lg.wait_for_stat(lg.listener_stat_prefix("l") + "downstream_cx_active", lambda v: v == 0)
        up.settimeout(10)
        self.assertEqual(recv_all(up)[:2], (sha256(payload), len(payload)))
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        self.assertEqual(lg.stat("tcp.data.upstream_flush_total"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_tx_bytes_total"), len(payload))
        self.assertEqual(lg.stat("cluster.up.upstream_cx_tx_bytes_buffered"), 0)

    def send_until_legate_holds_some(self, lg, c, hold=256 * 1024, chunk=64 * 1024,
                                     limit=64 * MIB):
        """Sends random bytes in chunks until legate has read all of them and holds
        `hold` bytes or more for an upstream that does not read (the kernel's
        socket buffers took the rest); returns what was sent. Splicing, `hold` is
        well below the pipe's size, so that there is room left to read the FIN."""
        sent = bytearray()
        held = lambda: lg.stat("cluster.up.upstream_cx_tx_bytes_buffered")
        while len(sent) < limit:
            part = os.urandom(chunk)
            c.sendall(part)
            sent += part
            lg.wait_for_stat("tcp.data.downstream_cx_rx_bytes_total",
                             lambda v: v == len(sent))
            # Twice, apart: a read between a splice in and its splice out sees
            # bytes in flight that are not held.
            if held() >= hold:
                time.sleep(0.05)
                if held() >= hold:
                    return bytes(sent)
        self.fail("legate held %d bytes for the upstream after %d bytes sent"
                  % (held(), len(sent)))


class TcpProxyDataSpliced(TcpProxyData):
    """The same splicing (runtime legate.tcp_proxy.splice: true)."""

    splice = True

class TcpProxyBalancing(LegateTestCase):

    def test_weighted_clusters_spread_by_weight(self):
        a = self.server(EchoServer)
        b = self.server(EchoServer)
        listener = {"name": "l", "address": socket_address(0), "filter_chains": [{"filters": [
            tcp_proxy_filter(stat_prefix="w", weighted_clusters={"clusters": [
                {"name": "a", "weight": 3}, {"name": "b", "weight": 1}]})]}]}
        lg = self.start_legate(bootstrap([listener], [static_cluster("a", [a.port]),
                                                      static_cluster("b", [b.port])]))
        total = 200
        for i in range(total):
            s = connect(lg.port("l"))
            s.sendall(b"x")
            self.assertEqual(recv_exact(s, 1), b"x")
            s.close()
        wait_until(lambda: a.accepted + b.accepted == total, 10, what="all upstream accepts")
        st = lg.stats()
        self.assertEqual(st["cluster.a.upstream_cx_total"], a.accepted)
        self.assertEqual(st["cluster.b.upstream_cx_total"], b.accepted)
        # Expected 150/50; the bounds are ~6 standard deviations wide.
        self.assertTrue(110 <= a.accepted <= 185, "a got %d of %d" % (a.accepted, total))
        self.assertTrue(15 <= b.accepted <= 90, "b got %d of %d" % (b.accepted, total))

    def test_round_robin_over_three_endpoints(self):
        servers = [self.server(EchoServer) for _ in range(3)]
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "rr")],
            [static_cluster("rr", [s.port for s in servers], lb_policy="ROUND_ROBIN")]))
        for i in range(30):
            s = connect(lg.port("l"))
            s.sendall(b"%d" % i)
            recv_exact(s, len(b"%d" % i))
            s.close()
        wait_until(lambda: sum(s.accepted for s in servers) == 30, 10, what="30 upstream accepts")
        self.assertEqual([s.accepted for s in servers], [10, 10, 10])
        status, body = lg.admin_get("/clusters")
        self.assertEqual(status, 200)
        for s in servers:
            self.assertIn("rr::127.0.0.1:%d::cx_total::10" % s.port, body)


class TcpProxyFailures(LegateTestCase):

    def read_log_lines(self, path, n, timeout=5.0):
        def lines():
            try:
                with open(path) as f:
                    got = [l for l in f.read().splitlines() if l.strip()]
            except OSError:
                return None
            return got if len(got) >= n else None
        return wait_until(lines, timeout, what="%d access log line(s) in %s" % (n, path))

    def test_refused_upstream_closes_downstream_and_logs_uf(self):
        port = refused_port()
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "dead", stat_prefix="r", access_log_path=log_path)],
            [static_cluster("dead", [port])]))
        c = self.client(lg.port("l"))
        c.sendall(b"hello?")
        self.assertTrue(closed_by_peer(c, 5), "downstream was not closed")
        lg.wait_for_stat("cluster.dead.upstream_cx_connect_fail", lambda v: v == 1)
        lg.wait_for_stat("cluster.dead.upstream_cx_connect_attempts_exceeded", lambda v: v == 1)
        self.assertEqual(lg.stat("cluster.dead.upstream_cx_active"), 0)
        (line,) = self.read_log_lines(log_path, 1)
        flags, host, received = line.split(" ")
        self.assertEqual(set(flags.split(",")), {"UF", "URX"}, line)
        self.assertEqual(host, "127.0.0.1:%d" % port, line)
        self.assertEqual(received, "0", line)

    def test_max_connect_attempts_retries_to_the_good_endpoint(self):
        good = self.server(EchoServer)
        bad = refused_port()
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "mixed", max_connect_attempts=3)],
            [static_cluster("mixed", [bad, good.port])]))
        # Round robin starts at the refusing endpoint, so each of these fails once.
        for i in range(4):
            c = connect(lg.port("l"))
            c.sendall(b"ping%d" % i)
            self.assertEqual(recv_exact(c, 5), b"ping%d" % i)
            c.close()
        st = lg.stats()
        fails = st["cluster.mixed.upstream_cx_connect_fail"]
        self.assertGreaterEqual(fails, 1)
        self.assertLessEqual(fails, 4)
        self.assertEqual(st["cluster.mixed.upstream_cx_connect_attempts_exceeded"], 0)
        self.assertEqual(good.accepted, 4)
        self.assertEqual(st["cluster.mixed.upstream_cx_total"], 4 + fails)

    def test_max_connect_attempts_all_refusing(self):
        ports = [refused_port() for _ in range(2)]
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "dead", stat_prefix="r", access_log_path=log_path,
                          max_connect_attempts=3)],
            [static_cluster("dead", ports)]))
        c = self.client(lg.port("l"))
        self.assertTrue(closed_by_peer(c, 5), "downstream was not closed")
        lg.wait_for_stat("cluster.dead.upstream_cx_connect_attempts_exceeded", lambda v: v == 1)
        st = lg.stats()
        self.assertEqual(st["cluster.dead.upstream_cx_connect_fail"], 3)
        self.assertEqual(st["cluster.dead.upstream_cx_total"], 3)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(set(line.split(" ")[0].split(",")), {"UF", "URX"}, line)

    def test_connect_timeout(self):
        hole = BlackholeServer()
        self.addCleanup(hole.close)
        if not hole.works or not hole.probe(0.5):
            self.skipTest("cannot make a loopback endpoint that never completes the handshake "
                          "(accept queue overflow did not drop SYNs here)")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "slow")],
            [static_cluster("slow", [hole.port], connect_timeout="0.25s")]))
        start = time.monotonic()
        c = self.client(lg.port("l"))
        self.assertTrue(closed_by_peer(c, 5), "downstream was not closed after connect timeout")
        elapsed = time.monotonic() - start
        self.assertGreaterEqual(elapsed, 0.2)
        self.assertLess(elapsed, 4.0)
        lg.wait_for_stat("cluster.slow.upstream_cx_connect_timeout", lambda v: v == 1)
        self.assertEqual(lg.stat("cluster.slow.upstream_cx_connect_fail"), 0)
        self.assertEqual(lg.stat("cluster.slow.upstream_cx_active"), 0)

    def test_idle_timeout(self):
        echo = self.server(EchoServer)
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "up", stat_prefix="idle", idle_timeout="0.5s")],
            [static_cluster("up", [echo.port])]))
        c = self.client(lg.port("l"))
        # Activity keeps it open past the timeout...
        for i in range(4):
            c.sendall(b"k")
            self.assertEqual(recv_exact(c, 1), b"k")
            time.sleep(0.2)
        self.assertEqual(lg.stat("tcp.idle.idle_timeout"), 0)
        # ...and silence closes it.
        start = time.monotonic()
        self.assertTrue(closed_by_peer(c, 5), "idle connection was not closed")
        self.assertLess(time.monotonic() - start, 3.0)
        lg.wait_for_stat("tcp.idle.idle_timeout", lambda v: v == 1)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)


class TcpProxyLifecycle(LegateTestCase):
    """Access log contents, duration limit, resets, empty clusters, circuit breakers."""

    def read_log_lines(self, path, n, timeout=5.0):
        return TcpProxyFailures.read_log_lines(self, path, n, timeout)

    def test_access_log_for_a_good_connection(self):
        echo = self.server(EchoServer)
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "up", access_log_path=log_path,
                          log_format="%RESPONSE_FLAGS% %UPSTREAM_HOST% %BYTES_RECEIVED% "
                                     "%BYTES_SENT% %UPSTREAM_CLUSTER%\n")],
            [static_cluster("up", [echo.port])]))
        c = self.client(lg.port("l"))
        payload = random.randbytes(1000)
        send_all_then_shutdown(c, payload)
        self.assertEqual(recv_all(c)[1], 1000)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(line, "- 127.0.0.1:%d 1000 1000 up" % echo.port)

    def test_access_log_filter_chain_name(self):
        echo = self.server(EchoServer)
        log_path = os.path.join(self.tmpdir(), "access.log")
        proxy = tcp_proxy_filter("up", "l", access_log_path=log_path,
                                 log_format="%FILTER_CHAIN_NAME% %UPSTREAM_CLUSTER%\n")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", filter_chains=[{"name": "tcp-chain", "filters": [proxy]}])],
            [static_cluster("up", [echo.port])]))
        c = self.client(lg.port("l"))
        send_all_then_shutdown(c, b"x" * 10)
        self.assertEqual(recv_all(c)[1], 10)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(line, "tcp-chain up")

    def test_max_downstream_connection_duration(self):
        echo = self.server(EchoServer)
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "up", stat_prefix="dur", access_log_path=log_path,
                          max_downstream_connection_duration="0.5s")],
            [static_cluster("up", [echo.port])]))
        c = self.client(lg.port("l"))
        start = time.monotonic()
        # Busy, but not for longer than the limit.
        while time.monotonic() - start < 3:
            try:
                c.sendall(b"z")
                if c.recv(1) == b"":
                    break
            except OSError:
                break
            time.sleep(0.05)
        self.assertLess(time.monotonic() - start, 2.5, "connection outlived its duration limit")
        lg.wait_for_stat("tcp.dur.max_downstream_connection_duration", lambda v: v == 1)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(line.split(" ")[0], "DT", line)

    def test_client_reset_mid_transfer(self):
        sink = self.server(SinkServer, keep=False)
        lg = self.start_legate(bootstrap([tcp_listener("l", "up")],
                                         [static_cluster("up", [sink.port])]))
        c = connect(lg.port("l"))
        c.sendall(random.randbytes(256 * 1024))
        sink.wait_accepted(1)
        wait_until(lambda: sink.lengths.get(0, 0) > 0, 5, what="upstream receiving")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
        wait_until(lambda: 0 in sink.finished, 5, what="upstream closed after the client's reset")
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        lg.wait_for_stat(lg.listener_stat_prefix("l") + "downstream_cx_active", lambda v: v == 0)
        # Still serving.
        c2 = self.client(lg.port("l"))
        c2.sendall(b"after")
        c2.shutdown(socket.SHUT_WR)
        wait_until(lambda: 1 in sink.eof, 5, what="second connection")

    def test_upstream_reset_closes_downstream(self):
        up = self.server(HoldServer)
        lg = self.start_legate(bootstrap([tcp_listener("l", "up")],
                                         [static_cluster("up", [up.port])]))
        c = self.client(lg.port("l"))
        u = up.take()
        u.sendall(b"partial")
        self.assertEqual(recv_exact(c, 7), b"partial")
        u.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        u.close()
        self.assertTrue(closed_by_peer(c, 5), "downstream not closed after upstream reset")
        lg.wait_for_stat("cluster.up.upstream_cx_destroy_remote", lambda v: v == 1)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)

    def test_cluster_without_endpoints(self):
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "empty", access_log_path=log_path)],
            [static_cluster("empty", [])]))
        c = self.client(lg.port("l"))
        self.assertTrue(closed_by_peer(c, 5))
        lg.wait_for_stat("cluster.empty.upstream_cx_none_healthy", lambda v: v == 1)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(line.split(" ")[0], "UH", line)

    def test_circuit_breaker_max_connections(self):
        echo = self.server(EchoServer)
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "up", access_log_path=log_path)],
            [static_cluster("up", [echo.port], circuit_breakers={
                "thresholds": [{"priority": "DEFAULT", "max_connections": 1}]})]))
        first = self.client(lg.port("l"))
        first.sendall(b"1")
        self.assertEqual(recv_exact(first, 1), b"1")
        second = self.client(lg.port("l"))
        self.assertTrue(closed_by_peer(second, 5), "second connection passed the breaker")
        lg.wait_for_stat("cluster.up.upstream_cx_overflow", lambda v: v == 1)
        self.assertEqual(lg.stat("cluster.up.circuit_breakers.default.cx_open"), 1)
        (line,) = self.read_log_lines(log_path, 1)
        self.assertEqual(line.split(" ")[0], "UO", line)
        first.close()
        lg.wait_for_stat("cluster.up.circuit_breakers.default.cx_open", lambda v: v == 0)


class TcpProxyStatsAndMatching(LegateTestCase):

    def test_listener_and_cluster_counters(self):
        echo = self.server(EchoServer)
        lg = self.start_legate(bootstrap([tcp_listener("l", "up", stat_prefix="s")],
                                         [static_cluster("up", [echo.port])]))
        lp = lg.listener_stat_prefix("l")
        self.assertEqual(lg.stat(lp + "downstream_cx_total", None), 0)
        clients = []
        for i in range(3):
            c = self.client(lg.port("l"))
            c.sendall(b"abc")
            self.assertEqual(recv_exact(c, 3), b"abc")
            clients.append(c)
        st = lg.stats()
        self.assertEqual(st[lp + "downstream_cx_total"], 3)
        self.assertEqual(st[lp + "downstream_cx_active"], 3)
        self.assertEqual(st["cluster.up.upstream_cx_total"], 3)
        self.assertEqual(st["cluster.up.upstream_cx_active"], 3)
        self.assertEqual(st["tcp.s.downstream_cx_total"], 3)
        clients[0].close()
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 2)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 2)
        for c in clients[1:]:
            c.close()
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 0)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        st = lg.stats()
        self.assertEqual(st[lp + "downstream_cx_total"], 3)
        self.assertEqual(st[lp + "downstream_cx_destroy"], 3)
        self.assertEqual(st["cluster.up.upstream_cx_total"], 3)
        self.assertEqual(st["cluster.up.upstream_cx_destroy"], 3)

    def test_filter_chain_match_source_prefix(self):
        special = self.server(SinkServer, greeting=b"special", close_after_greeting=True)
        default = self.server(SinkServer, greeting=b"default", close_after_greeting=True)
        listener = {"name": "l", "address": socket_address(0), "filter_chains": [
            {"filter_chain_match": {"source_prefix_ranges": [
                {"address_prefix": "127.0.0.2", "prefix_len": 32}]},
             "filters": [tcp_proxy_filter("special", "fc_special")]},
            {"filters": [tcp_proxy_filter("default", "fc_default")]},
        ]}
        lg = self.start_legate(bootstrap([listener], [
            static_cluster("special", [special.port]), static_cluster("default", [default.port])]))

        def greeting(source):
            s = connect(lg.port("l"), source=source)
            try:
                s.shutdown(socket.SHUT_WR)
                return recv_all(s)[2]
            finally:
                s.close()

        try:
            from_2 = greeting("127.0.0.2")
        except OSError as e:
            self.skipTest("cannot bind a client socket to 127.0.0.2: %s" % e)
        self.assertEqual(from_2, b"special")
        self.assertEqual(greeting("127.0.0.1"), b"default")
        self.assertEqual(greeting(None), b"default")
        st = lg.stats()
        self.assertEqual(st["tcp.fc_special.downstream_cx_total"], 1)
        self.assertEqual(st["tcp.fc_default.downstream_cx_total"], 2)

    def test_filter_chain_match_destination_port(self):
        a = self.server(SinkServer, greeting=b"a", close_after_greeting=True)
        b = self.server(SinkServer, greeting=b"b", close_after_greeting=True)
        port = free_port()
        listener = {"name": "l", "address": socket_address(port), "filter_chains": [
            {"filter_chain_match": {"destination_port": port + 1 if port < 65535 else port - 1},
             "filters": [tcp_proxy_filter("b", "dp_other")]},
            {"filter_chain_match": {"destination_port": port},
             "filters": [tcp_proxy_filter("a", "dp_this")]},
        ]}
        lg = self.start_legate(bootstrap([listener], [static_cluster("a", [a.port]),
                                                      static_cluster("b", [b.port])]))
        self.assertEqual(lg.port("l"), port)
        s = self.client(port)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_all(s)[2], b"a")
        self.assertEqual(lg.stat("tcp.dp_this.downstream_cx_total"), 1)
        self.assertEqual(lg.stat("tcp.dp_other.downstream_cx_total"), 0)

    def test_no_matching_filter_chain_closes(self):
        echo = self.server(EchoServer)
        listener = {"name": "l", "address": socket_address(0), "filter_chains": [
            {"filter_chain_match": {"source_prefix_ranges": [
                {"address_prefix": "127.0.0.2", "prefix_len": 32}]},
             "filters": [tcp_proxy_filter("up", "nomatch")]}]}
        lg = self.start_legate(bootstrap([listener], [static_cluster("up", [echo.port])]))
        c = self.client(lg.port("l"), source="127.0.0.1")
        self.assertTrue(closed_by_peer(c, 5))
        lg.wait_for_stat(lg.listener_stat_prefix("l") + "no_filter_chain_match", lambda v: v == 1)
        self.assertEqual(echo.accepted, 0)

    def test_out_of_file_descriptors_refuses_cleanly_and_recovers(self):
        echo = self.server(EchoServer)
        # Copying (the default): a spliced transfer also borrows a pipe, below.
        lg = self.start_legate(bootstrap([tcp_listener("l", "up")],
                                         [static_cluster("up", [echo.port])]))
        lp = lg.listener_stat_prefix("l")
        skip_if_sanitized(self, lg)
        # Room for exactly two proxied connections (a downstream and an upstream fd each).
        # Counted once the admin connections of the harness's own polls have closed: one
        # still open when counting would leave a spare descriptor after it goes.
        open_fds = settled_fd_count(lg.pid)
        subprocess.run(["prlimit", "--pid", str(lg.pid), "--nofile=%d:" % (open_fds + 4)],
                       check=True)
        held = []
        for i in range(2):
            c = self.client(lg.port("l"))
            c.sendall(b"ok")
            self.assertEqual(recv_exact(c, 2), b"ok")
            held.append(c)
        # The next one cannot get an fd: it is closed at once, not left in the backlog.
        third = self.client(lg.port("l"))
        self.assertTrue(closed_by_peer(third, 5), "connection left hanging without an fd")
        for c in held:
            c.close()
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 0)
        self.assertGreaterEqual(lg.stat(lp + "downstream_cx_overload_reject"), 1)
        fourth = self.client(lg.port("l"))
        fourth.sendall(b"again")
        self.assertEqual(recv_exact(fourth, 5), b"again")
        self.assertTrue(lg.alive())

    def test_no_fd_for_a_splice_pipe_copies_instead(self):
        echo = self.server(EchoServer)
        lg = self.start_legate(bootstrap([tcp_listener("l", "up")],
                                         [static_cluster("up", [echo.port])],
                                         layered_runtime=splice_runtime()))
        lp = lg.listener_stat_prefix("l")
        skip_if_sanitized(self, lg)
        # Room for one proxied connection's two sockets and one more fd, not the
        # two of a pipe: the bytes are copied instead, both ways and for as long
        # as the connection lasts.
        open_fds = settled_fd_count(lg.pid)
        pipes = pipe_fd_count(lg.pid)
        subprocess.run(["prlimit", "--pid", str(lg.pid), "--nofile=%d:" % (open_fds + 3)],
                       check=True)
        c = self.client(lg.port("l"))
        for i in range(3):
            payload = os.urandom(256 * 1024)
            c.sendall(payload)
            self.assertEqual(recv_exact(c, len(payload)), payload)
        self.assertEqual(pipe_fd_count(lg.pid), pipes, "a pipe was made after all")
        # Once it is gone, a spliced transfer has its fds back (and one for the
        # admin connection that reads the stats).
        c.close()
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 0)
        subprocess.run(["prlimit", "--pid", str(lg.pid), "--nofile=%d:" % (open_fds + 5)],
                       check=True)
        c = self.client(lg.port("l"))
        c.sendall(b"again")
        self.assertEqual(recv_exact(c, 5), b"again")
        # The transfer's pipe went back to the worker's pool: both its ends are open.
        self.assertEqual(pipe_fd_count(lg.pid), pipes + 2)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_rx_bytes_total"), 3 * 256 * 1024 + 5)
        self.assertTrue(lg.alive())

    def test_listener_connection_limit(self):
        echo = self.server(EchoServer)
        lg = self.start_legate(bootstrap(
            [tcp_listener("limited", "up")], [static_cluster("up", [echo.port])],
            layered_runtime={"layers": [{"name": "static", "static_layer": {
                "envoy.resource_limits.listener.limited.connection_limit": 2}}]}))
        lp = lg.listener_stat_prefix("limited")
        held = []
        for i in range(2):
            c = self.client(lg.port("limited"))
            c.sendall(b"ok")
            self.assertEqual(recv_exact(c, 2), b"ok")
            held.append(c)
        third = self.client(lg.port("limited"))
        self.assertTrue(closed_by_peer(third, 5), "third connection over the limit was served")
        lg.wait_for_stat(lp + "downstream_cx_overflow", lambda v: v == 1)
        self.assertEqual(lg.stat(lp + "downstream_cx_active"), 2)
        self.assertEqual(echo.accepted, 2)
        # The held ones still work, and a slot frees when one closes.
        held[1].sendall(b"still")
        self.assertEqual(recv_exact(held[1], 5), b"still")
        held[0].close()
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 1)
        fourth = self.client(lg.port("limited"))
        fourth.sendall(b"again")
        self.assertEqual(recv_exact(fourth, 5), b"again")


if __name__ == "__main__":
    unittest.main()
