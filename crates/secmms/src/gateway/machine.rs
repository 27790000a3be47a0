//! One forwarded association as a [`Machine`]: a responder [`SecureAssociation`] on the
//! connection that came in (`Up`) and an initiator on the connection the gateway opens (`Down`),
//! with the MMS PDUs of one handed to the other unchanged.
//!
//! The set-up, in order: the calling side's AARQ passes its profile's checks (and OCSP, when
//! configured); its initiate-RequestPDU, capped by the gateway's limits, is what the gateway
//! sends on; the driver dials the far side ([`Step::Connect`]); the far side's
//! initiate-ResponsePDU, capped by what was asked, answers the calling side. A far side that
//! cannot be reached or refuses gives the calling side a rejection carrying the reason, inside
//! the set-up timeout. After that, either side's release is carried to the other and answered
//! with the other's answer; either side's abort, failure or timeout aborts the other.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use secmms_mms::gateway::{forward_initiate_request, forward_initiate_response, Verdict};
use secmms_mms::{ErrorClass, InitiateParameters, MmsPdu, ServiceError};
use secmms_osi::acse::{user_diagnostic, SourceDiagnostic};
use secmms_profiles::secure::{Now, SecureAssociation, SecureEvent};
use tracing::debug;

use super::{events as ev, RouteRt};
use crate::driver::{BoxFuture, ByteStream, LinkError, Machine, Port, Step};
use crate::relay::HopStream;
use crate::security::ConnectionFacts;
use crate::security::OcspOutcome;

/// ACSE result `rejected-permanent`.
const REJECTED_PERMANENT: i64 = 1;
/// ACSE result `rejected-transient`.
const REJECTED_TRANSIENT: i64 = 2;

/// How a forwarded association ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Released by one side, the release answered by the other.
    Released,
    /// Refused during set-up (the reason says by whom and why).
    Refused(String),
    /// Aborted, timed out or failed after or during set-up.
    Aborted(String),
}

/// Where the far side's connection facts land once the dial succeeds.
pub(super) type FactsSlot = Arc<Mutex<Option<ConnectionFacts>>>;

pub(super) struct GatewayMachine {
    /// The calling side's AARQ, held until it has a place at the check gate (IED routes).
    pub(super) gate: crate::handshakes::AarqHold,
    /// The gateway's check gate (`max_security_checks`, `security_check_rate`).
    pub(super) checks: Arc<crate::handshakes::HandshakeGate>,
    /// The end of the set-up (`associate_timeout_secs` after the connection came).
    pub(super) setup_deadline: tokio::time::Instant,
    pub(super) route: Arc<RouteRt>,
    /// Every route of the listener (told apart by the called AP-title).
    pub(super) group: super::Group,
    /// The calling side; its protection is that of the route its AARQ called
    /// ([`super::select::RouteLayer`]).
    pub(super) up: SecureAssociation<super::select::RouteLayer>,
    pub(super) down: Option<SecureAssociation>,
    /// The calling side, for events.
    pub(super) label: String,
    /// The calling side's address (allow lists are checked again on reload).
    pub(super) peer: std::net::SocketAddr,
    /// The initiate sent on, once the calling side's has been accepted for forwarding.
    pub(super) sent: Option<InitiateParameters>,
    pub(super) sent_bytes: Option<Vec<u8>>,
    /// The AARQ's initiate, held while the OCSP look-up runs.
    pub(super) indication: Option<Vec<u8>>,
    /// The AARQ's initiate once OCSP let it through: dialled on the next turn.
    pub(super) pending_dial: Option<Vec<u8>>,
    pub(super) facts: FactsSlot,
    pub(super) open: bool,
    pub(super) result: Option<Outcome>,
    /// The first transport failure, which explains an abort.
    pub(super) error: Option<String>,
}

fn initiate_error(reason: &str) -> Vec<u8> {
    MmsPdu::InitiateError(ServiceError {
        class: ErrorClass::Initiate(0),
        additional_code: None,
        additional_description: Some(reason.chars().take(200).collect()),
    })
    .encode()
}

/// What the machine awaits: the OCSP answer for the calling side's certificate, or a place
/// for its AARQ's checks.
pub(super) enum GatewayEffect {
    Ocsp(Option<OcspOutcome>),
    Slot(Result<crate::handshakes::Slot, crate::handshakes::GateRefusal>),
}

