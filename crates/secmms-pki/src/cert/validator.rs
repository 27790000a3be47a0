//! Path validation behind the [`CertValidator`] trait and its OpenSSL-store default
//! ([`OpenSslValidator`]), with the fallback for leaves OpenSSL cannot load.

use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{CrlStatus, X509Crl, X509StoreContext, X509};

use super::{check_annex_g, foreign, CertError, CertInfo, MAX_CHAIN_DEPTH, MAX_PATH_CERTS};

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
