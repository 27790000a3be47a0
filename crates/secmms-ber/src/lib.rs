//! BER (ITU-T X.690) TLV reader and writer with explicit limits.
//!
//! Every protocol in secmms (presentation, ACSE, MMS, the IEC 62351-4 SecPDUs) is BER on the wire.
//! This crate is the one place that turns octets into tag-length-value elements and back. It is
//! deliberately small and strict:
//!
//! * **Limits.** A [`Reader`] never accepts an element longer than its input, never nests deeper
//!   than [`Limits::max_depth`], and never reports a length above [`Limits::max_len`]. Nothing is
//!   allocated while reading: every element borrows from the input.
//! * **Raw bytes kept.** A [`Tlv`] gives the whole encoding ([`Tlv::raw`]) and the content octets
//!   ([`Tlv::content`]) exactly as received, so signatures and ICVs are checked over the bytes on
//!   the wire, never over a re-encoding (IEC 62351-4 §13.4).
//! * **Indefinite lengths** are accepted on receive for constructed elements (X.690 §8.1.3.6);
//!   the writer always emits definite lengths.
//!
//! ```
//! use secmms_ber::{Reader, Writer, Tag, Limits};
//! let mut w = Writer::new();
//! w.constructed(Tag::context(1, true), |w| {
//!     w.integer(Tag::INTEGER, 300);
//!     w.octets(Tag::context(0, false), b"ab");
//! });
//! let bytes = w.finish();
//! let mut r = Reader::new(&bytes, Limits::default());
//! let outer = r.expect(Tag::context(1, true)).unwrap();
//! let mut inner = outer.children().unwrap();
//! assert_eq!(inner.expect(Tag::INTEGER).unwrap().as_i64().unwrap(), 300);
//! assert_eq!(inner.expect(Tag::context(0, false)).unwrap().content(), b"ab");
//! assert!(inner.finish().is_ok());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;

pub mod calendar;
pub mod hex;
mod oid;
pub use oid::Oid;

/// Errors of BER decoding. Each is a protocol error of the layer that called the reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The input ended inside an identifier, a length or the content of an element.
    #[error("truncated BER element")]
    Truncated,
    /// A length or tag number does not fit the implementation's integer types.
    #[error("BER length or tag number too large")]
    Overflow,
    /// The element is longer than the configured maximum.
    #[error("BER element of {len} octets exceeds the limit of {limit}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Constructed elements nest deeper than the configured maximum.
    #[error("BER nesting deeper than {0}")]
    TooDeep(usize),
    /// An indefinite length on a primitive element, or a reserved length octet (0xFF).
    #[error("invalid BER length form")]
    BadLength,
    /// An element other than the expected one.
    #[error("unexpected BER tag {found}, expected {expected}")]
    UnexpectedTag {
        /// What the decoder wanted.
        expected: Tag,
        /// What it found.
        found: Tag,
    },
    /// A required element is missing.
    #[error("missing BER element {0}")]
    Missing(Tag),
    /// Octets are left after the last expected element.
    #[error("{0} unexpected trailing octets")]
    Trailing(usize),
    /// The content is not a valid encoding of the requested type.
    #[error("invalid content for {0}")]
    InvalidValue(&'static str),
    /// A tag number of 30 or less written in the high-tag-number form, or with a leading 0x80
    /// octet (X.690 §8.1.2.2 and §8.1.2.4.2 c): two encodings of one tag would let an element
    /// pass a tag check yet re-encode differently.
    #[error("non-minimal BER identifier octets")]
    NonMinimalTag,
}

/// Result alias for BER decoding.
pub type Result<T> = std::result::Result<T, BerError>;

/// Tag class (X.690 §8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// UNIVERSAL.
    Universal = 0,
    /// APPLICATION.
    Application = 1,
    /// Context-specific.
    Context = 2,
    /// PRIVATE.
    Private = 3,
}

