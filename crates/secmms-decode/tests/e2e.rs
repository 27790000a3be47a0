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

// ------------------------------------------------------------------ with the E2E key log

/// A read request with invokeID `id` (the READ above).
fn read_req(id: u8) -> Vec<u8> {
    let mut v = hex(READ);
    v[4] = id;
    v
}

/// A read response with invokeID `id`: one boolean TRUE.
fn read_rsp(id: u8) -> Vec<u8> {
    vec![
        0xa1, 0x0a, 0x02, 0x01, id, 0xa4, 0x05, 0xa1, 0x03, 0x83, 0x01, 0xff,
    ]
}

/// An association with two rekeys, both ends exporting their keys.
struct Keyed {
    file: Vec<u8>,
    /// The client's key-log lines.
    client_log: String,
    /// The server's key-log lines.
    server_log: String,
    /// (to server, MMS PDU) of every transfer, in capture order.
    sent: Vec<(bool, Vec<u8>)>,
}

/// The transfers of a keyed capture: (client sends, invokeID, the client starts a rekey first).
/// Rekey 1: request 3 carries the client's new DH value; request 4 crosses the server's
/// changedKey answer on the wire (old keys); then everything uses generation 1. Rekey 2 the
/// same with requests 6 and 7.
const SCRIPT: &[(bool, u8, bool)] = &[
    (true, 2, false),
    (false, 2, false),
    (true, 3, true),
    (true, 4, false),
    (false, 3, false),
    (false, 4, false),
    (true, 5, false),
    (false, 5, false),
    (true, 6, true),
    (false, 6, false),
    (true, 7, false),
    (false, 7, false),
];

fn keyed_capture(offer: secmms_e2e::ModeOffer, tamper: Option<usize>) -> Keyed {
    use secmms_e2e::{Context, E2eConfig};
    use std::sync::Arc;
    let now = TimeStamp::from_unix_secs(NOW);
    let (cc, sc) = demo_contexts();
    let cc = Context {
        config: Arc::new(E2eConfig {
            offer,
            ..(*cc.config).clone()
        }),
        ..cc
    };
    let mut client = E2eClient::new(cc, Box::new(OsRandom), 1);
    let mut server = E2eServer::new(sc, Box::new(OsRandom), 1);
    client.export_keys();
    server.export_keys();
    let req = client.handshake_req(Some(&hex(INITIATE_REQ)), now).unwrap();
    server.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
    let acc = server.accept(Some(&hex(INITIATE_RSP)), now).unwrap();
    client.receive(SecPduKind::HandshakeAcc, &acc, now).unwrap();
    // Protect everything first (the crossing PDUs are sent before the other side reads).
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    let mut pending_to_server: Vec<(SecPduKind, Vec<u8>)> = Vec::new();
    let mut pending_to_client: Vec<(SecPduKind, Vec<u8>)> = Vec::new();
    for &(to_server, id, rekey) in SCRIPT {
        let t = now.plus_ms(i64::from(id));
        if to_server {
            // Deliver what the server sent before, then send.
            for (k, b) in pending_to_client.drain(..) {
                assert!(matches!(client.receive(k, &b, t), Ok(Output::Data(_))));
            }
            if rekey {
                client.start_rekey();
            }
            let pdu = read_req(id);
            let (k, b) = client.protect(&pdu, t).unwrap();
            pending_to_server.push((k, b.clone()));
            wire.push((true, b));
            sent.push((true, pdu));
        } else {
            for (k, b) in pending_to_server.drain(..) {
                assert!(matches!(server.receive(k, &b, t), Ok(Output::Data(_))));
            }
            let pdu = read_rsp(id);
            let (k, b) = server.protect(&pdu, t).unwrap();
            pending_to_client.push((k, b.clone()));
            wire.push((false, b));
            sent.push((false, pdu));
        }
    }
    let end = now.plus_ms(100);
    for (k, b) in pending_to_client.drain(..) {
        assert!(matches!(client.receive(k, &b, end), Ok(Output::Data(_))));
    }
    let lines = |it: &mut dyn FnMut() -> Option<secmms_e2e::keylog::KeyMaterial>| {
        let mut v: Vec<String> = std::iter::from_fn(it)
            .map(|m| m.line().to_string())
            .collect();
        v.sort();
        v.join("\n") + "\n"
    };
    let client_log = lines(&mut || client.poll_key_material());
    let server_log = lines(&mut || server.poll_key_material());
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event())
        .filter(|e| e.mnemonic == "E2E_KEYLOG_ACTIVE")
        .collect();
    assert_eq!(events.len(), 3, "a warning per key generation");

    let mut file = native_file(req, acc);
    let mut flow = file.1;
    for (i, (to_server, b)) in wire.into_iter().enumerate() {
        let mut b = b;
        if tamper == Some(i) {
            let mid = b.len() / 2;
            b[mid] ^= 0x01;
        }
        flow.send(&mut file.0, to_server, &session_data(E2E_PCID, b))
            .unwrap();
    }
    Keyed {
        file: file.0.bytes().to_vec(),
        client_log,
        server_log,
        sent,
    }
}

