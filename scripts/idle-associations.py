#!/usr/bin/env python3
"""Server memory per idle association (issue 17, item 6): `secmms server` in one process, the
associations held by `hold_associations` (crates/secmms-tools/examples) in another.

For each mode (plain; TLS + native GCM): start the server, hold 1 association (warm-up) and read
the server's RSS, hold N more and read it again; report (after - before) / N in KiB. Goal of the
issue: <= 64 KiB per association in both modes, at N = 10 000 (this machine's hard descriptor
limit is 20 000; each side needs N descriptors).

Usage: scripts/idle-associations.py [-n 10000] [--modes plain,native] [--json]
Builds the example and the binary first (cargo build --release).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, rss_kib  # noqa: E402


def hold(holder, addr, n, cfg):
    args = [holder, addr, str(n)] + ([cfg] if cfg else [])
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("held"):
        p.kill()
        sys.exit(f"holder: {line}")
    return p, line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--modes", default="plain,native")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    # Two builds: `--example` alone would leave the `secmms` binary as it was.
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "secmms-cli"], cwd=ROOT,
                   check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "secmms-tools", "--example",
                    "hold_associations"], cwd=ROOT, check=True)
    exe = os.path.join(ROOT, "target/release/secmms")
    holder = os.path.join(ROOT, "target/release/examples/hold_associations")
    d = tempfile.mkdtemp(prefix="secmms-idle-")
    run = lambda args: subprocess.run([exe] + args, cwd=d, check=True, capture_output=True)
    run(["cert", "ca", "--out", "ca"])
    for who, ap_title in (("srv", "1.1.1.999.1"), ("cli", "1.1.1.999")):
        run(["cert", "issue", "--ca", "ca", "--out", who, "--ap-title", ap_title,
             "--ae-qualifier", "12"])
        run(["cert", "issue", "--ca", "ca", "--out", who, "--tls", "--dns", "localhost"])
    results = {}
    for mode in a.modes.split(","):
        port = free_port()
        server_toml = os.path.join(d, f"server-{mode}.toml")
        with open(server_toml, "w") as f:
            f.write(f"[server]\nlisten = \"127.0.0.1:{port}\"\nmax_associations = {a.n + 100}\n"
                    "max_pending = 256\n")
        client_cfg = None
        extra = []
        if mode == "native":
            extra = ["--tls", "--cert", "srv/tls-cert.pem", "--key", "srv/tls-key.pem", "--ca",
                     "ca/ca.pem", "--mode", "native", "--encrypt", "gcm", "--app-cert",
                     "srv/cert.pem", "--app-key", "srv/key.pem"]
            client_cfg = os.path.join(d, "client-native.toml")
            with open(client_cfg, "w") as f:
                f.write(f"""[tls]
enabled = true
cert = "{d}/cli/tls-cert.pem"
key = "{d}/cli/tls-key.pem"
ca = ["{d}/ca/ca.pem"]
server_name = "localhost"

[security]
mode = "native"
encrypt = "gcm"
app_cert = "{d}/cli/cert.pem"
app_key = "{d}/cli/key.pem"
ca = ["{d}/ca/ca.pem"]
""")
        srv = subprocess.Popen([exe, "server", "--config", server_toml] + extra, cwd=d,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.025)
        addr = f"127.0.0.1:{port}"
        warm, _ = hold(holder, addr, 1, client_cfg)
        time.sleep(0.5)
        before = rss_kib(srv.pid)
        many, line = hold(holder, addr, a.n, client_cfg)
        time.sleep(1.0)
        after = rss_kib(srv.pid)
        per = (after - before) / a.n
        results[mode] = {"n": a.n, "rss_before_kib": before, "rss_after_kib": after,
                         "kib_per_association": round(per, 1), "holder": line}
        for p in (many, warm):
            p.stdin.close()
            p.wait(60)
        srv.terminate()
        srv.wait(10)
    subprocess.run(["rm", "-rf", d])
    if a.json:
        print(json.dumps(results, indent=1))
    else:
        for mode, r in results.items():
            print(f"{mode}: {r['n']} idle associations, server RSS {r['rss_before_kib']} -> "
                  f"{r['rss_after_kib']} KiB, {r['kib_per_association']} KiB each ({r['holder']})")


if __name__ == "__main__":
    main()
