//! One sans-IO secure association: the OSI association and its protection (none, the
//! A-security-profile of clause 11, or native E2E of clause 15) in one object, in the shape of
//! quinn-proto's `Connection`.
//!
//! * Bytes in: [`SecureAssociation::handle_input`] and [`SecureAssociation::transport_closed`];
//!   bytes out: [`SecureAssociation::poll_transmit`].
//! * What happened: [`SecureAssociation::poll_event`]. MMS PDUs arrive as [`SecureEvent::Mms`],
//!   verified and decrypted whatever the mode; a failed check has already queued the abort the
//!   standard prescribes and is reported as [`SecureEvent::SecurityFailure`].
//! * Time: every call takes a [`Now`]; nothing here reads a clock.
//!   [`SecureAssociation::poll_timeout`] says when [`SecureAssociation::handle_timeout`] is
//!   next due (the association, idle and release timeouts, the E2E key-refresh timers).
//! * No lock: the protection is held by value inside the association
//!   (`Association<Protection>`) and reached between association calls, so "ask the engine,
//!   then call the association (which may call the hook back)" is ordered by the borrow checker.
//!
//! ```
//! # use secmms_profiles::secure::*;
//! # use secmms_osi::{OsiConfig, Role};
//! let now = Now::new(secmms_e2e::TimeStamp::from_unix_secs(1_750_000_000), std::time::Instant::now());
//! let mut client = SecureAssociation::new(
//!     Role::Initiator, OsiConfig::default(), Protection::Plain, Timeouts::default(), now);
//! let mut server = SecureAssociation::new(
//!     Role::Responder, OsiConfig::server_default(), Protection::Plain, Timeouts::default(), now);
//! client.connect(b"\xa8\x00".to_vec(), now).unwrap();
//! for _ in 0..2 {   // CR, CC, then CN carrying the AARQ: move bytes both ways
//!     while let Some(b) = client.poll_transmit() { server.handle_input(&b, now).unwrap(); }
//!     while let Some(b) = server.poll_transmit() { client.handle_input(&b, now).unwrap(); }
//! }
//! assert!(matches!(server.poll_event(), Some(SecureEvent::AssociateIndication { .. })));
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use secmms_e2e::{HandshakeDiagnostic, ProtectionMode, TimeStamp};
use secmms_osi::acse::{Aare, Aarq, Abrt, Rlre, Rlrq, SourceDiagnostic};
use secmms_osi::association::{AbortInfo, RejectReason};
use secmms_osi::security::{AbortRequest, AssociateVerdict, SecurityContext, Verdict};
use secmms_osi::{
    Association, AssociationSecurity, NoSecurity, OsiConfig, OsiError, OsiEvent, Role,
};
use secmms_pki::PeerIdentity;

use crate::aprofile::{AProfile, AuthenticatedPeer};
use crate::native::{
    Fault, NativeDiagnostic, NativeError, NativeState, REJECT_DIAGNOSTIC, SEC_REJECT_RESULT,
};

/// The time of a call: the calendar for the protocol (certificate validity, the 10-minute
/// windows, SecPDU times) and a monotonic instant for timeouts, which do not move when the
/// wall clock is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// UTC, Unix milliseconds.
    pub wall: TimeStamp,
    /// The monotonic instant of the same moment.
    pub mono: Instant,
}

impl Now {
    /// The moment `wall` / `mono`.
    pub fn new(wall: TimeStamp, mono: Instant) -> Self {
        Now { wall, mono }
    }

    /// The same clocks `d` later (a fake clock advances both).
    pub fn after(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Now {
            wall: TimeStamp(self.wall.0.saturating_add(ms)),
            mono: self.mono.checked_add(d).unwrap_or(self.mono),
        }
    }

    /// The monotonic instant of the calendar time `t`, as seen from this moment.
    pub fn instant_of(self, t: TimeStamp) -> Instant {
        let ms = t.0.saturating_sub(self.wall.0).max(0);
        let d = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        self.mono.checked_add(d).unwrap_or(self.mono)
    }
}

