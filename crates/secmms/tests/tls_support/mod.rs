//! Test PKI for the TLS tests, generated at test time with the `openssl` crate (no key is
//! committed): a CA, a second "unknown" CA, RSA and ECDSA server/client certificates, expired,
//! not-yet-valid, revoked (with a CRL signed by the CA, encoded by hand: the `openssl` crate
//! cannot build CRLs) and oversize certificates. Plus helpers shared by the TLS tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509Extension, X509NameBuilder, X509};
use secmms::tls::TlsConfig;
use secmms_pki::event::{MemorySink, SecurityEventSink};

/// True when running in CI, where a missing peer is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Returns false (skip) locally when `ok` is false; panics in CI.
pub fn require(ok: bool, what: &str) -> bool {
    if !ok {
        if in_ci() {
            panic!("{what} is required when CI=true but is missing");
        }
        eprintln!("SKIP: {what} is missing");
    }
    ok
}

/// True when the `openssl` command is installed.
pub fn have_openssl_cli() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "secmms-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A certificate and its key, with their PEM files.
#[derive(Clone)]
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

/// How to issue a leaf.
#[derive(Clone, Copy)]
pub struct LeafSpec<'a> {
    pub cn: &'a str,
    pub ecdsa: bool,
    /// Validity start, days from now (negative = past).
    pub from_days: i64,
    /// Validity end, days from now.
    pub to_days: i64,
    /// Octets of filler in a private non-critical extension (oversize certificate).
    pub filler: usize,
    pub serial: u32,
    /// RSA modulus size.
    pub rsa_bits: u32,
}

impl<'a> LeafSpec<'a> {
    pub fn new(cn: &'a str, serial: u32) -> Self {
        LeafSpec {
            cn,
            ecdsa: false,
            from_days: -1,
            to_days: 30,
            filler: 0,
            serial,
            rsa_bits: 2048,
        }
    }
}

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn ec_key() -> PKey<Private> {
    let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
}

fn time(days: i64) -> Asn1Time {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    Asn1Time::from_unix(now + days * 86_400).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The whole test PKI in one directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Issued,
    pub other_ca: Issued,
    pub server: Issued,
    pub client: Issued,
    pub server_ec: Issued,
    pub expired: Issued,
    pub not_yet_valid: Issued,
    pub revoked: Issued,
    pub unknown: Issued,
    pub oversize: Issued,
    /// CRL of `ca` revoking `revoked`.
    pub crl: PathBuf,
}

/// A self-signed CA certificate and key.
pub fn make_ca(dir: &Path, cn: &str, file: &str) -> Issued {
    let key = rsa_key();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(1).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&time(-30)).unwrap();
    b.set_not_after(&time(3650)).unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    Issued {
        cert_pem: write(dir, &format!("{file}.pem"), &cert.to_pem().unwrap()),
        key_pem: write(
            dir,
            &format!("{file}.key"),
            &key.private_key_to_pem_pkcs8().unwrap(),
        ),
        cert,
        key,
    }
}

/// Issues a leaf certificate from `ca` (usable as TLS client and server).
pub fn issue(dir: &Path, ca: &Issued, spec: LeafSpec<'_>, file: &str) -> Issued {
    let key = if spec.ecdsa {
        ec_key()
    } else {
        PKey::from_rsa(Rsa::generate(spec.rsa_bits).unwrap()).unwrap()
    };
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", spec.cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_u32(spec.serial).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&time(spec.from_days)).unwrap();
    b.set_not_after(&time(spec.to_days)).unwrap();
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    let ctx = b.x509v3_context(Some(&ca.cert), None);
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&ctx)
        .unwrap();
    b.append_extension(san).unwrap();
    if spec.filler > 0 {
        let oid = Asn1Object::from_str("1.3.6.1.4.1.99999.1").unwrap();
        // OCTET STRING wrapping the filler, as the extension value.
        let mut der = vec![0x04, 0x82];
        der.extend_from_slice(&(spec.filler as u16).to_be_bytes());
        der.extend(std::iter::repeat(0x41).take(spec.filler));
        let val = Asn1OctetString::new_from_bytes(&der).unwrap();
        b.append_extension(X509Extension::new_from_der(&oid, false, &val).unwrap())
            .unwrap();
    }
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    Issued {
        cert_pem: write(dir, &format!("{file}.pem"), &cert.to_pem().unwrap()),
        key_pem: write(
            dir,
            &format!("{file}.key"),
            &key.private_key_to_pem_pkcs8().unwrap(),
        ),
        cert,
        key,
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else if n < 0x100 {
        v.extend([0x81, n as u8]);
    } else {
        v.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    v.extend_from_slice(content);
    v
}

/// UTCTime of now + `days`.
fn utc_time(days: i64) -> Vec<u8> {
    utc_time_secs(days * 86_400)
}

/// UTCTime of now + `secs`.
fn utc_time_secs(secs: i64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + secs;
    let (d, s) = (now.div_euclid(86_400), now.rem_euclid(86_400));
    let (year, month, day) = secmms_ber::calendar::civil_from_days(d);
    let text = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        year % 100,
        month,
        day,
        s / 3600,
        (s / 60) % 60,
        s % 60
    );
    tlv(0x17, text.as_bytes())
}

