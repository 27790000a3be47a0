//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/e2e_*.rs`) and the corpus-replay
//! test (`tests/fuzz_corpus.rs`). Not part of the stable API.

use std::sync::OnceLock;

use secmms_ber::Limits;

use crate::config::{Context, E2eConfig, ModeOffer};
use crate::doc_support::{DemoPki, KeyType, CLIENT_AP, SERVER_AP};
use crate::limits::XmlLimits;
use crate::pdu::{SecPdu, SecPduKind};
use crate::time::TimeStamp;
use crate::{E2eClient, E2eServer, Output};

/// Decoder target: first octet selects the SecPDU kind, the rest is decoded. For a successful
/// decode, encoding is a fixed point: if `encode(p)` decodes to `p2`, then `encode(p2) ==
/// encode(p)`. (Exact equality `p2 == p` does not hold for indefinite-length input, whose signed
/// octets keep their end-of-contents octets.)
pub fn decode_secpdu(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let kind = SecPduKind::ALL[k as usize % SecPduKind::ALL.len()];
    if let Ok(pdu) = SecPdu::decode(kind, rest, Limits::default()) {
        let b1 = pdu.encode();
        if let Ok(p2) = SecPdu::decode(kind, &b1, Limits::default()) {
            assert_eq!(p2.encode(), b1, "encoding is not a fixed point");
        }
    }
}

/// XML decoder target (`fuzz/fuzz_targets/e2e_xml.rs`): the input, as text (lossily converted
/// when it is not UTF-8), is decoded as a SecPDU element (the ENV_4 wrapper around it is the
/// XMPP mapping's, fuzzed by `secmms_profiles::fuzzing::xmpp_env`). For a PDU that decodes:
/// * its canonical XML form encodes and decodes back to itself;
/// * re-encoding it as received (covered characters verbatim) decodes, when it decodes, to the
///   same PDU;
/// * its BER form, when the BER decoder accepts it, decodes to the same PDU.
///
/// No input may panic.
pub fn xml_secpdu(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lim = XmlLimits::default();
    let Ok(pdu) = crate::xml::decode(&text, &lim) else {
        return;
    };
    // The canonical form may be a few characters longer than the input (`<x/>` becomes
    // `<x></x>`, `1` becomes `true`), so only the size limit is lifted for it.
    let roomy = XmlLimits {
        max_len: usize::MAX,
        ..lim
    };
    let canon = crate::xml::to_xml_form(&pdu);
    let s = crate::xml::encode(&canon).expect("the canonical form encodes");
    let back = crate::xml::decode(&s, &roomy).expect("canonical XML decodes");
    assert_eq!(back, canon, "canonical XML is not a fixed point");
    if let Ok(again) = crate::xml::encode(&pdu) {
        if let Ok(p2) = crate::xml::decode(&again, &roomy) {
            assert_eq!(p2, pdu, "verbatim re-encoding changed the PDU");
        }
    }
    let ber = crate::xml::to_ber_form(&pdu);
    if let Ok(p3) = SecPdu::decode(
        pdu.kind(),
        &ber.encode(),
        crate::limits::default_ber_limits(),
    ) {
        assert_eq!(p3, ber, "BER form does not survive a BER round trip");
    }
}

struct Fx {
    pki: DemoPki,
    client: crate::Credentials,
    server: crate::Credentials,
}

fn fx() -> &'static Fx {
    static F: OnceLock<Fx> = OnceLock::new();
    F.get_or_init(|| {
        let pki = DemoPki::new();
        let client = pki.credentials(KeyType::P256, CLIENT_AP, 1);
        let server = pki.credentials(KeyType::P256, SERVER_AP, 2);
        Fx {
            pki,
            client,
            server,
        }
    })
}

/// A deterministic RNG for fuzzing (a counter through SHA-256).
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

fn contexts(mode: u8) -> (Context, Context) {
    let f = fx();
    let offer = match mode % 4 {
        0 => ModeOffer::Ae(vec![crate::alg::AeAlg::Aes128Gcm]),
        1 => ModeOffer::NonAe {
            encr: vec![],
            icv: vec![crate::alg::IcvAlg::HmacSha256],
        },
        2 => ModeOffer::NonAe {
            encr: vec![crate::alg::EncrAlg::Aes128Cbc],
            icv: vec![crate::alg::IcvAlg::Gmac128],
        },
        _ => ModeOffer::NonAe {
            encr: vec![],
            icv: vec![crate::alg::IcvAlg::Gmac256],
        },
    };
    let cfg = E2eConfig {
        offer,
        ..E2eConfig::default()
    };
    (
        f.pki.context(cfg.clone(), f.client.clone()),
        f.pki.context(cfg, f.server.clone()),
    )
}

