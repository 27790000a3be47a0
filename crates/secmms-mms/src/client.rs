//! Client helpers: IEC 61850 object references, the initiate proposal, request builders and
//! response parsers used by the runtime client and the CLI.
//!
//! ```
//! use secmms_mms::client::{ObjectReference, read_request_pdu, parse_confirmed};
//! use secmms_mms::model::Fc;
//! let r = ObjectReference::parse("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").unwrap();
//! assert_eq!(r.domain, "DEMOLD0");
//! assert_eq!(r.item().unwrap(), "GGIO1$MX$AnIn1$mag$f");
//! let pdu = read_request_pdu(7, &[r]);
//! assert_eq!(pdu[0], 0xA0);
//! ```

use crate::data::{AccessResult, BitString, Data, TypeDescription};
use crate::error::{MmsError, ServiceError};
use crate::limits::{
    MmsLimits, DEFAULT_MAX_PDU_SIZE, DEFAULT_MAX_SERV_OUTSTANDING, DEFAULT_NESTING_LEVEL,
};
use crate::model::Fc;
use crate::name::ObjectName;
use crate::pdu::*;
use std::fmt;

pub use crate::value::{parse_value, type_name, Value, ValueError};

/// Errors on the client side.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The peer's PDU could not be decoded.
    #[error("decode: {0}")]
    Decode(#[from] MmsError),
    /// The server refused the initiate (initiate-ErrorPDU).
    #[error("initiate refused: {0:?}")]
    Refused(ServiceError),
    /// The server answered with a confirmed-ErrorPDU.
    #[error("service error for request {invoke_id}: {error:?}")]
    Service {
        /// invokeID of the request.
        invoke_id: u32,
        /// The error.
        error: ServiceError,
    },
    /// The server rejected a PDU.
    #[error("rejected: {0:?}")]
    Rejected(RejectPdu),
    /// A PDU of an unexpected kind or for another invokeID.
    #[error("unexpected PDU")]
    Unexpected,
    /// An object reference could not be parsed.
    #[error("invalid object reference {0:?}")]
    InvalidReference(String),
    /// A value string does not fit the type.
    #[error(transparent)]
    Value(#[from] ValueError),
}

/// FCs tried, in order, when a reference gives none (most used first).
pub const FC_SEARCH_ORDER: [Fc; 20] = [
    Fc::ST,
    Fc::MX,
    Fc::CF,
    Fc::DC,
    Fc::SP,
    Fc::SV,
    Fc::CO,
    Fc::SG,
    Fc::SE,
    Fc::BL,
    Fc::EX,
    Fc::OR,
    Fc::SR,
    Fc::RP,
    Fc::BR,
    Fc::LG,
    Fc::GO,
    Fc::GS,
    Fc::MS,
    Fc::US,
];

/// An IEC 61850 object reference (IEC 61850-7-2 §6.8, mapped per IEC 61850-8-1 §8.1.3.3):
/// `LD/LN.DO.DA` with an optional `[FC]`, e.g. `DEMOLD0/GGIO1.AnIn1.mag.f[MX]`. The LD part is
/// the MMS domain. An MMS-style item (`DEMOLD0/GGIO1$MX$AnIn1`) is accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectReference {
    /// MMS domain (IED name + LD inst).
    pub domain: String,
    /// Logical node name.
    pub ln: String,
    /// Functional constraint, when known.
    pub fc: Option<Fc>,
    /// Data object, sub-objects and attributes below the LN.
    pub path: Vec<String>,
}

