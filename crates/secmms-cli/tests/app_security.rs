//! Application-layer security through the command line (IEC 62351-4 Table 1): a PKI made with
//! `secmms cert`, then `secmms server` and `secmms client` with `--mode compat` over TLS
//! ("A-security-profile + TLS"), and the refusals a user meets.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files of one test PKI.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_ok(args: &[&str]) {
    let out = secmms().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "secmms {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA `ca/`, a rogue CA `rogue/`, TLS certificates `stls/`, `ctls/`, application certificates
/// `sapp/` (1.1.1.999.1 / 12), `capp/` (1.1.1.999 / 12) and `rapp/` (client identity, rogue CA).
fn make_pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("secmms-appsec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki { dir };
    let d = |s: &str| pki.path(s);
    run_ok(&["cert", "ca", "--out", &d("ca")]);
    run_ok(&["cert", "ca", "--out", &d("rogue"), "--name", "rogue CA"]);
    for out in ["stls", "ctls"] {
        run_ok(&[
            "cert",
            "issue",
            "--ca",
            &d("ca"),
            "--tls",
            "--ip",
            "127.0.0.1",
            "--key-type",
            "p256",
            "--out",
            &d(out),
        ]);
    }
    for (ca, ap, out) in [
        ("ca", "1.1.1.999.1", "sapp"),
        ("ca", "1.1.1.999", "capp"),
        ("rogue", "1.1.1.999", "rapp"),
    ] {
        run_ok(&[
            "cert",
            "issue",
            "--ca",
            &d(ca),
            "--ap-title",
            ap,
            "--ae-qualifier",
            "12",
            "--key-type",
            "p256",
            "--out",
            &d(out),
        ]);
    }
    pki
}

fn tls_args(pki: &Pki, side: &str) -> Vec<String> {
    vec![
        "--tls".into(),
        "--cert".into(),
        pki.path(&format!("{side}/tls-cert.pem")),
        "--key".into(),
        pki.path(&format!("{side}/tls-key.pem")),
        "--ca".into(),
        pki.path("ca/ca.pem"),
    ]
}

fn app_args(pki: &Pki, dir: &str) -> Vec<String> {
    mode_args(pki, dir, "compat")
}

fn mode_args(pki: &Pki, dir: &str, mode: &str) -> Vec<String> {
    vec![
        "--mode".into(),
        mode.into(),
        "--app-cert".into(),
        pki.path(&format!("{dir}/cert.pem")),
        "--app-key".into(),
        pki.path(&format!("{dir}/key.pem")),
    ]
}

fn events_config(path: &Path, log: &Path) {
    std::fs::write(
        path,
        format!("[events]\nlog = \"{}\"\n", log.display()).as_bytes(),
    )
    .unwrap();
}

