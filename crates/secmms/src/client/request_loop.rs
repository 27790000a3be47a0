//! Request loops ([`Client::run_loop`](super::Client::run_loop)): the caller's
//! [`RequestLoop`] runs inside the association's own task, which asks it for the next request
//! whenever one of its slots is free and hands it every answer in the same turn. No channel or
//! task switch per request: a poller that reads a device as fast as it answers, or a load
//! generator, costs the association little more than the encoding and decoding.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_mms::pdu::{ConfirmedServiceRequest, ConfirmedServiceResponse};
use secmms_mms::session::ClientSession;
use secmms_profiles::secure::{Now, ProtectionError, SecureAssociation};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::{ClientError, UsageError, Waiter};
use crate::driver::LinkError;

/// What a [`RequestLoop`] wants at a turn of the association task.
#[derive(Debug, Clone)]
pub enum LoopStep {
    /// Send this confirmed request now.
    Send(ConfirmedServiceRequest),
    /// Nothing to send for now: the loop is asked again at the next turn (an answer, a caller's
    /// request, a timer) and at [`RequestLoop::wake_at`].
    Wait,
    /// Send nothing more: the loop ends once the requests still in flight are answered or late.
    Stop,
}

/// A sequence of confirmed requests run by the association task itself (see
/// [`Client::run_loop`](super::Client::run_loop)). The methods are called from inside that task
/// and must not block: they decide, record and return.
pub trait RequestLoop: Send + 'static {
    /// The next step at `now`. Called while the loop has a free slot (fewer requests in flight
    /// than it was given), until it answers [`LoopStep::Wait`] or [`LoopStep::Stop`].
    fn next(&mut self, now: Instant) -> LoopStep;

    /// The outcome of a request this loop sent at `sent`, known at `now`: the server's answer,
    /// or its error, reject or a [`ClientError::Timeout`] when no answer came within the
    /// client's request timeout.
    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        sent: Instant,
        now: Instant,
    );

    /// When the loop next wants a turn without an answer arriving (a deadline, the next
    /// period of a poll); `None` when only answers move it. Asked after every turn in which the
    /// loop has a free slot; with every slot busy, the next answer or timeout gives it its turn.
    fn wake_at(&self) -> Option<Instant> {
        None
    }
}

/// How a request loop ended, besides the loop itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopEnd {
    /// Requests in flight when the association ended under the loop; they were never answered
    /// (requests that were late while the association lived went to
    /// [`RequestLoop::answered`] as timeouts).
    pub lost: u64,
    /// Why the association ended during the loop, if it did.
    pub ended: Option<String>,
}

/// A loop of any type, as the association task keeps it; it gives the typed loop back to the
/// caller when it ends.
pub(crate) trait ErasedLoop: Send {
    fn next(&mut self, now: Instant) -> LoopStep;
    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        sent: Instant,
        now: Instant,
    );
    fn wake_at(&self) -> Option<Instant>;
    /// The caller stopped waiting for the loop (its future was dropped).
    fn abandoned(&self) -> bool;
    fn finish(self: Box<Self>, end: Result<LoopEnd, ClientError>);
}

/// The caller's reply channel for a loop of type `L`.
pub(super) type LoopReply<L> = oneshot::Sender<Result<(L, LoopEnd), ClientError>>;

/// A typed loop with the channel its caller waits on.
pub(super) struct Typed<L: RequestLoop> {
    pub(super) inner: L,
    pub(super) reply: LoopReply<L>,
}

impl<L: RequestLoop> ErasedLoop for Typed<L> {
    fn next(&mut self, now: Instant) -> LoopStep {
        self.inner.next(now)
    }

    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        sent: Instant,
        now: Instant,
    ) {
        self.inner.answered(outcome, sent, now)
    }

    fn wake_at(&self) -> Option<Instant> {
        self.inner.wake_at()
    }

    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn finish(self: Box<Self>, end: Result<LoopEnd, ClientError>) {
        let Typed { inner, reply } = *self;
        let _ = reply.send(end.map(|e| (inner, e)));
    }
}

/// A running loop inside the association's machine.
pub(super) struct LoopRun {
    run: Box<dyn ErasedLoop>,
    /// Requests it may have in flight (its share of the negotiated limit).
    target: usize,
    request_timeout: Duration,
    /// When each request in flight was sent (the time of the turn that sent it).
    inflight: HashMap<u32, Instant>,
    /// The loop asked for nothing more (or its caller left).
    stopped: bool,
    /// Its share of the negotiated outstanding requests, held while it runs.
    _permits: OwnedSemaphorePermit,
}

