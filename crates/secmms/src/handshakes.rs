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

/// What a [`HandshakeGate`] is in front of, and the configuration section its limits are in
/// (`"server"`, `"gateway"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gated {
    /// TLS handshakes.
    Tls(&'static str),
    /// The application-security checks of AARQs (A-profile or E2E).
    Checks(&'static str),
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
    pub(crate) fn describe(self, gated: Gated) -> String {
        match (gated, self) {
            (Gated::Tls(s), GateRefusal::Busy) => {
                format!("{s}.max_handshakes TLS handshakes under way")
            }
            (Gated::Tls(s), GateRefusal::Rate) => {
                format!("more than {s}.handshake_rate TLS handshakes a second")
            }
            (Gated::Checks(s), GateRefusal::Busy) => {
                format!("{s}.max_security_checks AARQ security checks under way")
            }
            (Gated::Checks(s), GateRefusal::Rate) => {
                format!("more than {s}.security_check_rate AARQ security checks a second")
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
    pub(crate) async fn enter_owned(
        self: Arc<Self>,
        deadline: Instant,
    ) -> Result<Slot, GateRefusal> {
        self.enter(deadline).await
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

/// A compat or native association's first TSDU, its AARQ, held back until it has a place at
/// the check gate (`server.max_security_checks` / `server.security_check_rate`; the gateway's
/// own). Its checks cost a signature check, and in native mode a Diffie-Hellman agreement and a
/// signature, so they wait for a place as TLS handshakes do. The place is asked for only once
/// the AARQ has arrived whole, so a peer that sends it slowly holds none; the association set-up
/// deadline bounds the wait. Whole TPKTs before the AARQ's last DT (the CR, the first DTs of a
/// long AARQ) go on at once. The driver reads nothing while a place is awaited, so what is held
/// is bounded by one TPKT and one read.
#[derive(Debug)]
pub(crate) enum AarqHold {
    /// No gate (plain mode), or the AARQ was checked: input goes straight on.
    Open,
    /// Input held until the last DT of the AARQ is whole.
    Holding(Vec<u8>),
    /// The AARQ's last DT is whole (and what followed it): a place is to be asked for.
    Whole(Vec<u8>),
    /// A place was asked for.
    Asked(Vec<u8>),
}

impl AarqHold {
    /// Holding when `gated` (compat or native mode), open otherwise.
    pub(crate) fn new(gated: bool) -> Self {
        if gated {
            AarqHold::Holding(Vec::new())
        } else {
            AarqHold::Open
        }
    }

    /// Input arrived: what may go on now goes to `feed` (everything once open; before that the
    /// whole TPKTs ahead of the AARQ's last DT). The first error of `feed` is returned.
    pub(crate) fn input<E>(
        &mut self,
        input: &[u8],
        mut feed: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let held = match self {
            AarqHold::Open => return feed(input),
            AarqHold::Whole(h) | AarqHold::Asked(h) => {
                h.extend_from_slice(input);
                return Ok(());
            }
            AarqHold::Holding(h) => h,
        };
        held.extend_from_slice(input);
        let mut start = 0;
        let mut whole = false;
        let mut r = Ok(());
        while start < held.len() {
            match next_tpkt(&held[start..]) {
                HeldTpkt::Partial => break,
                HeldTpkt::LastDt => {
                    whole = true;
                    break;
                }
                HeldTpkt::Other(len) => {
                    r = feed(&held[start..start + len]);
                    start += len;
                    if r.is_err() {
                        break;
                    }
                }
                // Not RFC 1006 framing: the association reports the error.
                HeldTpkt::Invalid => {
                    let rest = std::mem::take(held).split_off(start);
                    *self = AarqHold::Open;
                    return feed(&rest);
                }
            }
        }
        held.drain(..start);
        if whole && r.is_ok() {
            *self = AarqHold::Whole(std::mem::take(held));
        }
        r
    }

    /// Whether the AARQ is whole and no place was asked for yet.
    pub(crate) fn is_whole(&self) -> bool {
        matches!(self, AarqHold::Whole(_))
    }

    /// `true` once, when the AARQ is whole: the caller asks for a place now.
    pub(crate) fn ask(&mut self) -> bool {
        match self {
            AarqHold::Whole(h) => {
                *self = AarqHold::Asked(std::mem::take(h));
                true
            }
            _ => false,
        }
    }

    /// The answer about the place came: the held input (the AARQ and what followed), to be
    /// checked or dropped; from now on input goes straight on.
    pub(crate) fn release(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(self, AarqHold::Open) {
            AarqHold::Asked(h) => Some(h),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// What the next held TPKT is.
#[derive(Debug, PartialEq, Eq)]
enum HeldTpkt {
    /// Not all of its octets are there yet.
    Partial,
    /// A whole DT TPDU with the end-of-TSDU mark.
    LastDt,
    /// Another whole TPKT of this many octets.
    Other(usize),
    /// Not a TPKT header.
    Invalid,
}

/// Looks at the TPKT (RFC 1006) at the start of `b`: version 3, reserved octet, length, then the
/// X.224 header (LI, code; a class 0 DT is `02 F0 EOT|NR`).
fn next_tpkt(b: &[u8]) -> HeldTpkt {
    if b.len() < 4 {
        return HeldTpkt::Partial;
    }
    let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if b[0] != 3 || len < 7 {
        return HeldTpkt::Invalid;
    }
    if b.len() < len {
        return HeldTpkt::Partial;
    }
    if b[5] & 0xF0 == 0xF0 && b[6] & 0x80 != 0 {
        HeldTpkt::LastDt
    } else {
        HeldTpkt::Other(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_and_rate_are_enforced() {
        let g = HandshakeGate::new(Gated::Tls("server"), 2, 0);
        let soon = Instant::now() + Duration::from_millis(100);
        let a = g.enter(soon).await.unwrap();
        let _b = g.enter(soon).await.unwrap();
        assert!(!a.waited);
        assert_eq!(g.enter(soon).await.unwrap_err(), GateRefusal::Busy);
        drop(a);
        let c = g.enter(Instant::now() + Duration::from_millis(100)).await;
        assert!(c.is_ok());

        let g = HandshakeGate::new(Gated::Checks("server"), 0, 10);
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

    #[test]
    fn held_input_is_split_at_the_last_dt_of_a_tsdu() {
        let cr = [3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 1, 0];
        assert_eq!(next_tpkt(&cr), HeldTpkt::Other(11));
        let dt = [3, 0, 0, 8, 2, 0xF0, 0x00, 0xAA];
        assert_eq!(next_tpkt(&dt), HeldTpkt::Other(8));
        let last = [3, 0, 0, 8, 2, 0xF0, 0x80, 0xBB];
        assert_eq!(next_tpkt(&last), HeldTpkt::LastDt);
        assert_eq!(next_tpkt(&last[..7]), HeldTpkt::Partial);
        assert_eq!(next_tpkt(&last[..3]), HeldTpkt::Partial);
        assert_eq!(next_tpkt(&[4, 0, 0, 8, 2, 0xF0, 0x80]), HeldTpkt::Invalid);
        assert_eq!(next_tpkt(&[3, 0, 0, 5, 2]), HeldTpkt::Invalid);

        // The CR and a first DT go on at once, split anywhere; the last DT waits.
        let mut all = cr.to_vec();
        all.extend_from_slice(&dt);
        all.extend_from_slice(&last);
        let mut fed = Vec::new();
        let mut h = AarqHold::new(true);
        for chunk in all.chunks(3) {
            h.input(chunk, |b| {
                fed.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        assert_eq!(fed, [&cr[..], &dt[..]].concat());
        assert!(h.is_whole());
        assert!(h.ask());
        assert!(!h.ask());
        // Input while the place is awaited is kept with the AARQ.
        h.input(&[1, 2], |_| Ok::<(), ()>(())).unwrap();
        assert_eq!(h.release().unwrap(), [&last[..], &[1, 2]].concat());
        assert!(h.release().is_none());
        h.input(&[9], |b| {
            assert_eq!(b, [9]);
            Ok::<(), ()>(())
        })
        .unwrap();
        // Plain mode: no holding at all.
        let mut p = AarqHold::new(false);
        let mut n = 0;
        p.input(&last, |b| {
            n += b.len();
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(n, last.len());
    }

    proptest::proptest! {
        /// Whatever arrives, cut anywhere: no panic, nothing lost or reordered (what went on
        /// followed by what is held is the input), and what is held is at most one TPKT's worth
        /// plus the last chunk.
        #[test]
        fn held_input_loses_nothing_and_stays_bounded(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000),
            cuts in proptest::collection::vec(1usize..300, 1..20),
        ) {
            let mut h = AarqHold::new(true);
            let mut fed = Vec::new();
            let mut at = 0;
            let mut i = 0;
            while at < data.len() {
                let n = cuts[i % cuts.len()].min(data.len() - at);
                h.input(&data[at..at + n], |b| {
                    fed.extend_from_slice(b);
                    Ok::<(), ()>(())
                }).unwrap();
                at += n;
                i += 1;
                let held = match &h {
                    AarqHold::Holding(v) | AarqHold::Whole(v) | AarqHold::Asked(v) => v.len(),
                    AarqHold::Open => 0,
                };
                proptest::prop_assert!(held <= 65_535 + 300);
            }
            if h.ask() {
                fed.extend_from_slice(&h.release().unwrap());
            } else if let AarqHold::Holding(v) = &h {
                fed.extend_from_slice(v);
            }
            proptest::prop_assert_eq!(fed, data);
        }
    }
}
