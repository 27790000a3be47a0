//! The A-security-profile — IEC 62351-4 clause 11 — as an
//! [`AssociationSecurity`] hook for `secmms_osi::Association`.
//!
//! Construction (what the runtime does):
//! ```no_run
//! # use std::sync::Arc;
//! # use secmms_profiles::aprofile::*;
//! # use secmms_profiles::policy::*;
//! # use secmms_osi::{Association, OsiConfig, Role};
//! # fn cfg() -> AProfileConfig { unimplemented!() }
//! # fn replay_store() -> Arc<dyn AuthReplay> { unimplemented!() }
//! let shared = AProfileShared::new(
//!     cfg(),                                   // own certificate + key, validator, options
//!     PeerTable::require_a_profile(),          // §5.1 bilateral table
//!     replay_store(),                          // process-wide replay detection (§11.4)
//!     Arc::new(secmms_pki::event::MemorySink::new()),
//! ).unwrap();
//! // Server, one per accepted TCP/TLS connection:
//! let mut osi = OsiConfig::server_default();
//! shared.prepare_osi_config(&mut osi, Role::Responder, false);
//! let conn = ConnectionInfo::default(); // peer IP, TLS or not, TLS certificate fingerprints
//! let assoc = Association::with_security(Role::Responder, osi, Box::new(shared.responder(conn)));
//! ```
//!
//! Outcomes (§11.4 and its DECISION): a missing mechanism-name is answered with an AARE
//! `rejected-permanent` / `authentication-mechanism-name-required (12)`, an unknown one with
//! `authentication-mechanism-name-not-recognized (11)`; every certificate, time, replay and
//! signature failure is an ABRT `authentication-failure (5)` without an AARE, so the peer cannot
//! tell which check failed. Peer-policy refusals (§5.1) are an AARE `rejected-permanent` /
//! `no-reason-given (1)`. Each outcome records one [`SecurityEvent`] (see [`crate::events`]) in
//! the sink given at construction (DECISION: the hook holds an `Arc<dyn SecurityEventSink>`, so
//! events reach the log even though the `Association` owns the boxed hook).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use secmms_ber::Oid;
use secmms_osi::acse::{
    abort_diagnostic, associate_result, requirements_authentication, user_diagnostic, Aare, Aarq,
    Abrt, AuthenticationValue, External, ExternalEncoding, SourceDiagnostic,
};
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Rejection, Role, SecurityContext, Verdict,
};
use secmms_osi::OsiConfig;
use secmms_pki::cert::{CertError, CertValidator};
use secmms_pki::crypto::{algorithm_for, sha256, verify_signature, SigningKey};
use secmms_pki::event::{SecurityEvent, SecurityEventSink};
use secmms_pki::PeerIdentity;

use crate::events::{self, AEvent};
use crate::limits::{
    MAX_CERTIFICATE_LEN, MAX_REPLAY_ENTRIES, REPLAY_WINDOW_SECS, TIME_WINDOW_SECS,
};
use crate::policy::{ApplicationSecurity, PeerPolicy, PeerTable};
use crate::value::{format_time, parse_time, MmsAuthenticationValue, SignedOver};

mod authvalue;
mod hook;
mod shared;

pub use authvalue::{
    build_value, build_value_at, describe_identity, extract_value, identity_of, verify_value,
    wrap_value, AuthFailure, AuthenticatedPeer, TimeStamps, VerifyInput, TIME_WITH_MILLISECONDS,
};

use authvalue::*;
use hook::*;

