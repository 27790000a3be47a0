//! Certificate tooling for IEC 62351-4 Annex G: a CA, end-entity certificates that meet the
//! Annex G profile, TLS certificates kept apart from them (G.2), CRLs, and a lint that explains
//! every Annex G finding ([`lint::lint`]).
//!
//! Certificates are built as DER with `secmms-ber` (the `TBSCertificate` and `TBSCertList`) and
//! signed over those exact octets with the `openssl` crate ([`crate::crypto::SigningKey::sign`]).
//! OpenSSL's `X509Builder` is not used because it cannot express a subject whose 2.5.4.106 value
//! is an OBJECT IDENTIFIER (see [`SubjectForm`]).
//!
//! Nothing here reads a clock or a global RNG: times and a [`RandomSource`] are passed in.

pub mod lint;

use openssl::pkey::{HasPublic, PKey};
use secmms_ber::{Limits, Oid, Reader, Tag, Writer};

use crate::cert::{CertError, ATTR_JID, ATTR_OBJECT_IDENTIFIER, MAX_CERT_LEN};
use crate::crypto::{Curve, RandomSource, SignatureAlgorithm, SigningKey};
use secmms_ber::calendar::civil_from_days;

/// Length of a certificate serial number in octets: a 128-bit value (Annex G.4 serialNumber).
pub const SERIAL_LEN: usize = 16;
/// Attempts at drawing a serial whose top bit is 0 before giving up (Annex G.4 DECISION:
/// regenerate until the MSB is 0; each draw succeeds with probability ≈ 1/2).
pub const SERIAL_MAX_DRAWS: usize = 64;
/// IECUserRoles extension OID of IEC 62351-8:2020 (Annex G.5).
pub const OID_IEC_USER_ROLES: &[u64] = &[1, 0, 62351, 8, 1];
/// Legacy IECUserRoles OID of IEC TS 62351-8:2011 (Annex G.5), recognised by the lint.
pub const OID_IEC_USER_ROLES_LEGACY: &[u64] = &[1, 2, 840, 10070, 8, 1];
/// `roleDefinition` written into issued IECUserRoles (the value of the Annex G.5 example).
pub const ROLE_DEFINITION: &str = "IEC62351-8";
/// `operation` written into issued IECUserRoles: the value 3 of the Annex G.5 example DER.
pub const ROLE_OPERATION: i64 = 3;
/// `revision` written into issued IECUserRoles (the Annex G.5 example uses 255).
pub const ROLE_REVISION: i64 = 255;
/// Default validity of an end-entity certificate in days (Annex G.4 validity: typically 2–3
/// years).
pub const DEFAULT_EE_DAYS: u32 = 730;
/// Default validity of a CA certificate in days (Annex G.4: up to 10 years in stable
/// environments).
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default `nextUpdate - thisUpdate` of an issued CRL, in days (62351-4 §6.2 revocation period
/// DECISION: 24 h).
pub const DEFAULT_CRL_DAYS: u32 = 1;

pub(crate) const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
pub(crate) const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
pub(crate) const OID_SKI: &[u64] = &[2, 5, 29, 14];
pub(crate) const OID_AKI: &[u64] = &[2, 5, 29, 35];
pub(crate) const OID_CRL_DP: &[u64] = &[2, 5, 29, 31];
pub(crate) const OID_AIA: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
pub(crate) const OID_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
pub(crate) const OID_EKU: &[u64] = &[2, 5, 29, 37];
pub(crate) const OID_SAN: &[u64] = &[2, 5, 29, 17];
pub(crate) const OID_CRL_NUMBER: &[u64] = &[2, 5, 29, 20];
pub(crate) const OID_SERVER_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
pub(crate) const OID_CLIENT_AUTH: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];
const OID_CN: &[u64] = &[2, 5, 4, 3];
const OID_SHA256_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

// keyUsage bits (RFC 5280 §4.2.1.3), as (octet index, mask).
const KU_DIGITAL_SIGNATURE: u8 = 0x80;
const KU_KEY_ENCIPHERMENT: u8 = 0x20;
const KU_KEY_AGREEMENT: u8 = 0x08;
const KU_KEY_CERT_SIGN: u8 = 0x04;
const KU_CRL_SIGN: u8 = 0x02;

/// Errors of the certificate tooling.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// An input is not acceptable (bad OID, empty JID, bad time, ...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A certificate or CRL could not be decoded.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// OpenSSL failed (key generation, signing).
    #[error("OpenSSL: {0}")]
    OpenSsl(String),
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

impl From<openssl::error::ErrorStack> for ToolError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        ToolError::OpenSsl(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for ToolError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        ToolError::OpenSsl(e.to_string())
    }
}

/// DER content of an OBJECT IDENTIFIER given by constant arcs (at least two, first ≤ 2).
pub(crate) fn oid_content(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(arcs.len() * 2);
    let first = match arcs {
        [a, b, ..] => a.saturating_mul(40).saturating_add(*b),
        [a] => a.saturating_mul(40),
        [] => 0,
    };
    let mut push = |mut v: u64| {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = (v & 0x7f) as u8 | if i == tmp.len() - 1 { 0 } else { 0x80 };
            v >>= 7;
            if v == 0 || i == 0 {
                break;
            }
        }
        out.extend_from_slice(&tmp[i..]);
    };
    push(first);
    for a in arcs.iter().skip(2) {
        push(*a);
    }
    out
}

/// Key types of Annex G.4 / clause 8 offered by the tooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA, 2048-bit modulus (the Annex G.4 minimum).
    Rsa2048,
    /// ECDSA on secp256r1 (P-256).
    P256,
    /// ECDSA on brainpoolP256r1.
    Bp256,
}

