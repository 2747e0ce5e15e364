#!/usr/bin/env python3
"""Trains a profile-guided build of legate on the benchmark's own traffic.

    python3 bench/pgo.py [--build-dir build/pgo] [--duration 4]

Three steps, in one build directory (GCC keys the profile by object path):

  1. configure with -DLEGATE_PGO=generate and build: an instrumented legate;
  2. run it on the benchmark's configs and backend: small GETs over 50 and 400
     keep-alive connections, 1 MiB responses and uploads, and the tcp_proxy
     config both ways; it writes its profile when it exits;
  3. configure with -DLEGATE_PGO=use and build again: the binary to measure,
     `<build-dir>/legate` (compare it with `bench/run.py --variant-legate`).

The training runs are not measurements; nothing is asserted.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import run  # noqa: E402  (the benchmark's helpers: configs, backend, processes)


def cmake(build_dir, mode):
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DLEGATE_BUILD_TESTS=OFF",
                    "-DLEGATE_PGO=" + mode], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j", str(os.cpu_count() or 2), "--target", "legate"],
                   check=True)


def train(binary, duration):
    tools, missing = run.find_tools(binary, need=("nginx", "wrk"))
    if missing:
        raise run.BenchError("missing tools: %s" % ", ".join(missing))
    with tempfile.TemporaryDirectory() as tmp:
        backend = run.start_backend(tools, tmp, run.free_port())
        try:
            for mode in ("http", "tcp"):
                proxy = run.start_proxy("legate", tools, tmp, backend.port, mode)
                try:
                    if mode == "http":
                        for conns in (50, 400):
                            r = run.run_wrk(tools, proxy.port, conns, duration)
                            run.check_wrk(r, "training c=%d" % conns)
                    for direction in ("down", "up"):
                        run.bulk_run(tools, proxy, tmp, direction, 4, duration)
                finally:
                    proxy.stop()  # SIGTERM: legate exits and writes its profile
        finally:
            backend.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "pgo"))
    ap.add_argument("--duration", type=int, default=4, help="seconds per training run")
    args = ap.parse_args()
    build_dir = os.path.abspath(args.build_dir)
    profile = os.path.join(build_dir, "pgo-profile")
    shutil.rmtree(profile, ignore_errors=True)
    cmake(build_dir, "generate")
    train(os.path.join(build_dir, "legate"), args.duration)
    if not os.path.isdir(profile) or not os.listdir(profile):
        raise run.BenchError("the instrumented legate wrote no profile to %s" % profile)
    cmake(build_dir, "use")
    print("profile-guided legate: %s" % os.path.join(build_dir, "legate"))


if __name__ == "__main__":
    try:
        main()
    except (run.BenchError, subprocess.CalledProcessError) as e:
        print("pgo: %s" % e, file=sys.stderr)
        sys.exit(1)
