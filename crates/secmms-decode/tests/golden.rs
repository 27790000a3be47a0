//! The golden capture `shared/vectors/open61850-client-to-iec61850-server.pcapng` (open61850
//! client, PyPI iec61850 server, port 102): decoded cleanly, and invokeIDs, services and object
//! names agree with tshark's MMS dissector frame by frame. Then the same traffic re-written as
//! a capture that starts in the middle of an association, and one with a segment missing.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::link;
use secmms_decode::mms::confirmed_service_name;
use secmms_decode::record::{Item, PduRecord};
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;
use secmms_testkit::{ready_or_skip, tshark_ready};

fn golden() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors/open61850-client-to-iec61850-server.pcapng");
    let ok = p.exists();
    ready_or_skip(
        ok,
        "the golden capture is missing in CI",
        "golden capture not found: skipped",
    )
    .then_some(p)
}

fn decode(bytes: Vec<u8>) -> Vec<Item> {
    let mut r = CaptureReader::new(Cursor::new(bytes)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    let mut items = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
    }
    d.finish(&mut items);
    items
}

fn pdus(items: &[Item]) -> Vec<&PduRecord> {
    items
        .iter()
        .filter_map(|i| {
            if let Item::Pdu(p) = i {
                Some(&**p)
            } else {
                None
            }
        })
        .collect()
}

fn problems(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.has_problem())
        .map(|i| i.json())
        .collect()
}

/// What tshark says about each MMS frame: (invokeID, service, objects).
type Row = (Option<u32>, Option<String>, Vec<String>);

fn tshark_rows(path: &PathBuf) -> BTreeMap<u64, Row> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-Y",
            "mms",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
        ])
        .args([
            "-e",
            "frame.number",
            "-e",
            "mms.invokeID",
            "-e",
            "mms.confirmedServiceRequest",
        ])
        .args([
            "-e",
            "mms.confirmedServiceResponse",
            "-e",
            "mms.domainId",
            "-e",
            "mms.itemId",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let list = |s: &str| -> Vec<String> {
            s.split('|')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let frame: u64 = f[0].parse().unwrap();
        let id = f[1]
            .split('|')
            .next()
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap());
        let svc_num = [f[2], f[3]].into_iter().find(|s| !s.is_empty());
        let svc = svc_num.map(|n| {
            confirmed_service_name(n.split('|').next().unwrap().parse().unwrap())
                .unwrap()
                .to_string()
        });
        let objects = list(f[4])
            .into_iter()
            .zip(list(f[5]))
            .map(|(d, i)| format!("{d}/{i}"))
            .collect();
        rows.insert(frame, (id, svc, objects));
    }
    rows
}

#[test]
fn golden_capture_agrees_with_tshark() {
    let Some(path) = golden() else { return };
    let items = decode(std::fs::read(&path).unwrap());
    assert!(problems(&items).is_empty(), "{:#?}", problems(&items));
    let ours: BTreeMap<u64, Row> = pdus(&items)
        .into_iter()
        .filter(|p| p.layers.contains(&"mms"))
        .map(|p| (p.frame, (p.invoke_id, p.service.clone(), p.objects.clone())))
        .collect();
    assert!(ours.len() > 1000, "only {} MMS PDUs decoded", ours.len());
    if !tshark_ready(
        "tshark missing in CI",
        "tshark not installed: comparison skipped",
    ) {
        return;
    }
    let theirs = tshark_rows(&path);
    assert_eq!(ours.len(), theirs.len(), "number of MMS PDUs");
    for (frame, row) in &theirs {
        assert_eq!(ours.get(frame), Some(row), "frame {frame}");
    }
}

/// The TCP payloads of the golden capture in order: (to_server, octets).
fn payloads(path: &PathBuf) -> Vec<(bool, Vec<u8>)> {
    let mut r = CaptureReader::new(Cursor::new(std::fs::read(path).unwrap())).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.next_frame() {
        let f = f.unwrap();
        let s = link::parse(f.link_type, &f.data).unwrap().unwrap();
        // Only the first connection (client port 43048).
        if !s.payload.is_empty() && (s.endpoints.src_port == 43048 || s.endpoints.dst_port == 43048)
        {
            out.push((s.endpoints.dst_port == 102, s.payload));
        }
    }
    out
}

#[test]
fn capture_started_mid_association_resynchronises_and_says_what_it_assumed() {
    let Some(path) = golden() else { return };
    let all = payloads(&path);
    // all[0..4] are CR, CC, AARQ, AARE; all[4] the first read request. Start inside it.
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 1, 1, 1), 50000),
        (Ipv4Addr::new(10, 1, 1, 2), 102),
        0,
    );
    flow.send(&mut file, all[4].0, &all[4].1[5..]).unwrap();
    for (to_server, p) in &all[5..] {
        flow.send(&mut file, *to_server, p).unwrap();
    }
    let items = decode(file.bytes().to_vec());
    assert!(problems(&items).is_empty(), "{:#?}", problems(&items));
    let resync: Vec<_> = items
        .iter()
        .filter(|i| matches!(i, Item::Notice(n) if n.event == "resync"))
        .collect();
    assert_eq!(resync.len(), 1, "{resync:?}");
    let p = pdus(&items);
    // The partial request is lost; its response (invokeID 1) is the first PDU.
    assert_eq!(p[0].invoke_id, Some(1));
    assert_eq!(p[0].pdu, "confirmed-ResponsePDU");
    assert!(
        p[0].notes
            .iter()
            .any(|n| n.contains("context 3 assumed MMS")),
        "{:?}",
        p[0].notes
    );
    assert_eq!(p.len(), all.len() - 5);
    // Requests and responses keep their pairing: 2, 2, 3, 3, ...
    let ids: Vec<_> = p
        .iter()
        .skip(1)
        .take(6)
        .map(|r| r.invoke_id.unwrap())
        .collect();
    assert_eq!(ids, vec![2, 2, 3, 3, 4, 4]);
}

#[test]
fn missing_segment_is_a_gap_and_decoding_goes_on() {
    let Some(path) = golden() else { return };
    let all = payloads(&path);
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 1, 1, 1), 50000),
        (Ipv4Addr::new(10, 1, 1, 2), 102),
        0,
    );
    flow.handshake(&mut file).unwrap();
    let dropped = 20;
    for (i, (to_server, p)) in all.iter().enumerate() {
        if i == dropped {
            flow.next(*to_server, p).unwrap(); // never written
        } else {
            flow.send(&mut file, *to_server, p).unwrap();
        }
    }
    let items = decode(file.bytes().to_vec());
    let gaps: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Notice(n) if n.event == "gap" => Some(n.detail.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        gaps,
        vec![format!("{} octets not captured", all[dropped].1.len())]
    );
    let p = pdus(&items);
    assert_eq!(p.len(), all.len() - 1);
    // Only the gap is a problem; the PDU after it decodes.
    assert_eq!(problems(&items).len(), 1);
    // The peer's acknowledgment reveals the hole at once: every PDU keeps its frame.
    assert!(p.iter().all(|r| r.frame > 0 && r.time.is_some()));
}
