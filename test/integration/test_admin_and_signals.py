"""Admin endpoints (Envoy's names and shapes), health check toggles, /quitquitquit,
SIGTERM/SIGINT with and without connections in flight (drain), --concurrency."""

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (EchoServer, LegateTestCase, bootstrap, closed_by_peer, connect,
                     recv_exact, static_cluster, tcp_listener, wait_until)

# promtool lint findings that Envoy's own /stats/prometheus output has too (Envoy's stat
# names are kept, so counters without _total, *_ms histograms and no HELP lines).
ENVOY_COMPATIBLE_LINT = (
    "no help text",
    'counter metrics should have "_total" suffix',
    'non-counter metrics should not have "_total" suffix',
    "metric names should not contain abbreviated units",
)


class AdminEndpoints(LegateTestCase):

    def setUp(self):
        super().setUp()
        self.echo = self.server(EchoServer)
        self.lg = self.start_legate(bootstrap([tcp_listener("front", "backend", stat_prefix="front")],
                                              [static_cluster("backend", [self.echo.port])]))
        # One proxied connection so the stats and host counters have moved.
        c = connect(self.lg.port("front"))
        c.sendall(b"ping")
        self.assertEqual(recv_exact(c, 4), b"ping")
        c.close()
        self.lg.wait_for_stat("cluster.backend.upstream_cx_active", lambda v: v == 0)

    def get(self, path, status=200):
        code, body = self.lg.admin_get(path)
        self.assertEqual(code, status, "%s -> %d: %s" % (path, code, body[:300]))
        return body

    def test_ready_live(self):
        self.assertEqual(self.get("/ready").strip(), "LIVE")

    def test_server_info(self):
        info = json.loads(self.get("/server_info"))
        self.assertTrue(info["version"].startswith("legate/"), info["version"])
        self.assertEqual(info["state"], "LIVE")
        self.assertEqual(info["command_line_options"]["concurrency"], 1)
        self.assertEqual(info["command_line_options"]["config_path"], self.lg.config_path)
        self.assertIn("uptime_current_epoch", info)
        self.assertIn("application/json", self.lg.last_headers.get("Content-Type", ""))

    def test_stats_text(self):
        body = self.get("/stats")
        lines = body.splitlines()
        self.assertIn("cluster.backend.upstream_cx_total: 1", lines)
        self.assertIn("tcp.front.downstream_cx_total: 1", lines)
        self.assertIn(self.lg.listener_stat_prefix("front") + "downstream_cx_total: 1", lines)
        for line in lines:
            if ": " in line and not line.startswith(" "):
                name, _, value = line.partition(": ")
                self.assertRegex(name, r"^[A-Za-z0-9_.\-]+$")

    def test_stats_filter(self):
        body = self.get("/stats?filter=%5Ecluster%5C.backend%5C.")  # ^cluster\.backend\.
        lines = [l for l in body.splitlines() if l.strip()]
        self.assertTrue(lines)
        for l in lines:
            self.assertTrue(l.startswith("cluster.backend."), l)
        self.assertIn("cluster.backend.upstream_cx_total: 1", lines)
        filtered = self.lg.stats(filter_regex="upstream_cx_total")
        self.assertEqual(filtered, {"cluster.backend.upstream_cx_total": 1})
        # A bad regex is the client's error, not a crash.
        self.get("/stats?filter=%28", status=400)
        self.assertTrue(self.lg.alive())

    def test_stats_json(self):
        stats = self.lg.stats()
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], 1)
        self.assertEqual(stats["server.concurrency"], 1)
        self.assertEqual(stats["listener_manager.total_listeners_active"], 1)

    def test_stats_prometheus(self):
        body = self.get("/stats/prometheus")
        self.assertIn("# TYPE envoy_cluster_upstream_cx_total counter", body)
        self.assertRegex(body, r'envoy_cluster_upstream_cx_total\{envoy_cluster_name="backend"\} 1\n')
        self.assertRegex(body, r'envoy_tcp_downstream_cx_total\{envoy_tcp_prefix="front"\} 1\n')
        # Every sample has a TYPE, and every sample line parses as name{labels} value.
        typed = set(re.findall(r"^# TYPE (\S+) (?:counter|gauge|histogram|summary|untyped)$", body, re.M))
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
            self.assertIsNotNone(m, "bad sample line: %r" % line)
            float(m.group(3))
            base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
            self.assertTrue(m.group(1) in typed or base in typed, "no TYPE for %s" % m.group(1))
        # Same through ?format=prometheus.
        self.assertIn("# TYPE envoy_cluster_upstream_cx_total counter", self.get("/stats?format=prometheus"))

    def test_stats_prometheus_promtool(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not on PATH (tools/setup.sh installs the 'prometheus' package)")
        body = self.get("/stats/prometheus")
        p = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        # Exit 1 is a parse error; exit 3 means lint findings only.
        self.assertIn(p.returncode, (0, 3), out)
        self.assertNotIn("error while linting", out)
        problems = [l for l in out.splitlines()
                    if l.strip() and not any(ok in l for ok in ENVOY_COMPATIBLE_LINT)]
        self.assertEqual(problems, [], "promtool findings beyond Envoy's own naming:\n" + out)

    def test_curl(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl not on PATH")
        base = "http://%s:%d" % self.lg.admin
        p = subprocess.run([curl, "-sS", "--max-time", "5", "-w", "\n%{http_code}", base + "/ready"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().split(), ["LIVE", "200"])
        p = subprocess.run([curl, "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                            "-X", "GET", base + "/quitquitquit"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=15)
        self.assertEqual(p.stdout.decode(), "405")
        self.assertTrue(self.lg.alive())

    def test_config_dump(self):
        dump = json.loads(self.get("/config_dump"))
        types = [c["@type"] for c in dump["configs"]]
        self.assertEqual(types, ["type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                                 "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                                 "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"])
        clusters = dump["configs"][1]["static_clusters"]
        self.assertEqual([c["cluster"]["name"] for c in clusters], ["backend"])
        listeners = dump["configs"][2]["static_listeners"]
        self.assertEqual([l["listener"]["name"] for l in listeners], ["front"])
        only = json.loads(self.get("/config_dump?resource=static_clusters"))
        self.assertEqual(len(only["configs"]), 1)
        self.assertEqual(only["configs"][0]["cluster"]["name"], "backend")
        self.get("/config_dump?resource=no_such_thing", status=404)

    def test_listeners(self):
        host, port = self.lg.address("front")
        self.assertEqual(self.get("/listeners").strip(), "front::%s:%d" % (host, port))
        doc = json.loads(self.get("/listeners?format=json"))
        (entry,) = doc["listener_statuses"]
        self.assertEqual(entry["name"], "front")
        self.assertEqual(entry["local_address"]["socket_address"],
                         {"address": "127.0.0.1", "port_value": port})

    def test_clusters(self):
        body = self.get("/clusters")
        prefix = "backend::127.0.0.1:%d::" % self.echo.port
        self.assertIn(prefix + "cx_total::1", body)
        self.assertIn(prefix + "cx_active::0", body)
        self.assertIn(prefix + "health_flags::healthy", body)
        doc = json.loads(self.get("/clusters?format=json"))
        (cluster,) = doc["cluster_statuses"]
        self.assertEqual(cluster["name"], "backend")
        (host,) = cluster["host_statuses"]
        self.assertEqual(host["address"]["socket_address"]["port_value"], self.echo.port)
        stats = {s["name"]: s["value"] for s in host["stats"]}
        self.assertEqual(stats["cx_total"], "1")

    def test_help_and_unknown_path(self):
        body = self.get("/help")
        for path in ("/ready", "/stats", "/stats/prometheus", "/config_dump", "/listeners",
                     "/clusters", "/server_info", "/quitquitquit", "/healthcheck/fail",
                     "/healthcheck/ok"):
            self.assertIn(path, body)
        self.get("/no/such/endpoint", status=404)

    def test_mutations_need_post(self):
        for path in ("/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/reset_counters"):
            code, _ = self.lg.admin_get(path)
            self.assertEqual(code, 405, path)
        self.assertTrue(self.lg.alive())
        self.assertEqual(self.get("/ready").strip(), "LIVE")
        self.assertEqual(self.lg.stat("cluster.backend.upstream_cx_total"), 1)

    def test_healthcheck_fail_and_ok(self):
        code, body = self.lg.admin_post("/healthcheck/fail")
        self.assertEqual(code, 200)
        code, body = self.lg.admin_get("/ready")
        self.assertEqual(code, 503)
        self.assertEqual(body.strip(), "DRAINING")
        self.lg.wait_for_stat("server.live", lambda v: v == 0, timeout=5)
        # Traffic still flows while failing health checks.
        c = self.client(self.lg.port("front"))
        c.sendall(b"x")
        self.assertEqual(recv_exact(c, 1), b"x")
        code, _ = self.lg.admin_post("/healthcheck/ok")
        self.assertEqual(code, 200)
        self.assertEqual(self.get("/ready").strip(), "LIVE")

    def test_reset_counters(self):
        code, _ = self.lg.admin_post("/reset_counters")
        self.assertEqual(code, 200)
        self.assertEqual(self.lg.stat("cluster.backend.upstream_cx_total"), 0)

    def test_post_quitquitquit_exits_0(self):
        code, body = self.lg.admin_post("/quitquitquit")
        self.assertEqual(code, 200)
        self.assertEqual(self.lg.wait_exit(10), 0, self.lg.stderr_tail())


class Signals(LegateTestCase):

    def start(self, *args, concurrency=1):
        self.echo = self.server(EchoServer)
        return self.start_legate(bootstrap([tcp_listener("l", "up")],
                                           [static_cluster("up", [self.echo.port])]),
                                 args=list(args), concurrency=concurrency)

    def test_sigterm_idle_exits_0_promptly(self):
        lg = self.start()
        start = time.monotonic()
        lg.send_signal(signal.SIGTERM)
        self.assertEqual(lg.wait_exit(5), 0, lg.stderr_tail())
        self.assertLess(time.monotonic() - start, 5)
        self.assertFalse(is_port_open(lg.port("l")))

    def test_sigint_idle_exits_0(self):
        lg = self.start()
        lg.send_signal(signal.SIGINT)
        self.assertEqual(lg.wait_exit(5), 0, lg.stderr_tail())

    def test_sigterm_drains_in_flight_connection(self):
        for concurrency in (1, 2):
            with self.subTest(concurrency=concurrency):
                self.check_drain_in_flight(concurrency)

    def check_drain_in_flight(self, concurrency):
        lg = self.start("--drain-time-s", "5", concurrency=concurrency)
        port = lg.port("l")
        c = self.client(port)
        c.sendall(b"before")
        self.assertEqual(recv_exact(c, 6), b"before")
        lg.send_signal(signal.SIGTERM)
        # Draining: /ready says so and the listener is closed.
        wait_until(lambda: lg.admin_get("/ready")[0] == 503, 5, what="/ready 503 while draining")
        wait_until(lambda: not is_port_open(port), 5, what="listener closed")
        with self.assertRaises(ConnectionRefusedError):
            connect(port, timeout=2).close()
        # The connection in flight keeps working in both directions.
        for i in range(3):
            c.sendall(b"during%d" % i)
            self.assertEqual(recv_exact(c, 7), b"during%d" % i)
        self.assertTrue(lg.alive())
        lg.wait_for_stat("server.total_connections", lambda v: v == 1, timeout=5)
        closed_at = time.monotonic()
        c.close()
        self.assertEqual(lg.wait_exit(10), 0, lg.stderr_tail())
        self.assertLess(time.monotonic() - closed_at, 3.0,
                        "exit should follow the last connection, not the drain time")

    def test_sigterm_drain_time_bounds_a_stuck_connection(self):
        lg = self.start("--drain-time-s", "1")
        c = self.client(lg.port("l"))
        c.sendall(b"hold")
        self.assertEqual(recv_exact(c, 4), b"hold")
        start = time.monotonic()
        lg.send_signal(signal.SIGTERM)
        code = lg.wait_exit(10)
        elapsed = time.monotonic() - start
        self.assertEqual(code, 0, lg.stderr_tail())
        self.assertGreaterEqual(elapsed, 0.8, "exited before the drain time with a connection open")
        self.assertLess(elapsed, 10)
        # The held connection was closed by the exit.
        self.assertTrue(closed_by_peer(c, 5))

    def test_second_sigterm_during_drain_exits_now(self):
        lg = self.start("--drain-time-s", "60")
        c = self.client(lg.port("l"))
        c.sendall(b"x")
        self.assertEqual(recv_exact(c, 1), b"x")
        lg.send_signal(signal.SIGTERM)
        wait_until(lambda: lg.admin_get("/ready")[0] == 503, 5, what="draining")
        lg.send_signal(signal.SIGTERM)
        self.assertEqual(lg.wait_exit(10), 0, lg.stderr_tail())

    def test_concurrency_2_serves_many_connections(self):
        lg = self.start(concurrency=2)
        info = json.loads(lg.admin_get("/server_info")[1])
        self.assertEqual(info["command_line_options"]["concurrency"], 2)
        self.assertEqual(lg.stat("server.concurrency"), 2)
        port = lg.port("l")
        n = 200
        errors = []

        def worker(start):
            for i in range(start, n, 10):
                try:
                    s = connect(port, timeout=10)
                    msg = b"conn-%04d" % i
                    s.sendall(msg)
                    if recv_exact(s, len(msg)) != msg:
                        errors.append("bad echo on %d" % i)
                    s.close()
                except (OSError, AssertionError) as e:
                    errors.append("%d: %r" % (i, e))

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads), "client threads hung")
        self.assertEqual(errors, [])
        lp = lg.listener_stat_prefix("l")
        lg.wait_for_stat(lp + "downstream_cx_total", lambda v: v == n)
        lg.wait_for_stat(lp + "downstream_cx_active", lambda v: v == 0)
        self.assertEqual(self.echo.accepted, n)
        lg.send_signal(signal.SIGTERM)
        self.assertEqual(lg.wait_exit(10), 0, lg.stderr_tail())


def is_port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    unittest.main()
