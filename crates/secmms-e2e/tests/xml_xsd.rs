//! Every XML SecPDU the engine emits in full XML-mode exchanges (handshake; data in AE/GCM,
//! AES-CBC + HMAC, HMAC-only and GMAC modes; key refresh; release; every reject and abort) is
//! validated by the real `xmllint --schema` against `xsd/E2E_4.xsd` (the ENV_4 wrapper and its
//! schema are checked in `secmms-profiles`, `tests/env_xsd.rs`). Arbitrary PDUs from the
//! round-trip strategies are validated too, and broken ones must fail.
//!
//! xmllint comes from the Debian package libxml2-utils. Without it the test prints SKIPPED,
//! except when `CI=true`, where it fails.

mod common;
mod strategies;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer, WireEncoding};
use secmms_e2e::doc_support::KeyType;
use secmms_e2e::limits::XmlLimits;
use secmms_e2e::pdu::{Handshake, SecPdu, SecPduKind};
use secmms_e2e::{xml, HandshakeDiagnostic};

const PR: &[u8] = &[0xa0, 0x05, 0x02, 0x01, 0x01, 0xa4, 0x00];

fn xsd(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("xsd").join(name)
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("secmms-xsd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Validates the documents against `schema` in one xmllint run (`secmms_testkit`).
fn validate(schema: &str, docs: &[(String, String)], dir: &Path) -> (Vec<String>, String) {
    secmms_testkit::xmllint_invalid(&xsd(schema), docs, dir)
}

fn assert_valid(docs: &[(String, String)], tag: &str) {
    let dir = TempDir::new(tag);
    let (bad, report) = validate("E2E_4.xsd", docs, &dir.0);
    assert!(
        bad.is_empty(),
        "invalid against E2E_4.xsd: {bad:?}\n{report}"
    );
}

/// Collects every PDU an exchange emits.
#[derive(Default)]
struct Log(Vec<(SecPduKind, Vec<u8>)>);
impl Log {
    fn add(&mut self, kind: SecPduKind, b: &[u8]) -> Vec<u8> {
        self.0.push((kind, b.to_vec()));
        b.to_vec()
    }
    fn docs(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, (k, b))| {
                (
                    format!("{i:03}-{}", xml::element_name(*k)),
                    String::from_utf8(b.clone()).unwrap(),
                )
            })
            .collect()
    }
}

fn cfg(offer: ModeOffer) -> E2eConfig {
    E2eConfig {
        offer,
        encoding: WireEncoding::Xml,
        ..E2eConfig::default()
    }
}

fn xml_pair(offer: ModeOffer, seed: u64) -> Pair {
    pair_with(
        cfg(offer.clone()),
        cfg(offer),
        KeyType::P256,
        KeyType::P256,
        seed,
    )
}

fn handshake(p: &mut Pair, log: &mut Log) {
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    let req = log.add(SecPduKind::HandshakeReq, &req);
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(Some(INIT_RSP), NOW).unwrap();
    let acc = log.add(SecPduKind::HandshakeAcc, &acc);
    p.client
        .receive(SecPduKind::HandshakeAcc, &acc, NOW)
        .unwrap();
}

fn data(p: &mut Pair, log: &mut Log, t: secmms_e2e::TimeStamp) {
    let (k, b) = p.client.protect(PR, t).unwrap();
    p.server.receive(k, &log.add(k, &b), t).unwrap();
    let (k, b) = p.server.protect(PR, t).unwrap();
    p.client.receive(k, &log.add(k, &b), t).unwrap();
}