impl ObjectReference {
    /// Parses a reference.
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::InvalidReference(s.to_owned());
        let t = s.trim();
        let (domain, rest) = t.split_once('/').ok_or_else(bad)?;
        let (body, fc) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
            Some((b, f)) => (
                b.trim_end(),
                Some(f.trim().parse::<Fc>().map_err(|_| bad())?),
            ),
            None => (rest, None),
        };
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad());
        }
        let (ln, fc, path) = if body.contains('$') {
            let mut parts = body.split('$');
            let ln = parts.next().unwrap_or("");
            let f2 = parts
                .next()
                .map(|f| f.parse::<Fc>().map_err(|_| bad()))
                .transpose()?;
            if fc.is_some() && f2.is_some() && fc != f2 {
                return Err(bad());
            }
            (ln, f2.or(fc), parts.map(str::to_owned).collect::<Vec<_>>())
        } else {
            let mut parts = body.split('.');
            let ln = parts.next().unwrap_or("");
            (ln, fc, parts.map(str::to_owned).collect())
        };
        if !ok(ln) || !path.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        Ok(ObjectReference {
            domain: domain.to_owned(),
            ln: ln.to_owned(),
            fc,
            path,
        })
    }

    /// The reference of an MMS variable name (`GGIO1$MX$AnIn1$mag$f` in `DEMOLD0`).
    pub fn from_mms(domain: &str, item: &str) -> Self {
        let mut parts = item.split('$');
        let ln = parts.next().unwrap_or("").to_owned();
        let rest: Vec<&str> = parts.collect();
        let (fc, path) = match rest.split_first() {
            Some((f, p)) => match f.parse::<Fc>() {
                Ok(fc) => (Some(fc), p.iter().map(|s| (*s).to_owned()).collect()),
                Err(_) => (None, rest.iter().map(|s| (*s).to_owned()).collect()),
            },
            None => (None, Vec::new()),
        };
        ObjectReference {
            domain: domain.to_owned(),
            ln,
            fc,
            path,
        }
    }

    /// The MMS item for a given FC (`LN$FC$DO$DA`).
    pub fn item_with(&self, fc: Option<Fc>) -> String {
        let mut s = self.ln.clone();
        if let Some(fc) = fc {
            s.push('$');
            s.push_str(fc.as_str());
        }
        for p in &self.path {
            s.push('$');
            s.push_str(p);
        }
        s
    }

    /// The MMS item, when the FC is known or not needed (a whole LN).
    pub fn item(&self) -> Option<String> {
        (self.fc.is_some() || self.path.is_empty()).then(|| self.item_with(self.fc))
    }

    /// The MMS name, when the FC is known or not needed.
    pub fn object_name(&self) -> Option<ObjectName> {
        self.item()
            .map(|item| ObjectName::domain(self.domain.clone(), item))
    }

    /// Items to try, in order, when the FC is unknown ([`FC_SEARCH_ORDER`]).
    pub fn candidate_items(&self) -> Vec<String> {
        match self.item() {
            Some(i) => vec![i],
            None => FC_SEARCH_ORDER
                .iter()
                .map(|fc| self.item_with(Some(*fc)))
                .collect(),
        }
    }

    /// Completes the FC from a browse result (the GetNameList of the domain): the first FC of
    /// [`FC_SEARCH_ORDER`] whose item is listed.
    pub fn resolve_fc(&self, names: &[String]) -> Option<ObjectReference> {
        if self.item().is_some() {
            return Some(self.clone());
        }
        FC_SEARCH_ORDER.iter().find_map(|fc| {
            let i = self.item_with(Some(*fc));
            names.contains(&i).then(|| ObjectReference {
                fc: Some(*fc),
                ..self.clone()
            })
        })
    }
}

impl fmt::Display for ObjectReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.ln)?;
        for p in &self.path {
            write!(f, ".{p}")?;
        }
        if let Some(fc) = self.fc {
            write!(f, "[{fc}]")?;
        }
        Ok(())
    }
}

/// What the client proposes in initiate-RequestPDU (ISO 9506-2 §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProposal {
    /// localDetailCalling.
    pub max_pdu_size: u32,
    /// proposedMaxServOutstandingCalling.
    pub max_serv_outstanding_calling: u16,
    /// proposedMaxServOutstandingCalled.
    pub max_serv_outstanding_called: u16,
    /// proposedDataStructureNestingLevel.
    pub nesting_level: u8,
}

