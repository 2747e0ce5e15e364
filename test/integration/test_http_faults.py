"""Upstream and downstream faults through the HTTP proxy: refused connections, resets
mid-response, garbage responses, stale pooled connections, client aborts, circuit
breakers, and slow peers on either side (memory must stay bounded)."""

import http.client
import os
import select
import socket
import threading
import time
import unittest

from harness import (HoldServer, HttpUpstream, LegateTestCase, SockReader, connect,
                     wait_for_lines,
                     route, route_config, virtual_host,
                     http_bootstrap, http_get, pattern_bytes, read_http_head,
                     read_http_response, recv_all, refused_port, response_bytes, sha256,
                     static_cluster, wait_until)

MIB = 1 << 20
RSS_SLACK_KIB = 24 * 1024
LOG_FORMAT = "%RESPONSE_CODE% %RESPONSE_FLAGS% %REQ(:PATH)%\n"


class FaultCase(LegateTestCase):
    def proxy(self, handler=None, cluster_extra=None, endpoints=None, **hcm):
        up = None
        if endpoints is None:
            up = self.server(HttpUpstream, handler=handler)
            endpoints = [up.port]
        self.log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", endpoints, **(cluster_extra or {}))],
            access_log_path=self.log_path, log_format=LOG_FORMAT, **hcm))
        return up, lg, lg.port("http")

    def log_lines(self, n, timeout=10.0):
        return wait_for_lines(self.log_path, n, timeout)

    def assert_serving(self, port, up):
        before = up.count()
        status, _, _, _ = http_get(port, "/after")
        self.assertEqual(status, 200)
        self.assertEqual(up.count(), before + 1)


