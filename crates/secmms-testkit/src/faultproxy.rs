//! A fault-injecting TCP proxy for soak tests (issue 17, item 6).
//!
//! [`FaultProxy`] listens on one address and forwards every connection it accepts to one target.
//! Each connection gets a [`Fault`] from a seeded [`FaultPlan`]: pass cleanly, delay chunks,
//! reorder two chunks of one direction, truncate a write, reset both sides, or kill both sides.
//! The fault fires at a random point of the connection (after a number of octets drawn from
//! [`FaultPlan::trigger_octets`]), so that some hit a handshake and others hit established data
//! transfer. The proxy records per connection what it planned, whether and when it applied it,
//! and the addresses on both sides ([`ConnRecord`]), so a test can tell which of its
//! associations should have survived.
//!
//! A *chunk* is what one read of a socket returned: the proxy never splits or joins chunks
//! except to apply a fault.
//!
//! Faults and what the two peers see:
//!
//! | fault | effect | client and target see |
//! |---|---|---|
//! | [`Fault::Clean`] | nothing | the stream unchanged |
//! | [`Fault::Delay`] | the next `chunks` chunks of either direction are each held `hold` | the stream unchanged, later |
//! | [`Fault::Reorder`] | the chunk at the trigger and the next chunk of that direction are swapped; when no next chunk comes within [`FaultPlan::reorder_wait`], the chunk's two halves are swapped instead | a corrupted stream, which the receiver must detect |
//! | [`Fault::Truncate`] | only the first half of the chunk at the trigger is forwarded, then both sides are closed | part of a write, then the end of the stream |
//! | [`Fault::Reset`] | both sides are closed with `SO_LINGER` 0 | a TCP RST (`ECONNRESET`) |
//! | [`Fault::Kill`] | both sides are closed at once, anything held dropped, as when a process is killed | the end of the stream (an RST where data was still unread) |
//!
//! The choice of fault depends on the seed and the connection's accept number only, so a
//! run with the same seed applies the same faults in the same accept order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The direction of a chunk through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the client (the connection's initiator) to the target.
    ToTarget,
    /// From the target back to the client.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToTarget => 0,
            Direction::ToClient => 1,
        }
    }
}

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything unchanged.
    Clean,
    /// From the trigger on, hold each of the next `chunks` chunks (of either direction) for
    /// `hold` before forwarding it; order is kept.
    Delay {
        /// How long each delayed chunk is held.
        hold: Duration,
        /// How many chunks are delayed.
        chunks: u32,
    },
    /// Swap the chunk at the trigger with the next chunk of direction `dir` (or, when none
    /// comes in time, the two halves of that chunk).
    Reorder {
        /// The direction whose stream is reordered.
        dir: Direction,
    },
    /// Forward only the first half of the chunk of direction `dir` at the trigger, then close
    /// both sides.
    Truncate {
        /// The direction whose write is cut.
        dir: Direction,
    },
    /// Close both sides with `SO_LINGER` 0 at the trigger: both peers get a TCP RST.
    Reset,
    /// Close both sides at the trigger, dropping the chunk in hand, as a killed peer process
    /// would.
    Kill,
}

/// The kind of a [`Fault`], without its parameters (for counting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// [`Fault::Clean`].
    Clean,
    /// [`Fault::Delay`].
    Delay,
    /// [`Fault::Reorder`].
    Reorder,
    /// [`Fault::Truncate`].
    Truncate,
    /// [`Fault::Reset`].
    Reset,
    /// [`Fault::Kill`].
    Kill,
}

