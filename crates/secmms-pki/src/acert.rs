//! IEC 62351-8 attribute certificates (X.509 / RFC 5755 `AttributeCertificate` v2), as a
//! HandshakeReq or HandshakeAcc carries them in `attCert` (IEC 62351-4 §13.3.1.6, §14.3 step 14).
//!
//! OpenSSL 3.0 has no attribute-certificate API, so the structure is read here over
//! `secmms-ber` (bounded by [`MAX_ACERT_LEN`] and a nesting limit) and only the signature is
//! left to OpenSSL, over the received `AttributeCertificateInfo` octets.
//!
//! [`validate`] accepts an attribute certificate only when all of these hold; each failure is a
//! [`CertError::AttributeCert`] saying which, and the E2E engine answers it with
//! `invalid-attribute-certificate`:
//!
//! * it is a well-formed v2 `AttributeCertificate` whose inner and outer signature algorithms
//!   agree and are sha256WithRSAEncryption or ecdsa-with-SHA256 (clause 8);
//! * its issuer (`v2Form.issuerName`, a directoryName) is the subject of a configured attribute
//!   authority, the authority's certificate is within its validity, and the signature verifies
//!   with the authority's key;
//! * its holder is the entity certificate the same SecPDU authenticated:
//!   `holder.baseCertificateID` names that certificate's issuer and serial number.
//!   DECISION: the `entityName` and `objectDigestInfo` holder forms are refused (RFC 5755 §4.2.2
//!   recommends baseCertificateID; a certificate-bound holder is what ties the role to the
//!   handshake signature);
//! * `attrCertValidityPeriod` contains the local time;
//! * it carries at least one attribute, and no critical extension secmms does not know.
//!
//! The roles are read from an IECUserRoles attribute (1.0.62351.8.1, or the IEC TS 62351-8:2011
//! OID 1.2.840.10070.8.1) and returned for logging; enforcing them is the RBAC layer's business
//! (IEC 62351-8), not clause 13's.

use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, Public};
use openssl::x509::{X509Name, X509};
use secmms_ber::{Limits, Reader, Tag, Tlv};

use crate::cert::CertError;
use crate::crypto::{verify_signature, SignatureAlgorithm};

/// Largest attribute certificate accepted, in octets (the Annex G.3 bound of certificates).
pub const MAX_ACERT_LEN: usize = crate::cert::MAX_CERT_LEN;
/// Most attributes read from one attribute certificate.
pub const MAX_ATTRIBUTES: usize = 32;
/// Most roles reported from one attribute certificate.
pub const MAX_ROLES: usize = 64;

/// `attributes` type of the IECUserRoles attribute (IEC 62351-8:2020).
pub const OID_IEC_USER_ROLES: &[u64] = crate::tooling::OID_IEC_USER_ROLES;
const OID_SHA256_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];

/// The fields of an attribute certificate secmms checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeCertificate {
    /// The signed `AttributeCertificateInfo`, as received (raw TLV).
    pub info_der: Vec<u8>,
    /// The signature algorithm (inner and outer agree).
    pub algorithm: SignatureAlgorithm,
    /// The signature value.
    pub signature: Vec<u8>,
    /// Serial number content octets.
    pub serial: Vec<u8>,
    /// Holder: the issuer Name (DER) of the holder's entity certificate.
    pub holder_issuer: Vec<u8>,
    /// Holder: the serial number content octets of the holder's entity certificate.
    pub holder_serial: Vec<u8>,
    /// The issuer Name (DER) of the attribute certificate (the attribute authority).
    pub issuer: Vec<u8>,
    /// notBeforeTime, as its GeneralizedTime text.
    pub not_before: String,
    /// notAfterTime, as its GeneralizedTime text.
    pub not_after: String,
    /// The IEC 62351-8 roles (RoleId) of an IECUserRoles attribute.
    pub roles: Vec<u64>,
    /// Number of attributes.
    pub attributes: usize,
}

fn bad(what: &str) -> CertError {
    CertError::AttributeCert(what.to_string())
}

fn limits() -> Limits {
    Limits {
        max_depth: 16,
        max_len: MAX_ACERT_LEN,
    }
}

