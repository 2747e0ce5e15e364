#!/usr/bin/env python3
"""Side-by-side benchmark: legate vs nginx vs HAProxy, each with one worker,
each proxying HTTP/1.1 keep-alive to one shared nginx backend on loopback.

    python3 bench/run.py                 # full run (make bench)
    python3 bench/run.py --smoke         # seconds; checks only that every proxy serves
    python3 bench/run.py --rounds 5 --duration 10

Per round, the proxies run in alternating order (A B C, C B A, ...) to cancel
drift. Each proxy is started fresh for its turn in a round, then measured:

  * memory per idle connection: RSS growth after N keep-alive connections each
    served one request and then held open (measured first, on a fresh process);
  * for each concurrency C: a short warm-up, then `wrk -t1 -cC -dD --latency`;
    the proxy's CPU time (utime+stime of every process in its tree, from
    /proc/<pid>/stat) before and after gives CPU per request; wrk gives
    requests/s and latency p50/p99.

Prints medians per proxy and ratios legate / best peer, and writes the same as
JSON and Markdown (--out). Python 3 standard library only.

Exit status: 0 ok, 1 a proxy failed to serve (or another error), 77 a needed
tool (nginx, haproxy, wrk, the legate binary) is missing -- ctest's skip code.
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


def http_get_once(port, timeout=1.0):
    """One GET / on a fresh connection; returns the status code or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
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
        if http_get_once(port) == 200:
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


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime


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

def start_backend(tools, tmp, port):
    conf = render("backend-nginx.conf", os.path.join(tmp, "backend.conf"),
                  {"DIR": tmp, "BACKEND_PORT": port})
    p = Proc("backend nginx", [tools["nginx"], "-p", tmp, "-e", os.path.join(tmp, "backend-error.log"),
                               "-c", conf], os.path.join(tmp, "backend.out"), port)
    p.ready()
    return p


def start_proxy(name, tools, tmp, backend_port):
    port = free_port()
    values = {"DIR": tmp, "BACKEND_PORT": backend_port, "PROXY_PORT": port}
    out = os.path.join(tmp, name + ".out")
    if name == "legate":
        values["ADMIN_PORT"] = free_port()
        conf = render("legate.yaml", os.path.join(tmp, "legate.yaml"), values)
        argv = [tools["legate"], "-c", conf, "--concurrency", "1", "-l", "warning"]
    elif name == "nginx":
        conf = render("nginx.conf", os.path.join(tmp, "nginx.conf"), values)
        argv = [tools["nginx"], "-p", tmp, "-e", os.path.join(tmp, "nginx-error.log"), "-c", conf]
    else:
        conf = render("haproxy.cfg", os.path.join(tmp, "haproxy.cfg"), values)
        argv = [tools["haproxy"], "-db", "-f", conf]
    p = Proc(name, argv, out, port)
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
        if http_get_once(proxy.port) != 200:
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
    argv = [tools["wrk"], "-t1", "-c%d" % conns, "-d%ds" % duration, "--latency",
            "http://127.0.0.1:%d/" % port]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish: %s" % " ".join(argv))
    if done.returncode != 0:
        raise BenchError("wrk failed (%d): %s" % (done.returncode, done.stderr.strip()))
    return parse_wrk(done.stdout)


def load_run(tools, proxy, conns, duration, warmup):
    if warmup > 0:
        run_wrk(tools, proxy.port, conns, warmup)
    cpu0 = proxy.cpu_seconds()
    r = run_wrk(tools, proxy.port, conns, duration)
    cpu1 = proxy.cpu_seconds()
    r["cpu_s"] = cpu1 - cpu0
    r["cpu_us_per_req"] = (r["cpu_s"] * 1e6 / r["requests"]) if r["requests"] else None
    return r


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
]


