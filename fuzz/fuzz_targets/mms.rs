#![no_main]
//! MMS: decode arbitrary bytes as an MMSpdu; if it decodes, check the codec round trip and run
//! it through the server (demo model) and the client parser.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert!(
        secmms_mms::fuzzing::mms(data),
        "inconsistent MMS codec round trip"
    );
});
