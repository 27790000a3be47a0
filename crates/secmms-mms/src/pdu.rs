//! MMSpdu and the confirmed services used by IEC 61850 — ISO 9506-2 §7 (PDUs), §8 (Initiate,
//! Conclude), §10 (VMD support: Status, GetNameList, Identify), §14 (variable access: Read,
//! Write, GetVariableAccessAttributes, the named variable list services, InformationReport).
//!
//! Types mirror the ASN.1; `encode` produces definite-length BER, `decode` takes
//! [`MmsLimits`] and never panics.

use crate::codec::{bounded, expect, finish, identifier, primitive, seq_of, text, u32_of};
use crate::data::{AccessResult, BitString, Data, TypeDescription};
use crate::error::{
    DataAccessError, ErrorClass, MmsError, RejectPduType, RejectReason, Result, ServiceError,
};
use crate::limits::MmsLimits;
use crate::name::ObjectName;
use secmms_ber::{Class, Oid, Reader, Tag, Tlv, Writer};

const fn ctx(n: u32) -> Tag {
    Tag::context(n, false)
}
const fn ctxc(n: u32) -> Tag {
    Tag::context(n, true)
}

/// `cs-request-detail [79]` — skipped when received (companion-standard detail).
const CS_REQUEST_DETAIL: Tag = Tag::context(79, true);

// ---------------------------------------------------------------------------------------------
// Initiate (ISO 9506-2 §8.2)

/// The parameters of initiate-RequestPDU and initiate-ResponsePDU (ISO 9506-2 §8.2.1). The
/// request carries proposals (`localDetailCalling`, `proposed…`), the response the negotiated
/// values (`localDetailCalled`, `negotiated…`); the layout is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiateParameters {
    /// localDetailCalling / localDetailCalled: maximum MMS PDU size in octets.
    pub local_detail: Option<u32>,
    /// proposed/negotiated MaxServOutstandingCalling.
    pub max_serv_outstanding_calling: u16,
    /// proposed/negotiated MaxServOutstandingCalled.
    pub max_serv_outstanding_called: u16,
    /// proposed/negotiated DataStructureNestingLevel.
    pub data_structure_nesting_level: Option<u8>,
    /// proposed/negotiated VersionNumber (mmsInitRequestDetail / mmsInitResponseDetail).
    pub version: u16,
    /// proposed/negotiated ParameterCBB (ParameterSupportOptions).
    pub parameter_cbb: BitString,
    /// servicesSupportedCalling / servicesSupportedCalled (ServiceSupportOptions).
    pub services_supported: BitString,
}

impl InitiateParameters {
    fn encode_content(&self, w: &mut Writer) {
        if let Some(l) = self.local_detail {
            w.unsigned(ctx(0), l as u64);
        }
        w.unsigned(ctx(1), self.max_serv_outstanding_calling as u64);
        w.unsigned(ctx(2), self.max_serv_outstanding_called as u64);
        if let Some(n) = self.data_structure_nesting_level {
            w.unsigned(ctx(3), n as u64);
        }
        w.constructed(ctxc(4), |w| {
            w.unsigned(ctx(0), self.version as u64);
            w.bit_string(
                ctx(1),
                self.parameter_cbb.unused(),
                self.parameter_cbb.bytes(),
            );
            w.bit_string(
                ctx(2),
                self.services_supported.unused(),
                self.services_supported.bytes(),
            );
        });
    }

    fn decode(t: &Tlv<'_>) -> Result<Self> {
        let mut r = t.children()?;
        let local_detail = match r.optional(ctx(0))? {
            Some(l) => Some(bounded(&l, i32::MAX as i64, "localDetail")? as u32),
            None => None,
        };
        let calling = bounded(
            &expect(&mut r, ctx(1))?,
            i16::MAX as i64,
            "maxServOutstanding",
        )?;
        let called = bounded(
            &expect(&mut r, ctx(2))?,
            i16::MAX as i64,
            "maxServOutstanding",
        )?;
        let nesting = match r.optional(ctx(3))? {
            Some(n) => Some(bounded(&n, i8::MAX as i64, "dataStructureNestingLevel")? as u8),
            None => None,
        };
        let detail = expect(&mut r, ctxc(4))?;
        finish(&r)?;
        let mut d = detail.children()?;
        let version = bounded(&expect(&mut d, ctx(0))?, i16::MAX as i64, "versionNumber")? as u16;
        let (u, b) = expect(&mut d, ctx(1))?.as_bit_string()?;
        let parameter_cbb = BitString::from_parts(b.to_vec(), u)?;
        let (u, b) = expect(&mut d, ctx(2))?.as_bit_string()?;
        let services_supported = BitString::from_parts(b.to_vec(), u)?;
        // ISO 9506-2:2003 optional additions ([3]..[5]) are accepted and ignored.
        while let Some(tag) = d.peek_tag() {
            if tag.class == Class::Context && (3..=5).contains(&tag.number) {
                d.read()?;
            } else {
                break;
            }
        }
        finish(&d)?;
        Ok(InitiateParameters {
            local_detail,
            max_serv_outstanding_calling: calling as u16,
            max_serv_outstanding_called: called as u16,
            data_structure_nesting_level: nesting,
            version,
            parameter_cbb,
            services_supported,
        })
    }
}

