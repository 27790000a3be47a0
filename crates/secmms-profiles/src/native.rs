//! E2E security in the OSI environment — IEC 62351-4 clause 15, *native mode* — as the
//! [`NativeState`] of one association: an [`AssociationSecurity`] hook for
//! `secmms_osi::Association` and the data-phase operations, driving the sans-IO E2E engine
//! ([`E2eClient`] / [`E2eServer`]). Most users take it through
//! [`crate::secure::SecureAssociation`] (`Protection::Native`), which applies it all.
//!
//! Table 4 (§15.3) as implemented:
//!
//! | SecPDU | carried in | done by |
//! |---|---|---|
//! | HandshakeReq | AARQ user-information | [`NativeState`] as hook: `decorate_aarq` / `check_aarq` |
//! | HandshakeAcc, ApplicationReject, HandshakeSecReject | AARE user-information (`HandshakeRsp` CHOICE `[0]`/`[1]`/`[2]`) | `decorate_aare` / `check_aare`, `check_rejecting_aare`, [`NativeState::refuse_peer`] |
//! | HandshakeSecAbort, DtSecAbort, ApplAbort, OsiDiagnostics | ABRT user-information (`AssoAbort` CHOICE `[0]`–`[3]`) | `decorate_abrt` / `check_abrt`, the [`Fault`]s of the data phase |
//! | ReleaseReq / ReleaseRsp | RLRQ / RLRE user-information | `decorate_rlrq` … `check_rlre` |
//! | ClearTransfer / EncrTransfer | P-DATA on the e2eSecurityAS context | [`NativeState::protect`] / [`NativeState::unprotect`] |
//!
//! The user-information of every APDU is exactly one EXTERNAL whose indirect-reference is the
//! presentation context of e2eSecurityAS (codec in [`wire`]). The ACSE is kernel only: no
//! mechanism-name, authentication-value or ACSE-requirements (§15.1).
//!
//! Construction, and the data phase by hand (what `SecureAssociation` does):
//! ```no_run
//! # use std::sync::Arc;
//! # use secmms_profiles::native::*;
//! # use secmms_profiles::{ConnectionInfo, PeerTable};
//! # use secmms_osi::{Association, OsiConfig, OsiEvent, Role};
//! # fn e2e_context() -> secmms_e2e::Context { unimplemented!() }
//! let shared = NativeShared::new(
//!     e2e_context(),                        // credentials, validator, E2E policy
//!     NativeConfig::default(),              // OIDs (spec §9 placeholders) and §15.7 knobs
//!     PeerTable::require_end_to_end(),      // §5.1 bilateral table
//!     Arc::new(secmms_pki::event::MemorySink::new()),
//! );
//! // Server, one per accepted connection:
//! let mut osi = OsiConfig::server_default();
//! shared.prepare_osi_config(&mut osi, Role::Responder);
//! let state = shared.responder_state(ConnectionInfo::default());
//! let mut assoc = Association::with_hook(Role::Responder, osi, state);
//! // ... on OsiEvent::Data { context_id, pdu }:
//! # let (context_id, pdu) = (5, vec![]);
//! assoc.security_mut().set_now(secmms_e2e::TimeStamp::from_unix_secs(1_750_000_001));
//! match assoc.security_mut().unprotect(context_id, &pdu) {
//!     Ok(Some(mms)) => { /* hand the MMS PDU to the server */ }
//!     Ok(None) => {}
//!     Err(fault) => {
//!         // Queue the prescribed abort, then flush and close.
//!         if let Some(req) = fault.abort { let _ = assoc.abort_with(req); }
//!     }
//! }
//! ```
//!
//! Outcomes of the §15.7 checks (each raises its group-15 event, see [`events`]):
//! * in an AARQ: an AARE rejected-permanent without SecPDU (DECISION §15.7: diagnostic
//!   [`ENV_REJECT_DIAGNOSTIC`], or [`ENV_REJECT_CONTEXT_DIAGNOSTIC`] for the application context);
//! * in an AARE, RLRQ, RLRE or P-DATA: an ABRT carrying `AssoAbort.osiDiag`;
//! * a failed E2E check (clause 14, done by the engine): HandshakeSecReject in the AARE,
//!   HandshakeSecAbort or DtSecAbort in an ABRT, as the engine's [`E2eRejection::reply`] says.
//!
//! Ownership: the owner of the association reaches the state between association calls
//! (`Association::security_mut`) without a lock; the borrow checker orders "ask the engine,
//! then call the association (which may call the hook back)".

pub mod events;
pub mod wire;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use secmms_ber::{Limits, Oid};
use secmms_e2e::pdu::SecPdu;
use secmms_e2e::{
    Context, Diagnostic, E2eClient, E2eEngine as Engine, E2eError, E2eServer, HandshakeDiagnostic,
    Output, ProtectionMode, SecPduKind, State as E2eState, TimeStamp,
};
use secmms_osi::acse::{
    abort_source, associate_result, user_diagnostic, Aare, Aarq, Abrt, AeQualifier, ApTitle,
    External, Rlre, Rlrq, SourceDiagnostic,
};
use secmms_osi::association::FIRST_EXTRA_CONTEXT_ID;
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Rejection, Role, SecurityContext, Verdict,
};
use secmms_osi::{OsiConfig, OsiError};
use secmms_pki::cert::CertInfo;
use secmms_pki::crypto::{OsRandom, RandomSource};
use secmms_pki::event::{EventId, SecurityEvent, SecurityEventSink};
use secmms_pki::PeerIdentity;

pub use secmms_e2e::Rejection as E2eRejection;

use self::events::EnvEvent;
use self::wire::{EnvApdu, EnvValue, OsiDiagnostic};
use crate::aprofile::{identity_of, ConnectionInfo};
use crate::policy::{ApplicationSecurity, PeerPolicy, PeerTable};

/// Default abstract syntax `e2eSecurityAS` = 1.0.62351.4.1.1.1 (spec §9 DECISION: a
/// non-normative placeholder, configurable as [`NativeConfig::e2e_security_as`]).
pub const DEFAULT_E2E_SECURITY_AS: &[u64] = &[1, 0, 62351, 4, 1, 1, 1];
/// Default application context `e2eMmsAC` = 1.0.62351.4.2.1 (spec §9 DECISION: a non-normative
/// placeholder, configurable as [`NativeConfig::e2e_mms_ac`]).
pub const DEFAULT_E2E_MMS_AC: &[u64] = &[1, 0, 62351, 4, 2, 1];
/// DECISION (spec §15.7): an AARQ that fails an environment check is answered with an AARE of
/// this result and no SecPDU.
pub const ENV_REJECT_RESULT: i64 = associate_result::REJECTED_PERMANENT;
/// DECISION (spec §15.7): the acse-service-user diagnostic of that AARE (no-reason-given), …
pub const ENV_REJECT_DIAGNOSTIC: i64 = user_diagnostic::NO_REASON_GIVEN;
/// … except for a wrong application context (check 15.5): application-context-name-not-supported.
pub const ENV_REJECT_CONTEXT_DIAGNOSTIC: i64 =
    user_diagnostic::APPLICATION_CONTEXT_NAME_NOT_SUPPORTED;
/// Spec §15.4: an AARE carrying HandshakeSecReject is rejected-permanent …
pub const SEC_REJECT_RESULT: i64 = associate_result::REJECTED_PERMANENT;
/// … with acse-service-user no-reason-given (spec §15.4). The same diagnostic is set on an AARE
/// carrying ApplicationReject, whose result (permanent or transient) the application chooses.
pub const REJECT_DIAGNOSTIC: i64 = user_diagnostic::NO_REASON_GIVEN;
/// DECISION (spec §15.6): a ReleaseReq that fails verification is answered by an ABRT carrying
/// this SecPDU (the engine builds it), not by an RLRE.
pub const RELEASE_FAILURE_REPLY: SecPduKind = SecPduKind::DtSecAbort;
/// DECISION (Annex G.6.2, §14.3 step 6): the peer's certificate must carry the peer's AP-title
/// with its AE-qualifier appended; default of [`NativeConfig::require_address_binding`].
pub const REQUIRE_ADDRESS_BINDING: bool = true;
/// DECISION (§15.1, §15.7 checks 15.9/15.10): the responder requires the AARQ's called-AP-title
/// and called-AE-qualifier to name the identity of its own certificate; default of
/// [`NativeConfig::check_called_title`].
pub const CHECK_CALLED_TITLE: bool = true;

fn const_oid(arcs: &[u64]) -> Oid {
    // Only called with the valid constants of this module (checked by a unit test).
    Oid::new(arcs).unwrap_or_else(|_| unreachable!("constant OID"))
}

/// A source of per-association random sources ([`OsRandom`] unless replaced with
/// [`NativeShared::with_random`]).
pub type RandomFactory = Arc<dyn Fn() -> Box<dyn RandomSource> + Send + Sync>;

