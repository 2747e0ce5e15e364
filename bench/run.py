#!/usr/bin/env python3
"""Side-by-side benchmark: legate vs nginx vs HAProxy, each with one worker,
each proxying to one shared nginx backend on loopback.

    python3 bench/run.py                 # full run (make bench): every section
    python3 bench/run.py --smoke         # under a minute; checks only that everything serves
    python3 bench/run.py --only latency,scale --rounds 5
    python3 bench/run.py --only tcp --variant legate.tcp_proxy.splice=false

Sections (--only picks some; a full run and --smoke run all of them):

  http     memory per idle connection (RSS growth after N keep-alive connections
           each served one request and then held open, on a fresh process), then
           for each concurrency C a short warm-up and `wrk -t1 -cC -dD --latency`:
           the proxy's CPU time (utime+stime of its process tree, /proc/<pid>/stat)
           per request, requests/s (C=400 is saturation) and closed-loop p50/p99;
           beside the proxies, the relay (bench/relay.c, built here with cc): a
           blind copy with no HTTP, whose CPU per request is the kernel's floor
           (it runs in the latency section too), and relay-uring
           (bench/relay_uring.c, the same relay on io_uring, when liburing is
           installed): the floor without a system call per read and write;
  latency  open-loop latency at a fixed rate of half the slowest proxy's
           saturation requests/s (from the http section of the same run, else
           measured first): `h2load --h1 --rps`, p50/p99/p99.9 per proxy;
  bodies   CPU seconds per GiB proxied: 1 MiB responses (GET /files/1m) and
           1 MiB uploads (POST /upload, the backend discards the body);
  tcp      the same two transfers through legate's tcp_proxy, HAProxy `mode tcp`
           and nginx's stream module: CPU seconds per GiB;
  scale    legate only: time to ready and RSS with 10,000 STATIC clusters and
           10,000 routes vs 10 and 10, and CPU per request at 10,000 routes vs 10.

--variant KEY=VALUE (repeatable) adds a fourth proxy, "legate-variant": the
same binary and config with those runtime keys in a static layer, measured in
the same rounds, so that a runtime switch is compared with the default in one
run (its ratio is to legate, not to the peers). --variant-legate PATH makes the
variant another build (an A/B of two commits).

Envoy runs beside them when an `envoy` binary is on PATH (or --envoy PATH names
one; --no-envoy leaves it out): the same configs as legate (legate reads Envoy's
configuration), one worker, no hot restart, in every section but scale. It is a
reference, not a peer: legate / best peer stays against nginx and HAProxy, and
Envoy's column carries legate / Envoy. Debian has no Envoy package, so it runs
only where one was installed by hand.

Per round, the proxies run in alternating order (A B C, C B A, ...) to cancel
drift; each starts fresh for its turn. Prints medians per proxy and ratios
legate / best peer, and writes the same as JSON and Markdown (--out). Python 3
standard library only.

Exit status: 0 ok, 1 a proxy failed to serve (or another error), 77 a needed
tool (nginx, haproxy, wrk, h2load, the legate binary) is missing -- ctest's skip code.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
CONFIGS = os.path.join(HERE, "configs")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SKIP = 77
PROXIES = ["legate", "nginx", "haproxy"]
PEERS = ["nginx", "haproxy"]
VARIANT = "legate-variant"
# --variant KEY=VALUE: the runtime keys of the variant; --variant-legate PATH: its
# binary. Neither given: no variant runs.
VARIANT_RUNTIME = {}
VARIANT_BINARY = None
# The floor: bench/relay.c, a blind relay with no HTTP work, built into the run's
# temp directory when a C compiler is found (None: not measured). The http and
# latency sections run it beside the proxies.
RELAY = "relay"
RELAY_BINARY = None
# The same relay on io_uring (bench/relay_uring.c), built when liburing is there
# too: the floor of an event loop that does not make a system call per read and
# per write. Run beside the relay.
RELAY_URING = "relay-uring"
RELAY_URING_BINARY = None
# Envoy, when an `envoy` binary is on PATH (or given with --envoy): run the same way
# as legate, on the same configs (legate's configuration language is Envoy's), with
# one worker. A reference beside the peers: the targets stay legate / best of nginx
# and HAProxy, and its column carries its own ratio, legate / Envoy.
ENVOY = "envoy"
ENVOY_BINARY = None


def run_proxies():
    """The proxies a run measures: the three, the legate variant if asked for, and
    Envoy if there is one."""
    return (PROXIES + ([VARIANT] if VARIANT_RUNTIME or VARIANT_BINARY else [])
            + ([ENVOY] if ENVOY_BINARY else []))


def relays():
    """The relays that were built, relay first."""
    return ([RELAY] if RELAY_BINARY else []) + ([RELAY_URING] if RELAY_URING_BINARY else [])


def proxies_and_relay():
    """run_proxies() and the relays, when they were built: the http and latency
    sections run them beside the proxies."""
    return run_proxies() + relays()


def build_c(tmp, name, libs=()):
    """Compiles bench/NAME.c into tmp with the system's C compiler; returns the
    binary's path, or None (and why) when there is no compiler or it fails."""
    cc = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler (cc) on PATH"
    out = os.path.join(tmp, name)
    done = subprocess.run([cc, "-O2", "-o", out, os.path.join(HERE, name + ".c")] + list(libs),
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None, "%s failed on bench/%s.c: %s" % (cc, name, done.stderr.strip()[-500:])
    return out, None


def build_relay(tmp):
    """bench/relay.c, compiled into tmp: (path, None), or (None, why not)."""
    return build_c(tmp, "relay")


def build_relay_uring(tmp):
    """bench/relay_uring.c, compiled into tmp against liburing (Debian:
    liburing-dev): (path, None), or (None, why not)."""
    return build_c(tmp, "relay_uring", ["-luring"])


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- helpers

def log(msg):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template, out_path, values):
    with open(os.path.join(CONFIGS, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("@%s@" % key, str(value))
    if re.search(r"@[A-Z_]+@", text):
        raise BenchError("unfilled placeholder in %s" % template)
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def http_status(port, path="/", timeout=1.0):
    """One GET of path on a fresh connection; returns the status code or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            return int(m.group(1)) if m else None
    except OSError:
        return None


def wait_serving(port, proc, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("%s exited early with status %s" % (what, proc.returncode))
        if http_status(port) == 200:
            return
        time.sleep(0.05)
    raise BenchError("%s did not answer 200 on port %d within %.0fs" % (what, port, timeout))


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:  # field 4: ppid
            kids.append(int(entry))
    return kids


def cpu_ticks_split(pid):
    """(user, system) CPU ticks of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]), int(fields[12])  # fields 14, 15: utime, stime


def cpu_ticks(pid):
    return sum(cpu_ticks_split(pid))