/// Engine target: arbitrary operation sequences into both roles. The first octet chooses the
/// protection mode and whether a genuine handshake runs first; then each operation is
/// `[op, arg, len, bytes…]`: feed raw bytes as a chosen SecPDU kind to either role, feed a
/// mutated copy of the last genuine PDU, protect and deliver, release, abort, rekey, or move
/// time. No input may panic.
pub fn engine_sequence(data: &[u8]) {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let (cctx, sctx) = contexts(head);
    let mut client = E2eClient::new(cctx, Box::new(FuzzRng(1)), 1);
    let mut server = E2eServer::new(sctx, Box::new(FuzzRng(1 << 32)), 2);
    let mut now = TimeStamp(1_750_000_000_000);
    // Last genuine PDU per direction: (kind, bytes, to_server).
    let mut last: Option<(SecPduKind, Vec<u8>, bool)> = None;
    if head & 0x80 != 0 {
        if let Ok(req) = client.handshake_req(Some(&[0xa8, 0x00]), now) {
            last = Some((SecPduKind::HandshakeReq, req.clone(), true));
            if server.receive(SecPduKind::HandshakeReq, &req, now).is_ok() {
                if let Ok(acc) = server.accept(Some(&[0xa9, 0x00]), now) {
                    last = Some((SecPduKind::HandshakeAcc, acc.clone(), false));
                    if head & 0x40 != 0 {
                        let _ = client.receive(SecPduKind::HandshakeAcc, &acc, now);
                    }
                }
            }
        }
    }
    let mut steps = 0;
    while rest.len() >= 3 && steps < 64 {
        steps += 1;
        let (op, arg, len) = (rest[0], rest[1], rest[2] as usize);
        rest = &rest[3..];
        let take = len.min(rest.len());
        let bytes = &rest[..take];
        rest = &rest[take..];
        let kind = SecPduKind::ALL[arg as usize % SecPduKind::ALL.len()];
        match op % 10 {
            0 => drop(server.receive(kind, bytes, now)),
            1 => drop(client.receive(kind, bytes, now)),
            2 => {
                if let Some((k, b, to_server)) = &last {
                    let mut v = b.clone();
                    if !v.is_empty() {
                        for (i, x) in bytes.chunks(2).enumerate() {
                            let pos = (x[0] as usize * 7 + i * 131) % v.len();
                            v[pos] ^= x.get(1).copied().unwrap_or(1);
                        }
                    }
                    if *to_server {
                        let _ = server.receive(*k, &v, now);
                    } else {
                        let _ = client.receive(*k, &v, now);
                    }
                }
            }
            3 => {
                let pr = [0xa0, 0x03, 0x02, 0x01, arg];
                if arg & 1 == 0 {
                    if let Ok((k, b)) = client.protect(&pr, now) {
                        if matches!(server.receive(k, &b, now), Ok(Output::Data(_)) | Err(_)) {
                            last = Some((k, b, true));
                        }
                    }
                } else if let Ok((k, b)) = server.protect(&pr, now) {
                    let _ = client.receive(k, &b, now);
                    last = Some((k, b, false));
                }
            }
            4 => {
                if let Ok(b) = client.release_req(None, now) {
                    let _ = server.receive(SecPduKind::ReleaseReq, &b, now);
                    last = Some((SecPduKind::ReleaseReq, b, true));
                }
                if let Ok(b) = server.release_rsp(None, now) {
                    let _ = client.receive(SecPduKind::ReleaseRsp, &b, now);
                }
            }
            5 => client.start_rekey(),
            6 => server.request_rekey(),
            7 => now = now.plus_ms((arg as i64 - 64) * 1000 * (len as i64 + 1)),
            8 => {
                if let Ok(b) = client.appl_abort(None, now) {
                    let _ = server.receive(SecPduKind::ApplAbort, &b, now);
                }
            }
            _ => {
                // Replay the last genuine PDU.
                if let Some((k, b, to_server)) = &last {
                    if *to_server {
                        let _ = server.receive(*k, b, now);
                    } else {
                        let _ = client.receive(*k, b, now);
                    }
                }
            }
        }
        while client.poll_event().is_some() {}
        while server.poll_event().is_some() {}
    }
}
