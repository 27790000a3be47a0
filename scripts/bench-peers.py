#!/usr/bin/env python3
"""Foundation benchmark (issue 2): `secmms bench` -- the same client for every server -- against our
server, the open61850 server and the `iec61850` server, all loading the same SCL model on loopback,
and libiec61850 1.6's server (pyiec61850-ng) with its own demo model holding the same variable.

Each round measures every (associations, outstanding) point against every server, the servers
interleaved, so a slow minute of the machine hits all of them; the table gives the median of the
rounds and every ratio is computed from medians of the same run. Beside the servers:

* `secmms (no polling, shared runtime)`: our server with `busy_poll_us = 0` and
  `worker_threads = 0` (associations sleep as soon as they wait, and run as tasks of the
  multi-threaded runtime), to show what those two defaults change;
* the floors of one-outstanding rates: a bare TCP ping-pong with the same octet counts
  (crates/secmms/examples/tcp_pingpong.rs) whose server sleeps in `read` (the floor of every
  server that sleeps between requests) or polls its socket (the floor of a polling server),
  measured before and after the rounds;
* the 1x1 point once more with every server, the client and the floor pinned to one CPU
  (`taskset`), where no wake-up crosses cores and the work per request shows instead.

With `--baseline BINARY` (a `secmms` built from an earlier commit), that binary's server runs as
one more server, `secmms (baseline)`, interleaved with the others, and the table ends with the
ratio of our server to it at every point: the before/after comparison of a change, measured in
the same run (the client is always the current binary).

Usage: scripts/bench-peers.py [--seconds S] [--rounds R] [--baseline BINARY]
(run from anywhere; builds first)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import ticks, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 5 outstanding is what both peers allow (they negotiate at most 5 in the initiate exchange), so
# the 5-outstanding points compare every server at the same depth; at 16 the peers keep 5.
POINTS = [(1, 1), (1, 5), (1, 16), (4, 5), (4, 16)]
PINNED = (1, 1, "pinned")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a secmms binary of an earlier commit to compare with")
    args = ap.parse_args()
    os.chdir(ROOT)
    py = os.environ.get("SECMMS_PYTHON", "target/peers-venv/bin/python")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "secmms-cli"], check=True)
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "secmms", "--example", "tcp_pingpong"],
        check=True,
    )
    binary = "target/release/secmms"
    model = "tests/interop/demo.cid"
    tmp = tempfile.mkdtemp()
    plain_cfg = os.path.join(tmp, "no-polling.toml")
    with open(plain_cfg, "w") as f:
        f.write("[server]\nbusy_poll_us = 0\nworker_threads = 0\n")
    null = subprocess.DEVNULL
    servers = [
        ("secmms", 11102, [binary, "server", "--listen", "127.0.0.1:11102", "--model", model]),
        (
            "secmms (no polling, shared runtime)",
            11105,
            [binary, "server", "--listen", "127.0.0.1:11105", "--model", model,
             "--config", plain_cfg],
        ),
        ("open61850", 11103, [py, "tests/interop/peers.py", "server", "open61850", "11103", "3600", model]),
        ("iec61850", 11104, [py, "tests/interop/peers.py", "server", "iec61850", "11104", "3600", model]),
        # libiec61850 1.6 (pyiec61850-ng), the C stack most products ship; its own demo model
        # holds the variable the load reads (DEMOLD0/GGIO1.AnIn1.mag.f [MX]).
        ("libiec61850", 11106, [py, "tests/interop/libiec_peers.py", "server", "--port", "11106",
                                "--seconds", "3600"]),
    ]
    if args.baseline:
        servers.insert(1, ("secmms (baseline)", 11107,
                           [os.path.abspath(args.baseline), "server", "--listen", "127.0.0.1:11107",
                            "--model", model]))
    procs = {}
    try:
        for name, port, cmd in servers:
            procs[name] = subprocess.Popen(cmd, stdout=null, stderr=null)
        for name, port, _ in servers:
            if not wait_port(port):
                sys.exit(f"{name} did not start on port {port}")

        def floor(pin=None, mode="blocking"):
            pre = ["taskset", "-c", pin] if pin else []
            out = subprocess.run(
                pre + ["target/release/examples/tcp_pingpong", str(args.seconds), mode],
                capture_output=True, text=True, check=True,
            ).stdout
            return float(out.split()[1])

        def pin_servers(cpus):
            for p in procs.values():
                subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p.pid)],
                               stdout=null, check=True)

        floors = [floor()]
        polling_floors = [floor(mode="polling")]
        results = {}  # (name, a, o) -> list of dicts
        def measure(name, port, a, o, pin=None):
            pid = procs[name].pid
            pre = ["taskset", "-c", pin] if pin else []
            c0 = ticks(pid)
            t0 = os.times()
            run = subprocess.run(
                pre + [binary, "bench", "--connect", f"127.0.0.1:{port}", "--associations", str(a),
                       "--outstanding", str(o), "--duration", str(args.seconds), "--json"],
                capture_output=True, text=True,
            )
            t1 = os.times()
            c1 = ticks(pid)
            try:
                d = json.loads(run.stdout)
            except json.JSONDecodeError:
                d = {"requests": 0, "requests_per_sec": 0, "p50_us": 0, "p99_us": 0, "errors": -1}
            n = max(1, d["requests"])
            client_cpu = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
            d["server_cpu_us"] = (c1 - c0) * 1e6 / n
            d["client_cpu_us"] = client_cpu * 1e6 / n
            return d

        for r in range(args.rounds):
            for a, o in POINTS:
                for name, port, _ in servers:
                    d = measure(name, port, a, o)
                    results.setdefault((name, a, o), []).append(d)
                    print(f"round {r + 1}/{args.rounds}: {name} {a}x{o}: {d['requests_per_sec']:.0f}/s",
                          file=sys.stderr)
        floors.append(floor())
        polling_floors.append(floor(mode="polling"))
        # The same 1x1 point with everything on CPU 0.
        pin_servers("0")
        pinned_floors = [floor("0")]
        for r in range(args.rounds):
            for name, port, _ in servers:
                d = measure(name, port, 1, 1, pin="0")
                results.setdefault((name,) + PINNED, []).append(d)
                print(f"round {r + 1}/{args.rounds}: {name} 1x1 pinned: {d['requests_per_sec']:.0f}/s",
                      file=sys.stderr)
        pinned_floors.append(floor("0"))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    med = lambda xs: statistics.median(xs)
    print(f"{args.rounds} rounds of {args.seconds:g} s per point; medians of the rounds "
          f"(min-max of the rate in brackets)\n")
    print("| server | associations | outstanding | req/s | p50 µs | p99 µs | server CPU µs/request "
          "| client CPU µs/request | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    rate = {}
    for name, _, _ in servers:
        for point in POINTS + [PINNED]:
            a, o = point[0], point[1]
            rs = results[(name,) + point]
            rates = [d["requests_per_sec"] for d in rs]
            rate[(name,) + point] = med(rates)
            shown = f"{o} (one CPU)" if len(point) == 3 else f"{o}"
            allowed = min(d.get("effective_outstanding", o) for d in rs)
            if allowed < o:
                shown += f" (server allowed {allowed})"
            print(f"| {name} | {a} | {shown} | {med(rates):.0f} ({min(rates):.0f}-{max(rates):.0f}) "
                  f"| {med([d['p50_us'] for d in rs]):.0f} | {med([d['p99_us'] for d in rs]):.0f} "
                  f"| {med([d['server_cpu_us'] for d in rs]):.1f} | {med([d['client_cpu_us'] for d in rs]):.1f} "
                  f"| {sum(d['errors'] for d in rs)} |")
    print()
    print(f"Floors of one-outstanding rates (bare TCP ping-pong, 69/37 octets, client blocking): "
          f"server sleeping in read {floors[0]:.0f}/s before, {floors[1]:.0f}/s after the rounds "
          f"(on one CPU {pinned_floors[0]:.0f}/s before, {pinned_floors[1]:.0f}/s after); "
          f"server polling {polling_floors[0]:.0f}/s before, {polling_floors[1]:.0f}/s after.\n")
    for point in POINTS + [PINNED]:
        a, o = point[0], point[1]
        peers = {n: rate[(n,) + point] for n in ("open61850", "iec61850", "libiec61850")}
        best = max(peers, key=peers.get)
        ours = rate[("secmms",) + point]
        per_round = [
            results[("secmms",) + point][i]["requests_per_sec"]
            / max(1, max(results[(p,) + point][i]["requests_per_sec"] for p in peers))
            for i in range(args.rounds)
        ]
        label = f"{a}x{o}" + (" on one CPU" if len(point) == 3 else "")
        line = (f"- {label}: secmms / faster peer ({best}) = {ours / max(1, peers[best]):.2f}x "
                f"(per round {', '.join(f'{x:.2f}' for x in per_round)})")
        if o == 1 and len(point) == 3:
            fl = max(pinned_floors)
            line += (f"; the faster peer reaches {peers[best] / fl:.0%} of the one-CPU floor, so "
                     f"at most {fl / max(1, peers[best]):.2f}x is possible for any server there")
        elif o == 1:
            fl, pfl = max(floors), max(polling_floors)
            line += (f"; the faster peer reaches {peers[best] / fl:.0%} of the sleeping-server "
                     f"floor (a server that sleeps between requests could be at most "
                     f"{fl / max(1, peers[best]):.2f}x faster); we reach {ours / pfl:.0%} of the "
                     f"polling-server floor ({pfl / max(1, peers[best]):.2f}x the faster peer)")
        print(line)
    if args.baseline:
        print()
        for point in POINTS + [PINNED]:
            a, o = point[0], point[1]
            new = results[("secmms",) + point]
            old = results[("secmms (baseline)",) + point]
            per_round = [n["requests_per_sec"] / max(1, b["requests_per_sec"]) for n, b in zip(new, old)]
            label = f"{a}x{o}" + (" on one CPU" if len(point) == 3 else "")
            print(f"- {label}: secmms / baseline = "
                  f"{rate[('secmms',) + point] / max(1, rate[('secmms (baseline)',) + point]):.3f} "
                  f"(per round {', '.join(f'{x:.3f}' for x in per_round)})")


if __name__ == "__main__":
    main()
