"""Test harness for legate's integration tests: start the real binary on ephemeral
loopback ports, talk to its admin API, and run small upstream servers the test
controls. Standard library only.

Conventions: every wait is bounded (count and time) and polls a condition; every
process, socket and thread started here is cleaned up by LegateTestCase, with
kill -9 as the last resort. Only loopback addresses are used.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("LEGATE_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))


def legate_bin():
    path = os.environ.get("LEGATE_BIN") or os.path.join(SOURCE_DIR, "build", "release", "legate")
    if not os.path.isabs(path):
        # Relative to where the user ran the test from, then to the source tree.
        for base in (os.getcwd(), SOURCE_DIR):
            if os.path.exists(os.path.join(base, path)):
                return os.path.abspath(os.path.join(base, path))
    return path


LEGATE_BIN = legate_bin()
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
FILE_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value; returns it, or raises
    AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def read_lines(path):
    """The lines of the file at `path`; [] while it does not exist (e.g. an access log)."""
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def wait_for_lines(path, n, timeout=10.0):
    """The lines of the file at `path` once it has at least n (e.g. an access log)."""
    def read():
        lines = read_lines(path)
        return lines if len(lines) >= n else None
    return wait_until(read, timeout, what="%d lines in %s" % (n, path))


def free_port():
    """A port that was free a moment ago (bound, read and closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_port():
    """A loopback port where nothing listens: connecting gets ECONNREFUSED."""
    return free_port()


def is_listening(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(1.0)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


# ---------------------------------------------------------------- config builders


def socket_address(port, host="127.0.0.1"):
    return {"socket_address": {"address": host, "port_value": port}}


def static_cluster(name, endpoints, connect_timeout="1s", **extra):
    """endpoints: list of ports or (host, port) or (host, port, weight)."""
    lb = []
    for e in endpoints:
        if isinstance(e, int):
            e = ("127.0.0.1", e)
        entry = {"endpoint": {"address": socket_address(e[1], e[0])}}
        if len(e) > 2:
            entry["load_balancing_weight"] = e[2]
        lb.append(entry)
    c = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": lb}]},
    }
    c.update(extra)
    return c


def file_log(path, fmt, log_filter=None):
    """An envoy.access_loggers.file entry writing fmt to path, behind log_filter if given."""
    entry = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": FILE_LOG_TYPE,
            "path": path,
            "log_format": {"text_format_source": {"inline_string": fmt}},
        },
    }
    if log_filter is not None:
        entry["filter"] = log_filter
    return entry


def tcp_proxy_filter(cluster=None, stat_prefix="tcp", access_log_path=None, log_format=None, **extra):
    cfg = {"@type": TCP_PROXY_TYPE, "stat_prefix": stat_prefix}
    if cluster is not None:
        cfg["cluster"] = cluster
    if access_log_path:
        fmt = log_format or "%RESPONSE_FLAGS% %UPSTREAM_HOST% %BYTES_RECEIVED%\n"
        cfg["access_log"] = [file_log(access_log_path, fmt)]
    cfg.update(extra)
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": cfg}


def tcp_listener(name, cluster=None, port=0, stat_prefix=None, filter_chains=None, **tcp_extra):
    if filter_chains is None:
        filter_chains = [{"filters": [tcp_proxy_filter(cluster, stat_prefix or name, **tcp_extra)]}]
    return {"name": name, "address": socket_address(port), "filter_chains": filter_chains}


def bootstrap(listeners=(), clusters=(), admin_port=0, **extra):
    b = {
        "admin": {"address": socket_address(admin_port)},
        "static_resources": {"listeners": list(listeners), "clusters": list(clusters)},
    }
    b.update(extra)
    return b


# ---------------------------------------------------------------- the process


class LegateError(AssertionError):
    pass


