//! ISO 8823-1 / X.226 presentation protocol, normal mode, BER (reference §5, spec §10.2):
//! CP-type, CPA-PPDU, CPR-PPDU, ARU-PPDU, ARP-PPDU and user data (P-DATA).

use secmms_ber::{BerError, Limits, Oid, Reader, Tag, Tlv, Writer};

/// Well-known object identifiers of the MMS upper layers (reference §5.2).
pub mod oids {
    use secmms_ber::Oid;
    fn oid(arcs: &[u64]) -> Oid {
        // Only called with the constant, valid arcs below (checked by a unit test).
        Oid::new(arcs).unwrap_or_else(|_| unreachable!("constant OID"))
    }
    /// ACSE abstract syntax `acse-as-id` 2.2.1.0.1.
    pub fn acse_as() -> Oid {
        oid(&[2, 2, 1, 0, 1])
    }
    /// MMS abstract syntax `mms-abstract-syntax-version1` 1.0.9506.2.1.
    pub fn mms_as() -> Oid {
        oid(&[1, 0, 9506, 2, 1])
    }
    /// MMS application context name 1.0.9506.2.3 (basic-AC, spec §11.1).
    pub fn mms_ac() -> Oid {
        oid(&[1, 0, 9506, 2, 3])
    }
    /// BER transfer syntax `basic-encoding` 2.1.1.
    pub fn ber() -> Oid {
        oid(&[2, 1, 1])
    }
}

/// Result values of a Result-list entry (X.226; reference §5.1).
pub mod result {
    /// acceptance.
    pub const ACCEPTANCE: i64 = 0;
    /// user-rejection.
    pub const USER_REJECTION: i64 = 1;
    /// provider-rejection.
    pub const PROVIDER_REJECTION: i64 = 2;
}

/// Provider reasons of a Result-list entry (X.226 §8.4.3).
pub mod context_reason {
    /// reason-not-specified.
    pub const NOT_SPECIFIED: i64 = 0;
    /// abstract-syntax-not-supported.
    pub const ABSTRACT_SYNTAX_NOT_SUPPORTED: i64 = 1;
    /// proposed-transfer-syntaxes-not-supported.
    pub const TRANSFER_SYNTAXES_NOT_SUPPORTED: i64 = 2;
}

/// Provider-reason of a CPR-PPDU (X.226).
pub mod provider_reason {
    /// reason-not-specified.
    pub const NOT_SPECIFIED: i64 = 0;
    /// local-limit-exceeded.
    pub const LOCAL_LIMIT_EXCEEDED: i64 = 2;
    /// called-presentation-address-unknown.
    pub const CALLED_ADDRESS_UNKNOWN: i64 = 3;
    /// protocol-version-not-supported.
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: i64 = 4;
    /// default-context-not-supported.
    pub const DEFAULT_CONTEXT_NOT_SUPPORTED: i64 = 5;
    /// user-data-not-readable.
    pub const USER_DATA_NOT_READABLE: i64 = 6;
}

/// Abort-reason of an ARP-PPDU (X.226).
pub mod abort_reason {
    /// reason-not-specified.
    pub const NOT_SPECIFIED: i64 = 0;
    /// unrecognized-ppdu.
    pub const UNRECOGNIZED_PPDU: i64 = 1;
    /// unexpected-ppdu.
    pub const UNEXPECTED_PPDU: i64 = 2;
    /// unrecognized-ppdu-parameter.
    pub const UNRECOGNIZED_PPDU_PARAMETER: i64 = 4;
    /// invalid-ppdu-parameter-value.
    pub const INVALID_PPDU_PARAMETER_VALUE: i64 = 6;
}

/// Event-identifier of an ARP-PPDU (X.226).
pub mod event {
    /// cp-PPDU.
    pub const CP: i64 = 0;
    /// cpa-PPDU.
    pub const CPA: i64 = 1;
    /// cpr-PPDU.
    pub const CPR: i64 = 2;
    /// aru-PPDU.
    pub const ARU: i64 = 3;
    /// td-PPDU (P-DATA).
    pub const TD: i64 = 7;
    /// s-release-indication.
    pub const S_RELEASE_INDICATION: i64 = 14;
}

/// Mode-selector value normal-mode (X.226).
pub const NORMAL_MODE: i64 = 1;

