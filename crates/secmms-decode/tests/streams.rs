//! Streams that are not (or stop being) RFC 1006: another protocol on any port is named and
//! passed over without counting as a problem; an MMS stream that loses its framing for good is a
//! problem.

use std::io::Cursor;
use std::net::Ipv4Addr;

use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::Item;
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;

fn decode(file: &PcapFile) -> Vec<Item> {
    let mut r = CaptureReader::new(Cursor::new(file.bytes().to_vec())).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    let mut items = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
    }
    d.finish(&mut items);
    items
}

fn events(items: &[Item]) -> Vec<(&'static str, bool)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Notice(n) if n.event != "stream-open" => Some((n.event, n.problem)),
            _ => None,
        })
        .collect()
}

fn junk(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| b"SSH-2.0-OpenSSH_9.2 and more text "[i % 34])
        .collect()
}

#[test]
fn other_protocol_is_passed_over() {
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 5, 0, 1), 40022),
        (Ipv4Addr::new(10, 5, 0, 2), 22),
        0,
    );
    flow.handshake(&mut file).unwrap();
    for chunk in junk(100_000).chunks(10_000) {
        flow.send(&mut file, true, chunk).unwrap();
    }
    let items = decode(&file);
    assert_eq!(events(&items), vec![("not-rfc1006", false)]);
    assert!(!items.iter().any(|i| i.has_problem()));
}

#[test]
fn mms_stream_losing_its_framing_is_a_problem() {
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 5, 0, 1), 40102),
        (Ipv4Addr::new(10, 5, 0, 2), 102),
        0,
    );
    flow.handshake(&mut file).unwrap();
    let cr = hex::decode("0300001611e00000000100c0010ac2020001c1020001").unwrap();
    flow.send(&mut file, true, &cr).unwrap();
    // An invalid TPKT header, then no TPKT for 100 000 octets.
    for chunk in junk(100_000).chunks(10_000) {
        flow.send(&mut file, true, chunk).unwrap();
    }
    let items = decode(&file);
    let ev = events(&items);
    assert!(ev.contains(&("resync-failed", true)), "{ev:?}");
    assert!(matches!(&items[1], Item::Pdu(p) if p.pdu == "CR"));
}
