//! Certificates, cryptographic primitives over OpenSSL and security-event types for secmms.
//!
//! * [`crypto`] — the algorithms of IEC 62351-4 clause 8: RSA / ECDSA (P-256, brainpoolP256r1)
//!   signatures, Diffie-Hellman group 14 and ECDH with peer-value validation, HKDF (RFC 5869),
//!   HMAC-SHA256, GMAC, AES-GCM and AES-CBC, and a [`crypto::RandomSource`] abstraction.
//! * [`cert`] — Annex G certificate checks, environment binding (G.6) and the
//!   [`cert::CertValidator`] trait with an OpenSSL-store default.
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

pub mod cert;
pub mod crypto;
pub mod event;
pub mod tooling;

pub use cert::{CertError, CertValidator, OpenSslValidator, PeerIdentity, ValidatedCert};
pub use crypto::{
    CryptoError, DhGroup, EphemeralKey, RandomSource, SignatureAlgorithm, SigningKey,
};
pub use event::{EventId, SecurityEvent, SecurityEventSink, Severity};
