"""Sustained keep-alive load from wrk (a real, fast HTTP/1.1 client) through legate:
every request answered with a 2xx, no socket errors, connections reused on both sides,
and legate's counters agreeing with what wrk saw. No timing is asserted."""

import http.client
import re
import shutil
import subprocess
import unittest

from harness import (HttpUpstream, LegateTestCase, http_bootstrap, route, route_config,
                     static_cluster, virtual_host)

CONNECTIONS = 16


def run_wrk(url, seconds=2, connections=CONNECTIONS):
    out = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, url],
                         capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise AssertionError("wrk failed: %s %s" % (out.stdout, out.stderr))
    text = out.stdout
    m = re.search(r"(\d+) requests in", text)
    if not m:
        raise AssertionError("unexpected wrk output:\n" + text)
    return int(m.group(1)), text


DIRECT_BODY = "hi\n"


def start_direct_and_proxied(test):
    """An upstream and legate, which answers /direct itself (DIRECT_BODY) and proxies
    every other path: (upstream, legate, legate's http port)."""
    up = test.server(HttpUpstream, keep_limit=0)
    rc = route_config([virtual_host("v", ["*"], [
        route({"path": "/direct"}, direct_response={"status": 200,
                                                    "body": {"inline_string": DIRECT_BODY}}),
        route({"prefix": "/"}, cluster="up"),
    ])])
    lg = test.start_legate(http_bootstrap([static_cluster("up", [up.port])], route_cfg=rc))
    return up, lg, lg.port("http")


@unittest.skipUnless(shutil.which("wrk"), "wrk is not installed (tools/setup.sh installs it)")
class WrkLoad(LegateTestCase):
    def setUp(self):
        super().setUp()
        self.up, self.lg, self.port = start_direct_and_proxied(self)

    def check_clean(self, text):
        self.assertNotIn("Socket errors", text, text)
        self.assertNotIn("Non-2xx", text, text)

    def test_direct_responses_under_load(self):
        cx_before = self.lg.stat("http.ingress.downstream_cx_total")
        n, text = run_wrk("http://127.0.0.1:%d/direct" % self.port)
        self.check_clean(text)
        self.assertGreater(n, 0)
        # wrk's in-flight requests at the end are cut, so legate may count a few more.
        self.lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)
        stats = self.lg.stats()
        self.assertGreaterEqual(stats["http.ingress.downstream_rq_2xx"], n)
        self.assertLessEqual(stats["http.ingress.downstream_rq_2xx"], n + CONNECTIONS)
        self.assertEqual(stats["http.ingress.downstream_rq_5xx"], 0)
        self.assertEqual(stats["http.ingress.downstream_rq_4xx"], 0)
        # Keep-alive: one connection per wrk connection however many requests (wrk
        # opens one more first, to check the address).
        self.assertIn(stats["http.ingress.downstream_cx_total"] - cx_before,
                      (CONNECTIONS, CONNECTIONS + 1))

    def test_proxied_requests_under_load(self):
        cx_before = self.lg.stat("http.ingress.downstream_cx_total")
        n, text = run_wrk("http://127.0.0.1:%d/proxied" % self.port)
        self.check_clean(text)
        self.assertGreater(n, 0)
        self.lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)
        stats = self.lg.stats()
        self.assertGreaterEqual(stats["cluster.up.upstream_rq_2xx"], n)
        self.assertEqual(stats["cluster.up.upstream_rq_5xx"], 0)
        self.assertEqual(stats["http.ingress.downstream_rq_5xx"], 0)
        self.assertIn(stats["http.ingress.downstream_cx_total"] - cx_before,
                      (CONNECTIONS, CONNECTIONS + 1))
        # The pool reuses upstream connections: never more than one per concurrent request.
        self.assertLessEqual(stats["cluster.up.upstream_cx_total"], CONNECTIONS)
        self.assertGreaterEqual(self.up.count(), n)


class ManyIdleKeepAliveConnections(LegateTestCase):
    """More idle keep-alive connections than a worker keeps codecs for (128): the
    first connections to go idle keep their codec, the rest make a fresh one for
    their next request, and closing connections frees their places. Every request,
    on either path, proxied or answered directly, must come back whole."""

    N = 300

    def setUp(self):
        super().setUp()
        self.up, self.lg, self.port = start_direct_and_proxied(self)

    def request(self, conn, path):
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        self.assertEqual(resp.status, 200, path)
        if path == "/direct":
            self.assertEqual(body, DIRECT_BODY.encode())
        return resp

    def test_every_connection_serves_on_after_idling(self):
        cx_before = self.lg.stat("http.ingress.downstream_cx_total")
        conns = [http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                 for _ in range(self.N)]
        try:
            sent = 0
            for rnd, path in enumerate(("/proxied", "/direct", "/proxied")):
                for c in conns:
                    self.request(c, path)
                    sent += 1
                if rnd == 1:
                    # Half the connections go (and give back any codec they kept);
                    # as many new ones take their places.
                    for i in range(0, self.N, 2):
                        conns[i].close()
                        conns[i] = http.client.HTTPConnection("127.0.0.1", self.port,
                                                              timeout=10)
            stats = self.lg.stats()
            self.assertEqual(stats["http.ingress.downstream_rq_2xx"], sent)
            # Keep-alive held: one connection each, plus the replacements.
            self.assertEqual(stats["http.ingress.downstream_cx_total"] - cx_before,
                             self.N + self.N // 2)
        finally:
            for c in conns:
                c.close()


if __name__ == "__main__":
    unittest.main()
