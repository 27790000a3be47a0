//! The A-profile authentication value in an AARQ: verified when intact; one flipped byte in the
//! signature or the certificate, or a stale time, is reported at that PDU.

#[path = "common/aprofile.rs"]
mod common;

use std::io::Cursor;

use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::{Item, PduRecord};
use secmms_decode::tcp::ReassemblyLimits;
use secmms_profiles::value::format_time;

fn aarq_record(file: Vec<u8>) -> (PduRecord, usize) {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), true);
    let mut items = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
    }
    d.finish(&mut items);
    let problems = items.iter().filter(|i| i.has_problem()).count();
    let aarq = items
        .into_iter()
        .find_map(|i| match i {
            Item::Pdu(p) if p.layers.contains(&"acse") => Some(*p),
            _ => None,
        })
        .expect("an AARQ record");
    (aarq, problems)
}

#[test]
fn intact_value_verifies() {
    let (r, problems) = aarq_record(common::aarq_capture(|_| {}));
    assert_eq!(r.verified, Some(true), "{r:#?}");
    assert_eq!(problems, 0);
    assert_eq!(
        r.layers,
        vec!["tpkt", "cotp", "ses", "pres", "acse", "aprofile", "mms"]
    );
    assert_eq!(r.pdu, "initiate-RequestPDU");
    assert!(
        r.notes.iter().any(|n| n.contains("signature verified")),
        "{:?}",
        r.notes
    );
    assert!(!r.tree.is_empty());
}

#[test]
fn flipped_signature_byte_fails_at_that_pdu() {
    let (r, problems) = aarq_record(common::aarq_capture(|v| {
        let n = v.signature.len() / 2;
        v.signature[n] ^= 0x01;
    }));
    assert_eq!(r.verified, Some(false));
    assert_eq!(problems, 1);
    assert_eq!(r.frame, 4, "reported at the AARQ's frame");
    assert!(
        r.problems.iter().any(|p| p.contains("signature invalid")),
        "{:?}",
        r.problems
    );
}

#[test]
fn flipped_certificate_key_byte_fails() {
    let (r, _) = aarq_record(common::aarq_capture(|v| {
        // The last octet of the certificate's subjectPublicKey: inside the signed-over key.
        let key = secmms_pki::cert::public_key_of(&v.certificate).unwrap();
        let spki = key.public_key_to_der().unwrap();
        let at = v
            .certificate
            .windows(spki.len())
            .position(|w| w == spki.as_slice())
            .unwrap();
        v.certificate[at + spki.len() - 1] ^= 0x01;
    }));
    assert_eq!(r.verified, Some(false));
    assert!(!r.problems.is_empty());
    assert!(
        r.problems.iter().all(|p| p.starts_with("A-profile:")),
        "{:?}",
        r.problems
    );
}

#[test]
fn stale_time_fails() {
    let (r, _) = aarq_record(common::aarq_capture(|v| {
        v.time = format_time(common::NOW - 3600).into_bytes();
    }));
    assert_eq!(r.verified, Some(false));
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("from the capture time")),
        "{:?}",
        r.problems
    );
}
