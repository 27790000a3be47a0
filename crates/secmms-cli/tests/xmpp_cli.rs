//! `secmms server --env xmpp` and `secmms client --env xmpp` through a real Prosody (clause 16),
//! and `secmms bench` over XMPP. Skips locally without Prosody; fails when CI=true.

mod common;
use common::*;

use secmms_xmpp::prosody::{require_prosody, Prosody};

#[test]
fn server_and_client_over_xmpp_through_the_cli() {
    if !require_prosody("server_and_client_over_xmpp_through_the_cli") {
        return;
    }
    let prosody = Prosody::start(&[("ied1", "pw1"), ("scada", "pw2")]).unwrap();
    let dir = prosody.dir.join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let d = |s: &str| dir.join(s).display().to_string();
    let run = |args: &[&str]| {
        let out = secmms().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // Application certificates bound to the JIDs (Annex G.6.3).
    run(&["cert", "ca", "--out", &d("ca")]);
    run(&[
        "cert",
        "issue",
        "--ca",
        &d("ca"),
        "--jid",
        "ied1@localhost",
        "--out",
        &d("ied1"),
    ]);
    run(&[
        "cert",
        "issue",
        "--ca",
        &d("ca"),
        "--jid",
        "scada@localhost",
        "--out",
        &d("scada"),
    ]);
    std::fs::write(dir.join("pw1"), "pw1\n").unwrap();
    std::fs::write(dir.join("pw2"), "pw2\n").unwrap();
    let server_addr = prosody.server();
    let xca = prosody.ca.display().to_string();
    let common = |jid: &str, who: &str, pw: &str| -> Vec<String> {
        vec![
            "--env".into(),
            "xmpp".into(),
            "--jid".into(),
            jid.into(),
            "--xmpp-server".into(),
            server_addr.clone(),
            "--xmpp-password-file".into(),
            d(pw),
            "--xmpp-ca".into(),
            xca.clone(),
            "--mode".into(),
            "native".into(),
            "--app-cert".into(),
            d(&format!("{who}/cert.pem")),
            "--app-key".into(),
            d(&format!("{who}/key.pem")),
            "--ca".into(),
            d("ca/ca.pem"),
        ]
    };
    let server_args = common("ied1@localhost", "ied1", "pw1");
    let server_refs: Vec<&str> = server_args.iter().map(String::as_str).collect();
    let (_server, _) = start_our_server(&server_refs);
    let mut client = vec!["client".to_string()];
    client.extend(common("scada@localhost", "scada", "pw2"));
    client.extend(["--peer".into(), "ied1@localhost/IEC".into()]);
    for enc in ["gcm", "cbc", "none"] {
        let mut w = client.clone();
        w.extend([
            "--encrypt".into(),
            enc.into(),
            "write".into(),
            "DEMOLD0/LLN0.NamPlt.vendor[DC]".into(),
            format!("over-xmpp-{enc}"),
        ]);
        let out = secmms().args(&w).output().unwrap();
        assert!(
            out.status.success(),
            "{enc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut r = client.clone();
        r.extend([
            "--encrypt".into(),
            enc.into(),
            "read".into(),
            "DEMOLD0/LLN0.NamPlt.vendor[DC]".into(),
        ]);
        let out = secmms().args(&r).output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("over-xmpp-{enc}")),
            "{enc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The load generator over XMPP: 2 associations on one connection.
    let mut b = vec!["bench".to_string()];
    b.extend(common("scada@localhost", "scada", "pw2"));
    b.extend([
        "--peer".into(),
        "ied1@localhost/IEC".into(),
        "--associations".into(),
        "2".into(),
        "--outstanding".into(),
        "4".into(),
        "--duration".into(),
        "1".into(),
        "--json".into(),
    ]);
    let out = secmms().args(&b).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["requests"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["errors"], 0);
    // --env xmpp without native mode is refused with an explanation.
    let out = secmms()
        .args([
            "client", "--env", "xmpp", "--jid", "a@b", "--peer", "c@d/IEC", "identify",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode native"));
}

#[test]
fn demo_over_xmpp() {
    if !require_prosody("demo_over_xmpp") {
        return;
    }
    let out = secmms()
        .args(["demo", "--env", "xmpp", "--json", "--encrypt", "cbc"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{report}");
    let last = steps.last().unwrap()["detail"].as_str().unwrap();
    assert!(last.contains("E2E") && last.contains("AES-CBC"), "{last}");
    let rel = steps.iter().find(|s| s["name"] == "release").unwrap();
    assert!(rel["detail"].as_str().unwrap().contains("iq"), "{rel}");
}

/// `demo --env xmpp --xmpp-server …`: the demo runs through a server it did not start (here a
/// Prosody started by the test, standing for the site's server) with two existing accounts.
#[test]
fn demo_over_an_external_xmpp_server() {
    if !require_prosody("demo_over_an_external_xmpp_server") {
        return;
    }
    let prosody = Prosody::start(&[("gw7", "pw-gw7"), ("hmi", "pw-hmi")]).unwrap();
    let dir = prosody.dir.join("demo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gw7.pw"), "pw-gw7\n").unwrap();
    std::fs::write(dir.join("hmi.pw"), "pw-hmi\n").unwrap();
    let d = |s: &str| dir.join(s).display().to_string();
    let server = prosody.server();
    let ca = prosody.ca.display().to_string();
    let base = [
        "demo",
        "--env",
        "xmpp",
        "--xmpp-server",
        &server,
        "--xmpp-ca",
        &ca,
        "--server-jid",
        "gw7@localhost",
        "--server-password-file",
    ];
    let gw_pw = d("gw7.pw");
    let hmi_pw = d("hmi.pw");
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        gw_pw.as_str(),
        "--client-jid",
        "hmi@localhost",
        "--client-password-file",
        hmi_pw.as_str(),
    ]);
    let out = secmms().args(&args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("through the XMPP server at {server}")),
        "{stdout}"
    );
    assert!(stdout.contains("gw7@localhost") && stdout.contains("hmi@localhost"));
    assert!(
        !stdout.contains("Prosody on"),
        "no private server: {stdout}"
    );
    assert!(stdout.contains("demo: all"), "{stdout}");

    // A wrong password is a failed step and a failing exit, not a hang.
    std::fs::write(dir.join("bad.pw"), "nope\n").unwrap();
    let bad = d("bad.pw");
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        gw_pw.as_str(),
        "--client-jid",
        "hmi@localhost",
        "--client-password-file",
        bad.as_str(),
    ]);
    let out = secmms().args(&args).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));

    // Half an account is a usage error.
    let out = secmms()
        .args(["demo", "--env", "xmpp", "--xmpp-server", &server])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--server-jid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
