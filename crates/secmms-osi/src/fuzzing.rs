//! Entry points of the fuzz targets (`fuzz/fuzz_targets/{tpkt_cotp,session,presentation,acse}.rs`)
//! and of the corpus replay test (`tests/fuzz_corpus.rs`). Each takes arbitrary bytes, must never
//! panic, and checks that re-encoding what was decoded is stable (encode ∘ decode is idempotent).

use crate::acse::Apdu;
use crate::cotp::{Reassembler, Tpdu};
use crate::limits::OsiLimits;
use crate::presentation::{AbortPpdu, CpType, CpaPpdu, CprPpdu, UserData};
use crate::session::Spdu;
use crate::tpkt::TpktDecoder;
use crate::{Association, OsiConfig, OsiEvent};

/// TPKT stream + TP0 decoding, then the whole association state machine in both roles.
pub fn tpkt_cotp(data: &[u8]) {
    let limits = OsiLimits::default();
    let mut d = TpktDecoder::new(65_535);
    let mut r = Reassembler::new(limits.max_tsdu);
    d.push(data);
    while let Ok(Some(t)) = d.next_tpdu() {
        if let Ok(tpdu) = Tpdu::decode(&t, limits.max_tsel_len) {
            if let Ok(b) = tpdu.encode() {
                let again = Tpdu::decode(&b, limits.max_tsel_len);
                assert_eq!(again.as_ref().ok(), Some(&tpdu), "TPDU re-decode");
            }
            if let Tpdu::Dt(dt) = tpdu {
                let _ = r.push(dt);
            }
        }
    }
    // Both roles fed the bytes in pieces, reacting to events between pieces like an
    // application would (accept, answer a release), so the data phase is reached too.
    let piece = 1 + data.first().map_or(0, |b| *b as usize);
    let mut server = Association::responder(OsiConfig::server_default());
    drive(&mut server, data, piece);
    let mut client = Association::initiator(OsiConfig::default());
    let _ = client.connect(vec![0xA8, 0x00]);
    drive(&mut client, data, piece);
    let _ = client.send_data(&[0xA0, 0x00]);
    let _ = client.release(None);
    client.transport_closed();
}

fn drive(a: &mut Association, data: &[u8], piece: usize) {
    for chunk in data.chunks(piece) {
        let _ = a.handle_input(chunk);
        let _ = a.poll_transmit();
        while let Some(ev) = a.poll_event() {
            let _ = match ev {
                OsiEvent::AssociateIndication { .. } => a.accept(vec![0xA9, 0x00]),
                OsiEvent::ReleaseIndication { .. } => a.release_response(None),
                OsiEvent::Data { .. } => a.send_data(&[0xA1, 0x00]),
                _ => Ok(()),
            };
        }
    }
    let _ = a.abort();
    let _ = a.poll_transmit();
}

/// Session SPDU decoding and re-encoding.
pub fn session(data: &[u8]) {
    if let Ok(s) = Spdu::decode(data, OsiLimits::default().max_ssel_len) {
        if let Ok(b) = s.encode() {
            let s2 = Spdu::decode(&b, OsiLimits::default().max_ssel_len);
            let s2 = s2.unwrap_or_else(|e| panic!("re-decode failed: {e}"));
            assert_eq!(s2.encode().ok(), Some(b), "SPDU encoding not stable");
        }
    }
}

/// Presentation PPDU and user-data decoding and re-encoding.
pub fn presentation(data: &[u8]) {
    let l = OsiLimits::default();
    if let Ok(p) = CpType::decode(data, l.ber, l.max_psel_len) {
        let b = p.encode();
        let p2 = CpType::decode(&b, l.ber, l.max_psel_len);
        assert_eq!(p2.map(|p| p.encode()).ok(), Some(b), "CP-type");
    }
    if let Ok(p) = CpaPpdu::decode(data, l.ber, l.max_psel_len) {
        let b = p.encode();
        let p2 = CpaPpdu::decode(&b, l.ber, l.max_psel_len);
        assert_eq!(p2.map(|p| p.encode()).ok(), Some(b), "CPA-PPDU");
    }
    if let Ok(p) = CprPpdu::decode(data, l.ber, l.max_psel_len) {
        let b = p.encode();
        let p2 = CprPpdu::decode(&b, l.ber, l.max_psel_len);
        assert_eq!(p2.map(|p| p.encode()).ok(), Some(b), "CPR-PPDU");
    }
    if let Ok(p) = AbortPpdu::decode(data, l.ber) {
        let b = p.encode();
        let p2 = AbortPpdu::decode(&b, l.ber);
        assert_eq!(p2.map(|p| p.encode()).ok(), Some(b), "Abort-type");
    }
    if let Ok(p) = UserData::decode(data, l.ber) {
        let b = p.encode();
        let p2 = UserData::decode(&b, l.ber);
        assert_eq!(p2.map(|p| p.encode()).ok(), Some(b), "User-data");
    }
}

/// ACSE APDU decoding and re-encoding.
pub fn acse(data: &[u8]) {
    let l = OsiLimits::default();
    if let Ok(a) = Apdu::decode(data, l.ber) {
        let b = a.encode();
        let a2 = Apdu::decode(&b, l.ber);
        assert_eq!(
            a2.map(|a| a.encode()).ok(),
            Some(b),
            "APDU encoding not stable"
        );
    }
}
