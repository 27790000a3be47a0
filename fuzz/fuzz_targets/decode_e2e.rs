//! Fuzz target: `secmms_decode::fuzzing::e2e` (see that function for what is checked).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_decode::fuzzing::e2e(data);
});
