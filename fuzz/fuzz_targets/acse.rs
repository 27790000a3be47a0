//! Fuzz target: `secmms_osi::fuzzing::acse` (see that function for what is checked).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_osi::fuzzing::acse(data);
});
