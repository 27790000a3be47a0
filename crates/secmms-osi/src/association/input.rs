//! Received bytes: TPKT and TP0 (CR, CC, DT, DR, ER), reassembly into TSDUs, session SPDU
//! dispatch and the reactions to errors of each layer.

use super::*;

impl<H: AssociationSecurity> Association<H> {
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
                Ok(Some(t)) => {
                    self.tpdus_received += 1;
                    self.on_tpdu(&t)?
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be framed: nothing can be sent that the peer would parse.
                    self.protocol_error(e.into());
                }
            }
        }
        Ok(())
    }

    pub(super) fn cotp_error(&mut self, e: CotpError, tpdu: &[u8]) -> Result<(), OsiError> {
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

    pub(super) fn on_tpdu(&mut self, raw: &[u8]) -> Result<(), OsiError> {
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

    pub(super) fn on_cr(&mut self, cr: ConnectTpdu) -> Result<(), OsiError> {
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

    pub(super) fn on_cc(&mut self, cc: ConnectTpdu) -> Result<(), OsiError> {
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

    pub(super) fn session_error(&mut self, e: OsiError) -> Result<(), OsiError> {
        let r = self.queue_spdu(&Spdu::Abort(session::Abort {
            transport_disconnect: Some(session::TRANSPORT_DISCONNECT_PROTOCOL_ERROR),
            ..Default::default()
        }));
        self.protocol_error(e);
        r
    }

    pub(super) fn presentation_error(
        &mut self,
        e: OsiError,
        reason: i64,
        ev: i64,
    ) -> Result<(), OsiError> {
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

    pub(super) fn acse_error(&mut self, e: OsiError) -> Result<(), OsiError> {
        let abrt = Abrt {
            source: abort_source::SERVICE_PROVIDER,
            diagnostic: Some(abort_diagnostic::PROTOCOL_ERROR),
            ..Default::default()
        };
        let r = self.queue_abrt(abrt, session::TRANSPORT_DISCONNECT_USER_ABORT);
        self.protocol_error(e);
        r
    }

    pub(super) fn peer_abort(
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

    pub(super) fn local_security_abort(&mut self, req: AbortRequest) -> Result<(), OsiError> {
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
    pub(super) fn acse_apdu_bytes(&self, ud: &[u8]) -> Result<Apdu, OsiError> {
        self.acse_apdu(&UserData::decode(ud, self.cfg.limits.ber)?)
    }

    /// Extracts the single ACSE APDU of a presentation user data (decoded from the bytes as
    /// received, so the APDU's raw fields are the received octets).
    pub(super) fn acse_apdu(&self, ud: &UserData) -> Result<Apdu, OsiError> {
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

    pub(super) fn on_tsdu(&mut self, tsdu: &[u8]) -> Result<(), OsiError> {
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
}
