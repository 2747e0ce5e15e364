"""Runtime: bootstrap layered_runtime (static, disk, admin layers), /runtime in
Envoy's JSON shape, POST /runtime_modify, and a route's runtime_fraction following
its runtime key."""

import json
import os

from harness import (HttpUpstream, LegateTestCase, http_bootstrap, http_get, route,
                     route_config, static_cluster, virtual_host)


class Runtime(LegateTestCase):

    def start(self, layers=None, runtime_key="routing.canary", default_pct=0):
        self.canary = self.server(HttpUpstream, name="canary")
        self.main = self.server(HttpUpstream, name="main")
        routes = [
            route({"prefix": "/", "runtime_fraction": {
                "default_value": {"numerator": default_pct, "denominator": "HUNDRED"},
                "runtime_key": runtime_key}}, "canary"),
            route({"prefix": "/"}, "main"),
        ]
        config = http_bootstrap([static_cluster("canary", [self.canary.port]),
                                 static_cluster("main", [self.main.port])],
                                route_cfg=route_config([virtual_host("all", ["*"], routes)]))
        if layers is not None:
            config["layered_runtime"] = {"layers": layers}
        self.lg = self.start_legate(config)

    def hits(self, n=20):
        """Which upstream answered each of n requests."""
        out = []
        for _ in range(n):
            status, headers, _, _ = http_get(self.lg.port("http"), "/x")
            self.assertEqual(status, 200)
            out.append(dict(headers).get("x-upstream"))
        return out

    def runtime(self):
        code, body = self.lg.admin_get("/runtime")
        self.assertEqual(code, 200)
        return json.loads(body)

    def test_layers_dump_and_override_order(self):
        d = self.tmpdir()
        os.makedirs(os.path.join(d, "current", "envoy", "routing"))
        with open(os.path.join(d, "current", "envoy", "routing", "canary"), "w") as f:
            f.write("100\n")
        with open(os.path.join(d, "current", "envoy", "only_disk"), "w") as f:
            f.write("disk")
        self.start(layers=[
            {"name": "base", "static_layer": {"routing": {"canary": 0}, "flag": True,
                                              "frac": {"numerator": 5, "denominator": "TEN_THOUSAND"}}},
            {"name": "disk", "disk_layer": {"symlink_root": os.path.join(d, "current"),
                                            "subdirectory": "envoy"}},
            {"name": "admin", "admin_layer": {}},
        ])
        doc = self.runtime()
        self.assertEqual(doc["layers"], ["base", "disk", "admin"])
        self.assertEqual(doc["entries"]["routing.canary"],
                         {"layer_values": ["0", "100", ""], "final_value": "100"})
        self.assertEqual(doc["entries"]["flag"]["final_value"], "true")
        self.assertEqual(doc["entries"]["only_disk"]["final_value"], "disk")
        self.assertEqual(doc["entries"]["frac"]["final_value"], "5/10000")
        # The disk layer (100%) overrides the static 0 and the route default 0.
        self.assertEqual(set(self.hits()), {"canary"})

        # The admin layer overrides both; an empty value removes the override.
        code, _ = self.lg.admin_post("/runtime_modify?routing.canary=0")
        self.assertEqual(code, 200)
        self.assertEqual(self.runtime()["entries"]["routing.canary"]["layer_values"], ["0", "100", "0"])
        self.assertEqual(set(self.hits()), {"main"})
        code, _ = self.lg.admin_post("/runtime_modify?routing.canary=")
        self.assertEqual(code, 200)
        self.assertEqual(self.runtime()["entries"]["routing.canary"]["final_value"], "100")
        self.assertEqual(set(self.hits()), {"canary"})

    def test_runtime_key_overrides_default_and_absent_key_keeps_it(self):
        # No layered_runtime: Envoy's default is a lone admin layer.
        self.start(default_pct=100)
        self.assertEqual(self.runtime(), {"layers": ["admin"], "entries": {}})
        self.assertEqual(set(self.hits()), {"canary"})
        code, _ = self.lg.admin_post("/runtime_modify?routing.canary=0&other=x")
        self.assertEqual(code, 200)
        self.assertEqual(set(self.hits()), {"main"})
        self.assertEqual(self.runtime()["entries"]["other"]["final_value"], "x")
        # A fraction in between splits traffic (both upstreams get some of 200).
        code, _ = self.lg.admin_post("/runtime_modify?routing.canary=50")
        got = self.hits(200)
        self.assertGreater(got.count("canary"), 20)
        self.assertGreater(got.count("main"), 20)

    def test_runtime_modify_is_post_only_and_needs_admin_layer(self):
        self.start(layers=[{"name": "s", "static_layer": {"a": 1}}])
        code, _ = self.lg.admin_get("/runtime_modify?a=2")
        self.assertEqual(code, 405)
        code, body = self.lg.admin_post("/runtime_modify?a=2")
        self.assertEqual(code, 503)
        self.assertIn("No admin layer", body)
        self.assertEqual(self.runtime()["entries"]["a"]["final_value"], "1")

    def test_weighted_clusters_runtime_key_prefix(self):
        self.canary = self.server(HttpUpstream, name="canary")
        self.main = self.server(HttpUpstream, name="main")
        routes = [route({"prefix": "/"}, route_extra={"weighted_clusters": {
            "runtime_key_prefix": "routing.split",
            "clusters": [{"name": "canary", "weight": 0}, {"name": "main", "weight": 100}]}})]
        config = http_bootstrap([static_cluster("canary", [self.canary.port]),
                                 static_cluster("main", [self.main.port])],
                                route_cfg=route_config([virtual_host("all", ["*"], routes)]))
        self.lg = self.start_legate(config)
        self.assertEqual(set(self.hits()), {"main"})
        code, _ = self.lg.admin_post("/runtime_modify?routing.split.canary=100&routing.split.main=0")
        self.assertEqual(code, 200)
        self.assertEqual(set(self.hits()), {"canary"})
        code, _ = self.lg.admin_post("/runtime_modify?routing.split.canary=&routing.split.main=")
        self.assertEqual(set(self.hits()), {"main"})

    def test_access_log_filters_follow_runtime_keys(self):
        up = self.server(HttpUpstream)
        path = os.path.join(self.tmpdir(), "access.log")
        log = {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": path, "log_format": {"text_format_source": {"inline_string": "%REQ(:PATH)%\n"}}},
            "filter": {"and_filter": {"filters": [
                {"runtime_filter": {"runtime_key": "log.sample",
                                    "percent_sampled": {"numerator": 0}}},
                {"status_code_filter": {"comparison": {
                    "op": "GE", "value": {"default_value": 500, "runtime_key": "log.min_status"}}}}]}}}
        config = http_bootstrap([static_cluster("backend", [up.port])], access_log=[log])
        self.lg = self.start_legate(config)

        def logged():
            try:
                with open(path) as f:
                    return f.read().split()
            except FileNotFoundError:
                return []
        http_get(self.lg.port("http"), "/before")  # 0% sampled and 200 < 500
        self.lg.admin_post("/runtime_modify?log.sample=100&log.min_status=200")
        http_get(self.lg.port("http"), "/after")
        self.lg.stop()  # flushes the log
        self.assertEqual(logged(), ["/after"])

    def test_rtds_layer_is_refused(self):
        from harness import LegateError
        with self.assertRaises(LegateError) as ctx:
            self.start(layers=[{"name": "r", "rtds_layer": {"name": "x"}}])
        self.assertIn("layered_runtime.layers[0]", str(ctx.exception))


if __name__ == "__main__":
    import unittest
    unittest.main()
