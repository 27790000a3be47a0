//! The per-association bookkeeping of the OSI mapping: event labels and recording, the aborts
//! the mapping builds, and the helpers of the §15.7 checks (titles, identities, kernel-only
//! ACSE).

use super::*;
pub(super) use secmms_osi::acse::form2_ap_title as form2_ap;

impl MappingState {
    /// The association label of events: the AssoID once known, else the peer's name/address.
    pub(super) fn who(&self) -> Option<String> {
        match (self.engine.asso_id(), &self.label) {
            (Some(a), Some(l)) => Some(format!("{l} {a}")),
            (a, l) => a.or_else(|| l.clone()),
        }
    }

    /// Forwards the engine's queued events to the sink.
    pub(super) fn drain(&mut self, shared: &NativeShared) {
        // Key-log records first: the warning event of each follows it.
        while let Some(k) = self.engine.poll_key_material() {
            shared.record_keys(&k);
        }
        while let Some(e) = self.engine.poll_event() {
            shared.record(&e);
        }
    }

    /// Raises an environment event and records it as the last diagnostic.
    pub(super) fn env_event(
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
    pub(super) fn local_event(&mut self, shared: &NativeShared, ev: EnvEvent, msg: String) {
        let e = ev.event(msg.clone(), self.who().as_deref());
        shared.record(&e);
        if ev == events::E2E_POLICY_REFUSED {
            self.last = Some(NativeDiagnostic::Policy(msg));
        } else if ev == events::E2E_LOCAL_FAILURE {
            self.last = Some(NativeDiagnostic::Local(msg));
        }
    }

    /// Records a failed E2E check (the engine queued its event).
    pub(super) fn security_failure(&mut self, shared: &NativeShared, r: &E2eRejection) {
        self.drain(shared);
        self.last = Some(NativeDiagnostic::Security {
            event: r.event.id,
            mnemonic: r.event.mnemonic,
            cause: r.cause,
            sent: r.reply.as_ref().map(|(k, _)| *k),
        });
    }

    /// The pcid to reference in an ABRT: the e2eSecurityAS context, or the id it would have.
    pub(super) fn abort_pcid(&self, ctx: &SecurityContext<'_>, cfg: &NativeConfig) -> u32 {
        self.e2e_pcid
            .or_else(|| ctx.context_id(&cfg.e2e_security_as))
            .unwrap_or(FIRST_EXTRA_CONTEXT_ID)
    }

    /// The abort request carrying a SecPDU reply of the engine in an ABRT (or none).
    pub(super) fn abort_with_reply(
        &self,
        reply: Option<(SecPduKind, Vec<u8>)>,
        pcid: u32,
    ) -> AbortRequest {
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

pub(super) fn osi_diag_abort(pcid: u32, d: OsiDiagnostic) -> AbortRequest {
    AbortRequest {
        diagnostic: None,
        user_information: wire::external(pcid, wire::encode_osi_diag(d)),
    }
}

/// The form-2 AE-qualifier, refused when negative (an AE-qualifier names an entity here).
pub(super) fn form2_ae(q: &Option<AeQualifier>) -> Option<i64> {
    match q {
        Some(AeQualifier::Form2(v)) if *v >= 0 => Some(*v),
        _ => None,
    }
}

/// The MMS PDU the association put in the user-information (EXTERNAL on the MMS context).
pub(super) fn mms_of(ui: &[External]) -> Option<Vec<u8>> {
    ui.iter().find_map(|e| e.single_value()).map(<[u8]>::to_vec)
}

/// An identity that matches no certificate (binding required but the address is unknown).
pub(super) fn no_identity() -> PeerIdentity {
    PeerIdentity::Jid(String::new())
}

/// The identity the peer's certificate must carry: the Annex G.6.2 binding of its titles (if
/// required) and the subject of its §5.1 row (if configured) must both match, so they must be
/// equal; `Err` when they contradict each other.
pub(super) fn expected_identity(
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
pub(super) fn acc_identity(pdu: &[u8], limits: Limits) -> Option<PeerIdentity> {
    match SecPdu::decode(SecPduKind::HandshakeAcc, pdu, limits) {
        Ok(SecPdu::HandshakeAcc(h)) => CertInfo::parse(&h.token1.pk_cert).ok()?.identity,
        _ => None,
    }
}

pub(super) fn kernel_only_violation(
    mech: bool,
    value: bool,
    requirements: bool,
) -> Option<&'static str> {
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