fn algorithm(alg: &Tlv<'_>) -> Result<SignatureAlgorithm, CertError> {
    let mut r = alg
        .children()
        .map_err(|_| bad("malformed AlgorithmIdentifier"))?;
    let oid = r
        .expect(Tag::OID)
        .and_then(|o| o.as_oid())
        .map_err(|_| bad("malformed AlgorithmIdentifier"))?;
    if oid.arcs() == OID_SHA256_RSA {
        Ok(SignatureAlgorithm::RsaPkcs1Sha256)
    } else if oid.arcs() == OID_ECDSA_SHA256 {
        Ok(SignatureAlgorithm::EcdsaSha256)
    } else {
        Err(CertError::AttributeCert(format!(
            "signature algorithm {oid} is not sha256WithRSAEncryption or ecdsa-with-SHA256"
        )))
    }
}

/// The one directoryName of a GeneralNames (its DER Name).
fn directory_name(general_names: &Tlv<'_>, what: &str) -> Result<Vec<u8>, CertError> {
    let m = |_| CertError::AttributeCert(format!("malformed {what}"));
    let mut names = general_names.children().map_err(m)?;
    let mut found = None;
    while !names.is_empty() {
        let gn = names.read().map_err(m)?;
        if gn.tag() == Tag::context(4, true) {
            if found.is_some() {
                return Err(CertError::AttributeCert(format!(
                    "{what} has more than one directoryName"
                )));
            }
            let name = gn.single_child().map_err(m)?;
            if name.tag() != Tag::SEQUENCE {
                return Err(CertError::AttributeCert(format!("malformed {what}")));
            }
            found = Some(name.raw().to_vec());
        }
    }
    found.ok_or_else(|| CertError::AttributeCert(format!("{what} has no directoryName")))
}

fn generalized_time(t: &Tlv<'_>) -> Result<String, CertError> {
    if t.tag() != Tag::GENERALIZED_TIME {
        return Err(bad("validity times must be GeneralizedTime"));
    }
    let s = std::str::from_utf8(t.content()).map_err(|_| bad("malformed GeneralizedTime"))?;
    // RFC 5755 §4.2.6: YYYYMMDDHHMMSSZ, no fractions.
    let ok = s.len() == 15 && s.ends_with('Z') && s.as_bytes()[..14].iter().all(u8::is_ascii_digit);
    if !ok {
        return Err(CertError::AttributeCert(format!(
            "GeneralizedTime {s:?} is not YYYYMMDDHHMMSSZ"
        )));
    }
    Ok(s.to_string())
}

fn roles_of(values: &Tlv<'_>, out: &mut Vec<u64>) -> Result<(), CertError> {
    let m = |_| bad("malformed IECUserRoles attribute");
    for v in values.children().map_err(m)? {
        // IECUserRoles: SEQUENCE OF SEQUENCE { userRole SEQUENCE OF RoleId, aor, ... }
        for info in v.map_err(m)?.children().map_err(m)? {
            let info = info.map_err(m)?;
            let mut f = info.children().map_err(m)?;
            let user_role = f.expect(Tag::SEQUENCE).map_err(m)?;
            for id in user_role.children().map_err(m)? {
                if out.len() == MAX_ROLES {
                    return Err(bad("too many roles"));
                }
                out.push(id.and_then(|i| i.as_u64()).map_err(m)?);
            }
        }
    }
    Ok(())
}

