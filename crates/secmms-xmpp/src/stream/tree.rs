//! Second pass over a complete top-level element: well-formedness, namespaces, entity
//! references and limits, checked by quick-xml in the stream's namespace context; plus a small
//! tree and the exact text of each child for the callers that need them.
//!
//! The element is parsed inside a synthetic wrapper that carries the namespace declarations of
//! the stream header, so that `<iq>` resolves to `jabber:client` and `<stream:features>` to the
//! streams namespace exactly as they did on the wire. The wrapper never leaves this module:
//! positions are reported relative to the element's own text.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::{element_ns, nwf, NsContext, StreamError, StreamLimits, TopAttrs};

/// A parsed element: enough structure for negotiation elements (features, SASL, bind results,
/// stanza errors). Attribute values and text are unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Namespace URI (empty when unbound).
    pub namespace: String,
    /// Attributes other than namespace declarations, as `(qualified name, value)`.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Node>,
    /// Concatenated character data (and CDATA) directly inside this element.
    pub text: String,
}

impl Node {
    /// The value of an attribute, by its qualified name as written (`type`, `xml:lang`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first child called `name` in `namespace`.
    pub fn child(&self, name: &str, namespace: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.name == name && c.namespace == namespace)
    }

    /// Whether this is `name` in `namespace`.
    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name == name && self.namespace == namespace
    }
}

/// A direct child of a top-level element with its exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child<'a> {
    /// Local name.
    pub name: String,
    /// Namespace URI the name resolved to in the context of the stream and the stanza.
    pub namespace: String,
    /// The exact characters of the child as received, start tag to end tag. Namespace
    /// declarations inherited from the stanza or the stream are *not* in this text.
    pub raw: &'a str,
}

trait Visitor {
    fn start(
        &mut self,
        depth: usize,
        name: &str,
        namespace: &str,
        attrs: Vec<(String, String)>,
        at: usize,
    );
    fn end(&mut self, depth: usize, at: usize);
    fn text(&mut self, depth: usize, text: &str);
}

const WRAP_OPEN: &str = "<secmms-wrap";
const WRAP_CLOSE: &str = "</secmms-wrap>";

fn wrap(ctx: &NsContext, raw: &str) -> (String, usize) {
    let mut s = String::with_capacity(raw.len() + 128);
    s.push_str(WRAP_OPEN);
    for (k, v) in ctx.iter() {
        s.push(' ');
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(&quick_xml::escape::escape(v.as_str()));
        s.push('"');
    }
    s.push('>');
    let offset = s.len();
    s.push_str(raw);
    s.push_str(WRAP_CLOSE);
    (s, offset)
}

fn attributes(
    r: &NsReader<&[u8]>,
    e: &BytesStart,
    limits: &StreamLimits,
) -> Result<Vec<(String, String)>, StreamError> {
    let mut out = Vec::new();
    let mut count = 0usize;
    for a in e.attributes().with_checks(true) {
        let a = a.map_err(nwf)?;
        count += 1;
        if count > limits.max_attributes {
            return Err(StreamError::TooManyAttributes {
                limit: limits.max_attributes,
            });
        }
        let value = a.unescape_value().map_err(nwf)?;
        if a.key.as_namespace_binding().is_some() {
            continue;
        }
        if let (ResolveResult::Unknown(p), _) = r.resolve_attribute(a.key) {
            return Err(StreamError::UnboundPrefix(
                String::from_utf8_lossy(&p).into_owned(),
            ));
        }
        let key = std::str::from_utf8(a.key.as_ref()).map_err(|_| StreamError::InvalidUtf8)?;
        out.push((key.to_owned(), value.into_owned()));
    }
    Ok(out)
}

fn local(e: &BytesStart) -> Result<String, StreamError> {
    std::str::from_utf8(e.local_name().as_ref())
        .map(str::to_owned)
        .map_err(|_| StreamError::InvalidUtf8)
}

fn usize_pos(p: u64) -> Result<usize, StreamError> {
    usize::try_from(p).map_err(|_| nwf("position overflow"))
}

