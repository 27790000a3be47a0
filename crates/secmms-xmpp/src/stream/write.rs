//! Writers for what the client sends: the stream header, negotiation elements and stanzas.
//!
//! Attribute values are written in double quotes with `&`, `<`, `>`, `"` and `'` escaped, and
//! tab, line feed and carriage return written as character references so that attribute-value
//! normalisation (XML 1.0 §3.3.3) at the receiver gives back the same string. Characters that XML
//! 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) are refused.
//!
//! Payloads (`payload` arguments) are inserted verbatim: they are the caller's exact characters,
//! e.g. an IEC 62351-4 `<e2e>` element whose signed part must not change (§16.3). The client
//! checks every complete stanza before sending it ([`super::check_outgoing`]).

use crate::ns;

/// A value that cannot be written as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A character XML 1.0 does not allow (§2.2 `Char`).
    #[error("character U+{0:04X} cannot appear in XML")]
    InvalidChar(u32),
    /// Not usable as an element name here (stanza error conditions are lower-case ASCII
    /// words joined by `-`, RFC 6120 §8.3.3).
    #[error("{0:?} is not a valid element name here")]
    InvalidName(String),
}

/// A stream header giving the namespace context of a client stream, used to check outgoing
/// stanzas.
pub const STREAM_CONTEXT_HEADER: &str = "<stream:stream xmlns=\"jabber:client\" \
     xmlns:stream=\"http://etherx.jabber.org/streams\">";

/// Closes our stream (RFC 6120 §4.4).
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// Asks for TLS (RFC 6120 §5.4.2.1).
pub const STARTTLS: &str = "<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>";

/// Initial presence (RFC 6121 §4.2), without priority or status.
pub const INITIAL_PRESENCE: &str = "<presence/>";

fn xml_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes an attribute value for a double-quoted attribute.
pub fn escape_attr(value: &str) -> Result<String, WriteError> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if !xml_char_ok(c) {
            return Err(WriteError::InvalidChar(u32::from(c)));
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Escapes character data.
pub fn escape_text(text: &str) -> Result<String, WriteError> {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !xml_char_ok(c) {
            return Err(WriteError::InvalidChar(u32::from(c)));
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn attr(out: &mut String, name: &str, value: Option<&str>) -> Result<(), WriteError> {
    if let Some(v) = value {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&escape_attr(v)?);
        out.push('"');
    }
    Ok(())
}

/// The opening of our stream (RFC 6120 §4.7): XML declaration and `<stream:stream>` to the
/// server's domain, `from` our bare JID once TLS protects the stream (§4.7.1).
pub fn stream_header(to: &str, from: Option<&str>, lang: &str) -> Result<String, WriteError> {
    let mut s = String::from("<?xml version=\"1.0\"?><stream:stream");
    attr(&mut s, "xmlns", Some(ns::CLIENT))?;
    attr(&mut s, "xmlns:stream", Some(ns::STREAMS))?;
    attr(&mut s, "version", Some("1.0"))?;
    attr(&mut s, "to", Some(to))?;
    attr(&mut s, "from", from)?;
    attr(&mut s, "xml:lang", Some(lang))?;
    s.push('>');
    Ok(s)
}

/// `<auth mechanism="…">` with the base64 initial response (RFC 6120 §6.4.2: an empty
/// response is sent as `=`).
pub fn sasl_auth(mechanism: &str, initial_response: &[u8]) -> Result<String, WriteError> {
    let mut s = String::from("<auth");
    attr(&mut s, "xmlns", Some(ns::SASL))?;
    attr(&mut s, "mechanism", Some(mechanism))?;
    s.push('>');
    if initial_response.is_empty() {
        s.push('=');
    } else {
        s.push_str(&openssl::base64::encode_block(initial_response));
    }
    s.push_str("</auth>");
    Ok(s)
}

/// Resource binding request (RFC 6120 §7.6).
pub fn bind(id: &str, resource: &str) -> Result<String, WriteError> {
    let mut s = String::from("<iq type=\"set\"");
    attr(&mut s, "id", Some(id))?;
    s.push_str("><bind xmlns=\"");
    s.push_str(ns::BIND);
    s.push_str("\">");
    if !resource.is_empty() {
        s.push_str("<resource>");
        s.push_str(&escape_text(resource)?);
        s.push_str("</resource>");
    }
    s.push_str("</bind></iq>");
    Ok(s)
}

/// Legacy session establishment (RFC 3921 §3), for servers that still require it.
pub fn session(id: &str) -> Result<String, WriteError> {
    let mut s = String::from("<iq type=\"set\"");
    attr(&mut s, "id", Some(id))?;
    s.push_str("><session xmlns=\"");
    s.push_str(ns::SESSION);
    s.push_str("\"/></iq>");
    Ok(s)
}

/// `type` of an `<iq/>` (RFC 6120 §8.2.3), the one definition: the clause 16 mapping
/// (`secmms_profiles::xmpp`) places SecPDUs by it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    /// `get`: a request for information (IEC 62351-4 §16.2: requests of services that only
    /// read).
    Get,
    /// `set`: a request to change something (IEC 62351-4 §16.2: HandshakeReq, ReleaseReq,
    /// writes).
    Set,
    /// `result`: the successful answer to a get or set.
    Result,
    /// `error`: a stanza error answering a get or set.
    Error,
}

impl IqType {
    /// The `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            IqType::Get => "get",
            IqType::Set => "set",
            IqType::Result => "result",
            IqType::Error => "error",
        }
    }

    /// Parses a `type` attribute value.
    pub fn parse(s: &str) -> Option<IqType> {
        Some(match s {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        })
    }
}