/// Parses a DER attribute certificate (no signature or trust check; see [`validate`]).
pub fn parse(der: &[u8]) -> Result<AttributeCertificate, CertError> {
    if der.len() > MAX_ACERT_LEN {
        return Err(CertError::AttributeCert(format!(
            "{} octets, above the limit of {MAX_ACERT_LEN}",
            der.len()
        )));
    }
    let m = |_| bad("not a DER AttributeCertificate");
    let mut top = Reader::new(der, limits());
    let ac = top.expect(Tag::SEQUENCE).map_err(m)?;
    top.finish().map_err(m)?;
    let mut c = ac.children().map_err(m)?;
    let info = c.expect(Tag::SEQUENCE).map_err(m)?;
    let outer_alg = c.expect(Tag::SEQUENCE).map_err(m)?;
    let (unused, sig) = c
        .expect(Tag::BIT_STRING)
        .and_then(|b| b.as_bit_string())
        .map_err(m)?;
    c.finish().map_err(m)?;
    if unused != 0 {
        return Err(bad("signature BIT STRING has unused bits"));
    }
    let mut f = info.children().map_err(m)?;
    let version = f.expect(Tag::INTEGER).and_then(|v| v.as_i64()).map_err(m)?;
    if version != 1 {
        return Err(CertError::AttributeCert(format!(
            "version {version}: only v2 (1) attribute certificates are defined"
        )));
    }
    // Holder ::= SEQUENCE { baseCertificateID [0] IssuerSerial OPTIONAL, entityName [1] ...,
    // objectDigestInfo [2] ... } (IMPLICIT tags).
    let holder = f.expect(Tag::SEQUENCE).map_err(m)?;
    let mut h = holder.children().map_err(m)?;
    let Some(base) = h.optional(Tag::context(0, true)).map_err(m)? else {
        return Err(bad(
            "holder is not bound by baseCertificateID (entityName and objectDigestInfo are not \
             accepted)",
        ));
    };
    let mut b = base.children().map_err(m)?;
    let holder_issuer = directory_name(&b.expect(Tag::SEQUENCE).map_err(m)?, "holder issuer")?;
    let holder_serial = b.expect(Tag::INTEGER).map_err(m)?.content().to_vec();
    // AttCertIssuer: only v2Form [0] { issuerName GeneralNames } (RFC 5755 §4.2.3).
    let issuer = f.read().map_err(m)?;
    if issuer.tag() != Tag::context(0, true) {
        return Err(bad("issuer is not in v2Form"));
    }
    let mut i = issuer.children().map_err(m)?;
    let issuer_names = i
        .optional(Tag::SEQUENCE)
        .map_err(m)?
        .ok_or_else(|| bad("issuer v2Form has no issuerName"))?;
    let issuer = directory_name(&issuer_names, "issuer")?;
    let inner_alg = f.expect(Tag::SEQUENCE).map_err(m)?;
    if inner_alg.raw() != outer_alg.raw() {
        return Err(bad(
            "signature algorithm inside and outside AttributeCertificateInfo differ",
        ));
    }
    let algorithm = algorithm(&inner_alg)?;
    let serial = f.expect(Tag::INTEGER).map_err(m)?.content().to_vec();
    let validity = f.expect(Tag::SEQUENCE).map_err(m)?;
    let mut v = validity.children().map_err(m)?;
    let not_before = generalized_time(&v.read().map_err(m)?)?;
    let not_after = generalized_time(&v.read().map_err(m)?)?;
    v.finish().map_err(m)?;
    let attrs = f.expect(Tag::SEQUENCE).map_err(m)?;
    let mut attributes = 0;
    let mut roles = Vec::new();
    for a in attrs.children().map_err(m)? {
        attributes += 1;
        if attributes > MAX_ATTRIBUTES {
            return Err(bad("too many attributes"));
        }
        let a = a.map_err(m)?;
        let mut ar = a.children().map_err(m)?;
        let ty = ar.expect(Tag::OID).and_then(|o| o.as_oid()).map_err(m)?;
        let values = ar.expect(Tag::SET).map_err(m)?;
        if ty.arcs() == OID_IEC_USER_ROLES || ty.arcs() == crate::tooling::OID_IEC_USER_ROLES_LEGACY
        {
            roles_of(&values, &mut roles)?;
        }
    }
    if attributes == 0 {
        return Err(bad("no attributes"));
    }
    // issuerUniqueID (BIT STRING) is not used by RFC 5755 conforming issuers; extensions may
    // follow. An unknown critical extension refuses the certificate.
    f.optional(Tag::BIT_STRING).map_err(m)?;
    if let Some(exts) = f.optional(Tag::SEQUENCE).map_err(m)? {
        for e in exts.children().map_err(m)? {
            let e = e.map_err(m)?;
            let mut er = e.children().map_err(m)?;
            let id = er.expect(Tag::OID).and_then(|o| o.as_oid()).map_err(m)?;
            let critical = er
                .optional(Tag::BOOLEAN)
                .map_err(m)?
                .map(|b| b.as_bool())
                .transpose()
                .map_err(m)?
                .unwrap_or(false);
            er.expect(Tag::OCTET_STRING).map_err(m)?;
            if critical {
                return Err(CertError::AttributeCert(format!(
                    "unknown critical extension {id}"
                )));
            }
        }
    }
    f.finish().map_err(m)?;
    Ok(AttributeCertificate {
        info_der: info.raw().to_vec(),
        algorithm,
        signature: sig.to_vec(),
        serial,
        holder_issuer,
        holder_serial,
        issuer,
        not_before,
        not_after,
        roles,
        attributes,
    })
}

