"""Admin endpoints beyond the basics (test_admin_and_signals.py has /ready, /stats,
/listeners, /clusters text, /config_dump, /help, the health check toggles and
/quitquitquit): the HTML index, /logging, /memory, /drain_listeners, /server_info's
fields, /clusters JSON (health flags, weights, per-host stats), /config_dump ?mask= and
?include_eds, the admin access log, and POST-only mutations."""

import json
import os
import socket

from harness import (EchoServer, HttpUpstream, LegateTestCase, bootstrap, connect, http_bootstrap,
                     http_get, is_listening, recv_exact, route, route_config, static_cluster,
                     tcp_listener, virtual_host, wait_until)


class AdminEndpointsMore(LegateTestCase):

    def start(self, admin_extra=None, **kw):
        self.up = self.server(HttpUpstream)
        config = http_bootstrap([static_cluster("backend", [self.up.port])])
        # A second endpoint with a weight and an EDS health status.
        config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"].append(
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}},
             "load_balancing_weight": 7, "health_status": "UNHEALTHY"})
        if admin_extra:
            config["admin"].update(admin_extra)
        self.lg = self.start_legate(config, **kw)
        return config

    def get(self, path, status=200):
        code, body = self.lg.admin_get(path)
        self.assertEqual(code, status, "%s -> %d: %s" % (path, code, body[:300]))
        return body

    def post(self, path, status=200):
        code, body = self.lg.admin_post(path)
        self.assertEqual(code, status, "POST %s -> %d: %s" % (path, code, body[:300]))
        return body

    def test_index_page_lists_every_endpoint(self):
        self.start()
        body = self.get("/")
        self.assertIn("text/html", self.lg.last_headers.get("Content-Type", ""))
        self.assertTrue(body.startswith("<!DOCTYPE html>"))
        for path in ("/stats", "/stats/prometheus", "/clusters", "/listeners", "/config_dump",
                     "/server_info", "/ready", "/memory", "/logging", "/help"):
            self.assertIn('<a href="%s">' % path, body)
        for path in ("/quitquitquit", "/reset_counters", "/drain_listeners", "/healthcheck/fail"):
            self.assertIn('<form action="%s" method="post">' % path, body)

    def test_mutations_are_post_only(self):
        self.start()
        for path in ("/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/reset_counters",
                     "/drain_listeners", "/logging?level=debug"):
            code, _ = self.lg.admin_get(path)
            self.assertEqual(code, 405, path)
            self.assertEqual(self.lg.last_headers.get("Allow"), "POST", path)
        self.assertEqual(self.get("/ready").strip(), "LIVE")
        self.assertIn("  admin: info\n", self.get("/logging"))

    def test_logging_levels(self):
        self.start()
        body = self.get("/logging")
        self.assertTrue(body.startswith("active loggers:\n"))
        self.assertIn("  upstream: info\n", body)
        body = self.post("/logging?upstream=debug")
        self.assertIn("  upstream: debug\n", body)
        self.assertIn("  admin: info\n", body)
        body = self.post("/logging?level=warning")
        self.assertNotIn(": info\n", body)
        self.assertIn("  upstream: warning\n", body)
        body = self.post("/logging?paths=admin:trace,main:error")
        self.assertIn("  admin: trace\n", body)
        self.assertIn("  main: error\n", body)
        self.post("/logging?nosuch=debug", status=400)
        self.post("/logging?level=loud", status=400)
        # A refused request changes nothing.
        self.assertIn("  admin: trace\n", self.get("/logging"))
        # The level takes effect: debug lines appear for the component.
        self.post("/logging?level=debug")
        http_get(self.lg.port("http"), "/x")
        wait_until(lambda: "][debug][" in self.lg.read_stderr(), timeout=10,
                   what="a debug line in the log")

    def test_memory(self):
        self.start()
        doc = json.loads(self.get("/memory"))
        for key in ("allocated", "heap_size", "pageheap_unmapped", "pageheap_free",
                    "total_thread_cache", "total_physical_bytes"):
            self.assertIn(key, doc)
        self.assertGreater(int(doc["allocated"]), 0)
        self.assertGreater(int(doc["total_physical_bytes"]), int(doc["allocated"]) // 4)

    def test_server_info_fields(self):
        self.start()
        info = json.loads(self.get("/server_info"))
        for key in ("version", "state", "uptime_current_epoch", "uptime_all_epochs",
                    "hot_restart_version", "command_line_options", "node"):
            self.assertIn(key, info)
        self.assertEqual(info["state"], "LIVE")
        self.assertEqual(info["command_line_options"]["config_path"], self.lg.config_path)
        self.assertIn("drain_time", info["command_line_options"])

    def test_clusters_json_health_weights_host_stats(self):
        self.start()
        http_get(self.lg.port("http"), "/x")
        doc = json.loads(self.get("/clusters?format=json"))
        (cluster,) = doc["cluster_statuses"]
        hosts = {h["address"]["socket_address"]["port_value"]: h for h in cluster["host_statuses"]}
        good, bad = hosts[self.up.port], hosts[1]
        self.assertEqual(good["health_status"], {"eds_health_status": "HEALTHY"})
        self.assertEqual(bad["health_status"]["eds_health_status"], "UNHEALTHY")
        self.assertEqual(bad["weight"], 7)
        stats = {s["name"]: s["value"] for s in good["stats"]}
        self.assertEqual(stats["rq_active"], "0")
        self.assertEqual(stats["cx_total"], "1")
        text = self.get("/clusters")
        self.assertIn("backend::127.0.0.1:1::health_flags::/failed_eds_health\n", text)
        self.assertIn("backend::127.0.0.1:1::weight::7\n", text)
        self.assertIn("backend::127.0.0.1:%d::cx_total::1\n" % self.up.port, text)

    def test_clusters_per_host_request_stats_and_breakers_from_the_cluster(self):
        up = self.server(HttpUpstream)
        dead = self.server(HttpUpstream)
        dead_port = dead.port
        dead.close()  # connections to it are refused
        cluster = static_cluster("backend", [up.port], circuit_breakers={"thresholds": [
            {"max_connections": 11, "max_retries": 5},
            {"priority": "HIGH", "max_requests": 13}]})
        routes = route_config([virtual_host("v", ["*"], [
            route({"prefix": "/dead"}, cluster="dead"), route({"prefix": "/"}, cluster="backend")])])
        self.lg = self.start_legate(http_bootstrap([cluster, static_cluster("dead", [dead_port])],
                                                   route_cfg=routes))
        port = self.lg.port("http")
        self.assertEqual(http_get(port, "/a")[0], 200)
        self.assertEqual(http_get(port, "/b/status/503")[0], 503)
        self.assertEqual(http_get(port, "/c/status/404")[0], 404)
        # The route timeout cuts an answer the upstream holds back.
        status, _, _, _ = http_get(port, "/d/delay/5000",
                                   headers={"x-envoy-upstream-rq-timeout-ms": "200"})
        self.assertEqual(status, 504)
        self.assertEqual(http_get(port, "/dead")[0], 503)
        self.lg.wait_for_stat("cluster.backend.upstream_rq_active", lambda v: v == 0)
        prefix = "backend::127.0.0.1:%d::" % up.port
        text = self.get("/clusters")
        host_lines = [l[len(prefix):] for l in text.splitlines() if l.startswith(prefix)]
        # Envoy's order: counters by name, then gauges.
        self.assertEqual(host_lines[:8], [
            "cx_connect_fail::0", "cx_total::%d" % self.lg.stat("cluster.backend.upstream_cx_total"),
            "rq_error::2", "rq_success::2", "rq_timeout::1", "rq_total::4",
            "cx_active::%d" % self.lg.stat("cluster.backend.upstream_cx_active"), "rq_active::0"])
        self.assertIn("backend::default_priority::max_connections::11\n", text)
        self.assertIn("backend::default_priority::max_retries::5\n", text)
        self.assertIn("backend::high_priority::max_requests::13\n", text)
        self.assertIn("backend::high_priority::max_connections::1024\n", text)
        dead_prefix = "dead::127.0.0.1:%d::" % dead_port
        self.assertIn(dead_prefix + "cx_connect_fail::1\n", text)
        self.assertIn(dead_prefix + "rq_error::1\n", text)
        self.assertIn(dead_prefix + "rq_total::1\n", text)
        doc = json.loads(self.get("/clusters?format=json"))
        backend = [c for c in doc["cluster_statuses"] if c["name"] == "backend"][0]
        (host,) = backend["host_statuses"]
        stats = {s["name"]: (s["value"], s.get("type")) for s in host["stats"]}
        self.assertEqual(stats["rq_total"], ("4", None))
        self.assertEqual(stats["rq_timeout"], ("1", None))
        self.assertEqual(stats["rq_active"], ("0", "GAUGE"))
        self.assertEqual(backend["circuit_breakers"]["thresholds"][0]["max_connections"], 11)
        self.assertEqual(backend["circuit_breakers"]["thresholds"][1],
                         {"priority": "HIGH", "max_connections": 1024, "max_pending_requests": 1024,
                          "max_requests": 13, "max_retries": 3})

    def test_config_dump_mask_and_include_eds(self):
        self.start()
        dump = json.loads(self.get("/config_dump?resource=static_clusters&mask=cluster.name"))
        (entry,) = dump["configs"]
        self.assertEqual(entry["cluster"], {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "backend"})
        self.assertNotIn("last_updated", entry)
        dump = json.loads(self.get("/config_dump?include_eds"))
        types = [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]]
        self.assertEqual(types, ["BootstrapConfigDump", "ClustersConfigDump", "EndpointsConfigDump",
                                 "ListenersConfigDump"])
        eds = dump["configs"][2]["static_endpoint_configs"]
        self.assertEqual(eds[0]["endpoint_config"]["cluster_name"], "backend")
        self.assertNotIn("EndpointsConfigDump", self.get("/config_dump"))

    def test_drain_listeners_stops_accepting_and_ready_says_draining(self):
        self.start()
        port = self.lg.port("http")
        keep = connect(port)
        self.addCleanup(keep.close)
        self.post("/drain_listeners")
        wait_until(lambda: not is_listening(port), timeout=10, what="the listener to close")
        code, body = self.lg.admin_get("/ready")
        self.assertEqual((code, body.strip()), (503, "DRAINING"))
        # The process runs on, and an open connection still works.
        keep.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(keep.recv(100).startswith(b"HTTP/1.1 200"))
        self.assertTrue(self.lg.alive())

    def test_drain_listeners_graceful_inboundonly(self):
        echo = self.server(EchoServer)
        config = bootstrap([tcp_listener("in", "b", stat_prefix="in"),
                            dict(tcp_listener("out", "b", stat_prefix="out"),
                                 traffic_direction="OUTBOUND")],
                           [static_cluster("b", [echo.port])])
        self.lg = self.start_legate(config, args=["--drain-time-s", "1"])
        self.post("/drain_listeners?graceful&inboundonly")
        wait_until(lambda: not is_listening(self.lg.port("in")), timeout=15,
                   what="the inbound listener to close after the drain time")
        self.assertTrue(is_listening(self.lg.port("out")), "outbound listener kept")

    def test_admin_access_log(self):
        d = self.tmpdir()
        path = os.path.join(d, "admin.log")
        legacy = os.path.join(d, "admin_legacy.log")
        self.start(admin_extra={
            "access_log_path": legacy,
            "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": path,
                "log_format": {"text_format": "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %BYTES_SENT%\n"}}}]})
        self.get("/stats?filter=server")
        self.lg.admin_get("/quitquitquit")  # 405

        def lines(p):
            try:
                with open(p) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []
        wait_until(lambda: any(l.startswith("GET /quitquitquit 405") for l in lines(path)),
                   timeout=10, what="admin requests in the access log")
        self.assertTrue(any(l.startswith("GET /stats?filter=server 200 ") for l in lines(path)),
                        lines(path))
        # access_log_path: Envoy's default format.
        wait_until(lambda: any('"GET /stats?filter=server HTTP/1.1" 200' in l for l in lines(legacy)),
                   timeout=10, what="the default-format admin log")


if __name__ == "__main__":
    import unittest
    unittest.main()
