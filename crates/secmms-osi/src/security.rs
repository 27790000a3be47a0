//! Association-security hook (IEC 62351-4 §11 A-profile and §15 E2E OSI mapping).
//!
//! The state machine calls an [`AssociationSecurity`] implementation to decorate every outgoing
//! AARQ, AARE, RLRQ, RLRE and ABRT, and to check every incoming one (each decoded APDU carries its
//! raw received bytes). The profiles implement this trait in their own crates; this crate never
//! names them. [`NoSecurity`] is the default: it changes nothing and accepts everything.

use crate::acse::{Aare, Aarq, Abrt, External, Rlre, Rlrq, SourceDiagnostic};
use secmms_ber::Oid;

/// Which end of the ACSE association (X.227) the hook runs in: the one that sends the AARQ or the
/// one that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the AARQ (client).
    Initiator,
    /// Receives the AARQ (server).
    Responder,
}

/// A presentation context of the association as known when the hook runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedContext {
    /// presentation-context-identifier.
    pub id: u32,
    /// abstract-syntax-name.
    pub abstract_syntax: Oid,
    /// True once the responder accepted it (initiator: true until the CPA says otherwise).
    pub accepted: bool,
}

/// What the hook sees besides the APDU.
#[derive(Debug, Clone, Copy)]
pub struct SecurityContext<'a> {
    /// Our role.
    pub role: Role,
    /// The presentation contexts (proposed or negotiated).
    pub contexts: &'a [NegotiatedContext],
}

impl SecurityContext<'_> {
    /// The identifier of the context with this abstract syntax, if proposed and accepted.
    pub fn context_id(&self, abstract_syntax: &Oid) -> Option<u32> {
        self.contexts
            .iter()
            .find(|c| c.accepted && &c.abstract_syntax == abstract_syntax)
            .map(|c| c.id)
    }
}

/// A rejection of an AARQ: sent as an AARE with result ≠ accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// AARE result (`associate_result::REJECTED_PERMANENT` or `REJECTED_TRANSIENT`).
    pub result: i64,
    /// AARE result-source-diagnostic.
    pub diagnostic: SourceDiagnostic,
    /// AARE user-information (e.g. an E2E HandshakeSecReject, spec §15.3).
    pub user_information: Vec<External>,
}

/// An abort requested by the hook: sent as ABRT (source acse-service-user) in an ARU-PPDU in an
/// AB SPDU (spec §11.4 DECISION "P-ABORT realised as ABRT").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbortRequest {
    /// ABRT abort-diagnostic (`abort_diagnostic::*`), e.g. authentication-failure(5).
    pub diagnostic: Option<i64>,
    /// ABRT user-information (e.g. an E2E HandshakeSecAbort, spec §15.3).
    pub user_information: Vec<External>,
}

/// Verdict on an incoming AARQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociateVerdict {
    /// Go on. `user_data`, if given, replaces the user data handed to the application (e.g. the
    /// MMS PDU unwrapped from an E2E HandshakeReq).
    Accept {
        /// Replacement for the application's user data.
        user_data: Option<Vec<u8>>,
    },
    /// Answer with a rejecting AARE.
    Reject(Rejection),
    /// Abort the association.
    Abort(AbortRequest),
}

/// Verdict on an incoming AARE, RLRQ or RLRE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on, optionally replacing the user data handed to the application.
    Accept {
        /// Replacement for the application's user data.
        user_data: Option<Vec<u8>>,
    },
    /// Abort the association.
    Abort(AbortRequest),
}

impl Verdict {
    /// Accept without changes.
    pub const ACCEPT: Verdict = Verdict::Accept { user_data: None };
}

impl AssociateVerdict {
    /// Accept without changes.
    pub const ACCEPT: AssociateVerdict = AssociateVerdict::Accept { user_data: None };
}

