//! Replays the committed fuzz corpora (`fuzz/corpus/{tpkt_cotp,session,presentation,acse}`)
//! through the same entry points the fuzz targets call, so CI catches regressions.

use std::path::PathBuf;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let p = e.unwrap().path();
        if p.is_file() {
            let data = std::fs::read(&p).unwrap();
            f(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn tpkt_cotp_corpus() {
    assert!(replay("tpkt_cotp", secmms_osi::fuzzing::tpkt_cotp) > 0);
}

#[test]
fn session_corpus() {
    assert!(replay("session", secmms_osi::fuzzing::session) > 0);
}

#[test]
fn presentation_corpus() {
    assert!(replay("presentation", secmms_osi::fuzzing::presentation) > 0);
}

#[test]
fn acse_corpus() {
    assert!(replay("acse", secmms_osi::fuzzing::acse) > 0);
}
