//! The XMPP stream, sans-IO: an incremental reader of the received XML stream (RFC 6120 §4) and
//! writers for what we send.
//!
//! # Reading
//!
//! [`StreamReader`] is fed octets as they arrive, split anywhere. It yields
//!
//! 1. the stream header ([`StreamEvent::Header`]),
//! 2. each complete top-level element — a stanza, `<stream:features/>`, `<proceed/>`, a SASL
//!    element, `<stream:error/>`, … — as an [`Element`] whose [`Element::raw`] is the **exact
//!    received text** from the first `<` of its start tag to the last `>` of its end tag,
//! 3. the end of the stream ([`StreamEvent::End`]).
//!
//! The exact text matters: IEC 62351-4 §16.3 signs and MACs the characters as transmitted, with no
//! canonicalisation, so nothing downstream may re-serialise what it received.
//!
//! The reader works in two passes. A byte-level scanner finds element boundaries as octets arrive
//! (it keeps no more than the current element, bounded by [`StreamLimits::max_stanza_size`], and
//! refuses comments, processing instructions and DOCTYPE as soon as it sees them — RFC 6120 §11.1).
//! When an element is complete, quick-xml checks it for well-formedness, namespaces, entity
//! references (only the five predefined ones and character references are legal), attribute
//! counts and nesting depth, in the namespace context of the stream header.
//!
//! Whitespace between top-level elements (whitespace keep-alives, RFC 6120 §4.6.1) is dropped
//! and never buffered. Once the reader has returned an error it stays failed.
//!
//! # Writing
//!
//! [`write`](mod@write) builds the elements we send, escaping attribute values and text.

mod tree;
pub mod write;

use std::collections::VecDeque;
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::limits;
use crate::ns;

pub use tree::{Child, Node};

/// Limits of the reader (see [`crate::limits`] for the defaults and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Largest top-level element, octets.
    pub max_stanza_size: usize,
    /// Largest stream header, XML declaration or stream close tag, octets.
    pub max_header_size: usize,
    /// Deepest nesting inside a top-level element (the element itself is depth 1).
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included.
    pub max_attributes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_stanza_size: limits::DEFAULT_MAX_STANZA_SIZE,
            max_header_size: limits::DEFAULT_MAX_HEADER_SIZE,
            max_depth: limits::DEFAULT_MAX_DEPTH,
            max_attributes: limits::DEFAULT_MAX_ATTRIBUTES,
        }
    }
}

/// Why the received stream was refused. [`StreamError::condition`] names the RFC 6120 §4.9.3
/// stream error condition a server would answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A top-level element grew beyond [`StreamLimits::max_stanza_size`].
    #[error("element larger than {limit} octets")]
    StanzaTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The stream header, XML declaration or close tag grew beyond
    /// [`StreamLimits::max_header_size`].
    #[error("stream header or close tag larger than {limit} octets")]
    HeaderTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Elements nested deeper than [`StreamLimits::max_depth`].
    #[error("elements nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// An element carries more than [`StreamLimits::max_attributes`] attributes.
    #[error("more than {limit} attributes on one element")]
    TooManyAttributes {
        /// The limit.
        limit: usize,
    },
    /// A DOCTYPE declaration (RFC 6120 §11.1: no DTDs, hence no entity declarations).
    #[error("DOCTYPE declarations are not allowed in XMPP")]
    Doctype,
    /// An XML comment (RFC 6120 §11.1).
    #[error("XML comments are not allowed in XMPP")]
    Comment,
    /// A processing instruction other than the XML declaration (RFC 6120 §11.1).
    #[error("processing instructions are not allowed in XMPP")]
    ProcessingInstruction,
    /// The octets of an element, header or close tag are not UTF-8 (RFC 6120 §11.6).
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// The XML declaration names an encoding other than UTF-8 or a version other than 1.0.
    #[error("unsupported XML declaration: {0}")]
    BadDeclaration(String),
    /// The XML is not well-formed; the text says where or why.
    #[error("XML not well-formed: {0}")]
    NotWellFormed(String),
    /// An element or attribute uses a prefix that no namespace declaration binds.
    #[error("unbound namespace prefix {0:?}")]
    UnboundPrefix(String),
    /// Character data directly inside `<stream:stream>` (only whitespace may appear there).
    #[error("character data between top-level elements")]
    TextAtStreamLevel,
    /// The first element is not `<stream>` in the `http://etherx.jabber.org/streams` namespace.
    #[error("bad stream header: {0}")]
    BadStreamHeader(String),
    /// Something other than whitespace after the end of the stream.
    #[error("data after the end of the stream")]
    DataAfterEnd,
}

