#![no_main]
use libfuzzer_sys::fuzz_target;

// IEC 62351-4 E2E engine: arbitrary PDU sequences into both roles.
fuzz_target!(|data: &[u8]| {
    secmms_e2e::fuzzing::engine_sequence(data);
});
