//! Fuzz target: `secmms_pki::fuzzing::certificate` — a peer's certificate (Annex G facts,
//! the x509-parser path for the OBJECT IDENTIFIER subject form, PkiPath, validation).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_pki::fuzzing::certificate(data);
});
