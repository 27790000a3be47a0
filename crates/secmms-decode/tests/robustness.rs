//! No panic and bounded work on hostile input: random captures, random segment sequences (with
//! the reassembly invariants of `fuzzing::reassembly`), random stream content — and the fuzz
//! corpus seeds replayed.

use proptest::prelude::*;
use secmms_decode::fuzzing;

fn pcap_header(link: u32) -> Vec<u8> {
    let mut f = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&link.to_le_bytes());
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_capture_files(body in proptest::collection::vec(any::<u8>(), 0..2048), link in prop_oneof![Just(0u32), Just(1), Just(101), Just(113), Just(276)]) {
        let mut f = pcap_header(link);
        f.extend_from_slice(&body);
        fuzzing::capture(&f);
        let mut ng = vec![0x0a, 0x0d, 0x0d, 0x0a];
        ng.extend_from_slice(&body);
        fuzzing::capture(&ng);
    }

    #[test]
    fn random_records_in_a_valid_pcap(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut f = pcap_header(1);
        for r in &records {
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(r);
        }
        fuzzing::capture(&f);
    }

    #[test]
    fn random_ipv4_fragments(frags in proptest::collection::vec((0u16..4, 0u16..8200, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..120), any::<bool>()), 0..80)) {
        // Ethernet + IPv4 (TCP) fragments with few identifications, random offsets, flags and
        // contents: overlaps, oversize, holes and completions; the decoder must not panic.
        let mut f = pcap_header(1);
        for (id, offset, more, payload, tcp_like) in &frags {
            let mut r = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            let total = (20 + payload.len()) as u16;
            r.extend_from_slice(&[0x45, 0]);
            r.extend_from_slice(&total.to_be_bytes());
            r.extend_from_slice(&id.to_be_bytes());
            let flags = (offset & 0x1fff) | if *more { 0x2000 } else { 0 };
            r.extend_from_slice(&flags.to_be_bytes());
            r.extend_from_slice(&[64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
            if *tcp_like && *offset == 0 && payload.len() >= 20 {
                // A plausible TCP header so that completed datagrams reach the reassembler.
                let mut p = payload.clone();
                p[12] = 0x50;
                r.extend_from_slice(&p);
            } else {
                r.extend_from_slice(payload);
            }
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&r);
        }
        fuzzing::capture(&f);
    }

    #[test]
    fn random_ipv6_fragments(frags in proptest::collection::vec((0u32..4, 0u16..8200, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..120), 0u8..4, any::<bool>()), 0..80)) {
        // Ethernet + IPv6 packets with a Fragment header behind 0-3 random extension headers
        // (hop-by-hop, routing, destination options with random lengths, some past the
        // packet), few identifications, random offsets, flags and contents.
        let mut f = pcap_header(1);
        for (id, offset, more, payload, exts, tcp_like) in &frags {
            let mut r = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
            let mut body = Vec::new();
            let kinds = [0u8, 43, 60];
            let mut first = 44;
            for i in (0..*exts).rev() {
                let kind = kinds[usize::from(i) % 3];
                let len = payload.first().copied().unwrap_or(0) % 3;
                let mut h = vec![first, len];
                h.resize(8 * (usize::from(len) + 1), 1);
                h.extend_from_slice(&body);
                body = h;
                first = kind;
            }
            let next = if *tcp_like { 6 } else { 60 };
            let flags = ((offset & 0x1fff) << 3) | u16::from(*more);
            body.extend_from_slice(&[next, 0]);
            body.extend_from_slice(&flags.to_be_bytes());
            body.extend_from_slice(&id.to_be_bytes());
            if *tcp_like && *offset == 0 && payload.len() >= 20 {
                let mut p = payload.clone();
                p[12] = 0x50;
                body.extend_from_slice(&p);
            } else {
                body.extend_from_slice(payload);
            }
            r.extend_from_slice(&[0x60, 0, 0, 0]);
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(&[first, 64]);
            r.extend_from_slice(&[0xfd; 16]);
            r.extend_from_slice(&[0xfe; 16]);
            r.extend_from_slice(&body);
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&r);
        }
        fuzzing::capture(&f);
    }

    #[test]
    fn random_segment_sequences(ops in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::reassembly(&ops);
    }

    #[test]
    fn random_stream_content(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fuzzing::stream(&data);
    }

    #[test]
    fn tpkt_shaped_stream_content(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..16)) {
        // Well-framed TPKT + DT around random session octets reaches the upper layers.
        let mut data = vec![16u8];
        for b in &bodies {
            let len = b.len() + 7;
            data.extend_from_slice(&[3, 0, (len >> 8) as u8, len as u8, 2, 0xf0, 0x80]);
            data.extend_from_slice(b);
        }
        fuzzing::stream(&data);
    }

    #[test]
    fn random_tls_streams(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        fuzzing::tls(&data);
    }

    #[test]
    fn tls12_handshake_then_random_records(records in proptest::collection::vec((any::<bool>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..100)), 0..12)) {
        // A TLS 1.2 ClientHello and ServerHello the fuzz key log has a master secret for, both
        // ChangeCipherSpecs, then records of random type and content: the decryption paths.
        let mut data = tls12_hello_chunks();
        for (to_client, kind, body) in &records {
            let mut rec = vec![*kind % 4 + 20, 3, 3];
            rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
            rec.extend_from_slice(body);
            data.push(u8::from(*to_client));
            data.extend_from_slice(&(rec.len() as u16).to_be_bytes());
            data.extend_from_slice(&rec);
        }
        fuzzing::tls(&data);
    }
}

/// [`fuzzing::tls`] chunks: ClientHello (random [`fuzzing::TLS_FUZZ_RANDOM`]), ServerHello
/// (ECDHE-RSA-AES128-GCM-SHA256), ChangeCipherSpec both ways.
fn tls12_hello_chunks() -> Vec<u8> {
    fn record(dir: u8, kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![dir];
        v.extend_from_slice(&((body.len() + 5) as u16).to_be_bytes());
        v.extend_from_slice(&[kind, 3, 3]);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        v
    }
    fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![kind, 0, (body.len() >> 8) as u8, body.len() as u8];
        v.extend_from_slice(body);
        v
    }
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&fuzzing::TLS_FUZZ_RANDOM);
    ch.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0, 0, 0]);
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[0x77; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0, 0, 0]);
    let mut data = record(0, 22, &handshake(1, &ch));
    data.extend(record(1, 22, &handshake(2, &sh)));
    data.extend(record(0, 20, &[1]));
    data.extend(record(1, 20, &[1]));
    data
}

#[test]
fn corpus_seeds_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for target in [
        "decode_capture",
        "decode_reassembly",
        "decode_stream",
        "decode_tls",
        "decode_e2e",
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            match target {
                "decode_capture" => fuzzing::capture(&data),
                "decode_reassembly" => fuzzing::reassembly(&data),
                "decode_tls" => fuzzing::tls(&data),
                "decode_e2e" => fuzzing::e2e(&data),
                _ => fuzzing::stream(&data),
            }
        }
    }
}