/// Errors of presentation decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresentationError {
    /// Invalid BER.
    #[error("presentation BER: {0}")]
    Ber(#[from] BerError),
    /// X.410-1984 mode or an unknown mode value.
    #[error("presentation mode other than normal mode")]
    NotNormalMode,
    /// A mandatory element is missing.
    #[error("presentation element {0} missing")]
    Missing(&'static str),
    /// An element has an invalid value.
    #[error("invalid presentation element {0}")]
    Invalid(&'static str),
    /// A presentation selector over the limit.
    #[error("presentation selector of {0} octets too long")]
    SelectorTooLong(usize),
}

type Result<T> = std::result::Result<T, PresentationError>;

/// A BIT STRING value: unused bits in the last octet, and the octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitString {
    /// Unused bits (0–7).
    pub unused: u8,
    /// Octets.
    pub bits: Vec<u8>,
}

impl BitString {
    /// Reads a primitive BIT STRING.
    pub fn from_tlv(t: &Tlv<'_>) -> std::result::Result<Self, BerError> {
        let (unused, bits) = t.as_bit_string()?;
        Ok(BitString {
            unused,
            bits: bits.to_vec(),
        })
    }
    /// True when bit `n` (0 = most significant bit of the first octet) is set.
    pub fn bit(&self, n: usize) -> bool {
        self.bits
            .get(n / 8)
            .is_some_and(|b| b & (0x80 >> (n % 8)) != 0)
    }
    fn write(&self, w: &mut Writer, tag: Tag) {
        w.bit_string(tag, self.unused, &self.bits);
    }
}

/// `version-1` protocol-version bit string as sent by peers that include it (`07 80`).
pub fn version1() -> BitString {
    BitString {
        unused: 7,
        bits: vec![0x80],
    }
}

/// An entry of the presentation-context-definition-list (X.226 Context-list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDefinition {
    /// presentation-context-identifier (odd when proposed by the initiator).
    pub id: u32,
    /// abstract-syntax-name.
    pub abstract_syntax: Oid,
    /// transfer-syntax-name-list.
    pub transfer_syntaxes: Vec<Oid>,
}

/// An entry of the presentation-context-definition-result-list (positional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    /// result ([`result`]).
    pub result: i64,
    /// transfer-syntax-name.
    pub transfer_syntax: Option<Oid>,
    /// provider-reason ([`context_reason`]).
    pub provider_reason: Option<i64>,
}

/// presentation-data-values of a PDV-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdvValues {
    /// single-ASN1-type `[0]`: the complete encoding of the one value inside.
    SingleAsn1Type(Vec<u8>),
    /// octet-aligned `[1]`.
    OctetAligned(Vec<u8>),
    /// arbitrary `[2]`.
    Arbitrary(BitString),
}

/// One PDV-list of fully-encoded-data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdv {
    /// transfer-syntax-name (only needed when several were proposed).
    pub transfer_syntax: Option<Oid>,
    /// presentation-context-identifier.
    pub context_id: u32,
    /// The value.
    pub values: PdvValues,
}

impl Pdv {
    /// A single-ASN1-type PDV for `context_id` holding one encoded value.
    pub fn single(context_id: u32, value: Vec<u8>) -> Pdv {
        Pdv {
            transfer_syntax: None,
            context_id,
            values: PdvValues::SingleAsn1Type(value),
        }
    }
}

/// User-data (X.226).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    /// simply-encoded-data `[APPLICATION 0]`.
    Simple(Vec<u8>),
    /// fully-encoded-data `[APPLICATION 1]`, a SEQUENCE OF PDV-list.
    Fully(Vec<Pdv>),
}

/// Tag of simply-encoded-data.
pub const TAG_SIMPLY_ENCODED: Tag = Tag::application(0, false);
/// Tag of fully-encoded-data.
pub const TAG_FULLY_ENCODED: Tag = Tag::application(1, true);

impl UserData {
    /// fully-encoded-data with one single-ASN1-type PDV.
    pub fn single(context_id: u32, value: Vec<u8>) -> UserData {
        UserData::Fully(vec![Pdv::single(context_id, value)])
    }

    /// Decodes a User-data element (P-DATA's whole payload).
    pub fn decode(b: &[u8], limits: Limits) -> Result<UserData> {
        let mut r = Reader::new(b, limits);
        let t = r.read()?;
        r.finish()?;
        UserData::from_tlv(&t)
    }

