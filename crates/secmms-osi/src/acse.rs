//! ISO 8650-1 / X.227 ACSE, BER (reference §6, spec §10.4): AARQ, AARE, RLRQ, RLRE and ABRT with
//! every field, EXTERNAL, and the authentication-value CHOICE.
//!
//! Decoded APDUs keep the raw bytes of the whole APDU, of the authentication-value and of each
//! EXTERNAL of user-information, so security profiles verify over the received bytes (spec §10.3).
//! Encoding always uses the structured fields; `raw` fields are ignored when encoding.

use crate::presentation::BitString;
use secmms_ber::{BerError, Limits, Oid, Reader, Tag, Tlv, Writer};

/// APDU tags (X.227 ACSE-1; reference §6.1).
pub mod tag {
    use secmms_ber::Tag;
    /// AARQ-apdu `[APPLICATION 0]`.
    pub const AARQ: Tag = Tag::application(0, true);
    /// AARE-apdu `[APPLICATION 1]`.
    pub const AARE: Tag = Tag::application(1, true);
    /// RLRQ-apdu `[APPLICATION 2]`.
    pub const RLRQ: Tag = Tag::application(2, true);
    /// RLRE-apdu `[APPLICATION 3]`.
    pub const RLRE: Tag = Tag::application(3, true);
    /// ABRT-apdu `[APPLICATION 4]`.
    pub const ABRT: Tag = Tag::application(4, true);
}

/// Associate-result values (X.227).
pub mod associate_result {
    /// accepted.
    pub const ACCEPTED: i64 = 0;
    /// rejected-permanent.
    pub const REJECTED_PERMANENT: i64 = 1;
    /// rejected-transient.
    pub const REJECTED_TRANSIENT: i64 = 2;
}

/// acse-service-user diagnostic values (X.227; reference §6.2).
pub mod user_diagnostic {
    /// null.
    pub const NULL: i64 = 0;
    /// no-reason-given.
    pub const NO_REASON_GIVEN: i64 = 1;
    /// application-context-name-not-supported.
    pub const APPLICATION_CONTEXT_NAME_NOT_SUPPORTED: i64 = 2;
    /// calling-AP-title-not-recognized.
    pub const CALLING_AP_TITLE_NOT_RECOGNIZED: i64 = 3;
    /// calling-AE-qualifier-not-recognized.
    pub const CALLING_AE_QUALIFIER_NOT_RECOGNIZED: i64 = 5;
    /// called-AP-title-not-recognized.
    pub const CALLED_AP_TITLE_NOT_RECOGNIZED: i64 = 7;
    /// called-AE-qualifier-not-recognized.
    pub const CALLED_AE_QUALIFIER_NOT_RECOGNIZED: i64 = 9;
    /// authentication-mechanism-name-not-recognized.
    pub const AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED: i64 = 11;
    /// authentication-mechanism-name-required.
    pub const AUTHENTICATION_MECHANISM_NAME_REQUIRED: i64 = 12;
    /// authentication-failure.
    pub const AUTHENTICATION_FAILURE: i64 = 13;
    /// authentication-required.
    pub const AUTHENTICATION_REQUIRED: i64 = 14;
}

/// acse-service-provider diagnostic values (X.227).
pub mod provider_diagnostic {
    /// null.
    pub const NULL: i64 = 0;
    /// no-reason-given.
    pub const NO_REASON_GIVEN: i64 = 1;
    /// no-common-acse-version.
    pub const NO_COMMON_ACSE_VERSION: i64 = 2;
}

/// Release-request-reason / Release-response-reason values (X.227).
pub mod release_reason {
    /// normal.
    pub const NORMAL: i64 = 0;
    /// urgent (request) / not-finished (response).
    pub const URGENT_OR_NOT_FINISHED: i64 = 1;
    /// user-defined.
    pub const USER_DEFINED: i64 = 30;
}

/// ABRT-source values (X.227).
pub mod abort_source {
    /// acse-service-user.
    pub const SERVICE_USER: i64 = 0;
    /// acse-service-provider.
    pub const SERVICE_PROVIDER: i64 = 1;
}

/// ABRT-diagnostic values (X.227; spec §11.4).
pub mod abort_diagnostic {
    /// no-reason-given.
    pub const NO_REASON_GIVEN: i64 = 1;
    /// protocol-error.
    pub const PROTOCOL_ERROR: i64 = 2;
    /// authentication-mechanism-name-not-recognized.
    pub const AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED: i64 = 3;
    /// authentication-mechanism-name-required.
    pub const AUTHENTICATION_MECHANISM_NAME_REQUIRED: i64 = 4;
    /// authentication-failure.
    pub const AUTHENTICATION_FAILURE: i64 = 5;
    /// authentication-required.
    pub const AUTHENTICATION_REQUIRED: i64 = 6;
}

/// ACSE-requirements bit `authentication(0)` (X.227; spec §11.1).
pub const REQUIREMENT_AUTHENTICATION: usize = 0;

/// The ACSE-requirements value with only `authentication` set, in minimal form (`07 80`).
pub fn requirements_authentication() -> BitString {
    BitString {
        unused: 7,
        bits: vec![0x80],
    }
}

