//! Limits of the decoder. Every structure that grows with the input is bounded by one of these;
//! each doc comment says why the number has its value.

/// Largest frame (captured octets) the reader hands on. DECISION: 256 KiB, the snap length
/// dumpcap uses by default (262 144), rounded up; a larger record is reported and skipped.
pub const MAX_FRAME_LEN: usize = 262_144 + 1024;

/// Largest number of interfaces one pcapng section may describe. DECISION: 4 096 — a capture
/// of every interface of a big router has a few hundred.
pub const MAX_INTERFACES: usize = 4096;

/// TCP streams followed at the same time. DECISION: 4 096; when full, the stream idle longest
/// is closed (reported as evicted) before a new one is opened.
pub const DEFAULT_MAX_STREAMS: usize = 4096;

/// Octets buffered out of order per direction of a stream, waiting for a hole to fill.
/// DECISION: 1 MiB — more than a TCP window of the MMS stacks seen (64 KiB) by a wide margin.
/// When exceeded, the hole is declared a gap and the buffered data is delivered after it.
pub const DEFAULT_MAX_OUT_OF_ORDER: usize = 1 << 20;

/// Out-of-order segments held per direction. DECISION: 1 024 (bounds the bookkeeping even for
/// one-octet segments).
pub const DEFAULT_MAX_SEGMENTS: usize = 1024;

/// Octets of undelivered, in-order stream data held per direction by the OSI framing (a TPKT
/// under construction). RFC 1006 bounds a TPKT at 65 535 octets.
pub const MAX_TPKT_BUFFER: usize = 65_535;

/// Largest reassembled TSDU (COTP DT sequence) accepted. Same as the live stack's
/// `secmms_osi::limits::DEFAULT_MAX_TSDU` (Annex H: 64 KiB).
pub const MAX_TSDU: usize = secmms_osi::limits::DEFAULT_MAX_TSDU;

/// Octets scanned while resynchronising on a TPKT + DT header in a stream picked up in the
/// middle. DECISION: 64 KiB (one TPKT at most); past that the direction is given up.
pub const MAX_RESYNC_SCAN: usize = 65_536;

/// Depth of the BER tree printed by `-V`. DECISION: 32, the live stack's BER nesting limit.
pub const MAX_TREE_DEPTH: usize = 32;

/// Nodes printed by `-V` for one PDU. DECISION: 4 096; the rest is summarised.
pub const MAX_TREE_NODES: usize = 4096;

/// Object names collected from one MMS PDU. DECISION: 256 (an IEC 61850 data set read lists
/// tens); the rest is counted, not listed.
pub const MAX_OBJECTS: usize = 256;

/// Accepted difference, in seconds, between an A-profile authentication value's `time` and the
/// capture time of its frame (IEC 62351-4 §11.4: 10 minutes).
pub const AUTH_TIME_WINDOW: i64 = 600;

/// IP datagrams (IPv4 and IPv6 together) in fragment reassembly at the same time. DECISION: 64 — fragmented MMS is
/// rare (a TPKT rarely exceeds a path MTU once TCP segments it), so a few in flight is normal and
/// 64 is generous; a fragment of a 65th datagram is refused and reported, the ones in progress
/// are kept (they expire by [`FRAG_TIMEOUT_FRAMES`] / [`FRAG_TIMEOUT_NS`] anyway).
pub const MAX_FRAG_DATAGRAMS: usize = 64;

/// Largest reassembled IPv4 datagram, header included: RFC 791's total-length field cannot say
/// more. A fragment ending past it drops its datagram. Held per datagram at most, so the table
/// holds at most [`MAX_FRAG_DATAGRAMS`] × 64 KiB (4 MiB).
pub const MAX_DATAGRAM_LEN: usize = 65_535;

/// Largest reassembled IPv6 datagram: the 40-octet IPv6 header plus the largest payload its
/// 16-bit payload-length field can say (RFC 8200 §4.5: a reassembled payload longer than
/// 65 535 octets is an error; jumbograms are never fragmented). A fragment ending past it
/// drops its datagram.
pub const MAX_IPV6_DATAGRAM_LEN: usize = 40 + 65_535;

/// IPv6 extension headers (hop-by-hop, routing, destination options) skipped before a Fragment
/// header or TCP. DECISION: 8 — RFC 8200 §4.1 recommends each at most once (destination
/// options twice), so a legitimate chain has 4; a longer one is reported as a link error
/// instead of walked.
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Fragments of one datagram. DECISION: 256 — a full 65 535-octet datagram over the smallest
/// common MTU (576) has 114; the bound keeps the overlap check (linear in the fragments held)
/// cheap against 8-octet fragments.
pub const MAX_FRAGMENTS: usize = 256;

/// Frames after which a datagram still incomplete is dropped and reported. DECISION: 1 024 —
/// fragments of one datagram leave the sender back to back; a thousand frames later the rest
/// was not captured.
pub const FRAG_TIMEOUT_FRAMES: u64 = 1024;

/// Capture time after which a datagram still incomplete is dropped and reported.
/// DECISION: 30 s, Linux's default `ipfrag_time` (RFC 791 suggests 15 s as the initial timer).
pub const FRAG_TIMEOUT_NS: i128 = 30_000_000_000;