/// A BER identifier: class, primitive/constructed flag and tag number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The class.
    pub class: Class,
    /// True for a constructed encoding.
    pub constructed: bool,
    /// The tag number.
    pub number: u32,
}

impl Tag {
    /// UNIVERSAL 1, BOOLEAN.
    pub const BOOLEAN: Tag = Tag::universal(1, false);
    /// UNIVERSAL 2, INTEGER.
    pub const INTEGER: Tag = Tag::universal(2, false);
    /// UNIVERSAL 3, BIT STRING.
    pub const BIT_STRING: Tag = Tag::universal(3, false);
    /// UNIVERSAL 4, OCTET STRING.
    pub const OCTET_STRING: Tag = Tag::universal(4, false);
    /// UNIVERSAL 5, NULL.
    pub const NULL: Tag = Tag::universal(5, false);
    /// UNIVERSAL 6, OBJECT IDENTIFIER.
    pub const OID: Tag = Tag::universal(6, false);
    /// UNIVERSAL 8, EXTERNAL (constructed).
    pub const EXTERNAL: Tag = Tag::universal(8, true);
    /// UNIVERSAL 10, ENUMERATED.
    pub const ENUMERATED: Tag = Tag::universal(10, false);
    /// UNIVERSAL 12, UTF8String.
    pub const UTF8_STRING: Tag = Tag::universal(12, false);
    /// UNIVERSAL 16, SEQUENCE (constructed).
    pub const SEQUENCE: Tag = Tag::universal(16, true);
    /// UNIVERSAL 17, SET (constructed).
    pub const SET: Tag = Tag::universal(17, true);
    /// UNIVERSAL 19, PrintableString.
    pub const PRINTABLE_STRING: Tag = Tag::universal(19, false);
    /// UNIVERSAL 22, IA5String.
    pub const IA5_STRING: Tag = Tag::universal(22, false);
    /// UNIVERSAL 23, UTCTime.
    pub const UTC_TIME: Tag = Tag::universal(23, false);
    /// UNIVERSAL 24, GeneralizedTime.
    pub const GENERALIZED_TIME: Tag = Tag::universal(24, false);
    /// UNIVERSAL 26, VisibleString.
    pub const VISIBLE_STRING: Tag = Tag::universal(26, false);

    /// A UNIVERSAL tag.
    pub const fn universal(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Universal,
            constructed,
            number,
        }
    }
    /// A context-specific tag `[number]`.
    pub const fn context(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Context,
            constructed,
            number,
        }
    }
    /// An APPLICATION tag.
    pub const fn application(number: u32, constructed: bool) -> Tag {
        Tag {
            class: Class::Application,
            constructed,
            number,
        }
    }
    /// The same tag with the constructed flag set.
    pub const fn as_constructed(self) -> Tag {
        Tag {
            constructed: true,
            ..self
        }
    }
    /// The same tag with the constructed flag cleared.
    pub const fn as_primitive(self) -> Tag {
        Tag {
            constructed: false,
            ..self
        }
    }
    /// True when class and number match, whatever the constructed flag.
    pub fn same_number(self, other: Tag) -> bool {
        self.class == other.class && self.number == other.number
    }

    /// Appends the identifier octets of this tag.
    pub fn encode(self, out: &mut Vec<u8>) {
        let first = ((self.class as u8) << 6) | if self.constructed { 0x20 } else { 0 };
        if self.number < 31 {
            out.push(first | self.number as u8);
        } else {
            out.push(first | 0x1f);
            let mut tmp = [0u8; 5];
            let mut n = self.number;
            let mut i = tmp.len();
            loop {
                i -= 1;
                tmp[i] = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    break;
                }
            }
            for (k, b) in tmp[i..].iter().enumerate() {
                let more = i + k + 1 < tmp.len();
                out.push(if more { b | 0x80 } else { *b });
            }
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.class {
            Class::Universal => "UNIVERSAL ",
            Class::Application => "APPLICATION ",
            Class::Context => "",
            Class::Private => "PRIVATE ",
        };
        write!(
            f,
            "[{}{}]{}",
            c,
            self.number,
            if self.constructed { "c" } else { "p" }
        )
    }
}