def machine_busy_ticks():
    """CPU ticks the whole machine spent busy so far (every CPU; not idle, not iowait):
    the proxy, the load generator, the backend, and the kernel's softirq work for all
    of them. On loopback the receive processing of what a process sends may run in the
    sender's context or the receiver's depending on timing and write sizes, so a
    proxy's own CPU can shift without the work changing; this total cannot."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]


def rss_bytes(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE


class Proc:
    """A started server process; `tree` is the master plus its workers."""

    def __init__(self, name, argv, logpath, port):
        self.name = name
        self.port = port
        self.logfile = open(logpath, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.tree = [self.proc.pid]

    def ready(self):
        wait_serving(self.port, self.proc, self.name)
        self.tree = [self.proc.pid] + children_of(self.proc.pid)

    def cpu_seconds(self):
        return sum(cpu_ticks(p) for p in self.tree) / CLK_TCK

    def rss(self):
        return sum(rss_bytes(p) for p in self.tree)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self.logfile.close()


# ---------------------------------------------------------------- servers

MIB = 1024 * 1024
GIB = 1024 * MIB
BODY_PATH = "/files/1m"  # the backend's 1 MiB file
UPLOAD_PATH = "/upload"  # the backend reads and discards the body, answers 200
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def start_backend(tools, tmp, port):
    # nginx's workers may run as another user (root starts them as nobody/www-data):
    # they must reach the file through the private temp dir.
    os.chmod(tmp, 0o711)
    os.makedirs(os.path.join(tmp, "files"), mode=0o755, exist_ok=True)
    with open(os.path.join(tmp, "files", "1m"), "wb") as f:
        f.write(os.urandom(MIB))
    os.chmod(os.path.join(tmp, "files", "1m"), 0o644)
    conf = render("backend-nginx.conf", os.path.join(tmp, "backend.conf"),
                  {"DIR": tmp, "BACKEND_PORT": port})
    p = Proc("backend nginx", [tools["nginx"], "-p", tmp, "-e", os.path.join(tmp, "backend-error.log"),
                               "-c", conf], os.path.join(tmp, "backend.out"), port)
    p.ready()
    return p


def start_proxy(name, tools, tmp, backend_port, mode="http", legate_config=None, wrapper=()):
    """Starts one proxy with one worker. mode "http" proxies HTTP/1.1 (configs
    legate.yaml, nginx.conf, haproxy.cfg); mode "tcp" proxies bytes
    (legate-tcp.yaml, nginx-tcp.conf, haproxy-tcp.cfg). legate_config: a ready
    config file to use instead of the template (scale section). wrapper: a
    command to run the proxy under (profile.py's valgrind); nginx then runs as one
    process, its worker's work done by the process the wrapper sees."""
    port = free_port()
    values = {"DIR": tmp, "BACKEND_PORT": backend_port, "PROXY_PORT": port}
    out = os.path.join(tmp, "%s-%s.out" % (name, mode))
    suffix = "-tcp" if mode == "tcp" else ""
    if name in (RELAY, RELAY_URING):
        argv = [RELAY_BINARY if name == RELAY else RELAY_URING_BINARY, str(port), str(backend_port)]
    elif name == ENVOY:
        values["ADMIN_PORT"] = free_port()
        conf = render("legate%s.yaml" % suffix, os.path.join(tmp, "envoy%s.yaml" % suffix), values)
        # No hot restart: its shared memory would tie runs to one base id.
        argv = [ENVOY_BINARY, "-c", conf, "--concurrency", "1", "-l", "warning",
                "--disable-hot-restart"]
    elif name in ("legate", VARIANT):
        values["ADMIN_PORT"] = free_port()
        conf = legate_config or render("legate%s.yaml" % suffix, os.path.join(tmp, "%s%s.yaml" % (name, suffix)),
                                       values)
        if name == VARIANT and VARIANT_RUNTIME:
            with open(conf, "a") as f:
                f.write("\nlayered_runtime:\n  layers:\n  - name: variant\n    static_layer: %s\n"
                        % json.dumps(VARIANT_RUNTIME))
        binary = VARIANT_BINARY if name == VARIANT and VARIANT_BINARY else tools["legate"]
        argv = [binary, "-c", conf, "--concurrency", "1", "-l", "warning"]
    elif name == "nginx":
        values["STREAM_MODULE"] = STREAM_MODULE
        conf = render("nginx%s.conf" % suffix, os.path.join(tmp, "nginx%s.conf" % suffix), values)
        argv = [tools["nginx"], "-p", tmp, "-e", os.path.join(tmp, "nginx-error.log"), "-c", conf]
        if wrapper:
            argv += ["-g", "master_process off;"]
    else:
        conf = render("haproxy%s.cfg" % suffix, os.path.join(tmp, "haproxy%s.cfg" % suffix), values)
        argv = [tools["haproxy"], "-db", "-f", conf]
    p = Proc(name, list(wrapper) + argv, out, port)
    try:
        p.ready()
    except BenchError:
        p.stop()
        with open(out, "rb") as f:
            tail = f.read()[-2000:].decode(errors="replace")
        raise BenchError("%s failed to start; its output:\n%s" % (name, tail))
    return p


# ---------------------------------------------------------------- measurements

def read_response(sock, buf):
    """Reads one HTTP/1.1 response (Content-Length bodies) from sock; returns
    (status, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("connection closed before the response headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
    length = int(m.group(1)) if m else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise BenchError("connection closed inside the response body")
        rest += chunk
    return status, rest[length:]


def idle_memory(proxy, n):
    """RSS growth per connection after n keep-alive connections, each served one
    request and then held idle. Requests are sequential, so one upstream
    connection suffices and the growth is the downstream side's."""
    socks = []
    # A few requests first so lazily-initialised state is not counted.
    for _ in range(5):
        if http_status(proxy.port) != 200:
            raise BenchError("%s: warm-up request failed" % proxy.name)
    time.sleep(0.2)
    before = proxy.rss()
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            socks.append(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            status, _ = read_response(s, b"")
            if status != 200:
                raise BenchError("%s: idle-connection request got %d" % (proxy.name, status))
        time.sleep(0.3)
        after = proxy.rss()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    return (after - before) / n


def to_ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(out):
    r = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise BenchError("cannot parse wrk output:\n" + out)
    r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.MULTILINE)
        r[key] = to_ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    return r


def run_wrk(tools, port, conns, duration):
    return run_wrk_url(tools, "http://127.0.0.1:%d/" % port, conns, duration)


def run_wrk_url(tools, url, conns, duration):
    argv = [tools["wrk"], "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency", url]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: %s" % " ".join(argv))
    if done.returncode != 0:
        raise BenchError("wrk failed (%d): %s" % (done.returncode, done.stderr.strip()))
    return parse_wrk(done.stdout)


def load_run(tools, proxy, conns, duration, warmup, backend=None):
    """wrk at conns connections; the proxy's CPU per request, and with backend
    given the backend's too: a proxy that makes the backend work harder (new
    connections, extra bytes) shows there, not in its own figure."""
    if warmup > 0:
        run_wrk(tools, proxy.port, conns, warmup)
    cpu0 = proxy.cpu_seconds()
    b0 = backend.cpu_seconds() if backend else None
    r = run_wrk(tools, proxy.port, conns, duration)
    cpu1 = proxy.cpu_seconds()
    b1 = backend.cpu_seconds() if backend else None
    r["cpu_s"] = cpu1 - cpu0
    r["cpu_us_per_req"] = (r["cpu_s"] * 1e6 / r["requests"]) if r["requests"] else None
    if backend:
        r["backend_cpu_us_per_req"] = ((b1 - b0) * 1e6 / r["requests"]) if r["requests"] else None
    return r




def check_wrk(r, what):
    if r["requests"] == 0:
        raise BenchError("%s: served no requests" % what)
    if r["non2xx"] or r["socket_errors"]:
        raise BenchError("%s: %d non-2xx responses, %d socket errors" % (what, r["non2xx"], r["socket_errors"]))


# -- fixed-rate latency (open loop)

def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


# h2load starts connections at most one per millisecond (--rate-period takes whole
# milliseconds); a connection's --rps schedule starts when it connects.
SPREAD_STEP_MS = 1


def spread_per_conn(rate, conns):
    """The per-connection rate, at most `rate / conns` and at least 95 % of it, whose
    schedules are best spread when connection k starts k * SPREAD_STEP_MS after the
    first: connection k's requests then fall at phase (k * step) mod period, and
    this picks the rate whose closest two phases are furthest apart. Returns
    (requests/s per connection, closest gap in µs, the ideal gap period/conns in µs)."""
    target = rate / float(conns)
    best = None
    for per_conn in range(max(1, int(target * 0.95)), max(1, int(target)) + 1):
        period_us = 1e6 / per_conn
        phases = sorted((k * SPREAD_STEP_MS * 1e3) % period_us for k in range(conns))
        gaps = [b - a for a, b in zip(phases, phases[1:])] + [phases[0] + period_us - phases[-1]]
        cand = (min(gaps), per_conn, period_us / conns)
        if best is None or cand[:2] > best[:2]:
            best = cand
    return best[1], best[0], best[2]


def fixed_rate(tools, proxy, tmp, rate, conns, duration, warmup, spread=False):
    """h2load --h1 at `rate` requests/s in total (rate/conns per connection) for
    duration seconds after warmup seconds; latency percentiles from its per-request
    log (microseconds from the request's start to the end of its response).

    In step (spread=False): every connection connects at once, so the schedules
    coincide and the proxy sees a burst of `conns` requests every period. Spread:
    connections start SPREAD_STEP_MS apart (h2load -r1), so their schedules interleave
    and requests arrive one by one, as independent clients' would; h2load then has
    no -D or warm-up (it takes -n instead), so the warm-up and the connections' ramp
    are cut from the log by start time."""
    prefix = "spread_" if spread else "fixed_"
    url = "http://127.0.0.1:%d/" % proxy.port
    logpath = os.path.join(tmp, "h2load-%s.log" % proxy.name)
    if os.path.exists(logpath):
        os.unlink(logpath)  # h2load appends
    if spread:
        per_conn, _, _ = spread_per_conn(rate, conns)
        skip_s = max(warmup, conns * SPREAD_STEP_MS / 1e3)
        argv = [tools["h2load"], "--h1", "-t1", "-c%d" % conns, "--rps=%d" % per_conn, "-r1",
                "--rate-period=%dms" % SPREAD_STEP_MS,
                "-n%d" % int(round(per_conn * conns * (skip_s + duration))), "--log-file=" + logpath, url]
    else:
        per_conn = max(1, int(round(rate / conns)))
        skip_s = 0  # h2load's own warm-up leaves it out of the log
        argv = [tools["h2load"], "--h1", "-t1", "-c%d" % conns, "--rps=%d" % per_conn,
                "-D%d" % duration, "--log-file=" + logpath, url]
        if warmup > 0:
            argv.insert(-1, "--warm-up-time=%d" % warmup)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + warmup + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("h2load did not finish: %s" % " ".join(argv))
    if done.returncode != 0:
        raise BenchError("h2load failed (%d): %s" % (done.returncode, (done.stderr or done.stdout).strip()))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                  done.stdout)
    if not m:
        raise BenchError("cannot parse h2load output:\n" + done.stdout)
    failed = int(m.group(5)) + int(m.group(6))
    logged = []  # (start µs since the epoch, latency µs)
    non2xx = 0
    with open(logpath) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3:
                if not cols[1].startswith("2"):
                    non2xx += 1
                logged.append((int(cols[0]), int(cols[2])))
    os.unlink(logpath)
    if not logged:
        raise BenchError("%s: h2load logged no requests" % proxy.name)
    if failed or non2xx:
        raise BenchError("%s: fixed-rate run had %d failed/errored and %d non-2xx requests"
                         % (proxy.name, failed, non2xx))
    first = min(t for t, _ in logged)
    begin, end = first + skip_s * 1e6, first + (skip_s + duration) * 1e6
    lat_us = sorted(lat for t, lat in logged if begin <= t < end)
    if not lat_us:
        raise BenchError("%s: no request in the measured window" % proxy.name)
    return {prefix + "requests": len(lat_us), prefix + "rps": len(lat_us) / float(duration),
            prefix + "p50_ms": percentile(lat_us, 0.50) / 1e3, prefix + "p99_ms": percentile(lat_us, 0.99) / 1e3,
            prefix + "p999_ms": percentile(lat_us, 0.999) / 1e3, prefix + "rate_target": per_conn * conns}


