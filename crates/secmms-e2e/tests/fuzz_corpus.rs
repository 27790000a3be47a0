//! Replays the committed fuzz corpora through the same entry points the fuzz targets use.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() && p.file_name().is_some_and(|n| n != ".keep") {
                f(&std::fs::read(&p).unwrap());
                n += 1;
            }
        }
    }
    n
}

#[test]
fn e2e_secpdu_corpus() {
    let n = replay("e2e_secpdu", secmms_e2e::fuzzing::decode_secpdu);
    println!("replayed {n} e2e_secpdu inputs");
}

#[test]
fn e2e_engine_corpus() {
    let n = replay("e2e_engine", secmms_e2e::fuzzing::engine_sequence);
    println!("replayed {n} e2e_engine inputs");
}

#[test]
fn engine_smoke_inputs() {
    // A handshake, data both ways, mutations, rekey, time moves and release.
    let mut v = vec![0xc0];
    for op in 0u8..40 {
        v.extend_from_slice(&[op, op.wrapping_mul(37), 4, op, 1, 2, 3]);
    }
    secmms_e2e::fuzzing::engine_sequence(&v);
    secmms_e2e::fuzzing::engine_sequence(&[0x81, 3, 0, 0, 3, 1, 0, 2, 2, 2, 5, 7, 9, 0, 0]);
    secmms_e2e::fuzzing::decode_secpdu(&[0, 0x30, 0x80, 0, 0]);
}