    fn from_tlv(t: &Tlv<'_>) -> Result<UserData> {
        if t.tag() == TAG_SIMPLY_ENCODED {
            return Ok(UserData::Simple(t.content().to_vec()));
        }
        if t.tag() != TAG_FULLY_ENCODED {
            return Err(PresentationError::Invalid("User-data"));
        }
        let mut out = Vec::new();
        for pdv in t.children()? {
            let pdv = pdv?;
            if pdv.tag() != Tag::SEQUENCE {
                return Err(PresentationError::Invalid("PDV-list"));
            }
            let mut c = pdv.children()?;
            let transfer_syntax = c.optional(Tag::OID)?.map(|o| o.as_oid()).transpose()?;
            let context_id = c.expect(Tag::INTEGER)?.as_u32()?;
            let v = c.read()?;
            let values = if v.tag() == Tag::context(0, true) {
                PdvValues::SingleAsn1Type(v.single_child()?.raw().to_vec())
            } else if v.tag() == Tag::context(1, false) {
                PdvValues::OctetAligned(v.content().to_vec())
            } else if v.tag() == Tag::context(2, false) {
                PdvValues::Arbitrary(BitString::from_tlv(&v)?)
            } else {
                return Err(PresentationError::Invalid("presentation-data-values"));
            };
            c.finish()?;
            out.push(Pdv {
                transfer_syntax,
                context_id,
                values,
            });
        }
        if out.is_empty() {
            return Err(PresentationError::Missing("PDV-list"));
        }
        Ok(UserData::Fully(out))
    }

    /// Writes the element.
    pub fn write(&self, w: &mut Writer) {
        match self {
            UserData::Simple(d) => w.octets(TAG_SIMPLY_ENCODED, d),
            UserData::Fully(pdvs) => w.constructed(TAG_FULLY_ENCODED, |w| {
                for p in pdvs {
                    w.constructed(Tag::SEQUENCE, |w| {
                        if let Some(ts) = &p.transfer_syntax {
                            w.oid(Tag::OID, ts);
                        }
                        w.integer(Tag::INTEGER, p.context_id as i64);
                        match &p.values {
                            PdvValues::SingleAsn1Type(v) => {
                                w.constructed(Tag::context(0, true), |w| w.raw(v))
                            }
                            PdvValues::OctetAligned(v) => w.octets(Tag::context(1, false), v),
                            PdvValues::Arbitrary(b) => b.write(w, Tag::context(2, false)),
                        }
                    });
                }
            }),
        }
    }

    /// Encodes the element.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }
}

/// The octets that precede a `value_len`-octet value in fully-encoded-data with one
/// single-ASN1-type PDV on `context_id`: `61 L 30 L 02 .. A0 L`. Header followed by the value
/// equals `UserData::single(context_id, value).encode()`; the data path uses it to avoid copies.
pub fn single_pdv_header(context_id: u32, value_len: usize) -> Vec<u8> {
    let mut id = Vec::with_capacity(8);
    Tag::INTEGER.encode(&mut id);
    let ic = secmms_ber::i64_content(context_id as i64);
    secmms_ber::encode_len(ic.len(), &mut id);
    id.extend_from_slice(&ic);
    let mut a0 = Vec::with_capacity(6);
    Tag::context(0, true).encode(&mut a0);
    secmms_ber::encode_len(value_len, &mut a0);
    let pdv_len = id.len() + a0.len() + value_len;
    let mut seq = Vec::with_capacity(6);
    Tag::SEQUENCE.encode(&mut seq);
    secmms_ber::encode_len(pdv_len, &mut seq);
    let mut out = Vec::with_capacity(32);
    TAG_FULLY_ENCODED.encode(&mut out);
    secmms_ber::encode_len(seq.len() + pdv_len, &mut out);
    out.extend_from_slice(&seq);
    out.extend_from_slice(&id);
    out.extend_from_slice(&a0);
    out
}

/// CP-type, normal mode (X.226 §8.2; reference §5.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpType {
    /// protocol-version `[0]` (absent = version-1).
    pub protocol_version: Option<BitString>,
    /// calling-presentation-selector `[1]`.
    pub calling_psel: Option<Vec<u8>>,
    /// called-presentation-selector `[2]`.
    pub called_psel: Option<Vec<u8>>,
    /// presentation-context-definition-list `[4]`.
    pub context_definitions: Vec<ContextDefinition>,
    /// default-context-name `[6]`: (abstract, transfer).
    pub default_context: Option<(Oid, Oid)>,
    /// presentation-requirements `[8]`.
    pub presentation_requirements: Option<BitString>,
    /// user-session-requirements `[9]`.
    pub user_session_requirements: Option<BitString>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// CPA-PPDU, normal mode (X.226 §8.3; reference §5.7).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpaPpdu {
    /// protocol-version `[0]`.
    pub protocol_version: Option<BitString>,
    /// responding-presentation-selector `[3]`.
    pub responding_psel: Option<Vec<u8>>,
    /// presentation-context-definition-result-list `[5]`.
    pub results: Vec<ContextResult>,
    /// presentation-requirements `[8]`.
    pub presentation_requirements: Option<BitString>,
    /// user-session-requirements `[9]`.
    pub user_session_requirements: Option<BitString>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// CPR-PPDU, normal mode (X.226 §8.4; reference §5.8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CprPpdu {
    /// protocol-version `[0]`.
    pub protocol_version: Option<BitString>,
    /// responding-presentation-selector `[3]`.
    pub responding_psel: Option<Vec<u8>>,
    /// presentation-context-definition-result-list `[5]`.
    pub results: Vec<ContextResult>,
    /// default-context-result `[7]`.
    pub default_context_result: Option<i64>,
    /// provider-reason `[10]` ([`provider_reason`]).
    pub provider_reason: Option<i64>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// ARU-PPDU, normal mode (X.226 §8.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AruPpdu {
    /// presentation-context-identifier-list `[0]`: (id, transfer syntax).
    pub context_ids: Vec<(u32, Oid)>,
    /// user-data.
    pub user_data: Option<UserData>,
}