impl Default for ClientProposal {
    /// 65000 / 5 / 5 / 10, as the open IEC 61850 clients propose (reference §8).
    fn default() -> Self {
        ClientProposal {
            max_pdu_size: DEFAULT_MAX_PDU_SIZE,
            max_serv_outstanding_calling: DEFAULT_MAX_SERV_OUTSTANDING,
            max_serv_outstanding_called: DEFAULT_MAX_SERV_OUTSTANDING,
            nesting_level: DEFAULT_NESTING_LEVEL,
        }
    }
}

/// ServiceSupportOptions the client announces: the services it can request plus
/// informationReport (bit 79), conclude (83) and cancel (84).
pub const CLIENT_SERVICES_SUPPORTED: [u8; 11] = [
    0xEE, 0x1C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x18,
];

/// The initiate-Request parameters for a proposal.
pub fn initiate_request(p: &ClientProposal) -> InitiateParameters {
    InitiateParameters {
        local_detail: Some(p.max_pdu_size),
        max_serv_outstanding_calling: p.max_serv_outstanding_calling,
        max_serv_outstanding_called: p.max_serv_outstanding_called,
        data_structure_nesting_level: Some(p.nesting_level),
        version: crate::server::MMS_VERSION,
        parameter_cbb: BitString::from_parts(
            crate::server::SERVER_PARAMETER_CBB.to_vec(),
            crate::server::SERVER_PARAMETER_CBB_UNUSED,
        )
        .unwrap_or_default(),
        services_supported: BitString::from_parts(
            CLIENT_SERVICES_SUPPORTED.to_vec(),
            crate::server::SERVICES_SUPPORTED_UNUSED,
        )
        .unwrap_or_default(),
    }
}

/// The encoded initiate-RequestPDU for a proposal (goes in the AARQ user information).
pub fn initiate_request_pdu(p: &ClientProposal) -> Vec<u8> {
    MmsPdu::InitiateRequest(initiate_request(p)).encode()
}

/// Parses the initiate-ResponsePDU (or initiate-ErrorPDU) of the AARE. The negotiated values
/// are clamped to the proposal (a server may not raise them).
pub fn parse_initiate_response(
    bytes: &[u8],
    p: &ClientProposal,
) -> Result<Negotiated, ClientError> {
    match MmsPdu::decode(bytes, &MmsLimits::default())? {
        MmsPdu::InitiateResponse(r) => Ok(Negotiated {
            max_pdu_size: r.local_detail.unwrap_or(p.max_pdu_size).min(p.max_pdu_size),
            max_serv_outstanding_calling: r
                .max_serv_outstanding_calling
                .min(p.max_serv_outstanding_calling),
            max_serv_outstanding_called: r
                .max_serv_outstanding_called
                .min(p.max_serv_outstanding_called),
            nesting_level: r
                .data_structure_nesting_level
                .unwrap_or(p.nesting_level)
                .min(p.nesting_level),
            version: r.version,
            parameter_cbb: r.parameter_cbb,
            peer_services: r.services_supported,
        }),
        MmsPdu::InitiateError(e) => Err(ClientError::Refused(e)),
        _ => Err(ClientError::Unexpected),
    }
}

/// The confirmed-RequestPDU carrying `service` with `invoke_id`: what
/// [`ClientSession::request`](crate::session::ClientSession::request) sends, for tests and
/// tools that build PDUs by hand.
pub fn request_pdu(invoke_id: u32, service: ConfirmedServiceRequest) -> Vec<u8> {
    MmsPdu::ConfirmedRequest(ConfirmedRequest { invoke_id, service }).encode()
}

// ---------------------------------------------------------------- service builders
//
// Each builds one confirmed service request; a `ClientSession` numbers it and tracks its
// answer. The `*_request_pdu` forms wrap them for callers that want the octets with a given
// invokeID.

/// Identify.
pub fn identify() -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Identify
}

/// GetNameList of `object_class` in `scope`, continuing after `continue_after`.
pub fn get_name_list(
    object_class: ObjectClass,
    scope: ObjectScope,
    continue_after: Option<String>,
) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::GetNameList(GetNameListRequest {
        object_class,
        scope,
        continue_after,
    })
}