impl KeyType {
    /// Command-line names: `rsa2048`, `p256`, `bp256`.
    pub const NAMES: &'static [&'static str] = &["rsa2048", "p256", "bp256"];

    /// Generates a fresh key of this type.
    pub fn generate(self) -> Result<SigningKey, ToolError> {
        Ok(match self {
            KeyType::Rsa2048 => SigningKey::generate_rsa(2048)?,
            KeyType::P256 => SigningKey::generate_ec(Curve::P256)?,
            KeyType::Bp256 => SigningKey::generate_ec(Curve::BrainpoolP256r1)?,
        })
    }
}

impl std::str::FromStr for KeyType {
    type Err = ToolError;
    fn from_str(s: &str) -> Result<Self, ToolError> {
        match s {
            "rsa2048" => Ok(KeyType::Rsa2048),
            "p256" => Ok(KeyType::P256),
            "bp256" => Ok(KeyType::Bp256),
            _ => Err(ToolError::Invalid(format!(
                "key type {s:?} (use rsa2048, p256 or bp256)"
            ))),
        }
    }
}

/// How the 2.5.4.106 `objectIdentifier` value of an OSI-bound subject is encoded (Annex G.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectForm {
    /// OBJECT IDENTIFIER (`06 ...`): the Annex G.6.2 syntax and the spec DECISION for issuing.
    /// OpenSSL 3.0 (`d2i_X509`, hence `openssl x509`, `openssl verify` and every OpenSSL-based
    /// validator, including secmms' own [`crate::cert::OpenSslValidator`]) and mbedTLS cannot
    /// decode such a certificate at all: X509_NAME entries only accept string types.
    Oid,
    /// UTF8String holding the dotted OID: the tolerated deviation of the Annex G practical notes.
    /// Every tool can read it; Annex G-aware peers (secmms included) accept it with a warning.
    Utf8,
}

/// Default subject form of `secmms cert issue`.
///
/// DECISION (Annex G practical notes vs. tool support): the spec DECISION is to issue the OBJECT
/// IDENTIFIER form, but no OpenSSL-based stack — secmms' own certificate validator included —
/// can even parse such a certificate, so a certificate in that form cannot be used with secmms
/// today. The default is therefore the tolerated UTF8String form; `--subject-form oid` issues
/// the standard form for peers that handle it.
pub const DEFAULT_SUBJECT_FORM: SubjectForm = SubjectForm::Utf8;

impl std::str::FromStr for SubjectForm {
    type Err = ToolError;
    fn from_str(s: &str) -> Result<Self, ToolError> {
        match s {
            "oid" => Ok(SubjectForm::Oid),
            "utf8" => Ok(SubjectForm::Utf8),
            _ => Err(ToolError::Invalid(format!(
                "subject form {s:?} (use oid or utf8)"
            ))),
        }
    }
}

/// The environment address an application certificate is bound to (Annex G.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// OSI: subject 2.5.4.106 = AP-title with the AE-qualifier appended as a final arc (G.6.2).
    Osi {
        /// AP-title (form 2, an OBJECT IDENTIFIER).
        ap_title: Oid,
        /// AE-qualifier (form 2, an INTEGER ≥ 0).
        ae_qualifier: u64,
    },
    /// XMPP: subject 2.5.4.105 = bare JID (G.6.3).
    Jid(String),
}

impl Binding {
    /// The AP-title with the AE-qualifier appended (G.6.2), e.g. 1.1.1.999.1 + 12 →
    /// 1.1.1.999.1.12.
    pub fn subject_oid(ap_title: &Oid, ae_qualifier: u64) -> Result<Oid, ToolError> {
        let mut arcs = ap_title.arcs().to_vec();
        arcs.push(ae_qualifier);
        Oid::new(&arcs).map_err(|_| ToolError::Invalid("AP-title too long".into()))
    }

    /// The identity this binding puts into the subject.
    pub fn identity(&self) -> Result<crate::cert::PeerIdentity, ToolError> {
        Ok(match self {
            Binding::Osi {
                ap_title,
                ae_qualifier,
            } => crate::cert::PeerIdentity::ApTitle(Binding::subject_oid(ap_title, *ae_qualifier)?),
            Binding::Jid(j) => crate::cert::PeerIdentity::Jid(j.clone()),
        })
    }
}

/// Validity period, seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
}

impl Validity {
    /// `days` days starting at `now`.
    pub fn days_from(now: i64, days: u32) -> Validity {
        Validity {
            not_before: now,
            not_after: now.saturating_add(i64::from(days).saturating_mul(86_400)),
        }
    }
}

/// Draws a 128-bit serial number (Annex G.4): a random UUID (X.667 version 4, variant bits set),
/// redrawn until its top bit is 0 and its first octet non-zero, so that the DER INTEGER is
/// non-negative and always exactly [`SERIAL_LEN`] content octets.
pub fn random_serial(rng: &mut dyn RandomSource) -> Result<[u8; SERIAL_LEN], ToolError> {
    for _ in 0..SERIAL_MAX_DRAWS {
        let mut s = [0u8; SERIAL_LEN];
        rng.fill(&mut s).map_err(|_| ToolError::Random)?;
        s[6] = (s[6] & 0x0f) | 0x40; // UUID version 4 (random)
        s[8] = (s[8] & 0x3f) | 0x80; // RFC 4122 / X.667 variant
        if s[0] & 0x80 == 0 && s[0] != 0 {
            return Ok(s);
        }
    }
    Err(ToolError::Random)
}

// ------------------------------------------------------------------ DER helpers

