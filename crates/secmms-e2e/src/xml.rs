//! XML encoding of the SecPDUs for the XMPP operational environment (§16; our reconstruction of
//! the Annex C XSD, namespace [`E2E_NS`]).
//!
//! The encoder and decoder work on the same Rust types as the BER codec of [`crate::pdu`]: there
//! is no second model of the PDUs. Element names are the ASN.1 type and component names of §13.5,
//! mapped the way X.693/X.694 map ASN.1 to XML:
//!
//! * a SecPDU is a global element named after its type (`<HandshakeReq>`, `<ClearTransfer>`, …);
//! * a SEQUENCE is an element with one child element per present component, in ASN.1 order;
//! * a SEQUENCE OF has one child per item, named after the item type (`<DiffieHellman>`,
//!   `<AlgorithmIdentifier>`);
//! * a CHOICE (`encr-mode`) contains the element of the chosen alternative (`<aea>` / `<non-aea>`);
//! * INTEGER → `xs:integer`, BOOLEAN → `xs:boolean` (`reqRekey`/`changedKey` are omitted when
//!   FALSE, their DEFAULT, as in DER), ENUMERATED → the identifier as text
//!   (`<diag>protocol-error</diag>`), OBJECT IDENTIFIER → dotted decimal text, GeneralizedTime →
//!   the lexical form of [`TimeStamp::to_generalized`] (§13.1.2), NMTOKEN → text;
//! * OCTET STRING → [`OCTET_STRING_FORM`], open types (applData, AlgorithmIdentifier parameters)
//!   → [`OPEN_TYPE_FORM`], BIT STRING → one `0`/`1` character per bit ([`MAX_BSTRING_BITS`]).
//!
//! The XSDs that describe the output are `xsd/E2E_4.xsd` and `xsd/ENV_4.xsd` in this crate.
//!
//! # Covered characters
//!
//! Signatures, ICVs and the AEAD AAD cover the **exact characters** between `<tbs>`…`</tbs>`,
//! `<tbp>`…`</tbp>` and `<token2>`…`</token2>` (§13.4, §16.3: no canonicalisation). In a
//! [`SecPdu`] the fields [`Handshake::tbs`], [`Token3Pdu::tbs`], [`Transfer::tbp`] and
//! [`Transfer::token2_content`] hold the covered octets *of the encoding the value was decoded
//! from or built for*: [`decode`] stores the characters exactly as received, and [`encode`] emits
//! them verbatim (as [`SecPdu::encode`] does for BER), so a decoded PDU re-encodes without
//! breaking its signature. [`to_xml_form`] and [`to_ber_form`] recompute those fields from the
//! decoded values when a PDU moves from one encoding to the other.
//!
//! Emitted XML is deterministic: no XML declaration, no whitespace between elements, the
//! namespace declared once (as the default namespace) on the SecPDU element.
//!
//! # Example: the engine over XML, wrapped for an XMPP stanza
//!
//! ```
//! # use secmms_e2e::doc_support::*;
//! use std::sync::Arc;
//! use secmms_e2e::{xml, E2eClient, E2eConfig, E2eServer, Output, SecPduKind, TimeStamp, WireEncoding};
//! let (mut cctx, mut sctx) = demo_contexts();
//! for ctx in [&mut cctx, &mut sctx] {
//!     ctx.config = Arc::new(E2eConfig { encoding: WireEncoding::Xml, ..(*ctx.config).clone() });
//! }
//! let now = TimeStamp::from_unix_secs(1_750_000_000);
//! let mut client = E2eClient::new(cctx, Box::new(secmms_pki::crypto::OsRandom), 1);
//! let mut server = E2eServer::new(sctx, Box::new(secmms_pki::crypto::OsRandom), 7);
//! let req = client.handshake_req(Some(&[0xa8, 0x00]), now).unwrap();
//! // The XMPP layer puts this into an <iq type="set"> …
//! let payload = xml::env_wrap(std::str::from_utf8(&req).unwrap());
//! assert!(payload.starts_with("<e2e xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"><HandshakeReq "));
//! // … and the peer's XMPP layer hands the SecPDU's characters to its engine.
//! let (kind, secpdu) = xml::env_unwrap(&payload, &Default::default()).unwrap();
//! assert_eq!(kind, SecPduKind::HandshakeReq);
//! let out = server.receive(kind, secpdu.as_bytes(), now).unwrap();
//! assert!(matches!(out, Output::HandshakeRequested { .. }));
//! ```
//!
//! # Decoder
//!
//! The decoder accepts any namespace prefixes, whitespace between elements, comments, processing
//! instructions, CDATA and character references, as an XML parser must, and is bounded by
//! [`XmlLimits`] (size, depth, element count). DOCTYPE declarations and attributes other than
//! namespace declarations are refused. Unknown elements after the known components of an
//! extensible SEQUENCE (one with `...` in §13.5) are skipped, as the BER decoder skips unknown
//! trailing components ([`UNKNOWN_EXTENSIONS_SKIPPED`]). Every failure is an [`XmlError`]; the
//! engine reports it as `protocol-error`, like a BER decoding failure.

use std::ops::Range;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::NsReader;
use secmms_ber::{Oid, Reader};

use crate::diag::{DtDiagnostic, HandshakeDiagnostic};
use crate::limits::{self, XmlLimits};
use crate::pdu::*;
use crate::time::TimeStamp;

/// Namespace of the SecPDU elements (§16.1, Annex C): `http://www.iec.ch/62351/2018/E2E_4`.
pub const E2E_NS: &str = "http://www.iec.ch/62351/2018/E2E_4";
/// Namespace of the environment wrapper (§16.1, Annex D): `http://www.iec.ch/62351/2018/ENV_4`.
pub const ENV_NS: &str = "http://www.iec.ch/62351/2018/ENV_4";
/// DECISION §16.3 (element names unknown): the ENV_4 wrapper element that carries exactly one
/// SecPDU element inside an XMPP stanza, `<e2e xmlns="…/ENV_4">…</e2e>`. It has no attributes:
/// the association is identified by the `assoID` inside the SecPDU (§16.5).
pub const ENV_ELEMENT: &str = "e2e";

/// The lexical form chosen for a binary value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryForm {
    /// `xs:hexBinary`: two hexadecimal digits per octet (upper case on output, either case
    /// accepted).
    HexBinary,
    /// `xs:base64Binary` (RFC 4648 alphabet with padding, no line breaks on output; whitespace
    /// accepted on input).
    Base64Binary,
}

/// DECISION §13.5 (XER note) / open question 17: every OCTET STRING (certificates, DH values,
/// signature, IV, nonce, ICV, Encrypted-ApplData) is written as `xs:hexBinary`, the XER default.
/// Only this form is accepted: the reconstruction's "accept both" cannot be honoured because a
/// text such as `0A1B` is valid in both lexical spaces with different values.
pub const OCTET_STRING_FORM: BinaryForm = BinaryForm::HexBinary;

/// DECISION §16.3: the protected PDU (`applData`, the PrPDU) and the other open type
/// (AlgorithmIdentifier `parameters`) are carried as `xs:base64Binary` of their **BER octets**.
/// No MMS XER codec exists in this workspace, so the PrPDU is not written as XER (as IEC
/// 61850-8-2 would); the decoded octets must form exactly one BER element, as in the BER
/// encoding. In EncrTransfer the plaintext is likewise the PrPDU's BER octets and the ciphertext
/// is an OCTET STRING ([`OCTET_STRING_FORM`]).
pub const OPEN_TYPE_FORM: BinaryForm = BinaryForm::Base64Binary;

/// DECISION (X.693 `xmlbstring`): a BIT STRING (`version`, `confParams`) is written as one
/// character `0` or `1` per bit, first bit first, without an unused-bit count. Named-bit lists
/// drop trailing zero bits as in DER (`{v1}` = `1`, `{applProtected}` = `01`). At most this many
/// bits are accepted (the BER decoder's 8-octet bound).
pub const MAX_BSTRING_BITS: usize = 56;

/// DECISION (extensibility, §13.5 `...`): unknown elements following the known components of an
/// extensible SEQUENCE are skipped (bounded by [`XmlLimits`]), mirroring the BER decoder. They
/// stay inside the covered characters. SecPDU elements themselves are not extensible.
pub const UNKNOWN_EXTENSIONS_SKIPPED: bool = true;