impl StreamError {
    /// The RFC 6120 §4.9.3 stream error condition that fits this failure.
    pub fn condition(&self) -> &'static str {
        match self {
            StreamError::StanzaTooLarge { .. }
            | StreamError::HeaderTooLarge { .. }
            | StreamError::TooDeep { .. }
            | StreamError::TooManyAttributes { .. } => "policy-violation",
            StreamError::Doctype | StreamError::Comment | StreamError::ProcessingInstruction => {
                "restricted-xml"
            }
            StreamError::InvalidUtf8 | StreamError::BadDeclaration(_) => "unsupported-encoding",
            StreamError::UnboundPrefix(_) => "invalid-namespace",
            StreamError::BadStreamHeader(_) => "invalid-namespace",
            StreamError::NotWellFormed(_)
            | StreamError::TextAtStreamLevel
            | StreamError::DataAfterEnd => "not-well-formed",
        }
    }
}

fn nwf(what: impl std::fmt::Display) -> StreamError {
    StreamError::NotWellFormed(what.to_string())
}

/// The attributes of a top-level element that routing needs (RFC 6120 §8.1), unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopAttrs {
    /// `type`.
    pub type_: Option<String>,
    /// `id`.
    pub id: Option<String>,
    /// `from`.
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
}

/// The opening `<stream:stream>` tag received from the peer (RFC 6120 §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// `from` (the server's domain).
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `id` (the stream id).
    pub id: Option<String>,
    /// `version` (`1.0` for RFC 6120 peers).
    pub version: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// The default namespace declared on the header (`jabber:client` for a client stream).
    pub default_ns: Option<String>,
    /// The exact text of the start tag.
    pub raw: String,
}

/// The namespace declarations in force at stream level (those of the header), as
/// `(attribute name, value)` pairs such as `("xmlns", "jabber:client")`.
pub type NsContext = Arc<[(String, String)]>;

/// One complete top-level element of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name (`iq`, `features`, `proceed`, …).
    pub name: String,
    /// Namespace URI the name resolves to (empty when unbound).
    pub namespace: String,
    /// `type`, `id`, `from`, `to`.
    pub attrs: TopAttrs,
    /// The exact received text, start tag to end tag inclusive.
    pub raw: String,
    ctx: NsContext,
}

impl Element {
    /// Whether this is `name` in namespace `namespace`.
    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name == name && self.namespace == namespace
    }

    /// The stream-level namespace context this element was read in.
    pub fn ns_context(&self) -> &NsContext {
        &self.ctx
    }

    /// Parses the element into a small tree (for negotiation elements; stanzas for the
    /// application stay raw).
    pub fn tree(&self) -> Result<Node, StreamError> {
        tree::build(&self.ctx, &self.raw, &StreamLimits::default())
    }

    /// The direct children of the element, each with the exact text it had on the wire.
    pub fn children(&self) -> Result<Vec<Child<'_>>, StreamError> {
        tree::children(&self.ctx, &self.raw, &StreamLimits::default())
    }
}

/// The three stanza kinds (RFC 6120 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `<iq/>`: request/response.
    Iq,
    /// `<message/>`: push, no response.
    Message,
    /// `<presence/>`: availability broadcast.
    Presence,
}

impl StanzaKind {
    /// The element name.
    pub fn name(self) -> &'static str {
        match self {
            StanzaKind::Iq => "iq",
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
        }
    }
}

/// A received stanza with its exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// iq, message or presence.
    pub kind: StanzaKind,
    /// `type` attribute.
    pub type_: Option<String>,
    /// `id` attribute.
    pub id: Option<String>,
    /// `from` attribute (the sender's full JID when the server routed it).
    pub from: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// The exact received text of the stanza.
    pub raw: String,
    ctx: NsContext,
}

