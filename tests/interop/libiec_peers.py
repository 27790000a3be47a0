#!/usr/bin/env python3
"""libiec61850 peers for the secmms interop tests (plain MMS and IEC 62351-4 TLS).

The peer is libiec61850 1.6.1 built with mbedTLS 3.6.0, as shipped by the PyPI
package `pyiec61850-ng==1.6.1.10`. Its SWIG module `pyiec61850.pyiec61850`
exposes the C API function by function; this driver uses it for setup and
calls the rest through ctypes on the same library (reasons below).

Usage:
  libiec_peers.py server --port P [--seconds S] [--model FILE] [--bind ADDR]
                         [--tls --cert PEM --key PEM --ca PEM]
                         [--tls-min 1.2|1.3] [--tls-max 1.2|1.3] [--cipher 0xC02B ...]
                         [--reneg-ms N] [--max-conns N] [--verbose] [--tls-debug off|short|full]
      Serves the model (default: libiec61850-demo-model.cfg beside this file:
      LD DEMOLD0, GGIO1.AnIn1.mag.f [MX] = 42.5, LLN0.NamPlt.vendor [DC] = "secmms")
      on all interfaces (or ADDR). Prints "ready" once listening, then runs S
      seconds (default 300) or until SIGTERM/SIGINT, and exits 0. Writes are
      allowed on FC DC only. --verbose prints one stdout line per TLS event
      ("TLS event level=.. code=.. version=TLS 1.2 Info: Session established ...").

  libiec_peers.py client --host H --port P
                         [--tls --cert PEM --key PEM --ca PEM]
                         [--tls-min ...] [--tls-max ...] [--cipher ...] [--reneg-ms N]
                         [--reads N] [--read-interval-ms N] [--timeout-ms N]
                         [--connect-attempts N] [--outstanding N] [--server-name NAME]
                         [--write-vendor TEXT [--expect-write-denied]]
                         [--rcb REF [--reports N]]
      Connects, reads the server directory, reads DEMOLD0/GGIO1.AnIn1.mag.f [MX]
      N times (default 1), optionally writes DEMOLD0/LLN0.NamPlt.vendor [DC]
      (reported as "write": "ok" or the error name), reads it once, optionally
      enables the report control block REF and asks for N general
      interrogations, counting the InformationReports that arrive ("reports"),
      releases the association and prints one JSON object:
        {"peer": "libiec61850", "ok": true, "domains": [...], "mag": 42.5,
         "vendor": "secmms", "reads": N, "elapsed_s": ..., "error": null,
         "error_code": null, "stage": null, "tls": ..., "tls_version": "TLS 1.2",
         "cipher": "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "tls_events": [...],
         "renegotiations": 0, "connect_attempts": 1}
      Exit status 0 only on success. On failure "ok" is false, "stage" says
      which call failed and "error" names the IedClientError, e.g.
      "IED_ERROR_CONNECTION_REJECTED (5): connection-rejected".

Notes on this libiec61850 build:
  * TLS versions: a TLSConfiguration defaults to min 1.2 and no max, i.e.
    mbedTLS' maximum, TLS 1.3. --tls-min/--tls-max pin the range.
  * Cipher suites: --cipher clears libiec61850's default list and installs the
    given IANA code points. A list without TLS 1.3 suites (0x13xx) cannot
    negotiate 1.3, so the driver then also sets max 1.2.
  * --reneg-ms sets TLSConfiguration_setRenegotiationTime. libiec61850 checks
    the timer in its TLS read/write path, on the client as well as on the
    server, so it fires only while traffic flows; TLS 1.3 never renegotiates.
  * The client never checks the server host name (libiec61850 has no API to
    set one); --server-name is accepted and ignored. --outstanding likewise
    (libiec61850 proposes 5 outstanding requests).
  * Every failed connect (refused, closed before/after the AARQ, timeout) is
    IED_ERROR_CONNECTION_REJECTED: MmsConnection_connect maps them all to it.
  * Pitfalls handled here: SWIG refuses a NULL TLSConfiguration; SWIG calls
    hold the GIL while they block, so a ctypes TLS-event callback would
    deadlock them; the client connect race (see connect()); debug output on
    fd 2 (see route_native_stderr()); Python objects handed to C (model,
    configs, callbacks) must stay referenced while the C side uses them.
"""
import argparse
import ctypes
import json
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = os.path.join(HERE, "libiec61850-demo-model.cfg")
DOMAIN = "DEMOLD0"
MAG_REF = f"{DOMAIN}/GGIO1.AnIn1.mag.f"
VENDOR_REF = f"{DOMAIN}/LLN0.NamPlt.vendor"