/// The outcome of a successful initiate exchange, as both ends use it for the rest of the
/// association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Maximum MMS PDU size in octets (both directions).
    pub max_pdu_size: u32,
    /// Requests the calling side may have outstanding.
    pub max_serv_outstanding_calling: u16,
    /// Requests the called side may have outstanding.
    pub max_serv_outstanding_called: u16,
    /// Data structure nesting level.
    pub nesting_level: u8,
    /// MMS version.
    pub version: u16,
    /// Negotiated parameter CBBs.
    pub parameter_cbb: BitString,
    /// Services the peer supports.
    pub peer_services: BitString,
}

impl Negotiated {
    /// Decoding limits for this association.
    pub fn limits(&self) -> MmsLimits {
        MmsLimits::negotiated(self.max_pdu_size, self.nesting_level)
    }
}

// ---------------------------------------------------------------------------------------------
// Variable access (ISO 9506-2 §14)

/// One element of `listOfVariable` (ISO 9506-2 §14.6): a named variable and an optional
/// alternateAccess kept as the received content octets of `[5]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VariableSpec {
    /// `variableSpecification name [0]` (the only alternative supported).
    pub name: ObjectName,
    /// `alternateAccess [5] IMPLICIT AlternateAccess`, content octets.
    pub alternate_access: Option<Vec<u8>>,
}

impl VariableSpec {
    /// A plain named variable.
    pub fn named(name: ObjectName) -> Self {
        VariableSpec {
            name,
            alternate_access: None,
        }
    }
    fn encode(&self, w: &mut Writer) {
        w.constructed(Tag::SEQUENCE, |w| {
            w.constructed(ctxc(0), |w| self.name.encode(w));
            if let Some(a) = &self.alternate_access {
                w.tlv(ctxc(5), a);
            }
        });
    }
    fn decode(t: &Tlv<'_>) -> Result<Self> {
        if t.tag() != Tag::SEQUENCE {
            return Err(MmsError::InvalidValue("listOfVariable element"));
        }
        let mut r = t.children()?;
        let vs = r.read()?;
        let name = if vs.tag() == ctxc(0) {
            ObjectName::decode_wrapped(&vs)?
        } else {
            return Err(MmsError::Unsupported(
                "VariableSpecification other than name",
            ));
        };
        let alternate_access = r.optional(ctxc(5))?.map(|a| a.content().to_vec());
        finish(&r)?;
        Ok(VariableSpec {
            name,
            alternate_access,
        })
    }
}

fn encode_var_list(w: &mut Writer, tag: Tag, vars: &[VariableSpec]) {
    w.constructed(tag, |w| vars.iter().for_each(|v| v.encode(w)));
}

fn decode_var_list(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Vec<VariableSpec>> {
    seq_of(t, lim, VariableSpec::decode)
}

/// VariableAccessSpecification — ISO 9506-2 §14.5.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VariableAccessSpecification {
    /// `listOfVariable [0]`.
    ListOfVariable(Vec<VariableSpec>),
    /// `variableListName [1]` (a named variable list, an IEC 61850 data set).
    VariableListName(ObjectName),
}

impl VariableAccessSpecification {
    /// One named variable.
    pub fn single(name: ObjectName) -> Self {
        VariableAccessSpecification::ListOfVariable(vec![VariableSpec::named(name)])
    }
    /// Encodes the CHOICE.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            VariableAccessSpecification::ListOfVariable(v) => encode_var_list(w, ctxc(0), v),
            VariableAccessSpecification::VariableListName(n) => {
                w.constructed(ctxc(1), |w| n.encode(w))
            }
        }
    }
    /// Decodes the CHOICE.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Self> {
        if t.tag() == ctxc(0) {
            Ok(VariableAccessSpecification::ListOfVariable(
                decode_var_list(t, lim)?,
            ))
        } else if t.tag() == ctxc(1) {
            Ok(VariableAccessSpecification::VariableListName(
                ObjectName::decode_wrapped(t)?,
            ))
        } else {
            Err(MmsError::InvalidValue("VariableAccessSpecification"))
        }
    }
}

fn encode_results(w: &mut Writer, tag: Tag, results: &[AccessResult]) {
    w.constructed(tag, |w| results.iter().for_each(|r| r.encode(w)));
}

fn decode_results(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Vec<AccessResult>> {
    seq_of(t, lim, |c| AccessResult::decode(c, lim))
}

/// ObjectClass of GetNameList (ISO 9506-2 §10.5, `basicObjectClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectClass(pub u8);

impl ObjectClass {
    /// namedVariable (0).
    pub const NAMED_VARIABLE: ObjectClass = ObjectClass(0);
    /// namedVariableList (2).
    pub const NAMED_VARIABLE_LIST: ObjectClass = ObjectClass(2);
    /// journal (8).
    pub const JOURNAL: ObjectClass = ObjectClass(8);
    /// domain (9).
    pub const DOMAIN: ObjectClass = ObjectClass(9);
}

/// ObjectScope of GetNameList (ISO 9506-2 §10.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectScope {
    /// `vmdSpecific [0] NULL`.
    Vmd,
    /// `domainSpecific [1] Identifier`.
    Domain(String),
    /// `aaSpecific [2] NULL`.
    Aa,
}

