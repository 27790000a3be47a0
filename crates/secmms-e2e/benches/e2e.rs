//! Criterion benchmarks of the E2E engine (figures in docs/PERFORMANCE.md):
//! * `handshake/<group>/<sig>` — a full handshake (both roles, certificate validation
//!   included) against `ops/...`, the crypto operations it performs, measured in the same run;
//! * `data/<mode>/<size>` — protect + verify of one PrPDU through the engine against
//!   `raw/<mode>/<size>`, the bare OpenSSL AEAD/HMAC work on the same buffer.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, Criterion};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher, Crypter, Mode};
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::config::{Context, E2eConfig, ModeOffer};
use secmms_e2e::doc_support::{DemoPki, KeyType, CLIENT_AP, SERVER_AP};
use secmms_e2e::pdu::SecPduKind;
use secmms_e2e::replay::ReplayCache;
use secmms_e2e::{E2eClient, E2eServer, Output, TimeStamp};
use secmms_pki::cert::CertValidator;
use secmms_pki::crypto::{self, DhGroup, EphemeralKey, OsRandom};

const NOW: TimeStamp = TimeStamp(1_750_000_000_000);

fn fresh(ctx: &Context) -> Context {
    Context {
        replay: Arc::new(Mutex::new(ReplayCache::new())),
        ..ctx.clone()
    }
}

fn gname(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Modp2048 => "modp2048",
        DhGroup::EcdhP256 => "p256",
        DhGroup::EcdhBrainpoolP256r1 => "bp256",
    }
}
fn kname(k: KeyType) -> &'static str {
    match k {
        KeyType::Rsa2048 => "rsa2048",
        KeyType::P256 => "ecdsa-p256",
        KeyType::Brainpool => "ecdsa-bp256",
    }
}

fn handshakes(c: &mut Criterion) {
    let pki = DemoPki::new();
    let mut g = c.benchmark_group("handshake");
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
            g.bench_function(format!("{}/{}", gname(grp), kname(kt)), |b| {
                b.iter(|| {
                    let mut cl = E2eClient::new(fresh(&cctx), Box::new(OsRandom), 1);
                    let mut sv = E2eServer::new(fresh(&sctx), Box::new(OsRandom), 2);
                    let req = cl.handshake_req(Some(&[0xa8, 0x00]), NOW).unwrap();
                    sv.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
                    let acc = sv.accept(Some(&[0xa9, 0x00]), NOW).unwrap();
                    black_box(cl.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap());
                })
            });
        }
    }
    g.finish();

    // The crypto operations of one handshake (each happens twice: once per role).
    let mut g = c.benchmark_group("ops");
    for grp in [
        DhGroup::Modp2048,
        DhGroup::EcdhP256,
        DhGroup::EcdhBrainpoolP256r1,
    ] {
        g.bench_function(format!("keygen/{}", gname(grp)), |b| {
            b.iter(|| black_box(EphemeralKey::generate(grp, &mut OsRandom).unwrap()))
        });
        let a = EphemeralKey::generate(grp, &mut OsRandom).unwrap();
        let p = EphemeralKey::generate(grp, &mut OsRandom).unwrap();
        g.bench_function(format!("agree/{}", gname(grp)), |b| {
            b.iter(|| black_box(a.agree(p.public_value()).unwrap()))
        });
    }
    let tbs = vec![0x5au8; 900];
    for kt in [KeyType::Rsa2048, KeyType::P256, KeyType::Brainpool] {
        let creds = pki.credentials(kt, CLIENT_AP, 3);
        let key = creds.key.clone();
        g.bench_function(format!("sign/{}", kname(kt)), |b| {
            b.iter(|| black_box(key.sign(&tbs).unwrap()))
        });
        let sig = key.sign(&tbs).unwrap();
        let pubk = PKey::public_key_from_der(&key.pkey().public_key_to_der().unwrap()).unwrap();
        g.bench_function(format!("verify/{}", kname(kt)), |b| {
            b.iter(|| crypto::verify_signature(&pubk, key.algorithm(), &tbs, &sig).unwrap())
        });
        let v = pki.validator.clone();
        g.bench_function(format!("validate/{}", kname(kt)), |b| {
            b.iter(|| black_box(v.validate(&creds.cert_der, &[], NOW.unix_secs()).unwrap()))
        });
    }
    g.bench_function("hkdf", |b| {
        b.iter(|| black_box(crypto::hkdf(&[1; 32], &[2; 32], b"", 32).unwrap()))
    });
    g.finish();
}

