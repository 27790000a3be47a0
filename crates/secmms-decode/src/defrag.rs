//! IP fragment reassembly, bounded for hostile captures: IPv4 (RFC 791 §3.2) and IPv6
//! Fragment extension headers (RFC 8200 §4.5).
//!
//! Fragments are grouped by source, destination, protocol (IPv4 only) and identification. A
//! datagram is complete once the fragment at offset 0 (which gives the header), the last
//! fragment (MF / M clear, which gives the length) and every octet between them are held; it
//! is then rebuilt as one unfragmented packet and read like any other packet:
//!
//! - IPv4: the header of the first fragment, fragment fields cleared, total length and
//!   checksum recomputed;
//! - IPv6: the unfragmentable part of the first fragment (the IPv6 header and the extension
//!   headers before the Fragment header), the Fragment header removed (the Next Header octet
//!   that named it now names what it named), payload length recomputed.
//!
//! Overlapping fragments are **refused**: a fragment that overlaps octets already held (other
//! than an exact, identical duplicate, which is ignored) drops the whole datagram with
//! [`DefragError::Overlap`]. Last-writer-wins would let a later fragment rewrite what an
//! earlier one said (the classic IDS-evasion trick); a decoder has no business picking one
//! version, so it reports the datagram instead.
//!
//! Bounds ([`crate::limits`]): [`MAX_FRAG_DATAGRAMS`] in progress (a fragment of one more is
//! refused; IPv4 and IPv6 share the table), [`MAX_DATAGRAM_LEN`] octets (IPv4) or
//! [`MAX_IPV6_DATAGRAM_LEN`] (IPv6) and [`MAX_FRAGMENTS`] fragments per datagram, and a
//! datagram incomplete after [`FRAG_TIMEOUT_FRAMES`] further frames or [`FRAG_TIMEOUT_NS`] of
//! capture time, or at the end of the capture, is dropped ([`DefragError::Expired`]). The
//! decoder reports every error as a `fragment` event that counts as a problem.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::limits::{
    FRAG_TIMEOUT_FRAMES, FRAG_TIMEOUT_NS, MAX_DATAGRAM_LEN, MAX_FRAGMENTS, MAX_FRAG_DATAGRAMS,
    MAX_IPV6_DATAGRAM_LEN,
};

/// What identifies the fragments of one datagram: RFC 791 for IPv4 (addresses, protocol,
/// 16-bit identification), RFC 8200 for IPv6 (addresses, 32-bit identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol number; [`FRAGMENT_HEADER`] for IPv6, whose key has no protocol.
    pub protocol: u8,
    /// Identification field.
    pub id: u32,
}

/// IPv6 Next Header value of the Fragment header (RFC 8200 §4.5).
pub const FRAGMENT_HEADER: u8 = 44;

impl FragKey {
    /// True for an IPv6 datagram.
    pub fn is_ipv6(&self) -> bool {
        self.src.is_ipv6()
    }
}

impl std::fmt::Display for FragKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_ipv6() {
            write!(f, "IPv6 {} > {} id {:#010x}", self.src, self.dst, self.id)
        } else {
            write!(
                f,
                "IPv4 {} > {} id {:#06x} proto {}",
                self.src, self.dst, self.id, self.protocol
            )
        }
    }
}

/// What an IPv6 fragment adds to [`IpFragment`]: how to remove its Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6FragmentHeader {
    /// Index, in [`IpFragment::header`], of the Next Header octet that names the Fragment
    /// header (6 when the Fragment header follows the IPv6 header directly).
    pub next_header_at: usize,
    /// The Fragment header's own Next Header: the first header of the fragmentable part.
    pub next_header: u8,
}

/// One IP fragment as taken from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpFragment {
    /// The datagram it belongs to.
    pub key: FragKey,
    /// Offset of its payload in the datagram, in octets (the header field times 8).
    pub offset: usize,
    /// More-fragments flag.
    pub more: bool,
    /// IPv4: its header, options included. IPv6: its unfragmentable part, the IPv6 header
    /// and the extension headers before the Fragment header.
    pub header: Vec<u8>,
    /// IPv6 only: the Fragment header's fields the rebuild needs.
    pub ipv6: Option<Ipv6FragmentHeader>,
    /// Its payload (for IPv6, what follows the Fragment header).
    pub payload: Vec<u8>,
    /// Payload octets the header announces but the capture does not hold (snap length).
    pub cut: usize,
}