/// GetNameList-Request (ISO 9506-2 §10.5.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GetNameListRequest {
    /// objectClass.
    pub object_class: ObjectClass,
    /// objectScope.
    pub scope: ObjectScope,
    /// continueAfter.
    pub continue_after: Option<String>,
}

/// GetNameList-Response (ISO 9506-2 §10.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GetNameListResponse {
    /// listOfIdentifier.
    pub identifiers: Vec<String>,
    /// moreFollows (DEFAULT TRUE; always sent).
    pub more_follows: bool,
}

/// Identify-Response (ISO 9506-2 §10.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentifyResponse {
    /// vendorName.
    pub vendor: String,
    /// modelName.
    pub model: String,
    /// revision.
    pub revision: String,
    /// listOfAbstractSyntaxes.
    pub abstract_syntaxes: Option<Vec<Oid>>,
}

/// Status-Response (ISO 9506-2 §10.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusResponse {
    /// vmdLogicalStatus (0 state-changes-allowed … 3 support-services-allowed).
    pub logical: i64,
    /// vmdPhysicalStatus (0 operational … 3 needs-commissioning).
    pub physical: i64,
    /// localDetail.
    pub local_detail: Option<BitString>,
}

/// Read-Request (ISO 9506-2 §14.6.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    /// specificationWithResult (DEFAULT FALSE).
    pub specification_with_result: bool,
    /// variableAccessSpecification.
    pub spec: VariableAccessSpecification,
}

/// Read-Response (ISO 9506-2 §14.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResponse {
    /// variableAccessSpecification (when specificationWithResult was asked).
    pub spec: Option<VariableAccessSpecification>,
    /// listOfAccessResult.
    pub results: Vec<AccessResult>,
}

/// Write-Request (ISO 9506-2 §14.7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    /// variableAccessSpecification.
    pub spec: VariableAccessSpecification,
    /// listOfData.
    pub data: Vec<Data>,
}

/// One element of Write-Response (ISO 9506-2 §14.7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteResult {
    /// `success [1] IMPLICIT NULL`.
    Success,
    /// `failure [0] IMPLICIT DataAccessError`.
    Failure(DataAccessError),
}

/// GetVariableAccessAttributes-Response (ISO 9506-2 §14.9.2); `address` is skipped on receive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GetVariableAccessAttributesResponse {
    /// mmsDeletable.
    pub mms_deletable: bool,
    /// typeDescription.
    pub type_description: TypeDescription,
}

/// DefineNamedVariableList-Request (ISO 9506-2 §14.12.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefineNamedVariableListRequest {
    /// variableListName.
    pub name: ObjectName,
    /// listOfVariable.
    pub variables: Vec<VariableSpec>,
}

/// GetNamedVariableListAttributes-Response (ISO 9506-2 §14.13.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GetNamedVariableListAttributesResponse {
    /// mmsDeletable.
    pub mms_deletable: bool,
    /// listOfVariable.
    pub variables: Vec<VariableSpec>,
}

/// scopeOfDelete of DeleteNamedVariableList (ISO 9506-2 §14.14.1).
pub mod delete_scope {
    /// specific (DEFAULT): the lists named in listOfVariableListName.
    pub const SPECIFIC: u8 = 0;
    /// aa-specific: every list of this association.
    pub const AA_SPECIFIC: u8 = 1;
    /// domain: every deletable list of domainName.
    pub const DOMAIN: u8 = 2;
    /// vmd: every deletable list.
    pub const VMD: u8 = 3;
}

/// DeleteNamedVariableList-Request (ISO 9506-2 §14.14.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeleteNamedVariableListRequest {
    /// scopeOfDelete (see [`delete_scope`]).
    pub scope: u8,
    /// listOfVariableListName.
    pub names: Option<Vec<ObjectName>>,
    /// domainName.
    pub domain: Option<String>,
}

/// ConfirmedServiceRequest — the services of ISO 9506-2 that this crate implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmedServiceRequest {
    /// `status [0]` with extendedDerivation.
    Status(bool),
    /// `getNameList [1]`.
    GetNameList(GetNameListRequest),
    /// `identify [2]`.
    Identify,
    /// `read [4]`.
    Read(ReadRequest),
    /// `write [5]`.
    Write(WriteRequest),
    /// `getVariableAccessAttributes [6]` by name.
    GetVariableAccessAttributes(ObjectName),
    /// `defineNamedVariableList [11]`.
    DefineNamedVariableList(DefineNamedVariableListRequest),
    /// `getNamedVariableListAttributes [12]`.
    GetNamedVariableListAttributes(ObjectName),
    /// `deleteNamedVariableList [13]`.
    DeleteNamedVariableList(DeleteNamedVariableListRequest),
}

impl ConfirmedServiceRequest {
    /// The ServiceSupportOptions bit number of this service (ISO 9506-2 §7.2.1).
    pub fn service_bit(&self) -> usize {
        use ConfirmedServiceRequest::*;
        match self {
            Status(_) => 0,
            GetNameList(_) => 1,
            Identify => 2,
            Read(_) => 4,
            Write(_) => 5,
            GetVariableAccessAttributes(_) => 6,
            DefineNamedVariableList(_) => 11,
            GetNamedVariableListAttributes(_) => 12,
            DeleteNamedVariableList(_) => 13,
        }
    }

