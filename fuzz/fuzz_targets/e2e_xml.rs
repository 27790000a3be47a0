#![no_main]
use libfuzzer_sys::fuzz_target;

// IEC 62351-4 SecPDU XML decoder (clause 16): the input is the XML text of one SecPDU element
// (or of an ENV_4 wrapper).
fuzz_target!(|data: &[u8]| {
    secmms_e2e::fuzzing::xml_secpdu(data);
});
