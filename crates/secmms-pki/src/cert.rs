//! End-entity certificates for application-layer security: the Annex G profile checks, the
//! environment-address binding (Annex G.6) and path validation behind the [`CertValidator`] trait,
//! with an OpenSSL `X509Store` default ([`OpenSslValidator`]).

use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{CrlStatus, X509Crl, X509StoreContext, X509};
use secmms_ber::{Limits, Oid, Reader, Tag};

use crate::crypto::key_kind;

/// Maximum size of a certificate accepted from the network (Annex G.3: 8 192 octets).
pub const MAX_CERT_LEN: usize = 8192;
/// Maximum number of CA certificates accepted in a certPath (§13.3.1.6, "a short path").
pub const MAX_PATH_CERTS: usize = 8;
/// Maximum certificate chain depth handed to OpenSSL.
pub const MAX_CHAIN_DEPTH: i32 = 8;

/// X.520 `objectIdentifier` attribute (2.5.4.106) used for the OSI binding (Annex G.6.2).
pub const ATTR_OBJECT_IDENTIFIER: &[u64] = &[2, 5, 4, 106];
/// X.520 `jid` attribute (2.5.4.105) used for the XMPP binding (Annex G.6.3).
pub const ATTR_JID: &[u64] = &[2, 5, 4, 105];
const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const SIG_ALGS_SHA2: &[&[u64]] = &[
    &[1, 2, 840, 113549, 1, 1, 11], // sha256WithRSAEncryption
    &[1, 2, 840, 113549, 1, 1, 12], // sha384WithRSAEncryption
    &[1, 2, 840, 113549, 1, 1, 13], // sha512WithRSAEncryption
    &[1, 2, 840, 10045, 4, 3, 2],   // ecdsa-with-SHA256
    &[1, 2, 840, 10045, 4, 3, 3],   // ecdsa-with-SHA384
    &[1, 2, 840, 10045, 4, 3, 4],   // ecdsa-with-SHA512
];

/// Why a certificate was refused. [`CertError::is_alarm`] gives the 62351-14 severity class
/// (§14.3 step 5: PKCERT_ERROR is an error, PKCERT_ALARM an alarm).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The certificate or path is not decodable DER, or exceeds [`MAX_CERT_LEN`].
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    /// The certificate violates the Annex G end-entity profile (maps to
    /// `invalid-public-key-certificate`).
    #[error("certificate violates the Annex G profile: {0}")]
    Profile(&'static str),
    /// Path validation to a trust anchor failed (maps to `invalid-certification-path`).
    #[error("certification path invalid: {0}")]
    Path(String),
    /// The certificate is revoked (alarm class).
    #[error("certificate revoked")]
    Revoked,
    /// The attribute certificate is invalid (maps to `invalid-attribute-certificate`).
    #[error("attribute certificate invalid: {0}")]
    AttributeCert(String),
    /// OpenSSL failed internally.
    #[error("OpenSSL failure: {0}")]
    OpenSsl(String),
}

impl CertError {
    /// True for the alarm class (a revoked certificate signals an attack, not a mistake).
    pub fn is_alarm(&self) -> bool {
        matches!(self, CertError::Revoked)
    }
}

impl From<openssl::error::ErrorStack> for CertError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CertError::OpenSsl(e.to_string())
    }
}

/// The environment address a certificate subject binds to (Annex G.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerIdentity {
    /// OSI: AP-title with the AE-qualifier appended as the last arc (G.6.2).
    ApTitle(Oid),
    /// XMPP: bare JID (G.6.3).
    Jid(String),
}

/// Facts extracted from a DER certificate (X.509 v3) needed by Annex G and §14.3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// X.509 version number as encoded (2 = v3).
    pub version: i64,
    /// Serial number content octets.
    pub serial: Vec<u8>,
    /// The issuer Name (raw DER), e.g. to bind an attribute certificate's holder.
    pub issuer_name: Vec<u8>,
    /// True when the serial number is negative.
    pub serial_negative: bool,
    /// `tbsCertificate.signature` (raw TLV).
    pub inner_sig_alg: Vec<u8>,
    /// `signatureAlgorithm` (raw TLV).
    pub outer_sig_alg: Vec<u8>,
    /// OID of the certificate signature algorithm.
    pub sig_alg_oid: Oid,
    /// issuerUniqueID or subjectUniqueID present.
    pub has_unique_ids: bool,
    /// keyUsage bits (first two octets, bit 0 = MSB of the first octet), if the extension exists.
    pub key_usage: Option<[u8; 2]>,
    /// Identity from the subject (2.5.4.106 or 2.5.4.105), if present.
    pub identity: Option<PeerIdentity>,
    /// True when 2.5.4.106 was encoded as a UTF8String dotted form (tolerated with a warning).
    pub identity_as_string: bool,
}

impl CertInfo {
    /// keyUsage digitalSignature(0).
    pub fn digital_signature(&self) -> bool {
        self.key_usage.is_some_and(|k| k[0] & 0x80 != 0)
    }
    /// keyUsage keyAgreement(4).
    pub fn key_agreement(&self) -> bool {
        self.key_usage.is_some_and(|k| k[0] & 0x08 != 0)
    }

    /// Parses the fields of a DER certificate. Bounded by [`MAX_CERT_LEN`] and BER limits.
    pub fn parse(der: &[u8]) -> Result<CertInfo, CertError> {
        Self::parse_with_limit(der, MAX_CERT_LEN)
    }

