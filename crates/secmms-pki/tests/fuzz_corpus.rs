//! Replays the `certificate` fuzz corpus (fuzz/corpus/certificate) through the fuzz entry point.

#[test]
fn certificate_corpus_replays_without_panic() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/certificate");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("corpus directory") {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        secmms_pki::fuzzing::certificate(&std::fs::read(&p).unwrap());
        n += 1;
    }
    assert!(n >= 10, "the corpus should hold seeds, found {n}");
}
