//! What a protocol gateway must understand of the MMS PDUs it forwards.
//!
//! A gateway (`secmms gateway`) joins two associations: a secured one on the network side and a
//! plain one to equipment without IEC 62351-4. It forwards every MMS PDU unchanged, octet for
//! octet, except in three places, which this module covers as pure functions:
//!
//! * **The initiate.** The gateway answers the initiate on one side by sending one on the other.
//!   [`forward_initiate_request`] caps each number of the calling side's proposal by the
//!   gateway's own [`GatewayLimits`]; [`forward_initiate_response`] caps the called side's
//!   answer by what was asked of it (a peer that negotiates upwards is not believed). The
//!   parameter and service bit strings cross unchanged: the gateway does not serve, so it does
//!   not restrict what the two ends offer each other.
//! * **Read-only routes.** [`ReadOnlyGuard::check`] looks at a request from the calling side
//!   and says whether it may pass. A Write to a functional constraint of
//!   [`ReadOnlyGuard::denied_fcs`] (by default CO, SP, SG, SE, CF and DC) is answered with a
//!   Write-Response whose every item is `object-access-denied`; writes to report control
//!   blocks (FC RP and BR) and to other constraints pass, so reports can still be enabled.
//!   Every other service that changes the device ([`MODIFYING_SERVICES`]) is answered with a
//!   Confirmed-ErrorPDU of class access, `object-access-denied`. The answer is built here; the
//!   request never reaches the device.
//! * **Names for the record.** A refusal carries the invoke ID, the service and the object
//!   names it touched, for the security event.
//!
//! Names follow IEC 61850-8-1: a domain-specific item `LN$FC$DO$DA…` has its functional
//! constraint second. A write the guard cannot attribute to a constraint (a named variable
//! list, a VMD- or AA-specific name, an item without `$`, a request it cannot decode) is
//! refused too: on a read-only route an unknown write is not let through.

use secmms_ber::{Class, Reader, Tag};

use crate::error::{error_code, reject_code};
use crate::pdu::{
    ConfirmedError, ConfirmedRequest, ConfirmedResponse, ConfirmedServiceRequest,
    ConfirmedServiceResponse, InitiateParameters, MmsPdu, RejectPdu, VariableAccessSpecification,
    WriteResult,
};
use crate::{
    DataAccessError, ErrorClass, MmsError, MmsLimits, ObjectName, RejectPduType, RejectReason,
    ServiceError,
};

/// The gateway's own limits, offered to both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Largest MMS PDU the gateway forwards, in octets (localDetail).
    pub max_pdu_size: u32,
    /// Most requests outstanding in each direction.
    pub max_serv_outstanding: u16,
    /// Deepest data structure nesting.
    pub nesting_level: u8,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            max_pdu_size: 65_000,
            max_serv_outstanding: 16,
            nesting_level: 10,
        }
    }
}

fn decode_initiate(
    bytes: &[u8],
    lim: &MmsLimits,
    request: bool,
) -> Result<InitiateParameters, MmsError> {
    match (MmsPdu::decode(bytes, lim)?, request) {
        (MmsPdu::InitiateRequest(p), true) | (MmsPdu::InitiateResponse(p), false) => Ok(p),
        _ => Err(MmsError::InvalidValue(if request {
            "initiate-RequestPDU expected"
        } else {
            "initiate-ResponsePDU expected"
        })),
    }
}

fn min_opt<T: Ord + Copy>(theirs: Option<T>, ours: T) -> Option<T> {
    Some(theirs.map_or(ours, |t| t.min(ours)))
}