class UpstreamFaults(FaultCase):
    def test_refused_gives_503_uf(self):
        up, lg, port = self.proxy(endpoints=[refused_port()])
        status, _, body, _ = http_get(port, "/refused")
        self.assertEqual(status, 503)
        self.assertIn(b"upstream connect error", body)
        self.assertEqual(self.log_lines(1)[0], "503 UF /refused")
        stats = lg.stats()
        self.assertGreaterEqual(stats["cluster.up.upstream_cx_connect_fail"], 1)
        self.assertEqual(stats["http.ingress.downstream_rq_5xx"], 1)
        self.assertTrue(lg.alive())

    def test_upstream_closes_mid_response(self):
        def handler(req):
            if req.path == "/cut":
                def cut(conn):
                    conn.sendall(response_bytes(200, [("content-length", "100000")]) + b"x" * 1000)
                    return False  # close with 99000 bytes owed
                return cut
            return (200, [], b"fine")
        up, lg, port = self.proxy(handler)
        s = self.client(port)
        s.sendall(b"GET /cut HTTP/1.1\r\nHost: a\r\n\r\n")
        reader = SockReader(s)
        head = read_http_head(reader)
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header("content-length"), "100000")
        got = len(reader.buf)
        try:
            got += len(reader.read_to_eof())
        except ConnectionResetError:
            pass
        self.assertLess(got, 100000, "the client must see the response end early")
        self.assertGreaterEqual(got, 0)
        lg.wait_for_stat("http.ingress.rq_reset_after_downstream_response_started",
                         lambda v: v == 1)
        self.assertTrue(lg.alive())
        self.assert_serving(port, up)
        lines = self.log_lines(2)
        self.assertIn("UC", lines[0].split()[1])

    def test_upstream_sends_garbage(self):
        def handler(req):
            if req.path == "/garbage":
                return b"THIS IS NOT HTTP AT ALL\r\n\r\n"
            return (200, [], b"fine")
        up, lg, port = self.proxy(handler)
        status, _, body, _ = http_get(port, "/garbage")
        self.garbage_status = status
        # Envoy answers an upstream protocol error with 502 (legate: see the flags test).
        self.assertIn(status, (502, 503))
        self.assertIn(b"upstream connect error or disconnect/reset before headers", body)
        self.assertTrue(lg.alive())
        self.assert_serving(port, up)
        code, flags = self.log_lines(1)[0].split()[:2]
        self.assertEqual(int(code), status)

    def test_upstream_garbage_flag_is_upe(self):
        up, lg, port = self.proxy(lambda req: b"HTTP/1.1 abc\r\n\r\n")
        status, _, _, _ = http_get(port, "/garbage")
        self.assertEqual(status, 502)
        self.assertEqual(self.log_lines(1)[0], "502 UPE /garbage")

    def test_invalid_upstream_header_gives_5xx(self):
        up, lg, port = self.proxy(
            lambda req: b"HTTP/1.1 200 OK\r\nbad header\r\ncontent-length: 2\r\n\r\nok")
        status, _, _, _ = http_get(port, "/bad-header")
        self.assertIn(status, (502, 503))
        self.assertTrue(lg.alive())

    def test_stale_pooled_connection_not_reused_after_fin(self):
        up, lg, port = self.proxy()
        self.assertEqual(http_get(port, "/first")[0], 200)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 1)
        # The upstream closes its idle keep-alive connection.
        with up.lock:
            conn = up.conns[0]
        conn.shutdown(socket.SHUT_RDWR)
        up.wait_conn_closed(0)
        lg.wait_for_stat("cluster.up.upstream_cx_destroy", lambda v: v >= 1)
        status, _, body, _ = http_get(port, "/second")
        self.assertEqual(status, 200)
        self.assertEqual(up.last().path, "/second")
        self.assertEqual(up.last().conn_index, 1)
        stats = lg.stats()
        self.assertEqual(stats["cluster.up.upstream_cx_total"], 2)
        self.assertEqual(stats["http.ingress.downstream_rq_5xx"], 0)

    def test_upstream_connection_close_header_not_reused(self):
        def handler(req):
            return (200, [("connection", "close")], b"bye")
        up, lg, port = self.proxy(handler)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        for i in range(3):
            conn.request("GET", "/c%d" % i)
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (200, b"bye"))
        self.assertEqual([r.conn_index for r in up.requests], [0, 1, 2])
        self.assertEqual(lg.stat("http.ingress.downstream_cx_total"), 1)


    def test_request_the_upstream_codec_refuses_fails_at_once(self):
        # A rewrite that puts a space into the path: the upstream HTTP/1 encoder
        # refuses to emit that request line. The client gets a 502 now (not a 504
        # at the route timeout), and the pool stays usable.
        up = self.server(HttpUpstream)
        rc = route_config([virtual_host("v", ["*"], [
            route({"prefix": "/bad/"}, cluster="up", route_extra={"regex_rewrite": {
                "pattern": {"regex": "^/bad/(.*)$"}, "substitution": "/a b/\\1"}}),
            route({"prefix": "/"}, cluster="up"),
        ])])
        lg = self.start_legate(http_bootstrap([static_cluster("up", [up.port])], route_cfg=rc))
        port = lg.port("http")
        status, _, body, _ = http_get(port, "/bad/x", timeout=30)
        self.assertEqual(status, 502)
        self.assertIn(b"reset reason: protocol error", body)
        self.assertEqual(up.count(), 0)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        self.assert_serving(port, up)

class DownstreamFaults(FaultCase):
    def test_client_disconnects_mid_request_body(self):
        up, lg, port = self.proxy()
        s = connect(port)
        s.sendall(b"POST /abort HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n"
                  + b"y" * 100000)
        # The request is on an upstream connection (not still waiting for one to
        # connect, which would leave that connection idle in the pool, correctly).
        lg.wait_for_stat("cluster.up.upstream_cx_tx_bytes_total", lambda v: v > 0)
        s.close()
        # The upstream side of the aborted request is torn down, not left dangling.
        up.wait_conn_closed(0)
        lg.wait_for_stat("http.ingress.downstream_rq_rx_reset", lambda v: v == 1)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        self.assertEqual(up.count(), 0, "the incomplete request must not complete upstream")
        self.assertTrue(lg.alive())
        self.assert_serving(port, up)

    def test_client_disconnects_while_waiting_for_response(self):
        def handler(req):
            up.stop.wait(1.0)
            return (200, [], b"late")
        up, lg, port = self.proxy(handler)
        s = connect(port)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        up.wait_requests(1)
        s.close()
        lg.wait_for_stat("http.ingress.downstream_rq_rx_reset", lambda v: v == 1)
        up.wait_conn_closed(0)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)
        self.assertTrue(lg.alive())