/// Why a fragment, or a datagram in progress, was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefragError {
    /// The fragment was cut by the snap length; the datagram cannot be rebuilt.
    #[error("fragment of {key}: {cut} octets not captured")]
    Cut {
        /// The datagram.
        key: FragKey,
        /// Octets missing.
        cut: usize,
    },
    /// [`MAX_FRAG_DATAGRAMS`] datagrams are already in progress; the fragment of a new one is
    /// dropped.
    #[error("fragment of {key}: {limit} datagrams already in reassembly")]
    TooManyDatagrams {
        /// The datagram refused.
        key: FragKey,
        /// The limit.
        limit: usize,
    },
    /// The fragment ends past the largest datagram ([`MAX_DATAGRAM_LEN`] octets for IPv4,
    /// [`MAX_IPV6_DATAGRAM_LEN`] for IPv6); the datagram is dropped.
    #[error("fragment of {key} ends at octet {end}, past the largest datagram")]
    Oversized {
        /// The datagram.
        key: FragKey,
        /// Where the fragment ends (header included).
        end: usize,
    },
    /// More than [`MAX_FRAGMENTS`] fragments; the datagram is dropped.
    #[error("datagram {key}: more than {MAX_FRAGMENTS} fragments")]
    TooManyFragments {
        /// The datagram.
        key: FragKey,
    },
    /// The fragment overlaps octets already held with different content or extent; the
    /// datagram is dropped.
    #[error("fragment of {key} at {offset}+{len} overlaps one already held")]
    Overlap {
        /// The datagram.
        key: FragKey,
        /// Offset of the refused fragment.
        offset: usize,
        /// Its length.
        len: usize,
    },
    /// The fragments disagree (two different ends, data past the end, a middle fragment whose
    /// length is not a multiple of 8); the datagram is dropped.
    #[error("datagram {key}: {what}")]
    Inconsistent {
        /// The datagram.
        key: FragKey,
        /// What disagrees.
        what: &'static str,
    },
    /// The datagram was still incomplete after the frame or time bound, or at the end of
    /// the capture.
    #[error("datagram {key} from frame {first_frame} incomplete ({held} octets held): {why}")]
    Expired {
        /// The datagram.
        key: FragKey,
        /// Frame of its first fragment.
        first_frame: u64,
        /// Payload octets held.
        held: usize,
        /// Which bound.
        why: &'static str,
    },
}

#[derive(Debug)]
struct Pending {
    header: Option<(Vec<u8>, Option<Ipv6FragmentHeader>)>,
    data: Vec<u8>,
    /// Held ranges `[start, end)`, in arrival order.
    ranges: Vec<(usize, usize)>,
    held: usize,
    total: Option<usize>,
    first_frame: u64,
    first_count: u64,
    first_time: Option<i128>,
}

/// The datagrams in reassembly.
#[derive(Debug, Default)]
pub struct Defragmenter {
    pending: HashMap<FragKey, Pending>,
    /// Frames seen (the clock of the frame bound).
    count: u64,
}

impl Defragmenter {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams in progress.
    pub fn in_progress(&self) -> usize {
        self.pending.len()
    }

