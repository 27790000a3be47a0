//! Replays the committed fuzz corpora through the same entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && p.file_name().is_some_and(|n| n != ".keep") {
                f(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
    }
    n
}

#[test]
fn e2e_secpdu_corpus() {
    let n = replay("e2e_secpdu", secmms_e2e::fuzzing::decode_secpdu);
    println!("replayed {n} e2e_secpdu inputs");
}

#[test]
fn e2e_engine_corpus() {
    let n = replay("e2e_engine", secmms_e2e::fuzzing::engine_sequence);
    println!("replayed {n} e2e_engine inputs");
}

#[test]
fn e2e_xml_corpus() {
    let n = replay("e2e_xml", secmms_e2e::fuzzing::xml_secpdu);
    assert!(n > 0, "the e2e_xml seed corpus is missing");
    println!("replayed {n} e2e_xml inputs");
}

#[test]
fn xml_smoke_inputs() {
    for s in [
        "",
        "<",
        "<HandshakeReq/>",
        "<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"/>",
        "<?xml version=\"1.0\"?><!DOCTYPE a><a/>",
        "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><tbs><token3>",
    ] {
        secmms_e2e::fuzzing::xml_secpdu(s.as_bytes());
    }
    secmms_e2e::fuzzing::xml_secpdu(&[0xff, b'<', 0xfe]);
}

#[test]
fn engine_smoke_inputs() {
    // A handshake, data both ways, mutations, rekey, time moves and release.
    let mut v = vec![0xc0];
    for op in 0u8..40 {
        v.extend_from_slice(&[op, op.wrapping_mul(37), 4, op, 1, 2, 3]);
    }
    secmms_e2e::fuzzing::engine_sequence(&v);
    secmms_e2e::fuzzing::engine_sequence(&[0x81, 3, 0, 0, 3, 1, 0, 2, 2, 2, 5, 7, 9, 0, 0]);
    secmms_e2e::fuzzing::decode_secpdu(&[0, 0x30, 0x80, 0, 0]);
}

