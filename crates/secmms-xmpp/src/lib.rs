//! XMPP transport for IEC 62351-4 clause 16 (E2E security in the XMPP environment) and the
//! XMPP T-security of §6.4.
//!
//! * [`stream`] — sans-IO: an incremental reader of the received XML stream that hands out each
//!   top-level element with its **exact received text** (§16.3: signatures cover the characters
//!   as transmitted), and writers for what we send.
//! * `client` (feature `client`, on by default) — tokio: a client that connects, negotiates
//!   STARTTLS (OpenSSL, TLS 1.2/1.3, configured trust anchors, server name check),
//!   authenticates with SASL PLAIN or EXTERNAL, binds the resource (`IEC` by default), sends
//!   initial presence, and then sends and receives raw stanzas.
//! * `reconnect` (feature `client`) — the reconnection policy (exponential backoff with a cap
//!   and an attempt limit) and a `ReconnectingClient` that reports every link loss, since §16.5
//!   aborts all associations when the XMPP link drops.
//! * [`config`] — the `[xmpp]` configuration section.
//! * [`limits`] — every size, time and count bound, named.
//!
//! Dependencies point down only: this crate uses `secmms-pki` (for the test PKI) and OpenSSL; the
//! runtime uses this crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod error;
pub mod fuzzing;
pub mod limits;
pub mod prosody;
#[cfg(feature = "client")]
pub mod reconnect;
pub mod stream;
#[cfg(feature = "client")]
mod tls;

#[cfg(feature = "client")]
pub use client::{XmppClient, XmppReceiver, XmppSender};
pub use config::{ReconnectPolicy, SaslMechanism, XmppConfig};
pub use error::XmppError;
#[cfg(feature = "client")]
pub use reconnect::{ClientEvent, ReconnectingClient};
pub use stream::{Element, Stanza, StanzaKind, StreamEvent, StreamLimits, StreamReader};

/// XML namespaces used on the stream.
pub mod ns {
    /// Stream element namespace (RFC 6120 §4.8.1).
    pub const STREAMS: &str = "http://etherx.jabber.org/streams";
    /// Default namespace of a client stream (RFC 6120 §4.8.3).
    pub const CLIENT: &str = "jabber:client";
    /// Default namespace of a server stream.
    pub const SERVER: &str = "jabber:server";
    /// STARTTLS (RFC 6120 §5.4).
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// SASL (RFC 6120 §6.4).
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// Resource binding (RFC 6120 §7).
    pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
    /// Legacy session establishment (RFC 3921 §3).
    pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
    /// Stream error conditions (RFC 6120 §4.9.3).
    pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// Stanza error conditions (RFC 6120 §8.3.3).
    pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// XEP-0199 ping.
    pub const PING: &str = "urn:xmpp:ping";
    /// IEC 62351-4 environment wrapper `<e2e>` (§16.1).
    pub const IEC_ENV_4: &str = "http://www.iec.ch/62351/2018/ENV_4";
    /// IEC 62351-4 SecPDU XML (§16.1).
    pub const IEC_E2E_4: &str = "http://www.iec.ch/62351/2018/E2E_4";
}

#[cfg(feature = "client")]
pub use tls::TlsInfo;