impl Stanza {
    /// Turns an element into a stanza when it is one (`iq`, `message` or `presence` in
    /// `jabber:client` or `jabber:server`); gives the element back otherwise.
    pub fn from_element(e: Element) -> Result<Stanza, Box<Element>> {
        if e.namespace != ns::CLIENT && e.namespace != ns::SERVER {
            return Err(Box::new(e));
        }
        let kind = match e.name.as_str() {
            "iq" => StanzaKind::Iq,
            "message" => StanzaKind::Message,
            "presence" => StanzaKind::Presence,
            _ => return Err(Box::new(e)),
        };
        Ok(Stanza {
            kind,
            type_: e.attrs.type_,
            id: e.attrs.id,
            from: e.attrs.from,
            to: e.attrs.to,
            raw: e.raw,
            ctx: e.ctx,
        })
    }

    /// The direct children (payload elements) of the stanza, each with its exact text — e.g.
    /// the `<e2e xmlns="http://www.iec.ch/62351/2018/ENV_4">` wrapper of §16.3.
    pub fn children(&self) -> Result<Vec<Child<'_>>, StreamError> {
        tree::children(&self.ctx, &self.raw, &StreamLimits::default())
    }

    /// Parses the stanza into a small tree.
    pub fn tree(&self) -> Result<Node, StreamError> {
        tree::build(&self.ctx, &self.raw, &StreamLimits::default())
    }
}

/// What the reader produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The peer's stream header.
    Header(StreamHeader),
    /// A complete top-level element.
    Element(Element),
    /// `</stream:stream>`: the peer closed the stream.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data (or whitespace at stream level).
    Text,
    /// Just after `<`.
    Open,
    /// Inside a start tag; `quote` is the open quote of an attribute value (0 when none) and
    /// `slash` whether the last significant octet was `/`.
    StartTag { quote: u8, slash: bool },
    /// Inside an end tag.
    EndTag,
    /// After `<!`, `matched` octets of `[CDATA[` seen.
    Bang { matched: u8 },
    /// Inside a CDATA section, `brackets` consecutive `]` seen.
    CData { brackets: u8 },
    /// Inside `<?…?>`; `question` whether the last octet was `?`.
    Pi { question: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Before the stream header; `started` once anything but a BOM/whitespace was seen.
    Prolog { started: bool },
    /// Inside the stream.
    Open,
    /// After `</stream:stream>`.
    Ended,
    /// After an error.
    Failed(StreamError),
}

const CDATA_OPEN: &[u8] = b"[CDATA[";
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental reader of a received XMPP stream. See the [module documentation](self).
#[derive(Debug)]
pub struct StreamReader {
    limits: StreamLimits,
    phase: Phase,
    lex: Lex,
    /// Open elements inside the stream (the header not counted).
    depth: usize,
    /// Octets of the markup or element being collected.
    buf: Vec<u8>,
    /// Qualified name of the header (`stream:stream`), to match the close tag.
    header_qname: Vec<u8>,
    ctx: NsContext,
    events: VecDeque<StreamEvent>,
    /// Octets of a leading BOM matched so far.
    bom: usize,
}

impl StreamReader {
    /// A reader expecting a stream header.
    pub fn new(limits: StreamLimits) -> StreamReader {
        StreamReader {
            limits,
            phase: Phase::Prolog { started: false },
            lex: Lex::Text,
            depth: 0,
            buf: Vec::new(),
            header_qname: Vec::new(),
            ctx: Arc::from(Vec::new()),
            events: VecDeque::new(),
            bom: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &StreamLimits {
        &self.limits
    }

    /// Forgets everything and expects a new stream header, as after STARTTLS and after SASL
    /// success (RFC 6120 §5.4.3.3, §6.4.6).
    pub fn reset(&mut self) {
        *self = StreamReader::new(self.limits);
    }

    /// Octets held for an element (or header) not yet complete.
    pub fn partial_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether events are waiting in the queue.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether the peer's stream has ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The next complete event, if any.
    pub fn next_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// Feeds received octets. Completed events are queued for [`StreamReader::next_event`]
    /// (the queue holds at most what this call's input contained). After an error the reader
    /// refuses all further input with the same error.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if let Phase::Failed(e) = &self.phase {
            return Err(e.clone());
        }
        for &b in data {
            if let Err(e) = self.byte(b) {
                self.phase = Phase::Failed(e.clone());
                self.buf = Vec::new();
                return Err(e);
            }
        }
        Ok(())
    }