    /// Encodes the CHOICE.
    pub fn encode(&self, w: &mut Writer) {
        use ConfirmedServiceRequest::*;
        match self {
            Status(b) => w.boolean(ctx(0), *b),
            GetNameList(g) => w.constructed(ctxc(1), |w| {
                w.constructed(ctxc(0), |w| w.unsigned(ctx(0), g.object_class.0 as u64));
                w.constructed(ctxc(1), |w| match &g.scope {
                    ObjectScope::Vmd => w.null(ctx(0)),
                    ObjectScope::Domain(d) => w.octets(ctx(1), d.as_bytes()),
                    ObjectScope::Aa => w.null(ctx(2)),
                });
                if let Some(c) = &g.continue_after {
                    w.octets(ctx(2), c.as_bytes());
                }
            }),
            Identify => w.null(ctx(2)),
            Read(r) => w.constructed(ctxc(4), |w| {
                if r.specification_with_result {
                    w.boolean(ctx(0), true);
                }
                w.constructed(ctxc(1), |w| r.spec.encode(w));
            }),
            Write(r) => w.constructed(ctxc(5), |w| {
                r.spec.encode(w);
                w.constructed(ctxc(0), |w| r.data.iter().for_each(|d| d.encode(w)));
            }),
            GetVariableAccessAttributes(n) => {
                w.constructed(ctxc(6), |w| w.constructed(ctxc(0), |w| n.encode(w)))
            }
            DefineNamedVariableList(d) => w.constructed(ctxc(11), |w| {
                d.name.encode(w);
                encode_var_list(w, ctxc(0), &d.variables);
            }),
            GetNamedVariableListAttributes(n) => w.constructed(ctxc(12), |w| n.encode(w)),
            DeleteNamedVariableList(d) => w.constructed(ctxc(13), |w| {
                if d.scope != delete_scope::SPECIFIC {
                    w.unsigned(ctx(0), d.scope as u64);
                }
                if let Some(names) = &d.names {
                    w.constructed(ctxc(1), |w| names.iter().for_each(|n| n.encode(w)));
                }
                if let Some(dom) = &d.domain {
                    w.octets(ctx(2), dom.as_bytes());
                }
            }),
        }
    }

    /// Decodes the CHOICE element.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Self> {
        use ConfirmedServiceRequest::*;
        let tag = t.tag();
        if tag.class != Class::Context {
            return Err(MmsError::InvalidValue("ConfirmedServiceRequest"));
        }
        Ok(match (tag.number, tag.constructed) {
            (0, false) => Status(t.as_bool()?),
            (1, true) => {
                let mut r = t.children()?;
                let oc = expect(&mut r, ctxc(0))?.single_child()?;
                if oc.tag() != ctx(0) {
                    return Err(MmsError::Unsupported("csObjectClass"));
                }
                let object_class = ObjectClass(bounded(&oc, 255, "objectClass")? as u8);
                let sc = expect(&mut r, ctxc(1))?.single_child()?;
                let scope = match (sc.tag().class, sc.tag().number, sc.tag().constructed) {
                    (Class::Context, 0, false) => {
                        sc.as_null()?;
                        ObjectScope::Vmd
                    }
                    (Class::Context, 1, false) => ObjectScope::Domain(identifier(&sc)?),
                    (Class::Context, 2, false) => {
                        sc.as_null()?;
                        ObjectScope::Aa
                    }
                    _ => return Err(MmsError::InvalidValue("objectScope")),
                };
                let continue_after = match r.optional(ctx(2))? {
                    Some(c) => Some(identifier(&c)?),
                    None => None,
                };
                finish(&r)?;
                GetNameList(GetNameListRequest {
                    object_class,
                    scope,
                    continue_after,
                })
            }
            (2, false) => {
                t.as_null()?;
                Identify
            }
            (4, true) => {
                let mut r = t.children()?;
                let specification_with_result = match r.optional(ctx(0))? {
                    Some(b) => b.as_bool()?,
                    None => false,
                };
                let spec = VariableAccessSpecification::decode(
                    &expect(&mut r, ctxc(1))?.single_child()?,
                    lim,
                )?;
                finish(&r)?;
                Read(ReadRequest {
                    specification_with_result,
                    spec,
                })
            }
            (5, true) => {
                let mut r = t.children()?;
                let spec = VariableAccessSpecification::decode(&r.read()?, lim)?;
                let data = seq_of(&expect(&mut r, ctxc(0))?, lim, |d| Data::decode(d, lim))?;
                finish(&r)?;
                Write(WriteRequest { spec, data })
            }
            (6, true) => {
                let c = t.single_child()?;
                if c.tag() != ctxc(0) {
                    return Err(MmsError::Unsupported(
                        "GetVariableAccessAttributes by address",
                    ));
                }
                GetVariableAccessAttributes(ObjectName::decode_wrapped(&c)?)
            }
            (11, true) => {
                let mut r = t.children()?;
                let name = ObjectName::decode(&r.read()?)?;
                let variables = decode_var_list(&expect(&mut r, ctxc(0))?, lim)?;
                finish(&r)?;
                DefineNamedVariableList(DefineNamedVariableListRequest { name, variables })
            }
            (12, true) => GetNamedVariableListAttributes(ObjectName::decode_wrapped(t)?),
            (13, true) => {
                let mut r = t.children()?;
                let scope = match r.optional(ctx(0))? {
                    Some(s) => bounded(&s, 3, "scopeOfDelete")? as u8,
                    None => delete_scope::SPECIFIC,
                };
                let names = match r.optional(ctxc(1))? {
                    Some(l) => Some(seq_of(&l, lim, ObjectName::decode)?),
                    None => None,
                };
                let domain = match r.optional(ctx(2))? {
                    Some(d) => Some(identifier(&d)?),
                    None => None,
                };
                finish(&r)?;
                DeleteNamedVariableList(DeleteNamedVariableListRequest {
                    scope,
                    names,
                    domain,
                })
            }
            _ => return Err(MmsError::UnrecognizedService(tag)),
        })
    }
}