class CircuitBreakers(FaultCase):
    def test_pending_and_connection_limits_overflow_with_uo(self):
        cb = {"circuit_breakers": {"thresholds": [{"max_connections": 1,
                                                   "max_pending_requests": 1}]}}
        release = threading.Event()

        def handler(req):
            release.wait(5)
            return (200, [], b"ok")
        up, lg, port = self.proxy(handler, cluster_extra=cb)
        results = []

        def one(i):
            st, hd, body, resp = http_get(port, "/cb%d" % i, timeout=15)
            results.append((st, resp.getheader("x-envoy-overloaded")))

        threads = [self.thread(one, i) for i in range(6)]
        # One request reaches the upstream; the rest wait or overflow.
        up.wait_requests(1)
        lg.wait_for_stat("cluster.up.upstream_rq_pending_overflow", lambda v: v >= 4)
        release.set()
        for t in threads:
            t.get(20)
        codes = sorted(r[0] for r in results)
        self.assertIn(200, codes)
        self.assertIn(503, codes)
        stats = lg.stats()
        self.assertEqual(codes.count(503), stats["cluster.up.upstream_rq_pending_overflow"])
        self.assertEqual(stats["cluster.up.upstream_cx_total"], 1)
        self.assertLessEqual(codes.count(200), 2)
        lines = self.log_lines(6)
        self.assertEqual(sum(1 for l in lines if l.startswith("503 UO ")), codes.count(503))
        self.overloaded = [r[1] for r in results if r[0] == 503]

    def test_overflow_sets_x_envoy_overloaded(self):
        cb = {"circuit_breakers": {"thresholds": [{"max_connections": 1,
                                                   "max_pending_requests": 1,
                                                   "max_requests": 1}]}}
        release = threading.Event()

        def handler(req):
            release.wait(5)
            return (200, [], b"ok")
        up, lg, port = self.proxy(handler, cluster_extra=cb)
        first = self.thread(http_get, port, "/hold")
        up.wait_requests(1)
        try:
            status, headers, _, resp = http_get(port, "/over")
            self.assertEqual(status, 503)
            self.assertEqual(resp.getheader("x-envoy-overloaded"), "true")
        finally:
            release.set()
            first.get(10)


    def test_flood_past_the_breakers_fast_503_uo_and_flat_memory(self):
        # Ten requests may be in flight and ten wait; a slow upstream holds everything
        # it gets. Each wave sends 300 requests at once on their own connections: the
        # overflow is answered 503 UO while the upstream still holds the first ones
        # (fast: no queue forms behind the breakers), and a second wave does not grow
        # legate's memory.
        cb = {"circuit_breakers": {"thresholds": [{"max_connections": 10,
                                                   "max_pending_requests": 10,
                                                   "max_requests": 10}]}}
        gate = {"release": threading.Event()}

        def handler(req):
            gate["release"].wait(30)
            return (200, [], b"ok")
        up, lg, port = self.proxy(handler, cluster_extra=cb)
        wave_size = 300

        def wave(n):
            overflow_before = lg.stat("cluster.up.upstream_rq_pending_overflow")
            upstream_before = up.count()
            socks = [connect(port) for _ in range(wave_size)]
            try:
                for i, s in enumerate(socks):
                    s.sendall(b"GET /flood%d-%d HTTP/1.1\r\nhost: a\r\n\r\n" % (n, i))
                # Everything past the breakers is refused while the upstream holds
                # the admitted requests.
                lg.wait_for_stat("cluster.up.upstream_rq_pending_overflow",
                                 lambda v: v - overflow_before >= wave_size - 20, timeout=30)
                overflowed = lg.stat("cluster.up.upstream_rq_pending_overflow") - overflow_before
                self.assertLessEqual(up.count() - upstream_before, 10)
                self.assertFalse(gate["release"].is_set())
                # Wait (bounded) until that many connections have an answer to read.
                answered = []
                deadline = time.monotonic() + 10
                while len(answered) < overflowed and time.monotonic() < deadline:
                    ready, _, _ = select.select([s for s in socks if s not in answered], [], [],
                                                0.1)
                    answered.extend(ready)
                codes = {}
                for s in answered:
                    resp = read_http_response(SockReader(s))
                    self.assertEqual(resp.status, 503)
                    self.assertEqual(resp.header("x-envoy-overloaded"), "true")
                    codes[503] = codes.get(503, 0) + 1
                pending = [s for s in socks if s not in answered]
                # Every refusal was answered before the upstream let anything go.
                self.assertEqual(codes.get(503, 0), overflowed)
                gate["release"].set()
                for s in pending:
                    resp = read_http_response(SockReader(s))
                    codes[resp.status] = codes.get(resp.status, 0) + 1
                self.assertEqual(codes.get(200, 0) + codes.get(503, 0), wave_size, codes)
                self.assertLessEqual(codes.get(200, 0), 20, codes)
                return codes
            finally:
                for s in socks:
                    s.close()

        first = wave(1)
        lg.wait_for_stat("cluster.up.upstream_rq_active", lambda v: v == 0)
        lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)
        rss_after_first = lg.rss_kib()
        gate["release"] = threading.Event()
        second = wave(2)
        lg.wait_for_stat("cluster.up.upstream_rq_active", lambda v: v == 0)
        lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)
        rss_after_second = lg.rss_kib()
        self.assertLess(rss_after_second - rss_after_first, 8 * 1024,
                        "RSS %d KiB after the first wave, %d after the second"
                        % (rss_after_first, rss_after_second))
        # The access log has a 503 UO line for each refusal.
        refused = first[503] + second[503]
        lines = self.log_lines(2 * wave_size, timeout=20)
        self.assertEqual(sum(1 for l in lines if l.startswith("503 UO /flood")), refused)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_pending_overflow"), refused)
        self.assertLessEqual(lg.stat("cluster.up.upstream_cx_total"), 20)

    def test_waiting_request_gets_a_new_connection_when_the_busy_one_closes(self):
        # One connection allowed; the upstream ends each response with Connection:
        # close. The request waiting for that connection must get a fresh one once
        # it closes, not wait until its route timeout.
        cb = {"circuit_breakers": {"thresholds": [{"max_connections": 1}]}}
        release = threading.Event()

        def handler(req):
            if req.path == "/first":
                release.wait(5)
            return (200, [("connection", "close")], b"done " + req.path.encode())
        up, lg, port = self.proxy(handler, cluster_extra=cb)
        first = self.thread(http_get, port, "/first")
        up.wait_requests(1)
        second = self.thread(http_get, port, "/second")
        lg.wait_for_stat("cluster.up.upstream_rq_pending_active", lambda v: v == 1)
        release.set()
        self.assertEqual(first.get(10)[:3:2], (200, b"done /first"))
        self.assertEqual(second.get(10)[:3:2], (200, b"done /second"))
        stats = lg.stats()
        self.assertEqual(stats["cluster.up.upstream_cx_total"], 2)
        self.assertEqual(stats["cluster.up.upstream_rq_pending_active"], 0)
        self.assertEqual(stats["http.ingress.downstream_rq_5xx"], 0)

