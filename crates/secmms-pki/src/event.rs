//! Security events (IEC 62351-14 style) raised by every secmms security layer.
//!
//! A [`SecurityEvent`] names its catalogue entry ([`EventId`] + mnemonic, spec §14.5), carries a
//! severity, a message and the association it concerns. Layers queue events; the runtime hands
//! them to one or more [`SecurityEventSink`]s (tracing, tamper-evident log, syslog). The same
//! types serve the TLS (62351-3) and A-profile events of later issues: only the domain differs.

use std::fmt;
use std::sync::Mutex;

/// Severity classes of IEC 62351-14 as used by the event catalogue (§14.5), plus the
/// *incident* class IEC 62351-4 §6.2.8 uses for a revoked certificate.
///
/// Mapping to syslog (RFC 5424 §6.2.1 severity codes) and to the IEC 62351-14 classes:
///
/// | variant | IEC 62351-14 / 62351-4 | syslog severity | PRI with facility 13 (log audit) |
/// |---|---|---|---|
/// | [`Severity::Alarm`] | alarm (A) | 1 alert | `<105>` (§14.5) |
/// | [`Severity::Incident`] | incident (62351-4 §6.2.8) | 2 critical | `<106>` (secmms DECISION) |
/// | [`Severity::Error`] | error (E) | 3 error | `<107>` (§14.5) |
/// | [`Severity::Warning`] | warning | 4 warning | `<108>` (§14.5) |
/// | [`Severity::Notice`] | notice | 5 notice | `<109>` (§14.5) |
///
/// The incident code is not captured by the spec (§14.5 lists only alarm, error, warning and
/// notice PRIs); secmms places it between alarm and error ([`Severity::SYSLOG_INCIDENT`]).
/// Variants are declared from the most to the least severe, so the derived `Ord` sorts
/// `Alarm < Incident < Error < Warning < Notice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Severity {
    /// An attack is likely (bad signature, replay, address mismatch). Diagnostics are withheld.
    Alarm,
    /// A security incident: IEC 62351-4 §6.2.8 "revoked public-key certificate".
    Incident,
    /// A protocol or configuration error.
    Error,
    /// A tolerated deviation.
    Warning,
    /// Informational (association established, rekey done).
    Notice,
}

impl Severity {
    /// Syslog facility of the PRI values §14.5 quotes: 13, "log audit" (RFC 5424 §6.2.1).
    pub const SYSLOG_FACILITY_LOG_AUDIT: u8 = 13;
    /// Syslog severity code used for [`Severity::Incident`]: 2 (critical). DECISION: §14.5 gives
    /// no PRI for incidents; §6.2.8 ranks a revoked certificate above an error.
    pub const SYSLOG_INCIDENT: u8 = 2;