# TLS 1.3 cipher suites have code points 0x13xx; everything else we accept is TLS 1.2.
TLS13_SUITES = range(0x1300, 0x1400)

# Loaded lazily so that "--help" works without the package installed.
iec = None   # the SWIG module pyiec61850.pyiec61850
clib = None  # ctypes handle on the same native code (for calls SWIG refuses or lacks)

# C callback type for TLSConfiguration_setEventHandler:
#   void handler(void* param, TLSEventLevel level, int code, const char* msg, TLSConnection con)
TLS_EVENT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_char_p, ctypes.c_void_p)
# C callback type for IedConnection_installReportHandler:
#   void handler(void* param, ClientReport report)
REPORT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# IedClientError* out-parameter (the enum is an int).
ERR_P = ctypes.POINTER(ctypes.c_int)


def load():
    """Import the SWIG module and open a ctypes handle on the native library.

    The ctypes handle is opened on the SWIG extension itself: dlsym() on that
    handle also searches its dependencies, which include the bundled
    libiec61850 shared object, so no path guessing is needed.
    """
    global iec, clib
    import pyiec61850.pyiec61850 as module
    from pyiec61850 import _pyiec61850 as ext
    iec = module
    clib = ctypes.CDLL(ext.__file__)
    P = ctypes.c_void_p
    signatures = {
        "IedServer_createWithConfig": ([P, P, P], P),
        "IedServer_setWriteAccessPolicy": ([P, ctypes.c_int, ctypes.c_int], None),
        "IedServer_setLocalIpAddress": ([P, ctypes.c_char_p], None),
        "IedServer_start": ([P, ctypes.c_int], None),
        "IedServer_isRunning": ([P], ctypes.c_bool),
        "IedServer_stop": ([P], None),
        "IedServer_destroy": ([P], None),
        "TLSConfiguration_setEventHandler": ([P, TLS_EVENT_HANDLER, P], None),
        "TLSConnection_getTLSVersion": ([P], ctypes.c_int),
        # Client side, all through ctypes (see run_client for why).
        "IedConnection_create": ([], P),
        "IedConnection_createWithTlsSupport": ([P], P),
        "IedConnection_setConnectTimeout": ([P, ctypes.c_uint32], None),
        "IedConnection_setRequestTimeout": ([P, ctypes.c_uint32], None),
        "IedConnection_connect": ([P, ERR_P, ctypes.c_char_p, ctypes.c_int], None),
        "IedConnection_getServerDirectory": ([P, ERR_P, ctypes.c_bool], P),
        "IedConnection_readFloatValue": ([P, ERR_P, ctypes.c_char_p, ctypes.c_int], ctypes.c_float),
        "IedConnection_readStringValue": ([P, ERR_P, ctypes.c_char_p, ctypes.c_int], P),
        "IedConnection_writeVisibleStringValue": (
            [P, ERR_P, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p], None),
        "IedConnection_getRCBValues": ([P, ERR_P, ctypes.c_char_p, P], P),
        "IedConnection_setRCBValues": ([P, ERR_P, P, ctypes.c_uint32, ctypes.c_bool], None),
        "IedConnection_installReportHandler": (
            [P, ctypes.c_char_p, ctypes.c_char_p, REPORT_HANDLER, P], None),
        "ClientReportControlBlock_setRptEna": ([P, ctypes.c_bool], None),
        "ClientReportControlBlock_setGI": ([P, ctypes.c_bool], None),
        "ClientReportControlBlock_getRptId": ([P], ctypes.c_char_p),
        "ClientReportControlBlock_destroy": ([P], None),
        "ClientReport_getRcbReference": ([P], ctypes.c_char_p),
        "IedConnection_close": ([P], None),
        "IedConnection_destroy": ([P], None),
        "IedClientError_toString": ([ctypes.c_int], ctypes.c_char_p),
        "LinkedList_getNext": ([P], P),
        "LinkedList_getData": ([P], P),
        "LinkedList_destroy": ([P], None),
        "Memory_free": ([P], None),
    }
    for name, (argtypes, restype) in signatures.items():
        fn = getattr(clib, name)
        fn.argtypes = argtypes
        fn.restype = restype


