//! Aggregation of floods in the hash-chained log: identical events (same id, same source
//! address) within a window become one record with a count.
//!
//! The first event of a kind is written at once, as a record of its own: a single event is
//! never delayed. The identical events that follow within `window` of it are only counted (no
//! write, no fsync); when the window closes, one aggregate record is written for them with
//! `count`, `first`, `last`, the message of the last one and the source as its association.
//! Notices (an association authenticated, established, released) are never aggregated: each
//! legitimate association keeps its own records, and floods are of refusals and failures,
//! which are warnings or worse. Only events that name a source (an association or peer
//! address) are aggregated; the source
//! of `"192.0.2.7:40312"` is `"192.0.2.7"`, so a flood of connections from one address is one
//! kind however many ports it uses. At most [`MAX_KINDS`] kinds are counted at once; a new kind
//! beyond that closes every window first.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use secmms_pki::event::SecurityEvent;

/// Kinds of events counted at once (each holds one message of at most
/// [`super::MAX_MESSAGE_LEN`] octets).
pub const MAX_KINDS: usize = 1024;

/// Default window of `[events] aggregate_secs`.
pub const DEFAULT_WINDOW_SECS: u64 = 5;

/// Events counted in an open window, written as one record when it closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// The last event counted (its id, mnemonic, severity and message are written).
    pub event: SecurityEvent,
    /// The source, written as the record's association.
    pub source: String,
    /// Events counted.
    pub count: u64,
    /// Time of the first counted.
    pub first: SystemTime,
    /// Time of the last counted.
    pub last: SystemTime,
}

struct Open {
    /// When the window closes.
    until: SystemTime,
    counted: Option<Aggregate>,
}

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it now, as a record of its own.
    Write,
    /// Counted in an open window; nothing to write now.
    Counted,
}

/// The open windows of one log (time is passed in).
pub struct Aggregator {
    window: Duration,
    open: HashMap<(String, String), Open>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("window", &self.window)
            .field("open", &self.open.len())
            .finish()
    }
}

/// The source of an event: the address of its association without the port, if it names one.
pub fn source_of(e: &SecurityEvent) -> Option<String> {
    let a = e.association.as_deref()?;
    Some(match a.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => a.to_string(),
    })
}

impl Aggregator {
    /// Windows of `window`.
    pub fn new(window: Duration) -> Self {
        Aggregator {
            window,
            open: HashMap::new(),
        }
    }

    /// The windows closed at `now`: the aggregates to write (those that counted something).
    pub fn due(&mut self, now: SystemTime) -> Vec<Aggregate> {
        let mut out = Vec::new();
        self.open.retain(|_, o| {
            if o.until <= now {
                out.extend(o.counted.take());
                false
            } else {
                true
            }
        });
        out.sort_by_key(|a| a.first);
        out
    }

    /// Every window, closed now (shutdown, flush).
    pub fn close_all(&mut self) -> Vec<Aggregate> {
        let mut out: Vec<Aggregate> = self.open.drain().filter_map(|(_, o)| o.counted).collect();
        out.sort_by_key(|a| a.first);
        out
    }

    /// An event at `now`: written at once, or counted. When `MAX_KINDS` windows are open and a
    /// new kind comes, the aggregates of every window are returned to be written first.
    pub fn offer(&mut self, e: &SecurityEvent, now: SystemTime) -> (Verdict, Vec<Aggregate>) {
        if e.severity == secmms_pki::event::Severity::Notice {
            return (Verdict::Write, Vec::new());
        }
        let Some(source) = source_of(e) else {
            return (Verdict::Write, Vec::new());
        };
        let key = (e.id.to_string(), source);
        if let Some(o) = self.open.get_mut(&key) {
            if now < o.until {
                match &mut o.counted {
                    Some(a) => {
                        a.count += 1;
                        a.last = now.max(a.last);
                        a.event = e.clone();
                    }
                    None => {
                        o.counted = Some(Aggregate {
                            event: e.clone(),
                            source: key.1.clone(),
                            count: 1,
                            first: now,
                            last: now,
                        })
                    }
                }
                return (Verdict::Counted, Vec::new());
            }
        }
        let mut flushed = Vec::new();
        if let Some(o) = self.open.remove(&key) {
            flushed.extend(o.counted);
        }
        if self.open.len() >= MAX_KINDS {
            flushed.extend(self.close_all());
        }
        self.open.insert(
            key,
            Open {
                until: now + self.window,
                counted: None,
            },
        );
        (Verdict::Write, flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_pki::event::{EventId, Severity};

    fn ev(assoc: Option<&str>, n: u16) -> SecurityEvent {
        SecurityEvent {
            id: EventId::tls(n),
            mnemonic: "X",
            severity: Severity::Error,
            message: format!("m {assoc:?}"),
            association: assoc.map(str::to_string),
        }
    }

    #[test]
    fn a_flood_is_one_record_then_one_aggregate_per_window() {
        let mut a = Aggregator::new(Duration::from_secs(5));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ms: u64| t + Duration::from_millis(ms);
        assert_eq!(
            a.offer(&ev(Some("10.0.0.1:1"), 15), at(0)).0,
            Verdict::Write
        );
        for i in 1..100 {
            let e = ev(Some(&format!("10.0.0.1:{i}")), 15);
            assert_eq!(a.offer(&e, at(i)).0, Verdict::Counted);
        }
        // Another source and events without one are their own kinds.
        assert_eq!(
            a.offer(&ev(Some("10.0.0.2:1"), 15), at(1)).0,
            Verdict::Write
        );
        assert_eq!(a.offer(&ev(None, 15), at(1)).0, Verdict::Write);
        assert_eq!(a.offer(&ev(None, 15), at(2)).0, Verdict::Write);
        assert!(a.due(at(4_999)).is_empty());
        let due = a.due(at(5_000));
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].count, due[0].source.as_str()), (99, "10.0.0.1"));
        assert_eq!((due[0].first, due[0].last), (at(1), at(99)));
        // After the window the next one is written at once again.
        assert_eq!(
            a.offer(&ev(Some("10.0.0.1:7"), 15), at(6_000)).0,
            Verdict::Write
        );
        assert!(a.close_all().is_empty());
    }

    #[test]
    fn notices_are_never_aggregated() {
        let mut a = Aggregator::new(Duration::from_secs(5));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut e = ev(Some("127.0.0.1:1000"), 1);
        e.severity = Severity::Notice;
        for i in 0..3 {
            let (v, out) = a.offer(&e, t + Duration::from_millis(i));
            assert_eq!(v, Verdict::Write);
            assert!(out.is_empty());
        }
        assert!(a.close_all().is_empty());
    }

    #[test]
    fn kinds_are_bounded() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        let t = SystemTime::UNIX_EPOCH;
        for i in 0..MAX_KINDS {
            let e = ev(Some(&format!("k{i}")), 1);
            a.offer(&e, t);
            a.offer(&e, t);
        }
        let (v, flushed) = a.offer(&ev(Some("one more"), 1), t);
        assert_eq!(v, Verdict::Write);
        assert_eq!(flushed.len(), MAX_KINDS);
        assert!(flushed.iter().all(|f| f.count == 1));
        assert_eq!(a.open.len(), 1);
    }
}