/// Whether two DER Names are the same name (OpenSSL's comparison of the canonical forms, or the
/// same octets when either cannot be read).
fn same_name(a: &[u8], b: &[u8]) -> bool {
    if a == b {
        return true;
    }
    match (X509Name::from_der(a), X509Name::from_der(b)) {
        (Ok(x), Ok(y)) => x.try_cmp(&y).ok() == Some(std::cmp::Ordering::Equal),
        _ => false,
    }
}

fn unix_of(generalized: &str) -> Result<Asn1Time, CertError> {
    Asn1Time::from_str(generalized)
        .map_err(|_| CertError::AttributeCert(format!("time {generalized:?} cannot be read")))
}

/// The holder an attribute certificate must be bound to: the issuer Name (DER) and serial
/// number content octets of the entity certificate the handshake authenticated.
#[derive(Debug, Clone, Copy)]
pub struct Holder<'a> {
    /// Issuer Name of the entity certificate (DER).
    pub issuer: &'a [u8],
    /// Serial number content octets of the entity certificate.
    pub serial: &'a [u8],
}

/// Validates an attribute certificate against the configured attribute authorities, for
/// `holder`, at `now` (seconds since the Unix epoch). See the module documentation for the
/// checks. Returns the parsed certificate (its roles, for the log).
pub fn validate(
    der: &[u8],
    holder: Holder<'_>,
    authorities: &[X509],
    now: i64,
) -> Result<AttributeCertificate, CertError> {
    let ac = parse(der)?;
    if authorities.is_empty() {
        return Err(bad(
            "no attribute authority is configured (security.attribute_authorities)",
        ));
    }
    let issuer = authorities
        .iter()
        .find(|aa| {
            aa.subject_name()
                .to_der()
                .is_ok_and(|n| same_name(&n, &ac.issuer))
        })
        .ok_or_else(|| bad("its issuer is not a configured attribute authority"))?;
    let now_t = Asn1Time::from_unix(now)?;
    if issuer.not_before() > now_t || issuer.not_after() < now_t {
        return Err(bad(
            "the attribute authority's certificate is outside its validity",
        ));
    }
    let key: PKey<Public> = issuer.public_key()?;
    verify_signature(&key, ac.algorithm, &ac.info_der, &ac.signature)
        .map_err(|_| bad("its signature does not verify with the attribute authority's key"))?;
    if !same_name(&ac.holder_issuer, holder.issuer) || ac.holder_serial != holder.serial {
        return Err(bad(
            "its holder is not the entity certificate of this handshake",
        ));
    }
    if unix_of(&ac.not_before)? > now_t {
        return Err(CertError::AttributeCert(format!(
            "not valid before {}",
            ac.not_before
        )));
    }
    if unix_of(&ac.not_after)? < now_t {
        return Err(CertError::AttributeCert(format!(
            "expired at {}",
            ac.not_after
        )));
    }
    Ok(ac)
}

/// [`validate`] for the entity certificate a handshake validated (its issuer and serial bind
/// the holder): what [`crate::cert::CertValidator::validate_attribute_cert`] runs.
pub fn validate_for(
    der: &[u8],
    holder: &crate::cert::ValidatedCert,
    authorities: &[X509],
    now: i64,
) -> Result<(), CertError> {
    validate(
        der,
        Holder {
            issuer: &holder.info.issuer_name,
            serial: &holder.info.serial,
        },
        authorities,
        now,
    )
    .map(|_| ())
}
