"""Outlier detection (cluster.outlier_detection) against real upstreams: a host that starts
answering 503 is ejected after consecutive_5xx and returns after its ejection time; a host
killed under load is ejected on its connect failures (with retries the clients see no
failure) and no request tries it while it is out, then it returns when restarted on its
port; max_ejection_percent caps how many hosts go; the success-rate and
failure-percentage detectors; tcp_proxy connect failures; refused fields."""

import json
import os
import threading
import unittest

from harness import (EchoServer, HttpUpstream, LegateTestCase, bootstrap, connect,
                     http_bootstrap, http_get, keepalive_get_loop, refused_port, route,
                     route_config, run_legate, static_cluster, tcp_listener, virtual_host,
                     wait_until)

PREVIOUS_HOSTS = [{
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                              "PreviousHostsPredicate"},
}]
OD = "cluster.up.outlier_detection."


class Switchable(HttpUpstream):
    """Answers every request with `status`, naming itself in the body."""

    def __init__(self, name, **kw):
        self.status = 200
        super().__init__(handler=self.answer, name=name, **kw)

    def answer(self, req):
        return (self.status, [("x-upstream", self.name)], self.name.encode())


def clusters_json(lg):
    status, body = lg.admin_get("/clusters?format=json")
    assert status == 200, status
    for c in json.loads(body)["cluster_statuses"]:
        if c["name"] == "up":
            return c
    raise AssertionError("no cluster 'up' in /clusters")


def host_status(lg, port):
    for h in clusters_json(lg)["host_statuses"]:
        if h["address"]["socket_address"]["port_value"] == port:
            return h
    raise AssertionError("no host with port %d in /clusters" % port)


def host_stat(lg, port, name):
    for st in host_status(lg, port)["stats"]:
        if st["name"] == name:
            return int(st["value"])
    return 0


def ejected_ports(lg):
    return sorted(h["address"]["socket_address"]["port_value"]
                  for h in clusters_json(lg)["host_statuses"]
                  if h["health_status"].get("failed_outlier_check"))


class OutlierCase(LegateTestCase):
    def proxy(self, ports, outlier, retry_policy=None, **cluster_extra):
        action = {"retry_policy": retry_policy} if retry_policy else None
        rc = route_config([virtual_host("default", ["*"],
                                        [route({"prefix": "/"}, cluster="up", route_extra=action)])])
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", ports, outlier_detection=outlier, **cluster_extra)],
            route_cfg=rc))
        return lg, lg.port("http")


class Consecutive5xx(OutlierCase):
    def test_503_host_is_ejected_then_returns(self):
        ups = [self.server(Switchable, "u%d" % i) for i in range(3)]
        lg, port = self.proxy([u.port for u in ups], {
            "consecutive_5xx": 3, "interval": "0.2s", "base_ejection_time": "2s",
            "max_ejection_percent": 50})
        bad = ups[1]
        bad.status = 503
        # Requests until the detector ejects it: round robin sends it every third one.
        seen = []
        for i in range(60):
            seen.append(http_get(port, "/a%d" % i)[0])
            if lg.stat(OD + "ejections_enforced_consecutive_5xx") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_enforced_consecutive_5xx", lambda v: v == 1)
        self.assertEqual(seen.count(503), 3, "ejected on the third 503 in a row")
        self.assertEqual(bad.count(), 3)
        self.assertEqual(lg.stat(OD + "ejections_detected_consecutive_5xx"), 1)
        self.assertEqual(lg.stat(OD + "ejections_enforced_total"), 1)
        self.assertEqual(lg.stat(OD + "ejections_active"), 1)
        self.assertEqual(lg.stat(OD + "ejections_overflow"), 0)
        self.assertEqual(lg.stat("cluster.up.membership_healthy"), 2)
        # /clusters shows it, in text and JSON.
        text = lg.admin_get("/clusters")[1]
        self.assertIn("up::127.0.0.1:%d::health_flags::/failed_outlier_check" % bad.port, text)
        self.assertIn("up::outlier::success_rate_average::", text)
        self.assertEqual(ejected_ports(lg), [bad.port])
        self.assertIs(host_status(lg, bad.port)["health_status"]["failed_outlier_check"], True)
        # While it is out, every request goes to the others.
        before = bad.count()
        for i in range(20):
            status, headers, body, _ = http_get(port, "/b%d" % i)
            self.assertEqual(status, 200, body)
            self.assertNotEqual(dict(headers)["x-upstream"], bad.name)
        # (It was out the whole time: still the one ejection, still active.)
        self.assertEqual(lg.stat(OD + "ejections_enforced_total"), 1)
        self.assertEqual(lg.stat(OD + "ejections_active"), 1)
        self.assertEqual(bad.count(), before)
        # After base_ejection_time it returns, and serves again.
        bad.status = 200
        lg.wait_for_stat(OD + "ejections_active", lambda v: v == 0, timeout=15)
        self.assertEqual(ejected_ports(lg), [])
        self.assertIn("up::127.0.0.1:%d::health_flags::healthy" % bad.port,
                      lg.admin_get("/clusters")[1])
        wait_until(lambda: http_get(port, "/c")[0] == 200 and bad.count() > before, 10,
                   what="the returned host serving again")