/// Walks the element `raw`; depth 1 is the element itself.
fn walk(
    ctx: &NsContext,
    raw: &str,
    limits: &StreamLimits,
    v: &mut dyn Visitor,
) -> Result<(), StreamError> {
    let (doc, offset) = wrap(ctx, raw);
    let mut r = NsReader::from_str(&doc);
    r.config_mut().check_end_names = true;
    r.config_mut().expand_empty_elements = false;
    let mut depth = 0usize;
    let mut wrapper_open = false;
    let mut top_done = false;
    loop {
        let before = usize_pos(r.buffer_position())?;
        let (_, ev) = r.read_resolved_event().map_err(nwf)?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if !wrapper_open {
                    wrapper_open = true;
                    continue;
                }
                if depth == 0 && top_done {
                    return Err(nwf("more than one element"));
                }
                if depth >= limits.max_depth {
                    return Err(StreamError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                depth += 1;
                let namespace = element_ns(&r, e)?;
                let attrs = attributes(&r, e, limits)?;
                let name = local(e)?;
                let at = before.checked_sub(offset).ok_or_else(|| nwf("position"))?;
                v.start(depth, &name, &namespace, attrs, at);
                if empty {
                    let end = usize_pos(r.buffer_position())?;
                    let end = end.checked_sub(offset).ok_or_else(|| nwf("position"))?;
                    v.end(depth, end);
                    depth -= 1;
                    top_done |= depth == 0;
                }
            }
            Event::End(_) => {
                if depth == 0 {
                    // The wrapper's end: nothing may follow.
                    if !top_done {
                        return Err(nwf("no element"));
                    }
                    match r.read_event().map_err(nwf)? {
                        Event::Eof => return Ok(()),
                        _ => return Err(nwf("text after the element")),
                    }
                }
                let end = usize_pos(r.buffer_position())?;
                let end = end.checked_sub(offset).ok_or_else(|| nwf("position"))?;
                v.end(depth, end);
                depth -= 1;
                top_done |= depth == 0;
            }
            Event::Text(t) => {
                let text: Cow<str> = t.unescape().map_err(nwf)?;
                if depth == 0 {
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
                        return Err(nwf("text outside the element"));
                    }
                } else {
                    v.text(depth, &text);
                }
            }
            Event::CData(c) => {
                if depth == 0 {
                    return Err(nwf("CDATA outside the element"));
                }
                let text = std::str::from_utf8(c.as_ref()).map_err(|_| StreamError::InvalidUtf8)?;
                v.text(depth, text);
            }
            Event::Comment(_) => return Err(StreamError::Comment),
            Event::PI(_) | Event::Decl(_) => return Err(StreamError::ProcessingInstruction),
            Event::DocType(_) => return Err(StreamError::Doctype),
            Event::Eof => return Err(nwf("unexpected end of element")),
        }
    }
}

struct Checker {
    top: Option<(String, String, TopAttrs)>,
}

impl Visitor for Checker {
    fn start(
        &mut self,
        depth: usize,
        name: &str,
        namespace: &str,
        attrs: Vec<(String, String)>,
        _at: usize,
    ) {
        if depth != 1 {
            return;
        }
        let mut top = TopAttrs::default();
        for (k, v) in attrs {
            match k.as_str() {
                "type" => top.type_ = Some(v),
                "id" => top.id = Some(v),
                "from" => top.from = Some(v),
                "to" => top.to = Some(v),
                _ => {}
            }
        }
        self.top = Some((name.to_owned(), namespace.to_owned(), top));
    }
    fn end(&mut self, _depth: usize, _at: usize) {}
    fn text(&mut self, _depth: usize, _text: &str) {}
}

/// Checks a complete element; returns its local name, namespace and routing attributes.
pub(super) fn check(
    ctx: &NsContext,
    raw: &str,
    limits: &StreamLimits,
) -> Result<(String, String, TopAttrs), StreamError> {
    let mut c = Checker { top: None };
    walk(ctx, raw, limits, &mut c)?;
    c.top.ok_or_else(|| nwf("no element"))
}

struct Builder {
    stack: Vec<Node>,
    done: Option<Node>,
}

impl Visitor for Builder {
    fn start(
        &mut self,
        _depth: usize,
        name: &str,
        namespace: &str,
        attrs: Vec<(String, String)>,
        _at: usize,
    ) {
        self.stack.push(Node {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            attrs,
            children: Vec::new(),
            text: String::new(),
        });
    }
    fn end(&mut self, _depth: usize, _at: usize) {
        if let Some(n) = self.stack.pop() {
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(n),
                None => self.done = Some(n),
            }
        }
    }
    fn text(&mut self, _depth: usize, text: &str) {
        if let Some(n) = self.stack.last_mut() {
            n.text.push_str(text);
        }
    }
}

/// Parses an element into a [`Node`] tree.
pub(super) fn build(
    ctx: &NsContext,
    raw: &str,
    limits: &StreamLimits,
) -> Result<Node, StreamError> {
    let mut b = Builder {
        stack: Vec::new(),
        done: None,
    };
    walk(ctx, raw, limits, &mut b)?;
    b.done.ok_or_else(|| nwf("no element"))
}

struct Spans {
    open: Option<(String, String, usize)>,
    out: Vec<(String, String, usize, usize)>,
}

impl Visitor for Spans {
    fn start(
        &mut self,
        depth: usize,
        name: &str,
        namespace: &str,
        _attrs: Vec<(String, String)>,
        at: usize,
    ) {
        if depth == 2 {
            self.open = Some((name.to_owned(), namespace.to_owned(), at));
        }
    }
    fn end(&mut self, depth: usize, at: usize) {
        if depth == 2 {
            if let Some((n, ns, start)) = self.open.take() {
                self.out.push((n, ns, start, at));
            }
        }
    }
    fn text(&mut self, _depth: usize, _text: &str) {}
}

/// The direct children of an element with their exact text.
pub(super) fn children<'a>(
    ctx: &NsContext,
    raw: &'a str,
    limits: &StreamLimits,
) -> Result<Vec<Child<'a>>, StreamError> {
    let mut s = Spans {
        open: None,
        out: Vec::new(),
    };
    walk(ctx, raw, limits, &mut s)?;
    s.out
        .into_iter()
        .map(|(name, namespace, a, b)| {
            let raw = raw.get(a..b).ok_or_else(|| nwf("child span"))?;
            Ok(Child {
                name,
                namespace,
                raw,
            })
        })
        .collect()
}
