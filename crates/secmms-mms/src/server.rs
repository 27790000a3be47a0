//! Sans-IO MMS server: initiate negotiation and the confirmed services over a [`SharedModel`].
//!
//! The runtime hands this module the MMS PDU octets it took out of the presentation layer and
//! sends back whatever comes out; it needs no MMS knowledge beyond "the first PDU is the
//! initiate, conclude ends the association":
//!
//! ```
//! use secmms_mms::server::{Vmd, ServerConfig, InitiateOutcome};
//! use secmms_mms::model::{Model, SharedModel};
//! use secmms_mms::client;
//!
//! let server = Vmd::new(SharedModel::new(Model::default_demo()), ServerConfig::default());
//! let InitiateOutcome::Accepted { response, association } =
//!     server.accept_initiate(&client::initiate_request_pdu(&client::ClientProposal::default()))
//! else { panic!("refused") };
//! assert_eq!(response[0], 0xA9); // initiate-ResponsePDU
//! let read = client::read_request_pdu(1, &[client::ObjectReference::parse("DEMOLD0/LLN0.NamPlt.vendor[DC]").unwrap()]);
//! let reply = association.handle_pdu(&read).unwrap();
//! assert_eq!(reply[0], 0xA1); // confirmed-ResponsePDU
//! ```

use crate::data::{AccessResult, BitString, Data};
use crate::error::{error_code, ErrorClass, MmsError, RejectPduType, RejectReason, ServiceError};
use crate::limits::{
    MmsLimits, DEFAULT_MAX_PDU_SIZE, DEFAULT_MAX_SERV_OUTSTANDING, DEFAULT_NESTING_LEVEL,
    MIN_MAX_PDU_SIZE,
};
use crate::model::{
    Change, ChangeOrigin, Fc, Identity, Model, NamedVariableList, NodeKind, SharedModel,
    MAX_LISTS_PER_DOMAIN, MAX_LIST_MEMBERS,
};
use crate::name::ObjectName;
use crate::pdu::*;
use crate::DataAccessError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// MMS version this implementation negotiates at most (ISO 9506-2:2003 = version 1).
pub const MMS_VERSION: u16 = 1;

/// ParameterSupportOptions the server offers (ISO 9506-2 §7.2.2): str1, str2, vnam, valt,
/// vlis — the IEC 61850-8-1 set (`05 F1 00`, reference §8). valt: alternate access is
/// implemented for read (component, index, index range, all elements) and write (component,
/// index).
pub const SERVER_PARAMETER_CBB: [u8; 2] = [0xF1, 0x00];
/// Unused bits of [`SERVER_PARAMETER_CBB`] (11 bits defined).
pub const SERVER_PARAMETER_CBB_UNUSED: u8 = 5;

/// ServiceSupportOptions the server offers (ISO 9506-2 §7.2.1, 85 bits): status, getNameList,
/// identify, read, write, getVariableAccessAttributes, defineNamedVariableList,
/// getNamedVariableListAttributes, deleteNamedVariableList, conclude, cancel.
pub const SERVER_SERVICES_SUPPORTED: [u8; 11] = [
    0xEE, 0x1C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18,
];
/// Unused bits of the 85-bit ServiceSupportOptions.
pub const SERVICES_SUPPORTED_UNUSED: u8 = 3;

/// Functional constraints a client may write by default (IEC 61850-7-2 §6.7 / 8-1: ST and MX
/// are read-only; settings, descriptions, substitution, blocking, controls and control-block
/// attributes are writable). DECISION: configurable through [`ServerConfig::writable_fcs`].
pub const DEFAULT_WRITABLE_FCS: [Fc; 10] = [
    Fc::SP,
    Fc::SV,
    Fc::CF,
    Fc::DC,
    Fc::BL,
    Fc::CO,
    Fc::RP,
    Fc::BR,
    Fc::SE,
    Fc::GO,
];

/// Octets reserved for the confirmed-ResponsePDU envelope when a GetNameList page is sized to
/// the negotiated PDU size.
const NAME_LIST_OVERHEAD: usize = 32;

/// The ServiceError used for a named object that does not exist. DECISION (reference §9
/// item 11: stacks differ): definition / object-undefined (ISO 9506-2 §7.4.1).
pub const UNDEFINED_OBJECT: ServiceError = ServiceError::object_undefined();