    /// Like [`CertInfo::parse`] with another size bound (the lint reads oversize certificates
    /// to report everything else that is wrong with them).
    pub fn parse_with_limit(der: &[u8], max_len: usize) -> Result<CertInfo, CertError> {
        if der.len() > max_len {
            return Err(CertError::Malformed("certificate too long"));
        }
        let m = |_| CertError::Malformed("certificate DER");
        let limits = Limits {
            max_depth: 16,
            max_len,
        };
        let mut top = Reader::new(der, limits);
        let cert = top.expect(Tag::SEQUENCE).map_err(m)?;
        top.finish().map_err(m)?;
        let mut c = cert.children().map_err(m)?;
        let tbs = c.expect(Tag::SEQUENCE).map_err(m)?;
        let outer = c.expect(Tag::SEQUENCE).map_err(m)?;
        let sig_alg_oid = outer
            .children()
            .and_then(|mut r| r.expect(Tag::OID))
            .and_then(|t| t.as_oid())
            .map_err(m)?;
        c.expect(Tag::BIT_STRING).map_err(m)?;
        let mut t = tbs.children().map_err(m)?;
        let version = match t.optional(Tag::context(0, true)).map_err(m)? {
            Some(v) => v.single_child().and_then(|i| i.as_i64()).map_err(m)?,
            None => 0,
        };
        let serial = t.expect(Tag::INTEGER).map_err(m)?;
        let inner = t.expect(Tag::SEQUENCE).map_err(m)?;
        let issuer = t.expect(Tag::SEQUENCE).map_err(m)?;
        t.expect(Tag::SEQUENCE).map_err(m)?; // validity
        let subject = t.expect(Tag::SEQUENCE).map_err(m)?;
        t.expect(Tag::SEQUENCE).map_err(m)?; // subjectPublicKeyInfo
        let mut has_unique_ids = false;
        if t.optional_any_form(Tag::context(1, false))
            .map_err(m)?
            .is_some()
        {
            has_unique_ids = true;
        }
        if t.optional_any_form(Tag::context(2, false))
            .map_err(m)?
            .is_some()
        {
            has_unique_ids = true;
        }
        let mut key_usage = None;
        if let Some(ext) = t.optional(Tag::context(3, true)).map_err(m)? {
            let seq = ext.single_child().map_err(m)?;
            for e in seq.children().map_err(m)? {
                let e = e.map_err(m)?;
                let mut er = e.children().map_err(m)?;
                let id = er.expect(Tag::OID).and_then(|o| o.as_oid()).map_err(m)?;
                er.optional(Tag::BOOLEAN).map_err(m)?;
                let val = er.expect(Tag::OCTET_STRING).map_err(m)?;
                if id.arcs() == OID_KEY_USAGE {
                    let mut vr = Reader::new(val.content(), limits);
                    let bs = vr.expect(Tag::BIT_STRING).map_err(m)?;
                    let (_, bits) = bs.as_bit_string().map_err(m)?;
                    let mut ku = [0u8; 2];
                    for (i, b) in bits.iter().take(2).enumerate() {
                        ku[i] = *b;
                    }
                    key_usage = Some(ku);
                }
            }
        }
        let (identity, identity_as_string) = subject_identity(subject.content(), limits)?;
        let sc = serial.content();
        Ok(CertInfo {
            version,
            serial: sc.to_vec(),
            issuer_name: issuer.raw().to_vec(),
            serial_negative: sc.first().is_some_and(|b| b & 0x80 != 0),
            inner_sig_alg: inner.raw().to_vec(),
            outer_sig_alg: outer.raw().to_vec(),
            sig_alg_oid,
            has_unique_ids,
            key_usage,
            identity,
            identity_as_string,
        })
    }
}

fn subject_identity(
    name_content: &[u8],
    limits: Limits,
) -> Result<(Option<PeerIdentity>, bool), CertError> {
    let m = |_| CertError::Malformed("subject name");
    for rdn in Reader::new(name_content, limits) {
        let rdn = rdn.map_err(m)?;
        for atv in rdn.children().map_err(m)? {
            let atv = atv.map_err(m)?;
            let mut r = atv.children().map_err(m)?;
            let ty = r.expect(Tag::OID).and_then(|o| o.as_oid()).map_err(m)?;
            let val = r.read().map_err(m)?;
            if ty.arcs() == ATTR_OBJECT_IDENTIFIER {
                if val.tag() == Tag::OID {
                    return Ok((Some(PeerIdentity::ApTitle(val.as_oid().map_err(m)?)), false));
                }
                // Tolerated deviation: dotted form in a string (Annex G practical notes).
                let s = val.as_str().map_err(m)?;
                let arcs: Result<Vec<u64>, _> = s.split('.').map(|a| a.parse::<u64>()).collect();
                let arcs = arcs.map_err(|_| CertError::Malformed("dotted OID"))?;
                let oid = Oid::new(&arcs).map_err(m)?;
                return Ok((Some(PeerIdentity::ApTitle(oid)), true));
            }
            if ty.arcs() == ATTR_JID {
                let s = val.as_str().map_err(m)?;
                return Ok((Some(PeerIdentity::Jid(s.to_string())), false));
            }
        }
    }
    Ok((None, false))
}

/// How serious an Annex G finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingSeverity {
    /// The certificate violates a "shall" of Annex G: peers must refuse it.
    Error,
    /// A tolerated deviation or a "should": peers accept it with a warning.
    Warning,
}

/// One rule of the Annex G end-entity certificate profile (IEC 62351-4:2018 Annex G.3–G.6). Every
/// rule has a stable name ([`AnnexGRule::name`]), the clause it comes from, a severity and an
/// explanation in plain words, so that `secmms cert check` and the E2E engine report the same
/// finding for the same defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnexGRule {
    /// The DER is not a decodable X.509 certificate.
    Malformed,
    /// Larger than [`MAX_CERT_LEN`] octets (G.3).
    TooLarge,
    /// Not an X.509 v3 certificate (G.4 version).
    NotV3,
    /// Negative serial number (G.4 serialNumber).
    SerialNegative,
    /// Serial number shorter than a 128-bit random value (G.4 serialNumber).
    SerialTooShort,
    /// Serial number longer than 16 content octets (G.4 serialNumber DECISION: never 17).
    SerialTooLong,
    /// Serial number with an obviously non-random pattern (G.4: non-sequential).
    SerialNotRandom,
    /// `signatureAlgorithm` differs from `tbsCertificate.signature` (G.4 signature).
    SignatureAlgorithmMismatch,
    /// Signature algorithm weaker than SHA-256 or not RSA/ECDSA (G.4 signature).
    WeakSignatureAlgorithm,
    /// issuerUniqueID or subjectUniqueID present (G.4 unique IDs).
    UniqueIdsPresent,
    /// Public key not RSA ≥ 2048 bits, P-256 or brainpoolP256r1 (G.4 SPKI).
    WeakOrUnsupportedKey,
    /// No keyUsage extension (G.5).
    KeyUsageMissing,
    /// keyUsage without digitalSignature (G.5).
    DigitalSignatureMissing,
    /// keyUsage without keyAgreement (G.5; DECISION: only a warning).
    KeyAgreementMissing,
    /// Subject carries neither 2.5.4.106 nor 2.5.4.105 (G.6).
    SubjectIdentityMissing,
    /// 2.5.4.106 value encoded as a string instead of an OBJECT IDENTIFIER (G.6.2, tolerated).
    SubjectIdentityNotOid,
    /// Subject is not a single RDN with a single attribute (G.6.2).
    SubjectNotSingleRdn,
    /// A CRL distribution point carries `reasons` (G.5).
    CrlDistributionPointReasons,
    /// A CRL distribution point without a `distributionPoint` name (G.5).
    CrlDistributionPointNameMissing,
    /// Both CRL distribution points and OCSP (AIA) are present (G.5: one method per certificate).
    CrlAndOcspBoth,
    /// The certificate is a CA certificate (basicConstraints cA TRUE); Annex G is for end entities.
    EndEntityIsCa,
    /// extendedKeyUsage with TLS purposes: a TLS certificate used for application security (G.2).
    TlsPurposeOnApplicationCert,
    /// IECUserRoles extension present but not decodable (G.5, IEC 62351-8).
    RoleExtensionMalformed,
}

