#!/usr/bin/env python3
"""The legitimate client's request rate under each attack of issue 17, as a ratio to its rate
without attack (goal: >= 0.9). Not run in CI: it takes minutes and wants a quiet machine.

For each mode (plain RFC 1006; TLS) and each attack, a fresh `secmms server` listens on
127.0.0.1 and a legitimate client on 127.0.0.1 measures two rates over fixed windows:

* steady: requests per second on an association already open
  (`secmms bench --associations 1 --outstanding 1 --duration S --json`);
* new associations: associations completed per second by one client in a loop (TCP connect,
  [TLS handshake with its certificate, no resumption], CR/CC, AARQ/AARE, one Read, release,
  close), done by this script in a child process with the octets `secmms client read` sends
  (captured from it) and a check of every answer. A Python loop is used, not `secmms client`
  runs, because starting that process costs ~6 ms against ~0.5 ms for the association itself,
  so it would hide most of what the server does.

The attacks, one at a time, from 127.0.0.2 and up, each in its own process whose CPU time is
reported (on a small machine it competes with the server):

* trickle: 20 connections sending one octet every 5 s, reconnecting when the server drops
  them: 10 associated first, then trickling a TPKT of data that is never finished, and 10
  trickling their CR (over TLS, after the handshake);
* silent: 100 new silent connections a second from 20 addresses, held until the server closes
  them;
* per-source: 100 new silent connections a second from one address (past
  `max_pending_per_source`);
* pipeline: 4 associations sending GetNameList requests as fast as the socket takes them and
  never reading, reconnecting when dropped;
* flood (TLS): 32 tasks running full TLS handshakes back to back without a client certificate
  (refused at the end, after the server's private-key operation);
* reneg (TLS): TLS 1.2 sessions with a valid client certificate renegotiating as fast as the
  server answers (4 threads, at most 1 070 a second in all, the attack run's rate), connecting
  again each time the server cuts one off;
* auth-flood (TLS, only when asked for): as flood, from 127.0.0.4 with a valid client
  certificate, each session closed as soon as its handshake is done (a diagnostic beside reneg:
  authenticated handshakes without renegotiation).

To cancel the drift of a shared machine, each attack alternates with baselines on the same
server: B A B A ... A B (`--rounds` attack windows); each round's ratio is the attack figure
over the mean of the baselines either side. The table gives the median ratio and its range.
Each attack runs for `--warmup` seconds before its windows start.

Server settings (`--limits`): `default` is an operator's configuration: every `[server]` and
`[tls]` limit at its default, an events log (`[events] log`, fsync always, aggregation 5 s).
`test` adds the small limits of crates/secmms-cli/tests/hostile_network.rs and
crates/secmms/tests/handshake_limits.rs (max_pending 64, max_pending_per_source 4,
pdu_timeout_secs 2, write_stall_secs 2, max_handshakes 4, handshake_rate 40).

For diagnosis, `--events off|never|severe` changes the event log (none, or its fsync policy),
and `--server-set KEY=VALUE` / `--tls-set KEY=VALUE` add `[server]` / `[tls]` settings
(e.g. `--server-set busy_poll_us=0`, `--tls-set 'client_renegotiation="refuse"'`).
`--keep` keeps the work directory: each server's configuration, stderr and event log.

Native mode is not measured: its associations need the E2E handshake, which this script's
octet-replaying client and attackers cannot do.

Usage: scripts/attack-ratio.py [--seconds 10] [--rounds 3] [--modes plain,tls]
       [--attacks trickle,silent,per-source,pipeline,flood,reneg] [--limits default|test]
       [--binary PATH] [--json [FILE]] [--keep]
Does not build: uses target/release/secmms unless --binary is given. Needs Python 3.8+ on
Linux (source addresses 127.0.0.2 and up on loopback; the reneg attacker reaches OpenSSL's
SSL_renegotiate through ctypes, CPython's ssl module offering no renegotiation).
"""

import argparse
import asyncio
import ctypes
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import free_port, rss_kib, ticks, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTACKS = ["trickle", "silent", "per-source", "pipeline", "flood", "reneg", "auth-flood"]
DEFAULT_ATTACKS = ATTACKS[:6]
TLS_ONLY = {"flood", "reneg", "auth-flood"}
READ_REF = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]"

