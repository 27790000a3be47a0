//! Handshake replay cache (§14.3 step 10): a (sender, time, assoID, PDU kind) seen within the
//! time window is a replay.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;

use crate::limits::MAX_REPLAY_ENTRIES;
use crate::time::TimeStamp;

type Key = ([u8; 32], i64, String, u8);

/// A bounded cache of recently accepted signed PDUs.
#[derive(Debug, Default)]
pub struct ReplayCache {
    set: BTreeSet<Key>,
    order: VecDeque<Key>,
}

impl ReplayCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.set.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
    /// Records an entry; returns false if it was already present (a replay). Entries whose time
    /// is older than `now − window_ms` are pruned; beyond [`MAX_REPLAY_ENTRIES`] the oldest
    /// insertions are evicted.
    pub fn check_and_insert(
        &mut self,
        sender: [u8; 32],
        time: TimeStamp,
        asso: &str,
        kind: u8,
        now: TimeStamp,
        window_ms: u64,
    ) -> bool {
        let horizon = now.0.saturating_sub(window_ms.min(i64::MAX as u64) as i64);
        while let Some(front) = self.order.front() {
            if front.1 < horizon || self.order.len() >= MAX_REPLAY_ENTRIES {
                if let Some(k) = self.order.pop_front() {
                    self.set.remove(&k);
                }
            } else {
                break;
            }
        }
        let key = (sender, time.0, asso.to_string(), kind);
        if self.set.contains(&key) {
            return false;
        }
        self.set.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

/// The process-wide store of handshake replay detection, shared by every association of an
/// endpoint (§14.3 step 10) and injected through [`crate::Context::replay`]: the engines of many
/// associations (on many threads) call it, so it synchronises itself.
pub trait HandshakeReplay: Send + Sync {
    /// [`ReplayCache::check_and_insert`]: false when the entry was already present.
    fn check_and_insert(
        &self,
        sender: [u8; 32],
        time: TimeStamp,
        asso: &str,
        kind: u8,
        now: TimeStamp,
        window_ms: u64,
    ) -> bool;
}

/// The plain cache behind a mutex: what the runtime and the tests use.
impl HandshakeReplay for Mutex<ReplayCache> {
    fn check_and_insert(
        &self,
        sender: [u8; 32],
        time: TimeStamp,
        asso: &str,
        kind: u8,
        now: TimeStamp,
        window_ms: u64,
    ) -> bool {
        let mut g = match self.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.check_and_insert(sender, time, asso, kind, now, window_ms)
    }
}