# Lines of libiec61850's TLS debug output that are dropped in "short" mode
# (the multi-line certificate dumps; their continuation lines start with spaces).
TLS_DEBUG_NOISE = (b"Verify cert", b"flags:", b"cert. version")


def route_native_stderr(mode):
    """Tame the TLS debug output this libiec61850 build writes to fd 2.

    The wheel is compiled with CONFIG_DEBUG_TLS, so every handshake prints
    about 2 kB (two certificate dumps) to the C stderr, on both sides. A
    parent that pipes stderr without draining it would, after a few dozen
    handshakes, block libiec61850's threads inside fprintf. Python's own
    messages keep going to the original stderr (through a duplicate of fd 2);
    the C side's fd 2 is replaced:
      full  - untouched;
      short - a pipe drained by a thread that forwards only the one-line
              "TLS: ..." messages (handshake/read errors, renegotiation);
      off   - /dev/null.
    """
    if mode == "full":
        return
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    if mode == "off":
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        with os.fdopen(read_end, "rb") as src:
            for line in src:
                if line.startswith(b"TLS: ") and not any(k in line for k in TLS_DEBUG_NOISE):
                    sys.stderr.write(line.decode(errors="replace"))

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()


def ptr(swig_obj):
    """Raw C pointer behind a SWIG object (None stays NULL).

    Types whose struct SWIG has seen (IedModel, IedServerConfig) come wrapped
    in a proxy class holding the pointer in .this; opaque ones
    (TLSConfiguration) are the bare SwigPyObject. int() of either is the address.
    """
    if swig_obj is None:
        return None
    return int(getattr(swig_obj, "this", swig_obj))


def error_name(code):
    """Symbolic name of an IedClientError value, from the module's constants."""
    for name in dir(iec):
        if name.startswith("IED_ERROR_") and getattr(iec, name) == code:
            return name
    return "IED_ERROR_?"


def describe_error(code):
    text = clib.IedClientError_toString(code).decode()
    return f"{error_name(code)} ({code}): {text}"


class ConfigError(Exception):
    """Bad command-line input (unreadable certificate, model, ...)."""


class ClientError(Exception):
    """A libiec61850 call failed with an IedClientError."""

    def __init__(self, stage, code):
        super().__init__(describe_error(code))
        self.stage = stage
        self.code = code


def tls_version(text):
    return {"1.2": iec.TLS_VERSION_TLS_1_2, "1.3": iec.TLS_VERSION_TLS_1_3}[text]


class TlsEvents:
    """Collects libiec61850 TLS security events (handshake done, cipher, alarms).

    The handler runs on libiec61850's own threads. The CFUNCTYPE object must
    stay referenced for as long as the TLSConfiguration exists, or the C side
    calls freed memory; this object keeps it.
    """

    def __init__(self, echo=False):
        self.events = []
        self.version = None
        self.cipher = None
        self.echo = echo
        self.lock = threading.Lock()
        self.callback = TLS_EVENT_HANDLER(self._on_event)

    def _on_event(self, _param, level, code, message, connection):
        text = message.decode(errors="replace") if message else ""
        version = None
        if connection:
            version = iec.TLSConfigVersion_toString(clib.TLSConnection_getTLSVersion(connection))
        with self.lock:
            self.events.append({"level": level, "code": code, "message": text})
            prefix = "Info: Session established with cipher suite "
            if text.startswith(prefix):
                self.cipher = text[len(prefix):]
                self.version = version
        if self.echo:
            # flush per line: the Rust side may be reading the log live.
            print(f"TLS event level={level} code={code} version={version} {text}", flush=True)


