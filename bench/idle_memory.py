#!/usr/bin/env python3
"""RSS per idle keep-alive connection of one or more legate builds, side by side.

The http section's idle-memory measurement (run.py's idle_memory: N keep-alive
connections, each served one request and then held idle, RSS growth / N) on
its own, without wrk or the peers, for comparing builds step by step:

    python3 bench/idle_memory.py [--connections N] [--rounds R] BINARY [BINARY ...]

The builds are measured in turn, round by round (A B A B ...), each against
the same nginx backend and the benchmark's legate config. Prints one line per
measurement and the median per build. No thresholds, no files written.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (the harness's helpers: ports, backend, proxies)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+", help="legate binaries to compare")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    nofile = bench.raise_nofile()
    if args.connections + 200 > nofile:
        print("RLIMIT_NOFILE is %d: too low for %d connections" % (nofile, args.connections))
        return 2
    tools, missing = bench.find_tools(args.binaries[0], need=("nginx",))
    if missing:
        print("missing: %s" % ", ".join(missing))
        return 77
    for b in args.binaries:
        if not os.access(b, os.X_OK):
            print("not an executable: %s" % b)
            return 2

    tmp = tempfile.mkdtemp(prefix="legate-idle-")
    results = {b: [] for b in args.binaries}
    backend = None
    try:
        backend_port = bench.free_port()
        backend = bench.start_backend(tools, tmp, backend_port)
        for rnd in range(args.rounds):
            for b in args.binaries:
                tools["legate"] = b
                proxy = bench.start_proxy("legate", tools, tmp, backend_port)
                try:
                    per_conn = bench.idle_memory(proxy, args.connections)
                finally:
                    proxy.stop()
                results[b].append(per_conn)
                print("round %d  %s: %.0f bytes per idle connection (N=%d)"
                      % (rnd + 1, b, per_conn, args.connections), flush=True)
    except bench.BenchError as e:
        print("error: %s" % e)
        return 1
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    for b in args.binaries:
        print("median %6.0f B  %s" % (statistics.median(results[b]), b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