/// The association set-up of a native capture (CR/CC left out): the file and its flow.
fn native_file(req: Vec<u8>, acc: Vec<u8>) -> (PcapFile, TcpFlow) {
    let ac = secmms_ber::Oid::new(secmms_profiles::native::DEFAULT_E2E_MMS_AC).unwrap();
    let mut aarq = Aarq::new(ac.clone());
    aarq.user_information = wire::external(
        E2E_PCID,
        wire::encode(EnvApdu::Aarq, SecPduKind::HandshakeReq, req).unwrap(),
    );
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
    let session = |user_data| ConnectAccept {
        version: Some(2),
        user_requirements: Some(2),
        user_data: Some(user_data),
        ..Default::default()
    };
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 7, 0, 1), 52001),
        (Ipv4Addr::new(10, 7, 0, 2), 102),
        NOW as u64 * 1_000_000_000,
    );
    flow.handshake(&mut file).unwrap();
    let cn = Spdu::Connect(session(cp.encode())).encode().unwrap();
    let ac = Spdu::Accept(session(cpa.encode())).encode().unwrap();
    flow.send(&mut file, true, &dt(cn)).unwrap();
    flow.send(&mut file, false, &dt(ac)).unwrap();
    (file, flow)
}

fn keyed_records(file: Vec<u8>, keys: Option<&str>) -> (Vec<PduRecord>, Vec<u8>) {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false).with_plain_export();
    if let Some(k) = keys {
        d = d.with_e2e_keylog(secmms_decode::e2e::E2eKeyLog::parse(k).unwrap());
    }
    let mut items = Vec::new();
    let mut plain = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
        plain.extend(d.take_plain());
    }
    d.finish(&mut items);
    plain.extend(d.take_plain());
    let pdus = items
        .into_iter()
        .filter_map(|i| if let Item::Pdu(p) = i { Some(*p) } else { None })
        .collect();
    (pdus, plain)
}

fn offers() -> Vec<(&'static str, secmms_e2e::ModeOffer)> {
    use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
    use secmms_e2e::ModeOffer;
    vec![
        ("aes128-gcm", ModeOffer::Ae(vec![AeAlg::Aes128Gcm])),
        ("aes256-gcm", ModeOffer::Ae(vec![AeAlg::Aes256Gcm])),
        (
            "aes128-cbc+hmac-sha256",
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes128Cbc],
                icv: vec![IcvAlg::HmacSha256],
            },
        ),
        (
            "aes256-cbc+gmac256",
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes256Cbc],
                icv: vec![IcvAlg::Gmac256],
            },
        ),
        (
            "hmac-sha256",
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::HmacSha256],
            },
        ),
        (
            "gmac128",
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::Gmac128],
            },
        ),
    ]
}

