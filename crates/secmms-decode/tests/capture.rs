//! The capture reader and the link layer, on small files written here by hand for every link
//! type, IPv6, snap-length truncation and multi-interface pcapng with several resolutions.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use secmms_decode::capture::{linktype, CaptureError, CaptureReader, Format, Frame};
use secmms_decode::link::{self, LinkError};

const PAYLOAD: &[u8] = b"\x03\x00\x00\x07\x02\xf0\x80";

fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(50000, 102, 1000, 1000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    let src = Ipv6Addr::LOCALHOST.octets();
    let mut dst = [0u8; 16];
    dst[0] = 0xfe;
    dst[1] = 0x80;
    dst[15] = 2;
    let b = etherparse::PacketBuilder::ipv6(src, dst, 64).tcp(50001, 3782, 7, 1000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// A pcap file (little- or big-endian, micro- or nanoseconds).
fn pcap(
    link: u32,
    big: bool,
    nanos: bool,
    snaplen: u32,
    records: &[(u32, u32, &[u8], u32)],
) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = Vec::new();
    f.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&w32(snaplen));
    f.extend_from_slice(&w32(link));
    for (sec, frac, data, orig) in records {
        f.extend_from_slice(&w32(*sec));
        f.extend_from_slice(&w32(*frac));
        f.extend_from_slice(&w32(data.len() as u32));
        f.extend_from_slice(&w32(*orig));
        f.extend_from_slice(data);
    }
    f
}

fn read_all(file: Vec<u8>) -> (Format, Vec<Frame>) {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let fmt = r.format();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame() {
        v.push(f.unwrap());
    }
    (fmt, v)
}

fn ethernet(ether_type: u16, vlan: Option<u16>, inner: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if let Some(id) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(inner);
    f
}

fn sll(ether_type: u16, inner: &[u8]) -> Vec<u8> {
    // packet type 0 (to us), ARPHRD 772 (loopback), address length 6, address, protocol.
    let mut f = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(inner);
    f
}

fn sll2(ether_type: u16, inner: &[u8]) -> Vec<u8> {
    let mut f = ether_type.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0]); // reserved
    f.extend_from_slice(&1u32.to_be_bytes()); // interface index
    f.extend_from_slice(&[0x03, 0x04, 0, 6]); // ARPHRD, packet type, address length
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(inner);
    f
}

fn segment_of(link_type: u32, frame: &[u8]) -> link::Segment {
    link::parse(link_type, frame)
        .unwrap()
        .expect("a TCP segment")
}

#[test]
fn every_link_type_gives_the_segment() {
    let v4 = ipv4_tcp(PAYLOAD);
    let v6 = ipv6_tcp(PAYLOAD);
    let null_le = [&2u32.to_le_bytes()[..], &v4].concat();
    let null_be6 = [&30u32.to_be_bytes()[..], &v6].concat();
    let loop_be = [&2u32.to_be_bytes()[..], &v4].concat();
    let cases: Vec<(u32, Vec<u8>, bool)> = vec![
        (linktype::ETHERNET, ethernet(0x0800, None, &v4), false),
        (linktype::ETHERNET, ethernet(0x0800, Some(42), &v4), false),
        (linktype::ETHERNET, ethernet(0x86dd, Some(7), &v6), true),
        (linktype::LINUX_SLL, sll(0x0800, &v4), false),
        (linktype::LINUX_SLL, sll(0x86dd, &v6), true),
        (linktype::LINUX_SLL2, sll2(0x0800, &v4), false),
        (linktype::LINUX_SLL2, sll2(0x86dd, &v6), true),
        (linktype::NULL, null_le, false),
        (linktype::NULL, null_be6, true),
        (linktype::LOOP, loop_be, false),
        (linktype::RAW, v4.clone(), false),
        (linktype::RAW, v6.clone(), true),
        (linktype::IPV4, v4.clone(), false),
        (linktype::IPV6, v6.clone(), true),
    ];
    for (lt, frame, is_v6) in cases {
        let file = pcap(
            lt,
            false,
            false,
            65535,
            &[(1, 2, &frame, frame.len() as u32)],
        );
        let (fmt, frames) = read_all(file);
        assert_eq!(fmt, Format::Pcap);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].link_type, lt);
        assert!(!frames[0].truncated());
        let s = segment_of(lt, &frames[0].data);
        assert_eq!(s.payload, PAYLOAD, "link type {lt}");
        assert_eq!(s.cut, 0);
        if is_v6 {
            assert_eq!(
                s.endpoints.src,
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                "link type {lt}"
            );
            assert_eq!(
                (s.endpoints.src_port, s.endpoints.dst_port, s.seq),
                (50001, 3782, 7)
            );
        } else {
            assert_eq!(
                s.endpoints.dst,
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                "link type {lt}"
            );
            assert_eq!(
                (s.endpoints.src_port, s.endpoints.dst_port, s.seq),
                (50000, 102, 1000)
            );
        }
    }
}

