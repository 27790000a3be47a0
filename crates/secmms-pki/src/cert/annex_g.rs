//! The Annex G end-entity profile as named rules ([`AnnexGRule`]) and the checks that evaluate
//! them on a parsed certificate.

use openssl::pkey::{PKey, Public};

use super::{CertError, CertInfo, SIG_ALGS_SHA2};
use crate::crypto::key_kind;

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
    /// Larger than [`MAX_CERT_LEN`](super::MAX_CERT_LEN) octets (G.3).
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
