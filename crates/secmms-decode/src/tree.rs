//! The `-V` tree: every BER element of a presentation PDU with its offset, tag, length and,
//! for primitive elements, its content.

use secmms_ber::{Class, Limits, Reader, Tlv};

use crate::limits::{MAX_TREE_DEPTH, MAX_TREE_NODES};

/// Appends the BER tree of `bytes` to `out`, indented by `indent` levels. Offsets are those of
/// `bytes` plus `base` (the caller's position of `bytes` in its stream or TSDU). Stops at [`MAX_TREE_DEPTH`] and [`MAX_TREE_NODES`]; an encoding
/// error ends the tree with a line saying where.
pub fn ber_tree(bytes: &[u8], base: u64, indent: usize, out: &mut Vec<String>) {
    let limits = Limits {
        max_depth: MAX_TREE_DEPTH + 1,
        max_len: bytes.len().max(1),
    };
    let mut r = Reader::new(bytes, limits);
    let mut nodes = 0usize;
    while !r.is_empty() {
        match r.read() {
            Ok(t) => walk(bytes, base, &t, indent, 0, &mut nodes, out),
            Err(e) => {
                out.push(format!(
                    "{}@{:04x} BER error: {e}",
                    pad(indent),
                    offset_of(bytes, r.remaining())
                ));
                return;
            }
        }
    }
}

fn pad(n: usize) -> String {
    "  ".repeat(n)
}

fn offset_of(base: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    base: &[u8],
    at: u64,
    t: &Tlv<'_>,
    indent: usize,
    depth: usize,
    nodes: &mut usize,
    out: &mut Vec<String>,
) {
    *nodes += 1;
    if *nodes > MAX_TREE_NODES {
        if *nodes == MAX_TREE_NODES + 1 {
            out.push(format!("{}… more elements not shown", pad(indent)));
        }
        return;
    }
    let tag = t.tag();
    let class = match tag.class {
        Class::Universal => "U",
        Class::Application => "A",
        Class::Context => "C",
        Class::Private => "P",
    };
    let head = format!(
        "{}@{} [{class} {}{}] len {}",
        pad(indent),
        at + offset_of(base, t.raw()) as u64,
        tag.number,
        if tag.constructed { " cons" } else { "" },
        t.content().len()
    );
    if tag.constructed && depth < MAX_TREE_DEPTH {
        out.push(head);
        if let Ok(mut c) = t.children() {
            while !c.is_empty() {
                match c.read() {
                    Ok(k) => walk(base, at, &k, indent + 1, depth + 1, nodes, out),
                    Err(e) => {
                        out.push(format!("{}BER error: {e}", pad(indent + 1)));
                        break;
                    }
                }
            }
        }
    } else {
        let c = t.content();
        let shown = &c[..c.len().min(32)];
        let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
        let text = if !c.is_empty() && c.iter().all(|b| (0x20..=0x7e).contains(b)) {
            format!(" \"{}\"", String::from_utf8_lossy(shown))
        } else {
            String::new()
        };
        let more = if c.len() > 32 { "…" } else { "" };
        out.push(format!("{head}: {hex}{more}{text}"));
    }
}
