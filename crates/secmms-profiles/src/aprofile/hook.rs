//! The A-security-profile as an [`AssociationSecurity`] hook: the AARQ/AARE exchange of the
//! authentication values, the §5.1 peer policy and the ACSE-requirements checks of one
//! association.

use super::*;

pub(super) fn abort(diag: i64) -> AbortRequest {
    AbortRequest {
        diagnostic: Some(diag),
        user_information: Vec::new(),
    }
}

pub(super) fn reject(diag: i64) -> Rejection {
    Rejection {
        result: associate_result::REJECTED_PERMANENT,
        diagnostic: SourceDiagnostic::ServiceUser(diag),
        user_information: Vec::new(),
    }
}

/// What is wrong with a received mechanism-name ([`AProfile::mechanism_fault`]).
enum MechanismFault {
    /// None was sent.
    Missing,
    /// Another mechanism's.
    Unknown,
}

impl AProfile {
    pub(super) fn new(
        shared: AProfileShared,
        role: Role,
        conn: ConnectionInfo,
        peer: Option<PeerPolicy>,
        peer_identity: Option<PeerIdentity>,
    ) -> Self {
        AProfile {
            shared,
            role,
            conn,
            peer,
            peer_identity,
            phase: Phase::Idle,
            authenticated: None,
            now_ms: None,
        }
    }

    /// Sets the time (Unix milliseconds) of the calls that follow: the 10-minute window and
    /// certificate validity are checked at its second, our own values carry it. The owner
    /// stamps it before every call (`SecureAssociation` does); a hook never given a time runs at
    /// the epoch, where every certificate is invalid: it fails closed.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = Some(now_ms);
    }

    /// The shared state this hook was built from.
    pub fn shared(&self) -> &AProfileShared {
        &self.shared
    }

    /// The label of this association in events (the peer's name or address).
    pub fn label(&self) -> Option<String> {
        self.conn.label(self.peer.as_ref().map(|p| p.name.as_str()))
    }

    /// The peer verified on this association, if any.
    pub fn authenticated_peer(&self) -> Option<AuthenticatedPeer> {
        self.authenticated.clone()
    }

    /// Checks a received mechanism-name (`apdu`: "AARQ" or "AARE") against the A-profile's;
    /// raises the event for a missing or foreign one and says which it was.
    fn mechanism_fault(&self, name: Option<&Oid>, apdu: &str) -> Option<MechanismFault> {
        match name {
            None => {
                self.emit(
                    events::MECHANISM_REQUIRED,
                    format!("{apdu} without mechanism-name"),
                );
                Some(MechanismFault::Missing)
            }
            Some(m) if m.arcs() != MECHANISM_NAME => {
                self.emit(
                    events::MECHANISM_UNKNOWN,
                    format!("{apdu} mechanism-name {m}"),
                );
                Some(MechanismFault::Unknown)
            }
            Some(_) => None,
        }
    }

    pub(super) fn emit(&self, ev: AEvent, message: String) {
        let who = self.conn.label(self.peer.as_ref().map(|p| p.name.as_str()));
        self.shared.sink.record(&SecurityEvent {
            id: ev.id,
            mnemonic: ev.mnemonic,
            severity: ev.severity,
            message,
            association: who,
        });
    }

    pub(super) fn now(&self) -> i64 {
        self.now_ms.unwrap_or(0).div_euclid(1000)
    }

    /// The ACSE-requirements check of [`TOLERATE_ACSE_REQUIREMENTS_LOW_BIT`]: false when the
    /// association must be refused (the event is raised here).
    pub(super) fn requirements_accepted(
        &mut self,
        bits: Option<&secmms_osi::presentation::BitString>,
        which: &str,
    ) -> bool {
        match acse_requirements(bits) {
            AcseRequirements::Authentication => true,
            AcseRequirements::WrongLowBit if self.shared.cfg.tolerate_acse_requirements_low_bit => {
                self.emit(
                    events::ACSE_REQUIREMENTS_WRONG_BIT,
                    format!("{which}-acse-requirements sets the low bit instead of authentication (bit 0); tolerated"),
                );
                true
            }
            r => {
                self.emit(
                    events::ACSE_REQUIREMENTS_MISSING,
                    format!("{which}-acse-requirements {bits:?} does not select the authentication functional unit ({r:?})"),
                );
                false
            }
        }
    }

    pub(super) fn tls_fingerprints(&self) -> Vec<[u8; 32]> {
        let mut v = self.shared.cfg.tls_certificate_fingerprints.clone();
        v.extend_from_slice(&self.conn.tls_certificate_fingerprints);
        v
    }

    /// Verifies a received value and records the outcome.
    pub(super) fn verify(
        &mut self,
        av: Option<&AuthenticationValue>,
        expected: Option<PeerIdentity>,
    ) -> Result<Option<i64>, AuthFailure> {
        let (v, indirect) = extract_value(av)?;
        let cfg = &self.shared.cfg;
        let tls = self.tls_fingerprints();
        let configured = self
            .peer
            .as_ref()
            .and_then(|p| p.certificate_subject.clone());
        let inp = VerifyInput {
            validator: cfg.validator.as_ref(),
            now: self.now(),
            window: cfg.time_window_secs,
            tls_fingerprints: &tls,
            expected_identity: if cfg.require_address_binding {
                // Binding required: an unknown address never matches.
                Some(expected.as_ref().unwrap_or(&NO_IDENTITY))
            } else {
                None
            },
            configured_subject: configured.as_ref(),
            replay: self.shared.replay.as_ref(),
        };
        let peer = verify_value(&v, &inp)?;
        if peer.signed_over != SignedOver::RawTime {
            self.emit(
                events::SIGNATURE_FALLBACK,
                format!("signature verified over {:?}", peer.signed_over),
            );
        }
        self.emit(
            events::AUTHENTICATED,
            format!("peer authenticated: {:?}", peer.identity),
        );
        self.authenticated = Some(peer);
        Ok(indirect)
    }

    pub(super) fn own_value(
        &self,
        indirect: Option<i64>,
    ) -> Result<AuthenticationValue, AbortRequest> {
        let Some(creds) = &self.shared.cfg.credentials else {
            self.emit(
                events::LOCAL_FAILURE,
                "no A-profile credentials configured".into(),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        };
        let time = if TIME_WITH_MILLISECONDS {
            self.shared.stamps.next_ms(self.now_ms.unwrap_or(0))
        } else {
            self.shared.stamps.next(self.now())
        };
        match build_value_at(creds, time) {
            Ok(v) => Ok(wrap_value(&v, indirect)),
            Err(e) => {
                self.emit(events::LOCAL_FAILURE, format!("signing failed: {e}"));
                Err(abort(abort_diagnostic::NO_REASON_GIVEN))
            }
        }
    }
}

