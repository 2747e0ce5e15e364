"""Flow control through tcp_proxy: a peer that reads slowly must push back on the
fast side, so legate's memory stays bounded, and every byte still arrives intact."""

import hashlib
import os
import socket
import threading
import time
import unittest

from harness import (HoldServer, LegateTestCase, bootstrap, pipe_fd_count, splice_runtime, static_cluster,
                     tcp_listener, wait_until)

MIB = 1 << 20
TOTAL = 300 * MIB
BLOCK = MIB
SLOW_PHASE_S = 2.0
RSS_SLACK_KIB = 16 * 1024
SMALL_BUF = 32 * 1024


class Pusher:
    """Sends TOTAL bytes (1 MiB blocks, each stamped with its index so reordering or
    loss shows) as fast as the socket takes them; counts progress; then shuts down its
    write side."""

    def __init__(self, sock):
        self.sock = sock
        self.sent = 0
        self.digest = None
        self.error = None
        self.base = os.urandom(BLOCK)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        h = hashlib.sha256()
        try:
            for i in range(TOTAL // BLOCK):
                block = i.to_bytes(8, "big") + self.base[8:]
                h.update(block)
                view = memoryview(block)
                while view:
                    n = self.sock.send(view)
                    view = view[n:]
                    self.sent += n
            self.sock.shutdown(socket.SHUT_WR)
            self.digest = h.hexdigest()
        except OSError as e:
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("sender did not finish (%d of %d bytes sent)" % (self.sent, TOTAL))
        if self.error:
            raise self.error


def slow_read(sock, seconds, on_tick):
    """Reads 64 KiB every 10 ms for `seconds`, calling on_tick() between reads."""
    sock.settimeout(1.0)
    got = hashlib.sha256()
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(64 * 1024)
        except socket.timeout:
            data = None
        if data == b"":
            raise AssertionError("unexpected EOF during the slow phase")
        if data:
            got.update(data)
            n += len(data)
        on_tick()
        time.sleep(0.01)
    return got, n


def fast_read_rest(sock, hasher, n, timeout=60.0):
    sock.settimeout(timeout)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return hasher.hexdigest(), n
        hasher.update(data)
        n += len(data)


class FlowControl(LegateTestCase):
    """Copying (the default); FlowControlSpliced below runs the same splicing."""

    splice = False

    def flow_bootstrap(self, listeners, clusters):
        extra = {"layered_runtime": splice_runtime()} if self.splice else {}
        return bootstrap(listeners, clusters, **extra)

    def start_proxy(self, upstream_port, prefix):
        lg = self.start_legate(self.flow_bootstrap([tcp_listener("l", "up", stat_prefix=prefix)],
                                                   [static_cluster("up", [upstream_port])]))
        self.pipes_at_start = pipe_fd_count(lg.pid) # its stdout and stderr, to the harness
        return lg

    def assert_mode(self, lg):
        """While a reader is slow, splicing holds a pipe (two fds) with the bytes
        waiting for it; copying holds none."""
        pipes = pipe_fd_count(lg.pid) - self.pipes_at_start
        if self.splice:
            self.assertGreaterEqual(pipes, 2, "splicing on, but no pipe holds the waiting bytes")
        else:
            self.assertEqual(pipes, 0, "copying, but legate holds a pipe")

    def watch_rss(self, lg):
        state = {"max": lg.rss_kib()}

        def tick():
            state["max"] = max(state["max"], lg.rss_kib())
        return state, tick

    def test_slow_client_pushes_back_on_upstream(self):
        up = self.server(HoldServer)
        lg = self.start_proxy(up.port, "down_slow")
        client = self.client(lg.port("l"), rcvbuf=SMALL_BUF)
        upstream = up.take()
        self.addCleanup(upstream.close)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 1)
        baseline = lg.rss_kib()

        pusher = Pusher(upstream)
        state, tick = self.watch_rss(lg)
        hasher, n = slow_read(client, SLOW_PHASE_S, tick)
        tick()
        sent_while_slow = pusher.sent
        paused = lg.stat("cluster.up.upstream_flow_control_paused_reading_total")
        self.assert_mode(lg)

        # The upstream was held back: far less than the payload left it, and the
        # proxy's memory did not grow with what it could not deliver.
        self.assertLess(sent_while_slow, 64 * MIB,
                        "upstream was never pushed back (%d bytes sent)" % sent_while_slow)
        self.assertLess(state["max"] - baseline, RSS_SLACK_KIB,
                        "RSS grew from %d KiB to %d KiB with a slow client" % (baseline, state["max"]))
        self.assertGreater(paused, 0)

        digest, total = fast_read_rest(client, hasher, n)
        pusher.join(60)
        self.assertEqual(total, TOTAL)
        self.assertEqual(digest, pusher.digest)
        st = lg.stats()
        self.assertGreater(st["cluster.up.upstream_flow_control_resumed_reading_total"], 0)
        self.assertEqual(st["tcp.down_slow.downstream_cx_tx_bytes_total"], TOTAL)
        self.assertEqual(st["cluster.up.upstream_cx_rx_bytes_total"], TOTAL)

    def test_slow_upstream_pushes_back_on_client(self):
        up = self.server(HoldServer, rcvbuf=SMALL_BUF)
        lg = self.start_proxy(up.port, "up_slow")
        # (The sender keeps default buffers: a tiny SO_SNDBUF makes loopback TCP itself
        # the bottleneck, through delayed ACKs, and the proxy would never need to push back.)
        client = self.client(lg.port("l"))
        upstream = up.take()
        self.addCleanup(upstream.close)
        lg.wait_for_stat("cluster.up.upstream_cx_active", lambda v: v == 1)
        baseline = lg.rss_kib()

        pusher = Pusher(client)
        state, tick = self.watch_rss(lg)
        hasher, n = slow_read(upstream, SLOW_PHASE_S, tick)
        tick()
        sent_while_slow = pusher.sent
        paused = lg.stat("tcp.up_slow.downstream_flow_control_paused_reading_total")
        self.assert_mode(lg)

        self.assertLess(sent_while_slow, 64 * MIB,
                        "client was never pushed back (%d bytes sent)" % sent_while_slow)
        self.assertLess(state["max"] - baseline, RSS_SLACK_KIB,
                        "RSS grew from %d KiB to %d KiB with a slow upstream" % (baseline, state["max"]))
        self.assertGreater(paused, 0)

        digest, total = fast_read_rest(upstream, hasher, n)
        pusher.join(60)
        self.assertEqual(total, TOTAL)
        self.assertEqual(digest, pusher.digest)
        st = lg.stats()
        self.assertGreater(st["tcp.up_slow.downstream_flow_control_resumed_reading_total"], 0)
        self.assertEqual(st["tcp.up_slow.downstream_cx_rx_bytes_total"], TOTAL)
        self.assertEqual(st["cluster.up.upstream_cx_tx_bytes_total"], TOTAL)

    def test_stalled_reader_small_buffer_limit(self):
        # A peer that never reads at all, with a 64 KiB per-connection limit on both
        # sides: the pusher stalls quickly and the proxy holds only a bounded amount.
        up = self.server(HoldServer, rcvbuf=SMALL_BUF)
        listener = tcp_listener("l", "up", stat_prefix="stall")
        listener["per_connection_buffer_limit_bytes"] = 64 * 1024
        lg = self.start_legate(self.flow_bootstrap([listener], [static_cluster(
            "up", [up.port], per_connection_buffer_limit_bytes=64 * 1024)]))
        client = self.client(lg.port("l"), sndbuf=SMALL_BUF)
        upstream = up.take()
        self.addCleanup(upstream.close)
        baseline = lg.rss_kib()
        pusher = Pusher(client)

        # Wait until the pusher makes no progress for half a second.
        last = [-1, time.monotonic()]

        def stalled():
            if pusher.sent != last[0]:
                last[0], last[1] = pusher.sent, time.monotonic()
                return False
            return time.monotonic() - last[1] > 0.5
        wait_until(stalled, 15, 0.05, "the client's writes to stall")
        self.assertLess(pusher.sent, 16 * MIB)
        self.assertLess(lg.rss_kib() - baseline, RSS_SLACK_KIB)
        self.assertGreater(lg.stat("tcp.stall.downstream_flow_control_paused_reading_total"), 0)
        buffered = lg.stat("cluster.up.upstream_cx_tx_bytes_buffered")
        self.assertLessEqual(buffered, 1 * MIB, "proxy buffers %d bytes for a stalled peer" % buffered)
        if self.splice:
            # The pipe takes no more than the cluster's buffer limit.
            self.assertLessEqual(buffered, 64 * 1024)
        # Closing both ends ends the sender (its send fails).
        upstream.close()
        client.close()
        pusher.thread.join(10)
        self.assertFalse(pusher.thread.is_alive())


class FlowControlSpliced(FlowControl):
    """The same with tcp_proxy splicing: a pipe that does not drain pauses its reader."""

    splice = True


if __name__ == "__main__":
    unittest.main()
