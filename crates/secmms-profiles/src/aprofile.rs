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
    Abrt, AeQualifier, ApTitle, AuthenticationValue, External, ExternalEncoding, SourceDiagnostic,
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

impl AProfileShared {
    /// Refuses an authenticated peer for a reason found outside clause 11 (the runtime's OCSP
    /// lookup: revoked, or no answer under hard-fail): raises `event` with `message` (naming
    /// `association`) and returns the ABRT to send, authentication-failure as for any
    /// certificate failure (§11.4).
    pub fn refuse_peer(
        &self,
        event: AEvent,
        message: String,
        association: Option<String>,
    ) -> AbortRequest {
        self.record(event, message, association);
        abort(abort_diagnostic::AUTHENTICATION_FAILURE)
    }

    /// Raises an A-profile event naming `association`.
    pub fn record(&self, event: AEvent, message: String, association: Option<String>) {
        self.sink.record(&SecurityEvent {
            id: event.id,
            mnemonic: event.mnemonic,
            severity: event.severity,
            message,
            association,
        });
    }

    /// Validates an authenticated peer's certificate again at `now` (Unix seconds; after the
    /// CRLs were reloaded). A peer now revoked raises `AP_CERT_REVOKED` (incident, naming
    /// `association`) and gets the ABRT to send (authentication-failure, as for any certificate
    /// failure, §11.4); any other result leaves the association alone (only revocation is
    /// re-evaluated).
    pub fn recheck_peer_at(
        &self,
        peer: &AuthenticatedPeer,
        association: Option<String>,
        now: i64,
    ) -> Result<(), AbortRequest> {
        match self.cfg.validator.validate(&peer.certificate, &[], now) {
            Err(CertError::Revoked) => {
                let ev = events::CERT_REVOKED;
                self.sink.record(&SecurityEvent {
                    id: ev.id,
                    mnemonic: ev.mnemonic,
                    severity: ev.severity,
                    message: "the peer's application certificate is revoked by a reloaded CRL; \
                              association aborted"
                        .into(),
                    association,
                });
                Err(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for AProfileShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AProfileShared")
            .field("cfg", &self.cfg)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl AProfileShared {
    /// Checks our credentials (size, key, Annex G.2 separation) and builds the shared state;
    /// `replay` is the process-wide replay store (§11.4).
    pub fn new(
        cfg: AProfileConfig,
        table: PeerTable,
        replay: Arc<dyn AuthReplay>,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, ProfileError> {
        if let Some(c) = &cfg.credentials {
            if c.certificate.len() > MAX_CERTIFICATE_LEN {
                return Err(ProfileError::CertificateTooLarge);
            }
            if cfg
                .tls_certificate_fingerprints
                .contains(&sha256(&c.certificate))
            {
                return Err(ProfileError::TlsCertificateReused);
            }
            algorithm_for(c.key.pkey()).map_err(|e| ProfileError::Key(e.to_string()))?;
        }
        Ok(AProfileShared {
            stamps: Arc::new(TimeStamps::default()),
            cfg: Arc::new(cfg),
            table: Arc::new(table),
            replay,
            sink,
        })
    }

    /// The replay store (for inspection).
    pub fn replay_cache(&self) -> &dyn AuthReplay {
        self.replay.as_ref()
    }

    /// Adds the mmsAuthenticationAS context to `osi` where §11.1/§11.3 want it: always as
    /// responder (so it can be accepted when proposed; it stays optional on receive), and as
    /// initiator unless `sisco_compat`.
    pub fn prepare_osi_config(&self, osi: &mut OsiConfig, role: Role, sisco_compat: bool) {
        let as_ = &self.cfg.mms_authentication_as;
        let want = role == Role::Responder || !sisco_compat;
        if want && !osi.extra_abstract_syntaxes.contains(as_) {
            osi.extra_abstract_syntaxes.push(as_.clone());
        }
    }

    /// The hook for a server-side association on `conn`.
    pub fn responder(&self, conn: ConnectionInfo) -> AProfile {
        AProfile::new(self.clone(), Role::Responder, conn, None, None)
    }

    /// The hook for a client-side association on `conn` towards the peer described by `peer`
    /// (its §5.1 row). `peer_identity` is the AP-title + AE-qualifier the peer's certificate
    /// must carry when its AARE has no responding titles (normally the called AP-title with
    /// the called AE-qualifier appended; see [`identity_of`]).
    pub fn initiator(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        peer_identity: Option<PeerIdentity>,
    ) -> AProfile {
        AProfile::new(
            self.clone(),
            Role::Initiator,
            conn,
            Some(peer),
            peer_identity,
        )
    }

    /// [`AProfileShared::initiator`] with the peer identity taken from `osi`'s called AP-title
    /// and AE-qualifier (`remote_ap_title`, `remote_ae_qualifier`), the usual case.
    pub fn initiator_for(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        osi: &OsiConfig,
    ) -> AProfile {
        let id = identity_of(osi.remote_ap_title.as_ref(), osi.remote_ae_qualifier);
        self.initiator(conn, peer, id)
    }
}

/// DECISION (§11.2, §11.4 replay check): the peer refuses a (certificate, time) pair it has
/// already seen, so whole seconds would refuse the second association a client opens within one
/// second. The time we send therefore carries the milliseconds of the call's time
/// ([`AProfile::set_now`]; `YYYYMMDDHHMMSS.fffZ`, DER-valid: no trailing
/// zeros, no fraction when it is zero), and is moved one millisecond on when it would repeat our
/// previous value. Receivers drop the fraction when checking the 10-minute window.
pub const TIME_WITH_MILLISECONDS: bool = true;

/// Hands out unique time strings for our authentication values (see
/// [`TIME_WITH_MILLISECONDS`]).
#[derive(Debug, Default)]
pub struct TimeStamps {
    /// The last value handed out (Unix milliseconds).
    last: AtomicI64,
}

impl TimeStamps {
    /// The time string for a value sent at `now` (Unix seconds), unique within this process.
    pub fn next(&self, now: i64) -> Vec<u8> {
        self.next_ms(now.saturating_mul(1000))
    }

    /// The time string for a value sent at `now_ms` (Unix milliseconds): the time with its
    /// millisecond fraction, moved one millisecond past the previous value when it would repeat
    /// it. At most one value per millisecond is handed out.
    pub fn next_ms(&self, now_ms: i64) -> Vec<u8> {
        let mut prev = self.last.load(Ordering::Relaxed);
        let ms = loop {
            let ms = now_ms.max(prev.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(prev, ms, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break ms,
                Err(seen) => prev = seen,
            }
        };
        let secs = ms.div_euclid(1000);
        let n = ms.rem_euclid(1000);
        let base = format_time(secs);
        if n == 0 {
            return base.into_bytes();
        }
        let frac = format!("{n:03}");
        let frac = frac.trim_end_matches('0');
        let mut out = base.trim_end_matches('Z').to_string();
        out.push('.');
        out.push_str(frac);
        out.push('Z');
        out.into_bytes()
    }
}

/// The Annex G.6.2 identity of an AP-title and AE-qualifier: the AE-qualifier appended to the
/// AP-title as a last arc. `None` unless both are form 2 and the qualifier is non-negative.
pub fn identity_of(ap_title: Option<&Oid>, ae_qualifier: Option<i64>) -> Option<PeerIdentity> {
    let ap = ap_title?;
    let q = u64::try_from(ae_qualifier?).ok()?;
    let mut arcs = ap.arcs().to_vec();
    arcs.push(q);
    Oid::new(&arcs).ok().map(PeerIdentity::ApTitle)
}

/// An identity in words: `AP-title A / AE-qualifier Q` for an Annex G.6.2 binding.
pub fn describe_identity(id: Option<&PeerIdentity>) -> String {
    match id {
        Some(PeerIdentity::ApTitle(o)) => match o.arcs().split_last() {
            Some((q, ap)) if !ap.is_empty() && !o.arcs().is_empty() => {
                let ap: Vec<String> = ap.iter().map(u64::to_string).collect();
                format!("AP-title {} / AE-qualifier {q}", ap.join("."))
            }
            _ => format!("identity {o}"),
        },
        Some(PeerIdentity::Jid(j)) if j.is_empty() => "no AP-title / AE-qualifier".into(),
        Some(PeerIdentity::Jid(j)) => format!("JID {j}"),
        None => "no identity".into(),
    }
}

fn form2_ap(t: &Option<ApTitle>) -> Option<&Oid> {
    match t {
        Some(ApTitle::Form2(o)) => Some(o),
        _ => None,
    }
}

fn form2_ae(q: &Option<AeQualifier>) -> Option<i64> {
    match q {
        Some(AeQualifier::Form2(v)) => Some(*v),
        _ => None,
    }
}

/// Why the verification of an MMS-Authentication-value failed (each maps to one event; all map
/// to the same ABRT `authentication-failure` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No authentication-value, wrong alternative, or undecodable value.
    #[error("authentication-value malformed: {0}")]
    Malformed(String),
    /// Certificate over 8 192 octets.
    #[error("certificate of {0} octets exceeds 8192")]
    CertificateTooLarge(usize),
    /// A TLS certificate was used as application certificate (Annex G.2).
    #[error("TLS certificate reused as application certificate")]
    TlsCertificateReused,
    /// Certificate expired.
    #[error("certificate expired")]
    Expired,
    /// Certificate not yet valid.
    #[error("certificate not yet valid")]
    NotYetValid,
    /// Certificate revoked.
    #[error("certificate revoked")]
    Revoked,
    /// Unknown issuing CA.
    #[error("certificate issuer unknown: {0}")]
    UnknownCa(String),
    /// Other certificate failure.
    #[error("certificate invalid: {0}")]
    CertificateInvalid(String),
    /// Subject does not bind to the peer's address.
    #[error("certificate subject does not match the peer: {0}")]
    AddressMismatch(String),
    /// `time` not parseable.
    #[error("time is not a GeneralizedTime")]
    TimeInvalid,
    /// `time` outside the window.
    #[error("time {time} differs from local time {now} by more than {window} s")]
    TimeStale {
        /// The peer's time, Unix seconds.
        time: i64,
        /// Local time.
        now: i64,
        /// Window.
        window: i64,
    },
    /// `time` replayed.
    #[error("time value replayed")]
    Replayed,
    /// Signature invalid.
    #[error("signature invalid")]
    BadSignature,
    /// Replay cache full.
    #[error("replay cache full")]
    ReplayCacheFull,
}

impl AuthFailure {
    /// The event that records this failure.
    pub fn event(&self) -> AEvent {
        match self {
            AuthFailure::Malformed(_) => events::VALUE_MALFORMED,
            AuthFailure::CertificateTooLarge(_) => events::CERT_TOO_LARGE,
            AuthFailure::TlsCertificateReused => events::TLS_CERT_REUSED,
            AuthFailure::Expired => events::CERT_EXPIRED,
            AuthFailure::NotYetValid => events::CERT_NOT_YET_VALID,
            AuthFailure::Revoked => events::CERT_REVOKED,
            AuthFailure::UnknownCa(_) => events::CA_UNKNOWN,
            AuthFailure::CertificateInvalid(_) => events::CERT_INVALID,
            AuthFailure::AddressMismatch(_) => events::ADDRESS_MISMATCH,
            AuthFailure::TimeInvalid => events::TIME_INVALID,
            AuthFailure::TimeStale { .. } => events::TIME_STALE,
            AuthFailure::Replayed => events::TIME_REPLAYED,
            AuthFailure::BadSignature => events::SIGNATURE_INVALID,
            AuthFailure::ReplayCacheFull => events::REPLAY_CACHE_FULL,
        }
    }
}

/// A verified peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedPeer {
    /// SHA-256 of the peer's application certificate.
    pub fingerprint: [u8; 32],
    /// The identity in its subject.
    pub identity: Option<PeerIdentity>,
    /// Which octets the signature covered.
    pub signed_over: SignedOver,
    /// The peer's application certificate (DER), for re-checks after a CRL reload.
    pub certificate: Vec<u8>,
}

/// Inputs of [`verify_value`] besides the value.
#[derive(Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The certificate validator.
    pub validator: &'a dyn CertValidator,
    /// Local time, Unix seconds.
    pub now: i64,
    /// Accepted clock difference.
    pub window: i64,
    /// TLS certificate fingerprints that must not appear (Annex G.2).
    pub tls_fingerprints: &'a [[u8; 32]],
    /// The identity the subject must carry (Annex G.6.2), if checked.
    pub expected_identity: Option<&'a PeerIdentity>,
    /// A further subject required by the peer's §5.1 row.
    pub configured_subject: Option<&'a PeerIdentity>,
    /// The replay store.
    pub replay: &'a dyn AuthReplay,
}

/// Verifies a decoded MMS-Authentication-value in the order of §11.4: size, Annex G.2
/// separation, certificate (path, validity, revocation, Annex G profile), G.6 binding, time
/// window, replay, signature; the value is remembered for the replay check only once its
/// signature verified (so forged values cannot block a genuine one).
pub fn verify_value(
    v: &MmsAuthenticationValue,
    inp: &VerifyInput<'_>,
) -> Result<AuthenticatedPeer, AuthFailure> {
    if v.certificate.len() > MAX_CERTIFICATE_LEN {
        return Err(AuthFailure::CertificateTooLarge(v.certificate.len()));
    }
    let fingerprint = sha256(&v.certificate);
    if inp.tls_fingerprints.contains(&fingerprint) {
        return Err(AuthFailure::TlsCertificateReused);
    }
    let validated = inp
        .validator
        .validate(&v.certificate, &[], inp.now)
        .map_err(|e| classify_cert_error(e, &v.certificate, inp.now))?;
    let identity = validated.info.identity.clone();
    if let Some(want) = inp.expected_identity {
        if identity.as_ref() != Some(want) {
            return Err(AuthFailure::AddressMismatch(format!(
                "the certificate binds {}, the association names {}: the AP-title/AE-qualifier \
                 expected for this peer (a client's --peer-ap-title/--peer-ae-qualifier, or the \
                 calling side's own --ap-title/--ae-qualifier) must equal the certificate's \
                 binding, or the certificate be reissued (Annex G.6.2)",
                describe_identity(identity.as_ref()),
                describe_identity(Some(want))
            )));
        }
    }
    if let Some(want) = inp.configured_subject {
        if identity.as_ref() != Some(want) {
            return Err(AuthFailure::AddressMismatch(format!(
                "the certificate binds {}, the peer's [[security.peers]] row wants \
                 certificate_subject {}: change the row or reissue the certificate",
                describe_identity(identity.as_ref()),
                describe_identity(Some(want))
            )));
        }
    }
    let t = parse_time(&v.time).map_err(|_| AuthFailure::TimeInvalid)?;
    if t.abs_diff(inp.now) > inp.window.unsigned_abs() {
        return Err(AuthFailure::TimeStale {
            time: t,
            now: inp.now,
            window: inp.window,
        });
    }
    if inp.replay.contains(&fingerprint, &v.time, inp.now) {
        return Err(AuthFailure::Replayed);
    }
    let alg = algorithm_for(&validated.public_key)
        .map_err(|e| AuthFailure::CertificateInvalid(e.to_string()))?;
    let signed_over = v
        .signed_variants()
        .into_iter()
        .find(|(_, data)| verify_signature(&validated.public_key, alg, data, &v.signature).is_ok())
        .map(|(which, _)| which)
        .ok_or(AuthFailure::BadSignature)?;
    match inp
        .replay
        .insert(&fingerprint, &v.time, inp.now, inp.window)
    {
        ReplayCheck::Fresh => {}
        ReplayCheck::Replayed => return Err(AuthFailure::Replayed),
        ReplayCheck::Full => return Err(AuthFailure::ReplayCacheFull),
    }
    Ok(AuthenticatedPeer {
        fingerprint,
        identity,
        signed_over,
        certificate: v.certificate.clone(),
    })
}

/// Maps a validator error to the failure reported. The OpenSSL validator reports path errors as
/// text, so the validity period is re-read from the certificate to tell expiry apart.
fn classify_cert_error(e: CertError, der: &[u8], now: i64) -> AuthFailure {
    match e {
        CertError::Revoked => AuthFailure::Revoked,
        CertError::Path(msg) => {
            if let Some(f) = validity_failure(der, now) {
                return f;
            }
            let m = msg.to_ascii_lowercase();
            if m.contains("issuer") || m.contains("self-signed") || m.contains("self signed") {
                AuthFailure::UnknownCa(msg)
            } else {
                AuthFailure::CertificateInvalid(msg)
            }
        }
        other => AuthFailure::CertificateInvalid(other.to_string()),
    }
}

fn validity_failure(der: &[u8], now: i64) -> Option<AuthFailure> {
    // Read without OpenSSL, so the Annex G.6.2 OBJECT IDENTIFIER subject form is covered too.
    let (not_before, not_after) = secmms_pki::cert::validity_of(der)?;
    if now > not_after {
        return Some(AuthFailure::Expired);
    }
    if now < not_before {
        return Some(AuthFailure::NotYetValid);
    }
    None
}

/// Extracts the MMS-Authentication-value from an ACSE Authentication-value: the `external [2]`
/// alternative with `single-ASN1-type`; any subset of direct- and indirect-reference is accepted
/// (§11.3 DECISION). Returns the value and the indirect-reference seen.
pub fn extract_value(
    av: Option<&AuthenticationValue>,
) -> Result<(MmsAuthenticationValue, Option<i64>), AuthFailure> {
    let Some(AuthenticationValue::External(e)) = av else {
        return Err(AuthFailure::Malformed(
            "authentication-value absent or not EXTERNAL".into(),
        ));
    };
    let ExternalEncoding::SingleAsn1Type(bytes) = &e.encoding else {
        return Err(AuthFailure::Malformed(
            "EXTERNAL encoding is not single-ASN1-type".into(),
        ));
    };
    let v =
        MmsAuthenticationValue::decode(bytes).map_err(|e| AuthFailure::Malformed(e.to_string()))?;
    Ok((v, e.indirect_reference))
}

/// Builds our MMS-Authentication-value at `now` (§11.2 DECISION: time `YYYYMMDDHHMMSSZ`,
/// signature over the raw time octets).
pub fn build_value(creds: &Credentials, now: i64) -> Result<MmsAuthenticationValue, String> {
    build_value_at(creds, format_time(now).into_bytes())
}

/// Builds our MMS-Authentication-value carrying exactly `time` (GeneralizedTime octets).
pub fn build_value_at(
    creds: &Credentials,
    time: Vec<u8>,
) -> Result<MmsAuthenticationValue, String> {
    let signature = creds.key.sign(&time).map_err(|e| e.to_string())?;
    Ok(MmsAuthenticationValue {
        certificate: creds.certificate.clone(),
        time,
        signature,
        time_tlv: Vec::new(),
    })
}

/// Wraps an encoded value as `external [2]` with `single-ASN1-type` and the given
/// indirect-reference (§11.3).
pub fn wrap_value(
    v: &MmsAuthenticationValue,
    indirect_reference: Option<i64>,
) -> AuthenticationValue {
    AuthenticationValue::External(External {
        direct_reference: None,
        indirect_reference,
        data_value_descriptor: None,
        encoding: ExternalEncoding::SingleAsn1Type(v.encode()),
        raw: Vec::new(),
    })
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

fn abort(diag: i64) -> AbortRequest {
    AbortRequest {
        diagnostic: Some(diag),
        user_information: Vec::new(),
    }
}

fn reject(diag: i64) -> Rejection {
    Rejection {
        result: associate_result::REJECTED_PERMANENT,
        diagnostic: SourceDiagnostic::ServiceUser(diag),
        user_information: Vec::new(),
    }
}

impl AProfile {
    fn new(
        shared: AProfileShared,
        role: Role,
        conn: ConnectionInfo,
        peer: Option<PeerPolicy>,
        peer_identity: Option<PeerIdentity>,
    ) -> Self {
        AProfile {
            shared,
            role,
            conn,
            peer,
            peer_identity,
            phase: Phase::Idle,
            authenticated: None,
            now_ms: None,
        }
    }

    /// Sets the time (Unix milliseconds) of the calls that follow: the 10-minute window and
    /// certificate validity are checked at its second, our own values carry it. The owner
    /// stamps it before every call (`SecureAssociation` does); a hook never given a time runs at
    /// the epoch, where every certificate is invalid: it fails closed.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = Some(now_ms);
    }

    /// The shared state this hook was built from.
    pub fn shared(&self) -> &AProfileShared {
        &self.shared
    }

    /// The label of this association in events (the peer's name or address).
    pub fn label(&self) -> Option<String> {
        self.conn.label(self.peer.as_ref().map(|p| p.name.as_str()))
    }

    /// The peer verified on this association, if any.
    pub fn authenticated_peer(&self) -> Option<AuthenticatedPeer> {
        self.authenticated.clone()
    }

    fn emit(&self, ev: AEvent, message: String) {
        let who = self.conn.label(self.peer.as_ref().map(|p| p.name.as_str()));
        self.shared.sink.record(&SecurityEvent {
            id: ev.id,
            mnemonic: ev.mnemonic,
            severity: ev.severity,
            message,
            association: who,
        });
    }

    fn now(&self) -> i64 {
        self.now_ms.unwrap_or(0).div_euclid(1000)
    }

    /// The ACSE-requirements check of [`TOLERATE_ACSE_REQUIREMENTS_LOW_BIT`]: false when the
    /// association must be refused (the event is raised here).
    fn requirements_accepted(
        &mut self,
        bits: Option<&secmms_osi::presentation::BitString>,
        which: &str,
    ) -> bool {
        match acse_requirements(bits) {
            AcseRequirements::Authentication => true,
            AcseRequirements::WrongLowBit if self.shared.cfg.tolerate_acse_requirements_low_bit => {
                self.emit(
                    events::ACSE_REQUIREMENTS_WRONG_BIT,
                    format!("{which}-acse-requirements sets the low bit instead of authentication (bit 0); tolerated"),
                );
                true
            }
            r => {
                self.emit(
                    events::ACSE_REQUIREMENTS_MISSING,
                    format!("{which}-acse-requirements {bits:?} does not select the authentication functional unit ({r:?})"),
                );
                false
            }
        }
    }

    fn tls_fingerprints(&self) -> Vec<[u8; 32]> {
        let mut v = self.shared.cfg.tls_certificate_fingerprints.clone();
        v.extend_from_slice(&self.conn.tls_certificate_fingerprints);
        v
    }

    /// Verifies a received value and records the outcome.
    fn verify(
        &mut self,
        av: Option<&AuthenticationValue>,
        expected: Option<PeerIdentity>,
    ) -> Result<Option<i64>, AuthFailure> {
        let (v, indirect) = extract_value(av)?;
        let cfg = &self.shared.cfg;
        let tls = self.tls_fingerprints();
        let configured = self
            .peer
            .as_ref()
            .and_then(|p| p.certificate_subject.clone());
        let inp = VerifyInput {
            validator: cfg.validator.as_ref(),
            now: self.now(),
            window: cfg.time_window_secs,
            tls_fingerprints: &tls,
            expected_identity: if cfg.require_address_binding {
                // Binding required: an unknown address never matches.
                Some(expected.as_ref().unwrap_or(&NO_IDENTITY))
            } else {
                None
            },
            configured_subject: configured.as_ref(),
            replay: self.shared.replay.as_ref(),
        };
        let peer = verify_value(&v, &inp)?;
        if peer.signed_over != SignedOver::RawTime {
            self.emit(
                events::SIGNATURE_FALLBACK,
                format!("signature verified over {:?}", peer.signed_over),
            );
        }
        self.emit(
            events::AUTHENTICATED,
            format!("peer authenticated: {:?}", peer.identity),
        );
        self.authenticated = Some(peer);
        Ok(indirect)
    }

    fn own_value(&self, indirect: Option<i64>) -> Result<AuthenticationValue, AbortRequest> {
        let Some(creds) = &self.shared.cfg.credentials else {
            self.emit(
                events::LOCAL_FAILURE,
                "no A-profile credentials configured".into(),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        };
        let time = if TIME_WITH_MILLISECONDS {
            self.shared.stamps.next_ms(self.now_ms.unwrap_or(0))
        } else {
            self.shared.stamps.next(self.now())
        };
        match build_value_at(creds, time) {
            Ok(v) => Ok(wrap_value(&v, indirect)),
            Err(e) => {
                self.emit(events::LOCAL_FAILURE, format!("signing failed: {e}"));
                Err(abort(abort_diagnostic::NO_REASON_GIVEN))
            }
        }
    }
}

/// An identity that matches no certificate (used when the peer's address is unknown).
static NO_IDENTITY: PeerIdentity = PeerIdentity::Jid(String::new());

impl AssociationSecurity for AProfile {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        let Some(peer) = self.peer.clone() else {
            self.emit(
                events::POLICY_REFUSED,
                "no peer policy for the initiator".into(),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        };
        if !peer.transport.allows(self.conn.tls) {
            self.emit(
                events::POLICY_REFUSED,
                format!(
                    "transport {} does not meet {:?}",
                    if self.conn.tls { "TLS" } else { "TCP" },
                    peer.transport
                ),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        }
        match peer.application {
            ApplicationSecurity::EndToEndSecure => {
                self.emit(
                    events::POLICY_REFUSED,
                    "peer requires END-TO-END SECURE; the A-profile cannot provide it".into(),
                );
                Err(abort(abort_diagnostic::NO_REASON_GIVEN))
            }
            ApplicationSecurity::NonSecure => {
                self.phase = Phase::AwaitingAare { sent: false };
                Ok(())
            }
            ApplicationSecurity::Secure => {
                // §11.3 DECISION: indirect-reference = pcid of mmsAuthenticationAS when that
                // context was proposed, nothing in sisco_compat mode.
                let pcid = if peer.sisco_compat {
                    None
                } else {
                    ctx.context_id(&self.shared.cfg.mms_authentication_as)
                        .map(i64::from)
                };
                let value = self.own_value(pcid)?;
                aarq.sender_acse_requirements = Some(requirements_authentication());
                aarq.mechanism_name = Some(mechanism_name());
                aarq.calling_authentication_value = Some(value);
                self.phase = Phase::AwaitingAare { sent: true };
                Ok(())
            }
        }
    }

    fn check_aarq(&mut self, _ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        let ap = form2_ap(&aarq.calling_ap_title);
        let ae = form2_ae(&aarq.calling_ae_qualifier);
        let Some(peer) = self
            .shared
            .table
            .find(self.conn.peer_address, ap, ae)
            .cloned()
        else {
            self.emit(
                events::POLICY_REFUSED,
                format!("no bilateral-table entry for {ap:?}/{ae:?}"),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        };
        self.peer = Some(peer.clone());
        if !peer.transport.allows(self.conn.tls) {
            self.emit(
                events::POLICY_REFUSED,
                format!(
                    "transport {} does not meet {:?}",
                    if self.conn.tls { "TLS" } else { "TCP" },
                    peer.transport
                ),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        }
        if peer.application == ApplicationSecurity::EndToEndSecure {
            self.emit(
                events::POLICY_REFUSED,
                "peer requires END-TO-END SECURE; the A-profile cannot provide it".into(),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        }
        let required = peer.application == ApplicationSecurity::Secure;
        match &aarq.mechanism_name {
            None if !required && aarq.calling_authentication_value.is_none() => {
                self.phase = Phase::AarqAccepted {
                    respond: false,
                    indirect: None,
                };
                return AssociateVerdict::ACCEPT;
            }
            None => {
                self.emit(
                    events::MECHANISM_REQUIRED,
                    "AARQ without mechanism-name".into(),
                );
                return AssociateVerdict::Reject(reject(
                    user_diagnostic::AUTHENTICATION_MECHANISM_NAME_REQUIRED,
                ));
            }
            Some(m) if m.arcs() != MECHANISM_NAME => {
                self.emit(
                    events::MECHANISM_UNKNOWN,
                    format!("AARQ mechanism-name {m}"),
                );
                return AssociateVerdict::Reject(reject(
                    user_diagnostic::AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED,
                ));
            }
            Some(_) => {}
        }
        if !self.requirements_accepted(aarq.sender_acse_requirements.as_ref(), "AARQ sender") {
            self.phase = Phase::Done;
            return AssociateVerdict::Reject(reject(user_diagnostic::AUTHENTICATION_REQUIRED));
        }
        let expected = identity_of(ap, ae);
        match self.verify(aarq.calling_authentication_value.as_ref(), expected) {
            Ok(indirect) => {
                self.phase = Phase::AarqAccepted {
                    respond: true,
                    indirect,
                };
                AssociateVerdict::ACCEPT
            }
            Err(f) => {
                self.emit(f.event(), f.to_string());
                self.phase = Phase::Done;
                AssociateVerdict::Abort(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
        }
    }

    fn decorate_aare(
        &mut self,
        _ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        if aare.result != associate_result::ACCEPTED {
            return Ok(());
        }
        if let Phase::AarqAccepted {
            respond: true,
            indirect,
        } = phase
        {
            // §11.4 step 6 with the §11.3 mirror DECISION.
            let value = self.own_value(indirect)?;
            aare.responder_acse_requirements = Some(requirements_authentication());
            aare.mechanism_name = Some(mechanism_name());
            aare.responding_authentication_value = Some(value);
        }
        Ok(())
    }

    fn check_aare(&mut self, _ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let sent = matches!(phase, Phase::AwaitingAare { sent: true });
        if !sent && aare.mechanism_name.is_none() && aare.responding_authentication_value.is_none()
        {
            return Verdict::ACCEPT;
        }
        match &aare.mechanism_name {
            None => {
                self.emit(
                    events::MECHANISM_REQUIRED,
                    "AARE without mechanism-name".into(),
                );
                return Verdict::Abort(abort(
                    abort_diagnostic::AUTHENTICATION_MECHANISM_NAME_REQUIRED,
                ));
            }
            Some(m) if m.arcs() != MECHANISM_NAME => {
                self.emit(
                    events::MECHANISM_UNKNOWN,
                    format!("AARE mechanism-name {m}"),
                );
                return Verdict::Abort(abort(
                    abort_diagnostic::AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED,
                ));
            }
            Some(_) => {}
        }
        if !self.requirements_accepted(aare.responder_acse_requirements.as_ref(), "AARE responder")
        {
            return Verdict::Abort(abort(abort_diagnostic::AUTHENTICATION_REQUIRED));
        }
        // Binding: the responding titles when the AARE carries them, else the called ones.
        let expected = identity_of(
            form2_ap(&aare.responding_ap_title),
            form2_ae(&aare.responding_ae_qualifier),
        )
        .or_else(|| self.peer_identity.clone());
        match self.verify(aare.responding_authentication_value.as_ref(), expected) {
            Ok(_) => Verdict::ACCEPT,
            Err(f) => {
                self.emit(f.event(), f.to_string());
                Verdict::Abort(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
        }
    }

    fn check_abrt(&mut self, _ctx: &SecurityContext<'_>, abrt: &Abrt) {
        if matches!(self.phase, Phase::AwaitingAare { sent: true }) {
            self.emit(
                events::PEER_ABORTED,
                format!(
                    "peer aborted during authentication (diagnostic {:?})",
                    abrt.diagnostic
                ),
            );
        }
        self.phase = Phase::Done;
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
