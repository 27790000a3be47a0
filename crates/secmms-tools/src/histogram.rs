//! Latency recording for the load generator: a fixed-size log-linear histogram, so a long run
//! records any number of samples in constant memory.

use std::time::Duration;

/// Sub-buckets per power of two; relative error of a reported percentile is below 1/SUB.
const SUB: usize = 64;
/// Powers of two covered, from 1 µs to about 2^40 µs.
const POWERS: usize = 40;

/// A latency histogram with microsecond resolution and bounded memory.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; SUB * POWERS],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < SUB as u64 {
            return us as usize;
        }
        let power = 63 - us.leading_zeros() as usize; // floor(log2)
        let shift = power - SUB.trailing_zeros() as usize;
        let sub = ((us >> shift) as usize) - SUB;
        ((power - SUB.trailing_zeros() as usize + 1) * SUB + sub).min(SUB * POWERS - 1)
    }

    fn value_of(index: usize) -> u64 {
        if index < SUB {
            return index as u64;
        }
        let block = index / SUB; // >= 1
        let sub = (index % SUB) as u64;
        let shift = block - 1;
        (SUB as u64 + sub) << shift
    }

    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[Self::index(us)] += 1;
        self.total += 1;
        self.sum_us += us as u128;
        self.max_us = self.max_us.max(us);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean in microseconds.
    pub fn mean_us(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.total as f64
        }
    }

    /// Largest sample in microseconds.
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The value at quantile `q` (0.0–1.0), in microseconds (lower edge of its bucket).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return self.max_us;
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value_of(i).min(self.max_us);
            }
        }
        self.max_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5) as f64;
        let p99 = h.quantile_us(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.03, "p50 {p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.03, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max_us(), 10_000);
        let mut h2 = Histogram::new();
        h2.record(Duration::from_secs(3600));
        h.merge(&h2);
        assert_eq!(h.quantile_us(1.0), 3_600_000_000);
    }

    #[test]
    fn index_is_monotonic() {
        let mut last = 0;
        for us in 0..200_000u64 {
            let i = Histogram::index(us);
            assert!(i >= last);
            assert!(Histogram::value_of(i) <= us);
            last = i;
        }
    }
}
