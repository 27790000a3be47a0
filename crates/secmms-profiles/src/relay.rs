//! Sans-IO upper-layer relay (IEC 62351-4 §15.5): a [`Splice`] joins the association accepted
//! from the previous hop ("up") to the one it opens towards the next hop ("down") and moves
//! application PDUs between them, holding no key of the E2E association it carries.
//!
//! What crosses unchanged, octet for octet: the single-ASN1-type value of every EXTERNAL in the
//! AARQ, AARE, RLRQ, RLRE and ABRT user-information, every P-DATA value, the
//! application-context-name, the calling and called AP-titles and AE-qualifiers (which the E2E
//! address check needs) and any ACSE authentication fields. What is rebuilt per hop: TPKT/TP0,
//! session and presentation, with presentation-context identifiers renumbered by abstract syntax.
//!
//! The splice takes time only as an argument and does no I/O: the runtime reads bytes from
//! either hop into [`Splice::handle_input`], writes what [`Splice::poll_transmit`] gives, dials
//! the next hop when [`SpliceEvent::Route`] asks for it, and wakes it at
//! [`Splice::poll_timeout`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_ber::Oid;
use secmms_osi::acse::{
    associate_result, form2_ae_qualifier, form2_ap_title, provider_diagnostic, user_diagnostic,
    Aare, Aarq, Abrt, AuthenticationValue, External, Rlre, Rlrq, SourceDiagnostic,
};
use secmms_osi::security::{
    AbortRequest, AssociationSecurity, NegotiatedContext, Role, SecurityContext,
};
use secmms_osi::{Association, OsiConfig, OsiError, OsiEvent, RejectReason};

/// One side of a [`Splice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The previous hop: the association initiator's side, accepted by the relay.
    Up,
    /// The next hop: the association the relay opened towards the responder.
    Down,
}

/// How a relayed association ended in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Released by the two end systems.
    Released,
    /// Refused: by the next hop (its AARE went back), or because no route matched.
    Refused,
    /// Aborted by an end system or because one hop's transport closed.
    Aborted,
}

/// What a [`Splice`] tells its runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpliceEvent {
    /// The previous hop's AARQ arrived: pick the next hop by these called titles, then call
    /// [`Splice::connect_down`] once it is connected, [`Splice::next_hop_failed`] when it
    /// cannot be reached, or [`Splice::no_route`].
    Route {
        /// The AARQ's called AP-title (form 2).
        called_ap_title: Option<Oid>,
        /// The AARQ's called AE-qualifier (form 2).
        called_ae_qualifier: Option<i64>,
    },
    /// The next hop accepted; the association is established end to end.
    Established,
    /// The association is over; flush both hops and close them.
    Ended(Ending),
    /// The association failed (both hops aborted); flush and close them.
    Failed(String),
}

/// Where a P-DATA value crossing the relay is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapContext {
    /// Number of the relayed association (1, 2, … in order of establishment).
    pub association: u64,
    /// True from the association initiator (client side) towards the responder.
    pub from_initiator: bool,
    /// Index of this value in its direction (0, 1, …).
    pub index: u64,
}

/// What a [`Tap`] makes the relay do with one P-DATA value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapAction {
    /// Send these octets as a P-DATA value on the same presentation context.
    Send(Vec<u8>),
    /// Abort the destination side with this ABRT content (and the source side without one).
    Abort(AbortRequest),
}

/// An observer of the application PDUs a relay forwards, which may also change them. A faithful
/// relay has none; diagnostics taps and the hostile-relay test doubles (flip, replay, reorder,
/// drop, cross-association swap, forged abort) are written against this trait. Whatever a tap
/// does, the end systems' E2E checks must detect it: the relay holds no key.
pub trait Tap: Send + Sync {
    /// Called for every P-DATA value; returns what to send in its place (`vec![Send(pdu)]` for
    /// a faithful forward, an empty list to drop it).
    fn on_data(&self, ctx: TapContext, pdu: Vec<u8>) -> Vec<TapAction>;
}

/// The time limits of a [`Splice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpliceTimeouts {
    /// From the splice's creation to the next hop's answer (both hops' establishment).
    pub associate: Duration,
    /// Without traffic in either direction, both hops are aborted; `None` never.
    pub idle: Option<Duration>,
}