def make_tls(args, client, events):
    """Build a TLSConfiguration from the command line (the order follows the C examples)."""
    tls = iec.TLSConfiguration_create()
    if client:
        # The configuration is created in server mode; switch before first use.
        iec.TLSConfiguration_setClientMode(tls)
    if not iec.TLSConfiguration_setOwnCertificateFromFile(tls, args.cert):
        raise ConfigError(f"cannot load certificate {args.cert}")
    if not iec.TLSConfiguration_setOwnKeyFromFile(tls, args.key, None):
        raise ConfigError(f"cannot load key {args.key}")
    if not iec.TLSConfiguration_addCACertificateFromFile(tls, args.ca):
        raise ConfigError(f"cannot load CA {args.ca}")
    # Validate the peer's chain up to the CA (not only the leaf against an allow list).
    iec.TLSConfiguration_setChainValidation(tls, True)
    iec.TLSConfiguration_setAllowOnlyKnownCertificates(tls, False)

    tls_max = args.tls_max
    if args.cipher:
        iec.TLSConfiguration_clearCipherSuiteList(tls)
        for suite in args.cipher:
            iec.TLSConfiguration_addCipherSuite(tls, suite)
        if tls_max is None and not any(s in TLS13_SUITES for s in args.cipher):
            tls_max = "1.2"  # no TLS 1.3 suite in the list: do not offer 1.3
    if args.tls_min:
        iec.TLSConfiguration_setMinTlsVersion(tls, tls_version(args.tls_min))
    if tls_max:
        iec.TLSConfiguration_setMaxTlsVersion(tls, tls_version(tls_max))
    if args.reneg_ms:
        iec.TLSConfiguration_setRenegotiationTime(tls, args.reneg_ms)
    clib.TLSConfiguration_setEventHandler(ptr(tls), events.callback, None)
    return tls


def add_tls_args(p):
    p.add_argument("--tls", action="store_true", help="use TLS (needs --cert, --key, --ca)")
    p.add_argument("--cert", help="own certificate (PEM)")
    p.add_argument("--key", help="own private key (PEM, unencrypted)")
    p.add_argument("--ca", help="CA certificate(s) trusted for the peer (PEM)")
    p.add_argument("--tls-min", choices=["1.2", "1.3"])
    p.add_argument("--tls-max", choices=["1.2", "1.3"])
    p.add_argument("--cipher", action="append", type=lambda s: int(s, 0), default=[],
                   help="force this IANA cipher suite, e.g. 0xC02B (repeatable)")
    p.add_argument("--reneg-ms", type=int, default=0,
                   help="TLS 1.2 renegotiation interval (TLSConfiguration_setRenegotiationTime)")
    p.add_argument("--tls-debug", choices=["off", "short", "full"], default="short",
                   help="libiec61850's own TLS debug output on stderr (default: one-liners)")


# --------------------------------------------------------------------------------------
# server