    fn in_prolog(&self) -> bool {
        matches!(self.phase, Phase::Prolog { .. })
    }

    /// Adds an octet to the buffer, enforcing the size limits: the header limit for the XML
    /// declaration, the stream header and the stream close tag, the element limit otherwise.
    fn push(&mut self, b: u8) -> Result<(), StreamError> {
        let header = self.in_prolog() || (self.depth == 0 && self.lex == Lex::EndTag);
        if header && self.buf.len() >= self.limits.max_header_size {
            return Err(StreamError::HeaderTooLarge {
                limit: self.limits.max_header_size,
            });
        }
        if !header && self.buf.len() >= self.limits.max_stanza_size {
            return Err(StreamError::StanzaTooLarge {
                limit: self.limits.max_stanza_size,
            });
        }
        self.buf.push(b);
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), StreamError> {
        match self.lex {
            Lex::Text => self.text_byte(b),
            Lex::Open => {
                self.push(b)?;
                match b {
                    b'/' => {
                        self.lex = Lex::EndTag;
                        Ok(())
                    }
                    b'!' => {
                        self.lex = Lex::Bang { matched: 0 };
                        Ok(())
                    }
                    b'?' => {
                        // Only the XML declaration, and only first in the prolog.
                        match self.phase {
                            Phase::Prolog { started: false } => {
                                self.phase = Phase::Prolog { started: true };
                                self.lex = Lex::Pi { question: false };
                                Ok(())
                            }
                            _ => Err(StreamError::ProcessingInstruction),
                        }
                    }
                    b if is_name_start(b) => {
                        if self.in_prolog() {
                            self.phase = Phase::Prolog { started: true };
                        }
                        self.lex = Lex::StartTag {
                            quote: 0,
                            slash: false,
                        };
                        Ok(())
                    }
                    _ => Err(nwf("invalid character after '<'")),
                }
            }
            Lex::StartTag { quote, slash } => {
                self.push(b)?;
                if quote != 0 {
                    if b == quote {
                        self.lex = Lex::StartTag { quote: 0, slash };
                    } else if b == b'<' {
                        return Err(nwf("'<' in an attribute value"));
                    }
                    return Ok(());
                }
                match b {
                    b'"' | b'\'' => {
                        self.lex = Lex::StartTag {
                            quote: b,
                            slash: false,
                        };
                        Ok(())
                    }
                    b'<' => Err(nwf("'<' inside a tag")),
                    b'>' => {
                        self.lex = Lex::Text;
                        self.start_tag_done(slash)
                    }
                    b'/' => {
                        self.lex = Lex::StartTag {
                            quote: 0,
                            slash: true,
                        };
                        Ok(())
                    }
                    _ => {
                        self.lex = Lex::StartTag {
                            quote: 0,
                            slash: false,
                        };
                        Ok(())
                    }
                }
            }
            Lex::EndTag => {
                self.push(b)?;
                match b {
                    b'>' => {
                        self.lex = Lex::Text;
                        self.end_tag_done()
                    }
                    b'<' => Err(nwf("'<' inside an end tag")),
                    _ => Ok(()),
                }
            }
            Lex::Bang { matched } => {
                if matched == 0 {
                    match b {
                        b'-' => return Err(StreamError::Comment),
                        b'D' | b'd' => return Err(StreamError::Doctype),
                        _ => {}
                    }
                }
                if self.depth == 0 {
                    return Err(nwf("markup declaration outside an element"));
                }
                if CDATA_OPEN.get(usize::from(matched)) != Some(&b) {
                    return Err(nwf("invalid markup after '<!'"));
                }
                self.push(b)?;
                let matched = matched + 1;
                self.lex = if usize::from(matched) == CDATA_OPEN.len() {
                    Lex::CData { brackets: 0 }
                } else {
                    Lex::Bang { matched }
                };
                Ok(())
            }
            Lex::CData { brackets } => {
                self.push(b)?;
                self.lex = match b {
                    b']' => Lex::CData {
                        brackets: brackets.saturating_add(1).min(2),
                    },
                    b'>' if brackets >= 2 => Lex::Text,
                    _ => Lex::CData { brackets: 0 },
                };
                Ok(())
            }
            Lex::Pi { question } => {
                self.push(b)?;
                if question && b == b'>' {
                    self.lex = Lex::Text;
                    return self.declaration_done();
                }
                self.lex = Lex::Pi {
                    question: b == b'?',
                };
                Ok(())
            }
        }
    }

