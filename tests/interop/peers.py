#!/usr/bin/env python3
"""Drive the Python MMS peers (open61850 and iec61850 from PyPI) for secmms interoperability tests.

Usage:
  peers.py server open61850 PORT SECONDS SCL     serve SCL with open61850 until SECONDS pass
  peers.py server iec61850  PORT SECONDS SCL     serve SCL with the iec61850 package
  peers.py client open61850 HOST PORT            associate, browse, read, write, read back; JSON summary
  peers.py client iec61850  HOST PORT            the same with the iec61850 package's client
  peers.py bench  open61850|iec61850 HOST PORT N read one FLOAT32 N times, print reads/s as JSON

Every client run exits 0 only when every step succeeded, and prints one JSON object on stdout.
"""
import asyncio
import json
import sys
import time

DOMAIN = "DEMOLD0"
READ_REFS = [f"{DOMAIN}/LLN0.Mod.stVal[ST]", f"{DOMAIN}/LLN0.NamPlt.vendor[DC]", f"{DOMAIN}/GGIO1.AnIn1.mag.f[MX]"]
WRITE_REF = f"{DOMAIN}/LLN0.NamPlt.vendor[DC]"


def serve_open61850(port, seconds, scl):
    import threading
    from open61850.server import IedModel, MmsServer
    server = MmsServer(IedModel.from_scl(scl), "127.0.0.1", port)
    server.start()
    print("ready", flush=True)
    threading.Event().wait(seconds)


def serve_iec61850(port, seconds, scl):
    import iec61850

    async def main():
        srv = iec61850.IedServer.from_scl(scl, ied_name="DEMO")
        srv.bind(f"127.0.0.1:{port}")
        async with srv:
            srv.update_float32("LD0/GGIO1.AnIn1.mag.f", 42.5)
            print("ready", flush=True)
            await asyncio.sleep(seconds)

    asyncio.run(main())


def client_open61850(host, port):
    from open61850.data import VisibleStringData
    from open61850.mms.client import MmsClient
    out = {"peer": "open61850"}
    with MmsClient.connect(host, port) as c:
        out["domains"] = c.get_name_list(9)
        out["variables"] = len(c.get_name_list(0, DOMAIN))
        out["reads"] = {r: str(c.read(r)) for r in READ_REFS}
        out["type"] = str(c.get_type(READ_REFS[2]))
        c.write(WRITE_REF, VisibleStringData("interop"))
        out["read_back"] = str(c.read(WRITE_REF))
    ok = DOMAIN in out["domains"] and out["variables"] > 10 and "interop" in out["read_back"]
    return out, ok


def client_iec61850(host, port):
    import iec61850

    async def main():
        out = {"peer": "iec61850"}
        conn = await iec61850.IedConnection.connect(f"{host}:{port}")
        out["domains"] = list(await conn.get_server_directory())
        out["logical_nodes"] = list(await conn.get_logical_device_directory(DOMAIN))
        out["vendor"] = str(await conn.read_string(f"{DOMAIN}/LLN0.NamPlt.vendor", "DC"))
        out["mag"] = await conn.read_float(f"{DOMAIN}/GGIO1.AnIn1.mag.f", "MX")
        await conn.write_int32(f"{DOMAIN}/LLN0.Mod.ctlModel", "CF", 1)
        out["ctl_model"] = await conn.read_int32(f"{DOMAIN}/LLN0.Mod.ctlModel", "CF")
        await conn.disconnect()
        ok = DOMAIN in out["domains"] and "GGIO1" in out["logical_nodes"] and out["ctl_model"] == 1
        return out, ok

    return asyncio.run(main())


def bench(peer, host, port, n):
    if peer == "open61850":
        from open61850.mms.client import MmsClient
        with MmsClient.connect(host, port) as c:
            t = time.perf_counter()
            for _ in range(n):
                c.read(READ_REFS[2])
            dt = time.perf_counter() - t
    else:
        import iec61850

        async def main():
            conn = await iec61850.IedConnection.connect(f"{host}:{port}")
            t = time.perf_counter()
            for _ in range(n):
                await conn.read_float(f"{DOMAIN}/GGIO1.AnIn1.mag.f", "MX")
            return time.perf_counter() - t

        dt = asyncio.run(main())
    return {"peer": peer, "reads": n, "seconds": dt, "reads_per_s": n / dt}


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    role, peer = argv[0], argv[1]
    if role == "server":
        port, seconds, scl = int(argv[2]), float(argv[3]), argv[4]
        {"open61850": serve_open61850, "iec61850": serve_iec61850}[peer](port, seconds, scl)
        return 0
    if role == "client":
        host, port = argv[2], int(argv[3])
        try:
            out, ok = {"open61850": client_open61850, "iec61850": client_iec61850}[peer](host, port)
        except Exception as exc:  # report every failure as JSON for the Rust test to show
            print(json.dumps({"peer": peer, "error": repr(exc)}))
            return 1
        out["ok"] = ok
        print(json.dumps(out))
        return 0 if ok else 1
    if role == "bench":
        print(json.dumps(bench(peer, argv[2], int(argv[3]), int(argv[4]))))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # The iec61850 native extension can crash during interpreter shutdown; leave without it.
    import os
    os._exit(code)