def run_server(args):
    stop = threading.Event()
    # Handlers only set a flag; the main thread does the shutdown. Event.wait()
    # is woken by signals on Linux, so SIGTERM is acted on at once.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    model = iec.ConfigFileParser_createModelFromConfigFileEx(args.model)
    if model is None:
        raise ConfigError(f"cannot load model {args.model}")
    config = iec.IedServerConfig_create()
    if args.max_conns:
        iec.IedServerConfig_setMaxMmsConnections(config, args.max_conns)

    events = TlsEvents(echo=args.verbose)
    tls = make_tls(args, False, events) if args.tls else None

    # The SWIG wrapper of IedServer_createWithConfig rejects a NULL
    # TLSConfiguration ("ValueError: TLSConfiguration is NULL"), so the plain
    # server could not use a custom IedServerConfig. Calling the C function
    # through ctypes works for both cases; the server handle is then a raw
    # pointer and stays on the ctypes side.
    server = clib.IedServer_createWithConfig(ptr(model), ptr(tls), ptr(config))
    if not server:
        raise ConfigError("IedServer_createWithConfig failed")
    # Writes are refused by default; allow them for FC DC (NamPlt.vendor etc.).
    clib.IedServer_setWriteAccessPolicy(server, iec.IEC61850_FC_DC, iec.ACCESS_POLICY_ALLOW)
    if args.bind:
        clib.IedServer_setLocalIpAddress(server, args.bind.encode())
    clib.IedServer_start(server, args.port)
    if not clib.IedServer_isRunning(server):
        raise ConfigError(f"IedServer_start failed on port {args.port} (in use?)")
    print("ready", flush=True)

    # libiec61850 serves every connection on its own threads; just wait.
    stop.wait(args.seconds)

    clib.IedServer_stop(server)
    clib.IedServer_destroy(server)
    # The model, config, TLS configuration and event callback are referenced
    # until here on purpose; freeing them under a running server would crash it.
    del model, config, tls, events
    return 0


# --------------------------------------------------------------------------------------
# client


def call(stage, fn, con, *args):
    """Call a blocking IedConnection_* function through ctypes; raise on error.

    fn(con, &error, *args) -> result; a non-OK IedClientError raises ClientError.
    """
    err = ctypes.c_int(iec.IED_ERROR_OK)
    result = fn(con, ctypes.byref(err), *args)
    if err.value != iec.IED_ERROR_OK:
        raise ClientError(stage, err.value)
    return result


def linked_list_strings(lst):
    """Python list of the C strings in a libiec61850 LinkedList (which is then freed)."""
    out = []
    element = clib.LinkedList_getNext(lst)
    while element:
        data = clib.LinkedList_getData(element)
        if data:
            out.append(ctypes.string_at(data).decode())
        element = clib.LinkedList_getNext(element)
    clib.LinkedList_destroy(lst)  # frees the strings too
    return out


def connect(args, tls, out):
    """Connect and fetch the server directory, working around a client race.

    libiec61850's MmsConnection_connectAsync() marks the connection CONNECTING
    only after IsoClientConnection_associateAsync() has handed the socket to
    the background thread. Against a fast local server that thread can finish
    the whole COTP/ACSE/MMS-initiate exchange first and set CONNECTED, which
    the late CONNECTING then overwrites: IedConnection_connect() reports
    success, yet every later request fails at once, before anything is sent,
    with IED_ERROR_CONNECTION_LOST. That case is recognised (the first request
    fails within a few ms of a successful connect) and the association is
    dropped and made again, up to --connect-attempts times. The number of
    attempts is reported as "connect_attempts".
    """
    host = args.host.encode()
    for attempt in range(1, args.connect_attempts + 1):
        out["connect_attempts"] = attempt
        if tls:
            con = clib.IedConnection_createWithTlsSupport(ptr(tls))
        else:
            con = clib.IedConnection_create()
        if not con:
            raise ConfigError("IedConnection_create failed")
        clib.IedConnection_setConnectTimeout(con, args.timeout_ms)
        clib.IedConnection_setRequestTimeout(con, args.timeout_ms)
        try:
            call("connect", clib.IedConnection_connect, con, host, args.port)
        except ClientError:
            clib.IedConnection_destroy(con)
            raise
        t0 = time.monotonic()
        try:
            names = call("getServerDirectory", clib.IedConnection_getServerDirectory, con, False)
        except ClientError as exc:
            stuck = (exc.code == iec.IED_ERROR_CONNECTION_LOST and time.monotonic() - t0 < 0.05
                     and attempt < args.connect_attempts)
            if not stuck:
                clib.IedConnection_close(con)
            # When stuck nothing was sent on this association and there is no
            # MMS state in which to conclude; destroying it closes the socket.
            clib.IedConnection_destroy(con)
            if stuck:
                continue
            raise
        return con, linked_list_strings(names)
    raise AssertionError("unreachable")