/// The initiate-RequestPDU to send to the called side: the calling side's `request` with each
/// number capped by `ours`. Returns the parameters sent and their encoding.
pub fn forward_initiate_request(
    request: &[u8],
    ours: &GatewayLimits,
    lim: &MmsLimits,
) -> Result<(InitiateParameters, Vec<u8>), MmsError> {
    let mut p = decode_initiate(request, lim, true)?;
    p.local_detail = min_opt(p.local_detail, ours.max_pdu_size);
    p.max_serv_outstanding_calling = p
        .max_serv_outstanding_calling
        .min(ours.max_serv_outstanding);
    p.max_serv_outstanding_called = p.max_serv_outstanding_called.min(ours.max_serv_outstanding);
    p.data_structure_nesting_level = min_opt(p.data_structure_nesting_level, ours.nesting_level);
    let bytes = MmsPdu::InitiateRequest(p.clone()).encode();
    Ok((p, bytes))
}

/// The initiate-ResponsePDU to give the calling side: the called side's `response` with each
/// number capped by what `sent` asked of it, and the version no higher than proposed.
pub fn forward_initiate_response(
    response: &[u8],
    sent: &InitiateParameters,
    lim: &MmsLimits,
) -> Result<(InitiateParameters, Vec<u8>), MmsError> {
    let mut p = decode_initiate(response, lim, false)?;
    if let Some(asked) = sent.local_detail {
        p.local_detail = min_opt(p.local_detail, asked);
    }
    p.max_serv_outstanding_calling = p
        .max_serv_outstanding_calling
        .min(sent.max_serv_outstanding_calling);
    p.max_serv_outstanding_called = p
        .max_serv_outstanding_called
        .min(sent.max_serv_outstanding_called);
    if let Some(asked) = sent.data_structure_nesting_level {
        p.data_structure_nesting_level = min_opt(p.data_structure_nesting_level, asked);
    }
    p.version = p.version.min(sent.version);
    if p.max_serv_outstanding_calling == 0 || p.max_serv_outstanding_called == 0 {
        return Err(MmsError::InvalidValue(
            "maxServOutstanding 0 in the initiate-ResponsePDU",
        ));
    }
    let bytes = MmsPdu::InitiateResponse(p.clone()).encode();
    Ok((p, bytes))
}

/// ConfirmedServiceRequest choices (ISO 9506-2 §7.4 and Annex D tag numbers) that change the
/// device, besides write (5), which [`ReadOnlyGuard`] judges by functional constraint:
/// rename, variable, list, type, semaphore, domain, program-invocation, event, journal, file
/// and access-control definitions and deletions, output, control, download, start/stop.
pub const MODIFYING_SERVICES: &[(u32, &str)] = &[
    (3, "rename"),
    (7, "defineNamedVariable"),
    (8, "defineScatteredAccess"),
    (10, "deleteVariableAccess"),
    (11, "defineNamedVariableList"),
    (13, "deleteNamedVariableList"),
    (14, "defineNamedType"),
    (16, "deleteNamedType"),
    (18, "output"),
    (19, "takeControl"),
    (20, "relinquishControl"),
    (21, "defineSemaphore"),
    (22, "deleteSemaphore"),
    (26, "initiateDownloadSequence"),
    (27, "downloadSegment"),
    (28, "terminateDownloadSequence"),
    (32, "requestDomainDownload"),
    (34, "loadDomainContent"),
    (35, "storeDomainContent"),
    (36, "deleteDomain"),
    (38, "createProgramInvocation"),
    (39, "deleteProgramInvocation"),
    (40, "start"),
    (41, "stop"),
    (42, "resume"),
    (43, "reset"),
    (44, "kill"),
    (46, "obtainFile"),
    (47, "defineEventCondition"),
    (48, "deleteEventCondition"),
    (51, "alterEventConditionMonitoring"),
    (52, "triggerEvent"),
    (53, "defineEventAction"),
    (54, "deleteEventAction"),
    (57, "defineEventEnrollment"),
    (58, "deleteEventEnrollment"),
    (59, "alterEventEnrollment"),
    (62, "acknowledgeEventNotification"),
    (66, "writeJournal"),
    (67, "initializeJournal"),
    (69, "createJournal"),
    (70, "deleteJournal"),
    (75, "fileRename"),
    (76, "fileDelete"),
    (81, "exchangeData"),
    (82, "defineAccessControlList"),
    (85, "deleteAccessControlList"),
    (86, "changeAccessControl"),
];