class SlowPeers(FaultCase):
    def test_client_that_never_reads_is_cut_at_delayed_close_timeout(self):
        # A response legate has fully received, then must close after (Connection:
        # close), to a client that reads nothing: the flush never progresses, and
        # delayed_close_timeout ends the connection instead of pinning it forever.
        size = 16 * MIB
        body = pattern_bytes(size, seed=3)

        def handler(req):
            return (200, [], body)
        up = self.server(HttpUpstream, handler=handler)
        cfg = http_bootstrap([static_cluster("up", [up.port])],
                             delayed_close_timeout="0.3s")
        # Room for the whole response in legate, so the stream completes upstream.
        cfg["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = 64 * MIB
        lg = self.start_legate(cfg)
        s = self.client(lg.port("http"), rcvbuf=4096, timeout=30)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        lg.wait_for_stat("http.ingress.downstream_rq_completed", lambda v: v == 1)
        lg.wait_for_stat("http.ingress.downstream_cx_delayed_close_timeout", lambda v: v == 1)
        lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)
        # The client sees the connection end before the whole body.
        got = recv_all(s)[1]
        self.assertLess(got, size)
        self.assertTrue(lg.alive())

    def test_slow_client_64mib_response_bounded_memory(self):
        size = 64 * MIB
        body = pattern_bytes(size, seed=7)
        digest = sha256(body)

        def handler(req):
            return (200, [("content-type", "application/octet-stream")], body)
        up, lg, port = self.proxy(handler)
        baseline = lg.rss_kib()
        s = self.client(port, rcvbuf=64 * 1024, timeout=30)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        reader = SockReader(s)
        # Slow phase: 2 s of small reads while legate must hold the upstream back.
        received = 0
        peak = baseline
        deadline = time.monotonic() + 2.0
        first = s.recv(65536)
        pending = bytearray(first)
        while time.monotonic() < deadline:
            data = s.recv(16384)
            if not data:
                break
            pending += data
            peak = max(peak, lg.rss_kib())
            time.sleep(0.02)
        self.assertLess(len(pending), size // 4, "the slow phase should not drain the body")
        peak = max(peak, lg.rss_kib())
        self.assertLess(peak - baseline, RSS_SLACK_KIB,
                        "legate RSS grew by %d KiB while the client read slowly"
                        % (peak - baseline))
        # Then read everything fast and check it.
        reader.buf = pending
        resp = read_http_response(reader, keep=False)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body_len, size)
        self.assertEqual(resp.body_sha256, digest)

    def test_slow_upstream_reader_64mib_post_bounded_memory(self):
        hold = self.server(HoldServer, rcvbuf=64 * 1024)
        up, lg, port = self.proxy(endpoints=[hold.port])
        size = 64 * MIB
        block = os.urandom(MIB)
        s = self.client(port, sndbuf=64 * 1024, timeout=10)
        baseline = lg.rss_kib()
        sent = [0]

        def send():
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
            for _ in range(size // MIB):
                s.sendall(block)
                sent[0] += MIB
        sender = self.thread(send)
        conn = hold.take()
        conn.settimeout(5)
        self.addCleanup(conn.close)
        reader = SockReader(conn)
        head = read_http_head(reader)
        self.assertEqual(head.header("content-length"), str(size))
        got = len(reader.buf)
        reader.buf.clear()
        peak = baseline
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            got += len(conn.recv(16384))
            peak = max(peak, lg.rss_kib())
            time.sleep(0.02)
        self.assertLess(sent[0], size // 2, "the slow upstream should hold the client back")
        self.assertLess(peak - baseline, RSS_SLACK_KIB)
        while got < size:
            data = conn.recv(1 << 20)
            self.assertTrue(data, "EOF after %d of %d body bytes" % (got, size))
            got += len(data)
        sender.get(30)
        conn.sendall(response_bytes(200, [], b"stored"))
        resp = read_http_response(SockReader(s))
        self.assertEqual((resp.status, resp.body), (200, b"stored"))


if __name__ == "__main__":
    unittest.main()