#[test]
fn non_tcp_is_skipped_and_unknown_link_type_is_an_error() {
    let arp = ethernet(0x0806, None, &[0; 28]);
    assert_eq!(link::parse(linktype::ETHERNET, &arp).unwrap(), None);
    let mut udp = Vec::new();
    etherparse::PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 1)
        .udp(1, 2)
        .write(&mut udp, b"x")
        .unwrap();
    assert_eq!(link::parse(linktype::RAW, &udp).unwrap(), None);
    assert_eq!(
        link::parse(147, &udp),
        Err(LinkError::UnsupportedLinkType(147))
    );
    assert!(matches!(
        link::parse(linktype::LINUX_SLL2, &[0; 10]),
        Err(LinkError::ShortLinkHeader(_))
    ));
}

#[test]
fn snap_length_truncation_is_reported_not_guessed() {
    let payload = vec![0x55u8; 200];
    let frame = ethernet(0x0800, None, &ipv4_tcp(&payload));
    let keep = 14 + 20 + 20 + 50;
    let file = pcap(
        linktype::ETHERNET,
        false,
        false,
        keep as u32,
        &[(5, 0, &frame[..keep], frame.len() as u32)],
    );
    let (_, frames) = read_all(file);
    assert!(frames[0].truncated());
    assert_eq!(frames[0].original_len as usize, frame.len());
    let s = segment_of(linktype::ETHERNET, &frames[0].data);
    assert_eq!(s.payload.len(), 50);
    assert_eq!(s.cut, 150);
    // Cut inside the TCP header: an error, not a segment.
    let short = &frame[..14 + 20 + 10];
    assert!(link::parse(linktype::ETHERNET, short).is_err());
}

#[test]
fn pcap_byte_orders_and_resolutions() {
    let frame = ipv4_tcp(b"x");
    for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
        let frac = if nanos { 123_456_789 } else { 123_456 };
        let file = pcap(
            linktype::RAW,
            big,
            nanos,
            65535,
            &[(1_700_000_000, frac, &frame, frame.len() as u32)],
        );
        let (_, frames) = read_all(file);
        let want = if nanos {
            1_700_000_000_123_456_789i128
        } else {
            1_700_000_000_123_456_000
        };
        assert_eq!(frames[0].time_ns, Some(want), "big {big} nanos {nanos}");
        assert_eq!(segment_of(linktype::RAW, &frames[0].data).payload, b"x");
    }
}

// ------------------------------------------------------------------ pcapng

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while body.len() % 4 != 0 {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    [
        &kind.to_le_bytes()[..],
        &len.to_le_bytes(),
        &body,
        &len.to_le_bytes(),
    ]
    .concat()
}

fn shb() -> Vec<u8> {
    let mut b = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    block(0x0a0d_0d0a, &b)
}

