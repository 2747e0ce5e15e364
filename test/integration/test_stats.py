"""Stats completeness: Envoy's tag extraction in /stats/prometheus, stats_config
(stats_tags, use_all_default_tags, stats_matcher, histogram_bucket_settings), /stats
filters and JSON, promtool's checker, a real Prometheus server scraping legate, and
the memory stats cost per cluster."""

import json
import os
import shutil
import socket
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from harness import (HttpUpstream, LegateTestCase, free_port, http_bootstrap, http_get,
                     static_cluster, wait_until)

# promtool lint findings that Envoy's own /stats/prometheus output has too (see
# test_admin_and_signals.py).
ENVOY_COMPATIBLE_LINT = (
    "no help text",
    'counter metrics should have "_total" suffix',
    'non-counter metrics should not have "_total" suffix',
    "metric names should not contain abbreviated units",
)


class StatsTestCase(LegateTestCase):

    def start_http(self, stats_config=None, requests=3, wait=True):
        self.up = self.server(HttpUpstream)
        config = http_bootstrap([static_cluster("backend", [self.up.port])])
        if stats_config is not None:
            config["stats_config"] = stats_config
        self.lg = self.start_legate(config)
        for _ in range(requests):
            status, _, _, _ = http_get(self.lg.port("http"), "/x")
            self.assertEqual(status, 200)
        if wait:
            self.lg.wait_for_stat("cluster.backend.upstream_rq_completed", lambda v: v >= requests)

    def get(self, path, status=200):
        code, body = self.lg.admin_get(path)
        self.assertEqual(code, status, "%s -> %d: %s" % (path, code, body[:300]))
        return body


