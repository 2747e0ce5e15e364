"""Routing through the real binary: virtual host selection by domain, route matches,
weighted and header-chosen clusters, rewrites, redirects, direct responses, header
mutations at every level, no-route and no-cluster replies, and route timeouts."""

import http.client
import json
import time
import unittest

from harness import (HttpUpstream, LegateTestCase, bootstrap, http_get, http_listener, route,
                     route_config, static_cluster, virtual_host)


def direct(body, status=200):
    return {"direct_response": {"status": status, "body": {"inline_string": body}}}


def get(port, path, host=None, headers=None, method="GET"):
    h = dict(headers or {})
    if host is not None:
        h["Host"] = host
    status, headers, body, resp = http_get(port, path, method=method, headers=h)
    return status, body.decode("latin-1"), resp


class RoutingCase(LegateTestCase):
    def start(self, rc, clusters=(), **hcm):
        lg = self.start_legate(bootstrap([http_listener("http", rc, **hcm)], list(clusters)))
        return lg, lg.port("http")

    def upstream(self, name="up"):
        return self.server(HttpUpstream, name=name)


class VirtualHosts(RoutingCase):
    def test_domain_precedence_exact_suffix_prefix_star(self):
        rc = route_config([
            virtual_host("star", ["*"], [route({"prefix": "/"}, **direct("star"))]),
            virtual_host("prefix", ["api.*"], [route({"prefix": "/"}, **direct("prefix"))]),
            virtual_host("suffix", ["*.example.com"], [route({"prefix": "/"}, **direct("suffix"))]),
            virtual_host("exact", ["www.example.com", "other.test:8080"],
                         [route({"prefix": "/"}, **direct("exact"))]),
        ])
        lg, port = self.start(rc)
        cases = [
            ("www.example.com", "exact"),
            ("WWW.Example.COM", "exact"),       # domains match case-insensitively
            ("other.test:8080", "exact"),
            ("a.example.com", "suffix"),
            ("deep.a.example.com", "suffix"),
            ("api.example.com", "suffix"),      # suffix wildcards win over prefix ones
            ("api.other.org", "prefix"),
            ("example.com", "star"),            # "*.example.com" needs at least one char
            ("unknown.org", "star"),
            ("other.test", "star"),             # the port takes part in the match
        ]
        for host, want in cases:
            status, body, _ = get(port, "/", host)
            self.assertEqual((host, status, body), (host, 200, want))

    def test_longest_suffix_wins(self):
        rc = route_config([
            virtual_host("short", ["*.com"], [route({"prefix": "/"}, **direct("short"))]),
            virtual_host("long", ["*.foo.com"], [route({"prefix": "/"}, **direct("long"))]),
        ])
        lg, port = self.start(rc)
        self.assertEqual(get(port, "/", "x.foo.com")[1], "long")
        self.assertEqual(get(port, "/", "x.bar.com")[1], "short")

    def test_no_virtual_host_and_no_route_give_404(self):
        up = self.upstream()
        rc = route_config([virtual_host("only", ["only.example"],
                                        [route({"prefix": "/api"}, cluster="up")])])
        lg, port = self.start(rc, [static_cluster("up", [up.port])])
        self.assertEqual(get(port, "/api", "elsewhere.example")[0], 404)
        self.assertEqual(get(port, "/other", "only.example")[0], 404)
        self.assertEqual(get(port, "/api/x", "only.example")[0], 200)
        stats = lg.stats()
        self.assertEqual(stats["http.ingress.no_route"], 2)
        self.assertEqual(stats["http.ingress.downstream_rq_4xx"], 2)
        self.assertEqual(up.count(), 1)