/// ConfirmedServiceResponse for the services of [`ConfirmedServiceRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmedServiceResponse {
    /// `status [0]`.
    Status(StatusResponse),
    /// `getNameList [1]`.
    GetNameList(GetNameListResponse),
    /// `identify [2]`.
    Identify(IdentifyResponse),
    /// `read [4]`.
    Read(ReadResponse),
    /// `write [5]`.
    Write(Vec<WriteResult>),
    /// `getVariableAccessAttributes [6]`.
    GetVariableAccessAttributes(GetVariableAccessAttributesResponse),
    /// `defineNamedVariableList [11]` (NULL).
    DefineNamedVariableList,
    /// `getNamedVariableListAttributes [12]`.
    GetNamedVariableListAttributes(GetNamedVariableListAttributesResponse),
    /// `deleteNamedVariableList [13]`.
    DeleteNamedVariableList {
        /// numberMatched.
        matched: u32,
        /// numberDeleted.
        deleted: u32,
    },
}

impl ConfirmedServiceResponse {
    /// Encodes the CHOICE.
    pub fn encode(&self, w: &mut Writer) {
        use ConfirmedServiceResponse::*;
        match self {
            Status(s) => w.constructed(ctxc(0), |w| {
                w.integer(ctx(0), s.logical);
                w.integer(ctx(1), s.physical);
                if let Some(b) = &s.local_detail {
                    w.bit_string(ctx(2), b.unused(), b.bytes());
                }
            }),
            GetNameList(g) => w.constructed(ctxc(1), |w| {
                w.constructed(ctxc(0), |w| {
                    g.identifiers
                        .iter()
                        .for_each(|i| w.octets(Tag::VISIBLE_STRING, i.as_bytes()))
                });
                w.tlv(ctx(1), &[if g.more_follows { 0xff } else { 0 }]);
            }),
            Identify(i) => w.constructed(ctxc(2), |w| {
                w.octets(ctx(0), i.vendor.as_bytes());
                w.octets(ctx(1), i.model.as_bytes());
                w.octets(ctx(2), i.revision.as_bytes());
                if let Some(l) = &i.abstract_syntaxes {
                    w.constructed(ctxc(3), |w| l.iter().for_each(|o| w.oid(Tag::OID, o)));
                }
            }),
            Read(r) => w.constructed(ctxc(4), |w| {
                if let Some(s) = &r.spec {
                    w.constructed(ctxc(0), |w| s.encode(w));
                }
                encode_results(w, ctxc(1), &r.results);
            }),
            Write(v) => w.constructed(ctxc(5), |w| {
                for r in v {
                    match r {
                        WriteResult::Success => w.null(ctx(1)),
                        WriteResult::Failure(e) => w.integer(ctx(0), e.code()),
                    }
                }
            }),
            GetVariableAccessAttributes(g) => w.constructed(ctxc(6), |w| {
                w.boolean(ctx(0), g.mms_deletable);
                w.constructed(ctxc(2), |w| g.type_description.encode(w));
            }),
            DefineNamedVariableList => w.null(ctx(11)),
            GetNamedVariableListAttributes(g) => w.constructed(ctxc(12), |w| {
                w.boolean(ctx(0), g.mms_deletable);
                encode_var_list(w, ctxc(1), &g.variables);
            }),
            DeleteNamedVariableList { matched, deleted } => w.constructed(ctxc(13), |w| {
                w.unsigned(ctx(0), *matched as u64);
                w.unsigned(ctx(1), *deleted as u64);
            }),
        }
    }