/// ARP-PPDU (X.226 §8.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArpPpdu {
    /// provider-reason `[0]` ([`abort_reason`]).
    pub provider_reason: Option<i64>,
    /// event-identifier `[1]` ([`event`]).
    pub event_identifier: Option<i64>,
}

/// Abort-type: the PPDU of an AB SPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortPpdu {
    /// User abort.
    Aru(AruPpdu),
    /// Provider abort.
    Arp(ArpPpdu),
}

fn check_psel(v: &[u8], max: usize) -> Result<Vec<u8>> {
    if v.len() > max {
        return Err(PresentationError::SelectorTooLong(v.len()));
    }
    Ok(v.to_vec())
}

fn check_mode(t: &Tlv<'_>) -> Result<()> {
    let m = t.children()?.expect(Tag::context(0, false))?.as_i64()?;
    if m != NORMAL_MODE {
        return Err(PresentationError::NotNormalMode);
    }
    Ok(())
}

fn write_mode(w: &mut Writer) {
    w.constructed(Tag::context(0, true), |w| {
        w.integer(Tag::context(0, false), NORMAL_MODE)
    });
}

fn read_results(t: &Tlv<'_>) -> Result<Vec<ContextResult>> {
    let mut out = Vec::new();
    for e in t.children()? {
        let e = e?;
        if e.tag() != Tag::SEQUENCE {
            return Err(PresentationError::Invalid("Result-list"));
        }
        let mut c = e.children()?;
        let result = c.expect(Tag::context(0, false))?.as_i64()?;
        let transfer_syntax = c
            .optional(Tag::context(1, false))?
            .map(|o| o.as_oid())
            .transpose()?;
        let provider_reason = c
            .optional(Tag::context(2, false))?
            .map(|o| o.as_i64())
            .transpose()?;
        c.finish()?;
        out.push(ContextResult {
            result,
            transfer_syntax,
            provider_reason,
        });
    }
    Ok(out)
}

fn write_results(w: &mut Writer, tag: Tag, results: &[ContextResult]) {
    if results.is_empty() {
        return;
    }
    w.constructed(tag, |w| {
        for r in results {
            w.constructed(Tag::SEQUENCE, |w| {
                w.integer(Tag::context(0, false), r.result);
                if let Some(ts) = &r.transfer_syntax {
                    w.oid(Tag::context(1, false), ts);
                }
                if let Some(p) = r.provider_reason {
                    w.integer(Tag::context(2, false), p);
                }
            });
        }
    });
}

/// The normal-mode-parameters of the SET of a CP-type or CPA-PPDU (`what`), after checking its
/// mode-selector: only normal mode is supported. `None` when the SET carries no parameters.
fn normal_mode_parameters<'a>(
    b: &'a [u8],
    limits: Limits,
    what: &'static str,
) -> Result<Option<Tlv<'a>>> {
    let mut r = Reader::new(b, limits);
    let set = r.expect(Tag::SET)?;
    r.finish()?;
    let mut mode = false;
    let mut normal = None;
    for e in set.children()? {
        let e = e?;
        match e.tag() {
            t if t == Tag::context(0, true) => {
                check_mode(&e)?;
                mode = true;
            }
            t if t == Tag::context(1, true) => return Err(PresentationError::NotNormalMode),
            t if t == Tag::context(2, true) => normal = Some(e),
            _ => return Err(PresentationError::Invalid(what)),
        }
    }
    if !mode {
        return Err(PresentationError::Missing("mode-selector"));
    }
    Ok(normal)
}

fn is_user_data(tag: Tag) -> bool {
    tag == TAG_SIMPLY_ENCODED || tag == TAG_FULLY_ENCODED
}

