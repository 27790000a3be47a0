//! The closed-loop load of [`Client::load`](super::Client::load): its specification, its
//! outcome, and its state inside the association's machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_mms::pdu::{ConfirmedServiceRequest, ConfirmedServiceResponse};
use secmms_mms::AccessResult;
use secmms_profiles::secure::Now;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::ClientError;
use crate::stats::Histogram;

/// A closed-loop load on one association, run by the association's own machine
/// ([`Client::load`](super::Client::load)): `outstanding` copies of `service` are kept in flight, a new one leaving as each answer
/// arrives, until `duration` has passed. No task switch or channel per request, so the cost the
/// load generator adds to every round trip is the encoding, the decoding and one clock reading.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The confirmed service every request carries.
    pub service: ConfirmedServiceRequest,
    /// Requests kept in flight (capped by the negotiated outstanding-requests limit, which they
    /// share with the association's other requests).
    pub outstanding: usize,
    /// How long new requests are issued; answers to the last ones are still awaited.
    pub duration: Duration,
    /// Incremented for every successful answer, for progress reports while the load runs.
    pub completed: Arc<AtomicU64>,
}

/// What a [`Client::load`](super::Client::load) run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    /// Round-trip time of every successful request.
    pub latency: Histogram,
    /// Requests answered with an error, a reject, a failed access, or not answered in time.
    pub errors: u64,
    /// Why the association ended during the load, if it did.
    pub ended: Option<String>,
}

/// The state of a running [`Cmd::Load`] inside the association's machine.
pub(super) struct LoadRun {
    pub(super) service: ConfirmedServiceRequest,
    pub(super) target: usize,
    pub(super) deadline: Instant,
    pub(super) request_timeout: Duration,
    /// When each request in flight was sent (the time of the turn that sent it).
    pub(super) inflight: HashMap<u32, Instant>,
    pub(super) completed: Arc<AtomicU64>,
    pub(super) outcome: LoadOutcome,
    pub(super) reply: oneshot::Sender<Result<LoadOutcome, ClientError>>,
    /// The load's share of the negotiated outstanding requests, held while it runs.
    pub(super) _permits: OwnedSemaphorePermit,
    /// The deadline was seen to pass: no new request leaves.
    pub(super) drained: bool,
}

impl LoadRun {
    /// Issuing new requests has stopped at `now`.
    pub(super) fn draining(&mut self, now: Instant) -> bool {
        self.drained |= now >= self.deadline;
        self.drained
    }

    /// Records the answer to `id`, received at `now`, if it belongs to the load; false if it
    /// does not.
    pub(super) fn answer(&mut self, id: u32, ok: bool, now: Instant) -> bool {
        let Some(sent) = self.inflight.remove(&id) else {
            return false;
        };
        if ok {
            self.outcome
                .latency
                .record(now.saturating_duration_since(sent));
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.outcome.errors += 1;
        }
        true
    }
}

/// Starts a load unless one is running already.
pub(super) fn start_load(
    load: &mut Option<LoadRun>,
    spec: LoadSpec,
    reply: oneshot::Sender<Result<LoadOutcome, ClientError>>,
    permits: OwnedSemaphorePermit,
    request_timeout: Duration,
    now: Now,
) {
    if load.is_some() {
        let _ = reply.send(Err(super::UsageError::LoopRunning.into()));
        return;
    }
    let target = spec.outstanding.max(1);
    *load = Some(LoadRun {
        service: spec.service,
        target,
        deadline: now.mono + spec.duration,
        request_timeout,
        inflight: HashMap::with_capacity(target),
        completed: spec.completed,
        outcome: LoadOutcome::default(),
        reply,
        _permits: permits,
        drained: false,
    });
}

/// Whether a confirmed response counts as a successful load request: every access of a Read
/// must have succeeded.
pub(super) fn load_response_ok(service: &ConfirmedServiceResponse) -> bool {
    match service {
        ConfirmedServiceResponse::Read(r) => r
            .results
            .iter()
            .all(|a| matches!(a, AccessResult::Success(_))),
        _ => true,
    }
}
