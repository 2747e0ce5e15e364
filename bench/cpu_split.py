#!/usr/bin/env python3
"""User and system CPU per proxied request, per proxy, side by side.

    python3 bench/cpu_split.py [--rounds 3] [--duration 5] [--connections 50,400]

The same proxies, configs, backend and wrk runs as `bench/run.py`'s http section
(its helpers are reused), but the proxy's CPU time is read from /proc/<pid>/stat as
utime and stime separately, to show how much of the CPU per request is the kernel's.
Prints each run and then the medians; no thresholds.
"""

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def user_sys_ticks(pids):
    ticks = [run.cpu_ticks_split(pid) for pid in pids]
    return sum(t[0] for t in ticks), sum(t[1] for t in ticks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured wrk run")
    ap.add_argument("--connections", default="50,400")
    ap.add_argument("--legate", default=os.environ.get("LEGATE_BIN") or
                    os.path.join(run.ROOT, "build", "release", "legate"))
    a = ap.parse_args()
    levels = [int(c) for c in a.connections.split(",")]
    tools, missing = run.find_tools(a.legate)
    if missing:
        sys.exit("missing: %s (make setup / make build)" % ", ".join(missing))
    run.raise_nofile()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend_port = run.free_port()
        backend = run.start_backend(tools, tmp, backend_port)
        try:
            for rnd in range(a.rounds):
                for name in run.PROXIES:
                    proxy = run.start_proxy(name, tools, tmp, backend_port)
                    try:
                        for conns in levels:
                            run.run_wrk(tools, proxy.port, conns, 1)  # warm-up
                            u0, s0 = user_sys_ticks(proxy.tree)
                            r = run.run_wrk(tools, proxy.port, conns, a.duration)
                            u1, s1 = user_sys_ticks(proxy.tree)
                            run.check_wrk(r, "%s c=%d" % (name, conns))
                            scale = 1e6 / run.CLK_TCK / r["requests"]
                            u, s = (u1 - u0) * scale, (s1 - s0) * scale
                            results.setdefault((name, conns), []).append((u, s))
                            print("round %d  %-8s c=%-4d user %5.1f  sys %5.1f  total %5.1f µs/request"
                                  % (rnd + 1, name, conns, u, s, u + s), flush=True)
                    finally:
                        proxy.stop()
        finally:
            backend.stop()
    print("\nmedians over %d round(s), µs of CPU per request" % a.rounds)
    for conns in levels:
        for name in run.PROXIES:
            v = results[(name, conns)]
            u = statistics.median(x[0] for x in v)
            s = statistics.median(x[1] for x in v)
            print("c=%-4d %-8s user %5.1f  sys %5.1f  total %5.1f" % (conns, name, u, s, u + s))


if __name__ == "__main__":
    main()
