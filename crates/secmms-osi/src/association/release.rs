//! The data phase and the end of an association on receipt: DATA TRANSFER, FINISH (including a
//! release collision), DISCONNECT and ABORT.

use super::*;

impl<H: AssociationSecurity> Association<H> {
    pub(super) fn on_data(&mut self, d: &[u8]) -> Result<(), OsiError> {
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

    pub(super) fn release_apdu(&mut self, r: session::Release) -> Result<Option<Apdu>, OsiError> {
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

    pub(super) fn on_fn(&mut self, f: session::Release) -> Result<(), OsiError> {
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
    pub(super) fn on_fn_while_releasing(&mut self, f: session::Release) -> Result<(), OsiError> {
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

    pub(super) fn on_dn(&mut self, d: session::Release) -> Result<(), OsiError> {
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

    pub(super) fn on_ab(&mut self, ab: session::Abort) {
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
