#![no_main]
use libfuzzer_sys::fuzz_target;

// Placeholder until the owning crate lands its decoder entry point.
fuzz_target!(|_data: &[u8]| {});
