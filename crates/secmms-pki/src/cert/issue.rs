//! Test and tooling helpers that issue Annex G certificates with OpenSSL.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::x509::extension::{BasicConstraints, KeyUsage};
use openssl::x509::{X509Name, X509NameBuilder, X509};
use secmms_ber::{Oid, Tag, Writer};

use super::{CertError, PeerIdentity, ATTR_JID, ATTR_OBJECT_IDENTIFIER};
use crate::crypto::SigningKey;

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
/// rejects an OBJECT IDENTIFIER attribute value in a Name. [`CertInfo::parse`](super::CertInfo::parse) accepts both.
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
                            (PeerIdentity::Jid(j), _) => w.octets(Tag::UTF8_STRING, j.as_bytes()),
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
