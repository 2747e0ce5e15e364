"""Stats sinks: envoy.stat_sinks.statsd (UDP, and TCP through a cluster) and
envoy.stat_sinks.dog_statsd, flushed every stats_flush_interval. A UDP (or TCP)
listener in the test parses what legate sends and checks the wire format: counters
as deltas (|c), gauges (|g), histogram samples (|ms), DogStatsD tags (|#k:v,...)."""

import re
import socket
import threading
import time
import unittest

from harness import (HttpUpstream, LegateTestCase, http_bootstrap, http_get, static_cluster,
                     wait_until)

LINE = re.compile(r"^(?P<name>[^:|#]+):(?P<value>-?\d+)\|(?P<type>c|g|ms)(?:\|#(?P<tags>.*))?$")


class UdpCollector:
    """Receives statsd datagrams on an ephemeral loopback port; parses every line."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.datagrams = []
        self.bad = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.datagrams.append(data)
                for line in data.decode().split("\n"):
                    m = LINE.match(line)
                    (self.lines.append(m.groupdict()) if m else self.bad.append(line))

    def snapshot(self):
        with self.lock:
            return list(self.lines), list(self.bad), list(self.datagrams)

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


class TcpCollector:
    """Accepts statsd-over-TCP connections and parses newline-terminated lines."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.bad = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conns = []
        buf = {}
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
                c.settimeout(0.05)
                conns.append(c)
                buf[c] = b""
            except (socket.timeout, OSError):
                pass
            for c in list(conns):
                try:
                    data = c.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    conns.remove(c)
                    c.close()
                    continue
                buf[c] += data
                *complete, buf[c] = buf[c].split(b"\n")
                with self.lock:
                    for line in complete:
                        m = LINE.match(line.decode())
                        (self.lines.append(m.groupdict()) if m else self.bad.append(line))
        for c in conns:
            c.close()

    def snapshot(self):
        with self.lock:
            return list(self.lines), list(self.bad), []

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def statsd_sink(port, prefix=None, dog=False, max_bytes=None):
    cfg = {"address": {"socket_address": {"protocol": "UDP", "address": "127.0.0.1", "port_value": port}}}
    if prefix is not None:
        cfg["prefix"] = prefix
    if dog:
        cfg["@type"] = "type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink"
        if max_bytes:
            cfg["max_bytes_per_datagram"] = max_bytes
        return {"name": "envoy.stat_sinks.dog_statsd", "typed_config": cfg}
    cfg["@type"] = "type.googleapis.com/envoy.config.metrics.v3.StatsdSink"
    return {"name": "envoy.stat_sinks.statsd", "typed_config": cfg}


