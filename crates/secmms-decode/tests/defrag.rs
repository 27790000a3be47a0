//! IP fragments: a capture whose TCP segments arrive as IPv4 fragments, or over IPv6 as
//! Fragment extension headers behind other extension headers (in order, out of order,
//! duplicated), decodes as the unfragmented one; broken fragment sets are reported as
//! `fragment` problems.

#[path = "common/aprofile.rs"]
mod common;

use std::io::Cursor;

use secmms_decode::capture::{CaptureReader, Frame};
use secmms_decode::decoder::Decoder;
use secmms_decode::record::Item;
use secmms_decode::synth::{PcapFile, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;

fn frames(file: &[u8]) -> Vec<Frame> {
    let mut r = CaptureReader::new(Cursor::new(file.to_vec())).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame() {
        v.push(f.unwrap());
    }
    v
}

fn decode(file: &[u8]) -> Vec<Item> {
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    let mut items = Vec::new();
    for f in frames(file) {
        d.frame(&f, &mut items);
    }
    d.finish(&mut items);
    items
}

/// What must not change when the packets are fragmented (frame numbers do).
fn summary(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            Item::Pdu(p) => format!(
                "pdu {} {} {} {:?} {} {:?} {:?} {:?} {:?} {:?}",
                p.stream,
                p.direction,
                p.offset,
                p.layers,
                p.pdu,
                p.service,
                p.objects,
                p.result,
                p.verified,
                p.problems
            ),
            Item::Notice(n) => format!("event {} {:?} {}", n.event, n.stream, n.problem),
        })
        .collect()
}

fn problem_events(items: &[Item]) -> Vec<&'static str> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Notice(n) if n.problem => Some(n.event),
            _ => None,
        })
        .collect()
}

/// Splits the IPv4 packet of an Ethernet frame (20-octet header) into fragments of at most
/// `size` payload octets (a multiple of 8), with identification `id`.
fn fragment(frame: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    assert_eq!(ip[0], 0x45);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let payload = &ip[20..total];
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = ip[..20].to_vec();
            h[2..4].copy_from_slice(&((20 + c.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let off = (i * size / 8) as u16 | if i + 1 < n { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&off.to_be_bytes());
            h[10] = 0;
            h[11] = 0;
            let mut sum: u32 = h
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            let mut f = eth.to_vec();
            f.extend_from_slice(&h);
            f.extend_from_slice(c);
            f
        })
        .collect()
}

/// The capture with every frame of more than `size` TCP payload octets fragmented; `arrange`
/// may reorder, drop or alter each packet's fragments.
fn fragmented(file: &[u8], size: usize, arrange: impl Fn(&mut Vec<Vec<u8>>)) -> (Vec<u8>, usize) {
    let mut out = PcapFile::new(LINKTYPE_ETHERNET, 65_535);
    let mut split = 0;
    for (i, f) in frames(file).into_iter().enumerate() {
        let t = u64::try_from(f.time_ns.unwrap()).unwrap();
        if f.data.len() > 14 + 20 + 20 + size {
            let mut parts = fragment(&f.data, size, 0x100 + i as u16);
            assert!(parts.len() >= 2);
            split += 1;
            arrange(&mut parts);
            for p in parts {
                out.record(t, &p, p.len() as u32);
            }
        } else {
            out.record(t, &f.data, f.data.len() as u32);
        }
    }
    (out.bytes().to_vec(), split)
}

/// Reorders, drops or alters the fragments of one packet.
type Arrange = fn(&mut Vec<Vec<u8>>);

#[test]
fn fragmented_capture_decodes_as_the_unfragmented_one() {
    let file = common::aarq_capture(|_| {});
    let plain = decode(&file);
    assert!(plain.iter().any(|i| matches!(i, Item::Pdu(_))));
    assert!(problem_events(&plain).is_empty(), "{plain:?}");
    let expected = summary(&plain);
    let arrangements: [(&str, Arrange); 4] = [
        ("in order", |_| {}),
        ("reversed", |p| p.reverse()),
        ("last first", |p| p.rotate_right(1)),
        // Before the datagram completes; a copy arriving after it would open a new datagram
        // that never completes (and is reported).
        ("duplicated", |p| {
            let first = p[0].clone();
            p.insert(1, first)
        }),
    ];
    for size in [256, 512] {
        for (name, arrange) in arrangements {
            let (f, split) = fragmented(&file, size, arrange);
            assert!(split >= 1, "nothing fragmented at {size}");
            let got = decode(&f);
            assert_eq!(summary(&got), expected, "{name}, {size}-octet fragments");
        }
    }
}

#[test]
fn missing_or_overlapping_fragments_are_reported() {
    let file = common::aarq_capture(|_| {});
    // The last fragment never comes: the datagram is reported at the end, and TCP sees a gap.
    let (f, _) = fragmented(&file, 256, |p| {
        p.pop();
    });
    let got = decode(&f);
    let problems = problem_events(&got);
    assert!(problems.contains(&"fragment"), "{problems:?}");
    // A second copy of a fragment with other content is refused.
    let (f, _) = fragmented(&file, 256, |p| {
        let mut evil = p[1].clone();
        let last = evil.len() - 1;
        evil[last] ^= 0xff;
        p.insert(1, evil);
    });
    let got = decode(&f);
    let problems = problem_events(&got);
    assert!(problems.contains(&"fragment"), "{problems:?}");
    assert_ne!(summary(&got), summary(&decode(&file)));
}

/// The Ethernet / IPv4 / TCP frame rewritten as Ethernet / IPv6 / TCP (fd00::a.b.c.d
/// addresses; the TCP checksum is left as it was, the decoder does not check it).
fn to_ipv6(frame: &[u8]) -> Vec<u8> {
    let (eth, ip) = frame.split_at(14);
    assert_eq!(ip[0], 0x45);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let tcp = &ip[20..total];
    let mut f = eth[..12].to_vec();
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[6, 64]);
    for addr in [&ip[12..16], &ip[16..20]] {
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(addr);
    }
    f.extend_from_slice(tcp);
    f
}

