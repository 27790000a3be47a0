//! Helpers for documentation examples, tests and benchmarks: a throw-away PKI with one CA, a
//! client and a server certificate (Annex G profile). Not part of the stable API.

use std::sync::{Arc, Mutex};

use secmms_ber::Oid;
use secmms_pki::cert::issue::{issue, CertSpec};
use secmms_pki::cert::PeerIdentity;
use secmms_pki::crypto::{Curve, SigningKey};
use secmms_pki::OpenSslValidator;

use crate::config::{Context, Credentials, E2eConfig};
use crate::replay::ReplayCache;

/// Validity start of the demo certificates (seconds since the epoch).
pub const DEMO_NOT_BEFORE: i64 = 1_700_000_000;
/// Validity end of the demo certificates.
pub const DEMO_NOT_AFTER: i64 = 1_900_000_000;

/// The key types a demo PKI can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA 2048.
    Rsa2048,
    /// ECDSA P-256.
    P256,
    /// ECDSA brainpoolP256r1.
    Brainpool,
}

/// Generates a key of a type.
pub fn key(kt: KeyType) -> SigningKey {
    let k = match kt {
        KeyType::Rsa2048 => SigningKey::generate_rsa(2048),
        KeyType::P256 => SigningKey::generate_ec(Curve::P256),
        KeyType::Brainpool => SigningKey::generate_ec(Curve::BrainpoolP256r1),
    };
    k.expect("key generation")
}

/// A demo PKI.
pub struct DemoPki {
    /// CA key.
    pub ca_key: SigningKey,
    /// CA certificate.
    pub ca: openssl::x509::X509,
    /// A validator trusting the CA.
    pub validator: Arc<OpenSslValidator>,
}

impl DemoPki {
    /// A new CA (P-256).
    pub fn new() -> DemoPki {
        let ca_key = key(KeyType::P256);
        let ca = issue(
            &CertSpec::ca("secmms demo CA", DEMO_NOT_BEFORE, DEMO_NOT_AFTER),
            &ca_key,
            None,
        )
        .expect("CA");
        let mut v = OpenSslValidator::new();
        v.add_anchor(ca.clone());
        DemoPki {
            ca_key,
            ca,
            validator: Arc::new(v),
        }
    }

    /// Credentials for an end entity bound to an AP-title + AE-qualifier.
    pub fn credentials(&self, kt: KeyType, ap_title: &[u64], serial: u8) -> Credentials {
        let k = key(kt);
        let id = PeerIdentity::ApTitle(Oid::new(ap_title).expect("oid"));
        let c = issue(
            &CertSpec::end_entity(id, DEMO_NOT_BEFORE, DEMO_NOT_AFTER, serial),
            &k,
            Some((&self.ca, &self.ca_key)),
        )
        .expect("certificate");
        Credentials {
            key: k,
            cert_der: c.to_der().expect("der"),
            cert_path: None,
            att_cert: None,
        }
    }

    /// A context with the given config and credentials.
    pub fn context(&self, config: E2eConfig, creds: Credentials) -> Context {
        Context {
            config: Arc::new(config),
            credentials: Arc::new(creds),
            validator: self.validator.clone(),
            replay: Arc::new(Mutex::new(ReplayCache::new())),
        }
    }
}

impl Default for DemoPki {
    fn default() -> Self {
        Self::new()
    }
}

/// Client AP-title + AE-qualifier of the demo.
pub const CLIENT_AP: &[u64] = &[1, 1, 1, 999, 1, 12];
/// Server AP-title + AE-qualifier of the demo.
pub const SERVER_AP: &[u64] = &[1, 1, 1, 999, 2, 33];

/// A client and a server context with default configuration (ECDSA P-256 keys).
pub fn demo_contexts() -> (Context, Context) {
    let pki = DemoPki::new();
    let c = pki.credentials(KeyType::P256, CLIENT_AP, 1);
    let s = pki.credentials(KeyType::P256, SERVER_AP, 2);
    (
        pki.context(E2eConfig::default(), c),
        pki.context(E2eConfig::default(), s),
    )
}