class Timeouts(OutlierCase):
    def test_hung_host_is_ejected_on_per_try_timeouts(self):
        # Per-try timeouts count as 504s (gateway failures); the retry hides them.
        hung = self.server(Switchable, "hung")
        hung.handler = lambda req: (hung.stop.wait(30), None)[1]
        good = self.server(Switchable, "good")
        lg, port = self.proxy([hung.port, good.port], {
            "consecutive_gateway_failure": 2, "enforcing_consecutive_gateway_failure": 100,
            "consecutive_5xx": 100, "interval": "0.2s", "base_ejection_time": "30s",
            "max_ejection_percent": 50},
            retry_policy={"retry_on": "5xx", "num_retries": 1, "per_try_timeout": "0.2s",
                          "retry_host_predicate": PREVIOUS_HOSTS})
        for i in range(20):
            status, headers, _, _ = http_get(port, "/h%d" % i)
            self.assertEqual((status, dict(headers)["x-upstream"]), (200, "good"))
            if lg.stat(OD + "ejections_enforced_consecutive_gateway_failure") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_enforced_consecutive_gateway_failure", lambda v: v == 1)
        self.assertEqual(ejected_ports(lg), [hung.port])
        timeouts = lg.stat("cluster.up.upstream_rq_per_try_timeout")
        self.assertGreaterEqual(timeouts, 2)
        for i in range(10):
            self.assertEqual(http_get(port, "/g%d" % i)[0], 200)
        self.assertEqual(lg.stat("cluster.up.upstream_rq_per_try_timeout"), timeouts)


class WithActiveHealthChecks(OutlierCase):
    def start(self, uneject):
        ups = [self.server(Switchable, "u%d" % i) for i in range(3)]
        bad = ups[1]
        # Health checks on /healthz always pass; traffic gets `status`.
        bad.handler = lambda req: (200 if req.path == "/healthz" else bad.status, [], b"x")
        bad.status = 503
        hc = {"timeout": "1s", "interval": "0.2s", "no_traffic_interval": "0.2s",
              "unhealthy_threshold": 2, "healthy_threshold": 1,
              "http_health_check": {"path": "/healthz"}}
        lg, port = self.proxy([u.port for u in ups], {
            "consecutive_5xx": 3, "interval": "0.2s", "base_ejection_time": "30s",
            "max_ejection_percent": 50, "successful_active_health_check_uneject_host": uneject},
            health_checks=[hc])
        lg.wait_for_stat("cluster.up.health_check.healthy", lambda v: v == 3)
        for i in range(60):
            http_get(port, "/a%d" % i)
            if lg.stat(OD + "ejections_enforced_consecutive_5xx") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_enforced_consecutive_5xx", lambda v: v >= 1)
        return lg

    def test_passing_health_check_unejects(self):
        lg = self.start(True)
        # Long before base_ejection_time (30 s) the next passing check brings it back.
        lg.wait_for_stat(OD + "ejections_active", lambda v: v == 0, timeout=10)
        self.assertEqual(lg.stat(OD + "ejections_enforced_total"), 1)

    def test_uneject_by_health_check_can_be_turned_off(self):
        lg = self.start(False)
        checks = lg.stat("cluster.up.health_check.success")
        lg.wait_for_stat("cluster.up.health_check.success", lambda v: v >= checks + 6)
        self.assertEqual(lg.stat(OD + "ejections_active"), 1)