impl LoopRun {
    /// Starts `run` unless a loop is running already (then it ends at once with
    /// [`UsageError::LoopRunning`]).
    pub(super) fn start(
        slot: &mut Option<LoopRun>,
        run: Box<dyn ErasedLoop>,
        target: usize,
        permits: OwnedSemaphorePermit,
        request_timeout: Duration,
    ) {
        if slot.is_some() {
            run.finish(Err(UsageError::LoopRunning.into()));
            return;
        }
        *slot = Some(LoopRun {
            run,
            target: target.max(1),
            request_timeout,
            inflight: HashMap::with_capacity(target),
            stopped: false,
            _permits: permits,
        });
    }

    /// Sends what the loop asks for while it has free slots.
    pub(super) fn top_up(
        &mut self,
        session: &mut ClientSession<Waiter>,
        sa: &mut SecureAssociation,
        now: Now,
    ) -> Result<(), Arc<ProtectionError>> {
        if !self.stopped && self.run.abandoned() {
            self.stopped = true;
        }
        while !self.stopped && self.inflight.len() < self.target {
            let service = match self.run.next(now.mono) {
                LoopStep::Send(s) => s,
                LoopStep::Wait => break,
                LoopStep::Stop => {
                    self.stopped = true;
                    break;
                }
            };
            let id = match session.request(service, Waiter::Loop) {
                Ok((id, pdu)) => match sa.send_mms(&pdu, now) {
                    Ok(()) => id,
                    Err(e) => {
                        session.forget(id);
                        // The association is failing: ask for nothing more.
                        self.stopped = true;
                        let e = Arc::new(e);
                        let err = ClientError::from(LinkError::Security(e.clone()));
                        self.run.answered(Err(err), now.mono, now.mono);
                        return Err(e);
                    }
                },
                Err((e, _)) => {
                    // The session takes no request now (no invokeID free, concluding): the
                    // loop hears why and is asked again at a later turn.
                    self.run
                        .answered(Err(UsageError::Session(e).into()), now.mono, now.mono);
                    break;
                }
            };
            self.inflight.insert(id, now.mono);
        }
        Ok(())
    }

    /// Hands the answer to `id` to the loop, if it sent that request; false if it did not.
    pub(super) fn answer(
        &mut self,
        id: u32,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        now: Instant,
    ) -> bool {
        let Some(sent) = self.inflight.remove(&id) else {
            return false;
        };
        self.run.answered(outcome, sent, now);
        true
    }

    /// Gives up on requests older than the request timeout: the loop hears of each as a
    /// timeout, and the session forgets them (a late answer is then unmatched).
    pub(super) fn expire(&mut self, session: &mut ClientSession<Waiter>, now: Instant) {
        let timeout = self.request_timeout;
        let late: Vec<(u32, Instant)> = self
            .inflight
            .iter()
            .filter(|(_, &sent)| now >= sent + timeout)
            .map(|(&id, &sent)| (id, sent))
            .collect();
        for (id, sent) in late {
            self.inflight.remove(&id);
            session.forget(id);
            self.run
                .answered(Err(ClientError::Timeout(timeout)), sent, now);
        }
    }

    /// When the machine must wake for this loop: its own wish, and the oldest request's
    /// timeout.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        let oldest = self
            .inflight
            .values()
            .min()
            .map(|&sent| sent + self.request_timeout);
        // The loop is asked only while it has a free slot: with every slot busy, its wish
        // (perhaps already past) waits for an answer or a timeout.
        let wish = if self.stopped || self.inflight.len() >= self.target {
            None
        } else {
            self.run.wake_at()
        };
        match (oldest, wish) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Nothing more to send and nothing in flight.
    pub(super) fn is_done(&self) -> bool {
        self.stopped && self.inflight.is_empty()
    }

    /// Ends the loop normally (it stopped and everything it sent is settled).
    pub(super) fn finish(self) {
        self.run.finish(Ok(LoopEnd::default()));
    }

    /// Ends the loop because the association ended (`why`, if not by our own release):
    /// whatever was in flight is lost.
    pub(super) fn association_ended(self, why: Option<String>) {
        let end = LoopEnd {
            lost: self.inflight.len() as u64,
            ended: why,
        };
        self.run.finish(Ok(end));
    }
}
