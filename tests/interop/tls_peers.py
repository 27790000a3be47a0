#!/usr/bin/env python3
"""TLS (IEC 62351-4 clause 6) peers for the secmms T-profile interop tests.

PKI is a directory with ca.pem, server.pem, server.key, client.pem, client.key (PEM, PKCS#8 keys),
as written by the Rust tests (crates/secmms/tests/tls_support).

Usage:
  tls_peers.py server iec61850  PORT SECONDS SCL PKI                 iec61850 (PyPI) TLS server
  tls_peers.py client iec61850  HOST PORT PKI                        iec61850 TLS client: browse, read
  tls_peers.py server open61850 PORT SECONDS SCL PKI CIPHERS [--reneg]
                                        open61850 behind Python ssl (OpenSSL), TLS 1.2 only;
                                        --reneg accepts client-initiated renegotiation
  tls_peers.py client open61850 HOST PORT PKI [KEYLOG]                open61850 client over Python ssl

Servers print "ready" once listening. Clients print one JSON object and exit 0 only on success.
"""
import asyncio
import json
import os
import ssl
import sys
import threading

DOMAIN = "DEMOLD0"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def serve_iec61850(port, seconds, scl, pki):
    import iec61850

    async def main():
        srv = iec61850.IedServer.from_scl(scl, ied_name="DEMO")
        srv.bind(f"127.0.0.1:{port}")
        srv.with_tls(read(f"{pki}/server.pem"), read(f"{pki}/server.key"),
                     client_ca_pem=read(f"{pki}/ca.pem"))
        async with srv:
            srv.update_float32("LD0/GGIO1.AnIn1.mag.f", 42.5)
            print("ready", flush=True)
            await asyncio.sleep(seconds)

    asyncio.run(main())


def client_iec61850(host, port, pki):
    import iec61850

    async def main():
        tls = iec61850.TlsConfig(ca_pem=read(f"{pki}/ca.pem"),
                                 client_cert_pem=read(f"{pki}/client.pem"),
                                 client_key_pem=read(f"{pki}/client.key"))
        conn = await iec61850.IedConnection.connect_tls(f"{host}:{port}", tls,
                                                        server_name="localhost", timeout_ms=5000)
        out = {"peer": "iec61850-tls"}
        out["domains"] = list(await conn.get_server_directory())
        out["mag"] = await conn.read_float(f"{DOMAIN}/GGIO1.AnIn1.mag.f", "MX")
        out["vendor"] = str(await conn.read_string(f"{DOMAIN}/LLN0.NamPlt.vendor", "DC"))
        await conn.disconnect()
        return out, DOMAIN in out["domains"]

    return asyncio.run(main())


def serve_open61850(port, seconds, scl, pki, ciphers, reneg):
    from open61850.server import IedModel, MmsServer
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    ctx.load_cert_chain(f"{pki}/server.pem", f"{pki}/server.key")
    ctx.load_verify_locations(f"{pki}/ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    if reneg:
        ctx.options |= 1 << 8  # SSL_OP_ALLOW_CLIENT_RENEGOTIATION (OpenSSL 3.0)

    class TlsMmsServer(MmsServer):
        def _serve(self, client, peer):
            try:
                client = ctx.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                print("TLS refused", repr(exc), flush=True)
                return
            print("TLS", client.version(), client.cipher()[0], flush=True)
            super()._serve(client, peer)

    TlsMmsServer(IedModel.from_scl(scl), "127.0.0.1", port).start()
    print("ready", flush=True)
    threading.Event().wait(seconds)


def client_open61850(host, port, pki, keylog=None):
    import open61850.mms.transport as transport
    from open61850.mms.client import MmsClient
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(f"{pki}/ca.pem")
    ctx.load_cert_chain(f"{pki}/client.pem", f"{pki}/client.key")
    if keylog:
        ctx.keylog_filename = keylog
    orig = transport.socket.create_connection

    class Patched:
        def __getattr__(self, name):
            return getattr(__import__("socket"), name)

        @staticmethod
        def create_connection(addr, *a, **kw):
            return ctx.wrap_socket(orig(addr, *a, **kw), server_hostname="localhost")

    transport.socket = Patched()
    out = {"peer": "open61850-ssl"}
    with MmsClient.connect(host, port) as c:
        out["domains"] = c.get_name_list(9)
        # Enough reads for the server's byte-count renegotiation to start and complete.
        for _ in range(30):
            out["mag"] = str(c.read(f"{DOMAIN}/GGIO1.AnIn1.mag.f[MX]"))
    return out, DOMAIN in out["domains"]


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    role, peer = argv[0], argv[1]
    if role == "server" and peer == "iec61850":
        serve_iec61850(int(argv[2]), float(argv[3]), argv[4], argv[5])
        return 0
    if role == "server" and peer == "open61850":
        serve_open61850(int(argv[2]), float(argv[3]), argv[4], argv[5], argv[6], "--reneg" in argv)
        return 0
    if role == "client":
        try:
            if peer == "iec61850":
                out, ok = client_iec61850(argv[2], int(argv[3]), argv[4])
            else:
                out, ok = client_open61850(argv[2], int(argv[3]), argv[4],
                                           argv[5] if len(argv) > 5 else None)
        except Exception as exc:  # every failure as JSON for the Rust test to show
            print(json.dumps({"peer": peer, "error": repr(exc)}))
            return 1
        out["ok"] = ok
        print(json.dumps(out))
        return 0 if ok else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # The iec61850 native extension can crash during interpreter shutdown; leave without it.
    os._exit(code)