def receive_reports(con, args):
    """Enable the report control block args.rcb, ask for a general interrogation
    args.reports times (each gives one report) and count the reports that arrive
    (waiting at most --timeout-ms for each); the RCB is disabled again."""
    got = []
    lock = threading.Condition()

    def on_report(_param, report):
        ref = clib.ClientReport_getRcbReference(report)
        with lock:
            got.append(ref.decode(errors="replace") if ref else "")
            lock.notify_all()

    handler = REPORT_HANDLER(on_report)
    rcb = call("get RCB", clib.IedConnection_getRCBValues, con, args.rcb.encode(), None)
    try:
        rpt_id = clib.ClientReportControlBlock_getRptId(rcb)
        clib.IedConnection_installReportHandler(con, args.rcb.encode(), rpt_id, handler, None)
        clib.ClientReportControlBlock_setRptEna(rcb, True)
        call("enable RCB", clib.IedConnection_setRCBValues, con, rcb,
             iec.RCB_ELEMENT_RPT_ENA, True)
        for i in range(args.reports):
            clib.ClientReportControlBlock_setGI(rcb, True)
            call("GI", clib.IedConnection_setRCBValues, con, rcb, iec.RCB_ELEMENT_GI, True)
            deadline = time.monotonic() + args.timeout_ms / 1000
            with lock:
                while len(got) <= i and time.monotonic() < deadline:
                    lock.wait(0.05)
            if len(got) <= i:
                break
        clib.ClientReportControlBlock_setRptEna(rcb, False)
        call("disable RCB", clib.IedConnection_setRCBValues, con, rcb,
             iec.RCB_ELEMENT_RPT_ENA, True)
    finally:
        clib.ClientReportControlBlock_destroy(rcb)
    # The handler stays referenced until the connection is closed by the caller.
    receive_reports.handlers.append(handler)
    return len(got)


receive_reports.handlers = []


def run_client(args):
    """The client, with every blocking libiec61850 call made through ctypes.

    SWIG wrappers keep the GIL while the C function blocks. libiec61850 runs
    the TLS handshake (and renegotiation, and raises TLS events) on its own
    connection thread while the caller waits in IedConnection_connect or a
    read; the ctypes event callback there needs the GIL, so a SWIG call would
    deadlock. ctypes releases the GIL for the duration of each foreign call.
    """
    out = {"peer": "libiec61850", "ok": False, "tls": bool(args.tls), "tls_version": None,
           "cipher": None, "domains": None, "mag": None, "vendor": None, "reads": 0,
           "elapsed_s": None, "error": None, "error_code": None, "stage": None,
           "connect_attempts": 0}
    events = TlsEvents()
    tls = make_tls(args, True, events) if args.tls else None
    start = time.monotonic()
    con = None
    try:
        con, out["domains"] = connect(args, tls, out)
        for _ in range(args.reads):
            out["mag"] = call("read mag", clib.IedConnection_readFloatValue, con,
                              MAG_REF.encode(), iec.IEC61850_FC_MX)
            out["reads"] += 1
            if args.read_interval_ms:
                time.sleep(args.read_interval_ms / 1000)
        if args.write_vendor is not None:
            try:
                call("write vendor", clib.IedConnection_writeVisibleStringValue, con,
                     VENDOR_REF.encode(), iec.IEC61850_FC_DC, args.write_vendor.encode())
                out["write"] = "ok"
            except ClientError as exc:
                if not args.expect_write_denied:
                    raise
                out["write"] = error_name(exc.code)
        text = call("read vendor", clib.IedConnection_readStringValue, con,
                    VENDOR_REF.encode(), iec.IEC61850_FC_DC)
        out["vendor"] = ctypes.string_at(text).decode() if text else None
        if text:
            clib.Memory_free(text)
        if args.rcb:
            out["reports"] = receive_reports(con, args)
        out["ok"] = DOMAIN in out["domains"]
        if not out["ok"]:
            out["error"] = f"{DOMAIN} not in server directory"
        elif args.expect_write_denied and out.get("write") == "ok":
            out["ok"], out["error"] = False, "the write was expected to be refused"
        elif args.rcb and out["reports"] < args.reports:
            out["ok"] = False
            out["error"] = f"{out['reports']} of {args.reports} reports arrived"
    except ClientError as exc:
        out["error"], out["error_code"], out["stage"] = str(exc), exc.code, exc.stage
    finally:
        out["elapsed_s"] = round(time.monotonic() - start, 3)
        with events.lock:
            out["tls_version"], out["cipher"] = events.version, events.cipher
            # Every TLS event libiec61850 raised, in order ("Info: ...", "Alarm: ...").
            out["tls_events"] = [e["message"] for e in events.events]
            out["renegotiations"] = sum(e["message"] == "Info: session renegotiation started"
                                        for e in events.events)
        if con is not None:
            clib.IedConnection_close(con)  # MMS conclude + ACSE release when still connected
            clib.IedConnection_destroy(con)
    return out


