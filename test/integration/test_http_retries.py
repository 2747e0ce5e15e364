"""The router's upstream requests under failure: early responses, retries (retry_on
conditions, per-try timeouts, back-off, budgets and breakers, replayed bodies), hedging and
request mirroring, each against real upstream processes that fail on purpose."""

import json
import os
import threading
import unittest

from harness import (HoldServer, HttpUpstream, LegateTestCase, SockReader, TcpServer,
                     http_bootstrap, http_get, keepalive_get_loop, pattern_bytes,
                     read_http_response, refused_port, route, route_config, sha256,
                     static_cluster, virtual_host, wait_for_lines, wait_until)

LOG_FORMAT = "%RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"
PREVIOUS_HOSTS = [{
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                              "PreviousHostsPredicate"},
}]


def attempt(req):
    """The attempt number legate stamped on an upstream request (include_request_attempt_count)."""
    return int(req.header("x-envoy-attempt-count") or 0)


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


class RetryCase(LegateTestCase):
    def proxy(self, endpoints, retry_policy=None, route_extra=None, vhost_extra=None,
              cluster_extra=None, **hcm):
        """legate in front of one cluster "up" with `endpoints`; the route gets retry_policy
        (and route_extra), the virtual host counts attempts both ways (and vhost_extra)."""
        action = dict(route_extra or {})
        if retry_policy is not None:
            action["retry_policy"] = retry_policy
        vh = {"include_request_attempt_count": True, "include_attempt_count_in_response": True}
        vh.update(vhost_extra or {})
        rc = route_config([virtual_host("default", ["*"],
                                        [route({"prefix": "/"}, cluster="up", route_extra=action)],
                                        **vh)])
        self.log_path = os.path.join(self.tmpdir(), "access.log")
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", endpoints, **(cluster_extra or {}))], route_cfg=rc,
            access_log_path=self.log_path, log_format=LOG_FORMAT, **hcm))
        return lg, lg.port("http")

    def log_lines(self, n, timeout=10.0):
        return wait_for_lines(self.log_path, n, timeout)


def resetting(req):
    """Handler: close the connection without an answer."""
    return None


