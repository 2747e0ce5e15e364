"""ORIGINAL_DST clusters (lb_policy CLUSTER_PROVIDED): hosts made on demand from the
x-envoy-original-dst-host header (use_http_header, on loopback) or from the downstream
connection's original destination, which the envoy.filters.listener.original_dst
listener filter reads back (SO_ORIGINAL_DST) from an iptables REDIRECT inside a network
namespace this test creates; unused hosts go after cleanup_interval; use_original_dst
hands a redirected connection to the listener of its original address (bind_to_port:
false)."""

import ctypes
import os
import shutil
import socket
import subprocess
import unittest

from harness import (EchoServer, HttpUpstream, LegateTestCase, bootstrap, connect, http_get,
                     http_listener, recv_exact, route_config, socket_address, static_cluster,
                     tcp_listener, wait_until)

ORIGINAL_DST_FILTER = {
    "name": "envoy.filters.listener.original_dst",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"},
}


def original_dst_cluster(name="orig", cleanup="1s", **lb_config):
    c = {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
         "connect_timeout": "1s", "cleanup_interval": cleanup}
    if lb_config:
        c["original_dst_lb_config"] = lb_config
    return c


class HttpHeader(LegateTestCase):
    """use_http_header needs no redirect: the header names the destination."""

    def setUp(self):
        super().setUp()
        self.up = self.server(HttpUpstream, name="a")
        self.other = self.server(HttpUpstream, name="b")

    def start(self, **lb_config):
        self.lg = self.start_legate(bootstrap(
            [http_listener("http", route_config(cluster="orig"))],
            [original_dst_cluster(**lb_config)]))
        return self.lg.port("http")

    def test_header_picks_the_host_and_hosts_are_cleaned_up(self):
        port = self.start(use_http_header=True)
        status, _, _, resp = http_get(
            port, "/x", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.up.port})
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("x-upstream"), "a")
        status, _, _, resp = http_get(
            port, "/y", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.other.port})
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("x-upstream"), "b")
        # Same destination again: the same host (no new member).
        http_get(port, "/z", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.up.port})
        self.lg.wait_for_stat("cluster.orig.membership_total", lambda v: v == 2)
        self.assertEqual(self.lg.stat("cluster.orig.upstream_rq_2xx"), 3)
        clusters = self.lg.admin_get("/clusters")[1]
        self.assertIn("orig::127.0.0.1:%d::" % self.up.port, clusters)
        # Unused for a cleanup interval (1 s): both go; the pooled connections close.
        self.lg.wait_for_stat("cluster.orig.membership_total", lambda v: v == 0, timeout=10)
        wait_until(lambda: self.lg.stat("cluster.orig.upstream_cx_active") == 0, 10,
                   what="pooled connections to removed hosts closed")
        # And come back on demand.
        status, _, _, _ = http_get(
            port, "/again", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.up.port})
        self.assertEqual(status, 200)
        self.assertEqual(self.up.count(), 3)

    def test_without_a_usable_destination_there_is_no_host(self):
        port = self.start(use_http_header=True)
        # No header, and the connection's address was not restored by original_dst: 503.
        status, _, body, _ = http_get(port, "/")
        self.assertEqual(status, 503)
        self.assertEqual(body, b"no healthy upstream")
        # An invalid header value: 503, counted.
        for bad in ("backend.internal:80", "127.0.0.1", "127.0.0.1:99999", "[::1"):
            status, _, _, _ = http_get(port, "/", headers={"x-envoy-original-dst-host": bad})
            self.assertEqual(status, 503, bad)
        self.assertEqual(self.lg.stat("cluster.orig.original_dst_host_invalid"), 4)
        self.assertEqual(self.lg.stat("cluster.orig.membership_total"), 0)
        self.assertEqual(self.up.count(), 0)

    def test_header_is_ignored_without_use_http_header(self):
        port = self.start()
        status, _, _, _ = http_get(
            port, "/", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.up.port})
        self.assertEqual(status, 503)
        self.assertEqual(self.up.count(), 0)

    def test_custom_header_name_and_port_override(self):
        port = self.start(use_http_header=True, http_header_name="x-dest",
                          upstream_port_override=self.other.port)
        # The header's port is overridden: "b" answers although "a"'s port was named.
        status, _, _, resp = http_get(port, "/", headers={"x-dest": "127.0.0.1:%d" % self.up.port})
        self.assertEqual(status, 200)
        self.assertEqual(resp.getheader("x-upstream"), "b")
        # The default header name means nothing now.
        status, _, _, _ = http_get(
            port, "/", headers={"x-envoy-original-dst-host": "127.0.0.1:%d" % self.up.port})
        self.assertEqual(status, 503)


CLONE_NEWNET = 0x40000000
# Addresses inside the namespace: the "service" a client believes it talks to, and the
# client's own source address, which the REDIRECT rule matches (so legate's own
# connections to the service are not redirected back to it).
SERVICE_IP = "198.51.100.7"
CLIENT_IP = "10.99.0.2"


