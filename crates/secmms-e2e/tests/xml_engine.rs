//! The engine over the XML encoding (clause 16): handshake, data both ways and release in every
//! protection mode, key refresh, rejects and aborts, and tampering, which must be rejected with
//! the same events and diagnostics as on the BER path.

mod common;

use common::*;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer, WireEncoding};
use secmms_e2e::doc_support::KeyType;
use secmms_e2e::limits::XmlLimits;
use secmms_e2e::pdu::{ClearToken1, Handshake, SecPdu, SecPduKind, Token3Body};
use secmms_e2e::{xml, Diagnostic, E2eError, Output, ProtectionMode, Rejection, State};

const PR: &[u8] = &[0xa0, 0x05, 0x02, 0x01, 0x01, 0xa4, 0x00];

fn with(enc: WireEncoding, offer: ModeOffer) -> E2eConfig {
    E2eConfig {
        offer,
        encoding: enc,
        ..E2eConfig::default()
    }
}

fn xml_cfg(offer: ModeOffer) -> E2eConfig {
    with(WireEncoding::Xml, offer)
}

fn ae() -> ModeOffer {
    ModeOffer::Ae(vec![AeAlg::Aes128Gcm])
}
fn cbc_hmac() -> ModeOffer {
    ModeOffer::NonAe {
        encr: vec![EncrAlg::Aes128Cbc],
        icv: vec![IcvAlg::HmacSha256],
    }
}
fn hmac_only() -> ModeOffer {
    ModeOffer::NonAe {
        encr: vec![],
        icv: vec![IcvAlg::HmacSha256],
    }
}

fn all_modes() -> Vec<(ModeOffer, ProtectionMode)> {
    vec![
        (ae(), ProtectionMode::Ae(AeAlg::Aes128Gcm)),
        (
            ModeOffer::Ae(vec![AeAlg::Aes256Gcm]),
            ProtectionMode::Ae(AeAlg::Aes256Gcm),
        ),
        (
            hmac_only(),
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::HmacSha256,
            },
        ),
        (
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::Gmac128],
            },
            ProtectionMode::NonAe {
                encr: None,
                icv: IcvAlg::Gmac128,
            },
        ),
        (
            cbc_hmac(),
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes128Cbc),
                icv: IcvAlg::HmacSha256,
            },
        ),
        (
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes256Cbc],
                icv: vec![IcvAlg::Gmac256],
            },
            ProtectionMode::NonAe {
                encr: Some(EncrAlg::Aes256Cbc),
                icv: IcvAlg::Gmac256,
            },
        ),
    ]
}

fn xml_pair(offer: ModeOffer, seed: u64) -> Pair {
    pair_with(
        xml_cfg(offer),
        xml_cfg(ModeOffer::Ae(vec![])),
        KeyType::P256,
        KeyType::P256,
        seed,
    )
}