fn exchange_log() -> Log {
    let mut log = Log::default();
    let modes = [
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
        ModeOffer::Ae(vec![AeAlg::Aes256Gcm]),
        ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        ModeOffer::NonAe {
            encr: vec![],
            icv: vec![IcvAlg::HmacSha256],
        },
        ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes256Cbc],
            icv: vec![IcvAlg::Gmac256],
        },
    ];
    for (i, offer) in modes.into_iter().enumerate() {
        let mut p = xml_pair(offer, 900 + i as u64);
        handshake(&mut p, &mut log);
        data(&mut p, &mut log, NOW);
        // Key refresh: client rekey, server changedKey, then a server request.
        p.client.start_rekey();
        data(&mut p, &mut log, NOW.plus_ms(1));
        p.server.request_rekey();
        data(&mut p, &mut log, NOW.plus_ms(2));
        data(&mut p, &mut log, NOW.plus_ms(3));
        // Release with Conclude PDUs.
        let r = p
            .client
            .release_req(Some(&[0x8b, 0x00]), NOW.plus_ms(4))
            .unwrap();
        p.server
            .receive(
                SecPduKind::ReleaseReq,
                &log.add(SecPduKind::ReleaseReq, &r),
                NOW.plus_ms(4),
            )
            .unwrap();
        let r = p
            .server
            .release_rsp(Some(&[0x8c, 0x00]), NOW.plus_ms(4))
            .unwrap();
        p.client
            .receive(
                SecPduKind::ReleaseRsp,
                &log.add(SecPduKind::ReleaseRsp, &r),
                NOW.plus_ms(4),
            )
            .unwrap();
    }
    let ae = || ModeOffer::Ae(vec![AeAlg::Aes128Gcm]);

    // RSA signatures (sha256WithRSAEncryption carries NULL parameters) and a MODP group.
    let mut p = pair_with(
        E2eConfig {
            offer_groups: vec![secmms_pki::crypto::DhGroup::Modp2048],
            ..cfg(ae())
        },
        cfg(ae()),
        KeyType::Rsa2048,
        KeyType::Rsa2048,
        949,
    );
    handshake(&mut p, &mut log);
    data(&mut p, &mut log, NOW);

    // Release without applData.
    let mut p = xml_pair(ae(), 950);
    handshake(&mut p, &mut log);
    let r = p.server.release_req(None, NOW).unwrap();
    p.client
        .receive(
            SecPduKind::ReleaseReq,
            &log.add(SecPduKind::ReleaseReq, &r),
            NOW,
        )
        .unwrap();
    let r = p.client.release_rsp(None, NOW).unwrap();
    log.add(SecPduKind::ReleaseRsp, &r);

    // ApplicationReject.
    let mut p = xml_pair(ae(), 951);
    let req = p.client.handshake_req(Some(INIT_REQ), NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let r = p
        .server
        .appl_reject(&[0xaa, 0x03, 0x80, 0x01, 0x02], NOW)
        .unwrap();
    log.add(SecPduKind::ApplicationReject, &r);

    // HandshakeSecReject with a diagnostic (local reject) and without (alarm: bad signature).
    let mut p = xml_pair(ae(), 952);
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let r = p
        .server
        .security_reject(HandshakeDiagnostic::NoReasonGiven, NOW)
        .unwrap();
    log.add(SecPduKind::HandshakeSecReject, &r);
    let mut p = xml_pair(ae(), 953);
    let req = p.client.handshake_req(None, NOW).unwrap();
    let s = String::from_utf8(req).unwrap();
    let bad = s.replace("<version>1</version>", "<version>01</version>");
    let rej = rejection(
        p.server
            .receive(SecPduKind::HandshakeReq, bad.as_bytes(), NOW),
    );
    let (k, b) = rej.reply.unwrap();
    log.add(k, &b);

    // HandshakeSecAbort with a diagnostic: the Acc re-signed with a group never offered.
    let mut p = xml_pair(ae(), 954);
    let req = p.client.handshake_req(None, NOW).unwrap();
    p.server
        .receive(SecPduKind::HandshakeReq, &req, NOW)
        .unwrap();
    let acc = p.server.accept(None, NOW).unwrap();
    let mut h: Handshake =
        match xml::decode_octets(SecPduKind::HandshakeAcc, &acc, &XmlLimits::default()).unwrap() {
            SecPdu::HandshakeAcc(h) => h,
            o => panic!("{o:?}"),
        };
    h.token1.dh_key[0].group = 28;
    h.tbs = xml::handshake_tbs(&h.token1, h.appl_data.as_deref()).into_bytes();
    h.sign.sign = server_creds(KeyType::P256).key.sign(&h.tbs).unwrap();
    let acc = xml::encode(&SecPdu::HandshakeAcc(h)).unwrap();
    let rej = rejection(
        p.client
            .receive(SecPduKind::HandshakeAcc, acc.as_bytes(), NOW),
    );
    let (k, b) = rej.reply.unwrap();
    assert_eq!(k, SecPduKind::HandshakeSecAbort);
    log.add(k, &b);

    // DtSecAbort without diagnostic (replay alarm) and with one (rekey timeout).
    let mut p = xml_pair(ae(), 955);
    handshake(&mut p, &mut log);
    let (k, b) = p.client.protect(PR, NOW).unwrap();
    p.server.receive(k, &b, NOW).unwrap();
    let rej = rejection(p.server.receive(k, &b, NOW));
    let (k, b) = rej.reply.unwrap();
    log.add(k, &b);
    let mut p = xml_pair(ae(), 956);
    handshake(&mut p, &mut log);
    p.client.start_rekey();
    p.client.protect(PR, NOW).unwrap();
    match p.client.handle_timeout(NOW.plus_ms(200_000)) {
        Err(e) => {
            let (k, b) = e.rejection().unwrap().reply.clone().unwrap();
            assert!(String::from_utf8_lossy(&b).contains("<diag>no-reason-given</diag>"));
            log.add(k, &b);
        }
        Ok(()) => panic!("rekey timeout expected"),
    }

    // ApplAbort with and without applData.
    let mut p = xml_pair(ae(), 957);
    handshake(&mut p, &mut log);
    let a = p.client.appl_abort(Some(&[0x84, 0x00]), NOW).unwrap();
    log.add(SecPduKind::ApplAbort, &a);
    let mut p = xml_pair(ae(), 958);
    handshake(&mut p, &mut log);
    let a = p.server.appl_abort(None, NOW).unwrap();
    log.add(SecPduKind::ApplAbort, &a);
    log
}

