//! Log lines an attacker cannot multiply: a flood of one kind of line (refused connections,
//! refused or failed associations) gives a few lines per window, and the next line after the
//! flood says how many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `burst` lines per `window` for one kind of line.
#[derive(Debug)]
pub struct LogLimiter {
    burst: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter of `burst` lines per `window`.
    pub const fn new(burst: u32, window: Duration) -> Self {
        LogLimiter {
            burst,
            window,
            state: Mutex::new(Window {
                start: None,
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be written at `now`, `n` being how many were left out since
    /// the last one written; `None` when this one is left out (and counted).
    pub fn check(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(w.start, Some(s) if now.saturating_duration_since(s) < self.window) {
            w.start = Some(now);
            w.written = 0;
        }
        if w.written >= self.burst {
            w.suppressed += 1;
            return None;
        }
        w.written += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

/// " (N similar lines left out)" when `n` > 0, for the end of a rate-limited line.
pub fn left_out(n: u64) -> String {
    match n {
        0 => String::new(),
        n => format!(" ({n} similar lines left out since the last one)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_a_burst_per_window_and_then_the_count() {
        let l = LogLimiter::new(3, Duration::from_secs(10));
        let t = Instant::now();
        let written: Vec<_> = (0..1000).filter_map(|_| l.check(t)).collect();
        assert_eq!(written, [0, 0, 0]);
        // Still in the window: left out.
        assert_eq!(l.check(t + Duration::from_secs(9)), None);
        // The next window's first line tells how many were left out.
        assert_eq!(l.check(t + Duration::from_secs(10)), Some(998));
        assert_eq!(l.check(t + Duration::from_secs(10)), Some(0));
        assert_eq!(
            left_out(998),
            " (998 similar lines left out since the last one)"
        );
        assert_eq!(left_out(0), "");
    }
}