fn idb(link: u16, snaplen: u32, tsresol: Option<u8>, tsoffset: Option<u64>) -> Vec<u8> {
    let mut b = link.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&snaplen.to_le_bytes());
    if let Some(r) = tsresol {
        b.extend_from_slice(&9u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&[r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        b.extend_from_slice(&14u16.to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&o.to_le_bytes());
    }
    if tsresol.is_some() || tsoffset.is_some() {
        b.extend_from_slice(&[0, 0, 0, 0]);
    }
    block(1, &b)
}

fn epb(iface: u32, ts: u64, data: &[u8], orig: u32) -> Vec<u8> {
    let mut b = iface.to_le_bytes().to_vec();
    b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&orig.to_le_bytes());
    b.extend_from_slice(data);
    block(6, &b)
}

fn spb(orig: u32, data: &[u8]) -> Vec<u8> {
    let mut b = orig.to_le_bytes().to_vec();
    b.extend_from_slice(data);
    block(3, &b)
}

#[test]
fn pcapng_interfaces_with_their_own_resolution_and_link_type() {
    let v4 = ipv4_tcp(b"abc");
    let eth = ethernet(0x0800, None, &v4);
    let cooked = sll2(0x0800, &v4);
    let mut f = shb();
    f.extend(idb(1, 65535, None, None)); // 0: Ethernet, microseconds (default)
    f.extend(idb(101, 65535, Some(9), None)); // 1: raw IP, nanoseconds
    f.extend(idb(276, 65535, Some(0x80 | 10), Some(100))); // 2: SLL2, 2^-10 s, +100 s
    f.extend(epb(0, 1_700_000_000_000_001, &eth, eth.len() as u32));
    f.extend(epb(1, 1_700_000_000_000_000_007, &v4, v4.len() as u32));
    f.extend(epb(2, 1024 * 5 + 512, &cooked, cooked.len() as u32));
    f.extend(spb(eth.len() as u32, &eth));
    let (fmt, frames) = read_all(f);
    assert_eq!(fmt, Format::PcapNg);
    assert_eq!(frames.len(), 4);
    let got: Vec<_> = frames
        .iter()
        .map(|f| (f.number, f.interface, f.link_type, f.time_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 0, 1, Some(1_700_000_000_000_001_000)),
            (2, 1, 101, Some(1_700_000_000_000_000_007)),
            (3, 2, 276, Some(105_500_000_000)),
            (4, 0, 1, None),
        ]
    );
    for fr in &frames {
        assert_eq!(segment_of(fr.link_type, &fr.data).payload, b"abc");
    }
    // The simple packet block keeps its original length, not its padding.
    assert_eq!(frames[3].data.len(), eth.len());
}

#[test]
fn pcapng_new_section_forgets_interfaces() {
    let v4 = ipv4_tcp(b"z");
    let mut f = shb();
    f.extend(idb(101, 0, None, None));
    f.extend(epb(0, 1, &v4, v4.len() as u32));
    f.extend(shb());
    f.extend(epb(0, 2, &v4, v4.len() as u32));
    let mut r = CaptureReader::new(Cursor::new(f)).unwrap();
    assert!(r.next_frame().unwrap().is_ok());
    assert!(matches!(
        r.next_frame(),
        Some(Err(CaptureError::UnknownInterface(0)))
    ));
    assert!(r.next_frame().is_none());
}

#[test]
fn unreadable_inputs() {
    assert!(matches!(
        CaptureReader::new(Cursor::new(b"GIF89a..".to_vec())),
        Err(CaptureError::UnknownFormat(_))
    ));
    assert!(matches!(
        CaptureReader::new(Cursor::new(vec![0xd4, 0xc3])),
        Err(CaptureError::ShortHeader)
    ));
    // A record cut at the end of the file: an error after the good frames, then nothing.
    let frame = ipv4_tcp(b"hello");
    let mut file = pcap(
        linktype::RAW,
        false,
        false,
        65535,
        &[(1, 0, &frame, frame.len() as u32)],
    );
    let good = file.len();
    file.extend_from_within(24..good);
    file.truncate(good + 20);
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    assert!(r.next_frame().unwrap().is_ok());
    assert!(r.next_frame().unwrap().is_err());
    assert!(r.next_frame().is_none());
}