fn mnemonics(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["mnemonic"].as_str().map(str::to_string))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn compat_mode_over_tls_end_to_end_through_the_cli() {
    let pki = make_pki("e2e");
    let cfg = pki.dir.join("server.toml");
    let log = pki.dir.join("events.jsonl");
    events_config(&cfg, &log);
    let mut server_args = tls_args(&pki, "stls");
    server_args.extend(app_args(&pki, "sapp"));
    server_args.extend(["--config".into(), cfg.display().to_string()]);
    let (_server, addr) = start_our_server(&strs(&server_args));

    let mut client = tls_args(&pki, "ctls");
    client.extend(app_args(&pki, "capp"));
    let reference = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";
    let mut read = client.clone();
    read.extend(["--json".into(), "read".into(), reference.into()]);
    let out = our_client(&addr, &strs(&read));
    assert!(
        out.status.success(),
        "compat read failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_number() || v.is_object(), "{v}");

    let mut write = client.clone();
    write.extend([
        "write".into(),
        "DEMOLD0/LLN0.NamPlt.vendor[DC]".into(),
        "compat-mode".into(),
    ]);
    let out = our_client(&addr, &strs(&write));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut read_back = client.clone();
    read_back.extend(["read".into(), "DEMOLD0/LLN0.NamPlt.vendor[DC]".into()]);
    let out = our_client(&addr, &strs(&read_back));
    assert!(String::from_utf8_lossy(&out.stdout).contains("compat-mode"));

    // The server authenticated the client's application certificate on each association.
    let seen = mnemonics(&log);
    assert!(
        seen.iter().filter(|m| *m == "AP_AUTHENTICATED").count() >= 3,
        "{seen:?}"
    );

    // A client without application security is refused: the AARE says the mechanism is
    // required (§11.4), and the server records why.
    let mut plain = tls_args(&pki, "ctls");
    plain.extend(["identify".into()]);
    let out = our_client(&addr, &strs(&plain));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rejected"), "{err}");
    assert!(mnemonics(&log).contains(&"AP_MECHANISM_REQUIRED".to_string()));

    // A client whose application certificate comes from an unknown CA is aborted without an
    // AARE (nothing tells it which check failed), and the server records the unknown CA.
    let mut rogue = tls_args(&pki, "ctls");
    rogue.extend(app_args(&pki, "rapp"));
    rogue.push("identify".into());
    let out = our_client(&addr, &strs(&rogue));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("abort"), "{err}");
    assert!(mnemonics(&log).contains(&"AP_CA_UNKNOWN".to_string()));

    // Our TLS certificate may not double as the application certificate (Annex G.2): refused
    // locally with a clear message.
    let mut reuse = tls_args(&pki, "ctls");
    reuse.extend([
        "--mode".into(),
        "compat".into(),
        "--app-cert".into(),
        pki.path("ctls/tls-cert.pem"),
        "--app-key".into(),
        pki.path("ctls/tls-key.pem"),
        "identify".into(),
    ]);
    let out = our_client(&addr, &strs(&reuse));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("application"), "{err}");
}

