//! Replays the cargo-fuzz corpus of the `mms` target (`fuzz/corpus/mms/`) through the same
//! entry point the fuzz target uses, so CI catches regressions without cargo-fuzz.

use std::path::Path;

#[test]
fn replay_mms_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mms");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the mms corpus at {} is missing: {e}", dir.display()));
    let mut n = 0;
    for e in entries {
        let p = e.unwrap().path();
        if p.is_file() {
            let data = std::fs::read(&p).unwrap();
            assert!(secmms_mms::fuzzing::mms(&data), "{}", p.display());
            n += 1;
        }
    }
    assert!(n > 0, "the mms corpus at {} holds no inputs", dir.display());
    eprintln!("replayed {n} corpus files");
}