/// Read of MMS named variables.
pub fn read_names(names: &[ObjectName]) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::ListOfVariable(
            names.iter().cloned().map(VariableSpec::named).collect(),
        ),
    })
}

/// Read of one named variable.
pub fn read_name(name: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::single(name),
    })
}

/// Read of references (each with its FC, or a whole LN; others are skipped — use
/// [`ObjectReference::resolve_fc`] first).
pub fn read(refs: &[ObjectReference]) -> ConfirmedServiceRequest {
    let names: Vec<ObjectName> = refs
        .iter()
        .filter_map(ObjectReference::object_name)
        .collect();
    read_names(&names)
}

/// Read of a named variable list (data set).
pub fn read_list(list: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::VariableListName(list),
    })
}

/// Write of one variable.
pub fn write(name: ObjectName, value: Data) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Write(WriteRequest {
        spec: VariableAccessSpecification::single(name),
        data: vec![value],
    })
}

/// GetVariableAccessAttributes.
pub fn get_variable_access_attributes(name: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::GetVariableAccessAttributes(name)
}

/// DefineNamedVariableList.
pub fn define_list(name: ObjectName, members: &[ObjectName]) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::DefineNamedVariableList(DefineNamedVariableListRequest {
        name,
        variables: members.iter().cloned().map(VariableSpec::named).collect(),
    })
}

/// GetNamedVariableListAttributes.
pub fn get_list_attributes(name: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::GetNamedVariableListAttributes(name)
}

/// DeleteNamedVariableList of specific lists.
pub fn delete_lists(names: &[ObjectName]) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::DeleteNamedVariableList(DeleteNamedVariableListRequest {
        scope: delete_scope::SPECIFIC,
        names: Some(names.to_vec()),
        domain: None,
    })
}

/// Identify-Request PDU.
pub fn identify_request_pdu(invoke_id: u32) -> Vec<u8> {
    request_pdu(invoke_id, identify())
}

/// GetNameList-Request PDU.
pub fn get_name_list_request_pdu(
    invoke_id: u32,
    object_class: ObjectClass,
    scope: ObjectScope,
    continue_after: Option<String>,
) -> Vec<u8> {
    request_pdu(
        invoke_id,
        get_name_list(object_class, scope, continue_after),
    )
}

/// Read-Request PDU of MMS names.
pub fn read_names_request_pdu(invoke_id: u32, names: &[ObjectName]) -> Vec<u8> {
    request_pdu(invoke_id, read_names(names))
}

/// Read-Request PDU of references ([`read`]).
pub fn read_request_pdu(invoke_id: u32, refs: &[ObjectReference]) -> Vec<u8> {
    request_pdu(invoke_id, read(refs))
}

/// Read-Request PDU of a named variable list.
pub fn read_list_request_pdu(invoke_id: u32, list: ObjectName) -> Vec<u8> {
    request_pdu(invoke_id, read_list(list))
}

/// Write-Request PDU of one variable.
pub fn write_request_pdu(invoke_id: u32, name: ObjectName, value: Data) -> Vec<u8> {
    request_pdu(invoke_id, write(name, value))
}

/// GetVariableAccessAttributes-Request PDU.
pub fn get_variable_access_attributes_request_pdu(invoke_id: u32, name: ObjectName) -> Vec<u8> {
    request_pdu(invoke_id, get_variable_access_attributes(name))
}

/// DefineNamedVariableList-Request PDU.
pub fn define_list_request_pdu(
    invoke_id: u32,
    name: ObjectName,
    members: &[ObjectName],
) -> Vec<u8> {
    request_pdu(invoke_id, define_list(name, members))
}

/// GetNamedVariableListAttributes-Request PDU.
pub fn get_list_attributes_request_pdu(invoke_id: u32, name: ObjectName) -> Vec<u8> {
    request_pdu(invoke_id, get_list_attributes(name))
}

/// DeleteNamedVariableList-Request PDU of specific lists.
pub fn delete_list_request_pdu(invoke_id: u32, names: &[ObjectName]) -> Vec<u8> {
    request_pdu(invoke_id, delete_lists(names))
}

