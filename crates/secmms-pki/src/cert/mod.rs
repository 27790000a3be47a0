//! End-entity certificates for application-layer security: the Annex G profile checks, the
//! environment-address binding (Annex G.6) and path validation behind the [`CertValidator`] trait,
//! with an OpenSSL `X509Store` default ([`OpenSslValidator`]).
//!
//! `info.rs` reads the facts of a certificate ([`CertInfo`]), `annex_g.rs` names and evaluates the
//! profile rules ([`AnnexGRule`]), `validator.rs` validates paths (with `foreign.rs` for leaves
//! OpenSSL cannot load) and [`issue`] issues certificates for tests and tooling.

mod annex_g;
mod foreign;
mod info;
pub mod issue;
#[cfg(test)]
mod tests;
mod validator;

use secmms_ber::Oid;

pub use annex_g::{check_annex_g, profile_findings, AnnexGRule, FindingSeverity};
pub use info::{public_key_of, split_pki_path, validity_of, CertInfo};
pub use validator::{CertValidator, OpenSslValidator, ValidatedCert};

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
    AttributeCert(String),
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
