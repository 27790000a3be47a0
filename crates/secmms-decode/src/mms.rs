//! A summary of any MMS PDU (ISO 9506-2): PDU type, invokeID, service, object names, result.
//!
//! The summary reads the BER structure itself instead of the full `secmms-mms` codec, which
//! decodes the services secmms serves and refuses the others: a decoder must name a
//! `fileDirectory` or a `defineEventCondition` it cannot decode in depth. Object names are the
//! `ObjectName` alternatives of ISO 9506-2 §7.5.3 found in a request or unconfirmed PDU:
//! `domain-specific [1] { Identifier, Identifier }` shown `domain/item`, and `vmd-specific [0]`
//! where a VariableSpecification or variable-list name has it.

use secmms_ber::{Class, Limits, Reader, Tlv};

use crate::limits::MAX_OBJECTS;

/// Errors of the summary: the PDU is not valid BER or not an MMS PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmsSummaryError {
    /// Invalid BER.
    #[error("MMS BER: {0}")]
    Ber(#[from] secmms_ber::BerError),
    /// Not one of the MMSpdu alternatives.
    #[error("not an MMS PDU (tag {0})")]
    NotMms(secmms_ber::Tag),
    /// A confirmed PDU without its invokeID.
    #[error("MMS {0} without invokeID")]
    NoInvokeId(&'static str),
}

/// Names of the ConfirmedServiceRequest / -Response alternatives, by tag number
/// (ISO 9506-2; the same numbers as the ServiceSupportOptions bits up to 77).
const CONFIRMED: &[&str] = &[
    "status",
    "getNameList",
    "identify",
    "rename",
    "read",
    "write",
    "getVariableAccessAttributes",
    "defineNamedVariable",
    "defineScatteredAccess",
    "getScatteredAccessAttributes",
    "deleteVariableAccess",
    "defineNamedVariableList",
    "getNamedVariableListAttributes",
    "deleteNamedVariableList",
    "defineNamedType",
    "getNamedTypeAttributes",
    "deleteNamedType",
    "input",
    "output",
    "takeControl",
    "relinquishControl",
    "defineSemaphore",
    "deleteSemaphore",
    "reportSemaphoreStatus",
    "reportPoolSemaphoreStatus",
    "reportSemaphoreEntryStatus",
    "initiateDownloadSequence",
    "downloadSegment",
    "terminateDownloadSequence",
    "initiateUploadSequence",
    "uploadSegment",
    "terminateUploadSequence",
    "requestDomainDownload",
    "requestDomainUpload",
    "loadDomainContent",
    "storeDomainContent",
    "deleteDomain",
    "getDomainAttributes",
    "createProgramInvocation",
    "deleteProgramInvocation",
    "start",
    "stop",
    "resume",
    "reset",
    "kill",
    "getProgramInvocationAttributes",
    "obtainFile",
    "defineEventCondition",
    "deleteEventCondition",
    "getEventConditionAttributes",
    "reportEventConditionStatus",
    "alterEventConditionMonitoring",
    "triggerEvent",
    "defineEventAction",
    "deleteEventAction",
    "getEventActionAttributes",
    "reportEventActionStatus",
    "defineEventEnrollment",
    "deleteEventEnrollment",
    "alterEventEnrollment",
    "reportEventEnrollmentStatus",
    "getEventEnrollmentAttributes",
    "acknowledgeEventNotification",
    "getAlarmSummary",
    "getAlarmEnrollmentSummary",
    "readJournal",
    "writeJournal",
    "initializeJournal",
    "reportJournalStatus",
    "createJournal",
    "deleteJournal",
    "getCapabilityList",
    "fileOpen",
    "fileRead",
    "fileClose",
    "fileRename",
    "fileDelete",
    "fileDirectory",
];

/// The name of confirmed service `n` (a ConfirmedServiceRequest/-Response tag number), as
/// Wireshark's MMS dissector numbers them.
pub fn confirmed_service_name(n: u32) -> Option<&'static str> {
    CONFIRMED.get(n as usize).copied()
}

/// Names of the UnconfirmedService alternatives.
fn unconfirmed_service_name(n: u32) -> Option<&'static str> {
    [
        "informationReport",
        "unsolicitedStatus",
        "eventNotification",
    ]
    .get(n as usize)
    .copied()
}

/// DataAccessError names (ISO 9506-2 §14.4).
fn data_access_error(n: i64) -> &'static str {
    match n {
        0 => "object-invalidated",
        1 => "hardware-fault",
        2 => "temporarily-unavailable",
        3 => "object-access-denied",
        4 => "object-undefined",
        5 => "invalid-address",
        6 => "type-unsupported",
        7 => "type-inconsistent",
        8 => "object-attribute-inconsistent",
        9 => "object-access-unsupported",
        10 => "object-non-existent",
        11 => "object-value-invalid",
        _ => "unknown-error",
    }
}