impl FaultKind {
    /// Every kind, in table order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Clean,
        FaultKind::Delay,
        FaultKind::Reorder,
        FaultKind::Truncate,
        FaultKind::Reset,
        FaultKind::Kill,
    ];

    /// A short lower-case name (`clean`, `delay`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Clean => "clean",
            FaultKind::Delay => "delay",
            FaultKind::Reorder => "reorder",
            FaultKind::Truncate => "truncate",
            FaultKind::Reset => "reset",
            FaultKind::Kill => "kill",
        }
    }

    /// True for the faults after which a connection cannot go on: its stream is corrupted or
    /// cut (everything but [`FaultKind::Clean`] and [`FaultKind::Delay`]).
    pub fn breaks_the_stream(self) -> bool {
        !matches!(self, FaultKind::Clean | FaultKind::Delay)
    }
}

impl Fault {
    /// The kind of this fault.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Clean => FaultKind::Clean,
            Fault::Delay { .. } => FaultKind::Delay,
            Fault::Reorder { .. } => FaultKind::Reorder,
            Fault::Truncate { .. } => FaultKind::Truncate,
            Fault::Reset => FaultKind::Reset,
            Fault::Kill => FaultKind::Kill,
        }
    }

    /// The one direction the fault applies to, if it has one.
    pub fn direction(&self) -> Option<Direction> {
        match self {
            Fault::Reorder { dir } | Fault::Truncate { dir } => Some(*dir),
            _ => None,
        }
    }
}

/// The probability of each fault for a new connection; what is left to 1 passes cleanly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultMix {
    /// [`Fault::Delay`].
    pub delay: f64,
    /// [`Fault::Reorder`].
    pub reorder: f64,
    /// [`Fault::Truncate`].
    pub truncate: f64,
    /// [`Fault::Reset`].
    pub reset: f64,
    /// [`Fault::Kill`].
    pub kill: f64,
}

impl FaultMix {
    /// No faults at all.
    pub const NONE: FaultMix = FaultMix {
        delay: 0.0,
        reorder: 0.0,
        truncate: 0.0,
        reset: 0.0,
        kill: 0.0,
    };

    /// `p` for each of the five faults (so `1 - 5p` clean).
    pub fn even(p: f64) -> FaultMix {
        FaultMix {
            delay: p,
            reorder: p,
            truncate: p,
            reset: p,
            kill: p,
        }
    }

    /// The kinds with their probabilities, clean last.
    pub fn weights(&self) -> [(FaultKind, f64); 6] {
        let faulty = self.delay + self.reorder + self.truncate + self.reset + self.kill;
        [
            (FaultKind::Delay, self.delay),
            (FaultKind::Reorder, self.reorder),
            (FaultKind::Truncate, self.truncate),
            (FaultKind::Reset, self.reset),
            (FaultKind::Kill, self.kill),
            (FaultKind::Clean, (1.0 - faulty).max(0.0)),
        ]
    }
}

/// How the proxy picks the fault of each connection, and its parameters.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seeds the choices; with the accept number of a connection it determines its fault.
    pub seed: u64,
    /// The probability of each fault.
    pub mix: FaultMix,
    /// When `Some`, every connection gets this fault (the mix is ignored); for tests.
    pub fixed: Option<Fault>,
    /// The fault fires at the first chunk (of its direction, for reorder and truncate) that
    /// brings the octets read on the connection, both directions together, to at least a
    /// number drawn uniformly from this range. 0 fires at the first chunk.
    pub trigger_octets: RangeInclusive<u64>,
    /// The range [`Fault::Delay::hold`] is drawn from (uniform, in milliseconds).
    pub delay_hold: RangeInclusive<Duration>,
    /// [`Fault::Delay::chunks`].
    pub delay_chunks: u32,
    /// How long a reorder waits for the chunk to swap with before it swaps the halves of the
    /// chunk it holds.
    pub reorder_wait: Duration,
}

impl FaultPlan {
    /// A plan drawing faults from `mix`: triggers between 0 and 40 000 octets, delays of
    /// 20–300 ms on 8 chunks, 100 ms to wait for a chunk to reorder with.
    pub fn new(seed: u64, mix: FaultMix) -> FaultPlan {
        FaultPlan {
            seed,
            mix,
            fixed: None,
            trigger_octets: 0..=40_000,
            delay_hold: Duration::from_millis(20)..=Duration::from_millis(300),
            delay_chunks: 8,
            reorder_wait: Duration::from_millis(100),
        }
    }

