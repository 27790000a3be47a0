//! Entry points of the fuzz targets (`fuzz/fuzz_targets/decode_*.rs`), also run as property
//! tests. Each one panics only when an invariant breaks.

use std::io::Cursor;

use crate::capture::CaptureReader;
use crate::decoder::Decoder;
use crate::link::{Endpoints, Segment};
use crate::osi::{FrameInfo, StreamDecoder};
use crate::tcp::{Direction, EventKind, Reassembler, ReassemblyLimits};
use crate::tls::{KeyLog, TlsOutput, TlsStream, MAX_RECORD_LEN};

/// Any octets as a capture file, decoded to the end: no panic, and the reader stops after an
/// error.
pub fn capture(data: &[u8]) {
    let Ok(mut r) = CaptureReader::new(Cursor::new(data.to_vec())) else {
        return;
    };
    let mut d = Decoder::new(
        ReassemblyLimits {
            max_streams: 8,
            max_out_of_order: 4096,
            max_segments: 16,
        },
        true,
    );
    let mut items = Vec::new();
    let mut failed = false;
    while let Some(f) = r.next_frame() {
        assert!(!failed, "a frame after a reader error");
        match f {
            Ok(f) => d.frame(&f, &mut items),
            Err(_) => failed = true,
        }
        items.clear();
    }
    d.finish(&mut items);
}

/// The octet at stream offset `i` in [`reassembly`]: every copy of an offset carries the same
/// value, so what is delivered can be checked.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Octets as segment operations (4 octets each: direction, offset (2), length) fed to a small
/// reassembler after both SYNs. Checks: every offset below the highest one sent is delivered
/// or reported missing exactly once, in order, and every delivered octet is the one sent.
pub fn reassembly(data: &[u8]) {
    let limits = ReassemblyLimits {
        max_streams: 4,
        max_out_of_order: 512,
        max_segments: 8,
    };
    let mut r = Reassembler::new(limits);
    let client = Endpoints {
        src: [10, 0, 0, 1].into(),
        src_port: 40000,
        dst: [10, 0, 0, 2].into(),
        dst_port: 102,
    };
    let isn = [0xffff_fe00u32, 7];
    let mut ev = Vec::new();
    let seg = |dir: usize, seq: u32, syn: bool, payload: Vec<u8>| Segment {
        endpoints: if dir == 0 { client } else { client.reversed() },
        seq,
        syn,
        fin: false,
        rst: false,
        ack: None,
        payload,
        cut: 0,
    };
    for (dir, first) in isn.iter().enumerate() {
        r.push(
            &seg(dir, first.wrapping_sub(1), true, Vec::new()),
            0,
            &mut ev,
        );
    }
    let mut sent_end = [0u64; 2];
    for (n, op) in data.chunks_exact(4).enumerate() {
        let dir = usize::from(op[0] & 1);
        let off = u64::from(u16::from_be_bytes([op[1], op[2]]) % 2048);
        let len = u64::from(op[3] % 200);
        let payload: Vec<u8> = (off..off + len).map(pattern).collect();
        if len > 0 {
            sent_end[dir] = sent_end[dir].max(off + len);
        }
        let s = seg(dir, isn[dir].wrapping_add(off as u32), false, payload);
        r.push(&s, n as u64 + 1, &mut ev);
        assert!(
            r.buffered() <= 2 * 512,
            "out-of-order octets over the limit"
        );
    }
    r.finish(&mut ev);
    let mut pos = [0u64; 2];
    for e in &ev {
        let d = usize::from(e.direction == Direction::ToClient);
        match &e.kind {
            EventKind::Data(b) => {
                for (k, byte) in b.iter().enumerate() {
                    assert_eq!(
                        *byte,
                        pattern(pos[d] + k as u64),
                        "octet at {}",
                        pos[d] + k as u64
                    );
                }
                pos[d] += b.len() as u64;
            }
            EventKind::Gap(n) => {
                assert!(*n > 0, "empty gap");
                pos[d] += n;
            }
            _ => {}
        }
    }
    assert_eq!(pos, sent_end, "every offset covered exactly once");
}

