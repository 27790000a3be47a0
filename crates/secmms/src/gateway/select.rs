//! IED routes sharing one listener, told apart by the AP-title / AE-qualifier the AARQ calls.
//!
//! Each IED route presents its own application certificate, whose Annex G.6.2 binding is the
//! AP-title / AE-qualifier the gateway answers as for that IED. The TLS handshake comes first
//! and is the same for every route of the listener (they must share their TLS settings); the
//! route is only known once the AARQ arrives. [`RouteLayer`] is the hook of the calling side's
//! association: when the AARQ arrives it picks the route the called titles name and puts that
//! route's protection in place before the profile's checks run, and it answers in the AARE
//! with that route's titles. An AARQ naming no route is refused at once, unchecked, with an
//! AARE *rejected-permanent*, called-AP-title-not-recognized.

use std::sync::Arc;

use secmms_osi::acse::{
    user_diagnostic, Aare, Aarq, Abrt, AeQualifier, ApTitle, Rlre, Rlrq, SourceDiagnostic,
};
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Rejection, SecurityContext, Verdict,
};
use secmms_osi::OsiError;
use secmms_profiles::secure::{Layer, Now, Protection};

use super::{Group, RouteRt};
use crate::security::ConnectionFacts;

/// ACSE result `rejected-permanent`.
const REJECTED_PERMANENT: i64 = 1;

/// The called AP-title and AE-qualifier of an AARQ (form 2 only).
pub(super) fn called_titles(aarq: &Aarq) -> (Option<&secmms_ber::Oid>, Option<i64>) {
    let ap = match &aarq.called_ap_title {
        Some(ApTitle::Form2(o)) => Some(o),
        _ => None,
    };
    let ae = match &aarq.called_ae_qualifier {
        Some(AeQualifier::Form2(q)) => Some(*q),
        _ => None,
    };
    (ap, ae)
}

/// The calling side's protection, chosen among the routes of its listener when the AARQ
/// arrives (see the module documentation).
pub(super) struct RouteLayer {
    inner: Protection,
    /// The listener's routes, when more than one IED route shares it.
    routes: Option<Group>,
    facts: ConnectionFacts,
    /// The route the AARQ called, once chosen.
    chosen: Option<Arc<RouteRt>>,
    /// The time of the current call, for a protection put in place during it.
    now: Option<Now>,
    /// Why the AARQ was refused without a route.
    unrouted: Option<String>,
}

impl RouteLayer {
    /// The protection of `first` (the listener's first route); `group` when IED routes share
    /// the listener.
    pub(super) fn new(inner: Protection, group: &Group, facts: ConnectionFacts) -> Self {
        let shared = group.len() > 1 && group[0].kind == super::Kind::Ied;
        RouteLayer {
            inner,
            routes: shared.then(|| group.clone()),
            facts,
            chosen: None,
            now: None,
            unrouted: None,
        }
    }

    /// The route whose protection checked the AARQ, when IED routes share the listener and the
    /// AARQ called one of them.
    pub(super) fn chosen(&self) -> Option<&Arc<RouteRt>> {
        self.chosen.as_ref()
    }

    /// Why the AARQ was refused for want of a route, if it was.
    pub(super) fn unrouted(&self) -> Option<&str> {
        self.unrouted.as_deref()
    }

    /// Puts the protection of the route `aarq` calls in place; `false` when IED routes share
    /// the listener and none presents the called titles.
    fn choose(&mut self, aarq: &Aarq) -> bool {
        let Some(routes) = &self.routes else {
            return true;
        };
        let (ap, ae) = called_titles(aarq);
        let Some(r) = routes.iter().find(|r| r.selects(ap, ae)) else {
            let ap = ap.map_or("none".to_string(), |o| o.to_string());
            let ae = ae.map_or("none".to_string(), |q| q.to_string());
            self.unrouted = Some(format!(
                "no route for the called AP-title {ap} / AE-qualifier {ae}"
            ));
            return false;
        };
        {
            let (_, protection) = r.security_in.responder_parts(r.osi_in.clone(), &self.facts);
            self.inner = protection;
            if let Some(now) = self.now {
                self.inner.set_now(now);
            }
            self.chosen = Some(r.clone());
        }
        true
    }
}

impl AssociationSecurity for RouteLayer {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        self.inner.decorate_aarq(ctx, aarq)
    }
    fn check_aarq(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) -> AssociateVerdict {
        if !self.choose(aarq) {
            return AssociateVerdict::Reject(Rejection {
                result: REJECTED_PERMANENT,
                diagnostic: SourceDiagnostic::ServiceUser(
                    user_diagnostic::CALLED_AP_TITLE_NOT_RECOGNIZED,
                ),
                user_information: Vec::new(),
            });
        }
        self.inner.check_aarq(ctx, aarq)
    }
    fn unsupported_application_context(&mut self, ctx: &SecurityContext<'_>, aarq: &Aarq) {
        self.inner.unsupported_application_context(ctx, aarq)
    }
    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        // Our titles are those of the route called (its certificate's binding), set before
        // the profile signs what it signs.
        if let Some((ap, ae)) = self
            .chosen
            .as_ref()
            .and_then(|r| r.security_in.local_titles())
        {
            aare.responding_ap_title = Some(ApTitle::Form2(ap.clone()));
            aare.responding_ae_qualifier = Some(AeQualifier::Form2(*ae));
        }
        self.inner.decorate_aare(ctx, aare)
    }
    fn check_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        self.inner.check_aare(ctx, aare)
    }
    fn check_rejecting_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Option<Vec<u8>> {
        self.inner.check_rejecting_aare(ctx, aare)
    }
    fn decorate_rlrq(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        self.inner.decorate_rlrq(ctx, rlrq)
    }
    fn check_rlrq(&mut self, ctx: &SecurityContext<'_>, rlrq: &Rlrq) -> Verdict {
        self.inner.check_rlrq(ctx, rlrq)
    }
    fn decorate_rlre(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        self.inner.decorate_rlre(ctx, rlre)
    }
    fn check_rlre(&mut self, ctx: &SecurityContext<'_>, rlre: &Rlre) -> Verdict {
        self.inner.check_rlre(ctx, rlre)
    }
    fn decorate_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &mut Abrt) {
        self.inner.decorate_abrt(ctx, abrt)
    }
    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &Abrt) {
        self.inner.check_abrt(ctx, abrt)
    }
    fn protocol_error(&mut self, ctx: &SecurityContext<'_>, error: &OsiError) {
        self.inner.protocol_error(ctx, error)
    }
}

impl Layer for RouteLayer {
    fn protection(&self) -> &Protection {
        &self.inner
    }
    fn protection_mut(&mut self) -> &mut Protection {
        &mut self.inner
    }
    fn set_now(&mut self, now: Now) {
        self.now = Some(now);
        self.inner.set_now(now);
    }
}