/// Configuration of the OSI mapping (the E2E policy itself lives in the engine's
/// [`secmms_e2e::E2eConfig`]).
#[derive(Clone, Debug)]
pub struct NativeConfig {
    /// Abstract syntax of the SecPDUs (spec §9; default [`DEFAULT_E2E_SECURITY_AS`]).
    pub e2e_security_as: Oid,
    /// Application context of native-mode MMS (spec §9; default [`DEFAULT_E2E_MMS_AC`]).
    pub e2e_mms_ac: Oid,
    /// Bind the peer's certificate to its AP-title + AE-qualifier (default
    /// [`REQUIRE_ADDRESS_BINDING`]).
    pub require_address_binding: bool,
    /// Responder: the called titles must name our certificate's identity (default
    /// [`CHECK_CALLED_TITLE`]).
    pub check_called_title: bool,
    /// Annex G.2: refuse a peer whose application certificate is a TLS certificate of the
    /// connection (default true).
    pub separate_certificates: bool,
    /// SHA-256 fingerprints of our own TLS certificates, refused as the peer's application
    /// certificate too when `separate_certificates` is on (the connection's come per
    /// connection in [`ConnectionInfo::tls_certificate_fingerprints`]).
    pub tls_certificate_fingerprints: Vec<[u8; 32]>,
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig {
            e2e_security_as: const_oid(DEFAULT_E2E_SECURITY_AS),
            e2e_mms_ac: const_oid(DEFAULT_E2E_MMS_AC),
            require_address_binding: REQUIRE_ADDRESS_BINDING,
            check_called_title: CHECK_CALLED_TITLE,
            separate_certificates: true,
            tls_certificate_fingerprints: Vec::new(),
        }
    }
}

/// What the last failure, rejection or abort of an association was (for the runtime, tests and
/// CLI messages). Successful steps do not overwrite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeDiagnostic {
    /// We refused: a §15.7 environment check failed (its event id and mnemonic). `osi_diag` is
    /// what the ABRT carried; `None` when the answer was an AARE without SecPDU.
    Environment {
        /// Event id.
        event: EventId,
        /// Event mnemonic.
        mnemonic: &'static str,
        /// The OsiDiagnostics sent, if an ABRT was sent.
        osi_diag: Option<OsiDiagnostic>,
    },
    /// We refused: a clause 14 check of the E2E engine failed.
    Security {
        /// Event id.
        event: EventId,
        /// Event mnemonic.
        mnemonic: &'static str,
        /// The check's diagnostic (withheld on the wire when the check is an alarm).
        cause: Option<Diagnostic>,
        /// The SecPDU sent to the peer (HandshakeSecReject, HandshakeSecAbort, DtSecAbort).
        sent: Option<SecPduKind>,
    },
    /// We refused: the §5.1 bilateral table does not allow the association.
    Policy(String),
    /// A local failure (configuration, signing, an invalid PrPDU from the application).
    Local(String),
    /// The peer's protected protocol rejected the association: a verified ApplicationReject.
    ApplicationRejected {
        /// applData (the MMS initiate-ErrorPDU).
        appl_data: Option<Vec<u8>>,
    },
    /// The peer's E2E security rejected the association: a verified HandshakeSecReject.
    SecurityRejected {
        /// Its diagnostic (absent when the peer raised an alarm).
        diagnostic: Option<HandshakeDiagnostic>,
    },
    /// The peer refused with an AARE that carries no SecPDU.
    PlainRejection {
        /// AARE result.
        result: i64,
        /// AARE result-source-diagnostic.
        diagnostic: SourceDiagnostic,
    },
    /// The peer aborted with a verified HandshakeSecAbort, DtSecAbort or ApplAbort.
    PeerAborted {
        /// Which one.
        kind: SecPduKind,
        /// Its diagnostic, if any.
        diagnostic: Option<Diagnostic>,
        /// applData of an ApplAbort.
        appl_data: Option<Vec<u8>>,
    },
    /// The peer aborted with `AssoAbort.osiDiag`.
    PeerOsiDiagnostic {
        /// The number received.
        code: i64,
        /// Its meaning, if known.
        diagnostic: Option<OsiDiagnostic>,
    },
    /// The peer aborted without usable E2E content (an ACSE provider abort, or an ABRT whose
    /// user-information failed the §15.7 checks).
    PeerAbortUnprotected {
        /// ABRT abort-source.
        source: i64,
    },
}

impl std::fmt::Display for NativeDiagnostic {
    /// One line for an operator: who refused, with which SecPDU, and the §14.2 diagnostic by
    /// its standard name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn diag(d: &Option<Diagnostic>) -> String {
            match d {
                Some(Diagnostic::Handshake(h)) => h.name().to_string(),
                Some(Diagnostic::Dt(t)) => t.name().to_string(),
                None => "no diagnostic (alarm)".to_string(),
            }
        }
        match self {
            NativeDiagnostic::Environment {
                mnemonic, osi_diag, ..
            } => write!(
                f,
                "we refused the OSI environment ({mnemonic}; osiDiag {osi_diag:?})"
            ),
            NativeDiagnostic::Security {
                mnemonic,
                cause,
                sent,
                ..
            } => {
                write!(f, "we refused ({mnemonic}): {}", diag(cause))?;
                match sent {
                    Some(k) => write!(f, ", sent {k:?}"),
                    None => Ok(()),
                }
            }
            NativeDiagnostic::Policy(p) => write!(f, "refused by our peer table: {p}"),
            NativeDiagnostic::Local(p) => write!(f, "local failure: {p}"),
            NativeDiagnostic::ApplicationRejected { .. } => {
                write!(f, "the peer's application refused (ApplicationReject)")
            }
            NativeDiagnostic::SecurityRejected { diagnostic } => write!(
                f,
                "the peer refused the E2E handshake (HandshakeSecReject): {}",
                diag(&diagnostic.map(Diagnostic::Handshake))
            ),
            NativeDiagnostic::PlainRejection { result, diagnostic } => write!(
                f,
                "the peer refused with a plain AARE (result {result}, {diagnostic:?})"
            ),
            NativeDiagnostic::PeerAborted {
                kind, diagnostic, ..
            } => write!(f, "the peer aborted with {kind:?}: {}", diag(diagnostic)),
            NativeDiagnostic::PeerOsiDiagnostic { code, diagnostic } => {
                write!(f, "the peer aborted with osiDiag {code} ({diagnostic:?})")
            }
            NativeDiagnostic::PeerAbortUnprotected { source } => {
                write!(
                    f,
                    "the peer aborted without E2E content (abort-source {source})"
                )
            }
        }
    }
}

/// Errors of the data phase ([`Fault::error`]). Each maps to what went on the wire.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NativeError {
    /// The E2E association is not (or no longer) in the data-transfer phase.
    #[error("no E2E association in the data-transfer phase")]
    NotEstablished,
    /// A clause 14 check failed; the ABRT carrying `sent` is queued and the event raised.
    #[error("E2E check failed ({event}); sent {sent:?}")]
    Security {
        /// The event raised.
        event: SecurityEvent,
        /// The check's diagnostic.
        cause: Option<Diagnostic>,
        /// The SecPDU sent in the ABRT.
        sent: Option<SecPduKind>,
    },
    /// A §15.7 environment check failed; the ABRT carrying `osiDiag` is queued and the event raised.
    #[error("OSI environment check failed ({event}); sent osiDiag {diagnostic}")]
    Environment {
        /// The event raised.
        event: SecurityEvent,
        /// The OsiDiagnostics sent.
        diagnostic: OsiDiagnostic,
    },
    /// A local error of the E2E engine (state, invalid PrPDU, cryptography).
    #[error("E2E engine: {0}")]
    Engine(E2eError),
    /// The association refused the call.
    #[error("OSI: {0}")]
    Osi(#[from] OsiError),
}

/// Everything the associations of one process share: the E2E context, the mapping's
/// configuration, the §5.1 table, the event sink. Cheap to clone. No clock: every association
/// gets its time from its owner ([`NativeState::set_now`]).
#[derive(Clone)]
pub struct NativeShared {
    ctx: Context,
    cfg: Arc<NativeConfig>,
    table: Arc<PeerTable>,
    sink: Arc<dyn SecurityEventSink>,
    random: RandomFactory,
    next_num: Arc<AtomicU16>,
    own_identity: Option<PeerIdentity>,
}

impl std::fmt::Debug for NativeShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeShared")
            .field("cfg", &self.cfg)
            .field("table", &self.table)
            .field("own_identity", &self.own_identity)
            .finish_non_exhaustive()
    }
}

