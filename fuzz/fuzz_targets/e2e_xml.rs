#![no_main]
use libfuzzer_sys::fuzz_target;

// IEC 62351-4 SecPDU XML decoder (clause 16): the input is the XML text of one SecPDU element
// (the ENV_4 wrapper around it is fuzzed by the xmpp_env target).
fuzz_target!(|data: &[u8]| {
    secmms_e2e::fuzzing::xml_secpdu(data);
});
