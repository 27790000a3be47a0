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