/// `t` (seconds since the Unix epoch) as the `YYMMDDHHMMSSZ` text OpenSSL's CA database
/// (`index.txt`) uses.
pub fn index_time(t: i64) -> String {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    format!(
        "{:02}{mo:02}{d:02}{:02}{:02}{:02}Z",
        y.rem_euclid(100),
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Writes an X.509 `Time`: UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
fn write_time(w: &mut Writer, t: i64) -> Result<(), ToolError> {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(ToolError::Invalid("time outside years 0000-9999".into()));
    }
    let (h, mi, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if (1950..2050).contains(&y) {
        let v = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        w.octets(Tag::UTC_TIME, v.as_bytes());
    } else {
        let v = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        w.octets(Tag::GENERALIZED_TIME, v.as_bytes());
    }
    Ok(())
}

/// DER INTEGER content of a non-negative big-endian magnitude (leading zeros stripped, a zero
/// octet added when the top bit is set).
fn unsigned_content(mag: &[u8]) -> Vec<u8> {
    let first = mag.iter().position(|b| *b != 0).unwrap_or(mag.len());
    let m = &mag[first..];
    let mut v = Vec::with_capacity(m.len() + 1);
    if m.first().map_or(true, |b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(m);
    v
}

/// `AlgorithmIdentifier` of the signature made by `key` (RFC 4055 / RFC 5758).
fn sig_alg_id(key: &SigningKey) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| match key.algorithm() {
        SignatureAlgorithm::RsaPkcs1Sha256 => {
            w.tlv(Tag::OID, &oid_content(OID_SHA256_RSA));
            w.null(Tag::NULL);
        }
        SignatureAlgorithm::EcdsaSha256 => w.tlv(Tag::OID, &oid_content(OID_ECDSA_SHA256)),
    });
    w.finish()
}

/// `Name` with one RDN holding one attribute of a string or OID value.
fn single_rdn_name(attr: &[u64], value_tag: Tag, value: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::SET, |w| {
            w.constructed(Tag::SEQUENCE, |w| {
                w.tlv(Tag::OID, &oid_content(attr));
                w.tlv(value_tag, value);
            })
        })
    });
    w.finish()
}

/// The subject `Name` of an application certificate (Annex G.6): one RDN with 2.5.4.106
/// (OID or dotted UTF8String per `form`) or 2.5.4.105 (UTF8String JID).
pub fn subject_name(binding: &Binding, form: SubjectForm) -> Result<Vec<u8>, ToolError> {
    Ok(match binding {
        Binding::Osi {
            ap_title,
            ae_qualifier,
        } => {
            let id = Binding::subject_oid(ap_title, *ae_qualifier)?;
            match form {
                SubjectForm::Oid => {
                    single_rdn_name(ATTR_OBJECT_IDENTIFIER, Tag::OID, &id.to_ber_content())
                }
                SubjectForm::Utf8 => single_rdn_name(
                    ATTR_OBJECT_IDENTIFIER,
                    Tag::UTF8_STRING,
                    id.to_string().as_bytes(),
                ),
            }
        }
        Binding::Jid(j) => {
            if j.is_empty() || j.contains('/') || j.chars().any(char::is_whitespace) {
                return Err(ToolError::Invalid(format!("{j:?} is not a bare JID")));
            }
            single_rdn_name(ATTR_JID, Tag::UTF8_STRING, j.as_bytes())
        }
    })
}

/// A `Name` with a single commonName (CAs and TLS certificates).
pub fn common_name(cn: &str) -> Vec<u8> {
    single_rdn_name(OID_CN, Tag::UTF8_STRING, cn.as_bytes())
}

fn extension(w: &mut Writer, id: &[u64], critical: bool, value: &[u8]) {
    w.constructed(Tag::SEQUENCE, |w| {
        w.tlv(Tag::OID, &oid_content(id));
        if critical {
            w.boolean(Tag::BOOLEAN, true);
        }
        w.octets(Tag::OCTET_STRING, value);
    });
}

fn key_usage_value(first: u8) -> Vec<u8> {
    // DER BIT STRING: strip trailing zero bits.
    let unused = first.trailing_zeros().min(7) as u8;
    let mut w = Writer::new();
    w.bit_string(Tag::BIT_STRING, unused, &[first]);
    w.finish()
}

/// SHA-1 over the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1).
fn key_identifier(spki: &[u8]) -> Result<[u8; 20], ToolError> {
    let bits = spki_key_bits(spki)?;
    let d = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), bits)?;
    let mut out = [0u8; 20];
    out.copy_from_slice(&d);
    Ok(out)
}

fn spki_key_bits(spki: &[u8]) -> Result<&[u8], ToolError> {
    let bad = |_| ToolError::Invalid("SubjectPublicKeyInfo".into());
    let mut r = Reader::new(spki, Limits::default());
    let seq = r.expect(Tag::SEQUENCE).map_err(bad)?;
    let mut c = seq.children().map_err(bad)?;
    c.expect(Tag::SEQUENCE).map_err(bad)?;
    let bs = c.expect(Tag::BIT_STRING).map_err(bad)?;
    Ok(bs.as_bit_string().map_err(bad)?.1)
}

/// DER SubjectPublicKeyInfo of a key.
pub fn spki_der<T: HasPublic>(key: &PKey<T>) -> Result<Vec<u8>, ToolError> {
    Ok(key.public_key_to_der()?)
}

