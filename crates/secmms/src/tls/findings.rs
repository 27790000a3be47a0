//! What the TLS layer reports: [`TlsFinding`] (one event of clause 6 each), the tracing sink,
//! the counters ([`TlsStats`]) and the per-handshake list of findings kept on the `Ssl`.

use super::*;

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Why a TLS peer was refused or warned about; each maps to one event of
/// [`secmms_pki::event::tls_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsFinding {
    /// TLS disabled by configuration (warning).
    Disabled,
    /// TLS < 1.2 or SSL offered.
    InsecureVersion,
    /// No allowed suite in common.
    CipherDisallowed,
    /// No peer certificate.
    CertUnavailable,
    /// Peer certificate expired.
    CertExpired,
    /// Peer certificate not yet valid.
    CertNotYetValid,
    /// Peer certificate revoked.
    CertRevoked,
    /// Chain does not end at a configured trust anchor.
    CaUnknown,
    /// A certificate above the size limit.
    CertSizeExceeded,
    /// Another validation failure.
    CertInvalid,
    /// CRL missing or stale (warning only).
    CrlUnavailable,
    /// The peer lacks RFC 5746 secure renegotiation.
    RenegotiationInsecure,
    /// The peer did not complete a renegotiation in time.
    RenegotiationIntervalExpired,
    /// Keys refreshed (notice).
    KeysRefreshed,
    /// Other handshake failure.
    HandshakeFailed,
    /// Session established (notice).
    Established,
    /// The TLS version changed at resumption or renegotiation.
    VersionChanged,
    /// The peer's certificate is not on the allow-list.
    CertNotAllowed,
    /// Secrets written to a key log (warning).
    KeylogActive,
    /// Server identity not checked by configuration.
    ServerCheckSkipped,
    /// The server's certificate does not name the expected host or address.
    ServerIdentityMismatch,
    /// No usable OCSP answer for the peer's certificate.
    OcspUnavailable,
    /// The client started a TLS 1.2 renegotiation, within the configured rate (notice).
    ClientRenegotiation,
    /// A renegotiation the client started was refused; the session ends.
    ClientRenegotiationRefused,
}

impl TlsFinding {
    /// Every finding (for documentation and the id-uniqueness test).
    pub const ALL: [TlsFinding; 24] = [
        TlsFinding::Disabled,
        TlsFinding::InsecureVersion,
        TlsFinding::CipherDisallowed,
        TlsFinding::CertUnavailable,
        TlsFinding::CertExpired,
        TlsFinding::CertNotYetValid,
        TlsFinding::CertRevoked,
        TlsFinding::CaUnknown,
        TlsFinding::CertSizeExceeded,
        TlsFinding::CertInvalid,
        TlsFinding::CrlUnavailable,
        TlsFinding::RenegotiationInsecure,
        TlsFinding::RenegotiationIntervalExpired,
        TlsFinding::KeysRefreshed,
        TlsFinding::HandshakeFailed,
        TlsFinding::Established,
        TlsFinding::VersionChanged,
        TlsFinding::CertNotAllowed,
        TlsFinding::KeylogActive,
        TlsFinding::ServerCheckSkipped,
        TlsFinding::ServerIdentityMismatch,
        TlsFinding::OcspUnavailable,
        TlsFinding::ClientRenegotiation,
        TlsFinding::ClientRenegotiationRefused,
    ];
}

impl TlsFinding {
    /// Event id and mnemonic.
    pub fn id(self) -> (EventId, &'static str) {
        use tls_events::*;
        match self {
            TlsFinding::Disabled => TLS_DISABLED,
            TlsFinding::InsecureVersion => TLS_VERSION_INSECURE,
            TlsFinding::CipherDisallowed => TLS_CIPHER_DISALLOWED,
            TlsFinding::CertUnavailable => TLS_CERT_UNAVAILABLE,
            TlsFinding::CertExpired => TLS_CERT_EXPIRED,
            TlsFinding::CertNotYetValid => TLS_CERT_NOT_YET_VALID,
            TlsFinding::CertRevoked => TLS_CERT_REVOKED,
            TlsFinding::CaUnknown => TLS_CA_UNKNOWN,
            TlsFinding::CertSizeExceeded => TLS_CERT_SIZE_EXCEEDED,
            TlsFinding::CertInvalid => TLS_CERT_INVALID,
            TlsFinding::CrlUnavailable => TLS_CRL_UNAVAILABLE,
            TlsFinding::RenegotiationInsecure => TLS_RENEG_INSECURE,
            TlsFinding::RenegotiationIntervalExpired => TLS_RENEG_INTERVAL_EXPIRED,
            TlsFinding::KeysRefreshed => TLS_KEYS_REFRESHED,
            TlsFinding::HandshakeFailed => TLS_HANDSHAKE_FAILED,
            TlsFinding::Established => TLS_ESTABLISHED,
            TlsFinding::VersionChanged => TLS_VERSION_CHANGED,
            TlsFinding::CertNotAllowed => TLS_CERT_NOT_ALLOWED,
            TlsFinding::KeylogActive => TLS_KEYLOG_ACTIVE,
            TlsFinding::ServerCheckSkipped => TLS_SERVER_CHECK_SKIPPED,
            TlsFinding::ServerIdentityMismatch => TLS_SERVER_IDENTITY_MISMATCH,
            TlsFinding::OcspUnavailable => TLS_OCSP_UNAVAILABLE,
            TlsFinding::ClientRenegotiation => TLS_CLIENT_RENEG,
            TlsFinding::ClientRenegotiationRefused => TLS_CLIENT_RENEG_REFUSED,
        }
    }

