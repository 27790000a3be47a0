//! A native-mode (clause 15) association made by the secmms E2E engine, written as a capture:
//! HandshakeReq in the AARQ, HandshakeAcc in the AARE, protected MMS in P-DATA. The decoder
//! shows the SecPDUs and the MMS inside them and verifies both handshake signatures; a flipped
//! signature byte is reported at its PDU.

use std::io::Cursor;
use std::net::Ipv4Addr;

use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::{Item, PduRecord};
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;
use secmms_e2e::doc_support::demo_contexts;
use secmms_e2e::{E2eClient, E2eServer, Output, SecPduKind, TimeStamp};
use secmms_osi::acse::{Aare, Aarq, Apdu, SourceDiagnostic};
use secmms_osi::cotp::{DataTpdu, Tpdu};
use secmms_osi::presentation::{oids, ContextDefinition, ContextResult, CpType, CpaPpdu, UserData};
use secmms_osi::session::{ConnectAccept, Spdu};
use secmms_pki::crypto::OsRandom;
use secmms_profiles::native::wire::{self, EnvApdu};

const NOW: i64 = 1_800_000_000;
const E2E_PCID: u32 = 5;
const INITIATE_REQ: &str =
    "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18";
const INITIATE_RSP: &str =
    "a926800300fde881010582010583010aa416800101810305f100820c036e1c000000000000400110";
/// read DEMOLD0/GGIO1$MX$AnIn1$mag$f, invokeID 2 (the golden capture, frame 12).
const READ: &str = "a02e020102a429a127a0253023a021a11f1a0744454d4f4c44301a144747494f31244d5824416e496e31246d61672466";

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn e2e_oid() -> secmms_ber::Oid {
    secmms_ber::Oid::new(secmms_profiles::native::DEFAULT_E2E_SECURITY_AS).unwrap()
}

fn dt(spdu: Vec<u8>) -> Vec<u8> {
    let t = Tpdu::Dt(DataTpdu {
        eot: true,
        data: spdu,
    });
    secmms_osi::tpkt::encode(&t.encode().unwrap()).unwrap()
}

fn session_data(ctx: u32, value: Vec<u8>) -> Vec<u8> {
    let mut s = vec![0x01, 0x00, 0x01, 0x00];
    s.extend(UserData::single(ctx, value).encode());
    dt(s)
}