class Legate:
    """One legate process with its own temp dir (config, admin address file, logs)."""

    def __init__(self, config, args=(), concurrency=1, ready_timeout=10.0, wait_ready=True,
                 suffix=None, tmpdir=None):
        self.tmpdir = tmpdir or tempfile.mkdtemp(prefix="legate-it-")
        if isinstance(config, (dict, list)):
            self.config_path = os.path.join(self.tmpdir, "config.json")
            text = json.dumps(config, indent=1)
        else:
            self.config_path = os.path.join(self.tmpdir, suffix and ("config" + suffix) or "config.yaml")
            text = config
        with open(self.config_path, "w") as f:
            f.write(text)
        self.admin_address_path = os.path.join(self.tmpdir, "admin_address")
        self.stdout_path = os.path.join(self.tmpdir, "stdout.txt")
        self.stderr_path = os.path.join(self.tmpdir, "stderr.txt")
        self.args = list(args)
        self.concurrency = concurrency
        self.proc = None
        self.admin = None  # (host, port)
        self.listeners = {}  # name -> (host, port)
        self.returncode = None
        if wait_ready is not None:
            self.start(ready_timeout, wait_ready)

    # -- lifecycle

    def command(self):
        cmd = [LEGATE_BIN, "-c", self.config_path, "--admin-address-path", self.admin_address_path]
        if self.concurrency is not None:
            cmd += ["--concurrency", str(self.concurrency)]
        return cmd + self.args

    def start(self, ready_timeout=10.0, wait_ready=True):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)
        if not wait_ready:
            return
        deadline = time.monotonic() + ready_timeout
        while not os.path.exists(self.admin_address_path):
            if self.proc.poll() is not None:
                raise LegateError("legate exited with %d before writing its admin address\n%s"
                                  % (self.proc.returncode, self.stderr_tail()))
            if time.monotonic() > deadline:
                raise LegateError("legate wrote no admin address in %.0fs\n%s"
                                  % (ready_timeout, self.stderr_tail()))
            time.sleep(0.02)
        with open(self.admin_address_path) as f:
            host, _, port = f.read().strip().rpartition(":")
        self.admin = (host.strip("[]"), int(port))
        while True:
            try:
                status, _ = self.admin_get("/ready", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise LegateError("legate never became ready\n%s" % self.stderr_tail())
            time.sleep(0.02)
        self.refresh_listeners()

    def refresh_listeners(self):
        status, body = self.admin_get("/listeners?format=json")
        if status != 200:
            raise LegateError("/listeners?format=json returned %d: %s" % (status, body[:200]))
        doc = json.loads(body)
        self.listeners = {}
        for entry in doc.get("listener_statuses", []):
            sa = entry["local_address"]["socket_address"]
            self.listeners[entry["name"]] = (sa["address"], int(sa["port_value"]))
        return self.listeners

    def port(self, listener_name):
        return self.listeners[listener_name][1]

    def address(self, listener_name):
        return self.listeners[listener_name]

    def listener_stat_prefix(self, listener_name):
        host, port = self.listeners[listener_name]
        return "listener.%s_%d." % (host, port)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
            return self.returncode
        except subprocess.TimeoutExpired:
            return None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig and waits; kill -9 if the process outlives timeout. Returns the exit code
        (negative for a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.returncode = self.proc.returncode
        return self.returncode

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.stop(signal.SIGTERM, timeout=3)

    # -- output

    def read_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def read_stdout(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, lines=40):
        tail = self.read_stderr().splitlines()[-lines:]
        return "---- legate stderr (last %d lines, %s) ----\n%s\n----" % (
            len(tail), self.stderr_path, "\n".join(tail))

    # -- admin

    def _admin_request(self, method, path, timeout=5.0):
        if self.admin is None:
            raise LegateError("admin address unknown")
        conn = http.client.HTTPConnection(self.admin[0], self.admin[1], timeout=timeout)
        try:
            conn.request(method, path)
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            self.last_headers = dict(resp.getheaders())
            return resp.status, body
        finally:
            conn.close()

    def admin_get(self, path, timeout=5.0):
        return self._admin_request("GET", path, timeout)

    def admin_post(self, path, timeout=5.0):
        return self._admin_request("POST", path, timeout)

    def stats(self, filter_regex=None):
        """Counters and gauges, name -> int (histograms left out)."""
        path = "/stats?format=json"
        if filter_regex:
            path += "&filter=" + filter_regex
        status, body = self.admin_get(path)
        if status != 200:
            raise LegateError("/stats?format=json returned %d: %s" % (status, body[:200]))
        out = {}
        for entry in json.loads(body).get("stats", []):
            if "name" in entry and isinstance(entry.get("value"), (int, float)):
                out[entry["name"]] = int(entry["value"])
        return out

    def stat(self, name, default=0):
        return self.stats().get(name, default)

    def wait_for_stat(self, name, predicate, timeout=10.0):
        """Polls until predicate(value) holds; returns the value. A missing stat reads as 0."""
        last = [None]

        def check():
            last[0] = self.stats().get(name, 0)
            return predicate(last[0])

        try:
            wait_until(check, timeout, 0.05, "stat %s" % name)
        except AssertionError:
            raise LegateError("stat %s never satisfied the condition (last value %r)\n%s"
                              % (name, last[0], self.stderr_tail()))
        return last[0]

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise LegateError("no VmRSS for pid %d" % self.proc.pid)

    def sanitized(self):
        """True when this legate runs with ASan or UBSan: ASan's shadow memory and
        the freed blocks it quarantines make RSS no measure of legate's own, and
        UBSan opens pipes of its own."""
        with open("/proc/%d/maps" % self.proc.pid) as f:
            maps = f.read()
        return "libasan" in maps or "libubsan" in maps


def run_legate(args, timeout=15.0, cwd=None):
    """Runs legate to completion: (exit code, stdout, stderr)."""
    p = subprocess.run([LEGATE_BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- test upstreams


class TcpServer:
    """A threaded TCP server on 127.0.0.1:0; one thread per accepted connection runs
    handle(conn, index). Subclasses override handle. `peers[index]` is that
    connection's (client address, port)."""

    def __init__(self, backlog=128, rcvbuf=None, host="127.0.0.1", port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            # Inherited by accepted sockets; must be set before listen to bound the window.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.peers = []
        self.threads = []
        self.accepted = 0
        self.errors = []
        self.closed = False
        self.accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.accept_thread.start()

    def _accept_loop(self):
        while not self.closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                index = self.accepted
                self.accepted += 1
                self.conns.append(conn)
                self.peers.append(peer)
                t = threading.Thread(target=self._run, args=(conn, index), daemon=True)
                self.threads.append(t)
            t.start()

    def _run(self, conn, index):
        try:
            self.handle(conn, index)
        except OSError as e:
            if not self.closed:
                with self.lock:
                    self.errors.append(repr(e))

    def handle(self, conn, index):
        raise NotImplementedError

    def wait_accepted(self, n, timeout=10.0):
        wait_until(lambda: self.accepted >= n, timeout, what="%d accepted upstream connections" % n)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
            threads = list(self.threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.accept_thread.join(5)
        for t in threads:
            t.join(5)


class EchoServer(TcpServer):
    """Echoes every byte; on EOF shuts down its write side and closes."""

    def handle(self, conn, index):
        while True:
            data = conn.recv(1 << 18)
            if not data:
                break
            conn.sendall(data)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()


class SinkServer(TcpServer):
    """Records what each connection receives (sha256 and length, optionally the bytes).
    On accept it sends `greeting` (bytes, or a callable returning an iterable of chunks);
    on EOF it sends `reply` and closes. `eof` lists the indexes that saw EOF."""

    def __init__(self, greeting=None, reply=None, keep=True, close_after_greeting=False, **kw):
        self.greeting = greeting
        self.reply = reply
        self.keep = keep
        self.close_after_greeting = close_after_greeting
        self.received = {}  # index -> bytearray (if keep)
        self.digests = {}  # index -> sha256 hex, once EOF was seen
        self.lengths = {}  # index -> bytes so far
        self.eof = set()
        self.finished = set()
        super().__init__(**kw)

    def handle(self, conn, index):
        with self.lock:
            self.lengths[index] = 0
            if self.keep:
                self.received[index] = bytearray()
        if self.greeting is not None:
            chunks = self.greeting() if callable(self.greeting) else [self.greeting]
            for chunk in chunks:
                conn.sendall(chunk)
            if self.close_after_greeting:
                conn.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        while True:
            data = conn.recv(1 << 18)
            if not data:
                break
            h.update(data)
            with self.lock:
                self.lengths[index] += len(data)
                if self.keep:
                    self.received[index] += data
        with self.lock:
            self.digests[index] = h.hexdigest()
            self.eof.add(index)
        if self.reply is not None:
            conn.sendall(self.reply)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()
        with self.lock:
            self.finished.add(index)


def pipe_fd_count(pid):
    """How many of the process's descriptors are pipe ends."""
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            count += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:")
        except OSError:
            pass
    return count


def splice_runtime():
    """A layered_runtime that turns tcp_proxy's splicing on (it is off by default)."""
    return {"layers": [{"name": "static", "static_layer": {"legate.tcp_proxy.splice": True}}]}


class HoldServer(TcpServer):
    """Accepts and hands each connection to the test (queue); never reads on its own.
    With rcvbuf small, an unread connection fills quickly."""

    def __init__(self, **kw):
        self.queue = []
        self.cv = threading.Condition()
        super().__init__(**kw)

    def handle(self, conn, index):
        with self.cv:
            self.queue.append(conn)
            self.cv.notify_all()

    def take(self, timeout=10.0):
        with self.cv:
            if not self.cv.wait_for(lambda: self.queue, timeout):
                raise AssertionError("no upstream connection within %.0fs" % timeout)
            return self.queue.pop(0)


class BlackholeServer:
    """A listening socket whose accept queue is full: a SYN to it is dropped, so a
    connect() neither succeeds nor fails until the client gives up. Built with
    backlog 0 and connections that are never accepted."""

    def __init__(self, max_fill=16):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(max_fill):
            c = socket.socket()
            c.settimeout(0.3)
            self.fillers.append(c)
            try:
                c.connect(("127.0.0.1", self.port))
            except socket.timeout:
                self.works = True
                return
            except OSError:
                break
        self.works = False

    def probe(self, timeout=0.5):
        """True if a fresh connect really hangs for `timeout`."""
        with socket.socket() as c:
            c.settimeout(timeout)
            try:
                c.connect(("127.0.0.1", self.port))
                return False
            except socket.timeout:
                return True
            except OSError:
                return False

    def close(self):
        for c in self.fillers:
            c.close()
        self.sock.close()


# ---------------------------------------------------------------- clients


def connect(port, host="127.0.0.1", source=None, timeout=10.0, rcvbuf=None, sndbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    try:
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    return s


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        data = sock.recv(min(1 << 20, n - len(buf)))
        if not data:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += data
    return bytes(buf)


def recv_all(sock, limit=1 << 31):
    """Reads to EOF; returns (sha256 hex, length, first 64 KiB)."""
    h = hashlib.sha256()
    n = 0
    head = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        h.update(data)
        if len(head) < 65536:
            head += data[:65536 - len(head)]
        n += len(data)
        if n > limit:
            raise AssertionError("more than %d bytes" % limit)
    return h.hexdigest(), n, bytes(head)


def closed_by_peer(sock, timeout=5.0):
    """True if the peer closed (EOF or reset) within timeout, discarding any data."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- test case base


class LegateTestCase(unittest.TestCase):
    """Tracks what a test starts and cleans it up; on failure prints the stderr tail of
    every legate the test started."""

    def setUp(self):
        if not os.path.exists(LEGATE_BIN):
            self.fail("legate binary not found at %r; set LEGATE_BIN" % LEGATE_BIN)
        self._legates = []
        self._tmpdirs = []

    def run(self, result=None):
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors) + len(getattr(result, "unexpectedSuccesses", []))
        super().run(result)
        after = len(result.failures) + len(result.errors) + len(getattr(result, "unexpectedSuccesses", []))
        legates = getattr(self, "_legates", [])
        if after > before:
            for lg in legates:
                sys.stderr.write("\n[%s] %s\n" % (self.id(), lg.stderr_tail()))
        for d in getattr(self, "_tmpdirs", []):
            shutil.rmtree(d, ignore_errors=True)
        return result

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="legate-it-")
        self._tmpdirs.append(d)
        return d

    def start_legate(self, config, **kw):
        kw.setdefault("tmpdir", self.tmpdir())
        wait_ready = kw.pop("wait_ready", True)
        ready_timeout = kw.pop("ready_timeout", 10.0)
        lg = Legate(config, wait_ready=None, **kw)
        self._legates.append(lg)
        self.addCleanup(lg.cleanup)
        lg.start(ready_timeout, wait_ready)
        return lg

    def server(self, cls, *args, **kw):
        s = cls(*args, **kw)
        self.addCleanup(s.close)
        return s

    def client(self, port, **kw):
        s = connect(port, **kw)
        self.addCleanup(s.close)
        return s

    def thread(self, target, *args):
        """Starts a daemon thread; joined (bounded) at cleanup. Returns a holder whose
        .result/.error are set when target finishes."""
        holder = ThreadResult(target, args)
        self.addCleanup(holder.join, 10)
        holder.start()
        return holder


class ThreadResult(threading.Thread):
    def __init__(self, target, args):
        super().__init__(daemon=True)
        self._fn = target
        self._args = args
        self.result = None
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            self.result = self._fn(*self._args)
        except BaseException as e:  # reported by get()
            self.error = e
        finally:
            self.done.set()

    def get(self, timeout=30.0):
        if not self.done.wait(timeout):
            raise AssertionError("thread %s did not finish in %.0fs" % (self._fn.__name__, timeout))
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------- HTTP (additive)

HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def route_config(virtual_hosts=None, cluster=None, **extra):
    """A RouteConfiguration: the given virtual hosts, or one vhost "*" with a single
    prefix "/" route to `cluster`."""
    if virtual_hosts is None:
        virtual_hosts = [virtual_host("default", ["*"], [route({"prefix": "/"}, cluster=cluster)])]
    rc = {"name": "local", "virtual_hosts": list(virtual_hosts)}
    rc.update(extra)
    return rc


def virtual_host(name, domains, routes, **extra):
    vh = {"name": name, "domains": list(domains), "routes": list(routes)}
    vh.update(extra)
    return vh


def route(match, cluster=None, route_extra=None, **extra):
    """A route with `match`; `cluster` (with route_extra merged into the RouteAction) or
    whatever action `extra` gives (redirect, direct_response, route)."""
    r = {"match": match}
    if cluster is not None:
        action = {"cluster": cluster}
        action.update(route_extra or {})
        r["route"] = action
    elif route_extra is not None:
        r["route"] = dict(route_extra)
    r.update(extra)
    return r


def http_filter(route_cfg, stat_prefix="ingress", router=None, access_log_path=None,
                log_format=None, **extra):
    """An envoy.filters.network.http_connection_manager network filter with the router."""
    cfg = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "route_config": route_cfg,
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": dict({"@type": ROUTER_TYPE}, **(router or {}))}],
    }
    if access_log_path:
        fmt = log_format or "%RESPONSE_CODE% %RESPONSE_FLAGS%\n"
        cfg["access_log"] = [file_log(access_log_path, fmt)]
    cfg.update(extra)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


def http_listener(name, route_cfg, port=0, stat_prefix="ingress", **hcm_extra):
    return {"name": name, "address": socket_address(port),
            "filter_chains": [{"filters": [http_filter(route_cfg, stat_prefix, **hcm_extra)]}]}


def http_bootstrap(clusters, route_cfg=None, cluster=None, listener="http", stat_prefix="ingress",
                   **hcm_extra):
    """One HTTP listener named `listener` in front of `clusters` (dicts from static_cluster)."""
    if route_cfg is None:
        route_cfg = route_config(cluster=cluster or clusters[0]["name"])
    return bootstrap([http_listener(listener, route_cfg, stat_prefix=stat_prefix, **hcm_extra)],
                     list(clusters))


class HttpProtocolError(Exception):
    pass


class SockReader:
    """Buffered reads from a socket: lines, exact counts, to EOF."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        data = self.sock.recv(1 << 18)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, limit=1 << 16):
        """A line with its terminator, b"" at EOF before any byte."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise HttpProtocolError("line longer than %d" % limit)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_exact(self, n, sink=None):
        """n bytes (returned, or passed to sink(chunk) when given); raises on early EOF."""
        out = bytearray()
        while n > 0:
            if not self.buf and not self._fill():
                raise HttpProtocolError("EOF with %d bytes to go" % n)
            take = bytes(self.buf[:n])
            del self.buf[:len(take)]
            n -= len(take)
            if sink:
                sink(take)
            else:
                out += take
        return bytes(out)

    def read_to_eof(self, sink=None):
        out = bytearray()
        while True:
            if self.buf:
                chunk = bytes(self.buf)
                self.buf.clear()
                if sink:
                    sink(chunk)
                else:
                    out += chunk
            if not self._fill():
                return bytes(out)


class HttpMessage:
    """A parsed HTTP/1 request or response. start: (method, target, version) for a request,
    (version, status, reason) for a response; headers: [(name, value)] in order."""

    def __init__(self):
        self.start = None
        self.headers = []
        self.raw_head = b""
        self.body = b""
        self.body_len = 0
        self.body_sha256 = None
        self.chunked = False
        self.trailers = []
        self.complete = False
        self.conn_index = None

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self):
        return [k.lower() for k, _ in self.headers]

    # request view
    @property
    def method(self):
        return self.start[0]

    @property
    def path(self):
        return self.start[1]

    # response view
    @property
    def status(self):
        return int(self.start[1])


def read_http_head(reader, max_head=1 << 20):
    """Reads a start line and headers; None at a clean EOF before the first byte."""
    raw = bytearray()
    line = reader.readline()
    while line in (b"\r\n", b"\n"):  # tolerate blank lines before a message
        line = reader.readline()
    if not line:
        return None
    raw += line
    msg = HttpMessage()
    parts = line.rstrip(b"\r\n").decode("latin-1").split(" ", 2)
    if len(parts) < 2:
        raise HttpProtocolError("bad start line %r" % line)
    msg.start = tuple(parts) if len(parts) == 3 else (parts[0], parts[1], "")
    while True:
        line = reader.readline()
        if not line:
            raise HttpProtocolError("EOF in headers")
        raw += line
        if len(raw) > max_head:
            raise HttpProtocolError("head too large")
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.rstrip(b"\r\n").decode("latin-1").partition(":")
        if not sep:
            raise HttpProtocolError("bad header line %r" % line)
        msg.headers.append((name, value.strip(" \t")))
    msg.raw_head = bytes(raw)
    return msg


def read_http_body(reader, msg, keep=True, no_body=False, to_eof_ok=False):
    """Reads the body of msg per its framing (content-length, chunked, or to EOF when
    to_eof_ok); hashes it; keeps it when keep."""
    h = hashlib.sha256()
    kept = bytearray()
    count = [0]

    def sink(chunk):
        h.update(chunk)
        count[0] += len(chunk)
        if keep:
            kept.extend(chunk)

    te = (msg.header("transfer-encoding") or "").lower()
    cl = msg.header("content-length")
    if no_body:
        pass
    elif "chunked" in te:
        msg.chunked = True
        while True:
            line = reader.readline()
            if not line:
                raise HttpProtocolError("EOF in chunk size")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            reader.read_exact(size, sink)
            if reader.readline() not in (b"\r\n", b"\n"):
                raise HttpProtocolError("bad chunk end")
        while True:
            line = reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HttpProtocolError("EOF in trailers")
            name, _, value = line.rstrip(b"\r\n").decode("latin-1").partition(":")
            msg.trailers.append((name, value.strip()))
    elif cl is not None:
        reader.read_exact(int(cl), sink)
    elif to_eof_ok:
        reader.read_to_eof(sink)
    msg.body = bytes(kept)
    msg.body_len = count[0]
    msg.body_sha256 = h.hexdigest()
    msg.complete = True
    return msg


def read_http_response(reader, request_method="GET", keep=True):
    """One response (skipping nothing: a 1xx comes back as its own message)."""
    msg = read_http_head(reader)
    if msg is None:
        return None
    status = msg.status
    no_body = request_method == "HEAD" or status in (204, 304) or 100 <= status < 200
    return read_http_body(reader, msg, keep=keep, no_body=no_body, to_eof_ok=True)


def response_bytes(status, headers=(), body=b"", reason=None):
    """An HTTP/1.1 response with content-length (unless headers frame it otherwise)."""
    reason = reason or {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found",
                        500: "Internal Server Error"}.get(status, "Status")
    names = [k.lower() for k, _ in headers]
    lines = ["HTTP/1.1 %d %s" % (status, reason)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if ("content-length" not in names and "transfer-encoding" not in names
            and status not in (204, 304) and not 100 <= status < 200):
        lines.append("content-length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def pattern_bytes(n, seed=0):
    """n pseudo-random bytes, cheap for large n: a 1 MiB random block (by seed), repeated,
    each MiB stamped with its index."""
    import random as _random
    base = _random.Random(seed).randbytes(min(n, 1 << 20))
    out = bytearray()
    i = 0
    while len(out) < n:
        block = i.to_bytes(8, "big") + base[8:]
        out += block[:n - len(out)]
        i += 1
    return bytes(out)


class HttpUpstream(TcpServer):
    """A keep-alive HTTP/1.1 server on raw sockets that records every request it parses
    (`requests`, HttpMessage with conn_index) and answers through `handler(req)`, which
    returns one of:
      (status, headers, body)  -> sent with content-length unless headers frame it;
      bytes                    -> sent as they are;
      a callable(conn)         -> writes what it wants; returns False to close;
      None                     -> close the connection without answering.
    The default handler is `default_handler` (see there). `name` is echoed in the
    x-upstream header of default responses. Bodies above keep_limit are hashed, not kept."""

    def __init__(self, handler=None, name="up", keep_limit=1 << 20, **kw):
        self.handler = handler or self.default_handler
        self.name = name
        self.keep_limit = keep_limit
        self.requests = []
        self.request_cv = threading.Condition()
        self.stop = threading.Event()
        self.closed_conns = set()  # indexes whose client side closed (EOF seen)
        super().__init__(**kw)

    # -- helpers for tests

    def count(self):
        with self.request_cv:
            return len(self.requests)

    def wait_requests(self, n, timeout=10.0):
        with self.request_cv:
            if not self.request_cv.wait_for(lambda: len(self.requests) >= n, timeout):
                raise AssertionError("upstream %s saw %d of %d requests in %.0fs"
                                     % (self.name, len(self.requests), n, timeout))
            return list(self.requests)

    def last(self):
        with self.request_cv:
            return self.requests[-1]

    def wait_conn_closed(self, index, timeout=10.0):
        wait_until(lambda: index in self.closed_conns, timeout,
                   what="upstream %s connection %d closed" % (self.name, index))

    def close(self):
        self.stop.set()
        super().close()

    # -- server

    def default_handler(self, req):
        """(Under any prefix:) /status/<code>: that status, no body. /bytes/<n>[?seed=s]: n bytes with
        x-body-sha256. /chunked/<n>: n bytes chunked (64 KiB chunks). /delay/<ms>: 200
        after ms. Anything else: 200 with a JSON echo of the request (method, path,
        version, headers, body_len, body_sha256, conn)."""
        path = req.path.split("?", 1)[0]
        parts = path.split("/")
        # The keyword may follow any prefix (/api/delay/100): take the last one.
        for i in range(len(parts) - 2, 0, -1):
            if parts[i] in ("status", "bytes", "chunked", "delay") and parts[i + 1].isdigit():
                parts = [""] + parts[i:]
                break
        if len(parts) >= 3 and parts[1] == "status":
            return (int(parts[2]), [("x-upstream", self.name)], b"")
        if len(parts) >= 3 and parts[1] == "bytes":
            body = pattern_bytes(int(parts[2]))
            return (200, [("x-upstream", self.name), ("content-type", "application/octet-stream"),
                          ("x-body-sha256", sha256(body))], body)
        if len(parts) >= 3 and parts[1] == "chunked":
            body = pattern_bytes(int(parts[2]))

            def send_chunked(conn, body=body):
                conn.sendall(response_bytes(200, [("x-upstream", self.name),
                                                  ("transfer-encoding", "chunked"),
                                                  ("x-body-sha256", sha256(body))]))
                for off in range(0, len(body), 65536):
                    piece = body[off:off + 65536]
                    conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                conn.sendall(b"0\r\n\r\n")
                return True
            return send_chunked
        if len(parts) >= 3 and parts[1] == "delay":
            self.stop.wait(int(parts[2]) / 1000.0)
            return (200, [("x-upstream", self.name)], b"delayed")
        return (200, [("x-upstream", self.name), ("content-type", "application/json")],
                self.echo_body(req))

    @staticmethod
    def echo_body(req):
        return json.dumps({"method": req.method, "path": req.path, "version": req.start[2],
                           "headers": req.headers, "body_len": req.body_len,
                           "body_sha256": req.body_sha256, "conn": req.conn_index}).encode()

    def handle(self, conn, index):
        reader = SockReader(conn)
        try:
            while not self.closed:
                try:
                    req = read_http_head(reader)
                    if req is None:
                        with self.lock:
                            self.closed_conns.add(index)
                        break
                    req.conn_index = index
                    expect = (req.header("expect") or "").lower()
                    if expect == "100-continue":
                        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    read_http_body(reader, req, keep=True)
                    if req.body_len > self.keep_limit:
                        req.body = b""
                except (HttpProtocolError, ValueError) as e:
                    with self.lock:
                        self.errors.append("parse: %r" % e)
                        self.closed_conns.add(index)
                    break
                except OSError:
                    with self.lock:
                        self.closed_conns.add(index)
                    break
                with self.request_cv:
                    self.requests.append(req)
                    self.request_cv.notify_all()
                out = self.handler(req)
                if out is None:
                    break
                if callable(out):
                    if out(conn) is False:
                        break
                    continue
                if isinstance(out, (bytes, bytearray)):
                    conn.sendall(out)
                else:
                    status, headers, body = out
                    if req.method == "HEAD" and body:
                        # A HEAD response carries the length a GET would get, no body.
                        headers = list(headers) + [("content-length", str(len(body)))]
                        body = b""
                    conn.sendall(response_bytes(status, headers, body))
                if (req.header("connection") or "").lower() == "close":
                    break
        finally:
            try:
                conn.close()
            except OSError:
                pass


def keepalive_get_loop(port, results, stop, limit):
    """GETs /load<i> on one keep-alive connection until stop is set or limit requests
    are done. Appends each response's status to results, or the error's repr, after
    which it reconnects: a load that counts what a client would have seen."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set() and i < limit:
        try:
            conn.request("GET", "/load%d" % i)
            resp = conn.getresponse()
            resp.read()
            results.append(resp.status)
        except (OSError, http.client.HTTPException) as e:
            results.append(repr(e))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
    conn.close()


def http_get(port, path="/", method="GET", headers=None, body=None, timeout=10.0,
             host="127.0.0.1"):
    """One request on a fresh http.client connection: (status, HTTPResponse headers as a
    list of pairs, body bytes, the HTTPResponse)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.getheaders(), data, resp
    finally:
        conn.close()


def raw_request(port, data, timeout=5.0, request_method="GET", close_timeout=None):
    """Sends raw bytes; reads one response (HttpMessage, or None if the connection closed
    before any response) and reports whether legate then closed the connection within
    close_timeout (default: timeout; 0 to not wait): (response, closed)."""
    close_timeout = timeout if close_timeout is None else close_timeout
    s = connect(port, timeout=timeout)
    try:
        s.sendall(data)
        reader = SockReader(s)
        try:
            resp = read_http_response(reader, request_method)
        except (HttpProtocolError, ConnectionResetError):
            resp = None
        try:
            closed = resp is None or reader.eof or (
                close_timeout > 0 and closed_by_peer(s, close_timeout))
        except OSError:
            closed = True
        return resp, closed
    finally:
        s.close()
