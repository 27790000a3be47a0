#!/usr/bin/env python3
"""Gateway figures for docs/PERFORMANCE.md (issue 18), all measured in one run.

Reads of DEMOLD0/GGIO1.AnIn1.mag.f with `secmms bench` (1 association) against a plain
`secmms server` acting as the legacy IED:

  direct      bench -> server                                   (plain, the baseline)
  chain       bench -> client gateway -> TLS + native GCM -> IED gateway -> server
  ied-gw      bench (TLS + native GCM) -> IED gateway -> server
  secured     bench (TLS + native GCM) -> secmms server (TLS + native GCM)

at 1 and 16 outstanding requests, each configuration run --repeat times (median kept).
The chain's rate at 16 outstanding is compared with direct (goal >= 50 %); the p50 latency
each gateway adds at 1 outstanding is ied-gw - secured (the IED-side gateway) and
chain - ied-gw ... reported as measured. Memory: the IED gateway's RSS with N associations
forwarded at once (bench --associations N) minus its RSS idle, per association.

Usage: scripts/bench-gateway.py [--bin target/release/secmms] [--duration 5] [--repeat 3]
                                [--associations 200] [--json]
The binary must be built (cargo build --release -p secmms-cli).
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, rss_kib  # noqa: E402


def wait_port(port, proc, what):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{what} exited: {proc.returncode}")
            time.sleep(0.025)
    sys.exit(f"{what} did not listen on {port}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/secmms")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--associations", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    exe = os.path.abspath(a.bin)
    d = tempfile.mkdtemp(prefix="secmms-bench-gw-")
    procs = []

    def run(args, **kw):
        return subprocess.run([exe] + args, cwd=d, check=True, capture_output=True, text=True, **kw)

    def start(args, port, what):
        env = dict(os.environ)
        if args[0] == "gateway" and os.environ.get("GW_THREADS"):
            env["SECMMS_THREADS"] = os.environ["GW_THREADS"]
        p = subprocess.Popen([exe] + args, cwd=d, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_port(port, p, what)
        return p

    try:
        run(["cert", "ca", "--out", "ca"])
        for out, ap_title in (("ied", "1.1.1.999.1"), ("cli", "1.1.1.999"), ("srv", "1.1.1.999.1")):
            run(["cert", "issue", "--ca", "ca", "--out", out, "--ap-title", ap_title,
                 "--ae-qualifier", "12"])
            run(["cert", "issue", "--ca", "ca", "--out", out, "--tls", "--dns", "localhost",
                 "--ip", "127.0.0.1"])
        tls = lambda who: ["--tls", "--cert", f"{who}/tls-cert.pem", "--key", f"{who}/tls-key.pem",
                           "--ca", "ca/ca.pem"]
        native = lambda who: ["--mode", "native", "--encrypt", "gcm", "--app-cert",
                              f"{who}/cert.pem", "--app-key", f"{who}/key.pem"]

        ied_port, sec_port, ied_gw, cli_gw = free_port(), free_port(), free_port(), free_port()
        start(["server", "--listen", f"127.0.0.1:{ied_port}"], ied_port, "plain server")
        start(["server", "--listen", f"127.0.0.1:{sec_port}"] + tls("srv") + native("srv"),
              sec_port, "secured server")
        with open(os.path.join(d, "ied.toml"), "w") as f:
            f.write(f"""[gateway]
[[gateway.ied]]
listen = "127.0.0.1:{ied_gw}"
ied = "127.0.0.1:{ied_port}"
mode = "native"
encrypt = "gcm"
tls_cert = "ied/tls-cert.pem"
tls_key = "ied/tls-key.pem"
app_cert = "ied/cert.pem"
app_key = "ied/key.pem"
ca = ["ca/ca.pem"]
""")
        with open(os.path.join(d, "cli.toml"), "w") as f:
            f.write(f"""[gateway]