/// conclude-RequestPDU.
pub fn conclude_request_pdu() -> Vec<u8> {
    MmsPdu::ConcludeRequest.encode()
}

/// What a received PDU means to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The answer to request `invoke_id` (success or a typed error).
    Answer {
        /// invokeID.
        invoke_id: u32,
        /// The response, or why it failed.
        result: Result<ConfirmedServiceResponse, ClientError>,
    },
    /// An unsolicited InformationReport (IEC 61850 report).
    Report(InformationReport),
    /// conclude-ResponsePDU.
    Concluded,
    /// conclude-ErrorPDU.
    ConcludeRefused(ServiceError),
    /// A rejectPDU without an invokeID, or anything else unexpected.
    Other(MmsPdu),
}

/// Classifies a PDU received on an association.
pub fn parse_incoming(bytes: &[u8], neg: &Negotiated) -> Result<Incoming, ClientError> {
    Ok(crate::session::classify(MmsPdu::decode(
        bytes,
        &neg.limits(),
    )?))
}

/// Decodes the answer to request `invoke_id`.
pub fn parse_confirmed(
    bytes: &[u8],
    invoke_id: u32,
    neg: &Negotiated,
) -> Result<ConfirmedServiceResponse, ClientError> {
    match parse_incoming(bytes, neg)? {
        Incoming::Answer {
            invoke_id: id,
            result,
        } if id == invoke_id => result,
        _ => Err(ClientError::Unexpected),
    }
}

/// The values of a Read-Response (one per requested variable).
pub fn read_results(resp: ConfirmedServiceResponse) -> Result<Vec<AccessResult>, ClientError> {
    match resp {
        ConfirmedServiceResponse::Read(r) => Ok(r.results),
        _ => Err(ClientError::Unexpected),
    }
}

/// The type of a GetVariableAccessAttributes-Response.
pub fn type_of(resp: ConfirmedServiceResponse) -> Result<TypeDescription, ClientError> {
    match resp {
        ConfirmedServiceResponse::GetVariableAccessAttributes(g) => Ok(g.type_description),
        _ => Err(ClientError::Unexpected),
    }
}

/// Renders an AccessResult for display (`42.5`, `error: object-non-existent`).
pub fn render(result: &AccessResult) -> String {
    match result {
        AccessResult::Success(d) => d.to_string(),
        AccessResult::Failure(e) => format!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = ObjectReference::parse("DEMOLD0/GGIO1.AnIn1.mag.f").unwrap();
        assert_eq!(r.item(), None);
        assert_eq!(r.candidate_items()[1], "GGIO1$MX$AnIn1$mag$f");
        let names = vec!["GGIO1$MX$AnIn1$mag$f".to_owned()];
        let r2 = r.resolve_fc(&names).unwrap();
        assert_eq!(r2.fc, Some(Fc::MX));
        assert_eq!(r2.to_string(), "DEMOLD0/GGIO1.AnIn1.mag.f[MX]");
        let r3 = ObjectReference::parse("DEMOLD0/GGIO1$MX$AnIn1$mag$f").unwrap();
        assert_eq!(r3, r2);
        assert_eq!(
            ObjectReference::from_mms("DEMOLD0", "GGIO1$MX$AnIn1$mag$f"),
            r2
        );
        assert_eq!(
            ObjectReference::parse("DEMOLD0/LLN0")
                .unwrap()
                .item()
                .unwrap(),
            "LLN0"
        );
        assert_eq!(
            ObjectReference::parse("DEMOLD0/LLN0.Mod.stVal [ST]")
                .unwrap()
                .item()
                .unwrap(),
            "LLN0$ST$Mod$stVal"
        );
        for bad in [
            "nodomain",
            "D/",
            "D/LN.[MX]",
            "D/LN.x[QQ]",
            "D/L N",
            "D/LN$XX$a",
        ] {
            assert!(ObjectReference::parse(bad).is_err(), "{bad}");
        }
    }
}