impl CpType {
    /// Decodes a CP-type (the user data of a CN SPDU).
    pub fn decode(b: &[u8], limits: Limits, max_psel: usize) -> Result<CpType> {
        let mut cp = CpType::default();
        let Some(normal) = normal_mode_parameters(b, limits, "CP-type")? else {
            return Ok(cp);
        };
        for e in normal.children()? {
            let e = e?;
            let t = e.tag();
            if t == Tag::context(0, false) {
                cp.protocol_version = Some(BitString::from_tlv(&e)?);
            } else if t == Tag::context(1, false) {
                cp.calling_psel = Some(check_psel(e.content(), max_psel)?);
            } else if t == Tag::context(2, false) {
                cp.called_psel = Some(check_psel(e.content(), max_psel)?);
            } else if t == Tag::context(4, true) {
                for d in e.children()? {
                    let d = d?;
                    if d.tag() != Tag::SEQUENCE {
                        return Err(PresentationError::Invalid("Context-list"));
                    }
                    let mut c = d.children()?;
                    let id = c.expect(Tag::INTEGER)?.as_u32()?;
                    let abstract_syntax = c.expect(Tag::OID)?.as_oid()?;
                    let mut transfer_syntaxes = Vec::new();
                    for ts in c.expect(Tag::SEQUENCE)?.children()? {
                        let ts = ts?;
                        if ts.tag() != Tag::OID {
                            return Err(PresentationError::Invalid("transfer-syntax-name"));
                        }
                        transfer_syntaxes.push(ts.as_oid()?);
                    }
                    c.finish()?;
                    cp.context_definitions.push(ContextDefinition {
                        id,
                        abstract_syntax,
                        transfer_syntaxes,
                    });
                }
            } else if t == Tag::context(6, true) {
                let mut c = e.children()?;
                let a = c.expect(Tag::context(0, false))?.as_oid()?;
                let ts = c.expect(Tag::context(1, false))?.as_oid()?;
                cp.default_context = Some((a, ts));
            } else if t == Tag::context(8, false) {
                cp.presentation_requirements = Some(BitString::from_tlv(&e)?);
            } else if t == Tag::context(9, false) {
                cp.user_session_requirements = Some(BitString::from_tlv(&e)?);
            } else if is_user_data(t) {
                cp.user_data = Some(UserData::from_tlv(&e)?);
            }
            // protocol-options [11], nominated context [12], extensions [14]: ignored.
        }
        Ok(cp)
    }

    /// Encodes the CP-type in the layout of libiec61850 (reference §5.6).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.constructed(Tag::SET, |w| {
            write_mode(w);
            w.constructed(Tag::context(2, true), |w| {
                if let Some(v) = &self.protocol_version {
                    v.write(w, Tag::context(0, false));
                }
                if let Some(s) = &self.calling_psel {
                    w.octets(Tag::context(1, false), s);
                }
                if let Some(s) = &self.called_psel {
                    w.octets(Tag::context(2, false), s);
                }
                if !self.context_definitions.is_empty() {
                    w.constructed(Tag::context(4, true), |w| {
                        for d in &self.context_definitions {
                            w.constructed(Tag::SEQUENCE, |w| {
                                w.integer(Tag::INTEGER, d.id as i64);
                                w.oid(Tag::OID, &d.abstract_syntax);
                                w.constructed(Tag::SEQUENCE, |w| {
                                    for ts in &d.transfer_syntaxes {
                                        w.oid(Tag::OID, ts);
                                    }
                                });
                            });
                        }
                    });
                }
                if let Some((a, t)) = &self.default_context {
                    w.constructed(Tag::context(6, true), |w| {
                        w.oid(Tag::context(0, false), a);
                        w.oid(Tag::context(1, false), t);
                    });
                }
                if let Some(v) = &self.presentation_requirements {
                    v.write(w, Tag::context(8, false));
                }
                if let Some(v) = &self.user_session_requirements {
                    v.write(w, Tag::context(9, false));
                }
                if let Some(u) = &self.user_data {
                    u.write(w);
                }
            });
        });
        w.finish()
    }
}

impl CpaPpdu {
    /// Decodes a CPA-PPDU (the user data of an AC SPDU).
    pub fn decode(b: &[u8], limits: Limits, max_psel: usize) -> Result<CpaPpdu> {
        let mut cpa = CpaPpdu::default();
        let Some(normal) = normal_mode_parameters(b, limits, "CPA-PPDU")? else {
            return Ok(cpa);
        };
        for e in normal.children()? {
            let e = e?;
            let t = e.tag();
            if t == Tag::context(0, false) {
                cpa.protocol_version = Some(BitString::from_tlv(&e)?);
            } else if t == Tag::context(3, false) {
                cpa.responding_psel = Some(check_psel(e.content(), max_psel)?);
            } else if t == Tag::context(5, true) {
                cpa.results = read_results(&e)?;
            } else if t == Tag::context(8, false) {
                cpa.presentation_requirements = Some(BitString::from_tlv(&e)?);
            } else if t == Tag::context(9, false) {
                cpa.user_session_requirements = Some(BitString::from_tlv(&e)?);
            } else if is_user_data(t) {
                cpa.user_data = Some(UserData::from_tlv(&e)?);
            }
        }
        Ok(cpa)
    }