[[gateway.client]]
listen = "127.0.0.1:{cli_gw}"
to = "127.0.0.1:{ied_gw}"
mode = "native"
encrypt = "gcm"
server_name = "localhost"
tls_cert = "cli/tls-cert.pem"
tls_key = "cli/tls-key.pem"
app_cert = "cli/cert.pem"
app_key = "cli/key.pem"
ca = ["ca/ca.pem"]
peer_ap_title = "1.1.1.999.1"
peer_ae_qualifier = 12
""")
        gw_ied = start(["gateway", "--config", "ied.toml"], ied_gw, "IED gateway")
        start(["gateway", "--config", "cli.toml"], cli_gw, "client gateway")

        secured_client = tls("cli") + native("cli") + ["--peer-ap-title", "1.1.1.999.1",
                                                       "--peer-ae-qualifier", "12",
                                                       "--server-name", "localhost"]
        configs = {
            "direct": [f"--connect=127.0.0.1:{ied_port}"],
            "chain": [f"--connect=127.0.0.1:{cli_gw}"],
            "ied-gw": [f"--connect=127.0.0.1:{ied_gw}"] + secured_client,
            "secured": [f"--connect=127.0.0.1:{sec_port}"] + secured_client,
        }
        results = {}
        for outstanding in (1, 16):
            for name, args in configs.items():
                runs = []
                for _ in range(a.repeat):
                    r = run(["bench", "--json", "--duration", str(a.duration), "--outstanding",
                             str(outstanding)] + args)
                    runs.append(json.loads(r.stdout))
                    if runs[-1]["errors"]:
                        sys.exit(f"{name}: errors: {runs[-1]}")
                results[f"{name}@{outstanding}"] = {
                    "requests_per_sec": statistics.median(x["requests_per_sec"] for x in runs),
                    "p50_us": statistics.median(x["p50_us"] for x in runs),
                    "p99_us": statistics.median(x["p99_us"] for x in runs),
                }
        # Memory of the IED gateway per forwarded association.
        idle = rss_kib(gw_ied.pid)
        bench = subprocess.Popen([exe, "bench", "--json", "--duration", "4", "--associations",
                                  str(a.associations), "--outstanding", "1"] + configs["ied-gw"],
                                 cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = idle
        while bench.poll() is None:
            peak = max(peak, rss_kib(gw_ied.pid))
            time.sleep(0.1)
        out, err = bench.communicate()
        mem = json.loads(out)
        if mem["failed_associations"]:
            sys.exit(f"memory run: failed associations: {mem['failed_associations'][:3]}")
        per_assoc = (peak - idle) / a.associations

        r = results
        summary = {
            "chain_vs_direct_at_16": r["chain@16"]["requests_per_sec"] / r["direct@16"]["requests_per_sec"],
            "chain_vs_direct_at_1": r["chain@1"]["requests_per_sec"] / r["direct@1"]["requests_per_sec"],
            "ied_gateway_adds_p50_us_at_1": r["ied-gw@1"]["p50_us"] - r["secured@1"]["p50_us"],
            "chain_adds_p50_us_at_1": r["chain@1"]["p50_us"] - r["direct@1"]["p50_us"],
            "gateway_idle_rss_kib": idle,
            "gateway_rss_kib_with_associations": peak,
            "associations": a.associations,
            "kib_per_forwarded_association": per_assoc,
        }
        if a.json:
            print(json.dumps({"results": results, "summary": summary}, indent=1))
        else:
            print("| configuration | outstanding | reads/s | p50 µs | p99 µs |")
            print("|---|---|---|---|---|")
            for k, v in results.items():
                name, o = k.split("@")
                print(f"| {name} | {o} | {v['requests_per_sec']:.0f} | {v['p50_us']} | {v['p99_us']} |")
            print()
            for k, v in summary.items():
                print(f"- {k}: {v:.3f}" if isinstance(v, float) else f"- {k}: {v}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", d])


if __name__ == "__main__":
    main()