/// A-profile mechanism-name 1.0.840.0.1.0.1.1 (spec §9, §11.1; the historical "1 0" prefix is
/// kept on the wire).
pub const MECHANISM_NAME: &[u64] = &[1, 0, 840, 0, 1, 0, 1, 1];
/// Default abstract syntax of the mmsAuthenticationAS presentation context, 1.0.840.0.1.1.4.1
/// (spec §9 DECISION: a configuration value, [`AProfileConfig::mms_authentication_as`]).
pub const DEFAULT_MMS_AUTHENTICATION_AS: &[u64] = &[1, 0, 840, 0, 1, 1, 4, 1];
/// DECISION (Annex G.6.2): the certificate subject must equal the peer's AP-title with its
/// AE-qualifier appended; default of [`AProfileConfig::require_address_binding`].
pub const REQUIRE_ADDRESS_BINDING: bool = true;
/// DECISION (§11.1 tolerance): the authentication functional unit (`sender-acse-requirements`
/// / `responder-acse-requirements` = `07 80`) is set on send and checked on receive whenever
/// the AARQ / AARE carries a mechanism-name or an authentication value. A value with the
/// authentication bit (bit 0) clear is refused (AP_ACSE_REQUIREMENTS_MISSING: AARQ rejected with
/// `authentication-required`, AARE answered with an ABRT `authentication-required`). The one
/// known wrong bit — the low bit of the first octet set instead of bit 0, which SISCO's stack
/// accepts from "some stacks" — is tolerated with a warning (AP_ACSE_REQUIREMENTS_WRONG_BIT)
/// while this is true; [`AProfileConfig::tolerate_acse_requirements_low_bit`] switches it.
pub const TOLERATE_ACSE_REQUIREMENTS_LOW_BIT: bool = true;

/// What a received sender- / responder-acse-requirements says about the authentication
/// functional unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcseRequirements {
    /// Bit 0 (authentication) is set.
    Authentication,
    /// Bit 0 is clear but the low bit of the first octet is set: the known wrong bit.
    WrongLowBit,
    /// Absent, or the authentication bit is not set.
    Missing,
}

/// Classifies a received ACSE-requirements BIT STRING (X.227: bit 0 = authentication).
pub fn acse_requirements(bits: Option<&secmms_osi::presentation::BitString>) -> AcseRequirements {
    match bits.and_then(|b| b.bits.first()) {
        Some(o) if o & 0x80 != 0 => AcseRequirements::Authentication,
        Some(o) if o & 0x01 != 0 => AcseRequirements::WrongLowBit,
        _ => AcseRequirements::Missing,
    }
}

/// The A-profile mechanism-name as an [`Oid`].
pub fn mechanism_name() -> Oid {
    const_oid(MECHANISM_NAME)
}

fn const_oid(arcs: &[u64]) -> Oid {
    // Only called with the valid constants of this module (checked by a unit test).
    Oid::new(arcs).unwrap_or_else(|_| unreachable!("constant OID"))
}

/// Our own A-profile credentials: the application certificate (not the TLS one, Annex G.2) and
/// its private key.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// DER X.509 application certificate (≤ 8 192 octets).
    pub certificate: Vec<u8>,
    /// Its private key (RSA ≥ 2048 per §11.2; an EC key is also accepted by secmms peers).
    pub key: SigningKey,
}

/// Configuration of the A-profile shared by every association of a process.
#[derive(Clone)]
pub struct AProfileConfig {
    /// Our credentials; `None` when we never send a value (then only `NON_SECURE` peers work).
    pub credentials: Option<Credentials>,
    /// Validates the peer's certificate (trust anchors, path, CRL, Annex G profile).
    pub validator: Arc<dyn CertValidator>,
    /// Abstract syntax of the mmsAuthenticationAS context (spec §9 DECISION).
    pub mms_authentication_as: Oid,
    /// Accepted clock difference either way (default [`TIME_WINDOW_SECS`]).
    pub time_window_secs: i64,
    /// Check the Annex G.6.2 subject binding (default [`REQUIRE_ADDRESS_BINDING`]).
    pub require_address_binding: bool,
    /// Accept the known wrong ACSE-requirements bit with a warning (default
    /// [`TOLERATE_ACSE_REQUIREMENTS_LOW_BIT`]); when false it is refused like a missing bit.
    pub tolerate_acse_requirements_low_bit: bool,
    /// SHA-256 fingerprints of our own TLS certificates. An authentication-value carrying one of
    /// them is refused (Annex G.2); [`AProfileShared::new`] refuses our own application
    /// certificate if it is one of them. The peer's TLS certificate comes per connection in
    /// [`ConnectionInfo::tls_certificate_fingerprints`].
    pub tls_certificate_fingerprints: Vec<[u8; 32]>,
}

