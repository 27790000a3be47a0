//! Reading the application credentials: certificates, keys, attribute certificates, trust
//! anchors and CRLs, and the validator whose CRLs are read again on demand
//! ([`ReloadableValidator`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::x509::{X509Crl, X509};
use secmms_ber::Oid;
use secmms_pki::cert::{CertInfo, OpenSslValidator};
use secmms_pki::crypto::{sha256, SigningKey};

use super::config::value_err;
use super::{titles_of_identity, SecurityConfig, SecurityError};

/// Our titles: the configured ones must equal the certificate's binding; absent ones come from
/// it. A certificate without an AP-title binding leaves the configured (or default) titles.
pub(super) fn local_titles(
    osi: &crate::osi::OsiSettings,
    info: &CertInfo,
    cert: &Path,
) -> Result<Option<(Oid, i64)>, SecurityError> {
    let Some((ap, ae)) = info.identity.as_ref().and_then(titles_of_identity) else {
        return Ok(None);
    };
    let configured_ap = osi
        .local_ap_title
        .as_deref()
        .map(|s| {
            s.parse::<Oid>()
                .map_err(|_| value_err("osi.local_ap_title", format!("`{s}` is not an OID")))
        })
        .transpose()?;
    let want_ap = configured_ap.clone().unwrap_or_else(|| ap.clone());
    let want_ae = osi.local_ae_qualifier.unwrap_or(ae);
    if want_ap != ap || want_ae != ae {
        return Err(SecurityError::TitlesMismatch {
            configured: format!("{want_ap} / {want_ae}"),
            bound: format!("{ap} / {ae}"),
            cert: cert.to_owned(),
        });
    }
    Ok(Some((ap, ae)))
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn cred_err(path: &Path, reason: impl std::fmt::Display) -> SecurityError {
    SecurityError::Credential {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads one certificate, PEM or DER, as DER.
pub fn load_certificate(path: &Path) -> Result<Vec<u8>, SecurityError> {
    let bytes = read(path)?;
    let x = if bytes.starts_with(b"-----") || bytes.iter().take(64).all(|b| b.is_ascii()) {
        X509::from_pem(&bytes)
    } else {
        X509::from_der(&bytes)
    };
    match x.and_then(|c| c.to_der()) {
        Ok(der) => Ok(der),
        Err(e) => {
            // OpenSSL 3.0 cannot load the Annex G.6.2 OBJECT IDENTIFIER subject form
            // (`secmms cert issue --subject-form oid`): take the DER out of the PEM here and
            // accept it when it parses as a certificate with a usable key.
            let der = secmms_pki::tooling::pem_or_der("CERTIFICATE", &bytes).unwrap_or(bytes);
            match secmms_pki::cert::public_key_of(&der) {
                Ok(_) => Ok(der),
                Err(_) => Err(cred_err(path, format!("not a certificate: {e}"))),
            }
        }
    }
}

/// Reads a private key (PEM).
pub fn load_key(path: &Path) -> Result<SigningKey, SecurityError> {
    let bytes = read(path)?;
    SigningKey::from_pem(&bytes).map_err(|e| cred_err(path, format!("not a usable key: {e}")))
}

/// Writes a private key as PKCS#8 PEM readable by its owner only (0600 on Unix), replacing any
/// file at `path`. The key is never printed or logged.
pub fn write_private_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    use std::io::Write;
    let pem = key
        .pkey()
        .private_key_to_pem_pkcs8()
        .map_err(std::io::Error::other)?;
    let _ = std::fs::remove_file(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(&pem)
}

/// Our attribute certificate (`[security] attribute_certificate`), DER, checked to be one.
pub fn load_attribute_certificate(s: &SecurityConfig) -> Result<Option<Vec<u8>>, SecurityError> {
    let Some(p) = &s.attribute_certificate else {
        return Ok(None);
    };
    let bytes = read(p)?;
    let der = secmms_pki::tooling::pem_or_der("ATTRIBUTE CERTIFICATE", &bytes)
        .map_err(|e| cred_err(p, format!("not an attribute certificate: {e}")))?;
    secmms_pki::acert::parse(&der)
        .map_err(|e| cred_err(p, format!("not a usable attribute certificate: {e}")))?;
    Ok(Some(der))
}

/// A validator with the anchors, CRLs and attribute authorities of these files.
pub fn load_validator(
    anchors: &[PathBuf],
    crls: &[PathBuf],
    attribute_authorities: &[PathBuf],
) -> Result<OpenSslValidator, SecurityError> {
    let mut v = OpenSslValidator::new();
    for p in attribute_authorities {
        let bytes = read(p)?;
        let certs = X509::stack_from_pem(&bytes)
            .map_err(|e| cred_err(p, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(cred_err(p, "no certificate"));
        }
        for c in certs {
            v.add_attribute_authority(c);
        }
    }
    for p in anchors {
        let bytes = read(p)?;
        let certs = X509::stack_from_pem(&bytes)
            .map_err(|e| cred_err(p, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(cred_err(p, "no certificate"));
        }
        for c in certs {
            v.add_anchor(c);
        }
    }
    for p in crls {
        for crl in read_crls(p)? {
            v.add_crl(crl);
        }
    }
    Ok(v)
}

/// Every CRL in a file: PEM (one or more `X509 CRL` blocks) or one DER CRL.
fn read_crls(p: &Path) -> Result<Vec<X509Crl>, SecurityError> {
    let bytes = read(p)?;
    let bad = |e: String| cred_err(p, format!("not a CRL: {e}"));
    if !bytes.starts_with(b"-----") && !bytes.iter().take(64).all(u8::is_ascii) {
        return Ok(vec![
            X509Crl::from_der(&bytes).map_err(|e| bad(e.to_string()))?
        ]);
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(e.to_string()))?;
    let end = "-----END X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN X509 CRL-----") {
        let Some(j) = rest[i..].find(end) else { break };
        let block = &rest[i..i + j + end.len()];
        out.push(X509Crl::from_pem(block.as_bytes()).map_err(|e| bad(e.to_string()))?);
        rest = &rest[i + j + end.len()..];
    }
    if out.is_empty() {
        return Err(bad("no X509 CRL block".into()));
    }
    Ok(out)
}

/// The application-certificate validator of a running process: the configured trust anchors and
/// CRLs, with the CRLs read again on demand ([`ReloadableValidator::reload`]: on the TLS
/// schedule, `crl_evaluation_period_secs`, and on SIGHUP). Both profiles share one.
pub struct ReloadableValidator {
    anchors: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    attribute_authorities: Vec<PathBuf>,
    current: std::sync::RwLock<Arc<OpenSslValidator>>,
    digest: std::sync::Mutex<[u8; 32]>,
}

impl std::fmt::Debug for ReloadableValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableValidator")
            .field("anchors", &self.anchors)
            .field("crls", &self.crls)
            .finish_non_exhaustive()
    }
}

impl ReloadableValidator {
    /// Reads the anchors, CRLs and attribute authorities.
    pub fn load(
        anchors: &[PathBuf],
        crls: &[PathBuf],
        attribute_authorities: &[PathBuf],
    ) -> Result<Self, SecurityError> {
        let v = load_validator(anchors, crls, attribute_authorities)?;
        Ok(ReloadableValidator {
            anchors: anchors.to_vec(),
            crls: crls.to_vec(),
            attribute_authorities: attribute_authorities.to_vec(),
            current: std::sync::RwLock::new(Arc::new(v)),
            digest: std::sync::Mutex::new(Self::digest_of(crls)?),
        })
    }

    fn digest_of(crls: &[PathBuf]) -> Result<[u8; 32], SecurityError> {
        let mut all = Vec::new();
        for p in crls {
            all.extend_from_slice(p.as_os_str().as_encoded_bytes());
            all.push(0);
            all.extend_from_slice(&sha256(&read(p)?));
        }
        Ok(sha256(&all))
    }

    /// Reads the CRL files again. `Ok(true)` when they changed (the new CRLs are in force; live
    /// associations should be re-checked), `Ok(false)` when they did not. On an error (a file
    /// missing or unreadable) the CRLs in force stay.
    pub fn reload(&self) -> Result<bool, SecurityError> {
        let digest = Self::digest_of(&self.crls)?;
        let mut d = match self.digest.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *d == digest {
            return Ok(false);
        }
        let fresh = Arc::new(load_validator(
            &self.anchors,
            &self.crls,
            &self.attribute_authorities,
        )?);
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        *d = digest;
        Ok(true)
    }

    /// The trust anchors in force.
    pub fn anchors(&self) -> Vec<X509> {
        self.current().anchors().to_vec()
    }

    fn current(&self) -> Arc<OpenSslValidator> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl secmms_pki::CertValidator for ReloadableValidator {
    fn validate(
        &self,
        leaf_der: &[u8],
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<secmms_pki::ValidatedCert, secmms_pki::CertError> {
        self.current().validate(leaf_der, path_der, now)
    }

    fn validate_parsed(
        &self,
        leaf_der: &[u8],
        leaf: &X509,
        public_key: &openssl::pkey::PKey<openssl::pkey::Public>,
        path_der: &[Vec<u8>],
        now: i64,
    ) -> Result<secmms_pki::ValidatedCert, secmms_pki::CertError> {
        self.current()
            .validate_parsed(leaf_der, leaf, public_key, path_der, now)
    }

    fn validate_attribute_cert(
        &self,
        acert_der: &[u8],
        holder: &secmms_pki::ValidatedCert,
        now: i64,
    ) -> Result<(), secmms_pki::CertError> {
        self.current()
            .validate_attribute_cert(acert_der, holder, now)
    }
}