/// The capture; `tamper` may change the HandshakeReq octets (as the AARQ carries them).
fn native_capture(tamper: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let now = TimeStamp::from_unix_secs(NOW);
    let (cc, sc) = demo_contexts();
    let mut client = E2eClient::new(cc, Box::new(OsRandom), 1);
    let mut server = E2eServer::new(sc, Box::new(OsRandom), 1);
    let req = client.handshake_req(Some(&hex(INITIATE_REQ)), now).unwrap();
    let out = server.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
    assert!(matches!(out, Output::HandshakeRequested { .. }));
    let acc = server.accept(Some(&hex(INITIATE_RSP)), now).unwrap();
    client.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
    let (kind, transfer) = client.protect(&hex(READ), now).unwrap();
    assert!(matches!(
        kind,
        SecPduKind::ClearTransfer | SecPduKind::EncrTransfer
    ));

    let ac = secmms_ber::Oid::new(secmms_profiles::native::DEFAULT_E2E_MMS_AC).unwrap();
    let mut req_value = wire::encode(EnvApdu::Aarq, SecPduKind::HandshakeReq, req).unwrap();
    tamper(&mut req_value);
    let mut aarq = Aarq::new(ac.clone());
    aarq.user_information = wire::external(E2E_PCID, req_value);
    let ctx = |id, abstract_syntax| ContextDefinition {
        id,
        abstract_syntax,
        transfer_syntaxes: vec![oids::ber()],
    };
    let cp = CpType {
        calling_psel: Some(vec![0, 0, 0, 1]),
        called_psel: Some(vec![0, 0, 0, 1]),
        context_definitions: vec![
            ctx(1, oids::acse_as()),
            ctx(3, oids::mms_as()),
            ctx(E2E_PCID, e2e_oid()),
        ],
        user_data: Some(UserData::single(1, Apdu::Aarq(aarq).encode())),
        ..Default::default()
    };
    let mut aare = Aare::new(ac, 0, SourceDiagnostic::ServiceUser(0));
    aare.user_information = wire::external(
        E2E_PCID,
        wire::encode(EnvApdu::Aare, SecPduKind::HandshakeAcc, acc).unwrap(),
    );
    let accepted = ContextResult {
        result: 0,
        transfer_syntax: Some(oids::ber()),
        provider_reason: None,
    };
    let cpa = CpaPpdu {
        responding_psel: Some(vec![0, 0, 0, 1]),
        results: vec![accepted.clone(), accepted.clone(), accepted],
        user_data: Some(UserData::single(1, Apdu::Aare(aare).encode())),
        ..Default::default()
    };
    let cn = Spdu::Connect(ConnectAccept {
        version: Some(2),
        user_requirements: Some(2),
        user_data: Some(cp.encode()),
        ..Default::default()
    });
    let ac_spdu = Spdu::Accept(ConnectAccept {
        version: Some(2),
        user_requirements: Some(2),
        user_data: Some(cpa.encode()),
        ..Default::default()
    });
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 7, 0, 1), 52000),
        (Ipv4Addr::new(10, 7, 0, 2), 102),
        NOW as u64 * 1_000_000_000,
    );
    flow.handshake(&mut file).unwrap();
    flow.send(&mut file, true, &dt(cn.encode().unwrap()))
        .unwrap();
    flow.send(&mut file, false, &dt(ac_spdu.encode().unwrap()))
        .unwrap();
    flow.send(&mut file, true, &session_data(E2E_PCID, transfer))
        .unwrap();
    file.bytes().to_vec()
}

fn records(file: Vec<u8>) -> Vec<PduRecord> {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    let mut items = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
    }
    d.finish(&mut items);
    items
        .into_iter()
        .filter_map(|i| if let Item::Pdu(p) = i { Some(*p) } else { None })
        .collect()
}

#[test]
fn native_association_is_shown_and_handshakes_verified() {
    let r = records(native_capture(|_| {}));
    assert_eq!(r.len(), 3, "{r:#?}");
    assert_eq!(r[0].pdu, "HandshakeReq/initiate-RequestPDU");
    assert_eq!(
        r[0].layers,
        vec!["tpkt", "cotp", "ses", "pres", "acse", "e2e", "mms"]
    );
    assert_eq!(r[0].verified, Some(true), "{:?}", r[0].problems);
    assert_eq!(r[1].pdu, "HandshakeAcc/initiate-ResponsePDU");
    assert_eq!(r[1].verified, Some(true), "{:?}", r[1].problems);
    assert_eq!(r[1].result.as_deref(), Some("accepted"));
    // The transfer: structure shown; what needs the keys is said, not claimed.
    assert!(r[2].layers.contains(&"e2e"));
    assert!(r[2].problems.is_empty(), "{:?}", r[2].problems);
    assert_eq!(r[2].verified, None);
    if r[2].pdu.starts_with("ClearTransfer") {
        assert_eq!(r[2].pdu, "ClearTransfer/confirmed-RequestPDU");
        assert_eq!(
            (r[2].service.as_deref(), r[2].invoke_id),
            (Some("read"), Some(2))
        );
        assert!(r[2].notes.iter().any(|n| n.contains("ICV not checked")));
    } else {
        assert_eq!(r[2].pdu, "EncrTransfer");
        assert!(r[2].notes.iter().any(|n| n.contains("not decrypted")));
    }
}

#[test]
fn flipped_handshake_signature_byte_is_reported() {
    let r = records(native_capture(|v| {
        let last = v.len() - 1;
        v[last] ^= 0x01;
    }));
    assert_eq!(r[0].verified, Some(false));
    assert!(
        r[0].problems.iter().any(|p| p.contains("HandshakeReq")),
        "{:?}",
        r[0].problems
    );
    assert_eq!(r[1].verified, Some(true));
}