/// The capture with every frame rewritten as IPv6.
fn ipv6_capture(file: &[u8]) -> Vec<u8> {
    let mut out = PcapFile::new(LINKTYPE_ETHERNET, 65_535);
    for f in frames(file) {
        let t = u64::try_from(f.time_ns.unwrap()).unwrap();
        let g = to_ipv6(&f.data);
        out.record(t, &g, g.len() as u32);
    }
    out.bytes().to_vec()
}

/// Splits the IPv6 / TCP packet of an Ethernet frame into fragments of at most `size`
/// fragmentable octets (a multiple of 8), with identification `id`. The unfragmentable part
/// carries a hop-by-hop and a routing header, the fragmentable part starts with destination
/// options: the reader has to walk all of them.
fn fragment6(frame: &[u8], size: usize, id: u32) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    assert_eq!(ip[0] >> 4, 6);
    let mut unfrag = ip[..40].to_vec();
    unfrag[6] = 0; // hop-by-hop
    unfrag.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0]); // → routing, PadN
    unfrag.extend_from_slice(&[44, 0, 253, 0, 0, 0, 0, 0]); // → fragment, experimental type
    let mut fragmentable = vec![6, 0, 1, 4, 0, 0, 0, 0]; // destination options → TCP
    fragmentable.extend_from_slice(&ip[40..]);
    let chunks: Vec<&[u8]> = fragmentable.chunks(size).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut h = unfrag.clone();
            let len = unfrag.len() - 40 + 8 + c.len();
            h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            let off = (i * size) as u16 | u16::from(i + 1 < n);
            h.extend_from_slice(&[60, 0]);
            h.extend_from_slice(&off.to_be_bytes());
            h.extend_from_slice(&id.to_be_bytes());
            let mut f = eth.to_vec();
            f.extend_from_slice(&h);
            f.extend_from_slice(c);
            f
        })
        .collect()
}