class Retries(RetryCase):
    def test_reset_is_retried_on_another_host(self):
        bad = self.server(HttpUpstream, handler=resetting, name="bad")
        good = self.server(HttpUpstream, name="good")
        lg, port = self.proxy([bad.port, good.port], {
            "retry_on": "reset", "num_retries": 2, "retry_host_predicate": PREVIOUS_HOSTS,
            "host_selection_retry_max_attempts": 5})
        for i in range(6):
            status, headers, body, _ = http_get(port, "/r%d" % i)
            self.assertEqual(status, 200, body)
            self.assertEqual(dict(headers)["x-upstream"], "good")
        # Round robin sends about half of the first attempts to the resetting host; each
        # of those is retried once, on the other host.
        self.assertGreaterEqual(bad.count(), 1)
        for req in bad.requests:
            self.assertEqual(attempt(req), 1, "previous_hosts keeps retries off the bad host")
        retries = lg.stat("cluster.up.upstream_rq_retry")
        self.assertEqual(retries, bad.count())
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_success"), retries)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_backoff_exponential"), retries)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_limit_exceeded"), 0)
        self.assertEqual(lg.stat("http.ingress.downstream_rq_5xx"), 0)

    def test_connect_failure_is_retried(self):
        good = self.server(HttpUpstream, name="good")
        lg, port = self.proxy([refused_port(), good.port], {
            "retry_on": "connect-failure", "retry_host_predicate": PREVIOUS_HOSTS})
        for i in range(4):
            status, headers, _, _ = http_get(port, "/c%d" % i)
            self.assertEqual(status, 200)
            self.assertEqual(dict(headers)["x-upstream"], "good")
        self.assertGreaterEqual(lg.stat("cluster.up.upstream_cx_connect_fail"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"),
                         lg.stat("cluster.up.upstream_cx_connect_fail"))

    def test_host_killed_under_load_no_client_failures(self):
        ups = [self.server(HttpUpstream, name="u%d" % i) for i in range(3)]
        lg, port = self.proxy([u.port for u in ups], {
            "retry_on": "connect-failure,reset", "num_retries": 2,
            "retry_host_predicate": PREVIOUS_HOSTS, "host_selection_retry_max_attempts": 5})
        results = []
        stop = threading.Event()
        workers = [self.thread(keepalive_get_loop, port, results, stop, 5000) for _ in range(3)]
        wait_until(lambda: len(results) >= 150, 20, what="150 requests before the kill")
        ups[1].close()  # in-flight requests reset, pooled connections go stale, new ones refused
        killed_at = len(results)
        wait_until(lambda: len(results) >= killed_at + 300, 30, what="300 requests after the kill")
        stop.set()
        for w in workers:
            w.get(30)
        failures = [r for r in results if r != 200]
        self.assertEqual(failures, [])
        self.assertGreaterEqual(lg.stat("cluster.up.upstream_rq_retry"), 1)

    def test_connect_failure_not_retried_under_retriable_4xx(self):
        lg, port = self.proxy([refused_port()], {"retry_on": "retriable-4xx"})
        status, _, _, _ = http_get(port, "/x")
        self.assertEqual(status, 503)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 0)
        self.assertEqual(self.log_lines(1)[0], "503 UF 1")

    def test_hung_upstream_per_try_timeout_then_healthy_host(self):
        hung = self.server(HttpUpstream, name="hung")
        hung.handler = lambda req: (hung.stop.wait(30), None)[1]
        good = self.server(HttpUpstream, name="good")
        lg, port = self.proxy([hung.port, good.port], {
            "retry_on": "5xx", "num_retries": 1, "per_try_timeout": "0.2s",
            "retry_host_predicate": PREVIOUS_HOSTS})
        for i in range(4):
            status, headers, _, _ = http_get(port, "/h%d" % i)
            self.assertEqual(status, 200)
            self.assertEqual(dict(headers)["x-upstream"], "good")
        self.assertGreaterEqual(hung.count(), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_per_try_timeout"), hung.count())
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), hung.count())
        # Each timed-out attempt's connection was reset, not left busy in the pool.
        self.assertEqual(lg.stat("cluster.up.upstream_rq_tx_reset"), hung.count())
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v <= 1)

    def test_per_try_timeout_without_retry_is_504_ut(self):
        hung = self.server(HttpUpstream, name="hung")
        hung.handler = lambda req: (hung.stop.wait(30), None)[1]
        lg, port = self.proxy([hung.port], {"retry_on": "connect-failure",
                                            "per_try_timeout": "0.2s"})
        status, _, body, _ = http_get(port, "/slow")
        self.assertEqual(status, 504)
        self.assertEqual(body, b"upstream request timeout")
        self.assertEqual(self.log_lines(1)[0], "504 UT 1")
        self.assertEqual(lg.stat("cluster.up.upstream_rq_per_try_timeout"), 1)

    def test_retriable_status_codes_and_attempt_counts(self):
        def handler(req):
            if attempt(req) < 3:
                return (418, [("x-upstream", "teapot")], b"no")
            return (200, [("x-upstream", "up")], b"yes")
        up = self.server(HttpUpstream, handler=handler)
        lg, port = self.proxy([up.port], {"retry_on": "retriable-status-codes",
                                          "retriable_status_codes": [418], "num_retries": 3})
        status, headers, body, _ = http_get(port, "/tea")
        self.assertEqual((status, body), (200, b"yes"))
        self.assertEqual(dict(headers)["x-envoy-attempt-count"], "3")
        self.assertEqual([attempt(r) for r in up.requests], [1, 2, 3])
        self.assertEqual(self.log_lines(1)[0], "200 - 3")
        self.assertEqual(lg.stat("cluster.up.upstream_rq_4xx"), 2)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_success"), 1)

    def test_retry_headers_without_a_route_policy(self):
        def handler(req):
            if attempt(req) == 1:
                return (429, [], b"later")
            if attempt(req) == 2:
                return (200, [("x-try-again", "1")], b"again")
            return (200, [], b"done")
        up = self.server(HttpUpstream, handler=handler)
        lg, port = self.proxy([up.port])
        # No policy and no x-envoy-retry-on: no retry.
        status, _, body, _ = http_get(port, "/a")
        self.assertEqual((status, body), (429, b"later"))
        status, _, body, _ = http_get(port, "/b", headers={
            "x-envoy-retry-on": "retriable-status-codes,retriable-headers",
            "x-envoy-retriable-status-codes": "500, 429",
            "x-envoy-retriable-header-names": "X-Try-Again",
            "x-envoy-max-retries": "4"})
        self.assertEqual((status, body), (200, b"done"))
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 2)

    def test_exhausted_retries_return_the_last_response_with_urx(self):
        up = self.server(HttpUpstream, handler=lambda req: (503, [("x-upstream", "sick")], b"sick"))
        lg, port = self.proxy([up.port], {"retry_on": "5xx", "num_retries": 2,
                                          "retry_back_off": {"base_interval": "0.005s"}})
        status, headers, body, _ = http_get(port, "/s")
        self.assertEqual((status, body), (503, b"sick"))
        self.assertEqual(dict(headers)["x-upstream"], "sick")
        self.assertEqual(up.count(), 3)
        self.assertEqual(self.log_lines(1)[0], "503 URX 3")
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 2)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_limit_exceeded"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_backoff_exponential"), 2)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_success"), 0)

    def test_exhausted_resets_give_503_uc_urx(self):
        up = self.server(HttpUpstream, handler=resetting)
        lg, port = self.proxy([up.port], {"retry_on": "reset,5xx", "num_retries": 1})
        status, _, body, _ = http_get(port, "/gone")
        self.assertEqual(status, 503)
        self.assertIn(b"connection termination", body)
        self.assertEqual(up.count(), 2)
        self.assertEqual(self.log_lines(1)[0], "503 UC,URX 2")

    def test_max_retries_breaker_overflow(self):
        up = self.server(HttpUpstream, handler=lambda req: (503, [], b"sick"))
        lg, port = self.proxy([up.port], {"retry_on": "5xx", "num_retries": 3}, cluster_extra={
            "circuit_breakers": {"thresholds": [{"max_retries": 0, "track_remaining": True}]}})
        status, _, body, _ = http_get(port, "/o")
        self.assertEqual((status, body), (503, b"sick"))
        self.assertEqual(up.count(), 1)
        self.assertEqual(self.log_lines(1)[0], "503 UO 1")
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_overflow"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 0)
        self.assertEqual(lg.stat("cluster.up.circuit_breakers.default.remaining_retries"), 0)
        self.assertEqual(lg.stat("cluster.up.circuit_breakers.default.remaining_rq"), 1024)

    def test_retry_budget_overflow(self):
        up = self.server(HttpUpstream, handler=lambda req: (503, [], b"sick"))
        budget = {"budget_percent": {"value": 0}, "min_retry_concurrency": 0}
        lg, port = self.proxy([up.port], {"retry_on": "5xx"}, cluster_extra={
            "circuit_breakers": {"thresholds": [{"retry_budget": budget}]}})
        status, _, _, _ = http_get(port, "/b")
        self.assertEqual(status, 503)
        self.assertEqual(up.count(), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry_overflow"), 1)
        # The default budget (20%, at least 3 concurrent) lets a retry through.
        lg2, port2 = self.proxy([up.port], {"retry_on": "5xx"}, cluster_extra={
            "circuit_breakers": {"thresholds": [{"retry_budget": {}}]}})
        http_get(port2, "/b")
        self.assertEqual(lg2.stat("cluster.up.upstream_rq_retry"), 1)

    def test_retried_body_arrives_intact(self):
        body = pattern_bytes(300 * 1024, seed=7)
        seen = []

        def handler(req):
            seen.append((attempt(req), req.body_sha256, req.body_len))
            if attempt(req) == 1:
                return None  # read the whole body, then reset
            return (200, [], HttpUpstream.echo_body(req))
        up = self.server(HttpUpstream, handler=handler)
        lg, port = self.proxy([up.port], {"retry_on": "reset"})
        status, _, resp, _ = http_get(port, "/upload", method="POST", body=body,
                                      headers={"content-type": "application/octet-stream"})
        self.assertEqual(status, 200, resp)
        self.assertEqual([(a, h, n) for a, h, n in seen],
                         [(1, sha256(body), len(body)), (2, sha256(body), len(body))])

    def test_body_over_retry_buffer_limit_is_not_retried(self):
        up = self.server(HttpUpstream, handler=resetting)
        lg, port = self.proxy([up.port], {"retry_on": "reset"},
                              route_extra=None, vhost_extra={"per_request_buffer_limit_bytes": 1024})
        status, _, _, _ = http_get(port, "/big", method="POST", body=pattern_bytes(64 * 1024))
        self.assertEqual(status, 503)
        self.assertEqual(up.count(), 1)
        self.assertEqual(lg.stat("cluster.up.retry_or_shadow_abandoned"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 0)

    def test_route_timeout_spans_retries(self):
        hung = self.server(HttpUpstream, name="hung")
        hung.handler = lambda req: (hung.stop.wait(30), None)[1]
        lg, port = self.proxy([hung.port], {"retry_on": "5xx", "num_retries": 100})
        # Per-try 100 ms inside a 450 ms route timeout (both from the request): the
        # route timeout ends the retrying with 504 UT, after a few attempts.
        status, _, body, _ = http_get(port, "/t", headers={
            "x-envoy-upstream-rq-timeout-ms": "450",
            "x-envoy-upstream-rq-per-try-timeout-ms": "100"})
        self.assertEqual((status, body), (504, b"upstream request timeout"))
        line = self.log_lines(1)[0].split()
        self.assertEqual(line[:2], ["504", "UT"])
        self.assertGreaterEqual(int(line[2]), 2)
        self.assertLess(int(line[2]), 100)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_timeout"), 1)
        for r in hung.requests:
            self.assertEqual(r.header("x-envoy-expected-rq-timeout-ms"), "100")
            self.assertIsNone(r.header("x-envoy-upstream-rq-per-try-timeout-ms"))

    def test_unknown_retry_on_is_refused(self):
        cfg = http_bootstrap([static_cluster("up", [refused_port()])], route_cfg=route_config(
            [virtual_host("v", ["*"], [route({"prefix": "/"}, cluster="up",
                                             route_extra={"retry_policy": {"retry_on": "5xx,bogus"}})])]))
        lg = self.start_legate(cfg, wait_ready=False)
        self.assertEqual(lg.wait_exit(10), 1)
        self.assertIn("retry_policy.retry_on: 'bogus'", lg.read_stderr())


class Hedging(RetryCase):
    def test_hedge_on_per_try_timeout_first_good_response_wins(self):
        def handler(req):
            if attempt(req) == 1:
                up.stop.wait(3)  # slow: the hedged attempt overtakes it
                return (200, [], b"slow")
            return (200, [], b"fast")
        up = self.server(HttpUpstream, handler=handler)
        lg, port = self.proxy([up.port], {"retry_on": "5xx", "num_retries": 1,
                                          "per_try_timeout": "0.2s"},
                              route_extra={"hedge_policy": {"hedge_on_per_try_timeout": True}})
        status, headers, body, _ = http_get(port, "/hedge")
        self.assertEqual((status, body), (200, b"fast"))
        self.assertEqual(dict(headers)["x-envoy-attempt-count"], "2")
        # The first attempt was not cancelled by its per-try timeout, only by losing.
        self.assertEqual(up.count(), 2)
        up.wait_conn_closed(0)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_per_try_timeout"), 0)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_retry"), 1)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_tx_reset"), 1)


