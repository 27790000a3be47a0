//! Property tests of the XML encoding (clause 16): every SecPDU kind, with arbitrary field
//! values, converts BER ⇄ XML without loss, and the XML decoder never panics.

mod strategies;

use proptest::prelude::*;
use secmms_e2e::limits::XmlLimits;
use secmms_e2e::pdu::{SecPdu, SecPduKind};
use secmms_e2e::xml;
use strategies::{any_pdu, pdu_of};

fn lim() -> XmlLimits {
    XmlLimits::default()
}

/// The whole round trip for one BER-form PDU.
fn check_round_trip(pdu: &SecPdu) -> Result<(), TestCaseError> {
    let ber = pdu.encode();
    let as_xml = xml::to_xml_form(pdu);
    let text = xml::encode(&as_xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back =
        xml::decode(&text, &lim()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    // decode(encode_xml(pdu)) == pdu (in XML form: same values, covered characters as sent)…
    prop_assert_eq!(&back, &as_xml);
    prop_assert_eq!(back.kind(), pdu.kind());
    // …and converting back to BER gives the very same value and octets.
    let again = xml::to_ber_form(&back);
    prop_assert_eq!(&again, pdu);
    prop_assert_eq!(again.encode(), ber.clone());
    // XML is a fixed point too, and the decoder agrees with the kind-checked entry point.
    prop_assert_eq!(
        xml::encode(&back).map_err(|e| TestCaseError::fail(e.to_string()))?,
        text.clone()
    );
    prop_assert_eq!(
        xml::decode_as(pdu.kind(), &text, &lim()).ok(),
        Some(as_xml.clone())
    );
    // A PDU decoded from its BER octets converts to the same XML.
    let from_ber = SecPdu::decode(pdu.kind(), &ber, Default::default())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        xml::encode(&xml::to_xml_form(&from_ber)).ok(),
        Some(text.clone())
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_secpdu_round_trips_ber_xml(pdu in any_pdu()) {
        check_round_trip(&pdu)?;
    }

    #[test]
    fn xml_decoder_never_panics_on_mutations(pdu in any_pdu(), pos in any::<usize>(), c in any::<char>()) {
        let text = xml::encode(&xml::to_xml_form(&pdu)).unwrap();
        let mut chars: Vec<char> = text.chars().collect();
        let i = pos % chars.len();
        chars[i] = c;
        let m: String = chars.into_iter().collect();
        let _ = xml::decode(&m, &lim());
        let cut = &text[..text.char_indices().nth(pos % text.len()).map_or(0, |(i, _)| i)];
        prop_assert!(xml::decode(cut, &lim()).is_err());
    }

    #[test]
    fn xml_decoder_never_panics_on_noise(data in "(<[a-zA-Z:]{0,8}( xmlns(:[a-z]{1,3})?=\"[^\"]{0,40}\")?/?>|</[a-zA-Z:]{0,8}>|[ -~]{0,10}|&[a-z#0-9]{0,5};){0,40}") {
        let _ = xml::decode(&data, &lim());
    }
}

/// Structural edits for the fuzz-entry property below.
const SNIPPETS: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    " ",
    "\n",
    "&amp;",
    "&#x41;",
    "<![CDATA[",
    "]]>",
    "<!--c-->",
    "xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"",
    "e:",
    "1",
    "0",
    "true",
    "=",
    "<x/>",
    "+",
];

fn mutate(text: &str, ops: &[(u8, usize, usize)]) -> String {
    let mut v: Vec<char> = text.chars().collect();
    for &(op, a, b) in ops {
        if v.is_empty() {
            break;
        }
        let i = a % v.len();
        match op % 4 {
            0 => v[i] = char::from(b as u8),
            1 => {
                let end = (i + b % 16).min(v.len());
                v.drain(i..end);
            }
            2 => {
                let snip = SNIPPETS[b % SNIPPETS.len()];
                v.splice(i..i, snip.chars());
            }
            _ => {
                let end = (i + b % 64).min(v.len());
                let dup: Vec<char> = v[i..end].to_vec();
                v.splice(end..end, dup);
            }
        }
    }
    v.into_iter().collect()
}

proptest! {
    // `XML_EDIT_CASES=100000` for a longer run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("XML_EDIT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
    ))]

    /// The invariants the `e2e_xml` fuzz target asserts hold on edited genuine PDUs (a
    /// stand-in for coverage-guided fuzzing where cargo-fuzz is not installed).
    #[test]
    fn fuzz_entry_holds_on_edited_pdus(pdu in any_pdu(), ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..4)) {
        let text = xml::encode(&xml::to_xml_form(&pdu)).unwrap();
        secmms_e2e::fuzzing::xml_secpdu(mutate(&text, &ops).as_bytes());
    }
}

/// Every kind explicitly (the uniform draw above could, in principle, miss one).
#[test]
fn each_kind_round_trips() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for kind in SecPduKind::ALL {
        for _ in 0..40 {
            let pdu = pdu_of(kind).new_tree(&mut runner).unwrap().current();
            assert_eq!(pdu.kind(), kind);
            check_round_trip(&pdu).unwrap();
        }
    }
}
