use super::*;
use std::net::{IpAddr, Ipv4Addr};

fn ep(to_server: bool) -> Endpoints {
    let c = Endpoints {
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        src_port: 40000,
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        dst_port: 102,
    };
    if to_server {
        c
    } else {
        c.reversed()
    }
}

fn seg(to_server: bool, seq: u32, data: &[u8]) -> Segment {
    Segment {
        endpoints: ep(to_server),
        seq,
        syn: false,
        fin: false,
        rst: false,
        ack: None,
        payload: data.to_vec(),
        cut: 0,
    }
}

fn syn(to_server: bool, seq: u32) -> Segment {
    Segment {
        syn: true,
        ..seg(to_server, seq, &[])
    }
}

/// Runs segments through a reassembler and returns, per direction, the delivered octets with
/// gaps shown as `?` per missing octet, plus all events.
fn run(limits: ReassemblyLimits, segs: &[Segment]) -> ([Vec<u8>; 2], Vec<StreamEvent>) {
    let mut r = Reassembler::new(limits);
    let mut ev = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        r.push(s, i as u64 + 1, &mut ev);
    }
    r.finish(&mut ev);
    let mut out = [Vec::new(), Vec::new()];
    for e in &ev {
        let d = &mut out[e.direction.index()];
        match &e.kind {
            EventKind::Data(b) => d.extend_from_slice(b),
            EventKind::Gap(n) => d.extend(std::iter::repeat(b'?').take(*n as usize)),
            _ => {}
        }
    }
    (out, ev)
}

fn count(ev: &[StreamEvent], f: impl Fn(&EventKind) -> Option<usize>) -> usize {
    ev.iter().filter_map(|e| f(&e.kind)).sum()
}

#[test]
fn in_order_both_directions_with_handshake() {
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[
            syn(true, 100),
            syn(false, 5000),
            seg(true, 101, b"hello "),
            seg(false, 5001, b"HI"),
            seg(true, 107, b"world"),
        ],
    );
    assert_eq!(out[0], b"hello world");
    assert_eq!(out[1], b"HI");
    assert!(
        matches!(ev[0].kind, EventKind::Opened { handshake: true, client } if client == ep(true))
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Opened { .. }))
            .count(),
        1
    );
}

#[test]
fn out_of_order_is_put_back_in_order() {
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[
            syn(true, 0),
            seg(true, 7, b"CCC"),
            seg(true, 4, b"BBB"),
            seg(true, 1, b"AAA"),
        ],
    );
    assert_eq!(out[0], b"AAABBBCCC");
    assert_eq!(
        count(&ev, |k| matches!(k, EventKind::Gap(_)).then_some(1)),
        0
    );
}

#[test]
fn retransmission_and_overlap() {
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[
            syn(true, 0),
            seg(true, 1, b"abcd"),
            seg(true, 1, b"abcd"),  // full retransmission
            seg(true, 3, b"cdefg"), // front overlaps delivered data
            seg(true, 12, b"LMN"),  // waits
            seg(true, 11, b"KLxy"), // overlaps the waiting segment: "LMN" kept from the first
            seg(true, 8, b"hij"),   // fills the hole
        ],
    );
    // "KLxy" (stream offsets 10..14) over the waiting "LMN" (11..14): K is kept, "Lxy" dropped.
    assert_eq!(out[0], b"abcdefghijKLMN");
    assert_eq!(
        count(&ev, |k| if let EventKind::Retransmission(n) = k {
            Some(*n)
        } else {
            None
        }),
        4 + 2
    );
    assert_eq!(
        count(&ev, |k| if let EventKind::Overlap(n) = k {
            Some(*n)
        } else {
            None
        }),
        3
    );
}

#[test]
fn gap_at_end_of_capture_is_reported_with_its_size() {
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[syn(true, 0), seg(true, 1, b"ab"), seg(true, 10, b"xyz")],
    );
    assert_eq!(out[0], b"ab???????xyz");
    let gaps: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let EventKind::Gap(n) = e.kind {
                Some((n, e.frame))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(gaps, vec![(7, 0)]);
}

#[test]
fn limits_turn_a_hole_into_a_gap_early() {
    let limits = ReassemblyLimits {
        max_out_of_order: 8,
        ..Default::default()
    };
    let (out, ev) = run(
        limits,
        &[
            syn(true, 0),
            seg(true, 1, b"a"),
            seg(true, 5, b"eeeee"),
            seg(true, 10, b"jjjjj"),
            seg(true, 2, b"bcd"),
        ],
    );
    // The second waiting segment would exceed 8 octets: the hole (3 octets) becomes a gap at
    // frame 4, and the late "bcd" is then a retransmission.
    assert_eq!(out[0], b"a???eeeeejjjjj");
    let gap = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::Gap(_)))
        .unwrap();
    assert_eq!((gap.kind.clone(), gap.frame), (EventKind::Gap(3), 4));
    let limits = ReassemblyLimits {
        max_segments: 1,
        ..Default::default()
    };
    let (out, _) = run(
        limits,
        &[syn(true, 0), seg(true, 3, b"c"), seg(true, 5, b"e")],
    );
    assert_eq!(out[0], b"??c?e");
}

