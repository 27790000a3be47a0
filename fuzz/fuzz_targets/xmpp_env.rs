//! Fuzz target: `secmms_profiles::fuzzing::xmpp_env` — the clause 16 environment checks (ENV_4
//! unwrapping per stanza kind, MMS class of a transfer) and the ENV_4 wrapper round trip.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secmms_profiles::fuzzing::xmpp_env(data);
});