class StatsdSinks(LegateTestCase):

    def start(self, sinks, extra_clusters=()):
        self.up = self.server(HttpUpstream)
        config = http_bootstrap([static_cluster("backend", [self.up.port])] + list(extra_clusters))
        config["stats_sinks"] = sinks
        config["stats_flush_interval"] = "0.2s"
        self.lg = self.start_legate(config)

    def collector(self, cls=UdpCollector):
        c = cls()
        self.addCleanup(c.close)
        return c

    def requests(self, n):
        for _ in range(n):
            status, _, _, _ = http_get(self.lg.port("http"), "/x")
            self.assertEqual(status, 200)

    def wait_lines(self, col, predicate, what, timeout=20):
        wait_until(lambda: predicate(col.snapshot()[0]), timeout=timeout, interval=0.05, what=what)
        return col.snapshot()[0]

    def counter_sum(self, lines, name):
        return sum(int(l["value"]) for l in lines if l["name"] == name and l["type"] == "c")

    def test_statsd_udp_counters_are_deltas_gauges_and_timers(self):
        col = self.collector()
        self.start([statsd_sink(col.port)])
        self.requests(3)
        name = "envoy.cluster.backend.upstream_rq_total"
        lines = self.wait_lines(col, lambda ls: self.counter_sum(ls, name) >= 3, "3 requests counted")
        self.assertEqual(self.counter_sum(lines, name), 3)
        # Deltas, not totals: each flush sends what moved since the last one, so the sum
        # over every flush is the total even after more flushes.
        n_before = len([l for l in lines if l["name"] == name])
        self.wait_lines(col, lambda ls: len([l for l in ls if l["name"] == name]) >= n_before + 2,
                        "two more flushes")
        self.requests(2)
        lines = self.wait_lines(col, lambda ls: self.counter_sum(ls, name) >= 5, "5 requests counted")
        self.assertEqual(self.counter_sum(lines, name), 5)
        self.assertTrue(all(int(l["value"]) <= 3 for l in lines if l["name"] == name))
        # Gauges carry values.
        gauges = [l for l in lines if l["name"] == "envoy.cluster.backend.membership_total"]
        self.assertTrue(gauges and all(l["type"] == "g" and l["value"] == "1" for l in gauges), gauges)
        # One |ms line per histogram sample.
        timers = [l for l in lines if l["name"] == "envoy.cluster.backend.upstream_rq_time"]
        self.assertEqual(len(timers), 5, timers)
        self.assertTrue(all(l["type"] == "ms" for l in timers))
        self.assertEqual(col.snapshot()[1], [], "unparseable lines")
        # Datagrams stay under the default size.
        self.assertTrue(all(len(d) <= 1432 for d in col.snapshot()[2]))

    def test_statsd_prefix(self):
        col = self.collector()
        self.start([statsd_sink(col.port, prefix="edge")])
        self.requests(1)
        lines = self.wait_lines(col, lambda ls: self.counter_sum(ls, "edge.cluster.backend.upstream_rq_200") >= 1,
                                "prefixed counter")
        self.assertFalse([l for l in lines if l["name"].startswith("envoy.")])

    def test_dog_statsd_tags(self):
        col = self.collector()
        self.start([statsd_sink(col.port, dog=True, max_bytes=512)])
        self.requests(2)

        def found(ls):
            return [l for l in ls if l["name"] == "envoy.cluster.upstream_rq" and l["type"] == "c"
                    and l["tags"] == "envoy.cluster_name:backend,envoy.response_code:200"]
        lines = self.wait_lines(col, lambda ls: sum(int(l["value"]) for l in found(ls)) >= 2,
                                "tagged counter")
        self.assertEqual(sum(int(l["value"]) for l in found(lines)), 2)
        timers = [l for l in lines if l["name"] == "envoy.cluster.upstream_rq_time"]
        self.assertTrue(timers and all(l["type"] == "ms" and l["tags"] == "envoy.cluster_name:backend"
                                       for l in timers), timers[:3])
        self.assertTrue(all(len(d) <= 512 for d in col.snapshot()[2]))
        self.assertEqual(col.snapshot()[1], [])

    def test_statsd_tcp_through_a_cluster(self):
        col = self.collector(TcpCollector)
        self.start([{"name": "envoy.stat_sinks.statsd", "typed_config": {
            "@type": "type.googleapis.com/envoy.config.metrics.v3.StatsdSink",
            "tcp_cluster_name": "statsd"}}], extra_clusters=[static_cluster("statsd", [col.port])])
        self.requests(2)
        name = "envoy.cluster.backend.upstream_rq_total"
        lines = self.wait_lines(col, lambda ls: self.counter_sum(ls, name) >= 2, "counter over TCP")
        self.assertEqual(self.counter_sum(lines, name), 2)
        self.assertEqual(col.snapshot()[1], [])

    def test_unknown_tcp_cluster_is_refused(self):
        from harness import LegateError
        with self.assertRaises(LegateError) as ctx:
            self.start([{"name": "envoy.stat_sinks.statsd", "typed_config": {
                "@type": "type.googleapis.com/envoy.config.metrics.v3.StatsdSink",
                "tcp_cluster_name": "nope"}}])
        self.assertIn("stats_sinks[0].typed_config.tcp_cluster_name", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