/// Errors of the XML SecPDU codec. The engine maps every one to `protocol-error` (§14.3 step 1,
/// §14.4 step 1); the XMPP mapping maps the wrapper errors to events 18.3–18.5.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The input exceeds [`XmlLimits::max_len`].
    #[error("XML input of {0} octets exceeds the limit")]
    TooLarge(usize),
    /// Elements nest deeper than [`XmlLimits::max_depth`].
    #[error("XML nesting exceeds the depth limit")]
    TooDeep,
    /// More elements than [`XmlLimits::max_elements`].
    #[error("XML element count exceeds the limit")]
    TooManyElements,
    /// The input is not UTF-8.
    #[error("XML input is not UTF-8")]
    NotUtf8,
    /// Not well-formed XML (position: octet offset near the error).
    #[error("malformed XML near octet {0}")]
    Syntax(usize),
    /// A DOCTYPE declaration (refused: no DTDs, no entity definitions).
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    /// An attribute other than a namespace declaration.
    #[error("unexpected attribute near octet {0}")]
    Attribute(usize),
    /// An element of the right name in another namespace (or none).
    #[error("element near octet {0} is not in the expected namespace")]
    Namespace(usize),
    /// Another element, text or end tag where this element was required.
    #[error("expected <{expected}> near octet {pos}")]
    Expected {
        /// The element name required.
        expected: &'static str,
        /// Octet offset.
        pos: usize,
    },
    /// An element where only its end tag may follow.
    #[error("unexpected element near octet {0}")]
    UnexpectedElement(usize),
    /// Character data where only elements may appear, or an element inside a value.
    #[error("unexpected character data near octet {0}")]
    UnexpectedText(usize),
    /// The root element is not one of the eleven SecPDU elements.
    #[error("not a SecPDU element")]
    UnknownSecPdu,
    /// The SecPDU element is of another kind than the environment said.
    #[error("expected {expected:?}, found {found:?}")]
    KindMismatch {
        /// Kind announced by the environment.
        expected: SecPduKind,
        /// Kind of the root element.
        found: SecPduKind,
    },
    /// A value that breaks a constraint of §13.5 (lexical form, size, pattern).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The wrapper element is not `<e2e>` in the ENV_4 namespace (event 18.3).
    #[error("wrapper is not <e2e> in the ENV_4 namespace")]
    EnvNamespace,
    /// The wrapper does not contain exactly one SecPDU element (events 18.4/18.5).
    #[error("the ENV_4 wrapper must contain exactly one SecPDU element")]
    EnvContent,
    /// The wrapped SecPDU element relies on a namespace declared outside it, so it cannot be
    /// verified on its own.
    #[error("the SecPDU element must declare the E2E_4 namespace itself")]
    NamespaceNotOnSecPdu,
    /// [`encode`] was given a PDU whose covered octets are not XML text (a BER-form value; use
    /// [`to_xml_form`] first).
    #[error("covered octets are not XML text")]
    NotXmlForm,
}

type XResult<T> = Result<T, XmlError>;

// ====================================================================== names

/// The element name of a SecPDU kind: its ASN.1 type name (§13.5).
pub fn element_name(kind: SecPduKind) -> &'static str {
    match kind {
        SecPduKind::HandshakeReq => "HandshakeReq",
        SecPduKind::HandshakeAcc => "HandshakeAcc",
        SecPduKind::ApplicationReject => "ApplicationReject",
        SecPduKind::HandshakeSecReject => "HandshakeSecReject",
        SecPduKind::HandshakeSecAbort => "HandshakeSecAbort",
        SecPduKind::DtSecAbort => "DtSecAbort",
        SecPduKind::ApplAbort => "ApplAbort",
        SecPduKind::ReleaseReq => "ReleaseReq",
        SecPduKind::ReleaseRsp => "ReleaseRsp",
        SecPduKind::ClearTransfer => "ClearTransfer",
        SecPduKind::EncrTransfer => "EncrTransfer",
    }
}

/// The SecPDU kind of an element name, if it is one.
pub fn kind_of(name: &str) -> Option<SecPduKind> {
    SecPduKind::ALL
        .into_iter()
        .find(|k| element_name(*k) == name)
}

// ====================================================================== lexical helpers

const HEX: &[u8; 16] = b"0123456789ABCDEF";
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches(is_xml_ws)
}

fn put_hex(out: &mut String, v: &[u8]) {
    out.reserve(v.len() * 2);
    for b in v {
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 15) as usize]));
    }
}