impl NativeShared {
    /// The shared state. Randomness comes from [`OsRandom`] (see [`Self::with_random`]).
    pub fn new(
        ctx: Context,
        cfg: NativeConfig,
        table: PeerTable,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Self {
        let own_identity = CertInfo::parse(&ctx.credentials.cert_der)
            .ok()
            .and_then(|i| i.identity);
        NativeShared {
            ctx,
            cfg: Arc::new(cfg),
            table: Arc::new(table),
            sink,
            random: Arc::new(|| Box::new(OsRandom)),
            next_num: Arc::new(AtomicU16::new(1)),
            own_identity,
        }
    }

    /// Replaces the random sources given to new associations (deterministic tests).
    pub fn with_random(mut self, random: RandomFactory) -> Self {
        self.random = random;
        self
    }

    /// The mapping's configuration.
    pub fn config(&self) -> &NativeConfig {
        &self.cfg
    }

    /// The E2E context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Adds the e2eSecurityAS context to `osi.extra_abstract_syntaxes` (§15.1, pcid 5 by the
    /// §10.2 DECISION when it is the first extra); as initiator sets the application context to
    /// e2eMmsAC, as responder adds e2eMmsAC to the accepted contexts (the others stay, so an
    /// AARQ with another context reaches the hook and is refused with event 15.5).
    pub fn prepare_osi_config(&self, osi: &mut OsiConfig, role: Role) {
        let as_ = &self.cfg.e2e_security_as;
        if !osi.extra_abstract_syntaxes.contains(as_) {
            osi.extra_abstract_syntaxes.push(as_.clone());
        }
        let ac = &self.cfg.e2e_mms_ac;
        match role {
            Role::Initiator => osi.application_context_name = ac.clone(),
            Role::Responder => {
                if !osi.accepted_application_contexts.contains(ac) {
                    osi.accepted_application_contexts.push(ac.clone());
                }
            }
        }
    }

    /// The owned state of a server-side association on `conn`.
    pub fn responder_state(&self, conn: ConnectionInfo) -> NativeState {
        let mut server = E2eServer::new(self.ctx.clone(), (self.random)(), self.local_number());
        server.refuse_certificates(&self.refused_certificates(&conn));
        let engine = Engine::Server(server);
        self.state(Role::Responder, conn, engine, None, None)
    }

    /// The owned state of a client-side association on `conn` towards the peer described by
    /// `peer` (its §5.1 row). `peer_identity` is the identity the server's certificate must
    /// carry (Annex G.6.2); `None` takes it from the AARQ's called AP-title and AE-qualifier.
    pub fn initiator_state(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        peer_identity: Option<PeerIdentity>,
    ) -> NativeState {
        let mut client = E2eClient::new(self.ctx.clone(), (self.random)(), self.local_number());
        client.refuse_certificates(&self.refused_certificates(&conn));
        let engine = Engine::Client(client);
        self.state(Role::Initiator, conn, engine, Some(peer), peer_identity)
    }

    /// Annex G.2: the certificates a peer's application certificate may not be on `conn`.
    fn refused_certificates(&self, conn: &ConnectionInfo) -> Vec<[u8; 32]> {
        if !self.cfg.separate_certificates {
            return Vec::new();
        }
        let mut v = self.cfg.tls_certificate_fingerprints.clone();
        v.extend_from_slice(&conn.tls_certificate_fingerprints);
        v
    }

    /// [`NativeShared::initiator_state`] with the peer identity taken from `osi`'s called
    /// AP-title and AE-qualifier (`remote_ap_title`, `remote_ae_qualifier`), the usual case.
    pub fn initiator_state_for(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        osi: &OsiConfig,
    ) -> NativeState {
        let id = identity_of(osi.remote_ap_title.as_ref(), osi.remote_ae_qualifier);
        self.initiator_state(conn, peer, id)
    }

    /// The `c` / `s` number of the next AssoID (§13.3.1.1 DECISION: unique among live
    /// associations as long as fewer than 1 000 are live).
    fn local_number(&self) -> u16 {
        self.next_num.fetch_add(1, Ordering::Relaxed) % 1000
    }

    fn state(
        &self,
        role: Role,
        conn: ConnectionInfo,
        engine: Engine,
        policy: Option<PeerPolicy>,
        expected: Option<PeerIdentity>,
    ) -> NativeState {
        let label = conn.label(policy.as_ref().map(|p| p.name.as_str()));
        NativeState {
            inner: Inner {
                engine,
                phase: Phase::Idle,
                e2e_pcid: None,
                peer: None,
                policy,
                last: None,
                label,
                pending_reject: None,
            },
            hook: HookCtx {
                shared: self.clone(),
                role,
                conn,
                expected,
                called: (None, None),
                now: None,
            },
        }
    }

    fn limits(&self) -> Limits {
        self.ctx.config.limits
    }

    fn record(&self, e: &SecurityEvent) {
        self.sink.record(e);
    }
}

// ------------------------------------------------------------------ per-association state

/// Where the OSI mapping of one association is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing exchanged yet.
    Idle,
    /// Initiator: HandshakeReq sent in the AARQ.
    AwaitingAare,
    /// Responder: HandshakeReq verified, the application decides.
    AwaitingDecision,
    /// Responder: we rejected the AARQ ourselves; the AARE is on its way unchanged.
    Refused,
    /// Data transfer (and release).
    Established,
    /// Over.
    Closed,
}

struct Inner {
    engine: Engine,
    phase: Phase,
    e2e_pcid: Option<u32>,
    peer: Option<PeerIdentity>,
    policy: Option<PeerPolicy>,
    last: Option<NativeDiagnostic>,
    label: Option<String>,
    /// Responder: the user-information of a HandshakeSecReject decided after the HandshakeReq
    /// was verified ([`NativeState::refuse_peer`]); `decorate_aare` puts it in the AARE.
    pending_reject: Option<Vec<External>>,
}

impl Inner {
    /// The association label of events: the AssoID once known, else the peer's name/address.
    fn who(&self) -> Option<String> {
        match (self.engine.asso_id(), &self.label) {
            (Some(a), Some(l)) => Some(format!("{l} {a}")),
            (a, l) => a.or_else(|| l.clone()),
        }
    }

    /// Forwards the engine's queued events to the sink.
    fn drain(&mut self, shared: &NativeShared) {
        while let Some(e) = self.engine.poll_event() {
            shared.record(&e);
        }
    }

    /// Raises an environment event and records it as the last diagnostic.
    fn env_event(
        &mut self,
        shared: &NativeShared,
        ev: EnvEvent,
        msg: String,
        osi_diag: Option<OsiDiagnostic>,
    ) -> SecurityEvent {
        let e = ev.event(msg, self.who().as_deref());
        shared.record(&e);
        self.last = Some(NativeDiagnostic::Environment {
            event: ev.id,
            mnemonic: ev.mnemonic,
            osi_diag,
        });
        e
    }

    /// A local event (no catalogue entry).
    fn local_event(&mut self, shared: &NativeShared, ev: EnvEvent, msg: String) {
        let e = ev.event(msg.clone(), self.who().as_deref());
        shared.record(&e);
        if ev == events::E2E_POLICY_REFUSED {
            self.last = Some(NativeDiagnostic::Policy(msg));
        } else if ev == events::E2E_LOCAL_FAILURE {
            self.last = Some(NativeDiagnostic::Local(msg));
        }
    }

    /// Records a failed E2E check (the engine queued its event).
    fn security_failure(&mut self, shared: &NativeShared, r: &E2eRejection) {
        self.drain(shared);
        self.last = Some(NativeDiagnostic::Security {
            event: r.event.id,
            mnemonic: r.event.mnemonic,
            cause: r.cause,
            sent: r.reply.as_ref().map(|(k, _)| *k),
        });
    }

    /// The pcid to reference in an ABRT: the e2eSecurityAS context, or the id it would have.
    fn abort_pcid(&self, ctx: &SecurityContext<'_>, cfg: &NativeConfig) -> u32 {
        self.e2e_pcid
            .or_else(|| ctx.context_id(&cfg.e2e_security_as))
            .unwrap_or(FIRST_EXTRA_CONTEXT_ID)
    }

    /// The abort request carrying a SecPDU reply of the engine in an ABRT (or none).
    fn abort_with_reply(&self, reply: Option<(SecPduKind, Vec<u8>)>, pcid: u32) -> AbortRequest {
        let user_information = reply
            .and_then(|(k, b)| wire::encode(EnvApdu::Abrt, k, b).ok())
            .map(|v| wire::external(pcid, v))
            .unwrap_or_default();
        AbortRequest {
            diagnostic: None,
            user_information,
        }
    }
}

fn osi_diag_abort(pcid: u32, d: OsiDiagnostic) -> AbortRequest {
    AbortRequest {
        diagnostic: None,
        user_information: wire::external(pcid, wire::encode_osi_diag(d)),
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
        Some(AeQualifier::Form2(v)) if *v >= 0 => Some(*v),
        _ => None,
    }
}

/// The MMS PDU the association put in the user-information (EXTERNAL on the MMS context).
fn mms_of(ui: &[External]) -> Option<Vec<u8>> {
    ui.iter().find_map(|e| e.single_value()).map(<[u8]>::to_vec)
}

/// An identity that matches no certificate (binding required but the address is unknown).
fn no_identity() -> PeerIdentity {
    PeerIdentity::Jid(String::new())
}

/// The identity the peer's certificate must carry: the Annex G.6.2 binding of its titles (if
/// required) and the subject of its §5.1 row (if configured) must both match, so they must be
/// equal; `Err` when they contradict each other.
fn expected_identity(
    binding_required: bool,
    binding: Option<PeerIdentity>,
    configured: Option<&PeerIdentity>,
) -> Result<Option<PeerIdentity>, String> {
    let binding = if binding_required {
        Some(binding.unwrap_or_else(no_identity))
    } else {
        None
    };
    match (binding, configured) {
        (Some(b), Some(c)) if &b != c => Err(format!(
            "the address binding {b:?} contradicts the configured subject {c:?}"
        )),
        (b, c) => Ok(b.or_else(|| c.cloned())),
    }
}

