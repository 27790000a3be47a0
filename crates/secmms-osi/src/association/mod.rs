//! The association state machine: one object drives TPKT, TP0, session, presentation and ACSE
//! for one connection, in either role, without I/O or clock (sans-IO, like quinn-proto).
//!
//! Feed received stream bytes with [`Association::handle_input`], write what
//! [`Association::poll_transmit`] returns, and act on [`Association::poll_event`]. Protocol errors
//! never panic and never leave the machine stuck: the reaction (ER, DR, AB with ARP, or AB with an
//! ARU carrying an ABRT) is queued for transmit, then [`OsiEvent::ProtocolError`] and
//! [`OsiEvent::Closed`] are queued. Once [`Association::is_closed`] is true the runtime flushes
//! [`Association::poll_transmit`] and closes the stream.
//!
//! The machine is one type, [`Association`]; its `impl` is spread over files along the flow:
//! `requests.rs` (the local user's primitives), `input.rs` (received bytes up to the session
//! SPDU and error reactions), `connect.rs` (CONNECT, ACCEPT, REFUSE received), `release.rs`
//! (data, FINISH, DISCONNECT, ABORT received) and `transmit.rs` (what is queued to send).

use std::collections::VecDeque;

use secmms_ber::Oid;

use crate::acse::{
    abort_diagnostic, abort_source, associate_result, release_reason, user_diagnostic, Aare, Aarq,
    Abrt, AeQualifier, ApTitle, Apdu, External, Rlre, Rlrq, SourceDiagnostic,
};
use crate::cotp::{
    self, ConnectTpdu, CotpError, DisconnectTpdu, ErrorTpdu, Reassembler, Tpdu, TpduSize,
};
use crate::limits::{
    OsiLimits, CN_EXTENDED_USER_DATA_MAX, TPDU_SIZE_CODE_ACCEPT_MAX, TPKT_HEADER_LEN,
};
use crate::presentation::{
    self, abort_reason, context_reason, event, oids, AbortPpdu, ArpPpdu, AruPpdu,
    ContextDefinition, ContextResult, CpType, CpaPpdu, CprPpdu, PdvValues, UserData,
};
use crate::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, NegotiatedContext, NoSecurity, Rejection,
    Role, SecurityContext, Verdict,
};
use crate::session::{self, CnUserDataMode, ConnectAccept, Spdu};
use crate::tpkt::{self, TpktDecoder};
use crate::OsiError;

mod connect;
mod input;
mod release;
mod requests;
mod transmit;

/// Our TP0 source reference (all open stacks use 0x0001, reference §3.2).
pub const LOCAL_REFERENCE: u16 = 0x0001;
/// Presentation context id the initiator gives ACSE (spec §10.2 DECISION).
pub const ACSE_CONTEXT_ID: u32 = 1;
/// Presentation context id the initiator gives MMS (spec §10.2 DECISION).
pub const MMS_CONTEXT_ID: u32 = 3;
/// First presentation context id of the extra abstract syntaxes (5, 7, …; spec §10.2 DECISION).
pub const FIRST_EXTRA_CONTEXT_ID: u32 = 5;
/// PI 17 value for a provider abort (ARP): transport released, no reason (reference §4.6).
pub const TRANSPORT_DISCONNECT_PROVIDER_ABORT: u8 = 0x09;