/// Errors of ACSE decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcseError {
    /// Invalid BER.
    #[error("ACSE BER: {0}")]
    Ber(#[from] BerError),
    /// Not one of AARQ, AARE, RLRQ, RLRE, ABRT.
    #[error("unknown ACSE APDU {0}")]
    UnknownApdu(Tag),
    /// A mandatory field is missing.
    #[error("ACSE field {0} missing")]
    Missing(&'static str),
    /// A field with an invalid value.
    #[error("invalid ACSE field {0}")]
    Invalid(&'static str),
}

type Result<T> = std::result::Result<T, AcseError>;

/// AP-title (X.227): form 2 (OBJECT IDENTIFIER) is what IEC 61850 uses; other forms are kept as
/// their raw encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApTitle {
    /// ap-title-form2.
    Form2(Oid),
    /// Any other form: the complete encoding of the CHOICE alternative.
    Other(Vec<u8>),
}

/// The form-2 OID of an optional AP-title (what IEC 61850 uses); `None` when absent or in
/// another form.
pub fn form2_ap_title(t: &Option<ApTitle>) -> Option<&Oid> {
    match t {
        Some(ApTitle::Form2(o)) => Some(o),
        _ => None,
    }
}

/// The form-2 INTEGER of an optional AE-qualifier; `None` when absent or in another form.
pub fn form2_ae_qualifier(q: &Option<AeQualifier>) -> Option<i64> {
    match q {
        Some(AeQualifier::Form2(v)) => Some(*v),
        _ => None,
    }
}

/// AE-qualifier (X.227): form 2 (INTEGER) is what IEC 61850 uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AeQualifier {
    /// ae-qualifier-form2.
    Form2(i64),
    /// Any other form: the complete encoding of the CHOICE alternative.
    Other(Vec<u8>),
}

/// encoding CHOICE of EXTERNAL (X.690 §8.18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalEncoding {
    /// single-ASN1-type `[0]`: the complete encoding of the one value inside.
    SingleAsn1Type(Vec<u8>),
    /// octet-aligned `[1]`.
    OctetAligned(Vec<u8>),
    /// arbitrary `[2]`.
    Arbitrary(BitString),
}

/// EXTERNAL (X.690 §8.18; reference §6.3) — an element of Association-data and the `external`
/// arm of Authentication-value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// direct-reference (e.g. a transfer-syntax OID).
    pub direct_reference: Option<Oid>,
    /// indirect-reference (a presentation-context-identifier).
    pub indirect_reference: Option<i64>,
    /// data-value-descriptor (ObjectDescriptor content octets).
    pub data_value_descriptor: Option<Vec<u8>>,
    /// encoding.
    pub encoding: ExternalEncoding,
    /// The received encoding (tag, length, content); empty for locally built values.
    pub raw: Vec<u8>,
}

impl External {
    /// An EXTERNAL with indirect-reference `pcid` and single-ASN1-type `value` — the layout all
    /// MMS stacks use (reference §6.3).
    pub fn single(pcid: i64, value: Vec<u8>) -> External {
        External {
            direct_reference: None,
            indirect_reference: Some(pcid),
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(value),
            raw: Vec::new(),
        }
    }

    /// The single-ASN1-type value, if that is the encoding.
    pub fn single_value(&self) -> Option<&[u8]> {
        match &self.encoding {
            ExternalEncoding::SingleAsn1Type(v) => Some(v),
            _ => None,
        }
    }

    fn from_tlv(t: &Tlv<'_>) -> Result<External> {
        let mut c = t.children()?;
        let direct_reference = c.optional(Tag::OID)?.map(|o| o.as_oid()).transpose()?;
        let indirect_reference = c.optional(Tag::INTEGER)?.map(|o| o.as_i64()).transpose()?;
        let data_value_descriptor = c
            .optional_any_form(Tag::universal(7, false))?
            .map(|o| o.content().to_vec());
        let e = c.read().map_err(|e| match e {
            BerError::Truncated if c.is_empty() => AcseError::Missing("EXTERNAL encoding"),
            e => e.into(),
        })?;
        let encoding = if e.tag() == Tag::context(0, true) {
            ExternalEncoding::SingleAsn1Type(e.single_child()?.raw().to_vec())
        } else if e.tag() == Tag::context(1, false) {
            ExternalEncoding::OctetAligned(e.content().to_vec())
        } else if e.tag() == Tag::context(2, false) {
            ExternalEncoding::Arbitrary(BitString::from_tlv(&e)?)
        } else {
            return Err(AcseError::Invalid("EXTERNAL encoding"));
        };
        c.finish()?;
        Ok(External {
            direct_reference,
            indirect_reference,
            data_value_descriptor,
            encoding,
            raw: t.raw().to_vec(),
        })
    }

    /// Writes the EXTERNAL with `tag` (UNIVERSAL 8, or `[2]` inside Authentication-value).
    pub fn write(&self, w: &mut Writer, tag: Tag) {
        w.constructed(tag, |w| {
            if let Some(d) = &self.direct_reference {
                w.oid(Tag::OID, d);
            }
            if let Some(i) = self.indirect_reference {
                w.integer(Tag::INTEGER, i);
            }
            if let Some(d) = &self.data_value_descriptor {
                w.octets(Tag::universal(7, false), d);
            }
            match &self.encoding {
                ExternalEncoding::SingleAsn1Type(v) => {
                    w.constructed(Tag::context(0, true), |w| w.raw(v))
                }
                ExternalEncoding::OctetAligned(v) => w.octets(Tag::context(1, false), v),
                ExternalEncoding::Arbitrary(b) => {
                    w.bit_string(Tag::context(2, false), b.unused, &b.bits)
                }
            }
        });
    }
}

/// Authentication-value CHOICE (X.227; spec §11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationValue {
    /// charstring `[0]` GraphicString (password).
    Charstring(Vec<u8>),
    /// bitstring `[1]`.
    Bitstring(BitString),
    /// external `[2]` IMPLICIT EXTERNAL (IEC 62351-4 A-profile); raw bytes kept in the EXTERNAL.
    External(External),
    /// other `[3]`: mechanism name and the complete encoding of the value.
    Other {
        /// other-mechanism-name.
        mechanism_name: Oid,
        /// other-mechanism-value (one complete element).
        value: Vec<u8>,
    },
}