def enter_network_namespace():
    """Moves this test process into a new network namespace (only lo, down). Returns
    None, or why it cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
    return None


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))


class Redirected(LegateTestCase):
    """Connections to SERVICE_IP:port are REDIRECTed by iptables to legate's listener;
    legate reads the original destination and forwards there."""

    @classmethod
    def setUpClass(cls):
        if shutil.which("iptables") is None or shutil.which("ip") is None:
            raise unittest.SkipTest("iptables or ip not installed (tools/setup.sh installs them)")
        why = enter_network_namespace()
        if why:
            raise unittest.SkipTest("cannot create a network namespace (%s); needs root or "
                                    "CAP_SYS_ADMIN" % why)
        try:
            run("ip", "link", "set", "lo", "up")
            run("ip", "addr", "add", SERVICE_IP + "/32", "dev", "lo")
            run("ip", "addr", "add", CLIENT_IP + "/32", "dev", "lo")
            run("iptables", "-t", "nat", "-L", "OUTPUT", "-n")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            raise unittest.SkipTest("cannot set up the namespace's network: %s" % e)

    def redirect(self, dport, to_port):
        rule = ["-t", "nat", "OUTPUT", "-p", "tcp", "-s", CLIENT_IP, "-d", SERVICE_IP,
                "--dport", str(dport), "-j", "REDIRECT", "--to-ports", str(to_port)]
        run("iptables", rule[0], rule[1], "-A", *rule[2:])
        self.addCleanup(run, "iptables", rule[0], rule[1], "-D", *rule[2:])

    def client_to_service(self, port):
        return connect(port, host=SERVICE_IP, source=CLIENT_IP)

    def test_tcp_proxy_forwards_to_the_original_destination(self):
        a = self.server(EchoServer, host=SERVICE_IP)
        b = self.server(EchoServer, host=SERVICE_IP)
        listener = tcp_listener("virtual", cluster="orig", port=0)
        listener["address"] = socket_address(0, "127.0.0.1")
        listener["listener_filters"] = [ORIGINAL_DST_FILTER]
        lg = self.start_legate(bootstrap([listener], [original_dst_cluster(cleanup="1s")]))
        port = lg.port("virtual")
        self.redirect(a.port, port)
        self.redirect(b.port, port)
        for server, payload in ((a, b"to a"), (b, b"to b"), (a, b"a again")):
            s = self.client_to_service(server.port)
            s.sendall(payload)
            self.assertEqual(recv_exact(s, len(payload)), payload)
            s.close()
        a.wait_accepted(2)
        b.wait_accepted(1)
        # The services saw legate (not the client), which reached them at their own address.
        self.assertNotEqual(a.peers[0][0], CLIENT_IP)
        self.assertEqual(lg.stat("cluster.orig.upstream_cx_total"), 3)
        lg.wait_for_stat("cluster.orig.membership_total", lambda v: v == 2)
        self.assertIn("orig::%s:%d::" % (SERVICE_IP, a.port), lg.admin_get("/clusters")[1])
        # Idle: removed after the cleanup interval.
        lg.wait_for_stat("cluster.orig.membership_total", lambda v: v == 0, timeout=10)

    def test_http_through_the_router(self):
        up = self.server(HttpUpstream, name="svc", host=SERVICE_IP)
        listener = http_listener("virtual", route_config(cluster="orig"))
        listener["listener_filters"] = [ORIGINAL_DST_FILTER]
        lg = self.start_legate(bootstrap([listener], [original_dst_cluster()]))
        self.redirect(up.port, lg.port("virtual"))
        s = self.client_to_service(up.port)
        s.sendall(b"GET /svc HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b"x-upstream: svc", data.lower())
        self.assertEqual(up.last().path, "/svc")

    def test_without_the_listener_filter_nothing_is_restored(self):
        up = self.server(EchoServer, host=SERVICE_IP)
        lg = self.start_legate(bootstrap([tcp_listener("virtual", cluster="orig")],
                                         [original_dst_cluster()]))
        self.redirect(up.port, lg.port("virtual"))
        s = self.client_to_service(up.port)
        s.settimeout(5)
        self.assertEqual(s.recv(10), b"")  # closed: no host (UH)
        s.close()
        self.assertEqual(lg.stat("cluster.orig.upstream_cx_none_healthy"), 1)
        self.assertEqual(up.accepted, 0)

    def test_use_original_dst_hands_off_to_the_listener_of_the_original_address(self):
        # The redirect lands on "virtual", whose own cluster would refuse; the listener
        # for the original address (not bound: bind_to_port false) takes the connection.
        echo = self.server(EchoServer)
        refused = socket.socket()
        refused.bind(("127.0.0.1", 0))
        dead_port = refused.getsockname()[1]
        refused.close()
        service_port = echo.port + 1 if echo.port < 65000 else echo.port - 1
        virtual = tcp_listener("virtual", cluster="dead")
        virtual["listener_filters"] = [ORIGINAL_DST_FILTER]
        virtual["use_original_dst"] = True
        service = tcp_listener("service", cluster="echo")
        service["address"] = socket_address(service_port, SERVICE_IP)
        service["bind_to_port"] = False
        lg = self.start_legate(bootstrap(
            [virtual, service],
            [static_cluster("dead", [dead_port]), static_cluster("echo", [echo.port])]))
        self.redirect(service_port, lg.port("virtual"))
        s = self.client_to_service(service_port)
        s.sendall(b"handed off")
        try:
            got = recv_exact(s, 10)
        except OSError:
            print(sorted((k, v) for k, v in lg.stats().items() if v))
            raise
        self.assertEqual(got, b"handed off")
        s.close()
        self.assertEqual(lg.stat("cluster.echo.upstream_cx_total"), 1)
        self.assertEqual(lg.stat("cluster.dead.upstream_cx_total"), 0)
        self.assertEqual(lg.stat("tcp.service.downstream_cx_total"), 1)
        # Nothing listens on the service address itself (bind_to_port: false).
        with self.assertRaises(OSError):
            socket.create_connection((SERVICE_IP, service_port), timeout=2).close()


if __name__ == "__main__":
    unittest.main()