/// The functional constraints a read-only route refuses writes to by default.
pub const DEFAULT_DENIED_FCS: &[&str] = &["CO", "SP", "SG", "SE", "CF", "DC"];

/// A request a read-only route refused, for the security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The request's invokeID.
    pub invoke_id: u32,
    /// The service (`write`, `deleteNamedVariableList`, …).
    pub service: &'static str,
    /// The objects it named (`domain/item`), when the guard could read them.
    pub objects: Vec<String>,
}

/// What to do with a PDU from the calling side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it unchanged.
    Forward,
    /// Do not forward it: send `answer` back to the calling side instead.
    Refuse {
        /// The MMS PDU to answer with (Write-Response or Confirmed-ErrorPDU).
        answer: Vec<u8>,
        /// What was refused.
        denial: Denial,
    },
}

/// The policy of a read-only route: see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyGuard {
    /// Functional constraints whose writes are refused (upper case, two letters).
    pub denied_fcs: Vec<String>,
    /// Limits for decoding the writes it inspects.
    pub limits: MmsLimits,
}

impl Default for ReadOnlyGuard {
    fn default() -> Self {
        ReadOnlyGuard {
            denied_fcs: DEFAULT_DENIED_FCS.iter().map(|s| s.to_string()).collect(),
            limits: MmsLimits::default(),
        }
    }
}

fn name_text(n: &ObjectName) -> String {
    match n {
        ObjectName::VmdSpecific(s) => s.clone(),
        ObjectName::DomainSpecific { domain, item } => format!("{domain}/{item}"),
        ObjectName::AaSpecific(s) => format!("@{s}"),
    }
}

/// The outer structure of a PDU, as far as the guard needs it.
enum Head {
    /// Not a confirmed-RequestPDU: the called side judges it.
    NotRequest,
    /// A confirmed-RequestPDU: its invokeID and the service's context tag number.
    Request(u32, u32),
    /// Tagged as a confirmed-RequestPDU but not decodable as one (with the invokeID when that
    /// much could be read): refused with a RejectPDU, since a lenient device might still act on it.
    Malformed(Option<u32>),
}

fn head(pdu: &[u8], lim: &MmsLimits) -> Head {
    let mut r = Reader::new(pdu, lim.ber());
    let Ok(t) = r.read() else {
        return match pdu.first() {
            Some(0xa0) => Head::Malformed(None),
            _ => Head::NotRequest,
        };
    };
    if t.tag() != Tag::context(0, true) {
        return Head::NotRequest;
    }
    let Ok(mut c) = t.children() else {
        return Head::Malformed(None);
    };
    let invoke_id = match c.read() {
        Ok(id) if id.tag() == Tag::INTEGER => id.as_i64().ok().and_then(|v| u32::try_from(v).ok()),
        _ => None,
    };
    let Some(invoke_id) = invoke_id else {
        return Head::Malformed(None);
    };
    let mut service = c.read();
    // listOfModifier (SEQUENCE OF Modifier) may come first.
    if matches!(&service, Ok(s) if s.tag() == Tag::SEQUENCE) {
        service = c.read();
    }
    match service {
        Ok(s) if s.tag().class == Class::Context => Head::Request(invoke_id, s.tag().number),
        _ => Head::Malformed(Some(invoke_id)),
    }
}

impl ReadOnlyGuard {
    /// Whether the item `LN$FC$…` of a domain-specific name is writable on this route.
    fn item_writable(&self, name: &ObjectName) -> bool {
        let ObjectName::DomainSpecific { item, .. } = name else {
            return false;
        };
        match item.split('$').nth(1) {
            Some(fc) if fc.len() == 2 => !self.denied_fcs.iter().any(|d| d == fc),
            _ => false,
        }
    }

