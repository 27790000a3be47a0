//! Tokio runtime for secmms: IEC 62351-4 secured MMS (IEC 61850-8-1, ICCP) over RFC 1006 on
//! TCP (port 102) or TLS (port 3782, clause 6, see [`tls`]), and over XMPP (clause 16, see
//! [`xmpp`]).
//!
//! # Front door
//!
//! A product embeds a server with [`Server::builder`] and a client with [`Client::builder`].
//! Each takes typed sections, every one beside what it configures: [`transport::TcpConfig`],
//! [`tls::TlsConfig`] (clause 6), [`security::SecurityConfig`] (application security: plain,
//! compatibility or native mode), [`osi::OsiSettings`] (selectors, AP-titles), the limits
//! ([`server::ServerConfig`], [`client::ClientConfig`]) and [`events::EventsConfig`]. `bind`
//! and `connect` validate them and return typed errors: a value out of range names its field
//! ([`settings::SettingError`]), a refused association keeps the ACSE outcome, the MMS
//! initiate-ErrorPDU and the E2E diagnostic ([`client::Refusal`]).
//!
//! The server serves a live [`SharedModel`](secmms_mms::SharedModel) the program feeds and
//! observes, and sends InformationReports to its associations ([`ServerHandle::report`]); a
//! client receives them on [`Client::reports`]. An embedded server runs on the program's own
//! tokio runtime, with no thread of its own ([`Tuning`]). Runnable examples:
//! `examples/embed_server.rs`, `examples/embed_client.rs`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use secmms::server::ServerConfig;
//! use secmms::{Client, Server};
//! let server = Server::builder()
//!     .limits(ServerConfig {
//!         max_associations: 10,
//!         ..Default::default()
//!     })
//!     .listen("127.0.0.1:10102")
//!     .bind()
//!     .await?
//!     .spawn()?;
//! let client = Client::builder().connect("127.0.0.1:10102").await?;
//! println!("{:?}", client.read("DEMOLD0/LLN0.NamPlt.vendor[DC]").await?);
//! client.release().await?;
//! server.shutdown();
//! # Ok(()) }
//! ```
//!
//! All protocol logic lives in the sans-IO crates (`secmms-osi`, `secmms-mms`, `secmms-e2e`,
//! `secmms-profiles`); this crate moves bytes and time. The TOML file the `secmms` command
//! reads ([`Config`]) is an adapter over the same sections ([`Config::server_builder`],
//! [`Config::client_builder`]).
// `unsafe` is denied everywhere except the documented FFI module `tls::ffi` (OpenSSL calls the
// `openssl` crate does not wrap: renegotiation, key update).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub(crate) mod admission;
pub mod client;
pub mod config;
pub mod driver;
pub mod events;
pub mod gateway;
pub(crate) mod handshakes;
pub mod live;
pub mod ocsp;
pub mod osi;
pub mod relay;
pub(crate) mod sections;
pub mod security;
pub mod server;
pub mod settings;
pub mod tls;
pub mod transport;
pub mod xmpp;

pub use client::{Client, ClientBuilder, ClientError};
pub use config::Config;
pub use server::{Server, ServerBuilder, ServerHandle, Tuning};