impl AnnexGRule {
    /// Every rule, in the order findings are reported.
    pub const ALL: &'static [AnnexGRule] = &[
        AnnexGRule::Malformed,
        AnnexGRule::TooLarge,
        AnnexGRule::NotV3,
        AnnexGRule::SerialNegative,
        AnnexGRule::SerialTooShort,
        AnnexGRule::SerialTooLong,
        AnnexGRule::SerialNotRandom,
        AnnexGRule::SignatureAlgorithmMismatch,
        AnnexGRule::WeakSignatureAlgorithm,
        AnnexGRule::UniqueIdsPresent,
        AnnexGRule::WeakOrUnsupportedKey,
        AnnexGRule::KeyUsageMissing,
        AnnexGRule::DigitalSignatureMissing,
        AnnexGRule::KeyAgreementMissing,
        AnnexGRule::SubjectIdentityMissing,
        AnnexGRule::SubjectIdentityNotOid,
        AnnexGRule::SubjectNotSingleRdn,
        AnnexGRule::CrlDistributionPointReasons,
        AnnexGRule::CrlDistributionPointNameMissing,
        AnnexGRule::CrlAndOcspBoth,
        AnnexGRule::EndEntityIsCa,
        AnnexGRule::TlsPurposeOnApplicationCert,
        AnnexGRule::RoleExtensionMalformed,
    ];

    /// Stable kebab-case name of the rule (used in `--json` output and tests).
    pub fn name(self) -> &'static str {
        use AnnexGRule::*;
        match self {
            Malformed => "malformed",
            TooLarge => "too-large",
            NotV3 => "not-v3",
            SerialNegative => "serial-negative",
            SerialTooShort => "serial-too-short",
            SerialTooLong => "serial-too-long",
            SerialNotRandom => "serial-not-random",
            SignatureAlgorithmMismatch => "signature-algorithm-mismatch",
            WeakSignatureAlgorithm => "weak-signature-algorithm",
            UniqueIdsPresent => "unique-ids-present",
            WeakOrUnsupportedKey => "weak-or-unsupported-key",
            KeyUsageMissing => "key-usage-missing",
            DigitalSignatureMissing => "digital-signature-missing",
            KeyAgreementMissing => "key-agreement-missing",
            SubjectIdentityMissing => "subject-identity-missing",
            SubjectIdentityNotOid => "subject-identity-not-oid",
            SubjectNotSingleRdn => "subject-not-single-rdn",
            CrlDistributionPointReasons => "crl-dp-reasons",
            CrlDistributionPointNameMissing => "crl-dp-name-missing",
            CrlAndOcspBoth => "crl-and-ocsp",
            EndEntityIsCa => "end-entity-is-ca",
            TlsPurposeOnApplicationCert => "tls-purpose",
            RoleExtensionMalformed => "role-extension-malformed",
        }
    }

    /// The Annex G item the rule comes from.
    pub fn clause(self) -> &'static str {
        use AnnexGRule::*;
        match self {
            Malformed | NotV3 => "G.4 version",
            TooLarge => "G.3",
            SerialNegative | SerialTooShort | SerialTooLong | SerialNotRandom => "G.4 serialNumber",
            SignatureAlgorithmMismatch | WeakSignatureAlgorithm => "G.4 signature",
            UniqueIdsPresent => "G.4 unique IDs",
            WeakOrUnsupportedKey => "G.4 SPKI",
            KeyUsageMissing | DigitalSignatureMissing | KeyAgreementMissing => "G.5 keyUsage",
            SubjectIdentityMissing | SubjectIdentityNotOid | SubjectNotSingleRdn => {
                "G.6 subject binding"
            }
            CrlDistributionPointReasons | CrlDistributionPointNameMissing | CrlAndOcspBoth => {
                "G.5 revocation"
            }
            EndEntityIsCa => "Annex G scope",
            TlsPurposeOnApplicationCert => "G.2",
            RoleExtensionMalformed => "G.5 IECUserRoles",
        }
    }

    /// Error (peers must refuse) or warning (tolerated).
    pub fn severity(self) -> FindingSeverity {
        use AnnexGRule::*;
        match self {
            KeyAgreementMissing
            | SubjectIdentityNotOid
            | SerialNotRandom
            | TlsPurposeOnApplicationCert => FindingSeverity::Warning,
            _ => FindingSeverity::Error,
        }
    }

    /// Short message (also the text of [`CertError::Profile`] when the E2E engine refuses).
    pub fn message(self) -> &'static str {
        use AnnexGRule::*;
        match self {
            Malformed => "certificate DER not decodable",
            TooLarge => "certificate longer than 8192 octets",
            NotV3 => "version is not v3",
            SerialNegative => "negative serial number",
            SerialTooShort => "serial number shorter than 128 bits",
            SerialTooLong => "serial number longer than 16 octets",
            SerialNotRandom => "serial number looks sequential",
            SignatureAlgorithmMismatch => {
                "signatureAlgorithm differs from tbsCertificate.signature"
            }
            WeakSignatureAlgorithm => "signature algorithm weaker than SHA-256",
            UniqueIdsPresent => "unique identifiers present",
            WeakOrUnsupportedKey => "public key type or size",
            KeyUsageMissing => "keyUsage absent",
            DigitalSignatureMissing => "keyUsage without digitalSignature",
            KeyAgreementMissing => "keyUsage without keyAgreement (Annex G.5)",
            SubjectIdentityMissing => "subject has no 2.5.4.106 or 2.5.4.105 identity",
            SubjectIdentityNotOid => "2.5.4.106 encoded as a string, not an OBJECT IDENTIFIER",
            SubjectNotSingleRdn => "subject is not a single RDN with one attribute",
            CrlDistributionPointReasons => "CRL distribution point with reasons",
            CrlDistributionPointNameMissing => "CRL distribution point without distributionPoint",
            CrlAndOcspBoth => "both CRL distribution points and OCSP",
            EndEntityIsCa => "end-entity certificate is a CA (basicConstraints cA TRUE)",
            TlsPurposeOnApplicationCert => "extendedKeyUsage names TLS purposes",
            RoleExtensionMalformed => "IECUserRoles extension not decodable",
        }
    }

    /// What the finding means and what to do about it, in plain words.
    pub fn explanation(self) -> &'static str {
        use AnnexGRule::*;
        match self {
            Malformed => {
                "The file is not a DER X.509 certificate that can be decoded within the \
                 limits; nothing else could be checked."
            }
            TooLarge => {
                "Annex G.3 limits the certificate to 8192 octets so that it fits into \
                 the association request; peers will refuse a bigger one. Drop extensions and \
                 shorten names."
            }
            NotV3 => {
                "Annex G.4 requires an X.509 version 3 certificate (version field 2); \
                 older versions cannot carry the keyUsage extension."
            }
            SerialNegative => {
                "The serial number is a negative INTEGER (its first octet has the \
                 high bit set). Annex G.4 wants a non-negative 128-bit random value: regenerate \
                 the random value until its top bit is 0."
            }
            SerialTooShort => {
                "The serial number has fewer than 15 content octets, so it cannot \
                 be the 128-bit random (UUID) value Annex G.4 asks for; short serials are \
                 usually counters, which make certificates predictable."
            }
            SerialTooLong => {
                "The serial number has more than 16 content octets; a non-negative \
                 128-bit value never needs a 17th octet when its top bit is kept 0."
            }
            SerialNotRandom => {
                "The serial number contains a long run of identical octets, \
                 typical of a counter padded to 128 bits. Annex G.4 requires a non-sequential \
                 random value."
            }
            SignatureAlgorithmMismatch => {
                "The algorithm named outside the signed part differs \
                 from the one inside it; Annex G.4 says such a certificate is invalid."
            }
            WeakSignatureAlgorithm => {
                "The certificate is signed with a hash weaker than \
                 SHA-256 (for example SHA-1) or with an algorithm other than RSA or ECDSA; \
                 Annex G.4 requires SHA-256 or stronger."
            }
            UniqueIdsPresent => {
                "issuerUniqueID or subjectUniqueID is present; Annex G.4 says \
                 both shall be absent."
            }
            WeakOrUnsupportedKey => {
                "The subject key is not RSA of at least 2048 bits, nor EC on \
                 secp256r1 or brainpoolP256r1 (Annex G.4, clause 8)."
            }
            KeyUsageMissing => {
                "There is no keyUsage extension; Annex G.5 requires one with \
                 digitalSignature and keyAgreement."
            }
            DigitalSignatureMissing => {
                "keyUsage does not allow digitalSignature, so the key may \
                 not sign the E2E and A-profile tokens; peers refuse it (Annex G.5)."
            }
            KeyAgreementMissing => {
                "keyUsage does not list keyAgreement. Annex G.5 asks for it; \
                 peers accept the certificate but warn (DECISION in Annex G notes)."
            }
            SubjectIdentityMissing => {
                "The subject has neither the objectIdentifier attribute \
                 (2.5.4.106, OSI: AP-title plus AE-qualifier) nor the jid attribute (2.5.4.105, \
                 XMPP), so a peer cannot bind the certificate to an address (Annex G.6)."
            }
            SubjectIdentityNotOid => {
                "The 2.5.4.106 value is a dotted string instead of an \
                 OBJECT IDENTIFIER. Some stacks (mbedTLS, OpenSSL 3.0) can only handle this \
                 form, so it is tolerated with a warning; the standard form is the OID."
            }
            SubjectNotSingleRdn => {
                "Annex G.6.2 wants the subject to be exactly one RDN holding \
                 the identity attribute; extra RDNs or multi-valued RDNs make the binding \
                 ambiguous."
            }
            CrlDistributionPointReasons => {
                "A CRL distribution point restricts the revocation \
                 reasons it covers; Annex G.5 says `reasons` shall be absent so that one CRL \
                 covers every reason."
            }
            CrlDistributionPointNameMissing => {
                "A CRL distribution point names no location \
                 (distributionPoint absent); Annex G.5 requires it when the CA issues the CRL."
            }
            CrlAndOcspBoth => {
                "The certificate names both CRL distribution points and an OCSP \
                 responder; Annex G.5 allows one revocation method per certificate."
            }
            EndEntityIsCa => {
                "basicConstraints marks this as a CA certificate. Annex G covers \
                 end-entity certificates; a CA key must not be used for application security."
            }
            TlsPurposeOnApplicationCert => {
                "extendedKeyUsage names serverAuth or clientAuth: \
                 this looks like a TLS certificate. Annex G.2 requires separate certificates for \
                 TLS and application-layer security."
            }
            RoleExtensionMalformed => {
                "The IECUserRoles extension (IEC 62351-8) could not be \
                 decoded as a SEQUENCE OF RoleInfo."
            }
        }
    }
}

