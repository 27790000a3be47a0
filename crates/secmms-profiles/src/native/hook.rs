//! The ACSE hook of clause 15 (Table 4): the SecPDUs carried in AARQ, AARE, RLRQ, RLRE and ABRT,
//! the §15.7 checks of each APDU, and the environment's rejects and aborts.

use super::*;

impl HookCtx {
    /// Responder: refuses the AARQ with an AARE without SecPDU (§15.7 DECISION).
    pub(super) fn env_reject(
        &self,
        g: &mut MappingState,
        ev: EnvEvent,
        msg: String,
        diagnostic: i64,
    ) -> AssociateVerdict {
        g.env_event(&self.shared, ev, msg, None);
        g.phase = Phase::Refused;
        AssociateVerdict::Reject(plain_rejection(diagnostic))
    }

    /// Responder: refuses the AARQ for a §5.1 policy reason.
    pub(super) fn policy_reject(&self, g: &mut MappingState, msg: String) -> AssociateVerdict {
        g.local_event(&self.shared, events::E2E_POLICY_REFUSED, msg);
        g.phase = Phase::Refused;
        AssociateVerdict::Reject(plain_rejection(user_diagnostic::NO_REASON_GIVEN))
    }

    /// Aborts with `osiDiag` after an environment check failed (§15.7 DECISION).
    pub(super) fn env_abort(
        &self,
        g: &mut MappingState,
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
    pub(super) fn check_titles(&self, aarq: &Aarq) -> Result<(Oid, i64), (EnvEvent, String)> {
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
    pub(super) fn check_responding_titles(
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

pub(super) fn plain_rejection(diagnostic: i64) -> Rejection {
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
    pub(super) fn decorate_release(
        &mut self,
        g: &mut MappingState,
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
        let shared = h.shared.clone();
        let cfg = &shared.cfg;
        let refuse =
            |g: &mut MappingState, ev: EnvEvent, msg: String| -> Result<(), AbortRequest> {
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
            .decorate_release(&mut self.mapping, EnvApdu::Rlrq, &mut rlrq.user_information)
    }

    fn check_rlrq(&mut self, ctx: &SecurityContext<'_>, rlrq: &Rlrq) -> Verdict {
        self.hook.check_release(
            &mut self.mapping,
            ctx,
            EnvApdu::Rlrq,
            &rlrq.user_information,
        )
    }

    fn decorate_rlre(
        &mut self,
        _ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        self.hook
            .decorate_release(&mut self.mapping, EnvApdu::Rlre, &mut rlre.user_information)
    }

    fn check_rlre(&mut self, ctx: &SecurityContext<'_>, rlre: &Rlre) -> Verdict {
        self.hook.check_release(
            &mut self.mapping,
            ctx,
            EnvApdu::Rlre,
            &rlre.user_information,
        )
    }

    fn decorate_abrt(&mut self, _ctx: &SecurityContext<'_>, abrt: &mut Abrt) {
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
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
    pub(super) fn check_release(
        &mut self,
        g: &mut MappingState,
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