impl std::fmt::Debug for AProfileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AProfileConfig")
            .field("has_credentials", &self.credentials.is_some())
            .field("mms_authentication_as", &self.mms_authentication_as)
            .field("time_window_secs", &self.time_window_secs)
            .field("require_address_binding", &self.require_address_binding)
            .finish_non_exhaustive()
    }
}

impl AProfileConfig {
    /// A configuration with the spec defaults.
    pub fn new(credentials: Option<Credentials>, validator: Arc<dyn CertValidator>) -> Self {
        AProfileConfig {
            credentials,
            validator,
            mms_authentication_as: const_oid(DEFAULT_MMS_AUTHENTICATION_AS),
            time_window_secs: TIME_WINDOW_SECS,
            require_address_binding: REQUIRE_ADDRESS_BINDING,
            tolerate_acse_requirements_low_bit: TOLERATE_ACSE_REQUIREMENTS_LOW_BIT,
            tls_certificate_fingerprints: Vec::new(),
        }
    }
}

/// What the transport tells the profile about one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's IP address (for the §5.1 table).
    pub peer_address: Option<IpAddr>,
    /// The peer's address and port: names the association in security events.
    pub peer_socket: Option<std::net::SocketAddr>,
    /// True when the connection runs over TLS (§6).
    pub tls: bool,
    /// SHA-256 fingerprints of the TLS certificates of this connection (the peer's, and ours if
    /// the runtime likes): an authentication-value carrying one is refused (Annex G.2).
    pub tls_certificate_fingerprints: Vec<[u8; 32]>,
}

impl ConnectionInfo {
    /// How security events name the association on this connection: the peer's address and
    /// port, followed by the name of its §5.1 row when that is not the default row.
    pub fn label(&self, row: Option<&str>) -> Option<String> {
        let addr = self
            .peer_socket
            .map(|s| s.to_string())
            .or_else(|| self.peer_address.map(|a| a.to_string()));
        let row = row.filter(|r| *r != crate::policy::DEFAULT_ROW_NAME);
        match (addr, row) {
            (Some(a), Some(r)) => Some(format!("{a} ({r})")),
            (Some(a), None) => Some(a),
            (None, r) => r.map(str::to_string),
        }
    }
}

/// Errors building the shared profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Our application certificate is one of our TLS certificates (Annex G.2).
    #[error("the application certificate is also a TLS certificate (Annex G.2)")]
    TlsCertificateReused,
    /// Our application certificate is larger than 8 192 octets (Annex G.3).
    #[error("the application certificate exceeds 8192 octets")]
    CertificateTooLarge,
    /// Our key does not fit §8.
    #[error("unsupported key: {0}")]
    Key(String),
}

/// Replay detection of the A-profile (§11.4 step 4 DECISION): (SHA-256 of the certificate, time
/// string) → expiry (Unix seconds), bounded by [`MAX_REPLAY_ENTRIES`]. A plain table; the
/// process shares one through an [`AuthReplay`] the runtime implements.
#[derive(Debug, Default)]
pub struct ReplayTable {
    entries: HashMap<([u8; 32], Vec<u8>), i64>,
}

/// Result of a replay-cache insertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayCheck {
    /// First time seen; now remembered.
    Fresh,
    /// Seen before within the window.
    Replayed,
    /// The cache is full of live entries.
    Full,
}