/// Decoding limits. Every decoder of network input passes limits; the defaults are safe for any
/// single PDU secmms accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting of constructed elements (the outermost element is depth 1).
    pub max_depth: usize,
    /// Maximum length of any one element's content, in octets.
    pub max_len: usize,
}

impl Limits {
    /// Default nesting limit: deep enough for MMS data nested to the negotiated level plus the
    /// ACSE/presentation envelope, shallow enough to bound recursion.
    pub const DEFAULT_MAX_DEPTH: usize = 64;
    /// Default element size limit: the largest reassembled TSDU secmms accepts (Annex H, 64 KiB).
    pub const DEFAULT_MAX_LEN: usize = 65_536;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_len: Self::DEFAULT_MAX_LEN,
        }
    }
}

/// One decoded element, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    tag: Tag,
    raw: &'a [u8],
    content: &'a [u8],
    indefinite: bool,
    depth: usize,
    limits: Limits,
}

impl<'a> Tlv<'a> {
    /// The identifier.
    #[inline]
    pub fn tag(&self) -> Tag {
        self.tag
    }
    /// The whole encoding: identifier, length, content (and end-of-contents octets if indefinite).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// The content octets, without identifier, length or end-of-contents octets.
    #[inline]
    pub fn content(&self) -> &'a [u8] {
        self.content
    }
    /// True when the element used the indefinite length form.
    pub fn is_indefinite(&self) -> bool {
        self.indefinite
    }
    /// Depth of this element (1 for an element read from a top-level reader).
    pub fn depth(&self) -> usize {
        self.depth
    }
    /// A reader over the children of a constructed element.
    #[inline]
    pub fn children(&self) -> Result<Reader<'a>> {
        if !self.tag.constructed {
            return Err(BerError::InvalidValue("constructed encoding"));
        }
        Ok(Reader {
            buf: self.content,
            pos: 0,
            depth: self.depth,
            limits: self.limits,
        })
    }
    /// Reads the single child of a constructed element (an EXPLICIT tag or a CHOICE wrapper).
    #[inline]
    pub fn single_child(&self) -> Result<Tlv<'a>> {
        let mut r = self.children()?;
        let t = r.read()?;
        r.finish()?;
        Ok(t)
    }

    /// INTEGER content as i64 (X.690 §8.3).
    pub fn as_i64(&self) -> Result<i64> {
        decode_i64(self.content)
    }
    /// INTEGER content as an unsigned value (a leading 0x00 is allowed; negatives are refused).
    pub fn as_u64(&self) -> Result<u64> {
        let c = self.content;
        if c.is_empty() {
            return Err(BerError::InvalidValue("INTEGER"));
        }
        if c[0] & 0x80 != 0 {
            return Err(BerError::InvalidValue("unsigned INTEGER"));
        }
        let c = if c[0] == 0 && c.len() > 1 { &c[1..] } else { c };
        if c.len() > 8 {
            return Err(BerError::Overflow);
        }
        Ok(c.iter().fold(0u64, |a, b| (a << 8) | *b as u64))
    }
    /// INTEGER content as u32.
    pub fn as_u32(&self) -> Result<u32> {
        u32::try_from(self.as_u64()?).map_err(|_| BerError::Overflow)
    }
    /// BOOLEAN content (any non-zero octet is TRUE, X.690 §8.2.2).
    pub fn as_bool(&self) -> Result<bool> {
        match self.content {
            [b] => Ok(*b != 0),
            _ => Err(BerError::InvalidValue("BOOLEAN")),
        }
    }
    /// NULL content (must be empty).
    pub fn as_null(&self) -> Result<()> {
        if self.content.is_empty() {
            Ok(())
        } else {
            Err(BerError::InvalidValue("NULL"))
        }
    }
    /// OBJECT IDENTIFIER content.
    pub fn as_oid(&self) -> Result<Oid> {
        Oid::from_ber_content(self.content)
    }
    /// BIT STRING content (primitive form): the number of unused bits and the octets.
    pub fn as_bit_string(&self) -> Result<(u8, &'a [u8])> {
        match self.content.split_first() {
            Some((&unused, rest)) if unused < 8 && (unused == 0 || !rest.is_empty()) => {
                Ok((unused, rest))
            }
            _ => Err(BerError::InvalidValue("BIT STRING")),
        }
    }
    /// Content as a UTF-8 / visible string.
    pub fn as_str(&self) -> Result<&'a str> {
        std::str::from_utf8(self.content).map_err(|_| BerError::InvalidValue("string"))
    }
}

