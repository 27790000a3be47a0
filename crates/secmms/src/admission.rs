//! Admission control of the server: which connections get a place, and which lose theirs under
//! pressure.
//!
//! A connection is *pending* from the TCP accept until its association is established (TLS
//! handshake, CR/CC, the AARQ and its checks), then *established*. The two have separate limits,
//! and each source address has its own share of both, so that cheap connections that never
//! authenticate cannot take the places of associations that did:
//!
//! * `max_pending` connections pending at once; when a new one arrives and all are taken, one
//!   pending connection is dropped to make room: the oldest of those that got least far (nothing
//!   received yet, then input or a TLS handshake done, then an AARQ under its checks). A
//!   legitimate client sends its CR (or ClientHello) as soon as it is connected and completes
//!   its set-up in milliseconds; a flood of silent connections only ever displaces its own;
//! * `max_pending_per_source` pending connections from one address: beyond it a new connection
//!   from that address is refused at once;
//! * `max_associations` established associations; an association beyond it is rejected
//!   (ACSE rejected-transient) after its checks;
//! * `max_associations_per_source` connections (pending and established) from one address
//!   (0: no limit).
//!
//! How long a connection may stay pending is bounded by the TLS handshake timeout and the
//! association timeout, which input does not renew.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The limits of [`Admission`] (from `[server]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_pending: usize,
    pub(crate) max_pending_per_source: usize,
    pub(crate) max_established: usize,
    pub(crate) max_per_source: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address already has `max_pending_per_source` connections being set up.
    PendingPerSource,
    /// Its address already has `max_associations_per_source` connections.
    PerSource,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::PendingPerSource => {
                "its address has server.max_pending_per_source connections being set up"
            }
            Refusal::PerSource => "its address has server.max_associations_per_source connections",
        })
    }
}

#[derive(Default)]
struct Source {
    pending: usize,
    established: usize,
}

/// How far a pending connection got ([`Ticket::progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Accepted; nothing received yet.
    Accepted,
    /// Input received (plain), or the TLS handshake done.
    Talking,
    /// Its AARQ arrived and is being checked (OCSP included).
    Checking,
}

struct Pending {
    ip: IpAddr,
    stage: Stage,
    handle: Option<tokio::task::AbortHandle>,
    /// A second handle on the connection's socket, to see whether a connection counted as
    /// silent has spoken meanwhile (its task may not have read yet) before it is dropped.
    probe: Option<socket2::Socket>,
}

impl Pending {
    /// Its stage, raised to `Talking` when input waits on its socket.
    fn stage_now(&mut self) -> Stage {
        if self.stage == Stage::Accepted {
            if let Some(p) = &self.probe {
                let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                if matches!(p.peek(&mut one), Ok(n) if n > 0) {
                    self.stage = Stage::Talking;
                }
            }
        }
        self.stage
    }
}

#[derive(Default)]
struct State {
    next: u64,
    /// Pending connections, oldest first: address, how far it got, what drops it.
    pending: BTreeMap<u64, Pending>,
    sources: HashMap<IpAddr, Source>,
    /// Connections evicted before their task was attached: aborted when it is.
    evicted_unattached: HashSet<u64>,
    established: usize,
}

/// The admission state of one server, shared by the accept loop and the associations.
pub(crate) struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

