//! The facts of a DER certificate that Annex G and §14.3 need, read over `secmms-ber`: the
//! subject's environment identity (G.6), the key usage, the algorithms; and the PkiPath splitter.

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;
use secmms_ber::{Limits, Oid, Reader, Tag};

use super::{
    foreign, CertError, PeerIdentity, ATTR_JID, ATTR_OBJECT_IDENTIFIER, MAX_CERT_LEN,
    MAX_PATH_CERTS, OID_KEY_USAGE,
};

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
