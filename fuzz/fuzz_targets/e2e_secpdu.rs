#![no_main]
use libfuzzer_sys::fuzz_target;

// IEC 62351-4 SecPDU decoder: first octet = kind, rest = BER.
fuzz_target!(|data: &[u8]| {
    secmms_e2e::fuzzing::decode_secpdu(data);
});