#[test]
fn compat_mode_flags_are_checked() {
    // Compatibility mode without an application certificate.
    let out = secmms()
        .args(["client", "--mode", "compat", "identify"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("application certificate"));
    // Application credentials without a mode.
    let out = secmms()
        .args([
            "client",
            "--app-cert",
            "x.pem",
            "--app-key",
            "x.key",
            "identify",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode"));
    // --encrypt outside native mode.
    let out = secmms()
        .args(["client", "--encrypt", "gcm", "identify"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("native"));
}

#[test]
fn demo_runs_compat_mode_with_its_own_pki() {
    let out = secmms()
        .args(["demo", "--json", "--mode", "compat"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "build PKI");
    let assoc = steps.iter().find(|s| s["name"] == "associate").unwrap();
    let detail = assoc["detail"].as_str().unwrap();
    assert!(
        detail.contains("TLS") && detail.contains("A-security-profile"),
        "{detail}"
    );
}

#[test]
fn compat_mode_through_two_cli_relays_with_tls_per_hop() {
    let pki = make_pki("relay");
    let mut server_args = tls_args(&pki, "stls");
    server_args.extend(app_args(&pki, "sapp"));
    let (_server, addr) = start_our_server(&strs(&server_args));
    // Each relay re-terminates TLS with its own (TLS) certificate; it has no application key.
    let mut r1 = tls_args(&pki, "ctls");
    r1.extend(["--to".into(), addr.clone()]);
    let (_relay1, raddr1) = start_our_relay(&strs(&r1));
    let mut r2 = tls_args(&pki, "ctls");
    r2.extend(["--to".into(), raddr1]);
    let (_relay2, raddr2) = start_our_relay(&strs(&r2));
    let mut client = tls_args(&pki, "ctls");
    client.extend(app_args(&pki, "capp"));
    client.extend(["read".into(), "DEMOLD0/GGIO1.AnIn1.mag.f[MX]".into()]);
    let out = our_client(&raddr2, &strs(&client));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("AnIn1"));
}

#[test]
fn native_mode_each_encryption_through_a_cli_relay() {
    let pki = make_pki("native");
    // The server listens on plain TCP; the relay terminates the client's TLS.
    let mut server_args = mode_args(&pki, "sapp", "native");
    server_args.extend(["--ca".into(), pki.path("ca/ca.pem")]);
    let (_server, addr) = start_our_server(&strs(&server_args));
    // One relay: TLS from the client, plain TCP to the server (TLS is per hop).
    let mut r = tls_args(&pki, "ctls");
    r.extend(["--plain-out".into(), "--to".into(), addr.clone()]);
    let (_relay, raddr) = start_our_relay(&strs(&r));
    for enc in ["gcm", "cbc", "none"] {
        let mut client = tls_args(&pki, "ctls");
        client.extend(mode_args(&pki, "capp", "native"));
        client.extend(["--encrypt".into(), enc.into()]);
        let mut write = client.clone();
        write.extend([
            "write".into(),
            "DEMOLD0/LLN0.NamPlt.vendor[DC]".into(),
            format!("native-{enc}"),
        ]);
        let out = our_client(&raddr, &strs(&write));
        assert!(
            out.status.success(),
            "{enc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut read = client.clone();
        read.extend(["read".into(), "DEMOLD0/LLN0.NamPlt.vendor[DC]".into()]);
        let out = our_client(&raddr, &strs(&read));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("native-{enc}")),
            "{enc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A client in compatibility mode meets a native server: refused.
    let mut compat = tls_args(&pki, "ctls");
    compat.extend(app_args(&pki, "capp"));
    compat.push("identify".into());
    let out = our_client(&raddr, &strs(&compat));
    assert!(!out.status.success());
}

#[test]
fn demo_runs_native_mode_over_tls_by_default() {
    let out = secmms().args(["demo", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(last["name"], "protections in force");
    let d = last["detail"].as_str().unwrap();
    assert!(
        d.contains("TLS") && d.contains("E2E") && d.contains("Aes128Gcm"),
        "{d}"
    );
    for enc in ["cbc", "none"] {
        let out = secmms()
            .args(["demo", "--json", "--no-tls", "--encrypt", enc])
            .output()
            .unwrap();
        assert!(out.status.success(), "{enc}");
    }
}

#[test]
fn a_native_refusal_is_logged_with_its_e2e_diagnostic() {
    let pki = make_pki("native-refusal");
    let mut server_args = mode_args(&pki, "sapp", "native");
    server_args.extend(["--ca".into(), pki.path("ca/ca.pem")]);
    let (_server, addr, log) = start_our_logged("server", &strs(&server_args));
    // A native client whose application certificate comes from a CA the server does not
    // trust: its HandshakeReq fails the server's E2E checks.
    let mut rogue = mode_args(&pki, "rapp", "native");
    rogue.extend([
        "--ca".into(),
        pki.path("ca/ca.pem"),
        "--peer-ap-title".into(),
        "1.1.1.999.1".into(),
        "--peer-ae-qualifier".into(),
        "12".into(),
        "identify".into(),
    ]);
    let out = our_client(&addr, &strs(&rogue));
    assert!(!out.status.success());
    // The server says why at WARN, with the E2E diagnostic of the refusal, not as a
    // connection the peer closed.
    let line = wait_for_line(
        &log,
        "association ended: refused: E2E:",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| {
        panic!(
            "no E2E refusal in the server log: {:?}",
            log.lock().unwrap()
        )
    });
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("PKCERT_ERROR_ASS_REQ"), "{line}");
    // A trusted client still gets in.
    let mut good = mode_args(&pki, "capp", "native");
    good.extend([
        "--ca".into(),
        pki.path("ca/ca.pem"),
        "--peer-ap-title".into(),
        "1.1.1.999.1".into(),
        "--peer-ae-qualifier".into(),
        "12".into(),
        "identify".into(),
    ]);
    let out = our_client(&addr, &strs(&good));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
