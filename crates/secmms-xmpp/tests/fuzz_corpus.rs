//! Replays the committed `fuzz/corpus/xmpp_stream` inputs through the fuzz entry point, and
//! checks that the seeds mean what their names say.

use std::path::{Path, PathBuf};

use secmms_xmpp::stream::{StreamError, StreamEvent, StreamLimits, StreamReader};

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/xmpp_stream");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn xmpp_stream_corpus() {
    let files = corpus();
    assert!(!files.is_empty(), "the xmpp_stream seed corpus is missing");
    for f in &files {
        secmms_xmpp::fuzzing::xmpp_stream(&std::fs::read(f).unwrap());
    }
    println!("replayed {} xmpp_stream inputs", files.len());
}

#[test]
fn seeds_parse_as_named() {
    for f in corpus() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("seed-") {
            continue;
        }
        let data = std::fs::read(&f).unwrap();
        let mut r = StreamReader::new(StreamLimits::default());
        let res = r.feed(&data[1..]);
        let events: Vec<StreamEvent> = std::iter::from_fn(|| r.next_event()).collect();
        if name.contains("doctype") {
            assert_eq!(res, Err(StreamError::Doctype), "{name}");
        } else {
            assert_eq!(res, Ok(()), "{name}");
            assert!(matches!(events[0], StreamEvent::Header(_)), "{name}");
            assert!(events.len() >= 2, "{name}: {events:?}");
            assert_eq!(
                r.partial_len(),
                0,
                "{name}: a seed ends on an element boundary"
            );
        }
    }
}