/// Decodes two's-complement INTEGER content octets into i64.
pub fn decode_i64(c: &[u8]) -> Result<i64> {
    if c.is_empty() {
        return Err(BerError::InvalidValue("INTEGER"));
    }
    if c.len() > 8 {
        // Accept redundant sign octets only when the value still fits.
        let (head, tail) = c.split_at(c.len() - 8);
        let sign = if tail[0] & 0x80 != 0 { 0xff } else { 0 };
        if !head.iter().all(|b| *b == sign) {
            return Err(BerError::Overflow);
        }
        return decode_i64(tail);
    }
    let mut v: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    for b in c {
        v = (v << 8) | *b as i64;
    }
    Ok(v)
}

/// A cursor over a sequence of BER elements.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
    limits: Limits,
}

impl<'a> Reader<'a> {
    /// A reader over top-level elements of `buf`.
    pub fn new(buf: &'a [u8], limits: Limits) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            limits,
        }
    }
    /// True when every element has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// The octets not yet read.
    #[inline]
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
    /// Fails with [`BerError::Trailing`] when octets are left.
    #[inline]
    pub fn finish(&self) -> Result<()> {
        match self.buf.len().saturating_sub(self.pos) {
            0 => Ok(()),
            n => Err(BerError::Trailing(n)),
        }
    }
    /// The tag of the next element, without consuming it.
    #[inline]
    pub fn peek_tag(&self) -> Option<Tag> {
        parse_tag(self.remaining()).ok().map(|(t, _)| t)
    }
    /// Reads the next element.
    #[inline]
    pub fn read(&mut self) -> Result<Tlv<'a>> {
        let (tlv, used) = parse_tlv(self.remaining(), self.depth + 1, self.limits)?;
        self.pos += used;
        Ok(tlv)
    }
    /// Reads the next element and checks its tag (class, number and form).
    #[inline]
    pub fn expect(&mut self, tag: Tag) -> Result<Tlv<'a>> {
        match self.peek_tag() {
            None if self.is_empty() => Err(BerError::Missing(tag)),
            None => Err(BerError::Truncated),
            Some(t) if t == tag => self.read(),
            Some(found) => Err(BerError::UnexpectedTag {
                expected: tag,
                found,
            }),
        }
    }
    /// Reads the next element if it has this tag (class, number and form).
    #[inline]
    pub fn optional(&mut self, tag: Tag) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }
    /// Reads the next element if its class and number match, whatever its form.
    pub fn optional_any_form(&mut self, tag: Tag) -> Result<Option<Tlv<'a>>> {
        match self.peek_tag() {
            Some(t) if t.same_number(tag) => self.read().map(Some),
            _ => Ok(None),
        }
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Tlv<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.is_empty() {
            None
        } else {
            let r = self.read();
            if r.is_err() {
                self.pos = self.buf.len();
            }
            Some(r)
        }
    }
}

