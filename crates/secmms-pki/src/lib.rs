//! Certificates, cryptographic primitives over OpenSSL and security-event types for secmms
#![forbid(unsafe_code)]
#![deny(missing_docs)]
