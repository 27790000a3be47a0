#!/usr/bin/env python3
"""Before/after comparison of a change: the `secmms` built from this tree against one built from
an earlier commit, on loopback, plain MMS, the same points as scripts/bench-peers.py.

Two comparisons, each in interleaved rounds whose order alternates (new first, then old first),
so a slow minute of the machine and the order of the runs hit both sides alike:

* server: both servers, each measured with this tree's `secmms bench`;
* client: both `secmms bench` binaries, each against this tree's server.

For every point it prints the median rate of each side, the median of the per-round ratios
new/old with their range, and the server (or client) CPU time per request, which depends less on
scheduling than the rate.

Usage: scripts/bench-ab.py --baseline OLD_SECMMS_BINARY [--seconds S] [--rounds R]
Build the baseline with, e.g.:
  git worktree add /tmp/old COMMIT && (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target \\
      cargo build --release -p secmms-cli)    # binary: /tmp/old-target/release/secmms
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_common import ticks, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINTS = [(1, 1), (1, 5), (1, 16), (4, 5), (4, 16)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="secmms binary of the earlier commit")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--only", choices=["server", "client"], help="run one comparison only")
    args = ap.parse_args()
    os.chdir(ROOT)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "secmms-cli"], check=True)
    new, old = "target/release/secmms", os.path.abspath(args.baseline)
    model = "tests/interop/demo.cid"
    servers = {"new": (new, 11202), "old": (old, 11203)}
    procs = {}
    try:
        for name, (binary, port) in servers.items():
            procs[name] = subprocess.Popen(
                [binary, "server", "--listen", f"127.0.0.1:{port}", "--model", model],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for name, (_, port) in servers.items():
            if not wait_port(port):
                sys.exit(f"the {name} server did not start on port {port}")

        def measure(client, server, a, o):
            pid = procs[server].pid
            c0, t0 = ticks(pid), os.times()
            run = subprocess.run(
                [client, "bench", "--connect", f"127.0.0.1:{servers[server][1]}",
                 "--associations", str(a), "--outstanding", str(o),
                 "--duration", str(args.seconds), "--json"],
                capture_output=True, text=True)
            t1, c1 = os.times(), ticks(pid)
            try:
                d = json.loads(run.stdout)
            except json.JSONDecodeError:
                return None
            n = max(1, d["requests"])
            d["server_cpu_us"] = (c1 - c0) * 1e6 / n
            d["client_cpu_us"] = ((t1.children_user - t0.children_user)
                                  + (t1.children_system - t0.children_system)) * 1e6 / n
            return d

        comparisons = {
            "server": lambda side, a, o: measure(new, side, a, o),
            "client": lambda side, a, o: measure(new if side == "new" else old, "new", a, o),
        }
        cpu_key = {"server": "server_cpu_us", "client": "client_cpu_us"}
        results = {}
        for what, run in comparisons.items():
            if args.only and what != args.only:
                continue
            for r in range(args.rounds):
                order = ["new", "old"] if r % 2 == 0 else ["old", "new"]
                for a, o in POINTS:
                    for side in order:
                        d = run(side, a, o)
                        if d is None or d.get("errors", 0):
                            sys.exit(f"{what} {side} {a}x{o}: the run failed ({d})")
                        results.setdefault((what, side, a, o), []).append(d)
                        print(f"{what} round {r + 1}/{args.rounds} {side} {a}x{o}: "
                              f"{d['requests_per_sec']:.0f}/s", file=sys.stderr)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    med = statistics.median
    print(f"{args.rounds} rounds of {args.seconds:g} s per point, order alternating; "
          f"baseline {args.baseline}\n")
    print("| compared | point | new req/s | old req/s | new/old (median of rounds, range) "
          "| CPU µs/request new | old |")
    print("|---|---|---|---|---|---|---|")
    for what in comparisons:
        if args.only and what != args.only:
            continue
        for a, o in POINTS:
            n, b = results[(what, "new", a, o)], results[(what, "old", a, o)]
            ratios = [x["requests_per_sec"] / max(1, y["requests_per_sec"]) for x, y in zip(n, b)]
            k = cpu_key[what]
            print(f"| {what} | {a}x{o} | {med([x['requests_per_sec'] for x in n]):.0f} "
                  f"| {med([x['requests_per_sec'] for x in b]):.0f} "
                  f"| {med(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                  f"| {med([x[k] for x in n]):.2f} | {med([x[k] for x in b]):.2f} |")


if __name__ == "__main__":
    main()
