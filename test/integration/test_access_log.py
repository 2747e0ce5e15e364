"""Access logs end to end: filters decide which streams are logged, lines are written by
the buffered writer (within the flush interval, and all of them on clean shutdown)."""

import calendar
import http.client
import json
import os
import signal
import socket
import time
import unittest

from harness import (HttpUpstream, LegateTestCase, file_log, http_bootstrap, http_get,
                     raw_request, refused_port, route, route_config, run_legate, static_cluster,
                     virtual_host, read_lines, wait_for_lines, wait_until)


ONLY_5XX = {"status_code_filter": {"comparison": {"op": "GE", "value": {
    "default_value": 500, "runtime_key": "access_log.only_5xx"}}}}


class AccessLogCase(LegateTestCase):
    def start(self, access_log):
        up = self.server(HttpUpstream)
        lg = self.start_legate(http_bootstrap([static_cluster("up", [up.port])],
                                              access_log=access_log))
        return lg, lg.port("http")

    def test_status_code_filter_logs_only_5xx(self):
        log_path = os.path.join(self.tmpdir(), "errors.log")
        all_path = os.path.join(self.tmpdir(), "all.log")
        lg, port = self.start([
            file_log(log_path, "%RESPONSE_CODE% %REQ(:PATH)% %RESPONSE_CODE_DETAILS% "
                               "%UPSTREAM_REQUEST_ATTEMPT_COUNT%\n", ONLY_5XX),
            file_log(all_path, "%RESPONSE_CODE% %REQUEST_DURATION% %RESPONSE_DURATION% "
                               "%RESPONSE_TX_DURATION% %REQUESTED_SERVER_NAME%\n"),
        ])
        for path, code in (("/ok", 200), ("/a/status/503", 503), ("/ok/2", 200), ("/b/status/503", 503)):
            status, _, _, _ = http_get(port, path)
            self.assertEqual(status, code)
        # Lines reach the file within the flush interval (1 s), without shutdown.
        wait_until(lambda: len(read_lines(all_path)) >= 4, 10, what="4 lines in all.log")
        self.assertEqual(read_lines(log_path),
                         ["503 /a/status/503 via_upstream 1", "503 /b/status/503 via_upstream 1"])
        for line in read_lines(all_path):
            code, rq, rs, tx, sni = line.split(" ")
            self.assertIn(code, ("200", "503"))
            self.assertRegex(rq, r"^\d+$", line)
            self.assertRegex(rs, r"^\d+$", line)
            self.assertRegex(tx, r"^\d+$", line)
            self.assertLessEqual(int(rq), int(rs), line)
            self.assertEqual(sni, "-", line)
        self.assertGreaterEqual(lg.stat("filesystem.write_buffered"), 6)

    def test_lines_buffered_at_shutdown_are_written(self):
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg, port = self.start([file_log(log_path, "%RESPONSE_CODE% %REQ(:PATH)%\n")])
        for n in range(20):
            status, _, _, _ = http_get(port, "/r/%d" % n)
            self.assertEqual(status, 200)
        # Straight to a clean stop: no waiting for the flush timer.
        self.assertEqual(lg.stop(signal.SIGTERM), 0)
        self.assertEqual(read_lines(log_path), ["200 /r/%d" % n for n in range(20)])

    def test_unimplemented_filter_is_refused_naming_the_field(self):
        log_path = os.path.join(self.tmpdir(), "access.log")
        config = http_bootstrap([static_cluster("up", [1])], access_log=[
            file_log(log_path, "%RESPONSE_CODE%\n",
                     {"extension_filter": {"name": "envoy.access_loggers.extension_filters.cel"}})])
        config_path = os.path.join(self.tmpdir(), "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        code, _, err = run_legate(["-c", config_path, "--mode", "validate"])
        self.assertNotEqual(code, 0)
        self.assertIn("access_log[0].filter.extension_filter", err)

    def test_without_tracing_no_trace_id_and_nothing_traceable(self):
        # No tracing on the connection manager: no decision, no span.
        all_path = os.path.join(self.tmpdir(), "all.log")
        traceable_path = os.path.join(self.tmpdir(), "traceable.log")
        lg, port = self.start([
            file_log(all_path, "%REQ(:PATH)% %TRACE_ID%\n"),
            file_log(traceable_path, "%REQ(:PATH)%\n", {"traceable_filter": {}}),
        ])
        for path in ("/a", "/b"):
            self.assertEqual(http_get(port, path, headers={"x-envoy-force-trace": "1"})[0], 200)
        self.assertEqual(lg.stop(signal.SIGTERM), 0)
        self.assertEqual(read_lines(all_path), ["/a -", "/b -"])
        self.assertEqual(read_lines(traceable_path), [])



class AccessLogFilters(LegateTestCase):
    """Each filter kind on real requests; every log writes the path, so the lines say
    which streams each filter let through."""

    def test_filter_kinds(self):
        def handler(req):
            if req.path == "/grpc-trailer":  # grpc-status in the trailers
                return (b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\n"
                        b"transfer-encoding: chunked\r\n\r\n0\r\ngrpc-status: 14\r\n\r\n")
            if req.path == "/grpc-header":
                return (200, [("content-type", "application/grpc"), ("grpc-status", "0")], b"")
            return HttpUpstream.default_handler(up, req)
        up = self.server(HttpUpstream, handler=handler)
        d = self.tmpdir()
        dead = refused_port()
        filters = {
            "grpc": {"grpc_status_filter": {"statuses": ["UNAVAILABLE"]}},
            "grpc_not_ok": {"grpc_status_filter": {"statuses": ["OK"], "exclude": True}},
            "uf": {"response_flag_filter": {"flags": ["UF", "UH"]}},
            "and": {"and_filter": {"filters": [
                {"status_code_filter": {"comparison": {"op": "GE", "value": {
                    "default_value": 500, "runtime_key": "k.min"}}}},
                {"not_health_check_filter": {}}]}},
            "or": {"or_filter": {"filters": [
                {"duration_filter": {"comparison": {"op": "GE", "value": {
                    "default_value": 3600000, "runtime_key": "k.dur"}}}},
                {"header_filter": {"header": {"name": "x-log", "string_match": {"exact": "yes"}}}}]}},
            "tcp_only": {"log_type_filter": {"types": ["TcpConnectionEnd"]}},
            "not_tcp": {"log_type_filter": {"types": ["TcpConnectionEnd"], "exclude": True}},
            "meta": {"metadata_filter": {"matcher": {
                "filter": "envoy.test", "path": [{"key": "k"}], "value": {"present_match": True}},
                "match_if_key_not_found": False}},
        }
        logs = [file_log(os.path.join(d, name + ".log"), "%REQ(:PATH)%\n", f)
                for name, f in filters.items()]
        routes = route_config([virtual_host("vh", ["*"], [
            route({"prefix": "/dead"}, cluster="dead"), route({"prefix": "/"}, cluster="up")])])
        lg = self.start_legate(http_bootstrap(
            [static_cluster("up", [up.port]), static_cluster("dead", [dead])], route_cfg=routes,
            access_log=logs))
        port = lg.port("http")
        for path, headers, code in (("/ok", {}, 200), ("/grpc-trailer", {}, 200),
                                    ("/grpc-header", {}, 200), ("/status/503", {}, 503),
                                    ("/dead", {}, 503), ("/logme", {"x-log": "yes"}, 200),
                                    ("/status/404", {"x-log": "no"}, 404)):
            self.assertEqual(http_get(port, path, headers=headers)[0], code, path)
        all_paths = ["/ok", "/grpc-trailer", "/grpc-header", "/status/503", "/dead", "/logme",
                     "/status/404"]
        # not_tcp logs every HTTP stream: once it has all lines, every log is flushed.
        self.assertEqual(wait_for_lines(os.path.join(d, "not_tcp.log"), 7), all_paths)
        lg.stop(signal.SIGTERM)

        def lines(name):
            try:
                with open(os.path.join(d, name + ".log")) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []
        # UNAVAILABLE: trailer grpc-status 14, and HTTP 503s without one.
        self.assertEqual(lines("grpc"), ["/grpc-trailer", "/status/503", "/dead"])
        # Not OK: everything but the explicit grpc-status 0 (200s without one are UNKNOWN).
        self.assertEqual(lines("grpc_not_ok"), [p for p in all_paths if p != "/grpc-header"])
        self.assertEqual(lines("uf"), ["/dead"])
        self.assertEqual(lines("and"), ["/status/503", "/dead"])
        self.assertEqual(lines("or"), ["/logme"])
        self.assertEqual(lines("tcp_only"), [])
        self.assertEqual(lines("meta"), [])  # no dynamic metadata: the key is not found

    def test_bad_filters_are_config_errors_naming_the_field(self):
        d = self.tmpdir()
        cases = [
            ({"response_flag_filter": {"flags": ["UF", "NOPE"]}},
             # The API's own validation rule names the flags Envoy knows.
             "access_log[0].filter.response_flag_filter.flags[1]: value 'NOPE' must be one of"),
            ({"extension_filter": {"name": "envoy.access_loggers.extension_filters.cel"}},
             "access_log[0].filter.extension_filter: this access log filter is not "
             "implemented by legate"),
            ({"or_filter": {"filters": [{"not_health_check_filter": {}}, {"metadata_filter": {
                "matcher": {"filter": "a", "path": [{"key": "b"}],
                            "value": {"list_match": {"one_of": {"present_match": True}}}}}}]}},
             "access_log[0].filter.or_filter.filters[1].metadata_filter.matcher.value: "
             "list_match and or_match are not implemented by legate yet"),
        ]
        for log_filter, message in cases:
            config = http_bootstrap([static_cluster("up", [1])], access_log=[
                file_log(os.path.join(d, "a.log"), "%RESPONSE_CODE%\n", log_filter)])
            config_path = os.path.join(d, "config.json")
            with open(config_path, "w") as f:
                json.dump(config, f)
            code, _, err = run_legate(["-c", config_path, "--mode", "validate"])
            self.assertNotEqual(code, 0)
            self.assertIn(message, err)


def request_from(port, method, path, headers=None, body=None):
    """One request on a fresh connection from a known local port: (client address,
    status, response body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=("127.0.0.1", 0))
    try:
        conn.connect()
        client = conn.sock.getsockname()
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return client, resp.status, resp.read()
    finally:
        conn.close()


class AccessLogOperators(LegateTestCase):
    """Each command operator against what the test knows independently: the client's and
    upstream's own socket addresses, the bytes they sent, the headers, the clock."""

    def start_with(self, logs, clusters=None, routes=None, **hcm):
        self.up = self.server(HttpUpstream)
        if clusters is None:
            clusters = [static_cluster("backend", [self.up.port])]
        if routes is None:
            routes = route_config([virtual_host("vh", ["*"], [
                dict(route({"prefix": "/"}, cluster="backend"), name="main-route")])])
        self.lg = self.start_legate(http_bootstrap(clusters, route_cfg=routes, access_log=logs,
                                                   **hcm))
        return self.lg.port("http")

    def test_protocol_is_the_requests_own(self):
        # An HTTP/1.0 request logs HTTP/1.0; upstream, legate speaks HTTP/1.1.
        path = os.path.join(self.tmpdir(), "proto.log")
        port = self.start_with([file_log(path, "%REQ(:PATH)% %PROTOCOL% %UPSTREAM_PROTOCOL%\n")],
                               http_protocol_options={"accept_http_10": True})
        for version in (b"1.0", b"1.1"):
            resp, _ = raw_request(port, b"GET /v" + version + b" HTTP/" + version +
                                  b"\r\nHost: a\r\nConnection: close\r\n\r\n")
            self.assertEqual(resp.status, 200)
        lines = wait_for_lines(path, 2)
        self.assertEqual(sorted(lines), ["/v1.0 HTTP/1.0 HTTP/1.1", "/v1.1 HTTP/1.1 HTTP/1.1"])

    def test_filter_chain_name(self):
        # The name of the listener's filter chain the connection took; "-" when unnamed.
        path = os.path.join(self.tmpdir(), "chain.log")
        self.up = self.server(HttpUpstream)
        b = http_bootstrap([static_cluster("backend", [self.up.port])],
                           access_log=[file_log(path, "%REQ(:PATH)% %FILTER_CHAIN_NAME%\n")])
        named = b["static_resources"]["listeners"][0]
        named["filter_chains"][0]["name"] = "web-chain"
        unnamed = json.loads(json.dumps(named))
        unnamed["name"] = "plain"
        del unnamed["filter_chains"][0]["name"]
        b["static_resources"]["listeners"].append(unnamed)
        lg = self.start_legate(b)
        self.assertEqual(http_get(lg.port("http"), "/named")[0], 200)
        (line,) = wait_for_lines(path, 1)
        self.assertEqual(line, "/named web-chain")
        self.assertEqual(http_get(lg.port("plain"), "/unnamed")[0], 200)
        lines = wait_for_lines(path, 2)
        self.assertEqual(lines[1], "/unnamed -")

    def test_upstream_cluster_from_a_header_known_or_not(self):
        # cluster_header: the name the header gave is logged whether or not a cluster
        # has it (then with NC); a long unknown name is kept whole.
        path = os.path.join(self.tmpdir(), "cluster.log")
        routes = route_config([virtual_host("vh", ["*"], [
            route({"prefix": "/"}, route_extra={"cluster_header": "x-cluster"})])])
        port = self.start_with([file_log(path, "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% "
                                               "%UPSTREAM_CLUSTER%\n")], routes=routes)
        name = "no-such-cluster-with-a-long-name-%s" % ("x" * 40)
        self.assertEqual(http_get(port, "/a", headers={"x-cluster": "backend"})[0], 200)
        self.assertEqual(http_get(port, "/b", headers={"x-cluster": name})[0], 503)
        lines = wait_for_lines(path, 2)
        self.assertEqual(sorted(lines), ["/a 200 - backend", "/b 503 NC " + name])

    def test_http_operators_exact_line(self):
        path = os.path.join(self.tmpdir(), "ops.log")
        fmt = ("%REQ(:METHOD)% %REQ(:PATH)% %REQ(X-MISSING?:AUTHORITY)% %REQ(USER-AGENT):4% "
               "%RESP(X-UPSTREAM)% %PROTOCOL% %UPSTREAM_PROTOCOL% %RESPONSE_CODE% "
               "%RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% "
               "%UPSTREAM_HOST% %UPSTREAM_REMOTE_ADDRESS% %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
               "%UPSTREAM_REMOTE_PORT% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% "
               "%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %UPSTREAM_LOCAL_PORT% "
               "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% "
               "%DOWNSTREAM_REMOTE_PORT% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS% "
               "%DOWNSTREAM_DIRECT_REMOTE_PORT% %DOWNSTREAM_LOCAL_ADDRESS% "
               "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT% %ROUTE_NAME% "
               "%VIRTUAL_CLUSTER_NAME% %REQUESTED_SERVER_NAME% %STREAM_ID% "
               "%UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_TRANSPORT_FAILURE_REASON% "
               "%CONNECTION_TERMINATION_DETAILS% %DYNAMIC_METADATA(ns:key)% %HOSTNAME% "
               "%TRAILER(GRPC-STATUS)% %LOCAL_REPLY_BODY%|%CONNECTION_ID% %UPSTREAM_CONNECTION_ID%"
               "|%UNIQUE_ID%\n")
        port = self.start_with([file_log(path, fmt)])
        client, status, body = request_from(
            port, "POST", "/echo?q=1", body=b"hello",
            headers={"Host": "example.test", "User-Agent": "agent-smith", "X-Request-Id": "rid-42"})
        self.assertEqual(status, 200)
        (line,) = wait_for_lines(path, 1)
        main, ids, unique = line.split("|")
        self.assertEqual(len(self.up.peers), 1)
        up_local = self.up.peers[0]
        expected = [
            "POST", "/echo?q=1", "example.test", "agen", "up", "HTTP/1.1", "HTTP/1.1", "200",
            "via_upstream", "-", "5", str(len(body)),
            "127.0.0.1:%d" % self.up.port, "127.0.0.1:%d" % self.up.port, "127.0.0.1",
            str(self.up.port), "backend", "%s:%d" % up_local, up_local[0], str(up_local[1]),
            "%s:%d" % client, client[0], str(client[1]), "%s:%d" % client, str(client[1]),
            "127.0.0.1:%d" % port, "127.0.0.1", str(port), "main-route", "-", "-", "rid-42", "1",
            "-", "-", "-", socket.gethostname(), "-", "-"]
        self.assertEqual(main.split(" "), expected, line)
        cx, upstream_cx = ids.split(" ")
        self.assertRegex(cx, r"^\d+$")
        self.assertRegex(upstream_cx, r"^\d+$")
        self.assertNotEqual(cx, upstream_cx)  # one id space for both sides, as in Envoy
        self.assertRegex(unique, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

    def test_failure_operators_exact_line(self):
        path = os.path.join(self.tmpdir(), "fail.log")
        dead = refused_port()
        routes = route_config([virtual_host("vh", ["*"], [
            route({"prefix": "/dead"}, cluster="dead"),
            dict(route({"prefix": "/direct"}), direct_response={"status": 418}),
            route({"prefix": "/"}, cluster="backend")])])
        self.up = self.server(HttpUpstream)
        self.lg = self.start_legate(http_bootstrap(
            [static_cluster("backend", [self.up.port]), static_cluster("dead", [dead])],
            route_cfg=routes, access_log=[file_log(
                path, "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
                      "%UPSTREAM_HOST% %UPSTREAM_TRANSPORT_FAILURE_REASON% "
                      "%UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_CONNECTION_ID% %UPSTREAM_PROTOCOL% "
                      "%UPSTREAM_REQUEST_ATTEMPT_COUNT% %ROUTE_NAME%\n")]))
        port = self.lg.port("http")
        self.assertEqual(http_get(port, "/dead")[0], 503)
        self.assertEqual(http_get(port, "/direct")[0], 418)
        lines = wait_for_lines(path, 2)
        self.assertEqual(lines, [
            "/dead 503 UF upstream_reset_before_response_started{connection_failure} "
            "127.0.0.1:%d Connection refused - - - 1 -" % dead,
            "/direct 418 - direct_response - - - - - 0 -"])

    def test_start_time_specifiers(self):
        path = os.path.join(self.tmpdir(), "time.log")
        port = self.start_with([file_log(
            path, "%START_TIME(%s)%|%START_TIME(%s.%3f)%|%START_TIME(%Y-%m-%dT%H:%M:%S)%|"
                  "%START_TIME(%s.%9f)%|%START_TIME(%f)%|%START_TIME(%E3S)%|%START_TIME%\n")])
        before = int(time.time())
        self.assertEqual(http_get(port, "/t")[0], 200)
        after = int(time.time()) + 1
        (line,) = wait_for_lines(path, 1)
        secs, millis, iso, nanos, frac9, e3s, default = line.split("|")
        self.assertTrue(before <= int(secs) <= after, line)
        self.assertRegex(millis, r"^%s\.\d{3}$" % secs)
        self.assertEqual(iso, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(secs))))
        self.assertRegex(nanos, r"^%s\.\d{9}$" % secs)
        self.assertEqual(frac9, nanos.split(".")[1])
        self.assertTrue(nanos.startswith(millis), line)
        self.assertEqual(e3s, "%s.%s" % (iso[-2:], millis.split(".")[1]))
        self.assertEqual(default, "%s.%sZ" % (iso, millis.split(".")[1]))
        self.assertEqual(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%S")), int(secs))

    def test_json_format_typed_nested_and_omit_empty(self):
        path = os.path.join(self.tmpdir(), "json.log")
        log = file_log(path, "")
        log["typed_config"]["log_format"] = {
            "json_format": {
                "code": "%RESPONSE_CODE%",
                "bytes": {"in": "%BYTES_RECEIVED%", "out": "%BYTES_SENT%"},
                "upstream": {"port": "%UPSTREAM_REMOTE_PORT%", "host": "%UPSTREAM_HOST%"},
                "text": "code=%RESPONSE_CODE%",
                "missing": "%REQ(X-NOPE)%",
                "meta": "%DYNAMIC_METADATA(ns)%",
                "fixed": 7, "flag": True},
            "omit_empty_values": True}
        port = self.start_with([log])
        status, _, body, _ = http_get(port, "/j", method="PUT", body=b"abc")
        self.assertEqual(status, 200)
        (line,) = wait_for_lines(path, 1)
        self.assertEqual(json.loads(line), {
            "code": 200, "bytes": {"in": 3, "out": len(body)},
            "upstream": {"port": self.up.port, "host": "127.0.0.1:%d" % self.up.port},
            "text": "code=200", "fixed": 7, "flag": True})

    def test_text_omit_empty_values(self):
        path = os.path.join(self.tmpdir(), "omit.log")
        log = file_log(path, "")
        log["typed_config"]["log_format"] = {
            "text_format_source": {"inline_string": "[%REQ(X-NOPE)%][%RESPONSE_CODE%]\n"},
            "omit_empty_values": True}
        port = self.start_with([log])
        self.assertEqual(http_get(port, "/o")[0], 200)
        self.assertEqual(wait_for_lines(path, 1), ["[][200]"])

    def validate_error(self, access_log):
        config = http_bootstrap([static_cluster("up", [1])], access_log=[access_log])
        config_path = os.path.join(self.tmpdir(), "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        code, _, err = run_legate(["-c", config_path, "--mode", "validate"])
        self.assertNotEqual(code, 0)
        return err

    def test_unknown_and_unimplemented_operators_are_config_errors_naming_the_field(self):
        path = os.path.join(self.tmpdir(), "x.log")
        err = self.validate_error(file_log(path, "%RESPONSE_CODE% %NOT_AN_OPERATOR%\n"))
        self.assertIn("access_log[0].typed_config.log_format.text_format_source.inline_string: "
                      "unknown or unsupported format operator '%NOT_AN_OPERATOR%'", err)
        err = self.validate_error(file_log(path, "%FILTER_STATE(key)%\n"))
        self.assertIn("access_log[0].typed_config.log_format.text_format_source.inline_string: "
                      "format operator '%FILTER_STATE%' is not implemented by legate", err)
        log = file_log(path, "")
        log["typed_config"]["log_format"] = {"json_format": {"a": {"b": "%UPSTREAM_WIRE_BYTES_SENT%"}}}
        err = self.validate_error(log)
        self.assertIn("access_log[0].typed_config.log_format.json_format.a.b: format operator "
                      "'%UPSTREAM_WIRE_BYTES_SENT%' is not implemented by legate yet", err)


if __name__ == "__main__":
    unittest.main()