class Mirrors(LegateTestCase):
    def test_mirrored_requests_report_to_the_shadow_clusters_detector(self):
        main = self.server(Switchable, "main")
        shadow = self.server(HttpUpstream, name="shadow")
        dead = refused_port()
        rc = route_config([virtual_host("default", ["*"], [
            route({"prefix": "/"}, cluster="main",
                  route_extra={"request_mirror_policies": [{"cluster": "shadow"}]})])])
        lg = self.start_legate(http_bootstrap(
            [static_cluster("main", [main.port]),
             static_cluster("shadow", [shadow.port, dead], outlier_detection={
                 "consecutive_5xx": 2, "interval": "0.2s", "base_ejection_time": "30s",
                 "max_ejection_percent": 50})],
            route_cfg=rc))
        port = lg.port("http")
        stat = "cluster.shadow.outlier_detection.ejections_enforced_consecutive_5xx"
        for i in range(40):
            self.assertEqual(http_get(port, "/m%d" % i)[0], 200)
            if lg.stat(stat) >= 1:
                break
        lg.wait_for_stat(stat, lambda v: v == 1)
        fails = lg.stat("cluster.shadow.upstream_cx_connect_fail")
        seen = shadow.count()
        for i in range(10):
            self.assertEqual(http_get(port, "/n%d" % i)[0], 200)
        shadow.wait_requests(seen + 10)
        self.assertEqual(lg.stat("cluster.shadow.upstream_cx_connect_fail"), fails)


class Runtime(OutlierCase):
    def test_runtime_keys_override_the_configuration(self):
        ups = [self.server(Switchable, "u%d" % i) for i in range(3)]
        bad = ups[1]
        bad.status = 503
        rc = route_config([virtual_host("default", ["*"], [route({"prefix": "/"}, cluster="up")])])
        config = http_bootstrap([static_cluster("up", [u.port for u in ups], outlier_detection={
            "consecutive_5xx": 50, "interval": "0.2s", "base_ejection_time": "30s",
            "max_ejection_percent": 50})], route_cfg=rc)
        # Envoy's global keys: detect after 2 in a row, but do not enforce.
        config["layered_runtime"] = {"layers": [
            {"name": "base", "static_layer": {"outlier_detection": {
                "consecutive_5xx": 2, "enforcing_consecutive_5xx": 0}}},
            {"name": "admin", "admin_layer": {}}]}
        lg = self.start_legate(config)
        port = lg.port("http")
        for i in range(60):
            http_get(port, "/a%d" % i)
            if lg.stat(OD + "ejections_detected_consecutive_5xx") >= 2:
                break
        lg.wait_for_stat(OD + "ejections_detected_consecutive_5xx", lambda v: v >= 2)
        self.assertEqual(lg.stat(OD + "ejections_active"), 0)
        # Enforcing through the admin layer: the next detection ejects.
        self.assertEqual(lg.admin_post("/runtime_modify?"
                                       "outlier_detection.enforcing_consecutive_5xx=100")[0], 200)
        for i in range(60):
            http_get(port, "/b%d" % i)
            if lg.stat(OD + "ejections_active") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_active", lambda v: v == 1)
        self.assertEqual(ejected_ports(lg), [bad.port])


class KilledHost(OutlierCase):
    def test_killed_host_is_ejected_no_client_failure_and_returns(self):
        ups = [self.server(HttpUpstream, name="u%d" % i) for i in range(3)]
        lg, port = self.proxy([u.port for u in ups], {
            "split_external_local_origin_errors": True, "consecutive_local_origin_failure": 3,
            "interval": "0.2s", "base_ejection_time": "3s", "max_ejection_time": "3s",
            "max_ejection_percent": 50},
            retry_policy={"retry_on": "connect-failure,reset", "num_retries": 2,
                          "retry_host_predicate": PREVIOUS_HOSTS,
                          "host_selection_retry_max_attempts": 5})
        results = []
        stop = threading.Event()
        workers = [self.thread(keepalive_get_loop, port, results, stop, 20000) for _ in range(3)]
        try:
            wait_until(lambda: len(results) >= 150, 20, what="150 requests before the kill")
            dead = ups[1]
            dead_port = dead.port
            dead.close()  # in-flight requests reset, pooled connections go stale, new ones refused
            lg.wait_for_stat(OD + "ejections_enforced_consecutive_local_origin_failure",
                             lambda v: v >= 1, timeout=20)
            self.assertEqual(ejected_ports(lg), [dead_port])
            # While it is out, nothing even tries it: its connect failures stop growing.
            enforced = lg.stat(OD + "ejections_enforced_total")
            fails = host_stat(lg, dead_port, "cx_connect_fail")
            cluster_fails = lg.stat("cluster.up.upstream_cx_connect_fail")
            at = len(results)
            wait_until(lambda: len(results) >= at + 200, 30, what="200 requests while ejected")
            self.assertEqual(lg.stat(OD + "ejections_enforced_total"), enforced,
                             "still the same ejection")
            self.assertEqual(lg.stat(OD + "ejections_active"), 1)
            self.assertEqual(host_stat(lg, dead_port, "cx_connect_fail"), fails)
            self.assertEqual(lg.stat("cluster.up.upstream_cx_connect_fail"), cluster_fails)
            # Restarted on its port, it returns after the ejection time.
            back = self.server(HttpUpstream, name="back", port=dead_port)
            wait_until(lambda: back.count() >= 5, 30, what="the restarted host serving again")
            lg.wait_for_stat(OD + "ejections_active", lambda v: v == 0, timeout=10)
        finally:
            stop.set()
            for w in workers:
                w.get(30)
        failures = [r for r in results if r != 200]
        self.assertEqual(failures, [])
        self.assertGreaterEqual(lg.stat("cluster.up.upstream_rq_retry"), 1)


