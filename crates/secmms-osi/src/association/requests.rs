//! The local user's service primitives: connect, accept and reject an association, send data,
//! release (request and response), abort, and the transport closing under the machine.

use super::*;

impl<H: AssociationSecurity> Association<H> {
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

    pub(super) fn new_aare(&self, result: i64, diagnostic: SourceDiagnostic) -> Aare {
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

    pub(super) fn send_rejection(&mut self, rej: Rejection) -> Result<(), OsiError> {
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

    pub(super) fn send_refuse_error(
        &mut self,
        reason: u8,
        user_data: Option<Vec<u8>>,
        e: OsiError,
    ) -> Result<(), OsiError> {
        self.tell_security(&e);
        self.events.push_back(OsiEvent::ProtocolError(e));
        self.send_refuse(reason, user_data)
    }

    pub(super) fn send_refuse(
        &mut self,
        reason: u8,
        user_data: Option<Vec<u8>>,
    ) -> Result<(), OsiError> {
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

    pub(super) fn session_started(&self) -> bool {
        !matches!(
            self.state,
            State::Idle | State::AwaitingCc | State::AwaitingCr | State::AwaitingCn
        )
    }

    pub(super) fn send_user_abort(&mut self, req: AbortRequest) -> Result<(), OsiError> {
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

    pub(super) fn queue_abrt(&mut self, abrt: Abrt, td: u8) -> Result<(), OsiError> {
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
}
