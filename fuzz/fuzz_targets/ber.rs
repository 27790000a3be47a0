#![no_main]
//! Walks arbitrary input as nested BER with the default limits.
use libfuzzer_sys::fuzz_target;
use secmms_ber::{Limits, Reader, Tlv};

fn walk(t: Tlv<'_>) {
    let _ = t.as_i64();
    let _ = t.as_oid();
    let _ = t.as_bit_string();
    if let Ok(children) = t.children() {
        for c in children {
            match c {
                Ok(c) => walk(c),
                Err(_) => break,
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for t in Reader::new(data, Limits::default()) {
        match t {
            Ok(t) => walk(t),
            Err(_) => break,
        }
    }
});