/// Configuration of a [`Vmd`]: identity, limits, writable functional constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Identify answer.
    pub identity: Identity,
    /// Largest PDU the server accepts (localDetailCalled is min(proposal, this)).
    pub max_pdu_size: u32,
    /// Most outstanding requests either way.
    pub max_serv_outstanding: u16,
    /// Data structure nesting level offered.
    pub nesting_level: u8,
    /// FCs a client may write.
    pub writable_fcs: Vec<Fc>,
    /// Emulate direct control: a write of `LN$CO$DO$Oper` copies `ctlVal` to `LN$ST$DO$stVal`
    /// (refused when `LN$CF$DO$ctlModel` is 0, status-only).
    pub direct_control: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            identity: Identity::default(),
            max_pdu_size: DEFAULT_MAX_PDU_SIZE,
            max_serv_outstanding: DEFAULT_MAX_SERV_OUTSTANDING,
            nesting_level: DEFAULT_NESTING_LEVEL,
            writable_fcs: DEFAULT_WRITABLE_FCS.to_vec(),
            direct_control: true,
        }
    }
}

/// The result of [`Vmd::accept_initiate`].
#[derive(Debug)]
pub enum InitiateOutcome {
    /// Accepted: send `response` (an initiate-ResponsePDU) and use `association` from now on.
    Accepted {
        /// initiate-ResponsePDU octets.
        response: Vec<u8>,
        /// The association state.
        association: ServerSession,
    },
    /// Refused by MMS: send `response` (an initiate-ErrorPDU) and release.
    Refused {
        /// initiate-ErrorPDU octets.
        response: Vec<u8>,
        /// Why.
        error: ServiceError,
    },
    /// The octets are not a valid initiate-RequestPDU: abort the association.
    Invalid(MmsError),
}

type AaLists = Mutex<BTreeMap<String, NamedVariableList>>;

/// The MMS server of one device over a shared model: its virtual manufacturing device (VMD,
/// ISO 9506-1), which answers the initiate of each association and serves its
/// [`ServerSession`]. Cheap to clone; shared by every association.
#[derive(Debug, Clone)]
pub struct Vmd {
    model: SharedModel,
    config: Arc<ServerConfig>,
}

impl Vmd {
    /// A server for `model`.
    pub fn new(model: SharedModel, config: ServerConfig) -> Self {
        Vmd {
            model,
            config: Arc::new(config),
        }
    }