    /// Encodes the CPA-PPDU (reference §5.7 layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.constructed(Tag::SET, |w| {
            write_mode(w);
            w.constructed(Tag::context(2, true), |w| {
                if let Some(v) = &self.protocol_version {
                    v.write(w, Tag::context(0, false));
                }
                if let Some(s) = &self.responding_psel {
                    w.octets(Tag::context(3, false), s);
                }
                write_results(w, Tag::context(5, true), &self.results);
                if let Some(v) = &self.presentation_requirements {
                    v.write(w, Tag::context(8, false));
                }
                if let Some(v) = &self.user_session_requirements {
                    v.write(w, Tag::context(9, false));
                }
                if let Some(u) = &self.user_data {
                    u.write(w);
                }
            });
        });
        w.finish()
    }
}

impl CprPpdu {
    /// Decodes a CPR-PPDU (the user data of an RF SPDU).
    pub fn decode(b: &[u8], limits: Limits, max_psel: usize) -> Result<CprPpdu> {
        let mut r = Reader::new(b, limits);
        let seq = r.read()?;
        r.finish()?;
        if seq.tag() == Tag::SET {
            return Err(PresentationError::NotNormalMode);
        }
        if seq.tag() != Tag::SEQUENCE {
            return Err(PresentationError::Invalid("CPR-PPDU"));
        }
        let mut cpr = CprPpdu::default();
        for e in seq.children()? {
            let e = e?;
            let t = e.tag();
            if t == Tag::context(0, false) {
                cpr.protocol_version = Some(BitString::from_tlv(&e)?);
            } else if t == Tag::context(3, false) {
                cpr.responding_psel = Some(check_psel(e.content(), max_psel)?);
            } else if t == Tag::context(5, true) {
                cpr.results = read_results(&e)?;
            } else if t == Tag::context(7, false) {
                cpr.default_context_result = Some(e.as_i64()?);
            } else if t == Tag::context(10, false) {
                cpr.provider_reason = Some(e.as_i64()?);
            } else if is_user_data(t) {
                cpr.user_data = Some(UserData::from_tlv(&e)?);
            }
        }
        Ok(cpr)
    }

    /// Encodes the CPR-PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.constructed(Tag::SEQUENCE, |w| {
            if let Some(v) = &self.protocol_version {
                v.write(w, Tag::context(0, false));
            }
            if let Some(s) = &self.responding_psel {
                w.octets(Tag::context(3, false), s);
            }
            write_results(w, Tag::context(5, true), &self.results);
            if let Some(d) = self.default_context_result {
                w.integer(Tag::context(7, false), d);
            }
            if let Some(p) = self.provider_reason {
                w.integer(Tag::context(10, false), p);
            }
            if let Some(u) = &self.user_data {
                u.write(w);
            }
        });
        w.finish()
    }
}

impl AbortPpdu {
    /// Decodes an Abort-type (the user data of an AB SPDU).
    pub fn decode(b: &[u8], limits: Limits) -> Result<AbortPpdu> {
        let mut r = Reader::new(b, limits);
        let t = r.read()?;
        r.finish()?;
        if t.tag() == Tag::context(0, true) {
            let mut aru = AruPpdu::default();
            for e in t.children()? {
                let e = e?;
                if e.tag() == Tag::context(0, true) {
                    for item in e.children()? {
                        let item = item?;
                        if item.tag() != Tag::SEQUENCE {
                            return Err(PresentationError::Invalid("context-identifier-list"));
                        }
                        let mut c = item.children()?;
                        let id = c.expect(Tag::INTEGER)?.as_u32()?;
                        let ts = c.expect(Tag::OID)?.as_oid()?;
                        c.finish()?;
                        aru.context_ids.push((id, ts));
                    }
                } else if is_user_data(e.tag()) {
                    aru.user_data = Some(UserData::from_tlv(&e)?);
                }
            }
            Ok(AbortPpdu::Aru(aru))
        } else if t.tag() == Tag::SEQUENCE {
            let mut arp = ArpPpdu::default();
            let mut c = t.children()?;
            arp.provider_reason = c
                .optional(Tag::context(0, false))?
                .map(|x| x.as_i64())
                .transpose()?;
            arp.event_identifier = c
                .optional(Tag::context(1, false))?
                .map(|x| x.as_i64())
                .transpose()?;
            c.finish()?;
            Ok(AbortPpdu::Arp(arp))
        } else if t.tag() == Tag::SET {
            Err(PresentationError::NotNormalMode)
        } else {
            Err(PresentationError::Invalid("Abort-type"))
        }
    }

