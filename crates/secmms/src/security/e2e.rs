//! Native mode: the E2E engine configuration and context (clauses 13–14) the `[security]`
//! section describes.

use std::sync::Arc;

use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::{
    Context as E2eContext, Credentials as E2eCredentials, E2eConfig, EncryptionPolicy, ModeOffer,
};
use secmms_pki::crypto::SigningKey;

use super::config::value_err;
use super::{
    load_attribute_certificate, load_certificate, load_key, load_validator, ConfParam, Encrypt,
    EncryptionRule, SecurityConfig, SecurityError,
};

/// The E2E engine context of native mode (clauses 13–14) from the `[security]` section and the
/// loaded credentials: the offer follows `encrypt`, the time window `time_window_secs`.
pub fn e2e_context(
    s: &SecurityConfig,
    certificate: Vec<u8>,
    key: SigningKey,
    att_cert: Option<Vec<u8>>,
    validator: Arc<dyn secmms_pki::CertValidator>,
) -> E2eContext {
    let e2e = e2e_config(s);
    E2eContext {
        config: Arc::new(e2e),
        credentials: Arc::new(E2eCredentials {
            key,
            cert_der: certificate,
            cert_path: None,
            att_cert,
        }),
        validator,
        replay: Arc::new(std::sync::Mutex::new(secmms_e2e::replay::ReplayCache::new())),
    }
}

/// The E2E engine configuration the `[security]` section describes (§13.3.1.5 policy, both
/// roles): the offer follows `encrypt`, the rule `encryption` and `require_ae`, the groups,
/// signatures, rekey interval, `confParams` and `pp` their keys. The PICS reads the same value.
pub fn e2e_config(s: &SecurityConfig) -> E2eConfig {
    let mut e2e = E2eConfig {
        time_window_ms: s.time_window_secs.saturating_mul(1000),
        rekey_interval_ms: s.rekey_interval_secs.saturating_mul(1000),
        require_ae: s.require_ae,
        encryption: match s.encryption {
            EncryptionRule::Optional => EncryptionPolicy::Optional,
            EncryptionRule::Required => EncryptionPolicy::Required,
            EncryptionRule::Forbidden => EncryptionPolicy::Forbidden,
        },
        ..E2eConfig::default()
    };
    if !s.dh_groups.is_empty() {
        e2e.offer_groups = s.dh_groups.iter().map(|g| g.group()).collect();
        e2e.accept_groups = e2e.offer_groups.clone();
    }
    if !s.signatures.is_empty() {
        e2e.allowed_signatures = s.signatures.iter().map(|g| g.algorithm()).collect();
    }
    for c in &s.conf_params {
        match c {
            ConfParam::TlsProtected => e2e.conf_params.tls_protected = true,
            ConfParam::Vpn => e2e.conf_params.vpn = true,
        }
    }
    if let Some(pp) = &s.protected_protocol {
        e2e.protected_protocol = pp.clone();
        e2e.accepted_protocols = vec![pp.clone()];
    }
    if !s.accepted_protocols.is_empty() {
        e2e.accepted_protocols = s.accepted_protocols.clone();
    }
    e2e.offer = match s.encrypt {
        Encrypt::Gcm => ModeOffer::Ae(vec![AeAlg::Aes128Gcm, AeAlg::Aes256Gcm]),
        Encrypt::Cbc => ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        Encrypt::None => ModeOffer::NonAe {
            encr: Vec::new(),
            icv: vec![IcvAlg::HmacSha256],
        },
    };
    e2e
}

/// Loads the application credentials and trust anchors `s` names (with the TLS section `tls`
/// as fallback for anchors and CRLs) and builds the E2E context of native mode.
pub fn load_e2e_context(
    s: &SecurityConfig,
    tls: &crate::tls::TlsConfig,
) -> Result<E2eContext, SecurityError> {
    let (Some(cert_p), Some(key_p)) = (&s.app_cert, &s.app_key) else {
        return Err(value_err(
            "security.app_cert",
            "native mode needs --app-cert and --app-key",
        )
        .into());
    };
    let certificate = load_certificate(cert_p)?;
    let key = load_key(key_p)?;
    let anchors = if s.ca.is_empty() { &tls.ca } else { &s.ca };
    let crls = if s.crl.is_empty() { &tls.crl } else { &s.crl };
    let validator = Arc::new(load_validator(anchors, crls, &s.attribute_authorities)?);
    let att_cert = load_attribute_certificate(s)?;
    Ok(e2e_context(s, certificate, key, att_cert, validator))
}

/// The E2E key log file (`[security] e2e_keylog_file`, `--e2e-keylog`): the
/// [`E2eKeyLogSink`](secmms_profiles::native::E2eKeyLogSink) of native mode. One line per
/// association and key generation ([`secmms_e2e::keylog`] gives the format); the file is opened
/// for appending with mode 0600 (an existing file is set to 0600 too). The engine raises the
/// `E2E_KEYLOG_ACTIVE` warning event for each line.
#[derive(Debug)]
pub struct E2eKeyLogFile {
    file: std::sync::Mutex<std::fs::File>,
}

impl E2eKeyLogFile {
    /// Opens (creating or appending to) the key log at `path`, readable by its owner only.
    pub fn open(path: &std::path::Path) -> Result<Self, SecurityError> {
        let file = crate::tls::open_keylog(path).map_err(|source| SecurityError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(E2eKeyLogFile {
            file: std::sync::Mutex::new(file),
        })
    }
}

impl secmms_profiles::native::E2eKeyLogSink for E2eKeyLogFile {
    fn record(&self, keys: &secmms_e2e::keylog::KeyMaterial) {
        use std::io::Write;
        let mut line = keys.line();
        line.push('\n');
        let mut f = match self.file.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        // One write per line, so concurrent associations never interleave within a line.
        let _ = f.write_all(line.as_bytes());
    }
}
