//! [`ClientError`] and the typed details of its variants: an answer that does not fit its
//! request ([`Mismatch`]), a request that cannot be made as asked ([`UsageError`]).

use std::sync::Arc;
use std::time::Duration;

use secmms_mms::pdu::{ConfirmedServiceResponse, RejectPdu};
use secmms_mms::ServiceError;

use super::Refusal;
use crate::driver::LinkError;

/// Errors of client operations.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP, OSI or protocol failure of the association.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// A value is out of range or malformed (the field is named).
    #[error(transparent)]
    Setting(#[from] crate::settings::SettingError),
    /// The events section is invalid, or its outputs could not be opened.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The TLS handshake failed (the security event tells why).
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The application-security context could not be built, or refused the peer (§5.1).
    #[error("application security: {0}")]
    Security(#[from] crate::security::SecurityError),
    /// Over XMPP: the endpoint refused the call, or its E2E engine ended the association.
    #[error("XMPP: {0}")]
    Xmpp(Arc<secmms_profiles::xmpp::EndpointError>),
    /// The server refused the association, or it was aborted while being established: the
    /// OSI/ACSE outcome, the MMS initiate-ErrorPDU and the E2E diagnostic, as they came.
    #[error("association rejected: {0}")]
    Rejected(Box<Refusal>),
    /// The server's initiate-ResponsePDU could not be used (undecodable, or it refused).
    #[error("initiate: {0}")]
    Initiate(secmms_mms::client::ClientError),
    /// The peer closed the connection, without an answer, right after our CONNECT, which
    /// carried more than 512 octets and so needed session version 2 Extended User Data.
    #[error(
        "the peer closed the connection right after our session CONNECT ({octets} octets of user \
         data): it most likely lacks ISO 8327 session version 2 Extended User Data (PGI 194), \
         which a CONNECT over 512 octets needs (the certificate-carrying AARQ of compatibility \
         and native mode always does; libiec61850 closes the connection this way); use plain \
         mode or a peer that supports it"
    )]
    NoExtendedUserData {
        /// User-data octets of the CONNECT sent.
        octets: usize,
    },
    /// The server answered with a Confirmed-ErrorPDU.
    #[error("service error: {0:?}")]
    Service(ServiceError),
    /// The server rejected the request (RejectPDU).
    #[error("request rejected by the server: {:?}", .0.reason)]
    Reject(RejectPdu),
    /// The server's answer could not be decoded, or did not fit the request.
    #[error("answer: {0}")]
    Answer(secmms_mms::client::ClientError),
    /// A variable could not be accessed.
    #[error("data access error: {0}")]
    Access(secmms_mms::DataAccessError),
    /// The answer does not fit its request: which answer came for which request.
    #[error("unexpected response: {0}")]
    Unexpected(Mismatch),
    /// No response in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The association is gone.
    #[error("association closed")]
    Closed,
    /// The request could not be made as asked: a reference or value not understood, a session
    /// that cannot take it.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// MMS encoding or decoding failed.
    #[error("MMS: {0}")]
    Mms(#[from] secmms_mms::MmsError),
}

/// An answer that does not fit its request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The answer is of another service than the request.
    #[error("{request} answered by {}", service_name(.response))]
    Service {
        /// The service asked for (e.g. `read`).
        request: &'static str,
        /// The answer that came.
        response: Box<ConfirmedServiceResponse>,
    },
    /// The answer carries another number of results than the request asked for.
    #[error("{request} of {asked} item(s) answered with {got} result(s)")]
    Results {
        /// The service asked for.
        request: &'static str,
        /// Items asked for.
        asked: usize,
        /// Results that came.
        got: usize,
    },
    /// The AARE that accepted the association carries no MMS initiate-ResponsePDU.
    #[error("AARE without MMS data")]
    NoInitiateResponse,
}

impl Mismatch {
    /// The answer `response` came for a request of service `request`.
    pub(crate) fn service(request: &'static str, response: ConfirmedServiceResponse) -> Self {
        Mismatch::Service {
            request,
            response: Box::new(response),
        }
    }
}

/// The name of the service of `r` (its ASN.1 CHOICE alternative).
pub fn service_name(r: &ConfirmedServiceResponse) -> &'static str {
    use ConfirmedServiceResponse::*;
    match r {
        Status(_) => "status",
        GetNameList(_) => "getNameList",
        Identify(_) => "identify",
        Read(_) => "read",
        Write(_) => "write",
        GetVariableAccessAttributes(_) => "getVariableAccessAttributes",
        DefineNamedVariableList => "defineNamedVariableList",
        GetNamedVariableListAttributes(_) => "getNamedVariableListAttributes",
        DeleteNamedVariableList { .. } => "deleteNamedVariableList",
    }
}

/// A request the client could not make as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// The text is neither an IEC 61850 reference (`LD/LN.DO.DA[FC]`) nor an MMS name.
    #[error("{error}")]
    Reference {
        /// The text given.
        reference: String,
        /// Why it is not a reference.
        error: secmms_mms::client::ClientError,
    },
    /// The reference, given without FC, names no variable of its domain under any FC.
    #[error("{reference}: no such data attribute")]
    NoSuchAttribute {
        /// The reference given.
        reference: String,
    },
    /// The value text does not fit the variable's type.
    #[error(transparent)]
    Value(#[from] secmms_mms::client::ValueError),
    /// The MMS session cannot send the request now (not established, or as many requests
    /// outstanding as negotiated).
    #[error(transparent)]
    Session(#[from] secmms_mms::session::SessionError),
    /// A request loop (a closed-loop load) is already running on this association.
    #[error("a request loop is already running on this association")]
    LoopRunning,
    /// This association's runner cannot run a request loop (XMPP): send requests in a loop.
    #[error("this association cannot run a request loop")]
    NoLoop,
}