class MaxEjectionPercent(OutlierCase):
    def test_only_max_ejection_percent_of_hosts_go(self):
        good = self.server(Switchable, "good")
        dead = [refused_port() for _ in range(3)]
        lg, port = self.proxy([good.port] + dead, {
            "consecutive_5xx": 2, "interval": "0.2s", "base_ejection_time": "30s",
            "max_ejection_percent": 50})
        for i in range(200):
            http_get(port, "/m%d" % i)
            if lg.stat(OD + "ejections_overflow") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_overflow", lambda v: v >= 1)
        # Two of four hosts (50%) are out, the third detection overflowed.
        self.assertEqual(lg.stat(OD + "ejections_active"), 2)
        self.assertEqual(lg.stat(OD + "ejections_enforced_total"), 2)
        self.assertGreaterEqual(lg.stat(OD + "ejections_detected_consecutive_5xx"), 3)
        ejected = ejected_ports(lg)
        self.assertEqual(len(ejected), 2)
        self.assertNotIn(good.port, ejected)
        self.assertEqual(lg.admin_get("/clusters")[1].count("/failed_outlier_check"), 2)

    def test_default_percent_ejects_none_of_three_unless_always_eject_one_host(self):
        for always, expect in ((False, 0), (True, 1)):
            with self.subTest(always_eject_one_host=always):
                good = self.server(Switchable, "good")
                dead = [refused_port(), refused_port()]
                outlier = {"consecutive_5xx": 2, "interval": "0.2s", "base_ejection_time": "30s"}
                if always:
                    outlier["always_eject_one_host"] = True
                lg, port = self.proxy([good.port] + dead, outlier)
                for i in range(200):
                    http_get(port, "/d%d" % i)
                    if lg.stat(OD + "ejections_detected_consecutive_5xx") >= 3:
                        break
                lg.wait_for_stat(OD + "ejections_detected_consecutive_5xx", lambda v: v >= 3)
                # 10% of 3 hosts is less than one host: none goes, unless always_eject_one_host,
                # which lets exactly one go.
                self.assertEqual(lg.stat(OD + "ejections_active"), expect)
                self.assertEqual(lg.stat(OD + "ejections_enforced_total"), expect)
                self.assertGreaterEqual(lg.stat(OD + "ejections_overflow"), 2)
                lg.stop()


class IntervalDetectors(OutlierCase):
    """The success-rate and failure-percentage detectors, run every interval on the
    interval's counts. The bad host answers 500 to everything; consecutive 5xx ejection is
    not enforced, so only the detector under test can eject it."""

    def start(self, outlier):
        self.ups = [self.server(Switchable, "u%d" % i) for i in range(3)]
        self.bad = self.ups[2]
        self.bad.status = 500
        base = {"interval": "0.5s", "base_ejection_time": "30s", "max_ejection_percent": 50,
                "enforcing_consecutive_5xx": 0}
        base.update(outlier)
        self.lg, self.port = self.proxy([u.port for u in self.ups], base)

    def load_until(self, stat, n=2000):
        for i in range(n):
            http_get(self.port, "/l%d" % i)
            if self.lg.stat(stat) >= 1:
                return
        self.fail("%s never counted in %d requests" % (stat, n))

    def test_success_rate_ejects_the_outlier(self):
        self.start({"success_rate_minimum_hosts": 3, "success_rate_request_volume": 10,
                    "success_rate_stdev_factor": 1000})
        self.load_until(OD + "ejections_enforced_success_rate")
        self.assertEqual(self.lg.stat(OD + "ejections_detected_success_rate"), 1)
        self.assertEqual(self.lg.stat(OD + "ejections_enforced_consecutive_5xx"), 0)
        self.assertEqual(ejected_ports(self.lg), [self.bad.port])
        self.assertIn("up::outlier::success_rate_ejection_threshold::",
                      self.lg.admin_get("/clusters")[1])
        # With traffic, each interval computes the hosts' success rates for /clusters.
        good = self.ups[0].port

        def good_rate():
            for i in range(20):
                http_get(self.port, "/s%d" % i)
            return host_status(self.lg, good).get("success_rate", {}).get("value")
        wait_until(lambda: good_rate() == 100, 15, what="success_rate of a good host")
        for i in range(10):
            self.assertEqual(http_get(self.port, "/after%d" % i)[0], 200)

    def test_failure_percentage_ejects_the_failing_host(self):
        self.start({"success_rate_minimum_hosts": 10,  # success rate off
                    "failure_percentage_threshold": 50, "failure_percentage_minimum_hosts": 3,
                    "failure_percentage_request_volume": 10,
                    "enforcing_failure_percentage": 100})
        self.load_until(OD + "ejections_enforced_failure_percentage")
        self.assertEqual(self.lg.stat(OD + "ejections_detected_success_rate"), 0)
        self.assertEqual(ejected_ports(self.lg), [self.bad.port])
        for i in range(10):
            self.assertEqual(http_get(self.port, "/after%d" % i)[0], 200)


