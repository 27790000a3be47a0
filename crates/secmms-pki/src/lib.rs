//! Certificates, cryptographic primitives over OpenSSL and security-event types for secmms.
//!
//! * [`crypto`] — the algorithms of IEC 62351-4 clause 8: RSA / ECDSA (P-256, brainpoolP256r1)
//!   signatures, Diffie-Hellman group 14 and ECDH with peer-value validation, HKDF (RFC 5869),
//!   HMAC-SHA256, GMAC, AES-GCM and AES-CBC, and a [`crypto::RandomSource`] abstraction.
//! * [`cert`] — Annex G certificate checks, environment binding (G.6) and the
//!   [`cert::CertValidator`] trait with an OpenSSL-store default.
//! * [`acert`] — IEC 62351-8 attribute certificates (the E2E `attCert`): parsing and validation
//!   against configured attribute authorities.
//! * [`event`] — [`event::SecurityEvent`] and [`event::SecurityEventSink`] (62351-14 style).
//! * [`tooling`] — Annex G certificate tooling behind `secmms cert`: CA, end-entity and TLS
//!   certificates built over `secmms-ber`, CRLs, and the named-finding lint
//!   ([`tooling::lint::lint`]).
//!
//! ```
//! use secmms_pki::crypto::{hkdf, gcm_seal, gcm_open};
//! let okm = hkdf(b"salt", b"shared secret", b"", 32).unwrap();
//! let sealed = gcm_seal(&okm[..16], &[0u8; 12], b"aad", b"hello", 12).unwrap();
//! assert_eq!(&gcm_open(&okm[..16], &[0u8; 12], b"aad", &sealed, 12).unwrap()[..], b"hello");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acert;
pub use secmms_ber::calendar;
pub mod cert;
pub mod crypto;
pub mod event;
pub mod tooling;

/// Fuzz entry points (used by `fuzz/` and by the corpus replay test).
pub mod fuzzing {
    use crate::cert::{public_key_of, split_pki_path, validity_of, CertInfo, CertValidator};

    /// A peer's certificate as it arrives: the Annex G facts, the key and validity read also for
    /// certificates OpenSSL cannot load, a PkiPath, and validation (the Rust-parsed path
    /// included) against an anchor that issued none of them. Must never panic.
    pub fn certificate(data: &[u8]) {
        let _ = CertInfo::parse(data);
        let _ = public_key_of(data);
        let _ = validity_of(data);
        let _ = split_pki_path(data);
        let _ = crate::acert::parse(data);
        let v = crate::cert::OpenSslValidator::new();
        let _ = v.validate(data, &[data.to_vec()], 1_760_000_000);
    }
}

pub use cert::{CertError, CertValidator, OpenSslValidator, PeerIdentity, ValidatedCert};
pub use crypto::{
    CryptoError, DhGroup, EphemeralKey, RandomSource, SignatureAlgorithm, SigningKey,
};
pub use event::{EventId, SecurityEvent, SecurityEventSink, Severity};