/// One admitted connection's place; dropping it gives the place back.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    ip: IpAddr,
    established: bool,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, or says why not. When every pending place is taken, the
    /// oldest pending connection loses its place: its abort handle is returned, for the caller
    /// to end it (none when its task has not been attached yet; it then ends at its next
    /// promotion attempt, which fails).
    ///
    /// `probe` (a second handle on the socket, non-blocking) lets a connection counted as
    /// silent be looked at again before it is dropped.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        stage: Stage,
        probe: Option<socket2::Socket>,
    ) -> Result<(Ticket, Option<Option<tokio::task::AbortHandle>>), Refusal> {
        let mut st = self.lock();
        let src = st.sources.entry(ip).or_default();
        if src.pending >= self.limits.max_pending_per_source.max(1) {
            return Err(Refusal::PendingPerSource);
        }
        if self.limits.max_per_source > 0
            && src.pending + src.established >= self.limits.max_per_source
        {
            return Err(Refusal::PerSource);
        }
        src.pending += 1;
        let mut evicted = None;
        if st.pending.len() >= self.limits.max_pending.max(1) {
            // The oldest of those that got least far; a silent one that has spoken meanwhile
            // is not silent.
            let victim = loop {
                let Some((id, _)) = st.pending.iter().min_by_key(|(id, p)| (p.stage, **id)) else {
                    break None;
                };
                let id = *id;
                let Some(p) = st.pending.get_mut(&id) else {
                    break None;
                };
                if p.stage != Stage::Accepted || p.stage_now() == Stage::Accepted {
                    break Some(id);
                }
            };
            if let Some(p) = victim.and_then(|v| st.pending.remove(&v).map(|p| (v, p))) {
                let (old, p) = p;
                Self::forget_pending(&mut st, p.ip);
                if p.handle.is_none() {
                    st.evicted_unattached.insert(old);
                }
                evicted = Some(p.handle);
            }
        }
        st.next += 1;
        let id = st.next;
        st.pending.insert(
            id,
            Pending {
                ip,
                stage,
                handle: None,
                probe,
            },
        );
        drop(st);
        let ticket = Ticket {
            admission: self.clone(),
            id,
            ip,
            established: false,
        };
        Ok((ticket, evicted))
    }

    fn forget_pending(st: &mut State, ip: IpAddr) {
        if let Some(s) = st.sources.get_mut(&ip) {
            s.pending = s.pending.saturating_sub(1);
            if s.pending == 0 && s.established == 0 {
                st.sources.remove(&ip);
            }
        }
    }

    /// Tells the admission what ends connection `id` ([`Ticket::id`]) should it be evicted while
    /// pending; one evicted already is ended at once.
    pub(crate) fn attach(&self, id: u64, handle: tokio::task::AbortHandle) {
        let mut st = self.lock();
        if let Some(entry) = st.pending.get_mut(&id) {
            entry.handle = Some(handle);
        } else if st.evicted_unattached.remove(&id) {
            handle.abort();
        }
    }

    /// Pending connections now.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Established associations now.
    #[cfg(test)]
    pub(crate) fn established(&self) -> usize {
        self.lock().established
    }
}

impl Ticket {
    /// The connection's number, for [`Admission::attach`].
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records how far the pending connection got: under pressure, those that got least far
    /// go first.
    pub(crate) fn progress(&self, stage: Stage) {
        if self.established {
            return;
        }
        if let Some(p) = self.admission.lock().pending.get_mut(&self.id) {
            p.stage = p.stage.max(stage);
        }
    }