/// Octets as the in-order content of one stream direction, cut into chunks at points taken
/// from the data, through the OSI layers: no panic.
pub fn stream(data: &[u8]) {
    let ep = Endpoints {
        src: [10, 0, 0, 1].into(),
        src_port: 40000,
        dst: [10, 0, 0, 2].into(),
        dst_port: 102,
    };
    let mut s = StreamDecoder::new(0, &ep);
    let mut out = Vec::new();
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for (n, chunk) in data.chunks(step).enumerate() {
        let dir = if n % 7 == 6 {
            Direction::ToClient
        } else {
            Direction::ToServer
        };
        if n % 11 == 10 {
            s.gap(dir, 3);
        }
        let fi = FrameInfo {
            number: n as u64,
            time_ns: Some(0),
        };
        s.data(dir, chunk, fi, true, &mut out);
        out.clear();
    }
}

/// The ClientHello random that [`tls`]'s key log knows: 32 octets of 0x11.
pub const TLS_FUZZ_RANDOM: [u8; 32] = [0x11; 32];

/// Octets as the two directions of one TLS stream, decrypted with a key log that has a TLS 1.2
/// master secret (48 octets of 0x22) and TLS 1.3 secrets for the ClientHello random
/// [`TLS_FUZZ_RANDOM`]. The input is a sequence of chunks: one octet (bit 0: direction), two
/// octets of length (big-endian), then that many octets (the last chunk may be shorter). Checks:
/// no panic, nothing buffered beyond one record, nothing after a problem.
pub fn tls(data: &[u8]) {
    let random = "11".repeat(32);
    let keys = KeyLog::parse(&format!(
        "CLIENT_RANDOM {random} {}\n\
         CLIENT_HANDSHAKE_TRAFFIC_SECRET {random} {}\n\
         SERVER_HANDSHAKE_TRAFFIC_SECRET {random} {}\n\
         CLIENT_TRAFFIC_SECRET_0 {random} {}\n\
         SERVER_TRAFFIC_SECRET_0 {random} {}\n",
        "22".repeat(48),
        "33".repeat(32),
        "44".repeat(32),
        "55".repeat(32),
        "66".repeat(32),
    ))
    .expect("fixed key log parses");
    let mut t = TlsStream::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut stopped = false;
    while rest.len() >= 3 {
        let dir = usize::from(rest[0] & 1);
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let chunk = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[3 + chunk.len()..];
        t.push(dir, chunk, &keys, &mut out);
        assert!(
            t.buffered() < 5 + MAX_RECORD_LEN,
            "more than a record buffered"
        );
        for o in out.drain(..) {
            assert!(!stopped, "output after a problem: {o:?}");
            if matches!(o, TlsOutput::Problem(_)) {
                stopped = true;
            }
        }
    }
}

/// A deterministic RNG for the E2E target (a counter through SHA-256).
struct FuzzRng(u64);
impl secmms_pki::RandomSource for FuzzRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), secmms_pki::CryptoError> {
        for chunk in buf.chunks_mut(32) {
            self.0 += 1;
            let h = secmms_pki::crypto::sha256(&self.0.to_be_bytes());
            chunk.copy_from_slice(&h[..chunk.len()]);
        }
        Ok(())
    }
}

