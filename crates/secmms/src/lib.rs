//! Tokio runtime for secmms: the byte-stream transports (RFC 1006 over TCP on port 102, and over
//! TLS on port 3782 per IEC 62351-4 clause 6, see [`tls`]), the MMS client with many outstanding
//! requests, the MMS server with one isolated task per association, the `bench` load generator, the demo, and TOML configuration.
//!
//! All protocol logic lives in the sans-IO crates (`secmms-osi`, `secmms-mms`, `secmms-e2e`); this
//! crate only moves bytes and time.
// `unsafe` is denied everywhere except the documented FFI module `tls::ffi` (OpenSSL calls the
// `openssl` crate does not wrap: renegotiation, key update).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod client;
pub mod config;
pub mod demo;
pub mod driver;
pub mod events;
pub mod live;
pub mod ocsp;
pub mod osi;
pub mod pics;
pub mod relay;
pub mod security;
pub mod server;
pub mod stats;
pub mod tls;
pub mod transport;
pub mod xmpp;

pub use client::{Client, ClientError};
pub use config::Config;
pub use server::{Server, ServerBuilder, ServerHandle, Tuning};