class Mirroring(LegateTestCase):
    def proxy(self, shadow_endpoints, mirror_policies=None, main_handler=None):
        main = self.server(HttpUpstream, handler=main_handler, name="main")
        policies = mirror_policies or [{"cluster": "shadow"}]
        rc = route_config([virtual_host("default", ["*"], [
            route({"prefix": "/"}, cluster="main",
                  route_extra={"request_mirror_policies": policies})])])
        lg = self.start_legate(http_bootstrap(
            [static_cluster("main", [main.port]), static_cluster("shadow", shadow_endpoints)],
            route_cfg=rc))
        return main, lg, lg.port("http")

    def test_mirror_delivers_a_copy_with_shadow_host(self):
        shadow = self.server(HttpUpstream, name="shadow")
        main, lg, port = self.proxy([shadow.port])
        body = pattern_bytes(200 * 1024, seed=3)
        status, headers, resp, _ = http_get(port, "/m?x=1", method="POST", body=body,
                                            headers={"host": "svc.local:8080"})
        self.assertEqual(status, 200)
        self.assertEqual(dict(headers)["x-upstream"], "main")
        got = shadow.wait_requests(1)[0]
        self.assertEqual(got.path, "/m?x=1")
        self.assertEqual(got.header("host"), "svc.local-shadow:8080")
        self.assertEqual((got.body_len, got.body_sha256), (len(body), sha256(body)))
        self.assertEqual(main.last().header("host"), "svc.local:8080")
        lg.wait_for_stat("cluster.shadow.upstream_rq_2xx", lambda v: v == 1)
        lg.wait_for_stat("cluster.shadow.upstream_rq_active", lambda v: v == 0)

    def test_dead_or_hung_shadow_never_affects_the_main_request(self):
        release = threading.Event()
        hung = self.server(HttpUpstream, name="hung")
        hung.handler = lambda req: (release.wait(30), (200, [], b"late"))[1]
        self.addCleanup(release.set)
        main, lg, port = self.proxy([refused_port()])
        for i in range(3):
            status, _, _, _ = http_get(port, "/dead%d" % i, method="POST", body=b"x" * 1000)
            self.assertEqual(status, 200)
        self.assertEqual(lg.stat("http.ingress.downstream_rq_2xx"), 3)
        lg.wait_for_stat("cluster.shadow.upstream_cx_connect_fail", lambda v: v >= 1)
        # A shadow that never answers: the main response comes while it still hangs.
        main2, lg2, port2 = self.proxy([hung.port])
        status, _, resp, _ = http_get(port2, "/hung")
        self.assertEqual(status, 200)
        self.assertEqual(hung.wait_requests(1)[0].path, "/hung")
        self.assertFalse(release.is_set())
        self.assertEqual(lg2.stat("cluster.shadow.upstream_rq_active"), 1)

    def test_slow_shadow_is_abandoned_with_bounded_memory(self):
        # The shadow host accepts and never reads: its copy backs up and is dropped,
        # while the main request's 16 MiB body arrives whole.
        hold = self.server(HoldServer, rcvbuf=4096)
        main, lg, port = self.proxy([hold.port], main_handler=None)
        body = pattern_bytes(16 << 20, seed=5)
        status, _, resp, _ = http_get(port, "/big", method="POST", body=body, timeout=60)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(resp)["body_sha256"], sha256(body))
        lg.wait_for_stat("cluster.shadow.retry_or_shadow_abandoned", lambda v: v == 1)
        if not lg.sanitized():  # ASan's quarantine alone holds more than the bound
            self.assertLess(lg.rss_kib(), 200 * 1024)

    def test_runtime_fraction_zero_and_cluster_header(self):
        shadow = self.server(HttpUpstream, name="shadow")
        never = {"cluster": "shadow",
                 "runtime_fraction": {"default_value": {"numerator": 0}, "runtime_key": "m.never"}}
        by_header = {"cluster_header": "x-mirror-to"}
        main, lg, port = self.proxy([shadow.port], [never, by_header])
        for i in range(5):
            self.assertEqual(http_get(port, "/f%d" % i)[0], 200)
        self.assertEqual(main.count(), 5)
        self.assertEqual(http_get(port, "/h", headers={"x-mirror-to": "shadow"})[0], 200)
        self.assertEqual(shadow.wait_requests(1)[0].path, "/h")
        lg.wait_for_stat("cluster.shadow.upstream_rq_total", lambda v: v == 1)
        self.assertEqual(shadow.count(), 1)


if __name__ == "__main__":
    unittest.main()