/// Configuration of one association. [`OsiConfig::default`] is a client with the IEC 61850
/// defaults (reference §8); [`OsiConfig::server_default`] the matching server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsiConfig {
    /// Our transport selector (calling in the CR; checked against the called one as responder).
    pub local_tsel: Option<Vec<u8>>,
    /// The peer's transport selector (called in the CR).
    pub remote_tsel: Option<Vec<u8>>,
    /// Our session selector.
    pub local_ssel: Option<Vec<u8>>,
    /// The peer's session selector.
    pub remote_ssel: Option<Vec<u8>>,
    /// Our presentation selector.
    pub local_psel: Option<Vec<u8>>,
    /// The peer's presentation selector.
    pub remote_psel: Option<Vec<u8>>,
    /// Initiator: the TPDU size proposed in the CR. Responder: the largest size granted in the CC.
    /// Default 2048 (Annex H DECISION).
    pub tpdu_size: TpduSize,
    /// Our AP-title (calling as initiator, responding as responder).
    pub local_ap_title: Option<Oid>,
    /// Our AE-qualifier.
    pub local_ae_qualifier: Option<i64>,
    /// The peer's AP-title (called, as initiator).
    pub remote_ap_title: Option<Oid>,
    /// The peer's AE-qualifier (called, as initiator).
    pub remote_ae_qualifier: Option<i64>,
    /// Responder: put our AP-title / AE-qualifier in the AARE as responding ones (open61850 does,
    /// libiec61850 does not; reference §6.5).
    pub send_responding_titles: bool,
    /// Initiator: the application-context-name of the AARQ (MMS basic-AC 1.0.9506.2.3).
    pub application_context_name: Oid,
    /// Responder: application-context-names accepted in an AARQ (spec §15.6: basic-AC for
    /// plain/compatibility mode, e2eMmsAC for native mode).
    pub accepted_application_contexts: Vec<Oid>,
    /// Abstract syntax of the protected protocol (MMS 1.0.9506.2.1).
    pub mms_abstract_syntax: Oid,
    /// Extra abstract syntaxes proposed (initiator, ids 5, 7, …) and accepted (responder), e.g.
    /// mmsAuthenticationAS or e2eSecurityAS (spec §10.2).
    pub extra_abstract_syntaxes: Vec<Oid>,
    /// DECISION (Annex H): match the called selectors the peer sends against ours.
    pub check_selectors: bool,
    /// How CN user data over 512 octets is carried (standard PGI 194 by default).
    pub cn_user_data_mode: CnUserDataMode,
    /// Decoding limits.
    pub limits: OsiLimits,
}

fn oid_or_default(arcs: &[u64]) -> Option<Oid> {
    Oid::new(arcs).ok()
}

impl Default for OsiConfig {
    fn default() -> Self {
        OsiConfig {
            local_tsel: Some(vec![0, 1]),
            remote_tsel: Some(vec![0, 1]),
            local_ssel: Some(vec![0, 1]),
            remote_ssel: Some(vec![0, 1]),
            local_psel: Some(vec![0, 0, 0, 1]),
            remote_psel: Some(vec![0, 0, 0, 1]),
            tpdu_size: TpduSize::S2048,
            local_ap_title: oid_or_default(&[1, 1, 1, 999]),
            local_ae_qualifier: Some(12),
            remote_ap_title: oid_or_default(&[1, 1, 1, 999, 1]),
            remote_ae_qualifier: Some(12),
            send_responding_titles: false,
            application_context_name: oids::mms_ac(),
            accepted_application_contexts: vec![oids::mms_ac()],
            mms_abstract_syntax: oids::mms_as(),
            extra_abstract_syntaxes: Vec::new(),
            check_selectors: true,
            cn_user_data_mode: CnUserDataMode::Standard,
            limits: OsiLimits::default(),
        }
    }
}

impl OsiConfig {
    /// Server defaults: our title 1.1.1.999.1 / 12, the client's 1.1.1.999 / 12.
    pub fn server_default() -> Self {
        OsiConfig {
            local_ap_title: oid_or_default(&[1, 1, 1, 999, 1]),
            remote_ap_title: oid_or_default(&[1, 1, 1, 999]),
            ..OsiConfig::default()
        }
    }
}

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Initiator before [`Association::connect`].
    Idle,
    /// Initiator: CR sent.
    AwaitingCc,
    /// Responder: waiting for a CR.
    AwaitingCr,
    /// Responder: CC sent, waiting for the CN.
    AwaitingCn,
    /// Initiator: CN/CP/AARQ sent.
    AwaitingAc,
    /// Responder: AARQ indicated, waiting for [`Association::accept`] or [`Association::reject`].
    AwaitingAcceptDecision,
    /// Associated: data transfer.
    Associated,
    /// RLRQ sent, waiting for the RLRE.
    AwaitingRlre,
    /// RLRQ indicated, waiting for [`Association::release_response`].
    AwaitingReleaseResponse,
    /// Over: flush the transmit queue and close the stream.
    Closed,
}

/// Who ended the association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortOrigin {
    /// The peer's ACSE/presentation user (ARU, possibly with an ABRT).
    PeerUser,
    /// The peer's presentation or session provider (ARP, or AB without PPDU).
    PeerProvider,
    /// The peer's transport (DR or ER TPDU).
    PeerTransport,
    /// Our own security hook.
    LocalSecurity,
}

/// Details of an abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortInfo {
    /// Who aborted.
    pub origin: AbortOrigin,
    /// The ABRT received (raw bytes inside), if any.
    pub abrt: Option<Box<Abrt>>,
    /// ARP provider-reason, DR reason or ER cause.
    pub reason: Option<i64>,
    /// ARP event-identifier.
    pub event: Option<i64>,
}