/// `type` of a `<message/>` (RFC 6121 §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `normal` (IEC 62351-4 §16.2: aborts, unconfirmed services).
    Normal,
    /// `chat`.
    Chat,
    /// `headline`.
    Headline,
    /// `groupchat`.
    Groupchat,
    /// `error`.
    Error,
}

impl MessageType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Chat => "chat",
            MessageType::Headline => "headline",
            MessageType::Groupchat => "groupchat",
            MessageType::Error => "error",
        }
    }
}

/// An `<iq/>` carrying `payload` verbatim (empty payload gives an empty element).
pub fn iq(type_: IqType, id: &str, to: Option<&str>, payload: &str) -> Result<String, WriteError> {
    let mut s = String::with_capacity(payload.len() + 96);
    s.push_str("<iq");
    attr(&mut s, "type", Some(type_.as_str()))?;
    attr(&mut s, "id", Some(id))?;
    attr(&mut s, "to", to)?;
    close_with(&mut s, "iq", payload);
    Ok(s)
}

/// A `<message/>` carrying `payload` verbatim.
pub fn message(
    type_: MessageType,
    id: Option<&str>,
    to: &str,
    payload: &str,
) -> Result<String, WriteError> {
    let mut s = String::with_capacity(payload.len() + 96);
    s.push_str("<message");
    attr(&mut s, "type", Some(type_.as_str()))?;
    attr(&mut s, "id", id)?;
    attr(&mut s, "to", Some(to))?;
    close_with(&mut s, "message", payload);
    Ok(s)
}

/// An XEP-0199 ping.
pub fn ping(id: &str, to: &str) -> Result<String, WriteError> {
    iq(
        IqType::Get,
        id,
        Some(to),
        &format!("<ping xmlns=\"{}\"/>", ns::PING),
    )
}

/// An `<iq type="error"/>` answering request `id` with a stanza error (RFC 6120 §8.3), e.g.
/// `("cancel", "service-unavailable")` — the IEC 62351-4 §16.4 responses.
pub fn iq_error(
    id: &str,
    to: Option<&str>,
    error_type: &str,
    condition: &str,
) -> Result<String, WriteError> {
    let mut inner = String::from("<error");
    attr(&mut inner, "type", Some(error_type))?;
    inner.push_str("><");
    let name_ok = !condition.is_empty()
        && condition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && condition
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase());
    if !name_ok {
        return Err(WriteError::InvalidName(condition.to_owned()));
    }
    inner.push_str(condition);
    attr(&mut inner, "xmlns", Some(ns::STANZAS))?;
    inner.push_str("/></error>");
    iq(IqType::Error, id, to, &inner)
}

fn close_with(s: &mut String, name: &str, payload: &str) {
    if payload.is_empty() {
        s.push_str("/>");
    } else {
        s.push('>');
        s.push_str(payload);
        s.push_str("</");
        s.push_str(name);
        s.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_escaping_round_trips_through_the_reader() {
        let nasty = "a&b<c>d\"e'f\tg\nh\ri é 🚀";
        let s = iq(IqType::Set, nasty, Some("bob@localhost/IEC"), "").unwrap();
        let st = crate::stream::check_outgoing(&s, &Default::default()).unwrap();
        assert_eq!(st.id.as_deref(), Some(nasty));
        assert_eq!(st.to.as_deref(), Some("bob@localhost/IEC"));
    }

    #[test]
    fn control_characters_are_refused() {
        assert_eq!(escape_attr("a\u{1}"), Err(WriteError::InvalidChar(1)));
        assert_eq!(
            escape_text("\u{FFFE}"),
            Err(WriteError::InvalidChar(0xFFFE))
        );
        assert!(message(MessageType::Normal, None, "x\u{0}", "").is_err());
    }

    #[test]
    fn iq_types_parse_back() {
        for t in [IqType::Get, IqType::Set, IqType::Result, IqType::Error] {
            assert_eq!(IqType::parse(t.as_str()), Some(t));
        }
        assert_eq!(IqType::parse("GET"), None);
        assert_eq!(IqType::parse(""), None);
    }

    #[test]
    fn text_escaping() {
        assert_eq!(escape_text("a<b&c>d\r").unwrap(), "a&lt;b&amp;c&gt;d&#13;");
    }

    #[test]
    fn empty_sasl_response_is_an_equals_sign() {
        assert!(sasl_auth("EXTERNAL", b"").unwrap().ends_with(">=</auth>"));
        assert!(sasl_auth("PLAIN", b"\0a\0b")
            .unwrap()
            .ends_with(">AGEAYg==</auth>"));
    }

    #[test]
    fn stanza_error_reply() {
        let s = iq_error("h1", Some("a@b/c"), "cancel", "service-unavailable").unwrap();
        assert_eq!(
            s,
            "<iq type=\"error\" id=\"h1\" to=\"a@b/c\"><error type=\"cancel\">\
             <service-unavailable xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"/></error></iq>"
        );
        crate::stream::check_outgoing(&s, &Default::default()).unwrap();
        assert!(iq_error("h1", None, "cancel", "x\"/><evil").is_err());
    }
}
