"""Distributed tracing: the trace decision carried in x-request-id, B3 and W3C
propagation, spans through two legate hops (client -> legate A -> legate B ->
upstream), and the exporters (envoy.tracers.zipkin as Zipkin v2 JSON,
envoy.tracers.opentelemetry as OTLP/HTTP protobuf) against a collector in the
test that decodes what legate sends. A dead, failing or hung collector never
fails a request."""

import http.server
import json
import os
import socketserver
import threading
import time
import unittest

from harness import (HoldServer, HttpUpstream, LegateTestCase, bootstrap, http_get,
                     http_listener, refused_port, route, route_config, static_cluster,
                     read_lines, virtual_host, wait_for_lines,
                     wait_until)

ZIPKIN_TYPE = "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
OTEL_TYPE = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"


# ------------------------------------------------------------------ the collector


class Collector:
    """An HTTP collector on an ephemeral loopback port: records every POST
    (path, headers, body) and answers `status` (202 by default, as Zipkin)."""

    def __init__(self, status=202):
        self.status = status
        self.posts = []
        self.cv = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n)
                with outer.cv:
                    outer.posts.append((self.path, dict((k.lower(), v) for k, v in self.headers.items()), body))
                    outer.cv.notify_all()
                self.send_response(outer.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self):
        with self.cv:
            return [b for _, _, b in self.posts]

    def zipkin_spans(self):
        spans = []
        for body in self.bodies():
            spans.extend(json.loads(body))
        return spans

    def wait_spans(self, predicate, timeout=10.0, decode=None):
        decode = decode or self.zipkin_spans
        found = []

        def check():
            found[:] = [s for s in decode() if predicate(s)]
            return found
        wait_until(check, timeout, what="spans at the collector")
        return list(found)


# --------------------------------------------------------------- config helpers


def zipkin_provider(collector_cluster="zipkin", **extra):
    cfg = {"@type": ZIPKIN_TYPE, "collector_cluster": collector_cluster,
           "collector_endpoint": "/api/v2/spans", "collector_endpoint_version": "HTTP_JSON"}
    cfg.update(extra)
    return {"name": "envoy.tracers.zipkin", "typed_config": cfg}


def runtime_layer(values):
    return {"layers": [{"name": "static", "static_layer": values}]}


def proxy_config(node, target_port, provider, tracing=None, collector_port=None, runtime=None,
                 route_extra=None, route_fields=None, direction=None, **hcm_extra):
    """One HTTP listener "http" routing everything to cluster "next" (target_port),
    with HCM tracing, plus the collector's cluster "zipkin"."""
    tracing = dict(tracing or {})
    if provider is not None:
        tracing["provider"] = provider
    rc = route_config(virtual_hosts=[virtual_host(
        "all", ["*"], [route({"prefix": "/"}, cluster="next", route_extra=route_extra,
                             **(route_fields or {}))])])
    listener = http_listener("http", rc, stat_prefix="ingress", tracing=tracing, **hcm_extra)
    if direction:
        listener["traffic_direction"] = direction
    clusters = [static_cluster("next", [target_port]),
                static_cluster("zipkin", [collector_port or refused_port()])]
    cfg = bootstrap([listener], clusters, node={"id": node + "-id", "cluster": node,
                                                 "locality": {"zone": "zone-" + node}})
    layer = {"tracing.zipkin.min_flush_spans": 1, "tracing.opentelemetry.min_flush_spans": 1}
    layer.update(runtime or {})
    cfg["layered_runtime"] = runtime_layer(layer)
    return cfg


def by_service(spans, service):
    return [s for s in spans if s["localEndpoint"]["serviceName"] == service]


def upstream_json(body):
    """The default upstream's echo, headers as a dict (lower-case names)."""
    doc = json.loads(body)
    doc["headers"] = dict((k.lower(), v) for k, v in doc["headers"])
    return doc


class TracingCase(LegateTestCase):
    def collector(self, status=202):
        c = Collector(status)
        self.addCleanup(c.close)
        return c

    def two_hops(self, collector, a_tracing=None, b_tracing=None, a_provider=None,
                 b_provider=None, a_extra=None, b_extra=None, handler=None):
        """upstream <- legate B <- legate A; returns (A, B, upstream)."""
        up = self.server(HttpUpstream, handler=handler, name="app")
        b = self.start_legate(proxy_config("svc-b", up.port, b_provider or zipkin_provider(),
                                           tracing=b_tracing, collector_port=collector.port,
                                           **(b_extra or {})))
        a = self.start_legate(proxy_config("svc-a", b.port("http"), a_provider or zipkin_provider(),
                                           tracing=a_tracing, collector_port=collector.port,
                                           **(a_extra or {})))
        return a, b, up


# ------------------------------------------------------------------------ zipkin


