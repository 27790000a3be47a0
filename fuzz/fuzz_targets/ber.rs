#![no_main]
//! Walks arbitrary input as nested BER with the default limits.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| secmms_ber::fuzzing::walk_all(data));