/// The OSI-level timeouts of one association; `None` waits forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// From creation until the association is established (or refused).
    pub associate: Option<Duration>,
    /// Established: from the last input received.
    pub idle: Option<Duration>,
    /// From our release request until the peer answers.
    pub release: Option<Duration>,
    /// From the first octet of a PDU until its last (a TPKT, or a TSDU split over several
    /// DTs), established or not; octets do not renew it.
    pub pdu: Option<Duration>,
}

/// Which OSI-level timeout ran out ([`SecureEvent::TimedOut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// [`Timeouts::associate`].
    Associate,
    /// [`Timeouts::idle`].
    Idle,
    /// [`Timeouts::release`].
    Release,
    /// [`Timeouts::pdu`].
    Pdu,
}

/// The protection of one association, held by value in its `Association` as its hook.
#[derive(Debug)]
pub enum Protection {
    /// No application-layer security.
    Plain,
    /// The A-security-profile (clause 11, compatibility mode).
    AProfile(Box<AProfile>),
    /// E2E security (clause 15, native mode).
    Native(Box<NativeState>),
}

impl Protection {
    /// Stamps the time of the calls that follow on the profile.
    pub fn set_now(&mut self, now: Now) {
        match self {
            Protection::Plain => {}
            Protection::AProfile(a) => a.set_now(now.wall.0),
            Protection::Native(n) => n.set_now(now.wall),
        }
    }

    /// The native-mode state, if this is native mode.
    pub fn native(&self) -> Option<&NativeState> {
        match self {
            Protection::Native(n) => Some(n),
            _ => None,
        }
    }

    /// The peer the A-security-profile authenticated, if any.
    pub fn authenticated_peer(&self) -> Option<AuthenticatedPeer> {
        match self {
            Protection::AProfile(a) => a.authenticated_peer(),
            _ => None,
        }
    }

    /// The peer's application certificate (DER) once verified, in either profile.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Protection::Plain => None,
            Protection::AProfile(a) => a.authenticated_peer().map(|p| p.certificate),
            Protection::Native(n) => n.peer_certificate(),
        }
    }

    /// The identity of the authenticated peer in words, if the application layer authenticated
    /// one.
    pub fn peer_name(&self) -> Option<String> {
        let name = |id: Option<&PeerIdentity>| match id {
            Some(PeerIdentity::ApTitle(o)) => o.to_string(),
            Some(PeerIdentity::Jid(j)) => j.clone(),
            None => "certificate without a bound identity".to_string(),
        };
        match self {
            Protection::Plain => None,
            Protection::AProfile(a) => a.authenticated_peer().map(|p| name(p.identity.as_ref())),
            Protection::Native(n) => n.peer_certificate().map(|_| name(n.peer())),
        }
    }

    /// What protects the association's data, in words.
    pub fn describe(&self) -> String {
        match self {
            Protection::Plain => "none".into(),
            Protection::AProfile(_) => "A-security-profile".into(),
            Protection::Native(n) => match n.protection() {
                Some(ProtectionMode::Ae(a)) => format!("E2E AEAD {a:?}"),
                Some(ProtectionMode::NonAe { encr: Some(e), icv }) => {
                    format!("E2E {e:?} + {icv:?} ICV")
                }
                Some(ProtectionMode::NonAe { encr: None, icv }) => {
                    format!("E2E {icv:?} ICV, not encrypted")
                }
                None => "E2E (not established)".into(),
            },
        }
    }

    /// The label of the association in events.
    fn label(&self) -> Option<String> {
        match self {
            Protection::Plain => None,
            Protection::AProfile(a) => a.label(),
            Protection::Native(n) => n.label(),
        }
    }
}

macro_rules! on_hook {
    ($p:expr, $h:ident => $body:expr) => {
        match $p {
            Protection::Plain => {
                let $h = &mut NoSecurity;
                $body
            }
            Protection::AProfile(a) => {
                let $h = a.as_mut();
                $body
            }
            Protection::Native(n) => {
                let $h = n.as_mut();
                $body
            }
        }
    };
}

