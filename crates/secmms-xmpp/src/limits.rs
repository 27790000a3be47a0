//! Named limits and decisions of the XMPP transport.
//!
//! Every number here is either a value the XMPP RFCs or IEC 62351-4 fix, or one of our own
//! decisions; the doc comment says which.

/// Largest top-level element (stanza, `<stream:features/>`, SASL element, …) accepted, in
/// octets of its exact text.
///
/// Our DECISION: 256 KiB, the default `c2s_stanza_size_limit` of Prosody 0.12 (RFC 6120 §13.12
/// only asks that servers accept at least 10 000 octets). IEC 62351-4 SecPDUs with certificate
/// paths (§13.3.1.6, 8 192-octet certificates) fit comfortably.
pub const DEFAULT_MAX_STANZA_SIZE: usize = 256 * 1024;

/// Largest stream header, XML declaration or stream close tag, in octets (our DECISION).
pub const DEFAULT_MAX_HEADER_SIZE: usize = 8 * 1024;

/// Deepest element nesting inside one top-level element, the top element counting as 1
/// (our DECISION; an E2E SecPDU with XER application data stays far below).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Most attributes (namespace declarations included) on any one element (our DECISION).
pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;

/// Largest single certificate accepted from the server, octets (IEC 62351-4 §6.2 DECISION and
/// Annex G; the same bound as the OSI TLS profile).
pub const MAX_CERT_SIZE: usize = 8192;

/// Resource requested at binding: 61850-8-2 fixes the resource of an IED to `IEC`
/// (IEC 62351-4 §16.3 / §16.6, RFC 6120 §7).
pub const DEFAULT_RESOURCE: &str = "IEC";

/// Standard client-to-server port (RFC 6120 §14.7).
pub const DEFAULT_PORT: u16 = 5222;

/// Seconds allowed for the TCP connection (our DECISION).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;

/// Seconds allowed for each negotiation step: each stream header and feature list, the
/// STARTTLS exchange, the TLS handshake, SASL, binding, and each write (our DECISION).
pub const DEFAULT_STEP_TIMEOUT_SECS: u64 = 10;

/// Seconds of silence from the server after which the client sends an XEP-0199 ping; 0 turns
/// the keep-alive off (our DECISION).
pub const DEFAULT_KEEPALIVE_SECS: u64 = 60;

/// Seconds a keep-alive ping may stay unanswered (no octet at all received) before the link is
/// declared dead (our DECISION).
pub const DEFAULT_PING_TIMEOUT_SECS: u64 = 20;

/// Octets read from the socket at a time.
pub const READ_CHUNK: usize = 16 * 1024;

/// Received stanzas queued for the application before the reader stops reading (back-pressure).
pub const INCOMING_QUEUE: usize = 256;

/// Reconnection: first delay, milliseconds (our DECISION).
pub const DEFAULT_RECONNECT_INITIAL_MS: u64 = 500;

/// Reconnection: the delay never grows beyond this, milliseconds (our DECISION).
pub const DEFAULT_RECONNECT_MAX_MS: u64 = 30_000;

/// Reconnection: factor applied to the delay after each failed attempt (our DECISION).
pub const DEFAULT_RECONNECT_MULTIPLIER: u32 = 2;

/// Reconnection: attempts per outage before giving up; 0 means no limit (our DECISION).
pub const DEFAULT_RECONNECT_MAX_ATTEMPTS: u32 = 10;
