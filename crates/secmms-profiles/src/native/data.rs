//! The data phase of [`NativeState`](super::NativeState): protecting and unprotecting MMS PDUs
//! on the e2eSecurityAS context, timers, re-checking or refusing the peer, and what the owner
//! reads of the state.

use super::*;

impl NativeState {
    /// Sets the time of the calls that follow (the hook's and the data phase's): the owner
    /// stamps it before every call that may reach the engine (`SecureAssociation` does).
    pub fn set_now(&mut self, now: TimeStamp) {
        self.hook.now = Some(now);
    }

    /// Protects one MMS PDU (ClearTransfer or EncrTransfer, as agreed): the presentation context
    /// of e2eSecurityAS and the value to send on it (`Association::send_data_on`).
    pub fn protect(&mut self, mms_pdu: &[u8]) -> Result<(u32, Vec<u8>), Box<Fault>> {
        let (Phase::Established, Some(pcid)) = (self.mapping.phase, self.mapping.e2e_pcid) else {
            return Err(NativeError::NotEstablished.into());
        };
        let out = self.mapping.engine.protect(mms_pdu, self.hook.now());
        match out {
            Ok((_, bytes)) => {
                self.mapping.drain(&self.hook.shared);
                Ok((pcid, bytes))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Checks a received P-DATA value (`OsiEvent::Data`): `Ok(Some(mms))` for a verified (and
    /// decrypted) transfer. Every transfer of this engine carries a PrPDU, so `Ok(None)` is not
    /// produced today; it stays for PDUs without application data. Data on another context
    /// than e2eSecurityAS fails with the `osiDiag` invalid-pci abort (§15.6).
    pub fn unprotect(
        &mut self,
        context_id: u32,
        pdu: &[u8],
    ) -> Result<Option<Vec<u8>>, Box<Fault>> {
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
        let shared = &h.shared;
        let (Phase::Established, Some(pcid)) = (g.phase, g.e2e_pcid) else {
            return Err(NativeError::NotEstablished.into());
        };
        if context_id != pcid {
            // §15.6: after establishment every PrPDU travels inside a transfer SecPDU.
            let d = OsiDiagnostic::InvalidPci;
            let event = g.env_event(
                shared,
                events::OSI_INV_PCI,
                format!("data on presentation context {context_id}, e2eSecurityAS is {pcid}"),
                Some(d),
            );
            g.phase = Phase::Closed;
            return Err(Box::new(Fault {
                abort: Some(osi_diag_abort(pcid, d)),
                error: NativeError::Environment {
                    event,
                    diagnostic: d,
                },
            }));
        }
        let encrypted = g.engine.protection().is_some_and(|m| m.encrypted());
        let kind = wire::transfer_kind(pdu, shared.limits()).unwrap_or(if encrypted {
            SecPduKind::EncrTransfer
        } else {
            SecPduKind::ClearTransfer
        });
        let out = g.engine.receive(kind, pdu, h.now());
        match out {
            Ok(Output::Data(d)) => {
                g.drain(shared);
                Ok(Some(d))
            }
            Ok(_) => {
                g.drain(shared);
                Ok(None)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Initiator: asks the engine for a key refresh (§13.3.2) that travels with the next
    /// protected PDU, instead of waiting for the rekey interval. `false` (nothing asked) on a
    /// responder or outside the established phase.
    pub fn start_rekey(&mut self) -> bool {
        match (&mut self.mapping.engine, self.mapping.phase) {
            (Engine::Client(c), Phase::Established) => {
                c.start_rekey();
                true
            }
            _ => false,
        }
    }

    /// Runs the engine's timers (rekey timeout, old-key grace) as of the current time; a rekey
    /// timeout fails with the DtSecAbort to send. Early calls do nothing.
    pub fn handle_timeout(&mut self) -> Result<(), Box<Fault>> {
        if self.mapping.phase != Phase::Established {
            return Ok(());
        }
        match self.mapping.engine.handle_timeout(self.hook.now()) {
            Ok(()) => {
                self.mapping.drain(&self.hook.shared);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Responder, after the HandshakeReq was verified and before the association is answered:
    /// refuses the peer for a reason found outside clause 14 (OCSP). Prepares the
    /// HandshakeSecReject carrying `diag` for the rejecting AARE, raises `event` with `detail`
    /// and returns the error to report once the owner has called `Association::reject` with
    /// [`SEC_REJECT_RESULT`] / [`REJECT_DIAGNOSTIC`] (the hook then puts the SecPDU in the
    /// AARE). Outside that moment it returns `Err(NativeError::NotEstablished)`.
    pub fn refuse_peer(
        &mut self,
        diag: HandshakeDiagnostic,
        event: secmms_e2e::events::EventDef,
        detail: String,
    ) -> Result<NativeError, NativeError> {
        let NativeState {
            mapping: g,
            hook: h,
        } = self;
        if g.phase != Phase::AwaitingDecision {
            return Err(NativeError::NotEstablished);
        }
        let now = h.now();
        let bytes = match &mut g.engine {
            Engine::Server(s) => s.security_reject(diag, now),
            Engine::Client(_) => Err(E2eError::Config("refuse_peer on a client association")),
        };
        g.drain(&h.shared);
        let bytes = bytes.map_err(NativeError::Engine)?;
        let e = SecurityEvent {
            id: event.id(),
            mnemonic: event.mnemonic,
            severity: event.severity,
            message: detail,
            association: g.who(),
        };
        h.shared.record(&e);
        g.last = Some(NativeDiagnostic::Security {
            event: e.id,
            mnemonic: event.mnemonic,
            cause: Some(Diagnostic::Handshake(diag)),
            sent: Some(SecPduKind::HandshakeSecReject),
        });
        let user_information = wire::encode(EnvApdu::Aare, SecPduKind::HandshakeSecReject, bytes)
            .ok()
            .zip(g.e2e_pcid)
            .map(|(v, p)| wire::external(p, v))
            .unwrap_or_default();
        g.pending_reject = Some(user_information);
        Ok(NativeError::Security {
            event: e,
            cause: Some(Diagnostic::Handshake(diag)),
            sent: Some(SecPduKind::HandshakeSecReject),
        })
    }

    /// Validates the peer's certificate again (after the CRLs were reloaded). A peer now
    /// revoked fails with the DtSecAbort to send and the `E2E_PEER_CERT_REVOKED` incident
    /// raised. Other validation results leave the association alone: only revocation is
    /// re-evaluated.
    pub fn recheck_peer(&mut self) -> Result<(), Box<Fault>> {
        if self.mapping.phase != Phase::Established {
            return Ok(());
        }
        let Some(cert) = self.mapping.engine.peer_certificate() else {
            return Ok(());
        };
        let now = self.hook.now();
        match self
            .hook
            .shared
            .ctx
            .validator
            .validate(&cert, &[], now.unix_secs())
        {
            Err(secmms_pki::CertError::Revoked) => {
                let e = self.mapping.engine.abort_revoked_peer(
                    "the peer's application certificate is revoked by a reloaded CRL",
                    now,
                );
                Err(self.fail(e))
            }
            _ => Ok(()),
        }
    }

    /// When [`Self::handle_timeout`] should next run, if a timer is running.
    pub fn next_timeout(&self) -> Option<TimeStamp> {
        self.mapping.engine.next_timeout()
    }

    /// The peer's application certificate (DER) once its HandshakeReq or HandshakeAcc verified.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.mapping.engine.peer_certificate()
    }

    /// The protection agreed in the handshake.
    pub fn protection(&self) -> Option<ProtectionMode> {
        self.mapping.engine.protection()
    }

    /// The authenticated peer (the identity in its verified certificate).
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.mapping.peer.as_ref()
    }

    /// What the last failure, rejection or abort was.
    pub fn last_diagnostic(&self) -> Option<&NativeDiagnostic> {
        self.mapping.last.as_ref()
    }

    /// True in the data-transfer phase.
    pub fn is_established(&self) -> bool {
        self.mapping.phase == Phase::Established
    }

    /// The presentation context of e2eSecurityAS, once known.
    pub fn e2e_context_id(&self) -> Option<u32> {
        self.mapping.e2e_pcid
    }

    /// The E2E engine's state.
    pub fn engine_state(&self) -> E2eState {
        self.mapping.engine.state()
    }

    /// The AssoID (§13.3.1.1), once known.
    pub fn asso_id(&self) -> Option<String> {
        self.mapping.engine.asso_id()
    }

    /// The label of this association in events: the AssoID once known, else the peer's name or
    /// address.
    pub fn label(&self) -> Option<String> {
        self.mapping.who()
    }

    /// Turns an engine error into the fault: a failed check closes the association with the
    /// engine's reply in an ABRT.
    pub(super) fn fail(&mut self, e: E2eError) -> Box<Fault> {
        let g = &mut self.mapping;
        let shared = &self.hook.shared;
        let E2eError::Rejected(r) = e else {
            g.drain(shared);
            return NativeError::Engine(e).into();
        };
        g.security_failure(shared, &r);
        g.phase = Phase::Closed;
        let pcid = g.e2e_pcid.unwrap_or(FIRST_EXTRA_CONTEXT_ID);
        let sent = r.reply.as_ref().map(|(k, _)| *k);
        let req = g.abort_with_reply(r.reply, pcid);
        Box::new(Fault {
            abort: Some(req),
            error: NativeError::Security {
                event: r.event,
                cause: r.cause,
                sent,
            },
        })
    }
}
