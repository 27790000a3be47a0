//! Wireshark decodes our AARQ and AARE carrying MMS-Authentication-values with zero malformed
//! frames. Skipped when tshark/text2pcap are missing, unless `CI=true`.

mod common;

use std::io::Write;
use std::process::Command;

use common::*;
use secmms_profiles::{PeerPolicy, PeerTable};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-v").output().is_ok()
}

#[test]
fn tshark_decodes_authenticated_aarq_and_aare() {
    if !(have("tshark") && have("text2pcap")) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tshark missing in CI"
        );
        eprintln!("tshark not installed: skipped");
        return;
    }
    let ca = Ca::new("Root");
    let client = Side::new(
        ca.valid(client_identity(), 1),
        validator(&ca),
        PeerTable::require_a_profile(),
    );
    let server = Side::new(
        ca.valid(server_identity(), 2),
        validator(&ca),
        PeerTable::require_a_profile(),
    );
    let o = run(
        client_osi(&client, false),
        Box::new(client_hook(&client, PeerPolicy::any("server"))),
        server_osi(&server),
        Box::new(server.shared.responder(Default::default())),
    );
    assert_eq!(client.mnemonics(), vec!["AP_AUTHENTICATED"]);
    let dir = std::env::temp_dir().join(format!("secmms-profiles-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let txt = dir.join("flow.txt");
    let pcap = dir.join("flow.pcap");
    let mut f = std::fs::File::create(&txt).unwrap();
    for (from_client, bytes) in &o.packets {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = ((rest[2] as usize) << 8) | rest[3] as usize;
            let (pkt, tail) = rest.split_at(len);
            rest = tail;
            writeln!(f, "{}", if *from_client { "I" } else { "O" }).unwrap();
            for (i, chunk) in pkt.chunks(16).enumerate() {
                write!(f, "{:06x}", i * 16).unwrap();
                for b in chunk {
                    write!(f, " {b:02x}").unwrap();
                }
                writeln!(f).unwrap();
            }
            writeln!(f).unwrap();
        }
    }
    drop(f);
    let st = Command::new("text2pcap")
        .args(["-q", "-D", "-4", "10.0.0.1,10.0.0.2", "-T", "50000,102"])
        .arg(&txt)
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-Y",
            "_ws.malformed && !tcp.analysis",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ])
        .output()
        .unwrap();
    let problems = String::from_utf8_lossy(&out.stdout);
    assert!(problems.trim().is_empty(), "malformed frames:\n{problems}");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .arg("-V")
        .output()
        .unwrap();
    let detail = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = std::fs::remove_dir_all(&dir);
    for needle in [
        "initiate-RequestPDU",
        "initiate-ResponsePDU",
        "1.0.840.0.1.0.1.1",
        "calling-authentication-value",
        "responding-authentication-value",
    ] {
        assert!(detail.contains(needle), "{needle} not decoded");
    }
}
