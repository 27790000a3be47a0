//! Fixed-key handshake transcripts recomputed by an independent script (Python `cryptography`):
//! the derived keys and the first protected PDU must match. The client's DH private value comes
//! from the deterministic test RNG, which the script reproduces from the seed.
//!
//! Python: `$SECMMS_PYTHON` if set, else `python3`. If `cryptography` is missing the test fails
//! when `CI=true` and is skipped (with a message) otherwise.

mod common;

use common::*;
use secmms_e2e::alg::{EncrAlg, IcvAlg};
use secmms_e2e::config::{E2eConfig, ModeOffer};
use secmms_e2e::doc_support::KeyType;
use secmms_e2e::pdu::SecPduKind;
use secmms_e2e::{E2eClient, E2eServer, Output};
use secmms_pki::crypto::DhGroup;

fn run(cfg: E2eConfig, kt: KeyType, mode: &str, seed: u64) {
    let mut c = E2eClient::new(ctx(cfg.clone(), client_creds(kt)), TestRng::boxed(seed), 1);
    let mut s = E2eServer::new(ctx(cfg, server_creds(kt)), TestRng::boxed(seed + 1), 2);
    let req = c.handshake_req(Some(INIT_REQ), NOW).unwrap();
    s.receive(SecPduKind::HandshakeReq, &req, NOW).unwrap();
    let acc = s.accept(Some(INIT_RSP), NOW).unwrap();
    c.receive(SecPduKind::HandshakeAcc, &acc, NOW).unwrap();
    let plain = [
        0xa0, 0x0a, 0x02, 0x01, 0x01, 0xa4, 0x05, 0xa1, 0x03, 0x80, 0x01, 0x00,
    ];
    let (kind, pdu) = c.protect(&plain, NOW).unwrap();
    assert!(matches!(s.receive(kind, &pdu, NOW), Ok(Output::Data(_))));
    let json = format!(
        "{{\"req\":\"{}\",\"acc\":\"{}\",\"pdu\":\"{}\",\"plain\":\"{}\",\"client_seed\":{},\"mode\":\"{}\"}}",
        hex::encode(&req),
        hex::encode(&acc),
        hex::encode(&pdu),
        hex::encode(plain),
        seed,
        mode
    );
    let dir = std::env::temp_dir().join(format!("secmms-kat-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kat.json");
    std::fs::write(&path, json).unwrap();
    let python = std::env::var("SECMMS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kat_check.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&path)
        .output();
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(!ci, "cannot run {python}: {e}");
            eprintln!("SKIP: cannot run {python}: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        assert!(
            !ci,
            "python `cryptography` missing ({python}); required when CI=true"
        );
        eprintln!("SKIP: python `cryptography` missing ({python}); set SECMMS_PYTHON");
        return;
    }
    assert!(
        out.status.success(),
        "independent check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("OK {mode}")), "{stdout}");
    println!("{stdout}");
}

#[test]
fn kat_p256_aes128_gcm_transcript() {
    let cfg = E2eConfig {
        offer_groups: vec![DhGroup::EcdhP256],
        offer: ModeOffer::Ae(vec![secmms_e2e::alg::AeAlg::Aes128Gcm]),
        ..E2eConfig::default()
    };
    run(cfg, KeyType::P256, "aes128-gcm", 77);
}

#[test]
fn kat_modp2048_aes256_cbc_hmac_transcript() {
    let cfg = E2eConfig {
        offer_groups: vec![DhGroup::Modp2048],
        offer: ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes256Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        ..E2eConfig::default()
    };
    run(cfg, KeyType::Rsa2048, "aes256-cbc+hmac", 78);
}

#[test]
fn kat_brainpool_gcm_transcript() {
    let cfg = E2eConfig {
        offer_groups: vec![DhGroup::EcdhBrainpoolP256r1],
        offer: ModeOffer::Ae(vec![secmms_e2e::alg::AeAlg::Aes128Gcm]),
        ..E2eConfig::default()
    };
    run(cfg, KeyType::Brainpool, "aes128-gcm", 79);
}