class ZipkinTwoHops(TracingCase):
    def test_two_hops_share_one_trace_with_envoy_tags(self):
        col = self.collector()
        a, b, up = self.two_hops(col, a_tracing={"spawn_upstream_span": True})
        t0 = int(time.time() * 1e6)
        status, headers, body, _ = http_get(a.port("http"), "/hello?x=1",
                                            headers={"Host": "front.example",
                                                     "User-Agent": "trace-test/1"})
        t1 = int(time.time() * 1e6)
        self.assertEqual(status, 200)
        seen = upstream_json(body)["headers"]
        spans = col.wait_spans(lambda s: True)
        wait_until(lambda: len(col.zipkin_spans()) >= 3, what="three spans")
        spans = col.zipkin_spans()
        self.assertEqual(len(spans), 3, spans)
        a_spans = by_service(spans, "svc-a")
        b_spans = by_service(spans, "svc-b")
        self.assertEqual(len(a_spans), 2, spans)
        self.assertEqual(len(b_spans), 1, spans)
        a_server = [s for s in a_spans if s["kind"] == "SERVER"][0]
        a_client = [s for s in a_spans if s["kind"] == "CLIENT"][0]
        b_server = b_spans[0]

        # One trace; A's server span is the root, its client span its child; B's
        # server span shares A's client span id (Zipkin shared span context).
        trace = a_server["traceId"]
        self.assertRegex(trace, r"^[0-9a-f]{16}$")
        self.assertEqual({s["traceId"] for s in spans}, {trace})
        self.assertNotIn("parentId", a_server)
        self.assertEqual(a_client["parentId"], a_server["id"])
        self.assertEqual(b_server["id"], a_client["id"])
        self.assertEqual(b_server["parentId"], a_server["id"])
        self.assertTrue(b_server.get("shared"))
        self.assertEqual(b_server["kind"], "SERVER")
        self.assertEqual(a_server["name"], "front.example")
        self.assertEqual(a_client["name"], "router next egress")

        # What reached the application: B's span context, sampled.
        self.assertEqual(seen.get("x-b3-traceid"), trace)
        self.assertEqual(seen.get("x-b3-spanid"), b_server["id"])
        self.assertEqual(seen.get("x-b3-parentspanid"), a_server["id"])
        self.assertEqual(seen.get("x-b3-sampled"), "1")
        request_id = seen["x-request-id"]
        self.assertEqual(request_id[14], "9")  # sampled, in the UUID

        tags = a_server["tags"]
        self.assertEqual(tags["http.method"], "GET")
        self.assertEqual(tags["http.url"], "http://front.example/hello?x=1")
        self.assertEqual(tags["http.protocol"], "HTTP/1.1")
        self.assertEqual(tags["http.status_code"], "200")
        self.assertEqual(tags["upstream_cluster"], "next")
        self.assertEqual(tags["upstream_cluster.name"], "next")
        self.assertEqual(tags["response_flags"], "-")
        self.assertEqual(tags["response_size"], str(len(body)))
        self.assertEqual(tags["request_size"], "0")
        self.assertEqual(tags["downstream_cluster"], "-")
        self.assertEqual(tags["user_agent"], "trace-test/1")
        self.assertEqual(tags["guid:x-request-id"], request_id)
        self.assertEqual(tags["node_id"], "svc-a-id")
        self.assertEqual(tags["zone"], "zone-svc-a")
        self.assertEqual(tags["peer.address"], "127.0.0.1")
        self.assertEqual(tags["component"], "proxy")
        self.assertNotIn("error", tags)
        ctags = a_client["tags"]
        self.assertEqual(ctags["upstream_cluster"], "next")
        self.assertEqual(ctags["http.status_code"], "200")
        self.assertEqual(ctags["upstream_address"], "127.0.0.1:%d" % b.port("http"))
        self.assertEqual(b_server["tags"]["guid:x-request-id"], request_id)
        self.assertEqual(b_server["tags"]["node_id"], "svc-b-id")

        # Microseconds since the epoch; durations in microseconds too.
        for s in spans:
            self.assertGreaterEqual(s["timestamp"], t0 - 1000)
            self.assertLessEqual(s["timestamp"], t1)
            self.assertGreaterEqual(s["duration"], 0)
            self.assertLessEqual(s["duration"], t1 - t0 + 1000)
            self.assertEqual(s["localEndpoint"]["ipv4"], "127.0.0.1")
        self.assertEqual(a_server["localEndpoint"]["port"], a.port("http"))
        self.assertEqual(col.posts[0][0], "/api/v2/spans")
        self.assertEqual(col.posts[0][1]["content-type"], "application/json")
        self.assertEqual(col.posts[0][1]["host"], "zipkin")
        self.assertGreaterEqual(a.stat("tracing.zipkin.spans_sent"), 2)
        a.wait_for_stat("tracing.zipkin.reports_sent", lambda v: v >= 1)
        self.assertEqual(a.stat("http.ingress.tracing.random_sampling"), 1)
        self.assertEqual(b.stat("http.ingress.tracing.random_sampling"), 1)

    def test_without_shared_context_b_is_a_child_of_a_client_span(self):
        col = self.collector()
        a, b, _ = self.two_hops(col, a_tracing={"spawn_upstream_span": True},
                                b_provider=zipkin_provider(shared_span_context=False,
                                                           trace_id_128bit=True))
        status, _, _, _ = http_get(a.port("http"), "/x")
        self.assertEqual(status, 200)
        wait_until(lambda: len(col.zipkin_spans()) >= 3, what="three spans")
        spans = col.zipkin_spans()
        a_client = [s for s in by_service(spans, "svc-a") if s["kind"] == "CLIENT"][0]
        b_server = by_service(spans, "svc-b")[0]
        self.assertEqual(b_server["traceId"], a_client["traceId"])
        self.assertEqual(b_server["parentId"], a_client["id"])
        self.assertNotEqual(b_server["id"], a_client["id"])
        self.assertNotIn("shared", b_server)

    def test_without_spawn_b_shares_a_server_span(self):
        col = self.collector()
        a, b, up = self.two_hops(col)
        self.assertEqual(http_get(a.port("http"), "/y")[0], 200)
        wait_until(lambda: len(col.zipkin_spans()) >= 2, what="two spans")
        spans = col.zipkin_spans()
        self.assertEqual(len(spans), 2)
        a_server = by_service(spans, "svc-a")[0]
        b_server = by_service(spans, "svc-b")[0]
        self.assertEqual(a_server["kind"], "SERVER")
        self.assertEqual(b_server["id"], a_server["id"])
        self.assertEqual(b_server["traceId"], a_server["traceId"])
        self.assertTrue(b_server.get("shared"))

    def test_egress_listener_makes_client_spans(self):
        col = self.collector()
        a, b, _ = self.two_hops(col, a_extra={"direction": "OUTBOUND"})
        self.assertEqual(http_get(a.port("http"), "/e", headers={"Host": "svc"})[0], 200)
        wait_until(lambda: len(col.zipkin_spans()) >= 2, what="two spans")
        spans = col.zipkin_spans()
        a_span = by_service(spans, "svc-a")[0]
        b_span = by_service(spans, "svc-b")[0]
        self.assertEqual(a_span["kind"], "CLIENT")
        self.assertEqual(b_span["id"], a_span["id"])
        self.assertEqual(b_span["parentId"] if "parentId" in b_span else None,
                         a_span.get("parentId"))

    def test_5xx_and_reset_mark_error(self):
        col = self.collector()
        a, b, up = self.two_hops(col, a_tracing={"spawn_upstream_span": True})
        status, _, _, _ = http_get(a.port("http"), "/status/503")
        self.assertEqual(status, 503)
        wait_until(lambda: len(col.zipkin_spans()) >= 3, what="three spans")
        for s in col.zipkin_spans():
            self.assertEqual(s["tags"]["http.status_code"], "503", s)
            self.assertEqual(s["tags"].get("error"), "true", s)

    def test_connect_failure_marks_error_and_response_flags(self):
        col = self.collector()
        lg = self.start_legate(proxy_config("solo", refused_port(), zipkin_provider(),
                                            tracing={"spawn_upstream_span": True},
                                            collector_port=col.port))
        status, _, _, _ = http_get(lg.port("http"), "/")
        self.assertEqual(status, 503)
        wait_until(lambda: len(col.zipkin_spans()) >= 2, what="two spans")
        spans = col.zipkin_spans()
        server = [s for s in spans if s["kind"] == "SERVER"][0]
        client = [s for s in spans if s["kind"] == "CLIENT"][0]
        self.assertEqual(server["tags"]["response_flags"], "UF")
        self.assertEqual(server["tags"]["error"], "true")
        self.assertEqual(client["tags"]["http.status_code"], "0")
        self.assertEqual(client["tags"]["error"], "true")


