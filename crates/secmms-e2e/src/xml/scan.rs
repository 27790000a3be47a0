//! The bounded reader for an environment that carries a SecPDU element inside XML of its own
//! (the XMPP ENV_4 wrapper of §16.3, in `secmms-profiles`): the reader the SecPDU decoder runs
//! on, so that the wrapper is held to the same limits and rules as the SecPDU inside it.

use super::*;

/// A pull reader over XML text that holds SecPDU elements: namespace-aware, bounded by
/// [`XmlLimits`] (size, depth, element count), with the same rules as [`decode`] — only
/// namespace declarations as attributes, no DOCTYPE, an XML declaration only at the start;
/// comments and processing instructions are passed over. Every [`Node`] carries the octet
/// offsets of what it read, so that the caller can cut the exact characters of a SecPDU element
/// out of the text.
///
/// ```
/// use secmms_e2e::xml::{Node, Ns, Scanner, E2E_NS};
/// let text = format!("<w xmlns='urn:w'><DtSecAbort xmlns='{E2E_NS}'/></w>");
/// let mut s = Scanner::new(&text, "urn:w", Default::default()).unwrap();
/// assert!(matches!(s.next_node().unwrap(), Node::Open { ns: Ns::Outer, .. }));
/// match s.next_node().unwrap() {
///     Node::Open { name, ns: Ns::E2e, declares_e2e: true, start, .. } => {
///         let end = s.skip_rest().unwrap();
///         assert_eq!(&text[start..end], format!("<DtSecAbort xmlns='{E2E_NS}'/>"));
///         assert_eq!(name, "DtSecAbort");
///     }
///     n => panic!("{n:?}"),
/// }
/// assert!(matches!(s.next_node().unwrap(), Node::Close { .. }));
/// s.finish().unwrap();
/// ```
pub struct Scanner<'a> {
    p: Parser<'a>,
}

impl<'a> Scanner<'a> {
    /// Starts reading `text`; elements in the namespace `outer_ns` come out as [`Ns::Outer`].
    /// A text longer than [`XmlLimits::max_len`] is [`XmlError::TooLarge`].
    pub fn new(text: &'a str, outer_ns: &'a str, lim: XmlLimits) -> Result<Scanner<'a>, XmlError> {
        Ok(Scanner {
            p: Parser::with_outer(text, outer_ns, lim)?,
        })
    }

    /// The next node.
    pub fn next_node(&mut self) -> Result<Node, XmlError> {
        self.p.next()
    }

    /// Passes over character data that is only whitespace; other character data is
    /// [`XmlError::UnexpectedText`].
    pub fn skip_ws(&mut self) -> Result<(), XmlError> {
        self.p.skip_ws()
    }

    /// Reads up to the end tag of the element whose start tag [`Self::next_node`] just returned;
    /// returns the offset just after that end tag.
    pub fn skip_rest(&mut self) -> Result<usize, XmlError> {
        self.p.skip_rest()
    }

    /// Passes over whitespace, comments and processing instructions; then the input must end
    /// (another element is [`XmlError::UnexpectedElement`]).
    pub fn finish(&mut self) -> Result<(), XmlError> {
        self.p.finish()
    }
}