    /// Encodes the Abort-type.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            AbortPpdu::Aru(a) => w.constructed(Tag::context(0, true), |w| {
                if !a.context_ids.is_empty() {
                    w.constructed(Tag::context(0, true), |w| {
                        for (id, ts) in &a.context_ids {
                            w.constructed(Tag::SEQUENCE, |w| {
                                w.integer(Tag::INTEGER, *id as i64);
                                w.oid(Tag::OID, ts);
                            });
                        }
                    });
                }
                if let Some(u) = &a.user_data {
                    u.write(w);
                }
            }),
            AbortPpdu::Arp(a) => w.constructed(Tag::SEQUENCE, |w| {
                if let Some(r) = a.provider_reason {
                    w.integer(Tag::context(0, false), r);
                }
                if let Some(e) = a.event_identifier {
                    w.integer(Tag::context(1, false), e);
                }
            }),
        }
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn constant_oids() {
        assert_eq!(oids::acse_as().to_ber_content(), h("52 01 00 01"));
        assert_eq!(oids::mms_as().to_ber_content(), h("28 CA 22 02 01"));
        assert_eq!(oids::mms_ac().to_ber_content(), h("28 CA 22 02 03"));
        assert_eq!(oids::ber().to_ber_content(), h("51 01"));
    }

    #[test]
    fn cp_reference_layout() {
        let aarq = h("60 03 A1 01 00");
        let cp = CpType {
            calling_psel: Some(vec![0, 0, 0, 1]),
            called_psel: Some(vec![0, 0, 0, 1]),
            context_definitions: vec![
                ContextDefinition {
                    id: 1,
                    abstract_syntax: oids::acse_as(),
                    transfer_syntaxes: vec![oids::ber()],
                },
                ContextDefinition {
                    id: 3,
                    abstract_syntax: oids::mms_as(),
                    transfer_syntaxes: vec![oids::ber()],
                },
            ],
            user_data: Some(UserData::single(1, aarq.clone())),
            ..Default::default()
        };
        let b = cp.encode();
        let expect = h(
            "31 46 A0 03 80 01 01 A2 3F 81 04 00 00 00 01 82 04 00 00 00 01 A4 23 \
            30 0F 02 01 01 06 04 52 01 00 01 30 04 06 02 51 01 \
            30 10 02 01 03 06 05 28 CA 22 02 01 30 04 06 02 51 01 \
            61 0C 30 0A 02 01 01 A0 05 60 03 A1 01 00",
        );
        assert_eq!(b, expect);
        assert_eq!(CpType::decode(&b, Limits::default(), 16).unwrap(), cp);
    }

    #[test]
    fn reference_abort_and_refuse() {
        let arp = h("30 06 80 01 01 81 01 00");
        let a = AbortPpdu::decode(&arp, Limits::default()).unwrap();
        assert_eq!(
            a,
            AbortPpdu::Arp(ArpPpdu {
                provider_reason: Some(1),
                event_identifier: Some(0)
            })
        );
        assert_eq!(a.encode(), arp);
        let aru = h("A0 0E 61 0C 30 0A 02 01 01 A0 05 64 03 80 01 00");
        let a = AbortPpdu::decode(&aru, Limits::default()).unwrap();
        assert_eq!(
            a,
            AbortPpdu::Aru(AruPpdu {
                context_ids: vec![],
                user_data: Some(UserData::single(1, h("64 03 80 01 00")))
            })
        );
        assert_eq!(a.encode(), aru);
        let cpr = h("30 03 8A 01 03");
        let c = CprPpdu::decode(&cpr, Limits::default(), 16).unwrap();
        assert_eq!(c.provider_reason, Some(3));
        assert_eq!(c.encode(), cpr);
    }

    #[test]
    fn user_data_variants() {
        // Indefinite-length A0 wrapper and a transfer-syntax-name are accepted.
        let b = h("61 80 30 80 06 02 51 01 02 01 03 A0 80 8B 00 00 00 00 00 00 00");
        let u = UserData::decode(&b, Limits::default()).unwrap();
        assert_eq!(
            u,
            UserData::Fully(vec![Pdv {
                transfer_syntax: Some(oids::ber()),
                context_id: 3,
                values: PdvValues::SingleAsn1Type(h("8B 00"))
            }])
        );
        assert!(UserData::decode(&h("61 00"), Limits::default()).is_err());
        assert!(UserData::decode(&h("30 00"), Limits::default()).is_err());
        assert_eq!(
            CpType::decode(&h("31 05 A0 03 80 01 00"), Limits::default(), 16),
            Err(PresentationError::NotNormalMode)
        );
    }

    fn arb_oid() -> impl Strategy<Value = Oid> {
        (
            0u64..3,
            0u64..40,
            proptest::collection::vec(any::<u32>(), 0..5),
        )
            .prop_map(|(a, b, rest)| {
                let mut arcs = vec![a, b];
                arcs.extend(rest.into_iter().map(|x| x as u64));
                Oid::new(&arcs).unwrap()
            })
    }
    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..40)
    }
    fn arb_bits() -> impl Strategy<Value = BitString> {
        (0u8..8, proptest::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(u, b)| BitString { unused: u, bits: b })
    }
    fn arb_pdv() -> impl Strategy<Value = Pdv> {
        (
            proptest::option::of(arb_oid()),
            any::<u32>(),
            prop_oneof![
                arb_bytes().prop_map(|b| {
                    let mut w = Writer::new();
                    w.octets(Tag::OCTET_STRING, &b);
                    PdvValues::SingleAsn1Type(w.finish())
                }),
                arb_bytes().prop_map(PdvValues::OctetAligned),
                arb_bits().prop_map(PdvValues::Arbitrary),
            ],
        )
            .prop_map(|(t, c, v)| Pdv {
                transfer_syntax: t,
                context_id: c,
                values: v,
            })
    }
    fn arb_ud() -> impl Strategy<Value = UserData> {
        prop_oneof![
            arb_bytes().prop_map(UserData::Simple),
            proptest::collection::vec(arb_pdv(), 1..4).prop_map(UserData::Fully),
        ]
    }
    fn arb_results() -> impl Strategy<Value = Vec<ContextResult>> {
        proptest::collection::vec(
            (
                0i64..3,
                proptest::option::of(arb_oid()),
                proptest::option::of(0i64..4),
            )
                .prop_map(|(r, t, p)| ContextResult {
                    result: r,
                    transfer_syntax: t,
                    provider_reason: p,
                }),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn cp_roundtrip(
            pv in proptest::option::of(arb_bits()),
            a in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            b in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            defs in proptest::collection::vec((any::<u32>(), arb_oid(), proptest::collection::vec(arb_oid(), 0..3)), 0..4),
            dc in proptest::option::of((arb_oid(), arb_oid())),
            pr in proptest::option::of(arb_bits()),
            ud in proptest::option::of(arb_ud()),
        ) {
            let cp = CpType {
                protocol_version: pv, calling_psel: a, called_psel: b,
                context_definitions: defs.into_iter().map(|(id, a, t)| ContextDefinition { id, abstract_syntax: a, transfer_syntaxes: t }).collect(),
                default_context: dc, presentation_requirements: pr.clone(), user_session_requirements: pr, user_data: ud,
            };
            prop_assert_eq!(CpType::decode(&cp.encode(), Limits::default(), 16).unwrap(), cp);
        }

        #[test]
        fn cpa_cpr_roundtrip(
            psel in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            results in arb_results(),
            ud in proptest::option::of(arb_ud()),
            reason in proptest::option::of(0i64..8),
        ) {
            let cpa = CpaPpdu { responding_psel: psel.clone(), results: results.clone(), user_data: ud.clone(), ..Default::default() };
            prop_assert_eq!(CpaPpdu::decode(&cpa.encode(), Limits::default(), 16).unwrap(), cpa);
            let cpr = CprPpdu { responding_psel: psel, results, provider_reason: reason, user_data: ud.clone(), default_context_result: reason, ..Default::default() };
            prop_assert_eq!(CprPpdu::decode(&cpr.encode(), Limits::default(), 16).unwrap(), cpr);
            let aru = AbortPpdu::Aru(AruPpdu { context_ids: vec![(1, oids::ber())], user_data: ud });
            prop_assert_eq!(AbortPpdu::decode(&aru.encode(), Limits::default()).unwrap(), aru);
        }

        #[test]
        fn single_pdv_header_matches_encoder(ctx in any::<u32>(), len in prop_oneof![0usize..300, 60_000usize..70_000]) {
            let v = vec![0x5A; len];
            let mut b = single_pdv_header(ctx, len);
            b.extend_from_slice(&v);
            prop_assert_eq!(b, UserData::single(ctx, v).encode());
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = CpType::decode(&b, Limits::default(), 16);
            let _ = CpaPpdu::decode(&b, Limits::default(), 16);
            let _ = CprPpdu::decode(&b, Limits::default(), 16);
            let _ = AbortPpdu::decode(&b, Limits::default());
            let _ = UserData::decode(&b, Limits::default());
        }
    }
}