    fn text_byte(&mut self, b: u8) -> Result<(), StreamError> {
        match self.phase {
            Phase::Failed(_) => Ok(()),
            Phase::Ended => {
                if is_space(b) {
                    Ok(())
                } else {
                    Err(StreamError::DataAfterEnd)
                }
            }
            Phase::Prolog { started } => {
                // A UTF-8 byte order mark may precede everything (XML 1.0 §4.3.3).
                if !started && self.bom < BOM.len() && b == BOM[self.bom] {
                    self.bom += 1;
                    return Ok(());
                }
                if self.bom != 0 && self.bom != BOM.len() {
                    return Err(StreamError::InvalidUtf8);
                }
                match b {
                    b'<' => {
                        self.buf.clear();
                        self.lex = Lex::Open;
                        self.push(b)
                    }
                    b if is_space(b) => {
                        // The XML declaration may only come first (XML 1.0 §2.8).
                        self.phase = Phase::Prolog { started: true };
                        Ok(())
                    }
                    _ => Err(nwf("character data before the stream header")),
                }
            }
            Phase::Open => {
                if self.depth == 0 {
                    match b {
                        b'<' => {
                            self.buf.clear();
                            self.lex = Lex::Open;
                            self.push(b)
                        }
                        b if is_space(b) => Ok(()),
                        _ => Err(StreamError::TextAtStreamLevel),
                    }
                } else {
                    self.push(b)?;
                    if b == b'<' {
                        self.lex = Lex::Open;
                    }
                    Ok(())
                }
            }
        }
    }