fn put_base64(out: &mut String, v: &[u8]) {
    out.reserve(v.len().div_ceil(3) * 4);
    for c in v.chunks(3) {
        let n = (c[0] as u32) << 16
            | (c.get(1).copied().unwrap_or(0) as u32) << 8
            | c.get(2).copied().unwrap_or(0) as u32;
        out.push(char::from(B64[(n >> 18) as usize & 63]));
        out.push(char::from(B64[(n >> 12) as usize & 63]));
        out.push(if c.len() > 1 {
            char::from(B64[(n >> 6) as usize & 63])
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            char::from(B64[n as usize & 63])
        } else {
            '='
        });
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex(s: &str, max: usize, what: &'static str) -> XResult<Vec<u8>> {
    let s = trim_ws(s).as_bytes();
    if s.len() % 2 != 0 || s.len() / 2 > max {
        return Err(XmlError::Invalid(what));
    }
    s.chunks(2)
        .map(|p| match (hex_val(p[0]), hex_val(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(XmlError::Invalid(what)),
        })
        .collect()
}

fn b64_val(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes `xs:base64Binary` (whitespace ignored, padding required, unused bits zero).
fn parse_base64(s: &str, max: usize, what: &'static str) -> XResult<Vec<u8>> {
    let chars: Vec<u8> = s.bytes().filter(|c| !is_xml_ws(char::from(*c))).collect();
    if chars.len() % 4 != 0 || chars.len() / 4 * 3 > max.saturating_add(2) {
        return Err(XmlError::Invalid(what));
    }
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    let quads = chars.len() / 4;
    for (i, q) in chars.chunks(4).enumerate() {
        let last = i + 1 == quads;
        let pad = match (q[2], q[3]) {
            (b'=', b'=') if last => 2,
            (_, b'=') if last => 1,
            _ => 0,
        };
        let mut n = 0u32;
        for (j, &c) in q.iter().enumerate() {
            let v = if j >= 4 - pad {
                0
            } else {
                b64_val(c).ok_or(XmlError::Invalid(what))?
            };
            n = n << 6 | v;
        }
        // Bits that fall outside the last octet must be zero (xs:base64Binary lexical space).
        let unused_mask = match pad {
            2 => 0xffff,
            1 => 0xff,
            _ => 0,
        };
        if n & unused_mask != 0 {
            return Err(XmlError::Invalid(what));
        }
        out.push((n >> 16) as u8);
        if pad < 2 {
            out.push((n >> 8) as u8);
        }
        if pad < 1 {
            out.push(n as u8);
        }
    }
    if out.len() > max {
        return Err(XmlError::Invalid(what));
    }
    Ok(out)
}

fn put_binary(out: &mut String, form: BinaryForm, v: &[u8]) {
    match form {
        BinaryForm::HexBinary => put_hex(out, v),
        BinaryForm::Base64Binary => put_base64(out, v),
    }
}

fn parse_binary(form: BinaryForm, s: &str, max: usize, what: &'static str) -> XResult<Vec<u8>> {
    match form {
        BinaryForm::HexBinary => parse_hex(s, max, what),
        BinaryForm::Base64Binary => parse_base64(s, max, what),
    }
}

/// The octets of an open type must be exactly one BER element within the limits.
fn check_ber_element(v: &[u8], lim: &XmlLimits, what: &'static str) -> XResult<()> {
    let mut r = Reader::new(v, lim.ber);
    r.read().map_err(|_| XmlError::Invalid(what))?;
    r.finish().map_err(|_| XmlError::Invalid(what))
}

/// Strict dotted OID: decimal arcs without signs or leading zeros.
fn parse_oid(s: &str) -> XResult<Oid> {
    let s = trim_ws(s);
    let mut arcs = Vec::new();
    for p in s.split('.') {
        let ok = !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'));
        // Oid::new enforces the real arc limit; this only stops collecting early.
        if !ok || arcs.len() > 64 {
            return Err(XmlError::Invalid("OBJECT IDENTIFIER"));
        }
        arcs.push(
            p.parse::<u64>()
                .map_err(|_| XmlError::Invalid("OBJECT IDENTIFIER"))?,
        );
    }
    // The first two arcs share one BER subidentifier (40·a + b); it must fit in 64 bits so the
    // value can be re-encoded in BER.
    if arcs.len() >= 2 && arcs[1] > u64::MAX - 80 {
        return Err(XmlError::Invalid("OBJECT IDENTIFIER"));
    }
    Oid::new(&arcs).map_err(|_| XmlError::Invalid("OBJECT IDENTIFIER"))
}

fn parse_i64(s: &str, what: &'static str) -> XResult<i64> {
    let s = trim_ws(s);
    if s.len() > 40 {
        return Err(XmlError::Invalid(what));
    }
    s.parse::<i64>().map_err(|_| XmlError::Invalid(what))
}

fn parse_bool(s: &str, what: &'static str) -> XResult<bool> {
    match trim_ws(s) {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(XmlError::Invalid(what)),
    }
}

fn parse_time(s: &str) -> XResult<TimeStamp> {
    let s = trim_ws(s);
    if s.len() > 32 {
        return Err(XmlError::Invalid("time"));
    }
    TimeStamp::parse_generalized(s.as_bytes()).map_err(|_| XmlError::Invalid("time"))
}

fn parse_asso(s: &str) -> XResult<AssoId> {
    AssoId::new(trim_ws(s)).ok_or(XmlError::Invalid("assoID"))
}

fn parse_bits(s: &str, what: &'static str) -> XResult<Vec<bool>> {
    let s = trim_ws(s);
    if s.len() > MAX_BSTRING_BITS {
        return Err(XmlError::Invalid(what));
    }
    s.bytes()
        .map(|b| match b {
            b'0' => Ok(false),
            b'1' => Ok(true),
            _ => Err(XmlError::Invalid(what)),
        })
        .collect()
}

fn version_bits(v: &Version) -> String {
    let n = (v.bits.len() * 8).saturating_sub(v.unused as usize);
    (0..n)
        .map(|i| {
            let on = v
                .bits
                .get(i / 8)
                .is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
            if on {
                '1'
            } else {
                '0'
            }
        })
        .collect()
}

fn version_from_bits(bits: &[bool]) -> Version {
    let mut octets = vec![0u8; bits.len().div_ceil(8)];
    for (i, on) in bits.iter().enumerate() {
        if *on {
            octets[i / 8] |= 0x80 >> (i % 8);
        }
    }
    Version {
        unused: (octets.len() * 8 - bits.len()) as u8,
        bits: octets,
    }
}

fn conf_bits(c: ConfidentialityParms) -> String {
    // DER named-bit list: trailing zero bits removed.
    let mut s: String = [c.tls_protected, c.appl_protected, c.vpn]
        .iter()
        .map(|on| if *on { '1' } else { '0' })
        .collect();
    while s.ends_with('0') {
        s.pop();
    }
    s
}

// ====================================================================== writer

/// Builds element text without whitespace.
struct Out(String);

impl Out {
    fn new() -> Out {
        Out(String::new())
    }
    fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }
    fn close(&mut self, name: &str) {
        // DECISION (§16.3, what XMPP servers do): an element with no content is written
        // `<name/>`, the form Prosody (and other servers that re-serialise stanzas) gives it, so
        // the signed and MACed characters reach the peer unchanged. Text is never written with
        // `<` (it is escaped), so `<name>` at the end of the buffer is this element's start tag.
        let n = self.0.len();
        let start = n.saturating_sub(name.len() + 2);
        if self.0.get(start..) == Some(&format!("<{name}>")[..]) {
            self.0.truncate(n - 1);
            self.0.push_str("/>");
            return;
        }
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }
    fn text(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&quick_xml::escape::escape(text));
        self.close(name);
    }
    fn binary(&mut self, name: &str, form: BinaryForm, v: &[u8]) {
        self.open(name);
        put_binary(&mut self.0, form, v);
        self.close(name);
    }
    fn octets(&mut self, name: &str, v: &[u8]) {
        self.binary(name, OCTET_STRING_FORM, v);
    }
    fn alg(&mut self, name: &str, a: &AlgorithmIdentifier) {
        self.open(name);
        self.text("algorithm", &a.algorithm.to_string());
        if let Some(p) = &a.parameters {
            self.binary("parameters", OPEN_TYPE_FORM, p);
        }
        self.close(name);
    }
    fn alg_list(&mut self, name: &str, list: &[AlgorithmIdentifier]) {
        self.open(name);
        for a in list {
            self.alg("AlgorithmIdentifier", a);
        }
        self.close(name);
    }
    fn token1(&mut self, t: &ClearToken1) {
        self.open("token1");
        self.alg("sigAlg", &t.sig_alg);
        self.octets("pkCert", &t.pk_cert);
        if let Some(p) = &t.cert_path {
            self.octets("certPath", p);
        }
        self.text("version", &version_bits(&t.version));
        self.text("assoID", t.asso_id.as_str());
        self.open("dhKey");
        for d in &t.dh_key {
            self.open("DiffieHellman");
            self.text("dhGroup", &d.group.to_string());
            self.octets("dhPublicKey", &d.public_key);
            self.close("DiffieHellman");
        }
        self.close("dhKey");
        self.alg("hmac", &t.hmac);
        self.text("time", &t.time.to_generalized());
        self.open("encr-mode");
        match &t.encr_mode {
            EncrMode::Aea(list) => self.alg_list("aea", list),
            EncrMode::NonAea { encr, icv } => {
                self.open("non-aea");
                if let Some(e) = encr {
                    self.alg_list("encr", e);
                }
                self.alg_list("icvAlgID", icv);
                self.close("non-aea");
            }
        }
        self.close("encr-mode");
        self.text("confParams", &conf_bits(t.conf_params));
        if let Some(a) = &t.att_cert {
            self.octets("attCert", a);
        }
        self.close("token1");
    }
    fn token3(&mut self, t: &ClearToken3) {
        self.open("token3");
        self.alg("sigAlg", &t.sig_alg);
        self.text("version", &version_bits(&t.version));
        if let Some(a) = &t.asso_id {
            self.text("assoID", a.as_str());
        }
        self.text("time", &t.time.to_generalized());
        self.octets("pkCert", &t.pk_cert);
        if let Some(p) = &t.cert_path {
            self.octets("certPath", p);
        }
        self.close("token3");
    }
    fn signature(&mut self, s: &Signature) {
        self.open("sign");
        self.alg("algo", &s.algo);
        self.octets("sign", &s.sign);
        self.close("sign");
    }
    fn authenticator(&mut self, a: &Authenticator) {
        self.open("auth");
        if let Some(n) = &a.nonce {
            self.octets("nonce", n);
        }
        self.alg("algorithm", &a.algorithm);
        self.octets("icv", &a.icv);
        self.close("auth");
    }
    fn root_open(&mut self, kind: SecPduKind) {
        self.0.push('<');
        self.0.push_str(element_name(kind));
        self.0.push_str(" xmlns=\"");
        self.0.push_str(E2E_NS);
        self.0.push_str("\">");
    }
    /// `<name>` + covered characters + `</name>`.
    fn covered(&mut self, name: &str, covered: &[u8]) -> XResult<()> {
        let s = std::str::from_utf8(covered).map_err(|_| XmlError::NotXmlForm)?;
        self.open(name);
        self.0.push_str(s);
        self.close(name);
        Ok(())
    }
}

// ====================================================================== covered areas

/// The characters between `<tbs>` and `</tbs>` of HandshakeReq/Acc for a token and applData
/// (what is signed in the XML encoding, §13.4.1, §16.3).
pub fn handshake_tbs(token1: &ClearToken1, appl_data: Option<&[u8]>) -> String {
    let mut o = Out::new();
    o.token1(token1);
    if let Some(a) = appl_data {
        o.binary("applData", OPEN_TYPE_FORM, a);
    }
    o.0
}

/// The characters between `<tbs>` and `</tbs>` of a ClearToken3 PDU.
pub fn token3_tbs(token3: &ClearToken3, body: &Token3Body) -> String {
    let mut o = Out::new();
    o.token3(token3);
    match body {
        Token3Body::ApplData(Some(a)) => o.binary("applData", OPEN_TYPE_FORM, a),
        Token3Body::HandshakeDiag(Some(d)) => o.text("diag", d.name()),
        Token3Body::DtDiag(Some(d)) => o.text("diag", d.name()),
        _ => {}
    }
    o.0
}

/// The characters between `<token2>` and `</token2>` (the AEAD AAD of §13.4.3 in XML).
pub fn token2_content(t: &ClearToken2) -> String {
    let mut o = Out::new();
    o.text("assoID", t.asso_id.as_str());
    o.text("time", &t.time.to_generalized());
    o.text("seq", &t.seq.to_string());
    if let Some(iv) = &t.iv {
        o.octets("iv", iv);
    }
    if let Some(k) = &t.rekey {
        o.octets("rekey", k);
    }
    if t.req_rekey {
        o.text("reqRekey", "true");
    }
    if t.changed_key {
        o.text("changedKey", "true");
    }
    o.0
}

/// Builds a transfer in XML form from a token, its content characters (see [`token2_content`])
/// and the applData: the PrPDU octets for ClearTransfer, the ciphertext when `encrypted`.
/// `auth` is left empty for the caller to compute over `tbp` (the XML counterpart of
/// [`Transfer::assemble`]).
pub fn assemble_transfer(
    token2: ClearToken2,
    token2_content: String,
    appl_data: Vec<u8>,
    encrypted: bool,
) -> Transfer {
    let mut o = Out(String::with_capacity(
        token2_content.len() + appl_data.len() * 2 + 48,
    ));
    o.open("token2");
    o.0.push_str(&token2_content);
    o.close("token2");
    if encrypted {
        o.octets("applData", &appl_data);
    } else {
        o.binary("applData", OPEN_TYPE_FORM, &appl_data);
    }
    Transfer {
        token2,
        appl_data,
        auth: None,
        tbp: o.0.into_bytes(),
        token2_content: token2_content.into_bytes(),
    }
}

/// Octet offset of the first covered character (`tbs` or `tbp` content) in the output of
/// [`encode`] for a PDU of this kind; `None` for HandshakeReq/Acc, where `pp` comes first. The
/// engine uses it to find `tbp` in what it sends.
pub fn covered_offset(kind: SecPduKind) -> Option<usize> {
    let lead = match kind {
        SecPduKind::HandshakeReq | SecPduKind::HandshakeAcc => return None,
        SecPduKind::ClearTransfer | SecPduKind::EncrTransfer => "<tbp>".len(),
        _ => "<tbs>".len(),
    };
    // `<` name ` xmlns="` namespace `">` lead
    Some(1 + element_name(kind).len() + " xmlns=\"".len() + E2E_NS.len() + "\">".len() + lead)
}

/// The same PDU with its covered octets (`tbs`, `tbp`, `token2_content`) recomputed as the
/// canonical XML characters of its values.
pub fn to_xml_form(pdu: &SecPdu) -> SecPdu {
    recompute(pdu, true)
}

/// The same PDU with its covered octets recomputed as BER content octets (so that
/// [`SecPdu::encode`] produces the BER encoding of its values).
pub fn to_ber_form(pdu: &SecPdu) -> SecPdu {
    recompute(pdu, false)
}

fn recompute(pdu: &SecPdu, xml: bool) -> SecPdu {
    let hs = |h: &Handshake| Handshake {
        tbs: if xml {
            handshake_tbs(&h.token1, h.appl_data.as_deref()).into_bytes()
        } else {
            Handshake::tbs_content(&h.token1, h.appl_data.as_deref())
        },
        ..h.clone()
    };
    let t3 = |p: &Token3Pdu| Token3Pdu {
        tbs: if xml {
            token3_tbs(&p.token3, &p.body).into_bytes()
        } else {
            Token3Pdu::tbs_content(&p.token3, &p.body)
        },
        ..p.clone()
    };
    let tr = |t: &Transfer, encrypted: bool| {
        let mut n = if xml {
            assemble_transfer(
                t.token2.clone(),
                token2_content(&t.token2),
                t.appl_data.clone(),
                encrypted,
            )
        } else {
            Transfer::assemble(
                t.token2.clone(),
                t.token2.encode_content(),
                t.appl_data.clone(),
                encrypted,
            )
        };
        n.auth = t.auth.clone();
        n
    };
    match pdu {
        SecPdu::HandshakeReq(h) => SecPdu::HandshakeReq(hs(h)),
        SecPdu::HandshakeAcc(h) => SecPdu::HandshakeAcc(hs(h)),
        SecPdu::ApplicationReject(p) => SecPdu::ApplicationReject(t3(p)),
        SecPdu::HandshakeSecReject(p) => SecPdu::HandshakeSecReject(t3(p)),
        SecPdu::HandshakeSecAbort(p) => SecPdu::HandshakeSecAbort(t3(p)),
        SecPdu::DtSecAbort(p) => SecPdu::DtSecAbort(t3(p)),
        SecPdu::ApplAbort(p) => SecPdu::ApplAbort(t3(p)),
        SecPdu::ReleaseReq(p) => SecPdu::ReleaseReq(t3(p)),
        SecPdu::ReleaseRsp(p) => SecPdu::ReleaseRsp(t3(p)),
        SecPdu::ClearTransfer(t) => SecPdu::ClearTransfer(tr(t, false)),
        SecPdu::EncrTransfer(t) => SecPdu::EncrTransfer(tr(t, true)),
    }
}

// ====================================================================== encoder

/// XML encoding of a SecPDU in XML form. The covered areas are emitted verbatim from the stored
/// `tbs` / `tbp` characters (see the module documentation); a PDU whose covered octets are BER
/// gives [`XmlError::NotXmlForm`] (convert it with [`to_xml_form`]).
pub fn encode(pdu: &SecPdu) -> XResult<String> {
    let kind = pdu.kind();
    let mut o = Out(String::with_capacity(256));
    o.root_open(kind);
    match pdu {
        SecPdu::HandshakeReq(h) | SecPdu::HandshakeAcc(h) => {
            o.text("pp", &h.pp);
            o.covered("tbs", &h.tbs)?;
            o.signature(&h.sign);
        }
        SecPdu::ApplicationReject(p)
        | SecPdu::HandshakeSecReject(p)
        | SecPdu::HandshakeSecAbort(p)
        | SecPdu::DtSecAbort(p)
        | SecPdu::ApplAbort(p)
        | SecPdu::ReleaseReq(p)
        | SecPdu::ReleaseRsp(p) => {
            o.covered("tbs", &p.tbs)?;
            o.signature(&p.sign);
        }
        SecPdu::ClearTransfer(t) | SecPdu::EncrTransfer(t) => {
            o.covered("tbp", &t.tbp)?;
            if let Some(a) = &t.auth {
                o.authenticator(a);
            }
        }
    }
    o.close(element_name(kind));
    Ok(o.0)
}

// ====================================================================== pull parser

/// Which namespace an element is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    E2e,
    Env,
    Other,
}

#[derive(Debug)]
enum Node {
    Open {
        name: String,
        ns: Ns,
        /// Offset of `<`.
        start: usize,
        /// Offset just after the start tag's `>` (first content character).
        content: usize,
        /// The start tag itself binds its prefix (or the default namespace) to [`E2E_NS`].
        declares_e2e: bool,
    },
    Close {
        /// Offset of the end tag's `<` (end of the content).
        start: usize,
        /// Offset just after the end tag.
        end: usize,
    },
    Text {
        text: String,
        start: usize,
    },
    Eof,
}

struct Parser<'a> {
    r: NsReader<&'a [u8]>,
    peeked: Option<Node>,
    pending_close: Option<usize>,
    depth: usize,
    elements: usize,
    lim: XmlLimits,
}

