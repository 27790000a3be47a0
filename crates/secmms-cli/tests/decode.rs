//! `secmms decode`: exit status (0 / 1 / 2), standard input, JSON fields, filters, help.

#[path = "../../secmms-decode/tests/common/aprofile.rs"]
mod aprofile;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn secmms() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secmms"))
}

fn golden() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/open61850-client-to-iec61850-server.pcapng");
    secmms_testkit::ready_or_skip(
        p.exists(),
        "golden capture missing in CI",
        "golden capture not found: skipped",
    )
    .then_some(p)
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("secmms-decode-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn golden_capture_exit_0_and_json_fields() {
    let Some(g) = golden() else { return };
    let o = secmms()
        .args(["decode", "--json", "--quiet"])
        .arg(&g)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json_lines(&o);
    let pdus: Vec<_> = v.iter().filter(|x| x["type"] == "pdu").collect();
    assert!(pdus.len() > 1000);
    for p in &pdus {
        for f in [
            "frame",
            "stream",
            "direction",
            "layers",
            "service",
            "invoke_id",
            "objects",
            "verified",
        ] {
            assert!(p.get(f).is_some(), "field {f} missing in {p}");
        }
        assert!(p["layers"].is_array() && p["objects"].is_array());
        assert!(p["invoke_id"].is_null() || p["invoke_id"].is_u64());
        assert!(
            p["verified"].is_null(),
            "nothing to verify in a plain capture"
        );
    }
    let read = pdus.iter().find(|p| p["service"] == "read").unwrap();
    assert_eq!(
        read["layers"],
        serde_json::json!(["tpkt", "cotp", "ses", "pres", "mms"])
    );
}

#[test]
fn standard_input_gives_the_same_output_as_the_file() {
    let Some(g) = golden() else { return };
    let from_file = secmms()
        .args(["decode", "--quiet"])
        .arg(&g)
        .output()
        .unwrap();
    let mut child = secmms()
        .args(["decode", "--quiet", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&g).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let from_stdin = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(from_stdin.status.code(), Some(0));
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert!(!from_file.stdout.is_empty());
}

#[test]
fn filter_by_service_stream_and_object() {
    let Some(g) = golden() else { return };
    let o = secmms()
        .args([
            "decode",
            "--json",
            "--quiet",
            "--filter",
            "stream=0,service=read,object=NamPlt",
        ])
        .arg(&g)
        .output()
        .unwrap();
    let v = json_lines(&o);
    assert!(!v.is_empty());
    for p in &v {
        assert_eq!(
            (p["stream"].as_u64(), p["service"].as_str()),
            (Some(0), Some("read"))
        );
        assert!(p["objects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains("NamPlt")));
    }
    let bad = secmms()
        .args(["decode", "--filter", "colour=red"])
        .arg(&g)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn unreadable_file_exit_2() {
    let missing = secmms()
        .args(["decode", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let junk = tmp("junk.pcap", b"this is not a capture at all");
    let o = secmms().args(["decode"]).arg(&junk).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a pcap"));
    std::fs::remove_file(junk).ok();
}

#[test]
fn aprofile_value_verified_exit_0_flipped_signature_exit_1() {
    let good = tmp("aprofile-good.pcap", &aprofile::aarq_capture(|_| {}));
    let o = secmms()
        .args(["decode", "--json", "--quiet"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let aarq = json_lines(&o)
        .into_iter()
        .find(|p| p["pdu"] == "initiate-RequestPDU")
        .unwrap();
    assert_eq!(aarq["verified"], true);
    let bad = tmp(
        "aprofile-bad.pcap",
        &aprofile::aarq_capture(|v| {
            let last = v.signature.len() - 1;
            v.signature[last] ^= 0x80;
        }),
    );
    let o = secmms()
        .args(["decode", "--json", "--quiet"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let aarq = json_lines(&o)
        .into_iter()
        .find(|p| p["pdu"] == "initiate-RequestPDU")
        .unwrap();
    assert_eq!(aarq["verified"], false);
    assert_eq!(aarq["frame"], 4);
    std::fs::remove_file(good).ok();
    std::fs::remove_file(bad).ok();
}

#[test]
fn help_documents_the_json_fields_and_exit_status() {
    let o = secmms().args(["decode", "--help"]).output().unwrap();
    let h = String::from_utf8(o.stdout).unwrap();
    for w in [
        "invoke_id",
        "verified",
        "layers",
        "EXIT STATUS",
        "--filter",
        "-V",
        "TLS 1.2 from its CLIENT_RANDOM master secrets",
    ] {
        assert!(h.contains(w), "{w} not in --help");
    }
}
