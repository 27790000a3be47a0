//! Entry point of the `aprofile` fuzz target (`fuzz/fuzz_targets/aprofile.rs`) and of the corpus
//! replay test (`tests/fuzz_corpus.rs`).

use secmms_ber::{Limits, Reader};
use secmms_osi::acse::{Aarq, Apdu};

use crate::aprofile::extract_value;
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