    /// Judges one MMS PDU from the calling side.
    pub fn check(&self, pdu: &[u8]) -> Verdict {
        let (invoke_id, service) = match head(pdu, &self.limits) {
            Head::NotRequest => return Verdict::Forward,
            Head::Request(i, s) => (i, s),
            Head::Malformed(invoke_id) => {
                let answer = MmsPdu::Reject(RejectPdu {
                    original_invoke_id: invoke_id,
                    reason: RejectReason {
                        pdu: RejectPduType::ConfirmedRequest,
                        code: reject_code::INVALID_ARGUMENT,
                    },
                })
                .encode();
                return Verdict::Refuse {
                    answer,
                    denial: Denial {
                        invoke_id: invoke_id.unwrap_or(0),
                        service: "malformed confirmed-RequestPDU",
                        objects: Vec::new(),
                    },
                };
            }
        };
        if service == 5 {
            return self.check_write(pdu, invoke_id);
        }
        match MODIFYING_SERVICES.iter().find(|(n, _)| *n == service) {
            None => Verdict::Forward,
            Some((_, name)) => Verdict::Refuse {
                answer: access_denied(invoke_id),
                denial: Denial {
                    invoke_id,
                    service: name,
                    objects: Vec::new(),
                },
            },
        }
    }

    fn check_write(&self, pdu: &[u8], invoke_id: u32) -> Verdict {
        let write = match MmsPdu::decode(pdu, &self.limits) {
            Ok(MmsPdu::ConfirmedRequest(ConfirmedRequest {
                service: ConfirmedServiceRequest::Write(w),
                ..
            })) => w,
            // Undecodable: refused whole, as one the guard cannot attribute.
            _ => {
                return Verdict::Refuse {
                    answer: access_denied(invoke_id),
                    denial: Denial {
                        invoke_id,
                        service: "write",
                        objects: Vec::new(),
                    },
                }
            }
        };
        let (objects, items, allowed) = match &write.spec {
            VariableAccessSpecification::ListOfVariable(vars) => (
                vars.iter().map(|v| name_text(&v.name)).collect::<Vec<_>>(),
                vars.len(),
                vars.iter().all(|v| self.item_writable(&v.name)),
            ),
            VariableAccessSpecification::VariableListName(n) => {
                (vec![name_text(n)], write.data.len(), false)
            }
        };
        if allowed {
            return Verdict::Forward;
        }
        let results = vec![WriteResult::Failure(DataAccessError::ObjectAccessDenied); items.max(1)];
        let answer = MmsPdu::ConfirmedResponse(ConfirmedResponse {
            invoke_id,
            service: ConfirmedServiceResponse::Write(results),
        })
        .encode();
        Verdict::Refuse {
            answer,
            denial: Denial {
                invoke_id,
                service: "write",
                objects,
            },
        }
    }
}

