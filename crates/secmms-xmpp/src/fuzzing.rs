//! Entry points for the cargo-fuzz targets in `fuzz/` (also replayed by `tests/fuzz_corpus.rs`).

use crate::stream::{check_outgoing, StreamEvent, StreamLimits, StreamReader};

/// Small limits so that the fuzzer reaches them.
const FUZZ_LIMITS: StreamLimits = StreamLimits {
    max_stanza_size: 4096,
    max_header_size: 512,
    max_depth: 8,
    max_attributes: 8,
};

fn run(chunks: &mut dyn Iterator<Item = &[u8]>) -> (Vec<StreamEvent>, Option<String>) {
    let mut r = StreamReader::new(FUZZ_LIMITS);
    let mut events = Vec::new();
    let mut error = None;
    for c in chunks {
        let res = r.feed(c);
        while let Some(ev) = r.next_event() {
            events.push(ev);
        }
        if let Err(e) = res {
            error = Some(e.to_string());
            break;
        }
        assert!(r.partial_len() <= FUZZ_LIMITS.max_stanza_size);
    }
    (events, error)
}

/// The XMPP stream reader on arbitrary input. The first octet chooses a chunk size; the rest is
/// the stream. Checks that feeding in chunks and feeding at once give the same events and the
/// same error, that every element's text is a slice of the input, and that the tree and child
/// views of every element parse.
pub fn xmpp_stream(data: &[u8]) {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 17) + 1;
    let whole = run(&mut std::iter::once(input));
    let split = run(&mut input.chunks(chunk));
    assert_eq!(whole, split, "chunking changed the result");
    let text = String::from_utf8_lossy(input);
    for ev in &whole.0 {
        if let StreamEvent::Element(e) = ev {
            assert!(
                text.contains(e.raw.as_str()),
                "element text is not from the input"
            );
            assert!(e.raw.len() <= FUZZ_LIMITS.max_stanza_size);
            let tree = e.tree();
            assert!(tree.is_ok(), "an accepted element must parse as a tree");
            if let Ok(children) = e.children() {
                for c in children {
                    assert!(e.raw.contains(c.raw));
                }
            }
            let _ = check_outgoing(&e.raw, &FUZZ_LIMITS);
        }
    }
    let _ = check_outgoing(&text, &FUZZ_LIMITS);
}