    /// Advances the clock by one frame (call once per frame, fragment or not, before
    /// [`Defragmenter::push`]) and drops the datagrams past a bound, each reported in `out`.
    pub fn tick(&mut self, time_ns: Option<i128>, out: &mut Vec<DefragError>) {
        self.count += 1;
        let count = self.count;
        let mut expired: Vec<(FragKey, &'static str)> = self
            .pending
            .iter()
            .filter_map(|(k, p)| {
                let old_time = match (time_ns, p.first_time) {
                    (Some(now), Some(then)) => now.saturating_sub(then) > FRAG_TIMEOUT_NS,
                    _ => false,
                };
                if count.saturating_sub(p.first_count) > FRAG_TIMEOUT_FRAMES {
                    Some((*k, "too many frames since its first fragment"))
                } else if old_time {
                    Some((*k, "too much capture time since its first fragment"))
                } else {
                    None
                }
            })
            .collect();
        expired.sort();
        for (k, why) in expired {
            if let Some(p) = self.pending.remove(&k) {
                out.push(expired_error(k, &p, why));
            }
        }
    }

    /// Drops every datagram still in progress (end of capture), each reported in `out`.
    pub fn finish(&mut self, out: &mut Vec<DefragError>) {
        let mut all: Vec<(FragKey, Pending)> = self.pending.drain().collect();
        all.sort_by_key(|(k, p)| (p.first_count, *k));
        for (k, p) in all {
            out.push(expired_error(k, &p, "end of capture"));
        }
    }

    /// Adds a fragment seen in `frame` at `time_ns`. `Ok(Some(packet))` when it completes its
    /// datagram: the whole IP packet (IPv4 or IPv6, as the fragment), unfragmented. An error drops the fragment and, except
    /// for [`DefragError::TooManyDatagrams`], the datagram it belongs to.
    pub fn push(
        &mut self,
        frag: IpFragment,
        frame: u64,
        time_ns: Option<i128>,
    ) -> Result<Option<Vec<u8>>, DefragError> {
        let key = frag.key;
        let result = self.add(frag, frame, time_ns);
        if matches!(
            result,
            Err(DefragError::Cut { .. } | DefragError::TooManyDatagrams { .. })
        ) {
            return result;
        }
        if result.is_err() {
            self.pending.remove(&key);
        }
        result
    }

    fn add(
        &mut self,
        frag: IpFragment,
        frame: u64,
        time_ns: Option<i128>,
    ) -> Result<Option<Vec<u8>>, DefragError> {
        let key = frag.key;
        if frag.cut > 0 {
            // The datagram cannot be rebuilt: drop what is held of it.
            self.pending.remove(&key);
            return Err(DefragError::Cut { key, cut: frag.cut });
        }
        let start = frag.offset;
        let end = start + frag.payload.len();
        let whole_end = end + frag.header.len();
        if whole_end > max_len(&key) {
            return Err(DefragError::Oversized {
                key,
                end: whole_end,
            });
        }
        if frag.more && frag.payload.len() % 8 != 0 {
            return Err(DefragError::Inconsistent {
                key,
                what: "a fragment other than the last is not a multiple of 8 octets",
            });
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_FRAG_DATAGRAMS {
            return Err(DefragError::TooManyDatagrams {
                key,
                limit: MAX_FRAG_DATAGRAMS,
            });
        }
        let count = self.count;
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            header: None,
            data: Vec::new(),
            ranges: Vec::new(),
            held: 0,
            total: None,
            first_frame: frame,
            first_count: count,
            first_time: time_ns,
        });
        if !frag.more {
            match p.total {
                Some(t) if t != end => {
                    return Err(DefragError::Inconsistent {
                        key,
                        what: "two last fragments with different ends",
                    })
                }
                _ => p.total = Some(end),
            }
        }
        if let Some(t) = p.total {
            if end > t || p.ranges.iter().any(|&(_, e)| e > t) {
                return Err(DefragError::Inconsistent {
                    key,
                    what: "data past the end given by the last fragment",
                });
            }
        }
        for &(s, e) in &p.ranges {
            if start < e && s < end {
                if s == start && e == end && p.data.get(s..e) == Some(&frag.payload[..]) {
                    // An identical duplicate: nothing new.
                    return Ok(None);
                }
                return Err(DefragError::Overlap {
                    key,
                    offset: start,
                    len: frag.payload.len(),
                });
            }
        }
        if p.ranges.len() >= MAX_FRAGMENTS {
            return Err(DefragError::TooManyFragments { key });
        }
        if !frag.payload.is_empty() {
            if p.data.len() < end {
                p.data.resize(end, 0);
            }
            p.data[start..end].copy_from_slice(&frag.payload);
            p.ranges.push((start, end));
            p.held += frag.payload.len();
        }
        if start == 0 {
            p.header = Some((frag.header, frag.ipv6));
        }
        let complete = matches!((p.total, &p.header), (Some(t), Some(_)) if p.held == t);
        if !complete {
            return Ok(None);
        }
        let Some(p) = self.pending.remove(&key) else {
            return Ok(None);
        };
        rebuild(key, p).map(Some)
    }
}

