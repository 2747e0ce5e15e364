"""The router's upstream requests under failure: early responses, retries (retry_on
conditions, per-try timeouts, back-off, budgets and breakers, replayed bodies), hedging and
request mirroring, each against real upstream processes that fail on purpose."""

import os
import socket
import threading
import unittest

from harness import (HttpUpstream, LegateTestCase, SockReader, TcpServer, connect,
                     http_bootstrap, http_get, read_http_head, read_http_response,
                     static_cluster, wait_until)


class EarlyResponder(TcpServer):
    """Answers `status` as soon as a request's head arrives, without reading its body,
    and keeps the connection open; records when the proxy closes each connection."""

    def __init__(self, status=413, **kw):
        self.status = status
        self.closed_conns = set()
        self.heads = 0
        super().__init__(**kw)

    def handle(self, conn, index):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk
        with self.lock:
            self.heads += 1
        conn.sendall(b"HTTP/1.1 %d Early\r\ncontent-length: 0\r\n\r\n" % self.status)
        # Swallow whatever else comes until the proxy closes the connection.
        conn.settimeout(30)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        with self.lock:
            self.closed_conns.add(index)


class EarlyResponse(LegateTestCase):
    def test_early_response_closes_upstream_and_pool_stays_healthy(self):
        early = self.server(EarlyResponder)
        # One connection per cluster: a leaked busy connection would block the next
        # request for good.
        clusters = [static_cluster("early", [early.port],
                                   circuit_breakers={"thresholds": [{"max_connections": 1}]})]
        lg = self.start_legate(http_bootstrap(clusters))
        port = lg.port("http")
        for attempt in range(3):
            s = self.client(port)
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\ncontent-length: 1000000\r\n\r\n" +
                      b"x" * 1000)
            resp = read_http_response(SockReader(s), "POST")
            self.assertEqual(resp.status, 413)
            s.close()
            # The upstream connection that answered early is closed, not pooled busy.
            wait_until(lambda: len(early.closed_conns) >= attempt + 1, 10,
                       what="early upstream connection %d closed" % attempt)
        self.assertEqual(early.heads, 3)
        lg.wait_for_stat("cluster.early.upstream_cx_active", lambda v: v == 0)
        self.assertEqual(lg.stat("cluster.early.upstream_cx_overflow"), 0)
        self.assertEqual(lg.stat("cluster.early.upstream_rq_pending_overflow"), 0)


if __name__ == "__main__":
    unittest.main()