    /// Decodes the CHOICE element.
    pub fn decode(t: &Tlv<'_>, lim: &MmsLimits) -> Result<Self> {
        use ConfirmedServiceResponse::*;
        let tag = t.tag();
        if tag.class != Class::Context {
            return Err(MmsError::InvalidValue("ConfirmedServiceResponse"));
        }
        Ok(match (tag.number, tag.constructed) {
            (0, true) => {
                let mut r = t.children()?;
                let logical = expect(&mut r, ctx(0))?.as_i64()?;
                let physical = expect(&mut r, ctx(1))?.as_i64()?;
                let local_detail = match r.optional(ctx(2))? {
                    Some(b) => {
                        let (u, o) = b.as_bit_string()?;
                        Some(BitString::from_parts(o.to_vec(), u)?)
                    }
                    None => None,
                };
                finish(&r)?;
                Status(StatusResponse {
                    logical,
                    physical,
                    local_detail,
                })
            }
            (1, true) => {
                let mut r = t.children()?;
                let identifiers = seq_of(&expect(&mut r, ctxc(0))?, lim, |i| {
                    if i.tag() != Tag::VISIBLE_STRING {
                        return Err(MmsError::InvalidValue("Identifier"));
                    }
                    identifier(i)
                })?;
                let more_follows = match r.optional(ctx(1))? {
                    Some(b) => b.as_bool()?,
                    None => true,
                };
                finish(&r)?;
                GetNameList(GetNameListResponse {
                    identifiers,
                    more_follows,
                })
            }
            (2, true) => {
                let mut r = t.children()?;
                let vendor = text(&expect(&mut r, ctx(0))?)?;
                let model = text(&expect(&mut r, ctx(1))?)?;
                let revision = text(&expect(&mut r, ctx(2))?)?;
                let abstract_syntaxes = match r.optional(ctxc(3))? {
                    Some(l) => Some(seq_of(&l, lim, |o| {
                        if o.tag() != Tag::OID {
                            return Err(MmsError::InvalidValue("abstract syntax"));
                        }
                        Ok(o.as_oid()?)
                    })?),
                    None => None,
                };
                finish(&r)?;
                Identify(IdentifyResponse {
                    vendor,
                    model,
                    revision,
                    abstract_syntaxes,
                })
            }
            (4, true) => {
                let mut r = t.children()?;
                let spec = match r.optional(ctxc(0))? {
                    Some(s) => Some(VariableAccessSpecification::decode(
                        &s.single_child()?,
                        lim,
                    )?),
                    None => None,
                };
                let results = decode_results(&expect(&mut r, ctxc(1))?, lim)?;
                finish(&r)?;
                Read(ReadResponse { spec, results })
            }
            (5, true) => Write(seq_of(t, lim, |c| {
                if c.tag() == ctx(1) {
                    c.as_null()?;
                    Ok(WriteResult::Success)
                } else if c.tag() == ctx(0) {
                    DataAccessError::from_code(c.as_i64()?)
                        .map(WriteResult::Failure)
                        .ok_or(MmsError::InvalidValue("DataAccessError"))
                } else {
                    Err(MmsError::InvalidValue("Write-Response"))
                }
            })?),
            (6, true) => {
                let mut r = t.children()?;
                let mms_deletable = expect(&mut r, ctx(0))?.as_bool()?;
                let _address = r.optional_any_form(ctx(1))?;
                let td = expect(&mut r, ctxc(2))?.single_child()?;
                let type_description = TypeDescription::decode(&td, lim)?;
                // accessControlList [3] and meaning [4] are accepted and ignored.
                while let Some(tag) = r.peek_tag() {
                    if tag.class == Class::Context && (3..=4).contains(&tag.number) {
                        r.read()?;
                    } else {
                        break;
                    }
                }
                finish(&r)?;
                GetVariableAccessAttributes(GetVariableAccessAttributesResponse {
                    mms_deletable,
                    type_description,
                })
            }
            (11, false) => {
                t.as_null()?;
                DefineNamedVariableList
            }
            (12, true) => {
                let mut r = t.children()?;
                let mms_deletable = expect(&mut r, ctx(0))?.as_bool()?;
                let variables = decode_var_list(&expect(&mut r, ctxc(1))?, lim)?;
                finish(&r)?;
                GetNamedVariableListAttributes(GetNamedVariableListAttributesResponse {
                    mms_deletable,
                    variables,
                })
            }
            (13, true) => {
                let mut r = t.children()?;
                let matched = u32_of(&expect(&mut r, ctx(0))?, "numberMatched")?;
                let deleted = u32_of(&expect(&mut r, ctx(1))?, "numberDeleted")?;
                finish(&r)?;
                DeleteNamedVariableList { matched, deleted }
            }
            _ => return Err(MmsError::UnrecognizedService(tag)),
        })
    }
}

/// InformationReport (ISO 9506-2 §14.11), the unconfirmed service IEC 61850 reports use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationReport {
    /// variableAccessSpecification.
    pub spec: VariableAccessSpecification,
    /// listOfAccessResult.
    pub results: Vec<AccessResult>,
}

// ---------------------------------------------------------------------------------------------
// MMSpdu (ISO 9506-2 §7)

/// Confirmed-RequestPDU (ISO 9506-2 §7.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedRequest {
    /// invokeID.
    pub invoke_id: u32,
    /// confirmedServiceRequest.
    pub service: ConfirmedServiceRequest,
}

/// Confirmed-ResponsePDU (ISO 9506-2 §7.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedResponse {
    /// invokeID.
    pub invoke_id: u32,
    /// confirmedServiceResponse.
    pub service: ConfirmedServiceResponse,
}

/// Confirmed-ErrorPDU (ISO 9506-2 §7.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedError {
    /// invokeID.
    pub invoke_id: u32,
    /// modifierPosition.
    pub modifier_position: Option<u32>,
    /// serviceError.
    pub error: ServiceError,
}

/// RejectPDU (ISO 9506-2 §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectPdu {
    /// originalInvokeID.
    pub original_invoke_id: Option<u32>,
    /// rejectReason.
    pub reason: RejectReason,
}