/// The summary of one MMS PDU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MmsSummary {
    /// The MMSpdu alternative, e.g. `confirmed-RequestPDU`.
    pub pdu: &'static str,
    /// The service, e.g. `read`; for initiate and conclude the PDU names it.
    pub service: Option<String>,
    /// invokeID (originalInvokeID of a reject, the id of a cancel).
    pub invoke_id: Option<u32>,
    /// Object names, `domain/item` or `item`.
    pub objects: Vec<String>,
    /// Object names found beyond [`MAX_OBJECTS`].
    pub more_objects: usize,
    /// Outcome of a response, error or reject.
    pub result: Option<String>,
}

fn limits() -> Limits {
    Limits {
        max_depth: 64,
        max_len: 1 << 20,
    }
}

/// Summarises one MMS PDU (the single-ASN1-type value of the MMS presentation context).
pub fn summarize(bytes: &[u8]) -> Result<MmsSummary, MmsSummaryError> {
    let mut r = Reader::new(bytes, limits());
    let t = r.read()?;
    r.finish()?;
    let tag = t.tag();
    if tag.class != Class::Context {
        return Err(MmsSummaryError::NotMms(tag));
    }
    let mut s = MmsSummary::default();
    match (tag.number, tag.constructed) {
        (0, true) => {
            s.pdu = "confirmed-RequestPDU";
            let mut c = t.children()?;
            s.invoke_id = Some(invoke_id(&mut c, s.pdu)?);
            let mut svc = c.read()?;
            // listOfModifier (SEQUENCE OF, untagged) may precede the service.
            if svc.tag() == secmms_ber::Tag::SEQUENCE {
                svc = c.read()?;
            }
            s.service = Some(service_name(&svc));
            collect_objects(&svc, &mut s, 0);
        }
        (1, true) => {
            s.pdu = "confirmed-ResponsePDU";
            let mut c = t.children()?;
            s.invoke_id = Some(invoke_id(&mut c, s.pdu)?);
            let svc = c.read()?;
            s.service = Some(service_name(&svc));
            s.result = Some(response_result(&svc));
        }
        (2, true) => {
            s.pdu = "confirmed-ErrorPDU";
            let mut c = t.children()?;
            let id = c.read()?;
            s.invoke_id = Some(id.as_u32()?);
            let mut result = "error".to_string();
            while let Ok(e) = c.read() {
                if e.tag().number == 2 && e.tag().constructed {
                    result = service_error(&e);
                }
            }
            s.result = Some(result);
        }
        (3, true) => {
            s.pdu = "unconfirmed-PDU";
            let svc = t.single_child()?;
            let n = svc.tag().number;
            s.service = Some(
                unconfirmed_service_name(n)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("unconfirmed-{n}")),
            );
            collect_objects(&svc, &mut s, 0);
        }
        (4, true) => {
            s.pdu = "rejectPDU";
            let mut c = t.children()?;
            if c.peek_tag() == Some(secmms_ber::Tag::context(0, false)) {
                s.invoke_id = Some(c.read()?.as_u32()?);
            }
            if let Ok(reason) = c.read() {
                s.result = Some(format!(
                    "reject {}:{}",
                    reason.tag().number,
                    reason.as_i64().unwrap_or(-1)
                ));
            }
        }
        (5, false) => {
            s.pdu = "cancel-RequestPDU";
            s.invoke_id = Some(t.as_u32()?);
        }
        (6, false) => {
            s.pdu = "cancel-ResponsePDU";
            s.invoke_id = Some(t.as_u32()?);
        }
        (7, true) => {
            s.pdu = "cancel-ErrorPDU";
            let mut c = t.children()?;
            s.invoke_id = Some(c.read()?.as_u32()?);
        }
        (8, true) => s.pdu = "initiate-RequestPDU",
        (9, true) => s.pdu = "initiate-ResponsePDU",
        (10, true) => {
            s.pdu = "initiate-ErrorPDU";
            s.result = Some(service_error(&t));
        }
        (11, false) => s.pdu = "conclude-RequestPDU",
        (12, false) => s.pdu = "conclude-ResponsePDU",
        (13, true) => {
            s.pdu = "conclude-ErrorPDU";
            s.result = Some(service_error(&t));
        }
        _ => return Err(MmsSummaryError::NotMms(tag)),
    }
    Ok(s)
}

fn invoke_id(c: &mut Reader<'_>, what: &'static str) -> Result<u32, MmsSummaryError> {
    let t = c.read().map_err(|_| MmsSummaryError::NoInvokeId(what))?;
    if t.tag() != secmms_ber::Tag::INTEGER {
        return Err(MmsSummaryError::NoInvokeId(what));
    }
    Ok(t.as_u32()?)
}

fn service_name(svc: &Tlv<'_>) -> String {
    let n = svc.tag().number;
    confirmed_service_name(n)
        .map(str::to_string)
        .unwrap_or_else(|| format!("service-{n}"))
}