    /// Every connection gets `fault`, at the first chunk that brings it to `trigger` octets.
    pub fn fixed(fault: Fault, trigger: u64) -> FaultPlan {
        FaultPlan {
            fixed: Some(fault),
            trigger_octets: trigger..=trigger,
            ..FaultPlan::new(0, FaultMix::NONE)
        }
    }

    /// The fault and trigger point of connection number `conn` (0 for the first accepted).
    pub fn choose(&self, conn: u64) -> (Fault, u64) {
        let mut rng = SplitMix::new(self.seed ^ conn.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let trigger = rng.between(*self.trigger_octets.start(), *self.trigger_octets.end());
        if let Some(f) = self.fixed {
            return (f, trigger);
        }
        let dir = if rng.next() & 1 == 0 {
            Direction::ToTarget
        } else {
            Direction::ToClient
        };
        let mut x = rng.unit();
        let mut kind = FaultKind::Clean;
        for (k, p) in self.mix.weights() {
            if x < p {
                kind = k;
                break;
            }
            x -= p;
        }
        let fault = match kind {
            FaultKind::Clean => Fault::Clean,
            FaultKind::Delay => {
                let lo = self.delay_hold.start().as_millis() as u64;
                let hi = self.delay_hold.end().as_millis() as u64;
                Fault::Delay {
                    hold: Duration::from_millis(rng.between(lo, hi.max(lo))),
                    chunks: self.delay_chunks,
                }
            }
            FaultKind::Reorder => Fault::Reorder { dir },
            FaultKind::Truncate => Fault::Truncate { dir },
            FaultKind::Reset => Fault::Reset,
            FaultKind::Kill => Fault::Kill,
        };
        (fault, trigger)
    }
}

/// What a fault did, once applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Chunks were held (a delay); the count grows as the delay goes on.
    Held {
        /// Chunks held so far.
        chunks: u32,
    },
    /// The chunk at the trigger was sent after the one that followed it.
    ChunksSwapped,
    /// No chunk followed in time: the second half of the chunk went before its first half.
    HalvesSwapped,
    /// `kept` octets of a chunk of `of` were forwarded, then both sides closed.
    Truncated {
        /// Octets forwarded.
        kept: usize,
        /// Octets of the chunk.
        of: usize,
    },
    /// Both sides were reset.
    Reset,
    /// Both sides were closed.
    Killed,
}

/// When and how a connection's fault was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// When the fault fired.
    pub at: Instant,
    /// Octets read on the connection (both directions) before the chunk it fired on.
    pub after_octets: u64,
    /// The direction of that chunk.
    pub dir: Direction,
    /// What it did.
    pub effect: Effect,
}

/// How a proxied connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEnd {
    /// Both peers closed their side (EOF both ways).
    Closed,
    /// A peer reset its side, or a write to it failed: both sides were reset.
    PeerAborted(Direction),
    /// The fault closed it ([`Fault::Truncate`], [`Fault::Reset`], [`Fault::Kill`]).
    Fault,
    /// The target could not be reached: the client's connection was reset.
    NoTarget,
}