impl AssociationSecurity for Protection {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        on_hook!(self, h => h.decorate_aarq(ctx, aarq))
    }
    fn check_aarq(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        on_hook!(self, h => h.check_aarq(ctx, aarq))
    }
    fn unsupported_application_context(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) {
        on_hook!(self, h => h.unsupported_application_context(ctx, aarq))
    }
    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        on_hook!(self, h => h.decorate_aare(ctx, aare))
    }
    fn check_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        on_hook!(self, h => h.check_aare(ctx, aare))
    }
    fn check_rejecting_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Option<Vec<u8>> {
        on_hook!(self, h => h.check_rejecting_aare(ctx, aare))
    }
    fn decorate_rlrq(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        on_hook!(self, h => h.decorate_rlrq(ctx, rlrq))
    }
    fn check_rlrq(&mut self, ctx: &SecurityContext<'_>, rlrq: &Rlrq) -> Verdict {
        on_hook!(self, h => h.check_rlrq(ctx, rlrq))
    }
    fn decorate_rlre(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        on_hook!(self, h => h.decorate_rlre(ctx, rlre))
    }
    fn check_rlre(&mut self, ctx: &SecurityContext<'_>, rlre: &Rlre) -> Verdict {
        on_hook!(self, h => h.check_rlre(ctx, rlre))
    }
    fn decorate_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &mut Abrt) {
        on_hook!(self, h => h.decorate_abrt(ctx, abrt))
    }
    fn protocol_error(&mut self, ctx: &SecurityContext<'_>, error: &OsiError) {
        on_hook!(self, h => h.protocol_error(ctx, error))
    }
    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &Abrt) {
        on_hook!(self, h => h.check_abrt(ctx, abrt))
    }
}

/// A hook that is, or wraps, a [`Protection`]: tests put a layer around it to rewrite or
/// record APDUs while the secure association still reaches the protection inside.
pub trait Layer: AssociationSecurity {
    /// The protection inside.
    fn protection(&self) -> &Protection;
    /// The protection inside, to change.
    fn protection_mut(&mut self) -> &mut Protection;
    /// The time of the call into the secure association being made, for the protection (a
    /// layer that puts another protection in place passes it on to that one too).
    fn set_now(&mut self, now: Now) {
        self.protection_mut().set_now(now);
    }
}

impl Layer for Protection {
    fn protection(&self) -> &Protection {
        self
    }
    fn protection_mut(&mut self) -> &mut Protection {
        self
    }
}

/// Why an operation of the secure association failed. When the standard prescribes an abort,
/// it is already queued ([`SecureAssociation::poll_transmit`]) and its event raised.
#[derive(Debug, thiserror::Error)]
pub enum ProtectionError {
    /// Native mode: an E2E check or the engine failed.
    #[error("E2E security: {0}")]
    Native(#[from] NativeError),
    /// Compatibility mode: the peer's application certificate is now revoked (CRLs
    /// reloaded); the ABRT (authentication-failure) is queued and `AP_CERT_REVOKED` raised.
    #[error("the peer's application certificate is revoked (CRL reloaded); association aborted")]
    PeerRevoked,
    /// Compatibility mode: the peer was refused for a reason found outside clause 11 (its OCSP
    /// lookup); the ABRT (authentication-failure) is queued and the event raised.
    #[error("the peer's application certificate failed the OCSP check: {0}")]
    PeerRefused(String),
    /// The association refused the call.
    #[error(transparent)]
    Osi(#[from] OsiError),
}

/// What happened on a [`SecureAssociation`].
#[derive(Debug)]
pub enum SecureEvent {
    /// Responder: an AARQ arrived and passed the profile's checks; answer with
    /// [`SecureAssociation::accept`] or [`SecureAssociation::reject`] (or
    /// [`SecureAssociation::refuse_peer`]).
    AssociateIndication {
        /// The AARQ.
        aarq: Box<Aarq>,
        /// The MMS initiate-RequestPDU.
        initiate: Option<Vec<u8>>,
    },
    /// Initiator: the association is established.
    Established {
        /// The AARE.
        aare: Box<Aare>,
        /// The MMS initiate-ResponsePDU.
        initiate_response: Option<Vec<u8>>,
    },
    /// Initiator: the association was refused.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The rejecting AARE, if one arrived.
        aare: Option<Box<Aare>>,
        /// Its MMS PDU (an initiate-ErrorPDU), if any.
        initiate_error: Option<Vec<u8>>,
        /// The CONNECT carried more user data than the peer's session protocol may take
        /// without extended concatenation (the likely cause of a refusal by a small stack).
        needs_extended_user_data: Option<usize>,
    },
    /// One MMS PDU, verified (and decrypted) as the mode requires.
    Mms(Vec<u8>),
    /// The peer asks to release; answer with [`SecureAssociation::release_response`].
    ReleaseIndication {
        /// The MMS conclude-RequestPDU, if any.
        conclude: Option<Vec<u8>>,
    },
    /// Our release was answered.
    Released {
        /// The MMS conclude-ResponsePDU, if any.
        answer: Option<Vec<u8>>,
    },
    /// The peer refused our release.
    ReleaseRefused,
    /// The peer, its transport or a protocol error ended the association.
    Aborted(AbortInfo),
    /// A received PDU failed a security check: the prescribed abort is queued; flush and close.
    SecurityFailure(ProtectionError),
    /// An OSI-level timeout ran out; the association is closed locally (nothing sent).
    TimedOut(TimerKind),
    /// A protocol error was detected; the reaction is queued.
    ProtocolError(OsiError),
    /// The association is over.
    Closed,
}

/// The instant `timeout` after `now`; `None` (never) without a timeout or when it is too long
/// to be an instant (a configured `u64::MAX` seconds waits forever instead of overflowing).
fn deadline(now: Now, timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|d| now.mono.checked_add(d))
}