/// An identity that matches no certificate (used when the peer's address is unknown).
pub(super) static NO_IDENTITY: PeerIdentity = PeerIdentity::Jid(String::new());

impl AssociationSecurity for AProfile {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        let Some(peer) = self.peer.clone() else {
            self.emit(
                events::POLICY_REFUSED,
                "no peer policy for the initiator".into(),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        };
        if !peer.transport.allows(self.conn.tls) {
            self.emit(
                events::POLICY_REFUSED,
                format!(
                    "transport {} does not meet {:?}",
                    if self.conn.tls { "TLS" } else { "TCP" },
                    peer.transport
                ),
            );
            return Err(abort(abort_diagnostic::NO_REASON_GIVEN));
        }
        match peer.application {
            ApplicationSecurity::EndToEndSecure => {
                self.emit(
                    events::POLICY_REFUSED,
                    "peer requires END-TO-END SECURE; the A-profile cannot provide it".into(),
                );
                Err(abort(abort_diagnostic::NO_REASON_GIVEN))
            }
            ApplicationSecurity::NonSecure => {
                self.phase = Phase::AwaitingAare { sent: false };
                Ok(())
            }
            ApplicationSecurity::Secure => {
                // §11.3 DECISION: indirect-reference = pcid of mmsAuthenticationAS when that
                // context was proposed, nothing in sisco_compat mode.
                let pcid = if peer.sisco_compat {
                    None
                } else {
                    ctx.context_id(&self.shared.cfg.mms_authentication_as)
                        .map(i64::from)
                };
                let value = self.own_value(pcid)?;
                aarq.sender_acse_requirements = Some(requirements_authentication());
                aarq.mechanism_name = Some(mechanism_name());
                aarq.calling_authentication_value = Some(value);
                self.phase = Phase::AwaitingAare { sent: true };
                Ok(())
            }
        }
    }