/// The identity in the pkCert of a verified HandshakeAcc.
fn acc_identity(pdu: &[u8], limits: Limits) -> Option<PeerIdentity> {
    match SecPdu::decode(SecPduKind::HandshakeAcc, pdu, limits) {
        Ok(SecPdu::HandshakeAcc(h)) => CertInfo::parse(&h.token1.pk_cert).ok()?.identity,
        _ => None,
    }
}

fn kernel_only_violation(mech: bool, value: bool, requirements: bool) -> Option<&'static str> {
    if mech {
        Some("mechanism-name")
    } else if value {
        Some("authentication-value")
    } else if requirements {
        Some("ACSE-requirements")
    } else {
        None
    }
}

// ------------------------------------------------------------------ the hook

/// The clause 15 hook of one association (both roles). Build it with [`NativeShared::responder`]
/// or [`NativeShared::initiator`] and box it into `Association::with_security`.
/// The per-association context of the clause 15 mapping besides the engine state: the shared
/// configuration, the role, the connection, the titles and the time of the current call.
struct HookCtx {
    shared: NativeShared,
    role: Role,
    conn: ConnectionInfo,
    /// Initiator: the identity the server's certificate must carry, if given.
    expected: Option<PeerIdentity>,
    /// Initiator: the called AP-title and AE-qualifier sent in the AARQ.
    called: (Option<Oid>, Option<i64>),
    /// The time of the current call ([`NativeState::set_now`]).
    now: Option<TimeStamp>,
}

impl HookCtx {
    /// The time of the current call. An association that was never given one runs at the
    /// epoch, where every certificate and SecPDU time is invalid: it fails closed.
    fn now(&self) -> TimeStamp {
        self.now.unwrap_or(TimeStamp(0))
    }
}

/// The clause 15 state of one association, owned: the E2E engine and the OSI mapping's phase,
/// with the [`AssociationSecurity`] hook of the ACSE APDUs and the data-phase operations
/// ([`NativeState::protect`], [`NativeState::unprotect`], …) whose results the owner applies to
/// the association. Held by value in an `Association<NativeState>` (or a
/// `crate::secure::Protection`), it needs no lock: its owner reaches it between association
/// calls through `Association::security_mut`. Build it with [`NativeShared::responder_state`]
/// or [`NativeShared::initiator_state`].
pub struct NativeState {
    inner: Inner,
    hook: HookCtx,
}

impl std::fmt::Debug for NativeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeState")
            .field("role", &self.hook.role)
            .field("conn", &self.hook.conn)
            .field("phase", &self.inner.phase)
            .field("e2e_pcid", &self.inner.e2e_pcid)
            .finish_non_exhaustive()
    }
}

impl HookCtx {
    /// Responder: refuses the AARQ with an AARE without SecPDU (§15.7 DECISION).
    fn env_reject(
        &self,
        g: &mut Inner,
        ev: EnvEvent,
        msg: String,
        diagnostic: i64,
    ) -> AssociateVerdict {
        g.env_event(&self.shared, ev, msg, None);
        g.phase = Phase::Refused;
        AssociateVerdict::Reject(plain_rejection(diagnostic))
    }

    /// Responder: refuses the AARQ for a §5.1 policy reason.
    fn policy_reject(&self, g: &mut Inner, msg: String) -> AssociateVerdict {
        g.local_event(&self.shared, events::E2E_POLICY_REFUSED, msg);
        g.phase = Phase::Refused;
        AssociateVerdict::Reject(plain_rejection(user_diagnostic::NO_REASON_GIVEN))
    }

    /// Aborts with `osiDiag` after an environment check failed (§15.7 DECISION).
    fn env_abort(
        &self,
        g: &mut Inner,
        ctx: &SecurityContext<'_>,
        ev: EnvEvent,
        msg: String,
        d: OsiDiagnostic,
    ) -> AbortRequest {
        g.env_event(&self.shared, ev, msg, Some(d));
        g.phase = Phase::Closed;
        osi_diag_abort(g.abort_pcid(ctx, &self.shared.cfg), d)
    }

    /// Responder checks of the AARQ's titles (§15.1, §15.7 checks 15.7–15.10). Returns the
    /// calling AP-title and AE-qualifier.
    fn check_titles(&self, aarq: &Aarq) -> Result<(Oid, i64), (EnvEvent, String)> {
        let calling_ap = form2_ap(&aarq.calling_ap_title).ok_or((
            events::INV_CALLING_AP_TITLE_RQ,
            format!("calling-AP-title {:?}", aarq.calling_ap_title),
        ))?;
        let calling_ae = form2_ae(&aarq.calling_ae_qualifier).ok_or((
            events::INV_CALLING_AE_QUAL_RQ,
            format!("calling-AE-qualifier {:?}", aarq.calling_ae_qualifier),
        ))?;
        let bad_ap = || {
            (
                events::INV_CALLED_AP_TITLE_RQ,
                format!("called-AP-title {:?}", aarq.called_ap_title),
            )
        };
        let bad_ae = || {
            (
                events::INV_CALLED_AE_QUAL_RQ,
                format!("called-AE-qualifier {:?}", aarq.called_ae_qualifier),
            )
        };
        let called_ap = form2_ap(&aarq.called_ap_title).ok_or_else(bad_ap)?;
        let called_ae = form2_ae(&aarq.called_ae_qualifier).ok_or_else(bad_ae)?;
        if self.shared.cfg.check_called_title {
            if let Some(PeerIdentity::ApTitle(own)) = &self.shared.own_identity {
                if let Some((last, ap)) = own.arcs().split_last() {
                    if called_ap.arcs() != ap {
                        return Err(bad_ap());
                    }
                    if u64::try_from(called_ae).ok() != Some(*last) {
                        return Err(bad_ae());
                    }
                }
            }
        }
        Ok((calling_ap.clone(), calling_ae))
    }

    /// Initiator checks of the AARE's responding titles against the called ones (15.13/15.14).
    /// Returns the identity the AARE names, if it names one.
    fn check_responding_titles(
        &self,
        aare: &Aare,
    ) -> Result<Option<PeerIdentity>, (EnvEvent, String)> {
        let ap = match &aare.responding_ap_title {
            None => None,
            Some(ApTitle::Form2(o)) if self.called.0.as_ref().map_or(true, |c| c == o) => Some(o),
            Some(t) => {
                return Err((
                    events::INV_CALLED_AP_TITLE_RE,
                    format!("responding-AP-title {t:?}, called {:?}", self.called.0),
                ))
            }
        };
        let ae = match &aare.responding_ae_qualifier {
            None => None,
            Some(AeQualifier::Form2(q)) if self.called.1.map_or(true, |c| c == *q) => Some(*q),
            Some(q) => {
                return Err((
                    events::INV_CALLED_AE_QUAL_RE,
                    format!("responding-AE-qualifier {q:?}, called {:?}", self.called.1),
                ))
            }
        };
        Ok(identity_of(ap, ae))
    }
}

fn plain_rejection(diagnostic: i64) -> Rejection {
    Rejection {
        result: ENV_REJECT_RESULT,
        diagnostic: SourceDiagnostic::ServiceUser(diagnostic),
        user_information: Vec::new(),
    }
}

impl HookCtx {
    /// RLRQ (ReleaseReq) or RLRE (ReleaseRsp, which ends the association): the MMS Conclude PDU
    /// the association put in `ui` becomes the SecPDU's applData, and `ui` the one EXTERNAL on the
    /// e2eSecurityAS context (Table 4).
    fn decorate_release(
        &mut self,
        g: &mut Inner,
        apdu: EnvApdu,
        ui: &mut Vec<External>,
    ) -> Result<(), AbortRequest> {
        let shared = self.shared.clone();
        let (Phase::Established, Some(pcid)) = (g.phase, g.e2e_pcid) else {
            return Err(AbortRequest::default());
        };
        let appl = mms_of(ui);
        let (kind, what) = match apdu {
            EnvApdu::Rlre => (SecPduKind::ReleaseRsp, "ReleaseRsp"),
            _ => (SecPduKind::ReleaseReq, "ReleaseReq"),
        };
        let now = self.now();
        let value = match kind {
            SecPduKind::ReleaseRsp => g.engine.release_rsp(appl.as_deref(), now),
            _ => g.engine.release_req(appl.as_deref(), now),
        }
        .map_err(|e| e.to_string())
        .and_then(|b| wire::encode(apdu, kind, b).map_err(|e| e.to_string()));
        g.drain(&shared);
        match value {
            Ok(v) => {
                *ui = wire::external(pcid, v);
                if kind == SecPduKind::ReleaseRsp {
                    g.phase = Phase::Closed;
                    g.local_event(
                        &shared,
                        events::E2E_RELEASED,
                        "released (ReleaseRsp sent)".into(),
                    );
                }
                Ok(())
            }
            Err(e) => {
                g.local_event(&shared, events::E2E_LOCAL_FAILURE, format!("{what}: {e}"));
                Err(AbortRequest::default())
            }
        }
    }
}