# The octets `secmms client read DEMOLD0/GGIO1.AnIn1.mag.f[MX]` sends (plain application
# security; the same inside TLS), captured through a recording proxy.
CR = bytes.fromhex("0300001611e00000000100c0010bc2020001c1020001")
AARQ = bytes.fromhex(
    "030000bb02f0800db20506130100160102140200023302000134020001c19c318199a003800101a28191810400"
    "000001820400000001a423300f0201010604520100013004060251013010020103060528ca22020130040602"
    "5101615e305c020101a0576055a107060528ca220203a20706052901876701a30302010ca606060429018767"
    "a70302010cbe2f282d020103a028a826800300fde881011082011083010aa416800101810305f100820c03ee"
    "1c000000000000000118")
READ = bytes.fromhex(
    "0300004402f0800100010061373035020103a030a02e020101a429a127a0253023a021a11f1a0744454d4f4c"
    "44301a144747494f31244d5824416e496e31246d61672466")
RLRQ = bytes.fromhex("0300002402f080091bc11961173015020101a010620e800100be092807020103a0028b00")


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + content


def get_name_list(invoke_id):
    """A TPKT holding one MMS GetNameList request (named variables of DEMOLD0)."""
    iid = invoke_id.to_bytes((invoke_id.bit_length() + 8) // 8, "big")
    svc = tlv(0xA1, tlv(0xA0, tlv(0x80, b"\x00")) + tlv(0xA1, tlv(0x81, b"DEMOLD0")))
    mms = tlv(0xA0, tlv(0x02, iid) + svc)
    ppdu = tlv(0x61, tlv(0x30, b"\x02\x01\x03" + tlv(0xA0, mms)))
    body = b"\x02\xf0\x80" + b"\x01\x00\x01\x00" + ppdu
    return b"\x03\x00" + (len(body) + 4).to_bytes(2, "big") + body


# A TPKT announcing 4 096 octets and never finished; its octets go out one at a time.
TRICKLE = bytes.fromhex("03001000" "02f080") + b"\x01\x00\x01\x00" + b"\x61" * 64


# ---------------------------------------------------------------------------------------------
# Plumbing shared by the legitimate client and the attackers.

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError("closed by the server")
        buf += d
    return buf


def recv_tpkt(s):
    h = recv_exact(s, 4)
    if h[0] != 3:
        raise ConnectionError(f"not a TPKT: {h.hex()}")
    return h + recv_exact(s, int.from_bytes(h[2:4], "big") - 4)


def mms_tag(resp):
    """The tag of the MMS PDU inside a presentation P-DATA (context 3), or None."""
    i = resp.find(b"\x02\x01\x03\xa0")
    if i < 0 or i + 5 >= len(resp):
        return None
    ln = resp[i + 4]
    j = i + 5 + (ln & 0x7F if ln & 0x80 else 0)
    return resp[j] if j < len(resp) else None


def associate(s):
    """CR/CC then AARQ/AARE over `s` (a socket or an SSL socket); raises unless accepted."""
    s.sendall(CR)
    cc = recv_tpkt(s)
    if len(cc) < 6 or cc[5] != 0xD0:
        raise ConnectionError(f"no CC: {cc[:8].hex()}")
    s.sendall(AARQ)
    aare = recv_tpkt(s)
    if len(aare) < 8 or aare[7] != 0x0E or b"\xa2\x03\x02\x01\x00" not in aare:
        raise ConnectionError(f"association not accepted: {aare[:16].hex()}")


def tls_client_context(pki, with_cert=True, tls12=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if with_cert:
        ctx.load_verify_locations(os.path.join(pki, "ca", "ca.pem"))
        ctx.load_cert_chain(os.path.join(pki, "cli", "tls-cert.pem"),
                            os.path.join(pki, "cli", "tls-key.pem"))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def source_socket(src):
    """A TCP socket bound to the address `src` (None: the kernel's choice); its port is chosen
    at connect time, so the TIME_WAIT of earlier connections does not run the ports out."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src is not None:
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
    return s


async def open_from(src, addr, ctx=None, timeout=5):
    """asyncio.open_connection from the address `src`."""
    s = source_socket(src)
    s.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, addr), timeout)
    except BaseException:
        s.close()
        raise
    if ctx is None:
        return await asyncio.open_connection(sock=s)
    return await asyncio.open_connection(sock=s, ssl=ctx, server_hostname="localhost",
                                         ssl_handshake_timeout=10)


def connect(src, addr, ctx=None, timeout=10):
    s = source_socket(src)
    s.settimeout(timeout)
    s.connect(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        s = ctx.wrap_socket(s)
    return s


def parse_addr(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)


# ---------------------------------------------------------------------------------------------
# The legitimate client's association loop (a child process: --role assoc-loop).

def assoc_loop(addr, pki, tls, seconds):
    ctx = tls_client_context(pki) if tls else None
    took, failures = [], []
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        s = None
        try:
            s = connect(None, addr, ctx)  # from 127.0.0.1
            associate(s)
            s.sendall(READ)
            r = recv_tpkt(s)
            if mms_tag(r) != 0xA1:
                raise ConnectionError(f"read not answered: {r[:24].hex()}")
            s.sendall(RLRQ)
            r = recv_tpkt(s)
            if len(r) < 8 or r[7] != 0x0A:
                raise ConnectionError(f"no release response: {r[:16].hex()}")
            took.append(time.monotonic() - t0)
        except (OSError, ssl.SSLError, ConnectionError) as e:
            failures.append(f"{type(e).__name__}: {e}"[:160])
        finally:
            if s is not None:
                s.close()
    elapsed = time.monotonic() - start
    took.sort()
    q = lambda p: round(took[min(len(took) - 1, int(p * len(took)))] * 1e3, 2) if took else None
    return {"completed": len(took), "failed": len(failures), "seconds": elapsed,
            "per_sec": len(took) / elapsed, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "max_ms": q(1.0), "failures": failures[:5]}


# ---------------------------------------------------------------------------------------------
# The attacks (a child process each: --role attack). Each runs until SIGTERM, then prints its
# counters as JSON on stdout.

class Counters(dict):
    def add(self, k, n=1):
        self[k] = self.get(k, 0) + n


def run_until_term(stats, body):
    """Runs body(stop) in a thread until SIGTERM; prints `stats` and exits."""
    stop = threading.Event()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    t0 = time.monotonic()
    threading.Thread(target=body, args=(stop,), daemon=True).start()
    done.wait()
    stop.set()
    stats["seconds"] = round(time.monotonic() - t0, 2)
    time.sleep(0.3)
    print(json.dumps(stats), flush=True)
    os._exit(0)


def attack_trickle(addr, pki, tls, stats, n=20, every=5.0):
    ctx = tls_client_context(pki) if tls else None

    def one(i, stop):
        src = f"127.0.0.{2 + i}"
        associated = i % 2 == 0
        # Associated: a TPKT of data never finished; not associated: the CR itself never
        # finished (over TLS, after the handshake).
        octets = TRICKLE if associated else CR[:-1]
        while not stop.is_set():
            s, t0 = None, time.monotonic()
            try:
                s = connect(src, addr, ctx)
                if associated:
                    associate(s)
                    stats.add("associated")
                stats.add("connections")
                t0 = time.monotonic()
                for k in range(len(octets)):
                    s.sendall(octets[k:k + 1])
                    stats.add("octets")
                    if stop.wait(every):
                        return
                stats.add("ran_out_of_octets")
                stop.wait()
            except (OSError, ssl.SSLError, ConnectionError):
                stats.add("dropped")
                stats.add("dropped_after_s_total", round(time.monotonic() - t0, 1))
            finally:
                if s is not None:
                    s.close()
            stop.wait(0.5)

    def body(stop):
        for i in range(n):
            threading.Thread(target=one, args=(i, stop), daemon=True).start()
            time.sleep(0.05)

    run_until_term(stats, body)


def attack_silent(addr, stats, sources, rate):
    """`rate` silent connections a second, round-robin over `sources`, each held until the
    server closes it (the oldest closed by us past 4 000 open)."""

    async def hold(src, open_conns):
        try:
            r, w = await open_from(src, addr)
        except (OSError, asyncio.TimeoutError):
            stats.add("connect_failed")
            return
        stats.add("opened")
        t0 = time.monotonic()
        open_conns.append(w)
        try:
            d = await r.read(1)
            stats.add("closed_by_server")
            stats.add("server_close_after_s_total", time.monotonic() - t0)
            if d:
                stats.add("server_sent_data")
        except OSError:
            stats.add("closed_by_server")
            stats.add("server_close_after_s_total", time.monotonic() - t0)
        finally:
            if w in open_conns:
                open_conns.remove(w)
            w.close()

    async def main(stop):
        open_conns = []
        t0 = time.monotonic()
        k = 0
        while not stop.is_set():
            due = int((time.monotonic() - t0) * rate)
            while k < due:
                asyncio.ensure_future(hold(sources[k % len(sources)], open_conns))
                k += 1
            while len(open_conns) > 4000:
                open_conns.pop(0).close()
            stats["open_now"] = len(open_conns)
            await asyncio.sleep(0.005)

    run_until_term(stats, lambda stop: asyncio.run(main(stop)))


def attack_pipeline(addr, pki, tls, stats, n=4):
    ctx = tls_client_context(pki) if tls else None

    def one(i, stop):
        src = f"127.0.0.{2 + i}"
        iid = 1
        while not stop.is_set():
            s = None
            try:
                s = connect(src, addr, ctx)
                associate(s)
                stats.add("associations")
                s.settimeout(1.0)
                t0 = time.monotonic()
                while not stop.is_set():
                    batch = b"".join(get_name_list(iid + j) for j in range(64))
                    try:
                        s.sendall(batch)
                    except (socket.timeout, TimeoutError):
                        stats.add("blocked_s", 1)  # the server stopped reading us
                        continue
                    iid += 64
                    stats.add("requests_sent", 64)
            except (OSError, ssl.SSLError, ConnectionError):
                if s is not None:
                    stats.add("dropped")
                    stats.add("lived_s_total", round(time.monotonic() - t0, 1))
                    s.close()
                stop.wait(0.2)

    def body(stop):
        for i in range(n):
            threading.Thread(target=one, args=(i, stop), daemon=True).start()

    run_until_term(stats, body)


def attack_flood(addr, stats, tasks=32, ctx=None, src="127.0.0.3"):
    """Full TLS handshakes back to back from `tasks` tasks; without a client certificate
    unless `ctx` has one (then each session is closed as soon as it is up)."""
    authenticated = ctx is not None
    ctx = ctx or tls_client_context(None, with_cert=False)

    async def one(stop):
        while not stop.is_set():
            try:
                r, w = await asyncio.wait_for(open_from(src, addr, ctx), 11)
                stats.add("handshakes_done")  # TLS 1.3: the client side finished first
                if not authenticated:
                    try:
                        await asyncio.wait_for(r.read(1), 2)  # the server's refusal
                    except (OSError, ssl.SSLError, asyncio.TimeoutError):
                        pass
                w.close()
            except ssl.SSLError:
                stats.add("handshakes_refused")
            except asyncio.TimeoutError:
                stats.add("timed_out")
            except OSError:
                stats.add("connect_failed")
            stats.add("attempts")

    async def main(stop):
        await asyncio.gather(*(one(stop) for _ in range(tasks)))

    run_until_term(stats, lambda stop: asyncio.run(main(stop)))


def attack_reneg(addr, pki, stats, threads=4, max_rate=1070.0):
    libssl = ctypes.CDLL("libssl.so.3")
    libssl.SSL_renegotiate.argtypes = [ctypes.c_void_p]
    ctx = tls_client_context(pki, tls12=True)
    lock = threading.Lock()
    t_start = time.monotonic()

    def ssl_ptr(t):
        # CPython's PySSLSocket: PyObject_HEAD (16 octets), the socket weakref, then SSL *.
        return ctypes.c_void_p.from_address(id(t._sslobj) + 24).value

    def one(stop):
        while not stop.is_set():
            t = None
            try:
                t = connect("127.0.0.2", addr, ctx)
                stats.add("sessions")
                p = ssl_ptr(t)
                while not stop.is_set():
                    with lock:
                        ahead = stats.get("renegotiations", 0) / max_rate - (
                            time.monotonic() - t_start)
                    if ahead > 0:
                        time.sleep(ahead)
                    if libssl.SSL_renegotiate(p) != 1:
                        stats.add("renegotiate_call_failed")
                        break
                    t.do_handshake()
                    with lock:
                        stats.add("renegotiations")
            except ssl.SSLError:
                stats.add("cut_off")
            except (OSError, ConnectionError):
                stats.add("other_errors")
            finally:
                if t is not None:
                    t.close()

    def body(stop):
        for _ in range(threads):
            threading.Thread(target=one, args=(stop,), daemon=True).start()

    run_until_term(stats, body)


def run_attack(name, addr, pki, tls):
    stats = Counters()
    if name == "trickle":
        attack_trickle(addr, pki, tls, stats)
    elif name == "silent":
        attack_silent(addr, stats, [f"127.0.0.{2 + i}" for i in range(20)], 100)
    elif name == "per-source":
        attack_silent(addr, stats, ["127.0.0.50"], 100)
    elif name == "pipeline":
        attack_pipeline(addr, pki, tls, stats)
    elif name == "flood":
        attack_flood(addr, stats)
    elif name == "reneg":
        attack_reneg(addr, pki, stats)
    elif name == "auth-flood":
        attack_flood(addr, stats, ctx=tls_client_context(pki), src="127.0.0.4")
    sys.exit(f"unknown attack {name}")


# ---------------------------------------------------------------------------------------------
# The orchestrator.

def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Server:
    def __init__(self, exe, work, mode, limits, tag, events="always", server_set=(),
                 tls_set=()):
        self.port = free_port()
        self.addr = ("127.0.0.1", self.port)
        self.events = os.path.join(work, f"events-{tag}.jsonl")
        self.stderr_path = os.path.join(work, f"server-{tag}.err")
        cfg = os.path.join(work, f"server-{tag}.toml")
        extra = ""
        if limits == "test":
            extra = ("max_pending = 64\nmax_pending_per_source = 4\npdu_timeout_secs = 2\n"
                     "write_stall_secs = 2\nmax_handshakes = 4\nhandshake_rate = 40\n")
        extra += "".join(f"{kv}\n" for kv in server_set)
        text = f"[server]\n{extra}\n"
        if events != "off":
            text += f"[events]\nlog = \"{self.events}\"\nfsync = \"{events}\"\n"
        if tls_set:
            text += "[tls]\n" + "".join(f"{kv}\n" for kv in tls_set)
        with open(cfg, "w") as f:
            f.write(text)
        args = [exe, "server", "--listen", f"127.0.0.1:{self.port}", "--config", cfg]
        if mode == "tls":
            args += ["--tls", "--cert", f"{work}/srv/tls-cert.pem", "--key",
                     f"{work}/srv/tls-key.pem", "--ca", f"{work}/ca/ca.pem"]
        self.err = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.err)
        if not wait_port(self.port):
            sys.exit(f"the {mode} server did not start (see {self.stderr_path})")

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.err.close()

    def event_counts(self):
        counts = {}
        try:
            with open(self.events) as f:
                for line in f:
                    try:
                        v = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    m = v.get("mnemonic", "?")
                    counts[m] = counts.get(m, 0) + int(v.get("count", 1) or 1)
        except OSError:
            pass
        return counts

    def warn_lines(self):
        """Server stderr lines by kind (the text after the level and target, numbers cut)."""
        kinds = {}
        with open(self.stderr_path, errors="replace") as f:
            for line in f:
                if "WARN" not in line and "ERROR" not in line:
                    continue
                text = line.split(": ", 1)[-1]
                key = " ".join(w for w in text.split()[:6] if not any(c.isdigit() for c in w))
                kinds[key] = kinds.get(key, 0) + 1
        return kinds


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10, help="length of each window (10)")
    ap.add_argument("--rounds", type=int, default=3, help="attack windows per attack (3)")
    ap.add_argument("--warmup", type=float, default=3, help="attack time before measuring (3)")
    ap.add_argument("--modes", default="plain,tls", help="plain,tls (default both)")
    ap.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                    help="comma-separated subset of " + ",".join(ATTACKS) + " (default: all "
                         "but auth-flood)")
    ap.add_argument("--limits", choices=["default", "test"], default="default",
                    help="server limits: the defaults, or hostile_network's small ones")
    ap.add_argument("--events", choices=["always", "severe", "never", "off"], default="always",
                    help="the server's hash-chained event log: its [events] fsync policy "
                         "(default always, the default), or off (no log)")
    ap.add_argument("--server-set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more [server] setting, TOML (e.g. busy_poll_us=0); repeatable")
    ap.add_argument("--tls-set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more [tls] setting, TOML (e.g. 'client_renegotiation=\"refuse\"')")
    ap.add_argument("--outstanding", type=int, default=1,
                    help="outstanding requests of the steady client (1)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/secmms"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="print the results as JSON instead of the table, or with FILE write "
                         "them there and print the table too")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--addr", help=argparse.SUPPRESS)
    ap.add_argument("--pki", help=argparse.SUPPRESS)
    ap.add_argument("--tls", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attack", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.role == "assoc-loop":
        print(json.dumps(assoc_loop(parse_addr(a.addr), a.pki, a.tls, a.seconds)))
        return
    if a.role == "attack":
        run_attack(a.attack, parse_addr(a.addr), a.pki, a.tls)
        return

    exe = os.path.abspath(a.binary)
    me = os.path.abspath(__file__)
    work = tempfile.mkdtemp(prefix="ratio-attack-")
    run = lambda args: subprocess.run([exe] + args, cwd=work, check=True, capture_output=True)
    run(["cert", "ca", "--out", "ca"])
    for who in ("srv", "cli"):
        run(["cert", "issue", "--ca", "ca", "--out", who, "--tls", "--dns", "localhost",
             "--ip", "127.0.0.1"])
    modes = a.modes.split(",")
    attacks = a.attacks.split(",")
    for x in attacks:
        if x not in ATTACKS:
            sys.exit(f"unknown attack {x}; known: {', '.join(ATTACKS)}")
    log = lambda *m: print(*m, file=sys.stderr, flush=True)
    started = time.time()
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": a.seconds, "rounds": a.rounds, "warmup": a.warmup, "limits": a.limits,
            "outstanding": a.outstanding, "binary": exe, "cpus": os.cpu_count(),
            "events": a.events, "server_set": a.server_set, "tls_set": a.tls_set,
            "loadavg_start": loadavg()}
    results = []

    def steady(srv, mode):
        args = [exe, "bench", "--connect", f"127.0.0.1:{srv.port}", "--associations", "1",
                "--outstanding", str(a.outstanding), "--duration", str(a.seconds), "--json",
                "--reference", READ_REF]
        if mode == "tls":
            args += ["--tls", "--cert", f"{work}/cli/tls-cert.pem", "--key",
                     f"{work}/cli/tls-key.pem", "--ca", f"{work}/ca/ca.pem"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=a.seconds + 60)
        try:
            d = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"requests_per_sec": 0.0, "error": (p.stderr or p.stdout)[-300:]}
        return d

    def assoc(srv, mode):
        args = [sys.executable, me, "--role", "assoc-loop", "--addr", f"127.0.0.1:{srv.port}",
                "--pki", work, "--seconds", str(a.seconds)] + (["--tls"] if mode == "tls" else [])
        p = subprocess.run(args, capture_output=True, text=True, timeout=a.seconds + 60)
        try:
            return json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"per_sec": 0.0, "error": p.stderr[-300:]}

    def window(srv, mode, attacker=None):
        w = {"loadavg": loadavg()[0]}
        c0 = ticks(srv.proc.pid)
        a0 = ticks(attacker.pid) if attacker else 0.0
        t0 = time.monotonic()
        w["steady"] = steady(srv, mode)
        w["assoc"] = assoc(srv, mode)
        el = time.monotonic() - t0
        w["server_cpu"] = (ticks(srv.proc.pid) - c0) / el
        if attacker:
            w["attacker_cpu"] = (ticks(attacker.pid) - a0) / el
        w["rss_kib"] = srv.rss_kib()
        return w

    for mode in modes:
        for attack in attacks:
            if attack in TLS_ONLY and mode != "tls":
                continue
            tag = f"{mode}-{attack}"
            srv = Server(exe, work, mode, a.limits, tag, a.events, a.server_set, a.tls_set)
            time.sleep(0.5)
            base, att = [], []
            rss0 = srv.rss_kib()
            for r in range(a.rounds):
                base.append(window(srv, mode))
                log(f"{tag} baseline {r + 1}: steady {base[-1]['steady'].get('requests_per_sec', 0):.0f}/s, "
                    f"assoc {base[-1]['assoc'].get('per_sec', 0):.1f}/s")
                attacker = subprocess.Popen(
                    [sys.executable, me, "--role", "attack", "--attack", attack, "--addr",
                     f"127.0.0.1:{srv.port}", "--pki", work] + (["--tls"] if mode == "tls" else []),
                    stdout=subprocess.PIPE, text=True)
                time.sleep(a.warmup)
                w = window(srv, mode, attacker)
                attacker.send_signal(signal.SIGTERM)
                try:
                    out, _ = attacker.communicate(timeout=10)
                    w["attack"] = json.loads(out.strip().splitlines()[-1])
                except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
                    attacker.kill()
                    w["attack"] = {}
                att.append(w)
                log(f"{tag} attack {r + 1}: steady {w['steady'].get('requests_per_sec', 0):.0f}/s, "
                    f"assoc {w['assoc'].get('per_sec', 0):.1f}/s, attacker CPU "
                    f"{100 * w['attacker_cpu']:.0f} %, {w['attack']}")
                time.sleep(2)  # the server closes what the attacker left
            base.append(window(srv, mode))
            log(f"{tag} baseline {a.rounds + 1}: steady {base[-1]['steady'].get('requests_per_sec', 0):.0f}/s, "
                f"assoc {base[-1]['assoc'].get('per_sec', 0):.1f}/s")
            srv.stop()
            res = {"mode": mode, "attack": attack, "baseline": base, "under_attack": att,
                   "rss_start_kib": rss0, "events": srv.event_counts(),
                   "server_log": srv.warn_lines()}
            for metric, key in (("steady", "requests_per_sec"), ("assoc", "per_sec")):
                ratios = []
                for i, w in enumerate(att):
                    b = (base[i][metric].get(key, 0) + base[i + 1][metric].get(key, 0)) / 2
                    ratios.append(w[metric].get(key, 0) / b if b else 0.0)
                res[metric] = {
                    "baseline_median": statistics.median(x[metric].get(key, 0) for x in base),
                    "attack_median": statistics.median(x[metric].get(key, 0) for x in att),
                    "ratios": [round(x, 3) for x in ratios],
                    "ratio_median": round(statistics.median(ratios), 3),
                }
            res["attacker_cpu_median"] = statistics.median(w["attacker_cpu"] for w in att)
            res["server_cpu_base"] = statistics.median(w["server_cpu"] for w in base)
            res["server_cpu_attack"] = statistics.median(w["server_cpu"] for w in att)
            res["assoc_p99_ms_base"] = statistics.median(
                w["assoc"].get("p99_ms") or 0 for w in base)
            res["assoc_p99_ms_attack"] = statistics.median(
                w["assoc"].get("p99_ms") or 0 for w in att)
            res["assoc_failed_attack"] = sum(w["assoc"].get("failed", 0) for w in att)
            res["steady_errors_attack"] = [w["steady"].get("error") for w in att
                                           if w["steady"].get("error")]
            results.append(res)

    meta["loadavg_end"] = loadavg()
    meta["wall_seconds"] = round(time.time() - started)
    if not a.keep:
        subprocess.run(["rm", "-rf", work])
    else:
        meta["work"] = work
    if a.json == "-":
        print(json.dumps({"meta": meta, "results": results}, indent=1))
        return
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    print(f"{meta['started']}, {a.rounds} rounds of {a.seconds:g} s windows per attack "
          f"(warm-up {a.warmup:g} s), limits {a.limits}, events log {a.events}"
          f"{''.join(' ' + x for x in a.server_set + a.tls_set)}, load average "
          f"{meta['loadavg_start'][0]:.2f} at the start, {meta['loadavg_end'][0]:.2f} at the end\n")
    print("| mode | attack | steady req/s: base → attack | ratio (range) | new assoc/s: base → "
          "attack | ratio (range) | assoc p99 ms base → attack | attacker CPU | server CPU "
          "base → attack |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s, n = r["steady"], r["assoc"]
        fmt = lambda m: (f"**{m['ratio_median']:.2f}** ({min(m['ratios']):.2f}–"
                         f"{max(m['ratios']):.2f})")
        print(f"| {r['mode']} | {r['attack']} | {s['baseline_median']:.0f} → "
              f"{s['attack_median']:.0f} | {fmt(s)} | {n['baseline_median']:.0f} → "
              f"{n['attack_median']:.0f} | {fmt(n)} | {r['assoc_p99_ms_base']:.1f} → "
              f"{r['assoc_p99_ms_attack']:.1f} | {100 * r['attacker_cpu_median']:.0f} % "
              f"| {100 * r['server_cpu_base']:.0f} → {100 * r['server_cpu_attack']:.0f} % |")
    print()
    for r in results:
        att = r["under_attack"]
        print(f"{r['mode']} {r['attack']}: attacker {att[-1].get('attack')}; "
              f"failed associations under attack {r['assoc_failed_attack']}; "
              f"events {r['events']}")


if __name__ == "__main__":
    main()