/// A Confirmed-ErrorPDU of class access, `object-access-denied`.
fn access_denied(invoke_id: u32) -> Vec<u8> {
    MmsPdu::ConfirmedError(ConfirmedError {
        invoke_id,
        modifier_position: None,
        error: ServiceError {
            class: ErrorClass::Access(error_code::ACCESS_OBJECT_ACCESS_DENIED),
            additional_code: None,
            additional_description: Some("read-only route".into()),
        },
    })
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{initiate_request_pdu, ClientProposal};
    use crate::data::Data;
    use crate::pdu::{VariableSpec, WriteRequest};

    fn write(items: &[(&str, &str)], invoke_id: u32) -> Vec<u8> {
        let vars = items
            .iter()
            .map(|(d, i)| {
                VariableSpec::named(ObjectName::DomainSpecific {
                    domain: d.to_string(),
                    item: i.to_string(),
                })
            })
            .collect::<Vec<_>>();
        let data = vec![Data::Boolean(true); vars.len()];
        MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id,
            service: ConfirmedServiceRequest::Write(WriteRequest {
                spec: VariableAccessSpecification::ListOfVariable(vars),
                data,
            }),
        })
        .encode()
    }

    fn decode(b: &[u8]) -> MmsPdu {
        MmsPdu::decode(b, &MmsLimits::default()).unwrap()
    }

    #[test]
    fn writes_to_denied_fcs_are_answered_access_denied_per_item() {
        let g = ReadOnlyGuard::default();
        for fc in DEFAULT_DENIED_FCS {
            let item = format!("CSWI1${fc}$Pos$Oper");
            let v = g.check(&write(&[("IEDLD0", &item)], 7));
            let Verdict::Refuse { answer, denial } = v else {
                panic!("{fc} must be refused");
            };
            assert_eq!(denial.service, "write");
            assert_eq!(denial.objects, vec![format!("IEDLD0/{item}")]);
            match decode(&answer) {
                MmsPdu::ConfirmedResponse(ConfirmedResponse {
                    invoke_id: 7,
                    service: ConfirmedServiceResponse::Write(r),
                }) => assert_eq!(
                    r,
                    vec![WriteResult::Failure(DataAccessError::ObjectAccessDenied)]
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn report_control_blocks_and_other_fcs_pass() {
        let g = ReadOnlyGuard::default();
        for item in [
            "LLN0$RP$urcb01$RptEna",
            "LLN0$BR$brcb01$RptEna",
            "GGIO1$ST$Ind1$stVal",
            "LLN0$DC$NamPlt$vendor",
        ] {
            let v = g.check(&write(&[("DEMOLD0", item)], 1));
            assert_eq!(v == Verdict::Forward, !item.contains("$DC$"), "{item}");
        }
    }

    #[test]
    fn a_write_mixing_allowed_and_denied_items_is_refused_whole() {
        let g = ReadOnlyGuard::default();
        let v = g.check(&write(
            &[("D", "LLN0$RP$urcb01$RptEna"), ("D", "CSWI1$CO$Pos$Oper")],
            3,
        ));
        let Verdict::Refuse { answer, .. } = v else {
            panic!("refused");
        };
        let MmsPdu::ConfirmedResponse(r) = decode(&answer) else {
            panic!()
        };
        assert_eq!(
            r.service,
            ConfirmedServiceResponse::Write(vec![
                WriteResult::Failure(
                    DataAccessError::ObjectAccessDenied
                );
                2
            ])
        );
    }

    #[test]
    fn unattributable_writes_are_refused() {
        let g = ReadOnlyGuard::default();
        let nvl = MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 9,
            service: ConfirmedServiceRequest::Write(WriteRequest {
                spec: VariableAccessSpecification::VariableListName(ObjectName::DomainSpecific {
                    domain: "D".into(),
                    item: "LLN0$DS1".into(),
                }),
                data: vec![Data::Boolean(true)],
            }),
        })
        .encode();
        assert!(matches!(g.check(&nvl), Verdict::Refuse { .. }));
        let vmd = MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 9,
            service: ConfirmedServiceRequest::Write(WriteRequest {
                spec: VariableAccessSpecification::single(ObjectName::VmdSpecific("x".into())),
                data: vec![Data::Boolean(true)],
            }),
        })
        .encode();
        assert!(matches!(g.check(&vmd), Verdict::Refuse { .. }));
        // A write whose body does not decode (a Data of an unknown tag): access error.
        let mut bad_data = write(&[("D", "GGIO1$ST$Ind1$stVal")], 4);
        let n = bad_data.len();
        bad_data[n - 3] = 0x9f;
        match g.check(&bad_data) {
            Verdict::Refuse { answer, denial } => {
                assert_eq!(denial.invoke_id, 4);
                assert!(matches!(decode(&answer), MmsPdu::ConfirmedError(_)));
            }
            v => panic!("{v:?}"),
        }
        // A truncated confirmed request: the invokeID reads, the service does not.
        let mut broken = write(&[("D", "GGIO1$ST$Ind1$stVal")], 4);
        broken.truncate(broken.len() - 3);
        broken[1] -= 3;
        match g.check(&broken) {
            Verdict::Refuse { answer, denial } => {
                assert_eq!(denial.invoke_id, 4);
                match decode(&answer) {
                    MmsPdu::Reject(r) => {
                        assert_eq!(r.original_invoke_id, Some(4));
                        assert_eq!(r.reason.pdu, RejectPduType::ConfirmedRequest);
                    }
                    other => panic!("{other:?}"),
                }
            }
            v => panic!("{v:?}"),
        }
        // Not even an outer TLV, but tagged as a confirmed request.
        assert!(matches!(
            g.check(&[0xa0, 0x7f, 0x02]),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn modifying_services_get_an_access_error_and_reads_pass() {
        let g = ReadOnlyGuard::default();
        let del = MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 11,
            service: ConfirmedServiceRequest::DeleteNamedVariableList(
                crate::pdu::DeleteNamedVariableListRequest {
                    scope: 0,
                    names: None,
                    domain: None,
                },
            ),
        })
        .encode();
        match g.check(&del) {
            Verdict::Refuse { answer, denial } => {
                assert_eq!(denial.service, "deleteNamedVariableList");
                match decode(&answer) {
                    MmsPdu::ConfirmedError(e) => {
                        assert_eq!(e.invoke_id, 11);
                        assert_eq!(
                            e.error.class,
                            ErrorClass::Access(error_code::ACCESS_OBJECT_ACCESS_DENIED)
                        );
                    }
                    other => panic!("{other:?}"),
                }
            }
            v => panic!("{v:?}"),
        }
        // A fileDelete [76] the codec does not model: judged by its tag alone.
        let file_delete = [0xa0, 0x08, 0x02, 0x01, 0x05, 0xbf, 0x4c, 0x02, 0x19, 0x00];
        assert!(
            matches!(g.check(&file_delete), Verdict::Refuse { denial, .. } if denial.service == "fileDelete" && denial.invoke_id == 5)
        );
        // fileOpen [72] reads.
        let file_open = [0xa0, 0x08, 0x02, 0x01, 0x05, 0xbf, 0x48, 0x02, 0x19, 0x00];
        assert_eq!(g.check(&file_open), Verdict::Forward);
        let identify = MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: 1,
            service: ConfirmedServiceRequest::Identify,
        })
        .encode();
        assert_eq!(g.check(&identify), Verdict::Forward);
        // Not a request at all, or garbage: the called side judges it.
        assert_eq!(g.check(&[0x8b, 0x00]), Verdict::Forward);
        assert_eq!(g.check(&[0xff, 0xff, 0xff]), Verdict::Forward);
    }

    #[test]
    fn initiate_parameters_are_the_minimum_of_both_sides() {
        let lim = MmsLimits::default();
        let req = initiate_request_pdu(&ClientProposal::default());
        let ours = GatewayLimits {
            max_pdu_size: 4_000,
            max_serv_outstanding: 3,
            nesting_level: 4,
        };
        let (sent, bytes) = forward_initiate_request(&req, &ours, &lim).unwrap();
        assert_eq!(sent.local_detail, Some(4_000));
        assert_eq!(sent.max_serv_outstanding_calling, 3);
        assert_eq!(sent.max_serv_outstanding_called, 3);
        assert_eq!(sent.data_structure_nesting_level, Some(4));
        assert_eq!(decode(&bytes), MmsPdu::InitiateRequest(sent.clone()));
        // A called side that answers with more than asked is capped.
        let mut greedy = sent.clone();
        greedy.local_detail = Some(60_000);
        greedy.max_serv_outstanding_called = 50;
        greedy.data_structure_nesting_level = None;
        let resp = MmsPdu::InitiateResponse(greedy).encode();
        let (got, _) = forward_initiate_response(&resp, &sent, &lim).unwrap();
        assert_eq!(got.local_detail, Some(4_000));
        assert_eq!(got.max_serv_outstanding_called, 3);
        assert_eq!(got.data_structure_nesting_level, Some(4));
        // The wrong PDU is an error, not a guess.
        assert!(forward_initiate_request(&resp, &ours, &lim).is_err());
        assert!(forward_initiate_response(&req, &sent, &lim).is_err());
    }
}