# --------------------------------------------------------------------------------------


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    sub = parser.add_subparsers(dest="role", required=True)

    s = sub.add_parser("server", help="libiec61850 IedServer")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--seconds", type=float, default=300)
    s.add_argument("--model", default=DEFAULT_MODEL, help="libiec61850 config-file model")
    s.add_argument("--bind", default=None, help="local address (default: all interfaces)")
    s.add_argument("--max-conns", type=int, default=0,
                   help="IedServerConfig_setMaxMmsConnections (default: library default)")
    s.add_argument("--verbose", action="store_true", help="print TLS events on stdout")
    add_tls_args(s)

    c = sub.add_parser("client", help="libiec61850 IedConnection")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--reads", type=int, default=1)
    c.add_argument("--read-interval-ms", type=int, default=0,
                   help="pause between reads (lets --reneg-ms fire mid-session)")
    c.add_argument("--outstanding", type=int, default=None, help="accepted, ignored")
    c.add_argument("--server-name", default=None,
                   help="accepted, ignored: libiec61850 does not check the server host name")
    c.add_argument("--timeout-ms", type=int, default=10000)
    c.add_argument("--write-vendor", default=None, metavar="TEXT",
                   help="write TEXT to LLN0.NamPlt.vendor [DC] before reading it")
    c.add_argument("--expect-write-denied", action="store_true",
                   help="the write must be refused (read-only route); reported as \"write\"")
    c.add_argument("--rcb", default=None, metavar="REF",
                   help="enable this report control block, e.g. DEMOLD0/LLN0.RP.urcb01")
    c.add_argument("--reports", type=int, default=1,
                   help="with --rcb: general interrogations asked, reports expected")
    c.add_argument("--connect-attempts", type=int, default=5,
                   help="retries for the libiec61850 connect race (see connect()); 1 = none")
    add_tls_args(c)

    args = parser.parse_args(argv)
    if args.tls and not (args.cert and args.key and args.ca):
        parser.error("--tls needs --cert, --key and --ca")
    route_native_stderr(args.tls_debug)
    load()
    if args.role == "server":
        return run_server(args)
    try:
        out = run_client(args)
    except Exception as exc:  # anything unexpected still yields one JSON line
        out = {"peer": "libiec61850", "ok": False, "error": repr(exc)}
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else 2
    except ConfigError as exc:  # server side; the client reports these as JSON
        print(f"libiec_peers: {exc}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter teardown: libiec61850 threads may still be
    # running C code (and calling the ctypes TLS event callback) at exit.
    os._exit(code)
