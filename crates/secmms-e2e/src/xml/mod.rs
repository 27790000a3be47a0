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
//! The XSD that describes the output is `xsd/E2E_4.xsd` in this crate. The ENV_4 wrapper that
//! carries a SecPDU element in an XMPP stanza (§16.3) belongs to the XMPP mapping,
//! `secmms_profiles::xmpp`, with its XSD; it reads the wrapper with this module's [`Scanner`].
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
//! # Example: the engine over XML
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
//! // One SecPDU element in the E2E_4 namespace, declared on the element itself …
//! let text = std::str::from_utf8(&req).unwrap();
//! assert!(text.starts_with("<HandshakeReq xmlns=\"http://www.iec.ch/62351/2018/E2E_4\">"));
//! assert_eq!(xml::decode(text, &Default::default()).unwrap().kind(), SecPduKind::HandshakeReq);
//! // … that the XMPP mapping (`secmms_profiles::xmpp`) wraps for a stanza and hands back.
//! let out = server.receive(SecPduKind::HandshakeReq, &req, now).unwrap();
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

mod decode;
mod lexical;
mod parser;
mod scan;
mod writer;

pub use decode::{decode, decode_as, decode_octets};
pub use parser::{Node, Ns};
pub use scan::Scanner;
pub use writer::{
    assemble_transfer, covered_offset, encode, handshake_tbs, to_ber_form, to_xml_form,
    token2_content, token3_tbs,
};

use lexical::*;
use parser::*;

/// Namespace of the SecPDU elements (§16.1, Annex C): `http://www.iec.ch/62351/2018/E2E_4`.
pub const E2E_NS: &str = "http://www.iec.ch/62351/2018/E2E_4";

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
/// §14.4 step 1); the XMPP mapping reports those met while unwrapping a stanza as events
/// 18.4/18.5.
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

#[cfg(test)]
mod tests;