/// Evaluates the Annex G.4–G.5 rules that [`CertInfo`] and the key can answer, in reporting
/// order. Used by [`check_annex_g`] (the E2E engine) and by the `secmms cert check` lint, so that
/// both apply one set of checks.
pub fn profile_findings(info: &CertInfo, key: &PKey<Public>) -> Vec<AnnexGRule> {
    let mut f = Vec::new();
    if info.version != 2 {
        f.push(AnnexGRule::NotV3);
    }
    if info.serial_negative {
        f.push(AnnexGRule::SerialNegative);
    }
    if info.inner_sig_alg != info.outer_sig_alg {
        f.push(AnnexGRule::SignatureAlgorithmMismatch);
    }
    if !SIG_ALGS_SHA2.contains(&info.sig_alg_oid.arcs()) {
        f.push(AnnexGRule::WeakSignatureAlgorithm);
    }
    if info.has_unique_ids {
        f.push(AnnexGRule::UniqueIdsPresent);
    }
    if key_kind(key).is_err() {
        f.push(AnnexGRule::WeakOrUnsupportedKey);
    }
    if info.key_usage.is_none() {
        f.push(AnnexGRule::KeyUsageMissing);
    } else {
        if !info.digital_signature() {
            f.push(AnnexGRule::DigitalSignatureMissing);
        }
        if !info.key_agreement() {
            f.push(AnnexGRule::KeyAgreementMissing);
        }
    }
    if info.identity_as_string {
        f.push(AnnexGRule::SubjectIdentityNotOid);
    }
    f
}

/// Checks a parsed end-entity certificate and its key against Annex G.4–G.5 (the rules of
/// [`profile_findings`]). The first error-class rule refuses the certificate; warning-class rules
/// are returned as messages for tolerated deviations.
pub fn check_annex_g(info: &CertInfo, key: &PKey<Public>) -> Result<Vec<String>, CertError> {
    let findings = profile_findings(info, key);
    if let Some(e) = findings
        .iter()
        .find(|r| r.severity() == FindingSeverity::Error)
    {
        return Err(CertError::Profile(e.message()));
    }
    Ok(findings.iter().map(|r| r.message().to_string()).collect())
}

/// A certificate that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedCert {
    /// The subject public key.
    pub public_key: PKey<Public>,
    /// The parsed certificate facts.
    pub info: CertInfo,
    /// Tolerated deviations, to be logged as warnings.
    pub warnings: Vec<String>,
    /// SHA-256 fingerprint of the DER certificate (for replay caches and logs).
    pub fingerprint: [u8; 32],
}