/// Why an association attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// The transport refused the CR (DR reason).
    Transport(u8),
    /// The session refused (RF reason code).
    Session(Option<u8>),
    /// The presentation refused (CPR provider-reason).
    Presentation(Option<i64>),
    /// The ACSE user refused (AARE result and diagnostic).
    Acse {
        /// Associate-result.
        result: i64,
        /// Associate-source-diagnostic.
        diagnostic: SourceDiagnostic,
    },
}

/// What the application learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsiEvent {
    /// Responder: an AARQ arrived and passed the hook. Answer with accept or reject.
    AssociateIndication {
        /// The AARQ (with raw bytes).
        aarq: Box<Aarq>,
        /// The MMS PDU (EXTERNAL on the MMS context), or what the hook substituted.
        user_data: Option<Vec<u8>>,
    },
    /// Initiator: the association is accepted.
    AssociateConfirm {
        /// The AARE (with raw bytes).
        aare: Box<Aare>,
        /// The MMS PDU of the AARE, or what the hook substituted.
        user_data: Option<Vec<u8>>,
    },
    /// Initiator: the association was refused.
    AssociateRejected {
        /// Why.
        reason: RejectReason,
        /// The rejecting AARE, if one was received.
        aare: Option<Box<Aare>>,
        /// The MMS PDU of that AARE (e.g. an initiate-ErrorPDU).
        user_data: Option<Vec<u8>>,
    },
    /// A P-DATA value.
    Data {
        /// Presentation context it arrived on (MMS by default).
        context_id: u32,
        /// The single-ASN1-type value (or the octet-aligned octets).
        pdu: Vec<u8>,
    },
    /// The peer asked to release (RLRQ in FN).
    ReleaseIndication {
        /// The RLRQ.
        rlrq: Box<Rlrq>,
        /// MMS user data carried in it, if any.
        user_data: Option<Vec<u8>>,
    },
    /// The peer released (RLRE in DN).
    ReleaseConfirm {
        /// The RLRE.
        rlre: Box<Rlre>,
        /// MMS user data carried in it, if any.
        user_data: Option<Vec<u8>>,
    },
    /// The peer refused the release (NF).
    ReleaseRefused,
    /// The association was aborted.
    AbortIndication(AbortInfo),
    /// A protocol error was detected; the reaction is queued for transmit.
    ProtocolError(OsiError),
    /// The association is over.
    Closed,
}

/// The sans-IO association. `H` is its security hook: boxed (`Box<dyn AssociationSecurity>`,
/// the default, as [`Association::with_security`] makes it) or a concrete type held by value
/// ([`Association::with_hook`]), which its owner reaches between calls through
/// [`Association::security`] and [`Association::security_mut`].
pub struct Association<H: AssociationSecurity = Box<dyn AssociationSecurity>> {
    role: Role,
    cfg: OsiConfig,
    state: State,
    security: H,
    tpkt: TpktDecoder,
    /// Complete TPKTs taken from the input ([`Association::tpdus_received`]).
    tpdus_received: u64,
    reassembler: Reassembler,
    tpdu_size: TpduSize,
    transmit: Vec<u8>,
    events: VecDeque<OsiEvent>,
    pending_cn: Option<Vec<u8>>,
    /// Octets of user data (the CP-type PPDU) in the CONNECT SPDU we sent, once sent.
    cn_user_data_len: Option<usize>,
    /// Set when the transport closed while we waited for the AC after a CONNECT that needed
    /// Extended User Data: its user-data length.
    lost_after_extended_cn: Option<usize>,
    contexts: Vec<NegotiatedContext>,
    acse_id: u32,
    mms_id: Option<u32>,
    results: Vec<ContextResult>,
    peer_application_context: Option<Oid>,
}

impl<H: AssociationSecurity> std::fmt::Debug for Association<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Association")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("tpdu_size", &self.tpdu_size)
            .field("contexts", &self.contexts)
            .finish_non_exhaustive()
    }
}

/// The user data of the EXTERNAL on presentation context `id`; failing that, of the first
/// EXTERNAL without indirect-reference (X.227: it then belongs to the default context).
fn ext_for(ui: &[External], id: Option<u32>) -> Option<Vec<u8>> {
    let id = id? as i64;
    ui.iter()
        .find(|e| e.indirect_reference == Some(id))
        .or_else(|| ui.iter().find(|e| e.indirect_reference.is_none()))
        .and_then(|e| e.single_value())
        .map(<[u8]>::to_vec)
}