impl AuthenticationValue {
    fn from_tlv(t: &Tlv<'_>) -> Result<AuthenticationValue> {
        let tag = t.tag();
        if tag == Tag::context(0, false) {
            Ok(AuthenticationValue::Charstring(t.content().to_vec()))
        } else if tag == Tag::context(1, false) {
            Ok(AuthenticationValue::Bitstring(BitString::from_tlv(t)?))
        } else if tag == Tag::context(2, true) {
            Ok(AuthenticationValue::External(External::from_tlv(t)?))
        } else if tag == Tag::context(3, true) {
            let mut c = t.children()?;
            let mechanism_name = c.expect(Tag::OID)?.as_oid()?;
            let value = c.read()?.raw().to_vec();
            c.finish()?;
            Ok(AuthenticationValue::Other {
                mechanism_name,
                value,
            })
        } else {
            Err(AcseError::Invalid("Authentication-value"))
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            AuthenticationValue::Charstring(s) => w.octets(Tag::context(0, false), s),
            AuthenticationValue::Bitstring(b) => {
                w.bit_string(Tag::context(1, false), b.unused, &b.bits)
            }
            AuthenticationValue::External(e) => e.write(w, Tag::context(2, true)),
            AuthenticationValue::Other {
                mechanism_name,
                value,
            } => w.constructed(Tag::context(3, true), |w| {
                w.oid(Tag::OID, mechanism_name);
                w.raw(value);
            }),
        }
    }
}

/// Associate-source-diagnostic (X.227).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceDiagnostic {
    /// acse-service-user `[1]` ([`user_diagnostic`]).
    ServiceUser(i64),
    /// acse-service-provider `[2]` ([`provider_diagnostic`]).
    ServiceProvider(i64),
}

/// AARQ-apdu (X.227; reference §6.2, §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aarq {
    /// protocol-version `[0]` (absent = version1).
    pub protocol_version: Option<BitString>,
    /// application-context-name `[1]`.
    pub application_context_name: Oid,
    /// called-AP-title `[2]`.
    pub called_ap_title: Option<ApTitle>,
    /// called-AE-qualifier `[3]`.
    pub called_ae_qualifier: Option<AeQualifier>,
    /// called-AP-invocation-identifier `[4]`.
    pub called_ap_invocation_id: Option<i64>,
    /// called-AE-invocation-identifier `[5]`.
    pub called_ae_invocation_id: Option<i64>,
    /// calling-AP-title `[6]`.
    pub calling_ap_title: Option<ApTitle>,
    /// calling-AE-qualifier `[7]`.
    pub calling_ae_qualifier: Option<AeQualifier>,
    /// calling-AP-invocation-identifier `[8]`.
    pub calling_ap_invocation_id: Option<i64>,
    /// calling-AE-invocation-identifier `[9]`.
    pub calling_ae_invocation_id: Option<i64>,
    /// sender-acse-requirements `[10]`.
    pub sender_acse_requirements: Option<BitString>,
    /// mechanism-name `[11]`.
    pub mechanism_name: Option<Oid>,
    /// calling-authentication-value `[12]`.
    pub calling_authentication_value: Option<AuthenticationValue>,
    /// implementation-information `[29]` (GraphicString octets).
    pub implementation_information: Option<Vec<u8>>,
    /// user-information `[30]`: Association-data, a SEQUENCE OF EXTERNAL.
    pub user_information: Vec<External>,
    /// Received encoding of the whole APDU (empty for locally built values).
    pub raw: Vec<u8>,
    /// Received encoding of the authentication-value CHOICE element inside `[12]`.
    pub raw_authentication_value: Option<Vec<u8>>,
    /// Received encoding of the user-information `[30]` element.
    pub raw_user_information: Option<Vec<u8>>,
}

impl Aarq {
    /// An AARQ with only an application-context-name.
    pub fn new(application_context_name: Oid) -> Aarq {
        Aarq {
            protocol_version: None,
            application_context_name,
            called_ap_title: None,
            called_ae_qualifier: None,
            called_ap_invocation_id: None,
            called_ae_invocation_id: None,
            calling_ap_title: None,
            calling_ae_qualifier: None,
            calling_ap_invocation_id: None,
            calling_ae_invocation_id: None,
            sender_acse_requirements: None,
            mechanism_name: None,
            calling_authentication_value: None,
            implementation_information: None,
            user_information: Vec::new(),
            raw: Vec::new(),
            raw_authentication_value: None,
            raw_user_information: None,
        }
    }
}

/// AARE-apdu (X.227; reference §6.2, §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aare {
    /// protocol-version `[0]`.
    pub protocol_version: Option<BitString>,
    /// application-context-name `[1]`.
    pub application_context_name: Oid,
    /// result `[2]` ([`associate_result`]).
    pub result: i64,
    /// result-source-diagnostic `[3]`.
    pub result_source_diagnostic: SourceDiagnostic,
    /// responding-AP-title `[4]`.
    pub responding_ap_title: Option<ApTitle>,
    /// responding-AE-qualifier `[5]`.
    pub responding_ae_qualifier: Option<AeQualifier>,
    /// responding-AP-invocation-identifier `[6]`.
    pub responding_ap_invocation_id: Option<i64>,
    /// responding-AE-invocation-identifier `[7]`.
    pub responding_ae_invocation_id: Option<i64>,
    /// responder-acse-requirements `[8]`.
    pub responder_acse_requirements: Option<BitString>,
    /// mechanism-name `[9]`.
    pub mechanism_name: Option<Oid>,
    /// responding-authentication-value `[10]`.
    pub responding_authentication_value: Option<AuthenticationValue>,
    /// implementation-information `[29]`.
    pub implementation_information: Option<Vec<u8>>,
    /// user-information `[30]`.
    pub user_information: Vec<External>,
    /// Received encoding of the whole APDU.
    pub raw: Vec<u8>,
    /// Received encoding of the authentication-value CHOICE element inside `[10]`.
    pub raw_authentication_value: Option<Vec<u8>>,
    /// Received encoding of the user-information `[30]` element.
    pub raw_user_information: Option<Vec<u8>>,
}

