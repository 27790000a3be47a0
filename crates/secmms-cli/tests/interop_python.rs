//! Interoperability with the two Python MMS stacks from PyPI (../shared/interop/README.md):
//! their clients against our server, and our client against their servers, all on loopback
//! with the same SCL model. Skipped locally when the peers are missing; required when CI=true.
//!
//! Peer quirks handled here (documented in docs/INTEROP.md):
//! - the open61850 server never answers an RLRQ and closes the connection; the `iec61850` server
//!   answers FN with FN (not DN+RLRE). Our client treats both as the end of the association.
//! - the `iec61850` 0.14.0 server refuses every write to the demo model with
//!   object-access-denied (even with an `on_write` callback), so writes are checked against the
//!   open61850 server, and against `iec61850` we check that the refusal arrives as that typed error.

mod common;
use common::*;

fn ok_stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "secmms client failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn open61850_client_browses_reads_and_writes_our_server() {
    if !require("Python peers (open61850, iec61850)", have_peers()) {
        return;
    }
    let (_server, addr) = start_our_server(&["--model", demo_cid().to_str().unwrap()]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let (json, ok) = run_peer_client("open61850", host, port);
    assert!(ok, "open61850 client failed: {json}");
    assert_eq!(json["domains"], serde_json::json!(["DEMOLD0"]));
    assert!(json["variables"].as_u64().unwrap() > 50, "{json}");
    assert_eq!(
        json["reads"]["DEMOLD0/LLN0.NamPlt.vendor[DC]"],
        "visible-string('secmms')"
    );
    assert_eq!(json["reads"]["DEMOLD0/LLN0.Mod.stVal[ST]"], "int(1)");
    assert_eq!(json["type"], "PrimitiveType(kind='float', size=32)");
    assert_eq!(json["read_back"], "visible-string('interop')");
}

#[test]
fn iec61850_client_browses_reads_and_writes_our_server() {
    if !require("Python peers (open61850, iec61850)", have_peers()) {
        return;
    }
    let (_server, addr) = start_our_server(&[]);
    let (host, port) = addr.rsplit_once(':').unwrap();
    let (json, ok) = run_peer_client("iec61850", host, port);
    assert!(ok, "iec61850 client failed: {json}");
    assert_eq!(json["domains"], serde_json::json!(["DEMOLD0"]));
    assert_eq!(json["logical_nodes"], serde_json::json!(["GGIO1", "LLN0"]));
    assert_eq!(json["vendor"], "secmms");
    assert_eq!(json["ctl_model"], 1);
}

fn browse_and_read(addr: &str, expect_vendor: &str, expect_mag: &str) {
    let out = ok_stdout(&our_client(addr, &["identify"]));
    assert!(out.contains("vendor:"), "{out}");
    let out = ok_stdout(&our_client(addr, &["ls"]));
    assert_eq!(out.trim(), "DEMOLD0");
    let out = ok_stdout(&our_client(addr, &["ls", "DEMOLD0"]));
    assert!(
        out.lines().any(|l| l == "DEMOLD0/GGIO1$MX$AnIn1$mag$f"),
        "{out}"
    );
    assert!(out.lines().count() > 40, "{out}");
    let out = ok_stdout(&our_client(
        addr,
        &["read", "DEMOLD0/LLN0.NamPlt.vendor[DC]", "--json"],
    ));
    assert_eq!(out.trim(), format!("\"{expect_vendor}\""));
    // Without FC: resolved by browsing.
    let out = ok_stdout(&our_client(addr, &["read", "DEMOLD0/GGIO1.AnIn1.mag.f"]));
    assert_eq!(
        out.trim(),
        format!("DEMOLD0/GGIO1.AnIn1.mag.f = {expect_mag}")
    );
    let out = ok_stdout(&our_client(
        addr,
        &["read", "DEMOLD0/LLN0$ST$Mod$stVal", "--json"],
    ));
    assert_eq!(out.trim(), "1");
}

#[test]
fn our_client_against_open61850_server() {
    if !require("Python peers (open61850, iec61850)", have_peers()) {
        return;
    }
    let (_peer, port) = start_peer_server("open61850");
    let addr = format!("127.0.0.1:{port}");
    browse_and_read(&addr, "secmms", "0");
    ok_stdout(&our_client(
        &addr,
        &["write", "DEMOLD0/LLN0.NamPlt.vendor[DC]", "from-secmms"],
    ));
    let out = ok_stdout(&our_client(
        &addr,
        &["read", "DEMOLD0/LLN0.NamPlt.vendor[DC]", "--json"],
    ));
    assert_eq!(out.trim(), "\"from-secmms\"");
    ok_stdout(&our_client(
        &addr,
        &["write", "DEMOLD0/LLN0.Mod.ctlModel[CF]", "1"],
    ));
    // A measured value is read-only: the server's refusal reaches the user as a typed error.
    let o = our_client(&addr, &["write", "DEMOLD0/GGIO1.AnIn1.mag.f[MX]", "1.5"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("object-access-denied"),
        "{o:?}"
    );
}

#[test]
fn our_client_against_iec61850_server() {
    if !require("Python peers (open61850, iec61850)", have_peers()) {
        return;
    }
    let (_peer, port) = start_peer_server("iec61850");
    let addr = format!("127.0.0.1:{port}");
    browse_and_read(&addr, "secmms", "42.5");
    let o = our_client(
        &addr,
        &["write", "DEMOLD0/LLN0.NamPlt.vendor[DC]", "from-secmms"],
    );
    assert!(
        !o.status.success(),
        "the iec61850 server unexpectedly accepted a write: {o:?}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("object-access-denied"),
        "{o:?}"
    );
}
