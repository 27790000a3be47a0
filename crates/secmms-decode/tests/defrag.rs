//! IPv4 fragments: a capture whose TCP segments arrive as IPv4 fragments (in order, out of
//! order, duplicated) decodes as the unfragmented one; broken fragment sets are reported as
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