fn prpdu(size: usize) -> Vec<u8> {
    // One BER element of `size` octets in total: A0 83 LL LL LL <content> (or short forms).
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

fn data(c: &mut Criterion) {
    let pki = DemoPki::new();
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
    let mut g = c.benchmark_group("data");
    for (name, offer) in &modes {
        let cfg = E2eConfig {
            offer: offer.clone(),
            ..E2eConfig::default()
        };
        for size in [256usize, 4096, 65_536] {
            let pr = prpdu(size);
            g.throughput(criterion::Throughput::Bytes(size as u64));
            let mut cl =
                E2eClient::new(pki.context(cfg.clone(), cc.clone()), Box::new(OsRandom), 1);
            let mut sv =
                E2eServer::new(pki.context(cfg.clone(), sc.clone()), Box::new(OsRandom), 2);
            let req = cl.handshake_req(None, NOW).unwrap();
            sv.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
            let acc = sv.accept(None, NOW).unwrap();
            cl.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
            g.bench_function(format!("engine/{name}/{size}"), |b| {
                b.iter(|| {
                    let (k, pdu) = cl.protect(&pr, NOW).unwrap();
                    match sv.receive(k, &pdu, NOW).unwrap() {
                        Output::Data(d) => black_box(d),
                        _ => unreachable!(),
                    };
                })
            });
            let k16 = [7u8; 16];
            let k32 = [7u8; 32];
            let nonce = [1u8; 12];
            let iv = [2u8; 16];
            let aad = [3u8; 40];
            g.bench_function(format!("raw/{name}/{size}"), |b| match *name {
                "aes128-gcm" | "aes256-gcm" => {
                    let (cph, key): (Cipher, &[u8]) = if *name == "aes128-gcm" {
                        (Cipher::aes_128_gcm(), &k16)
                    } else {
                        (Cipher::aes_256_gcm(), &k32)
                    };
                    b.iter(|| {
                        let mut tag = [0u8; 12];
                        let ct = encrypt_aead(cph, key, Some(&nonce), &aad, &pr, &mut tag).unwrap();
                        black_box(decrypt_aead(cph, key, Some(&nonce), &aad, &ct, &tag).unwrap());
                    })
                }
                "hmac" => b.iter(|| {
                    let m = hmac(&k32, &pr);
                    black_box(openssl::memcmp::eq(&m, &hmac(&k32, &pr)));
                }),
                "gmac128" => b.iter(|| {
                    let m = gmac(&k16, &nonce, &pr);
                    black_box(openssl::memcmp::eq(&m, &gmac(&k16, &nonce, &pr)));
                }),
                _ => {
                    let (cph, key): (Cipher, &[u8]) = if *name == "aes128-cbc+hmac" {
                        (Cipher::aes_128_cbc(), &k16)
                    } else {
                        (Cipher::aes_256_cbc(), &k32)
                    };
                    b.iter(|| {
                        let ct = openssl::symm::encrypt(cph, key, Some(&iv), &pr).unwrap();
                        let m = hmac(&k32, &ct);
                        black_box(openssl::memcmp::eq(&m, &hmac(&k32, &ct)));
                        black_box(openssl::symm::decrypt(cph, key, Some(&iv), &ct).unwrap());
                    })
                }
            });
        }
    }
    g.finish();
}

criterion_group!(benches, handshakes, data);
criterion_main!(benches);