class TcpProxy(OutlierCase):
    def test_connect_failures_through_tcp_proxy_eject(self):
        echo = self.server(EchoServer)
        dead = refused_port()
        lg = self.start_legate(bootstrap(
            [tcp_listener("l", "up")],
            [static_cluster("up", [echo.port, dead], outlier_detection={
                "consecutive_5xx": 2, "interval": "0.2s", "base_ejection_time": "30s",
                "max_ejection_percent": 50})]))
        port = lg.port("l")

        def echoes(i):
            s = connect(port, timeout=5)
            try:
                s.sendall(b"ping%d" % i)
                return s.recv(64) == b"ping%d" % i
            except OSError:
                return False
            finally:
                s.close()
        for i in range(40):
            echoes(i)
            if lg.stat(OD + "ejections_enforced_consecutive_5xx") >= 1:
                break
        lg.wait_for_stat(OD + "ejections_enforced_consecutive_5xx", lambda v: v == 1)
        self.assertEqual(ejected_ports(lg), [dead])
        fails = lg.stat("cluster.up.upstream_cx_connect_fail")
        self.assertTrue(all(echoes(100 + i) for i in range(10)))
        self.assertEqual(lg.stat("cluster.up.upstream_cx_connect_fail"), fails)


class OutlierConfigErrors(LegateTestCase):
    def validate(self, outlier):
        path = os.path.join(self.tmpdir(), "bootstrap.json")
        with open(path, "w") as f:
            json.dump(http_bootstrap([static_cluster("up", [refused_port()],
                                                     outlier_detection=outlier)]), f)
        return run_legate(["--mode", "validate", "-c", path])

    def test_monitors_refused_by_name(self):
        code, _, err = self.validate({"monitors": [{"name": "m", "typed_config": {
            "@type": "type.googleapis.com/google.protobuf.Struct"}}]})
        self.assertEqual(code, 1)
        self.assertIn("static_resources.clusters[0].outlier_detection.monitors", err)

    def test_bad_values_name_the_field(self):
        code, _, err = self.validate({"max_ejection_percent": 101})
        self.assertEqual(code, 1)
        self.assertIn("outlier_detection.max_ejection_percent", err)
        code, _, err = self.validate({"base_ejection_time": "10s", "max_ejection_time": "1s"})
        self.assertEqual(code, 1)
        self.assertIn("outlier_detection.max_ejection_time", err)

    def test_full_config_validates(self):
        code, _, err = self.validate({
            "consecutive_5xx": 3, "consecutive_gateway_failure": 2, "interval": "1s",
            "base_ejection_time": "2s", "max_ejection_time": "10s",
            "max_ejection_time_jitter": "1s", "max_ejection_percent": 50,
            "enforcing_consecutive_5xx": 100, "enforcing_consecutive_gateway_failure": 100,
            "split_external_local_origin_errors": True, "consecutive_local_origin_failure": 4,
            "enforcing_consecutive_local_origin_failure": 100, "enforcing_success_rate": 50,
            "enforcing_local_origin_success_rate": 50, "success_rate_minimum_hosts": 3,
            "success_rate_request_volume": 20, "success_rate_stdev_factor": 1000,
            "failure_percentage_threshold": 60, "enforcing_failure_percentage": 100,
            "enforcing_failure_percentage_local_origin": 100,
            "failure_percentage_minimum_hosts": 3, "failure_percentage_request_volume": 20,
            "successful_active_health_check_uneject_host": False,
            "always_eject_one_host": True})
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