    /// The shared model.
    pub fn model(&self) -> &SharedModel {
        &self.model
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Negotiates an initiate-Request (ISO 9506-2 §8.2): each number is min(proposal, ours);
    /// the parameter CBBs are the intersection. Errors are initiate-error classes.
    pub fn negotiate(
        &self,
        req: &InitiateParameters,
    ) -> Result<(InitiateParameters, Negotiated), ServiceError> {
        let c = &self.config;
        let max_pdu = req
            .local_detail
            .unwrap_or(c.max_pdu_size)
            .min(c.max_pdu_size);
        if max_pdu < MIN_MAX_PDU_SIZE {
            return Err(ServiceError::new(ErrorClass::Initiate(
                error_code::INITIATE_MAX_SEGMENT_INSUFFICIENT,
            )));
        }
        if req.max_serv_outstanding_calling == 0 {
            return Err(ServiceError::new(ErrorClass::Initiate(
                error_code::INITIATE_MAX_SERV_OUTSTANDING_CALLING_INSUFFICIENT,
            )));
        }
        if req.max_serv_outstanding_called == 0 {
            return Err(ServiceError::new(ErrorClass::Initiate(
                error_code::INITIATE_MAX_SERV_OUTSTANDING_CALLED_INSUFFICIENT,
            )));
        }
        let calling = req.max_serv_outstanding_calling.min(c.max_serv_outstanding);
        let called = req.max_serv_outstanding_called.min(c.max_serv_outstanding);
        let nesting = req
            .data_structure_nesting_level
            .unwrap_or(c.nesting_level)
            .min(c.nesting_level);
        let version = req.version.min(MMS_VERSION);
        let mut cbb = SERVER_PARAMETER_CBB.to_vec();
        for (i, b) in cbb.iter_mut().enumerate() {
            *b &= req.parameter_cbb.bytes().get(i).copied().unwrap_or(0);
        }
        let parameter_cbb = BitString::from_parts(cbb, SERVER_PARAMETER_CBB_UNUSED)
            .map_err(|_| ServiceError::new(ErrorClass::Initiate(error_code::OTHER)))?;
        let services = BitString::from_parts(
            SERVER_SERVICES_SUPPORTED.to_vec(),
            SERVICES_SUPPORTED_UNUSED,
        )
        .map_err(|_| ServiceError::new(ErrorClass::Initiate(error_code::OTHER)))?;
        let resp = InitiateParameters {
            local_detail: Some(max_pdu),
            max_serv_outstanding_calling: calling,
            max_serv_outstanding_called: called,
            data_structure_nesting_level: Some(nesting),
            version,
            parameter_cbb: parameter_cbb.clone(),
            services_supported: services,
        };
        let neg = Negotiated {
            max_pdu_size: max_pdu,
            max_serv_outstanding_calling: calling,
            max_serv_outstanding_called: called,
            nesting_level: nesting,
            version,
            parameter_cbb,
            peer_services: req.services_supported.clone(),
        };
        Ok((resp, neg))
    }

    /// Decodes an initiate-RequestPDU (the MMS part of the AARQ user information) and answers
    /// it.
    pub fn accept_initiate(&self, bytes: &[u8]) -> InitiateOutcome {
        let lim = crate::limits::MmsLimits::default();
        let req = match MmsPdu::decode(bytes, &lim) {
            Ok(MmsPdu::InitiateRequest(r)) => r,
            Ok(_) => {
                return InitiateOutcome::Invalid(MmsError::InvalidValue("initiate-RequestPDU"))
            }
            Err(e) => return InitiateOutcome::Invalid(e),
        };
        match self.negotiate(&req) {
            Ok((resp, neg)) => InitiateOutcome::Accepted {
                response: MmsPdu::InitiateResponse(resp).encode(),
                association: self.association(neg),
            },
            Err(error) => InitiateOutcome::Refused {
                response: MmsPdu::InitiateError(error.clone()).encode(),
                error,
            },
        }
    }

    /// The session of one association, for negotiated parameters.
    pub fn association(&self, negotiated: Negotiated) -> ServerSession {
        ServerSession {
            server: self.clone(),
            negotiated,
            aa_lists: Mutex::new(BTreeMap::new()),
            concluded: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
        }
    }

    /// Executes one confirmed service. Application-association-specific lists are not
    /// available here (use [`ServerSession::handle`]).
    pub fn handle(
        &self,
        req: ConfirmedServiceRequest,
        neg: &Negotiated,
    ) -> Result<ConfirmedServiceResponse, ServiceError> {
        self.dispatch(req, neg, None)
    }

    /// Decodes a PDU, executes it and encodes the answer (response, error or reject); `None`
    /// when nothing is to be sent. Without association state (see [`ServerSession::handle_pdu`]).
    pub fn handle_pdu(&self, bytes: &[u8], neg: &Negotiated) -> Option<Vec<u8>> {
        self.handle_pdu_inner(bytes, neg, None, None).0
    }

    /// `unsent`: the session's count of answers not yet reported sent; a confirmed request
    /// that finds it at the negotiated limit is rejected instead of served.
    fn handle_pdu_inner(
        &self,
        bytes: &[u8],
        neg: &Negotiated,
        aa: Option<&AaLists>,
        unsent: Option<&AtomicUsize>,
    ) -> (Option<Vec<u8>>, bool) {
        let reject = |invoke: Option<u32>, pdu: RejectPduType, code: i64| {
            Some(
                MmsPdu::Reject(RejectPdu {
                    original_invoke_id: invoke,
                    reason: RejectReason { pdu, code },
                })
                .encode(),
            )
        };
        let pdu = match MmsPdu::decode(bytes, &neg.limits()) {
            Ok(p) => p,
            Err(e) => {
                let (invoke, reason) = e.reject();
                return (reject(invoke, reason.pdu, reason.code), false);
            }
        };
        match pdu {
            MmsPdu::ConfirmedRequest(r) => {
                let invoke_id = r.invoke_id;
                if let Some(n) = unsent {
                    let limit = usize::from(neg.max_serv_outstanding_calling.max(1));
                    if n.load(Ordering::SeqCst) >= limit {
                        // ISO 9506-2 §7.1 / RejectPDU: more requests outstanding than negotiated.
                        return (
                            reject(
                                Some(invoke_id),
                                RejectPduType::ConfirmedRequest,
                                crate::error::reject_code::MAX_SERV_OUTSTANDING_EXCEEDED,
                            ),
                            false,
                        );
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                }
                let out = match self.dispatch(r.service, neg, aa) {
                    Ok(service) => {
                        let enc =
                            MmsPdu::ConfirmedResponse(ConfirmedResponse { invoke_id, service })
                                .encode();
                        if enc.len() > neg.max_pdu_size as usize {
                            confirmed_error(invoke_id, ServiceError::pdu_size())
                        } else {
                            enc
                        }
                    }
                    Err(e) => confirmed_error(invoke_id, e),
                };
                (Some(out), false)
            }
            MmsPdu::ConcludeRequest => (Some(MmsPdu::ConcludeResponse.encode()), true),
            MmsPdu::CancelRequest(id) => (
                Some(
                    MmsPdu::CancelError {
                        invoke_id: id,
                        error: ServiceError::new(ErrorClass::Cancel(
                            error_code::CANCEL_INVOKE_ID_UNKNOWN,
                        )),
                    }
                    .encode(),
                ),
                false,
            ),
            // The server sends no requests: a response or error answers nothing
            // (confirmed-responsePDU / confirmed-errorPDU reject code 1 = invalid-invokeID).
            MmsPdu::ConfirmedResponse(r) => (
                reject(Some(r.invoke_id), RejectPduType::ConfirmedResponse, 1),
                false,
            ),
            MmsPdu::ConfirmedError(e) => (
                reject(Some(e.invoke_id), RejectPduType::ConfirmedError, 1),
                false,
            ),
            MmsPdu::InitiateRequest(_) | MmsPdu::InitiateResponse(_) | MmsPdu::InitiateError(_) => {
                (
                    reject(
                        None,
                        RejectPduType::PduError,
                        crate::error::reject_code::INVALID_PDU,
                    ),
                    false,
                )
            }
            MmsPdu::InformationReport(_)
            | MmsPdu::Reject(_)
            | MmsPdu::CancelResponse(_)
            | MmsPdu::CancelError { .. }
            | MmsPdu::ConcludeResponse
            | MmsPdu::ConcludeError(_) => (None, false),
        }
    }

    fn dispatch(
        &self,
        req: ConfirmedServiceRequest,
        neg: &Negotiated,
        aa: Option<&AaLists>,
    ) -> Result<ConfirmedServiceResponse, ServiceError> {
        use ConfirmedServiceRequest as Q;
        use ConfirmedServiceResponse as R;
        match req {
            Q::Status(_) => Ok(R::Status(StatusResponse {
                logical: 0,
                physical: 0,
                local_detail: None,
            })),
            Q::Identify => {
                let i = &self.config.identity;
                Ok(R::Identify(IdentifyResponse {
                    vendor: i.vendor.clone(),
                    model: i.model.clone(),
                    revision: i.revision.clone(),
                    abstract_syntaxes: None,
                }))
            }
            Q::GetNameList(g) => self.get_name_list(&g, neg, aa).map(R::GetNameList),
            Q::Read(r) => {
                let model = self.model.read();
                let aa_guard = aa.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
                let results = match &r.spec {
                    VariableAccessSpecification::ListOfVariable(vars) => {
                        vars.iter().map(|v| read_var(&model, v)).collect()
                    }
                    VariableAccessSpecification::VariableListName(n) => {
                        let list = find_list(&model, aa_guard.as_deref(), n)?;
                        list.members
                            .iter()
                            .map(|m| read_var(&model, &VariableSpec::named(m.clone())))
                            .collect()
                    }
                };
                Ok(R::Read(ReadResponse {
                    spec: r.specification_with_result.then_some(r.spec),
                    results,
                }))
            }
            Q::Write(w) => self.write(w, aa).map(R::Write),
            Q::GetVariableAccessAttributes(name) => {
                let model = self.model.read();
                match &name {
                    ObjectName::DomainSpecific { domain, item } => model
                        .resolve(domain, item)
                        .map(|n| {
                            R::GetVariableAccessAttributes(GetVariableAccessAttributesResponse {
                                mms_deletable: false,
                                type_description: n.type_description(),
                            })
                        })
                        .ok_or(UNDEFINED_OBJECT),
                    _ => Err(UNDEFINED_OBJECT),
                }
            }
            Q::DefineNamedVariableList(d) => {
                self.define_list(d, aa).map(|_| R::DefineNamedVariableList)
            }
            Q::GetNamedVariableListAttributes(n) => {
                let model = self.model.read();
                let aa_guard = aa.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
                let l = find_list(&model, aa_guard.as_deref(), &n)?;
                Ok(R::GetNamedVariableListAttributes(
                    GetNamedVariableListAttributesResponse {
                        mms_deletable: l.deletable,
                        variables: l.members.iter().cloned().map(VariableSpec::named).collect(),
                    },
                ))
            }
            Q::DeleteNamedVariableList(d) => {
                let (matched, deleted) = self.delete_lists(&d, aa)?;
                Ok(R::DeleteNamedVariableList { matched, deleted })
            }
        }
    }

    fn get_name_list(
        &self,
        g: &GetNameListRequest,
        neg: &Negotiated,
        aa: Option<&AaLists>,
    ) -> Result<GetNameListResponse, ServiceError> {
        let model = self.model.read();
        let names: Vec<String> = match (g.object_class, &g.scope) {
            (ObjectClass::DOMAIN, ObjectScope::Vmd) => model.domains.keys().cloned().collect(),
            (ObjectClass::NAMED_VARIABLE, ObjectScope::Domain(d)) => {
                model.domain(d).ok_or(UNDEFINED_OBJECT)?.variable_names()
            }
            (ObjectClass::NAMED_VARIABLE_LIST, ObjectScope::Domain(d)) => model
                .domain(d)
                .ok_or(UNDEFINED_OBJECT)?
                .lists
                .keys()
                .cloned()
                .collect(),
            (ObjectClass::NAMED_VARIABLE_LIST, ObjectScope::Aa) => match aa {
                Some(m) => m
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect(),
                None => Vec::new(),
            },
            (_, ObjectScope::Domain(d)) if model.domain(d).is_none() => {
                return Err(UNDEFINED_OBJECT)
            }
            // Other classes exist in no scope of this server (no journals, types, …).
            _ => Vec::new(),
        };
        let start = match &g.continue_after {
            Some(c) => names.partition_point(|n| n.as_str() <= c.as_str()),
            None => 0,
        };
        let budget = (neg.max_pdu_size as usize).saturating_sub(NAME_LIST_OVERHEAD);
        let mut used = 0usize;
        let mut identifiers = Vec::new();
        for n in &names[start..] {
            let cost = n.len() + if n.len() < 128 { 2 } else { 3 };
            if used + cost > budget {
                break;
            }
            used += cost;
            identifiers.push(n.clone());
        }
        if identifiers.is_empty() && start < names.len() {
            return Err(ServiceError::pdu_size());
        }
        let more_follows = start + identifiers.len() < names.len();
        Ok(GetNameListResponse {
            identifiers,
            more_follows,
        })
    }

    fn write(
        &self,
        w: WriteRequest,
        aa: Option<&AaLists>,
    ) -> Result<Vec<WriteResult>, ServiceError> {
        let mut model = self.model.write();
        let targets: Vec<VariableSpec> = match w.spec {
            VariableAccessSpecification::ListOfVariable(v) => v,
            VariableAccessSpecification::VariableListName(n) => {
                let aa_guard = aa.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
                find_list(&model, aa_guard.as_deref(), &n)?
                    .members
                    .iter()
                    .cloned()
                    .map(VariableSpec::named)
                    .collect()
            }
        };
        if targets.len() != w.data.len() {
            return Err(ServiceError::new(ErrorClass::Definition(
                error_code::DEFINITION_TYPE_INCONSISTENT,
            )));
        }
        let mut changes = Vec::new();
        let results = targets
            .iter()
            .zip(w.data)
            .map(
                |(t, d)| match self.write_var(&mut model, t, d, &mut changes) {
                    Ok(()) => WriteResult::Success,
                    Err(e) => WriteResult::Failure(e),
                },
            )
            .collect();
        drop(model);
        self.model.notify(&changes);
        Ok(results)
    }

    fn write_var(
        &self,
        model: &mut Model,
        t: &VariableSpec,
        d: Data,
        changes: &mut Vec<Change>,
    ) -> Result<(), DataAccessError> {
        let ObjectName::DomainSpecific { domain, item } = &t.name else {
            return Err(DataAccessError::ObjectNonExistent);
        };
        let dom = model
            .domain_mut(domain)
            .ok_or(DataAccessError::ObjectNonExistent)?;
        let mut parts = item.split('$');
        let ln = parts.next().unwrap_or("");
        let fc = parts.next();
        let rest: Vec<&str> = parts.collect();
        let node = dom
            .resolve(item)
            .ok_or(DataAccessError::ObjectNonExistent)?;
        let fc: Fc = match fc.map(str::parse) {
            Some(Ok(fc)) => fc,
            _ => return Err(DataAccessError::ObjectAccessDenied),
        };
        if !self.config.writable_fcs.contains(&fc) {
            return Err(DataAccessError::ObjectAccessDenied);
        }
        if let Some(aa) = &t.alternate_access {
            let mut v = node.value();
            crate::alternate::replace(&mut v, &node.type_description(), aa, d)?;
            if !node.accepts(&v) {
                return Err(DataAccessError::TypeInconsistent);
            }
            if let Some(n) = dom.resolve_mut(item) {
                n.store(v.clone());
                changes.push(client_change(domain, item, v));
            }
            return Ok(());
        }
        if !node.accepts(&d) {
            return Err(DataAccessError::TypeInconsistent);
        }
        // Direct-control emulation: LN$CO$DO$Oper (whole structure) sets LN$ST$DO$stVal.
        let mut mirror = None;
        if self.config.direct_control && fc == Fc::CO && rest.len() == 2 && rest[1] == "Oper" {
            let do_name = rest[0];
            let ctl_model = dom
                .resolve(&format!("{ln}$CF${do_name}$ctlModel"))
                .map(|n| n.value());
            if ctl_model == Some(Data::Integer(0)) {
                return Err(DataAccessError::ObjectAccessDenied);
            }
            if let (Data::Structure(fields), Some(oper)) = (&d, dom.resolve(item)) {
                if let NodeKind::Struct(children) = &oper.kind {
                    let pos = children.iter().position(|c| c.name == "ctlVal");
                    if let Some(v) = pos.and_then(|p| fields.get(p)) {
                        mirror = Some((format!("{ln}$ST${do_name}$stVal"), v.clone()));
                    }
                }
            }
        }
        if let Some(n) = dom.resolve_mut(item) {
            n.store(d.clone());
            changes.push(client_change(domain, item, d));
        }
        if let Some((st, v)) = mirror {
            if let Some(n) = dom.resolve_mut(&st) {
                if n.accepts(&v) {
                    n.store(v.clone());
                    changes.push(client_change(domain, &st, v));
                }
            }
        }
        Ok(())
    }

    fn define_list(
        &self,
        d: DefineNamedVariableListRequest,
        aa: Option<&AaLists>,
    ) -> Result<(), ServiceError> {
        let mut model = self.model.write();
        if d.variables.len() > MAX_LIST_MEMBERS {
            return Err(ServiceError::new(ErrorClass::Resource(
                error_code::RESOURCE_CAPABILITY_UNAVAILABLE,
            )));
        }
        let mut members = Vec::with_capacity(d.variables.len());
        for v in d.variables {
            if v.alternate_access.is_some() {
                return Err(ServiceError::new(ErrorClass::Access(
                    error_code::ACCESS_OBJECT_ACCESS_UNSUPPORTED,
                )));
            }
            match &v.name {
                ObjectName::DomainSpecific { domain, item }
                    if model.resolve(domain, item).is_some() => {}
                _ => return Err(UNDEFINED_OBJECT),
            }
            members.push(v.name);
        }
        let list = NamedVariableList {
            members,
            deletable: true,
        };
        match d.name {
            ObjectName::DomainSpecific { domain, item } => {
                let dom = model.domain_mut(&domain).ok_or(UNDEFINED_OBJECT)?;
                if dom.lists.contains_key(&item) || dom.resolve(&item).is_some() {
                    return Err(ServiceError::new(ErrorClass::Definition(
                        error_code::DEFINITION_OBJECT_EXISTS,
                    )));
                }
                if dom.lists.len() >= MAX_LISTS_PER_DOMAIN {
                    return Err(ServiceError::new(ErrorClass::Resource(
                        error_code::RESOURCE_MEMORY_UNAVAILABLE,
                    )));
                }
                dom.lists.insert(item, list);
                Ok(())
            }
            ObjectName::AaSpecific(name) => {
                let Some(aa) = aa else {
                    return Err(ServiceError::new(ErrorClass::Resource(
                        error_code::RESOURCE_CAPABILITY_UNAVAILABLE,
                    )));
                };
                let mut lists = aa.lock().unwrap_or_else(|e| e.into_inner());
                if lists.contains_key(&name) {
                    return Err(ServiceError::new(ErrorClass::Definition(
                        error_code::DEFINITION_OBJECT_EXISTS,
                    )));
                }
                if lists.len() >= MAX_LISTS_PER_DOMAIN {
                    return Err(ServiceError::new(ErrorClass::Resource(
                        error_code::RESOURCE_MEMORY_UNAVAILABLE,
                    )));
                }
                lists.insert(name, list);
                Ok(())
            }
            ObjectName::VmdSpecific(_) => Err(ServiceError::new(ErrorClass::Access(
                error_code::ACCESS_OBJECT_ACCESS_UNSUPPORTED,
            ))),
        }
    }

    fn delete_lists(
        &self,
        d: &DeleteNamedVariableListRequest,
        aa: Option<&AaLists>,
    ) -> Result<(u32, u32), ServiceError> {
        let mut model = self.model.write();
        let mut aa_guard = aa.map(|m| m.lock().unwrap_or_else(|e| e.into_inner()));
        let (mut matched, mut deleted) = (0u32, 0u32);
        let mut sweep = |lists: &mut BTreeMap<String, NamedVariableList>| {
            let before = lists.len();
            matched += before as u32;
            lists.retain(|_, l| !l.deletable);
            deleted += (before - lists.len()) as u32;
        };
        match d.scope {
            delete_scope::SPECIFIC => {
                for n in d.names.iter().flatten() {
                    let lists = match n {
                        ObjectName::DomainSpecific { domain, .. } => {
                            model.domain_mut(domain).map(|dm| &mut dm.lists)
                        }
                        ObjectName::AaSpecific(_) => aa_guard.as_deref_mut(),
                        ObjectName::VmdSpecific(_) => None,
                    };
                    if let Some(lists) = lists {
                        if let Some(l) = lists.get(n.item()) {
                            matched += 1;
                            if l.deletable {
                                lists.remove(n.item());
                                deleted += 1;
                            }
                        }
                    }
                }
            }
            delete_scope::AA_SPECIFIC => {
                if let Some(l) = aa_guard.as_deref_mut() {
                    sweep(l);
                }
            }
            delete_scope::DOMAIN => {
                let dom = d.domain.as_deref().ok_or(UNDEFINED_OBJECT)?;
                sweep(&mut model.domain_mut(dom).ok_or(UNDEFINED_OBJECT)?.lists);
            }
            _ => {
                for dm in model.domains.values_mut() {
                    sweep(&mut dm.lists);
                }
            }
        }
        Ok((matched, deleted))
    }
}

fn confirmed_error(invoke_id: u32, error: ServiceError) -> Vec<u8> {
    MmsPdu::ConfirmedError(ConfirmedError {
        invoke_id,
        modifier_position: None,
        error,
    })
    .encode()
}

fn find_list<'m>(
    model: &'m Model,
    aa: Option<&'m BTreeMap<String, NamedVariableList>>,
    n: &ObjectName,
) -> Result<&'m NamedVariableList, ServiceError> {
    match n {
        ObjectName::DomainSpecific { domain, item } => {
            model.domain(domain).and_then(|d| d.lists.get(item))
        }
        ObjectName::AaSpecific(name) => aa.and_then(|l| l.get(name)),
        ObjectName::VmdSpecific(_) => None,
    }
    .ok_or(UNDEFINED_OBJECT)
}