/// MMSpdu — ISO 9506-2 §7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MmsPdu {
    /// `confirmed-RequestPDU [0]`.
    ConfirmedRequest(ConfirmedRequest),
    /// `confirmed-ResponsePDU [1]`.
    ConfirmedResponse(ConfirmedResponse),
    /// `confirmed-ErrorPDU [2]`.
    ConfirmedError(ConfirmedError),
    /// `unconfirmed-PDU [3]` carrying an informationReport.
    InformationReport(InformationReport),
    /// `rejectPDU [4]`.
    Reject(RejectPdu),
    /// `cancel-RequestPDU [5]`.
    CancelRequest(u32),
    /// `cancel-ResponsePDU [6]`.
    CancelResponse(u32),
    /// `cancel-ErrorPDU [7]`.
    CancelError {
        /// originalInvokeID.
        invoke_id: u32,
        /// serviceError.
        error: ServiceError,
    },
    /// `initiate-RequestPDU [8]`.
    InitiateRequest(InitiateParameters),
    /// `initiate-ResponsePDU [9]`.
    InitiateResponse(InitiateParameters),
    /// `initiate-ErrorPDU [10]`.
    InitiateError(ServiceError),
    /// `conclude-RequestPDU [11]`.
    ConcludeRequest,
    /// `conclude-ResponsePDU [12]`.
    ConcludeResponse,
    /// `conclude-ErrorPDU [13]`.
    ConcludeError(ServiceError),
}

fn encode_service_error_content(e: &ServiceError, w: &mut Writer) {
    w.constructed(ctxc(0), |w| {
        w.integer(ctx(e.class.tag_number()), e.class.code())
    });
    if let Some(c) = e.additional_code {
        w.integer(ctx(1), c);
    }
    if let Some(d) = &e.additional_description {
        w.octets(ctx(2), d.as_bytes());
    }
}

fn decode_service_error(t: &Tlv<'_>) -> Result<ServiceError> {
    let mut r = t.children()?;
    let ec = expect(&mut r, ctxc(0))?.single_child()?;
    if ec.tag().class != Class::Context || ec.tag().constructed {
        return Err(MmsError::InvalidValue("errorClass"));
    }
    let class = ErrorClass::from_parts(ec.tag().number, ec.as_i64()?)
        .ok_or(MmsError::InvalidValue("errorClass"))?;
    let additional_code = match r.optional(ctx(1))? {
        Some(c) => Some(c.as_i64()?),
        None => None,
    };
    let additional_description = match r.optional(ctx(2))? {
        Some(d) => Some(text(&d)?),
        None => None,
    };
    // serviceSpecificInformation [3] is accepted and not modelled.
    let _ = r.optional_any_form(ctx(3))?;
    finish(&r)?;
    Ok(ServiceError {
        class,
        additional_code,
        additional_description,
    })
}

