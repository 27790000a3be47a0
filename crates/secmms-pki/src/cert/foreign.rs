//! Certificates OpenSSL 3.0 cannot load: a leaf whose subject carries 2.5.4.106 as an OBJECT
//! IDENTIFIER (the Annex G.6.2 form; `d2i_X509_NAME` refuses a non-string attribute value).
//! The leaf is parsed with `x509-parser`; its signature is checked with OpenSSL over the
//! TBSCertificate octets as received; the chain above it (the issuer up to an anchor) is
//! validated with OpenSSL's store; what the store would have checked on the leaf is done here:
//! the issuer's name, CA flag, keyCertSign and path length, the leaf's validity period and the
//! issuer's CRLs.

use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CertError, MAX_CERT_LEN};

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
