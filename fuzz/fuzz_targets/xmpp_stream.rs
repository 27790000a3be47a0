#![no_main]
use libfuzzer_sys::fuzz_target;

// XMPP stream reader (IEC 62351-4 clause 16 transport): the first octet picks a chunk size, the
// rest is the received stream; chunked and whole feeding must agree.
fuzz_target!(|data: &[u8]| {
    secmms_xmpp::fuzzing::xmpp_stream(data);
});
