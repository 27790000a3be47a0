//! The A-profile authentication value in an AARQ: verified when intact; one flipped byte in the
//! signature or the certificate, or a stale time, is reported at that PDU.

#[path = "common/aprofile.rs"]
mod common;

use std::io::Cursor;

use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::{Item, PduRecord};
use secmms_decode::secure::TrustAnchors;
use secmms_decode::tcp::ReassemblyLimits;
use secmms_pki::crypto::{Curve, OsRandom, SigningKey};
use secmms_pki::tooling::{
    create_ca, issue_end_entity, Binding, Ca, EndEntityRequest, SubjectForm, Validity,
};
use secmms_profiles::value::format_time;

fn aarq_record(file: Vec<u8>) -> (PduRecord, usize) {
    aarq_record_with(file, None)
}

fn aarq_record_with(file: Vec<u8>, anchors: Option<TrustAnchors>) -> (PduRecord, usize) {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), true);
    if let Some(a) = anchors {
        d = d.with_trust_anchors(a);
    }
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

fn ca(name: &str) -> Ca {
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let cert_der = create_ca(
        name,
        &key,
        Validity::days_from(common::NOW - 86_400, 30),
        &mut OsRandom,
    )
    .unwrap();
    Ca { cert_der, key }
}

fn anchors(ca: &Ca) -> TrustAnchors {
    let mut v = secmms_pki::OpenSslValidator::new();
    v.add_anchor_der(&ca.cert_der).unwrap();
    TrustAnchors(std::sync::Arc::new(v))
}

#[test]
fn trust_anchors_validate_the_certificate() {
    let issuer = ca("decode CA");
    let stranger = ca("other CA");
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let req = EndEntityRequest {
        binding: Binding::Osi {
            ap_title: "1.1.1.999".parse().unwrap(),
            ae_qualifier: 12,
        },
        subject_form: SubjectForm::Utf8,
        role: None,
        role_aor: String::new(),
        crl_url: None,
        ocsp_url: None,
        validity: Validity::days_from(common::NOW - 3600, 2),
    };
    let cert = issue_end_entity(&req, key.pkey(), &issuer, &mut OsRandom).unwrap();
    let file = common::aarq_capture_with(cert, &key, |_| {});
    let (r, problems) = aarq_record_with(file.clone(), Some(anchors(&issuer)));
    assert_eq!((r.verified, problems), (Some(true), 0), "{:?}", r.problems);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("chain and Annex G validated")),
        "{:?}",
        r.notes
    );
    let (r, problems) = aarq_record_with(file, Some(anchors(&stranger)));
    assert_eq!((r.verified, problems), (Some(false), 1));
    assert!(
        r.problems.iter().any(|p| p.contains("not trusted")),
        "{:?}",
        r.problems
    );
    // A flipped byte in the CA's signature over the certificate: invisible without anchors
    // (the key and the value's signature are intact), refused with them.
    let mut c = issue_end_entity(&req, key.pkey(), &issuer, &mut OsRandom).unwrap();
    let last = c.len() - 1;
    c[last] ^= 0x01;
    let flipped = common::aarq_capture_with(c, &key, |_| {});
    let (r, _) = aarq_record_with(flipped.clone(), None);
    assert_eq!(
        r.verified,
        Some(true),
        "without --ca only the value's own signature is checked"
    );
    let (r, problems) = aarq_record_with(flipped, Some(anchors(&issuer)));
    assert_eq!((r.verified, problems), (Some(false), 1), "{:?}", r.problems);
}