fn read_var(model: &Model, v: &VariableSpec) -> AccessResult {
    let ObjectName::DomainSpecific { domain, item } = &v.name else {
        return AccessResult::Failure(DataAccessError::ObjectNonExistent);
    };
    let Some(node) = model.resolve(domain, item) else {
        return AccessResult::Failure(DataAccessError::ObjectNonExistent);
    };
    match &v.alternate_access {
        None => AccessResult::Success(node.value()),
        Some(aa) => match crate::alternate::select(&node.value(), &node.type_description(), aa) {
            Ok(d) => AccessResult::Success(d),
            Err(e) => AccessResult::Failure(e),
        },
    }
}

/// The sans-IO MMS server session of one association (the counterpart of
/// [`ClientSession`](crate::session::ClientSession)): negotiated parameters,
/// application-association-specific named variable lists, conclude, and unsolicited
/// InformationReports out. `Send + Sync`; requests may be handled from several tasks. Every
/// request is answered as it is handled, before the next one is read, so the server never
/// holds more than one outstanding request and the negotiated maxServOutstandingCalling binds
/// the client (its [`ClientSession`](crate::session::ClientSession) enforces it).
#[derive(Debug)]
pub struct ServerSession {
    server: Vmd,
    negotiated: Negotiated,
    aa_lists: AaLists,
    concluded: AtomicBool,
    /// Confirmed requests answered since the runtime last reported its answers sent
    /// ([`ServerSession::answers_sent`]): the requests still outstanding as far as the server
    /// can tell.
    unsent: AtomicUsize,
}