impl ReplayTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the value was seen and is still live at `now`.
    pub fn contains(&self, cert: &[u8; 32], time: &[u8], now: i64) -> bool {
        self.entries
            .get(&(*cert, time.to_vec()))
            .is_some_and(|&exp| exp > now)
    }

    /// Remembers the value until `now + REPLAY_WINDOW_SECS + window` (long enough that the time
    /// is stale before the entry goes).
    pub fn insert(&mut self, cert: &[u8; 32], time: &[u8], now: i64, window: i64) -> ReplayCheck {
        let key = (*cert, time.to_vec());
        if self.entries.get(&key).is_some_and(|&exp| exp > now) {
            return ReplayCheck::Replayed;
        }
        if self.entries.len() >= MAX_REPLAY_ENTRIES {
            self.entries.retain(|_, exp| *exp > now);
            if self.entries.len() >= MAX_REPLAY_ENTRIES {
                return ReplayCheck::Full;
            }
        }
        self.entries.insert(
            key,
            now.saturating_add(REPLAY_WINDOW_SECS)
                .saturating_add(window),
        );
        ReplayCheck::Fresh
    }

    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The process-wide replay store of the A-profile, shared by every association (a value seen
/// by one is a replay for all, §11.4) and injected into [`AProfileShared::new`]. Associations
/// on many threads call it, so the runtime's implementation synchronises itself (a
/// [`ReplayTable`] behind a lock, typically); the profile holds no lock of its own.
pub trait AuthReplay: Send + Sync {
    /// [`ReplayTable::contains`].
    fn contains(&self, cert: &[u8; 32], time: &[u8], now: i64) -> bool;
    /// [`ReplayTable::insert`].
    fn insert(&self, cert: &[u8; 32], time: &[u8], now: i64, window: i64) -> ReplayCheck;
    /// Number of stored entries.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the associations of one process share: configuration, §5.1 table, replay store
/// and event sink. Cheap to clone. No clock: every association gets its time from its owner
/// ([`AProfile::set_now`]).
#[derive(Clone)]
pub struct AProfileShared {
    stamps: Arc<TimeStamps>,
    cfg: Arc<AProfileConfig>,
    table: Arc<PeerTable>,
    replay: Arc<dyn AuthReplay>,
    sink: Arc<dyn SecurityEventSink>,
}

impl std::fmt::Debug for AProfileShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AProfileShared")
            .field("cfg", &self.cfg)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Initiator: AARQ sent; `sent` = our value went in it.
    AwaitingAare {
        sent: bool,
    },
    /// Responder: AARQ accepted by the hook; answer with our value (mirroring this
    /// indirect-reference) when `respond`.
    AarqAccepted {
        respond: bool,
        indirect: Option<i64>,
    },
    Done,
}

/// The A-security-profile hook of one association. Build it with [`AProfileShared::responder`]
/// or [`AProfileShared::initiator`].
pub struct AProfile {
    shared: AProfileShared,
    role: Role,
    conn: ConnectionInfo,
    peer: Option<PeerPolicy>,
    peer_identity: Option<PeerIdentity>,
    phase: Phase,
    authenticated: Option<AuthenticatedPeer>,
    /// The time of the current call in Unix milliseconds ([`AProfile::set_now`]).
    now_ms: Option<i64>,
}

impl std::fmt::Debug for AProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AProfile")
            .field("role", &self.role)
            .field("conn", &self.conn)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    #[test]
    fn time_stamps_are_unique_and_parse_to_the_same_second() {
        let t = TimeStamps::default();
        let now = 1_750_000_000;
        let a = t.next(now);
        let b = t.next(now);
        let c = t.next(now);
        assert_eq!(a, format_time(now).into_bytes());
        assert_eq!(b, b"20250615150640.001Z".to_vec());
        assert_eq!(c, b"20250615150640.002Z".to_vec());
        for v in [&a, &b, &c] {
            assert_eq!(parse_time(v).unwrap(), now);
        }
        // Milliseconds: trailing zeros of the fraction are dropped (DER), a repeat moves on.
        let ms = (now + 5) * 1000;
        assert_eq!(t.next_ms(ms + 10), b"20250615150645.01Z".to_vec());
        assert_eq!(t.next_ms(ms + 10), b"20250615150645.011Z".to_vec());
        assert_eq!(t.next_ms(ms + 999), b"20250615150645.999Z".to_vec());
        assert_eq!(t.next_ms(ms + 999), format_time(now + 6).into_bytes());
        assert_eq!(parse_time(&t.next_ms(ms + 500)).unwrap(), now + 6);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(
            mechanism_name().to_ber_content(),
            [0x28, 0x86, 0x48, 0, 1, 0, 1, 1]
        );
        assert_eq!(
            const_oid(DEFAULT_MMS_AUTHENTICATION_AS).to_string(),
            "1.0.840.0.1.1.4.1"
        );
        let ap: Oid = "1.1.1.999.1".parse().unwrap();
        assert_eq!(
            identity_of(Some(&ap), Some(12)),
            Some(PeerIdentity::ApTitle("1.1.1.999.1.12".parse().unwrap()))
        );
        assert_eq!(identity_of(Some(&ap), Some(-1)), None);
        assert_eq!(identity_of(None, Some(12)), None);
    }

    #[test]
    fn extraction_accepts_only_external_single_asn1_type() {
        let v = MmsAuthenticationValue {
            certificate: vec![0x30, 0],
            time: b"20250615150640Z".to_vec(),
            signature: vec![1],
            time_tlv: vec![],
        };
        let (d, ind) = extract_value(Some(&wrap_value(&v, Some(5)))).unwrap();
        assert_eq!((d.certificate, ind), (v.certificate.clone(), Some(5)));
        assert!(extract_value(None).is_err());
        let pw = AuthenticationValue::Charstring(b"secret".to_vec());
        assert!(matches!(
            extract_value(Some(&pw)),
            Err(AuthFailure::Malformed(_))
        ));
        let oa = AuthenticationValue::External(External {
            direct_reference: None,
            indirect_reference: Some(5),
            data_value_descriptor: None,
            encoding: ExternalEncoding::OctetAligned(v.encode()),
            raw: vec![],
        });
        assert!(matches!(
            extract_value(Some(&oa)),
            Err(AuthFailure::Malformed(_))
        ));
        let junk = AuthenticationValue::External(External::single(5, vec![0x04, 0x00]));
        assert!(matches!(
            extract_value(Some(&junk)),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn every_failure_has_its_own_event() {
        let all = [
            AuthFailure::Malformed(String::new()),
            AuthFailure::CertificateTooLarge(9000),
            AuthFailure::TlsCertificateReused,
            AuthFailure::Expired,
            AuthFailure::NotYetValid,
            AuthFailure::Revoked,
            AuthFailure::UnknownCa(String::new()),
            AuthFailure::CertificateInvalid(String::new()),
            AuthFailure::AddressMismatch(String::new()),
            AuthFailure::TimeInvalid,
            AuthFailure::TimeStale {
                time: 0,
                now: 0,
                window: 0,
            },
            AuthFailure::Replayed,
            AuthFailure::BadSignature,
            AuthFailure::ReplayCacheFull,
        ];
        let mut ids: Vec<_> = all.iter().map(|f| f.event().id.number).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn replay_cache_expiry_and_bound() {
        let mut c = ReplayTable::new();
        let k = [1u8; 32];
        assert_eq!(c.insert(&k, b"t", 100, 600), ReplayCheck::Fresh);
        assert!(c.contains(&k, b"t", 100));
        assert_eq!(c.insert(&k, b"t", 101, 600), ReplayCheck::Replayed);
        assert!(!c.contains(&k, b"t", 100 + 1200));
        assert_eq!(c.insert(&k, b"t", 100 + 1200, 600), ReplayCheck::Fresh);
        assert_eq!(c.len(), 1);
        // Bounded: full of live entries → refused (fail closed); once they expire → purged.
        let mut c = ReplayTable::new();
        for i in 0..MAX_REPLAY_ENTRIES {
            assert_eq!(c.insert(&k, &i.to_be_bytes(), 0, 600), ReplayCheck::Fresh);
        }
        assert_eq!(c.insert(&k, b"one more", 1, 600), ReplayCheck::Full);
        assert_eq!(c.insert(&k, b"one more", 1300, 600), ReplayCheck::Fresh);
        assert_eq!(c.len(), 1);
    }
}