/// Signs a DER `TBSCertificate` (or `TBSCertList`) and wraps it with the algorithm and
/// signature: `SEQUENCE { tbs, signatureAlgorithm, signatureValue }`. The signature covers the
/// given octets exactly.
pub fn sign_tbs(tbs: &[u8], issuer_key: &SigningKey) -> Result<Vec<u8>, ToolError> {
    let sig = issuer_key.sign(tbs)?;
    let alg = sig_alg_id(issuer_key);
    let mut w = Writer::with_capacity(tbs.len() + sig.len() + 32);
    w.constructed(Tag::SEQUENCE, |w| {
        w.raw(tbs);
        w.raw(&alg);
        w.bit_string(Tag::BIT_STRING, 0, &sig);
    });
    Ok(w.finish())
}

/// What a `TBSCertificate` carries besides the fixed Annex G choices.
struct Tbs<'a> {
    serial: &'a [u8; SERIAL_LEN],
    issuer_name: &'a [u8],
    subject_name: &'a [u8],
    validity: Validity,
    spki: &'a [u8],
    sig_alg: &'a [u8],
    extensions: Vec<u8>,
}

fn tbs_der(t: &Tbs<'_>) -> Result<Vec<u8>, ToolError> {
    if t.validity.not_after <= t.validity.not_before {
        return Err(ToolError::Invalid("notAfter must follow notBefore".into()));
    }
    let mut times = Writer::new();
    let mut err = Ok(());
    times.constructed(Tag::SEQUENCE, |w| {
        err =
            write_time(w, t.validity.not_before).and_then(|_| write_time(w, t.validity.not_after));
    });
    err?;
    let times = times.finish();
    let serial = unsigned_content(t.serial);
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::context(0, true), |w| w.integer(Tag::INTEGER, 2)); // v3
        w.tlv(Tag::INTEGER, &serial);
        w.raw(t.sig_alg);
        w.raw(t.issuer_name);
        w.raw(&times);
        w.raw(t.subject_name);
        w.raw(t.spki);
        // No issuerUniqueID / subjectUniqueID (Annex G.4).
        w.constructed(Tag::context(3, true), |w| {
            w.constructed(Tag::SEQUENCE, |w| w.raw(&t.extensions))
        });
    });
    Ok(w.finish())
}

/// A certificate authority loaded in memory: its DER certificate and signing key.
#[derive(Debug, Clone)]
pub struct Ca {
    /// DER certificate.
    pub cert_der: Vec<u8>,
    /// Private key.
    pub key: SigningKey,
}

/// Fields of a CA certificate needed to issue under it, decoded from its DER.
struct CaFacts {
    subject: Vec<u8>,
    ski: [u8; 20],
}

fn ca_facts(der: &[u8]) -> Result<CaFacts, ToolError> {
    let bad = |_| ToolError::Cert(CertError::Malformed("CA certificate"));
    let limits = Limits {
        max_depth: 16,
        max_len: MAX_CERT_LEN,
    };
    let mut top = Reader::new(der, limits);
    let cert = top.expect(Tag::SEQUENCE).map_err(bad)?;
    let mut c = cert.children().map_err(bad)?;
    let tbs = c.expect(Tag::SEQUENCE).map_err(bad)?;
    let mut t = tbs.children().map_err(bad)?;
    t.optional(Tag::context(0, true)).map_err(bad)?;
    t.expect(Tag::INTEGER).map_err(bad)?;
    t.expect(Tag::SEQUENCE).map_err(bad)?;
    t.expect(Tag::SEQUENCE).map_err(bad)?;
    t.expect(Tag::SEQUENCE).map_err(bad)?;
    let subject = t.expect(Tag::SEQUENCE).map_err(bad)?;
    let spki = t.expect(Tag::SEQUENCE).map_err(bad)?;
    Ok(CaFacts {
        subject: subject.raw().to_vec(),
        ski: key_identifier(spki.raw())?,
    })
}

/// Creates a self-signed CA certificate: v3, random serial, SHA-256, basicConstraints cA TRUE
/// (critical), keyUsage keyCertSign + cRLSign (critical), subjectKeyIdentifier.
pub fn create_ca(
    cn: &str,
    key: &SigningKey,
    validity: Validity,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, ToolError> {
    let name = common_name(cn);
    let spki = spki_der(key.pkey())?;
    let ski = key_identifier(&spki)?;
    let mut bc = Writer::new();
    bc.constructed(Tag::SEQUENCE, |w| w.boolean(Tag::BOOLEAN, true));
    let mut ski_v = Writer::new();
    ski_v.octets(Tag::OCTET_STRING, &ski);
    let mut ext = Writer::new();
    extension(&mut ext, OID_BASIC_CONSTRAINTS, true, &bc.finish());
    extension(
        &mut ext,
        OID_KEY_USAGE,
        true,
        &key_usage_value(KU_KEY_CERT_SIGN | KU_CRL_SIGN),
    );
    extension(&mut ext, OID_SKI, false, &ski_v.finish());
    let serial = random_serial(rng)?;
    let alg = sig_alg_id(key);
    let tbs = tbs_der(&Tbs {
        serial: &serial,
        issuer_name: &name,
        subject_name: &name,
        validity,
        spki: &spki,
        sig_alg: &alg,
        extensions: ext.finish(),
    })?;
    sign_tbs(&tbs, key)
}

/// Options of an Annex G application (end-entity) certificate.
#[derive(Debug, Clone)]
pub struct EndEntityRequest {
    /// Subject binding (G.6).
    pub binding: Binding,
    /// Encoding of a 2.5.4.106 value.
    pub subject_form: SubjectForm,
    /// IEC 62351-8 role to carry in IECUserRoles (`userRole`), if any (G.5).
    pub role: Option<u32>,
    /// Area of responsibility (`aor`) written with the role.
    pub role_aor: String,
    /// CRL distribution point URL (G.5), if any.
    pub crl_url: Option<String>,
    /// OCSP responder URL (authorityInfoAccess id-ad-ocsp), if any.
    pub ocsp_url: Option<String>,
    /// Validity period.
    pub validity: Validity,
}

/// IECUserRoles value (IEC 62351-8; Annex G.5 example layout): `SEQUENCE OF SEQUENCE {
/// userRole SEQUENCE OF RoleId, aor UTF8String, revision INTEGER, roleDefinition UTF8String,
/// operation ENUMERATED }`.
pub fn iec_user_roles(role: u32, aor: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::SEQUENCE, |w| {
            w.constructed(Tag::SEQUENCE, |w| w.unsigned(Tag::INTEGER, u64::from(role)));
            w.octets(Tag::UTF8_STRING, aor.as_bytes());
            w.integer(Tag::INTEGER, ROLE_REVISION);
            w.octets(Tag::UTF8_STRING, ROLE_DEFINITION.as_bytes());
            w.integer(Tag::ENUMERATED, ROLE_OPERATION);
        })
    });
    w.finish()
}

