"""HTTP/1.1 upgrades (WebSocket and other types) through the connection manager and the
router: upgrade_configs on the connection manager and per route, 403 when not enabled,
the upgraded byte stream both ways (with flow control), route timeouts not cutting an
established upgrade, an upstream that declines, and h2c requests served as plain HTTP."""

import os
import socket
import threading
import time
import unittest

from harness import (HttpUpstream, LegateTestCase, SockReader, TcpServer, http_bootstrap,
                     http_get, read_http_body, read_http_head, recv_exact, route,
                     route_config, sha256, static_cluster, virtual_host)

MIB = 1 << 20
UPGRADE_REQUEST = (b"GET /chat HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\n"
                   b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")


class UpgradeUpstream(TcpServer):
    """Reads one request head; answers 101 and then echoes every byte until EOF (or
    answers `decline` bytes and closes). Keeps the request heads it saw."""

    def __init__(self, decline=None, **kw):
        self.decline = decline
        self.heads = []
        self.echoed = 0
        self.cv = threading.Condition()
        super().__init__(**kw)

    def handle(self, conn, index):
        reader = SockReader(conn)
        head = read_http_head(reader)
        if head is None:
            return
        with self.cv:
            self.heads.append(head)
            self.cv.notify_all()
        if self.decline is not None:
            conn.sendall(self.decline)
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        pending = bytes(reader.buf)
        if pending:
            conn.sendall(pending)
            self.echoed += len(pending)
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            conn.sendall(data)
            with self.cv:
                self.echoed += len(data)
        conn.shutdown(socket.SHUT_WR)
        conn.close()


class Upgrades(LegateTestCase):
    def start(self, hcm_upgrades=None, routes=None, upstream=None, **route_extra):
        up = upstream or self.server(UpgradeUpstream)
        rc = route_config([virtual_host("v", ["*"], routes or [
            route({"prefix": "/"}, cluster="up", route_extra=route_extra or None)])])
        hcm = {}
        if hcm_upgrades is not None:
            hcm["upgrade_configs"] = hcm_upgrades
        lg = self.start_legate(http_bootstrap([static_cluster("up", [up.port])], route_cfg=rc,
                                              **hcm))
        return up, lg, lg.port("http")

    def handshake(self, port, request=UPGRADE_REQUEST):
        s = self.client(port, timeout=10)
        s.sendall(request)
        reader = SockReader(s)
        head = read_http_head(reader)
        return s, reader, head

    def test_websocket_bytes_flow_both_ways(self):
        up, lg, port = self.start([{"upgrade_type": "websocket"}])
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 101)
        self.assertEqual(head.header("upgrade"), "websocket")
        self.assertEqual(head.header("connection").lower(), "upgrade")
        self.assertIsNotNone(head.header("sec-websocket-accept"))
        self.assertIsNone(head.header("content-length"))
        self.assertIsNone(head.header("transfer-encoding"))
        # The upstream saw the upgrade request with its hop-by-hop headers intact.
        seen = up.heads[0]
        self.assertEqual(seen.header("upgrade"), "websocket")
        self.assertEqual(seen.header("connection").lower(), "upgrade")
        self.assertEqual(seen.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==")
        # Small frames, then 4 MiB written while reading (flow control both ways).
        s.sendall(b"\x81\x05hello")
        reader.buf += recv_exact(s, 7 - len(reader.buf)) if len(reader.buf) < 7 else b""
        self.assertEqual(bytes(reader.buf[:7]), b"\x81\x05hello")
        del reader.buf[:7]
        payload = os.urandom(4 * MIB)
        writer = self.thread(s.sendall, payload)
        got = bytearray(reader.buf)
        while len(got) < len(payload):
            chunk = s.recv(1 << 18)
            self.assertTrue(chunk, "upgraded stream ended early")
            got += chunk
        writer.get(30)
        self.assertEqual(sha256(bytes(got)), sha256(payload))
        stats = lg.stats()
        self.assertEqual(stats["http.ingress.downstream_cx_upgrades_total"], 1)
        self.assertEqual(stats["http.ingress.downstream_cx_upgrades_active"], 1)
        # The client leaves: the upstream side is torn down and the gauges settle.
        s.close()
        lg.wait_for_stat("http.ingress.downstream_cx_upgrades_active", lambda v: v == 0)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)

    def test_upstream_close_ends_the_client_connection(self):
        up, lg, port = self.start([{"upgrade_type": "websocket"}])
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 101)
        with up.lock:
            conn = up.conns[0]
        conn.shutdown(socket.SHUT_RDWR)
        s.settimeout(10)
        rest = b""
        while True:
            data = s.recv(4096)
            if not data:
                break
            rest += data
        self.assertEqual(rest, b"")
        lg.wait_for_stat("http.ingress.downstream_cx_active", lambda v: v == 0)

    def test_not_configured_is_refused_with_403(self):
        up, lg, port = self.start()
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 403)
        self.assertEqual(up.accepted, 0)
        self.assertEqual(lg.stat("http.ingress.downstream_cx_upgrades_total"), 0)

    def test_route_disables_what_the_connection_manager_enables(self):
        routes = [
            route({"prefix": "/chat"}, cluster="up",
                  route_extra={"upgrade_configs": [{"upgrade_type": "websocket",
                                                    "enabled": False}]}),
            route({"prefix": "/"}, cluster="up"),
        ]
        up, lg, port = self.start([{"upgrade_type": "websocket"}], routes=routes)
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 403)
        other = UPGRADE_REQUEST.replace(b"GET /chat", b"GET /other")
        s2, reader2, head2 = self.handshake(port, other)
        self.assertEqual(head2.status, 101)

    def test_route_enables_what_the_connection_manager_does_not(self):
        up, lg, port = self.start(None, upgrade_configs=[{"upgrade_type": "WebSocket"}])
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 101)

    def test_route_timeout_does_not_cut_an_established_upgrade(self):
        up, lg, port = self.start([{"upgrade_type": "websocket"}], timeout="0.3s")
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 101)
        time.sleep(0.8)  # well past the route timeout
        s.sendall(b"still here")
        self.assertEqual(recv_exact(s, 10), b"still here")
        self.assertEqual(lg.stat("cluster.up.upstream_rq_timeout"), 0)

    def test_upstream_declines_the_upgrade(self):
        up = self.server(UpgradeUpstream, decline=(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno"))
        up, lg, port = self.start([{"upgrade_type": "websocket"}], upstream=up)
        s, reader, head = self.handshake(port)
        self.assertEqual(head.status, 400)
        body = read_http_body(reader, head)
        self.assertEqual(body.body, b"no")
        lg.wait_for_stat("http.ingress.downstream_cx_upgrades_active", lambda v: v == 0)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 0)

    def test_h2c_upgrade_request_is_served_as_plain_http(self):
        up = self.server(HttpUpstream)
        lg = self.start_legate(http_bootstrap([static_cluster("up", [up.port])]))
        status, _, _, _ = http_get(lg.port("http"), "/plain", headers={
            "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
            "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
        self.assertEqual(status, 200)
        seen = up.last()
        self.assertIsNone(seen.header("upgrade"))
        self.assertIsNone(seen.header("http2-settings"))

    def test_bad_config_names_the_field(self):
        from harness import run_legate
        path = os.path.join(self.tmpdir(), "bad.yaml")
        cfg = http_bootstrap([static_cluster("up", [1])])
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        hcm["typed_config"]["upgrade_configs"] = [{"upgrade_type": "CONNECT"}]
        import json
        with open(path, "w") as f:
            json.dump(cfg, f)
        code, _, err = run_legate(["--mode", "validate", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("upgrade_configs[0].upgrade_type", err)


if __name__ == "__main__":
    unittest.main()