impl ServerSession {
    /// The negotiated parameters.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// The server.
    pub fn server(&self) -> &Vmd {
        &self.server
    }

    /// Executes one confirmed service.
    pub fn handle(
        &self,
        req: ConfirmedServiceRequest,
    ) -> Result<ConfirmedServiceResponse, ServiceError> {
        self.server
            .dispatch(req, &self.negotiated, Some(&self.aa_lists))
    }

    /// Decodes a PDU, executes it and encodes the answer; `None` when nothing is to be sent.
    /// After a conclude-RequestPDU the answer is the conclude-ResponsePDU and
    /// [`ServerSession::is_concluded`] turns true: the runtime then releases the association.
    /// For a caller that sends each answer before it handles the next PDU; one that queues
    /// answers uses [`ServerSession::handle_queued_pdu`].
    pub fn handle_pdu(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.handle_bytes(bytes, None)
    }

    /// [`ServerSession::handle_pdu`] for a caller that queues the answers of a burst before
    /// writing them, and calls [`ServerSession::answers_sent`] once it has written them. Until
    /// then at most the negotiated maxServOutstandingCalling confirmed requests are served; any
    /// further one gets a RejectPDU (confirmed-requestPDU, max-serv-outstanding-exceeded) and
    /// is not executed, so a client that pipelines past its limit, or never reads, cannot make
    /// the server hold more answers than it agreed to.
    pub fn handle_queued_pdu(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.handle_bytes(bytes, Some(&self.unsent))
    }

