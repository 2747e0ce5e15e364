#!/usr/bin/env python3
"""User and system CPU per proxied request, per proxy, side by side.

    python3 bench/cpu_split.py [--rounds 3] [--duration 5] [--connections 50,400] [--perf N]
                               [--syscalls]

The same proxies, configs, backend and wrk runs as `bench/run.py`'s http section
(its helpers are reused), but the proxy's CPU time is read from /proc/<pid>/stat as
utime and stime separately, to show how much of the CPU per request is the kernel's.
Beside each figure it prints the TCP segments sent per request on the whole machine
(/proc/net/snmp OutSegs; everything runs over loopback, so this counts the client's,
the proxy's and the backend's segments alike). A proxy that coalesces less, or sends
bare ACKs, shows more; four is the floor (request in, request out, response in,
response out). The relay (bench/relay.c, built with the system's C compiler when
there is one) runs beside them: a blind copy between each client connection and its
own upstream connection, no HTTP at all, so its figure is the kernel's share of a
request with next to nothing in user space. relay-uring (bench/relay_uring.c, built
when liburing is installed too) is the same relay on io_uring: multishot recvs into
provided buffers and one io_uring_enter per pass of its loop instead of a system call
per read, per write and per wait, to show whether io_uring lowers that floor. The
proxies run in alternating order (A B C D, D C B A, ...). Prints each run and then the
medians; no thresholds.

--perf N also samples each proxy's processes with `perf record -e cpu-clock` (a
software clock: it works in a VM without hardware counters) in an extra run after
each measured run of the first round (sampling costs CPU, so it is kept out of the
figures), and prints each proxy's N hottest symbols, kernel and user
space, side by side with its share of the samples by place (kernel, the proxy's own
binary, libraries). Needs perf (Debian: linux-perf) and the right to profile (root,
or kernel.perf_event_paranoid <= 1 for kernel symbols).

--syscalls counts each proxy's system calls per request in an extra run after each
measured run of the first round (`perf stat` on the raw_syscalls and syscalls
tracepoints: the total, and the calls a proxy's request path makes), to compare how
many times each proxy enters the kernel for the same work. Needs perf and root.

An `envoy` binary on PATH runs beside them, as in bench/run.py.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def user_sys_ticks(pids):
    ticks = [run.cpu_ticks_split(pid) for pid in pids]
    return sum(t[0] for t in ticks), sum(t[1] for t in ticks)


def tcp_out_segments():
    """The machine's TCP OutSegs counter (/proc/net/snmp), or None if unreadable."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        return int(dict(zip(rows[0][1:], rows[1][1:]))["OutSegs"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def perf_start(pids, path):
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-o", path,
                             "-p", ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def perf_stop(rec):
    rec.send_signal(2)  # SIGINT: perf writes its file and exits
    try:
        rec.wait(timeout=60)
    except subprocess.TimeoutExpired:
        rec.kill()
        rec.wait()