#[test]
fn every_transfer_verified_and_decrypted_across_two_rekeys_in_every_mode() {
    for (name, offer) in offers() {
        let k = keyed_capture(offer, None);
        assert_eq!(
            k.client_log, k.server_log,
            "{name}: both ends log the same keys"
        );
        let gens: Vec<&str> = k
            .client_log
            .lines()
            .map(|l| l.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(gens, ["0", "1", "2"], "{name}");
        assert!(k
            .client_log
            .lines()
            .all(|l| l.split(' ').nth(3) == Some(name)));
        let (r, plain) = keyed_records(k.file.clone(), Some(&k.client_log));
        assert_eq!(r[0].verified, Some(true), "{name} {:?}", r[0].problems);
        assert_eq!(r[1].verified, Some(true), "{name} {:?}", r[1].problems);
        let transfers = &r[2..];
        assert_eq!(transfers.len(), SCRIPT.len(), "{name}");
        let mut generations = Vec::new();
        for (t, (to_server, pdu)) in transfers.iter().zip(&k.sent) {
            assert!(t.problems.is_empty(), "{name}: {t:#?}");
            assert_eq!(t.verified, Some(true), "{name}: {t:#?}");
            assert_eq!(t.direction, if *to_server { "c>s" } else { "s>c" });
            assert_eq!(t.invoke_id, Some(u32::from(pdu[4])), "{name}");
            assert_eq!(t.service.as_deref(), Some("read"));
            if *to_server {
                assert_eq!(t.objects, vec!["DEMOLD0/GGIO1$MX$AnIn1$mag$f"]);
            }
            let g = t
                .notes
                .iter()
                .find_map(|n| n.split("generation ").nth(1))
                .unwrap_or_else(|| panic!("{name}: {:?}", t.notes));
            generations.push(g.trim_end_matches(')').to_string());
            // The plaintext export carries the MMS PDU as it was sent.
            assert!(
                plain.windows(pdu.len()).any(|w| w == &pdu[..]),
                "{name}: PDU {} not in the export",
                pdu[4]
            );
        }
        // Request 3 (rekey) and 4 (crossing changedKey) under the old keys, the server's
        // answers under the new ones.
        assert_eq!(
            generations,
            ["0", "0", "0", "0", "1", "1", "1", "1", "1", "2", "2", "2"],
            "{name}"
        );
        // The export decodes as plain MMS: the same services and invokeIDs, no E2E left.
        let (again, _) = keyed_records(plain, None);
        let mms: Vec<_> = again
            .iter()
            .filter(|p| p.layers.last() == Some(&"mms") && !p.layers.contains(&"e2e"))
            .map(|p| p.invoke_id)
            .collect();
        let ours: Vec<_> = transfers.iter().map(|p| p.invoke_id).collect();
        assert_eq!(mms, ours, "{name}");
    }
}

#[test]
fn without_the_key_log_nothing_is_claimed() {
    let (_, offer) = offers().remove(0);
    let k = keyed_capture(offer, None);
    let (r, _) = keyed_records(k.file, None);
    for t in &r[2..] {
        assert_eq!(t.verified, None);
        assert!(t.problems.is_empty());
        assert!(
            t.notes.iter().any(|n| n.contains("not decrypted")),
            "{t:#?}"
        );
    }
    // A key log without this association: said so, still not claimed.
    let other = keyed_capture(offers().remove(0).1, None);
    let (r, _) = keyed_records(k_file(&other), Some(&k.client_log));
    for t in &r[2..] {
        assert_eq!(t.verified, None);
        assert!(
            t.notes.iter().any(|n| n.contains("no E2E key-log line")),
            "{t:#?}"
        );
    }
}

fn k_file(k: &Keyed) -> Vec<u8> {
    k.file.clone()
}

#[test]
fn a_wrong_key_or_a_flipped_byte_fails_at_its_pdu() {
    for (name, offer) in offers() {
        // The keys of generation 1 altered: exactly the PDUs under them fail.
        let k = keyed_capture(offer.clone(), None);
        let bad: String = k
            .client_log
            .lines()
            .map(|l| {
                let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
                if f[2] == "1" {
                    for x in f.iter_mut().skip(4).filter(|x| *x != "-") {
                        let last = x.pop().unwrap();
                        x.push(if last == '0' { '1' } else { '0' });
                    }
                }
                f.join(" ") + "\n"
            })
            .collect();
        let (r, _) = keyed_records(k.file.clone(), Some(&bad));
        let verdicts: Vec<_> = r[2..].iter().map(|t| t.verified).collect();
        let (t, f) = (Some(true), Some(false));
        assert_eq!(
            verdicts,
            [t, t, t, t, f, f, f, f, f, t, t, t],
            "{name}: generation 2 is announced by a PDU under generation 1"
        );
        assert!(
            r[6].problems[0].contains("does not verify"),
            "{:?}",
            r[6].problems
        );
        // One flipped octet in the fifth transfer: that PDU fails, the others verify.
        let k = keyed_capture(offer, Some(4));
        let (r, _) = keyed_records(k.file.clone(), Some(&k.client_log));
        for (i, t) in r[2..].iter().enumerate() {
            assert_eq!(t.verified, Some(i != 4), "{name} transfer {i}: {t:#?}");
        }
    }
}