    fn handle_bytes(&self, bytes: &[u8], unsent: Option<&AtomicUsize>) -> Option<Vec<u8>> {
        let (out, concluded) =
            self.server
                .handle_pdu_inner(bytes, &self.negotiated, Some(&self.aa_lists), unsent);
        if concluded {
            self.concluded.store(true, Ordering::SeqCst);
        }
        out
    }

    /// Encodes an unsolicited InformationReport for this association (the base of IEC 61850
    /// reporting). Refused when the client did not announce the informationReport service in
    /// its initiate (ServiceSupportOptions bit [`INFORMATION_REPORT_BIT`]), when MMS was
    /// concluded, or when the PDU would exceed the negotiated maximum PDU size.
    pub fn information_report(
        &self,
        report: InformationReport,
    ) -> Result<Vec<u8>, UnsolicitedError> {
        if self.is_concluded() {
            return Err(UnsolicitedError::Concluded);
        }
        if !self.negotiated.peer_services.get(INFORMATION_REPORT_BIT) {
            return Err(UnsolicitedError::NotSupportedByPeer);
        }
        let pdu = MmsPdu::InformationReport(report).encode();
        let max = self.negotiated.max_pdu_size as usize;
        if pdu.len() > max {
            return Err(UnsolicitedError::TooLarge {
                size: pdu.len(),
                max,
            });
        }
        Ok(pdu)
    }