/// Writes seed inputs for the decoder target (one genuine PDU of each kind, prefixed with the
/// kind octet) into `$SECMMS_SEED_DIR`. Run with `--ignored` when refreshing the corpus.
#[test]
#[ignore]
fn write_decoder_seeds() {
    use secmms_e2e::pdu::SecPduKind as K;
    use secmms_e2e::{E2eClient, E2eServer, TimeStamp};
    let dir = std::env::var("SECMMS_SEED_DIR").expect("SECMMS_SEED_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let now = TimeStamp(1_750_000_000_000);
    let mut out: Vec<(K, Vec<u8>)> = Vec::new();
    for (i, offer) in [
        secmms_e2e::ModeOffer::Ae(vec![secmms_e2e::alg::AeAlg::Aes128Gcm]),
        secmms_e2e::ModeOffer::NonAe {
            encr: vec![secmms_e2e::alg::EncrAlg::Aes128Cbc],
            icv: vec![secmms_e2e::alg::IcvAlg::Gmac128],
        },
        secmms_e2e::ModeOffer::NonAe {
            encr: vec![],
            icv: vec![secmms_e2e::alg::IcvAlg::HmacSha256],
        },
    ]
    .into_iter()
    .enumerate()
    {
        let pki = secmms_e2e::doc_support::DemoPki::new();
        let cfg = secmms_e2e::E2eConfig {
            offer,
            ..Default::default()
        };
        let cc = pki.credentials(secmms_e2e::doc_support::KeyType::P256, &[1, 1, 1], 1);
        let sc = pki.credentials(secmms_e2e::doc_support::KeyType::P256, &[1, 1, 2], 2);
        let mut c = E2eClient::new(
            pki.context(cfg.clone(), cc),
            Box::new(secmms_pki::crypto::OsRandom),
            1,
        );
        let mut s = E2eServer::new(
            pki.context(cfg, sc),
            Box::new(secmms_pki::crypto::OsRandom),
            2,
        );
        let req = c.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
        s.receive(K::HandshakeReq, &req, now).unwrap();
        let acc = s.accept(Some(&[0xa9, 0x00]), now).unwrap();
        c.receive(K::HandshakeAcc, &acc, now).unwrap();
        out.push((K::HandshakeReq, req));
        out.push((K::HandshakeAcc, acc));
        let (k, b) = c.protect(&[0xa0, 0x03, 0x02, 0x01, i as u8], now).unwrap();
        out.push((k, b));
        let r = c.release_req(Some(&[0x8b, 0x00]), now).unwrap();
        out.push((K::ReleaseReq, r));
    }
    for (i, (k, b)) in out.iter().enumerate() {
        let idx = K::ALL.iter().position(|x| x == k).unwrap() as u8;
        let mut v = vec![idx];
        v.extend_from_slice(b);
        std::fs::write(format!("{dir}/seed-{i:02}"), v).unwrap();
    }
}

/// Writes seed inputs for the XML decoder target (genuine XML PDUs of every kind the engine
/// emits in an exchange) into `$SECMMS_SEED_DIR`. Run with `--ignored`
/// when refreshing `fuzz/corpus/e2e_xml`.
#[test]
#[ignore]
fn write_xml_seeds() {
    use secmms_e2e::pdu::SecPduKind as K;
    use secmms_e2e::{E2eClient, E2eServer, TimeStamp, WireEncoding};
    let dir = std::env::var("SECMMS_SEED_DIR").expect("SECMMS_SEED_DIR");
    std::fs::create_dir_all(&dir).unwrap();
    let now = TimeStamp(1_750_000_000_000);
    let pki = secmms_e2e::doc_support::DemoPki::new();
    let cc = pki.credentials(secmms_e2e::doc_support::KeyType::P256, &[1, 1, 1], 1);
    let sc = pki.credentials(secmms_e2e::doc_support::KeyType::P256, &[1, 1, 2], 2);
    let mut out: Vec<(K, Vec<u8>)> = Vec::new();
    for (i, offer) in [
        secmms_e2e::ModeOffer::Ae(vec![secmms_e2e::alg::AeAlg::Aes128Gcm]),
        secmms_e2e::ModeOffer::NonAe {
            encr: vec![secmms_e2e::alg::EncrAlg::Aes128Cbc],
            icv: vec![secmms_e2e::alg::IcvAlg::Gmac128],
        },
        secmms_e2e::ModeOffer::NonAe {
            encr: vec![],
            icv: vec![secmms_e2e::alg::IcvAlg::HmacSha256],
        },
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = secmms_e2e::E2eConfig {
            offer,
            encoding: WireEncoding::Xml,
            ..Default::default()
        };
        let mut c = E2eClient::new(
            pki.context(cfg.clone(), cc.clone()),
            Box::new(secmms_pki::crypto::OsRandom),
            1,
        );
        let mut s = E2eServer::new(
            pki.context(cfg, sc.clone()),
            Box::new(secmms_pki::crypto::OsRandom),
            2,
        );
        let req = c.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
        s.receive(K::HandshakeReq, &req, now).unwrap();
        let acc = s.accept(Some(&[0xa9, 0x00]), now).unwrap();
        c.receive(K::HandshakeAcc, &acc, now).unwrap();
        if i == 0 {
            out.push((K::HandshakeReq, req));
            out.push((K::HandshakeAcc, acc));
        }
        c.start_rekey();
        let (k, b) = c.protect(&[0xa0, 0x03, 0x02, 0x01, i as u8], now).unwrap();
        s.receive(k, &b, now).unwrap();
        out.push((k, b));
        let (k, b) = s.protect(&[0xa1, 0x03, 0x02, 0x01, i as u8], now).unwrap();
        out.push((k, b));
        let r = c.release_req(Some(&[0x8b, 0x00]), now).unwrap();
        s.receive(K::ReleaseReq, &r, now).unwrap();
        out.push((K::ReleaseReq, r));
        let r = s.release_rsp(None, now).unwrap();
        out.push((K::ReleaseRsp, r));
    }
    for (i, (k, b)) in out.iter().enumerate() {
        let name = secmms_e2e::xml::element_name(*k);
        std::fs::write(format!("{dir}/seed-{i:02}-{name}.xml"), b).unwrap();
    }
}