class ZipkinDecision(TracingCase):
    def test_zero_sampling_sends_nothing_unless_forced_or_client_traced(self):
        col = self.collector()
        a, b, up = self.two_hops(col, a_tracing={"random_sampling": {"value": 0}},
                                 a_extra={"use_remote_address": True})
        port = a.port("http")
        for _ in range(3):
            status, _, body, _ = http_get(port, "/quiet")
            self.assertEqual(status, 200)
            seen = upstream_json(body)["headers"]
            # The decision travels on in B3: B does not trace either (B's own
            # x-request-id decision, sampled at 100%, yields to the caller's).
            self.assertEqual(seen["x-b3-sampled"], "0")
        # An external client cannot force a trace (x-envoy-force-trace is stripped).
        status, _, body, _ = http_get(port, "/external", headers={
            "x-envoy-force-trace": "1", "x-forwarded-for": "203.0.113.7"})
        self.assertEqual(status, 200)
        self.assertNotIn("x-envoy-force-trace", upstream_json(body)["headers"])
        self.assertEqual(a.stat("http.ingress.tracing.not_traceable"), 4)

        # An internal caller (loopback) can; the id comes back in the response.
        status, headers, body, _ = http_get(port, "/forced", headers={"x-envoy-force-trace": "1"})
        self.assertEqual(status, 200)
        rid = dict((k.lower(), v) for k, v in headers)["x-request-id"]
        self.assertEqual(rid[14], "a")
        spans = col.wait_spans(lambda s: s["tags"].get("guid:x-request-id") == rid)
        wait_until(lambda: len(col.zipkin_spans()) >= 2, what="A and B spans")
        # Nothing of the unsampled requests reached the collector (its reports
        # would have come first: min_flush_spans is 1).
        self.assertEqual({s["tags"]["guid:x-request-id"] for s in col.zipkin_spans()}, {rid})
        self.assertEqual(a.stat("http.ingress.tracing.service_forced"), 1)

        # x-client-trace-id forces a trace too (client_sampling, 100% by default).
        status, headers, body, _ = http_get(port, "/client", headers={"x-client-trace-id": "c-42"})
        self.assertEqual(status, 200)
        rid = upstream_json(body)["headers"]["x-request-id"]
        self.assertEqual(rid[14], "b")
        spans = col.wait_spans(lambda s: s["tags"].get("guid:x-client-trace-id") == "c-42")
        self.assertEqual(spans[0]["tags"]["guid:x-request-id"], rid)
        self.assertEqual(a.stat("http.ingress.tracing.client_enabled"), 1)

    def test_client_sampling_zero_ignores_client_trace_id(self):
        col = self.collector()
        lg = self.start_legate(proxy_config(
            "solo", self.server(HttpUpstream).port, zipkin_provider(), collector_port=col.port,
            tracing={"random_sampling": {"value": 0}, "client_sampling": {"value": 0}}))
        self.assertEqual(http_get(lg.port("http"), "/", headers={"x-client-trace-id": "z"})[0], 200)
        self.assertEqual(lg.stat("http.ingress.tracing.not_traceable"), 1)
        self.assertEqual(lg.stat("http.ingress.tracing.client_enabled"), 0)

    def test_overall_sampling_vetoes_all_but_forced(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=col.port, use_remote_address=True,
                                            tracing={"overall_sampling": {"value": 0}}))
        _, _, body, _ = http_get(lg.port("http"), "/", headers={"x-client-trace-id": "q"})
        self.assertEqual(upstream_json(body)["headers"]["x-request-id"][14], "4")
        _, _, body, _ = http_get(lg.port("http"), "/", headers={"x-envoy-force-trace": "1"})
        self.assertEqual(upstream_json(body)["headers"]["x-request-id"][14], "a")
        col.wait_spans(lambda s: True)
        self.assertEqual(lg.stat("http.ingress.tracing.not_traceable"), 1)
        self.assertEqual(lg.stat("http.ingress.tracing.service_forced"), 1)

    def test_runtime_random_sampling_overrides_config(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=col.port,
                                            runtime={"tracing.random_sampling": 0}))
        for _ in range(5):
            self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        self.assertEqual(lg.stat("http.ingress.tracing.not_traceable"), 5)
        self.assertEqual(lg.stat("http.ingress.tracing.random_sampling"), 0)

    def test_a_decided_request_id_is_kept(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=col.port,
                                            tracing={"random_sampling": {"value": 0}}))
        rid = "0f1e2d3c-4b5a-9687-8899-aabbccddeeff"  # '9': sampled upstream of us
        _, _, body, _ = http_get(lg.port("http"), "/", headers={"x-request-id": rid})
        self.assertEqual(upstream_json(body)["headers"]["x-request-id"], rid)
        spans = col.wait_spans(lambda s: s["tags"].get("guid:x-request-id") == rid)
        self.assertEqual(len(spans), 1)