impl Aare {
    /// An AARE with the given result and diagnostic.
    pub fn new(application_context_name: Oid, result: i64, diagnostic: SourceDiagnostic) -> Aare {
        Aare {
            protocol_version: None,
            application_context_name,
            result,
            result_source_diagnostic: diagnostic,
            responding_ap_title: None,
            responding_ae_qualifier: None,
            responding_ap_invocation_id: None,
            responding_ae_invocation_id: None,
            responder_acse_requirements: None,
            mechanism_name: None,
            responding_authentication_value: None,
            implementation_information: None,
            user_information: Vec::new(),
            raw: Vec::new(),
            raw_authentication_value: None,
            raw_user_information: None,
        }
    }
}

/// RLRQ-apdu and RLRE-apdu (X.227).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Release {
    /// reason `[0]` ([`release_reason`]).
    pub reason: Option<i64>,
    /// user-information `[30]`.
    pub user_information: Vec<External>,
    /// Received encoding of the whole APDU.
    pub raw: Vec<u8>,
}

/// RLRQ-apdu.
pub type Rlrq = Release;
/// RLRE-apdu.
pub type Rlre = Release;

/// ABRT-apdu (X.227).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Abrt {
    /// abort-source `[0]` ([`abort_source`]).
    pub source: i64,
    /// abort-diagnostic `[1]` ([`abort_diagnostic`]).
    pub diagnostic: Option<i64>,
    /// user-information `[30]`.
    pub user_information: Vec<External>,
    /// Received encoding of the whole APDU.
    pub raw: Vec<u8>,
}

/// An ACSE APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Apdu {
    /// A-ASSOCIATE request.
    Aarq(Aarq),
    /// A-ASSOCIATE response.
    Aare(Aare),
    /// A-RELEASE request.
    Rlrq(Rlrq),
    /// A-RELEASE response.
    Rlre(Rlre),
    /// A-ABORT.
    Abrt(Abrt),
}

fn ap_title(t: &Tlv<'_>) -> Result<ApTitle> {
    let c = t.single_child()?;
    Ok(if c.tag() == Tag::OID {
        ApTitle::Form2(c.as_oid()?)
    } else {
        ApTitle::Other(c.raw().to_vec())
    })
}

fn ae_qualifier(t: &Tlv<'_>) -> Result<AeQualifier> {
    let c = t.single_child()?;
    Ok(if c.tag() == Tag::INTEGER {
        AeQualifier::Form2(c.as_i64()?)
    } else {
        AeQualifier::Other(c.raw().to_vec())
    })
}

fn explicit_int(t: &Tlv<'_>) -> Result<i64> {
    let c = t.single_child()?;
    if c.tag() != Tag::INTEGER {
        return Err(AcseError::Invalid("INTEGER"));
    }
    Ok(c.as_i64()?)
}

fn explicit_oid(t: &Tlv<'_>) -> Result<Oid> {
    let c = t.single_child()?;
    if c.tag() != Tag::OID {
        return Err(AcseError::Invalid("OBJECT IDENTIFIER"));
    }
    Ok(c.as_oid()?)
}

fn user_information(t: &Tlv<'_>) -> Result<Vec<External>> {
    let mut out = Vec::new();
    for e in t.children()? {
        let e = e?;
        if e.tag() != Tag::EXTERNAL {
            return Err(AcseError::Invalid("Association-data"));
        }
        out.push(External::from_tlv(&e)?);
    }
    Ok(out)
}

fn write_ap_title(w: &mut Writer, n: u32, v: &Option<ApTitle>) {
    if let Some(v) = v {
        w.constructed(Tag::context(n, true), |w| match v {
            ApTitle::Form2(o) => w.oid(Tag::OID, o),
            ApTitle::Other(r) => w.raw(r),
        });
    }
}

fn write_ae_qualifier(w: &mut Writer, n: u32, v: &Option<AeQualifier>) {
    if let Some(v) = v {
        w.constructed(Tag::context(n, true), |w| match v {
            AeQualifier::Form2(i) => w.integer(Tag::INTEGER, *i),
            AeQualifier::Other(r) => w.raw(r),
        });
    }
}

fn write_explicit_int(w: &mut Writer, n: u32, v: Option<i64>) {
    if let Some(v) = v {
        w.constructed(Tag::context(n, true), |w| w.integer(Tag::INTEGER, v));
    }
}

fn write_user_information(w: &mut Writer, ui: &[External]) {
    if !ui.is_empty() {
        w.constructed(Tag::context(30, true), |w| {
            for e in ui {
                e.write(w, Tag::EXTERNAL);
            }
        });
    }
}

fn write_bits(w: &mut Writer, n: u32, v: &Option<BitString>) {
    if let Some(b) = v {
        w.bit_string(Tag::context(n, false), b.unused, &b.bits);
    }
}

fn write_auth(w: &mut Writer, n: u32, v: &Option<AuthenticationValue>) {
    if let Some(a) = v {
        w.constructed(Tag::context(n, true), |w| a.write(w));
    }
}

