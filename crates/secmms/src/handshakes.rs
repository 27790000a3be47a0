//! How many TLS handshakes the server runs at once, and how many it starts per second
//! (`server.max_handshakes`, `server.handshake_rate`; docs/RELIABILITY.md).
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

/// The gate in front of the TLS handshakes of one server.
#[derive(Debug)]
pub(crate) struct HandshakeGate {
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

impl std::fmt::Display for GateRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GateRefusal::Busy => "server.max_handshakes TLS handshakes under way",
            GateRefusal::Rate => "more than server.handshake_rate TLS handshakes a second",
        })
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
    pub(crate) fn new(max: usize, rate: u32) -> Self {
        let max = if max == 0 {
            Semaphore::MAX_PERMITS
        } else {
            max.min(Semaphore::MAX_PERMITS)
        };
        HandshakeGate {
            slots: Arc::new(Semaphore::new(max)),
            rate,
            bucket: Mutex::new((f64::from(rate), Instant::now())),
        }
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
        let g = HandshakeGate::new(2, 0);
        let soon = Instant::now() + Duration::from_millis(100);
        let a = g.enter(soon).await.unwrap();
        let _b = g.enter(soon).await.unwrap();
        assert!(!a.waited);
        assert_eq!(g.enter(soon).await.unwrap_err(), GateRefusal::Busy);
        drop(a);
        let c = g.enter(Instant::now() + Duration::from_millis(100)).await;
        assert!(c.is_ok());

        let g = HandshakeGate::new(0, 10);
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
