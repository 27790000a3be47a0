//! Fuzz target: `secmms_decode::fuzzing::tls` (see that function for what is checked).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_decode::fuzzing::tls(data);
});
