//! Wireshark decodes our AARQ and AARE carrying MMS-Authentication-values with zero malformed
//! frames. Skipped when tshark/text2pcap are missing, unless `CI=true`.

mod common;

use common::*;
use secmms_profiles::{PeerPolicy, PeerTable};
use secmms_testkit::{tpkts, tshark_ready, Capture, TpktCheck};

#[test]
fn tshark_decodes_authenticated_aarq_and_aare() {
    if !tshark_ready("tshark missing in CI", "tshark not installed: skipped") {
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
        Box::new(server.responder(Default::default())),
    );
    assert_eq!(client.mnemonics(), vec!["AP_AUTHENTICATED"]);
    let capture = Capture::write(
        "secmms-profiles-tshark",
        &tpkts(&o.packets, TpktCheck::Strict),
        102,
    );
    let problems = capture.tshark().problems("_ws.malformed && !tcp.analysis");
    assert!(problems.trim().is_empty(), "malformed frames:\n{problems}");
    let detail = capture.tshark().run(&["-V"]);
    capture.remove();
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