#[inline]
fn parse_tag(buf: &[u8]) -> Result<(Tag, usize)> {
    let first = *buf.first().ok_or(BerError::Truncated)?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let low = (first & 0x1f) as u32;
    if low != 0x1f {
        return Ok((
            Tag {
                class,
                constructed,
                number: low,
            },
            1,
        ));
    }
    let mut number: u32 = 0;
    for (i, b) in buf[1..].iter().enumerate() {
        if i >= 4 {
            return Err(BerError::Overflow);
        }
        if i == 0 && *b == 0x80 {
            return Err(BerError::NonMinimalTag);
        }
        number = (number << 7) | (b & 0x7f) as u32;
        if b & 0x80 == 0 {
            if number <= 30 {
                return Err(BerError::NonMinimalTag);
            }
            return Ok((
                Tag {
                    class,
                    constructed,
                    number,
                },
                i + 2,
            ));
        }
    }
    Err(BerError::Truncated)
}

/// Parses one element at the start of `buf`; returns it and the octets it used.
fn parse_tlv(buf: &[u8], depth: usize, limits: Limits) -> Result<(Tlv<'_>, usize)> {
    if depth > limits.max_depth {
        return Err(BerError::TooDeep(limits.max_depth));
    }
    let (tag, tl) = parse_tag(buf)?;
    let lb = *buf.get(tl).ok_or(BerError::Truncated)?;
    let mut hdr = tl + 1;
    if lb == 0x80 {
        if !tag.constructed {
            return Err(BerError::BadLength);
        }
        // Indefinite: walk children until the end-of-contents octets.
        let start = hdr;
        let mut pos = start;
        loop {
            let rest = &buf[pos.min(buf.len())..];
            if rest.len() < 2 {
                return Err(BerError::Truncated);
            }
            if rest[0] == 0 && rest[1] == 0 {
                let content = &buf[start..pos];
                if content.len() > limits.max_len {
                    return Err(BerError::TooLong {
                        len: content.len(),
                        limit: limits.max_len,
                    });
                }
                let end = pos + 2;
                return Ok((
                    Tlv {
                        tag,
                        raw: &buf[..end],
                        content,
                        indefinite: true,
                        depth,
                        limits,
                    },
                    end,
                ));
            }
            let (_, used) = parse_tlv(rest, depth + 1, limits)?;
            pos += used;
        }
    }
    let len = if lb & 0x80 == 0 {
        lb as usize
    } else {
        let n = (lb & 0x7f) as usize;
        if n == 0x7f {
            return Err(BerError::BadLength);
        }
        let octets = buf.get(hdr..hdr + n).ok_or(BerError::Truncated)?;
        hdr += n;
        let mut l: usize = 0;
        for b in octets {
            l = l.checked_mul(256).ok_or(BerError::Overflow)? | *b as usize;
        }
        l
    };
    if len > limits.max_len {
        return Err(BerError::TooLong {
            len,
            limit: limits.max_len,
        });
    }
    let end = hdr.checked_add(len).ok_or(BerError::Overflow)?;
    if end > buf.len() {
        return Err(BerError::Truncated);
    }
    Ok((
        Tlv {
            tag,
            raw: &buf[..end],
            content: &buf[hdr..end],
            indefinite: false,
            depth,
            limits,
        },
        end,
    ))
}

/// Appends a definite-form length.
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Minimal two's-complement content octets of an integer.
pub fn i64_content(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut i = 0;
    while i < 7 {
        let (b, n) = (bytes[i], bytes[i + 1]);
        if (b == 0 && n & 0x80 == 0) || (b == 0xff && n & 0x80 != 0) {
            i += 1;
        } else {
            break;
        }
    }
    bytes[i..].to_vec()
}