def summarize(results, levels, idle_n):
    rows = []
    for conns in levels:
        for key, label, better, fmt in METRICS:
            rows.append((key % conns, label % conns, better, fmt))
    if idle_n:
        rows.append(("idle_bytes_per_conn", "RSS bytes per idle connection, N=%d" % idle_n,
                     "lower", "%.0f"))
    table = []
    for key, label, better, fmt in rows:
        meds = {p: median([rnd.get(key) for rnd in results[p]]) for p in PROXIES}
        peers = [meds[p] for p in PROXIES if p != "legate" and meds[p] is not None]
        ratio = None
        if peers and meds["legate"] is not None:
            best = min(peers) if better == "lower" else max(peers)
            ratio = meds["legate"] / best if best else None
        table.append({"metric": label, "key": key, "better": better, "fmt": fmt,
                      "median": meds, "ratio_legate_best_peer": ratio})
    return table


def fmt(value, f):
    return "-" if value is None else f % value


def markdown(table, meta):
    lines = ["| metric | legate | nginx | haproxy | legate / best peer |",
             "|---|---:|---:|---:|---:|"]
    for row in table:
        m = row["median"]
        ratio = fmt(row["ratio_legate_best_peer"], "%.2f")
        lines.append("| %s (%s is better) | %s | %s | %s | %s |" % (
            row["metric"], row["better"], fmt(m["legate"], row["fmt"]), fmt(m["nginx"], row["fmt"]),
            fmt(m["haproxy"], row["fmt"]), ratio))
    head = ["Medians over %d round(s), %ds per wrk run; %s." % (meta["rounds"], meta["duration_s"], meta["note"]),
            ""]
    return "\n".join(head + lines) + "\n"


