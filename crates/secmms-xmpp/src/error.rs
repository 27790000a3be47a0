//! Errors of the XMPP client.

use std::io;

use crate::stream::write::WriteError;
use crate::stream::StreamError;

/// Everything that can go wrong between us and the XMPP server.
#[derive(Debug, thiserror::Error)]
pub enum XmppError {
    /// A configuration value is wrong.
    #[error("invalid XMPP configuration {field}: {reason}")]
    Config {
        /// The field of the `[xmpp]` section.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TCP connection could not be made.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// `host:port` as configured.
        server: String,
        /// The cause.
        source: io::Error,
    },
    /// A network wait ran out of time.
    #[error("timed out during {step}")]
    Timeout {
        /// What we were waiting for.
        step: &'static str,
    },
    /// Reading or writing the socket failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
    /// The server closed the TCP connection (or the TLS session) while we were waiting.
    #[error("the server closed the connection during {step}")]
    ConnectionClosed {
        /// What we were waiting for.
        step: &'static str,
    },
    /// The server sent XML we refuse (malformed, too large, restricted XML).
    #[error("malformed stream from the server: {0}")]
    Stream(#[from] StreamError),
    /// The server ended the stream with `<stream:error/>` (RFC 6120 §4.9).
    #[error("stream error from the server: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    StreamErrorReceived {
        /// The defined condition (`conflict`, `system-shutdown`, …).
        condition: String,
        /// Optional human-readable text.
        text: Option<String>,
    },
    /// The server closed its stream (`</stream:stream>`).
    #[error("the server closed the stream")]
    StreamClosed,
    /// The server's stream header is not what a client stream needs.
    #[error("unexpected stream header: {0}")]
    BadStreamHeader(String),
    /// TLS is required but the server does not offer STARTTLS (RFC 6120 §5.3.1).
    #[error("the server does not offer STARTTLS and require_tls is set")]
    TlsNotOffered,
    /// The server answered `<starttls/>` with `<failure/>`.
    #[error("the server refused STARTTLS")]
    StartTlsRefused,
    /// Octets followed `<proceed/>` before the TLS handshake: they could only be an injection
    /// (RFC 6120 §5.4.3.3 forbids them), so the connection is dropped.
    #[error("data received after <proceed/> before the TLS handshake")]
    StartTlsInjection,
    /// The TLS handshake failed for a reason other than the certificate.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The server's certificate chain or name was refused.
    #[error("server certificate refused: {reason}")]
    Certificate {
        /// OpenSSL's verification result.
        reason: String,
    },
    /// A certificate from the server exceeds [`crate::limits::MAX_CERT_SIZE`].
    #[error("a server certificate of {size} octets exceeds the limit of {limit}")]
    CertificateTooLarge {
        /// Its DER size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The configured SASL mechanism is not among those the server offers.
    #[error("SASL mechanism {mechanism} not offered by the server (offered: {offered:?})")]
    MechanismNotOffered {
        /// What we wanted.
        mechanism: &'static str,
        /// What the server offered.
        offered: Vec<String>,
    },
    /// SASL authentication failed (RFC 6120 §6.5).
    #[error("SASL authentication failed: {condition}{}", text.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
    SaslFailed {
        /// The defined condition (`not-authorized`, `account-disabled`, …).
        condition: String,
        /// Optional text.
        text: Option<String>,
    },
    /// Resource binding failed (RFC 6120 §7.6.2).
    #[error("resource binding failed: {condition}")]
    BindFailed {
        /// The stanza error condition.
        condition: String,
    },
    /// The server sent something else than the negotiation step expects.
    #[error("unexpected <{got}> during {step}")]
    Unexpected {
        /// The step.
        step: &'static str,
        /// The element received.
        got: String,
    },
    /// A stanza the application asked to send is not one well-formed stanza.
    #[error("outgoing stanza refused: {0}")]
    BadStanza(StreamError),
    /// A value could not be written as XML.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The link is closed; nothing more can be sent or received on it.
    #[error("the XMPP link is closed")]
    Closed,
    /// The reconnection policy ran out of attempts.
    #[error("gave up after {attempts} connection attempts; last error: {last}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<XmppError>,
    },
    /// OpenSSL refused a setting (trust anchors, client key, …).
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

impl XmppError {
    /// Whether trying again later can help. Authentication, certificate, configuration and
    /// policy failures are permanent; network failures and most server-side stream errors are
    /// not. A `conflict` stream error (another session took our resource) is permanent, so that
    /// two instances with the same JID do not keep evicting each other.
    pub fn is_retryable(&self) -> bool {
        match self {
            XmppError::Connect { .. }
            | XmppError::Timeout { .. }
            | XmppError::Io(_)
            | XmppError::ConnectionClosed { .. }
            | XmppError::StreamClosed
            | XmppError::Closed
            | XmppError::Stream(_) => true,
            XmppError::StreamErrorReceived { condition, .. } => !matches!(
                condition.as_str(),
                "conflict"
                    | "host-unknown"
                    | "not-authorized"
                    | "policy-violation"
                    | "invalid-namespace"
                    | "unsupported-version"
                    | "unsupported-stanza-type"
            ),
            XmppError::Config { .. }
            | XmppError::BadStreamHeader(_)
            | XmppError::TlsNotOffered
            | XmppError::StartTlsRefused
            | XmppError::StartTlsInjection
            | XmppError::Tls(_)
            | XmppError::Certificate { .. }
            | XmppError::CertificateTooLarge { .. }
            | XmppError::MechanismNotOffered { .. }
            | XmppError::SaslFailed { .. }
            | XmppError::BindFailed { .. }
            | XmppError::Unexpected { .. }
            | XmppError::BadStanza(_)
            | XmppError::Write(_)
            | XmppError::GaveUp { .. }
            | XmppError::OpenSsl(_) => false,
        }
    }
}
