//! End-entity certificates for application-layer security: the Annex G profile checks, the
//! environment-address binding (Annex G.6) and path validation behind the [`CertValidator`] trait,
//! with an OpenSSL `X509Store` default ([`OpenSslValidator`]).

use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{CrlStatus, X509Crl, X509StoreContext, X509};
use secmms_ber::{Limits, Oid, Reader, Tag};

use crate::crypto::{key_kind, KeyKind};

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
    AttributeCert(&'static str),
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
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::Malformed("certificate too long"));
        }
        let m = |_| CertError::Malformed("certificate DER");
        let limits = Limits {
            max_depth: 16,
            max_len: MAX_CERT_LEN,
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
        t.expect(Tag::SEQUENCE).map_err(m)?; // issuer
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

/// Checks a parsed end-entity certificate and its key against Annex G.4–G.5. Returns warnings
/// for tolerated deviations.
pub fn check_annex_g(info: &CertInfo, key: &PKey<Public>) -> Result<Vec<String>, CertError> {
    let mut warnings = Vec::new();
    if info.version != 2 {
        return Err(CertError::Profile("version is not v3"));
    }
    if info.serial_negative {
        return Err(CertError::Profile("negative serial number"));
    }
    if info.inner_sig_alg != info.outer_sig_alg {
        return Err(CertError::Profile(
            "signatureAlgorithm differs from tbsCertificate.signature",
        ));
    }
    if !SIG_ALGS_SHA2.contains(&info.sig_alg_oid.arcs()) {
        return Err(CertError::Profile(
            "signature algorithm weaker than SHA-256",
        ));
    }
    if info.has_unique_ids {
        return Err(CertError::Profile("unique identifiers present"));
    }
    match key_kind(key) {
        Ok(KeyKind::Rsa(_)) | Ok(KeyKind::Ec(_)) => {}
        Err(_) => return Err(CertError::Profile("public key type or size")),
    }
    if info.key_usage.is_none() {
        return Err(CertError::Profile("keyUsage absent"));
    }
    if !info.digital_signature() {
        return Err(CertError::Profile("keyUsage without digitalSignature"));
    }
    if !info.key_agreement() {
        warnings.push("keyUsage without keyAgreement (Annex G.5)".to_string());
    }
    if info.identity_as_string {
        warnings.push("2.5.4.106 encoded as a string, not an OBJECT IDENTIFIER".to_string());
    }
    Ok(warnings)
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

    /// Validates an IEC 62351-8 attribute certificate of the holder. The default accepts any
    /// well-formed DER SEQUENCE; RBAC deployments override it.
    fn validate_attribute_cert(
        &self,
        acert_der: &[u8],
        _holder: &ValidatedCert,
        _now: i64,
    ) -> Result<(), CertError> {
        let mut r = Reader::new(acert_der, Limits::default());
        match r.expect(Tag::SEQUENCE) {
            Ok(t) if r.finish().is_ok() && t.children().is_ok() => Ok(()),
            _ => Err(CertError::AttributeCert("not a DER SEQUENCE")),
        }
    }
}

/// Default [`CertValidator`]: OpenSSL path validation against a set of trust anchors at the
/// given time, CRL revocation checks, then the Annex G profile.
#[derive(Clone, Default)]
pub struct OpenSslValidator {
    anchors: Vec<X509>,
    crls: Vec<std::sync::Arc<X509Crl>>,
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
    /// Adds a trust anchor from DER.
    pub fn add_anchor_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        self.anchors
            .push(X509::from_der(der).map_err(|_| CertError::Malformed("anchor"))?);
        Ok(())
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

impl CertValidator for OpenSslValidator {
    fn validate(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        let leaf = X509::from_der(leaf_der).map_err(|_| CertError::Malformed("certificate"))?;
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
        let mut sb = X509StoreBuilder::new()?;
        for a in &self.anchors {
            sb.add_cert(a.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(now as _);
        param.set_depth(MAX_CHAIN_DEPTH);
        sb.set_param(&param)?;
        let store = sb.build();
        let mut ctx = X509StoreContext::new()?;
        let (ok, err, verified): (bool, String, Vec<X509>) =
            ctx.init(&store, leaf, &chain, |c| {
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
        assert!(V.validate_attribute_cert(&[0x30, 0x00], &vc, 0).is_ok());
        assert!(V.validate_attribute_cert(&[0x04, 0x00], &vc, 0).is_err());
    }
}