    fn check_aarq(&mut self, _ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        let ap = form2_ap(&aarq.calling_ap_title);
        let ae = form2_ae(&aarq.calling_ae_qualifier);
        let Some(peer) = self
            .shared
            .table
            .find(self.conn.peer_address, ap, ae)
            .cloned()
        else {
            self.emit(
                events::POLICY_REFUSED,
                format!("no bilateral-table entry for {ap:?}/{ae:?}"),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        };
        self.peer = Some(peer.clone());
        if !peer.transport.allows(self.conn.tls) {
            self.emit(
                events::POLICY_REFUSED,
                format!(
                    "transport {} does not meet {:?}",
                    if self.conn.tls { "TLS" } else { "TCP" },
                    peer.transport
                ),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        }
        if peer.application == ApplicationSecurity::EndToEndSecure {
            self.emit(
                events::POLICY_REFUSED,
                "peer requires END-TO-END SECURE; the A-profile cannot provide it".into(),
            );
            return AssociateVerdict::Reject(reject(user_diagnostic::NO_REASON_GIVEN));
        }
        let required = peer.application == ApplicationSecurity::Secure;
        match &aarq.mechanism_name {
            None if !required && aarq.calling_authentication_value.is_none() => {
                self.phase = Phase::AarqAccepted {
                    respond: false,
                    indirect: None,
                };
                return AssociateVerdict::ACCEPT;
            }
            m => match self.mechanism_fault(m.as_ref(), "AARQ") {
                Some(MechanismFault::Missing) => {
                    return AssociateVerdict::Reject(reject(
                        user_diagnostic::AUTHENTICATION_MECHANISM_NAME_REQUIRED,
                    ))
                }
                Some(MechanismFault::Unknown) => {
                    return AssociateVerdict::Reject(reject(
                        user_diagnostic::AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED,
                    ))
                }
                None => {}
            },
        }
        if !self.requirements_accepted(aarq.sender_acse_requirements.as_ref(), "AARQ sender") {
            self.phase = Phase::Done;
            return AssociateVerdict::Reject(reject(user_diagnostic::AUTHENTICATION_REQUIRED));
        }
        let expected = identity_of(ap, ae);
        match self.verify(aarq.calling_authentication_value.as_ref(), expected) {
            Ok(indirect) => {
                self.phase = Phase::AarqAccepted {
                    respond: true,
                    indirect,
                };
                AssociateVerdict::ACCEPT
            }
            Err(f) => {
                self.emit(f.event(), f.to_string());
                self.phase = Phase::Done;
                AssociateVerdict::Abort(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
        }
    }

    fn decorate_aare(
        &mut self,
        _ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        if aare.result != associate_result::ACCEPTED {
            return Ok(());
        }
        if let Phase::AarqAccepted {
            respond: true,
            indirect,
        } = phase
        {
            // §11.4 step 6 with the §11.3 mirror DECISION.
            let value = self.own_value(indirect)?;
            aare.responder_acse_requirements = Some(requirements_authentication());
            aare.mechanism_name = Some(mechanism_name());
            aare.responding_authentication_value = Some(value);
        }
        Ok(())
    }

    fn check_aare(&mut self, _ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        let sent = matches!(phase, Phase::AwaitingAare { sent: true });
        if !sent && aare.mechanism_name.is_none() && aare.responding_authentication_value.is_none()
        {
            return Verdict::ACCEPT;
        }
        match self.mechanism_fault(aare.mechanism_name.as_ref(), "AARE") {
            Some(MechanismFault::Missing) => {
                return Verdict::Abort(abort(
                    abort_diagnostic::AUTHENTICATION_MECHANISM_NAME_REQUIRED,
                ))
            }
            Some(MechanismFault::Unknown) => {
                return Verdict::Abort(abort(
                    abort_diagnostic::AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED,
                ))
            }
            None => {}
        }
        if !self.requirements_accepted(aare.responder_acse_requirements.as_ref(), "AARE responder")
        {
            return Verdict::Abort(abort(abort_diagnostic::AUTHENTICATION_REQUIRED));
        }
        // Binding: the responding titles when the AARE carries them, else the called ones.
        let expected = identity_of(
            form2_ap(&aare.responding_ap_title),
            form2_ae(&aare.responding_ae_qualifier),
        )
        .or_else(|| self.peer_identity.clone());
        match self.verify(aare.responding_authentication_value.as_ref(), expected) {
            Ok(_) => Verdict::ACCEPT,
            Err(f) => {
                self.emit(f.event(), f.to_string());
                Verdict::Abort(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
        }
    }

    fn check_abrt(&mut self, _ctx: &SecurityContext<'_>, abrt: &Abrt) {
        if matches!(self.phase, Phase::AwaitingAare { sent: true }) {
            self.emit(
                events::PEER_ABORTED,
                format!(
                    "peer aborted during authentication (diagnostic {:?})",
                    abrt.diagnostic
                ),
            );
        }
        self.phase = Phase::Done;
    }
}