fn attr_check(e: &BytesStart<'_>, pos: usize) -> XResult<bool> {
    let prefix = e.name().prefix();
    let mut declares = false;
    for a in e.attributes() {
        let a = a.map_err(|_| XmlError::Syntax(pos))?;
        match a.key.as_namespace_binding() {
            Some(decl) => {
                let same = match (decl, prefix) {
                    (PrefixDeclaration::Default, None) => true,
                    (PrefixDeclaration::Named(p), Some(q)) => p == q.as_ref(),
                    _ => false,
                };
                if same && a.value.as_ref() == E2E_NS.as_bytes() {
                    declares = true;
                }
            }
            None => return Err(XmlError::Attribute(pos)),
        }
    }
    Ok(declares)
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, lim: XmlLimits) -> XResult<Parser<'a>> {
        if text.len() > lim.max_len {
            return Err(XmlError::TooLarge(text.len()));
        }
        let mut r = NsReader::from_str(text);
        let c = r.config_mut();
        c.trim_text(false);
        c.expand_empty_elements = false;
        c.check_end_names = true;
        Ok(Parser {
            r,
            peeked: None,
            pending_close: None,
            depth: 0,
            elements: 0,
            lim,
        })
    }

    fn read_node(&mut self) -> XResult<Node> {
        if let Some(p) = self.pending_close.take() {
            self.depth = self.depth.saturating_sub(1);
            return Ok(Node::Close { start: p, end: p });
        }
        loop {
            let before = self.r.buffer_position() as usize;
            let (ns, ev) = match self.r.read_resolved_event() {
                Ok((ns, ev)) => {
                    let ns = match ns {
                        ResolveResult::Bound(n) if n.as_ref() == E2E_NS.as_bytes() => Ns::E2e,
                        ResolveResult::Bound(n) if n.as_ref() == ENV_NS.as_bytes() => Ns::Env,
                        _ => Ns::Other,
                    };
                    (ns, ev)
                }
                Err(_) => return Err(XmlError::Syntax(self.r.error_position() as usize)),
            };
            let after = self.r.buffer_position() as usize;
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    let declares_e2e = attr_check(e, before)?;
                    self.elements += 1;
                    if self.elements > self.lim.max_elements {
                        return Err(XmlError::TooManyElements);
                    }
                    self.depth += 1;
                    if self.depth > self.lim.max_depth {
                        return Err(XmlError::TooDeep);
                    }
                    let name = std::str::from_utf8(e.local_name().as_ref())
                        .map_err(|_| XmlError::Syntax(before))?
                        .to_string();
                    if matches!(ev, Event::Empty(_)) {
                        self.pending_close = Some(after);
                    }
                    return Ok(Node::Open {
                        name,
                        ns,
                        start: before,
                        content: after,
                        declares_e2e,
                    });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(Node::Close {
                        start: before,
                        end: after,
                    });
                }
                Event::Text(t) => {
                    let text = t.unescape().map_err(|_| XmlError::Syntax(before))?;
                    return Ok(Node::Text {
                        text: text.into_owned(),
                        start: before,
                    });
                }
                Event::CData(c) => {
                    let text = std::str::from_utf8(&c)
                        .map_err(|_| XmlError::Syntax(before))?
                        .to_string();
                    return Ok(Node::Text {
                        text,
                        start: before,
                    });
                }
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Decl(_) if before == 0 => continue,
                Event::Decl(_) => return Err(XmlError::Syntax(before)),
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Eof => return Ok(Node::Eof),
            }
        }
    }

    fn peek(&mut self) -> XResult<&Node> {
        if self.peeked.is_none() {
            self.peeked = Some(self.read_node()?);
        }
        match &self.peeked {
            Some(n) => Ok(n),
            None => Err(XmlError::Syntax(0)),
        }
    }

    fn next(&mut self) -> XResult<Node> {
        match self.peeked.take() {
            Some(n) => Ok(n),
            None => self.read_node(),
        }
    }

    /// Skips whitespace-only character data; other character data is an error.
    fn skip_ws(&mut self) -> XResult<()> {
        loop {
            match self.peek()? {
                Node::Text { text, start } => {
                    if !text.chars().all(is_xml_ws) {
                        return Err(XmlError::UnexpectedText(*start));
                    }
                    self.next()?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next element must be `<name>` in E2E_4; returns the offset of its content.
    fn open(&mut self, name: &'static str) -> XResult<usize> {
        match self.try_open(name)? {
            Some(c) => Ok(c),
            None => {
                let pos = match self.peek()? {
                    Node::Open { start, .. } | Node::Close { start, .. } => *start,
                    Node::Text { start, .. } => *start,
                    Node::Eof => 0,
                };
                Err(XmlError::Expected {
                    expected: name,
                    pos,
                })
            }
        }
    }

    /// Consumes `<name>` if it is the next element.
    fn try_open(&mut self, want: &'static str) -> XResult<Option<usize>> {
        self.skip_ws()?;
        match self.peek()? {
            Node::Open {
                name, ns, start, ..
            } if name == want => {
                if *ns != Ns::E2e {
                    return Err(XmlError::Namespace(*start));
                }
            }
            _ => return Ok(None),
        }
        match self.next()? {
            Node::Open { content, .. } => Ok(Some(content)),
            _ => Err(XmlError::Syntax(0)),
        }
    }

    /// The next node must be the end tag of the current element; returns its offset.
    fn close(&mut self) -> XResult<usize> {
        self.skip_ws()?;
        match self.next()? {
            Node::Close { start, .. } => Ok(start),
            Node::Open { start, .. } => Err(XmlError::UnexpectedElement(start)),
            Node::Text { start, .. } => Err(XmlError::UnexpectedText(start)),
            Node::Eof => Err(XmlError::Syntax(0)),
        }
    }

    /// Like [`Self::close`] for an extensible SEQUENCE: unknown trailing elements are skipped.
    fn close_ext(&mut self) -> XResult<usize> {
        loop {
            self.skip_ws()?;
            if UNKNOWN_EXTENSIONS_SKIPPED && matches!(self.peek()?, Node::Open { .. }) {
                self.next()?;
                self.skip_rest()?;
            } else {
                return self.close();
            }
        }
    }

    /// Consumes everything up to the end tag of the element whose start tag was just consumed;
    /// returns the offset just after that end tag.
    fn skip_rest(&mut self) -> XResult<usize> {
        let mut depth = 1usize;
        loop {
            match self.next()? {
                Node::Open { .. } => depth += 1,
                Node::Close { end, .. } => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(end);
                    }
                }
                Node::Text { .. } => {}
                Node::Eof => return Err(XmlError::Syntax(0)),
            }
        }
    }

    /// Character data of a simple-typed element up to its end tag (the start tag consumed).
    fn text(&mut self) -> XResult<String> {
        let mut s = String::new();
        loop {
            match self.peek()? {
                Node::Text { .. } => {
                    if let Node::Text { text, .. } = self.next()? {
                        if s.is_empty() {
                            s = text;
                        } else {
                            s.push_str(&text);
                        }
                    }
                }
                Node::Open { start, .. } => return Err(XmlError::UnexpectedText(*start)),
                _ => break,
            }
        }
        self.close()?;
        Ok(s)
    }

    fn leaf(&mut self, name: &'static str) -> XResult<String> {
        self.open(name)?;
        self.text()
    }

    fn opt_leaf(&mut self, name: &'static str) -> XResult<Option<String>> {
        match self.try_open(name)? {
            Some(_) => Ok(Some(self.text()?)),
            None => Ok(None),
        }
    }

    fn octets(&mut self, name: &'static str, max: usize) -> XResult<Vec<u8>> {
        let s = self.leaf(name)?;
        parse_binary(OCTET_STRING_FORM, &s, max, name)
    }

    fn opt_octets(&mut self, name: &'static str, max: usize) -> XResult<Option<Vec<u8>>> {
        match self.opt_leaf(name)? {
            Some(s) => Ok(Some(parse_binary(OCTET_STRING_FORM, &s, max, name)?)),
            None => Ok(None),
        }
    }

    /// An open type: BER octets of exactly one element.
    fn open_type(&mut self, s: &str, what: &'static str) -> XResult<Vec<u8>> {
        let v = parse_binary(OPEN_TYPE_FORM, s, self.lim.ber.max_len, what)?;
        check_ber_element(&v, &self.lim, what)?;
        Ok(v)
    }

    fn opt_open_type(&mut self, name: &'static str) -> XResult<Option<Vec<u8>>> {
        match self.opt_leaf(name)? {
            Some(s) => Ok(Some(self.open_type(&s, name)?)),
            None => Ok(None),
        }
    }

    // ------------------------------------------------------------------ types

    fn alg_body(&mut self) -> XResult<AlgorithmIdentifier> {
        let algorithm = parse_oid(&self.leaf("algorithm")?)?;
        let parameters = self.opt_open_type("parameters")?;
        self.close_ext()?;
        Ok(AlgorithmIdentifier {
            algorithm,
            parameters,
        })
    }

    fn alg(&mut self, name: &'static str) -> XResult<AlgorithmIdentifier> {
        self.open(name)?;
        self.alg_body()
    }

    fn alg_list(&mut self) -> XResult<Vec<AlgorithmIdentifier>> {
        let mut v = Vec::new();
        while self.try_open("AlgorithmIdentifier")?.is_some() {
            if v.len() >= limits::MAX_ALGORITHMS {
                return Err(XmlError::Invalid("algorithm list too long"));
            }
            v.push(self.alg_body()?);
        }
        self.close()?;
        if v.is_empty() {
            return Err(XmlError::Invalid("empty algorithm list"));
        }
        Ok(v)
    }

    fn version(&mut self) -> XResult<Version> {
        let bits = parse_bits(&self.leaf("version")?, "version")?;
        Ok(version_from_bits(&bits))
    }

    fn token1(&mut self) -> XResult<ClearToken1> {
        self.open("token1")?;
        let sig_alg = self.alg("sigAlg")?;
        let pk_cert = self.octets("pkCert", limits::MAX_CERT)?;
        let cert_path = self.opt_octets("certPath", limits::MAX_CERT_PATH)?;
        let version = self.version()?;
        let asso_id = parse_asso(&self.leaf("assoID")?)?;
        self.open("dhKey")?;
        let mut dh_key = Vec::new();
        while self.try_open("DiffieHellman")?.is_some() {
            if dh_key.len() >= limits::MAX_DH_ENTRIES {
                return Err(XmlError::Invalid("dhKey too long"));
            }
            let group = parse_i64(&self.leaf("dhGroup")?, "dhGroup")?;
            let public_key = self.octets("dhPublicKey", limits::MAX_DH_VALUE)?;
            self.close_ext()?;
            dh_key.push(DiffieHellman { group, public_key });
        }
        self.close()?;
        if dh_key.is_empty() {
            return Err(XmlError::Invalid("empty dhKey"));
        }
        let hmac = self.alg("hmac")?;
        let time = parse_time(&self.leaf("time")?)?;
        self.open("encr-mode")?;
        let encr_mode = if self.try_open("aea")?.is_some() {
            EncrMode::Aea(self.alg_list()?)
        } else if self.try_open("non-aea")?.is_some() {
            let encr = match self.try_open("encr")? {
                Some(_) => Some(self.alg_list()?),
                None => None,
            };
            self.open("icvAlgID")?;
            let icv = self.alg_list()?;
            self.close()?;
            EncrMode::NonAea { encr, icv }
        } else {
            return Err(XmlError::Invalid("encr-mode"));
        };
        self.close()?;
        let cp = parse_bits(&self.leaf("confParams")?, "confParams")?;
        let conf_params = ConfidentialityParms {
            tls_protected: cp.first().copied().unwrap_or(false),
            appl_protected: cp.get(1).copied().unwrap_or(false),
            vpn: cp.get(2).copied().unwrap_or(false),
        };
        let att_cert = self.opt_octets("attCert", limits::MAX_CERT)?;
        self.close_ext()?;
        Ok(ClearToken1 {
            sig_alg,
            pk_cert,
            cert_path,
            version,
            asso_id,
            dh_key,
            hmac,
            time,
            encr_mode,
            conf_params,
            att_cert,
        })
    }

    fn token3(&mut self) -> XResult<ClearToken3> {
        self.open("token3")?;
        let sig_alg = self.alg("sigAlg")?;
        let version = self.version()?;
        let asso_id = match self.opt_leaf("assoID")? {
            Some(s) => Some(parse_asso(&s)?),
            None => None,
        };
        let time = parse_time(&self.leaf("time")?)?;
        let pk_cert = self.octets("pkCert", limits::MAX_CERT)?;
        let cert_path = self.opt_octets("certPath", limits::MAX_CERT_PATH)?;
        self.close_ext()?;
        Ok(ClearToken3 {
            sig_alg,
            version,
            asso_id,
            time,
            pk_cert,
            cert_path,
        })
    }

    /// The token2 element; returns the token and the range of its content.
    fn token2(&mut self) -> XResult<(ClearToken2, Range<usize>)> {
        let start = self.open("token2")?;
        let asso_id = parse_asso(&self.leaf("assoID")?)?;
        let time = parse_time(&self.leaf("time")?)?;
        let seq = parse_i64(&self.leaf("seq")?, "seq")?;
        if !(0..=i32::MAX as i64).contains(&seq) {
            return Err(XmlError::Invalid("seq"));
        }
        let iv = self.opt_octets("iv", 64)?;
        let rekey = self.opt_octets("rekey", limits::MAX_DH_VALUE)?;
        let req_rekey = match self.opt_leaf("reqRekey")? {
            Some(s) => parse_bool(&s, "reqRekey")?,
            None => false,
        };
        let changed_key = match self.opt_leaf("changedKey")? {
            Some(s) => parse_bool(&s, "changedKey")?,
            None => false,
        };
        let end = self.close_ext()?;
        Ok((
            ClearToken2 {
                asso_id,
                time,
                seq: seq as u32,
                iv,
                rekey,
                req_rekey,
                changed_key,
            },
            start..end,
        ))
    }

    fn signature(&mut self) -> XResult<Signature> {
        self.open("sign")?;
        let algo = self.alg("algo")?;
        let sign = self.octets("sign", 1024)?;
        self.close_ext()?;
        Ok(Signature { algo, sign })
    }

    fn authenticator(&mut self) -> XResult<Option<Authenticator>> {
        if self.try_open("auth")?.is_none() {
            return Ok(None);
        }
        let nonce = self.opt_octets("nonce", 64)?;
        let algorithm = self.alg("algorithm")?;
        let icv = self.octets("icv", 64)?;
        self.close_ext()?;
        Ok(Some(Authenticator {
            nonce,
            algorithm,
            icv,
        }))
    }

    // ------------------------------------------------------------------ PDUs

    fn handshake(&mut self, src: &str) -> XResult<Handshake> {
        let pp = self.leaf("pp")?;
        let pp = trim_ws(&pp);
        if pp.is_empty() || pp.len() > limits::MAX_PP || pp.chars().any(is_xml_ws) {
            return Err(XmlError::Invalid("pp"));
        }
        let pp = pp.to_string();
        let start = self.open("tbs")?;
        let token1 = self.token1()?;
        let appl_data = self.opt_open_type("applData")?;
        let end = self.close_ext()?;
        let sign = self.signature()?;
        Ok(Handshake {
            pp,
            token1,
            appl_data,
            sign,
            tbs: covered(src, start..end)?,
        })
    }

    fn token3_pdu(&mut self, kind: SecPduKind, src: &str) -> XResult<Token3Pdu> {
        let start = self.open("tbs")?;
        let token3 = self.token3()?;
        let body = match kind {
            SecPduKind::HandshakeSecReject | SecPduKind::HandshakeSecAbort => {
                Token3Body::HandshakeDiag(match self.opt_leaf("diag")? {
                    Some(s) => Some(diag_from_name(&s, HandshakeDiagnostic::ALL)?),
                    None => None,
                })
            }
            SecPduKind::DtSecAbort => Token3Body::DtDiag(match self.opt_leaf("diag")? {
                Some(s) => Some(diag_from_name(&s, DtDiagnostic::ALL)?),
                None => None,
            }),
            SecPduKind::ApplicationReject => match self.opt_open_type("applData")? {
                Some(a) => Token3Body::ApplData(Some(a)),
                None => return Err(XmlError::Invalid("ApplicationReject without applData")),
            },
            _ => Token3Body::ApplData(self.opt_open_type("applData")?),
        };
        let end = self.close_ext()?;
        let sign = self.signature()?;
        Ok(Token3Pdu {
            token3,
            body,
            sign,
            tbs: covered(src, start..end)?,
            unknown_diag: None,
        })
    }

    fn transfer(&mut self, encrypted: bool, src: &str) -> XResult<Transfer> {
        let start = self.open("tbp")?;
        let (token2, t2) = self.token2()?;
        let ad = self.leaf("applData")?;
        let appl_data = if encrypted {
            parse_binary(
                OCTET_STRING_FORM,
                &ad,
                limits::MAX_SECPDU,
                "Encrypted-ApplData",
            )?
        } else {
            self.open_type(&ad, "applData")?
        };
        let end = self.close_ext()?;
        let auth = self.authenticator()?;
        if !encrypted && auth.is_none() {
            return Err(XmlError::Invalid("ClearTransfer without auth"));
        }
        Ok(Transfer {
            token2,
            appl_data,
            auth,
            tbp: covered(src, start..end)?,
            token2_content: covered(src, t2)?,
        })
    }

    /// Skips whitespace, comments and PIs after the root element; then the input must end.
    fn finish(&mut self) -> XResult<()> {
        self.skip_ws()?;
        match self.next()? {
            Node::Eof => Ok(()),
            Node::Open { start, .. } => Err(XmlError::UnexpectedElement(start)),
            Node::Close { start, .. } | Node::Text { start, .. } => Err(XmlError::Syntax(start)),
        }
    }
}

fn covered(src: &str, r: Range<usize>) -> XResult<Vec<u8>> {
    src.get(r)
        .map(|s| s.as_bytes().to_vec())
        .ok_or(XmlError::Syntax(0))
}

/// An ENUMERATED identifier. DECISION (as for BER numbers, §14.2): a well-formed identifier
/// this implementation does not know decodes as `no-reason-given`.
fn diag_from_name<D: Copy + DiagName>(s: &str, all: &[D]) -> XResult<D> {
    let s = trim_ws(s);
    let well_formed = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !well_formed {
        return Err(XmlError::Invalid("diag"));
    }
    all.iter()
        .copied()
        .find(|d| d.diag_name() == s)
        .or_else(|| all.first().copied())
        .ok_or(XmlError::Invalid("diag"))
}

trait DiagName {
    fn diag_name(self) -> &'static str;
}
impl DiagName for HandshakeDiagnostic {
    fn diag_name(self) -> &'static str {
        self.name()
    }
}
impl DiagName for DtDiagnostic {
    fn diag_name(self) -> &'static str {
        self.name()
    }
}