/// CRLDistributionPoints with one DistributionPoint { distributionPoint fullName URI } — no
/// `reasons`, no `cRLIssuer` (the CA issues its CRL), Annex G.5.
pub fn crl_distribution_points(url: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::SEQUENCE, |w| {
            w.constructed(Tag::context(0, true), |w| {
                w.constructed(Tag::context(0, true), |w| {
                    w.octets(Tag::context(6, false), url.as_bytes())
                })
            })
        })
    });
    w.finish()
}

/// The authorityInfoAccess value naming one OCSP responder (RFC 5280 §4.2.2.1, RFC 6960).
pub fn authority_info_access_ocsp(url: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::SEQUENCE, |w| {
            w.tlv(Tag::OID, &oid_content(OID_OCSP));
            w.octets(Tag::context(6, false), url.as_bytes());
        })
    });
    w.finish()
}

fn url_extensions(
    ext: &mut Writer,
    crl_url: &Option<String>,
    ocsp_url: &Option<String>,
) -> Result<(), ToolError> {
    if let Some(url) = crl_url {
        if url.is_empty() || !is_ia5(url) {
            return Err(ToolError::Invalid("CRL URL must be printable ASCII".into()));
        }
        extension(ext, OID_CRL_DP, false, &crl_distribution_points(url));
    }
    if let Some(url) = ocsp_url {
        if url.is_empty() || !is_ia5(url) {
            return Err(ToolError::Invalid(
                "OCSP URL must be printable ASCII".into(),
            ));
        }
        extension(ext, OID_AIA, false, &authority_info_access_ocsp(url));
    }
    Ok(())
}

fn aki_value(ski: &[u8; 20]) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| w.octets(Tag::context(0, false), ski));
    w.finish()
}