def with_routes(cfg, routes):
    """proxy_config's single route "/" preceded by `routes` (route dicts)."""
    vh = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]["route_config"]["virtual_hosts"][0]
    vh["routes"] = list(routes) + vh["routes"]
    return cfg


class RouteTracing(TracingCase):
    """Route.tracing overrides the connection manager's sampling for the requests the
    route matched; its custom tags join the connection manager's and win by name."""

    def test_route_random_sampling_zero_produces_no_span(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(with_routes(proxy_config(
            "solo", up.port, zipkin_provider(), collector_port=col.port),
            [route({"prefix": "/quiet"}, cluster="next",
                   tracing={"random_sampling": {"numerator": 0}})]))
        port = lg.port("http")
        for _ in range(3):
            status, _, body, _ = http_get(port, "/quiet")
            self.assertEqual(status, 200)
            seen = upstream_json(body)["headers"]
            self.assertEqual(seen["x-b3-sampled"], "0")
            self.assertEqual(seen["x-request-id"][14], "4")
        status, _, body, _ = http_get(port, "/loud")
        self.assertEqual(status, 200)
        seen = upstream_json(body)["headers"]
        self.assertEqual(seen["x-b3-sampled"], "1")
        spans = col.wait_spans(lambda s: s["tags"].get("http.url", "").endswith("/loud"))
        self.assertEqual(spans[0]["traceId"], seen["x-b3-traceid"])
        # Nothing of /quiet reached the collector (its spans would have come
        # first: min_flush_spans is 1).
        urls = [s["tags"]["http.url"] for s in col.zipkin_spans()]
        self.assertEqual(len(urls), 1, urls)
        self.assertTrue(urls[0].endswith("/loud"), urls)
        self.assertEqual(lg.stat("http.ingress.tracing.not_traceable"), 3)
        self.assertEqual(lg.stat("http.ingress.tracing.random_sampling"), 1)

    def test_unset_route_fields_are_100_percent_and_tags_merge(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        cfg = proxy_config("solo", up.port, zipkin_provider(), collector_port=col.port,
                           tracing={"random_sampling": {"value": 0}, "custom_tags": [
                               {"tag": "who", "literal": {"value": "hcm"}},
                               {"tag": "keep", "literal": {"value": "hcm"}}]})
        with_routes(cfg, [
            # An empty tracing object overrides too: 100% random sampling.
            route({"prefix": "/all"}, cluster="next", tracing={}),
            route({"prefix": "/tagged"}, cluster="next", tracing={
                "random_sampling": {"numerator": 100},
                "custom_tags": [{"tag": "who", "literal": {"value": "route"}},
                                {"tag": "team", "request_header": {"name": "x-team"}}]}),
        ])
        lg = self.start_legate(cfg)
        port = lg.port("http")
        self.assertEqual(upstream_json(http_get(port, "/none")[2])["headers"]["x-b3-sampled"], "0")
        self.assertEqual(upstream_json(http_get(port, "/all")[2])["headers"]["x-b3-sampled"], "1")
        span = col.wait_spans(lambda s: s["tags"]["http.url"].endswith("/all"))[0]
        # No route tags: the connection manager's apply.
        self.assertEqual(span["tags"]["who"], "hcm")
        http_get(port, "/tagged", headers={"x-team": "blue"})
        span = col.wait_spans(lambda s: s["tags"]["http.url"].endswith("/tagged"))[0]
        self.assertEqual(span["tags"]["who"], "route")
        self.assertEqual(span["tags"]["keep"], "hcm")
        self.assertEqual(span["tags"]["team"], "blue")
        self.assertEqual(lg.stat("http.ingress.tracing.not_traceable"), 1)
        self.assertEqual(lg.stat("http.ingress.tracing.random_sampling"), 2)


class TracingAccessLog(TracingCase):
    """%TRACE_ID% and traceable_filter in the access log of a traced connection manager."""

    def test_trace_id_and_traceable_filter(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        d = self.tmpdir()
        all_path = os.path.join(d, "all.log")
        traceable_path = os.path.join(d, "traceable.log")

        def file_log(path, log_filter=None):
            entry = {"name": "envoy.access_loggers.file", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": path,
                "log_format": {"text_format_source": {"inline_string": "%REQ(:PATH)% %TRACE_ID%\n"}}}}
            if log_filter is not None:
                entry["filter"] = log_filter
            return entry
        cfg = with_routes(proxy_config(
            "solo", up.port, zipkin_provider(trace_id_128bit=True), collector_port=col.port,
            use_remote_address=True,  # loopback callers are internal: they may force a trace
            access_log=[file_log(all_path), file_log(traceable_path, {"traceable_filter": {}})]),
            [route({"prefix": "/quiet"}, cluster="next",
                   tracing={"random_sampling": {"numerator": 0}})])
        lg = self.start_legate(cfg)
        port = lg.port("http")
        traces = {}
        for path, headers in (("/sampled", {}), ("/quiet", {}),
                              ("/quiet/forced", {"x-envoy-force-trace": "1"}),
                              ("/client", {"x-client-trace-id": "c-1"}),
                              ("/continued", {"b3": "463ac35c9f6413ad-a2fb4a1d1a96d312-1"})):
            status, _, body, _ = http_get(port, path, headers=headers)
            self.assertEqual(status, 200)
            traces[path] = upstream_json(body)["headers"]["x-b3-traceid"]
        lines = wait_for_lines(all_path, 5)
        # Every request has a span here (sampled or not), so every line has its
        # trace id: the one that went upstream.
        self.assertEqual(lines, ["%s %s" % (p, t) for p, t in traces.items()])
        self.assertRegex(traces["/sampled"], r"^[0-9a-f]{32}$")
        self.assertEqual(traces["/continued"], "463ac35c9f6413ad")
        # traceable_filter, as Envoy's: only a trace the service forced.
        wait_until(lambda: read_lines(traceable_path), what="a traceable line")
        self.assertEqual(read_lines(traceable_path),
                         ["/quiet/forced %s" % traces["/quiet/forced"]])


class ZipkinPropagation(TracingCase):
    def solo(self, col, **kw):
        up = self.server(HttpUpstream)
        return self.start_legate(proxy_config("solo", up.port, kw.pop("provider", zipkin_provider()),
                                              collector_port=col.port, **kw))

    def test_b3_single_header_is_continued(self):
        col = self.collector()
        lg = self.solo(col, tracing={"spawn_upstream_span": True})
        trace = "463ac35c9f6413ad48485a3953bb6124"
        parent = "0020000000000001"
        _, _, body, _ = http_get(lg.port("http"), "/", headers={"b3": "%s-%s-1" % (trace, parent)})
        seen = upstream_json(body)["headers"]
        wait_until(lambda: len(col.zipkin_spans()) >= 2, what="two spans")
        spans = col.zipkin_spans()
        server = [s for s in spans if s["kind"] == "SERVER"][0]
        client = [s for s in spans if s["kind"] == "CLIENT"][0]
        self.assertEqual(server["traceId"], trace)
        self.assertEqual(server["id"], parent)  # shared with the caller's span
        self.assertEqual(client["parentId"], parent)
        # Injected as multi headers; the stale single header is gone.
        self.assertNotIn("b3", seen)
        self.assertEqual(seen["x-b3-traceid"], trace)
        self.assertEqual(seen["x-b3-spanid"], client["id"])
        self.assertEqual(seen["x-b3-parentspanid"], parent)

    def test_b3_sampling_decisions_are_respected(self):
        col = self.collector()
        lg = self.solo(col, tracing={"random_sampling": {"value": 0}})
        port = lg.port("http")
        # Sampled by the caller although we sample nothing ourselves.
        http_get(port, "/", headers={"x-b3-traceid": "00000000000000aa", "x-b3-spanid": "00000000000000bb",
                                     "x-b3-sampled": "1"})
        spans = col.wait_spans(lambda s: s["traceId"] == "00000000000000aa")
        self.assertEqual(spans[0]["id"], "00000000000000bb")
        # A single-header "not sampled" from the caller wins over 100% sampling
        # (checked on a second legate with default sampling).
        col2 = self.collector()
        lg2 = self.solo(col2)
        _, _, body, _ = http_get(lg2.port("http"), "/", headers={"b3": "0"})
        self.assertEqual(upstream_json(body)["headers"]["x-b3-sampled"], "0")
        _, _, body, _ = http_get(lg2.port("http"), "/", headers={"b3": "d"})
        self.assertEqual(upstream_json(body)["headers"]["x-b3-sampled"], "1")
        col2.wait_spans(lambda s: True)
        self.assertEqual(len(col2.zipkin_spans()), 1)

    def test_malformed_b3_starts_a_new_trace(self):
        col = self.collector()
        lg = self.solo(col)
        _, _, body, _ = http_get(lg.port("http"), "/", headers={"b3": "xyz-123-1"})
        seen = upstream_json(body)["headers"]
        spans = col.wait_spans(lambda s: True)
        self.assertEqual(seen["x-b3-traceid"], spans[0]["traceId"])
        self.assertNotIn("parentId", spans[0])

    def test_custom_tags_decorator_and_path_length(self):
        col = self.collector()
        os.environ["LEGATE_TRACE_TEST_ENV"] = "from-env"
        self.addCleanup(os.environ.pop, "LEGATE_TRACE_TEST_ENV", None)
        lg = self.solo(col, tracing={
            "max_path_tag_length": 6,
            "custom_tags": [
                {"tag": "lit", "literal": {"value": "v1"}},
                {"tag": "hdr", "request_header": {"name": "X-Team", "default_value": "none"}},
                {"tag": "hdr2", "request_header": {"name": "x-absent", "default_value": "dflt"}},
                {"tag": "env", "environment": {"name": "LEGATE_TRACE_TEST_ENV"}},
            ]}, route_fields={"decorator": {"operation": "checkout"}})
        status, headers, _, _ = http_get(lg.port("http"), "/abcdefghij", headers={"x-team": "blue"})
        self.assertEqual(status, 200)
        self.assertEqual(dict((k.lower(), v) for k, v in headers)["x-envoy-decorator-operation"],
                         "checkout")
        span = col.wait_spans(lambda s: True)[0]
        self.assertEqual(span["name"], "checkout")
        tags = span["tags"]
        self.assertEqual(tags["lit"], "v1")
        self.assertEqual(tags["hdr"], "blue")
        self.assertEqual(tags["hdr2"], "dflt")
        self.assertEqual(tags["env"], "from-env")
        self.assertTrue(tags["http.url"].endswith("/abcde"), tags["http.url"])


class ZipkinExport(TracingCase):
    def test_batches_of_min_flush_spans(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config(
            "solo", up.port, zipkin_provider(), collector_port=col.port,
            runtime={"tracing.zipkin.min_flush_spans": 5,
                     "tracing.zipkin.flush_interval_ms": 600000}))
        for _ in range(5):
            self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        wait_until(lambda: len(col.posts) >= 1, what="one report")
        self.assertEqual(len(col.zipkin_spans()), 5)
        self.assertEqual(len(col.posts), 1)
        lg.wait_for_stat("tracing.zipkin.reports_sent", lambda v: v == 1)
        self.assertEqual(lg.stat("tracing.zipkin.spans_sent"), 5)

    def test_timer_flushes_a_partial_batch(self):
        col = self.collector()
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config(
            "solo", up.port, zipkin_provider(), collector_port=col.port,
            runtime={"tracing.zipkin.min_flush_spans": 100,
                     "tracing.zipkin.flush_interval_ms": 200}))
        self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        col.wait_spans(lambda s: True)
        self.assertGreaterEqual(lg.stat("tracing.zipkin.timer_flushed"), 1)

    def test_dead_collector_never_fails_requests(self):
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=refused_port()))
        for _ in range(10):
            self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        lg.wait_for_stat("tracing.zipkin.reports_failed", lambda v: v >= 1)
        self.assertEqual(lg.stat("tracing.zipkin.reports_sent"), 0)

    def test_collector_errors_count_as_dropped(self):
        col = self.collector(status=500)
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=col.port))
        self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        lg.wait_for_stat("tracing.zipkin.reports_dropped", lambda v: v >= 1)

    def test_hung_collector_bounds_the_queue(self):
        hold = self.server(HoldServer)
        up = self.server(HttpUpstream)
        # One span per report, so the number of reports does not depend on how
        # quickly the main thread drains (a busy machine makes fewer, larger ones).
        lg = self.start_legate(proxy_config("solo", up.port, zipkin_provider(),
                                            collector_port=hold.port,
                                            runtime={"tracing.zipkin.min_flush_spans": 1}))
        # One report waits for an answer that never comes; the queue behind it
        # (16 reports) is bounded, the rest is dropped and counted. Requests go on
        # until a drop is counted: at most 400, each answered 200 meanwhile.
        for i in range(400):
            self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
            if i >= 20 and i % 10 == 0 and lg.stat("tracing.zipkin.reports_dropped") >= 1:
                break
        lg.wait_for_stat("tracing.zipkin.reports_dropped", lambda v: v >= 1)
        self.assertEqual(http_get(lg.port("http"), "/")[0], 200)


