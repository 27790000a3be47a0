//! Release and aborts (§13.1.6–13.1.7): sending ReleaseReq, ReleaseRsp and ApplAbort, and the
//! dispatch of every SecPDU received after the handshake (transfers, release, collision,
//! aborts), with the events of received diagnostics.

use super::*;

impl Core {
    pub(super) fn release_req(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        if self.state != State::Established {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ReleaseReq,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        self.state = State::ReleaseSent;
        Ok(b)
    }

    pub(super) fn release_rsp(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        let collision = self.state == State::ReleaseCollision && !self.collision.0;
        if self.state != State::ReleaseReceived && !collision {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ReleaseRsp,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        if collision {
            self.collision.0 = true;
            if self.collision.1 {
                self.close();
            }
        } else {
            self.close();
        }
        Ok(b)
    }

    pub(super) fn appl_abort(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> R<Vec<u8>> {
        if self.state == State::Closed {
            return Err(E2eError::State(self.state));
        }
        if let Some(a) = appl {
            check_prpdu(a, self.limits())?;
        }
        let b = self.build_token3_pdu(
            SecPduKind::ApplAbort,
            Token3Body::ApplData(appl.map(<[u8]>::to_vec)),
            now,
        )?;
        self.close();
        Ok(b)
    }

    /// Receives a PDU of the data phase or of termination.
    pub(super) fn receive_common(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> R<Output> {
        match (self.state, kind) {
            (
                State::Established | State::ReleaseSent | State::ReleaseCollision,
                SecPduKind::ClearTransfer | SecPduKind::EncrTransfer,
            ) => self.unprotect(kind, bytes, now),
            (State::ReleaseCollision, SecPduKind::ReleaseRsp) if !self.collision.1 => {
                let p = self
                    .verify_token3(13, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                self.collision.1 = true;
                if self.collision.0 {
                    self.close();
                }
                Ok(Output::Released {
                    appl_data: appl_of(&p.body),
                })
            }
            (State::Established | State::ReleaseSent, SecPduKind::ReleaseReq) => {
                match self.verify_token3(12, kind, bytes, now) {
                    Ok(p) => {
                        self.state = if self.state == State::ReleaseSent {
                            self.collision = (false, false);
                            State::ReleaseCollision
                        } else {
                            State::ReleaseReceived
                        };
                        Ok(Output::ReleaseRequested {
                            appl_data: appl_of(&p.body),
                        })
                    }
                    // §15.6 DECISION: a ReleaseReq that fails verification is answered by DtSecAbort.
                    Err(f) => {
                        let f = match f.cause {
                            Some(Diagnostic::Handshake(HandshakeDiagnostic::UnexpectedVersion)) => {
                                Fail {
                                    cause: Some(Diagnostic::Dt(DtDiagnostic::UnexpectedVersion)),
                                    ..f
                                }
                            }
                            Some(Diagnostic::Handshake(HandshakeDiagnostic::InvalidTimeValue)) => {
                                Fail {
                                    cause: Some(Diagnostic::Dt(DtDiagnostic::InvalidTimeValue)),
                                    ..f
                                }
                            }
                            Some(Diagnostic::Handshake(_)) => Fail {
                                cause: Some(Diagnostic::Dt(DtDiagnostic::ProtocolError)),
                                ..f
                            },
                            _ => f,
                        };
                        Err(self.reject(f, Some(SecPduKind::DtSecAbort), now))
                    }
                }
            }
            (State::ReleaseSent, SecPduKind::ReleaseRsp) => {
                let p = self
                    .verify_token3(13, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                self.close();
                Ok(Output::Released {
                    appl_data: appl_of(&p.body),
                })
            }
            (s, SecPduKind::DtSecAbort | SecPduKind::ApplAbort | SecPduKind::HandshakeSecAbort)
                if s != State::Closed =>
            {
                let group = match kind {
                    SecPduKind::DtSecAbort => 6,
                    SecPduKind::ApplAbort => 7,
                    _ => 5,
                };
                let p = self
                    .verify_token3(group, kind, bytes, now)
                    .map_err(|f| self.reject(f, None, now))?;
                let (diagnostic, appl_data) = match &p.body {
                    Token3Body::DtDiag(d) => (d.map(Diagnostic::Dt), None),
                    Token3Body::HandshakeDiag(d) => (d.map(Diagnostic::Handshake), None),
                    Token3Body::ApplData(a) => (None, a.clone()),
                };
                self.record_unknown_diag(kind, p.unknown_diag);
                self.record_received_abort(kind, diagnostic);
                self.close();
                Ok(Output::Aborted {
                    kind,
                    diagnostic,
                    appl_data,
                })
            }
            (State::Closed, _) => Err(E2eError::State(State::Closed)),
            _ => {
                let f = if matches!(
                    self.state,
                    State::Established
                        | State::ReleaseSent
                        | State::ReleaseReceived
                        | State::ReleaseCollision
                ) {
                    dfail(
                        dt(false, DtCheck::ProtocolErr),
                        DtDiagnostic::ProtocolError,
                        "unexpected SecPDU",
                    )
                } else {
                    let def = if self.role == Role::Server {
                        req::PROTOCOL_ERR
                    } else {
                        acc::PROTOCOL_ERR
                    };
                    hfail(def, HandshakeDiagnostic::ProtocolError, "unexpected SecPDU")
                };
                let reply = match self.state {
                    State::Established
                    | State::ReleaseSent
                    | State::ReleaseReceived
                    | State::ReleaseCollision => Some(SecPduKind::DtSecAbort),
                    State::AwaitAcc => Some(SecPduKind::HandshakeSecAbort),
                    _ => None,
                };
                Err(self.reject(f, reply, now))
            }
        }
    }

    /// Logs a received diagnostic number that names no value (§14.2 DECISION: handled as
    /// `no-reason-given`, the raw number logged).
    pub(super) fn record_unknown_diag(&mut self, kind: SecPduKind, raw: Option<i64>) {
        if let Some(raw) = raw {
            let e = events::UNKNOWN_DIAG_RCVD.event(
                format!("{kind:?} received with unknown diagnostic number {raw} (taken as no-reason-given)"),
                self.asso_str().as_deref(),
            );
            self.push_event(e);
        }
    }

    pub(super) fn record_received_abort(&mut self, kind: SecPduKind, diag: Option<Diagnostic>) {
        let def = match (kind, diag) {
            (SecPduKind::DtSecAbort, None) => Some(events::DT_ABORT_ALARM_RCVD),
            (SecPduKind::HandshakeSecAbort, None) => Some(events::SEC_ABORT_ALARM_RCVD),
            (SecPduKind::DtSecAbort, Some(Diagnostic::Dt(d))) => events::dt_abort_received(d),
            (SecPduKind::HandshakeSecAbort, Some(Diagnostic::Handshake(d))) => {
                Some(events::handshake_diag_received(false, d))
            }
            _ => None,
        };
        if let Some(def) = def {
            let e = def.event(
                match diag {
                    Some(Diagnostic::Dt(d)) => {
                        format!("{kind:?} received with diagnostic {}", d.name())
                    }
                    Some(Diagnostic::Handshake(d)) => {
                        format!("{kind:?} received with diagnostic {}", d.name())
                    }
                    None => format!("{kind:?} received without diagnostic"),
                },
                self.asso_str().as_deref(),
            );
            self.push_event(e);
        }
    }
}

pub(super) fn appl_of(b: &Token3Body) -> Option<Vec<u8>> {
    match b {
        Token3Body::ApplData(a) => a.clone(),
        _ => None,
    }
}