fn decode_xml(kind: SecPduKind, b: &[u8]) -> SecPdu {
    xml::decode_octets(kind, b, &XmlLimits::default()).unwrap()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// Sends one PrPDU each way and checks delivery.
fn both_ways(p: &mut Pair, n: usize, t0: secmms_e2e::TimeStamp) {
    for i in 0..n {
        let now = t0.plus_ms(i as i64 / 2);
        let mut pr = PR.to_vec();
        pr[4] = i as u8;
        let (k, b) = p.client.protect(&pr, now).unwrap();
        assert!(text(&b).starts_with(&format!("<{} xmlns=", xml::element_name(k))));
        assert_eq!(
            p.server.receive(k, &b, now).unwrap(),
            Output::Data(pr.clone())
        );
        let (k, b) = p.server.protect(&pr, now).unwrap();
        assert_eq!(
            p.client.receive(k, &b, now).unwrap(),
            Output::Data(pr.clone())
        );
    }
}

#[test]
fn every_protection_mode_handshake_data_release() {
    for (i, (offer, expect)) in all_modes().into_iter().enumerate() {
        let mut p = xml_pair(offer, 500 + i as u64);
        let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
        assert!(text(&req).starts_with(
            "<HandshakeReq xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><pp>IEC61850-8-1</pp><tbs>"
        ));
        match p
            .server
            .receive(SecPduKind::HandshakeReq, &req, NOW)
            .unwrap()
        {
            Output::HandshakeRequested { appl_data, .. } => {
                assert_eq!(appl_data.as_deref(), Some(INIT_REQ))
            }
            o => panic!("{o:?}"),
        }
        let acc = p.server.accept(Some(INIT_RSP), NOW).unwrap();
        assert_eq!(
            p.client
                .receive(SecPduKind::HandshakeAcc, &acc, NOW)
                .unwrap(),
            Output::Established {
                appl_data: Some(INIT_RSP.to_vec())
            }
        );
        assert_eq!(p.client.protection(), Some(expect));
        assert_eq!(p.server.protection(), Some(expect));
        // The transfer kind and its Authenticator follow the mode.
        let (k, b) = p.client.protect(PR, NOW).unwrap();
        let t = match decode_xml(k, &b) {
            SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => t,
            o => panic!("{o:?}"),
        };
        assert_eq!(k == SecPduKind::EncrTransfer, expect.encrypted());
        assert_eq!(t.auth.is_some(), !matches!(expect, ProtectionMode::Ae(_)));
        if expect.encrypted() {
            assert_ne!(t.appl_data, PR, "applData must be ciphertext");
        } else {
            assert_eq!(t.appl_data, PR);
        }
        assert_eq!(
            p.server.receive(k, &b, NOW).unwrap(),
            Output::Data(PR.to_vec())
        );
        both_ways(&mut p, 4, NOW.plus_ms(1));
        // Release, client first, carrying Conclude-Request/Response.
        let r = p
            .client
            .release_req(Some(&[0x8b, 0x00]), NOW.plus_ms(5))
            .unwrap();
        assert!(text(&r).starts_with("<ReleaseReq "));
        assert_eq!(
            p.server
                .receive(SecPduKind::ReleaseReq, &r, NOW.plus_ms(5))
                .unwrap(),
            Output::ReleaseRequested {
                appl_data: Some(vec![0x8b, 0x00])
            }
        );
        let r = p
            .server
            .release_rsp(Some(&[0x8c, 0x00]), NOW.plus_ms(5))
            .unwrap();
        assert_eq!(
            p.client
                .receive(SecPduKind::ReleaseRsp, &r, NOW.plus_ms(5))
                .unwrap(),
            Output::Released {
                appl_data: Some(vec![0x8c, 0x00])
            }
        );
        assert_eq!(p.client.state(), State::Closed);
        assert_eq!(p.server.state(), State::Closed);
    }
}

#[test]
fn server_initiated_release() {
    let mut p = xml_pair(hmac_only(), 40);
    establish(&mut p, NOW);
    let r = p.server.release_req(None, NOW).unwrap();
    p.client.receive(SecPduKind::ReleaseReq, &r, NOW).unwrap();
    let r = p.client.release_rsp(None, NOW).unwrap();
    assert_eq!(
        p.server.receive(SecPduKind::ReleaseRsp, &r, NOW).unwrap(),
        Output::Released { appl_data: None }
    );
}

#[test]
fn rekey_in_xml_mode() {
    for offer in [ae(), cbc_hmac(), hmac_only()] {
        let mut p = xml_pair(offer, 41);
        establish(&mut p, NOW);
        both_ways(&mut p, 2, NOW);
        // Client-initiated: the next client PDU carries <rekey>.
        p.client.start_rekey();
        let t = NOW.plus_ms(10);
        let (k, b) = p.client.protect(PR, t).unwrap();
        assert!(text(&b).contains("<rekey>"));
        assert_eq!(
            p.server.receive(k, &b, t).unwrap(),
            Output::Data(PR.to_vec())
        );
        let (k, b) = p.server.protect(PR, t).unwrap();
        assert!(text(&b).contains("<changedKey>true</changedKey>"));
        assert_eq!(
            p.client.receive(k, &b, t).unwrap(),
            Output::Data(PR.to_vec())
        );
        both_ways(&mut p, 2, t.plus_ms(1));
        // Server-requested.
        p.server.request_rekey();
        let t = NOW.plus_ms(20);
        let (k, b) = p.server.protect(PR, t).unwrap();
        assert!(text(&b).contains("<reqRekey>true</reqRekey>"));
        p.client.receive(k, &b, t).unwrap();
        let (k, b) = p.client.protect(PR, t).unwrap();
        assert!(text(&b).contains("<rekey>"));
        p.server.receive(k, &b, t).unwrap();
        both_ways(&mut p, 2, t.plus_ms(1));
    }
}

#[test]
fn the_encodings_do_not_mix() {
    // A BER peer's PDU is a protocol error for an XML engine, answered in XML.
    let mut ber = pair(E2eConfig::default(), E2eConfig::default());
    let req = ber.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    let mut x = xml_pair(ae(), 42);
    let r = rejection(x.server.receive(SecPduKind::HandshakeReq, &req, NOW));
    assert_eq!(
        r.cause,
        Some(Diagnostic::Handshake(
            secmms_e2e::HandshakeDiagnostic::ProtocolError
        ))
    );
    let (k, b) = r.reply.unwrap();
    assert_eq!(k, SecPduKind::HandshakeSecReject);
    assert!(text(&b).starts_with("<HandshakeSecReject "));
    // An XML PDU of another kind than announced is a protocol error too.
    let mut x = xml_pair(ae(), 43);
    let req = x.client.handshake_req(None, NOW).unwrap();
    let mut y = xml_pair(ae(), 44);
    let r = rejection(
        y.server.receive(
            SecPduKind::HandshakeReq,
            text(&req)
                .replace("HandshakeReq", "HandshakeAcc")
                .as_bytes(),
            NOW,
        ),
    );
    assert_eq!(r.event.id.to_string(), "IEC62351-4:1.5");
}

// ------------------------------------------------------------------ rejects and aborts

fn reply_of(r: &Rejection) -> (SecPduKind, SecPdu) {
    let (k, b) = r.reply.as_ref().expect("reply PDU");
    (*k, decode_xml(*k, b))
}

fn diag_of(p: &SecPdu) -> Option<Diagnostic> {
    match p {
        SecPdu::HandshakeSecReject(t) | SecPdu::HandshakeSecAbort(t) | SecPdu::DtSecAbort(t) => {
            match t.body {
                Token3Body::HandshakeDiag(d) => d.map(Diagnostic::Handshake),
                Token3Body::DtDiag(d) => d.map(Diagnostic::Dt),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Decodes an XML HandshakeReq/Acc, lets `f` change its token, re-signs the new XML tbs.
fn resign_xml(
    kind: SecPduKind,
    b: &[u8],
    key: &secmms_pki::SigningKey,
    f: impl FnOnce(&mut ClearToken1),
) -> Vec<u8> {
    let mut h: Handshake = match decode_xml(kind, b) {
        SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => h,
        o => panic!("{o:?}"),
    };
    f(&mut h.token1);
    h.tbs = xml::handshake_tbs(&h.token1, h.appl_data.as_deref()).into_bytes();
    h.sign.sign = key.sign(&h.tbs).unwrap();
    let pdu = if kind == SecPduKind::HandshakeReq {
        SecPdu::HandshakeReq(h)
    } else {
        SecPdu::HandshakeAcc(h)
    };
    xml::encode(&pdu).unwrap().into_bytes()
}

#[test]
fn application_and_security_rejects() {
    let mut p = xml_pair(ae(), 45);
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let err = [0xaa, 0x03, 0x80, 0x01, 0x02];
    let rej = p.server.appl_reject(&err, NOW).unwrap();
    assert!(text(&rej).starts_with("<ApplicationReject "));
    assert_eq!(
        p.client
            .receive(SecPduKind::ApplicationReject, &rej, NOW)
            .unwrap(),
        Output::ApplicationRejected {
            appl_data: Some(err.to_vec())
        }
    );

    let mut p = pair_with(
        E2eConfig {
            protected_protocol: "other".into(),
            ..xml_cfg(ae())
        },
        xml_cfg(ae()),
        KeyType::P256,
        KeyType::P256,
        46,
    );
    let req = p.client.handshake_req(None, NOW).unwrap();
    let r = rejection(p.server.receive(SecPduKind::HandshakeReq, &req, NOW));
    let (k, pdu) = reply_of(&r);
    assert_eq!(k, SecPduKind::HandshakeSecReject);
    let d = Some(Diagnostic::Handshake(
        secmms_e2e::HandshakeDiagnostic::ProtectedProtocolNotSupported,
    ));
    assert_eq!(diag_of(&pdu), d);
    let (_, b) = r.reply.unwrap();
    assert!(text(&b).contains("<diag>protected-protocol-not-supported</diag>"));
    assert_eq!(
        p.client.receive(k, &b, NOW).unwrap(),
        Output::SecurityRejected {
            diagnostic: Some(secmms_e2e::HandshakeDiagnostic::ProtectedProtocolNotSupported)
        }
    );
}

#[test]
fn handshake_sec_abort_dt_sec_abort_appl_abort() {
    // HandshakeSecAbort: the server "selects" a group the client never offered.
    let mut p = xml_pair(ae(), 47);
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    let acc = resign_xml(
        SecPduKind::HandshakeAcc,
        &acc,
        &server_creds(KeyType::P256).key,
        |t| t.dh_key[0].group = 28,
    );
    let r = rejection(p.client.receive(SecPduKind::HandshakeAcc, &acc, NOW));
    let (k, b) = r.reply.clone().unwrap();
    assert_eq!(k, SecPduKind::HandshakeSecAbort);
    match p.server.receive(k, &b, NOW).unwrap() {
        Output::Aborted {
            kind, diagnostic, ..
        } => {
            assert_eq!(kind, SecPduKind::HandshakeSecAbort);
            assert_eq!(
                diagnostic,
                Some(Diagnostic::Handshake(
                    secmms_e2e::HandshakeDiagnostic::IllegalDhGroupSelected
                ))
            );
        }
        o => panic!("{o:?}"),
    }

    // DtSecAbort without diagnostic after a replay (alarm).
    let mut p = xml_pair(ae(), 48);
    establish(&mut p, NOW);
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    p.server.receive(k, &b, NOW).unwrap();
    let r = rejection(p.server.receive(k, &b, NOW));
    assert_eq!(r.event.id.to_string(), "IEC62351-4:11.7");
    let (k, b) = r.reply.unwrap();
    assert!(!text(&b).contains("<diag>"));
    match p.client.receive(k, &b, NOW).unwrap() {
        Output::Aborted {
            kind, diagnostic, ..
        } => {
            assert_eq!(kind, SecPduKind::DtSecAbort);
            assert_eq!(diagnostic, None);
        }
        o => panic!("{o:?}"),
    }

    // ApplAbort with applData.
    let mut p = xml_pair(ae(), 49);
    establish(&mut p, NOW);
    let a = p.client.appl_abort(Some(&[0x84, 0x00]), NOW).unwrap();
    match p.server.receive(SecPduKind::ApplAbort, &a, NOW).unwrap() {
        Output::Aborted {
            kind, appl_data, ..
        } => {
            assert_eq!(kind, SecPduKind::ApplAbort);
            assert_eq!(appl_data, Some(vec![0x84, 0x00]));
        }
        o => panic!("{o:?}"),
    }
}

// ------------------------------------------------------------------ tampering: same outcome as BER

/// What a rejection tells the world: event, diagnostic, reply kind and the reply's diagnostic.
fn outcome(
    r: &Rejection,
) -> (
    String,
    Option<Diagnostic>,
    Option<SecPduKind>,
    Option<Diagnostic>,
) {
    let reply = r.reply.as_ref().map(|(k, b)| {
        let p = if b.first() == Some(&b'<') {
            decode_xml(*k, b)
        } else {
            SecPdu::decode(*k, b, Default::default()).unwrap()
        };
        (*k, diag_of(&p))
    });
    (
        r.event.id.to_string(),
        r.cause,
        reply.map(|x| x.0),
        reply.and_then(|x| x.1),
    )
}

/// Replaces the character at `i` by another one of the same lexical class (digit or hex digit),
/// so the PDU stays well-formed and only the protection can notice.
fn change_char(s: &str, i: usize) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b[i] = match b[i] {
        b'0' => b'1',
        b'A'..=b'E' | b'a'..=b'e' | b'1'..=b'8' => b[i] + 1,
        b'F' | b'f' | b'9' => b'0',
        c => panic!("not a hex digit: {}", c as char),
    };
    b
}

/// Flips the last digit of the GeneralizedTime inside a BER ClearToken2 (within tbp).
fn ber_tamper_token2_time(b: &[u8], kind: SecPduKind) -> Vec<u8> {
    let t = match SecPdu::decode(kind, b, Default::default()).unwrap() {
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => t,
        o => panic!("{o:?}"),
    };
    let c = &t.token2_content;
    let at = b.windows(c.len()).position(|w| w == &c[..]).unwrap();
    // assoID TLV, then the GeneralizedTime TLV: tag, length, digits…, 'Z'.
    let time_at = at + 2 + c[1] as usize;
    assert_eq!(b[time_at], 0x18);
    let last_digit = time_at + 2 + b[time_at + 1] as usize - 2;
    let mut v = b.to_vec();
    v[last_digit] = if v[last_digit] == b'0' { b'1' } else { b'0' };
    v
}

/// Position of the last digit of the time inside `<token2>` of an XML transfer.
fn xml_token2_time_digit(s: &str) -> usize {
    let t2 = s.find("<token2>").unwrap();
    s[t2..].find("</time>").unwrap() + t2 - 2
}

#[test]
fn tampered_tbp_is_rejected_like_ber() {
    for (i, offer) in [ae(), cbc_hmac(), hmac_only()].into_iter().enumerate() {
        // BER reference.
        let mut b = pair(with(WireEncoding::Ber, offer.clone()), E2eConfig::default());
        establish(&mut b, NOW);
        let (k, pdu) = b.client.protect(PR, NOW).unwrap();
        let r_ber = rejection(b.server.receive(k, &ber_tamper_token2_time(&pdu, k), NOW));
        // XML: one character inside <tbp> (a digit of token2's time) changed.
        let mut x = xml_pair(offer.clone(), 60 + i as u64);
        establish(&mut x, NOW);
        let (k, pdu) = x.client.protect(PR, NOW).unwrap();
        let s = text(&pdu).to_string();
        let tampered = change_char(&s, xml_token2_time_digit(&s));
        assert_ne!(tampered, pdu);
        let r_xml = rejection(x.server.receive(k, &tampered, NOW));
        assert_eq!(outcome(&r_xml), outcome(&r_ber), "{offer:?}");
        let id = if k == SecPduKind::EncrTransfer {
            "IEC62351-4:11.5"
        } else {
            "IEC62351-4:10.5"
        };
        assert_eq!(r_xml.event.id.to_string(), id);
        assert_eq!(r_xml.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
        assert_eq!(x.server.state(), State::Closed);

        // The protected payload itself: one hex digit of the ciphertext, or of the ICV.
        let mut x = xml_pair(offer.clone(), 70 + i as u64);
        establish(&mut x, NOW);
        let (k, pdu) = x.client.protect(PR, NOW).unwrap();
        let s = text(&pdu).to_string();
        let at = if k == SecPduKind::EncrTransfer {
            s.find("</token2><applData>").unwrap() + "</token2><applData>".len() + 3
        } else {
            s.find("<icv>").unwrap() + "<icv>".len() + 5
        };
        let r = rejection(x.server.receive(k, &change_char(&s, at), NOW));
        assert_eq!(r.event.id.to_string(), id);
        assert_eq!(r.cause, None, "an alarm carries no diagnostic");
    }
}

#[test]
fn tampered_signature_is_rejected_like_ber() {
    let cfg = xml_cfg(ae());
    // BER reference: one octet in the middle of the signature value.
    let mut b = pair(E2eConfig::default(), E2eConfig::default());
    let req = b.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    let sig = match SecPdu::decode(SecPduKind::HandshakeReq, &req, Default::default()).unwrap() {
        SecPdu::HandshakeReq(h) => h.sign.sign,
        o => panic!("{o:?}"),
    };
    let at = req.windows(sig.len()).position(|w| w == &sig[..]).unwrap() + sig.len() / 2;
    let mut bad = req.clone();
    bad[at] ^= 0x01;
    let r_ber = rejection(b.server.receive(SecPduKind::HandshakeReq, &bad, NOW));
    assert_eq!(r_ber.event.id.to_string(), "IEC62351-4:1.3");

    // XML: one character inside <sign>…</sign>, then one inside <tbs>.
    let mut x = pair(cfg.clone(), cfg.clone());
    let req = x.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    let s = text(&req).to_string();
    let v_end = s.rfind("</sign></sign>").unwrap();
    let v_start = s[..v_end].rfind("<sign>").unwrap() + "<sign>".len();
    let r = rejection(x.server.receive(
        SecPduKind::HandshakeReq,
        &change_char(&s, (v_start + v_end) / 2),
        NOW,
    ));
    assert_eq!(outcome(&r), outcome(&r_ber));

    let mut x = pair(cfg.clone(), cfg.clone());
    let req = x.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    let s = text(&req).to_string();
    let t1 = s.find("<token1>").unwrap();
    let digit = s[t1..].find("</time>").unwrap() + t1 - 2;
    let r = rejection(
        x.server
            .receive(SecPduKind::HandshakeReq, &change_char(&s, digit), NOW),
    );
    assert_eq!(outcome(&r), outcome(&r_ber));

    // HandshakeAcc at the client (group 2) and ReleaseReq at the peer (group 12) alike.
    let mut bb = pair(E2eConfig::default(), E2eConfig::default());
    let mut xx = pair(cfg.clone(), cfg);
    let ber_acc = {
        let req = bb.client.handshake_req(None, NOW).unwrap();
        bb.server
            .receive(SecPduKind::HandshakeReq, &req, NOW)
            .unwrap();
        bb.server.accept(None, NOW).unwrap()
    };
    let xml_acc = {
        let req = xx.client.handshake_req(None, NOW).unwrap();
        xx.server
            .receive(SecPduKind::HandshakeReq, &req, NOW)
            .unwrap();
        xx.server.accept(None, NOW).unwrap()
    };
    let sig = match SecPdu::decode(SecPduKind::HandshakeAcc, &ber_acc, Default::default()).unwrap()
    {
        SecPdu::HandshakeAcc(h) => h.sign.sign,
        o => panic!("{o:?}"),
    };
    let at = ber_acc
        .windows(sig.len())
        .position(|w| w == &sig[..])
        .unwrap()
        + 8;
    let mut bad = ber_acc.clone();
    bad[at] ^= 0x10;
    let r_ber = rejection(bb.client.receive(SecPduKind::HandshakeAcc, &bad, NOW));
    let s = text(&xml_acc).to_string();
    let v_end = s.rfind("</sign></sign>").unwrap();
    let r_xml = rejection(xx.client.receive(
        SecPduKind::HandshakeAcc,
        &change_char(&s, v_end - 4),
        NOW,
    ));
    assert_eq!(outcome(&r_xml), outcome(&r_ber));
    assert_eq!(
        r_xml.reply.as_ref().unwrap().0,
        SecPduKind::HandshakeSecAbort
    );
}

#[test]
fn tampered_release_req_is_answered_like_ber() {
    let run = |enc: WireEncoding, seed: u64| {
        let mut p = pair_with(
            with(enc, ae()),
            with(enc, ae()),
            KeyType::P256,
            KeyType::P256,
            seed,
        );
        establish(&mut p, NOW);
        let r = p.client.release_req(Some(&[0x8b, 0x00]), NOW).unwrap();
        let bad = match enc {
            WireEncoding::Ber => {
                let mut v = r.clone();
                let n = v.len();
                v[n - 10] ^= 0x01; // inside the signature value
                v
            }
            WireEncoding::Xml => {
                let s = text(&r).to_string();
                let v_end = s.rfind("</sign></sign>").unwrap();
                change_char(&s, v_end - 10)
            }
        };
        rejection(p.server.receive(SecPduKind::ReleaseReq, &bad, NOW))
    };
    let b = run(WireEncoding::Ber, 80);
    let x = run(WireEncoding::Xml, 80);
    assert_eq!(outcome(&x), outcome(&b));
    assert_eq!(x.reply.as_ref().unwrap().0, SecPduKind::DtSecAbort);
}

#[test]
fn garbage_is_a_protocol_error_like_ber() {
    let mut b = pair(E2eConfig::default(), E2eConfig::default());
    let r_ber = rejection(
        b.server
            .receive(SecPduKind::HandshakeReq, &[0x30, 0x00], NOW),
    );
    for junk in [
        &b"<HandshakeReq/>"[..],
        b"not xml",
        b"<a><b></a>",
        &[0xff, 0xfe],
    ] {
        let mut x = pair(xml_cfg(ae()), xml_cfg(ae()));
        let r = rejection(x.server.receive(SecPduKind::HandshakeReq, junk, NOW));
        assert_eq!(outcome(&r), outcome(&r_ber));
    }
    // Data phase: a malformed transfer → DtSecAbort(protocol-error), as in BER.
    let mut b = pair(E2eConfig::default(), E2eConfig::default());
    establish(&mut b, NOW);
    let r_ber = rejection(
        b.server
            .receive(SecPduKind::EncrTransfer, &[0x30, 0x00], NOW),
    );
    let mut x = pair(xml_cfg(ae()), xml_cfg(ae()));
    establish(&mut x, NOW);
    let r = rejection(
        x.server
            .receive(SecPduKind::EncrTransfer, b"<EncrTransfer/>", NOW),
    );
    assert_eq!(outcome(&r), outcome(&r_ber));
    assert!(matches!(
        x.server.protect(PR, NOW),
        Err(E2eError::State(State::Closed))
    ));
}