/// One association with its protection, sans-IO: see the [module documentation](self).
pub struct SecureAssociation<L: Layer = Protection> {
    assoc: Association<L>,
    timeouts: Timeouts,
    last: Now,
    established: bool,
    timed_out: bool,
    associate_at: Option<Instant>,
    idle_at: Option<Instant>,
    release_at: Option<Instant>,
    /// The deadline of the PDU being received ([`Timeouts::pdu`]).
    pdu_at: Option<Instant>,
    events: VecDeque<SecureEvent>,
}

impl<L: Layer> std::fmt::Debug for SecureAssociation<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureAssociation")
            .field("state", &self.assoc.state())
            .field("protection", &self.assoc.security().protection().describe())
            .field("established", &self.established)
            .finish_non_exhaustive()
    }
}

impl SecureAssociation<Protection> {
    /// An association in `role` with `osi` (prepared for the profile: see
    /// `AProfileShared::prepare_osi_config`, `NativeShared::prepare_osi_config`) protected by
    /// `protection`. The association timeout starts now.
    pub fn new(
        role: Role,
        osi: OsiConfig,
        protection: Protection,
        timeouts: Timeouts,
        now: Now,
    ) -> Self {
        Self::with_layer(role, osi, protection, timeouts, now)
    }
}

impl<L: Layer> SecureAssociation<L> {
    /// [`SecureAssociation::new`] with a layer around the protection.
    pub fn with_layer(role: Role, osi: OsiConfig, layer: L, timeouts: Timeouts, now: Now) -> Self {
        SecureAssociation {
            assoc: Association::with_hook(role, osi, layer),
            timeouts,
            last: now,
            established: false,
            timed_out: false,
            associate_at: deadline(now, timeouts.associate),
            idle_at: None,
            release_at: None,
            pdu_at: None,
            events: VecDeque::new(),
        }
    }

    /// Every entry point stamps the time first, so the hook never sees a stale one.
    fn enter(&mut self, now: Now) {
        self.last = now;
        Layer::set_now(self.assoc.security_mut(), now);
    }

    fn now_established(&mut self, now: Now) {
        self.established = true;
        self.associate_at = None;
        self.idle_at = deadline(now, self.timeouts.idle);
    }