impl AssociationSecurity for NativeState {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let cfg = &shared.cfg;
        let refuse = |g: &mut Inner, ev: EnvEvent, msg: String| -> Result<(), AbortRequest> {
            g.local_event(&shared, ev, msg);
            g.phase = Phase::Closed;
            Err(AbortRequest::default())
        };
        let Some(policy) = g.policy.clone() else {
            return refuse(
                g,
                events::E2E_POLICY_REFUSED,
                "no peer policy for the initiator".into(),
            );
        };
        if policy.application != ApplicationSecurity::EndToEndSecure {
            return refuse(
                g,
                events::E2E_POLICY_REFUSED,
                format!(
                    "peer row requires {:?}, not END-TO-END SECURE",
                    policy.application
                ),
            );
        }
        if !policy.transport.allows(h.conn.tls) {
            return refuse(
                g,
                events::E2E_POLICY_REFUSED,
                format!("transport does not meet {:?}", policy.transport),
            );
        }
        if aarq.application_context_name != cfg.e2e_mms_ac {
            return refuse(
                g,
                events::E2E_LOCAL_FAILURE,
                format!(
                    "application context {} is not e2eMmsAC (prepare_osi_config not applied)",
                    aarq.application_context_name
                ),
            );
        }
        let Some(pcid) = ctx.context_id(&cfg.e2e_security_as) else {
            return refuse(
                g,
                events::E2E_LOCAL_FAILURE,
                "e2eSecurityAS is not proposed (prepare_osi_config not applied)".into(),
            );
        };
        h.called = (
            form2_ap(&aarq.called_ap_title).cloned(),
            form2_ae(&aarq.called_ae_qualifier),
        );
        let binding = h
            .expected
            .clone()
            .or_else(|| identity_of(h.called.0.as_ref(), h.called.1));
        let expected = match expected_identity(
            cfg.require_address_binding,
            binding,
            policy.certificate_subject.as_ref(),
        ) {
            Ok(e) => e,
            Err(msg) => return refuse(g, events::E2E_POLICY_REFUSED, msg),
        };
        g.engine.set_expected_peer(expected);
        let appl = mms_of(&aarq.user_information);
        let now = h.now();
        let bytes = match &mut g.engine {
            Engine::Client(c) => c.handshake_req(appl.as_deref(), now),
            Engine::Server(_) => Err(E2eError::Config("initiator hook with a server engine")),
        };
        let value = bytes.map_err(|e| e.to_string()).and_then(|b| {
            wire::encode(EnvApdu::Aarq, SecPduKind::HandshakeReq, b).map_err(|e| e.to_string())
        });
        g.drain(&shared);
        let value = match value {
            Ok(v) => v,
            Err(e) => return refuse(g, events::E2E_LOCAL_FAILURE, format!("HandshakeReq: {e}")),
        };
        // Kernel only (§15.1): the security travels in user-information alone.
        aarq.user_information = wire::external(pcid, value);
        aarq.mechanism_name = None;
        aarq.calling_authentication_value = None;
        aarq.sender_acse_requirements = None;
        g.e2e_pcid = Some(pcid);
        g.phase = Phase::AwaitingAare;
        Ok(())
    }

    fn check_aarq(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let cfg = &shared.cfg;
        if g.phase != Phase::Idle {
            return h.env_reject(
                g,
                events::OSI_ENV_PROT_ERR,
                "second AARQ".into(),
                ENV_REJECT_DIAGNOSTIC,
            );
        }
        // 15.5: application context.
        if aarq.application_context_name != cfg.e2e_mms_ac {
            return h.env_reject(
                g,
                events::INV_APPL_CNTX_RQ,
                format!(
                    "application-context-name {} is not e2eMmsAC {}",
                    aarq.application_context_name, cfg.e2e_mms_ac
                ),
                ENV_REJECT_CONTEXT_DIAGNOSTIC,
            );
        }
        // 15.7–15.10: titles (needed for the Annex G.6 binding).
        let (calling_ap, calling_ae) = match h.check_titles(aarq) {
            Ok(t) => t,
            Err((ev, msg)) => return h.env_reject(g, ev, msg, ENV_REJECT_DIAGNOSTIC),
        };
        // 15.15: ACSE kernel only.
        if let Some(what) = kernel_only_violation(
            aarq.mechanism_name.is_some(),
            aarq.calling_authentication_value.is_some(),
            aarq.sender_acse_requirements.is_some(),
        ) {
            return h.env_reject(
                g,
                events::AUTH_MECH_NOT_USED_RQ,
                format!("AARQ carries {what} (not allowed in native mode)"),
                ENV_REJECT_DIAGNOSTIC,
            );
        }
        // 15.1 / 15.2: one EXTERNAL on the e2eSecurityAS context, holding a HandshakeReq.
        let pcid = ctx.context_id(&cfg.e2e_security_as);
        let decoded = wire::user_information_value(&aarq.user_information, pcid)
            .and_then(|v| wire::decode(EnvApdu::Aarq, v, shared.limits()));
        let pdu = match decoded {
            Ok(EnvValue::SecPdu { pdu, .. }) => pdu,
            Ok(EnvValue::OsiDiag(_)) => {
                return h.env_reject(
                    g,
                    events::OSI_ENV_PROT_ERR,
                    "osiDiag in an AARQ".into(),
                    ENV_REJECT_DIAGNOSTIC,
                )
            }
            Err(e) => return h.env_reject(g, e.event(), e.to_string(), ENV_REJECT_DIAGNOSTIC),
        };
        // §5.1: the bilateral-table row must ask for END-TO-END SECURE.
        let Some(row) = shared
            .table
            .find(h.conn.peer_address, Some(&calling_ap), Some(calling_ae))
            .cloned()
        else {
            return h.policy_reject(
                g,
                format!("no bilateral-table entry for {calling_ap}/{calling_ae}"),
            );
        };
        g.label = h.conn.label(Some(&row.name));
        if row.application != ApplicationSecurity::EndToEndSecure {
            return h.policy_reject(
                g,
                format!(
                    "peer row requires {:?}, not END-TO-END SECURE",
                    row.application
                ),
            );
        }
        if !row.transport.allows(h.conn.tls) {
            return h.policy_reject(g, format!("transport does not meet {:?}", row.transport));
        }
        let expected = match expected_identity(
            cfg.require_address_binding,
            identity_of(Some(&calling_ap), Some(calling_ae)),
            row.certificate_subject.as_ref(),
        ) {
            Ok(e) => e,
            Err(msg) => return h.policy_reject(g, msg),
        };
        g.policy = Some(row);
        g.e2e_pcid = pcid;
        g.engine.set_expected_peer(expected);
        let out = g.engine.receive(SecPduKind::HandshakeReq, &pdu, h.now());
        match out {
            Ok(Output::HandshakeRequested { appl_data, peer }) => {
                g.drain(&shared);
                g.peer = peer;
                g.phase = Phase::AwaitingDecision;
                AssociateVerdict::Accept {
                    user_data: appl_data,
                }
            }
            Err(E2eError::Rejected(r)) => {
                g.security_failure(&shared, &r);
                g.phase = Phase::Refused;
                let user_information = r
                    .reply
                    .and_then(|(k, b)| wire::encode(EnvApdu::Aare, k, b).ok())
                    .zip(pcid)
                    .map(|(v, p)| wire::external(p, v))
                    .unwrap_or_default();
                AssociateVerdict::Reject(Rejection {
                    result: SEC_REJECT_RESULT,
                    diagnostic: SourceDiagnostic::ServiceUser(REJECT_DIAGNOSTIC),
                    user_information,
                })
            }
            other => {
                g.drain(&shared);
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    format!("HandshakeReq: {other:?}"),
                );
                g.phase = Phase::Refused;
                AssociateVerdict::Reject(plain_rejection(ENV_REJECT_DIAGNOSTIC))
            }
        }
    }

    fn unsupported_application_context(&mut self, _ctx: &SecurityContext<'_>, aarq: &Aarq) {
        let NativeState { inner: g, hook: h } = self;
        g.env_event(
            &h.shared,
            events::INV_APPL_CNTX_RQ,
            format!(
                "application-context-name {} not accepted by the association",
                aarq.application_context_name
            ),
            None,
        );
        g.phase = Phase::Refused;
    }

    fn decorate_aare(
        &mut self,
        _ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        if let Some(ui) = g.pending_reject.take() {
            // A refusal decided after the HandshakeReq verified (refuse_peer).
            g.phase = Phase::Closed;
            if aare.result == associate_result::ACCEPTED {
                return Err(AbortRequest::default());
            }
            aare.mechanism_name = None;
            aare.responding_authentication_value = None;
            aare.responder_acse_requirements = None;
            aare.result_source_diagnostic = SourceDiagnostic::ServiceUser(REJECT_DIAGNOSTIC);
            aare.user_information = ui;
            return Ok(());
        }
        if g.phase != Phase::AwaitingDecision {
            // Our own rejection (environment, policy or HandshakeSecReject) goes out unchanged.
            let accepting = aare.result == associate_result::ACCEPTED;
            g.phase = Phase::Closed;
            return if accepting {
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    "accept without a verified HandshakeReq".into(),
                );
                Err(AbortRequest::default())
            } else {
                Ok(())
            };
        }
        let Some(pcid) = g.e2e_pcid else {
            g.phase = Phase::Closed;
            return Err(AbortRequest::default());
        };
        let appl = mms_of(&aare.user_information);
        aare.mechanism_name = None;
        aare.responding_authentication_value = None;
        aare.responder_acse_requirements = None;
        let now = h.now();
        if aare.result == associate_result::ACCEPTED {
            let acc = match &mut g.engine {
                Engine::Server(s) => s.accept(appl.as_deref(), now),
                Engine::Client(_) => Err(E2eError::Config("responder hook with a client engine")),
            };
            let value = acc.map_err(|e| e.to_string()).and_then(|b| {
                wire::encode(EnvApdu::Aare, SecPduKind::HandshakeAcc, b).map_err(|e| e.to_string())
            });
            g.drain(&shared);
            match value {
                Ok(v) => {
                    aare.user_information = wire::external(pcid, v);
                    g.phase = Phase::Established;
                    let msg = format!(
                        "established with {:?}, protection {:?}",
                        g.peer,
                        g.engine.protection()
                    );
                    g.local_event(&shared, events::E2E_ESTABLISHED, msg);
                    Ok(())
                }
                Err(e) => {
                    // The engine still waits for a decision: decorate_abrt sends an ApplAbort.
                    g.local_event(
                        &shared,
                        events::E2E_LOCAL_FAILURE,
                        format!("HandshakeAcc: {e}"),
                    );
                    Err(AbortRequest::default())
                }
            }
        } else {
            // The application rejected (MMS initiate-ErrorPDU): ApplicationReject (§13.1.5).
            aare.result_source_diagnostic = SourceDiagnostic::ServiceUser(REJECT_DIAGNOSTIC);
            aare.user_information = Vec::new();
            g.phase = Phase::Closed;
            let Some(appl) = appl else {
                // DECISION: ApplicationReject.applData is mandatory (§13.5), so a rejection
                // without an MMS PDU goes out as a plain rejecting AARE.
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    "application rejection without an MMS PDU: AARE without SecPDU".into(),
                );
                return Ok(());
            };
            let rej = match &mut g.engine {
                Engine::Server(s) => s.appl_reject(&appl, now),
                Engine::Client(_) => Err(E2eError::Config("responder hook with a client engine")),
            };
            let value = rej.map_err(|e| e.to_string()).and_then(|b| {
                wire::encode(EnvApdu::Aare, SecPduKind::ApplicationReject, b)
                    .map_err(|e| e.to_string())
            });
            g.drain(&shared);
            match value {
                Ok(v) => aare.user_information = wire::external(pcid, v),
                Err(e) => g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    format!("ApplicationReject: {e}"),
                ),
            }
            Ok(())
        }
    }

    fn check_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let cfg = &shared.cfg;
        if g.phase != Phase::AwaitingAare {
            let r = h.env_abort(
                g,
                ctx,
                events::OSI_ENV_PROT_ERR,
                "unexpected AARE".into(),
                OsiDiagnostic::OsiEnvProtocolError,
            );
            return Verdict::Abort(r);
        }
        // 15.6: application context.
        if aare.application_context_name != cfg.e2e_mms_ac {
            let r = h.env_abort(
                g,
                ctx,
                events::INV_APPL_CNTX_RE,
                format!(
                    "AARE application-context-name {} is not e2eMmsAC",
                    aare.application_context_name
                ),
                OsiDiagnostic::InvalidApplicationContext,
            );
            return Verdict::Abort(r);
        }
        // 15.16: kernel only.
        if let Some(what) = kernel_only_violation(
            aare.mechanism_name.is_some(),
            aare.responding_authentication_value.is_some(),
            aare.responder_acse_requirements.is_some(),
        ) {
            let r = h.env_abort(
                g,
                ctx,
                events::AUTH_MECH_NOT_USED_ABT,
                format!("AARE carries {what} (not allowed in native mode)"),
                OsiDiagnostic::AuthenticationMechanismNotAllowed,
            );
            return Verdict::Abort(r);
        }
        // 15.13 / 15.14: responding titles, when present, are the called ones.
        let responding = match h.check_responding_titles(aare) {
            Ok(id) => id,
            Err((ev, msg)) => {
                let d = if ev == events::INV_CALLED_AP_TITLE_RE {
                    OsiDiagnostic::InvalidCalledApTitle
                } else {
                    OsiDiagnostic::InvalidCalledAeQualifier
                };
                return Verdict::Abort(h.env_abort(g, ctx, ev, msg, d));
            }
        };
        // 15.1 / 15.2: one EXTERNAL on the (still accepted) e2eSecurityAS context, [0] HandshakeAcc.
        let pcid = g
            .e2e_pcid
            .filter(|p| ctx.context_id(&cfg.e2e_security_as) == Some(*p));
        let decoded = wire::user_information_value(&aare.user_information, pcid)
            .and_then(|v| wire::decode(EnvApdu::Aare, v, shared.limits()));
        let pdu = match decoded {
            Ok(EnvValue::SecPdu {
                kind: SecPduKind::HandshakeAcc,
                pdu,
            }) => pdu,
            Ok(other) => {
                let r = h.env_abort(
                    g,
                    ctx,
                    events::OSI_ENV_PROT_ERR,
                    format!("accepting AARE carries {other:?}, not assoAccept"),
                    OsiDiagnostic::OsiEnvProtocolError,
                );
                return Verdict::Abort(r);
            }
            Err(e) => {
                let r = h.env_abort(g, ctx, e.event(), e.to_string(), e.osi_diagnostic());
                return Verdict::Abort(r);
            }
        };
        if h.expected.is_none() && h.called.0.is_none() && cfg.require_address_binding {
            // Called titles unknown: bind to the responding ones the AARE names.
            g.engine
                .set_expected_peer(Some(responding.unwrap_or_else(no_identity)));
        }
        let out = g.engine.receive(SecPduKind::HandshakeAcc, &pdu, h.now());
        let abort_pcid = g.abort_pcid(ctx, cfg);
        match out {
            Ok(Output::Established { appl_data }) => {
                g.drain(&shared);
                g.peer = acc_identity(&pdu, shared.limits());
                g.phase = Phase::Established;
                let msg = format!(
                    "established with {:?}, protection {:?}",
                    g.peer,
                    g.engine.protection()
                );
                g.local_event(&shared, events::E2E_ESTABLISHED, msg);
                Verdict::Accept {
                    user_data: appl_data,
                }
            }
            Err(E2eError::Rejected(r)) => {
                g.security_failure(&shared, &r);
                g.phase = Phase::Closed;
                Verdict::Abort(g.abort_with_reply(r.reply, abort_pcid))
            }
            other => {
                // A local problem: the engine still awaits the HandshakeAcc, so decorate_abrt
                // sends an ApplAbort.
                g.drain(&shared);
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    format!("HandshakeAcc: {other:?}"),
                );
                Verdict::Abort(AbortRequest::default())
            }
        }
    }

    fn check_rejecting_aare(&mut self, _ctx: &SecurityContext<'_>, aare: &Aare) -> Option<Vec<u8>> {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        if g.phase != Phase::AwaitingAare {
            return None;
        }
        g.phase = Phase::Closed;
        if aare.user_information.is_empty() {
            let msg = format!(
                "association rejected without SecPDU: result {}, {:?}",
                aare.result, aare.result_source_diagnostic
            );
            g.local_event(&shared, events::E2E_PLAIN_REJECT_RCVD, msg);
            g.last = Some(NativeDiagnostic::PlainRejection {
                result: aare.result,
                diagnostic: aare.result_source_diagnostic,
            });
            return None;
        }
        let decoded = wire::user_information_value(&aare.user_information, g.e2e_pcid)
            .and_then(|v| wire::decode(EnvApdu::Aare, v, shared.limits()));
        let (kind, pdu) = match decoded {
            Ok(EnvValue::SecPdu { kind, pdu }) if kind != SecPduKind::HandshakeAcc => (kind, pdu),
            Ok(other) => {
                g.env_event(
                    &shared,
                    events::OSI_ENV_PROT_ERR,
                    format!("rejecting AARE carries {other:?}"),
                    None,
                );
                return None;
            }
            Err(e) => {
                g.env_event(&shared, e.event(), e.to_string(), None);
                return None;
            }
        };
        let out = g.engine.receive(kind, &pdu, h.now());
        g.drain(&shared);
        match out {
            Ok(Output::ApplicationRejected { appl_data }) => {
                g.last = Some(NativeDiagnostic::ApplicationRejected {
                    appl_data: appl_data.clone(),
                });
                appl_data
            }
            Ok(Output::SecurityRejected { diagnostic }) => {
                g.last = Some(NativeDiagnostic::SecurityRejected { diagnostic });
                None
            }
            Err(E2eError::Rejected(r)) => {
                g.security_failure(&shared, &r);
                None
            }
            other => {
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    format!("rejecting AARE: {other:?}"),
                );
                None
            }
        }
    }

    fn decorate_rlrq(
        &mut self,
        _ctx: &SecurityContext<'_>,
        rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        self.hook
            .decorate_release(&mut self.inner, EnvApdu::Rlrq, &mut rlrq.user_information)
    }

    fn check_rlrq(&mut self, ctx: &SecurityContext<'_>, rlrq: &Rlrq) -> Verdict {
        self.hook
            .check_release(&mut self.inner, ctx, EnvApdu::Rlrq, &rlrq.user_information)
    }

    fn decorate_rlre(
        &mut self,
        _ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        self.hook
            .decorate_release(&mut self.inner, EnvApdu::Rlre, &mut rlre.user_information)
    }

    fn check_rlre(&mut self, ctx: &SecurityContext<'_>, rlre: &Rlre) -> Verdict {
        self.hook
            .check_release(&mut self.inner, ctx, EnvApdu::Rlre, &rlre.user_information)
    }

    fn decorate_abrt(&mut self, _ctx: &SecurityContext<'_>, abrt: &mut Abrt) {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let phase = std::mem::replace(&mut g.phase, Phase::Closed);
        if !abrt.user_information.is_empty()
            || matches!(phase, Phase::Idle | Phase::Refused | Phase::Closed)
            || g.engine.state() == E2eState::Closed
        {
            return;
        }
        // An abort by the application (or after a local failure): ApplAbort (§13.1.5, Table 4).
        let Some(pcid) = g.e2e_pcid else {
            return;
        };
        let value = g
            .engine
            .appl_abort(None, h.now())
            .map_err(|e| e.to_string())
            .and_then(|b| {
                wire::encode(EnvApdu::Abrt, SecPduKind::ApplAbort, b).map_err(|e| e.to_string())
            });
        g.drain(&shared);
        match value {
            Ok(v) => abrt.user_information = wire::external(pcid, v),
            Err(e) => g.local_event(
                &shared,
                events::E2E_LOCAL_FAILURE,
                format!("ApplAbort: {e}"),
            ),
        }
    }

    fn protocol_error(&mut self, _ctx: &SecurityContext<'_>, error: &OsiError) {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let phase = std::mem::replace(&mut g.phase, Phase::Closed);
        if matches!(phase, Phase::Refused | Phase::Closed) {
            return;
        }
        // §15.7: an ACSE protocol error of an E2E association, here found by our own stack
        // (DECISION: every upper-layer protocol error after the connection began counts; the
        // association ends with the provider abort the stack sends).
        g.env_event(
            &shared,
            events::ACSE_PROT_ERR,
            format!("protocol error detected locally: {error}"),
            None,
        );
    }

    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &Abrt) {
        let NativeState { inner: g, hook: h } = self;
        let shared = h.shared.clone();
        let phase = std::mem::replace(&mut g.phase, Phase::Closed);
        if matches!(phase, Phase::Idle | Phase::Refused | Phase::Closed) {
            return;
        }
        if abrt.source == abort_source::SERVICE_PROVIDER {
            g.env_event(
                &shared,
                events::ACSE_PROT_ERR,
                format!("ACSE provider abort, diagnostic {:?}", abrt.diagnostic),
                None,
            );
            g.last = Some(NativeDiagnostic::PeerAbortUnprotected {
                source: abrt.source,
            });
            return;
        }
        let pcid = g
            .e2e_pcid
            .or_else(|| ctx.context_id(&shared.cfg.e2e_security_as));
        let decoded = wire::user_information_value(&abrt.user_information, pcid)
            .and_then(|v| wire::decode(EnvApdu::Abrt, v, shared.limits()));
        match decoded {
            Ok(EnvValue::OsiDiag(code)) => {
                let diagnostic = OsiDiagnostic::from_code(code);
                let name = diagnostic.map_or("unknown", OsiDiagnostic::name);
                g.local_event(
                    &shared,
                    events::E2E_OSI_DIAG_RCVD,
                    format!("peer aborted with osiDiag {name}({code})"),
                );
                g.last = Some(NativeDiagnostic::PeerOsiDiagnostic { code, diagnostic });
            }
            Ok(EnvValue::SecPdu { kind, pdu }) => {
                let out = g.engine.receive(kind, &pdu, h.now());
                g.drain(&shared);
                match out {
                    Ok(Output::Aborted {
                        kind,
                        diagnostic,
                        appl_data,
                    }) => {
                        g.last = Some(NativeDiagnostic::PeerAborted {
                            kind,
                            diagnostic,
                            appl_data,
                        })
                    }
                    Err(E2eError::Rejected(r)) => g.security_failure(&shared, &r),
                    other => g.local_event(
                        &shared,
                        events::E2E_LOCAL_FAILURE,
                        format!("ABRT: {other:?}"),
                    ),
                }
            }
            Err(e) => {
                g.env_event(&shared, e.event(), e.to_string(), None);
                g.last = Some(NativeDiagnostic::PeerAbortUnprotected {
                    source: abrt.source,
                });
            }
        }
    }
}