/// The association-security hook. Every method has a neutral default.
pub trait AssociationSecurity: Send {
    /// Initiator: change the AARQ before it is sent (e.g. add mechanism-name and
    /// calling-authentication-value, or wrap user-information in an E2E HandshakeReq).
    fn decorate_aarq(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        Ok(())
    }
    /// Responder: check a received AARQ.
    fn check_aarq(&mut self, _ctx: &SecurityContext<'_>, _aarq: &Aarq) -> AssociateVerdict {
        AssociateVerdict::ACCEPT
    }
    /// Responder: change an AARE (accepting or rejecting) before it is sent.
    fn decorate_aare(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        Ok(())
    }
    /// Responder: observe an AARQ that the association rejects itself, before [`Self::check_aarq`],
    /// because its application-context-name is not in `OsiConfig::accepted_application_contexts`
    /// (AARE rejected-permanent, application-context-name-not-supported). Lets a profile record
    /// the event the standard names for it (e.g. E2E `INV_APPL_CNTX_RQ`, spec §15.7); the
    /// rejection goes out whatever this does.
    fn unsupported_application_context(&mut self, _ctx: &SecurityContext<'_>, _aarq: &Aarq) {}
    /// Initiator: check a received accepting AARE.
    fn check_aare(&mut self, _ctx: &SecurityContext<'_>, _aare: &Aare) -> Verdict {
        Verdict::ACCEPT
    }
    /// Initiator: observe a received rejecting AARE (result ≠ accepted, in an AC or an RF SPDU).
    /// The association is refused whatever this returns; `Some` replaces the user data reported
    /// with [`crate::OsiEvent::AssociateRejected`] (e.g. the MMS initiate-ErrorPDU unwrapped from
    /// an E2E ApplicationReject, spec §15.3).
    fn check_rejecting_aare(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _aare: &Aare,
    ) -> Option<Vec<u8>> {
        None
    }
    /// Change an RLRQ before it is sent.
    fn decorate_rlrq(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        Ok(())
    }
    /// Check a received RLRQ.
    fn check_rlrq(&mut self, _ctx: &SecurityContext<'_>, _rlrq: &Rlrq) -> Verdict {
        Verdict::ACCEPT
    }
    /// Change an RLRE before it is sent.
    fn decorate_rlre(
        &mut self,
        _ctx: &SecurityContext<'_>,
        _rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        Ok(())
    }
    /// Check a received RLRE.
    fn check_rlre(&mut self, _ctx: &SecurityContext<'_>, _rlre: &Rlre) -> Verdict {
        Verdict::ACCEPT
    }
    /// Change an ABRT before it is sent.
    fn decorate_abrt(&mut self, _ctx: &SecurityContext<'_>, _abrt: &mut Abrt) {}
    /// Observe a received ABRT (the association is over whatever this returns).
    fn check_abrt(&mut self, _ctx: &SecurityContext<'_>, _abrt: &Abrt) {}
    /// Observe a protocol error our own stack detected in what the peer sent (the association
    /// is over: `OsiEvent::ProtocolError` and a refuse, abort or disconnect follow).
    fn protocol_error(&mut self, _ctx: &SecurityContext<'_>, _error: &crate::OsiError) {}
}

/// A boxed hook is a hook (the default of [`crate::Association`]): every call goes to the box.
impl<T: AssociationSecurity + ?Sized> AssociationSecurity for Box<T> {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        (**self).decorate_aarq(ctx, aarq)
    }
    fn check_aarq(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        (**self).check_aarq(ctx, aarq)
    }
    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        (**self).decorate_aare(ctx, aare)
    }
    fn unsupported_application_context(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) {
        (**self).unsupported_application_context(ctx, aarq)
    }
    fn check_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        (**self).check_aare(ctx, aare)
    }
    fn check_rejecting_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Option<Vec<u8>> {
        (**self).check_rejecting_aare(ctx, aare)
    }
    fn decorate_rlrq(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        (**self).decorate_rlrq(ctx, rlrq)
    }
    fn check_rlrq(&mut self, ctx: &SecurityContext<'_>, rlrq: &Rlrq) -> Verdict {
        (**self).check_rlrq(ctx, rlrq)
    }
    fn decorate_rlre(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        (**self).decorate_rlre(ctx, rlre)
    }
    fn check_rlre(&mut self, ctx: &SecurityContext<'_>, rlre: &Rlre) -> Verdict {
        (**self).check_rlre(ctx, rlre)
    }
    fn decorate_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &mut Abrt) {
        (**self).decorate_abrt(ctx, abrt)
    }
    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &Abrt) {
        (**self).check_abrt(ctx, abrt)
    }
    fn protocol_error(&mut self, ctx: &SecurityContext<'_>, error: &crate::OsiError) {
        (**self).protocol_error(ctx, error)
    }
}

/// The no-op hook: plain MMS without ACSE security.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecurity;

