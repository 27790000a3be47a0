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

mod data;
mod hook;
mod shared;
mod state;

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

/// Where the traffic keys of the associations go when the operator asked for an E2E key log
/// ([`NativeShared::with_key_log`]; the line format is [`secmms_e2e::keylog`]). The runtime
/// implements it with a file; this crate never writes one.
pub trait E2eKeyLogSink: Send + Sync {
    /// The keys of one association and key generation, just derived (the handshake's, then
    /// every rekey's). [`KeyMaterial::line`](secmms_e2e::keylog::KeyMaterial::line) is the
    /// text to write.
    fn record(&self, keys: &secmms_e2e::keylog::KeyMaterial);
}

use self::events::EnvEvent;
use self::state::*;
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
    key_log: Option<Arc<dyn E2eKeyLogSink>>,
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

/// What the clause 15 mapping changes as an association goes: the E2E engine, the phase, the
/// presentation context of the E2E SecPDUs, the authenticated peer and its policy, the last
/// diagnostic, and a HandshakeSecReject waiting for the AARE. The context it runs in is
/// [`HookCtx`].
struct MappingState {
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

// ------------------------------------------------------------------ the hook

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
    mapping: MappingState,
    hook: HookCtx,
}

impl std::fmt::Debug for NativeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeState")
            .field("role", &self.hook.role)
            .field("conn", &self.hook.conn)
            .field("phase", &self.mapping.phase)
            .field("e2e_pcid", &self.mapping.e2e_pcid)
            .finish_non_exhaustive()
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
