//! TCP reassembly, both directions of every connection, in bounded memory.
//!
//! Each direction keeps the 64-bit stream offset of the next octet it expects. A segment is
//! placed by the signed 32-bit distance of its sequence number from that point, so sequence
//! numbers may wrap. Octets already delivered are dropped (a retransmission, or the overlapping
//! front of a segment); a segment beyond the expected point waits, bounded by
//! [`ReassemblyLimits`]; a hole that never fills — the waiting octets exceed the limit, or the
//! capture ends — is reported as a [`EventKind::Gap`] of a known size and the stream goes on after
//! it. Overlapping waiting segments keep the octets that arrived first and count the overlap.
//!
//! Streams are numbered from 0 in order of appearance, as `tcp.stream` in Wireshark. When the
//! table is full the stream idle longest is closed ([`EventKind::Evicted`]).

use std::collections::{BTreeMap, HashMap};

use crate::limits::{DEFAULT_MAX_OUT_OF_ORDER, DEFAULT_MAX_SEGMENTS, DEFAULT_MAX_STREAMS};
use crate::link::{Endpoints, Segment};

/// Bounds of the reassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Streams followed at once.
    pub max_streams: usize,
    /// Out-of-order octets held per direction.
    pub max_out_of_order: usize,
    /// Out-of-order segments held per direction.
    pub max_segments: usize,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_streams: DEFAULT_MAX_STREAMS,
            max_out_of_order: DEFAULT_MAX_OUT_OF_ORDER,
            max_segments: DEFAULT_MAX_SEGMENTS,
        }
    }
}

/// Direction within a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the side that opened the connection (sent the SYN without ACK, or received the
    /// SYN+ACK), or — when the handshake was not captured — from the side with the higher port.
    ToServer,
    /// The other way.
    ToClient,
}

impl Direction {
    /// `"c>s"` or `"s>c"`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ToServer => "c>s",
            Direction::ToClient => "s>c",
        }
    }
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// FIN seen in this direction.
    Fin,
    /// RST seen.
    Rst,
}

/// What happened on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A new stream; `client` is the to-server direction.
    Opened {
        /// Endpoints of the to-server direction.
        client: Endpoints,
        /// True when the SYN was seen.
        handshake: bool,
    },
    /// In-order octets.
    Data(Vec<u8>),
    /// Octets that were never captured (or were dropped at a limit); the data after continues
    /// at the given distance.
    Gap(u64),
    /// A segment (or its front) carried octets already delivered.
    Retransmission(usize),
    /// Waiting segments overlapped; this many octets of the later one were dropped.
    Overlap(usize),
    /// A FIN or RST.
    Closed(CloseReason),
    /// The stream was dropped to make room for another.
    Evicted,
    /// A new connection (SYN) reuses the stream's addresses and ports: the old stream ends
    /// here and a new one opens.
    Replaced,
}

/// One reassembler event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// Stream number.
    pub stream: u64,
    /// Direction of the octets (for [`EventKind::Opened`] and [`EventKind::Evicted`]: to-server).
    pub direction: Direction,
    /// Frame that caused the event (0 at the end of the capture).
    pub frame: u64,
    /// What happened.
    pub kind: EventKind,
}

#[derive(Debug, Default)]
struct Half {
    /// Sequence number of the next expected octet; `None` before anything was seen.
    next_seq: Option<u32>,
    /// Stream offset of `next_seq`.
    delivered: u64,
    /// Waiting segments by stream offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    closed: bool,
}

#[derive(Debug)]
struct Stream {
    id: u64,
    client: Endpoints,
    halves: [Half; 2],
    last_used: u64,
    ended: bool,
}

/// Key of a connection, the same for both directions.
fn key(e: &Endpoints) -> Endpoints {
    let r = e.reversed();
    if (e.src, e.src_port) <= (r.src, r.src_port) {
        *e
    } else {
        r
    }
}

/// The reassembler of every stream of a capture.
#[derive(Debug, Default)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    streams: HashMap<Endpoints, Stream>,
    next_id: u64,
    tick: u64,
}

