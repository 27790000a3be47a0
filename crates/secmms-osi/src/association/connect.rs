//! Association establishment on receipt: the session CONNECT (with the presentation CP and the
//! ACSE AARQ inside it, checked by the security hook), ACCEPT and REFUSE.

use super::*;

impl<H: AssociationSecurity> Association<H> {
    pub(super) fn on_cn(&mut self, cn: ConnectAccept) -> Result<(), OsiError> {
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

    pub(super) fn on_ac(&mut self, ac: ConnectAccept) -> Result<(), OsiError> {
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

    pub(super) fn on_rf(&mut self, rf: session::Refuse) {
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
}