# -- large bodies and TCP: CPU seconds per GiB

def upload_script(tmp):
    path = os.path.join(tmp, "upload.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.body = string.rep("x", %d)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n' % MIB)
    return path


def bulk_run(tools, proxy, tmp, direction, conns, duration):
    """1 MiB responses ("down": GET /files/1m) or 1 MiB uploads ("up": POST
    /upload) through the proxy with wrk; returns the proxy's CPU seconds per GiB
    of body moved."""
    url = "http://127.0.0.1:%d%s" % (proxy.port, BODY_PATH if direction == "down" else UPLOAD_PATH)
    argv = [tools["wrk"], "-t1", "-c%d" % conns, "-d%ds" % duration, url]
    if direction == "up":
        argv[1:1] = ["-s", upload_script(tmp)]
    cpu0, busy0 = proxy.cpu_seconds(), machine_busy_ticks()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: %s" % " ".join(argv))
    cpu1, busy1 = proxy.cpu_seconds(), machine_busy_ticks()
    if done.returncode != 0:
        raise BenchError("wrk failed (%d): %s" % (done.returncode, done.stderr.strip()))
    r = parse_wrk(done.stdout)
    check_wrk(r, "%s %s" % (proxy.name, direction))
    gib = r["requests"] * MIB / GIB
    return {"cpu_s_per_gib": (cpu1 - cpu0) / gib, "machine_cpu_s_per_gib": (busy1 - busy0) / CLK_TCK / gib,
            "gib_per_s": gib / duration, "requests": r["requests"]}


# -- scale of configuration (legate only)

def scale_config(path, n_clusters, n_routes, port, admin_port, backend_port):
    """A bootstrap with n_clusters STATIC clusters (one endpoint each: the backend)
    and n_routes routes in one virtual host, route i for /r<i>/...: even i a
    `prefix: /r<i>/` route, odd i a `path: /r<i>/x` route, to cluster c<i mod n>."""
    out = ["admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: %d }\n" % admin_port,
           "static_resources:\n  listeners:\n  - name: bench\n    address:\n"
           "      socket_address: { address: 127.0.0.1, port_value: %d }\n" % port,
           "    filter_chains:\n    - filters:\n      - name: envoy.filters.network.http_connection_manager\n"
           "        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
           "http_connection_manager.v3.HttpConnectionManager\n          stat_prefix: bench\n"
           "          route_config:\n            name: bench\n            virtual_hosts:\n"
           "            - name: all\n              domains: [\"*\"]\n              routes:\n"]
    for i in range(n_routes):
        match = ('prefix: "/r%05d/"' % i) if i % 2 == 0 else ('path: "/r%05d/x"' % i)
        out.append("              - match: { %s }\n                route: { cluster: c%05d }\n"
                   % (match, i % n_clusters))
    out.append("          http_filters:\n          - name: envoy.filters.http.router\n            typed_config:\n"
               "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"
               "  clusters:\n")
    for i in range(n_clusters):
        out.append("  - name: c%05d\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n"
                   "      cluster_name: c%05d\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n"
                   "            address:\n              socket_address: { address: 127.0.0.1, port_value: %d }\n"
                   % (i, i, backend_port))
    with open(path, "w") as f:
        f.write("".join(out))


def scale_route_path(n, which):
    """The path the scale section requests of its config with n routes: "mid", the
    middle route (the even index at or below n/2, so a prefix route at every n),
    or "last", the last route (a path route)."""
    return "/r%05d/x" % ((n // 2) // 2 * 2 if which == "mid" else n - 1)


def scale_start(tools, tmp, backend_port, n, timeout=120.0):
    """Starts legate with n clusters and n routes and waits until it is ready;
    returns (the process, its port, {"ready_s", "rss"})."""
    port, admin = free_port(), free_port()
    conf = os.path.join(tmp, "scale-%d.yaml" % n)
    scale_config(conf, n, n, port, admin, backend_port)
    out = os.path.join(tmp, "legate-scale-%d.out" % n)
    argv = [tools["legate"], "-c", conf, "--concurrency", "1", "-l", "warning"]
    t0 = time.monotonic()
    p = Proc("legate", argv, out, port)
    try:
        deadline = t0 + timeout
        while http_status(admin, "/ready") != 200:
            if p.proc.poll() is not None or time.monotonic() > deadline:
                with open(out, "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace")
                raise BenchError("legate with %d clusters did not become ready; its output:\n%s" % (n, tail))
            time.sleep(0.005)
        rec = {"ready_s": time.monotonic() - t0}
        time.sleep(0.3)
        rec["rss"] = p.rss()
        return p, port, rec
    except BaseException:
        p.stop()
        raise


def scale_cpu(tools, started, conns, duration, warmup):
    """CPU per request for the middle route and the last route of each started
    scale config ({n: (process, port)}). The configs run side by side and are
    measured in alternating one-second slices (A B B A A B ...), `duration` slices
    each, so a stretch in which the machine is slower falls on both alike; each
    config's figure is its CPU over its requests, summed over its slices.
    Returns {n: {"cpu_us_per_req_mid", "rps_mid", ...}}."""
    out = {n: {} for n in started}
    order = sorted(started)
    for which in ("mid", "last"):
        urls = {}
        for n, (p, port) in started.items():
            path = scale_route_path(n, which)
            if http_status(port, path) != 200:
                raise BenchError("legate with %d routes: %s did not answer 200" % (n, path))
            urls[n] = "http://127.0.0.1:%d%s" % (port, path)
            if warmup > 0:
                run_wrk_url(tools, urls[n], conns, warmup)
        cpu = dict.fromkeys(started, 0.0)
        reqs = dict.fromkeys(started, 0)
        for i in range(max(1, int(duration))):
            for n in (order if i % 2 == 0 else order[::-1]):
                p = started[n][0]
                cpu0 = p.cpu_seconds()
                r = run_wrk_url(tools, urls[n], conns, 1)
                cpu[n] += p.cpu_seconds() - cpu0
                check_wrk(r, "scale %d %s" % (n, which))
                reqs[n] += r["requests"]
        for n in started:
            out[n]["cpu_us_per_req_" + which] = cpu[n] * 1e6 / reqs[n]
            out[n]["rps_" + which] = reqs[n] / float(max(1, int(duration)))
    return out


# ---------------------------------------------------------------- reporting

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


METRICS = [
    # key, label, "lower" or "higher" is better, format
    ("cpu_us_per_req@%d", "CPU µs/request, c=%d", "lower", "%.1f"),
    ("rps@%d", "requests/s, c=%d", "higher", "%.0f"),
    ("p50_ms@%d", "latency p50 ms, c=%d", "lower", "%.3f"),
    ("p99_ms@%d", "latency p99 ms, c=%d", "lower", "%.3f"),
    ("backend_cpu_us_per_req@%d", "backend's CPU µs/request, c=%d (a check, not a target)", "lower", "%.1f"),
]


def rows_for(sections, levels, idle_n, rate, lat_conns):
    rows = []
    if "http" in sections:
        for conns in levels:
            for key, label, better, f in METRICS:
                rows.append((key % conns, label % conns, better, f))
        if idle_n:
            rows.append(("idle_bytes_per_conn", "RSS bytes per idle connection, N=%d" % idle_n, "lower", "%.0f"))
    if "latency" in sections and rate:
        per_conn, _, _ = spread_per_conn(rate, lat_conns)
        for prefix, what in (("spread_", "fixed rate %d req/s, c=%d, schedules spread" % (per_conn * lat_conns, lat_conns)),
                             ("fixed_", "fixed rate %.0f req/s, c=%d, in step (bursts of %d)"
                              % (max(1, int(round(rate / lat_conns))) * lat_conns, lat_conns, lat_conns))):
            rows += [(prefix + "p50_ms", "latency p50 ms, " + what, "lower", "%.3f"),
                     (prefix + "p99_ms", "latency p99 ms, " + what, "lower", "%.3f"),
                     (prefix + "p999_ms", "latency p99.9 ms, " + what, "lower", "%.3f"),
                     (prefix + "rps", "requests/s achieved, " + what, "higher", "%.0f")]
    if "bodies" in sections:
        rows += [("body_down_cpu_s_per_gib", "HTTP CPU s/GiB, 1 MiB responses", "lower", "%.3f"),
                 ("body_up_cpu_s_per_gib", "HTTP CPU s/GiB, 1 MiB uploads", "lower", "%.3f"),
                 ("body_down_machine_cpu_s_per_gib", "HTTP whole-machine CPU s/GiB, 1 MiB responses", "lower", "%.3f"),
                 ("body_up_machine_cpu_s_per_gib", "HTTP whole-machine CPU s/GiB, 1 MiB uploads", "lower", "%.3f")]
    if "tcp" in sections:
        rows += [("tcp_down_cpu_s_per_gib", "TCP proxy CPU s/GiB, 1 MiB downloads", "lower", "%.3f"),
                 ("tcp_up_cpu_s_per_gib", "TCP proxy CPU s/GiB, 1 MiB uploads", "lower", "%.3f"),
                 ("tcp_down_machine_cpu_s_per_gib", "TCP whole-machine CPU s/GiB, 1 MiB downloads", "lower", "%.3f"),
                 ("tcp_up_machine_cpu_s_per_gib", "TCP whole-machine CPU s/GiB, 1 MiB uploads", "lower", "%.3f")]
    return rows


def best_of(values, better):
    """The best peer's figure: the lowest or the highest, as the metric wants."""
    return min(values) if better == "lower" else max(values)


def round_ratio_range(results, key, better, who="legate"):
    """(min, max) over rounds of `who` (legate, or a relay) / best peer within
    that round: each round has every proxy once, back to back, so its ratio is
    paired against the same drift. The spread says how far a single rerun may
    land from the median."""
    ratios = []
    for i, rnd in enumerate(results.get(who, [])):
        own = rnd.get(key)
        peers = [results[p][i].get(key) for p in PEERS if p in results and i < len(results[p])]
        peers = [v for v in peers if v is not None]
        if own is None or not peers:
            continue
        best = best_of(peers, better)
        if best:
            ratios.append(own / best)
    return (min(ratios), max(ratios)) if ratios else None


def fmt_range(r):
    return "-" if r is None else "%.2f-%.2f" % r


def summarize(results, rows):
    table = []
    for key, label, better, f in rows:
        meds = {p: median([rnd.get(key) for rnd in results[p]]) for p in results}
        peers = [meds[p] for p in PEERS if meds.get(p) is not None]
        best = best_of(peers, better) if peers else None
        ratio = meds["legate"] / best if best and meds["legate"] is not None else None
        row = {"metric": label, "key": key, "better": better, "fmt": f,
               "median": meds, "ratio_legate_best_peer": ratio,
               "ratio_round_range": round_ratio_range(results, key, better)}
        if VARIANT in meds:
            v, base = meds[VARIANT], meds["legate"]
            row["ratio_variant_legate"] = v / base if v is not None and base else None
        if meds.get(ENVOY) is not None and meds["legate"] is not None:
            row["ratio_legate_envoy"] = meds["legate"] / meds[ENVOY] if meds[ENVOY] else None
        for relay in (RELAY, RELAY_URING):
            if meds.get(relay) is not None and peers:
                row[relay_key(relay, "best_peer")] = meds[relay] / best if best else None
                row[relay_key(relay, "round_range")] = round_ratio_range(results, key, better, relay)
        table.append(row)
    return table


def summarize_scale(scale, small, big):
    """Medians of the scale rounds and the derived figures the targets name."""
    if not scale:
        return []
    med = {k: median([r.get(k) for r in scale]) for k in sorted({k for r in scale for k in r})}
    rows = []
    for n in (small, big):
        rows.append(("time to ready, s, %d clusters + %d routes" % (n, n), med.get("ready_s@%d" % n), "%.3f"))
        rows.append(("RSS MiB when ready, %d clusters + %d routes" % (n, n),
                     med["rss@%d" % n] / MIB if med.get("rss@%d" % n) else None, "%.1f"))
    if med.get("rss@%d" % big) and med.get("rss@%d" % small):
        rows.append(("RSS bytes per cluster (+1 route), (RSS@%d - RSS@%d) / %d" % (big, small, big - small),
                     (med["rss@%d" % big] - med["rss@%d" % small]) / (big - small), "%.0f"))
    for which, what in (("mid", "middle route, a prefix route"), ("last", "last route, a path route")):
        a, b = med.get("cpu_us_per_req_%s@%d" % (which, small)), med.get("cpu_us_per_req_%s@%d" % (which, big))
        rows.append(("CPU µs/request, %d routes, %s" % (small, what), a, "%.1f"))
        rows.append(("CPU µs/request, %d routes, %s" % (big, what), b, "%.1f"))
        rows.append(("ratio %d routes / %d routes, %s" % (big, small, what), (b / a) if a and b else None, "%.2f"))
    return [{"metric": m, "value": v, "fmt": f} for m, v, f in rows]


def fmt(value, f):
    return "-" if value is None else f % value


def relay_key(relay, what):
    """A relay's ratio in a summary row: ratio_relay_best_peer, ratio_relay_uring_best_peer, ..."""
    return "ratio_%s_%s" % (relay.replace("-", "_"), what)


RELAY_NOTE = ("*relay*: bench/relay.c, a blind copy between each client connection and its own upstream "
              "connection, with no HTTP: the same reads, writes and TCP segments per request as a proxy, next "
              "to nothing in user space. *relay/best* is the ratio a proxy that spent nothing in user space "
              "would score: the kernel's floor for the CPU rows. In the latency rows it is a reference, not "
              "a floor: the tail of a process that only copies, which, being idle more, sleeps and is woken "
              "more often than a proxy.")

RELAY_URING_NOTE = ("*relay-uring*: bench/relay_uring.c, the same relay on io_uring (a multishot recv "
                    "per connection into provided buffers, sends batched into one io_uring_enter per "
                    "pass): the floor of an event loop without a system call per read and write.")


ENVOY_NOTE = ("*envoy*: Envoy on the same configs as legate, one worker. *legate/envoy* is legate's "
              "figure over Envoy's: a reference beside the targets, which are against the better of "
              "nginx and HAProxy.")


def has_envoy(table):
    return any(row["median"].get(ENVOY) is not None for row in table)


def has_relay(table, relay=RELAY):
    return any(row["median"].get(relay) is not None for row in table)


def extra_columns(table):
    """(header, cells of a row) for the optional proxies present in the table: the
    variant (its ratio is to legate), Envoy (legate / Envoy) and the relays (their
    ratio is to the best peer, with its range over rounds)."""
    cols = []
    if any(VARIANT in row["median"] for row in table):
        cols.append(((VARIANT, "variant/legate"),
                     lambda row: (fmt(row["median"].get(VARIANT), row["fmt"]),
                                  fmt(row.get("ratio_variant_legate"), "%.2f"))))
    if has_envoy(table):
        cols.append(((ENVOY, "legate/envoy"),
                     lambda row: (fmt(row["median"].get(ENVOY), row["fmt"]),
                                  fmt(row.get("ratio_legate_envoy"), "%.2f"))))
    for relay in (RELAY, RELAY_URING):
        if has_relay(table, relay):
            cols.append(((relay, "%s/best" % relay, "%s per round" % relay),
                         lambda row, relay=relay: (fmt(row["median"].get(relay), row["fmt"]),
                                                   fmt(row.get(relay_key(relay, "best_peer")), "%.2f"),
                                                   fmt_range(row.get(relay_key(relay, "round_range"))))))
    return cols


def markdown(table, meta):
    extra = extra_columns(table)
    heads = [h for head, _ in extra for h in head]
    lines = ["| metric | legate | nginx | haproxy | legate / best peer | per round |" +
             "".join(" %s |" % h for h in heads),
             "|---|---:|---:|---:|---:|---:|" + "---:|" * len(heads)]
    for row in table:
        m = row["median"]
        ratio = fmt(row["ratio_legate_best_peer"], "%.2f")
        line = "| %s (%s is better) | %s | %s | %s | %s | %s |" % (
            row["metric"], row["better"], fmt(m["legate"], row["fmt"]), fmt(m["nginx"], row["fmt"]),
            fmt(m["haproxy"], row["fmt"]), ratio, fmt_range(row.get("ratio_round_range")))
        line += "".join(" %s |" % c for _, cells in extra for c in cells(row))
        lines.append(line)
    head = ["Medians over %d round(s), %ds per measured run; %s. *per round*: the lowest and highest "
            "legate / best peer within one round (each round runs every proxy once, back to back), "
            "which is how far one rerun may land from the median." % (
                meta["rounds"], meta["duration_s"], meta["note"])]
    if has_envoy(table):
        head += ["", ENVOY_NOTE]
    if has_relay(table):
        head += ["", RELAY_NOTE]
    if has_relay(table, RELAY_URING):
        head += ["", RELAY_URING_NOTE]
    head.append("")
    return "\n".join(head + lines) + "\n"


def scale_markdown(rows):
    lines = ["| metric (legate only) | median |", "|---|---:|"]
    for r in rows:
        lines.append("| %s | %s |" % (r["metric"], fmt(r["value"], r["fmt"])))
    return "\n".join(lines) + "\n"


def raw_markdown(results):
    keys = sorted({k for p in results for rnd in results[p] for k in rnd})
    lines = ["| proxy | round | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for p in results:
        for i, rnd in enumerate(results[p]):
            cells = []
            for k in keys:
                v = rnd.get(k)
                cells.append("-" if v is None else ("%.3f" % v if isinstance(v, float) else str(v)))
            lines.append("| %s | %d | %s |" % (p, i + 1, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def raw_scale_markdown(scale):
    keys = sorted({k for r in scale for k in r})
    lines = ["| round | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    for i, r in enumerate(scale):
        lines.append("| %d | %s |" % (i + 1, " | ".join(fmt(r.get(k), "%.3f") for k in keys)))
    return "\n".join(lines) + "\n"


def print_table(table):
    w = max(len(r["metric"]) for r in table) + 2
    extra = extra_columns(table)
    log("%-*s %12s %12s %12s %12s %10s" % (w, "metric", "legate", "nginx", "haproxy", "legate/best", "per round") +
        "".join(" %15s" % h for head, _ in extra for h in head))
    for row in table:
        m = row["median"]
        log("%-*s %12s %12s %12s %12s %10s" % (w, row["metric"], fmt(m["legate"], row["fmt"]),
                                               fmt(m["nginx"], row["fmt"]), fmt(m["haproxy"], row["fmt"]),
                                               fmt(row["ratio_legate_best_peer"], "%.2f"),
                                               fmt_range(row.get("ratio_round_range"))) +
            "".join(" %15s" % c for _, cells in extra for c in cells(row)))


def print_scale(rows):
    w = max(len(r["metric"]) for r in rows) + 2
    log("%-*s %12s" % (w, "scale (legate only)", "median"))
    for r in rows:
        log("%-*s %12s" % (w, r["metric"], fmt(r["value"], r["fmt"])))


# ---------------------------------------------------------------- main

SECTIONS = ["http", "latency", "bodies", "tcp", "scale"]


def parse_runtime_value(text):
    """A runtime value as YAML would read it: true/false, a number, else a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def find_tools(legate_path, need=("nginx", "haproxy", "wrk")):
    tools = {}
    missing = []
    for name in need:
        path = shutil.which(name) or next((p for p in ("/usr/sbin/" + name, "/sbin/" + name)
                                           if os.access(p, os.X_OK)), None)
        if path:
            tools[name] = path
        else:
            missing.append(name)
    if os.access(legate_path, os.X_OK):
        tools["legate"] = legate_path
    else:
        missing.append("legate binary (%s; build it with `make build`)" % legate_path)
    return tools, missing


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 65536:
        hard = 65536
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Runner:
    """Runs the per-proxy sections round by round, alternating the order."""

    def __init__(self, args, tools, tmp, backend):
        self.args, self.tools, self.tmp, self.backend = args, tools, tmp, backend
        self.backend_port = backend.port
        self.results = {p: [{} for _ in range(args.rounds)] for p in proxies_and_relay()}
        self.failures = []

    def rounds(self, section, proxies, mode, measure):
        order = [p for p in proxies_and_relay() if p in proxies]
        for rnd in range(self.args.rounds):
            for name in order:
                proxy = None
                try:
                    proxy = start_proxy(name, self.tools, self.tmp, self.backend_port, mode)
                    measure(proxy, self.results[name][rnd], rnd)
                except BenchError as e:
                    self.failures.append("%s %s round %d: %s" % (section, name, rnd + 1, e))
                    log("round %d  %-8s %s FAILED: %s" % (rnd + 1, name, section, e))
                finally:
                    if proxy:
                        proxy.stop()
            order.reverse()

    # -- sections

    def http(self, levels):
        a = self.args

        def measure(proxy, rec, rnd):
            # A relay's connections are kernel memory, not RSS: it has no figure here.
            idle = a.idle and proxy.name not in (RELAY, RELAY_URING)
            if idle:
                rec["idle_bytes_per_conn"] = idle_memory(proxy, a.idle)
            for conns in levels:
                r = load_run(self.tools, proxy, conns, a.duration, a.warmup, backend=self.backend)
                for k in ("cpu_us_per_req", "rps", "p50_ms", "p99_ms", "requests", "non2xx", "socket_errors",
                          "backend_cpu_us_per_req"):
                    rec["%s@%d" % (k, conns)] = r[k]
                log("round %d  %-8s c=%-4d %8d req  %9.0f req/s  cpu %6.1f µs/req  "
                    "p50 %7.3f ms  p99 %7.3f ms  errors %d/%d  backend cpu %5.1f µs/req" % (
                        rnd + 1, proxy.name, conns, r["requests"], r["rps"], r["cpu_us_per_req"] or 0,
                        r["p50_ms"] or 0, r["p99_ms"] or 0, r["non2xx"], r["socket_errors"],
                        r["backend_cpu_us_per_req"] or 0))
                check_wrk(r, "c=%d" % conns)
            if idle:
                log("round %d  %-8s idle: %.0f bytes RSS per idle connection (N=%d)"
                    % (rnd + 1, proxy.name, rec["idle_bytes_per_conn"], a.idle))

        self.rounds("http", proxies_and_relay(), "http", measure)

    def saturation_rate(self, level):
        """Half the slowest proxy's saturation requests/s: from the http section
        (its highest concurrency level) when it ran, else measured now."""
        key = "rps@%d" % level
        if not all(any(rnd.get(key) for rnd in self.results[p]) for p in PROXIES):
            def measure(proxy, rec, rnd):
                r = load_run(self.tools, proxy, level, self.args.duration, self.args.warmup)
                check_wrk(r, "saturation c=%d" % level)
                rec[key] = r["rps"]
                log("round %d  %-8s saturation c=%d: %.0f req/s" % (rnd + 1, proxy.name, level, r["rps"]))
            self.rounds("saturation", PROXIES, "http", measure)
        meds = [median([rnd.get(key) for rnd in self.results[p]]) for p in PROXIES]
        if any(m is None for m in meds):
            return None
        return 0.5 * min(meds)

    def latency(self, rate):
        a = self.args

        def measure(proxy, rec, rnd):
            for spread, prefix, how in ((True, "spread_", "spread"), (False, "fixed_", "in step")):
                r = fixed_rate(self.tools, proxy, self.tmp, rate, a.latency_connections, a.duration, a.warmup,
                               spread=spread)
                rec.update(r)
                log("round %d  %-8s fixed rate %d req/s, %s: %.0f req/s done, p50 %.3f ms, p99 %.3f ms, "
                    "p99.9 %.3f ms" % (rnd + 1, proxy.name, r[prefix + "rate_target"], how, r[prefix + "rps"],
                                       r[prefix + "p50_ms"], r[prefix + "p99_ms"], r[prefix + "p999_ms"]))

        per_conn, gap_us, even_us = spread_per_conn(rate, a.latency_connections)
        log("schedules spread: %d req/s per connection, connections %d ms apart: the closest two "
            "connections' requests are %.0f µs apart (%.0f if perfectly even)"
            % (per_conn, SPREAD_STEP_MS, gap_us, even_us))
        self.rounds("latency", proxies_and_relay(), "http", measure)

    def bulk(self, section, prefix, proxies, mode):
        a = self.args

        def measure(proxy, rec, rnd):
            for direction in ("down", "up"):
                r = bulk_run(self.tools, proxy, self.tmp, direction, a.body_connections, a.duration)
                rec["%s_%s_cpu_s_per_gib" % (prefix, direction)] = r["cpu_s_per_gib"]
                rec["%s_%s_machine_cpu_s_per_gib" % (prefix, direction)] = r["machine_cpu_s_per_gib"]
                rec["%s_%s_gib_per_s" % (prefix, direction)] = r["gib_per_s"]
                log("round %d  %-8s %s 1 MiB %s: %d transfers, %.2f GiB/s, %.3f CPU s/GiB "
                    "(whole machine %.3f)" % (
                        rnd + 1, proxy.name, section, "responses" if direction == "down" else "uploads",
                        r["requests"], r["gib_per_s"], r["cpu_s_per_gib"], r["machine_cpu_s_per_gib"]))

        self.rounds(section, proxies, mode, measure)


def scale_section(args, tools, tmp, backend_port, failures):
    scale = []
    for rnd in range(args.rounds):
        rec = {}
        sizes = (10, args.scale) if rnd % 2 == 0 else (args.scale, 10)
        started = {}
        try:
            # Started one after the other, so neither's time to ready is the other's load.
            for n in sizes:
                p, port, r = scale_start(tools, tmp, backend_port, n)
                started[n] = (p, port)
                for k, v in r.items():
                    rec["%s@%d" % (k, n)] = v
            for n, r in scale_cpu(tools, started, args.scale_connections, args.duration, args.warmup).items():
                for k, v in r.items():
                    rec["%s@%d" % (k, n)] = v
        except BenchError as e:
            failures.append("scale round %d: %s" % (rnd + 1, e))
            log("round %d  scale FAILED: %s" % (rnd + 1, e))
        finally:
            for p, _ in started.values():
                p.stop()
        for n in sizes:
            if "cpu_us_per_req_last@%d" % n not in rec:
                continue
            log("round %d  legate   scale %5d clusters+routes: ready %.3f s, RSS %.1f MiB, "
                "cpu %.1f µs/req (middle route), %.1f µs/req (last route)"
                % (rnd + 1, n, rec["ready_s@%d" % n], rec["rss@%d" % n] / MIB,
                   rec["cpu_us_per_req_mid@%d" % n], rec["cpu_us_per_req_last@%d" % n]))
        scale.append(rec)
    return scale


def main():
    global VARIANT_BINARY, RELAY_BINARY, RELAY_URING_BINARY, ENVOY_BINARY
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="short runs of every section; checks only that "
                    "everything serves (the bench_smoke ctest test)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help="comma-separated sections to run (default: all): " + ", ".join(SECTIONS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each measured run")
    ap.add_argument("--connections", default="50,400", help="http: comma-separated wrk concurrency levels "
                    "(the last one is saturation, which sets the fixed rate)")
    ap.add_argument("--idle", type=int, default=10000, help="http: idle keep-alive connections for the memory test")
    ap.add_argument("--latency-connections", type=int, default=50, help="latency: h2load connections")
    ap.add_argument("--body-connections", type=int, default=10, help="bodies, tcp: wrk connections")
    ap.add_argument("--scale", type=int, default=10000, help="scale: clusters and routes of the big config "
                    "(the small one has 10)")
    ap.add_argument("--scale-connections", type=int, default=50, help="scale: wrk connections")
    ap.add_argument("--no-relay", action="store_true", help="http, latency: leave out the relays (bench/relay.c "
                    "and bench/relay_uring.c), the blind copies that show the kernel's floor")
    ap.add_argument("--envoy", default=None, metavar="PATH",
                    help="run Envoy beside the peers (default: `envoy` on PATH, if there is one)")
    ap.add_argument("--no-envoy", action="store_true", help="leave Envoy out even if it is on PATH")
    ap.add_argument("--legate", default=os.environ.get("LEGATE_BIN") or os.path.join(ROOT, "build", "release", "legate"))
    ap.add_argument("--out", default=None, help="directory for results.json and results.md "
                    "(default: bench/results for a full run, none for --smoke or --only)")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="runtime key for a fourth proxy, legate-variant (repeatable): the default "
                         "and the switch measured side by side")
    ap.add_argument("--variant-legate", default=None, metavar="PATH",
                    help="the legate binary legate-variant runs (another build: an A/B of two commits)")
    args = ap.parse_args()
    if args.variant_legate:
        if not os.access(args.variant_legate, os.X_OK):
            ap.error("--variant-legate: %s is not an executable" % args.variant_legate)
        VARIANT_BINARY = os.path.abspath(args.variant_legate)
    if args.envoy and args.no_envoy:
        ap.error("--envoy and --no-envoy contradict each other")
    if args.envoy:
        if not os.access(args.envoy, os.X_OK):
            ap.error("--envoy: %s is not an executable" % args.envoy)
        ENVOY_BINARY = os.path.abspath(args.envoy)
    elif not args.no_envoy and shutil.which("envoy"):
        ENVOY_BINARY = shutil.which("envoy")
    for kv in args.variant:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            ap.error("--variant wants KEY=VALUE, got %r" % kv)
        VARIANT_RUNTIME[key] = parse_runtime_value(value)
    sections = [s for s in args.only.split(",") if s]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        ap.error("unknown section(s) %s; choose from %s" % (", ".join(unknown), ", ".join(SECTIONS)))
    if args.smoke:
        (args.rounds, args.duration, args.warmup, args.connections, args.idle, args.latency_connections,
         args.body_connections, args.scale, args.scale_connections) = 1, 1, 0, "10", 50, 10, 2, 500, 10
    elif args.out is None and set(sections) == set(SECTIONS):
        args.out = os.path.join(HERE, "results")
    levels = [int(c) for c in args.connections.split(",") if c]

    need = ["nginx", "wrk"]
    if set(sections) & {"http", "latency", "bodies", "tcp"}:
        need.append("haproxy")
    if "latency" in sections:
        need.append("h2load")
    tools, missing = find_tools(os.path.abspath(args.legate), need)
    if missing:
        log("SKIP: missing %s. Install with tools/setup.sh (Debian packages nginx-light, haproxy, wrk, "
            "nghttp2-client, libnginx-mod-stream)." % ", ".join(missing))
        return SKIP
    nofile = raise_nofile()
    if args.idle + max(levels) + 200 > nofile:
        log("warning: RLIMIT_NOFILE is %d; lowering idle connections" % nofile)
        args.idle = max(10, nofile - max(levels) - 200)

    ncpu = os.cpu_count()
    note = ("the load generator (1 thread), the proxy (1 worker) and the nginx backend (1 worker) share "
            "this machine's %d CPU(s)" % ncpu)
    log("legate benchmark: %s; sections: %s" % ("smoke mode" if args.smoke else "full run" if args.out else "partial run",
                                                ", ".join(sections)))
    log("note: " + note + "; absolute numbers are machine-specific, ratios are the point.")
    tcp_proxies = run_proxies()
    notes = []
    if "tcp" in sections and not os.path.exists(STREAM_MODULE):
        tcp_proxies.remove("nginx")
        notes.append("nginx left out of the tcp section: its stream module (%s, Debian package "
                     "libnginx-mod-stream) is not installed" % STREAM_MODULE)
        log("note: " + notes[-1])

    tmp = tempfile.mkdtemp(prefix="legate-bench-")
    if {"http", "latency"} & set(sections) and not args.no_relay:
        RELAY_BINARY, why = build_relay(tmp)
        if why:
            notes.append("the relay (bench/relay.c, the kernel's floor) left out: " + why)
            log("note: " + notes[-1])
        RELAY_URING_BINARY, why = build_relay_uring(tmp)
        if why:
            notes.append("relay-uring (bench/relay_uring.c, the floor on io_uring) left out: " + why)
            log("note: " + notes[-1])
    backend = None
    runner = None
    scale = []
    failures = []
    rate = None
    started = time.time()
    try:
        backend = start_backend(tools, tmp, free_port())
        runner = Runner(args, tools, tmp, backend)
        if "http" in sections:
            runner.http(levels)
        if "latency" in sections:
            rate = runner.saturation_rate(max(levels))
            if rate is None:
                failures.append("latency: no saturation rate for every proxy")
            else:
                log("fixed rate: %.0f req/s (half the slowest proxy's median saturation requests/s at c=%d)"
                    % (rate, max(levels)))
                runner.latency(rate)
        if "bodies" in sections:
            runner.bulk("bodies", "body", run_proxies(), "http")
        if "tcp" in sections:
            runner.bulk("tcp", "tcp", tcp_proxies, "tcp")
        if "scale" in sections:
            scale = scale_section(args, tools, tmp, backend.port, failures)
    except BenchError as e:
        failures.append(str(e))
        log("FAILED: %s" % e)
    finally:
        if backend:
            backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results = runner.results if runner else {p: [] for p in proxies_and_relay()}
    failures = (runner.failures if runner else []) + failures

    table = summarize(results, rows_for(sections, levels, args.idle, rate, args.latency_connections))
    scale_rows = summarize_scale(scale, 10, args.scale)
    # A proxy asked for (Envoy found, the relay built) must have a column: one left
    # out without an error would pass for a proxy that was measured.
    if table and ENVOY_BINARY and set(sections) - {"scale"} and not has_envoy(table):
        failures.append("envoy (%s) was found but has no figures" % ENVOY_BINARY)
    if table and RELAY_BINARY and {"http", "latency"} & set(sections) and not has_relay(table):
        failures.append("the relay was built but has no figures")
    if table and RELAY_URING_BINARY and {"http", "latency"} & set(sections) and not has_relay(table, RELAY_URING):
        failures.append("relay-uring was built but has no figures")
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "%s %s, %d CPU(s)" % (platform.system(), platform.machine(), ncpu),
        "command": " ".join(["python3", "bench/run.py"] + sys.argv[1:]),
        "sections": sections, "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
        "connections": levels, "idle_connections": args.idle, "fixed_rate": rate,
        "latency_connections": args.latency_connections, "body_connections": args.body_connections,
        "scale": args.scale, "note": note, "notes": notes, "variant_runtime": VARIANT_RUNTIME,
        "variant_legate": VARIANT_BINARY, "relay": bool(RELAY_BINARY),
        "relay_uring": bool(RELAY_URING_BINARY), "envoy": bool(ENVOY_BINARY),
        "elapsed_s": round(time.time() - started, 1),
        "versions": versions(dict(tools, envoy=ENVOY_BINARY) if ENVOY_BINARY else tools),
    }
    log("")
    if table:
        log("Medians over %d round(s); ratio = legate / best peer (for 'lower is better' rows "
            "< 1 means legate wins, for requests/s > 1 means legate wins); per round = its lowest and "
            "highest within one round." % args.rounds)
        print_table(table)
        if has_envoy(table):
            log(ENVOY_NOTE.replace("*", ""))
        if has_relay(table):
            log(RELAY_NOTE.replace("*", ""))
        if has_relay(table, RELAY_URING):
            log(RELAY_URING_NOTE.replace("*", ""))
    if scale_rows:
        log("")
        print_scale(scale_rows)

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "summary": table, "scale": scale_rows, "raw": results, "raw_scale": scale},
                      f, indent=2)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write("# Benchmark results\n\n- date: %s\n- machine: %s\n- command: `%s`\n- versions: %s\n\n"
                    % (meta["date"], meta["machine"], meta["command"], ", ".join(meta["versions"].values())))
            for n in notes:
                f.write("- note: %s\n" % n)
            f.write("## Medians\n\n" + markdown(table, meta))
            if scale_rows:
                f.write("\n## Scale of configuration\n\n" + scale_markdown(scale_rows))
            f.write("\n## Raw, per round\n\n" + raw_markdown(results))
            if scale:
                f.write("\n" + raw_scale_markdown(scale))
        log("wrote %s/results.json and results.md" % os.path.relpath(args.out))

    if failures:
        log("")
        for f in failures:
            log("FAIL: " + f)
        return 1
    log("OK: every section ran with no errors.")
    return 0


def versions(tools):
    out = {}
    for name, argv in (("legate", ["legate", "--version"]), ("nginx", ["nginx", "-v"]),
                       ("haproxy", ["haproxy", "-v"]), ("wrk", ["wrk", "--version"]),
                       ("h2load", ["h2load", "--version"]), ("envoy", ["envoy", "--version"])):
        if argv[0] not in tools:
            continue
        try:
            done = subprocess.run([tools[argv[0]]] + argv[1:], capture_output=True, text=True, timeout=10)
            text = (done.stdout + done.stderr).strip().splitlines()
            out[name] = text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            out[name] = "?"
    return out


if __name__ == "__main__":
    sys.exit(main())
