"""HTTP/1.1 proxying end to end (http_connection_manager + router): status, headers and
bodies intact in both directions, keep-alive and upstream connection reuse, pipelining,
HTTP/1.0, Expect: 100-continue, the headers legate adds or strips, and the stats."""

import email.utils
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import unittest

from harness import (HttpUpstream, LegateTestCase, SockReader, closed_by_peer, connect,
                     http_bootstrap,
                     http_get, pattern_bytes, raw_request, read_http_response, sha256,
                     static_cluster)

MIB = 1 << 20
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class HttpProxyCase(LegateTestCase):
    def proxy(self, handler=None, cluster_extra=None, **hcm):
        up = self.server(HttpUpstream, handler=handler)
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", [up.port], **(cluster_extra or {}))], **hcm))
        return up, lg, lg.port("http")

    def echo(self, body):
        return json.loads(body)


class Basics(HttpProxyCase):
    def test_get_status_headers_body_and_added_headers(self):
        up, lg, port = self.proxy()
        status, headers, body, resp = http_get(
            port, "/hello/world?x=1&y=2", headers={"X-Custom": "v1", "Accept": "text/plain"})
        self.assertEqual(status, 200)
        seen = up.last()
        self.assertEqual(seen.method, "GET")
        self.assertEqual(seen.path, "/hello/world?x=1&y=2")
        self.assertEqual(seen.header("x-custom"), "v1")
        self.assertEqual(seen.header("accept"), "text/plain")
        self.assertEqual(seen.header("host"), "127.0.0.1:%d" % port)
        self.assertEqual(seen.header("x-forwarded-proto"), "http")
        self.assertRegex(seen.header("x-request-id", ""), UUID_RE)
        # The echo body arrives byte for byte, with the upstream's headers.
        echoed = self.echo(body)
        self.assertEqual(echoed["path"], "/hello/world?x=1&y=2")
        self.assertEqual(resp.getheader("x-upstream"), "up")
        self.assertEqual(resp.getheader("content-type"), "application/json")
        self.assertEqual(int(resp.getheader("content-length")), len(body))
        self.assertEqual(resp.getheader("server"), "legate")
        self.assertIsNotNone(email.utils.parsedate_to_datetime(resp.getheader("date")))
        self.assertRegex(resp.getheader("x-envoy-upstream-service-time", ""), r"^\d+$")
        # A fresh request id for every request.
        http_get(port, "/again")
        self.assertNotEqual(up.last().header("x-request-id"), seen.header("x-request-id"))

    def test_request_id_from_client_is_kept(self):
        up, lg, port = self.proxy()
        rid = "0d2c7a7e-8c6c-4b7e-9d4e-6b0f5a1c2d3e"
        http_get(port, "/", headers={"x-request-id": rid})
        self.assertEqual(up.last().header("x-request-id"), rid)

    def test_post_5mib_body_intact(self):
        up, lg, port = self.proxy()
        body = os.urandom(5 * MIB)
        status, _, resp_body, _ = http_get(port, "/upload", method="POST", body=body,
                                           headers={"content-type": "application/octet-stream"},
                                           timeout=30)
        self.assertEqual(status, 200)
        echoed = self.echo(resp_body)
        self.assertEqual(echoed["method"], "POST")
        self.assertEqual(echoed["body_len"], len(body))
        self.assertEqual(echoed["body_sha256"], sha256(body))

    def test_get_5mib_response_intact(self):
        up, lg, port = self.proxy()
        status, _, body, resp = http_get(port, "/bytes/%d" % (5 * MIB), timeout=30)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), 5 * MIB)
        self.assertEqual(sha256(body), resp.getheader("x-body-sha256"))
        self.assertEqual(sha256(body), sha256(pattern_bytes(5 * MIB)))

    def test_chunked_request_body(self):
        up, lg, port = self.proxy()
        pieces = [os.urandom(n) for n in (1, 100, 65536, 300000, 7)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("POST", "/chunked-upload", body=iter(pieces), encode_chunked=True,
                     headers={"transfer-encoding": "chunked"})
        resp = conn.getresponse()
        echoed = self.echo(resp.read())
        self.assertEqual(resp.status, 200)
        whole = b"".join(pieces)
        self.assertEqual(echoed["body_len"], len(whole))
        self.assertEqual(echoed["body_sha256"], sha256(whole))

    def test_chunked_response_body(self):
        up, lg, port = self.proxy()
        n = 3 * MIB + 17
        # On the wire: the client gets a chunked (or length-framed) response, intact.
        s = self.client(port)
        s.sendall(b"GET /chunked/%d HTTP/1.1\r\nHost: a\r\n\r\n" % n)
        resp = read_http_response(SockReader(s))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body_len, n)
        self.assertEqual(resp.body_sha256, resp.header("x-body-sha256"))
        self.assertTrue(resp.chunked or resp.header("content-length") == str(n),
                        "response must be framed: %r" % resp.headers)
        # And with http.client on the same kind of request.
        status, _, body, r = http_get(port, "/chunked/%d" % n)
        self.assertEqual(sha256(body), r.getheader("x-body-sha256"))

    def test_head_gets_length_without_body(self):
        up, lg, port = self.proxy()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("HEAD", "/bytes/1000")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-length"), "1000")
        self.assertEqual(resp.read(), b"")
        self.assertEqual(up.last().method, "HEAD")
        # The connection is still in sync: a GET on it gets its own body.
        conn.request("GET", "/bytes/10")
        resp = conn.getresponse()
        self.assertEqual(resp.read(), pattern_bytes(10))

    def test_204_and_304_have_no_body_and_keep_the_connection(self):
        def handler(req):
            if req.path == "/204":
                return (204, [("x-kind", "nocontent")], b"")
            if req.path == "/304":
                return (304, [("etag", '"v1"')], b"")
            return (200, [], b"ok")
        up, lg, port = self.proxy(handler)
        s = self.client(port)
        reader = SockReader(s)
        for path, code in (("/204", 204), ("/304", 304), ("/ok", 200)):
            s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
            resp = read_http_response(reader)
            self.assertEqual(resp.status, code)
            self.assertIsNone(resp.header("transfer-encoding"))
            if code != 200:
                self.assertEqual(resp.body, b"")
        self.assertEqual(resp.body, b"ok")
        self.assertEqual(lg.stat("http.ingress.downstream_cx_total"), 1)

    def test_curl_get_and_post(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl not installed")
        up, lg, port = self.proxy()
        out = subprocess.run([curl, "-sS", "-D", "-", "http://127.0.0.1:%d/via-curl" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        head, _, body = out.stdout.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertIn(b"server: legate", head.lower())
        self.assertEqual(self.echo(body)["path"], "/via-curl")
        self.assertTrue(up.last().header("user-agent", "").startswith("curl/"))
        # Two URLs in one curl run share the connection.
        out = subprocess.run([curl, "-sS", "-o", "/dev/null", "-o", "/dev/null",
                              "http://127.0.0.1:%d/one" % port, "http://127.0.0.1:%d/two" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual([r.path for r in up.requests[-2:]], ["/one", "/two"])
        self.assertEqual(lg.stat("http.ingress.downstream_cx_total"), 2)

    def test_curl_post_file(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl not installed")
        up, lg, port = self.proxy()
        path = os.path.join(self.tmpdir(), "payload")
        payload = os.urandom(MIB)
        with open(path, "wb") as f:
            f.write(payload)
        out = subprocess.run([curl, "-sS", "--max-time", "20", "--data-binary", "@" + path,
                              "http://127.0.0.1:%d/a" % port, "--next",
                              "http://127.0.0.1:%d/b" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        first = json.JSONDecoder().raw_decode(out.stdout.decode())[0]
        self.assertEqual(first["body_sha256"], sha256(payload))
        self.assertEqual(up.last().path, "/b")
        self.assertEqual(lg.stat("http.ingress.downstream_cx_total"), 1)


class Connections(HttpProxyCase):
    def test_upstream_idle_timeout_after_reuse(self):
        # The pooled connection serves two requests, then idles out; the next
        # request opens a new one.
        up, lg, port = self.proxy(cluster_extra={
            "common_http_protocol_options": {"idle_timeout": "0.3s"}})
        self.assertEqual(http_get(port, "/one")[0], 200)
        self.assertEqual(http_get(port, "/two")[0], 200)
        self.assertEqual([r.conn_index for r in up.requests], [0, 0])
        lg.wait_for_stat("cluster.up.upstream_cx_idle_timeout", lambda v: v == 1)
        up.wait_conn_closed(0)
        self.assertEqual(http_get(port, "/three")[0], 200)
        self.assertEqual(up.last().conn_index, 1)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_total"), 2)

    def test_most_recently_idle_upstream_is_reused_and_the_rest_idle_out(self):
        # Three concurrent requests open three upstream connections. Then one
        # request every 0.2 s: each goes on the connection that went idle last, so
        # the other two idle out after 1 s even though traffic never stops (taken
        # in turn, each would be used every 0.6 s and none would ever idle out).
        together = threading.Barrier(3, timeout=10)

        def handler(req):
            if req.path.startswith("/burst"):
                together.wait()
            return (200, [], b"ok")
        up, lg, port = self.proxy(handler, cluster_extra={
            "common_http_protocol_options": {"idle_timeout": "1s"}})
        socks = [self.client(port) for _ in range(3)]
        for i, s in enumerate(socks):
            s.sendall(b"GET /burst%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        for s in socks:
            self.assertEqual(read_http_response(SockReader(s)).status, 200)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_total"), 3)
        trickle = []
        deadline = time.monotonic() + 10
        while lg.stat("cluster.up.upstream_cx_idle_timeout") < 2:
            self.assertLess(time.monotonic(), deadline, "the unused connections never idled out")
            self.assertEqual(http_get(port, "/t%d" % len(trickle))[0], 200)
            trickle.append(up.last().conn_index)
            time.sleep(0.2)
        self.assertEqual(len(set(trickle)), 1, "the trickle took turns: %s" % trickle)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_active"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_cx_total"), 3)

    def test_downstream_idle_timeout_rearms_after_each_request(self):
        # The HCM's idle timer runs only while no request is in flight: requests
        # spaced closer than the timeout keep the connection open, and once it is
        # idle for the timeout legate closes it and counts it.
        up, lg, port = self.proxy(common_http_protocol_options={"idle_timeout": "0.5s"})
        s = self.client(port)
        reader = SockReader(s)
        for i in range(4):
            s.sendall(b"GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
            self.assertEqual(read_http_response(reader).status, 200)
            time.sleep(0.3)
        self.assertEqual(lg.stat("http.ingress.downstream_cx_idle_timeout"), 0)
        self.assertTrue(closed_by_peer(s, timeout=5.0))
        lg.wait_for_stat("http.ingress.downstream_cx_idle_timeout", lambda v: v == 1)
        # A connection that never sends a byte idles out too.
        quiet = self.client(port)
        self.assertTrue(closed_by_peer(quiet, timeout=5.0))
        lg.wait_for_stat("http.ingress.downstream_cx_idle_timeout", lambda v: v == 2)
        self.assertEqual(len(up.requests), 4)

    def test_keepalive_downstream_and_upstream_reuse_with_stats(self):
        up, lg, port = self.proxy()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        for i in range(5):
            conn.request("GET", "/r%d" % i)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(self.echo(resp.read())["path"], "/r%d" % i)
        reqs = up.wait_requests(5)
        self.assertEqual({r.conn_index for r in reqs}, {0}, "all on one upstream connection")
        stats = lg.stats()
        self.assertEqual(stats["http.ingress.downstream_cx_total"], 1)
        self.assertEqual(stats["http.ingress.downstream_rq_total"], 5)
        self.assertEqual(stats["http.ingress.downstream_rq_2xx"], 5)
        self.assertEqual(stats["cluster.up.upstream_cx_total"], 1)
        self.assertEqual(stats["cluster.up.upstream_rq_total"], 5)
        self.assertEqual(stats["cluster.up.upstream_rq_2xx"], 5)
        # New downstream connections reuse the idle upstream connection too.
        for i in range(3):
            self.assertEqual(http_get(port, "/fresh%d" % i)[0], 200)
        stats = lg.stats()
        self.assertEqual(stats["cluster.up.upstream_cx_total"], 1)
        self.assertEqual(stats["http.ingress.downstream_cx_total"], 4)
        self.assertEqual(stats["http.ingress.downstream_rq_total"], 8)

    def test_pipelined_requests_answered_in_order(self):
        def handler(req):
            # Later requests answer faster: order must still follow the requests.
            delay = {"/p0": 0.2, "/p1": 0.1}.get(req.path, 0)
            up_stop.wait(delay)
            return (200, [("x-path", req.path)], req.path.encode())
        up, lg, port = self.proxy(handler)
        up_stop = up.stop
        s = self.client(port)
        paths = ["/p%d" % i for i in range(4)]
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % p.encode() for p in paths))
        reader = SockReader(s)
        for p in paths:
            resp = read_http_response(reader)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.body, p.encode())
        self.assertEqual([r.path for r in up.requests], paths)

    def test_pipelined_with_bodies(self):
        def handler(req):
            return (200, [], req.body)
        up, lg, port = self.proxy(handler)
        s = self.client(port, timeout=10)
        s.sendall(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n")
        reader = SockReader(s)
        self.assertEqual([read_http_response(reader).body for _ in range(3)],
                         [b"hello", b"", b"abc"])
        self.assertEqual([r.path for r in up.requests], ["/a", "/b", "/c"])

    def test_http10_rejected_by_default_and_never_proxied(self):
        up, lg, port = self.proxy()
        resp, closed = raw_request(port, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertIsNotNone(resp)
        self.assertTrue(400 <= resp.status < 500, resp.start)
        self.assertTrue(closed)
        self.assertEqual(up.count(), 0)
        self.assertEqual(lg.stat("http.ingress.downstream_cx_protocol_error"), 1)
        self.assertEqual(http_get(port, "/")[0], 200)

    def test_http10_rejected_with_426_like_envoy(self):
        up, lg, port = self.proxy()
        resp, closed = raw_request(port, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertEqual(resp.status, 426)

    def test_http10_accepted_when_configured_then_closed(self):
        up, lg, port = self.proxy(http_protocol_options={"accept_http_10": True})
        resp, closed = raw_request(port, b"GET /ten HTTP/1.0\r\nHost: a\r\n\r\n")
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.echo(resp.body)["path"], "/ten")
        self.assertTrue(closed, "HTTP/1.0 without keep-alive: the connection closes")
        # A chunked upstream response reaches a 1.0 client unchunked (framed by close).
        n = 100000
        resp, closed = raw_request(port, b"GET /chunked/%d HTTP/1.0\r\n\r\n" % n)
        self.assertEqual(resp.status, 200)
        self.assertFalse(resp.chunked)
        self.assertEqual(resp.body_sha256, resp.header("x-body-sha256"))
        self.assertTrue(closed)
        self.assertEqual(up.count(), 2)

    def test_expect_100_continue(self):
        up, lg, port = self.proxy()
        s = self.client(port, timeout=10)
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        reader = SockReader(s)
        interim = read_http_response(reader)
        self.assertEqual(interim.status, 100)
        s.sendall(b"hello")
        final = read_http_response(reader)
        self.assertEqual(final.status, 200)
        self.assertEqual(self.echo(final.body)["body_len"], 5)
        self.assertEqual(up.last().body, b"hello")

    def test_expect_100_continue_with_http_client(self):
        up, lg, port = self.proxy()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("PUT", "/put", body=b"x" * 1000, headers={"Expect": "100-continue"})
        resp = conn.getresponse()  # http.client skips the 100 itself
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.echo(resp.read())["body_len"], 1000)


class Headers(HttpProxyCase):
    def test_via_on_request_and_response(self):
        up, lg, port = self.proxy(via="legate-test")
        status, _, _, resp = http_get(port, "/")
        self.assertEqual(up.last().header("via"), "legate-test")
        self.assertEqual(resp.getheader("via"), "legate-test")

    def test_use_remote_address_appends_xff_and_keeps_internal_envoy_headers(self):
        up, lg, port = self.proxy(use_remote_address=True)
        http_get(port, "/", headers={"x-envoy-custom": "kept", "x-envoy-max-retries": "1"})
        seen = up.last()
        self.assertEqual(seen.header("x-forwarded-for"), "127.0.0.1")
        self.assertEqual(seen.header("x-forwarded-proto"), "http")
        # 127.0.0.1 is an internal address: x-envoy-* headers pass and no external address.
        self.assertEqual(seen.header("x-envoy-custom"), "kept")
        self.assertEqual(seen.header("x-envoy-max-retries"), "1")
        self.assertIsNone(seen.header("x-envoy-external-address"))

    def test_default_does_not_append_xff(self):
        up, lg, port = self.proxy()
        http_get(port, "/", headers={"x-forwarded-for": "10.1.2.3"})
        self.assertEqual(up.last().header_all("x-forwarded-for"), ["10.1.2.3"])

    def test_internal_request_gets_x_envoy_internal(self):
        up, lg, port = self.proxy(use_remote_address=True)
        http_get(port, "/")
        self.assertEqual(up.last().header("x-envoy-internal"), "true")

    def test_upstream_service_time_and_suppress_envoy_headers(self):
        up, lg, port = self.proxy()
        _, _, _, resp = http_get(port, "/")
        self.assertRegex(resp.getheader("x-envoy-upstream-service-time", ""), r"^\d+$")
        self.assertIsNotNone(up.last().header("x-envoy-expected-rq-timeout-ms"))

        up2 = self.server(HttpUpstream)
        lg2 = self.start_legate(http_bootstrap([static_cluster("up", [up2.port])],
                                               router={"suppress_envoy_headers": True}))
        _, _, _, resp = http_get(lg2.port("http"), "/")
        self.assertEqual(resp.status, 200)
        self.assertIsNone(resp.getheader("x-envoy-upstream-service-time"))
        self.assertIsNone(up2.last().header("x-envoy-expected-rq-timeout-ms"))

    def test_hop_by_hop_headers_not_forwarded(self):
        def handler(req):
            return (200, [("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                          ("x-ok", "1")], b"body")
        up, lg, port = self.proxy(handler)
        s = self.client(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nKeep-Alive: 300\r\n"
                  b"Proxy-Connection: keep-alive\r\n\r\n")
        resp = read_http_response(SockReader(s))
        self.assertEqual(resp.body, b"body")
        self.assertIsNone(resp.header("keep-alive"))
        seen = up.last()
        self.assertIsNone(seen.header("keep-alive"))
        self.assertIsNone(seen.header("proxy-connection"))

    def test_server_name_configurable(self):
        up, lg, port = self.proxy(server_name="edge-1")
        _, _, _, resp = http_get(port, "/")
        self.assertEqual(resp.getheader("server"), "edge-1")


if __name__ == "__main__":
    unittest.main()