impl MmsPdu {
    /// Encodes the PDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        self.encode_to(&mut w);
        w.finish()
    }

    /// Encodes the PDU into a writer.
    pub fn encode_to(&self, w: &mut Writer) {
        match self {
            MmsPdu::ConfirmedRequest(c) => w.constructed(ctxc(0), |w| {
                w.unsigned(Tag::INTEGER, c.invoke_id as u64);
                c.service.encode(w);
            }),
            MmsPdu::ConfirmedResponse(c) => w.constructed(ctxc(1), |w| {
                w.unsigned(Tag::INTEGER, c.invoke_id as u64);
                c.service.encode(w);
            }),
            MmsPdu::ConfirmedError(e) => w.constructed(ctxc(2), |w| {
                w.unsigned(ctx(0), e.invoke_id as u64);
                if let Some(p) = e.modifier_position {
                    w.unsigned(ctx(1), p as u64);
                }
                w.constructed(ctxc(2), |w| encode_service_error_content(&e.error, w));
            }),
            MmsPdu::InformationReport(r) => w.constructed(ctxc(3), |w| {
                w.constructed(ctxc(0), |w| {
                    r.spec.encode(w);
                    encode_results(w, ctxc(0), &r.results);
                })
            }),
            MmsPdu::Reject(r) => w.constructed(ctxc(4), |w| {
                if let Some(i) = r.original_invoke_id {
                    w.unsigned(ctx(0), i as u64);
                }
                w.integer(ctx(r.reason.pdu as u32), r.reason.code);
            }),
            MmsPdu::CancelRequest(i) => w.unsigned(ctx(5), *i as u64),
            MmsPdu::CancelResponse(i) => w.unsigned(ctx(6), *i as u64),
            MmsPdu::CancelError { invoke_id, error } => w.constructed(ctxc(7), |w| {
                w.unsigned(ctx(0), *invoke_id as u64);
                w.constructed(ctxc(1), |w| encode_service_error_content(error, w));
            }),
            MmsPdu::InitiateRequest(p) => w.constructed(ctxc(8), |w| p.encode_content(w)),
            MmsPdu::InitiateResponse(p) => w.constructed(ctxc(9), |w| p.encode_content(w)),
            MmsPdu::InitiateError(e) => {
                w.constructed(ctxc(10), |w| encode_service_error_content(e, w))
            }
            MmsPdu::ConcludeRequest => w.null(ctx(11)),
            MmsPdu::ConcludeResponse => w.null(ctx(12)),
            MmsPdu::ConcludeError(e) => {
                w.constructed(ctxc(13), |w| encode_service_error_content(e, w))
            }
        }
    }

    /// Decodes one PDU occupying all of `bytes`.
    pub fn decode(bytes: &[u8], lim: &MmsLimits) -> Result<MmsPdu> {
        if bytes.len() > lim.max_pdu_size {
            return Err(MmsError::PduTooLarge {
                len: bytes.len(),
                max: lim.max_pdu_size,
            });
        }
        let mut r = Reader::new(bytes, lim.ber());
        let t = r.read()?;
        finish(&r)?;
        let tag = t.tag();
        if tag.class != Class::Context {
            return Err(MmsError::UnknownPdu(tag));
        }
        Ok(match (tag.number, tag.constructed) {
            (0, true) => MmsPdu::ConfirmedRequest(decode_confirmed_request(&t, lim)?),
            (1, true) => {
                let mut r = t.children()?;
                let invoke_id = u32_of(&expect(&mut r, Tag::INTEGER)?, "invokeID")?;
                let service = ConfirmedServiceResponse::decode(&r.read()?, lim)?;
                let _ = r.optional(CS_REQUEST_DETAIL)?;
                finish(&r)?;
                MmsPdu::ConfirmedResponse(ConfirmedResponse { invoke_id, service })
            }
            (2, true) => {
                let mut r = t.children()?;
                let invoke_id = u32_of(&expect(&mut r, ctx(0))?, "invokeID")?;
                let modifier_position = match r.optional(ctx(1))? {
                    Some(p) => Some(u32_of(&p, "modifierPosition")?),
                    None => None,
                };
                let error = decode_service_error(&expect(&mut r, ctxc(2))?)?;
                finish(&r)?;
                MmsPdu::ConfirmedError(ConfirmedError {
                    invoke_id,
                    modifier_position,
                    error,
                })
            }
            (3, true) => {
                let mut r = t.children()?;
                let ir = r.read()?;
                if ir.tag() != ctxc(0) {
                    return Err(MmsError::Unsupported(
                        "unconfirmed service other than informationReport",
                    ));
                }
                let _ = r.optional(CS_REQUEST_DETAIL)?;
                finish(&r)?;
                let mut ri = ir.children()?;
                let spec = VariableAccessSpecification::decode(&ri.read()?, lim)?;
                let results = decode_results(&expect(&mut ri, ctxc(0))?, lim)?;
                finish(&ri)?;
                MmsPdu::InformationReport(InformationReport { spec, results })
            }
            (4, true) => {
                let mut r = t.children()?;
                let original_invoke_id = match r.optional(ctx(0))? {
                    Some(i) => Some(u32_of(&i, "originalInvokeID")?),
                    None => None,
                };
                let rr = primitive(r.read()?)?;
                finish(&r)?;
                let pdu = (rr.tag().class == Class::Context)
                    .then(|| RejectPduType::from_tag(rr.tag().number))
                    .flatten()
                    .ok_or(MmsError::InvalidValue("rejectReason"))?;
                MmsPdu::Reject(RejectPdu {
                    original_invoke_id,
                    reason: RejectReason {
                        pdu,
                        code: rr.as_i64()?,
                    },
                })
            }
            (5, false) => MmsPdu::CancelRequest(u32_of(&t, "invokeID")?),
            (6, false) => MmsPdu::CancelResponse(u32_of(&t, "invokeID")?),
            (7, true) => {
                let mut r = t.children()?;
                let invoke_id = u32_of(&expect(&mut r, ctx(0))?, "invokeID")?;
                let error = decode_service_error(&expect(&mut r, ctxc(1))?)?;
                finish(&r)?;
                MmsPdu::CancelError { invoke_id, error }
            }
            (8, true) => MmsPdu::InitiateRequest(InitiateParameters::decode(&t)?),
            (9, true) => MmsPdu::InitiateResponse(InitiateParameters::decode(&t)?),
            (10, true) => MmsPdu::InitiateError(decode_service_error(&t)?),
            (11, false) => {
                t.as_null()?;
                MmsPdu::ConcludeRequest
            }
            (12, false) => {
                t.as_null()?;
                MmsPdu::ConcludeResponse
            }
            (13, true) => MmsPdu::ConcludeError(decode_service_error(&t)?),
            _ => return Err(MmsError::UnknownPdu(tag)),
        })
    }
}

fn decode_confirmed_request(t: &Tlv<'_>, lim: &MmsLimits) -> Result<ConfirmedRequest> {
    let mut r = t.children()?;
    let invoke_id = u32_of(&expect(&mut r, Tag::INTEGER)?, "invokeID")?;
    let inner = || -> Result<ConfirmedServiceRequest> {
        if r.peek_tag() == Some(Tag::SEQUENCE) {
            return Err(MmsError::UnsupportedModifier);
        }
        let mut r = r.clone();
        let service = ConfirmedServiceRequest::decode(&r.read()?, lim)?;
        let _ = r.optional(CS_REQUEST_DETAIL)?;
        finish(&r)?;
        Ok(service)
    };
    match inner() {
        Ok(service) => Ok(ConfirmedRequest { invoke_id, service }),
        Err(e) => Err(MmsError::InRequest {
            invoke_id,
            source: Box::new(e),
        }),
    }
}