    /// An InformationReport of the current values of `content` (IEC 61850 reporting sends the
    /// members of a data set this way): the values are read as a Read request with the same
    /// variable access specification would read them, so a missing variable travels as its
    /// access failure; then [`ServerSession::information_report`]'s checks apply. A named
    /// variable list that does not exist is [`UnsolicitedError::Read`].
    pub fn report(&self, content: ReportContent) -> Result<Vec<u8>, UnsolicitedError> {
        let spec = match content {
            ReportContent::Variables(names) => VariableAccessSpecification::ListOfVariable(
                names.into_iter().map(VariableSpec::named).collect(),
            ),
            ReportContent::List(name) => VariableAccessSpecification::VariableListName(name),
        };
        let read = ConfirmedServiceRequest::Read(ReadRequest {
            specification_with_result: false,
            spec: spec.clone(),
        });
        match self.handle(read).map_err(UnsolicitedError::Read)? {
            ConfirmedServiceResponse::Read(r) => self.information_report(InformationReport {
                spec,
                results: r.results,
            }),
            _ => Err(UnsolicitedError::Read(ServiceError::new(
                ErrorClass::Service(error_code::OTHER),
            ))),
        }
    }

    /// The runtime wrote every answer [`ServerSession::handle_queued_pdu`] handed out so far:
    /// those requests are no longer outstanding.
    pub fn answers_sent(&self) {
        self.unsent.store(0, Ordering::SeqCst);
    }

