//! Fuzz target: `secmms_profiles::fuzzing::native_env` — the clause 15 OSI-environment codec of
//! native mode: the first octet picks the APDU (AARQ, AARE, ABRT, RLRQ, RLRE), the rest is the
//! `single-ASN1-type` value of its EXTERNAL (SecPDU re-tagging, osiDiag, P-DATA transfer sniffing).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_profiles::fuzzing::native_env(data);
});