impl GatewayMachine {
    /// The place for the AARQ's checks came (or not): check it, or abort unchecked.
    fn on_check_slot(
        &mut self,
        slot: Result<crate::handshakes::Slot, crate::handshakes::GateRefusal>,
        now: Now,
    ) {
        let Some(held) = self.gate.release() else {
            return;
        };
        let stats = &self.route.stats;
        match slot {
            Ok(slot) => {
                if slot.waited {
                    stats
                        .checks_delayed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let r = self.up.handle_input(&held, now);
                drop(slot);
                if let Err(e) = r {
                    self.abort_both(format!("cannot encode a reaction: {e}"), now);
                }
            }
            Err(why) => {
                stats
                    .checks_refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = self.up.abort(now);
                let text = why.describe(self.checks.gated());
                self.end(Outcome::Refused(format!("AARQ not checked: {text}")));
            }
        }
    }

    fn end(&mut self, o: Outcome) {
        if self.result.is_none() {
            let (e, text) = match &o {
                Outcome::Released => (ev::ASSOCIATION_END, "released".to_string()),
                Outcome::Refused(r) => (ev::ASSOCIATION_REFUSED, format!("refused: {r}")),
                Outcome::Aborted(r) => (ev::ASSOCIATION_END, format!("aborted: {r}")),
            };
            self.route.event(e, format!("{}: {text}", self.label));
            self.route.count(&o);
            self.result = Some(o);
        }
    }

    /// Refuses the calling side during set-up: an AARE (or HandshakeSecReject) with the
    /// reason in an initiate-ErrorPDU.
    fn refuse(&mut self, transient: bool, reason: String, now: Now) {
        let result = if transient {
            REJECTED_TRANSIENT
        } else {
            REJECTED_PERMANENT
        };
        if self
            .up
            .reject(
                result,
                SourceDiagnostic::ServiceUser(user_diagnostic::NO_REASON_GIVEN),
                Some(initiate_error(&reason)),
                now,
            )
            .is_err()
        {
            let _ = self.up.abort(now);
        }
        self.end(Outcome::Refused(reason));
    }

    fn abort_both(&mut self, why: String, now: Now) {
        if !self.up.is_closed() {
            let _ = self.up.abort(now);
        }
        if let Some(d) = self.down.as_mut().filter(|d| !d.is_closed()) {
            let _ = d.abort(now);
        }
        let why = match self.error.take() {
            Some(e) => format!("{why} ({e})"),
            None => why,
        };
        if self.open {
            self.end(Outcome::Aborted(why));
        } else {
            self.end(Outcome::Refused(why));
        }
    }

    /// The calling side's initiate passed its checks: cap it and dial the far side.
    fn on_indication(
        &mut self,
        initiate: &[u8],
    ) -> Option<Step<GatewayEffect, ByteStream<HopStream>>> {
        let now = crate::driver::now();
        match forward_initiate_request(initiate, &self.route.limits, &self.route.mms_limits) {
            Ok((sent, bytes)) => {
                self.sent = Some(sent);
                self.sent_bytes = Some(bytes);
                let dial = super::dial(self.route.clone(), self.facts.clone());
                Some(Step::Connect(dial))
            }
            Err(e) => {
                self.refuse(false, format!("invalid MMS initiate-RequestPDU: {e}"), now);
                Some(Step::Done)
            }
        }
    }

    fn up_event(
        &mut self,
        e: SecureEvent,
        now: Now,
    ) -> Option<Step<GatewayEffect, ByteStream<HopStream>>> {
        match e {
            SecureEvent::AssociateIndication { aarq, initiate } => {
                let initiate = initiate.unwrap_or_default();
                if self.group.len() > 1 || self.route.called.is_some() {
                    let (ap, ae) = super::select::called_titles(&aarq);
                    // IED routes: the one whose protection checked the AARQ.
                    let chosen = self.up.layer_mut().chosen().cloned();
                    let found = chosen.or_else(|| {
                        self.group
                            .iter()
                            .find(|r| r.kind == super::Kind::Client && r.selects(ap, ae))
                            .cloned()
                    });
                    match found {
                        Some(r) if r.allows(self.peer.ip()) => self.route = r,
                        Some(r) => {
                            let why = format!(
                                "{} is not in the allow list of {}",
                                self.peer.ip(),
                                r.name
                            );
                            self.refuse(false, why, now);
                            return Some(Step::Done);
                        }
                        None => {
                            let called = ap.map_or("none".to_string(), |o| o.to_string());
                            let why = format!("no route for the called AP-title {called}");
                            if self
                                .up
                                .reject(
                                    REJECTED_PERMANENT,
                                    SourceDiagnostic::ServiceUser(
                                        user_diagnostic::CALLED_AP_TITLE_NOT_RECOGNIZED,
                                    ),
                                    Some(initiate_error(&why)),
                                    now,
                                )
                                .is_err()
                            {
                                let _ = self.up.abort(now);
                            }
                            self.end(Outcome::Refused(why));
                            return Some(Step::Done);
                        }
                    }
                }
                if let Some(lookup) = self.route.security_in.peer_ocsp_lookup(&self.up) {
                    self.indication = Some(initiate);
                    return Some(Step::Effect(Box::pin(async move {
                        GatewayEffect::Ocsp(lookup.await)
                    })));
                }
                return self.on_indication(&initiate);
            }
            SecureEvent::Mms(pdu) => {
                let verdict = match &self.route.guard {
                    Some(g) => g.check(&pdu),
                    None => Verdict::Forward,
                };
                match verdict {
                    Verdict::Forward => {
                        self.route.forwarded();
                        if let Some(d) = self.down.as_mut() {
                            if let Err(e) = d.send_mms(&pdu, now) {
                                self.abort_both(format!("far side: {e}"), now);
                            }
                        }
                    }
                    Verdict::Refuse { answer, denial } => {
                        self.route.denied(&self.label, &denial);
                        if let Err(e) = self.up.send_mms(&answer, now) {
                            self.abort_both(format!("calling side: {e}"), now);
                        }
                    }
                }
            }
            SecureEvent::ReleaseIndication { conclude } => match self.down.as_mut() {
                Some(d) if d.is_established() => {
                    if d.release(conclude, now).is_err() {
                        self.abort_both("the far side's release failed".into(), now);
                    }
                }
                _ => self.abort_both("release before the far side was up".into(), now),
            },
            SecureEvent::Released { answer } => {
                // The far side asked to release; its peer answered.
                if let Some(d) = self.down.as_mut() {
                    let _ = d.release_response(answer, now);
                }
                self.end(Outcome::Released);
            }
            SecureEvent::ReleaseRefused => {
                self.abort_both("the calling side refused the release".into(), now)
            }
            SecureEvent::Aborted(a) => {
                self.abort_both(format!("calling side aborted ({:?})", a.origin), now)
            }
            SecureEvent::SecurityFailure(e) => {
                self.abort_both(format!("calling side failed a security check: {e}"), now)
            }
            SecureEvent::TimedOut(k) => {
                self.abort_both(format!("calling side: {k:?} timeout"), now)
            }
            SecureEvent::ProtocolError(e) => {
                self.abort_both(format!("calling side: protocol error: {e}"), now)
            }
            SecureEvent::Closed => {
                if self.result.is_none() {
                    // Before the set-up ended, a close after our own refusal is that refusal.
                    let why = match (self.open, self.up.layer_mut().unrouted()) {
                        (false, Some(why)) => why.to_string(),
                        _ => match self.up.last_diagnostic().filter(|_| !self.open) {
                            Some(d) => format!("E2E: {d}"),
                            None => "calling side closed".into(),
                        },
                    };
                    self.abort_both(why, now);
                }
            }
            SecureEvent::Established { .. } | SecureEvent::Rejected { .. } => {}
        }
        None
    }

    fn down_event(&mut self, e: SecureEvent, now: Now) {
        match e {
            SecureEvent::Established {
                initiate_response, ..
            } => {
                let Some(sent) = self.sent.as_ref() else {
                    return;
                };
                let resp = initiate_response.unwrap_or_default();
                match forward_initiate_response(&resp, sent, &self.route.mms_limits) {
                    Ok((_, bytes)) => {
                        if let Err(e) = self.up.accept(bytes, now) {
                            self.abort_both(format!("calling side: {e}"), now);
                            return;
                        }
                        self.open = true;
                        self.route
                            .stats
                            .associations
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let how = self.up.protection().describe();
                        self.route.event(
                            ev::ASSOCIATION_START,
                            format!("{}: forwarded to {} ({how})", self.label, self.route.far),
                        );
                    }
                    Err(e) => {
                        if let Some(d) = self.down.as_mut() {
                            let _ = d.abort(now);
                        }
                        self.refuse(
                            false,
                            format!(
                                "{} answered an invalid initiate-ResponsePDU: {e}",
                                self.route.far
                            ),
                            now,
                        );
                    }
                }
            }
            SecureEvent::Rejected {
                reason,
                initiate_error: err,
                needs_extended_user_data,
                ..
            } => {
                let mut why = format!("{} refused the association: {reason:?}", self.route.far);
                if let Some(n) = needs_extended_user_data {
                    why.push_str(&format!(
                        " (our CONNECT carried {n} octets; the far side may lack session \
                         Extended User Data)"
                    ));
                }
                let result = REJECTED_PERMANENT;
                // The far side's own initiate-ErrorPDU, when it sent one, tells the caller more
                // than ours would.
                let answer = err.unwrap_or_else(|| initiate_error(&why));
                if self
                    .up
                    .reject(
                        result,
                        SourceDiagnostic::ServiceUser(user_diagnostic::NO_REASON_GIVEN),
                        Some(answer),
                        now,
                    )
                    .is_err()
                {
                    let _ = self.up.abort(now);
                }
                self.end(Outcome::Refused(why));
            }
            SecureEvent::Mms(pdu) => {
                self.route.forwarded();
                if let Err(e) = self.up.send_mms(&pdu, now) {
                    self.abort_both(format!("calling side: {e}"), now);
                }
            }
            SecureEvent::ReleaseIndication { conclude } => {
                if self.up.release(conclude, now).is_err() {
                    self.abort_both("the calling side's release failed".into(), now);
                }
            }
            SecureEvent::Released { answer } => {
                let _ = self.up.release_response(answer, now);
                self.end(Outcome::Released);
            }
            SecureEvent::ReleaseRefused => {
                self.abort_both("the far side refused the release".into(), now)
            }
            SecureEvent::Aborted(a) => {
                let why = format!("{} aborted ({:?})", self.route.far, a.origin);
                if self.open {
                    self.abort_both(why, now);
                } else {
                    self.refuse(true, why, now);
                }
            }
            SecureEvent::SecurityFailure(e) => {
                let why = format!("{} failed a security check: {e}", self.route.far);
                if self.open {
                    self.abort_both(why, now);
                } else {
                    self.refuse(false, why, now);
                }
            }
            SecureEvent::TimedOut(k) => {
                let why = format!("{}: no answer ({k:?} timeout)", self.route.far);
                if self.open {
                    self.abort_both(why, now);
                } else {
                    self.refuse(true, why, now);
                }
            }
            SecureEvent::ProtocolError(e) => {
                let why = format!("{}: protocol error: {e}", self.route.far);
                if self.open {
                    self.abort_both(why, now);
                } else {
                    self.refuse(false, why, now);
                }
            }
            SecureEvent::Closed => {
                if self.result.is_none() {
                    let why = format!("{} closed the connection", self.route.far);
                    if self.open {
                        self.abort_both(why, now);
                    } else {
                        self.refuse(true, why, now);
                    }
                }
            }
            SecureEvent::AssociateIndication { .. } => {}
        }
    }
}

impl Machine<ByteStream<HopStream>> for GatewayMachine {
    type Cmd = ();
    type Effect = GatewayEffect;