/// Certificate validation used by the E2E engine (§14.3 step 5, step 14). Implementations decide
/// trust anchors, path building and revocation; `now` is seconds since the Unix epoch.
pub trait CertValidator: Send + Sync {
    /// Validates an end-entity certificate with optional CA certificates from the peer.
    fn validate(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError>;

    /// Like [`CertValidator::validate`] for a certificate the caller has already parsed (the
    /// E2E engine parses `pkCert` to verify the signature before validating the certificate,
    /// §14.3 steps 4–5). The default ignores the parsed forms; [`OpenSslValidator`] reuses them
    /// and so avoids decoding the certificate and its key twice.
    fn validate_parsed(
        &self,
        leaf_der: &[u8],
        _leaf: &X509,
        _public_key: &PKey<Public>,
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        self.validate(leaf_der, path_der, now)
    }

    /// Validates an IEC 62351-8 attribute certificate of the holder (§13.3.1.6, §14.3 step 14):
    /// see [`crate::acert::validate`]. The default knows no attribute authority and so refuses
    /// every attribute certificate (after checking that it is one); [`OpenSslValidator`]
    /// validates against its configured authorities.
    fn validate_attribute_cert(
        &self,
        acert_der: &[u8],
        holder: &ValidatedCert,
        now: i64,
    ) -> Result<(), CertError> {
        crate::acert::validate_for(acert_der, holder, &[], now)
    }
}

/// Default [`CertValidator`]: OpenSSL path validation against a set of trust anchors at the
/// given time, CRL revocation checks, then the Annex G profile.
#[derive(Clone, Default)]
pub struct OpenSslValidator {
    anchors: Vec<X509>,
    crls: Vec<std::sync::Arc<X509Crl>>,
    attribute_authorities: Vec<X509>,
}

impl std::fmt::Debug for OpenSslValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSslValidator")
            .field("anchors", &self.anchors.len())
            .field("crls", &self.crls.len())
            .finish()
    }
}

impl OpenSslValidator {
    /// A validator with no anchors (rejects everything until anchors are added).
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a trust anchor.
    pub fn add_anchor(&mut self, cert: X509) {
        self.anchors.push(cert);
    }
    /// The trust anchors.
    pub fn anchors(&self) -> &[X509] {
        &self.anchors
    }
    /// Adds a trust anchor from DER.
    pub fn add_anchor_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        self.anchors
            .push(X509::from_der(der).map_err(|_| CertError::Malformed("anchor"))?);
        Ok(())
    }
    /// Adds an attribute authority: attribute certificates it signed are accepted
    /// ([`CertValidator::validate_attribute_cert`]). Without one, every attribute certificate is
    /// refused.
    pub fn add_attribute_authority(&mut self, cert: X509) {
        self.attribute_authorities.push(cert);
    }
    /// Adds a CRL. CRLs are consulted for every certificate of the validated chain whose issuer
    /// signed the CRL.
    pub fn add_crl(&mut self, crl: X509Crl) {
        self.crls.push(std::sync::Arc::new(crl));
    }

    fn is_revoked(&self, chain: &[X509]) -> bool {
        for cert in chain {
            for crl in &self.crls {
                if crl.issuer_name().try_cmp(cert.issuer_name()).ok()
                    != Some(std::cmp::Ordering::Equal)
                {
                    continue;
                }
                // Only CRLs signed by a certificate of the chain or an anchor count.
                let signed = chain
                    .iter()
                    .chain(self.anchors.iter())
                    .filter_map(|c| c.public_key().ok())
                    .any(|k| crl.verify(&k).unwrap_or(false));
                if signed && matches!(crl.get_by_cert(cert), CrlStatus::Revoked(_)) {
                    return true;
                }
            }
        }
        false
    }
}

/// Splits a DER PkiPath (`SEQUENCE OF Certificate`, §13.5 CertPath) into certificates.
pub fn split_pki_path(der: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let limits = Limits {
        max_depth: 16,
        max_len: MAX_CERT_LEN * MAX_PATH_CERTS,
    };
    let m = |_| CertError::Malformed("certPath");
    let mut r = Reader::new(der, limits);
    let seq = r.expect(Tag::SEQUENCE).map_err(m)?;
    r.finish().map_err(m)?;
    let mut out = Vec::new();
    for c in seq.children().map_err(m)? {
        let c = c.map_err(m)?;
        if out.len() >= MAX_PATH_CERTS || c.raw().len() > MAX_CERT_LEN {
            return Err(CertError::Malformed("certPath too long"));
        }
        out.push(c.raw().to_vec());
    }
    Ok(out)
}

/// The subject public key of a DER certificate, also for the certificates OpenSSL cannot load
/// (the Annex G.6.2 subject form with an OBJECT IDENTIFIER value): the SubjectPublicKeyInfo is
/// taken from the parsed certificate and handed to OpenSSL.
pub fn public_key_of(der: &[u8]) -> Result<PKey<Public>, CertError> {
    if let Ok(c) = X509::from_der(der) {
        return c.public_key().map_err(|_| CertError::Profile("public key"));
    }
    let leaf = foreign::parse(der)?;
    PKey::public_key_from_der(&leaf.spki).map_err(|_| CertError::Profile("public key"))
}

/// notBefore and notAfter of a DER certificate, seconds since the Unix epoch (any subject form).
pub fn validity_of(der: &[u8]) -> Option<(i64, i64)> {
    foreign::parse(der)
        .ok()
        .map(|c| (c.not_before, c.not_after))
}

/// Certificates OpenSSL 3.0 cannot load: a leaf whose subject carries 2.5.4.106 as an OBJECT
/// IDENTIFIER (the Annex G.6.2 form; `d2i_X509_NAME` refuses a non-string attribute value).
/// The leaf is parsed with `x509-parser`; its signature is checked with OpenSSL over the
/// TBSCertificate octets as received; the chain above it (the issuer up to an anchor) is
/// validated with OpenSSL's store; what the store would have checked on the leaf is done here:
/// the issuer's name, CA flag, keyCertSign and path length, the leaf's validity period and the
/// issuer's CRLs.
mod foreign {
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::sign::Verifier;
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// What the validation needs of a parsed leaf (copies of the received octets).
    pub(super) struct Leaf {
        pub tbs: Vec<u8>,
        pub sig_alg: Vec<u64>,
        pub signature: Vec<u8>,
        pub issuer: Vec<u8>,
        pub serial: Vec<u8>,
        pub spki: Vec<u8>,
        pub not_before: i64,
        pub not_after: i64,
    }

