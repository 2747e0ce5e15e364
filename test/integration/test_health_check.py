"""Active health checking (cluster.health_checks): HTTP and TCP checks against real
upstreams; hosts leave the rotation when they fail their checks and come back when they
pass, x-envoy-immediate-health-check-fail, and config errors that name the field."""

import json
import os
import threading
import unittest

from harness import (EchoServer, HttpUpstream, LegateTestCase, http_bootstrap, http_get,
                     refused_port, run_legate, static_cluster, wait_until)

HC_PATH = "/healthz"


class Switchable(HttpUpstream):
    """Answers the health check path with `hc_status` (and optional extra headers), and
    other paths with 200 naming itself."""

    def __init__(self, name, **kw):
        self.hc_status = 200
        self.hc_headers = []
        super().__init__(handler=self.answer, name=name, **kw)

    def answer(self, req):
        if req.path == HC_PATH:
            return (self.hc_status, list(self.hc_headers), b"hc")
        return (200, [("x-upstream", self.name)], self.name.encode())

    def served(self):
        with self.request_cv:
            return sum(1 for r in self.requests if r.path != HC_PATH)

    def checks(self):
        with self.request_cv:
            return sum(1 for r in self.requests if r.path == HC_PATH)


def http_check(**extra):
    hc = {"timeout": "1s", "interval": "0.1s", "no_traffic_interval": "0.1s",
          "unhealthy_threshold": 2, "healthy_threshold": 2,
          "http_health_check": {"path": HC_PATH}}
    hc.update(extra)
    return hc


class HttpHealthChecks(LegateTestCase):
    def start(self, hc):
        self.a = self.server(Switchable, "a")
        self.b = self.server(Switchable, "b")
        self.lg = self.start_legate(http_bootstrap(
            [static_cluster("up", [self.a.port, self.b.port], health_checks=[hc])]))
        self.port = self.lg.port("http")

    def healthy(self, n):
        self.lg.wait_for_stat("cluster.up.health_check.healthy", lambda v: v == n)

    def test_failing_host_leaves_and_returns(self):
        self.start(http_check())
        self.healthy(2)
        self.a.hc_status = 503
        self.healthy(1)
        self.assertIn("failed_active_hc", self.lg.admin_get("/clusters")[1])
        before = self.a.served()
        for i in range(20):
            status, _, body, _ = http_get(self.port, "/r%d" % i)
            self.assertEqual((status, body), (200, b"b"))
        self.assertEqual(self.a.served(), before)
        # Back to health: after healthy_threshold good checks it serves again.
        self.a.hc_status = 200
        self.healthy(2)
        bodies = {http_get(self.port, "/s%d" % i)[2] for i in range(10)}
        self.assertEqual(bodies, {b"a", b"b"})
        stats = self.lg.stats()
        self.assertGreater(stats["cluster.up.health_check.attempt"], 4)
        self.assertGreater(stats["cluster.up.health_check.failure"], 0)
        # The checks asked for the configured path with the cluster name as host.
        with self.a.request_cv:
            seen = [r for r in self.a.requests if r.path == HC_PATH][0]
        self.assertEqual(seen.header("host"), "up")
        self.assertEqual(seen.header("user-agent"), "Envoy/HC")

    def test_immediate_fail_header_ejects_at_once(self):
        self.start(http_check(unhealthy_threshold=50))
        self.healthy(2)
        self.b.hc_headers = [("x-envoy-immediate-health-check-fail", "true")]
        self.healthy(1)
        for i in range(10):
            self.assertEqual(http_get(self.port, "/i%d" % i)[2], b"a")

    def test_expected_statuses_and_request_headers(self):
        self.start(http_check(http_health_check={
            "path": HC_PATH, "host": "hc.internal",
            "expected_statuses": [{"start": 200, "end": 300}],
            "request_headers_to_add": [{"header": {"key": "x-probe", "value": "1"}}]}))
        self.a.hc_status = 204  # inside [200, 300)
        self.healthy(2)
        self.a.hc_status = 302
        self.healthy(1)
        with self.b.request_cv:
            seen = [r for r in self.b.requests if r.path == HC_PATH][-1]
        self.assertEqual(seen.header("host"), "hc.internal")
        self.assertEqual(seen.header("x-probe"), "1")


class TcpHealthChecks(LegateTestCase):
    def test_send_receive_and_dead_host(self):
        echo = self.server(EchoServer)
        dead = refused_port()
        hc = {"timeout": "1s", "interval": "0.1s", "no_traffic_interval": "0.1s",
              "unhealthy_threshold": 1, "healthy_threshold": 1,
              "tcp_health_check": {"send": {"text": "70696e67"},        # "ping"
                                   "receive": [{"text": "7069"}, {"text": "6e67"}]}}
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", [echo.port, dead], health_checks=[hc])]))
        lg.wait_for_stat("cluster.up.health_check.healthy", lambda v: v == 1)
        lg.wait_for_stat("cluster.up.health_check.network_failure", lambda v: v >= 2)
        self.assertEqual(lg.stat("cluster.up.health_check.healthy"), 1)
        self.assertEqual(lg.stat("cluster.up.membership_healthy"), 1)


class HealthCheckConfigErrors(LegateTestCase):
    def validate(self, hc):
        path = os.path.join(self.tmpdir(), "hc.json")
        with open(path, "w") as f:
            json.dump(http_bootstrap([static_cluster("up", [1], health_checks=[hc])]), f)
        return run_legate(["--mode", "validate", "-c", path])

    def test_unsupported_checker_names_the_field(self):
        code, _, err = self.validate({"timeout": "1s", "interval": "1s",
                                      "unhealthy_threshold": 1, "healthy_threshold": 1,
                                      "grpc_health_check": {}})
        self.assertEqual(code, 1)
        self.assertIn("static_resources.clusters[0].health_checks[0]", err)
        self.assertIn("grpc_health_check", err)

    def test_missing_required_fields_are_refused(self):
        code, _, err = self.validate({"interval": "1s", "http_health_check": {"path": "/"}})
        self.assertEqual(code, 1)
        self.assertIn("health_checks[0]", err)


if __name__ == "__main__":
    unittest.main()