// ====================================================================== decoder

/// Decodes one SecPDU element (the kind is given by its name). Its covered fields hold the
/// characters exactly as received.
pub fn decode(text: &str, lim: &XmlLimits) -> XResult<SecPdu> {
    let mut p = Parser::new(text, *lim)?;
    p.skip_ws()?;
    let kind = match p.next()? {
        Node::Open {
            name, ns, start, ..
        } => {
            let kind = kind_of(&name).ok_or(XmlError::UnknownSecPdu)?;
            if ns != Ns::E2e {
                return Err(XmlError::Namespace(start));
            }
            kind
        }
        _ => return Err(XmlError::UnknownSecPdu),
    };
    let pdu = match kind {
        SecPduKind::HandshakeReq => SecPdu::HandshakeReq(p.handshake(text)?),
        SecPduKind::HandshakeAcc => SecPdu::HandshakeAcc(p.handshake(text)?),
        SecPduKind::ClearTransfer => SecPdu::ClearTransfer(p.transfer(false, text)?),
        SecPduKind::EncrTransfer => SecPdu::EncrTransfer(p.transfer(true, text)?),
        k => {
            let t = p.token3_pdu(k, text)?;
            match k {
                SecPduKind::ApplicationReject => SecPdu::ApplicationReject(t),
                SecPduKind::HandshakeSecReject => SecPdu::HandshakeSecReject(t),
                SecPduKind::HandshakeSecAbort => SecPdu::HandshakeSecAbort(t),
                SecPduKind::DtSecAbort => SecPdu::DtSecAbort(t),
                SecPduKind::ApplAbort => SecPdu::ApplAbort(t),
                SecPduKind::ReleaseReq => SecPdu::ReleaseReq(t),
                _ => SecPdu::ReleaseRsp(t),
            }
        }
    };
    p.close()?;
    p.finish()?;
    Ok(pdu)
}