impl Apdu {
    /// Decodes one APDU (the single-ASN1-type value of the ACSE presentation context).
    pub fn decode(b: &[u8], limits: Limits) -> Result<Apdu> {
        let mut r = Reader::new(b, limits);
        let t = r.read()?;
        r.finish()?;
        let tag = t.tag();
        if tag == tag::AARQ {
            Self::decode_aarq(&t).map(Apdu::Aarq)
        } else if tag == tag::AARE {
            Self::decode_aare(&t).map(Apdu::Aare)
        } else if tag == tag::RLRQ || tag == tag::RLRE {
            let mut rel = Release {
                raw: t.raw().to_vec(),
                ..Default::default()
            };
            for e in t.children()? {
                let e = e?;
                let et = e.tag();
                if et == Tag::context(0, false) {
                    rel.reason = Some(e.as_i64()?);
                } else if et == Tag::context(30, true) {
                    rel.user_information = user_information(&e)?;
                }
            }
            Ok(if tag == tag::RLRQ {
                Apdu::Rlrq(rel)
            } else {
                Apdu::Rlre(rel)
            })
        } else if tag == tag::ABRT {
            let mut a = Abrt {
                raw: t.raw().to_vec(),
                ..Default::default()
            };
            let mut source = None;
            for e in t.children()? {
                let e = e?;
                let et = e.tag();
                if et == Tag::context(0, false) {
                    source = Some(e.as_i64()?);
                } else if et == Tag::context(1, false) {
                    a.diagnostic = Some(e.as_i64()?);
                } else if et == Tag::context(30, true) {
                    a.user_information = user_information(&e)?;
                }
            }
            a.source = source.ok_or(AcseError::Missing("abort-source"))?;
            Ok(Apdu::Abrt(a))
        } else {
            Err(AcseError::UnknownApdu(tag))
        }
    }

    fn decode_aarq(t: &Tlv<'_>) -> Result<Aarq> {
        let mut a = Aarq::new(Oid::new(&[0, 0]).map_err(AcseError::Ber)?);
        a.raw = t.raw().to_vec();
        let mut ctx = None;
        for e in t.children()? {
            let e = e?;
            let et = e.tag();
            if et.class != secmms_ber::Class::Context {
                return Err(AcseError::Invalid("AARQ element"));
            }
            match (et.number, et.constructed) {
                (0, false) => a.protocol_version = Some(BitString::from_tlv(&e)?),
                (1, true) => ctx = Some(explicit_oid(&e)?),
                (2, true) => a.called_ap_title = Some(ap_title(&e)?),
                (3, true) => a.called_ae_qualifier = Some(ae_qualifier(&e)?),
                (4, true) => a.called_ap_invocation_id = Some(explicit_int(&e)?),
                (5, true) => a.called_ae_invocation_id = Some(explicit_int(&e)?),
                (6, true) => a.calling_ap_title = Some(ap_title(&e)?),
                (7, true) => a.calling_ae_qualifier = Some(ae_qualifier(&e)?),
                (8, true) => a.calling_ap_invocation_id = Some(explicit_int(&e)?),
                (9, true) => a.calling_ae_invocation_id = Some(explicit_int(&e)?),
                (10, false) => a.sender_acse_requirements = Some(BitString::from_tlv(&e)?),
                (11, false) => a.mechanism_name = Some(e.as_oid()?),
                (12, true) => {
                    let v = e.single_child()?;
                    a.raw_authentication_value = Some(v.raw().to_vec());
                    a.calling_authentication_value = Some(AuthenticationValue::from_tlv(&v)?);
                }
                (29, false) => a.implementation_information = Some(e.content().to_vec()),
                (30, true) => {
                    a.raw_user_information = Some(e.raw().to_vec());
                    a.user_information = user_information(&e)?;
                }
                // aSO-context-name-list [13] and the higher-level FU fields are ignored.
                _ => {}
            }
        }
        a.application_context_name = ctx.ok_or(AcseError::Missing("application-context-name"))?;
        Ok(a)
    }

    fn decode_aare(t: &Tlv<'_>) -> Result<Aare> {
        let mut a = Aare::new(
            Oid::new(&[0, 0]).map_err(AcseError::Ber)?,
            0,
            SourceDiagnostic::ServiceUser(0),
        );
        a.raw = t.raw().to_vec();
        let (mut ctx, mut result, mut diag) = (None, None, None);
        for e in t.children()? {
            let e = e?;
            let et = e.tag();
            if et.class != secmms_ber::Class::Context {
                return Err(AcseError::Invalid("AARE element"));
            }
            match (et.number, et.constructed) {
                (0, false) => a.protocol_version = Some(BitString::from_tlv(&e)?),
                (1, true) => ctx = Some(explicit_oid(&e)?),
                (2, true) => result = Some(explicit_int(&e)?),
                (3, true) => {
                    let c = e.single_child()?;
                    let v = explicit_int(&c)?;
                    diag = Some(if c.tag() == Tag::context(1, true) {
                        SourceDiagnostic::ServiceUser(v)
                    } else if c.tag() == Tag::context(2, true) {
                        SourceDiagnostic::ServiceProvider(v)
                    } else {
                        return Err(AcseError::Invalid("result-source-diagnostic"));
                    });
                }
                (4, true) => a.responding_ap_title = Some(ap_title(&e)?),
                (5, true) => a.responding_ae_qualifier = Some(ae_qualifier(&e)?),
                (6, true) => a.responding_ap_invocation_id = Some(explicit_int(&e)?),
                (7, true) => a.responding_ae_invocation_id = Some(explicit_int(&e)?),
                (8, false) => a.responder_acse_requirements = Some(BitString::from_tlv(&e)?),
                (9, false) => a.mechanism_name = Some(e.as_oid()?),
                (10, true) => {
                    let v = e.single_child()?;
                    a.raw_authentication_value = Some(v.raw().to_vec());
                    a.responding_authentication_value = Some(AuthenticationValue::from_tlv(&v)?);
                }
                (29, false) => a.implementation_information = Some(e.content().to_vec()),
                (30, true) => {
                    a.raw_user_information = Some(e.raw().to_vec());
                    a.user_information = user_information(&e)?;
                }
                _ => {}
            }
        }
        a.application_context_name = ctx.ok_or(AcseError::Missing("application-context-name"))?;
        a.result = result.ok_or(AcseError::Missing("result"))?;
        a.result_source_diagnostic = diag.ok_or(AcseError::Missing("result-source-diagnostic"))?;
        Ok(a)
    }