class PrometheusExposition(StatsTestCase):

    def test_tagged_series_types_and_histograms(self):
        self.start_http()
        body = self.get("/stats/prometheus")
        self.assertIn("# TYPE envoy_cluster_upstream_rq counter\n", body)
        self.assertIn('envoy_cluster_upstream_rq{envoy_cluster_name="backend",'
                      'envoy_response_code="200"} 3\n', body)
        self.assertIn('envoy_cluster_upstream_rq_xx{envoy_cluster_name="backend",'
                      'envoy_response_code_class="2"} 3\n', body)
        self.assertIn('envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="ingress",'
                      'envoy_response_code_class="2"} 3\n', body)
        self.assertIn("# TYPE envoy_cluster_upstream_cx_active gauge\n", body)
        # Histograms: cumulative buckets ending in +Inf, then _sum and _count.
        self.assertIn("# TYPE envoy_cluster_upstream_rq_time histogram\n", body)
        buckets = [l for l in body.splitlines()
                   if l.startswith('envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend"')]
        self.assertGreater(len(buckets), 2)
        values = [int(l.rsplit(" ", 1)[1]) for l in buckets]
        self.assertEqual(values, sorted(values), "buckets are cumulative")
        self.assertTrue(buckets[-1].startswith(
            'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="backend",le="+Inf"} '))
        self.assertEqual(values[-1], 3)
        self.assertIn('envoy_cluster_upstream_rq_time_count{envoy_cluster_name="backend"} 3\n', body)
        self.assertIn('envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="backend"} ', body)

    def test_promtool_accepts_output(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not on PATH (tools/setup.sh installs the 'prometheus' package)")
        self.start_http(stats_config={
            "histogram_bucket_settings": [{"match": {"prefix": "cluster."}, "buckets": [1, 10, 100]}]})
        body = self.get("/stats/prometheus")
        p = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = p.stdout.decode(errors="replace")
        problems = [l for l in out.splitlines()
                    if l.strip() and not any(ok in l for ok in ENVOY_COMPATIBLE_LINT)]
        # promtool exits 1 on lint findings too; only a parse error or a finding beyond
        # Envoy's own naming is a failure.
        self.assertNotIn("error while linting", out)
        self.assertEqual(problems, [], "promtool findings:\n" + out)

    def test_histogram_bucket_settings(self):
        self.start_http(stats_config={"histogram_bucket_settings": [
            {"match": {"exact": "cluster.backend.upstream_rq_time"}, "buckets": [7, 70000, 0.25]}]})
        body = self.get("/stats/prometheus")
        les = [l.split('le="')[1].split('"')[0] for l in body.splitlines()
               if l.startswith("envoy_cluster_upstream_rq_time_bucket{")]
        self.assertEqual(les, ["0.25", "7", "70000", "+Inf"])
        # Other histograms keep Envoy's default buckets.
        self.assertIn('envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix='
                      '"ingress",le="3600000"}', body)

    def test_stats_matcher_exclusion_and_inclusion(self):
        self.start_http(stats_config={"stats_matcher": {"exclusion_list": {"patterns": [
            {"prefix": "cluster.backend.upstream_cx_"}, {"safe_regex": {"regex": "http\\..*_time"}}]}}})
        text = self.get("/stats")
        self.assertNotIn("cluster.backend.upstream_cx_total", text)
        self.assertNotIn("http.ingress.downstream_rq_time:", text)
        self.assertIn("cluster.backend.upstream_rq_completed: 3\n", text)
        self.assertNotIn("upstream_cx_total", self.get("/stats/prometheus"))

    def test_stats_matcher_inclusion_and_reject_all(self):
        self.start_http(stats_config={"stats_matcher": {"inclusion_list": {"patterns": [
            {"suffix": "upstream_rq_completed"}]}}})
        names = [l.split(":")[0] for l in self.get("/stats").splitlines()]
        self.assertEqual(names, ["cluster.backend.upstream_rq_completed"])
        self.lg.cleanup()
        self.start_http(stats_config={"stats_matcher": {"reject_all": True}}, requests=1, wait=False)
        self.assertEqual(self.get("/stats"), "")

    def test_custom_tags_and_use_all_default_tags_false(self):
        self.start_http(stats_config={
            "use_all_default_tags": False,
            "stats_tags": [{"tag_name": "envoy.cluster_name"},
                           {"tag_name": "dc", "fixed_value": "eu-1"},
                           {"tag_name": "kind", "regex": "^cluster\\.(upstream_(rq|cx))_"}]})
        body = self.get("/stats/prometheus")
        # No response_code extraction (defaults off), the named default and the custom ones on.
        self.assertIn('envoy_cluster__2xx{envoy_cluster_name="backend",kind="rq",dc="eu-1"} 3\n',
                      body)
        self.assertIn('envoy_cluster__200{envoy_cluster_name="backend",kind="rq",dc="eu-1"} 3\n',
                      body)
        self.assertIn('envoy_server_live{dc="eu-1"} 1\n', body)

    def test_bad_stats_config_names_the_field(self):
        up = self.server(HttpUpstream)
        config = http_bootstrap([static_cluster("backend", [up.port])])
        config["stats_config"] = {"stats_tags": [{"tag_name": "x", "regex": "(unclosed"}]}
        p = subprocess.run([self.lg_bin(), "--mode", "validate", "-c", self.write_json(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"stats_config.stats_tags[0].regex", p.stderr)

    def lg_bin(self):
        from harness import LEGATE_BIN
        return LEGATE_BIN

    def write_json(self, config):
        path = os.path.join(self.tmpdir(), "config.json")
        with open(path, "w") as f:
            json.dump(config, f)
        return path


class StatsEndpoint(StatsTestCase):

    def test_filter_usedonly_json(self):
        self.start_http()
        self.lg.wait_for_stat("cluster.backend.upstream_rq_active", lambda v: v == 0)
        doc = json.loads(self.get("/stats?filter=%5Ecluster%5C.backend%5C.upstream_rq&usedonly&format=json"))
        names = {s["name"]: s["value"] for s in doc["stats"] if "name" in s}
        self.assertEqual(names.get("cluster.backend.upstream_rq_total"), 3)
        self.assertEqual(names.get("cluster.backend.upstream_rq_200"), 3)
        self.assertNotIn("cluster.backend.upstream_rq_timeout", names)  # never written: not used
        # upstream_rq_active went up and back to 0: used, as in Envoy.
        self.assertEqual(names.get("cluster.backend.upstream_rq_active"), 0)
        self.assertTrue(all(n.startswith("cluster.backend.upstream_rq") for n in names), names)
        hist = [s for s in doc["stats"] if "histograms" in s]
        self.assertEqual(len(hist), 1)
        computed = hist[0]["histograms"]["computed_quantiles"]
        self.assertEqual([h["name"] for h in computed], ["cluster.backend.upstream_rq_time"])
        self.get("/stats?filter=(", status=400)

    def test_usedonly_keeps_a_gauge_back_at_zero_and_a_reset_counter(self):
        self.start_http(requests=1)
        self.lg.wait_for_stat("cluster.backend.upstream_rq_active", lambda v: v == 0)
        text = self.get("/stats?usedonly&filter=%5Ecluster%5C.backend%5C.")
        lines = text.splitlines()
        self.assertIn("cluster.backend.upstream_rq_active: 0", lines)
        self.assertIn("cluster.backend.upstream_rq_total: 1", lines)
        self.assertNotIn("cluster.backend.upstream_rq_timeout: 0", lines)
        self.lg.admin_post("/reset_counters")
        lines = self.get("/stats?usedonly&filter=%5Ecluster%5C.backend%5C.").splitlines()
        self.assertIn("cluster.backend.upstream_rq_total: 0", lines)
        prom = self.get("/stats/prometheus?usedonly")
        self.assertIn('envoy_cluster_upstream_rq_active{envoy_cluster_name="backend"} 0\n', prom)
        self.assertNotIn("envoy_cluster_upstream_rq_timeout{", prom)

    def test_connection_length_counts_from_the_connections_start(self):
        """The listener's and the HTTP connection manager's downstream_cx_length_ms both
        record a connection's whole life: one held open well past 250 ms after its one
        request lands above the 250 ms bucket in both."""
        self.start_http(requests=0)
        held = 0.4
        with socket.create_connection(("127.0.0.1", self.lg.port("http")), timeout=10) as s:
            opened = time.monotonic()
            s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "connection closed before the response")
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
            time.sleep(max(0.0, held - (time.monotonic() - opened)))

        def recorded(metric):
            # {le: count, "count": n} of the metric's one series once it has a sample.
            series = {}
            for line in self.get("/stats/prometheus").splitlines():
                name, _, rest = line.partition("{")
                if name not in (metric + "_bucket", metric + "_count"):
                    continue
                labels, _, value = rest.rpartition("} ")
                le = labels.split('le="', 1)[1].split('"', 1)[0] if 'le="' in labels else "count"
                base = labels.split(',le="', 1)[0] if 'le="' in labels else labels
                series.setdefault(base, {})[le] = float(value)
            self.assertLessEqual(len(series), 1, (metric, series))
            found = next(iter(series.values()), {})
            return found if found.get("count") == 1 else None

        for metric in ("envoy_http_downstream_cx_length_ms",
                       "envoy_listener_downstream_cx_length_ms"):
            got = wait_until(lambda: recorded(metric),
                             what="%s to record the closed connection" % metric)
            self.assertEqual(got["250"], 0, (metric, got))
            self.assertEqual(got["+Inf"], 1, (metric, got))


class RealPrometheus(StatsTestCase):
    """A real Prometheus server scrapes legate and answers a PromQL query about a counter
    the test moved."""

    def test_prometheus_scrapes_and_answers_promql(self):
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            self.skipTest("prometheus not on PATH (tools/setup.sh installs the 'prometheus' package)")
        self.start_http(requests=5)
        d = self.tmpdir()
        port = free_port()
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: legate\n    metrics_path: /stats/prometheus\n"
                    "    static_configs:\n      - targets: ['%s:%d']\n" % (self.lg.admin[0], self.lg.admin[1]))
        log = open(os.path.join(d, "prometheus.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(d, "data"),
             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.addCleanup(stop)

        query = 'envoy_cluster_upstream_rq{envoy_cluster_name="backend",envoy_response_code="200"}'
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": query}))

        def answer():
            if proc.poll() is not None:
                raise AssertionError("prometheus exited with %d" % proc.returncode)
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    doc = json.loads(r.read())
            except OSError:
                return None
            result = doc.get("data", {}).get("result", [])
            return result[0] if result else None

        wait_until(lambda: answer() is not None, timeout=60, interval=0.5,
                   what="prometheus to have scraped legate")
        sample = answer()
        self.assertEqual(sample["metric"]["job"], "legate")
        self.assertEqual(sample["metric"]["envoy_cluster_name"], "backend")
        self.assertEqual(float(sample["value"][1]), 5)

        # Move the counter; the next scrapes show it.
        for _ in range(4):
            http_get(self.lg.port("http"), "/y")
        wait_until(lambda: (answer() or {}).get("value", [0, "0"])[1] == "9", timeout=60,
                   interval=0.5, what="prometheus to see the counter at 9")


class MemoryPerCluster(LegateTestCase):
    """What each cluster costs: heap in use (/memory "allocated") with 1,010 clusters
    minus with 10, divided by 1,000; and what stats_matcher reject_all saves of it (the
    stats' names and index entries: a cluster's stat block is allocated either way, its
    rejected members updated and never exported). Envoy spends about 40 KB per cluster;
    legate's figures are in docs/benchmarks.md. The bound only catches a gross
    regression. RSS is not used: the config parse's transient peak dominates it."""

    def allocated_with(self, n, port, stats_config=None):
        clusters = [static_cluster("cluster_%04d" % i, [port]) for i in range(n)]
        config = http_bootstrap(clusters)
        if stats_config:
            config["stats_config"] = stats_config
        lg = self.start_legate(config)
        code, body = lg.admin_get("/memory")
        self.assertEqual(code, 200)
        allocated = int(json.loads(body)["allocated"])
        lg.cleanup()
        if allocated == 0:
            # A sanitizer's allocator answers mallinfo2 with zeros.
            self.skipTest("the allocator reports no heap in use (a sanitizer build)")
        return allocated

    def test_memory_per_cluster(self):
        up = self.server(HttpUpstream)
        per = {}
        for label, sc in (("all", None), ("no stats", {"stats_matcher": {"reject_all": True}})):
            small = self.allocated_with(10, up.port, sc)
            large = self.allocated_with(1010, up.port, sc)
            per[label] = (large - small) / 1000.0
        print("\nheap per cluster: %.0f bytes, of which reject_all saves %.0f bytes"
              % (per["all"], per["all"] - per["no stats"]))
        self.assertGreater(per["all"] - per["no stats"], 0, "exported stats cost something")
        self.assertLess(per["all"], 40 * 1024, "more than Envoy's ~40 KB per cluster")


if __name__ == "__main__":
    unittest.main()