/// What a hop still has to put into the next APDU it sends: the other hop's APDU fields, and
/// the presentation contexts their indirect-references refer to.
#[derive(Default)]
pub struct Passthrough {
    aarq: Option<(Box<Aarq>, Vec<NegotiatedContext>)>,
    aare: Option<(Box<Aare>, Vec<NegotiatedContext>)>,
    release: Option<(Vec<External>, Vec<NegotiatedContext>)>,
}

/// The presentation context of `to` with the abstract syntax that `id` has in `from`.
fn map_id(id: i64, from: &[NegotiatedContext], to: &[NegotiatedContext]) -> Option<i64> {
    let syntax = &from.iter().find(|c| i64::from(c.id) == id)?.abstract_syntax;
    to.iter()
        .find(|c| c.accepted && &c.abstract_syntax == syntax)
        .map(|c| i64::from(c.id))
}

/// Renumbers the indirect-references of `ui` from `from`'s contexts to `to`'s; an EXTERNAL whose
/// context has no counterpart keeps its number (the receiving end then judges it).
fn remap(ui: &[External], from: &[NegotiatedContext], to: &[NegotiatedContext]) -> Vec<External> {
    ui.iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(n) = e.indirect_reference.and_then(|id| map_id(id, from, to)) {
                e.indirect_reference = Some(n);
            }
            e
        })
        .collect()
}

fn remap_auth(
    v: &Option<AuthenticationValue>,
    from: &[NegotiatedContext],
    to: &[NegotiatedContext],
) -> Option<AuthenticationValue> {
    match v {
        Some(AuthenticationValue::External(e)) => remap(std::slice::from_ref(e), from, to)
            .pop()
            .map(AuthenticationValue::External),
        other => other.clone(),
    }
}