/// The outcome of a confirmed response: for read and write, the failures listed.
fn response_result(svc: &Tlv<'_>) -> String {
    let mut failures = Vec::new();
    let n = svc.tag().number;
    let mut scan = |list: &Tlv<'_>| {
        if let Ok(mut c) = list.children() {
            while let Ok(e) = c.read() {
                if e.tag() == secmms_ber::Tag::context(0, false) {
                    failures.push(data_access_error(e.as_i64().unwrap_or(-1)));
                }
            }
        }
    };
    if n == 4 {
        // Read-Response: [0] variableAccessSpecification OPTIONAL, [1] listOfAccessResult.
        if let Ok(mut c) = svc.children() {
            while let Ok(e) = c.read() {
                if e.tag() == secmms_ber::Tag::context(1, true) {
                    scan(&e);
                }
            }
        }
    } else if n == 5 {
        // Write-Response: SEQUENCE OF CHOICE { failure [0], success [1] NULL }.
        scan(svc);
    }
    if failures.is_empty() {
        "success".into()
    } else {
        format!("failure: {}", failures.join(","))
    }
}

/// `ServiceError { errorClass [0] CHOICE {...}, ... }` as `error: class n/code m`.
fn service_error(t: &Tlv<'_>) -> String {
    let class = t
        .children()
        .ok()
        .and_then(|mut c| c.read().ok())
        .and_then(|ec| ec.single_child().ok())
        .map(|e| (e.tag().number, e.as_i64().unwrap_or(-1)));
    match class {
        Some((cls, code)) => format!("error: class {cls} code {code}"),
        None => "error".into(),
    }
}

fn visible(t: &Tlv<'_>) -> Option<String> {
    let c = t.content();
    let ok = !c.is_empty()
        && !t.tag().constructed
        && c.iter().all(|b| (0x20..=0x7e).contains(b))
        && c[0].is_ascii_alphabetic();
    ok.then(|| String::from_utf8_lossy(c).into_owned())
}

fn push_object(s: &mut MmsSummary, name: String) {
    if s.objects.len() < MAX_OBJECTS {
        s.objects.push(name);
    } else {
        s.more_objects += 1;
    }
}

/// Walks a request or unconfirmed service for ObjectNames.
fn collect_objects(t: &Tlv<'_>, s: &mut MmsSummary, depth: usize) {
    if depth > 32 || !t.tag().constructed {
        return;
    }
    let Ok(mut c) = t.children() else {
        return;
    };
    let mut kids = Vec::new();
    while let Ok(k) = c.read() {
        kids.push(k);
        if kids.len() > 4096 {
            return;
        }
    }
    let vs = secmms_ber::Tag::VISIBLE_STRING;
    if t.tag() == secmms_ber::Tag::context(1, true)
        && kids.len() == 2
        && kids.iter().all(|k| k.tag() == vs)
    {
        if let (Some(d), Some(i)) = (visible(&kids[0]), visible(&kids[1])) {
            push_object(s, format!("{d}/{i}"));
            return;
        }
    }
    if t.tag().class == Class::Context
        && t.tag().constructed
        && t.tag().number <= 1
        && kids.len() == 1
        && kids[0].tag() == secmms_ber::Tag::context(0, false)
    {
        if let Some(v) = visible(&kids[0]) {
            push_object(s, v);
            return;
        }
    }
    for k in &kids {
        collect_objects(k, s, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(s).unwrap()
    }

    #[test]
    fn read_request_and_response() {
        // Reference §7.6 (libiec61850 capture).
        let mut req = hex("a037020105a432a130a02e302ca02aa128");
        req.extend_from_slice(&[0x1a, 0x11]);
        req.extend_from_slice(b"simpleIOGenericIO");
        req.extend_from_slice(&[0x1a, 0x13]);
        req.extend_from_slice(b"GGIO1$ST$Ind1$stVal");
        let s = summarize(&req).unwrap();
        assert_eq!(s.pdu, "confirmed-RequestPDU");
        assert_eq!(s.invoke_id, Some(5));
        assert_eq!(s.service.as_deref(), Some("read"));
        assert_eq!(s.objects, vec!["simpleIOGenericIO/GGIO1$ST$Ind1$stVal"]);
        let s = summarize(&hex("a10a020105a405a1038301 00")).unwrap();
        assert_eq!(s.result.as_deref(), Some("success"));
        let s = summarize(&hex("a10a02010da405a1038001 0a")).unwrap();
        assert_eq!(s.result.as_deref(), Some("failure: object-non-existent"));
    }

    #[test]
    fn other_pdus() {
        // fileDirectory request (not decoded by secmms-mms) and a reject.
        let s = summarize(&hex("a00602010cbf4d00")).unwrap();
        assert_eq!(s.service.as_deref(), Some("fileDirectory"));
        assert_eq!(s.invoke_id, Some(12));
        let s = summarize(&hex("a40680010c810101")).unwrap();
        assert_eq!(s.pdu, "rejectPDU");
        assert_eq!(s.invoke_id, Some(12));
        assert_eq!(summarize(&hex("8b00")).unwrap().pdu, "conclude-RequestPDU");
        // informationReport with vmd-specific "RPT".
        let s = summarize(&hex("a30ea00ca1058003525054a003830100")).unwrap();
        assert_eq!(s.service.as_deref(), Some("informationReport"));
        assert_eq!(s.objects, vec!["RPT"]);
        assert!(summarize(&hex("3000")).is_err());
        assert!(summarize(&hex("a003020101")).is_err());
    }
}
