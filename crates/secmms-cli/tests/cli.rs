//! The `secmms` command as a user meets it: the demo, help texts, errors, and a short bench run.

mod common;
use common::*;

#[test]
fn demo_succeeds_and_reports_every_step() {
    let out = secmms().args(["demo", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() >= 10);
    assert!(steps.iter().all(|s| s["ok"] == true), "{report}");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for n in [
        "associate",
        "identify",
        "browse devices",
        "read",
        "write and read back",
        "release",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
}

#[test]
fn every_command_explains_itself() {
    for args in [
        vec!["--help"],
        vec!["demo", "--help"],
        vec!["server", "--help"],
        vec!["client", "--help"],
        vec!["client", "read", "--help"],
        vec!["client", "write", "--help"],
        vec!["bench", "--help"],
        vec!["relay", "--help"],
        vec!["pics", "--help"],
    ] {
        let out = secmms().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{args:?}: {text}");
    }
}

#[test]
fn errors_are_clear() {
    // Nobody listens on this port.
    let port = free_port();
    let out = our_client(&format!("127.0.0.1:{port}"), &["identify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("associating with"),
        "{err}"
    );

    let (_server, addr) = start_our_server(&[]);
    let out = our_client(&addr, &["read", "not-a-reference"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid object reference"),
        "{out:?}"
    );
    let out = our_client(&addr, &["write", "DEMOLD0/LLN0.Mod.ctlModel[CF]", "banana"]);
    assert!(!out.status.success());
    let out = secmms()
        .args([
            "server",
            "--listen",
            "127.0.0.1:1",
            "--model",
            "/nonexistent.cid",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent.cid"),
        "{out:?}"
    );
}

#[test]
fn bench_reports_json() {
    let (_server, addr) = start_our_server(&[]);
    let out = secmms()
        .args([
            "bench",
            "--connect",
            &addr,
            "--associations",
            "2",
            "--outstanding",
            "4",
            "--duration",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["associations"], 2);
    assert_eq!(r["outstanding"], 4);
    assert_eq!(r["effective_outstanding"], 4);
    assert_eq!(r["errors"], 0);
    assert!(r["requests"].as_u64().unwrap() > 0);
    assert!(r["p99_us"].as_u64().unwrap() >= r["p50_us"].as_u64().unwrap());
}

#[test]
fn pics_prints_tables_6_to_13_for_the_configuration() {
    let out = secmms()
        .args([
            "pics",
            "--mode",
            "native",
            "--encrypt",
            "cbc",
            "--tls",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables = p["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 8);
    assert!(p["configuration"].as_str().unwrap().contains("native"));
    let t9 = &tables[3]["rows"];
    assert_eq!(t9[1]["in_use"], true, "{t9}");
    let out = secmms().args(["pics"]).output().unwrap();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("## Table 6") && md.contains("## Table 13"),
        "{md}"
    );
    assert!(md.contains("XMPP"));
    // Static DH suites are marked unsupported.
    assert!(md.contains("**no**"));
}

/// Every "supported" answer comes from the configuration (and the build and library): the same
/// rows read no in a plain configuration and yes with TLS and native mode, and
/// `--require-encryption` takes the unencrypted mode away.
#[test]
fn pics_answers_change_with_the_configuration() {
    let row = |args: &[&str], table: u64, item: &str| -> String {
        let out = secmms()
            .arg("pics")
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let t = p["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["number"] == table)
            .unwrap();
        let r = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["item"].as_str().unwrap().starts_with(item))
            .unwrap_or_else(|| panic!("{t}"));
        r["support"].as_str().unwrap().to_string()
    };
    let suite = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256";
    assert_eq!(row(&[], 10, suite), "no");
    assert_eq!(row(&["--tls"], 10, suite), "yes");
    let clear = "Non-AE: no encryption";
    assert_eq!(row(&[], 9, clear), "no");
    assert_eq!(row(&["--mode", "native"], 9, clear), "yes");
    assert_eq!(
        row(
            &[
                "--mode",
                "native",
                "--encrypt",
                "gcm",
                "--require-encryption"
            ],
            9,
            clear
        ),
        "no"
    );
    assert_eq!(row(&["--mode", "compat"], 7, "Compatibility"), "yes");
    assert_eq!(row(&["--mode", "native"], 7, "Compatibility"), "no");
}