fn is_ia5(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Issues an Annex G application certificate for `subject_key` under `ca`: v3, 128-bit random
/// serial, SHA-256 signature, no unique IDs, keyUsage digitalSignature + keyAgreement (critical,
/// both bits also for RSA per the Annex G DECISION), the G.6 subject, authorityKeyIdentifier, and
/// optionally CRL distribution points and IECUserRoles.
pub fn issue_end_entity<T: HasPublic>(
    req: &EndEntityRequest,
    subject_key: &PKey<T>,
    ca: &Ca,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, ToolError> {
    crate::crypto::key_kind(subject_key)
        .map_err(|_| ToolError::Invalid("subject key is not RSA ≥ 2048, P-256 or bp256".into()))?;
    let facts = ca_facts(&ca.cert_der)?;
    let subject = subject_name(&req.binding, req.subject_form)?;
    let spki = spki_der(subject_key)?;
    let mut ext = Writer::new();
    extension(
        &mut ext,
        OID_KEY_USAGE,
        true,
        &key_usage_value(KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT),
    );
    extension(&mut ext, OID_AKI, false, &aki_value(&facts.ski));
    url_extensions(&mut ext, &req.crl_url, &req.ocsp_url)?;
    if let Some(role) = req.role {
        extension(
            &mut ext,
            OID_IEC_USER_ROLES,
            false,
            &iec_user_roles(role, &req.role_aor),
        );
    }
    let serial = random_serial(rng)?;
    let alg = sig_alg_id(&ca.key);
    let tbs = tbs_der(&Tbs {
        serial: &serial,
        issuer_name: &facts.subject,
        subject_name: &subject,
        validity: req.validity,
        spki: &spki,
        sig_alg: &alg,
        extensions: ext.finish(),
    })?;
    let der = sign_tbs(&tbs, &ca.key)?;
    if der.len() > MAX_CERT_LEN {
        return Err(ToolError::Invalid(format!(
            "certificate is {} octets, above the Annex G.3 limit of {MAX_CERT_LEN}",
            der.len()
        )));
    }
    Ok(der)
}

/// Options of a TLS certificate (62351-4 clause 6; kept apart from the application certificate
/// per Annex G.2).
#[derive(Debug, Clone)]
pub struct TlsRequest {
    /// Subject commonName.
    pub common_name: String,
    /// subjectAltName dNSName entries.
    pub dns: Vec<String>,
    /// subjectAltName iPAddress entries.
    pub ips: Vec<std::net::IpAddr>,
    /// CRL distribution point URL, if any.
    pub crl_url: Option<String>,
    /// OCSP responder URL (authorityInfoAccess id-ad-ocsp), if any.
    pub ocsp_url: Option<String>,
    /// Validity period.
    pub validity: Validity,
}

/// Issues a TLS certificate: extendedKeyUsage serverAuth + clientAuth, subjectAltName, keyUsage
/// digitalSignature (+ keyEncipherment for RSA, keyAgreement for EC).
pub fn issue_tls<T: HasPublic>(
    req: &TlsRequest,
    subject_key: &PKey<T>,
    ca: &Ca,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, ToolError> {
    let kind = crate::crypto::key_kind(subject_key)
        .map_err(|_| ToolError::Invalid("subject key is not RSA ≥ 2048, P-256 or bp256".into()))?;
    if req.common_name.is_empty() {
        return Err(ToolError::Invalid("empty common name".into()));
    }
    let facts = ca_facts(&ca.cert_der)?;
    let subject = common_name(&req.common_name);
    let spki = spki_der(subject_key)?;
    let ku = match kind {
        crate::crypto::KeyKind::Rsa(_) => KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT,
        crate::crypto::KeyKind::Ec(_) => KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT,
    };
    let mut eku = Writer::new();
    eku.constructed(Tag::SEQUENCE, |w| {
        w.tlv(Tag::OID, &oid_content(OID_SERVER_AUTH));
        w.tlv(Tag::OID, &oid_content(OID_CLIENT_AUTH));
    });
    for d in &req.dns {
        if d.is_empty() || !is_ia5(d) {
            return Err(ToolError::Invalid(format!("DNS name {d:?}")));
        }
    }
    let mut ext = Writer::new();
    extension(&mut ext, OID_KEY_USAGE, true, &key_usage_value(ku));
    extension(&mut ext, OID_EKU, false, &eku.finish());
    if !req.dns.is_empty() || !req.ips.is_empty() {
        let mut san = Writer::new();
        san.constructed(Tag::SEQUENCE, |w| {
            for d in &req.dns {
                w.octets(Tag::context(2, false), d.as_bytes());
            }
            for ip in &req.ips {
                match ip {
                    std::net::IpAddr::V4(a) => w.octets(Tag::context(7, false), &a.octets()),
                    std::net::IpAddr::V6(a) => w.octets(Tag::context(7, false), &a.octets()),
                }
            }
        });
        extension(&mut ext, OID_SAN, false, &san.finish());
    }
    extension(&mut ext, OID_AKI, false, &aki_value(&facts.ski));
    url_extensions(&mut ext, &req.crl_url, &req.ocsp_url)?;
    let serial = random_serial(rng)?;
    let alg = sig_alg_id(&ca.key);
    let tbs = tbs_der(&Tbs {
        serial: &serial,
        issuer_name: &facts.subject,
        subject_name: &subject,
        validity: req.validity,
        spki: &spki,
        sig_alg: &alg,
        extensions: ext.finish(),
    })?;
    sign_tbs(&tbs, &ca.key)
}

/// A revoked certificate entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial number content octets (as in the certificate).
    pub serial: Vec<u8>,
    /// Revocation time, seconds since the Unix epoch.
    pub revoked_at: i64,
}

/// Options of an IEC 62351-8 attribute certificate (`secmms cert issue-ac`).
#[derive(Debug, Clone)]
pub struct AttributeCertRequest {
    /// The holder's entity (application) certificate, DER: the attribute certificate names its
    /// issuer and serial number (`holder.baseCertificateID`).
    pub holder_cert: Vec<u8>,
    /// The IEC 62351-8 roles (RoleId) of the IECUserRoles attribute.
    pub roles: Vec<u32>,
    /// Area of responsibility written with the roles.
    pub aor: String,
    /// Validity period (attrCertValidityPeriod).
    pub validity: Validity,
}

/// `t` as a GeneralizedTime `YYYYMMDDHHMMSSZ` (RFC 5755 §4.2.6).
fn write_generalized(w: &mut Writer, t: i64) -> Result<(), ToolError> {
    let (y, mo, d) = civil_from_days(t.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return Err(ToolError::Invalid("time outside years 0000-9999".into()));
    }
    let secs = t.rem_euclid(86_400);
    let v = format!(
        "{y:04}{mo:02}{d:02}{:02}{:02}{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    w.octets(Tag::GENERALIZED_TIME, v.as_bytes());
    Ok(())
}

/// Issues a v2 attribute certificate (X.509 / RFC 5755) signed by the attribute authority `aa`:
/// holder bound by baseCertificateID to `req.holder_cert`, issuer in v2Form (the authority's
/// subject as a directoryName), a 128-bit random serial, GeneralizedTime validity, and one
/// IECUserRoles attribute (1.0.62351.8.1) carrying the roles in the Annex G.5 layout.
/// DECISION: the attribute reuses the IECUserRoles extension's OID and value, as IEC 62351-8
/// does for the attribute-certificate profile; no AC extensions are written.
pub fn issue_attribute_cert(
    req: &AttributeCertRequest,
    aa: &Ca,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, ToolError> {
    if req.roles.is_empty() {
        return Err(ToolError::Invalid(
            "an attribute certificate needs a role".into(),
        ));
    }
    if req.validity.not_after <= req.validity.not_before {
        return Err(ToolError::Invalid("notAfter must follow notBefore".into()));
    }
    let holder = crate::cert::CertInfo::parse(&req.holder_cert)?;
    let facts = ca_facts(&aa.cert_der)?;
    let serial = random_serial(rng)?;
    let alg = sig_alg_id(&aa.key);
    let mut roles = Writer::new();
    roles.constructed(Tag::SEQUENCE, |w| {
        w.constructed(Tag::SEQUENCE, |w| {
            w.constructed(Tag::SEQUENCE, |w| {
                for r in &req.roles {
                    w.unsigned(Tag::INTEGER, u64::from(*r));
                }
            });
            w.octets(Tag::UTF8_STRING, req.aor.as_bytes());
            w.integer(Tag::INTEGER, ROLE_REVISION);
            w.octets(Tag::UTF8_STRING, ROLE_DEFINITION.as_bytes());
            w.integer(Tag::ENUMERATED, ROLE_OPERATION);
        })
    });
    let roles = roles.finish();
    let mut times = Writer::new();
    let mut err = Ok(());
    times.constructed(Tag::SEQUENCE, |w| {
        err = write_generalized(w, req.validity.not_before)
            .and_then(|_| write_generalized(w, req.validity.not_after));
    });
    err?;
    let times = times.finish();
    let mut w = Writer::new();
    w.constructed(Tag::SEQUENCE, |w| {
        w.integer(Tag::INTEGER, 1); // v2
        w.constructed(Tag::SEQUENCE, |w| {
            // holder.baseCertificateID [0] IssuerSerial
            w.constructed(Tag::context(0, true), |w| {
                w.constructed(Tag::SEQUENCE, |w| {
                    w.constructed(Tag::context(4, true), |w| w.raw(&holder.issuer_name))
                });
                w.tlv(Tag::INTEGER, &holder.serial);
            })
        });
        // issuer v2Form [0] { issuerName GeneralNames }
        w.constructed(Tag::context(0, true), |w| {
            w.constructed(Tag::SEQUENCE, |w| {
                w.constructed(Tag::context(4, true), |w| w.raw(&facts.subject))
            })
        });
        w.raw(&alg);
        w.tlv(Tag::INTEGER, &unsigned_content(&serial));
        w.raw(&times);
        w.constructed(Tag::SEQUENCE, |w| {
            w.constructed(Tag::SEQUENCE, |w| {
                w.tlv(Tag::OID, &oid_content(OID_IEC_USER_ROLES));
                w.constructed(Tag::SET, |w| w.raw(&roles));
            })
        });
    });
    let der = sign_tbs(&w.finish(), &aa.key)?;
    if der.len() > MAX_CERT_LEN {
        return Err(ToolError::Invalid(format!(
            "attribute certificate is {} octets, above the limit of {MAX_CERT_LEN}",
            der.len()
        )));
    }
    Ok(der)
}

/// Issues a v2 CRL (RFC 5280 §5) signed by `ca`, with cRLNumber and authorityKeyIdentifier.
pub fn issue_crl(
    ca: &Ca,
    revoked: &[RevokedEntry],
    crl_number: u64,
    this_update: i64,
    next_update: i64,
) -> Result<Vec<u8>, ToolError> {
    if next_update <= this_update {
        return Err(ToolError::Invalid(
            "nextUpdate must follow thisUpdate".into(),
        ));
    }
    let facts = ca_facts(&ca.cert_der)?;
    let alg = sig_alg_id(&ca.key);
    let mut body = Writer::new();
    body.integer(Tag::INTEGER, 1); // v2
    body.raw(&alg);
    body.raw(&facts.subject);
    write_time(&mut body, this_update)?;
    write_time(&mut body, next_update)?;
    if !revoked.is_empty() {
        let mut list = Writer::new();
        for r in revoked {
            let mut t = Writer::new();
            write_time(&mut t, r.revoked_at)?;
            let t = t.finish();
            let s = unsigned_content(&r.serial);
            list.constructed(Tag::SEQUENCE, |w| {
                w.tlv(Tag::INTEGER, &s);
                w.raw(&t);
            });
        }
        let list = list.finish();
        body.constructed(Tag::SEQUENCE, |w| w.raw(&list));
    }
    let mut num = Writer::new();
    num.unsigned(Tag::INTEGER, crl_number);
    let mut ext = Writer::new();
    extension(&mut ext, OID_AKI, false, &aki_value(&facts.ski));
    extension(&mut ext, OID_CRL_NUMBER, false, &num.finish());
    let ext = ext.finish();
    body.constructed(Tag::context(0, true), |w| {
        w.constructed(Tag::SEQUENCE, |w| w.raw(&ext))
    });
    let body = body.finish();
    let mut tbs = Writer::new();
    tbs.constructed(Tag::SEQUENCE, |w| w.raw(&body));
    sign_tbs(&tbs.finish(), &ca.key)
}

/// Serial number content octets of a DER certificate (works for both subject forms, unlike
/// OpenSSL for the OID form).
pub fn cert_serial(der: &[u8]) -> Result<Vec<u8>, ToolError> {
    Ok(crate::cert::CertInfo::parse(der)?.serial)
}

/// True when `cert_der` names `ca_der`'s subject as its issuer and carries a valid signature by
/// the CA key (checked over the received `tbsCertificate` octets, so it works for both subject
/// forms, unlike OpenSSL for the OID form).
pub fn issued_by(cert_der: &[u8], ca_der: &[u8]) -> Result<bool, ToolError> {
    let bad = |_| ToolError::Cert(CertError::Malformed("certificate"));
    let limits = Limits {
        max_depth: 16,
        max_len: MAX_CERT_LEN,
    };
    let ca = ca_facts(ca_der)?;
    let ca_spki = {
        let mut top = Reader::new(ca_der, limits);
        let cert = top.expect(Tag::SEQUENCE).map_err(bad)?;
        let mut c = cert.children().map_err(bad)?;
        let mut t = c
            .expect(Tag::SEQUENCE)
            .map_err(bad)?
            .children()
            .map_err(bad)?;
        t.optional(Tag::context(0, true)).map_err(bad)?;
        for _ in 0..5 {
            t.read().map_err(bad)?;
        }
        t.expect(Tag::SEQUENCE).map_err(bad)?.raw().to_vec()
    };
    let mut top = Reader::new(cert_der, limits);
    let cert = top.expect(Tag::SEQUENCE).map_err(bad)?;
    let mut c = cert.children().map_err(bad)?;
    let tbs = c.expect(Tag::SEQUENCE).map_err(bad)?;
    c.expect(Tag::SEQUENCE).map_err(bad)?;
    let sig = c.expect(Tag::BIT_STRING).map_err(bad)?;
    let (_, sig) = sig.as_bit_string().map_err(bad)?;
    let mut t = tbs.children().map_err(bad)?;
    t.optional(Tag::context(0, true)).map_err(bad)?;
    t.expect(Tag::INTEGER).map_err(bad)?;
    t.expect(Tag::SEQUENCE).map_err(bad)?;
    let issuer = t.expect(Tag::SEQUENCE).map_err(bad)?;
    if issuer.raw() != ca.subject.as_slice() {
        return Ok(false);
    }
    let key = PKey::public_key_from_der(&ca_spki)?;
    let alg = crate::crypto::algorithm_for(&key)?;
    Ok(crate::crypto::verify_signature(&key, alg, tbs.raw(), sig).is_ok())
}

/// PEM armour (RFC 7468) for DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = openssl::base64::encode_block(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let bytes = b64.as_bytes();
    for chunk in bytes.chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// DER bytes of the first PEM block with `label` in `text`, or `text` itself when it is not PEM
/// (assumed DER).
pub fn pem_or_der(label: &str, text: &[u8]) -> Result<Vec<u8>, ToolError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let Ok(s) = std::str::from_utf8(text) else {
        return Ok(text.to_vec());
    };
    let Some(b) = s.find(&begin) else {
        if s.contains("-----BEGIN") {
            return Err(ToolError::Invalid(format!("no {label} PEM block")));
        }
        return Ok(text.to_vec());
    };
    let rest = &s[b + begin.len()..];
    let e = rest
        .find(&end)
        .ok_or_else(|| ToolError::Invalid("unterminated PEM block".into()))?;
    let b64: String = rest[..e].chars().filter(|c| !c.is_whitespace()).collect();
    openssl::base64::decode_block(&b64).map_err(|_| ToolError::Invalid("bad PEM base64".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_content_matches_ber_crate() {
        for arcs in [
            OID_KEY_USAGE,
            OID_IEC_USER_ROLES,
            OID_IEC_USER_ROLES_LEGACY,
            OID_SHA256_RSA,
            OID_OCSP,
            &[2, 999, 3][..],
        ] {
            assert_eq!(oid_content(arcs), Oid::new(arcs).unwrap().to_ber_content());
        }
    }

    #[test]
    fn pem_round_trip() {
        let p = pem("CERTIFICATE", &[1, 2, 3, 250]);
        assert_eq!(
            pem_or_der("CERTIFICATE", p.as_bytes()).unwrap(),
            vec![1, 2, 3, 250]
        );
        assert_eq!(
            pem_or_der("CERTIFICATE", &[0x30, 0]).unwrap(),
            vec![0x30, 0]
        );
        assert!(pem_or_der("X509 CRL", p.as_bytes()).is_err());
    }

    #[test]
    fn issued_by_checks_name_and_signature() {
        let mut rng = crate::crypto::OsRandom;
        let v = Validity::days_from(1_700_000_000, 10);
        let k1 = KeyType::P256.generate().unwrap();
        let k2 = KeyType::P256.generate().unwrap();
        let ca1 = Ca {
            cert_der: create_ca("one", &k1, v, &mut rng).unwrap(),
            key: k1,
        };
        let ca2 = Ca {
            cert_der: create_ca("one", &k2, v, &mut rng).unwrap(),
            key: k2,
        };
        let req = EndEntityRequest {
            binding: Binding::Jid("a@b".into()),
            subject_form: SubjectForm::Oid,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: v,
        };
        let ee = issue_end_entity(&req, ca1.key.pkey(), &ca1, &mut rng).unwrap();
        assert!(issued_by(&ee, &ca1.cert_der).unwrap());
        // Same name, other key: the signature does not verify.
        assert!(!issued_by(&ee, &ca2.cert_der).unwrap());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut w = Writer::new();
        write_time(&mut w, 2_524_608_000).unwrap(); // 2050-01-01
        assert_eq!(w.finish()[0], 0x18);
    }

    #[test]
    fn serial_is_16_octets_non_negative() {
        let mut rng = crate::crypto::OsRandom;
        for _ in 0..200 {
            let s = random_serial(&mut rng).unwrap();
            assert!(s[0] != 0 && s[0] & 0x80 == 0);
            assert_eq!(unsigned_content(&s).len(), 16);
        }
    }

    #[test]
    fn unsigned_integer_content() {
        assert_eq!(unsigned_content(&[0, 0, 5]), vec![5]);
        assert_eq!(unsigned_content(&[0x80]), vec![0, 0x80]);
        assert_eq!(unsigned_content(&[]), vec![0]);
    }

    #[test]
    fn osi_subject_oid_form() {
        let b = Binding::Osi {
            ap_title: "1.1.1.999.1".parse().unwrap(),
            ae_qualifier: 12,
        };
        let n = subject_name(&b, SubjectForm::Oid).unwrap();
        assert_eq!(
            hex::encode(n),
            "3011310f300d060355046a0606290187670 10c".replace(' ', "")
        );
    }
}
