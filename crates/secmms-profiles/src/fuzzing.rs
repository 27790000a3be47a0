//! Entry points of the fuzz targets of this crate: the `aprofile` target
//! (`fuzz/fuzz_targets/aprofile.rs`, replayed by `tests/fuzz_corpus.rs`) and the decoder of the
//! clause 15 OSI environment ([`native_env`]).

use secmms_ber::{Limits, Reader};
use secmms_osi::acse::{Aarq, Apdu};

use crate::aprofile::extract_value;
use crate::native::wire::{self, EnvApdu, EnvValue};
use crate::value::{format_time, parse_time, MmsAuthenticationValue};

/// Decodes `data` as an MMS-Authentication-value (checking that re-encoding is stable), parses
/// its time, and also reads `data` as an ACSE APDU whose authentication-value goes through the
/// same extraction the hook uses. Never panics on any input except a codec inconsistency.
pub fn aprofile_value(data: &[u8]) {
    if let Ok(v) = MmsAuthenticationValue::decode(data) {
        let again = MmsAuthenticationValue::decode(&v.encode());
        let again = again
            .as_ref()
            .map(|a| (&a.certificate, &a.time, &a.signature));
        assert_eq!(
            again,
            Ok((&v.certificate, &v.time, &v.signature)),
            "re-decode"
        );
        let _ = v.signed_variants();
        if let Ok(t) = parse_time(&v.time) {
            assert_eq!(
                parse_time(format_time(t).as_bytes()),
                Ok(t),
                "time round trip"
            );
        }
    }
    let _ = parse_time(data);
    // The same bytes as an AARQ/AARE carrying an authentication-value.
    let limits = Limits::default();
    if Reader::new(data, limits).read().is_ok() {
        if let Ok(apdu) = Apdu::decode(data, limits) {
            let av = match &apdu {
                Apdu::Aarq(a) => a.calling_authentication_value.as_ref(),
                Apdu::Aare(a) => a.responding_authentication_value.as_ref(),
                _ => None,
            };
            let _ = extract_value(av);
        }
    }
    // And wrapped in a minimal AARQ as the single-ASN1-type of the authentication EXTERNAL.
    let mut aarq = Aarq::new(secmms_osi::presentation::oids::mms_ac());
    aarq.calling_authentication_value = Some(secmms_osi::acse::AuthenticationValue::External(
        secmms_osi::acse::External::single(5, data.to_vec()),
    ));
    let _ = extract_value(aarq.calling_authentication_value.as_ref());
}

/// Decodes `data` through the OSI-environment decoder of clause 15 ([`crate::native::wire`]):
/// the first octet selects the APDU whose user-information it is (AARQ, AARE, ABRT, RLRQ,
/// RLRE), the rest is the `single-ASN1-type` value, also wrapped in an EXTERNAL and checked the
/// way the hook does. A decoded SecPDU must re-encode to the same octets (re-tagging is exact),
/// an osiDiag with a known number likewise; the P-DATA transfer sniffing runs on the same bytes.
/// Never panics on any input except a codec inconsistency.
pub fn native_env(data: &[u8]) {
    const APDUS: [EnvApdu; 5] = [
        EnvApdu::Aarq,
        EnvApdu::Aare,
        EnvApdu::Abrt,
        EnvApdu::Rlrq,
        EnvApdu::Rlre,
    ];
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let apdu = APDUS[k as usize % APDUS.len()];
    let limits = Limits::default();
    let ui = wire::external(5, rest.to_vec());
    let value = wire::user_information_value(&ui, Some(5));
    assert_eq!(value, Ok(rest), "EXTERNAL value");
    match wire::decode(apdu, rest, limits) {
        Ok(EnvValue::SecPdu { kind, pdu }) => {
            assert_eq!(pdu.len(), rest.len(), "re-tagging keeps the length");
            assert_eq!(pdu.get(1..), rest.get(1..), "re-tagging keeps the content");
            let again = wire::encode(apdu, kind, pdu);
            assert_eq!(again.as_deref(), Ok(rest), "re-encoding");
        }
        Ok(EnvValue::OsiDiag(n)) => {
            if let Some(d) = wire::OsiDiagnostic::from_code(n) {
                let canonical = wire::encode_osi_diag(d);
                assert_eq!(
                    wire::decode(apdu, &canonical, limits),
                    Ok(EnvValue::OsiDiag(n)),
                    "osiDiag round trip"
                );
            }
        }
        Err(e) => {
            let _ = (e.event(), e.osi_diagnostic());
        }
    }
    let _ = wire::transfer_kind(rest, limits);
}

/// Fuzz entry point of the clause 16 environment checks: the first octet picks the stanza kind
/// (iq get/set/result/error or message), the rest is the raw ENV_4 element handed to
/// [`crate::xmpp::receive`]; the same octets are also classified as an MMS PDU
/// ([`crate::xmpp::mms_class`]) and checked against the stanza ([`crate::xmpp::check_transfer_class`]).
/// The text is also unwrapped ([`crate::xmpp::env_unwrap`]) and what comes out decoded; when the
/// text is itself a SecPDU element that decodes, its canonical form must survive the wrapper
/// unchanged.
pub fn xmpp_env(data: &[u8]) {
    use crate::xmpp::{
        check_transfer_class, env_unwrap, env_wrap, mms_class, receive, IqType, StanzaKind,
        XmlLimits,
    };
    use secmms_e2e::xml;
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let kind = match sel % 5 {
        0 => StanzaKind::Iq(IqType::Get),
        1 => StanzaKind::Iq(IqType::Set),
        2 => StanzaKind::Iq(IqType::Result),
        3 => StanzaKind::Iq(IqType::Error),
        _ => StanzaKind::Message,
    };
    let _ = mms_class(rest);
    let _ = check_transfer_class(kind, rest);
    let text = String::from_utf8_lossy(rest);
    let lim = XmlLimits::default();
    if let Ok(r) = receive(kind, &text, &lim) {
        // What was taken out is a slice of the input.
        assert!(text.contains(r.secpdu));
    }
    if let Ok((_, inner)) = env_unwrap(&text, &lim) {
        let _ = xml::decode(inner, &lim);
    }
    if let Ok(pdu) = xml::decode(&text, &lim) {
        // The canonical form may be a little longer than the input: only the size limit goes.
        let roomy = XmlLimits {
            max_len: usize::MAX,
            ..lim
        };
        let canon = xml::encode(&xml::to_xml_form(&pdu)).expect("the canonical form encodes");
        let wrapped = env_wrap(&canon);
        let unwrapped = env_unwrap(&wrapped, &roomy).expect("the wrapper unwraps");
        assert_eq!(
            unwrapped,
            (pdu.kind(), canon.as_str()),
            "the wrapper changed the PDU"
        );
    }
}
