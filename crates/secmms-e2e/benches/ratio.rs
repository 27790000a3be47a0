//! Interleaved ratio measurement for docs/PERFORMANCE.md. Criterion measures each function at a
//! different moment, so on a shared, loaded machine the engine/raw ratios drift with the
//! background load. Here the engine and its reference run in alternating batches (15 rounds)
//! and the medians are compared. Output: two markdown tables.
//!
//! `cargo bench -p secmms-e2e --bench ratio`

use std::hint::black_box;
use std::time::{Duration, Instant};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher, Crypter, Mode};
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer};
use secmms_e2e::doc_support::{DemoPki, KeyType, CLIENT_AP, SERVER_AP};
use secmms_e2e::pdu::SecPduKind;
use secmms_e2e::{E2eClient, E2eServer, Output, TimeStamp};
use secmms_pki::cert::CertValidator;
use secmms_pki::crypto::{self, DhGroup, EphemeralKey, OsRandom};

const NOW: TimeStamp = TimeStamp(1_750_000_000_000);
const ROUNDS: usize = 15;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `a` and `b` in alternating batches; returns median ns per call of each.
fn interleave(mut a: impl FnMut(), mut b: impl FnMut(), target: Duration) -> (f64, f64) {
    // Calibrate the batch size on `a`.
    let mut n = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..n {
            a();
        }
        if t.elapsed() >= target / 4 || n > 1 << 20 {
            break;
        }
        n *= 2;
    }
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..n {
            a();
        }
        ta.push(t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            b();
        }
        tb.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    (median(ta), median(tb))
}

