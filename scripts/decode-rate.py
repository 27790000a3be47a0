#!/usr/bin/env python3
"""Decode rate of `secmms decode` against tshark (issue 16, Measure). Not part of CI.

1. Capture: `secmms server` (TLS + native mode, AES-GCM) and `secmms bench` (several
   associations reading one variable) on loopback, both writing their TLS and E2E key logs;
   dumpcap records the server port until the file holds --size-mb MB, then the load stops.
   A second, smaller capture (the first --small-percent of the frames, cut with editcap) shows
   how memory grows with the file.
2. Timing: each round runs `secmms decode --tls-keylog K --e2e-keylog E --json FILE >/dev/null`
   and `tshark -r FILE -o tls.keylog_file:K -d tcp.port==P,tls -d tls.port==P,tpkt -V
   >/dev/null` on the same file, one after the other; the median of the rounds gives MB/s
   (MB = 10^6 octets of capture file). /usr/bin/time gives the peak RSS of each decode.
3. A check run (JSON kept) counts PDUs, verified E2E transfers and problems, so the rate is
   the rate of a decode that really decrypted and verified everything.

Usage: scripts/decode-rate.py [--size-mb 100] [--small-percent 20] [--rounds 3] [--keep DIR]
Needs dumpcap, editcap and tshark (apt-get install -y tshark) and permission to capture on lo.
Builds secmms in release mode first (honours CARGO_TARGET_DIR); SECMMS_BIN skips the build.
Prints Markdown for docs/PERFORMANCE.md.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def secmms_binary():
    if os.environ.get("SECMMS_BIN"):
        return os.environ["SECMMS_BIN"]
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "secmms-cli"], cwd=ROOT, check=True
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "secmms")


def run_quiet(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(bin_, d):
    run_quiet([bin_, "cert", "ca", "--out", f"{d}/ca"])
    for side in ("s", "c"):
        run_quiet([bin_, "cert", "issue", "--ca", f"{d}/ca", "--tls", "--ip", "127.0.0.1",
                   "--key-type", "p256", "--out", f"{d}/{side}tls"])
    run_quiet([bin_, "cert", "issue", "--ca", f"{d}/ca", "--ap-title", "1.1.1.999.1",
               "--ae-qualifier", "12", "--key-type", "p256", "--out", f"{d}/sapp"])
    run_quiet([bin_, "cert", "issue", "--ca", f"{d}/ca", "--ap-title", "1.1.1.999",
               "--ae-qualifier", "12", "--key-type", "p256", "--out", f"{d}/capp"])


def capture(bin_, d, size_mb, associations):
    """Runs server, bench and dumpcap until the capture holds size_mb MB; returns its path,
    the port and the key logs (the client's: both ends log the same E2E keys)."""
    port = free_port()
    pcap = f"{d}/load.pcapng"
    tls_log, e2e_log = f"{d}/tls-keys.log", f"{d}/e2e-keys.log"
    with open(f"{d}/server.toml", "w") as f:
        f.write("[server]\nidle_timeout_secs = 0\n")
    server = subprocess.Popen(
        [bin_, "server", "--config", f"{d}/server.toml", "--listen", f"127.0.0.1:{port}",
         "--tls", "--cert", f"{d}/stls/tls-cert.pem", "--key", f"{d}/stls/tls-key.pem",
         "--ca", f"{d}/ca/ca.pem", "--mode", "native", "--encrypt", "gcm",
         "--app-cert", f"{d}/sapp/cert.pem", "--app-key", f"{d}/sapp/key.pem"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dumpcap = None
    bench = None
    try:
        time.sleep(1.5)
        dumpcap = subprocess.Popen(
            # A large kernel buffer: a lost frame is a gap that ends the TLS streams' decoding.
            ["dumpcap", "-q", "-B", "512", "-i", "lo", "-f", f"tcp port {port}", "-w", pcap],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(pcap):
                break
            time.sleep(0.1)
        time.sleep(1.0)
        bench = subprocess.Popen(
            [bin_, "bench", "--connect", f"127.0.0.1:{port}", "--associations",
             str(associations), "--outstanding", "8", "--duration", "3600", "--json",
             "--tls", "--cert", f"{d}/ctls/tls-cert.pem", "--key", f"{d}/ctls/tls-key.pem",
             "--ca", f"{d}/ca/ca.pem", "--tls-keylog", tls_log, "--mode", "native",
             "--encrypt", "gcm", "--app-cert", f"{d}/capp/cert.pem",
             "--app-key", f"{d}/capp/key.pem", "--e2e-keylog", e2e_log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.time()
        while os.path.getsize(pcap) < size_mb * 1_000_000:
            if bench.poll() is not None:
                sys.exit(f"secmms bench ended early (status {bench.returncode})")
            if time.time() - started > 3600:
                sys.exit("no capture of the size asked for within an hour")
            time.sleep(0.5)
        load_secs = time.time() - started
    finally:
        if bench is not None and bench.poll() is None:
            bench.send_signal(signal.SIGTERM)
            bench.wait()
        time.sleep(1.0)
        if dumpcap is not None:
            dumpcap.send_signal(signal.SIGINT)
            dumpcap.wait()
        server.send_signal(signal.SIGTERM)
        server.wait()
    return pcap, port, tls_log, e2e_log, load_secs


def timed(cmd):
    """Wall time (s), CPU time (user + system, s), peak RSS (KiB) and exit status of cmd,
    output discarded. /usr/bin/time measures the command alone (a child forked from this
    script would count the script's own pages until its exec)."""
    with tempfile.NamedTemporaryFile("r") as out:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-q", "-o", out.name, "-f", "%x %M %U %S"] + cmd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - t0
        fields = out.read().split()
    if len(fields) < 4:
        return elapsed, elapsed, 0, p.returncode
    code, kib, user, sys_ = fields[-4:]
    return elapsed, float(user) + float(sys_), int(kib), int(code)


def check(bin_, pcap, tls_log, e2e_log):
    """One decode with its JSON read: PDUs, verified transfers, problems, exit status."""
    p = subprocess.Popen(
        [bin_, "decode", "--quiet", "--json", "--tls-keylog", tls_log, "--e2e-keylog",
         e2e_log, pcap], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pdus = transfers = verified = problems = 0
    for line in p.stdout:
        x = json.loads(line)
        if x.get("problem") or x.get("problems"):
            problems += 1
        if x.get("type") != "pdu":
            continue
        pdus += 1
        if str(x.get("pdu", "")).startswith("EncrTransfer"):
            transfers += 1
            verified += x.get("verified") is True
    p.wait()
    return {"status": p.returncode, "pdus": pdus, "transfers": transfers,
            "verified": verified, "problems": problems}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=100)
    ap.add_argument("--small-percent", type=float, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--keep", help="keep the captures and key logs in this directory")
    a = ap.parse_args()
    for tool in ("dumpcap", "editcap", "tshark", "capinfos"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} missing: apt-get install -y tshark")
    bin_ = secmms_binary()
    d = a.keep or tempfile.mkdtemp(prefix="secmms-decode-rate-")
    os.makedirs(d, exist_ok=True)
    make_pki(bin_, d)
    pcap, port, tls_log, e2e_log, load_secs = capture(bin_, d, a.size_mb, a.associations)
    frames = int(subprocess.run(["capinfos", "-Mc", pcap], capture_output=True, text=True,
                                check=True).stdout.split()[-1])
    small = f"{d}/small.pcapng"
    keep = max(1, int(frames * a.small_percent / 100))
    run_quiet(["editcap", "-r", pcap, small, f"1-{keep}"])

    files = [("full", pcap), ("small", small)]
    results = {}
    for name, f in files:
        size = os.path.getsize(f)
        ours, theirs, ours_cpu, theirs_cpu, rss = [], [], [], [], []
        for _ in range(a.rounds if name == "full" else 1):
            t, cpu, kib, _ = timed([bin_, "decode", "--quiet", "--json", "--tls-keylog",
                                    tls_log, "--e2e-keylog", e2e_log, f])
            ours.append(t)
            ours_cpu.append(cpu)
            rss.append(kib)
            if name == "full":
                t, cpu, _, _ = timed(["tshark", "-n", "-r", f, "-o",
                                      f"tls.keylog_file:{tls_log}", "-d",
                                      f"tcp.port=={port},tls", "-d", f"tls.port=={port},tpkt",
                                      "-V"])
                theirs.append(t)
                theirs_cpu.append(cpu)
        results[name] = {"size": size, "ours": ours, "theirs": theirs, "ours_cpu": ours_cpu,
                         "theirs_cpu": theirs_cpu, "rss": max(rss),
                         "check": check(bin_, f, tls_log, e2e_log)}

    full = results["full"]
    c = full["check"]
    if c["problems"] or c["verified"] != c["transfers"] or c["status"] != 0:
        sys.exit(f"the capture does not decode cleanly ({c}): frames lost by dumpcap? "
                 f"(files in {d}); run again")
    mb = full["size"] / 1e6
    ours_rate = mb / statistics.median(full["ours"])
    theirs_rate = mb / statistics.median(full["theirs"])
    ours_cpu_rate = mb / statistics.median(full["ours_cpu"])
    theirs_cpu_rate = mb / statistics.median(full["theirs_cpu"])
    nproc = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"## Decode rate (issue 16): `secmms decode` against tshark\n")
    print(f"Capture: TLS 1.3 + native AES-GCM, {a.associations} associations of `secmms bench` "
          f"against `secmms server` on loopback, {full['check']['pdus']} PDUs in "
          f"{frames} frames, {mb:.1f} MB (pcapng, dumpcap; {load_secs:.0f} s of load). "
          f"{nproc} cores, load average {load:.1f} at the end.\n")
    print("| tool | wall s per round | median MB/s (wall) | CPU s per round | "
          "median MB/s (CPU) |")
    print("|---|---|---|---|---|")
    for label, wall, cpu, rate, cpu_rate in (
            ("secmms decode --json", full["ours"], full["ours_cpu"], ours_rate, ours_cpu_rate),
            ("tshark -V", full["theirs"], full["theirs_cpu"], theirs_rate, theirs_cpu_rate)):
        print(f"| {label} | {', '.join(f'{t:.2f}' for t in wall)} | {rate:.1f} | "
              f"{', '.join(f'{t:.2f}' for t in cpu)} | {cpu_rate:.1f} |")
    print(f"\nRatio: secmms decode is **{ours_rate / theirs_rate:.1f}x** tshark by wall time, "
          f"**{ours_cpu_rate / theirs_cpu_rate:.1f}x** by CPU time (user + system; goal: 5x).\n")
    print("| file | MB | peak RSS of secmms decode | exit | PDUs | EncrTransfers verified | "
          "problems |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in files:
        r = results[name]
        c = r["check"]
        print(f"| {name} | {r['size'] / 1e6:.1f} | {r['rss'] / 1024:.1f} MiB | {c['status']} | "
              f"{c['pdus']} | {c['verified']} of {c['transfers']} | {c['problems']} |")
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"\n(files kept in {d})")


if __name__ == "__main__":
    main()