/// Minimal content octets of a non-negative integer (a leading 0x00 when the top bit is set).
pub fn u64_content(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// A BER writer producing definite-length encodings.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    /// An empty writer with room for `n` octets.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    /// The encoding so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
    /// The encoding so far, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
    /// Number of octets written.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing was written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Appends pre-encoded octets (a complete element encoded elsewhere).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// Writes an element with the given content octets.
    pub fn tlv(&mut self, tag: Tag, content: &[u8]) {
        tag.encode(&mut self.buf);
        encode_len(content.len(), &mut self.buf);
        self.buf.extend_from_slice(content);
    }
    /// Writes a constructed element whose children `f` writes. The length is fixed up afterwards.
    pub fn constructed(&mut self, tag: Tag, f: impl FnOnce(&mut Writer)) {
        tag.as_constructed().encode(&mut self.buf);
        let len_pos = self.buf.len();
        self.buf.push(0);
        let start = self.buf.len();
        f(self);
        let len = self.buf.len() - start;
        if len >= 0x80 {
            let mut l = Vec::with_capacity(9);
            encode_len(len, &mut l);
            // Make room for the long form and shift the content right.
            let extra = l.len() - 1;
            self.buf.splice(len_pos..len_pos + 1, l);
            debug_assert_eq!(self.buf.len(), start + extra + len);
        } else {
            self.buf[len_pos] = len as u8;
        }
    }
    /// INTEGER (or ENUMERATED with [`Tag::ENUMERATED`]).
    pub fn integer(&mut self, tag: Tag, v: i64) {
        self.tlv(tag, &i64_content(v));
    }
    /// Non-negative INTEGER from u64.
    pub fn unsigned(&mut self, tag: Tag, v: u64) {
        self.tlv(tag, &u64_content(v));
    }
    /// BOOLEAN (DER form, 0xFF for TRUE).
    pub fn boolean(&mut self, tag: Tag, v: bool) {
        self.tlv(tag, &[if v { 0xff } else { 0 }]);
    }
    /// NULL.
    pub fn null(&mut self, tag: Tag) {
        self.tlv(tag, &[]);
    }
    /// OCTET STRING or any string type.
    pub fn octets(&mut self, tag: Tag, v: &[u8]) {
        self.tlv(tag, v);
    }
    /// OBJECT IDENTIFIER.
    pub fn oid(&mut self, tag: Tag, oid: &Oid) {
        self.tlv(tag, &oid.to_ber_content());
    }
    /// BIT STRING from octets and the number of unused bits in the last octet.
    pub fn bit_string(&mut self, tag: Tag, unused: u8, bits: &[u8]) {
        tag.encode(&mut self.buf);
        encode_len(bits.len() + 1, &mut self.buf);
        self.buf.push(unused);
        self.buf.extend_from_slice(bits);
    }
}

#[cfg(test)]
mod tag_form_tests {
    use super::*;