/// [`fragmented`] for an IPv6 capture.
fn fragmented6(file: &[u8], size: usize, arrange: impl Fn(&mut Vec<Vec<u8>>)) -> (Vec<u8>, usize) {
    let mut out = PcapFile::new(LINKTYPE_ETHERNET, 65_535);
    let mut split = 0;
    for (i, f) in frames(file).into_iter().enumerate() {
        let t = u64::try_from(f.time_ns.unwrap()).unwrap();
        if f.data.len() > 14 + 40 + 20 + size {
            let mut parts = fragment6(&f.data, size, 0x8000_0100 + i as u32);
            assert!(parts.len() >= 2);
            split += 1;
            arrange(&mut parts);
            for p in parts {
                out.record(t, &p, p.len() as u32);
            }
        } else {
            out.record(t, &f.data, f.data.len() as u32);
        }
    }
    (out.bytes().to_vec(), split)
}

#[test]
fn fragmented_ipv6_capture_decodes_as_the_unfragmented_one() {
    let v4 = common::aarq_capture(|_| {});
    let file = ipv6_capture(&v4);
    let plain = decode(&file);
    assert!(plain.iter().any(|i| matches!(i, Item::Pdu(_))));
    assert!(problem_events(&plain).is_empty(), "{plain:?}");
    let expected = summary(&plain);
    // The same PDUs as over IPv4.
    assert_eq!(expected, summary(&decode(&v4)));
    let arrangements: [(&str, Arrange); 5] = [
        ("in order", |_| {}),
        ("reversed", |p| p.reverse()),
        ("last first", |p| p.rotate_right(1)),
        ("middle first", |p| {
            let m = p.remove(p.len() / 2);
            p.insert(0, m)
        }),
        ("duplicated", |p| {
            let first = p[0].clone();
            p.insert(1, first)
        }),
    ];
    for size in [256, 512] {
        for (name, arrange) in arrangements {
            let (f, split) = fragmented6(&file, size, arrange);
            assert!(split >= 1, "nothing fragmented at {size}");
            let got = decode(&f);
            assert_eq!(
                summary(&got),
                expected,
                "IPv6 {name}, {size}-octet fragments"
            );
        }
    }
}

#[test]
fn broken_ipv6_fragment_sets_are_reported() {
    let file = ipv6_capture(&common::aarq_capture(|_| {}));
    let clean = summary(&decode(&file));
    // Incomplete: a middle fragment never comes; the datagram is reported at the end.
    let (f, split) = fragmented6(&file, 256, |p| {
        p.remove(1);
    });
    let got = decode(&f);
    let fragment_problems = got
        .iter()
        .filter(|i| matches!(i, Item::Notice(n) if n.problem && n.event == "fragment"))
        .count();
    assert_eq!(fragment_problems, split, "{got:?}");
    assert!(got.iter().any(|i| matches!(i,
        Item::Notice(n) if n.event == "fragment" && n.detail.contains("incomplete") && n.detail.contains("IPv6"))));
    // Overlap: a second fragment that rewrites part of the first is refused, not guessed.
    let (f, _) = fragmented6(&file, 256, |p| {
        let mut evil = p[1].clone();
        // Offset 8 (inside the first fragment), same length.
        let at = 14 + 40 + 16 + 2;
        evil[at..at + 2].copy_from_slice(&(8u16 | 1).to_be_bytes());
        p.insert(1, evil);
    });
    let got = decode(&f);
    assert!(
        got.iter().any(|i| matches!(i,
            Item::Notice(n) if n.problem && n.event == "fragment" && n.detail.contains("overlaps"))),
        "{got:?}"
    );
    assert_ne!(summary(&got), clean);
}

#[test]
fn overlong_ipv6_extension_chain_is_a_link_error() {
    let file = ipv6_capture(&common::aarq_capture(|_| {}));
    let mut out = PcapFile::new(LINKTYPE_ETHERNET, 65_535);
    let f = frames(&file).remove(0);
    let (eth, ip) = f.data.split_at(14);
    let mut g = eth.to_vec();
    let mut h = ip[..40].to_vec();
    h[6] = 60;
    let n = secmms_decode::limits::MAX_IPV6_EXT_HEADERS + 1;
    let len = ip.len() - 40 + 8 * n;
    h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    g.extend_from_slice(&h);
    for i in 0..n {
        let next = if i + 1 < n { 60 } else { 44 };
        g.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    g.extend_from_slice(&ip[40..]);
    out.record(0, &g, g.len() as u32);
    let got = decode(out.bytes());
    assert_eq!(problem_events(&got), ["link-error"], "{got:?}");
}