/// What the proxy knows of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRecord {
    /// Accept number, from 0.
    pub id: u64,
    /// The client's address (its local address on the connection to the proxy).
    pub client: SocketAddr,
    /// The proxy's local address on its connection to the target: the peer address the target
    /// sees (and logs). `None` until connected, and when the target could not be reached.
    pub upstream: Option<SocketAddr>,
    /// The fault planned.
    pub fault: Fault,
    /// The octet count it was to fire at.
    pub trigger: u64,
    /// Whether and when it fired (`None`: the connection ended first, and went clean).
    pub applied: Option<Applied>,
    /// Octets read from the client and from the target.
    pub octets: [u64; 2],
    /// The longest wait for the target: from a chunk forwarded to it while nothing was awaited
    /// until the next chunk read from it. For a request/response peer, its slowest answer.
    pub longest_target_wait: Duration,
    /// The longest wait for the client: from a chunk forwarded to it until the next chunk read
    /// from it (its slowest reaction to an answer, or its pause between requests).
    pub longest_client_wait: Duration,
    /// When the proxy accepted the connection.
    pub accepted: Instant,
    /// When it ended, and how.
    pub ended: Option<(Instant, ConnEnd)>,
}

impl ConnRecord {
    /// The kind of fault that actually hit the connection: the planned kind if it fired,
    /// [`FaultKind::Clean`] if not.
    pub fn applied_kind(&self) -> FaultKind {
        match self.applied {
            Some(_) => self.fault.kind(),
            None => FaultKind::Clean,
        }
    }
}

/// What the proxy's tasks share.
struct Shared {
    plan: FaultPlan,
    target: SocketAddr,
    records: Mutex<BTreeMap<u64, ConnRecord>>,
    open: AtomicUsize,
}

impl Shared {
    fn update(&self, id: u64, f: impl FnOnce(&mut ConnRecord)) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = records.get_mut(&id) {
            f(r);
        }
    }
}

