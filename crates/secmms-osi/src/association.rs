//! The association state machine: one object drives TPKT, TP0, session, presentation and ACSE
//! for one connection, in either role, without I/O or clock (sans-IO, like quinn-proto).
//!
//! Feed received stream bytes with [`Association::handle_input`], write what
//! [`Association::poll_transmit`] returns, and act on [`Association::poll_event`]. Protocol errors
//! never panic and never leave the machine stuck: the reaction (ER, DR, AB with ARP, or AB with an
//! ARU carrying an ABRT) is queued for transmit, then [`OsiEvent::ProtocolError`] and
//! [`OsiEvent::Closed`] are queued. Once [`Association::is_closed`] is true the runtime flushes
//! [`Association::poll_transmit`] and closes the stream.

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
    /// How many events wait for [`Association::poll_event`] (e.g. the requests of one burst of
    /// pipelined input).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<OsiEvent> {
        self.events.pop_front()
    }

    fn expect_state(&self, op: &'static str, ok: &[State]) -> Result<(), OsiError> {
        if ok.contains(&self.state) {
            Ok(())
        } else {
            Err(OsiError::InvalidState {
                operation: op,
                state: self.state,
            })
        }
    }

    fn queue_tpdu(&mut self, t: &Tpdu) -> Result<(), OsiError> {
        let b = t.encode()?;
        self.transmit.extend(tpkt::encode(&b)?);
        Ok(())
    }

    fn queue_tsdu(&mut self, tsdu: &[u8]) -> Result<(), OsiError> {
        self.queue_tsdu_parts(&[tsdu]);
        Ok(())
    }

    /// Segments the concatenation of `parts` into TPKT + DT frames written straight into the
    /// transmit buffer: each octet of user data is copied once (same bytes as
    /// [`cotp::segment`] + [`tpkt::encode`]).
    fn queue_tsdu_parts(&mut self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let n = self.tpdu_size.dt_payload();
        let frames = total.div_ceil(n);
        self.transmit
            .reserve(total + frames * (TPKT_HEADER_LEN + 3));
        let mut it = parts.iter().flat_map(|p| p.chunks(n)).peekable();
        let mut cur: &[u8] = &[];
        for i in 0..frames {
            let len = if i + 1 == frames { total - i * n } else { n };
            let tpkt_len = len + 3 + TPKT_HEADER_LEN;
            let eot = if i + 1 == frames { cotp::DT_EOT } else { 0 };
            self.transmit.extend_from_slice(&[
                crate::limits::TPKT_VERSION,
                0,
                (tpkt_len >> 8) as u8,
                tpkt_len as u8,
                2,
                cotp::CODE_DT,
                eot,
            ]);
            let mut need = len;
            while need > 0 {
                if cur.is_empty() {
                    match it.next() {
                        Some(c) => cur = c,
                        None => break,
                    }
                }
                let take = need.min(cur.len());
                self.transmit.extend_from_slice(&cur[..take]);
                cur = &cur[take..];
                need -= take;
            }
        }
    }

    fn queue_spdu(&mut self, s: &Spdu) -> Result<(), OsiError> {
        let b = s.encode_with(self.cfg.cn_user_data_mode)?;
        self.queue_tsdu(&b)
    }

    fn close(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(OsiEvent::Closed);
        }
    }

    fn protocol_error(&mut self, e: OsiError) {
        self.tell_security(&e);
        self.events.push_back(OsiEvent::ProtocolError(e));
        self.close();
    }

    /// Lets the security hook see a protocol error we detected (§15.7 ACSE_PROT_ERR).
    fn tell_security(&mut self, e: &OsiError) {
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        self.security.protocol_error(&ctx, e);
    }

    // ---------------------------------------------------------------- initiator API

    /// Initiator: when the association was lost while waiting for the AC (the peer closed the
    /// transport after our CONNECT) and that CONNECT carried more than 512 octets of user data,
    /// the octets it carried: such a CONNECT needs session version 2 with Extended User Data
    /// (PGI 194, spec §10.1), and a peer whose session layer lacks it (libiec61850 takes only
    /// one-octet CONNECT lengths) drops the connection without an answer. `None` otherwise.
    pub fn connect_needed_extended_user_data(&self) -> Option<usize> {
        self.lost_after_extended_cn
    }

    /// Initiator: queue the CR; after the CC the CN/CP/AARQ carrying `user_data` (an MMS
    /// initiate-RequestPDU, already BER-encoded), decorated by the security hook, is sent.
    pub fn connect(&mut self, user_data: Vec<u8>) -> Result<(), OsiError> {
        if self.role != Role::Initiator {
            return Err(OsiError::WrongRole("connect"));
        }
        self.expect_state("connect", &[State::Idle])?;
        let mut aarq = Aarq::new(self.cfg.application_context_name.clone());
        aarq.called_ap_title = self.cfg.remote_ap_title.clone().map(ApTitle::Form2);
        aarq.called_ae_qualifier = self.cfg.remote_ae_qualifier.map(AeQualifier::Form2);
        aarq.calling_ap_title = self.cfg.local_ap_title.clone().map(ApTitle::Form2);
        aarq.calling_ae_qualifier = self.cfg.local_ae_qualifier.map(AeQualifier::Form2);
        aarq.user_information = vec![External::single(MMS_CONTEXT_ID as i64, user_data)];
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        self.security
            .decorate_aarq(&ctx, &mut aarq)
            .map_err(OsiError::SecurityAbort)?;
        let cp = CpType {
            calling_psel: self.cfg.local_psel.clone(),
            called_psel: self.cfg.remote_psel.clone(),
            context_definitions: self
                .contexts
                .iter()
                .map(|c| ContextDefinition {
                    id: c.id,
                    abstract_syntax: c.abstract_syntax.clone(),
                    transfer_syntaxes: vec![oids::ber()],
                })
                .collect(),
            user_data: Some(UserData::single(ACSE_CONTEXT_ID, Apdu::Aarq(aarq).encode())),
            ..Default::default()
        };
        let cn = Spdu::Connect(ConnectAccept {
            protocol_options: Some(0),
            version: Some(session::VERSION_2),
            user_requirements: Some(session::USER_REQUIREMENTS_DUPLEX),
            calling_ssel: self.cfg.local_ssel.clone(),
            called_ssel: self.cfg.remote_ssel.clone(),
            user_data: Some(cp.encode()),
            ..Default::default()
        });
        if let Spdu::Connect(c) = &cn {
            self.cn_user_data_len = c.user_data.as_ref().map(Vec::len);
        }
        let cn = cn.encode_with(self.cfg.cn_user_data_mode)?;
        self.queue_tpdu(&Tpdu::Cr(ConnectTpdu {
            dst_ref: 0,
            src_ref: LOCAL_REFERENCE,
            class_options: 0,
            tpdu_size: Some(self.cfg.tpdu_size),
            calling_tsel: self.cfg.local_tsel.clone(),
            called_tsel: self.cfg.remote_tsel.clone(),
        }))?;
        self.pending_cn = Some(cn);
        self.state = State::AwaitingCc;
        Ok(())
    }

    // ---------------------------------------------------------------- responder API

    /// Responder: accept the indicated association; `user_data` (an MMS initiate-ResponsePDU)
    /// goes in the AARE, which the hook may decorate.
    pub fn accept(&mut self, user_data: Vec<u8>) -> Result<(), OsiError> {
        self.expect_state("accept", &[State::AwaitingAcceptDecision])?;
        let mut aare = self.new_aare(
            associate_result::ACCEPTED,
            SourceDiagnostic::ServiceUser(user_diagnostic::NULL),
        );
        if let Some(id) = self.mms_id {
            aare.user_information = vec![External::single(id as i64, user_data)];
        }
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let r = self.security.decorate_aare(&ctx, &mut aare);
        if let Err(req) = r {
            self.send_user_abort(req)?;
            return Ok(());
        }
        let cpa = CpaPpdu {
            responding_psel: self.cfg.local_psel.clone(),
            results: self.results.clone(),
            user_data: Some(UserData::single(self.acse_id, Apdu::Aare(aare).encode())),
            ..Default::default()
        };
        let ac = Spdu::Accept(ConnectAccept {
            protocol_options: Some(0),
            version: Some(session::VERSION_2),
            user_requirements: Some(session::USER_REQUIREMENTS_DUPLEX),
            called_ssel: self.cfg.local_ssel.clone(),
            user_data: Some(cpa.encode()),
            ..Default::default()
        });
        self.queue_spdu(&ac)?;
        self.state = State::Associated;
        Ok(())
    }

    /// Responder: reject the indicated association with an AARE carrying `result` and
    /// `diagnostic` (in a CPR-PPDU in an RF SPDU), with optional MMS user data
    /// (e.g. an initiate-ErrorPDU). The association is then closed.
    pub fn reject(
        &mut self,
        result: i64,
        diagnostic: SourceDiagnostic,
        user_data: Option<Vec<u8>>,
    ) -> Result<(), OsiError> {
        self.expect_state("reject", &[State::AwaitingAcceptDecision])?;
        let ui = match (user_data, self.mms_id) {
            (Some(d), Some(id)) => vec![External::single(id as i64, d)],
            _ => Vec::new(),
        };
        self.send_rejection(Rejection {
            result,
            diagnostic,
            user_information: ui,
        })
    }

    fn new_aare(&self, result: i64, diagnostic: SourceDiagnostic) -> Aare {
        let mut aare = Aare::new(
            self.peer_application_context
                .clone()
                .unwrap_or_else(|| self.cfg.application_context_name.clone()),
            result,
            diagnostic,
        );
        if self.cfg.send_responding_titles {
            aare.responding_ap_title = self.cfg.local_ap_title.clone().map(ApTitle::Form2);
            aare.responding_ae_qualifier = self.cfg.local_ae_qualifier.map(AeQualifier::Form2);
        }
        aare
    }

    fn send_rejection(&mut self, rej: Rejection) -> Result<(), OsiError> {
        let mut aare = self.new_aare(rej.result, rej.diagnostic);
        aare.user_information = rej.user_information;
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let r = self.security.decorate_aare(&ctx, &mut aare);
        if let Err(req) = r {
            return self.send_user_abort(req);
        }
        let cpr = CprPpdu {
            responding_psel: self.cfg.local_psel.clone(),
            results: self.results.clone(),
            user_data: Some(UserData::single(self.acse_id, Apdu::Aare(aare).encode())),
            ..Default::default()
        };
        self.send_refuse(
            session::refuse_reason::USER_REJECTION_WITH_DATA,
            Some(cpr.encode()),
        )
    }

    fn send_refuse_error(
        &mut self,
        reason: u8,
        user_data: Option<Vec<u8>>,
        e: OsiError,
    ) -> Result<(), OsiError> {
        self.tell_security(&e);
        self.events.push_back(OsiEvent::ProtocolError(e));
        self.send_refuse(reason, user_data)
    }

    fn send_refuse(&mut self, reason: u8, user_data: Option<Vec<u8>>) -> Result<(), OsiError> {
        let rf = Spdu::Refuse(session::Refuse {
            reason: Some(reason),
            user_data,
            ..Default::default()
        });
        let r = self.queue_spdu(&rf);
        self.close();
        r
    }

    // ---------------------------------------------------------------- data and release

    /// Sends one MMS PDU as P-DATA on the MMS context (segmented into DT TPDUs).
    pub fn send_data(&mut self, pdu: &[u8]) -> Result<(), OsiError> {
        let id = self
            .mms_id
            .ok_or(OsiError::ContextNotAccepted(MMS_CONTEXT_ID))?;
        self.send_data_on(id, pdu)
    }

    /// Sends one value as P-DATA on presentation context `context_id` (e.g. e2eSecurityAS).
    pub fn send_data_on(&mut self, context_id: u32, pdu: &[u8]) -> Result<(), OsiError> {
        self.expect_state(
            "send_data",
            &[State::Associated, State::AwaitingReleaseResponse],
        )?;
        if context_id == self.acse_id
            || !self
                .contexts
                .iter()
                .any(|c| c.id == context_id && c.accepted)
        {
            return Err(OsiError::ContextNotAccepted(context_id));
        }
        // GT + DT SPDU headers, then the P-DATA user data header, then the PDU (copied once).
        let mut head = vec![session::si::GT, 0, session::si::DT, 0];
        head.extend(presentation::single_pdv_header(context_id, pdu.len()));
        self.queue_tsdu_parts(&[&head, pdu]);
        Ok(())
    }

    /// Requests release: RLRQ (reason normal) in an FN SPDU. `user_data`, if given, rides in an
    /// EXTERNAL on the MMS context of the RLRQ user-information.
    pub fn release(&mut self, user_data: Option<Vec<u8>>) -> Result<(), OsiError> {
        self.expect_state("release", &[State::Associated])?;
        let mut rlrq = Rlrq {
            reason: Some(release_reason::NORMAL),
            ..Default::default()
        };
        if let (Some(d), Some(id)) = (user_data, self.mms_id) {
            rlrq.user_information = vec![External::single(id as i64, d)];
        }
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let r = self.security.decorate_rlrq(&ctx, &mut rlrq);
        if let Err(req) = r {
            return self.send_user_abort(req);
        }
        let ud = UserData::single(self.acse_id, Apdu::Rlrq(rlrq).encode()).encode();
        self.queue_spdu(&Spdu::Finish(session::Release {
            transport_disconnect: None,
            user_data: Some(ud),
        }))?;
        self.state = State::AwaitingRlre;
        Ok(())
    }

    /// Answers a release indication: RLRE (reason normal) in a DN SPDU; then the association is
    /// closed.
    pub fn release_response(&mut self, user_data: Option<Vec<u8>>) -> Result<(), OsiError> {
        self.expect_state("release_response", &[State::AwaitingReleaseResponse])?;
        let mut rlre = Rlre {
            reason: Some(release_reason::NORMAL),
            ..Default::default()
        };
        if let (Some(d), Some(id)) = (user_data, self.mms_id) {
            rlre.user_information = vec![External::single(id as i64, d)];
        }
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let r = self.security.decorate_rlre(&ctx, &mut rlre);
        if let Err(req) = r {
            return self.send_user_abort(req);
        }
        let ud = UserData::single(self.acse_id, Apdu::Rlre(rlre).encode()).encode();
        let r = self.queue_spdu(&Spdu::Disconnect(session::Release {
            transport_disconnect: None,
            user_data: Some(ud),
        }));
        self.close();
        r
    }

    /// Aborts: ABRT (source acse-service-user) in an ARU-PPDU in an AB SPDU once a session
    /// connection was attempted; before that the transport is simply closed.
    pub fn abort(&mut self) -> Result<(), OsiError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.send_user_abort(AbortRequest::default())
    }

    /// Aborts with an ABRT carrying `req`'s diagnostic and user-information (e.g. an E2E
    /// DtSecAbort, spec §15.3), decorated by the hook, in an ARU-PPDU in an AB SPDU.
    pub fn abort_with(&mut self, req: AbortRequest) -> Result<(), OsiError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.send_user_abort(req)
    }

    fn session_started(&self) -> bool {
        !matches!(
            self.state,
            State::Idle | State::AwaitingCc | State::AwaitingCr | State::AwaitingCn
        )
    }

    fn send_user_abort(&mut self, req: AbortRequest) -> Result<(), OsiError> {
        let r = if self.session_started() {
            let mut abrt = Abrt {
                source: abort_source::SERVICE_USER,
                diagnostic: req.diagnostic,
                user_information: req.user_information,
                raw: Vec::new(),
            };
            let ctx = SecurityContext {
                role: self.role,
                contexts: &self.contexts,
            };
            self.security.decorate_abrt(&ctx, &mut abrt);
            self.queue_abrt(abrt, session::TRANSPORT_DISCONNECT_USER_ABORT)
        } else {
            Ok(())
        };
        self.close();
        r
    }

    fn queue_abrt(&mut self, abrt: Abrt, td: u8) -> Result<(), OsiError> {
        let aru = AbortPpdu::Aru(AruPpdu {
            context_ids: Vec::new(),
            user_data: Some(UserData::single(self.acse_id, Apdu::Abrt(abrt).encode())),
        });
        self.queue_spdu(&Spdu::Abort(session::Abort {
            transport_disconnect: Some(td),
            reflect: None,
            user_data: Some(aru.encode()),
        }))
    }

    // ---------------------------------------------------------------- input

    /// Tells the machine the stream ended (TCP FIN/RST, TLS close). Unless the association was
    /// already over, this reports an abort by the peer's transport and closes.
    /// Anything still queued for transmit is dropped.
    pub fn transport_closed(&mut self) {
        self.transmit.clear();
        match self.state {
            State::Closed => {}
            State::Idle | State::AwaitingCr => self.close(),
            State::AwaitingCc | State::AwaitingAc => {
                if self.state == State::AwaitingAc {
                    self.lost_after_extended_cn = self
                        .cn_user_data_len
                        .filter(|n| *n > crate::limits::CN_USER_DATA_MAX);
                }
                self.events.push_back(OsiEvent::AssociateRejected {
                    reason: RejectReason::Transport(cotp::dr_reason::NOT_SPECIFIED),
                    aare: None,
                    user_data: None,
                });
                self.close();
            }
            _ => self.peer_abort(AbortOrigin::PeerTransport, None, None, None),
        }
    }

    /// Feeds bytes read from the stream (TCP or TLS). Protocol errors are reported as events
    /// (see the module documentation); `Err` is returned only if the reaction itself could not
    /// be encoded.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), OsiError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.tpkt.push(bytes);
        while self.state != State::Closed {
            match self.tpkt.next_tpdu() {
                Ok(Some(t)) => self.on_tpdu(&t)?,
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be framed: nothing can be sent that the peer would parse.
                    self.protocol_error(e.into());
                }
            }
        }
        Ok(())
    }

    fn cotp_error(&mut self, e: CotpError, tpdu: &[u8]) -> Result<(), OsiError> {
        let r = if self.state == State::AwaitingCr {
            let reason = match e {
                CotpError::BadLengthIndicator(_) | CotpError::BadParameter(_) => {
                    cotp::dr_reason::HEADER_LENGTH_INVALID
                }
                _ => cotp::dr_reason::PROTOCOL_ERROR,
            };
            self.queue_tpdu(&Tpdu::Dr(DisconnectTpdu {
                dst_ref: 0,
                src_ref: LOCAL_REFERENCE,
                reason,
                additional_info: None,
            }))
        } else {
            let n = tpdu.len().min(16);
            self.queue_tpdu(&Tpdu::Er(ErrorTpdu {
                dst_ref: 0,
                cause: e.er_cause(),
                invalid_tpdu: Some(tpdu[..n].to_vec()),
            }))
        };
        self.protocol_error(e.into());
        r
    }

    fn on_tpdu(&mut self, raw: &[u8]) -> Result<(), OsiError> {
        let t = match Tpdu::decode(raw, self.cfg.limits.max_tsel_len) {
            Ok(t) => t,
            Err(e) => return self.cotp_error(e, raw),
        };
        match (self.state, t) {
            (State::AwaitingCr, Tpdu::Cr(cr)) => self.on_cr(cr),
            (State::AwaitingCc, Tpdu::Cc(cc)) => self.on_cc(cc),
            (State::AwaitingCc | State::AwaitingAc, Tpdu::Dr(dr)) => {
                self.events.push_back(OsiEvent::AssociateRejected {
                    reason: RejectReason::Transport(dr.reason),
                    aare: None,
                    user_data: None,
                });
                self.close();
                Ok(())
            }
            (_, Tpdu::Dr(dr)) => {
                self.peer_abort(
                    AbortOrigin::PeerTransport,
                    None,
                    Some(dr.reason as i64),
                    None,
                );
                Ok(())
            }
            (_, Tpdu::Er(er)) => {
                self.peer_abort(
                    AbortOrigin::PeerTransport,
                    None,
                    Some(er.cause as i64),
                    None,
                );
                Ok(())
            }
            (
                State::AwaitingCn
                | State::AwaitingAc
                | State::AwaitingAcceptDecision
                | State::Associated
                | State::AwaitingRlre
                | State::AwaitingReleaseResponse,
                Tpdu::Dt(dt),
            ) => match self.reassembler.push(dt) {
                Ok(Some(tsdu)) => self.on_tsdu(&tsdu),
                Ok(None) => Ok(()),
                Err(e) => {
                    // Annex H: a TSDU over the limit ends the connection (implementation
                    // restriction) rather than being buffered.
                    let r = self.queue_spdu(&Spdu::Abort(session::Abort {
                        transport_disconnect: Some(session::TRANSPORT_DISCONNECT_RESTRICTION),
                        ..Default::default()
                    }));
                    self.protocol_error(e.into());
                    r
                }
            },
            (_, _) => self.cotp_error(
                CotpError::UnsupportedTpdu(raw.get(1).copied().unwrap_or(0)),
                raw,
            ),
        }
    }

    fn on_cr(&mut self, cr: ConnectTpdu) -> Result<(), OsiError> {
        let refuse = |s: &mut Self, reason: u8, e: OsiError| -> Result<(), OsiError> {
            let r = s.queue_tpdu(&Tpdu::Dr(DisconnectTpdu {
                dst_ref: cr.src_ref,
                src_ref: LOCAL_REFERENCE,
                reason,
                additional_info: None,
            }));
            s.protocol_error(e);
            r
        };
        if cr.class() != 0 {
            return refuse(
                self,
                cotp::dr_reason::NEGOTIATION_FAILED,
                OsiError::ClassNotSupported(cr.class()),
            );
        }
        if self.cfg.check_selectors {
            if let (Some(theirs), Some(ours)) = (&cr.called_tsel, &self.cfg.local_tsel) {
                if theirs != ours {
                    return refuse(
                        self,
                        cotp::dr_reason::ADDRESS_UNKNOWN,
                        OsiError::SelectorMismatch("called TSEL"),
                    );
                }
            }
        }
        let proposed = cr.tpdu_size.unwrap_or(TpduSize::S128);
        self.tpdu_size = proposed.min(self.cfg.tpdu_size);
        // We send at most the granted size but accept up to what the peer proposed, in case it
        // ignores our lower grant (robustness; still bounded by TPDU_SIZE_CODE_ACCEPT_MAX).
        self.tpkt
            .set_max_len(proposed.max(self.tpdu_size).octets() + TPKT_HEADER_LEN);
        self.queue_tpdu(&Tpdu::Cc(ConnectTpdu {
            dst_ref: cr.src_ref,
            src_ref: LOCAL_REFERENCE,
            class_options: 0,
            tpdu_size: Some(self.tpdu_size),
            calling_tsel: cr.calling_tsel.clone(),
            called_tsel: cr
                .called_tsel
                .clone()
                .or_else(|| self.cfg.local_tsel.clone()),
        }))?;
        self.state = State::AwaitingCn;
        Ok(())
    }

    fn on_cc(&mut self, cc: ConnectTpdu) -> Result<(), OsiError> {
        if cc.class() != 0 {
            self.protocol_error(OsiError::ClassNotSupported(cc.class()));
            return Ok(());
        }
        // A responder may only lower the size (ISO 8073). If one answers with a larger size we
        // still send at most what we proposed, and accept its TPDUs up to what it announced.
        let granted = cc.tpdu_size.unwrap_or(TpduSize::S128);
        self.tpdu_size = granted.min(self.cfg.tpdu_size);
        self.tpkt
            .set_max_len(granted.max(self.tpdu_size).octets() + TPKT_HEADER_LEN);
        let cn = self.pending_cn.take().unwrap_or_default();
        self.queue_tsdu(&cn)?;
        self.state = State::AwaitingAc;
        Ok(())
    }

    fn session_error(&mut self, e: OsiError) -> Result<(), OsiError> {
        let r = self.queue_spdu(&Spdu::Abort(session::Abort {
            transport_disconnect: Some(session::TRANSPORT_DISCONNECT_PROTOCOL_ERROR),
            ..Default::default()
        }));
        self.protocol_error(e);
        r
    }

    fn presentation_error(&mut self, e: OsiError, reason: i64, ev: i64) -> Result<(), OsiError> {
        let arp = AbortPpdu::Arp(ArpPpdu {
            provider_reason: Some(reason),
            event_identifier: Some(ev),
        });
        let r = self.queue_spdu(&Spdu::Abort(session::Abort {
            transport_disconnect: Some(TRANSPORT_DISCONNECT_PROVIDER_ABORT),
            reflect: None,
            user_data: Some(arp.encode()),
        }));
        self.protocol_error(e);
        r
    }

    fn acse_error(&mut self, e: OsiError) -> Result<(), OsiError> {
        let abrt = Abrt {
            source: abort_source::SERVICE_PROVIDER,
            diagnostic: Some(abort_diagnostic::PROTOCOL_ERROR),
            ..Default::default()
        };
        let r = self.queue_abrt(abrt, session::TRANSPORT_DISCONNECT_USER_ABORT);
        self.protocol_error(e);
        r
    }

    fn peer_abort(
        &mut self,
        origin: AbortOrigin,
        abrt: Option<Box<Abrt>>,
        reason: Option<i64>,
        event: Option<i64>,
    ) {
        self.events.push_back(OsiEvent::AbortIndication(AbortInfo {
            origin,
            abrt,
            reason,
            event,
        }));
        self.close();
    }

    fn local_security_abort(&mut self, req: AbortRequest) -> Result<(), OsiError> {
        let diag = req.diagnostic;
        let r = self.send_user_abort(req);
        // send_user_abort closed the machine; report the abort before the Closed event.
        let closed = self.events.pop_back();
        self.events.push_back(OsiEvent::AbortIndication(AbortInfo {
            origin: AbortOrigin::LocalSecurity,
            abrt: None,
            reason: diag,
            event: None,
        }));
        if let Some(c) = closed {
            self.events.push_back(c);
        }
        r
    }

    /// Extracts the single ACSE APDU of an encoded presentation user data.
    fn acse_apdu_bytes(&self, ud: &[u8]) -> Result<Apdu, OsiError> {
        self.acse_apdu(&UserData::decode(ud, self.cfg.limits.ber)?)
    }

    /// Extracts the single ACSE APDU of a presentation user data (decoded from the bytes as
    /// received, so the APDU's raw fields are the received octets).
    fn acse_apdu(&self, ud: &UserData) -> Result<Apdu, OsiError> {
        let UserData::Fully(pdvs) = ud else {
            return Err(OsiError::Unexpected("simply-encoded-data"));
        };
        let [pdv] = pdvs.as_slice() else {
            return Err(OsiError::Unexpected("more than one PDV-list"));
        };
        if pdv.context_id != self.acse_id {
            return Err(OsiError::ContextNotAccepted(pdv.context_id));
        }
        let PdvValues::SingleAsn1Type(v) = &pdv.values else {
            return Err(OsiError::Unexpected("ACSE APDU not single-ASN1-type"));
        };
        Ok(Apdu::decode(v, self.cfg.limits.ber)?)
    }

    fn on_tsdu(&mut self, tsdu: &[u8]) -> Result<(), OsiError> {
        // Fast path for the data TSDU every MMS stack sends (`01 00 01 00` + PPDU, reference
        // §4.6): same meaning as the general decoder, without copying the user information.
        if let (State::Associated | State::AwaitingRlre, Some(ppdu)) = (
            self.state,
            tsdu.strip_prefix(&[session::si::GT, 0, session::si::DT, 0]),
        ) {
            return self.on_data(ppdu);
        }
        let spdu = match Spdu::decode(tsdu, self.cfg.limits.max_ssel_len) {
            Ok(s) => s,
            Err(e) => return self.session_error(e.into()),
        };
        match (self.state, spdu) {
            (State::AwaitingCn, Spdu::Connect(cn)) => self.on_cn(cn),
            (State::AwaitingAc, Spdu::Accept(ac)) => self.on_ac(ac),
            (State::AwaitingAc, Spdu::Refuse(rf)) => {
                self.on_rf(rf);
                Ok(())
            }
            (State::Associated | State::AwaitingRlre, Spdu::Data(d)) => self.on_data(&d),
            (State::Associated, Spdu::Finish(f)) => self.on_fn(f),
            (State::AwaitingRlre, Spdu::Disconnect(d)) => self.on_dn(d),
            (State::AwaitingRlre, Spdu::Finish(f)) => self.on_fn_while_releasing(f),
            (State::AwaitingRlre, Spdu::NotFinished(_)) => {
                self.events.push_back(OsiEvent::ReleaseRefused);
                self.state = State::Associated;
                Ok(())
            }
            (_, Spdu::Abort(ab)) => {
                self.on_ab(ab);
                Ok(())
            }
            (_, Spdu::AbortAccept) => {
                self.close();
                Ok(())
            }
            (_, _) => self.session_error(OsiError::Unexpected("SPDU in this state")),
        }
    }

    fn on_cn(&mut self, cn: ConnectAccept) -> Result<(), OsiError> {
        if cn.version.unwrap_or(0x01) & session::VERSION_2 == 0 {
            return self.send_refuse_error(
                session::refuse_reason::VERSION_NOT_SUPPORTED,
                None,
                OsiError::SessionVersion,
            );
        }
        if self.cfg.check_selectors {
            if let (Some(theirs), Some(ours)) = (&cn.called_ssel, &self.cfg.local_ssel) {
                if theirs != ours {
                    return self.send_refuse_error(
                        session::refuse_reason::SSEL_UNKNOWN,
                        None,
                        OsiError::SelectorMismatch("called SSEL"),
                    );
                }
            }
        }
        if cn
            .user_data
            .as_ref()
            .is_some_and(|u| u.len() > CN_EXTENDED_USER_DATA_MAX)
        {
            // Spec §10.1: the CONNECT budget is 10 240 octets.
            return self.send_refuse_error(
                session::refuse_reason::IMPLEMENTATION_RESTRICTION,
                None,
                OsiError::Session(session::SessionError::UserDataTooLarge {
                    len: cn.user_data.as_ref().map_or(0, Vec::len),
                    max: CN_EXTENDED_USER_DATA_MAX,
                }),
            );
        }
        if cn.data_overflow.is_some_and(|o| o & 1 != 0) {
            // More than 10 240 octets of CONNECT user data (CDO SPDUs) is not implemented.
            return self.send_refuse_error(
                session::refuse_reason::IMPLEMENTATION_RESTRICTION,
                None,
                OsiError::Unexpected("CN data overflow (CDO)"),
            );
        }
        let Some(ud) = cn.user_data else {
            return self.presentation_error(
                OsiError::Unexpected("CN without user data"),
                abort_reason::UNEXPECTED_PPDU,
                event::CP,
            );
        };
        let cp = match CpType::decode(&ud, self.cfg.limits.ber, self.cfg.limits.max_psel_len) {
            Ok(cp) => cp,
            Err(e) => {
                return self.presentation_error(
                    e.into(),
                    abort_reason::UNRECOGNIZED_PPDU,
                    event::CP,
                )
            }
        };
        // Context negotiation (X.226 §6.3.2): accept ACSE, MMS and configured extras with BER.
        let mut known = vec![oids::acse_as(), self.cfg.mms_abstract_syntax.clone()];
        known.extend(self.cfg.extra_abstract_syntaxes.iter().cloned());
        self.contexts.clear();
        self.results.clear();
        for d in &cp.context_definitions {
            if self.contexts.iter().any(|c| c.id == d.id) {
                return self.presentation_error(
                    OsiError::Unexpected("duplicate presentation context id"),
                    abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                    event::CP,
                );
            }
            let ber = oids::ber();
            let (accepted, res) = if !known.contains(&d.abstract_syntax) {
                (
                    false,
                    ContextResult {
                        result: presentation::result::PROVIDER_REJECTION,
                        transfer_syntax: None,
                        provider_reason: Some(context_reason::ABSTRACT_SYNTAX_NOT_SUPPORTED),
                    },
                )
            } else if !d.transfer_syntaxes.contains(&ber) {
                (
                    false,
                    ContextResult {
                        result: presentation::result::PROVIDER_REJECTION,
                        transfer_syntax: None,
                        provider_reason: Some(context_reason::TRANSFER_SYNTAXES_NOT_SUPPORTED),
                    },
                )
            } else {
                (
                    true,
                    ContextResult {
                        result: presentation::result::ACCEPTANCE,
                        transfer_syntax: Some(ber),
                        provider_reason: None,
                    },
                )
            };
            self.contexts.push(NegotiatedContext {
                id: d.id,
                abstract_syntax: d.abstract_syntax.clone(),
                accepted,
            });
            self.results.push(res);
        }
        let acse_as = oids::acse_as();
        let mms_as = self.cfg.mms_abstract_syntax.clone();
        let find = |s: &Self, a: &Oid| {
            s.contexts
                .iter()
                .find(|c| c.accepted && &c.abstract_syntax == a)
                .map(|c| c.id)
        };
        self.mms_id = find(self, &mms_as);
        let Some(acse_id) = find(self, &acse_as) else {
            let cpr = CprPpdu {
                responding_psel: self.cfg.local_psel.clone(),
                results: self.results.clone(),
                provider_reason: Some(presentation::provider_reason::NOT_SPECIFIED),
                ..Default::default()
            };
            return self.send_refuse_error(
                session::refuse_reason::USER_REJECTION_WITH_DATA,
                Some(cpr.encode()),
                OsiError::ContextNotAccepted(0),
            );
        };
        self.acse_id = acse_id;
        if self.cfg.check_selectors {
            if let (Some(theirs), Some(ours)) = (&cp.called_psel, &self.cfg.local_psel) {
                if theirs != ours {
                    let cpr = CprPpdu {
                        responding_psel: self.cfg.local_psel.clone(),
                        provider_reason: Some(
                            presentation::provider_reason::CALLED_ADDRESS_UNKNOWN,
                        ),
                        ..Default::default()
                    };
                    return self.send_refuse_error(
                        session::refuse_reason::USER_REJECTION_WITH_DATA,
                        Some(cpr.encode()),
                        OsiError::SelectorMismatch("called PSEL"),
                    );
                }
            }
        }
        let Some(ud) = cp.user_data else {
            return self.presentation_error(
                OsiError::Unexpected("CP without user data"),
                abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                event::CP,
            );
        };
        // The AARQ: exactly one PDV on the ACSE context.
        let apdu = match self.acse_apdu(&ud) {
            Ok(a) => a,
            Err(e @ OsiError::Acse(_)) => return self.acse_error(e),
            Err(e) => {
                return self.presentation_error(
                    e,
                    abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                    event::CP,
                )
            }
        };
        let Apdu::Aarq(aarq) = apdu else {
            return self.acse_error(OsiError::Unexpected("APDU other than AARQ in CP"));
        };
        self.state = State::AwaitingAcceptDecision;
        self.peer_application_context = Some(aarq.application_context_name.clone());
        if !self
            .cfg
            .accepted_application_contexts
            .contains(&aarq.application_context_name)
        {
            let ctx = SecurityContext {
                role: self.role,
                contexts: &self.contexts,
            };
            self.security.unsupported_application_context(&ctx, &aarq);
            return self.send_rejection(Rejection {
                result: associate_result::REJECTED_PERMANENT,
                diagnostic: SourceDiagnostic::ServiceUser(
                    user_diagnostic::APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
                ),
                user_information: Vec::new(),
            });
        }
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let verdict = self.security.check_aarq(&ctx, &aarq);
        match verdict {
            AssociateVerdict::Accept { user_data } => {
                let user_data = user_data.or_else(|| ext_for(&aarq.user_information, self.mms_id));
                self.events.push_back(OsiEvent::AssociateIndication {
                    aarq: Box::new(aarq),
                    user_data,
                });
                Ok(())
            }
            AssociateVerdict::Reject(rej) => self.send_rejection(rej),
            AssociateVerdict::Abort(req) => self.local_security_abort(req),
        }
    }

    fn on_ac(&mut self, ac: ConnectAccept) -> Result<(), OsiError> {
        let Some(ud) = ac.user_data else {
            return self.presentation_error(
                OsiError::Unexpected("AC without user data"),
                abort_reason::UNEXPECTED_PPDU,
                event::CPA,
            );
        };
        let cpa = match CpaPpdu::decode(&ud, self.cfg.limits.ber, self.cfg.limits.max_psel_len) {
            Ok(c) => c,
            Err(e) => {
                return self.presentation_error(
                    e.into(),
                    abort_reason::UNRECOGNIZED_PPDU,
                    event::CPA,
                )
            }
        };
        // Results are positional (reference §5.7). An absent list means all accepted.
        for (c, r) in self.contexts.iter_mut().zip(cpa.results.iter()) {
            c.accepted = r.result == presentation::result::ACCEPTANCE;
        }
        if !self
            .contexts
            .iter()
            .any(|c| c.id == self.acse_id && c.accepted)
        {
            return self.presentation_error(
                OsiError::ContextNotAccepted(self.acse_id),
                abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                event::CPA,
            );
        }
        if !self
            .contexts
            .iter()
            .any(|c| Some(c.id) == self.mms_id && c.accepted)
        {
            self.mms_id = None;
        }
        let Some(ud) = cpa.user_data else {
            return self.presentation_error(
                OsiError::Unexpected("CPA without user data"),
                abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                event::CPA,
            );
        };
        let aare = match self.acse_apdu(&ud) {
            Ok(Apdu::Aare(a)) => a,
            Ok(_) => return self.acse_error(OsiError::Unexpected("APDU other than AARE in CPA")),
            Err(e @ OsiError::Acse(_)) => return self.acse_error(e),
            Err(e) => {
                return self.presentation_error(
                    e,
                    abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                    event::CPA,
                )
            }
        };
        let user_data = ext_for(&aare.user_information, self.mms_id);
        if aare.result != associate_result::ACCEPTED {
            // "AC + CPA + AARE(rejected)" as libiec61850-style servers may send (reference §5.8).
            let ctx = SecurityContext {
                role: self.role,
                contexts: &self.contexts,
            };
            let user_data = self
                .security
                .check_rejecting_aare(&ctx, &aare)
                .or(user_data);
            self.events.push_back(OsiEvent::AssociateRejected {
                reason: RejectReason::Acse {
                    result: aare.result,
                    diagnostic: aare.result_source_diagnostic,
                },
                aare: Some(Box::new(aare)),
                user_data,
            });
            self.close();
            return Ok(());
        }
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let verdict = self.security.check_aare(&ctx, &aare);
        match verdict {
            Verdict::Accept { user_data: over } => {
                self.state = State::Associated;
                self.events.push_back(OsiEvent::AssociateConfirm {
                    aare: Box::new(aare),
                    user_data: over.or(user_data),
                });
                Ok(())
            }
            Verdict::Abort(req) => {
                self.state = State::Associated;
                self.local_security_abort(req)
            }
        }
    }

    fn on_rf(&mut self, rf: session::Refuse) {
        let mut reason = RejectReason::Session(rf.reason);
        let mut aare = None;
        let mut user_data = None;
        if let Some(ud) = rf.user_data {
            if let Ok(cpr) = CprPpdu::decode(&ud, self.cfg.limits.ber, self.cfg.limits.max_psel_len)
            {
                if cpr.provider_reason.is_some() {
                    reason = RejectReason::Presentation(cpr.provider_reason);
                }
                if let Some(u) = cpr.user_data {
                    if let Ok(Apdu::Aare(a)) = self.acse_apdu(&u) {
                        reason = RejectReason::Acse {
                            result: a.result,
                            diagnostic: a.result_source_diagnostic,
                        };
                        let ctx = SecurityContext {
                            role: self.role,
                            contexts: &self.contexts,
                        };
                        user_data = self
                            .security
                            .check_rejecting_aare(&ctx, &a)
                            .or_else(|| ext_for(&a.user_information, self.mms_id));
                        aare = Some(Box::new(a));
                    }
                }
            }
        }
        self.events.push_back(OsiEvent::AssociateRejected {
            reason,
            aare,
            user_data,
        });
        self.close();
    }

    fn on_data(&mut self, d: &[u8]) -> Result<(), OsiError> {
        let ud = match UserData::decode(d, self.cfg.limits.ber) {
            Ok(u) => u,
            Err(e) => {
                return self.presentation_error(
                    e.into(),
                    abort_reason::UNRECOGNIZED_PPDU,
                    event::TD,
                )
            }
        };
        let UserData::Fully(pdvs) = ud else {
            return self.presentation_error(
                OsiError::Unexpected("simply-encoded-data"),
                abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                event::TD,
            );
        };
        let mut out = Vec::with_capacity(pdvs.len());
        for pdv in pdvs {
            let ok = pdv.context_id != self.acse_id
                && self
                    .contexts
                    .iter()
                    .any(|c| c.id == pdv.context_id && c.accepted);
            let pdu = match (ok, pdv.values) {
                (true, PdvValues::SingleAsn1Type(v)) | (true, PdvValues::OctetAligned(v)) => v,
                (false, _) => {
                    return self.presentation_error(
                        OsiError::ContextNotAccepted(pdv.context_id),
                        abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                        event::TD,
                    )
                }
                (true, PdvValues::Arbitrary(_)) => {
                    return self.presentation_error(
                        OsiError::Unexpected("arbitrary encoding"),
                        abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                        event::TD,
                    )
                }
            };
            out.push(OsiEvent::Data {
                context_id: pdv.context_id,
                pdu,
            });
        }
        self.events.extend(out);
        Ok(())
    }

    fn release_apdu(&mut self, r: session::Release) -> Result<Option<Apdu>, OsiError> {
        let Some(ud) = r.user_data else {
            self.acse_error(OsiError::Unexpected("release SPDU without user data"))?;
            return Ok(None);
        };
        match self.acse_apdu_bytes(&ud) {
            Ok(a) => Ok(Some(a)),
            Err(e @ OsiError::Acse(_)) => {
                self.acse_error(e)?;
                Ok(None)
            }
            Err(e) => {
                self.presentation_error(
                    e,
                    abort_reason::INVALID_PPDU_PARAMETER_VALUE,
                    event::S_RELEASE_INDICATION,
                )?;
                Ok(None)
            }
        }
    }

    fn on_fn(&mut self, f: session::Release) -> Result<(), OsiError> {
        let Some(apdu) = self.release_apdu(f)? else {
            return Ok(());
        };
        let Apdu::Rlrq(rlrq) = apdu else {
            return self.acse_error(OsiError::Unexpected("APDU other than RLRQ in FN"));
        };
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let v = self.security.check_rlrq(&ctx, &rlrq);
        match v {
            Verdict::Accept { user_data } => {
                let user_data = user_data.or_else(|| ext_for(&rlrq.user_information, self.mms_id));
                self.state = State::AwaitingReleaseResponse;
                self.events.push_back(OsiEvent::ReleaseIndication {
                    rlrq: Box::new(rlrq),
                    user_data,
                });
                Ok(())
            }
            Verdict::Abort(req) => self.local_security_abort(req),
        }
    }

    /// An FN while our own FN waits for its DN: a release collision, or iec61850-rust's answer
    /// to FN (an FN carrying an empty PGI 193, reference §9 item 10). Either way it ends the
    /// release, reported as a confirm; but whatever ACSE APDU it carries still goes through the
    /// security hook first (an RLRE through `check_rlre`, the peer's own RLRQ through
    /// `check_rlrq`), so a protected release (an E2E ReleaseRsp or ReleaseReq) is verified and
    /// a forged one aborts the association.
    fn on_fn_while_releasing(&mut self, f: session::Release) -> Result<(), OsiError> {
        let apdu = f
            .user_data
            .as_deref()
            .and_then(|u| self.acse_apdu_bytes(u).ok());
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let (rlre, verdict) = match apdu {
            Some(Apdu::Rlre(r)) => {
                let v = self.security.check_rlre(&ctx, &r);
                (r, Some(v))
            }
            Some(Apdu::Rlrq(q)) => {
                // The peer's release request: verified, but it is not an answer, so it carries
                // no confirm data.
                let v = match self.security.check_rlrq(&ctx, &q) {
                    Verdict::Accept { .. } => Verdict::Accept { user_data: None },
                    abort => abort,
                };
                (Rlre::default(), Some(v))
            }
            _ => (Rlre::default(), None),
        };
        let user_data = match verdict {
            Some(Verdict::Abort(req)) => return self.local_security_abort(req),
            Some(Verdict::Accept { user_data }) => {
                user_data.or_else(|| ext_for(&rlre.user_information, self.mms_id))
            }
            None => None,
        };
        self.events.push_back(OsiEvent::ReleaseConfirm {
            rlre: Box::new(rlre),
            user_data,
        });
        self.close();
        Ok(())
    }

    fn on_dn(&mut self, d: session::Release) -> Result<(), OsiError> {
        let Some(apdu) = self.release_apdu(d)? else {
            return Ok(());
        };
        let Apdu::Rlre(rlre) = apdu else {
            return self.acse_error(OsiError::Unexpected("APDU other than RLRE in DN"));
        };
        let ctx = SecurityContext {
            role: self.role,
            contexts: &self.contexts,
        };
        let v = self.security.check_rlre(&ctx, &rlre);
        match v {
            Verdict::Accept { user_data } => {
                let user_data = user_data.or_else(|| ext_for(&rlre.user_information, self.mms_id));
                self.events.push_back(OsiEvent::ReleaseConfirm {
                    rlre: Box::new(rlre),
                    user_data,
                });
                self.close();
                Ok(())
            }
            Verdict::Abort(req) => self.local_security_abort(req),
        }
    }

    fn on_ab(&mut self, ab: session::Abort) {
        let ppdu = ab
            .user_data
            .as_deref()
            .and_then(|u| AbortPpdu::decode(u, self.cfg.limits.ber).ok());
        match ppdu {
            Some(AbortPpdu::Aru(aru)) => {
                let abrt = aru
                    .user_data
                    .and_then(|u| self.acse_apdu(&u).ok())
                    .and_then(|a| match a {
                        Apdu::Abrt(a) => Some(a),
                        _ => None,
                    });
                if let Some(a) = &abrt {
                    let ctx = SecurityContext {
                        role: self.role,
                        contexts: &self.contexts,
                    };
                    self.security.check_abrt(&ctx, a);
                }
                let reason = abrt.as_ref().and_then(|a| a.diagnostic);
                self.peer_abort(AbortOrigin::PeerUser, abrt.map(Box::new), reason, None);
            }
            Some(AbortPpdu::Arp(arp)) => self.peer_abort(
                AbortOrigin::PeerProvider,
                None,
                arp.provider_reason,
                arp.event_identifier,
            ),
            None => self.peer_abort(AbortOrigin::PeerProvider, None, None, None),
        }
    }
}