impl AssociationSecurity for NoSecurity {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acse::{Aare, Aarq, Abrt, Rlre, Rlrq};

    /// Counts every call it gets.
    #[derive(Default)]
    struct Counting(Vec<&'static str>);

    impl AssociationSecurity for Counting {
        fn decorate_aarq(
            &mut self,
            _: &SecurityContext<'_>,
            _: &mut Aarq,
        ) -> Result<(), AbortRequest> {
            self.0.push("decorate_aarq");
            Ok(())
        }
        fn check_aarq(&mut self, _: &SecurityContext<'_>, _: &Aarq) -> AssociateVerdict {
            self.0.push("check_aarq");
            AssociateVerdict::Accept { user_data: None }
        }
        fn decorate_aare(
            &mut self,
            _: &SecurityContext<'_>,
            _: &mut Aare,
        ) -> Result<(), AbortRequest> {
            self.0.push("decorate_aare");
            Ok(())
        }
        fn unsupported_application_context(&mut self, _: &SecurityContext<'_>, _: &Aarq) {
            self.0.push("unsupported_application_context");
        }
        fn check_aare(&mut self, _: &SecurityContext<'_>, _: &Aare) -> Verdict {
            self.0.push("check_aare");
            Verdict::ACCEPT
        }
        fn check_rejecting_aare(&mut self, _: &SecurityContext<'_>, _: &Aare) -> Option<Vec<u8>> {
            self.0.push("check_rejecting_aare");
            None
        }
        fn decorate_rlrq(
            &mut self,
            _: &SecurityContext<'_>,
            _: &mut Rlrq,
        ) -> Result<(), AbortRequest> {
            self.0.push("decorate_rlrq");
            Ok(())
        }
        fn check_rlrq(&mut self, _: &SecurityContext<'_>, _: &Rlrq) -> Verdict {
            self.0.push("check_rlrq");
            Verdict::ACCEPT
        }
        fn decorate_rlre(
            &mut self,
            _: &SecurityContext<'_>,
            _: &mut Rlre,
        ) -> Result<(), AbortRequest> {
            self.0.push("decorate_rlre");
            Ok(())
        }
        fn check_rlre(&mut self, _: &SecurityContext<'_>, _: &Rlre) -> Verdict {
            self.0.push("check_rlre");
            Verdict::ACCEPT
        }
        fn decorate_abrt(&mut self, _: &SecurityContext<'_>, _: &mut Abrt) {
            self.0.push("decorate_abrt");
        }
        fn check_abrt(&mut self, _: &SecurityContext<'_>, _: &Abrt) {
            self.0.push("check_abrt");
        }
        fn protocol_error(&mut self, _: &SecurityContext<'_>, _: &crate::OsiError) {
            self.0.push("protocol_error");
        }
    }

    /// A boxed hook forwards every method of the trait (none falls back to a default).
    #[test]
    fn a_box_forwards_every_call() {
        let ctx = SecurityContext {
            role: Role::Initiator,
            contexts: &[],
        };
        let oid: secmms_ber::Oid = "1.0.9506.2.3".parse().unwrap();
        let aarq = || Aarq::new(oid.clone());
        let aare = || {
            Aare::new(
                oid.clone(),
                0,
                crate::acse::SourceDiagnostic::ServiceUser(0),
            )
        };
        let mut b: Box<Counting> = Box::default();
        let h: &mut dyn AssociationSecurity = &mut b;
        let _ = h.decorate_aarq(&ctx, &mut aarq());
        let _ = h.check_aarq(&ctx, &aarq());
        let _ = h.decorate_aare(&ctx, &mut aare());
        h.unsupported_application_context(&ctx, &aarq());
        let _ = h.check_aare(&ctx, &aare());
        let _ = h.check_rejecting_aare(&ctx, &aare());
        let _ = h.decorate_rlrq(&ctx, &mut Rlrq::default());
        let _ = h.check_rlrq(&ctx, &Rlrq::default());
        let _ = h.decorate_rlre(&ctx, &mut Rlre::default());
        let _ = h.check_rlre(&ctx, &Rlre::default());
        h.decorate_abrt(&ctx, &mut Abrt::default());
        h.check_abrt(&ctx, &Abrt::default());
        h.protocol_error(&ctx, &crate::OsiError::Unexpected("test"));
        assert_eq!(b.0.len(), 13, "{:?}", b.0);
    }
}