/// [`decode`] for a kind announced by the environment (a different root element is
/// [`XmlError::KindMismatch`]).
pub fn decode_as(kind: SecPduKind, text: &str, lim: &XmlLimits) -> XResult<SecPdu> {
    let pdu = decode(text, lim)?;
    if pdu.kind() != kind {
        return Err(XmlError::KindMismatch {
            expected: kind,
            found: pdu.kind(),
        });
    }
    Ok(pdu)
}

/// [`decode_as`] over octets (the engine's input); they must be UTF-8.
pub fn decode_octets(kind: SecPduKind, bytes: &[u8], lim: &XmlLimits) -> XResult<SecPdu> {
    if bytes.len() > lim.max_len {
        return Err(XmlError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    decode_as(kind, text, lim)
}

// ====================================================================== ENV_4 wrapper

/// Wraps one SecPDU element (as produced by [`encode`] or the engine) in the ENV_4 element of
/// §16.3: `<e2e xmlns="http://www.iec.ch/62351/2018/ENV_4">…</e2e>`. The SecPDU characters are
/// copied unchanged, so the covered areas stay intact.
pub fn env_wrap(secpdu: &str) -> String {
    let mut s = String::with_capacity(secpdu.len() + ENV_NS.len() + 24);
    s.push('<');
    s.push_str(ENV_ELEMENT);
    s.push_str(" xmlns=\"");
    s.push_str(ENV_NS);
    s.push_str("\">");
    s.push_str(secpdu);
    s.push_str("</");
    s.push_str(ENV_ELEMENT);
    s.push('>');
    s
}

/// Finds the one SecPDU element inside an ENV_4 wrapper and returns its kind and its exact
/// characters (a slice of `text`, from its `<` to the end of its end tag), ready for
/// [`decode`] or the engine. The wrapper must be `<e2e>` in [`ENV_NS`] with nothing but
/// whitespace, comments and PIs besides one child element in [`E2E_NS`]. DECISION §16.3: that
/// child must declare the E2E_4 namespace on itself (as in the §16.3 example), so that it can be
/// verified on its own. Only the wrapper is parsed here; the SecPDU is checked by [`decode`].
pub fn env_unwrap<'t>(text: &'t str, lim: &XmlLimits) -> XResult<(SecPduKind, &'t str)> {
    let wrap_lim = XmlLimits {
        max_depth: lim.max_depth.saturating_add(1),
        max_elements: lim.max_elements.saturating_add(1),
        ..*lim
    };
    let mut p = Parser::new(text, wrap_lim)?;
    p.skip_ws()?;
    match p.next()? {
        Node::Open { name, ns, .. } if name == ENV_ELEMENT && ns == Ns::Env => {}
        _ => return Err(XmlError::EnvNamespace),
    }
    p.skip_ws()?;
    let (kind, start) = match p.next()? {
        Node::Open {
            name,
            ns,
            start,
            declares_e2e,
            ..
        } => {
            let kind = kind_of(&name)
                .filter(|_| ns == Ns::E2e)
                .ok_or(XmlError::EnvContent)?;
            if !declares_e2e {
                return Err(XmlError::NamespaceNotOnSecPdu);
            }
            (kind, start)
        }
        _ => return Err(XmlError::EnvContent),
    };
    let end = p.skip_rest()?;
    p.skip_ws()?;
    match p.next()? {
        Node::Close { .. } => {}
        _ => return Err(XmlError::EnvContent),
    }
    p.finish()?;
    let inner = text.get(start..end).ok_or(XmlError::EnvContent)?;
    Ok((kind, inner))
}

// ====================================================================== tests

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> XmlLimits {
        XmlLimits::default()
    }

    fn sample_token3() -> ClearToken3 {
        ClearToken3 {
            sig_alg: crate::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::EcdsaSha256),
            version: Version::v1(),
            asso_id: Some(AssoId::new("1:7").unwrap_or_else(|| AssoId::client(1))),
            time: TimeStamp(1_750_000_000_123),
            pk_cert: vec![0x30, 0x03, 0x02, 0x01, 0x05],
            cert_path: None,
        }
    }

    fn sample_abort() -> SecPdu {
        let token3 = sample_token3();
        let body = Token3Body::DtDiag(Some(DtDiagnostic::InvalidSequenceNumber));
        let tbs = token3_tbs(&token3, &body).into_bytes();
        SecPdu::DtSecAbort(Token3Pdu {
            token3,
            body,
            sign: Signature {
                algo: crate::alg::sig_alg_id(secmms_pki::SignatureAlgorithm::EcdsaSha256),
                sign: vec![0xde, 0xad],
            },
            tbs,
            unknown_diag: None,
        })
    }

    #[test]
    fn golden_dt_sec_abort() {
        let s = encode(&sample_abort()).unwrap();
        assert_eq!(
            s,
            concat!(
                "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"><tbs><token3>",
                "<sigAlg><algorithm>1.2.840.10045.4.3.2</algorithm></sigAlg>",
                "<version>1</version><assoID>1:7</assoID><time>20250615150640.123Z</time>",
                "<pkCert>3003020105</pkCert></token3><diag>invalid-sequence-number</diag></tbs>",
                "<sign><algo><algorithm>1.2.840.10045.4.3.2</algorithm></algo>",
                "<sign>DEAD</sign></sign></DtSecAbort>"
            )
        );
        assert_eq!(
            covered_offset(SecPduKind::DtSecAbort),
            Some(s.find("<token3>").unwrap())
        );
        assert_eq!(decode(&s, &lim()).unwrap(), sample_abort());
    }

    #[test]
    fn covered_characters_are_kept_exactly() {
        // Prefixes, whitespace, a comment and a character reference inside tbs: the decoded
        // values are the same, the covered characters are exactly those received.
        let s = encode(&sample_abort()).unwrap();
        let odd = s
            .replace(
                "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">",
                concat!(
                    "<?xml version=\"1.0\"?>\n<e:DtSecAbort xmlns:e=\"http://www.iec.ch/62351/2018/E2E_4\"",
                    " xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">\n "
                ),
            )
            .replace("</DtSecAbort>", "</e:DtSecAbort>\n")
            .replace("<tbs>", "<e:tbs>")
            .replace("</tbs>", "</e:tbs>")
            .replace("<token3>", "<token3 xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">\n  <!-- c -->")
            .replace("<assoID>1:7", "<assoID> 1&#x3A;7 ");
        let d = decode(&odd, &lim()).unwrap();
        let start = odd.find("<e:tbs>").unwrap() + "<e:tbs>".len();
        let end = odd.find("</e:tbs>").unwrap();
        match (&d, sample_abort()) {
            (SecPdu::DtSecAbort(p), SecPdu::DtSecAbort(q)) => {
                assert_eq!(p.tbs, &odd.as_bytes()[start..end]);
                assert_eq!(p.token3, q.token3);
                assert_eq!(p.body, q.body);
                assert_eq!(p.sign, q.sign);
            }
            _ => panic!("kind"),
        }
        // Re-encoding keeps the covered characters (the signature stays valid).
        let again = encode(&d).unwrap();
        assert!(again.contains(&odd[start..end]));
    }

    #[test]
    fn empty_elements_and_cdata() {
        let s = encode(&sample_abort())
            .unwrap()
            .replace("<sign>DEAD</sign>", "<sign><![CDATA[DE]]>AD</sign>");
        assert_eq!(decode(&s, &lim()).unwrap(), sample_abort());
        let v0 = s.replace("<version>1</version>", "<version/>");
        match decode(&v0, &lim()).unwrap() {
            SecPdu::DtSecAbort(p) => assert_eq!(p.token3.version, version_from_bits(&[])),
            _ => panic!("kind"),
        }
    }

    #[test]
    fn rejections() {
        let s = encode(&sample_abort()).unwrap();
        type Case = (String, fn(&XmlError) -> bool);
        let cases: Vec<Case> = vec![
            (s.replace(E2E_NS, "urn:other"), |e| {
                matches!(e, XmlError::Namespace(_))
            }),
            (format!("<!DOCTYPE x [<!ENTITY a 'b'>]>{s}"), |e| {
                matches!(e, XmlError::Doctype)
            }),
            (s.replace("<tbs>", "<tbs id=\"1\">"), |e| {
                matches!(e, XmlError::Attribute(_))
            }),
            (s.replace("<sign>DEAD</sign>", "<sign>DEA</sign>"), |e| {
                matches!(e, XmlError::Invalid("sign"))
            }),
            (
                s.replace("<version>1</version>", "<version>2</version>"),
                |e| matches!(e, XmlError::Invalid("version")),
            ),
            (s.replace("1:7", "1:7777"), |e| {
                matches!(e, XmlError::Invalid("assoID"))
            }),
            (s.replace("</token3>", "</token3>text"), |e| {
                matches!(e, XmlError::UnexpectedText(_))
            }),
            (format!("{s}<x/>"), |e| {
                matches!(e, XmlError::UnexpectedElement(_))
            }),
            (s.replace("DtSecAbort", "Unknown"), |e| {
                matches!(e, XmlError::UnknownSecPdu)
            }),
            (s[..s.len() - 3].to_string(), |e| {
                matches!(e, XmlError::Syntax(_))
            }),
            (
                s.replace("</sign></DtSecAbort>", "</sign><extra/></DtSecAbort>"),
                |e| matches!(e, XmlError::UnexpectedElement(_)),
            ),
        ];
        for (i, (x, ok)) in cases.iter().enumerate() {
            match decode(x, &lim()) {
                Err(e) => assert!(ok(&e), "case {i}: {e:?}"),
                Ok(_) => panic!("case {i} accepted"),
            }
        }
        assert!(matches!(
            decode_as(SecPduKind::ApplAbort, &s, &lim()),
            Err(XmlError::KindMismatch { .. })
        ));
        assert!(matches!(
            decode_octets(SecPduKind::DtSecAbort, &[0xff, 0xfe], &lim()),
            Err(XmlError::NotUtf8)
        ));
    }

    #[test]
    fn appl_data_must_be_one_ber_element_and_diag_names_are_checked() {
        let token3 = sample_token3();
        let body = Token3Body::ApplData(Some(vec![0x84, 0x00]));
        let pdu = SecPdu::ApplAbort(Token3Pdu {
            tbs: token3_tbs(&token3, &body).into_bytes(),
            token3,
            body,
            sign: Signature {
                algo: crate::alg::hmac_alg_id(),
                sign: vec![1],
            },
            unknown_diag: None,
        });
        let s = encode(&pdu).unwrap();
        assert!(s.contains("<applData>hAA=</applData>"));
        assert_eq!(decode(&s, &lim()).unwrap(), pdu);
        // 04 05 01: the length runs past the end; 84 00 84 00: two elements.
        for bad in ["BAUB", "hACEAA=="] {
            let x = s.replace("hAA=", bad);
            assert_eq!(
                decode(&x, &lim()),
                Err(XmlError::Invalid("applData")),
                "{bad}"
            );
        }
        // Diagnostics: unknown identifiers read as no-reason-given (as unknown BER numbers do),
        // malformed ones are refused.
        let d = encode(&sample_abort()).unwrap();
        let future = d.replace("invalid-sequence-number", "some-future-value");
        match decode(&future, &lim()).unwrap() {
            SecPdu::DtSecAbort(p) => {
                assert_eq!(
                    p.body,
                    Token3Body::DtDiag(Some(DtDiagnostic::NoReasonGiven))
                )
            }
            _ => panic!("kind"),
        }
        let junk = d.replace("invalid-sequence-number", "7");
        assert_eq!(decode(&junk, &lim()), Err(XmlError::Invalid("diag")));
    }

    #[test]
    fn unknown_extension_elements_are_skipped_inside_tokens() {
        let s = encode(&sample_abort())
            .unwrap()
            .replace("</token3>", "<future><a>1</a><b/></future></token3>");
        match decode(&s, &lim()).unwrap() {
            SecPdu::DtSecAbort(p) => {
                assert!(std::str::from_utf8(&p.tbs).unwrap().contains("<future>"))
            }
            _ => panic!("kind"),
        }
    }

    #[test]
    fn limits_are_enforced() {
        let s = encode(&sample_abort()).unwrap();
        let small = XmlLimits {
            max_len: s.len() - 1,
            ..lim()
        };
        assert!(matches!(decode(&s, &small), Err(XmlError::TooLarge(_))));
        let few = XmlLimits {
            max_elements: 5,
            ..lim()
        };
        assert!(matches!(decode(&s, &few), Err(XmlError::TooManyElements)));
        let deep = s.replace(
            "</token3>",
            &format!("{}{}</token3>", "<x>".repeat(40), "</x>".repeat(40)),
        );
        assert!(matches!(decode(&deep, &lim()), Err(XmlError::TooDeep)));
        let many = s.replace("</token3>", &format!("{}</token3>", "<x/>".repeat(2000)));
        assert!(matches!(
            decode(&many, &lim()),
            Err(XmlError::TooManyElements)
        ));
    }

    #[test]
    fn base64_and_hex_lexical_rules() {
        for v in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            &[0xff, 0x00, 0x7f, 0x80],
        ] {
            let mut s = String::new();
            put_base64(&mut s, v);
            assert_eq!(parse_base64(&s, 100, "x").unwrap(), v);
            let spaced: String = s.chars().flat_map(|c| [c, ' ']).collect();
            assert_eq!(parse_base64(&spaced, 100, "x").unwrap(), v);
            let mut h = String::new();
            put_hex(&mut h, v);
            assert_eq!(parse_hex(&h.to_lowercase(), 100, "x").unwrap(), v);
        }
        assert_eq!(parse_base64("YQ==", 10, "x").unwrap(), b"a");
        assert!(parse_base64("YR==", 10, "x").is_err()); // non-zero unused bits
        assert!(parse_base64("YQ=", 10, "x").is_err());
        assert!(parse_base64("Y=Q=", 10, "x").is_err());
        assert!(parse_base64("YQ==YQ==", 10, "x").is_err());
        assert!(parse_hex("0G", 10, "x").is_err());
        assert!(parse_hex("0011", 1, "x").is_err());
    }

    #[test]
    fn oid_and_bits() {
        assert_eq!(parse_oid("1.2.840").unwrap().to_string(), "1.2.840");
        for bad in [
            "",
            "1",
            "1.",
            "1.02",
            "+1.2",
            "1.2.x",
            "3.1",
            "1.40",
            "2.18446744073709551615",
        ] {
            assert!(parse_oid(bad).is_err(), "{bad}");
        }
        assert_eq!(version_bits(&Version::v1()), "1");
        assert_eq!(version_from_bits(&[true]), Version::v1());
        for cp in 0..8u8 {
            let c = ConfidentialityParms {
                tls_protected: cp & 1 != 0,
                appl_protected: cp & 2 != 0,
                vpn: cp & 4 != 0,
            };
            let b = parse_bits(&conf_bits(c), "c").unwrap();
            assert_eq!(b.first().copied().unwrap_or(false), c.tls_protected);
            assert_eq!(b.get(1).copied().unwrap_or(false), c.appl_protected);
            assert_eq!(b.get(2).copied().unwrap_or(false), c.vpn);
            assert!(!b.last().is_some_and(|x| !x), "trailing zero in {:?}", b);
        }
    }

    #[test]
    fn env_wrapper() {
        let s = encode(&sample_abort()).unwrap();
        let w = env_wrap(&s);
        assert_eq!(
            env_unwrap(&w, &lim()).unwrap(),
            (SecPduKind::DtSecAbort, s.as_str())
        );
        let spaced = format!("<e2e xmlns=\"{ENV_NS}\">\n  {s}\n</e2e>");
        assert_eq!(env_unwrap(&spaced, &lim()).unwrap().1, s.as_str());
        let wrong_ns = w.replace(ENV_NS, "urn:x");
        assert_eq!(env_unwrap(&wrong_ns, &lim()), Err(XmlError::EnvNamespace));
        let two = env_wrap(&format!("{s}{s}"));
        assert_eq!(env_unwrap(&two, &lim()), Err(XmlError::EnvContent));
        let none = env_wrap("");
        assert_eq!(env_unwrap(&none, &lim()), Err(XmlError::EnvContent));
        let unknown = env_wrap(&s.replace("DtSecAbort", "Other"));
        assert_eq!(env_unwrap(&unknown, &lim()), Err(XmlError::EnvContent));
        let inherited = format!(
            "<e2e xmlns=\"{ENV_NS}\" xmlns:s=\"{E2E_NS}\">{}</e2e>",
            s.replace(
                "<DtSecAbort xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">",
                "<s:DtSecAbort>"
            )
            .replace("</DtSecAbort>", "</s:DtSecAbort>")
        );
        assert_eq!(
            env_unwrap(&inherited, &lim()),
            Err(XmlError::NamespaceNotOnSecPdu)
        );
    }
}