impl HookCtx {
    /// RLRQ / RLRE checks (§15.6): the SecPDU must verify; a ReleaseReq that does not is
    /// answered by an ABRT with DtSecAbort ([`RELEASE_FAILURE_REPLY`]).
    fn check_release(
        &mut self,
        g: &mut Inner,
        ctx: &SecurityContext<'_>,
        apdu: EnvApdu,
        ui: &[External],
    ) -> Verdict {
        let shared = self.shared.clone();
        if g.phase != Phase::Established {
            let r = self.env_abort(
                g,
                ctx,
                events::OSI_ENV_PROT_ERR,
                format!("{apdu:?} outside the data-transfer phase"),
                OsiDiagnostic::OsiEnvProtocolError,
            );
            return Verdict::Abort(r);
        }
        let decoded = wire::user_information_value(ui, g.e2e_pcid)
            .and_then(|v| wire::decode(apdu, v, shared.limits()));
        let (kind, pdu) = match decoded {
            Ok(EnvValue::SecPdu { kind, pdu }) => (kind, pdu),
            Ok(EnvValue::OsiDiag(_)) => {
                let r = self.env_abort(
                    g,
                    ctx,
                    events::OSI_ENV_PROT_ERR,
                    format!("osiDiag in an {apdu:?}"),
                    OsiDiagnostic::OsiEnvProtocolError,
                );
                return Verdict::Abort(r);
            }
            Err(e) => {
                let r = self.env_abort(g, ctx, e.event(), e.to_string(), e.osi_diagnostic());
                return Verdict::Abort(r);
            }
        };
        let out = g.engine.receive(kind, &pdu, self.now());
        let pcid = g.abort_pcid(ctx, &shared.cfg);
        match out {
            Ok(Output::ReleaseRequested { appl_data }) => {
                g.drain(&shared);
                Verdict::Accept {
                    user_data: appl_data,
                }
            }
            Ok(Output::Released { appl_data }) => {
                g.drain(&shared);
                g.phase = Phase::Closed;
                g.local_event(
                    &shared,
                    events::E2E_RELEASED,
                    "released (ReleaseRsp verified)".into(),
                );
                Verdict::Accept {
                    user_data: appl_data,
                }
            }
            Err(E2eError::Rejected(r)) => {
                g.security_failure(&shared, &r);
                g.phase = Phase::Closed;
                // §15.6 DECISION: a failed ReleaseReq is answered by DtSecAbort only.
                let reply = r
                    .reply
                    .filter(|(k, _)| apdu != EnvApdu::Rlrq || *k == RELEASE_FAILURE_REPLY);
                Verdict::Abort(g.abort_with_reply(reply, pcid))
            }
            other => {
                g.drain(&shared);
                g.local_event(
                    &shared,
                    events::E2E_LOCAL_FAILURE,
                    format!("{apdu:?}: {other:?}"),
                );
                Verdict::Abort(AbortRequest::default())
            }
        }
    }
}