class RouteMatches(RoutingCase):
    def setUp(self):
        super().setUp()
        routes = [
            route({"path": "/exact"}, **direct("path")),
            route({"safe_regex": {"regex": "^/re/[0-9]+$"}}, **direct("regex")),
            route({"prefix": "/h", "headers": [{"name": "x-a", "string_match": {"exact": "1"}}]},
                  **direct("hdr-exact")),
            route({"prefix": "/h", "headers": [{"name": "x-b", "present_match": True}]},
                  **direct("hdr-present")),
            route({"prefix": "/h", "headers": [{"name": "x-c", "string_match": {"exact": "no"},
                                                "invert_match": True},
                                               {"name": "x-c", "present_match": True}]},
                  **direct("hdr-invert")),
            route({"prefix": "/h"}, **direct("h-none")),
            route({"prefix": "/q", "query_parameters": [
                {"name": "debug", "string_match": {"exact": "1"}}]}, **direct("query-exact")),
            route({"prefix": "/q", "query_parameters": [
                {"name": "flag", "present_match": True}]}, **direct("query-present")),
            route({"prefix": "/q"}, **direct("q-none")),
            route({"prefix": "/pre"}, **direct("prefix")),
            route({"prefix": "/CaseLess", "case_sensitive": False}, **direct("caseless")),
            route({"prefix": "/"}, **direct("fallback")),
        ]
        self.lg, self.port = self.start(route_config([virtual_host("v", ["*"], routes)]))

    def check(self, path, want, headers=None):
        status, body, _ = get(self.port, path, headers=headers)
        self.assertEqual((path, headers, status, body), (path, headers, 200, want))

    def test_path_prefix_regex(self):
        self.check("/exact", "path")
        self.check("/exact?x=1", "path")        # the query is not part of the path
        self.check("/exact/more", "fallback")
        self.check("/re/123", "regex")
        self.check("/re/12a", "fallback")
        self.check("/prefix/anything", "prefix")
        self.check("/pre", "prefix")
        self.check("/caseless/x", "caseless")
        self.check("/", "fallback")

    def test_header_matchers(self):
        self.check("/h", "hdr-exact", {"x-a": "1"})
        self.check("/h", "hdr-present", {"x-a": "2", "x-b": ""})
        self.check("/h", "hdr-invert", {"x-c": "yes"})
        self.check("/h", "h-none", {"x-c": "no"})
        self.check("/h", "h-none")

    def test_query_parameter_matchers(self):
        self.check("/q?debug=1", "query-exact")
        self.check("/q?a=b&debug=1", "query-exact")
        self.check("/q?debug=2", "q-none")
        self.check("/q?flag", "query-present")
        self.check("/q?flag=x&debug=0", "query-present")
        self.check("/q", "q-none")


class Clusters(RoutingCase):
    def test_weighted_clusters_spread_over_both(self):
        a, b = self.upstream("a"), self.upstream("b")
        rc = route_config([virtual_host("v", ["*"], [route({"prefix": "/"}, route_extra={
            "weighted_clusters": {"clusters": [{"name": "a", "weight": 50},
                                               {"name": "b", "weight": 50}]}})])])
        lg, port = self.start(rc, [static_cluster("a", [a.port]), static_cluster("b", [b.port])])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        seen = {"a": 0, "b": 0}
        for i in range(60):
            conn.request("GET", "/w%d" % i)
            resp = conn.getresponse()
            resp.read()
            seen[resp.getheader("x-upstream")] += 1
        self.assertEqual(seen["a"] + seen["b"], 60)
        self.assertGreater(seen["a"], 5, seen)
        self.assertGreater(seen["b"], 5, seen)
        stats = lg.stats()
        self.assertEqual(stats["cluster.a.upstream_rq_total"], seen["a"])
        self.assertEqual(stats["cluster.b.upstream_rq_total"], seen["b"])

    def test_weighted_zero_weight_gets_nothing(self):
        a, b = self.upstream("a"), self.upstream("b")
        rc = route_config([virtual_host("v", ["*"], [route({"prefix": "/"}, route_extra={
            "weighted_clusters": {"clusters": [{"name": "a", "weight": 1},
                                               {"name": "b", "weight": 0}]}})])])
        lg, port = self.start(rc, [static_cluster("a", [a.port]), static_cluster("b", [b.port])])
        for _ in range(10):
            self.assertEqual(get(port, "/")[2].getheader("x-upstream"), "a")
        self.assertEqual(b.count(), 0)

    def test_cluster_header_and_unknown_cluster(self):
        a, b = self.upstream("a"), self.upstream("b")
        rc = route_config([virtual_host("v", ["*"], [
            route({"prefix": "/"}, route_extra={"cluster_header": "x-cluster"})])])
        lg, port = self.start(rc, [static_cluster("a", [a.port]), static_cluster("b", [b.port])])
        self.assertEqual(get(port, "/", headers={"x-cluster": "b"})[2].getheader("x-upstream"), "b")
        self.assertEqual(get(port, "/", headers={"x-cluster": "a"})[2].getheader("x-upstream"), "a")
        status, _, _ = get(port, "/", headers={"x-cluster": "nope"})
        self.assertEqual(status, 503)
        status, _, _ = get(port, "/")  # no header at all
        self.assertEqual(status, 503)
        self.assertEqual(lg.stat("http.ingress.no_cluster"), 2)
        self.assertEqual(a.count() + b.count(), 2)