impl Reassembler {
    /// A reassembler with `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            ..Default::default()
        }
    }

    /// Streams currently followed.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Octets held out of order over all streams.
    pub fn buffered(&self) -> usize {
        self.streams
            .values()
            .flat_map(|s| s.halves.iter())
            .map(|h| h.pending_bytes)
            .sum()
    }

    /// Adds one segment seen in `frame`; events go to `out` in order.
    pub fn push(&mut self, seg: &Segment, frame: u64, out: &mut Vec<StreamEvent>) {
        self.tick += 1;
        let k = key(&seg.endpoints);
        let fresh_syn = seg.syn && seg.payload.is_empty();
        // A new SYN on a tuple whose stream ended, or that carried data already, is a new
        // connection reusing the ports.
        if let Some(s) = self.streams.get(&k) {
            let reused = fresh_syn
                && seg.endpoints == s.client
                && (s.ended || s.halves.iter().any(|h| h.delivered > 0));
            if reused {
                if let Some(old) = self.streams.remove(&k) {
                    out.push(StreamEvent {
                        stream: old.id,
                        direction: Direction::ToServer,
                        frame,
                        kind: EventKind::Replaced,
                    });
                }
            }
        }
        if !self.streams.contains_key(&k) {
            if self.streams.len() >= self.limits.max_streams.max(1) {
                self.evict(frame, out);
            }
            // The client sends the SYN without ACK; a SYN+ACK seen first comes from the server;
            // without a SYN the higher port is taken as the client.
            let client = if seg.syn {
                if seg.ack.is_some() {
                    seg.endpoints.reversed()
                } else {
                    seg.endpoints
                }
            } else if seg.endpoints.src_port >= seg.endpoints.dst_port {
                seg.endpoints
            } else {
                seg.endpoints.reversed()
            };
            let id = self.next_id;
            self.next_id += 1;
            out.push(StreamEvent {
                stream: id,
                direction: Direction::ToServer,
                frame,
                kind: EventKind::Opened {
                    client,
                    handshake: seg.syn,
                },
            });
            self.streams.insert(
                k,
                Stream {
                    id,
                    client,
                    halves: Default::default(),
                    last_used: 0,
                    ended: false,
                },
            );
        }
        let limits = self.limits;
        let tick = self.tick;
        let Some(s) = self.streams.get_mut(&k) else {
            return;
        };
        s.last_used = tick;
        let dir = if seg.endpoints == s.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let id = s.id;
        // The peer acknowledged octets of the other direction that are still a hole here: it
        // received them and the capture did not — a gap now rather than at the end.
        if let Some(ack) = seg.ack {
            let other = &mut s.halves[1 - dir.index()];
            if let Some(next) = other.next_seq {
                if !other.pending.is_empty() && (ack.wrapping_sub(next) as i32) > 0 {
                    let mut emit_other = |kind| {
                        out.push(StreamEvent {
                            stream: id,
                            direction: if dir == Direction::ToServer {
                                Direction::ToClient
                            } else {
                                Direction::ToServer
                            },
                            frame,
                            kind,
                        })
                    };
                    flush_to(other, ack, &mut emit_other);
                }
            }
        }
        let mut emit = |kind| {
            out.push(StreamEvent {
                stream: id,
                direction: dir,
                frame,
                kind,
            })
        };
        let h = &mut s.halves[dir.index()];
        if seg.rst {
            if !s.ended {
                s.ended = true;
                emit(EventKind::Closed(CloseReason::Rst));
            }
            return;
        }
        let mut seq = seg.seq;
        if seg.syn {
            seq = seq.wrapping_add(1);
            if h.next_seq.is_none() {
                h.next_seq = Some(seq);
            }
        }
        if h.next_seq.is_none() && !seg.payload.is_empty() {
            h.next_seq = Some(seq);
        }
        if let Some(next) = h.next_seq {
            if !seg.payload.is_empty() {
                place(h, next, seq, &seg.payload, &limits, &mut emit);
            }
            if seg.fin && !h.closed {
                // Waiting segments stay: a retransmission may still fill a hole before the FIN.
                h.closed = true;
                emit(EventKind::Closed(CloseReason::Fin));
            }
        }
        if s.halves.iter().all(|h| h.closed) {
            s.ended = true;
        }
    }

    /// Ends the capture: every hole still open becomes a gap and the waiting octets are
    /// delivered.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        let mut streams: Vec<_> = self.streams.drain().map(|(_, s)| s).collect();
        streams.sort_by_key(|s| s.id);
        for mut s in streams {
            for dir in [Direction::ToServer, Direction::ToClient] {
                let id = s.id;
                let mut emit = |kind| {
                    out.push(StreamEvent {
                        stream: id,
                        direction: dir,
                        frame: 0,
                        kind,
                    })
                };
                flush(&mut s.halves[dir.index()], &mut emit);
            }
        }
    }

    fn evict(&mut self, frame: u64, out: &mut Vec<StreamEvent>) {
        let Some(k) = self
            .streams
            .iter()
            .min_by_key(|(_, s)| s.last_used)
            .map(|(k, _)| *k)
        else {
            return;
        };
        if let Some(mut s) = self.streams.remove(&k) {
            for dir in [Direction::ToServer, Direction::ToClient] {
                let id = s.id;
                let mut emit = |kind| {
                    out.push(StreamEvent {
                        stream: id,
                        direction: dir,
                        frame,
                        kind,
                    })
                };
                flush(&mut s.halves[dir.index()], &mut emit);
            }
            out.push(StreamEvent {
                stream: s.id,
                direction: Direction::ToServer,
                frame,
                kind: EventKind::Evicted,
            });
        }
    }
}