/// A running fault-injecting proxy. Dropping it stops accepting; connections in progress go
/// on until they end.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &self.shared.target)
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl FaultProxy {
    /// Listens on `listen` (port 0 for any free port) and forwards each connection to `target`
    /// under `plan`. Must be called inside a tokio runtime.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        plan: FaultPlan,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            plan,
            target,
            records: Mutex::default(),
            open: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of every connection's record, in accept order.
    pub fn records(&self) -> Vec<ConnRecord> {
        let records = self
            .shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        records.values().cloned().collect()
    }

    /// The record of the connection from `client`, the client's local address (the latest,
    /// should the address have been used twice).
    pub fn record_for(&self, client: SocketAddr) -> Option<ConnRecord> {
        let records = self
            .shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        records.values().rev().find(|r| r.client == client).cloned()
    }

    /// Connections accepted and not yet ended.
    pub fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Waits until no connection is open, at most `timeout`; true if none is.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.open() > 0 {
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(_) => {
                // Out of descriptors and the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        let (fault, trigger) = shared.plan.choose(id);
        shared.open.fetch_add(1, Ordering::SeqCst);
        {
            let mut records = shared.records.lock().unwrap_or_else(|e| e.into_inner());
            records.insert(
                id,
                ConnRecord {
                    id,
                    client: peer,
                    upstream: None,
                    fault,
                    trigger,
                    applied: None,
                    octets: [0, 0],
                    longest_target_wait: Duration::ZERO,
                    longest_client_wait: Duration::ZERO,
                    accepted: Instant::now(),
                    ended: None,
                },
            );
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let end = proxy_one(&shared, id, client, fault, trigger).await;
            shared.update(id, |r| r.ended = Some((Instant::now(), end)));
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Why a direction's pump stopped the whole connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Close both sides with FIN ([`Fault::Truncate`], [`Fault::Kill`]).
    Close,
    /// Close both sides with RST ([`Fault::Reset`], a peer's reset or failed write).
    Reset,
}

/// The state both directions of one connection share.
struct Conn {
    id: u64,
    fault: Fault,
    trigger: u64,
    state: Mutex<ConnState>,
    stop: watch::Sender<Option<Stop>>,
}

#[derive(Default)]
struct ConnState {
    total: u64,
    fired: bool,
    delay_left: u32,
    /// The first peer to abort, if any.
    aborted: Option<Direction>,
    /// Since when each side's next chunk has been awaited (the other side's chunk went to it).
    awaited_since: [Option<Instant>; 2],
}

/// What to do with a chunk just read.
enum Action {
    Forward,
    Hold(Duration),
    Reorder,
    Truncate,
    Stop(Stop),
}

impl Conn {
    /// Counts `n` octets read in `dir` and decides what happens to their chunk.
    fn on_chunk(&self, shared: &Shared, dir: Direction, n: usize) -> Action {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let before = st.total;
        st.total += n as u64;
        let total = st.total;
        // A chunk from this side ends the wait for it; a chunk to the other side starts one.
        let now = Instant::now();
        let waited = st.awaited_since[dir.index()]
            .take()
            .map(|since| now.saturating_duration_since(since));
        let other = 1 - dir.index();
        st.awaited_since[other].get_or_insert(now);
        shared.update(self.id, |r| {
            r.octets[dir.index()] += n as u64;
            if let Some(w) = waited {
                let longest = match dir {
                    Direction::ToTarget => &mut r.longest_client_wait,
                    Direction::ToClient => &mut r.longest_target_wait,
                };
                *longest = (*longest).max(w);
            }
        });
        if st.delay_left > 0 {
            st.delay_left -= 1;
            if let Fault::Delay { hold, chunks } = self.fault {
                let held = chunks - st.delay_left;
                shared.update(self.id, |r| {
                    if let Some(a) = r.applied.as_mut() {
                        a.effect = Effect::Held { chunks: held };
                    }
                });
                return Action::Hold(hold);
            }
        }
        if st.fired || total < self.trigger {
            return Action::Forward;
        }
        if self.fault.direction().is_some_and(|d| d != dir) {
            return Action::Forward;
        }
        let (action, effect) = match self.fault {
            Fault::Clean => return Action::Forward,
            Fault::Delay { hold, chunks } => {
                st.delay_left = chunks.saturating_sub(1);
                (Action::Hold(hold), Some(Effect::Held { chunks: 1 }))
            }
            // A one-octet chunk cannot be halved: wait for a longer one.
            Fault::Reorder { .. } | Fault::Truncate { .. } if n < 2 => return Action::Forward,
            // Their effect is recorded once known.
            Fault::Reorder { .. } => (Action::Reorder, None),
            Fault::Truncate { .. } => (Action::Truncate, None),
            Fault::Reset => (Action::Stop(Stop::Reset), Some(Effect::Reset)),
            Fault::Kill => (Action::Stop(Stop::Close), Some(Effect::Killed)),
        };
        st.fired = true;
        let applied = Applied {
            at: Instant::now(),
            after_octets: before,
            dir,
            effect: effect.unwrap_or(Effect::ChunksSwapped),
        };
        shared.update(self.id, |r| r.applied = Some(applied));
        action
    }

    fn set_effect(&self, shared: &Shared, effect: Effect) {
        shared.update(self.id, |r| {
            if let Some(a) = r.applied.as_mut() {
                a.effect = effect;
            }
        });
    }

    /// Stops both directions (the first reason given wins).
    fn stop(&self, why: Stop) {
        self.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(why);
                true
            } else {
                false
            }
        });
    }

    fn peer_aborted(&self, dir: Direction) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.aborted.get_or_insert(dir);
        drop(st);
        self.stop(Stop::Reset);
    }
}