/// The E2E key log and the E2E transfer checks of `secmms decode --e2e-keylog`
/// ([`crate::e2e::E2eTracker`]). The whole input is parsed as a key log (no panic). Then the
/// first octet chooses the protection mode (GCM, HMAC, CBC + GMAC, CBC + HMAC) of a genuine
/// association between two engines that export their keys; each further operation is `[op,
/// arg, len, bytes…]`: one end protects a PrPDU made of `bytes` (the other end receives it),
/// the last genuine transfer is checked with octets flipped, raw `bytes` are checked as a
/// transfer, or the client starts a rekey. Checks: every genuine transfer verifies under the
/// logged keys, and an EncrTransfer decrypts to the PrPDU sent; nothing panics.
pub fn e2e(data: &[u8]) {
    use crate::e2e::{Checked, E2eKeyLog, E2eTracker};
    use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
    use secmms_e2e::{E2eClient, E2eConfig, E2eServer, ModeOffer, SecPdu, SecPduKind};
    let _ = E2eKeyLog::parse(&String::from_utf8_lossy(data));
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let offer = match head % 4 {
        0 => ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
        1 => ModeOffer::NonAe {
            encr: vec![],
            icv: vec![IcvAlg::HmacSha256],
        },
        2 => ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc],
            icv: vec![IcvAlg::Gmac128],
        },
        _ => ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes256Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
    };
    let (cc, sc) = secmms_e2e::doc_support::demo_contexts();
    let cc = secmms_e2e::Context {
        config: std::sync::Arc::new(E2eConfig {
            offer,
            ..(*cc.config).clone()
        }),
        ..cc
    };
    let mut client = E2eClient::new(cc, Box::new(FuzzRng(1)), 1);
    let mut server = E2eServer::new(sc, Box::new(FuzzRng(1 << 32)), 2);
    client.export_keys();
    server.export_keys();
    let now = secmms_e2e::TimeStamp(1_750_000_000_000);
    let limits = secmms_e2e::limits::default_ber_limits();
    let Ok(req) = client.handshake_req(Some(&[0xa8, 0x00]), now) else {
        return;
    };
    let Ok(SecPdu::HandshakeReq(h)) = SecPdu::decode(SecPduKind::HandshakeReq, &req, limits) else {
        panic!("our own HandshakeReq decodes");
    };
    let mut tracker = E2eTracker::default();
    tracker.handshake_req(&h.tbs);
    let established = server.receive(SecPduKind::HandshakeReq, &req, now).is_ok()
        && server
            .accept(Some(&[0xa9, 0x00]), now)
            .is_ok_and(|acc| client.receive(SecPduKind::HandshakeAcc, &acc, now).is_ok());
    assert!(established, "a genuine handshake succeeds");
    let mut log = String::new();
    let mut last: Option<(Direction, SecPduKind, Vec<u8>)> = None;
    let mut steps = 0;
    while rest.len() >= 3 && steps < 32 {
        steps += 1;
        let (op, arg, len) = (rest[0], rest[1], usize::from(rest[2]).min(120));
        rest = &rest[3..];
        let bytes = &rest[..len.min(rest.len())];
        rest = &rest[bytes.len()..];
        let mut pr = vec![0x04, bytes.len() as u8];
        pr.extend_from_slice(bytes);
        let protected = match op % 4 {
            0 => client
                .protect(&pr, now)
                .ok()
                .filter(|(k, b)| server.receive(*k, b, now).is_ok())
                .map(|(k, b)| (Direction::ToServer, k, b)),
            1 => server
                .protect(&pr, now)
                .ok()
                .filter(|(k, b)| client.receive(*k, b, now).is_ok())
                .map(|(k, b)| (Direction::ToClient, k, b)),
            2 => {
                if let Some((dir, k, b)) = &last {
                    let mut v = b.clone();
                    for (i, x) in bytes.chunks(2).enumerate() {
                        let pos = (usize::from(x[0]) * 7 + i * 131) % v.len().max(1);
                        if let Some(o) = v.get_mut(pos) {
                            *o ^= x.get(1).copied().unwrap_or(1);
                        }
                    }
                    let _ = tracker.check(*dir, *k, &v, limits);
                }
                None
            }
            _ => {
                if arg & 2 != 0 {
                    client.start_rekey();
                } else {
                    let dir = if arg & 1 == 0 {
                        Direction::ToServer
                    } else {
                        Direction::ToClient
                    };
                    let kind = if arg & 4 == 0 {
                        SecPduKind::ClearTransfer
                    } else {
                        SecPduKind::EncrTransfer
                    };
                    let _ = tracker.check(dir, kind, bytes, limits);
                }
                None
            }
        };
        let mut fresh = false;
        while let Some(m) = client.poll_key_material() {
            log.push_str(&m.line());
            log.push('\n');
            fresh = true;
        }
        while server.poll_key_material().is_some() {}
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
        if fresh {
            tracker.set_log(std::sync::Arc::new(
                E2eKeyLog::parse(&log).expect("the engine's own lines parse"),
            ));
        }
        if let Some((dir, k, b)) = protected {
            match tracker.check(dir, k, &b, limits) {
                Checked::Verified { plain, .. } => {
                    if k == SecPduKind::EncrTransfer {
                        assert_eq!(plain.as_deref(), Some(&pr[..]), "decrypts to what was sent");
                    }
                }
                other => panic!("a genuine transfer does not verify: {other:?}"),
            }
            last = Some((dir, k, b));
        }
    }
}