    /// Severity: §6.2.8 makes an expired certificate a warning and a revoked one an incident;
    /// 62351-3 §7 makes the rest alarms, a stale CRL a warning.
    pub fn severity(self) -> Severity {
        match self {
            TlsFinding::Disabled
            | TlsFinding::KeylogActive
            | TlsFinding::CrlUnavailable
            | TlsFinding::OcspUnavailable
            | TlsFinding::CertExpired
            | TlsFinding::CertNotYetValid => Severity::Warning,
            TlsFinding::KeysRefreshed
            | TlsFinding::Established
            | TlsFinding::ClientRenegotiation => Severity::Notice,
            TlsFinding::CipherDisallowed
            | TlsFinding::CertInvalid
            | TlsFinding::HandshakeFailed => Severity::Error,
            // §6.2.8: incident "revoked public-key certificate".
            TlsFinding::CertRevoked => Severity::Incident,
            TlsFinding::InsecureVersion
            | TlsFinding::CertUnavailable
            | TlsFinding::CaUnknown
            | TlsFinding::CertSizeExceeded
            | TlsFinding::RenegotiationInsecure
            | TlsFinding::RenegotiationIntervalExpired
            | TlsFinding::VersionChanged
            | TlsFinding::CertNotAllowed
            | TlsFinding::ServerCheckSkipped
            | TlsFinding::ServerIdentityMismatch
            | TlsFinding::ClientRenegotiationRefused => Severity::Alarm,
        }
    }

    /// Builds the security event.
    pub fn event(self, message: String, association: Option<String>) -> SecurityEvent {
        let (id, mnemonic) = self.id();
        SecurityEvent {
            id,
            mnemonic,
            severity: self.severity(),
            message,
            association,
        }
    }
}

/// A sink that writes security events to `tracing` (the default when none is configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

/// Text-log lines of the events a peer can repeat at will (its own renegotiations): at most
/// a few per 10 s each, the next line saying how many were left out.
static CLIENT_RENEG_LINES: [crate::events::ratelimit::LogLimiter; 2] = [
    crate::events::ratelimit::LogLimiter::new(5, Duration::from_secs(10)),
    crate::events::ratelimit::LogLimiter::new(5, Duration::from_secs(10)),
];

impl SecurityEventSink for TracingSink {
    fn record(&self, e: &SecurityEvent) {
        let limiter = match (e.id, e.mnemonic) {
            id if id == tls_events::TLS_CLIENT_RENEG => Some(&CLIENT_RENEG_LINES[0]),
            id if id == tls_events::TLS_CLIENT_RENEG_REFUSED => Some(&CLIENT_RENEG_LINES[1]),
            _ => None,
        };
        let more = match limiter {
            Some(l) => match l.check(std::time::Instant::now()) {
                Some(n) => crate::events::ratelimit::left_out(n),
                None => return,
            },
            None => String::new(),
        };
        match e.severity {
            Severity::Warning => tracing::warn!(target: "secmms::security", "{e}{more}"),
            Severity::Notice => tracing::info!(target: "secmms::security", "{e}{more}"),
            // Alarm, error, and any more severe class.
            _ => tracing::error!(target: "secmms::security", "{e}{more}"),
        }
    }
}

/// Raises the `TLS_DISABLED` warning (§6.3.3) for a plain RFC 1006 endpoint.
pub fn report_plain(sink: &dyn SecurityEventSink, role: &str, addr: &str) {
    sink.record(&TlsFinding::Disabled.event(
        format!("{role} uses plain RFC 1006 on {addr}: TLS disabled by configuration"),
        None,
    ));
}

/// Counters of one TLS context, shared with its streams.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Handshakes refused.
    pub refused: AtomicU64,
    /// Sessions resumed (abbreviated handshakes).
    pub resumed: AtomicU64,
    /// TLS 1.2 renegotiations completed that we started.
    pub renegotiations: AtomicU64,
    /// TLS 1.3 key updates we sent.
    pub key_updates: AtomicU64,
    /// TLS 1.2 renegotiations a client started that were let through (server).
    pub client_renegotiations: AtomicU64,
    /// TLS 1.2 renegotiations a client started that were refused, each ending its session
    /// (server; `tls.client_renegotiation`, `tls.max_client_renegotiations_per_min`).
    pub client_renegotiations_refused: AtomicU64,
}

pub(super) type Findings = Arc<Mutex<Vec<(TlsFinding, String)>>>;

pub(super) fn push(f: &Findings, kind: TlsFinding, detail: String) {
    match f.lock() {
        Ok(mut g) => {
            if g.len() < 16 {
                g.push((kind, detail))
            }
        }
        Err(p) => p.into_inner().push((kind, detail)),
    }
}

pub(super) fn take(f: &Findings) -> Vec<(TlsFinding, String)> {
    match f.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    }
}

pub(super) fn findings_index() -> Option<openssl::ex_data::Index<Ssl, Findings>> {
    static IDX: OnceLock<Option<openssl::ex_data::Index<Ssl, Findings>>> = OnceLock::new();
    *IDX.get_or_init(|| Ssl::new_ex_index().ok())
}