    fn start_tag_done(&mut self, empty: bool) -> Result<(), StreamError> {
        if self.in_prolog() {
            if empty {
                return Err(StreamError::BadStreamHeader(
                    "the stream header is an empty element".into(),
                ));
            }
            return self.header_done();
        }
        if empty {
            if self.depth == 0 {
                return self.element_done();
            }
            return Ok(());
        }
        if self.depth >= self.limits.max_depth {
            return Err(StreamError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn end_tag_done(&mut self) -> Result<(), StreamError> {
        if self.in_prolog() {
            return Err(nwf("end tag before the stream header"));
        }
        if self.depth == 0 {
            // `</stream:stream>` (optional whitespace before `>`).
            let inner = &self.buf[2..self.buf.len() - 1];
            let name = trim_end_space(inner);
            if name != self.header_qname.as_slice() {
                return Err(nwf("end tag does not match the stream header"));
            }
            self.buf.clear();
            self.phase = Phase::Ended;
            self.events.push_back(StreamEvent::End);
            return Ok(());
        }
        self.depth -= 1;
        if self.depth == 0 {
            return self.element_done();
        }
        Ok(())
    }

    fn declaration_done(&mut self) -> Result<(), StreamError> {
        let text = std::str::from_utf8(&self.buf).map_err(|_| StreamError::InvalidUtf8)?;
        let mut r = quick_xml::Reader::from_str(text);
        match r.read_event() {
            Ok(Event::Decl(d)) => {
                let version = d.version().map_err(nwf)?;
                if version.as_ref() != b"1.0" {
                    return Err(StreamError::BadDeclaration(format!(
                        "version {}",
                        String::from_utf8_lossy(&version)
                    )));
                }
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(nwf)?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(StreamError::BadDeclaration(format!(
                            "encoding {}",
                            String::from_utf8_lossy(&enc)
                        )));
                    }
                }
                self.buf.clear();
                Ok(())
            }
            Ok(_) => Err(StreamError::ProcessingInstruction),
            Err(e) => Err(nwf(e)),
        }
    }

    fn header_done(&mut self) -> Result<(), StreamError> {
        let raw = String::from_utf8(std::mem::take(&mut self.buf))
            .map_err(|_| StreamError::InvalidUtf8)?;
        let mut r = NsReader::from_str(&raw);
        let (res, ev) = r.read_resolved_event().map_err(nwf)?;
        let Event::Start(start) = ev else {
            return Err(StreamError::BadStreamHeader("not a start tag".into()));
        };
        let local = start.local_name();
        let ns_ok = matches!(&res, ResolveResult::Bound(n) if n.as_ref() == ns::STREAMS.as_bytes());
        if local.as_ref() != b"stream" || !ns_ok {
            if let ResolveResult::Unknown(p) = res {
                return Err(StreamError::UnboundPrefix(
                    String::from_utf8_lossy(&p).into_owned(),
                ));
            }
            return Err(StreamError::BadStreamHeader(format!(
                "<{}> is not <stream> in {}",
                String::from_utf8_lossy(start.name().as_ref()),
                ns::STREAMS
            )));
        }
        let mut header = StreamHeader {
            from: None,
            to: None,
            id: None,
            version: None,
            lang: None,
            default_ns: None,
            raw: String::new(),
        };
        let mut decls = Vec::new();
        let mut count = 0usize;
        for a in start.attributes().with_checks(true) {
            let a = a.map_err(nwf)?;
            count += 1;
            if count > self.limits.max_attributes {
                return Err(StreamError::TooManyAttributes {
                    limit: self.limits.max_attributes,
                });
            }
            let key = std::str::from_utf8(a.key.as_ref())
                .map_err(|_| StreamError::InvalidUtf8)?
                .to_owned();
            let value = a.unescape_value().map_err(nwf)?.into_owned();
            match key.as_str() {
                "xmlns" => {
                    header.default_ns = Some(value.clone());
                    decls.push((key, value));
                }
                k if k.starts_with("xmlns:") => decls.push((key, value)),
                "from" => header.from = Some(value),
                "to" => header.to = Some(value),
                "id" => header.id = Some(value),
                "version" => header.version = Some(value),
                "xml:lang" => header.lang = Some(value),
                _ => {}
            }
        }
        self.header_qname = start.name().as_ref().to_vec();
        header.raw = raw;
        self.ctx = Arc::from(decls);
        self.phase = Phase::Open;
        self.events.push_back(StreamEvent::Header(header));
        Ok(())
    }

    fn element_done(&mut self) -> Result<(), StreamError> {
        let raw = String::from_utf8(std::mem::take(&mut self.buf))
            .map_err(|_| StreamError::InvalidUtf8)?;
        let (name, namespace, attrs) = tree::check(&self.ctx, &raw, &self.limits)?;
        self.events.push_back(StreamEvent::Element(Element {
            name,
            namespace,
            attrs,
            raw,
            ctx: self.ctx.clone(),
        }));
        Ok(())
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

fn trim_end_space(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && is_space(s[end - 1]) {
        end -= 1;
    }
    &s[..end]
}

/// Resolves the namespace of an element name read by `r`.
fn element_ns(r: &NsReader<&[u8]>, e: &BytesStart) -> Result<String, StreamError> {
    match r.resolve_element(e.name()).0 {
        ResolveResult::Bound(n) => std::str::from_utf8(n.as_ref())
            .map(str::to_owned)
            .map_err(|_| StreamError::InvalidUtf8),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(StreamError::UnboundPrefix(
            String::from_utf8_lossy(&p).into_owned(),
        )),
    }
}

/// Checks that `raw` is exactly one complete stanza (`iq`, `message` or `presence`) that could
/// be sent on a `jabber:client` stream: well-formed, within `limits`, nothing before or after.
/// The client runs this on everything the application asks it to send, so that no caller can
/// inject stream-level markup.
pub fn check_outgoing(raw: &str, limits: &StreamLimits) -> Result<Stanza, StreamError> {
    let mut r = StreamReader::new(*limits);
    r.feed(write::STREAM_CONTEXT_HEADER.as_bytes())?;
    let _header = r.next_event();
    r.feed(raw.as_bytes())?;
    let Some(StreamEvent::Element(e)) = r.next_event() else {
        return Err(nwf("not one complete element"));
    };
    if r.has_events() || r.partial_len() != 0 {
        return Err(nwf("more than one element"));
    }
    if e.raw.len()
        != raw
            .trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
            .len()
    {
        return Err(nwf("text around the element"));
    }
    Stanza::from_element(e).map_err(|e| nwf(format!("<{}> is not a stanza", e.name)))
}

#[cfg(test)]
mod tests;