    fn handle_input(&mut self, port: Port, input: &[u8], now: Now) {
        let r = match port {
            Port::Up => {
                let up = &mut self.up;
                self.gate.input(input, |b| up.handle_input(b, now))
            }
            Port::Down => match self.down.as_mut() {
                Some(d) => d.handle_input(input, now),
                None => Ok(()),
            },
        };
        if let Err(e) = r {
            self.abort_both(format!("cannot encode a reaction: {e}"), now);
        }
    }

    fn transport_closed(&mut self, port: Port, error: Option<std::io::Error>, now: Now) {
        if let Some(e) = error {
            let side = match port {
                Port::Up => "calling side",
                Port::Down => "far side",
            };
            self.error.get_or_insert(format!("{side}: {e}"));
        }
        match port {
            Port::Up => self.up.transport_closed(now),
            Port::Down => {
                if let Some(d) = self.down.as_mut() {
                    d.transport_closed(now);
                }
            }
        }
    }

    fn write_failed(&mut self, port: Port, error: LinkError, now: Now) {
        self.error.get_or_insert(error.to_string());
        self.transport_closed(port, None, now);
    }

    fn handle_wake(&mut self, now: Now) {
        // A reload: is the route still there, does it still let this source in, is the
        // secured side's peer still valid under the CRLs read again?
        if self.result.is_some() {
            return;
        }
        match self.route.latest() {
            None => {
                self.abort_both("route removed by a configuration reload".into(), now);
                return;
            }
            Some(r) => {
                if !r.allows(self.peer.ip()) {
                    self.abort_both(
                        format!("{} is no longer in the reloaded allow list", self.peer.ip()),
                        now,
                    );
                    return;
                }
                // After set-up only policy comes from the new version (read-only, limits);
                // the security contexts of the two associations stay those they began with.
                if self.open {
                    self.route = r;
                }
            }
        }
        let mut revoked = self.up.recheck_peer(now).err().map(|e| e.to_string());
        if revoked.is_none() {
            if let Some(d) = self.down.as_mut() {
                revoked = d.recheck_peer(now).err().map(|e| e.to_string());
            }
        }
        if let Some(e) = revoked {
            self.abort_both(format!("after the reload: {e}"), now);
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.up.handle_timeout(now);
        if let Some(d) = self.down.as_mut() {
            d.handle_timeout(now);
        }
    }

    fn process(&mut self, now: Now) -> Step<Self::Effect, ByteStream<HopStream>> {
        if let Some(initiate) = self.pending_dial.take() {
            if self.result.is_none() {
                if let Some(step) = self.on_indication(&initiate) {
                    return step;
                }
            }
        }
        loop {
            if self.result.is_some() {
                return Step::Done;
            }
            if let Some(e) = self.up.poll_event() {
                if let Some(step) = self.up_event(e, now) {
                    return step;
                }
                continue;
            }
            let Some(e) = self.down.as_mut().and_then(|d| d.poll_event()) else {
                break;
            };
            self.down_event(e, now);
        }
        if self.result.is_some() {
            return Step::Done;
        }
        if self.gate.ask() {
            // The AARQ is whole: wait for a place for its checks.
            let enter = self.checks.clone().enter_owned(self.setup_deadline);
            return Step::Effect(Box::pin(async move { GatewayEffect::Slot(enter.await) }));
        }
        Step::Idle
    }

    fn complete(&mut self, outcome: Self::Effect, now: Now) {
        let outcome = match outcome {
            GatewayEffect::Slot(slot) => return self.on_check_slot(slot, now),
            GatewayEffect::Ocsp(o) => o,
        };
        let Some(initiate) = self.indication.take() else {
            return;
        };
        if let Err(e) =
            self.route
                .security_in
                .apply_peer_ocsp(&mut self.up, outcome, &self.label, now)
        {
            self.end(Outcome::Refused(format!("OCSP: {e}")));
            return;
        }
        // The dial is the next step the driver asks for.
        self.pending_dial = Some(initiate);
    }

    fn connected(&mut self, result: Result<(), String>, now: Now) {
        match result {
            Err(why) => {
                self.refuse(true, why, now);
            }
            Ok(()) => {
                let facts = self
                    .facts
                    .lock()
                    .ok()
                    .and_then(|mut f| f.take())
                    .unwrap_or_default();
                match self.route.far_association(&facts, now) {
                    Ok(mut d) => {
                        let bytes = self.sent_bytes.take().unwrap_or_default();
                        if let Err(e) = d.connect(bytes, now) {
                            self.refuse(false, format!("cannot call {}: {e}", self.route.far), now);
                            return;
                        }
                        debug!(far = %self.route.far, "far side connected; associating");
                        self.down = Some(d);
                    }
                    Err(why) => self.refuse(false, why, now),
                }
            }
        }
    }

    fn poll_transmit(&mut self, port: Port) -> Option<Vec<u8>> {
        match port {
            Port::Up => self.up.poll_transmit(),
            Port::Down => self.down.as_mut()?.poll_transmit(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let up = self.up.poll_timeout();
        let down = self.down.as_ref().and_then(|d| d.poll_timeout());
        match (up, down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The future type of a dial.
pub(super) type Dial = BoxFuture<Result<ByteStream<HopStream>, String>>;