    #[test]
    fn high_tag_number_form_only_above_30() {
        // [UNIVERSAL 16] written in the long form (found by fuzzing the native-mode decoder).
        assert_eq!(parse_tag(&[0x3f, 0x10]), Err(BerError::NonMinimalTag));
        assert_eq!(parse_tag(&[0xbf, 0x1e]), Err(BerError::NonMinimalTag));
        // A leading 0x80 subsequent octet is not minimal either.
        assert_eq!(parse_tag(&[0xbf, 0x80, 0x1f]), Err(BerError::NonMinimalTag));
        // Tag numbers from 31 on use it.
        let (t, n) = parse_tag(&[0xbf, 0x1f]).unwrap();
        assert_eq!((t.number, n, t.class), (31, 2, Class::Context));
        let (t, n) = parse_tag(&[0x9f, 0x81, 0x00]).unwrap();
        assert_eq!((t.number, n), (128, 3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            65535,
            i64::MAX,
            i64::MIN,
        ] {
            let c = i64_content(v);
            assert_eq!(decode_i64(&c).unwrap(), v, "{v}");
        }
        assert_eq!(i64_content(128), vec![0, 128]);
        assert_eq!(i64_content(-128), vec![0x80]);
        assert_eq!(u64_content(0x80), vec![0, 0x80]);
        assert_eq!(u64_content(0), vec![0]);
    }

    #[test]
    fn long_form_lengths_and_tags() {
        let mut w = Writer::new();
        let big = vec![7u8; 300];
        w.constructed(Tag::context(40, true), |w| {
            w.octets(Tag::OCTET_STRING, &big)
        });
        let b = w.finish();
        assert_eq!(&b[..2], &[0xbf, 0x28]);
        let mut r = Reader::new(&b, Limits::default());
        let t = r.read().unwrap();
        assert_eq!(t.tag(), Tag::context(40, true));
        assert_eq!(t.single_child().unwrap().content(), &big[..]);
    }

    #[test]
    fn indefinite_length_keeps_raw() {
        let b = [0x30, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00, 0x05, 0x00];
        let mut r = Reader::new(&b, Limits::default());
        let t = r.read().unwrap();
        assert!(t.is_indefinite());
        assert_eq!(t.content(), &[2, 1, 5]);
        assert_eq!(t.raw().len(), 7);
        assert_eq!(r.read().unwrap().tag(), Tag::NULL);
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let l = Limits {
            max_depth: 3,
            max_len: 100,
        };
        assert_eq!(Reader::new(&[0x30], l).read(), Err(BerError::Truncated));
        assert_eq!(
            Reader::new(&[0x04, 0x85, 1, 0, 0, 0, 0], l).read(),
            Err(BerError::TooLong {
                len: 1 << 32,
                limit: 100
            })
        );
        assert!(Reader::new(&[0x04, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1], l)
            .read()
            .is_err());
        assert_eq!(
            Reader::new(&[0x04, 0x80, 0, 0], l).read(),
            Err(BerError::BadLength)
        );
        // Deep indefinite nesting.
        let deep = [
            0x30, 0x80, 0x30, 0x80, 0x30, 0x80, 0x30, 0x80, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(Reader::new(&deep, l).read(), Err(BerError::TooDeep(3)));
        // Definite nesting is checked when children are read.
        let nested = [0x30, 0x06, 0x30, 0x04, 0x30, 0x02, 0x30, 0x00];
        let t = Reader::new(&nested, l).read().unwrap();
        let t2 = t.children().unwrap().read().unwrap();
        let t3 = t2.children().unwrap().read().unwrap();
        assert_eq!(t3.children().unwrap().read(), Err(BerError::TooDeep(3)));
    }

    proptest::proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data, Limits { max_depth: 8, max_len: 1000 });
            for t in r.by_ref() {
                match t {
                    Ok(t) => { if t.tag().constructed { let _ = t.children().map(|c| c.count()); } let _ = t.as_i64(); let _ = t.as_oid(); }
                    Err(_) => break,
                }
            }
        }

        #[test]
        fn integer_round_trip(v in proptest::prelude::any::<i64>()) {
            let mut w = Writer::new();
            w.integer(Tag::INTEGER, v);
            let b = w.finish();
            let t = Reader::new(&b, Limits::default()).expect(Tag::INTEGER).unwrap();
            proptest::prop_assert_eq!(t.as_i64().unwrap(), v);
        }
    }
}

/// Entry point shared by the `ber` fuzz target and the corpus replay test.
pub mod fuzzing {
    use super::{Limits, Reader, Tlv};

    fn walk(t: Tlv<'_>) {
        let _ = t.as_i64();
        let _ = t.as_u64();
        let _ = t.as_oid();
        let _ = t.as_bit_string();
        let _ = t.as_bool();
        if let Ok(children) = t.children() {
            for c in children {
                match c {
                    Ok(c) => walk(c),
                    Err(_) => break,
                }
            }
        }
    }

    /// Walks arbitrary input as nested BER with the default limits, decoding every primitive
    /// as each type. Must never panic; recursion is bounded by [`Limits::max_depth`].
    pub fn walk_all(data: &[u8]) {
        for t in Reader::new(data, Limits::default()) {
            match t {
                Ok(t) => walk(t),
                Err(_) => break,
            }
        }
    }
}