    pub(super) fn parse(der: &[u8]) -> Result<Leaf, CertError> {
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::Malformed("certificate too large"));
        }
        let (rest, c) =
            X509Certificate::from_der(der).map_err(|_| CertError::Malformed("certificate"))?;
        if !rest.is_empty() || c.signature_value.unused_bits != 0 {
            return Err(CertError::Malformed("certificate"));
        }
        let sig_alg = c
            .signature_algorithm
            .algorithm
            .iter()
            .map(|i| i.collect::<Vec<u64>>())
            .ok_or(CertError::Malformed("signature algorithm"))?;
        let tbs = &c.tbs_certificate;
        Ok(Leaf {
            tbs: tbs.as_ref().to_vec(),
            sig_alg,
            signature: c.signature_value.data.to_vec(),
            issuer: tbs.issuer.as_raw().to_vec(),
            serial: tbs.raw_serial().to_vec(),
            spki: tbs.subject_pki.raw.to_vec(),
            not_before: c.validity().not_before.timestamp(),
            not_after: c.validity().not_after.timestamp(),
        })
    }

    fn digest_of(alg: &[u64]) -> Option<MessageDigest> {
        Some(match alg {
            [1, 2, 840, 113549, 1, 1, 11] | [1, 2, 840, 10045, 4, 3, 2] => MessageDigest::sha256(),
            [1, 2, 840, 113549, 1, 1, 12] | [1, 2, 840, 10045, 4, 3, 3] => MessageDigest::sha384(),
            [1, 2, 840, 113549, 1, 1, 13] | [1, 2, 840, 10045, 4, 3, 4] => MessageDigest::sha512(),
            _ => return None,
        })
    }

    /// True when `issuer`'s key made `leaf`'s signature over the received TBS octets.
    pub(super) fn signed_by(leaf: &Leaf, issuer: &X509) -> bool {
        let (Some(md), Ok(key)) = (digest_of(&leaf.sig_alg), issuer.public_key()) else {
            return false;
        };
        let Ok(mut v) = Verifier::new(md, &key) else {
            return false;
        };
        if key.id() == openssl::pkey::Id::RSA
            && v.set_rsa_padding(openssl::rsa::Padding::PKCS1).is_err()
        {
            return false;
        }
        v.verify_oneshot(&leaf.signature, &leaf.tbs)
            .unwrap_or(false)
    }

    /// CA flag (basicConstraints cA) and, when keyUsage is present, keyCertSign.
    pub(super) fn may_issue(ca: &X509) -> bool {
        let Ok(der) = ca.to_der() else { return false };
        let Ok((_, c)) = X509Certificate::from_der(&der) else {
            return false;
        };
        let is_ca = matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        let signs = match c.key_usage() {
            Ok(Some(ku)) => ku.value.key_cert_sign(),
            Ok(None) => true,
            Err(_) => false,
        };
        is_ca && signs
    }

    /// pathLenConstraint of a CA certificate, if any.
    pub(super) fn path_len(ca: &X509) -> Option<u32> {
        let der = ca.to_der().ok()?;
        let (_, c) = X509Certificate::from_der(&der).ok()?;
        c.basic_constraints().ok()??.value.path_len_constraint
    }
}

impl OpenSslValidator {
    /// [`CertValidator::validate`] for a leaf OpenSSL cannot load (see [`foreign`]).
    fn validate_unloadable(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        let leaf = foreign::parse(leaf_der)?;
        let info = CertInfo::parse(leaf_der)?;
        let public_key =
            PKey::public_key_from_der(&leaf.spki).map_err(|_| CertError::Profile("public key"))?;
        let warnings = check_annex_g(&info, &public_key)?;
        if path_der.len() > MAX_PATH_CERTS {
            return Err(CertError::Malformed("certPath too long"));
        }
        let mut path = Vec::with_capacity(path_der.len());
        for p in path_der {
            path.push(X509::from_der(p).map_err(|_| CertError::Malformed("certPath entry"))?);
        }
        // The issuer: a certificate of the path or an anchor whose subject is the leaf's issuer
        // name (compared as received, DER) and whose key made the leaf's signature.
        let issuer = path
            .iter()
            .chain(self.anchors.iter())
            .find(|c| {
                c.subject_name().to_der().ok().as_deref() == Some(leaf.issuer.as_slice())
                    && foreign::signed_by(&leaf, c)
            })
            .cloned()
            .ok_or_else(|| CertError::Path("unable to get local issuer certificate".into()))?;
        if !foreign::may_issue(&issuer) {
            return Err(CertError::Path("invalid CA certificate".into()));
        }
        if now < leaf.not_before {
            return Err(CertError::Path("certificate is not yet valid".into()));
        }
        if now > leaf.not_after {
            return Err(CertError::Path("certificate has expired".into()));
        }
        // The chain from the issuer up to an anchor, by OpenSSL's store.
        let mut rest = Stack::new()?;
        for c in path
            .iter()
            .filter(|c| c.to_der().ok() != issuer.to_der().ok())
        {
            rest.push(c.clone())?;
        }
        let verified = self.verify_chain(&issuer, &rest, now)?;
        // OpenSSL saw the issuer as the end of the path: one more CA lies below each
        // certificate above it than it counted.
        for (k, ca) in verified.iter().enumerate().skip(1) {
            if let Some(limit) = foreign::path_len(ca) {
                if (limit as usize) < k {
                    return Err(CertError::Path("path length constraint exceeded".into()));
                }
            }
        }
        // Revocation of the leaf by the issuer's CRLs, then of the chain above.
        let issuer_key = issuer.public_key()?;
        let serial = openssl::bn::BigNum::from_slice(&leaf.serial)?;
        let serial = openssl::asn1::Asn1Integer::from_bn(&serial)?;
        for crl in &self.crls {
            if crl.issuer_name().try_cmp(issuer.subject_name()).ok()
                != Some(std::cmp::Ordering::Equal)
                || !crl.verify(&issuer_key).unwrap_or(false)
            {
                continue;
            }
            if matches!(crl.get_by_serial(&serial), CrlStatus::Revoked(_)) {
                return Err(CertError::Revoked);
            }
        }
        if self.is_revoked(&verified) {
            return Err(CertError::Revoked);
        }
        Ok(ValidatedCert {
            public_key,
            info,
            warnings,
            fingerprint: crate::crypto::sha256(leaf_der),
        })
    }

    /// Validates `leaf` with the intermediate `chain` against the anchors at `now` with
    /// OpenSSL's store; the verified chain, leaf first.
    fn verify_chain(
        &self,
        leaf: &X509,
        chain: &openssl::stack::StackRef<X509>,
        now: i64,
    ) -> Result<Vec<X509>, CertError> {
        let store = self.store(now)?;
        let mut ctx = X509StoreContext::new()?;
        let (ok, err, verified): (bool, String, Vec<X509>) =
            ctx.init(&store, leaf, chain, |c| {
                let ok = c.verify_cert()?;
                let err = c.error().error_string().to_string();
                let v = c
                    .chain()
                    .map(|s| s.iter().map(|x| x.to_owned()).collect())
                    .unwrap_or_default();
                Ok((ok, err, v))
            })?;
        if !ok {
            return Err(CertError::Path(err));
        }
        Ok(verified)
    }