fn expired_error(key: FragKey, p: &Pending, why: &'static str) -> DefragError {
    DefragError::Expired {
        key,
        first_frame: p.first_frame,
        held: p.held,
        why,
    }
}

/// Largest datagram, header included, for the family of `key`.
fn max_len(key: &FragKey) -> usize {
    if key.is_ipv6() {
        MAX_IPV6_DATAGRAM_LEN
    } else {
        MAX_DATAGRAM_LEN
    }
}

/// The unfragmented packet. IPv4: the first fragment's header with total length, flags,
/// offset and checksum rewritten, then the payload. IPv6: the first fragment's
/// unfragmentable part with its payload length and the Next Header that named the Fragment
/// header rewritten, then the payload.
fn rebuild(key: FragKey, p: Pending) -> Result<Vec<u8>, DefragError> {
    let incomplete = DefragError::Inconsistent {
        key,
        what: "datagram rebuilt without its first or last fragment",
    };
    let (Some((mut header, ipv6)), Some(total)) = (p.header, p.total) else {
        return Err(incomplete);
    };
    // The first fragment's header may be longer (options) than the one the size check saw.
    let end = header.len() + total;
    if end > max_len(&key) {
        return Err(DefragError::Oversized { key, end });
    }
    let Some(data) = p.data.get(..total) else {
        return Err(incomplete);
    };
    if key.is_ipv6() {
        let (Some(v6), Some(payload_len)) = (ipv6, end.checked_sub(40)) else {
            return Err(incomplete);
        };
        let (Ok(payload_len), true) = (
            u16::try_from(payload_len),
            header.len() >= 40 && v6.next_header_at < header.len(),
        ) else {
            return Err(incomplete);
        };
        header[4..6].copy_from_slice(&payload_len.to_be_bytes());
        header[v6.next_header_at] = v6.next_header;
        let mut out = header;
        out.extend_from_slice(data);
        return Ok(out);
    }
    let Ok(total_len) = u16::try_from(end) else {
        return Err(DefragError::Oversized { key, end });
    };
    if header.len() < 20 {
        return Err(incomplete);
    }
    header[2..4].copy_from_slice(&total_len.to_be_bytes());
    // Keep DF, clear MF and the offset.
    header[6] &= 0x40;
    header[7] = 0;
    header[10] = 0;
    header[11] = 0;
    let sum = checksum(&header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut out = header;
    out.extend_from_slice(data);
    Ok(out)
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let hi = u32::from(c[0]) << 8;
        let lo = c.get(1).map_or(0, |b| u32::from(*b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            protocol: 6,
            id: u32::from(id),
        }
    }

    fn header() -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 7, 0x20, 0, 64, 6, 0, 0];
        h.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        h
    }

    fn frag(id: u16, offset: usize, more: bool, payload: &[u8]) -> IpFragment {
        IpFragment {
            key: key(id),
            offset,
            more,
            header: header(),
            ipv6: None,
            payload: payload.to_vec(),
            cut: 0,
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| i as u8).collect()
    }

    #[test]
    fn in_order_and_out_of_order_give_the_same_packet() {
        let d = data(40);
        let parts = [
            frag(1, 0, true, &d[..16]),
            frag(1, 16, true, &d[16..32]),
            frag(1, 32, false, &d[32..]),
        ];
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut df = Defragmenter::new();
            let mut got = None;
            for (n, i) in order.iter().enumerate() {
                let r = df.push(parts[*i].clone(), n as u64, None).unwrap();
                assert_eq!(r.is_some(), n == 2, "order {order:?}");
                got = got.or(r);
            }
            let p = got.unwrap();
            assert_eq!(&p[20..], &d[..]);
            assert_eq!(u16::from_be_bytes([p[2], p[3]]), 60);
            assert_eq!(p[6] & 0x3f, 0);
            assert_eq!(p[7], 0);
            assert_eq!(checksum(&p[..20]), 0);
            assert_eq!(df.in_progress(), 0);
        }
    }

    #[test]
    fn overlap_is_refused_but_identical_duplicate_is_not() {
        let d = data(32);
        let mut df = Defragmenter::new();
        assert_eq!(df.push(frag(1, 0, true, &d[..16]), 1, None), Ok(None));
        assert_eq!(df.push(frag(1, 0, true, &d[..16]), 2, None), Ok(None));
        let r = df.push(frag(1, 8, false, &[0xff; 16]), 3, None);
        assert!(
            matches!(r, Err(DefragError::Overlap { offset: 8, .. })),
            "{r:?}"
        );
        assert_eq!(df.in_progress(), 0);
        // Same extent, different content: refused too.
        let mut df = Defragmenter::new();
        df.push(frag(2, 0, true, &d[..16]), 1, None).unwrap();
        let r = df.push(frag(2, 0, true, &[9; 16]), 2, None);
        assert!(matches!(r, Err(DefragError::Overlap { .. })), "{r:?}");
    }

    #[test]
    fn oversized_and_inconsistent_are_refused() {
        let mut df = Defragmenter::new();
        let r = df.push(frag(1, 65_528, false, &[0; 16]), 1, None);
        assert!(matches!(r, Err(DefragError::Oversized { .. })), "{r:?}");
        let r = df.push(frag(2, 0, true, &[0; 7]), 1, None);
        assert!(matches!(r, Err(DefragError::Inconsistent { .. })), "{r:?}");
        df.push(frag(3, 8, false, &[0; 8]), 1, None).unwrap();
        let r = df.push(frag(3, 16, false, &[0; 8]), 2, None);
        assert!(matches!(r, Err(DefragError::Inconsistent { .. })), "{r:?}");
        let mut cut = frag(4, 0, true, &[0; 8]);
        cut.cut = 100;
        assert!(matches!(
            df.push(cut, 3, None),
            Err(DefragError::Cut { cut: 100, .. })
        ));
        assert_eq!(df.in_progress(), 0);
    }

    #[test]
    fn table_is_bounded_and_old_datagrams_expire() {
        let mut df = Defragmenter::new();
        let mut out = Vec::new();
        for id in 0..MAX_FRAG_DATAGRAMS as u16 {
            df.tick(Some(0), &mut out);
            df.push(frag(id, 8, true, &[0; 8]), u64::from(id), Some(0))
                .unwrap();
        }
        assert!(out.is_empty());
        let r = df.push(frag(999, 8, true, &[0; 8]), 100, Some(0));
        assert!(
            matches!(r, Err(DefragError::TooManyDatagrams { .. })),
            "{r:?}"
        );
        // A fragment of a datagram already held still goes in.
        assert_eq!(df.push(frag(0, 16, true, &[0; 8]), 100, Some(0)), Ok(None));
        // Capture time passes the bound: all expire.
        df.tick(Some(FRAG_TIMEOUT_NS + 1), &mut out);
        assert_eq!(out.len(), MAX_FRAG_DATAGRAMS);
        assert!(matches!(out[0], DefragError::Expired { .. }));
        assert_eq!(df.in_progress(), 0);
        // Frame bound, without timestamps.
        out.clear();
        df.push(frag(7, 8, true, &[0; 8]), 200, None).unwrap();
        for _ in 0..FRAG_TIMEOUT_FRAMES {
            df.tick(None, &mut out);
        }
        assert!(out.is_empty());
        df.tick(None, &mut out);
        assert_eq!(out.len(), 1);
        // End of capture.
        out.clear();
        df.push(frag(8, 8, true, &[0; 8]), 300, None).unwrap();
        df.finish(&mut out);
        assert!(matches!(
            out[..],
            [DefragError::Expired {
                first_frame: 300,
                held: 8,
                ..
            }]
        ));
    }

    #[test]
    fn fragment_count_is_bounded() {
        let mut df = Defragmenter::new();
        let mut last = Ok(None);
        for i in 0..=MAX_FRAGMENTS {
            last = df.push(frag(1, 8 + i * 8, true, &[0; 8]), i as u64, None);
            if last.is_err() {
                break;
            }
        }
        assert!(
            matches!(last, Err(DefragError::TooManyFragments { .. })),
            "{last:?}"
        );
        assert_eq!(df.in_progress(), 0);
    }
}