def raw_markdown(results):
    keys = sorted({k for p in PROXIES for rnd in results[p] for k in rnd if "@" in k or k.startswith("idle")})
    lines = ["| proxy | round | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for p in PROXIES:
        for i, rnd in enumerate(results[p]):
            cells = []
            for k in keys:
                v = rnd.get(k)
                cells.append("-" if v is None else ("%.3f" % v if isinstance(v, float) else str(v)))
            lines.append("| %s | %d | %s |" % (p, i + 1, " | ".join(cells)))
    return "\n".join(lines) + "\n"


def print_table(table):
    w = max(len(r["metric"]) for r in table) + 2
    log("%-*s %12s %12s %12s %12s" % (w, "metric", "legate", "nginx", "haproxy", "legate/best"))
    for row in table:
        m = row["median"]
        log("%-*s %12s %12s %12s %12s" % (w, row["metric"], fmt(m["legate"], row["fmt"]),
                                          fmt(m["nginx"], row["fmt"]), fmt(m["haproxy"], row["fmt"]),
                                          fmt(row["ratio_legate_best_peer"], "%.2f")))


# ---------------------------------------------------------------- main

def find_tools(legate_path):
    tools = {}
    missing = []
    for name in ("nginx", "haproxy", "wrk"):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="one short round; checks only that every proxy serves")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of wrk warm-up before each measured run")
    ap.add_argument("--connections", default="50,400", help="comma-separated wrk concurrency levels")
    ap.add_argument("--idle", type=int, default=2000, help="idle keep-alive connections for the memory test")
    ap.add_argument("--legate", default=os.environ.get("LEGATE_BIN") or os.path.join(ROOT, "build", "release", "legate"))
    ap.add_argument("--out", default=None, help="directory for results.json and results.md "
                    "(default: bench/results for a full run, none for --smoke)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.duration, args.warmup, args.connections, args.idle = 1, 1, 0, "10", 50
    elif args.out is None:
        args.out = os.path.join(HERE, "results")
    levels = [int(c) for c in args.connections.split(",") if c]

    tools, missing = find_tools(os.path.abspath(args.legate))
    if missing:
        log("SKIP: missing %s. Install with tools/setup.sh (Debian packages nginx-light, haproxy, wrk)."
            % ", ".join(missing))
        return SKIP
    nofile = raise_nofile()
    if args.idle + max(levels) + 200 > nofile:
        log("warning: RLIMIT_NOFILE is %d; lowering idle connections" % nofile)
        args.idle = max(10, nofile - max(levels) - 200)

    ncpu = os.cpu_count()
    note = ("wrk (1 thread), the proxy (1 worker) and the nginx backend (1 worker) share "
            "this machine's %d CPU(s)" % ncpu)
    log("legate benchmark: %s" % ("smoke mode" if args.smoke else "full run"))
    log("note: " + note + "; absolute numbers are machine-specific, ratios are the point.")

    tmp = tempfile.mkdtemp(prefix="legate-bench-")
    results = {p: [] for p in PROXIES}
    failures = []
    backend = None
    started = time.time()
    try:
        backend = start_backend(tools, tmp, free_port())
        order = list(PROXIES)
        for rnd in range(args.rounds):
            for name in order:
                rec = {}
                proxy = None
                try:
                    proxy = start_proxy(name, tools, tmp, backend.port)
                    if args.idle:
                        rec["idle_bytes_per_conn"] = idle_memory(proxy, args.idle)
                    for conns in levels:
                        r = load_run(tools, proxy, conns, args.duration, args.warmup)
                        for k in ("cpu_us_per_req", "rps", "p50_ms", "p99_ms", "requests",
                                  "non2xx", "socket_errors"):
                            rec["%s@%d" % (k, conns)] = r[k]
                        problem = None
                        if r["requests"] == 0:
                            problem = "served no requests"
                        elif r["non2xx"] or r["socket_errors"]:
                            problem = "%d non-2xx responses, %d socket errors" % (r["non2xx"], r["socket_errors"])
                        if problem:
                            failures.append("%s c=%d round %d: %s" % (name, conns, rnd + 1, problem))
                        log("round %d  %-8s c=%-4d %8d req  %9.0f req/s  cpu %6.1f µs/req  "
                            "p50 %7.3f ms  p99 %7.3f ms  errors %d/%d" % (
                                rnd + 1, name, conns, r["requests"], r["rps"],
                                r["cpu_us_per_req"] or 0, r["p50_ms"] or 0, r["p99_ms"] or 0,
                                r["non2xx"], r["socket_errors"]))
                    if args.idle:
                        log("round %d  %-8s idle: %.0f bytes RSS per idle connection (N=%d)"
                            % (rnd + 1, name, rec["idle_bytes_per_conn"], args.idle))
                except BenchError as e:
                    failures.append("%s round %d: %s" % (name, rnd + 1, e))
                    log("round %d  %-8s FAILED: %s" % (rnd + 1, name, e))
                finally:
                    if proxy:
                        proxy.stop()
                results[name].append(rec)
            order.reverse()
    except BenchError as e:
        failures.append(str(e))
        log("FAILED: %s" % e)
    finally:
        if backend:
            backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    table = summarize(results, levels, args.idle)
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": "%s %s, %d CPU(s)" % (platform.system(), platform.machine(), ncpu),
        "command": " ".join(["python3", "bench/run.py"] + sys.argv[1:]),
        "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
        "connections": levels, "idle_connections": args.idle, "note": note,
        "elapsed_s": round(time.time() - started, 1),
        "versions": versions(tools),
    }
    log("")
    log("Medians over %d round(s); ratio = legate / best peer (for 'lower is better' rows "
        "< 1 means legate wins, for requests/s > 1 means legate wins)." % args.rounds)
    print_table(table)

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "summary": table, "raw": results}, f, indent=2)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write("# Benchmark results\n\n- date: %s\n- machine: %s\n- command: `%s`\n- versions: %s\n\n"
                    % (meta["date"], meta["machine"], meta["command"],
                       ", ".join(meta["versions"].values())))
            f.write("## Medians\n\n" + markdown(table, meta) + "\n## Raw, per round\n\n" + raw_markdown(results))
        log("wrote %s/results.json and results.md" % os.path.relpath(args.out))

    if failures:
        log("")
        for f in failures:
            log("FAIL: " + f)
        return 1
    log("OK: every proxy served requests with no errors.")
    return 0


def versions(tools):
    out = {}
    for name, argv in (("legate", [tools["legate"], "--version"]), ("nginx", [tools["nginx"], "-v"]),
                       ("haproxy", [tools["haproxy"], "-v"]), ("wrk", [tools["wrk"], "--version"])):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            text = (done.stdout + done.stderr).strip().splitlines()
            out[name] = text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            out[name] = "?"
    return out


if __name__ == "__main__":
    sys.exit(main())