class Rewrites(RoutingCase):
    def setUp(self):
        super().setUp()
        self.up = self.upstream()
        rc = route_config([virtual_host("v", ["*"], [
            route({"prefix": "/old/"}, cluster="up", route_extra={"prefix_rewrite": "/new/"}),
            route({"prefix": "/strip"}, cluster="up", route_extra={"prefix_rewrite": "/"}),
            route({"prefix": "/rx/"}, cluster="up", route_extra={"regex_rewrite": {
                "pattern": {"regex": "^/rx/([a-z]+)/([a-z]+)$"}, "substitution": "/\\2/\\1"}}),
            route({"prefix": "/host"}, cluster="up",
                  route_extra={"host_rewrite_literal": "upstream.internal"}),
            route({"prefix": "/"}, cluster="up"),
        ])])
        self.lg, self.port = self.start(rc, [static_cluster("up", [self.up.port])])

    def test_prefix_rewrite(self):
        self.assertEqual(get(self.port, "/old/x/y?q=1")[0], 200)
        seen = self.up.last()
        self.assertEqual(seen.path, "/new/x/y?q=1")
        self.assertEqual(seen.header("x-envoy-original-path"), "/old/x/y?q=1")
        get(self.port, "/strip/rest")
        # Envoy's documented pitfall: prefix "/strip" -> "/" turns /strip/rest into //rest.
        self.assertEqual(self.up.last().path, "//rest")

    def test_regex_rewrite_keeps_query(self):
        get(self.port, "/rx/first/second?k=v")
        seen = self.up.last()
        self.assertEqual(seen.path, "/second/first?k=v")
        self.assertEqual(seen.header("x-envoy-original-path"), "/rx/first/second?k=v")

    def test_host_rewrite_literal(self):
        get(self.port, "/host/x", host="client.example")
        seen = self.up.last()
        self.assertEqual(seen.header("host"), "upstream.internal")
        self.assertEqual(seen.path, "/host/x")
        self.assertIsNone(seen.header("x-envoy-original-path"))
        get(self.port, "/plain", host="client.example")
        self.assertEqual(self.up.last().header("host"), "client.example")


class Redirects(RoutingCase):
    def setUp(self):
        super().setUp()
        rc = route_config([virtual_host("v", ["*"], [
            route({"path": "/secure"}, redirect={"https_redirect": True}),
            route({"prefix": "/old-page"}, redirect={"path_redirect": "/new-page",
                                                    "response_code": "FOUND",
                                                    "strip_query": True}),
            route({"prefix": "/keep-q"}, redirect={"path_redirect": "/kq",
                                                  "response_code": "PERMANENT_REDIRECT"}),
            route({"prefix": "/elsewhere"}, redirect={"host_redirect": "other.example",
                                                     "response_code": "SEE_OTHER"}),
            route({"prefix": "/"}, **direct("no redirect")),
        ])])
        self.lg, self.port = self.start(rc)

    def test_redirects_exact_location(self):
        cases = [
            ("/secure", 301, "https://example.com/secure"),
            ("/old-page?a=1&b=2", 302, "http://example.com/new-page"),
            ("/keep-q?a=1", 308, "http://example.com/kq?a=1"),
            ("/elsewhere/p?z=9", 303, "http://other.example/elsewhere/p?z=9"),
        ]
        for path, code, location in cases:
            status, body, resp = get(self.port, path, "example.com")
            self.assertEqual((path, status, resp.getheader("location")), (path, code, location))
            self.assertEqual(body, "")
        self.assertEqual(self.lg.stat("http.ingress.rq_redirect"), len(cases))
        self.assertEqual(get(self.port, "/x", "example.com")[1], "no redirect")

    def test_https_redirect_drops_default_port(self):
        status, _, resp = get(self.port, "/secure", "example.com:80")
        self.assertEqual(status, 301)
        self.assertEqual(resp.getheader("location"), "https://example.com/secure")


