//! Errors of the MMS layer and the MMS error/reject values they map to.
//!
//! * [`MmsError`] — a decoding or encoding failure in this crate (typed, never a panic).
//! * [`ServiceError`] — the ISO 9506-2 `ServiceError` carried by confirmed-ErrorPDU,
//!   initiate-ErrorPDU and conclude-ErrorPDU (§7.4, "ServiceError").
//! * [`RejectReason`] — the `rejectReason` of a rejectPDU (ISO 9506-2 §7.6).
//! * [`DataAccessError`] — the per-variable failure of Read/Write (ISO 9506-2 §14.4.3).

use secmms_ber::{BerError, Tag};

/// Errors of MMS decoding and encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MmsError {
    /// The BER layer refused the input.
    #[error("BER: {0}")]
    Ber(#[from] BerError),
    /// The PDU is larger than the negotiated maximum (localDetail, ISO 9506-2 §8.2.1.1.1).
    #[error("PDU of {len} octets exceeds the negotiated maximum of {max}")]
    PduTooLarge {
        /// Size of the PDU.
        len: usize,
        /// The maximum in force.
        max: usize,
    },
    /// Data or a type description nests deeper than the negotiated dataStructureNestingLevel.
    #[error("data nested deeper than {0} levels")]
    NestingTooDeep(usize),
    /// A SEQUENCE OF holds more elements than the configured cap.
    #[error("list longer than {0} elements")]
    ListTooLong(usize),
    /// The outer tag is not an MMSpdu alternative this implementation knows.
    #[error("unknown MMS PDU tag {0}")]
    UnknownPdu(Tag),
    /// A confirmed service this implementation does not implement.
    #[error("unrecognized confirmed service {0}")]
    UnrecognizedService(Tag),
    /// A listOfModifier was present (not supported: reject unrecognized-modifier).
    #[error("modifiers are not supported")]
    UnsupportedModifier,
    /// A value is present but not valid for its type.
    #[error("invalid {0}")]
    InvalidValue(&'static str),
    /// A choice alternative that is valid MMS but not implemented (for example the `address`
    /// variable specification or the `real` Data type).
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// A failure while decoding the service part of a confirmed request whose invokeID is known.
    #[error("confirmed request {invoke_id}: {source}")]
    InRequest {
        /// The invokeID of the request.
        invoke_id: u32,
        /// The underlying failure.
        source: Box<MmsError>,
    },
}

impl MmsError {
    /// The rejectPDU content a receiver sends for this failure (ISO 9506-2 §7.6): with the
    /// original invokeID and a confirmed-requestPDU reason when the invokeID was read, else a
    /// pdu-error reason.
    pub fn reject(&self) -> (Option<u32>, RejectReason) {
        match self {
            MmsError::InRequest { invoke_id, source } => {
                let code = match **source {
                    MmsError::UnrecognizedService(_) => reject_code::UNRECOGNIZED_SERVICE,
                    MmsError::UnsupportedModifier => reject_code::UNRECOGNIZED_MODIFIER,
                    MmsError::NestingTooDeep(_) => reject_code::MAX_RECURSION_EXCEEDED,
                    MmsError::ListTooLong(_) => reject_code::VALUE_OUT_OF_RANGE,
                    _ => reject_code::INVALID_ARGUMENT,
                };
                (
                    Some(*invoke_id),
                    RejectReason {
                        pdu: RejectPduType::ConfirmedRequest,
                        code,
                    },
                )
            }
            MmsError::UnknownPdu(_) => (
                None,
                RejectReason {
                    pdu: RejectPduType::PduError,
                    code: reject_code::UNKNOWN_PDU_TYPE,
                },
            ),
            _ => (
                None,
                RejectReason {
                    pdu: RejectPduType::PduError,
                    code: reject_code::INVALID_PDU,
                },
            ),
        }
    }

    /// The innermost failure (unwrapping [`MmsError::InRequest`]).
    pub fn root(&self) -> &MmsError {
        match self {
            MmsError::InRequest { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MmsError>;

/// The PDU kind a rejectPDU refers to: the alternative number of `rejectReason`
/// (ISO 9506-2 §7.6, RejectPDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum RejectPduType {
    ConfirmedRequest = 1,
    ConfirmedResponse = 2,
    ConfirmedError = 3,
    Unconfirmed = 4,
    PduError = 5,
    CancelRequest = 6,
    CancelResponse = 7,
    CancelError = 8,
    ConcludeRequest = 9,
    ConcludeResponse = 10,
    ConcludeError = 11,
}

impl RejectPduType {
    /// From the context tag number of the `rejectReason` alternative.
    pub fn from_tag(n: u32) -> Option<Self> {
        use RejectPduType::*;
        Some(match n {
            1 => ConfirmedRequest,
            2 => ConfirmedResponse,
            3 => ConfirmedError,
            4 => Unconfirmed,
            5 => PduError,
            6 => CancelRequest,
            7 => CancelResponse,
            8 => CancelError,
            9 => ConcludeRequest,
            10 => ConcludeResponse,
            11 => ConcludeError,
            _ => return None,
        })
    }
}

/// Reject codes (ISO 9506-2 §7.6; values as in the reference §7.1).
pub mod reject_code {
    /// confirmed-requestPDU: other.
    pub const OTHER: i64 = 0;
    /// confirmed-requestPDU: unrecognized-service.
    pub const UNRECOGNIZED_SERVICE: i64 = 1;
    /// confirmed-requestPDU: unrecognized-modifier.
    pub const UNRECOGNIZED_MODIFIER: i64 = 2;
    /// confirmed-requestPDU: invalid-invokeID.
    pub const INVALID_INVOKE_ID: i64 = 3;
    /// confirmed-requestPDU: invalid-argument.
    pub const INVALID_ARGUMENT: i64 = 4;
    /// confirmed-requestPDU: invalid-modifier.
    pub const INVALID_MODIFIER: i64 = 5;
    /// confirmed-requestPDU: max-serv-outstanding-exceeded.
    pub const MAX_SERV_OUTSTANDING_EXCEEDED: i64 = 6;
    /// confirmed-requestPDU: max-recursion-exceeded.
    pub const MAX_RECURSION_EXCEEDED: i64 = 8;
    /// confirmed-requestPDU: value-out-of-range.
    pub const VALUE_OUT_OF_RANGE: i64 = 9;
    /// pdu-error: unknown-pdu-type.
    pub const UNKNOWN_PDU_TYPE: i64 = 0;
    /// pdu-error: invalid-pdu.
    pub const INVALID_PDU: i64 = 1;
    /// pdu-error: illegal-acse-mapping.
    pub const ILLEGAL_ACSE_MAPPING: i64 = 2;
}

/// `rejectReason` of a rejectPDU (ISO 9506-2 §7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectReason {
    /// Which kind of PDU is rejected.
    pub pdu: RejectPduType,
    /// The reason code (see [`reject_code`]).
    pub code: i64,
}

/// ServiceError `errorClass` (ISO 9506-2 §7.4.1). Each alternative carries its code; the
/// named codes are in [`error_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ErrorClass {
    VmdState(i64),
    ApplicationReference(i64),
    Definition(i64),
    Resource(i64),
    Service(i64),
    ServicePreempt(i64),
    TimeResolution(i64),
    Access(i64),
    Initiate(i64),
    Conclude(i64),
    Cancel(i64),
    File(i64),
    Others(i64),
}

impl ErrorClass {
    /// The context tag number of the alternative.
    pub fn tag_number(&self) -> u32 {
        use ErrorClass::*;
        match self {
            VmdState(_) => 0,
            ApplicationReference(_) => 1,
            Definition(_) => 2,
            Resource(_) => 3,
            Service(_) => 4,
            ServicePreempt(_) => 5,
            TimeResolution(_) => 6,
            Access(_) => 7,
            Initiate(_) => 8,
            Conclude(_) => 9,
            Cancel(_) => 10,
            File(_) => 11,
            Others(_) => 12,
        }
    }
    /// The code inside the alternative.
    pub fn code(&self) -> i64 {
        use ErrorClass::*;
        match *self {
            VmdState(c)
            | ApplicationReference(c)
            | Definition(c)
            | Resource(c)
            | Service(c)
            | ServicePreempt(c)
            | TimeResolution(c)
            | Access(c)
            | Initiate(c)
            | Conclude(c)
            | Cancel(c)
            | File(c)
            | Others(c) => c,
        }
    }
    /// From a tag number and a code.
    pub fn from_parts(tag: u32, code: i64) -> Option<Self> {
        use ErrorClass::*;
        Some(match tag {
            0 => VmdState(code),
            1 => ApplicationReference(code),
            2 => Definition(code),
            3 => Resource(code),
            4 => Service(code),
            5 => ServicePreempt(code),
            6 => TimeResolution(code),
            7 => Access(code),
            8 => Initiate(code),
            9 => Conclude(code),
            10 => Cancel(code),
            11 => File(code),
            12 => Others(code),
            _ => return None,
        })
    }
}

/// Named ServiceError codes (ISO 9506-2 §7.4.1; values as in the reference §7.1).
pub mod error_code {
    /// Code 0 of every class: other.
    pub const OTHER: i64 = 0;
    /// definition: object-undefined.
    pub const DEFINITION_OBJECT_UNDEFINED: i64 = 1;
    /// definition: invalid-address.
    pub const DEFINITION_INVALID_ADDRESS: i64 = 2;
    /// definition: type-unsupported.
    pub const DEFINITION_TYPE_UNSUPPORTED: i64 = 3;
    /// definition: type-inconsistent.
    pub const DEFINITION_TYPE_INCONSISTENT: i64 = 4;
    /// definition: object-exists.
    pub const DEFINITION_OBJECT_EXISTS: i64 = 5;
    /// definition: object-attribute-inconsistent.
    pub const DEFINITION_OBJECT_ATTRIBUTE_INCONSISTENT: i64 = 6;
    /// resource: memory-unavailable.
    pub const RESOURCE_MEMORY_UNAVAILABLE: i64 = 1;
    /// resource: capability-unavailable.
    pub const RESOURCE_CAPABILITY_UNAVAILABLE: i64 = 4;
    /// service: object-state-conflict.
    pub const SERVICE_OBJECT_STATE_CONFLICT: i64 = 2;
    /// service: pdu-size.
    pub const SERVICE_PDU_SIZE: i64 = 3;
    /// service: continuation-invalid.
    pub const SERVICE_CONTINUATION_INVALID: i64 = 4;
    /// service: object-constraint-conflict.
    pub const SERVICE_OBJECT_CONSTRAINT_CONFLICT: i64 = 5;
    /// access: object-access-unsupported.
    pub const ACCESS_OBJECT_ACCESS_UNSUPPORTED: i64 = 1;
    /// access: object-non-existent.
    pub const ACCESS_OBJECT_NON_EXISTENT: i64 = 2;
    /// access: object-access-denied.
    pub const ACCESS_OBJECT_ACCESS_DENIED: i64 = 3;
    /// initiate: version-incompatible.
    pub const INITIATE_VERSION_INCOMPATIBLE: i64 = 1;
    /// initiate: max-segment-insufficient.
    pub const INITIATE_MAX_SEGMENT_INSUFFICIENT: i64 = 2;
    /// initiate: max-services-outstanding-calling-insufficient.
    pub const INITIATE_MAX_SERV_OUTSTANDING_CALLING_INSUFFICIENT: i64 = 3;
    /// initiate: max-services-outstanding-called-insufficient.
    pub const INITIATE_MAX_SERV_OUTSTANDING_CALLED_INSUFFICIENT: i64 = 4;
    /// initiate: service-CBB-insufficient.
    pub const INITIATE_SERVICE_CBB_INSUFFICIENT: i64 = 5;
    /// initiate: parameter-CBB-insufficient.
    pub const INITIATE_PARAMETER_CBB_INSUFFICIENT: i64 = 6;
    /// initiate: nesting-level-insufficient.
    pub const INITIATE_NESTING_LEVEL_INSUFFICIENT: i64 = 7;
    /// cancel: invoke-id-unknown.
    pub const CANCEL_INVOKE_ID_UNKNOWN: i64 = 1;
    /// cancel: cancel-not-possible.
    pub const CANCEL_NOT_POSSIBLE: i64 = 2;
}

/// ServiceError (ISO 9506-2 §7.4.1): the content of confirmed-ErrorPDU's `serviceError`,
/// initiate-ErrorPDU and conclude-ErrorPDU. `serviceSpecificInformation` is not modelled
/// (skipped on receive, never sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("MMS service error {class:?}")]
pub struct ServiceError {
    /// errorClass with its code.
    pub class: ErrorClass,
    /// additionalCode.
    pub additional_code: Option<i64>,
    /// additionalDescription.
    pub additional_description: Option<String>,
}

impl ServiceError {
    /// A ServiceError with only an error class.
    pub const fn new(class: ErrorClass) -> Self {
        ServiceError {
            class,
            additional_code: None,
            additional_description: None,
        }
    }
    /// definition / object-undefined.
    pub const fn object_undefined() -> Self {
        Self::new(ErrorClass::Definition(
            error_code::DEFINITION_OBJECT_UNDEFINED,
        ))
    }
    /// access / object-non-existent.
    pub const fn object_non_existent() -> Self {
        Self::new(ErrorClass::Access(error_code::ACCESS_OBJECT_NON_EXISTENT))
    }
    /// access / object-access-denied.
    pub const fn object_access_denied() -> Self {
        Self::new(ErrorClass::Access(error_code::ACCESS_OBJECT_ACCESS_DENIED))
    }
    /// service / pdu-size.
    pub const fn pdu_size() -> Self {
        Self::new(ErrorClass::Service(error_code::SERVICE_PDU_SIZE))
    }
}

/// DataAccessError (ISO 9506-2 §14.4.3): the failure alternative of an AccessResult and of a
/// Write result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[allow(missing_docs)]
pub enum DataAccessError {
    #[error("object-invalidated")]
    ObjectInvalidated = 0,
    #[error("hardware-fault")]
    HardwareFault = 1,
    #[error("temporarily-unavailable")]
    TemporarilyUnavailable = 2,
    #[error("object-access-denied")]
    ObjectAccessDenied = 3,
    #[error("object-undefined")]
    ObjectUndefined = 4,
    #[error("invalid-address")]
    InvalidAddress = 5,
    #[error("type-unsupported")]
    TypeUnsupported = 6,
    #[error("type-inconsistent")]
    TypeInconsistent = 7,
    #[error("object-attribute-inconsistent")]
    ObjectAttributeInconsistent = 8,
    #[error("object-access-unsupported")]
    ObjectAccessUnsupported = 9,
    #[error("object-non-existent")]
    ObjectNonExistent = 10,
    #[error("object-value-invalid")]
    ObjectValueInvalid = 11,
}

impl DataAccessError {
    /// All values, in code order.
    pub const ALL: [DataAccessError; 12] = [
        DataAccessError::ObjectInvalidated,
        DataAccessError::HardwareFault,
        DataAccessError::TemporarilyUnavailable,
        DataAccessError::ObjectAccessDenied,
        DataAccessError::ObjectUndefined,
        DataAccessError::InvalidAddress,
        DataAccessError::TypeUnsupported,
        DataAccessError::TypeInconsistent,
        DataAccessError::ObjectAttributeInconsistent,
        DataAccessError::ObjectAccessUnsupported,
        DataAccessError::ObjectNonExistent,
        DataAccessError::ObjectValueInvalid,
    ];
    /// From the INTEGER code.
    pub fn from_code(c: i64) -> Option<Self> {
        usize::try_from(c)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }
    /// The INTEGER code.
    pub fn code(self) -> i64 {
        self as i64
    }
}
