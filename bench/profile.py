#!/usr/bin/env python3
"""Repeatable per-request cost of legate: instructions (callgrind), syscalls
(strace) or heap allocations (valgrind's memcheck heap summary) per proxied
request, on the benchmark's own config and backend.

    python3 bench/profile.py callgrind [--requests 2000] [--connections 10]
    python3 bench/profile.py strace    [--requests 2000] [--connections 10]
    python3 bench/profile.py allocs    [--requests 2000] [--connections 10]
    python3 bench/profile.py budget    (allocs and strace, checked against budgets)

--routes N profiles the scale section's config instead (N clusters, N routes)
and requests its last route (--route mid: its middle one), to count what a large
route table costs.

Wall time on a shared machine is noisy; instruction, syscall and allocation
counts are not. The client is Python (standard library): it opens C keep-alive
connections, then in each step sends one GET on every connection and reads
every response, until N requests were served. A warm-up of the same shape runs
first; only the measured part is counted:

  * callgrind: counters are zeroed after the warm-up (callgrind_control -z) and
    dumped after the measured part (-d); prints instructions per request and
    writes the dump (callgrind_annotate it for the profile);
  * strace: `strace -c -f` over two runs, N and 2N requests; the difference
    per request is printed per syscall (start-up and warm-up cancel);
  * allocs: memcheck's "total heap usage" over two runs, N and 2N requests;
    the difference per request is printed (allocations and bytes);
  * budget: allocs and strace, then a check against ALLOCATIONS_PER_REQUEST and
    the system-call budgets below; exits 1 naming what went over. The
    bench_request_cost test runs it, so a change that adds an allocation or a
    system call to every request fails the suite.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (the benchmark's helpers: configs, backend, processes)

PATH = "/"
ROUTES = 0  # 0: the bench config; N: the scale config with N clusters and N routes


def drive(port, conns, requests):
    """requests GETs of PATH over conns keep-alive connections, one in flight on each."""
    request = b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(conns)]
    bufs = [b""] * conns
    done = 0
    try:
        while done < requests:
            active = min(conns, requests - done)
            for s in socks[:active]:
                s.sendall(request)
            for i in range(active):
                status, bufs[i] = run.read_response(socks[i], bufs[i])
                if status != 200:
                    raise run.BenchError("got status %d" % status)
            done += active
    finally:
        for s in socks:
            s.close()


def start_legate(tools, tmp, backend_port, wrapper, tag):
    port = run.free_port()
    if ROUTES:
        conf = os.path.join(tmp, "scale-%d.yaml" % ROUTES)
        run.scale_config(conf, ROUTES, ROUTES, port, run.free_port(), backend_port)
    else:
        values = {"DIR": tmp, "BACKEND_PORT": backend_port, "PROXY_PORT": port,
                  "ADMIN_PORT": run.free_port()}
        conf = run.render("legate.yaml", os.path.join(tmp, "legate.yaml"), values)
    argv = wrapper + [tools["legate"], "-c", conf, "--concurrency", "1", "-l", "warning"]
    p = run.Proc("legate", argv, os.path.join(tmp, "legate-%s.out" % tag), port)
    deadline = time.monotonic() + 120
    while run.http_status(port, PATH, timeout=10) != 200:
        if p.proc.poll() is not None or time.monotonic() > deadline:
            p.stop()
            raise run.BenchError("legate did not start under %s" % " ".join(wrapper))
        time.sleep(0.2)
    return p


def start_profiled(name, tools, tmp, backend_port, wrapper, tag):
    """legate, or with --proxy a peer (nginx, haproxy) on the bench's own config,
    under wrapper."""
    if name == "legate":
        return start_legate(tools, tmp, backend_port, wrapper, tag)
    if ROUTES:
        raise run.BenchError("--routes profiles legate's scale config; not with --proxy %s" % name)
    return run.start_proxy(name, tools, tmp, backend_port, wrapper=wrapper)


def stop_gracefully(p, timeout=120):
    """SIGTERM only the wrapped process group and wait (valgrind/strace write
    their reports on exit)."""
    os.killpg(p.proc.pid, 15)
    try:
        p.proc.wait(timeout=timeout)
    finally:
        p.stop()


def callgrind(tools, tmp, backend_port, args):
    out = os.path.abspath(args.out or "callgrind.out." + args.proxy)
    wrapper = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out + ".%p"]
    if args.cache_sim:
        wrapper[2:2] = ["--cache-sim=yes", "--LL=%s" % args.cache_sim]
    p = start_profiled(args.proxy, tools, tmp, backend_port, wrapper, "callgrind")
    try:
        drive(p.port, args.connections, args.warmup)
        pid = p.proc.pid
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        drive(p.port, args.connections, args.requests)
        subprocess.run(["callgrind_control", "-d", "measured", str(pid)], check=True,
                       capture_output=True)
        time.sleep(1)
    finally:
        stop_gracefully(p)
    dumps = sorted(f for f in os.listdir(os.path.dirname(out))
                   if f.startswith(os.path.basename(out) + ".%d." % pid))
    if not dumps:
        raise run.BenchError("no callgrind dump found")
    totals = {}
    for d in dumps:
        path = os.path.join(os.path.dirname(out), d)
        with open(path) as f:
            text = f.read()
        if "measured" not in text:
            continue
        events = re.search(r"^events:\s+(.+)$", text, re.MULTILINE).group(1).split()
        m = re.search(r"^summary:\s+(.+)$", text, re.MULTILINE) or \
            re.search(r"^totals:\s+(.+)$", text, re.MULTILINE)
        for name, value in zip(events, m.group(1).split()):
            totals[name] = totals.get(name, 0) + int(value)
        run.log("dump: %s" % path)
    run.log("instructions per request: %.0f  (%s, %d requests over %d connections)"
            % (totals.get("Ir", 0) / args.requests, args.proxy, args.requests, args.connections))
    if args.cache_sim:
        # D1mr/D1mw: first-level data misses; DLmr/DLmw: misses in the simulated
        # last-level cache (--cache-sim's size), i.e. trips past it (to L3 when a
        # 2 MiB L2 is what is modelled).
        per = {k: v / args.requests for k, v in totals.items()}
        run.log("per request: D1 misses %.0f read + %.0f write, LL misses %.1f read + %.1f write, "
                "I1 misses %.0f" % (per.get("D1mr", 0), per.get("D1mw", 0), per.get("DLmr", 0),
                                    per.get("DLmw", 0), per.get("I1mr", 0)))


def strace_counts(tools, tmp, backend_port, args, n):
    path = os.path.join(tmp, "strace-%d.txt" % n)
    p = start_legate(tools, tmp, backend_port, ["strace", "-c", "-f", "-o", path], "strace")
    try:
        drive(p.port, args.connections, args.warmup + n)
    finally:
        stop_gracefully(p)
    counts = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 5 and cols[0][0].isdigit() and not cols[-1].startswith("total"):
                errors = int(cols[4]) if len(cols) == 6 else 0
                counts[cols[-1]] = (int(cols[3]), errors)
    return counts


def strace(tools, tmp, backend_port, args):
    """Prints and returns {syscall: (calls, errors) per request} for the calls made
    at least 0.005 times per request."""
    a = strace_counts(tools, tmp, backend_port, args, args.requests)
    b = strace_counts(tools, tmp, backend_port, args, 2 * args.requests)
    total = 0.0
    per = {}
    run.log("%-16s %10s %10s" % ("syscall", "per req", "errors/req"))
    for name in sorted(set(a) | set(b), key=lambda k: -(b.get(k, (0, 0))[0] - a.get(k, (0, 0))[0])):
        calls = (b.get(name, (0, 0))[0] - a.get(name, (0, 0))[0]) / args.requests
        errs = (b.get(name, (0, 0))[1] - a.get(name, (0, 0))[1]) / args.requests
        if abs(calls) >= 0.005:
            run.log("%-16s %10.2f %10.2f" % (name, calls, errs))
            total += calls
            per[name] = (calls, errs)
    run.log("%-16s %10.2f" % ("total", total))
    return per


def heap_usage(tools, tmp, backend_port, args, n):
    path = os.path.join(tmp, "memcheck-%d.txt" % n)
    wrapper = ["valgrind", "--tool=memcheck", "--leak-check=no", "--log-file=" + path]
    p = start_legate(tools, tmp, backend_port, wrapper, "memcheck")
    try:
        drive(p.port, args.connections, args.warmup + n)
    finally:
        stop_gracefully(p)
    with open(path) as f:
        text = f.read()
    m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes", text)
    if not m:
        raise run.BenchError("no heap summary in %s" % path)
    return [int(x.replace(",", "")) for x in m.groups()]


def allocs(tools, tmp, backend_port, args):
    """Prints and returns (allocations, bytes allocated) per request."""
    a = heap_usage(tools, tmp, backend_port, args, args.requests)
    b = heap_usage(tools, tmp, backend_port, args, 2 * args.requests)
    per = ((b[0] - a[0]) / args.requests, (b[2] - a[2]) / args.requests)
    run.log("allocations per request: %.2f  bytes allocated per request: %.0f" % per)
    return per


# What a proxied keep-alive GET may cost legate on the bench config, checked by
# `profile.py budget` (the bench_request_cost test). Counts, not timings: they do
# not depend on the machine's load. Measured at 9 allocations and 4 data calls
# (a recv and a send each way) per request; one more allocation or call per
# request fails the check, a rare one (a vector growing now and then) does not.
# (A busy connection keeps its HTTP/1 codec between requests; if it made a fresh
# one for each request again, that would be the tenth allocation.)
ALLOCATIONS_PER_REQUEST = 9.5
DATA_CALLS = ("recvfrom", "sendto", "recvmsg", "sendmsg", "read", "write", "readv", "writev")
DATA_CALLS_PER_REQUEST = 4.05
# epoll_wait depends on how events batch, which timing decides; every other call,
# and every failed read or write, should be rarer than this per request.
WAITS = ("epoll_wait", "epoll_pwait")
RARE_PER_REQUEST = 0.05


def budget(tools, tmp, backend_port, args):
    """Measures allocations and system calls per request and checks them against
    the budgets above; raises BenchError naming each one exceeded."""
    over = []
    n_allocs, _ = allocs(tools, tmp, backend_port, args)
    if n_allocs > ALLOCATIONS_PER_REQUEST:
        over.append("%.2f heap allocations per request (budget %.1f)"
                    % (n_allocs, ALLOCATIONS_PER_REQUEST))
    calls = strace(tools, tmp, backend_port, args)
    data = sum(c for name, (c, _) in calls.items() if name in DATA_CALLS)
    if data > DATA_CALLS_PER_REQUEST:
        over.append("%.2f recv/send-family calls per request (budget %.2f)"
                    % (data, DATA_CALLS_PER_REQUEST))
    for name, (c, errs) in sorted(calls.items()):
        if name in DATA_CALLS and errs > RARE_PER_REQUEST:
            over.append("%s failed %.2f times per request (EAGAIN reads or writes?)" % (name, errs))
        elif name not in DATA_CALLS and name not in WAITS and c > RARE_PER_REQUEST:
            over.append("%s: %.2f calls per request, where none were expected" % (name, c))
    if over:
        raise run.BenchError("over budget: " + "; ".join(over))
    run.log("within budget: %.2f allocations, %.2f recv/send-family calls per request"
            % (n_allocs, data))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["callgrind", "strace", "allocs", "budget"])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--out", default=None, help="callgrind: dump file prefix")
    ap.add_argument("--legate", default=os.environ.get("LEGATE_BIN") or
                    os.path.join(run.ROOT, "build", "release", "legate"))
    ap.add_argument("--proxy", choices=("legate", "nginx", "haproxy"), default="legate",
                    help="callgrind: profile this proxy on its bench config (nginx as one "
                         "process, master_process off), for instructions per request side by side")
    ap.add_argument("--cache-sim", metavar="SIZE,ASSOC,LINE", default=None,
                    help="callgrind: also simulate the caches, with this last-level cache "
                         "(e.g. 2097152,16,64 for a 2 MiB L2), and print misses per request")
    ap.add_argument("--routes", type=int, default=0,
                    help="use the scale section's config with N clusters and N routes "
                         "and request its last route (/r<N-1>/x) instead of the bench config")
    ap.add_argument("--route", choices=("last", "mid"), default="last",
                    help="with --routes: the scale section's last route (a path route) or "
                         "its middle one (a prefix route)")
    args = ap.parse_args()
    global PATH, ROUTES
    ROUTES = args.routes
    if ROUTES:
        PATH = run.scale_route_path(ROUTES, args.route)
    tools, missing = run.find_tools(os.path.abspath(args.legate))
    need = {"callgrind": ["valgrind"], "strace": ["strace"], "allocs": ["valgrind"],
            "budget": ["valgrind", "strace"]}[args.mode]
    missing += [tool for tool in need if shutil.which(tool) is None]
    if args.proxy != "legate" and args.mode != "callgrind":
        ap.error("--proxy %s: only the callgrind mode profiles a peer" % args.proxy)
    missing = [m for m in missing if m not in ("haproxy", "wrk") or m == args.proxy]
    if missing:
        run.log("SKIP: missing %s" % ", ".join(missing))
        return run.SKIP
    tmp = tempfile.mkdtemp(prefix="legate-profile-")
    backend = None
    try:
        backend = run.start_backend(tools, tmp, run.free_port())
        {"callgrind": callgrind, "strace": strace, "allocs": allocs, "budget": budget}[args.mode](
            tools, tmp, backend.port, args)
    except run.BenchError as e:
        run.log("FAILED: %s" % e)
        return 1
    finally:
        if backend:
            backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
