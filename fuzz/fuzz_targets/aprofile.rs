//! Fuzz target: `secmms_profiles::fuzzing::aprofile_value` — the MMS-Authentication-value
//! decoder, the lenient GeneralizedTime parser and the extraction from an ACSE APDU.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_profiles::fuzzing::aprofile_value(data);
});