/// Places `data` starting at sequence number `seq` into `h`, whose next expected sequence
/// number is `next`.
fn place(
    h: &mut Half,
    next: u32,
    seq: u32,
    data: &[u8],
    limits: &ReassemblyLimits,
    emit: &mut impl FnMut(EventKind),
) {
    let rel = i64::from(seq.wrapping_sub(next) as i32);
    let start = h.delivered as i64 + rel;
    let end = start + data.len() as i64;
    if end <= h.delivered as i64 {
        emit(EventKind::Retransmission(data.len()));
        return;
    }
    let (start, data) = if start < h.delivered as i64 {
        let skip = (h.delivered as i64 - start) as usize;
        emit(EventKind::Retransmission(skip));
        (h.delivered, &data[skip..])
    } else {
        (start as u64, data)
    };
    if start == h.delivered {
        deliver(h, data, emit);
        drain(h, emit);
        return;
    }
    // Beyond the expected point: wait, within the limits.
    if h.pending.len() >= limits.max_segments
        || h.pending_bytes + data.len() > limits.max_out_of_order
    {
        // Give up on the hole: report it, deliver what waits, then this segment.
        flush(h, emit);
        if start > h.delivered {
            emit(EventKind::Gap(start - h.delivered));
            advance(h, start - h.delivered);
        }
        let skip = ((h.delivered - start) as usize).min(data.len());
        if skip > 0 {
            emit(EventKind::Retransmission(skip));
        }
        deliver(h, &data[skip..], emit);
        return;
    }
    insert_pending(h, start, data, emit);
}

/// Stores a waiting segment, keeping octets already waiting where they overlap.
fn insert_pending(h: &mut Half, start: u64, data: &[u8], emit: &mut impl FnMut(EventKind)) {
    let mut pieces: Vec<(u64, &[u8])> = vec![(start, data)];
    let end = start + data.len() as u64;
    // Cut away every part already covered by a waiting segment.
    let covering: Vec<(u64, u64)> = h
        .pending
        .range(..end)
        .map(|(s, d)| (*s, *s + d.len() as u64))
        .filter(|(_, e)| *e > start)
        .collect();
    let mut dropped = 0usize;
    for (cs, ce) in covering {
        let mut next = Vec::new();
        for (ps, pd) in pieces {
            let pe = ps + pd.len() as u64;
            if ce <= ps || cs >= pe {
                next.push((ps, pd));
                continue;
            }
            if ps < cs {
                next.push((ps, &pd[..(cs - ps) as usize]));
            }
            if ce < pe {
                next.push((ce, &pd[(ce - ps) as usize..]));
            }
            dropped += (ce.min(pe) - cs.max(ps)) as usize;
        }
        pieces = next;
    }
    if dropped > 0 {
        emit(EventKind::Overlap(dropped));
    }
    for (ps, pd) in pieces {
        if !pd.is_empty() {
            h.pending_bytes += pd.len();
            h.pending.insert(ps, pd.to_vec());
        }
    }
}

fn advance(h: &mut Half, n: u64) {
    h.delivered += n;
    if let Some(s) = h.next_seq.as_mut() {
        *s = s.wrapping_add(n as u32);
    }
}

fn deliver(h: &mut Half, data: &[u8], emit: &mut impl FnMut(EventKind)) {
    if data.is_empty() {
        return;
    }
    advance(h, data.len() as u64);
    emit(EventKind::Data(data.to_vec()));
}

/// Delivers the waiting segments that are now contiguous.
fn drain(h: &mut Half, emit: &mut impl FnMut(EventKind)) {
    while let Some((&s, _)) = h.pending.first_key_value() {
        if s > h.delivered {
            break;
        }
        let Some(d) = h.pending.remove(&s) else {
            break;
        };
        h.pending_bytes -= d.len();
        let end = s + d.len() as u64;
        if end <= h.delivered {
            emit(EventKind::Retransmission(d.len()));
            continue;
        }
        let skip = (h.delivered - s) as usize;
        deliver(h, &d[skip..], emit);
    }
}

/// Declares the holes below sequence number `ack` gaps and delivers what becomes contiguous.
fn flush_to(h: &mut Half, ack: u32, emit: &mut impl FnMut(EventKind)) {
    let Some(next) = h.next_seq else {
        return;
    };
    let limit = h.delivered + u64::from(ack.wrapping_sub(next));
    drain(h, emit);
    while let Some((&s, _)) = h.pending.first_key_value() {
        if s >= limit {
            break;
        }
        if s > h.delivered {
            emit(EventKind::Gap(s - h.delivered));
            advance(h, s - h.delivered);
        }
        drain(h, emit);
    }
}

/// Declares every hole a gap and delivers everything waiting.
fn flush(h: &mut Half, emit: &mut impl FnMut(EventKind)) {
    drain(h, emit);
    while let Some((&s, _)) = h.pending.first_key_value() {
        if s > h.delivered {
            emit(EventKind::Gap(s - h.delivered));
            advance(h, s - h.delivered);
        }
        drain(h, emit);
    }
}

#[cfg(test)]
mod tests;