    /// True once a conclude-RequestPDU was answered.
    pub fn is_concluded(&self) -> bool {
        self.concluded.load(Ordering::SeqCst)
    }

    /// The MMS user data of the release response (RLRE) to a release request (RLRQ) carrying
    /// `rlrq_user_data`: a conclude-ResponsePDU only when the RLRQ carries a conclude-RequestPDU
    /// and MMS was not already concluded in the data phase. A peer that concluded first and then
    /// releases (libiec61850 does) gets a bare RLRE: a second, unrequested conclude-ResponsePDU
    /// would be a protocol error (ISO 9506-2 §8.4).
    pub fn release_answer(&self, rlrq_user_data: Option<&[u8]>) -> Option<Vec<u8>> {
        release_answer(self.is_concluded(), rlrq_user_data)
    }
}

fn client_change(domain: &str, item: &str, value: Data) -> Change {
    Change {
        domain: domain.to_string(),
        item: item.to_string(),
        value,
        origin: ChangeOrigin::Client,
    }
}

/// ServiceSupportOptions bit of the unconfirmed informationReport service (ISO 9506-2 §7.2.1).
pub const INFORMATION_REPORT_BIT: usize = 79;

/// What an InformationReport of [`ServerSession::report`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportContent {
    /// These named variables (listOfVariable).
    Variables(Vec<ObjectName>),
    /// The members of this named variable list (variableListName), e.g. a data set.
    List(ObjectName),
}

/// Why an unsolicited PDU could not be built ([`ServerSession::information_report`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsolicitedError {
    /// The values could not be read (e.g. no such named variable list).
    #[error("the report's values cannot be read: {0}")]
    Read(ServiceError),
    /// The client did not announce the informationReport service.
    #[error("the client did not announce the informationReport service in its initiate")]
    NotSupportedByPeer,
    /// MMS was concluded on this association.
    #[error("MMS is concluded on this association")]
    Concluded,
    /// The PDU exceeds the negotiated maximum PDU size.
    #[error("the report is {size} octets, above the negotiated maximum of {max}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Negotiated maximum.
        max: usize,
    },
}

/// [`ServerSession::release_answer`] for a runtime that has no [`ServerSession`] (any longer):
/// `concluded` tells whether conclude was already exchanged in the data phase.
pub fn release_answer(concluded: bool, rlrq_user_data: Option<&[u8]>) -> Option<Vec<u8>> {
    let asks_conclude = rlrq_user_data.is_some_and(|d| {
        matches!(
            MmsPdu::decode(d, &MmsLimits::default()),
            Ok(MmsPdu::ConcludeRequest)
        )
    });
    (asks_conclude && !concluded).then(|| MmsPdu::ConcludeResponse.encode())
}