    /// Moves the connection from pending to established: `false` when `max_associations` are
    /// established already, or when the connection lost its pending place meanwhile.
    pub(crate) fn promote(&mut self) -> bool {
        if self.established {
            return true;
        }
        let adm = self.admission.clone();
        let mut st = adm.lock();
        if st.established >= adm.limits.max_established || !st.pending.contains_key(&self.id) {
            return false;
        }
        st.pending.remove(&self.id);
        st.established += 1;
        let src = st.sources.entry(self.ip).or_default();
        src.pending = src.pending.saturating_sub(1);
        src.established += 1;
        self.established = true;
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.admission.lock();
        if self.established {
            st.established = st.established.saturating_sub(1);
            if let Some(s) = st.sources.get_mut(&self.ip) {
                s.established = s.established.saturating_sub(1);
                if s.pending == 0 && s.established == 0 {
                    st.sources.remove(&self.ip);
                }
            }
        } else if st.pending.remove(&self.id).is_some() {
            Admission::forget_pending(&mut st, self.ip);
        } else {
            st.evicted_unattached.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn limits() -> Limits {
        Limits {
            max_pending: 3,
            max_pending_per_source: 2,
            max_established: 2,
            max_per_source: 0,
        }
    }

    #[test]
    fn a_full_pending_set_gives_the_oldest_place_to_the_newcomer() {
        let a = Admission::new(limits());
        let (t1, e) = a.admit(ip(2), Stage::Accepted, None).unwrap();
        assert!(e.is_none());
        let (t2, _) = a.admit(ip(3), Stage::Accepted, None).unwrap();
        let (t3, _) = a.admit(ip(4), Stage::Accepted, None).unwrap();
        assert_eq!(a.pending(), 3);
        let (mut t4, evicted) = a.admit(ip(1), Stage::Accepted, None).unwrap();
        assert!(evicted.is_some(), "the oldest pending connection goes");
        assert_eq!(a.pending(), 3);
        // The evicted one cannot become established; the newcomer can.
        let mut t1 = t1;
        assert!(!t1.promote());
        assert!(t4.promote());
        assert_eq!((a.pending(), a.established()), (2, 1));
        drop((t1, t2, t3));
        assert_eq!(a.pending(), 0);
        drop(t4);
        assert_eq!(a.established(), 0);
        assert!(a.lock().sources.is_empty(), "no per-source state left");
    }

    #[test]
    fn connections_that_got_further_are_kept_over_older_silent_ones() {
        let a = Admission::new(limits());
        let (t1, _) = a.admit(ip(2), Stage::Accepted, None).unwrap();
        t1.progress(Stage::Talking);
        let (t2, _) = a.admit(ip(3), Stage::Accepted, None).unwrap();
        t2.progress(Stage::Checking);
        let (mut t3, _) = a.admit(ip(4), Stage::Accepted, None).unwrap();
        // Full: the silent one goes, although the others are older.
        let (_t4, _) = a.admit(ip(5), Stage::Accepted, None).unwrap();
        assert!(!t3.promote());
        // Full again: now the oldest of the least advanced (t4 is silent) goes.
        let (_t5, _) = a.admit(ip(6), Stage::Accepted, None).unwrap();
        let (mut t1, mut t2) = (t1, t2);
        assert!(t1.promote() && t2.promote());
    }

    #[test]
    fn one_address_gets_only_its_share_of_pending_places() {
        let a = Admission::new(limits());
        let _t1 = a.admit(ip(2), Stage::Accepted, None).unwrap();
        let _t2 = a.admit(ip(2), Stage::Accepted, None).unwrap();
        assert_eq!(
            a.admit(ip(2), Stage::Accepted, None).err(),
            Some(Refusal::PendingPerSource)
        );
        // Other addresses still get in.
        assert!(a.admit(ip(1), Stage::Accepted, None).is_ok());
    }

    #[test]
    fn established_associations_have_their_own_limit() {
        let a = Admission::new(Limits {
            max_pending: 10,
            max_pending_per_source: 10,
            ..limits()
        });
        let mut t: Vec<Ticket> = (0..3)
            .map(|_| a.admit(ip(1), Stage::Accepted, None).unwrap().0)
            .collect();
        assert!(t[0].promote());
        assert!(t[1].promote());
        assert!(!t[2].promote(), "max_associations reached");
        // Once one ends, the next is let in.
        t.remove(0);
        assert!(t[1].promote());
        assert_eq!(a.established(), 2);
    }

    #[test]
    fn the_per_source_total_counts_pending_and_established() {
        let a = Admission::new(Limits {
            max_pending: 10,
            max_pending_per_source: 10,
            max_established: 10,
            max_per_source: 2,
        });
        let (mut t1, _) = a.admit(ip(5), Stage::Accepted, None).unwrap();
        assert!(t1.promote());
        let _t2 = a.admit(ip(5), Stage::Accepted, None).unwrap();
        assert_eq!(
            a.admit(ip(5), Stage::Accepted, None).err(),
            Some(Refusal::PerSource)
        );
        drop(t1);
        assert!(a.admit(ip(5), Stage::Accepted, None).is_ok());
    }

    #[test]
    fn a_handle_attached_after_eviction_is_aborted_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = Admission::new(Limits {
                max_pending: 1,
                ..limits()
            });
            let (t1, _) = a.admit(ip(2), Stage::Accepted, None).unwrap();
            let (t2, evicted) = a.admit(ip(3), Stage::Accepted, None).unwrap();
            assert!(matches!(evicted, Some(None)), "evicted before attached");
            let task = tokio::spawn(std::future::pending::<()>());
            a.attach(t1.id(), task.abort_handle());
            assert!(task.await.unwrap_err().is_cancelled());
            // A promoted connection attached late is left alone.
            let mut t2 = t2;
            assert!(t2.promote());
            let task = tokio::spawn(std::future::pending::<()>());
            a.attach(t2.id(), task.abort_handle());
            tokio::task::yield_now().await;
            assert!(!task.is_finished());
            task.abort();
            drop(t1);
            assert!(a.lock().evicted_unattached.is_empty());
        });
    }
}