#[test]
fn every_emitted_pdu_validates() {
    if !secmms_testkit::xmllint_ready() {
        return;
    }
    let log = exchange_log();
    let kinds: BTreeSet<&str> = log.0.iter().map(|(k, _)| xml::element_name(*k)).collect();
    let all: BTreeSet<&str> = SecPduKind::ALL
        .iter()
        .map(|k| xml::element_name(*k))
        .collect();
    assert_eq!(kinds, all, "every SecPDU kind is emitted and validated");
    // The features that only some PDUs carry are present somewhere.
    let docs = log.docs();
    for needle in [
        "<rekey>",
        "<reqRekey>true</reqRekey>",
        "<changedKey>true</changedKey>",
        "<iv>",
        "<nonce>",
        "<auth>",
        "<non-aea>",
        "<aea>",
        "<diag>",
        "<parameters>",
    ] {
        assert!(
            docs.iter().any(|(_, d)| d.contains(needle)),
            "no emitted PDU contains {needle}"
        );
    }
    println!("validating {} emitted PDUs", docs.len());
    assert_valid(&docs, "engine");
}

#[test]
fn arbitrary_pdus_validate_and_broken_ones_do_not() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    if !secmms_testkit::xmllint_ready() {
        return;
    }
    let mut runner = TestRunner::deterministic();
    let mut docs = Vec::new();
    for kind in SecPduKind::ALL {
        for i in 0..8 {
            let pdu = strategies::pdu_of(kind)
                .new_tree(&mut runner)
                .unwrap()
                .current();
            let s = xml::encode(&xml::to_xml_form(&pdu)).unwrap();
            docs.push((format!("{}-{i}", xml::element_name(kind)), s));
        }
    }
    assert_valid(&docs, "arbitrary");

    // Negative controls: the schema (and this test) must be able to reject.
    let good = docs
        .iter()
        .find(|(n, _)| n.starts_with("HandshakeReq"))
        .unwrap()
        .1
        .clone();
    let broken = vec![
        ("wrong-ns".to_string(), good.replace(xml::E2E_NS, "urn:x")),
        (
            "wrong-order".to_string(),
            good.replacen("<pp>", "<sign/><pp>", 1),
        ),
        (
            "bad-time".to_string(),
            good.replacen("<time>", "<time>2025-01-01T", 1),
        ),
        ("bad-diag".to_string(), {
            let d = docs
                .iter()
                .find(|(n, d)| n.starts_with("DtSecAbort") && d.contains("<diag>"))
                .unwrap()
                .1
                .clone();
            let i = d.find("<diag>").unwrap() + "<diag>".len();
            format!("{}made-up-{}", &d[..i], &d[i..])
        }),
    ];
    let dir = TempDir::new("broken");
    let (bad, report) = validate("E2E_4.xsd", &broken, &dir.0);
    assert_eq!(
        bad.len(),
        broken.len(),
        "broken PDUs passed validation:\n{report}"
    );
}