// ------------------------------------------------------------------ the data phase

/// A data-phase failure of [`NativeState`]: the error to report and, when the standard
/// prescribes one, the abort its owner queues on the association (`Association::abort_with`).
/// The event is already raised.
#[derive(Debug)]
pub struct Fault {
    /// The ABRT to send (DtSecAbort, or `osiDiag`), if any.
    pub abort: Option<AbortRequest>,
    /// What went wrong.
    pub error: NativeError,
}

impl From<NativeError> for Box<Fault> {
    fn from(error: NativeError) -> Self {
        Box::new(Fault { abort: None, error })
    }
}

impl NativeState {
    /// Sets the time of the calls that follow (the hook's and the data phase's): the owner
    /// stamps it before every call that may reach the engine (`SecureAssociation` does).
    pub fn set_now(&mut self, now: TimeStamp) {
        self.hook.now = Some(now);
    }

    /// Protects one MMS PDU (ClearTransfer or EncrTransfer, as agreed): the presentation context
    /// of e2eSecurityAS and the value to send on it (`Association::send_data_on`).
    pub fn protect(&mut self, mms_pdu: &[u8]) -> Result<(u32, Vec<u8>), Box<Fault>> {
        let (Phase::Established, Some(pcid)) = (self.inner.phase, self.inner.e2e_pcid) else {
            return Err(NativeError::NotEstablished.into());
        };
        let out = self.inner.engine.protect(mms_pdu, self.hook.now());
        match out {
            Ok((_, bytes)) => {
                self.inner.drain(&self.hook.shared);
                Ok((pcid, bytes))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Checks a received P-DATA value (`OsiEvent::Data`): `Ok(Some(mms))` for a verified (and
    /// decrypted) transfer. Every transfer of this engine carries a PrPDU, so `Ok(None)` is not
    /// produced today; it stays for PDUs without application data. Data on another context
    /// than e2eSecurityAS fails with the `osiDiag` invalid-pci abort (§15.6).
    pub fn unprotect(
        &mut self,
        context_id: u32,
        pdu: &[u8],
    ) -> Result<Option<Vec<u8>>, Box<Fault>> {
        let NativeState { inner: g, hook: h } = self;
        let shared = &h.shared;
        let (Phase::Established, Some(pcid)) = (g.phase, g.e2e_pcid) else {
            return Err(NativeError::NotEstablished.into());
        };
        if context_id != pcid {
            // §15.6: after establishment every PrPDU travels inside a transfer SecPDU.
            let d = OsiDiagnostic::InvalidPci;
            let event = g.env_event(
                shared,
                events::OSI_INV_PCI,
                format!("data on presentation context {context_id}, e2eSecurityAS is {pcid}"),
                Some(d),
            );
            g.phase = Phase::Closed;
            return Err(Box::new(Fault {
                abort: Some(osi_diag_abort(pcid, d)),
                error: NativeError::Environment {
                    event,
                    diagnostic: d,
                },
            }));
        }
        let encrypted = g.engine.protection().is_some_and(|m| m.encrypted());
        let kind = wire::transfer_kind(pdu, shared.limits()).unwrap_or(if encrypted {
            SecPduKind::EncrTransfer
        } else {
            SecPduKind::ClearTransfer
        });
        let out = g.engine.receive(kind, pdu, h.now());
        match out {
            Ok(Output::Data(d)) => {
                g.drain(shared);
                Ok(Some(d))
            }
            Ok(_) => {
                g.drain(shared);
                Ok(None)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Runs the engine's timers (rekey timeout, old-key grace) as of the current time; a rekey
    /// timeout fails with the DtSecAbort to send. Early calls do nothing.
    pub fn handle_timeout(&mut self) -> Result<(), Box<Fault>> {
        if self.inner.phase != Phase::Established {
            return Ok(());
        }
        match self.inner.engine.handle_timeout(self.hook.now()) {
            Ok(()) => {
                self.inner.drain(&self.hook.shared);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Responder, after the HandshakeReq was verified and before the association is answered:
    /// refuses the peer for a reason found outside clause 14 (OCSP). Prepares the
    /// HandshakeSecReject carrying `diag` for the rejecting AARE, raises `event` with `detail`
    /// and returns the error to report once the owner has called `Association::reject` with
    /// [`SEC_REJECT_RESULT`] / [`REJECT_DIAGNOSTIC`] (the hook then puts the SecPDU in the
    /// AARE). Outside that moment it returns `Err(NativeError::NotEstablished)`.
    pub fn refuse_peer(
        &mut self,
        diag: HandshakeDiagnostic,
        event: secmms_e2e::events::EventDef,
        detail: String,
    ) -> Result<NativeError, NativeError> {
        let NativeState { inner: g, hook: h } = self;
        if g.phase != Phase::AwaitingDecision {
            return Err(NativeError::NotEstablished);
        }
        let now = h.now();
        let bytes = match &mut g.engine {
            Engine::Server(s) => s.security_reject(diag, now),
            Engine::Client(_) => Err(E2eError::Config("refuse_peer on a client association")),
        };
        g.drain(&h.shared);
        let bytes = bytes.map_err(NativeError::Engine)?;
        let e = SecurityEvent {
            id: event.id(),
            mnemonic: event.mnemonic,
            severity: event.severity,
            message: detail,
            association: g.who(),
        };
        h.shared.record(&e);
        g.last = Some(NativeDiagnostic::Security {
            event: e.id,
            mnemonic: event.mnemonic,
            cause: Some(Diagnostic::Handshake(diag)),
            sent: Some(SecPduKind::HandshakeSecReject),
        });
        let user_information = wire::encode(EnvApdu::Aare, SecPduKind::HandshakeSecReject, bytes)
            .ok()
            .zip(g.e2e_pcid)
            .map(|(v, p)| wire::external(p, v))
            .unwrap_or_default();
        g.pending_reject = Some(user_information);
        Ok(NativeError::Security {
            event: e,
            cause: Some(Diagnostic::Handshake(diag)),
            sent: Some(SecPduKind::HandshakeSecReject),
        })
    }

    /// Validates the peer's certificate again (after the CRLs were reloaded). A peer now
    /// revoked fails with the DtSecAbort to send and the `E2E_PEER_CERT_REVOKED` incident
    /// raised. Other validation results leave the association alone: only revocation is
    /// re-evaluated.
    pub fn recheck_peer(&mut self) -> Result<(), Box<Fault>> {
        if self.inner.phase != Phase::Established {
            return Ok(());
        }
        let Some(cert) = self.inner.engine.peer_certificate() else {
            return Ok(());
        };
        let now = self.hook.now();
        match self
            .hook
            .shared
            .ctx
            .validator
            .validate(&cert, &[], now.unix_secs())
        {
            Err(secmms_pki::CertError::Revoked) => {
                let e = self.inner.engine.abort_revoked_peer(
                    "the peer's application certificate is revoked by a reloaded CRL",
                    now,
                );
                Err(self.fail(e))
            }
            _ => Ok(()),
        }
    }

    /// When [`Self::handle_timeout`] should next run, if a timer is running.
    pub fn next_timeout(&self) -> Option<TimeStamp> {
        self.inner.engine.next_timeout()
    }

    /// The peer's application certificate (DER) once its HandshakeReq or HandshakeAcc verified.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.inner.engine.peer_certificate()
    }

    /// The protection agreed in the handshake.
    pub fn protection(&self) -> Option<ProtectionMode> {
        self.inner.engine.protection()
    }

    /// The authenticated peer (the identity in its verified certificate).
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.inner.peer.as_ref()
    }

    /// What the last failure, rejection or abort was.
    pub fn last_diagnostic(&self) -> Option<&NativeDiagnostic> {
        self.inner.last.as_ref()
    }

    /// True in the data-transfer phase.
    pub fn is_established(&self) -> bool {
        self.inner.phase == Phase::Established
    }

    /// The presentation context of e2eSecurityAS, once known.
    pub fn e2e_context_id(&self) -> Option<u32> {
        self.inner.e2e_pcid
    }

    /// The E2E engine's state.
    pub fn engine_state(&self) -> E2eState {
        self.inner.engine.state()
    }

    /// The AssoID (§13.3.1.1), once known.
    pub fn asso_id(&self) -> Option<String> {
        self.inner.engine.asso_id()
    }

    /// The label of this association in events: the AssoID once known, else the peer's name or
    /// address.
    pub fn label(&self) -> Option<String> {
        self.inner.who()
    }

    /// Turns an engine error into the fault: a failed check closes the association with the
    /// engine's reply in an ABRT.
    fn fail(&mut self, e: E2eError) -> Box<Fault> {
        let g = &mut self.inner;
        let shared = &self.hook.shared;
        let E2eError::Rejected(r) = e else {
            g.drain(shared);
            return NativeError::Engine(e).into();
        };
        g.security_failure(shared, &r);
        g.phase = Phase::Closed;
        let pcid = g.e2e_pcid.unwrap_or(FIRST_EXTRA_CONTEXT_ID);
        let sent = r.reply.as_ref().map(|(k, _)| *k);
        let req = g.abort_with_reply(r.reply, pcid);
        Box::new(Fault {
            abort: Some(req),
            error: NativeError::Security {
                event: r.event,
                cause: r.cause,
                sent,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        let c = NativeConfig::default();
        assert_eq!(c.e2e_security_as.to_string(), "1.0.62351.4.1.1.1");
        assert_eq!(c.e2e_mms_ac.to_string(), "1.0.62351.4.2.1");
        assert!(c.require_address_binding && c.check_called_title);
    }

    #[test]
    fn expected_identity_combines_binding_and_subject() {
        let a = PeerIdentity::ApTitle(Oid::new(&[1, 2, 3]).unwrap());
        let b = PeerIdentity::ApTitle(Oid::new(&[1, 2, 4]).unwrap());
        assert_eq!(expected_identity(false, Some(a.clone()), None), Ok(None));
        assert_eq!(
            expected_identity(false, Some(a.clone()), Some(&b)),
            Ok(Some(b.clone()))
        );
        assert_eq!(
            expected_identity(true, Some(a.clone()), None),
            Ok(Some(a.clone()))
        );
        assert_eq!(
            expected_identity(true, Some(a.clone()), Some(&a)),
            Ok(Some(a.clone()))
        );
        assert!(expected_identity(true, Some(a.clone()), Some(&b)).is_err());
        // Binding required, address unknown: nothing matches.
        assert_eq!(expected_identity(true, None, None), Ok(Some(no_identity())));
    }

    #[test]
    fn kernel_only() {
        assert_eq!(kernel_only_violation(false, false, false), None);
        assert_eq!(
            kernel_only_violation(true, true, true),
            Some("mechanism-name")
        );
        assert_eq!(
            kernel_only_violation(false, false, true),
            Some("ACSE-requirements")
        );
    }
}