    /// Every severity, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Alarm,
        Severity::Incident,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
    ];

    /// RFC 5424 §6.2.1 severity code (0 emergency ... 7 debug); see the table on [`Severity`].
    pub fn syslog_severity(self) -> u8 {
        match self {
            Severity::Alarm => 1,
            Severity::Incident => Self::SYSLOG_INCIDENT,
            Severity::Error => 3,
            Severity::Warning => 4,
            Severity::Notice => 5,
        }
    }

    /// Syslog PRI value of this severity per [EXT-14] (§14.5: alarm `<105>`, error `<107>`,
    /// warning `<108>`, notice `<109>`; incident `<106>` by secmms decision), i.e. facility 13
    /// ([`Severity::SYSLOG_FACILITY_LOG_AUDIT`]) times 8 plus [`Severity::syslog_severity`].
    pub fn syslog_pri(self) -> u8 {
        Self::SYSLOG_FACILITY_LOG_AUDIT * 8 + self.syslog_severity()
    }

    /// Lower-case name used in logs and configuration: `alarm`, `incident`, `error`, `warning`,
    /// `notice`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Alarm => "alarm",
            Severity::Incident => "incident",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        }
    }

    /// The severity named by [`Severity::as_str`], if any.
    pub fn from_name(name: &str) -> Option<Severity> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A catalogue identifier `DOMAIN:group.number`, e.g. `IEC62351-4:1.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EventId {
    /// Domain, e.g. [`EventId::DOMAIN_62351_4`].
    pub domain: &'static str,
    /// Group number (the PDU or scope).
    pub group: u16,
    /// Number within the group.
    pub number: u16,
}

impl EventId {
    /// Domain of the IEC 62351-4 events (§14.5).
    pub const DOMAIN_62351_4: &'static str = "IEC62351-4";
    /// Domain for events of secmms itself that have no catalogue entry.
    pub const DOMAIN_LOCAL: &'static str = "secmms";

    /// An IEC 62351-4 event id.
    pub const fn e2e(group: u16, number: u16) -> EventId {
        EventId {
            domain: Self::DOMAIN_62351_4,
            group,
            number,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}.{}", self.domain, self.group, self.number)
    }
}

/// One security event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecurityEvent {
    /// Catalogue id.
    pub id: EventId,
    /// Catalogue mnemonic, e.g. `PROTOCOL_ERR_ASS_REQ`.
    pub mnemonic: &'static str,
    /// Severity class.
    pub severity: Severity,
    /// Human-readable detail (never key material).
    pub message: String,
    /// The association concerned (E2E AssoID, TLS session id...), if known.
    pub association: Option<String>,
}

impl fmt::Display for SecurityEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{}> {} {} {}",
            self.severity.syslog_pri(),
            self.id,
            self.mnemonic,
            self.message
        )?;
        if let Some(a) = &self.association {
            write!(f, " assoID={a}")?;
        }
        Ok(())
    }
}

/// A consumer of security events.
pub trait SecurityEventSink: Send + Sync {
    /// Records one event. Must not block for long and must not fail the caller.
    fn record(&self, event: &SecurityEvent);
}

/// A sink that keeps events in memory (tests, small tools).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<SecurityEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }
    /// A copy of the recorded events.
    pub fn events(&self) -> Vec<SecurityEvent> {
        match self.events.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl SecurityEventSink for MemorySink {
    fn record(&self, event: &SecurityEvent) {
        match self.events.lock() {
            Ok(mut g) => g.push(event.clone()),
            Err(p) => p.into_inner().push(event.clone()),
        }
    }
}

// ---- BEGIN T-profile event ids (TLS, IEC 62351-4 clause 6 / IEC 62351-3) ----
// Owned by the T-profile (TLS) work; the catalogue numbers of 62351-3 events were not captured
// (spec §6.2), so these are secmms numbers in the `IEC62351-3` domain, group 6 (clause 6).

impl EventId {
    /// Domain of the TLS (T-profile) events, IEC 62351-3 as referenced by IEC 62351-4 §6.
    pub const DOMAIN_62351_3: &'static str = "IEC62351-3";

    /// A T-profile (TLS) event id: domain [`EventId::DOMAIN_62351_3`], group 6 (clause 6).
    pub const fn tls(number: u16) -> EventId {
        EventId {
            domain: Self::DOMAIN_62351_3,
            group: 6,
            number,
        }
    }
}

/// Event ids and mnemonics of the T-profile (IEC 62351-4 §6, IEC 62351-3 §7 alarm list).
pub mod tls_events {
    use super::EventId;

    /// TLS disabled by configuration: plain RFC 1006 (§6.3.3). Warning.
    pub const TLS_DISABLED: (EventId, &str) = (EventId::tls(1), "TLS_DISABLED");
    /// The peer offered only TLS 1.0/1.1 or SSL ("insecure TLS version", 62351-3 §7).
    pub const TLS_VERSION_INSECURE: (EventId, &str) = (EventId::tls(2), "TLS_VERSION_INSECURE");
    /// No cipher suite of the configured table was offered (§6.3.4).
    pub const TLS_CIPHER_DISALLOWED: (EventId, &str) = (EventId::tls(3), "TLS_CIPHER_DISALLOWED");
    /// The peer sent no certificate ("certificate unavailable", 62351-3 §7).
    pub const TLS_CERT_UNAVAILABLE: (EventId, &str) = (EventId::tls(4), "TLS_CERT_UNAVAILABLE");
    /// Expired peer certificate (§6.2.8: warning "expired public-key certificate").
    pub const TLS_CERT_EXPIRED: (EventId, &str) = (EventId::tls(5), "TLS_CERT_EXPIRED");
    /// Peer certificate not yet valid.
    pub const TLS_CERT_NOT_YET_VALID: (EventId, &str) = (EventId::tls(6), "TLS_CERT_NOT_YET_VALID");
    /// Revoked peer certificate (§6.2.8: incident "revoked public-key certificate").
    pub const TLS_CERT_REVOKED: (EventId, &str) = (EventId::tls(7), "TLS_CERT_REVOKED");
    /// No configured trust anchor issued the chain ("CA certificate not found", 62351-3 §7).
    pub const TLS_CA_UNKNOWN: (EventId, &str) = (EventId::tls(8), "TLS_CA_UNKNOWN");
    /// A received certificate is larger than the limit ("TLS certificate size exceeded").
    pub const TLS_CERT_SIZE_EXCEEDED: (EventId, &str) = (EventId::tls(9), "TLS_CERT_SIZE_EXCEEDED");
    /// Any other certificate validation failure.
    pub const TLS_CERT_INVALID: (EventId, &str) = (EventId::tls(10), "TLS_CERT_INVALID");
    /// Revocation information unavailable or out of date: warning, never a disconnect (§6.2.8).
    pub const TLS_CRL_UNAVAILABLE: (EventId, &str) = (EventId::tls(11), "TLS_CRL_UNAVAILABLE");
    /// The peer does not support secure renegotiation (RFC 5746 mandatory, 62351-3 §7).
    pub const TLS_RENEG_INSECURE: (EventId, &str) = (EventId::tls(12), "TLS_RENEG_INSECURE");
    /// The peer did not complete a renegotiation in time ("session renegotiation interval expired").
    pub const TLS_RENEG_INTERVAL_EXPIRED: (EventId, &str) =
        (EventId::tls(13), "TLS_RENEG_INTERVAL_EXPIRED");
    /// Keys refreshed (renegotiation or TLS 1.3 key update). Notice.
    pub const TLS_KEYS_REFRESHED: (EventId, &str) = (EventId::tls(14), "TLS_KEYS_REFRESHED");
    /// A TLS handshake failed for another reason.
    pub const TLS_HANDSHAKE_FAILED: (EventId, &str) = (EventId::tls(15), "TLS_HANDSHAKE_FAILED");
    /// A TLS session was established. Notice.
    pub const TLS_ESTABLISHED: (EventId, &str) = (EventId::tls(16), "TLS_ESTABLISHED");
    /// The TLS version changed between a session and its resumption or renegotiation (e.g. a
    /// TLS 1.2 session offered for resumption in a TLS 1.3 handshake). Alarm.
    pub const TLS_VERSION_CHANGED: (EventId, &str) = (EventId::tls(17), "TLS_VERSION_CHANGED");
    /// The peer's certificate is valid but not on the configured allow-list of fingerprints.
    /// Alarm.
    pub const TLS_CERT_NOT_ALLOWED: (EventId, &str) = (EventId::tls(18), "TLS_CERT_NOT_ALLOWED");
    /// TLS secrets of a session are written to a key log file (diagnostics). Warning.
    pub const TLS_KEYLOG_ACTIVE: (EventId, &str) = (EventId::tls(19), "TLS_KEYLOG_ACTIVE");
    /// The client does not check the server's identity (`insecure_skip_server_check`). Alarm.
    pub const TLS_SERVER_CHECK_SKIPPED: (EventId, &str) =
        (EventId::tls(20), "TLS_SERVER_CHECK_SKIPPED");
    /// The server's certificate does not name the host or address the client expected. Alarm.
    pub const TLS_SERVER_IDENTITY_MISMATCH: (EventId, &str) =
        (EventId::tls(21), "TLS_SERVER_IDENTITY_MISMATCH");
    /// No usable OCSP answer for the peer's certificate (responder down, unverifiable or
    /// unknown); warning under soft-fail, refusal under hard-fail (§6.2.8).
    pub const TLS_OCSP_UNAVAILABLE: (EventId, &str) = (EventId::tls(22), "TLS_OCSP_UNAVAILABLE");
    /// The client started a TLS 1.2 renegotiation, within the configured rate (IEC 62351-3 §7
    /// wants both sides able to renegotiate for key refresh). Notice.
    pub const TLS_CLIENT_RENEG: (EventId, &str) = (EventId::tls(23), "TLS_CLIENT_RENEG");
    /// A renegotiation the client started was refused (`tls.client_renegotiation = "refuse"`, or
    /// over `tls.max_client_renegotiations_per_min`): the session is ended. Alarm.
    pub const TLS_CLIENT_RENEG_REFUSED: (EventId, &str) =
        (EventId::tls(24), "TLS_CLIENT_RENEG_REFUSED");
}
// ---- END T-profile event ids ----

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_sink() {
        let e = SecurityEvent {
            id: EventId::e2e(1, 5),
            mnemonic: "PROTOCOL_ERR_ASS_REQ",
            severity: Severity::Error,
            message: "bad".into(),
            association: Some("1".into()),
        };
        assert_eq!(
            e.to_string(),
            "<107> IEC62351-4:1.5 PROTOCOL_ERR_ASS_REQ bad assoID=1"
        );
        let s = MemorySink::new();
        s.record(&e);
        assert_eq!(s.events(), vec![e]);
        assert_eq!(Severity::Alarm.syslog_pri(), 105);
    }

    #[test]
    fn severity_syslog_mapping() {
        let pri: Vec<u8> = Severity::ALL.iter().map(|s| s.syslog_pri()).collect();
        assert_eq!(pri, vec![105, 106, 107, 108, 109]);
        for s in Severity::ALL {
            assert_eq!(Severity::from_name(s.as_str()), Some(s));
        }
        assert_eq!(Severity::from_name("fatal"), None);
        assert!(Severity::Alarm < Severity::Incident && Severity::Incident < Severity::Error);
    }
}