fn prpdu(size: usize) -> Vec<u8> {
    let hdr = if size - 2 < 128 {
        2
    } else if size - 3 < 256 {
        3
    } else if size - 4 < 65_536 {
        4
    } else {
        5
    };
    let n = size - hdr;
    let mut v = vec![0xa0];
    match hdr {
        2 => v.push(n as u8),
        3 => v.extend_from_slice(&[0x81, n as u8]),
        4 => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        _ => v.extend_from_slice(&[0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
    v.resize(size, 0x42);
    v
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let k = PKey::hmac(key).unwrap();
    let mut s = Signer::new(MessageDigest::sha256(), &k).unwrap();
    s.update(data).unwrap();
    s.sign_to_vec().unwrap()
}

fn gmac(key: &[u8], nonce: &[u8], data: &[u8]) -> Vec<u8> {
    let c = if key.len() == 16 {
        Cipher::aes_128_gcm()
    } else {
        Cipher::aes_256_gcm()
    };
    let mut cr = Crypter::new(c, Mode::Encrypt, key, Some(nonce)).unwrap();
    cr.aad_update(data).unwrap();
    let mut out = [0u8; 16];
    cr.finalize(&mut out).unwrap();
    let mut tag = [0u8; 12];
    cr.get_tag(&mut tag).unwrap();
    tag.to_vec()
}

fn raw_op(name: &str, pr: &[u8]) {
    let k16 = [7u8; 16];
    let k32 = [7u8; 32];
    let nonce = [1u8; 12];
    let iv = [2u8; 16];
    let aad = [3u8; 40];
    match name {
        "aes128-gcm" | "aes256-gcm" => {
            let (c, key): (Cipher, &[u8]) = if name == "aes128-gcm" {
                (Cipher::aes_128_gcm(), &k16)
            } else {
                (Cipher::aes_256_gcm(), &k32)
            };
            let mut tag = [0u8; 12];
            let ct = encrypt_aead(c, key, Some(&nonce), &aad, pr, &mut tag).unwrap();
            black_box(decrypt_aead(c, key, Some(&nonce), &aad, &ct, &tag).unwrap());
        }
        "hmac" => {
            let m = hmac(&k32, pr);
            black_box(openssl::memcmp::eq(&m, &hmac(&k32, pr)));
        }
        "gmac128" => {
            let m = gmac(&k16, &nonce, pr);
            black_box(openssl::memcmp::eq(&m, &gmac(&k16, &nonce, pr)));
        }
        _ => {
            let (c, key): (Cipher, &[u8]) = if name == "aes128-cbc+hmac" {
                (Cipher::aes_128_cbc(), &k16)
            } else {
                (Cipher::aes_256_cbc(), &k32)
            };
            let ct = openssl::symm::encrypt(c, key, Some(&iv), pr).unwrap();
            let m = hmac(&k32, &ct);
            black_box(openssl::memcmp::eq(&m, &hmac(&k32, &ct)));
            black_box(openssl::symm::decrypt(c, key, Some(&iv), &ct).unwrap());
        }
    }
}

fn main() {
    let pki = DemoPki::new();
    let target = Duration::from_millis(40);

    println!("| Group | Signature | Handshake (µs) | Sum of its crypto operations (µs) | Ratio |");
    println!("|---|---|---:|---:|---:|");
    for kt in [KeyType::Rsa2048, KeyType::P256, KeyType::Brainpool] {
        let cc = pki.credentials(kt, CLIENT_AP, 1);
        let sc = pki.credentials(kt, SERVER_AP, 2);
        for grp in [
            DhGroup::Modp2048,
            DhGroup::EcdhP256,
            DhGroup::EcdhBrainpoolP256r1,
        ] {
            let cfg = E2eConfig {
                offer_groups: vec![grp],
                ..E2eConfig::default()
            };
            let cctx = pki.context(cfg.clone(), cc.clone());
            let sctx = pki.context(cfg, sc.clone());
            let handshake = || {
                let fresh = |c: &secmms_e2e::Context| secmms_e2e::Context {
                    replay: std::sync::Arc::new(std::sync::Mutex::new(
                        secmms_e2e::replay::ReplayCache::new(),
                    )),
                    ..c.clone()
                };
                let mut cl = E2eClient::new(fresh(&cctx), Box::new(OsRandom), 1);
                let mut sv = E2eServer::new(fresh(&sctx), Box::new(OsRandom), 2);
                let req = cl.handshake_req(Some(&[0xa8, 0x00]), NOW).unwrap();
                sv.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
                let acc = sv.accept(Some(&[0xa9, 0x00]), NOW).unwrap();
                black_box(cl.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap());
            };
            // The same primitive work done by both roles: keygen, agree, sign, verify, certificate
            // validation and HKDF, each twice.
            let tbs = vec![0x5au8; 900];
            let peer = EphemeralKey::generate(grp, &mut OsRandom).unwrap();
            let pubk =
                PKey::public_key_from_der(&cc.key.pkey().public_key_to_der().unwrap()).unwrap();
            let sig = cc.key.sign(&tbs).unwrap();
            let v = pki.validator.clone();
            let ops = || {
                for _ in 0..2 {
                    let k = EphemeralKey::generate(grp, &mut OsRandom).unwrap();
                    black_box(k.agree(peer.public_value()).unwrap());
                    black_box(cc.key.sign(&tbs).unwrap());
                    crypto::verify_signature(&pubk, cc.key.algorithm(), &tbs, &sig).unwrap();
                    black_box(v.validate(&cc.cert_der, &[], NOW.unix_secs()).unwrap());
                    black_box(crypto::hkdf(&[1; 32], &[2; 32], b"", 32).unwrap());
                }
            };
            let (h, o) = interleave(handshake, ops, target * 3);
            println!(
                "| {grp:?} | {kt:?} | {:.0} | {:.0} | {:.2}× |",
                h / 1000.0,
                o / 1000.0,
                h / o
            );
        }
    }

    println!();
    println!(
        "| Mode | PrPDU size | Engine protect+verify (MB/s) | Raw OpenSSL (MB/s) | Engine / raw |"
    );
    println!("|---|---:|---:|---:|---:|");
    let cc = pki.credentials(KeyType::P256, CLIENT_AP, 1);
    let sc = pki.credentials(KeyType::P256, SERVER_AP, 2);
    let modes: Vec<(&str, ModeOffer)> = vec![
        ("aes128-gcm", ModeOffer::Ae(vec![AeAlg::Aes128Gcm])),
        ("aes256-gcm", ModeOffer::Ae(vec![AeAlg::Aes256Gcm])),
        (
            "hmac",
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
        (
            "aes128-cbc+hmac",
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes128Cbc],
                icv: vec![IcvAlg::HmacSha256],
            },
        ),
        (
            "aes256-cbc+hmac",
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes256Cbc],
                icv: vec![IcvAlg::HmacSha256],
            },
        ),
    ];
    for (name, offer) in &modes {
        let cfg = E2eConfig {
            offer: offer.clone(),
            ..E2eConfig::default()
        };
        for size in [256usize, 4096, 65_536] {
            let pr = prpdu(size);
            let mut cl =
                E2eClient::new(pki.context(cfg.clone(), cc.clone()), Box::new(OsRandom), 1);
            let mut sv =
                E2eServer::new(pki.context(cfg.clone(), sc.clone()), Box::new(OsRandom), 2);
            let req = cl.handshake_req(None, NOW).unwrap();
            sv.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
            let acc = sv.accept(None, NOW).unwrap();
            cl.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
            let engine = || {
                let (k, pdu) = cl.protect(&pr, NOW).unwrap();
                match sv.receive(k, &pdu, NOW).unwrap() {
                    Output::Data(d) => black_box(d),
                    _ => unreachable!(),
                };
            };
            let raw = || raw_op(name, &pr);
            let (e, r) = interleave(engine, raw, target);
            println!(
                "| {name} | {size} | {:.0} | {:.0} | {:.0} % |",
                size as f64 / e * 1000.0,
                size as f64 / r * 1000.0,
                r / e * 100.0
            );
        }
    }
}