impl Association {
    /// A client association with the no-op security hook.
    pub fn initiator(cfg: OsiConfig) -> Self {
        Self::with_security(Role::Initiator, cfg, Box::new(NoSecurity))
    }
    /// A server association with the no-op security hook.
    pub fn responder(cfg: OsiConfig) -> Self {
        Self::with_security(Role::Responder, cfg, Box::new(NoSecurity))
    }
    /// An association in `role` with a (boxed) security hook.
    pub fn with_security(
        role: Role,
        cfg: OsiConfig,
        security: Box<dyn AssociationSecurity>,
    ) -> Self {
        Self::with_hook(role, cfg, security)
    }
}

impl<H: AssociationSecurity> Association<H> {
    /// The security hook, between calls (e.g. to reach the state it keeps).
    pub fn security(&self) -> &H {
        &self.security
    }

    /// The security hook, mutably, between calls.
    pub fn security_mut(&mut self) -> &mut H {
        &mut self.security
    }

    /// An association in `role` whose security hook is held by value.
    pub fn with_hook(role: Role, cfg: OsiConfig, security: H) -> Self {
        let max_initial = (1usize << TPDU_SIZE_CODE_ACCEPT_MAX) + TPKT_HEADER_LEN;
        let reassembler = Reassembler::new(cfg.limits.max_tsdu);
        let mut contexts = vec![
            NegotiatedContext {
                id: ACSE_CONTEXT_ID,
                abstract_syntax: oids::acse_as(),
                accepted: true,
            },
            NegotiatedContext {
                id: MMS_CONTEXT_ID,
                abstract_syntax: cfg.mms_abstract_syntax.clone(),
                accepted: true,
            },
        ];
        for (i, a) in cfg.extra_abstract_syntaxes.iter().enumerate() {
            contexts.push(NegotiatedContext {
                id: FIRST_EXTRA_CONTEXT_ID + 2 * i as u32,
                abstract_syntax: a.clone(),
                accepted: true,
            });
        }
        if role == Role::Responder {
            contexts.clear();
        }
        Association {
            role,
            state: if role == Role::Initiator {
                State::Idle
            } else {
                State::AwaitingCr
            },
            security,
            tpkt: TpktDecoder::new(max_initial),
            tpdus_received: 0,
            reassembler,
            tpdu_size: TpduSize::S128,
            transmit: Vec::new(),
            events: VecDeque::new(),
            pending_cn: None,
            cn_user_data_len: None,
            lost_after_extended_cn: None,
            contexts,
            acse_id: ACSE_CONTEXT_ID,
            mms_id: if role == Role::Initiator {
                Some(MMS_CONTEXT_ID)
            } else {
                None
            },
            results: Vec::new(),
            peer_application_context: None,
            cfg,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// True once the association is over (flush [`Self::poll_transmit`], then close).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The negotiated TPDU size (128 until the CR/CC exchange).
    pub fn tpdu_size(&self) -> TpduSize {
        self.tpdu_size
    }
    /// The presentation contexts (proposed, then negotiated).
    pub fn contexts(&self) -> &[NegotiatedContext] {
        &self.contexts
    }
    /// The identifier of the accepted presentation context with this abstract syntax (e.g. the
    /// e2eSecurityAS context for [`Self::send_data_on`]).
    pub fn context_id(&self, abstract_syntax: &Oid) -> Option<u32> {
        self.contexts
            .iter()
            .find(|c| c.accepted && &c.abstract_syntax == abstract_syntax)
            .map(|c| c.id)
    }
    /// The presentation context id of MMS, once known.
    pub fn mms_context_id(&self) -> Option<u32> {
        self.mms_id
    }

    /// Bytes to write to the stream, if any (all queued TPKTs, concatenated).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.transmit.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.transmit))
        }
    }
    /// True while input is partly received: a TPKT whose octets have not all arrived, or a
    /// TSDU whose last DT (EOT) has not. A deadline for completing it (bytes do not renew it)
    /// keeps a peer that trickles octets from holding the association.
    pub fn input_pending(&self) -> bool {
        self.tpkt.buffered() > 0 || self.reassembler.in_progress()
    }

    /// Complete TPKTs taken from the input so far.
    pub fn tpdus_received(&self) -> u64 {
        self.tpdus_received
    }

    /// How many events wait for [`Association::poll_event`] (e.g. the requests of one burst of
    /// pipelined input).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<OsiEvent> {
        self.events.pop_front()
    }
}
