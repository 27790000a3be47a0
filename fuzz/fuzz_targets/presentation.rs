//! Fuzz target: `secmms_osi::fuzzing::presentation` (see that function for what is checked).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_osi::fuzzing::presentation(data);
});