class DirectResponses(RoutingCase):
    def test_direct_response_with_and_without_body(self):
        rc = route_config([virtual_host("v", ["*"], [
            route({"path": "/hello"}, **direct("hello direct\n")),
            route({"path": "/gone"}, direct_response={"status": 410}),
            route({"path": "/head"}, **direct("abc")),
        ])])
        lg, port = self.start(rc)
        status, body, resp = get(port, "/hello")
        self.assertEqual((status, body), (200, "hello direct\n"))
        self.assertEqual(resp.getheader("content-length"), str(len("hello direct\n")))
        self.assertEqual(resp.getheader("server"), "legate")
        status, body, resp = get(port, "/gone")
        self.assertEqual((status, body), (410, ""))
        status, body, resp = get(port, "/head", method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(lg.stat("http.ingress.rq_direct_response"), 3)


class HeaderMutations(RoutingCase):
    def test_request_and_response_headers_at_every_level(self):
        def handler(req):
            return (200, [("x-upstream-secret", "s3cret"), ("x-upstream-ok", "1"),
                          ("x-vh-remove", "gone")], b"ok")
        up = self.server(HttpUpstream, handler=handler)

        def add(key, value, **kw):
            h = {"header": {"key": key, "value": value}}
            h.update(kw)
            return h
        rc = route_config(
            [virtual_host("v", ["*"], [
                route({"prefix": "/"}, cluster="up",
                      request_headers_to_add=[add("x-rt", "route"),
                                              add("x-client", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                                              add("x-overwrite", "new",
                                                  append_action="OVERWRITE_IF_EXISTS_OR_ADD")],
                      request_headers_to_remove=["x-drop-me"],
                      response_headers_to_add=[add("x-rt-resp", "route")],
                      response_headers_to_remove=["x-upstream-secret"]),
            ], request_headers_to_add=[add("x-vh", "vhost")],
                response_headers_to_add=[add("x-vh-resp", "vhost")],
                response_headers_to_remove=["x-vh-remove"])],
            request_headers_to_add=[add("x-rc", "config")],
            response_headers_to_add=[add("x-rc-resp", "config")])
        lg, port = self.start(rc, [static_cluster("up", [up.port])])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/", headers={"x-drop-me": "1", "x-overwrite": "old",
                                          "x-rt": "client"})
        local_port = conn.sock.getsockname()[1]
        resp = conn.getresponse()
        self.assertEqual(resp.read(), b"ok")
        seen = up.last()
        self.assertEqual(seen.header("x-rc"), "config")
        self.assertEqual(seen.header("x-vh"), "vhost")
        self.assertEqual(seen.header("x-client"), "127.0.0.1:%d" % local_port)
        self.assertEqual(seen.header_all("x-overwrite"), ["new"])
        values = ",".join(seen.header_all("x-rt")).replace(" ", "").split(",")
        self.assertEqual(values, ["client", "route"])
        self.assertIsNone(seen.header("x-drop-me"))
        self.assertEqual(resp.getheader("x-rt-resp"), "route")
        self.assertEqual(resp.getheader("x-vh-resp"), "vhost")
        self.assertEqual(resp.getheader("x-rc-resp"), "config")
        self.assertEqual(resp.getheader("x-upstream-ok"), "1")
        self.assertIsNone(resp.getheader("x-upstream-secret"))
        self.assertIsNone(resp.getheader("x-vh-remove"))


class Timeouts(RoutingCase):
    def setUp(self):
        super().setUp()
        self.up = self.upstream()
        rc = route_config([virtual_host("v", ["*"], [
            route({"prefix": "/short"}, cluster="up", route_extra={"timeout": "0.3s"}),
            route({"prefix": "/"}, cluster="up", route_extra={"timeout": "10s"}),
        ])])
        self.lg, self.port = self.start(rc, [static_cluster("up", [self.up.port])],
                                        use_remote_address=True)

    def test_route_timeout_gives_504(self):
        t0 = time.monotonic()
        status, body, resp = get(self.port, "/short/delay/2000")
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 504)
        self.assertEqual(body, "upstream request timeout")
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertLess(elapsed, 1.5)
        self.assertEqual(self.up.last().header("x-envoy-expected-rq-timeout-ms"), "300")
        self.lg.wait_for_stat("cluster.up.upstream_rq_timeout", lambda v: v == 1)
        self.assertEqual(self.lg.stat("http.ingress.downstream_rq_5xx"), 1)
        # A fast request on the same route still works.
        self.assertEqual(get(self.port, "/short/fast")[0], 200)

    def test_timeout_header_overrides_route_timeout(self):
        t0 = time.monotonic()
        status, body, _ = get(self.port, "/delay/2000",
                              headers={"x-envoy-upstream-rq-timeout-ms": "200"})
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 504)
        self.assertEqual(body, "upstream request timeout")
        self.assertLess(elapsed, 1.5)
        seen = self.up.last()
        self.assertIsNone(seen.header("x-envoy-upstream-rq-timeout-ms"))
        self.assertEqual(seen.header("x-envoy-expected-rq-timeout-ms"), "200")
        self.lg.wait_for_stat("cluster.up.upstream_rq_timeout", lambda v: v == 1)


if __name__ == "__main__":
    unittest.main()
