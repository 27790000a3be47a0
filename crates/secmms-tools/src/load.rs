//! The closed-loop load of `secmms bench`: one [`RequestLoop`] per association that keeps
//! `outstanding` copies of a confirmed request in flight until a deadline and records the
//! round-trip time of each answer. It runs inside the association task
//! ([`Client::run_loop`]), so the generator adds no task switch or channel per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms::client::{Client, ClientError, LoopStep, RequestLoop};
use secmms_mms::pdu::{ConfirmedServiceRequest, ConfirmedServiceResponse};
use secmms_mms::AccessResult;

use crate::histogram::Histogram;

/// A closed-loop load on one association.
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

/// What a load measured.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    /// Round-trip time of every successful request.
    pub latency: Histogram,
    /// Requests answered with an error, a reject, a failed access, or not answered in time.
    pub errors: u64,
    /// Why the association ended during the load, if it did.
    pub ended: Option<String>,
}

/// The loop the association task runs for a load.
struct Load {
    service: ConfirmedServiceRequest,
    deadline: Instant,
    completed: Arc<AtomicU64>,
    outcome: LoadOutcome,
}

impl RequestLoop for Load {
    fn next(&mut self, now: Instant) -> LoopStep {
        if now >= self.deadline {
            LoopStep::Stop
        } else {
            LoopStep::Send(self.service.clone())
        }
    }

    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        sent: Instant,
        now: Instant,
    ) {
        if outcome.as_ref().is_ok_and(succeeded) {
            self.outcome
                .latency
                .record(now.saturating_duration_since(sent));
            self.completed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.outcome.errors += 1;
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.deadline)
    }
}

/// Whether an answer counts as a successful load request: every access of a Read must have
/// succeeded.
fn succeeded(service: &ConfirmedServiceResponse) -> bool {
    match service {
        ConfirmedServiceResponse::Read(r) => r
            .results
            .iter()
            .all(|a| matches!(a, AccessResult::Success(_))),
        _ => true,
    }
}

/// Runs `spec` on `client`'s association and returns what it measured. Fails when the
/// association cannot run a request loop (XMPP) or another loop runs on it.
pub async fn run(client: &Client, spec: LoadSpec) -> Result<LoadOutcome, ClientError> {
    let load = Load {
        service: spec.service,
        deadline: Instant::now() + spec.duration,
        completed: spec.completed,
        outcome: LoadOutcome::default(),
    };
    let (load, end) = client.run_loop(spec.outstanding, load).await?;
    let mut outcome = load.outcome;
    outcome.errors += end.lost;
    outcome.ended = end.ended;
    Ok(outcome)
}