#[test]
fn sequence_numbers_wrap() {
    let (out, _) = run(
        ReassemblyLimits::default(),
        &[
            syn(true, u32::MAX - 2),
            seg(true, u32::MAX - 1, b"ab"),
            seg(true, 2, b"ef"),
            seg(true, 0, b"cd"),
        ],
    );
    assert_eq!(out[0], b"abcdef");
}

#[test]
fn capture_started_mid_stream_picks_the_higher_port_as_client() {
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[seg(false, 77, b"resp"), seg(true, 9, b"req")],
    );
    assert_eq!(out, [b"req".to_vec(), b"resp".to_vec()]);
    assert!(
        matches!(ev[0].kind, EventKind::Opened { handshake: false, client } if client == ep(true))
    );
}

#[test]
fn stream_table_is_bounded() {
    let limits = ReassemblyLimits {
        max_streams: 2,
        ..Default::default()
    };
    let mut r = Reassembler::new(limits);
    let mut ev = Vec::new();
    for port in 0..5u16 {
        let mut s = seg(true, 1, b"x");
        s.endpoints.src_port = 40000 + port;
        r.push(&s, u64::from(port) + 1, &mut ev);
        assert!(r.open_streams() <= 2);
    }
    assert_eq!(
        ev.iter().filter(|e| e.kind == EventKind::Evicted).count(),
        3
    );
    // The one evicted first is the one idle longest: stream 0.
    assert_eq!(
        ev.iter()
            .find(|e| e.kind == EventKind::Evicted)
            .unwrap()
            .stream,
        0
    );
}

#[test]
fn new_syn_on_a_used_tuple_is_a_new_stream() {
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut ev = Vec::new();
    for (i, s) in [
        syn(true, 0),
        seg(true, 1, b"a"),
        syn(true, 900),
        seg(true, 901, b"b"),
    ]
    .iter()
    .enumerate()
    {
        r.push(s, i as u64, &mut ev);
    }
    let data: Vec<_> = ev
        .iter()
        .filter_map(|e| {
            if let EventKind::Data(d) = &e.kind {
                Some((e.stream, d.clone()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(data, vec![(0, b"a".to_vec()), (1, b"b".to_vec())]);
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == EventKind::Replaced && e.stream == 0)
            .count(),
        1
    );
}

#[test]
fn rst_closes_once() {
    let mut rst = seg(false, 0, b"");
    rst.rst = true;
    let (_, ev) = run(
        ReassemblyLimits::default(),
        &[syn(true, 0), rst.clone(), rst],
    );
    assert_eq!(
        ev.iter()
            .filter(|e| e.kind == EventKind::Closed(CloseReason::Rst))
            .count(),
        1
    );
}

#[test]
fn an_acknowledged_hole_is_a_gap_at_once() {
    let mut ack = seg(false, 0, b"");
    ack.ack = Some(12);
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[
            syn(true, 0),
            seg(true, 1, b"ab"),
            seg(true, 6, b"fgh"),
            ack.clone(),
            seg(true, 9, b"ijk"),
        ],
    );
    assert_eq!(out[0], b"ab???fghijk");
    let gap = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::Gap(_)))
        .unwrap();
    assert_eq!((gap.frame, gap.direction), (4, Direction::ToServer));
    // An acknowledgment below the hole changes nothing.
    ack.ack = Some(2);
    let (_, ev) = run(
        ReassemblyLimits::default(),
        &[syn(true, 0), seg(true, 1, b"ab"), seg(true, 6, b"f"), ack],
    );
    let gap = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::Gap(_)))
        .unwrap();
    assert_eq!(gap.frame, 0);
}

#[test]
fn syn_ack_seen_first_still_names_the_client() {
    let mut syn_ack = syn(false, 5000);
    syn_ack.ack = Some(101);
    let (out, ev) = run(
        ReassemblyLimits::default(),
        &[
            syn_ack,
            syn(true, 100),
            seg(true, 101, b"req"),
            seg(false, 5001, b"rsp"),
        ],
    );
    assert!(
        matches!(ev[0].kind, EventKind::Opened { handshake: true, client } if client == ep(true))
    );
    assert_eq!(out, [b"req".to_vec(), b"rsp".to_vec()]);
}