    /// Initiator: sends the AARQ carrying the MMS initiate-RequestPDU.
    pub fn connect(&mut self, initiate_request: Vec<u8>, now: Now) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.connect(initiate_request)
    }

    /// Responder: accepts with the MMS initiate-ResponsePDU.
    pub fn accept(&mut self, initiate_response: Vec<u8>, now: Now) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.accept(initiate_response)?;
        if !self.assoc.is_closed() {
            self.now_established(now);
        }
        Ok(())
    }

    /// Responder: refuses with `result` and `diagnostic` (and an MMS initiate-ErrorPDU).
    pub fn reject(
        &mut self,
        result: i64,
        diagnostic: SourceDiagnostic,
        initiate_error: Option<Vec<u8>>,
        now: Now,
    ) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.reject(result, diagnostic, initiate_error)
    }

    /// Responder, on [`SecureEvent::AssociateIndication`]: refuses the authenticated peer for
    /// a reason found outside the profile (OCSP: `revoked`, or no answer under hard-fail),
    /// raising the profile's event with `detail`: native mode answers with a
    /// HandshakeSecReject (`invalid-public-key-certificate`, `E2E_PEER_CERT_REVOKED` /
    /// `E2E_PEER_OCSP_UNAVAILABLE`), compatibility mode with an ABRT authentication-failure
    /// (`AP_CERT_REVOKED` / `AP_OCSP_UNAVAILABLE`). Returns the error that describes the
    /// refusal; plain mode has no peer to refuse and returns `None`.
    pub fn refuse_peer(
        &mut self,
        revoked: bool,
        detail: String,
        now: Now,
    ) -> Option<ProtectionError> {
        self.enter(now);
        let label = self.assoc.security().protection().label();
        match self.assoc.security_mut().protection_mut() {
            Protection::Plain => None,
            Protection::Native(n) => {
                let event = if revoked {
                    secmms_e2e::events::PEER_CERT_REVOKED
                } else {
                    secmms_e2e::events::PEER_OCSP_UNAVAILABLE
                };
                let diag = HandshakeDiagnostic::InvalidPublicKeyCertificate;
                match n.refuse_peer(diag, event, detail) {
                    Ok(e) => {
                        if let Err(o) = self.assoc.reject(
                            SEC_REJECT_RESULT,
                            SourceDiagnostic::ServiceUser(REJECT_DIAGNOSTIC),
                            None,
                        ) {
                            return Some(o.into());
                        }
                        Some(e.into())
                    }
                    Err(e) => Some(e.into()),
                }
            }
            Protection::AProfile(a) => {
                let event = if revoked {
                    crate::events::CERT_REVOKED
                } else {
                    crate::events::OCSP_UNAVAILABLE
                };
                let req = a.shared().refuse_peer(event, detail.clone(), label);
                match self.assoc.abort_with(req) {
                    Ok(()) => Some(ProtectionError::PeerRefused(detail)),
                    Err(o) => Some(o.into()),
                }
            }
        }
    }

    /// Sends one MMS PDU: plain P-DATA on the MMS context, or protected on the e2eSecurityAS
    /// context in native mode. A failed protection queues the prescribed abort.
    pub fn send_mms(&mut self, pdu: &[u8], now: Now) -> Result<(), ProtectionError> {
        self.enter(now);
        let protected = match self.assoc.security_mut().protection_mut() {
            Protection::Native(n) => Some(n.protect(pdu)),
            _ => None,
        };
        match protected {
            None => Ok(self.assoc.send_data(pdu)?),
            Some(Ok((pcid, bytes))) => Ok(self.assoc.send_data_on(pcid, &bytes)?),
            Some(Err(f)) => Err(self.apply(*f)),
        }
    }

    /// Queues a fault's abort and turns it into the error.
    fn apply(&mut self, f: Fault) -> ProtectionError {
        if let Some(req) = f.abort {
            if let Err(e) = self.assoc.abort_with(req) {
                return e.into();
            }
        }
        f.error.into()
    }

    /// Asks to release, with the MMS conclude-RequestPDU; the release timeout starts.
    pub fn release(&mut self, conclude: Option<Vec<u8>>, now: Now) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.release(conclude)?;
        self.release_at = deadline(now, self.timeouts.release);
        Ok(())
    }

    /// Answers the peer's release with the MMS conclude-ResponsePDU (or its refusal).
    pub fn release_response(&mut self, answer: Option<Vec<u8>>, now: Now) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.release_response(answer)
    }

    /// Native mode, initiator: asks for an E2E key refresh (IEC 62351-4 §13.3.2) with the next
    /// protected PDU ([`NativeState::start_rekey`]). `false` in another mode, on a responder or
    /// outside the established phase.
    pub fn start_rekey(&mut self) -> bool {
        match self.assoc.security_mut().protection_mut() {
            Protection::Native(n) => n.start_rekey(),
            _ => false,
        }
    }

    /// Aborts (native mode: with an ApplAbort).
    pub fn abort(&mut self, now: Now) -> Result<(), OsiError> {
        self.enter(now);
        self.assoc.abort()
    }

    /// Validates the peer's application certificate again (after the CRLs were reloaded). A
    /// revoked peer ends the association with the abort the profile prescribes (queued): an
    /// ABRT authentication-failure in compatibility mode, a DtSecAbort in native mode. Nothing
    /// happens before authentication, in plain mode or while the peer stays valid.
    pub fn recheck_peer(&mut self, now: Now) -> Result<(), ProtectionError> {
        self.enter(now);
        let label = self.assoc.security().protection().label();
        let abort = match self.assoc.security_mut().protection_mut() {
            Protection::Plain => return Ok(()),
            Protection::Native(n) => match n.recheck_peer() {
                Ok(()) => return Ok(()),
                Err(f) => return Err(self.apply(*f)),
            },
            Protection::AProfile(a) => {
                let Some(peer) = a.authenticated_peer() else {
                    return Ok(());
                };
                match a
                    .shared()
                    .recheck_peer_at(&peer, label, now.wall.0.div_euclid(1000))
                {
                    Ok(()) => return Ok(()),
                    Err(req) => req,
                }
            }
        };
        self.assoc.abort_with(abort)?;
        Err(ProtectionError::PeerRevoked)
    }

    /// Feeds bytes read from the transport. Protocol errors are reported as events; `Err` only
    /// when the reaction could not be encoded.
    pub fn handle_input(&mut self, bytes: &[u8], now: Now) -> Result<(), OsiError> {
        self.enter(now);
        if self.established {
            self.idle_at = deadline(now, self.timeouts.idle);
        }
        let before = self.assoc.tpdus_received();
        let r = self.assoc.handle_input(bytes);
        // A PDU left incomplete must be completed in time: from its first octet, or from the
        // end of the previous PDU when this input completed one.
        self.pdu_at = match self.assoc.input_pending() {
            false => None,
            true if self.pdu_at.is_none() || self.assoc.tpdus_received() != before => {
                deadline(now, self.timeouts.pdu)
            }
            true => self.pdu_at,
        };
        r
    }

    /// The transport ended (FIN, RST, TLS close).
    pub fn transport_closed(&mut self, now: Now) {
        self.enter(now);
        self.assoc.transport_closed();
    }

    /// Runs what is due at `now`: the E2E timers (a rekey timeout queues a DtSecAbort and
    /// reports [`SecureEvent::SecurityFailure`]) and the OSI timeouts (the association closes
    /// locally and reports [`SecureEvent::TimedOut`]). Early and repeated calls do nothing.
    pub fn handle_timeout(&mut self, now: Now) {
        self.enter(now);
        if self.is_closed() {
            return;
        }
        let e2e = match self.assoc.security_mut().protection_mut() {
            Protection::Native(n) => n
                .next_timeout()
                .filter(|t| *t <= now.wall)
                .map(|_| n.handle_timeout()),
            _ => None,
        };
        if let Some(Err(f)) = e2e {
            let e = self.apply(*f);
            self.events.push_back(SecureEvent::SecurityFailure(e));
            return;
        }
        let due = |at: Option<Instant>| at.is_some_and(|t| t <= now.mono);
        let kind = if !self.established && due(self.associate_at) {
            Some(TimerKind::Associate)
        } else if self.release_at.is_some() && due(self.release_at) {
            Some(TimerKind::Release)
        } else if self.established && due(self.idle_at) {
            Some(TimerKind::Idle)
        } else if due(self.pdu_at) {
            Some(TimerKind::Pdu)
        } else {
            None
        };
        if let Some(k) = kind {
            self.timed_out = true;
            self.associate_at = None;
            self.idle_at = None;
            self.release_at = None;
            self.pdu_at = None;
            self.events.push_back(SecureEvent::TimedOut(k));
        }
    }

    /// When [`Self::handle_timeout`] is next due, if anything is timed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let e2e = self
            .assoc
            .security()
            .protection()
            .native()
            .and_then(NativeState::next_timeout)
            .map(|t| self.last.instant_of(t));
        let osi = if self.established {
            [self.idle_at, self.release_at]
        } else {
            [self.associate_at, self.release_at]
        };
        osi.into_iter().chain([self.pdu_at, e2e]).flatten().min()
    }

    /// The next octets to write, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.assoc.poll_transmit()
    }

    /// Events not yet taken (an upper bound: P-DATA that fails to verify is not counted out).
    pub fn queued_events(&self) -> usize {
        self.events.len() + self.assoc.queued_events()
    }

    /// True once the association is over, or closed locally by a timeout: flush
    /// [`Self::poll_transmit`] and close the transport.
    pub fn is_closed(&self) -> bool {
        self.timed_out || self.assoc.is_closed()
    }

    /// True from acceptance (or confirmation) on.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The OSI association, to inspect it (negotiated contexts, state).
    pub fn association(&self) -> &Association<L> {
        &self.assoc
    }

    /// The protection, to inspect it (mode, peer, last diagnostic).
    pub fn protection(&self) -> &Protection {
        self.assoc.security().protection()
    }

    /// The hook layer (the protection, or a test's wrapper around it).
    pub fn layer_mut(&mut self) -> &mut L {
        self.assoc.security_mut()
    }

    /// Native mode: what the last failure, rejection or abort was.
    pub fn last_diagnostic(&self) -> Option<&NativeDiagnostic> {
        self.protection().native()?.last_diagnostic()
    }

    /// The next event, translated at the time of the last call: MMS data unwrapped (and, in
    /// native mode, verified and decrypted).
    pub fn poll_event(&mut self) -> Option<SecureEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        loop {
            let ev = self.assoc.poll_event()?;
            let out = match ev {
                OsiEvent::AssociateIndication { aarq, user_data } => {
                    SecureEvent::AssociateIndication {
                        aarq,
                        initiate: user_data,
                    }
                }
                OsiEvent::AssociateConfirm { aare, user_data } => {
                    let now = self.last;
                    self.now_established(now);
                    SecureEvent::Established {
                        aare,
                        initiate_response: user_data,
                    }
                }
                OsiEvent::AssociateRejected {
                    reason,
                    aare,
                    user_data,
                } => SecureEvent::Rejected {
                    reason,
                    aare,
                    initiate_error: user_data,
                    needs_extended_user_data: self.assoc.connect_needed_extended_user_data(),
                },
                OsiEvent::Data { context_id, pdu } => match self.unwrap_data(context_id, pdu) {
                    Ok(Some(mms)) => SecureEvent::Mms(mms),
                    Ok(None) => continue,
                    Err(e) => SecureEvent::SecurityFailure(e),
                },
                OsiEvent::ReleaseIndication { user_data, .. } => SecureEvent::ReleaseIndication {
                    conclude: user_data,
                },
                OsiEvent::ReleaseConfirm { user_data, .. } => {
                    self.release_at = None;
                    SecureEvent::Released { answer: user_data }
                }
                OsiEvent::ReleaseRefused => {
                    self.release_at = None;
                    SecureEvent::ReleaseRefused
                }
                OsiEvent::AbortIndication(info) => SecureEvent::Aborted(info),
                OsiEvent::ProtocolError(e) => SecureEvent::ProtocolError(e),
                OsiEvent::Closed => SecureEvent::Closed,
            };
            return Some(out);
        }
    }

    /// A P-DATA value into an MMS PDU: plain and A-profile take the MMS context only (other
    /// contexts are dropped); native mode verifies, and a failure queues the abort.
    fn unwrap_data(
        &mut self,
        context_id: u32,
        pdu: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, ProtectionError> {
        let checked = match self.assoc.security_mut().protection_mut() {
            Protection::Native(n) => Some(n.unprotect(context_id, &pdu)),
            _ => None,
        };
        match checked {
            None if self.assoc.mms_context_id() == Some(context_id) => Ok(Some(pdu)),
            None => Ok(None),
            Some(Ok(mms)) => Ok(mms),
            Some(Err(f)) => Err(self.apply(*f)),
        }
    }
}
