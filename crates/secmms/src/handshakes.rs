//! How many TLS handshakes the server runs at once, and how many it starts per second
//! (`server.max_handshakes`, `server.handshake_rate`; docs/RELIABILITY.md); the same gate, a
//! second time, for the application-security checks of AARQs (`server.max_security_checks`,
//! `server.security_check_rate`).
//!
//! A handshake costs the server a private-key operation and a certificate-path check, about a
//! millisecond of CPU, before anything is known of the peer: a flood of ClientHellos would
//! otherwise take the CPU from associations already established and from legitimate clients.
//! A connection takes a handshake slot once its first octets are there (a silent connection
//! holds none) and gives it back when the handshake ends; above the rate or with every slot
//! taken it waits, still a pending connection (admission control may drop it meanwhile), and
//! is refused if it gets no slot within the handshake timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// What a [`HandshakeGate`] is in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gated {
    /// TLS handshakes.
    Tls,
    /// The application-security checks of AARQs (A-profile or E2E).
    Checks,
}

/// The gate in front of the TLS handshakes, or the AARQ checks, of one server.
#[derive(Debug)]
pub(crate) struct HandshakeGate {
    gated: Gated,
    slots: Arc<Semaphore>,
    /// Handshakes a second (0: no rate limit).
    rate: u32,
    /// Token bucket: (tokens, when last refilled).
    bucket: Mutex<(f64, Instant)>,
}

/// Why a connection got no handshake slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateRefusal {
    /// `max_handshakes` handshakes were running for the whole wait.
    Busy,
    /// `handshake_rate` handshakes a second were being started for the whole wait.
    Rate,
}

impl GateRefusal {
    /// The refusal in words, for what `gated` is.
    pub(crate) fn describe(self, gated: Gated) -> &'static str {
        match (gated, self) {
            (Gated::Tls, GateRefusal::Busy) => "server.max_handshakes TLS handshakes under way",
            (Gated::Tls, GateRefusal::Rate) => {
                "more than server.handshake_rate TLS handshakes a second"
            }
            (Gated::Checks, GateRefusal::Busy) => {
                "server.max_security_checks AARQ security checks under way"
            }
            (Gated::Checks, GateRefusal::Rate) => {
                "more than server.security_check_rate AARQ security checks a second"
            }
        }
    }
}

/// A handshake slot; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    /// Whether the connection had to wait for it.
    pub(crate) waited: bool,
}

impl HandshakeGate {
    /// At most `max` handshakes at once (0: no limit) and `rate` started a second (0: no
    /// limit; bursts of up to `rate`).
    pub(crate) fn new(gated: Gated, max: usize, rate: u32) -> Self {
        let max = if max == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max.min(Semaphore::MAX_PERMITS)
        };
        HandshakeGate {
            gated,
            slots: Arc::new(Semaphore::new(max)),
            rate,
            bucket: Mutex::new((f64::from(rate), Instant::now())),
        }
    }

    /// What the gate is in front of.
    pub(crate) fn gated(&self) -> Gated {
        self.gated
    }

    /// [`Self::enter`] as a future that borrows nothing (for a machine's effect).
    pub(crate) fn enter_owned(
        self: Arc<Self>,
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<Slot, GateRefusal>> + Send + 'static {
        async move { self.enter(deadline).await }
    }

    /// Takes a rate token at `now`, or says how long until one is there.
    fn token(&self, now: Instant) -> Result<(), Duration> {
        if self.rate == 0 {
            return Ok(());
        }
        let rate = f64::from(self.rate);
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.1).as_secs_f64();
        b.0 = (b.0 + elapsed * rate).min(rate);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.0) / rate))
        }
    }

    /// Waits until `deadline` for a slot and a rate token.
    pub(crate) async fn enter(&self, deadline: Instant) -> Result<Slot, GateRefusal> {
        let mut waited = false;
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                waited = true;
                match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => p,
                    _ => return Err(GateRefusal::Busy),
                }
            }
        };
        loop {
            let now = Instant::now();
            match self.token(now) {
                Ok(()) => {
                    return Ok(Slot {
                        _permit: permit,
                        waited,
                    })
                }
                Err(wait) if now + wait > deadline => return Err(GateRefusal::Rate),
                Err(wait) => {
                    waited = true;
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_and_rate_are_enforced() {
        let g = HandshakeGate::new(Gated::Tls, 2, 0);
        let soon = Instant::now() + Duration::from_millis(100);
        let a = g.enter(soon).await.unwrap();
        let _b = g.enter(soon).await.unwrap();
        assert!(!a.waited);
        assert_eq!(g.enter(soon).await.unwrap_err(), GateRefusal::Busy);
        drop(a);
        let c = g.enter(Instant::now() + Duration::from_millis(100)).await;
        assert!(c.is_ok());

        let g = HandshakeGate::new(Gated::Checks, 0, 10);
        let later = Instant::now() + Duration::from_secs(1);
        for _ in 0..10 {
            assert!(!g.enter(later).await.unwrap().waited);
        }
        // The eleventh waits a tenth of a second for its token.
        let start = Instant::now();
        assert!(g.enter(later).await.unwrap().waited);
        assert!(start.elapsed() >= Duration::from_millis(99));
        // None within 50 ms: refused.
        let t = Instant::now() + Duration::from_millis(50);
        assert_eq!(g.enter(t).await.unwrap_err(), GateRefusal::Rate);
    }
}