def perf_top(path, n):
    """(share by place, [(percent, place, symbol)]) from a perf.data file."""
    out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym",
                          "--stdio", "--percent-limit", "0.01"],
                         capture_output=True, text=True).stdout
    rows, places = [], {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4 or not parts[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        try:
            pct = float(parts[0][:-1])
        except ValueError:
            continue
        dso, kind, sym = parts[1], parts[2], " ".join(parts[3:])
        place = "kernel" if kind == "[k]" else ("proxy" if os.path.basename(dso) in
                                                ("legate", "nginx", "haproxy", "relay", "relay_uring")
                                                else "libraries")
        places[place] = places.get(place, 0.0) + pct
        rows.append((pct, place, sym))
    return places, rows[:n]


# The calls a proxy's request path makes; anything else shows in the total only.
SYSCALLS = ["epoll_wait", "epoll_pwait", "epoll_ctl", "recvfrom", "sendto", "read", "write",
            "readv", "writev", "recvmsg", "sendmsg", "getsockopt", "setsockopt",
            "clock_gettime", "accept4", "close", "splice", "io_uring_enter"]


def syscall_counts(pids, run_load):
    """{name: calls} for pids while run_load() runs; "total" is every system call."""
    events = ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + s for s in SYSCALLS]
    stat = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(events),
                             "-p", ",".join(str(p) for p in pids)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        requests = run_load()
    finally:
        stat.send_signal(2)  # SIGINT: perf stat prints its counts and exits
        try:
            err = stat.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            stat.kill()
            err = stat.communicate()[1]
    counts = {}
    for line in err.splitlines():
        cols = line.split(",")
        if len(cols) > 2 and cols[0].strip().isdigit():
            name = cols[2].split(":")[-1].replace("sys_enter_", "")
            counts["total" if name == "sys_enter" else name] = int(cols[0])
    return counts, requests


def print_syscalls(table):
    for key, (counts, requests) in table.items():
        if not counts or not requests:
            print("\n%s: no syscall counts (perf stat failed?)" % key)
            continue
        per = {k: v / requests for k, v in counts.items() if v / requests >= 0.005}
        rest = ", ".join("%s %.2f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1])
                         if k != "total")
        print("\n%s: %.2f system calls per request (%s)" % (key, per.get("total", 0.0), rest))


def print_perf(reports, n):
    for name, (places, rows) in reports.items():
        share = ", ".join("%s %.0f %%" % (k, places.get(k, 0.0))
                          for k in ("kernel", "proxy", "libraries"))
        print("\n%s: samples by place: %s; hottest %d symbols:" % (name, share, n))
        for pct, place, sym in rows:
            print("  %5.2f %%  %-9s  %s" % (pct, place, sym[:100]))


def segments_text(segs):
    return "" if segs is None else "  TCP segments/request %.2f" % segs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    ap.add_argument("--connections", default="50,400")
    ap.add_argument("--perf", type=int, default=0, metavar="N",
                    help="sample each proxy with perf in round 1 and print its N hottest symbols")
    ap.add_argument("--syscalls", action="store_true",
                    help="count each proxy's system calls per request (perf stat) in round 1")
    ap.add_argument("--legate", default=os.environ.get("LEGATE_BIN") or
                    os.path.join(run.ROOT, "build", "release", "legate"))
    a = ap.parse_args()
    levels = [int(c) for c in a.connections.split(",")]
    tools, missing = run.find_tools(a.legate)
    if missing:
        sys.exit("missing: %s (make setup / make build)" % ", ".join(missing))
    if (a.perf or a.syscalls) and shutil.which("perf") is None:
        sys.exit("--perf and --syscalls need perf (Debian package linux-perf)")
    run.raise_nofile()
    results = {}
    reports = {}
    syscalls = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend_port = run.free_port()
        backend = run.start_backend(tools, tmp, backend_port)
        # The relay (bench/relay.c) beside them: the same kernel work with no HTTP;
        # and relay-uring (bench/relay_uring.c), the same relay on io_uring.
        run.RELAY_BINARY, why = run.build_relay(tmp)
        if why:
            print("note: the relay is left out: %s" % why, flush=True)
        run.RELAY_URING_BINARY, why = run.build_relay_uring(tmp)
        if why:
            print("note: relay-uring is left out: %s" % why, flush=True)
        # Envoy too, as bench/run.py runs it, when there is one on PATH.
        run.ENVOY_BINARY = shutil.which("envoy")
        names = run.proxies_and_relay()
        try:
            for rnd in range(a.rounds):
                for name in (names if rnd % 2 == 0 else names[::-1]):
                    proxy = run.start_proxy(name, tools, tmp, backend_port)
                    rec = None
                    try:
                        for conns in levels:
                            run.run_wrk(tools, proxy.port, conns, 1)  # warm-up
                            u0, s0 = user_sys_ticks(proxy.tree)
                            seg0 = tcp_out_segments()
                            r = run.run_wrk(tools, proxy.port, conns, a.duration)
                            seg1 = tcp_out_segments()
                            u1, s1 = user_sys_ticks(proxy.tree)
                            if a.perf and rnd == 0:
                                # A run of its own: sampling costs the proxy CPU.
                                path = os.path.join(tmp, "%s.perf" % name)
                                rec = perf_start(proxy.tree, path)
                                run.run_wrk(tools, proxy.port, conns, a.duration)
                                perf_stop(rec)
                                rec = None
                                reports["%s c=%d" % (name, conns)] = perf_top(path, a.perf)
                            if a.syscalls and rnd == 0:
                                # A run of its own: tracing costs the proxy CPU.
                                syscalls["%s c=%d" % (name, conns)] = syscall_counts(
                                    proxy.tree,
                                    lambda: run.run_wrk(tools, proxy.port, conns, a.duration)["requests"])
                            run.check_wrk(r, "%s c=%d" % (name, conns))
                            scale = 1e6 / run.CLK_TCK / r["requests"]
                            u, s = (u1 - u0) * scale, (s1 - s0) * scale
                            segs = (seg1 - seg0) / r["requests"] if None not in (seg0, seg1) else None
                            results.setdefault((name, conns), []).append((u, s, segs))
                            print("round %d  %-11s c=%-4d user %5.1f  sys %5.1f  total %5.1f µs/request%s"
                                  % (rnd + 1, name, conns, u, s, u + s, segments_text(segs)),
                                  flush=True)
                    finally:
                        if rec is not None:
                            perf_stop(rec)
                        proxy.stop()
        finally:
            backend.stop()
    print("\nmedians over %d round(s), µs of CPU per request" % a.rounds)
    for conns in levels:
        for name in names:
            v = results[(name, conns)]
            u = statistics.median(x[0] for x in v)
            s = statistics.median(x[1] for x in v)
            segs = [x[2] for x in v if x[2] is not None]
            print("c=%-4d %-11s user %5.1f  sys %5.1f  total %5.1f%s"
                  % (conns, name, u, s, u + s,
                     segments_text(statistics.median(segs) if segs else None)))
    if reports:
        print_perf(reports, a.perf)
    if syscalls:
        print_syscalls(syscalls)


if __name__ == "__main__":
    main()