class TracingConfigErrors(TracingCase):
    def assert_refused(self, cfg, needle):
        from harness import run_legate
        d = self.tmpdir()
        path = os.path.join(d, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        code, _, err = run_legate(["--mode", "validate", "-c", path])
        self.assertEqual(code, 1, err)
        self.assertIn(needle, err)

    def test_unimplemented_fields_are_refused_by_name(self):
        port = refused_port()
        self.assert_refused(proxy_config("x", port, zipkin_provider(), tracing={"verbose": True}),
                            "tracing.verbose")
        self.assert_refused(proxy_config("x", port, zipkin_provider(collector_endpoint_version="HTTP_PROTO")),
                            "collector_endpoint_version")
        self.assert_refused(proxy_config("x", port, zipkin_provider(split_spans_for_request=True)),
                            "split_spans_for_request")
        self.assert_refused(proxy_config("x", port, zipkin_provider(collector_cluster="nope")),
                            "collector_cluster: unknown cluster 'nope'")
        self.assert_refused(proxy_config("x", port, zipkin_provider(), tracing={"custom_tags": [
            {"tag": "m", "metadata": {"kind": {"request": {}}, "metadata_key": {"key": "k", "path": [{"key": "a"}]}}}]}),
            "custom_tags[0].metadata")


# ------------------------------------------------------------- OTLP (protobuf)


def pb_fields(data):
    """Decodes one protobuf message into [(field, wire_type, value)]: ints for
    varint/fixed, bytes for length-delimited."""
    out = []
    i = 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
    while i < len(data):
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            out.append((field, wt, varint()))
        elif wt == 1:
            out.append((field, wt, int.from_bytes(data[i:i + 8], "little")))
            i += 8
        elif wt == 2:
            n = varint()
            out.append((field, wt, data[i:i + n]))
            i += n
        elif wt == 5:
            out.append((field, wt, int.from_bytes(data[i:i + 4], "little")))
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
    return out


def pb_get(fields, number):
    return [v for f, _, v in fields if f == number]


def otlp_attributes(raw_list):
    attrs = {}
    for raw in raw_list:
        kv = pb_fields(raw)
        key = pb_get(kv, 1)[0].decode()
        value = pb_fields(pb_get(kv, 2)[0])
        attrs[key] = pb_get(value, 1)[0].decode()
    return attrs


def otlp_decode(body):
    """ExportTraceServiceRequest -> [span dict] with resource and scope."""
    spans = []
    for rs_raw in pb_get(pb_fields(body), 1):
        rs = pb_fields(rs_raw)
        resource = otlp_attributes(pb_get(pb_fields(pb_get(rs, 1)[0]), 1))
        for ss_raw in pb_get(rs, 2):
            ss = pb_fields(ss_raw)
            scope = pb_fields(pb_get(ss, 1)[0])
            for sp_raw in pb_get(ss, 2):
                sp = pb_fields(sp_raw)
                status = pb_get(sp, 15)
                spans.append({
                    "resource": resource,
                    "scope": pb_get(scope, 1)[0].decode(),
                    "traceId": pb_get(sp, 1)[0].hex(),
                    "id": pb_get(sp, 2)[0].hex(),
                    "tracestate": (pb_get(sp, 3) or [b""])[0].decode(),
                    "parentId": (pb_get(sp, 4) or [b""])[0].hex() or None,
                    "name": pb_get(sp, 5)[0].decode(),
                    "kind": pb_get(sp, 6)[0],
                    "start_ns": pb_get(sp, 7)[0],
                    "end_ns": pb_get(sp, 8)[0],
                    "tags": otlp_attributes(pb_get(sp, 9)),
                    "status": pb_get(pb_fields(status[0]), 3)[0] if status else 0,
                })
    return spans


def otel_provider(service_name=None, cluster="zipkin", path="/v1/traces", headers=None):
    svc = {"http_uri": {"uri": "http://otel-collector:4318" + path, "cluster": cluster,
                        "timeout": "2s"}}
    if headers:
        svc["request_headers_to_add"] = [{"header": {"key": k, "value": v}} for k, v in headers]
    cfg = {"@type": OTEL_TYPE, "http_service": svc}
    if service_name:
        cfg["service_name"] = service_name
    return {"name": "envoy.tracers.opentelemetry", "typed_config": cfg}


SERVER, CLIENT = 2, 3


class OpenTelemetry(TracingCase):
    def otlp_spans(self, col):
        spans = []
        for body in col.bodies():
            spans.extend(otlp_decode(body))
        return spans

    def test_two_hops_continue_the_callers_traceparent(self):
        col = self.collector(status=200)
        a, b, up = self.two_hops(col, a_tracing={"spawn_upstream_span": True},
                                 a_provider=otel_provider("svc-a", headers=[("x-api-key", "k1")]),
                                 b_provider=otel_provider("svc-b"))
        trace = "0af7651916cd43dd8448eb211c80319c"
        caller = "b7ad6b7169203331"
        t0 = time.time_ns()
        status, _, body, _ = http_get(a.port("http"), "/otel", headers={
            "Host": "front.example", "traceparent": "00-%s-%s-01" % (trace, caller),
            "tracestate": "vendor=abc"})
        t1 = time.time_ns()
        self.assertEqual(status, 200)
        seen = upstream_json(body)["headers"]
        wait_until(lambda: len(self.otlp_spans(col)) >= 3, what="three OTLP spans")
        spans = self.otlp_spans(col)
        self.assertEqual(len(spans), 3)
        a_spans = [s for s in spans if s["resource"]["service.name"] == "svc-a"]
        b_spans = [s for s in spans if s["resource"]["service.name"] == "svc-b"]
        a_server = [s for s in a_spans if s["kind"] == SERVER][0]
        a_client = [s for s in a_spans if s["kind"] == CLIENT][0]
        b_server = b_spans[0]
        self.assertEqual({s["traceId"] for s in spans}, {trace})
        self.assertEqual(a_server["parentId"], caller)
        self.assertEqual(a_client["parentId"], a_server["id"])
        self.assertEqual(b_server["parentId"], a_client["id"])  # no shared ids in OTel
        self.assertEqual(b_server["kind"], SERVER)
        self.assertEqual(a_server["name"], "ingress")
        self.assertEqual(a_client["name"], "router next egress")
        self.assertEqual({s["tracestate"] for s in spans}, {"vendor=abc"})
        self.assertEqual(seen["traceparent"], "00-%s-%s-01" % (trace, b_server["id"]))
        self.assertEqual(seen["tracestate"], "vendor=abc")
        tags = a_server["tags"]
        self.assertEqual(tags["http.status_code"], "200")
        self.assertEqual(tags["http.url"], "http://front.example/otel")
        self.assertEqual(tags["upstream_cluster"], "next")
        self.assertEqual(tags["node_id"], "svc-a-id")
        self.assertEqual(a_server["scope"], "legate")
        self.assertEqual(a_server["status"], 0)
        for s in spans:
            self.assertGreaterEqual(s["start_ns"], t0 - 10**6)
            self.assertLessEqual(s["end_ns"], t1 + 10**6)
            self.assertLessEqual(s["start_ns"], s["end_ns"])
        path, headers, _ = col.posts[0]
        self.assertEqual(path, "/v1/traces")
        self.assertEqual(headers["content-type"], "application/x-protobuf")
        self.assertEqual(headers["host"], "otel-collector:4318")
        a_posts = [h for _, h, body in col.posts
                   if otlp_decode(body)[0]["resource"]["service.name"] == "svc-a"]
        self.assertTrue(a_posts and all(h.get("x-api-key") == "k1" for h in a_posts))
        a.wait_for_stat("tracing.opentelemetry.http_reports_success", lambda v: v >= 1)
        self.assertGreaterEqual(a.stat("tracing.opentelemetry.http_reports_sent"), 1)
        self.assertGreaterEqual(a.stat("tracing.opentelemetry.spans_sent"), 2)

    def test_new_trace_unsampled_parent_and_malformed_traceparent(self):
        col = self.collector(status=200)
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, otel_provider(),
                                            collector_port=col.port))
        port = lg.port("http")
        # No context: a new 128-bit trace, sampled by our decision (100%).
        _, _, body, _ = http_get(port, "/a")
        tp = upstream_json(body)["headers"]["traceparent"]
        self.assertRegex(tp, r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
        span = col.wait_spans(lambda s: True, decode=lambda: self.otlp_spans(col))[0]
        self.assertEqual(span["traceId"], tp[3:35])
        self.assertIsNone(span["parentId"])
        self.assertEqual(span["resource"]["service.name"], "unknown_service:legate")
        # The caller said "not sampled": nothing recorded, the flag travels on.
        _, _, body, _ = http_get(port, "/b", headers={
            "traceparent": "00-11111111111111111111111111111111-2222222222222222-00"})
        seen = upstream_json(body)["headers"]["traceparent"]
        self.assertTrue(seen.startswith("00-11111111111111111111111111111111-"))
        self.assertTrue(seen.endswith("-00"))
        # Malformed (upper-case hex): ignored, a new trace starts.
        _, _, body, _ = http_get(port, "/c", headers={
            "traceparent": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"})
        fresh = upstream_json(body)["headers"]["traceparent"]
        self.assertNotIn("0af7651916cd43dd8448eb211c80319c", fresh)
        col.wait_spans(lambda s: s["traceId"] == fresh[3:35], decode=lambda: self.otlp_spans(col))
        self.assertNotIn("11111111111111111111111111111111",
                         {s["traceId"] for s in self.otlp_spans(col)})

    def test_5xx_sets_error_status(self):
        col = self.collector(status=200)
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, otel_provider(),
                                            collector_port=col.port))
        self.assertEqual(http_get(lg.port("http"), "/status/502")[0], 502)
        span = col.wait_spans(lambda s: True, decode=lambda: self.otlp_spans(col))[0]
        self.assertEqual(span["status"], 2)
        self.assertEqual(span["tags"]["error"], "true")

    def test_dead_collector_counts_failures(self):
        up = self.server(HttpUpstream)
        lg = self.start_legate(proxy_config("solo", up.port, otel_provider(),
                                            collector_port=refused_port()))
        for _ in range(5):
            self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        lg.wait_for_stat("tracing.opentelemetry.http_reports_failed", lambda v: v >= 1)
        self.assertEqual(lg.stat("tracing.opentelemetry.http_reports_success"), 0)

    def test_bootstrap_tracer_serves_connection_managers_without_provider(self):
        col = self.collector(status=200)
        up = self.server(HttpUpstream)
        cfg = proxy_config("solo", up.port, None, collector_port=col.port)
        cfg["tracing"] = {"http": otel_provider("from-bootstrap")}
        lg = self.start_legate(cfg)
        self.assertEqual(http_get(lg.port("http"), "/")[0], 200)
        span = col.wait_spans(lambda s: True, decode=lambda: self.otlp_spans(col))[0]
        self.assertEqual(span["resource"]["service.name"], "from-bootstrap")

    def test_unimplemented_fields_are_refused(self):
        from harness import run_legate
        port = refused_port()
        for provider, needle in [
                ({"name": "envoy.tracers.opentelemetry", "typed_config": {
                    "@type": OTEL_TYPE, "grpc_service": {"envoy_grpc": {"cluster_name": "zipkin"}}}},
                 "grpc_service"),
                (dict(otel_provider(), typed_config=dict(otel_provider()["typed_config"],
                                                         sampler={"name": "s", "typed_config": {
                                                             "@type": "type.googleapis.com/google.protobuf.Empty"}})),
                 "sampler")]:
            d = self.tmpdir()
            path = os.path.join(d, "config.json")
            with open(path, "w") as f:
                json.dump(proxy_config("x", port, provider), f)
            code, _, err = run_legate(["--mode", "validate", "-c", path])
            self.assertEqual(code, 1, err)
            self.assertIn(needle, err)


if __name__ == "__main__":
    unittest.main()