/// The security hook of both hops: it verifies nothing and only writes the other hop's APDU
/// fields into the APDU the association is about to send.
impl AssociationSecurity for Passthrough {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        if let Some((src, from)) = self.aarq.take() {
            let to = ctx.contexts;
            aarq.application_context_name = src.application_context_name.clone();
            aarq.protocol_version = src.protocol_version.clone();
            aarq.called_ap_title = src.called_ap_title.clone();
            aarq.called_ae_qualifier = src.called_ae_qualifier.clone();
            aarq.called_ap_invocation_id = src.called_ap_invocation_id;
            aarq.called_ae_invocation_id = src.called_ae_invocation_id;
            aarq.calling_ap_title = src.calling_ap_title.clone();
            aarq.calling_ae_qualifier = src.calling_ae_qualifier.clone();
            aarq.calling_ap_invocation_id = src.calling_ap_invocation_id;
            aarq.calling_ae_invocation_id = src.calling_ae_invocation_id;
            aarq.sender_acse_requirements = src.sender_acse_requirements.clone();
            aarq.mechanism_name = src.mechanism_name.clone();
            aarq.calling_authentication_value =
                remap_auth(&src.calling_authentication_value, &from, to);
            aarq.implementation_information = src.implementation_information.clone();
            aarq.user_information = remap(&src.user_information, &from, to);
        }
        Ok(())
    }

    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        if let Some((src, from)) = self.aare.take() {
            let to = ctx.contexts;
            aare.protocol_version = src.protocol_version.clone();
            aare.responding_ap_title = src.responding_ap_title.clone();
            aare.responding_ae_qualifier = src.responding_ae_qualifier.clone();
            aare.responding_ap_invocation_id = src.responding_ap_invocation_id;
            aare.responding_ae_invocation_id = src.responding_ae_invocation_id;
            aare.responder_acse_requirements = src.responder_acse_requirements.clone();
            aare.mechanism_name = src.mechanism_name.clone();
            aare.responding_authentication_value =
                remap_auth(&src.responding_authentication_value, &from, to);
            aare.implementation_information = src.implementation_information.clone();
            aare.user_information = remap(&src.user_information, &from, to);
        }
        Ok(())
    }

    fn decorate_rlrq(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlrq: &mut Rlrq,
    ) -> Result<(), AbortRequest> {
        if let Some((ui, from)) = self.release.take() {
            rlrq.user_information = remap(&ui, &from, ctx.contexts);
        }
        Ok(())
    }

    fn decorate_rlre(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlre: &mut Rlre,
    ) -> Result<(), AbortRequest> {
        if let Some((ui, from)) = self.release.take() {
            rlre.user_information = remap(&ui, &from, ctx.contexts);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the previous hop's AARQ.
    AwaitAarq,
    /// `Route` was reported; waiting for the runtime to connect the next hop.
    Routing,
    /// The next hop has the AARQ; waiting for its AARE.
    AwaitAare,
    /// Forwarding in both directions.
    Data,
    /// Over (an `Ended` or `Failed` event was queued).
    Done,
}

/// Two associations joined by a relay, in the shape of
/// [`SecureAssociation`](crate::secure::SecureAssociation): bytes and time go in, bytes and
/// events come out.
pub struct Splice {
    up: Association<Passthrough>,
    down: Option<Association<Passthrough>>,
    down_template: OsiConfig,
    aarq: Option<(Box<Aarq>, Option<Vec<u8>>)>,
    phase: Phase,
    events: VecDeque<SpliceEvent>,
    tap: Option<Arc<dyn Tap>>,
    numbering: Arc<AtomicU64>,
    number: u64,
    counters: [u64; 2],
    forwarded: u64,
    associate_deadline: Option<Instant>,
    idle: Option<Duration>,
    idle_deadline: Option<Instant>,
}

impl Splice {
    /// A splice waiting for an AARQ on the previous hop. `up` configures the accepting hop,
    /// `down` is the template of the next hop's association (selectors, TPDU size, limits; its
    /// titles and proposed contexts are taken from the AARQ). Established associations take
    /// their numbers from `numbering` (shared by every splice of one relay).
    pub fn new(
        up: OsiConfig,
        down: OsiConfig,
        tap: Option<Arc<dyn Tap>>,
        numbering: Arc<AtomicU64>,
        timeouts: SpliceTimeouts,
        now: Instant,
    ) -> Self {
        Splice {
            up: Association::with_hook(Role::Responder, up, Passthrough::default()),
            down: None,
            down_template: down,
            aarq: None,
            phase: Phase::AwaitAarq,
            events: VecDeque::new(),
            tap,
            numbering,
            number: 0,
            counters: [0; 2],
            forwarded: 0,
            associate_deadline: now.checked_add(timeouts.associate),
            idle: timeouts.idle,
            idle_deadline: None,
        }
    }

    /// The accepting hop's association (to inspect it).
    pub fn up(&self) -> &Association<Passthrough> {
        &self.up
    }

    /// The next hop's association, once connected.
    pub fn down(&self) -> Option<&Association<Passthrough>> {
        self.down.as_ref()
    }

    /// The association's number (0 until established).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// P-DATA values sent on either hop so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// True once the splice reported `Ended` or `Failed`.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// True while waiting for [`Splice::connect_down`] (after `Route`).
    pub fn is_routing(&self) -> bool {
        self.phase == Phase::Routing
    }

    /// When the association establishment must be over (for the runtime's dial timeout).
    pub fn associate_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitAarq | Phase::Routing | Phase::AwaitAare => self.associate_deadline,
            Phase::Data | Phase::Done => None,
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SpliceEvent> {
        self.events.pop_front()
    }

    /// Octets to write on `hop`, coalesced.
    pub fn poll_transmit(&mut self, hop: Hop) -> Option<Vec<u8>> {
        match hop {
            Hop::Up => self.up.poll_transmit(),
            Hop::Down => self.down.as_mut()?.poll_transmit(),
        }
    }

    /// The earliest deadline: the establishment's, then the idle timeout's.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Data => self.idle_deadline,
            Phase::Done => None,
            _ => self.associate_deadline,
        }
    }

    /// Wakes the splice at (or after) its deadline: a late establishment or an idle data phase
    /// aborts both hops. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::AwaitAarq | Phase::Routing | Phase::AwaitAare => {
                if self.associate_deadline.is_some_and(|d| now >= d) {
                    self.fail("association establishment timed out".into());
                }
            }
            Phase::Data => {
                if self.idle_deadline.is_some_and(|d| now >= d) {
                    self.fail("idle timeout".into());
                }
            }
            Phase::Done => {}
        }
    }

    /// Octets from `hop`. Whatever they complete is forwarded to the other hop at once.
    pub fn handle_input(&mut self, hop: Hop, bytes: &[u8], now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.touch(now);
        let r = match hop {
            Hop::Up => self.up.handle_input(bytes),
            Hop::Down => match self.down.as_mut() {
                Some(d) => d.handle_input(bytes),
                None => return,
            },
        };
        // A protocol error is also reported as an event, handled below.
        let _ = r;
        self.drain(hop);
    }

    /// The transport of `hop` closed (or failed): the other hop is aborted.
    pub fn transport_closed(&mut self, hop: Hop, now: Instant) {
        if self.phase == Phase::Done {
            return;
        }
        self.touch(now);
        match hop {
            Hop::Up => self.up.transport_closed(),
            Hop::Down => match self.down.as_mut() {
                Some(d) => d.transport_closed(),
                None => return,
            },
        }
        self.drain(hop);
        if self.phase != Phase::Done {
            // The association ignored the close (it was over already): end it here.
            self.abort_hop(other(hop));
            self.end(Ending::Aborted);
        }
    }

    /// No route matches the called titles: the previous hop gets a permanent rejection
    /// (called-AP-title-not-recognized).
    pub fn no_route(&mut self) {
        if self.phase != Phase::Routing {
            return;
        }
        let r = self.up.reject(
            associate_result::REJECTED_PERMANENT,
            SourceDiagnostic::ServiceUser(user_diagnostic::CALLED_AP_TITLE_NOT_RECOGNIZED),
            None,
        );
        match r {
            Ok(()) => self.end(Ending::Refused),
            Err(e) => self.fail(format!("previous hop: {e}")),
        }
    }

    /// The next hop could not be reached: the previous hop is aborted.
    pub fn next_hop_failed(&mut self, why: String) {
        if self.phase == Phase::Routing {
            self.fail(why);
        }
    }

    /// The next hop's transport is up: its AARQ proposes what the previous hop's association
    /// accepted, with the same titles and user information.
    pub fn connect_down(&mut self) -> Result<(), OsiError> {
        if self.phase != Phase::Routing {
            return Ok(());
        }
        let Some((aarq, user_data)) = self.aarq.take() else {
            return Ok(());
        };
        let up_contexts = self.up.contexts().to_vec();
        let mms_id = self.up.mms_context_id();
        let mut osi = self.down_template.clone();
        osi.application_context_name = aarq.application_context_name.clone();
        if let Some(mms) = up_contexts.iter().find(|c| Some(c.id) == mms_id) {
            osi.mms_abstract_syntax = mms.abstract_syntax.clone();
        }
        osi.extra_abstract_syntaxes = up_contexts
            .iter()
            .filter(|c| {
                c.accepted
                    && c.id != secmms_osi::association::ACSE_CONTEXT_ID
                    && Some(c.id) != mms_id
            })
            .map(|c| c.abstract_syntax.clone())
            .collect();
        osi.remote_ap_title = form2_ap_title(&aarq.called_ap_title).cloned();
        osi.remote_ae_qualifier = form2_ae_qualifier(&aarq.called_ae_qualifier);
        osi.local_ap_title = form2_ap_title(&aarq.calling_ap_title).cloned();
        osi.local_ae_qualifier = form2_ae_qualifier(&aarq.calling_ae_qualifier);
        let hook = Passthrough {
            aarq: Some((aarq, up_contexts)),
            ..Passthrough::default()
        };
        let mut down = Association::with_hook(Role::Initiator, osi, hook);
        let r = down.connect(user_data.unwrap_or_default());
        self.down = Some(down);
        match r {
            Ok(()) => {
                self.phase = Phase::AwaitAare;
                Ok(())
            }
            Err(e) => {
                self.fail(format!("next hop: {e}"));
                Err(e)
            }
        }
    }

    fn touch(&mut self, now: Instant) {
        if let Some(idle) = self.idle {
            self.idle_deadline = now.checked_add(idle);
        }
    }

    fn contexts(&self, hop: Hop) -> &[NegotiatedContext] {
        match hop {
            Hop::Up => self.up.contexts(),
            Hop::Down => self.down.as_ref().map_or(&[], |d| d.contexts()),
        }
    }

    fn hop_mut(&mut self, hop: Hop) -> Option<&mut Association<Passthrough>> {
        match hop {
            Hop::Up => Some(&mut self.up),
            Hop::Down => self.down.as_mut(),
        }
    }

    fn abort_hop(&mut self, hop: Hop) {
        if let Some(a) = self.hop_mut(hop) {
            let _ = a.abort();
        }
    }

    fn end(&mut self, how: Ending) {
        if self.phase != Phase::Done {
            self.phase = Phase::Done;
            self.events.push_back(SpliceEvent::Ended(how));
        }
    }

    /// Aborts both hops (without user information: the relay has no E2E content of its own)
    /// and reports the failure.
    fn fail(&mut self, why: String) {
        if self.phase != Phase::Done {
            self.abort_hop(Hop::Up);
            self.abort_hop(Hop::Down);
            self.phase = Phase::Done;
            self.events.push_back(SpliceEvent::Failed(why));
        }
    }

    /// Handles the events `hop` produced, by phase.
    fn drain(&mut self, hop: Hop) {
        loop {
            if self.phase == Phase::Done {
                return;
            }
            let Some(ev) = (match self.hop_mut(hop) {
                Some(a) => a.poll_event(),
                None => None,
            }) else {
                return;
            };
            match (self.phase, hop) {
                (Phase::AwaitAarq, Hop::Up) => self.on_aarq_phase(ev),
                (Phase::AwaitAare, Hop::Down) => self.on_aare_phase(ev),
                (Phase::Data, _) => self.forward(hop, ev),
                // The previous hop speaking before the next hop answered: only an abort or a
                // close makes sense; anything else the OSI association already refused.
                (_, _) => self.on_early(hop, ev),
            }
        }
    }

    fn on_aarq_phase(&mut self, ev: OsiEvent) {
        match ev {
            OsiEvent::AssociateIndication { aarq, user_data } => {
                self.events.push_back(SpliceEvent::Route {
                    called_ap_title: form2_ap_title(&aarq.called_ap_title).cloned(),
                    called_ae_qualifier: form2_ae_qualifier(&aarq.called_ae_qualifier),
                });
                self.aarq = Some((aarq, user_data));
                self.phase = Phase::Routing;
            }
            OsiEvent::AbortIndication(_) | OsiEvent::Closed => self.end(Ending::Aborted),
            OsiEvent::ProtocolError(e) => self.fail(format!("previous hop: {e}")),
            _ => {}
        }
    }

    fn on_early(&mut self, hop: Hop, ev: OsiEvent) {
        match ev {
            OsiEvent::AbortIndication(info) => {
                self.forward_abort(hop, info.abrt.as_deref());
                self.end(Ending::Aborted);
            }
            OsiEvent::Closed => {
                self.abort_hop(other(hop));
                self.end(Ending::Aborted);
            }
            OsiEvent::ProtocolError(e) => self.fail(format!("{}: {e}", hop_name(hop))),
            _ => {}
        }
    }

    fn on_aare_phase(&mut self, ev: OsiEvent) {
        let down_contexts = || {
            self.down
                .as_ref()
                .map(|d| d.contexts().to_vec())
                .unwrap_or_default()
        };
        match ev {
            OsiEvent::AssociateConfirm { aare, .. } => {
                self.up.security_mut().aare = Some((aare, down_contexts()));
                if let Err(e) = self.up.accept(Vec::new()) {
                    self.fail(format!("previous hop: {e}"));
                    return;
                }
                self.number = self.numbering.fetch_add(1, Ordering::Relaxed);
                self.phase = Phase::Data;
                self.events.push_back(SpliceEvent::Established);
                // Whatever came with the AARE is forwarded by the caller's loop (drain goes on
                // in the data phase).
            }
            OsiEvent::AssociateRejected { reason, aare, .. } => {
                let (result, diagnostic) = match reason {
                    RejectReason::Acse { result, diagnostic } => (result, diagnostic),
                    _ => (
                        associate_result::REJECTED_PERMANENT,
                        SourceDiagnostic::ServiceProvider(provider_diagnostic::NO_REASON_GIVEN),
                    ),
                };
                if let Some(a) = aare {
                    self.up.security_mut().aare = Some((a, down_contexts()));
                }
                match self.up.reject(result, diagnostic, None) {
                    Ok(()) => self.end(Ending::Refused),
                    Err(e) => self.fail(format!("previous hop: {e}")),
                }
            }
            OsiEvent::AbortIndication(info) => {
                self.forward_abort(Hop::Down, info.abrt.as_deref());
                self.end(Ending::Aborted);
            }
            OsiEvent::ProtocolError(e) => self.fail(format!("next hop: {e}")),
            OsiEvent::Closed => self.fail("next hop closed during establishment".into()),
            _ => {}
        }
    }

    /// Queues on the other hop the ABRT that arrived on `from` (its user-information
    /// renumbered), or a bare abort when none came.
    fn forward_abort(&mut self, from: Hop, abrt: Option<&Abrt>) {
        let src = self.contexts(from).to_vec();
        let Some(dst) = self.hop_mut(other(from)) else {
            return;
        };
        let req = match abrt {
            Some(a) => AbortRequest {
                diagnostic: a.diagnostic,
                user_information: remap(&a.user_information, &src, dst.contexts()),
            },
            None => AbortRequest::default(),
        };
        let _ = dst.abort_with(req);
    }

    /// Moves one data-phase event of `src` to the other hop.
    fn forward(&mut self, src: Hop, ev: OsiEvent) {
        let dst = other(src);
        match ev {
            OsiEvent::Data { context_id, pdu } => {
                let Some(to) = map_id(
                    i64::from(context_id),
                    self.contexts(src),
                    self.contexts(dst),
                )
                .and_then(|n| u32::try_from(n).ok()) else {
                    self.fail(format!(
                        "data on presentation context {context_id}, unknown on the other hop"
                    ));
                    return;
                };
                let from_initiator = src == Hop::Up;
                let actions = match &self.tap {
                    None => vec![TapAction::Send(pdu)],
                    Some(tap) => {
                        let counter = &mut self.counters[usize::from(!from_initiator)];
                        let ctx = TapContext {
                            association: self.number,
                            from_initiator,
                            index: *counter,
                        };
                        *counter += 1;
                        tap.on_data(ctx, pdu)
                    }
                };
                for a in actions {
                    match a {
                        TapAction::Send(pdu) => {
                            let r = self.hop_mut(dst).map(|a| a.send_data_on(to, &pdu));
                            if let Some(Err(e)) = r {
                                self.fail(e.to_string());
                                return;
                            }
                            self.forwarded += 1;
                        }
                        TapAction::Abort(req) => {
                            if let Some(a) = self.hop_mut(dst) {
                                let _ = a.abort_with(req);
                            }
                            self.abort_hop(src);
                            self.end(Ending::Aborted);
                            return;
                        }
                    }
                }
            }
            OsiEvent::ReleaseIndication { rlrq, .. } => {
                let from_ctx = self.contexts(src).to_vec();
                let Some(d) = self.hop_mut(dst) else { return };
                d.security_mut().release = Some((rlrq.user_information, from_ctx));
                if let Err(e) = d.release(None) {
                    self.fail(e.to_string());
                }
            }
            OsiEvent::ReleaseConfirm { rlre, .. } => {
                let from_ctx = self.contexts(src).to_vec();
                let Some(d) = self.hop_mut(dst) else { return };
                d.security_mut().release = Some((rlre.user_information, from_ctx));
                match d.release_response(None) {
                    Ok(()) => self.end(Ending::Released),
                    Err(e) => self.fail(e.to_string()),
                }
            }
            OsiEvent::ReleaseRefused => {
                self.fail("release refused by a peer (not supported through a relay)".into());
            }
            OsiEvent::AbortIndication(info) => {
                self.forward_abort(src, info.abrt.as_deref());
                self.end(Ending::Aborted);
            }
            OsiEvent::ProtocolError(e) => self.fail(e.to_string()),
            OsiEvent::Closed => {
                self.abort_hop(dst);
                self.end(Ending::Aborted);
            }
            _ => {}
        }
    }
}

fn other(hop: Hop) -> Hop {
    match hop {
        Hop::Up => Hop::Down,
        Hop::Down => Hop::Up,
    }
}

fn hop_name(hop: Hop) -> &'static str {
    match hop {
        Hop::Up => "previous hop",
        Hop::Down => "next hop",
    }
}