async fn proxy_one(
    shared: &Shared,
    id: u64,
    client: TcpStream,
    fault: Fault,
    trigger: u64,
) -> ConnEnd {
    let target = match TcpStream::connect(shared.target).await {
        Ok(t) => t,
        Err(_) => {
            let _ = client.set_zero_linger();
            return ConnEnd::NoTarget;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = target.set_nodelay(true);
    let upstream = target.local_addr().ok();
    shared.update(id, |r| r.upstream = upstream);
    let (stop, _) = watch::channel(None);
    let conn = Conn {
        id,
        fault,
        trigger,
        state: Mutex::default(),
        stop,
    };
    let (cr, cw) = client.into_split();
    let (tr, tw) = target.into_split();
    let ((cr, tw), (tr, cw)) = tokio::join!(
        pump(shared, &conn, Direction::ToTarget, cr, tw),
        pump(shared, &conn, Direction::ToClient, tr, cw),
    );
    let (Ok(client), Ok(target)) = (cr.reunite(cw), tr.reunite(tw)) else {
        unreachable!("halves of the same streams");
    };
    let stopped = *conn.stop.borrow();
    let aborted = conn.state.lock().unwrap_or_else(|e| e.into_inner()).aborted;
    match stopped {
        None => ConnEnd::Closed,
        Some(Stop::Reset) => {
            let _ = client.set_zero_linger();
            let _ = target.set_zero_linger();
            match aborted {
                Some(d) => ConnEnd::PeerAborted(d),
                None => ConnEnd::Fault,
            }
        }
        Some(Stop::Close) => ConnEnd::Fault,
    }
}

/// Moves one direction's chunks from `src` to `dst` until EOF or a stop, applying the fault.
async fn pump(
    shared: &Shared,
    conn: &Conn,
    dir: Direction,
    mut src: OwnedReadHalf,
    mut dst: OwnedWriteHalf,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let mut stopped = conn.stop.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    // Stops the pump when the other direction (or this one) stopped the connection.
    macro_rules! or_stop {
        ($fut:expr) => {
            tokio::select! {
                r = $fut => r,
                _ = stopped.wait_for(|s| s.is_some()) => return (src, dst),
            }
        };
    }
    loop {
        let n = match or_stop!(src.read(&mut buf)) {
            Ok(0) => {
                // EOF: pass it on, and let the other direction run to its own end.
                let _ = or_stop!(dst.shutdown());
                return (src, dst);
            }
            Ok(n) => n,
            Err(_) => {
                conn.peer_aborted(dir);
                return (src, dst);
            }
        };
        let mut out: Vec<&[u8]> = vec![&buf[..n]];
        let mut second = Vec::new();
        let mut then_stop = None;
        match conn.on_chunk(shared, dir, n) {
            Action::Forward => {}
            Action::Hold(hold) => or_stop!(tokio::time::sleep(hold)),
            Action::Stop(why) => {
                conn.stop(why);
                return (src, dst);
            }
            Action::Truncate => {
                let kept = n / 2;
                conn.set_effect(shared, Effect::Truncated { kept, of: n });
                out = vec![&buf[..kept]];
                then_stop = Some(Stop::Close);
            }
            Action::Reorder => {
                second.resize(16 * 1024, 0);
                let next = tokio::time::timeout(shared.plan.reorder_wait, src.read(&mut second));
                match or_stop!(next) {
                    Ok(Ok(m)) if m > 0 => {
                        second.truncate(m);
                        // The swapped chunk counts like any other (it cannot fire again).
                        let _ = conn.on_chunk(shared, dir, m);
                        conn.set_effect(shared, Effect::ChunksSwapped);
                        out = vec![&second[..], &buf[..n]];
                    }
                    Ok(Err(_)) => {
                        conn.peer_aborted(dir);
                        return (src, dst);
                    }
                    // Nothing followed in time (or the stream ended, which the next read sees
                    // again): swap the halves of the chunk held.
                    _ => {
                        conn.set_effect(shared, Effect::HalvesSwapped);
                        let half = n / 2;
                        out = vec![&buf[half..n], &buf[..half]];
                    }
                }
            }
        }
        for part in out {
            if or_stop!(dst.write_all(part)).is_err() {
                conn.peer_aborted(dir);
                return (src, dst);
            }
        }
        if let Some(why) = then_stop {
            conn.stop(why);
            return (src, dst);
        }
    }
}

/// SplitMix64: a small seeded generator, enough to spread faults (not for cryptography).
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests;