    fn store(&self, now: i64) -> Result<openssl::x509::store::X509Store, CertError> {
        let mut sb = X509StoreBuilder::new()?;
        for a in &self.anchors {
            sb.add_cert(a.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(now as _);
        param.set_depth(MAX_CHAIN_DEPTH);
        sb.set_param(&param)?;
        Ok(sb.build())
    }
}

impl CertValidator for OpenSslValidator {
    fn validate(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        let leaf = match X509::from_der(leaf_der) {
            Ok(l) => l,
            // The Annex G.6.2 OBJECT IDENTIFIER subject form, which OpenSSL cannot load.
            Err(_) => return self.validate_unloadable(leaf_der, path_der, now),
        };
        let public_key = leaf
            .public_key()
            .map_err(|_| CertError::Profile("public key"))?;
        self.validate_parsed(leaf_der, &leaf, &public_key, path_der, now)
    }

    fn validate_parsed(
        &self,
        leaf_der: &[u8],
        leaf: &X509,
        public_key: &PKey<Public>,
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        let info = CertInfo::parse(leaf_der)?;
        let public_key = public_key.clone();
        let warnings = check_annex_g(&info, &public_key)?;
        if path_der.len() > MAX_PATH_CERTS {
            return Err(CertError::Malformed("certPath too long"));
        }
        let mut chain = Stack::new()?;
        for p in path_der {
            chain.push(X509::from_der(p).map_err(|_| CertError::Malformed("certPath entry"))?)?;
        }
        let verified = self.verify_chain(leaf, &chain, now)?;
        if self.is_revoked(&verified) {
            return Err(CertError::Revoked);
        }
        Ok(ValidatedCert {
            public_key,
            info,
            warnings,
            fingerprint: crate::crypto::sha256(leaf_der),
        })
    }

    fn validate_attribute_cert(
        &self,
        acert_der: &[u8],
        holder: &ValidatedCert,
        now: i64,
    ) -> Result<(), CertError> {
        crate::acert::validate_for(acert_der, holder, &self.attribute_authorities, now)
    }
}

/// Test and tooling helpers that issue Annex G certificates with OpenSSL.
pub mod issue {
    use super::*;
    use crate::crypto::SigningKey;
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::{BasicConstraints, KeyUsage};
    use openssl::x509::{X509Name, X509NameBuilder};
    use secmms_ber::Writer;

    /// Options of an issued certificate.
    #[derive(Debug, Clone)]
    pub struct CertSpec {
        /// Subject common name (used for CAs or when no identity is given).
        pub common_name: String,
        /// Identity placed in the subject (2.5.4.106 OID or 2.5.4.105 JID).
        pub identity: Option<PeerIdentity>,
        /// Validity start, seconds since the Unix epoch.
        pub not_before: i64,
        /// Validity end, seconds since the Unix epoch.
        pub not_after: i64,
        /// Whether to issue a CA certificate.
        pub ca: bool,
        /// Whether keyUsage carries digitalSignature (end entities).
        pub digital_signature: bool,
        /// Serial number (16 octets, MSB clear per Annex G.4).
        pub serial: [u8; 16],
        /// Encode a 2.5.4.106 identity as an OBJECT IDENTIFIER (the Annex G.6.2 form). OpenSSL
        /// 3.0 cannot parse such a name (its X509_NAME entries accept only string types), so the
        /// default is [`DOTTED_STRING_IDENTITY`]'s tolerated UTF8String dotted form.
        pub identity_as_oid: bool,
    }

    /// DECISION (Annex G practical notes): certificates issued by these helpers carry the
    /// 2.5.4.106 value as a UTF8String dotted OID, because OpenSSL — like mbedTLS in the CCLI-LAB interop notes —
    /// rejects an OBJECT IDENTIFIER attribute value in a Name. [`CertInfo::parse`] accepts both.
    pub const DOTTED_STRING_IDENTITY: bool = true;

    impl CertSpec {
        /// An end-entity spec valid over `[nb, na]`.
        pub fn end_entity(identity: PeerIdentity, nb: i64, na: i64, serial: u8) -> Self {
            let mut s = [0x11u8; 16];
            s[15] = serial;
            CertSpec {
                common_name: "e2e".into(),
                identity: Some(identity),
                not_before: nb,
                not_after: na,
                ca: false,
                digital_signature: true,
                serial: s,
                identity_as_oid: !DOTTED_STRING_IDENTITY,
            }
        }
        /// A CA spec.
        pub fn ca(name: &str, nb: i64, na: i64) -> Self {
            CertSpec {
                common_name: name.into(),
                identity: None,
                not_before: nb,
                not_after: na,
                ca: true,
                digital_signature: false,
                serial: [0x22; 16],
                identity_as_oid: false,
            }
        }
    }

    fn name_for(spec: &CertSpec) -> Result<X509Name, CertError> {
        match &spec.identity {
            None => {
                let mut b = X509NameBuilder::new()?;
                b.append_entry_by_text("CN", &spec.common_name)?;
                Ok(b.build())
            }
            Some(id) => {
                let attr_oid = |a: &[u64]| Oid::new(a).map_err(|_| CertError::Malformed("oid"));
                let (ty, value_oid) = match id {
                    PeerIdentity::ApTitle(oid) => (attr_oid(ATTR_OBJECT_IDENTIFIER)?, Some(oid)),
                    PeerIdentity::Jid(_) => (attr_oid(ATTR_JID)?, None),
                };
                // Name ::= SEQUENCE OF SET OF SEQUENCE { type, value } with a single RDN.
                let mut w = Writer::new();
                w.constructed(Tag::SEQUENCE, |w| {
                    w.constructed(Tag::SET, |w| {
                        w.constructed(Tag::SEQUENCE, |w| {
                            w.oid(Tag::OID, &ty);
                            match (id, value_oid) {
                                (_, Some(oid)) if spec.identity_as_oid => w.oid(Tag::OID, oid),
                                (_, Some(oid)) => {
                                    w.octets(Tag::UTF8_STRING, oid.to_string().as_bytes())
                                }
                                (PeerIdentity::Jid(j), _) => {
                                    w.octets(Tag::UTF8_STRING, j.as_bytes())
                                }
                                (PeerIdentity::ApTitle(oid), None) => w.oid(Tag::OID, oid),
                            }
                        })
                    })
                });
                Ok(X509Name::from_der(&w.finish())?)
            }
        }
    }

    /// Issues a certificate for `subject_key`, signed by `issuer` (or self-signed when `None`).
    pub fn issue(
        spec: &CertSpec,
        subject_key: &SigningKey,
        issuer: Option<(&X509, &SigningKey)>,
    ) -> Result<X509, CertError> {
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial_bn = BigNum::from_slice(&spec.serial)?;
        let serial = Asn1Integer::from_bn(&serial_bn)?;
        b.set_serial_number(&serial)?;
        let name = name_for(spec)?;
        b.set_subject_name(&name)?;
        match issuer {
            Some((c, _)) => b.set_issuer_name(c.subject_name())?,
            None => b.set_issuer_name(&name)?,
        }
        let nb = Asn1Time::from_unix(spec.not_before as _)?;
        let na = Asn1Time::from_unix(spec.not_after as _)?;
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.set_pubkey(subject_key.pkey())?;
        if spec.ca {
            b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
        } else {
            let mut ku = KeyUsage::new();
            ku.critical().key_agreement();
            if spec.digital_signature {
                ku.digital_signature();
            }
            b.append_extension(ku.build()?)?;
        }
        let signer = issuer.map(|(_, k)| k).unwrap_or(subject_key);
        b.sign(signer.pkey(), MessageDigest::sha256())?;
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::issue::*;
    use super::*;
    use crate::crypto::{Curve, SigningKey};

    const T0: i64 = 1_750_000_000;

    #[test]
    fn issue_validate_and_revoke() {
        let ca_key = SigningKey::generate_ec(Curve::P256).unwrap();
        let ca = issue(
            &CertSpec::ca("Root", T0 - 1000, T0 + 100_000),
            &ca_key,
            None,
        )
        .unwrap();
        let ee_key = SigningKey::generate_ec(Curve::BrainpoolP256r1).unwrap();
        let id = PeerIdentity::ApTitle(Oid::new(&[1, 1, 1, 999, 1, 12]).unwrap());
        let ee = issue(
            &CertSpec::end_entity(id.clone(), T0 - 10, T0 + 1000, 1),
            &ee_key,
            Some((&ca, &ca_key)),
        )
        .unwrap();
        let der = ee.to_der().unwrap();
        let info = CertInfo::parse(&der).unwrap();
        assert_eq!(info.identity, Some(id));
        assert!(info.identity_as_string);
        assert!(info.digital_signature() && info.key_agreement());
        let mut v = OpenSslValidator::new();
        assert!(matches!(v.validate(&der, &[], T0), Err(CertError::Path(_))));
        v.add_anchor(ca.clone());
        v.validate(&der, &[], T0).unwrap();
        // Expired at a later time.
        assert!(matches!(
            v.validate(&der, &[], T0 + 5000),
            Err(CertError::Path(_))
        ));
        // Revoke it.
        let mut cb = openssl::x509::X509CrlBuilder::new().unwrap();
        cb.set_issuer_name(ca.subject_name()).unwrap();
        cb.set_last_update(&openssl::asn1::Asn1Time::from_unix(T0 as _).unwrap())
            .unwrap();
        let mut rb = openssl::x509::X509RevokedBuilder::new().unwrap();
        rb.set_serial_number(ee.serial_number()).unwrap();
        rb.set_revocation_date(&openssl::asn1::Asn1Time::from_unix(T0 as _).unwrap())
            .unwrap();
        cb.add_revoked(rb.build()).unwrap();
        // AuthorityKeyIdentifier { keyIdentifier [0] } (required by the CRL builder).
        let mut aki = vec![0x30, 22, 0x80, 20];
        aki.extend_from_slice(&ca.digest(openssl::hash::MessageDigest::sha1()).unwrap());
        let obj = openssl::asn1::Asn1Object::from_str("2.5.29.35").unwrap();
        let os = openssl::asn1::Asn1OctetString::new_from_bytes(&aki).unwrap();
        cb.append_extension(openssl::x509::X509Extension::new_from_der(&obj, false, &os).unwrap())
            .unwrap();
        let obj = openssl::asn1::Asn1Object::from_str("2.5.29.20").unwrap();
        let os = openssl::asn1::Asn1OctetString::new_from_bytes(&[2, 1, 1]).unwrap();
        cb.append_extension(openssl::x509::X509Extension::new_from_der(&obj, false, &os).unwrap())
            .unwrap();
        cb.set_next_update(&openssl::asn1::Asn1Time::from_unix(T0 + 86400).unwrap())
            .unwrap();
        cb.sign(ca_key.pkey(), openssl::hash::MessageDigest::sha256())
            .unwrap();
        v.add_crl(cb.build().unwrap());
        let e = v.validate(&der, &[], T0).unwrap_err();
        assert_eq!(e, CertError::Revoked);
        assert!(e.is_alarm());
    }

    #[test]
    fn annex_g_refuses_missing_digital_signature() {
        let k = SigningKey::generate_ec(Curve::P256).unwrap();
        let mut spec = CertSpec::end_entity(PeerIdentity::Jid("a@b".into()), T0, T0 + 10, 2);
        spec.digital_signature = false;
        let c = issue(&spec, &k, None).unwrap();
        let der = c.to_der().unwrap();
        let info = CertInfo::parse(&der).unwrap();
        assert_eq!(info.identity, Some(PeerIdentity::Jid("a@b".into())));
        assert!(matches!(
            check_annex_g(&info, &c.public_key().unwrap()),
            Err(CertError::Profile(_))
        ));
    }

    #[test]
    fn pki_path_split() {
        let k = SigningKey::generate_ec(Curve::P256).unwrap();
        let c = issue(&CertSpec::ca("X", T0, T0 + 1), &k, None).unwrap();
        let d = c.to_der().unwrap();
        let mut w = secmms_ber::Writer::new();
        w.constructed(Tag::SEQUENCE, |w| {
            w.raw(&d);
            w.raw(&d)
        });
        let v = split_pki_path(&w.finish()).unwrap();
        assert_eq!(v, vec![d.clone(), d]);
        assert!(split_pki_path(&[0x30, 0x01]).is_err());
    }

    #[test]
    fn attribute_cert_default_check() {
        struct V;
        impl CertValidator for V {
            fn validate(
                &self,
                _: &[u8],
                _: &[Vec<u8>],
                _: i64,
            ) -> Result<ValidatedCert, CertError> {
                Err(CertError::Malformed("x"))
            }
        }
        let k = SigningKey::generate_ec(Curve::P256).unwrap();
        let vc = ValidatedCert {
            public_key: PKey::public_key_from_der(&k.pkey().public_key_to_der().unwrap()).unwrap(),
            info: CertInfo {
                version: 2,
                serial: vec![1],
                issuer_name: vec![],
                serial_negative: false,
                inner_sig_alg: vec![],
                outer_sig_alg: vec![],
                sig_alg_oid: Oid::new(&[1, 2]).unwrap(),
                has_unique_ids: false,
                key_usage: None,
                identity: None,
                identity_as_string: false,
            },
            warnings: vec![],
            fingerprint: [0; 32],
        };
        // Without an attribute authority nothing is accepted, well-formed or not.
        assert!(V.validate_attribute_cert(&[0x30, 0x00], &vc, 0).is_err());
        assert!(V.validate_attribute_cert(&[0x04, 0x00], &vc, 0).is_err());
    }
}
