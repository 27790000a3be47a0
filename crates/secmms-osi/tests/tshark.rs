//! Checks our encodings with Wireshark's dissectors (reference §13): a complete association
//! (CR, CC, CN with PGI 194 and a segmented > 512-octet AARQ, AC, P-DATA both ways, FN/RLRQ,
//! DN/RLRE) and an abort are written to a pcap with `text2pcap` and decoded by `tshark`; no
//! malformed packet or expert warning may appear. Skipped when tshark is missing, unless
//! `CI=true`.

use secmms_osi::acse::{Aarq, AuthenticationValue};
use secmms_osi::security::{AbortRequest, AssociationSecurity, Role, SecurityContext};
use secmms_osi::{Association, OsiConfig, OsiEvent};
use secmms_testkit::{tpkts, tshark_ready, Capture, TpktCheck};

/// A password large enough to push the AARQ over 512 octets (PGI 194, several DTs).
struct BigPassword;
impl AssociationSecurity for BigPassword {
    fn decorate_aarq(
        &mut self,
        _: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        aarq.sender_acse_requirements = Some(secmms_osi::acse::requirements_authentication());
        aarq.mechanism_name = Some("2.2.3.1".parse().unwrap());
        aarq.calling_authentication_value = Some(AuthenticationValue::Charstring(vec![b'x'; 3000]));
        Ok(())
    }
}

/// MMS initiate-Request / -Response from the capture (reference §6.4/§6.5 shape).
const INIT_REQ: &str =
    "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18";
const INIT_RSP: &str =
    "a926800300fde881010582010583010aa416800101810305f100820c036e1c000000000000400110";
const READ_REQ: &str = "a02f020101a42aa128a0263024a022a1201a0744454d4f4c44301a154c4c4e30244443244e616d506c742476656e646f72";
const READ_RSP: &str = "a10f020101a40aa1088a067365636d6d73";

fn transcript() -> Vec<(bool, Vec<u8>)> {
    let h = |s: &str| hex::decode(s).unwrap();
    let mut out = Vec::new();
    let mut c =
        Association::with_security(Role::Initiator, OsiConfig::default(), Box::new(BigPassword));
    let mut s = Association::responder(OsiConfig::server_default());
    let mut step = |from_client: bool, a: &mut Association, b: &mut Association| {
        while let Some(bytes) = a.poll_transmit() {
            b.handle_input(&bytes).unwrap();
            out.push((from_client, bytes));
        }
    };
    c.connect(h(INIT_REQ)).unwrap();
    step(true, &mut c, &mut s);
    step(false, &mut s, &mut c);
    step(true, &mut c, &mut s);
    assert!(matches!(
        s.poll_event(),
        Some(OsiEvent::AssociateIndication { .. })
    ));
    s.accept(h(INIT_RSP)).unwrap();
    step(false, &mut s, &mut c);
    c.send_data(&h(READ_REQ)).unwrap();
    step(true, &mut c, &mut s);
    s.send_data(&h(READ_RSP)).unwrap();
    step(false, &mut s, &mut c);
    c.send_data(&[0x8B, 0x00]).unwrap();
    step(true, &mut c, &mut s);
    s.send_data(&[0x8C, 0x00]).unwrap();
    step(false, &mut s, &mut c);
    c.release(None).unwrap();
    step(true, &mut c, &mut s);
    while s.poll_event().is_some() {}
    s.release_response(None).unwrap();
    step(false, &mut s, &mut c);
    out
}

fn check(name: &str, packets: &[(bool, Vec<u8>)], needles: &[&str]) {
    if !tshark_ready("tshark missing in CI", "tshark not installed: skipped") {
        return;
    }
    // One TCP segment per TPKT keeps segments small (≤ 2052 octets).
    let capture = Capture::write(
        &format!("secmms-osi-tshark-{name}"),
        &tpkts(packets, TpktCheck::Strict),
        102,
    );
    let problems = capture
        .tshark()
        .problems("(_ws.malformed || _ws.expert.severity >= warning) && !tcp.analysis");
    assert!(
        problems.trim().is_empty(),
        "tshark reports problems:\n{problems}"
    );
    let summary = capture.tshark().run(&[]);
    eprintln!("{summary}");
    capture.remove();
    for needle in needles {
        assert!(summary.contains(needle), "{needle} not decoded:\n{summary}");
    }
}

#[test]
fn tshark_decodes_full_association_cleanly() {
    let t = transcript();
    // The CN (first client TSDU after the CR) carries the CP-type in PGI 194 with a long LI.
    assert!(t[2].1.windows(2).any(|w| w == [0xC2, 0xFF]));
    check(
        "assoc",
        &t,
        &[
            "CR TPDU",
            "CC TPDU",
            "initiate-RequestPDU",
            "initiate-ResponsePDU",
            "confirmed-RequestPDU",
            "confirmed-ResponsePDU",
            "Release-Request",
            "Release-Response",
        ],
    );
}

/// A fresh client and server with the client's INIT_REQ connect carried as far as the CN: the
/// pair, and the CR, CC and CN exchanged on the way (true = client to server).
fn connected() -> (Association, Association, Vec<(bool, Vec<u8>)>) {
    let mut c = Association::initiator(OsiConfig::default());
    let mut s = Association::responder(OsiConfig::server_default());
    let mut pk = Vec::new();
    c.connect(hex::decode(INIT_REQ).unwrap()).unwrap();
    for from_client in [true, false, true] {
        let (a, b) = if from_client {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        let bytes = a.poll_transmit().unwrap();
        b.handle_input(&bytes).unwrap();
        pk.push((from_client, bytes));
    }
    (c, s, pk)
}

#[test]
fn tshark_decodes_abort_cleanly() {
    let (mut c, mut s, mut pk) = connected();
    s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
    let bytes = s.poll_transmit().unwrap();
    c.handle_input(&bytes).unwrap();
    pk.push((false, bytes));
    c.abort().unwrap();
    pk.push((true, c.poll_transmit().unwrap()));
    check("abort", &pk, &["initiate-ResponsePDU", "Abort"]);
}

#[test]
fn tshark_decodes_refusal_and_provider_abort_cleanly() {
    use secmms_osi::acse::{associate_result, user_diagnostic, SourceDiagnostic};
    let (_c, mut s, mut pk) = connected();
    s.reject(
        associate_result::REJECTED_PERMANENT,
        SourceDiagnostic::ServiceUser(user_diagnostic::AUTHENTICATION_FAILURE),
        None,
    )
    .unwrap();
    pk.push((false, s.poll_transmit().unwrap()));
    check("refuse", &pk, &["initiate-RequestPDU"]);

    // A responder answering a bad P-DATA with AB + ARP.
    let (_c, mut s, mut pk) = connected();
    s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
    pk.push((false, s.poll_transmit().unwrap()));
    s.handle_input(&hex::decode("0300000d02f080010001003003020101").unwrap())
        .unwrap();
    pk.push((false, s.poll_transmit().unwrap()));
    check("arp", &pk, &["initiate-ResponsePDU"]);
}