/// A v2 CRL signed by `ca` that revokes the given serials; valid from yesterday for
/// `next_update_days` days.
pub fn make_crl(ca: &Issued, serials: &[u32], next_update_days: i64) -> Vec<u8> {
    make_crl_at(ca, serials, -86_400, next_update_days)
}

/// Like [`make_crl`], issued `this_update_secs` from now (a later CRL supersedes an earlier one).
pub fn make_crl_at(
    ca: &Issued,
    serials: &[u32],
    this_update_secs: i64,
    next_update_days: i64,
) -> Vec<u8> {
    let alg = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    let mut revoked = Vec::new();
    for s in serials {
        let mut n = s.to_be_bytes().to_vec();
        while n.len() > 1 && n[0] == 0 && n[1] & 0x80 == 0 {
            n.remove(0);
        }
        if n[0] & 0x80 != 0 {
            n.insert(0, 0);
        }
        let mut entry = tlv(0x02, &n);
        entry.extend(utc_time(-1));
        revoked.extend(tlv(0x30, &entry));
    }
    let mut tbs = tlv(0x02, &[1]);
    tbs.extend_from_slice(&alg);
    tbs.extend(ca.cert.subject_name().to_der().unwrap());
    tbs.extend(utc_time_secs(this_update_secs));
    tbs.extend(utc_time(next_update_days));
    if !revoked.is_empty() {
        tbs.extend(tlv(0x30, &revoked));
    }
    let tbs = tlv(0x30, &tbs);
    let mut signer = Signer::new(MessageDigest::sha256(), &ca.key).unwrap();
    signer.update(&tbs).unwrap();
    let sig = signer.sign_to_vec().unwrap();
    let mut bits = vec![0u8];
    bits.extend(sig);
    let mut body = tbs;
    body.extend_from_slice(&alg);
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// PEM of a DER CRL.
pub fn crl_pem(der: &[u8]) -> Vec<u8> {
    openssl::x509::X509Crl::from_der(der)
        .expect("CRL parses")
        .to_pem()
        .unwrap()
}

impl Pki {
    /// Generates everything (a few RSA keys: about a second in a debug build).
    pub fn generate() -> Pki {
        let dir = temp_dir("pki");
        let ca = make_ca(&dir, "secmms test CA", "ca");
        let other_ca = make_ca(&dir, "secmms unknown CA", "other-ca");
        let server = issue(&dir, &ca, LeafSpec::new("server", 10), "server");
        let client = issue(&dir, &ca, LeafSpec::new("client", 11), "client");
        let server_ec = issue(
            &dir,
            &ca,
            LeafSpec {
                ecdsa: true,
                ..LeafSpec::new("server-ec", 12)
            },
            "server-ec",
        );
        let expired = issue(
            &dir,
            &ca,
            LeafSpec {
                from_days: -30,
                to_days: -1,
                ..LeafSpec::new("expired", 13)
            },
            "expired",
        );
        let not_yet_valid = issue(
            &dir,
            &ca,
            LeafSpec {
                from_days: 2,
                to_days: 30,
                ..LeafSpec::new("not-yet-valid", 14)
            },
            "not-yet-valid",
        );
        let revoked = issue(&dir, &ca, LeafSpec::new("revoked", 15), "revoked");
        let unknown = issue(&dir, &other_ca, LeafSpec::new("unknown", 16), "unknown");
        let oversize = issue(
            &dir,
            &ca,
            LeafSpec {
                filler: 9000,
                ..LeafSpec::new("oversize", 17)
            },
            "oversize",
        );
        assert!(oversize.cert.to_der().unwrap().len() > 8192);
        let crl = write(&dir, "ca.crl.pem", &crl_pem(&make_crl(&ca, &[15], 7)));
        Pki {
            dir,
            ca,
            other_ca,
            server,
            client,
            server_ec,
            expired,
            not_yet_valid,
            revoked,
            unknown,
            oversize,
            crl,
        }
    }

    /// A TLS configuration presenting `who`, trusting `ca`, with the CRL.
    pub fn config(&self, who: &Issued) -> TlsConfig {
        TlsConfig {
            enabled: true,
            cert: Some(who.cert_pem.clone()),
            key: Some(who.key_pem.clone()),
            ca: vec![self.ca.cert_pem.clone()],
            crl: vec![self.crl.clone()],
            handshake_timeout_secs: 5,
            ..Default::default()
        }
    }
}

/// A memory sink usable as `Arc<dyn SecurityEventSink>`.
pub fn sink() -> (Arc<MemorySink>, Arc<dyn SecurityEventSink>) {
    let m = Arc::new(MemorySink::new());
    let d: Arc<dyn SecurityEventSink> = m.clone();
    (m, d)
}

/// Mnemonics recorded so far.
pub fn mnemonics(m: &MemorySink) -> Vec<&'static str> {
    m.events().iter().map(|e| e.mnemonic).collect()
}

/// Waits (bounded) until the sink holds an event with `mnemonic`.
pub async fn wait_for(m: &MemorySink, mnemonic: &str) -> bool {
    for _ in 0..100 {
        if m.events().iter().any(|e| e.mnemonic == mnemonic) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with the interop peers: SECMMS_PYTHON, else the venv scripts/test.sh makes, else
/// python3.
pub fn python() -> String {
    std::env::var("SECMMS_PYTHON").unwrap_or_else(|_| {
        let venv = repo().join("target/peers-venv/bin/python");
        if venv.exists() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    })
}

/// A peer process, killed on drop.
pub struct Peer(pub std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound and released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
