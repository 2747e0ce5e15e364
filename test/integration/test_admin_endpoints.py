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
                     "/drain_listeners", "/logging?level=debug", "/runtime_modify?a=1"):
            code, _ = self.lg.admin_get(path)
            self.assertEqual(code, 405, path)
            self.assertEqual(self.lg.last_headers.get("Allow"), "POST", path)
        self.assertEqual(self.get("/ready").strip(), "LIVE")
        self.assertIn("  admin: info\n", self.get("/logging"))
        # Nothing a refused GET asked for happened.
        self.assertNotIn("a", json.loads(self.get("/runtime"))["entries"])

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

    def test_server_info_command_line_options(self):
        self.start(args=["--drain-time-s", "7", "--parent-shutdown-time-s", "9",
                         "--log-level", "warning", "--component-log-level", "upstream:debug",
                         "--service-cluster", "svc", "--service-node", "node-1",
                         "--service-zone", "zone-a"])
        info = json.loads(self.get("/server_info"))
        opts = info["command_line_options"]
        self.assertEqual(opts["drain_time"], "7s")
        self.assertEqual(opts["parent_shutdown_time"], "9s")
        self.assertEqual(opts["log_level"], "warning")
        self.assertEqual(opts["component_log_level"], "upstream:debug")
        self.assertEqual(opts["service_cluster"], "svc")
        self.assertEqual(opts["service_node"], "node-1")
        self.assertEqual(opts["service_zone"], "zone-a")
        self.assertEqual(opts["mode"], "Serve")
        self.assertEqual(opts["concurrency"], 1)
        self.assertTrue(opts["disable_hot_restart"])
        self.assertEqual(info["state"], "LIVE")
        self.assertRegex(info["uptime_current_epoch"], r"^\d+s$")
        # Draining shows in both /ready and /server_info.
        self.post("/healthcheck/fail")
        self.assertEqual(json.loads(self.get("/server_info"))["state"], "DRAINING")
        code, body = self.lg.admin_get("/ready")
        self.assertEqual((code, body.strip()), (503, "DRAINING"))
        self.post("/healthcheck/ok")
        self.assertEqual(self.get("/ready").strip(), "LIVE")

    def test_ready_initializing_until_dns_clusters_warm(self):
        # A DNS server that swallows queries: the DNS cluster cannot warm.
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(dns.close)
        dns.bind(("127.0.0.1", 0))
        up = self.server(HttpUpstream)
        cluster = {
            "name": "dns", "type": "STRICT_DNS", "connect_timeout": "1s",
            "typed_dns_resolver_config": {
                "name": "envoy.network.dns_resolver.cares",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3."
                             "CaresDnsResolverConfig",
                    "resolvers": [{"socket_address": {"address": "127.0.0.1",
                                                      "port_value": dns.getsockname()[1]}}]}},
            "load_assignment": {"cluster_name": "dns", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": "backend.legate.test", "port_value": up.port}}}}]}]}}
        self.lg = self.start_legate(http_bootstrap([cluster]), wait_ready=False)
        wait_until(lambda: os.path.exists(self.lg.admin_address_path), timeout=10,
                   what="the admin address file")

        def admin_file():
            with open(self.lg.admin_address_path) as f:
                host, _, port = f.read().strip().rpartition(":")
            return port.isdigit() and (host.strip("[]"), int(port))
        self.lg.admin = wait_until(admin_file, timeout=10, what="the admin address")
        # A query reached the silent server: legate is waiting for the answer.
        dns.settimeout(10)
        dns.recvfrom(512)
        code, body = self.lg.admin_get("/ready")
        self.assertEqual((code, body.strip()), (503, "INITIALIZING"))
        self.assertEqual(json.loads(self.get("/server_info"))["state"], "INITIALIZING")
        # The server goes away: the lookup fails (ICMP refused), the cluster is warm
        # (without hosts), the workers start.
        dns.close()
        wait_until(lambda: self.lg.admin_get("/ready")[0] == 200, timeout=30,
                   what="/ready to say LIVE")
        self.assertEqual(self.get("/ready").strip(), "LIVE")

    def test_config_dump_resources(self):
        self.start()
        listeners = json.loads(self.get("/config_dump?resource=static_listeners"))
        (entry,) = listeners["configs"]
        self.assertEqual(entry["@type"], "type.googleapis.com/envoy.admin.v3.ListenersConfigDump.StaticListener")
        self.assertEqual(entry["listener"]["name"], "http")
        clusters = json.loads(self.get("/config_dump?resource=static_clusters"))
        self.assertEqual([c["cluster"]["name"] for c in clusters["configs"]], ["backend"])
        self.get("/config_dump?resource=nope", status=404)

    def test_listeners_text_and_json(self):
        self.start()
        port = self.lg.port("http")
        self.assertEqual(self.get("/listeners"), "http::127.0.0.1:%d\n" % port)
        doc = json.loads(self.get("/listeners?format=json"))
        self.assertEqual(doc["listener_statuses"], [{
            "name": "http",
            "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}])

    def test_reset_counters_zeroes_counters_not_gauges(self):
        self.start()
        self.assertEqual(http_get(self.lg.port("http"), "/x")[0], 200)
        self.lg.wait_for_stat("cluster.backend.upstream_rq_total", lambda v: v == 1)
        self.post("/reset_counters")
        stats = self.lg.stats()
        self.assertEqual(stats["cluster.backend.upstream_rq_total"], 0)
        self.assertEqual(stats["http.ingress.downstream_rq_total"], 0)
        self.assertEqual(stats["server.concurrency"], 1)  # a gauge: untouched
        # Counting goes on from zero.
        self.assertEqual(http_get(self.lg.port("http"), "/y")[0], 200)
        self.lg.wait_for_stat("cluster.backend.upstream_rq_total", lambda v: v == 1)

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