    /// Encodes the APDU (definite lengths, fields in tag order).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Apdu::Aarq(a) => w.constructed(tag::AARQ, |w| {
                write_bits(w, 0, &a.protocol_version);
                w.constructed(Tag::context(1, true), |w| {
                    w.oid(Tag::OID, &a.application_context_name)
                });
                write_ap_title(w, 2, &a.called_ap_title);
                write_ae_qualifier(w, 3, &a.called_ae_qualifier);
                write_explicit_int(w, 4, a.called_ap_invocation_id);
                write_explicit_int(w, 5, a.called_ae_invocation_id);
                write_ap_title(w, 6, &a.calling_ap_title);
                write_ae_qualifier(w, 7, &a.calling_ae_qualifier);
                write_explicit_int(w, 8, a.calling_ap_invocation_id);
                write_explicit_int(w, 9, a.calling_ae_invocation_id);
                write_bits(w, 10, &a.sender_acse_requirements);
                if let Some(m) = &a.mechanism_name {
                    w.oid(Tag::context(11, false), m);
                }
                write_auth(w, 12, &a.calling_authentication_value);
                if let Some(i) = &a.implementation_information {
                    w.octets(Tag::context(29, false), i);
                }
                write_user_information(w, &a.user_information);
            }),
            Apdu::Aare(a) => w.constructed(tag::AARE, |w| {
                write_bits(w, 0, &a.protocol_version);
                w.constructed(Tag::context(1, true), |w| {
                    w.oid(Tag::OID, &a.application_context_name)
                });
                write_explicit_int(w, 2, Some(a.result));
                w.constructed(Tag::context(3, true), |w| {
                    let (n, v) = match a.result_source_diagnostic {
                        SourceDiagnostic::ServiceUser(v) => (1, v),
                        SourceDiagnostic::ServiceProvider(v) => (2, v),
                    };
                    write_explicit_int(w, n, Some(v));
                });
                write_ap_title(w, 4, &a.responding_ap_title);
                write_ae_qualifier(w, 5, &a.responding_ae_qualifier);
                write_explicit_int(w, 6, a.responding_ap_invocation_id);
                write_explicit_int(w, 7, a.responding_ae_invocation_id);
                write_bits(w, 8, &a.responder_acse_requirements);
                if let Some(m) = &a.mechanism_name {
                    w.oid(Tag::context(9, false), m);
                }
                write_auth(w, 10, &a.responding_authentication_value);
                if let Some(i) = &a.implementation_information {
                    w.octets(Tag::context(29, false), i);
                }
                write_user_information(w, &a.user_information);
            }),
            Apdu::Rlrq(r) | Apdu::Rlre(r) => {
                let t = if matches!(self, Apdu::Rlrq(_)) {
                    tag::RLRQ
                } else {
                    tag::RLRE
                };
                w.constructed(t, |w| {
                    if let Some(v) = r.reason {
                        w.integer(Tag::context(0, false), v);
                    }
                    write_user_information(w, &r.user_information);
                })
            }
            Apdu::Abrt(a) => w.constructed(tag::ABRT, |w| {
                w.integer(Tag::context(0, false), a.source);
                if let Some(d) = a.diagnostic {
                    w.integer(Tag::context(1, false), d);
                }
                write_user_information(w, &a.user_information);
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

    fn dec(b: &[u8]) -> Apdu {
        Apdu::decode(b, Limits::default()).unwrap()
    }

    #[test]
    fn reference_release_and_abort() {
        // Reference §6.6.
        let Apdu::Rlrq(r) = dec(&h("62 03 80 01 00")) else {
            panic!()
        };
        assert_eq!(r.reason, Some(release_reason::NORMAL));
        let Apdu::Rlre(r) = dec(&h("63 00")) else {
            panic!()
        };
        assert_eq!(r.reason, None);
        assert_eq!(Apdu::Rlre(r).encode(), h("63 00"));
        let Apdu::Abrt(a) = dec(&h("64 03 80 01 00")) else {
            panic!()
        };
        assert_eq!(a.source, abort_source::SERVICE_USER);
        assert_eq!(Apdu::Abrt(a).encode(), h("64 03 80 01 00"));
        assert_eq!(
            Apdu::decode(&h("64 00"), Limits::default()),
            Err(AcseError::Missing("abort-source"))
        );
    }

    #[test]
    fn reference_aare_rejected() {
        // Reference §6.2 hand-built example: rejected-permanent, authentication-failure.
        let b = h("61 15 A1 07 06 05 28 CA 22 02 03 A2 03 02 01 01 A3 05 A1 03 02 01 0D");
        let Apdu::Aare(a) = dec(&b) else { panic!() };
        assert_eq!(a.result, associate_result::REJECTED_PERMANENT);
        assert_eq!(
            a.result_source_diagnostic,
            SourceDiagnostic::ServiceUser(user_diagnostic::AUTHENTICATION_FAILURE)
        );
        assert_eq!(Apdu::Aare(a).encode(), b);
    }

    #[test]
    fn open61850_aare_with_titles() {
        // Reference §6.5: protocol-version and responding title/qualifier (user-information cut).
        let b = h(
            "61 27 80 02 07 80 A1 07 06 05 28 CA 22 02 03 A2 03 02 01 00 A3 05 A1 03 02 01 00 \
                   A4 07 06 05 29 01 87 67 01 A5 03 02 01 0C",
        );
        let Apdu::Aare(a) = dec(&b) else { panic!() };
        assert_eq!(a.protocol_version.as_ref().unwrap().bits, vec![0x80]);
        assert_eq!(
            a.responding_ap_title,
            Some(ApTitle::Form2("1.1.1.999.1".parse().unwrap()))
        );
        assert_eq!(a.responding_ae_qualifier, Some(AeQualifier::Form2(12)));
        assert_eq!(Apdu::Aare(a).encode(), b);
    }

    #[test]
    fn password_aarq_non_minimal_requirements() {
        // Reference §6.4: libiec61850 password AARQ fields, `8A 02 04 80` accepted.
        let b = h(
            "60 2D A1 07 06 05 28 CA 22 02 03 8A 02 04 80 8B 03 52 03 01 \
                   AC 0E 80 0C 75 73 65 72 31 40 74 65 73 74 70 77 \
                   BE 09 28 07 02 01 03 A0 02 05 00",
        );
        let Apdu::Aarq(a) = dec(&b) else { panic!() };
        let req = a.sender_acse_requirements.as_ref().unwrap();
        assert_eq!(req.unused, 4);
        assert!(req.bit(REQUIREMENT_AUTHENTICATION));
        assert_eq!(a.mechanism_name, Some("2.2.3.1".parse().unwrap()));
        assert_eq!(
            a.calling_authentication_value,
            Some(AuthenticationValue::Charstring(b"user1@testpw".to_vec()))
        );
        assert_eq!(a.raw_authentication_value.as_deref().unwrap()[0], 0x80);
        assert_eq!(
            a.user_information[0].single_value(),
            Some(&[0x05, 0x00][..])
        );
    }

    #[test]
    fn external_forms() {
        // ICCP peer: direct-reference + indirect-reference (reference §6.3).
        let ui = h("BE 0D 28 0B 06 02 51 01 02 01 03 A0 02 05 00");
        let mut w = Writer::new();
        w.constructed(tag::AARQ, |w| {
            w.constructed(Tag::context(1, true), |w| {
                w.oid(Tag::OID, &"1.0.9506.2.3".parse().unwrap())
            });
            w.raw(&ui);
        });
        let b = w.finish();
        let p = b.iter().position(|x| *x == 0xBE).unwrap();
        let Apdu::Aarq(a) = dec(&b) else { panic!() };
        let e = &a.user_information[0];
        assert_eq!(e.direct_reference, Some("2.1.1".parse().unwrap()));
        assert_eq!(e.indirect_reference, Some(3));
        assert_eq!(e.raw, b[p + 2..].to_vec());
        // 62351-4 external authentication value: AC { A2 { 06 oid, A0 { value } } }.
        let av = h("AC 0D A2 0B 06 03 2A 03 04 A0 04 04 02 AB CD");
        let mut w = Writer::new();
        w.constructed(tag::AARQ, |w| {
            w.constructed(Tag::context(1, true), |w| {
                w.oid(Tag::OID, &"1.0.9506.2.3".parse().unwrap())
            });
            w.raw(&av);
        });
        let b = w.finish();
        let Apdu::Aarq(a) = dec(&b) else { panic!() };
        let Some(AuthenticationValue::External(e)) = &a.calling_authentication_value else {
            panic!()
        };
        assert_eq!(e.direct_reference, Some("1.2.3.4".parse().unwrap()));
        assert_eq!(e.single_value(), Some(&h("04 02 AB CD")[..]));
        assert_eq!(e.raw, av[2..].to_vec());
        assert_eq!(a.raw_authentication_value.as_deref(), Some(&av[2..]));
        assert_eq!(Apdu::Aarq(a).encode(), b);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Apdu::decode(&h("65 00"), Limits::default()),
            Err(AcseError::UnknownApdu(_))
        ));
        assert_eq!(
            Apdu::decode(&h("60 00"), Limits::default()),
            Err(AcseError::Missing("application-context-name"))
        );
        assert!(Apdu::decode(&h("60 04 BE 02 30 00"), Limits::default()).is_err());
        assert!(Apdu::decode(&h("60 02 05 00"), Limits::default()).is_err());
    }

    fn arb_oid() -> impl Strategy<Value = Oid> {
        (
            0u64..3,
            0u64..40,
            proptest::collection::vec(any::<u32>(), 0..4),
        )
            .prop_map(|(a, b, r)| {
                let mut arcs = vec![a, b];
                arcs.extend(r.into_iter().map(u64::from));
                Oid::new(&arcs).unwrap()
            })
    }
    fn arb_value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..30).prop_map(|b| {
            let mut w = Writer::new();
            w.octets(Tag::OCTET_STRING, &b);
            w.finish()
        })
    }
    fn arb_bits() -> impl Strategy<Value = BitString> {
        (0u8..8, proptest::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(u, b)| BitString { unused: u, bits: b })
    }
    fn arb_external() -> impl Strategy<Value = External> {
        (
            proptest::option::of(arb_oid()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            prop_oneof![
                arb_value().prop_map(ExternalEncoding::SingleAsn1Type),
                proptest::collection::vec(any::<u8>(), 0..20)
                    .prop_map(ExternalEncoding::OctetAligned),
                arb_bits().prop_map(ExternalEncoding::Arbitrary),
            ],
        )
            .prop_map(|(d, i, dv, e)| External {
                direct_reference: d,
                indirect_reference: i,
                data_value_descriptor: dv,
                encoding: e,
                raw: Vec::new(),
            })
    }
    fn arb_auth() -> impl Strategy<Value = AuthenticationValue> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(AuthenticationValue::Charstring),
            arb_bits().prop_map(AuthenticationValue::Bitstring),
            arb_external().prop_map(AuthenticationValue::External),
            (arb_oid(), arb_value()).prop_map(|(m, v)| AuthenticationValue::Other {
                mechanism_name: m,
                value: v
            }),
        ]
    }
    fn arb_title() -> impl Strategy<Value = Option<ApTitle>> {
        proptest::option::of(prop_oneof![
            arb_oid().prop_map(ApTitle::Form2),
            Just(ApTitle::Other(vec![0x13, 0x02, b'a', b'b'])),
        ])
    }
    fn arb_qual() -> impl Strategy<Value = Option<AeQualifier>> {
        proptest::option::of(prop_oneof![
            any::<i64>().prop_map(AeQualifier::Form2),
            Just(AeQualifier::Other(vec![0x13, 0x01, b'q'])),
        ])
    }

    /// Decoding fills the raw fields; clear them to compare with the generated value.
    fn strip(a: &mut Apdu) {
        fn s(v: &mut [External]) {
            v.iter_mut().for_each(|e| e.raw.clear());
        }
        fn sa(v: &mut Option<AuthenticationValue>) {
            if let Some(AuthenticationValue::External(e)) = v {
                e.raw.clear();
            }
        }
        match a {
            Apdu::Aarq(x) => {
                x.raw.clear();
                x.raw_authentication_value = None;
                x.raw_user_information = None;
                s(&mut x.user_information);
                sa(&mut x.calling_authentication_value);
            }
            Apdu::Aare(x) => {
                x.raw.clear();
                x.raw_authentication_value = None;
                x.raw_user_information = None;
                s(&mut x.user_information);
                sa(&mut x.responding_authentication_value);
            }
            Apdu::Rlrq(x) | Apdu::Rlre(x) => {
                x.raw.clear();
                s(&mut x.user_information);
            }
            Apdu::Abrt(x) => {
                x.raw.clear();
                s(&mut x.user_information);
            }
        }
    }

    proptest! {
        #[test]
        fn aarq_aare_roundtrip(
            ctx in arb_oid(), t1 in arb_title(), q1 in arb_qual(), t2 in arb_title(), q2 in arb_qual(),
            ids in proptest::collection::vec(proptest::option::of(any::<i64>()), 4),
            req in proptest::option::of(arb_bits()), mech in proptest::option::of(arb_oid()),
            auth in proptest::option::of(arb_auth()),
            impl_info in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            ui in proptest::collection::vec(arb_external(), 0..3),
            result in 0i64..3, diag in prop_oneof![(0i64..15).prop_map(SourceDiagnostic::ServiceUser), (0i64..3).prop_map(SourceDiagnostic::ServiceProvider)],
        ) {
            let mut aarq = Aarq::new(ctx.clone());
            aarq.protocol_version = req.clone();
            aarq.called_ap_title = t1.clone();
            aarq.called_ae_qualifier = q1.clone();
            aarq.called_ap_invocation_id = ids[0];
            aarq.called_ae_invocation_id = ids[1];
            aarq.calling_ap_title = t2;
            aarq.calling_ae_qualifier = q2;
            aarq.calling_ap_invocation_id = ids[2];
            aarq.calling_ae_invocation_id = ids[3];
            aarq.sender_acse_requirements = req.clone();
            aarq.mechanism_name = mech.clone();
            aarq.calling_authentication_value = auth.clone();
            aarq.implementation_information = impl_info.clone();
            aarq.user_information = ui.clone();
            let a = Apdu::Aarq(aarq);
            let b = a.encode();
            let mut d = Apdu::decode(&b, Limits::default()).unwrap();
            if let Apdu::Aarq(x) = &d { prop_assert_eq!(&x.raw, &b); }
            strip(&mut d);
            prop_assert_eq!(d, a);

            let mut aare = Aare::new(ctx, result, diag);
            aare.responding_ap_title = t1;
            aare.responding_ae_qualifier = q1;
            aare.responding_ap_invocation_id = ids[0];
            aare.responding_ae_invocation_id = ids[1];
            aare.responder_acse_requirements = req;
            aare.mechanism_name = mech;
            aare.responding_authentication_value = auth;
            aare.implementation_information = impl_info;
            aare.user_information = ui.clone();
            let a = Apdu::Aare(aare);
            let mut d = Apdu::decode(&a.encode(), Limits::default()).unwrap();
            strip(&mut d);
            prop_assert_eq!(d, a);

            for a in [
                Apdu::Rlrq(Release { reason: ids[0], user_information: ui.clone(), raw: Vec::new() }),
                Apdu::Rlre(Release { reason: ids[1], user_information: ui.clone(), raw: Vec::new() }),
                Apdu::Abrt(Abrt { source: result, diagnostic: ids[2], user_information: ui.clone(), raw: Vec::new() }),
            ] {
                let mut d = Apdu::decode(&a.encode(), Limits::default()).unwrap();
                strip(&mut d);
                prop_assert_eq!(d, a);
            }
        }

        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Apdu::decode(&b, Limits::default());
        }
    }
}
