//! A sans-IO MMS client session (ISO 9506-2 §8): the initiate exchange, invoke IDs, the
//! negotiated outstanding limit, the table of requests waiting for an answer, conclude, and
//! what arrives unasked (InformationReports). No I/O, no clock, no runtime: the caller moves
//! the PDUs and attaches to each request a token of its own (a reply channel, a load-generator
//! slot, a test marker) that comes back with the answer.
//!
//! Its server counterpart is [`ServerSession`] (in [`crate::server`]): initiate negotiation,
//! the confirmed services, conclude and unsolicited InformationReports out.
//!
//! ```
//! use secmms_mms::client::ClientProposal;
//! use secmms_mms::pdu::{ConfirmedResponse, ConfirmedServiceRequest, ConfirmedServiceResponse};
//! use secmms_mms::server::{InitiateOutcome, Vmd, ServerConfig};
//! use secmms_mms::session::{ClientEvent, ClientSession};
//! use secmms_mms::model::{Model, SharedModel};
//! use secmms_mms::MmsPdu;
//!
//! let server = Vmd::new(SharedModel::new(Model::default_demo()), ServerConfig::default());
//! let mut session: ClientSession<&str> = ClientSession::new(ClientProposal::default());
//! let InitiateOutcome::Accepted { response, association } =
//!     server.accept_initiate(&session.initiate_request())
//! else {
//!     panic!("refused")
//! };
//! session.handle_initiate_response(&response).unwrap();
//! let (_, request) = session
//!     .request(ConfirmedServiceRequest::Identify, "who are you?")
//!     .unwrap();
//! let answer = association.handle_pdu(&request).unwrap();
//! match session.handle_pdu(&answer) {
//!     ClientEvent::Answer { token, result, .. } => {
//!         assert_eq!(token, "who are you?");
//!         assert!(matches!(result, Ok(ConfirmedServiceResponse::Identify(_))));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

pub use crate::server::ServerSession;
use std::collections::HashMap;

use crate::client::{
    initiate_request_pdu, parse_initiate_response, ClientError, ClientProposal, Incoming,
};
use crate::error::ServiceError;
use crate::pdu::{
    ConfirmedRequest, ConfirmedServiceRequest, ConfirmedServiceResponse, InformationReport, MmsPdu,
    Negotiated,
};

/// Where a client session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// initiate-RequestPDU built, no answer yet.
    Initiating,
    /// Requests may be sent.
    Established,
    /// conclude-RequestPDU sent.
    Concluding,
    /// conclude-ResponsePDU received: the association may be released.
    Concluded,
    /// The initiate was refused or failed.
    Failed,
}

/// Why a request or conclude could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not in the state the call needs.
    #[error("MMS session is {0:?}")]
    State(SessionState),
    /// As many requests are outstanding as the initiate negotiated
    /// (`maxServOutstandingCalling`).
    #[error("{0} requests already outstanding (the negotiated maximum)")]
    TooManyOutstanding(usize),
    /// ISO 9506-2: conclude is refused while requests are outstanding.
    #[error("{0} requests still outstanding: conclude must wait for their answers")]
    Outstanding(usize),
}

/// What a PDU from the server means to the session.
#[derive(Debug)]
pub enum ClientEvent<T> {
    /// The answer to one of our requests: its token, its invokeID and the result.
    Answer {
        /// The token given with the request.
        token: T,
        /// invokeID.
        invoke_id: u32,
        /// The response, or the confirmed-ErrorPDU / rejectPDU as an error.
        result: Result<ConfirmedServiceResponse, ClientError>,
    },
    /// An unsolicited InformationReport.
    Report(InformationReport),
    /// conclude-ResponsePDU: the association may now be released.
    Concluded,
    /// conclude-ErrorPDU: the server keeps the association.
    ConcludeRefused(ServiceError),
    /// An answer whose invokeID names no outstanding request (late, duplicated or forged); it
    /// is dropped.
    Unmatched {
        /// The invokeID it named.
        invoke_id: u32,
    },
    /// A PDU that does not decode under the negotiated limits, or that a client does not
    /// expect (a rejectPDU without invokeID, a request, …).
    Unexpected(String),
}

/// The client end of one MMS association. `T` is the caller's token per request.
#[derive(Debug)]
pub struct ClientSession<T> {
    proposal: ClientProposal,
    negotiated: Option<Negotiated>,
    state: SessionState,
    next_id: u32,
    pending: HashMap<u32, T>,
}

impl<T> ClientSession<T> {
    /// A session that will propose `proposal` ([`Self::initiate_request`]).
    pub fn new(proposal: ClientProposal) -> Self {
        ClientSession {
            proposal,
            negotiated: None,
            state: SessionState::Initiating,
            next_id: 1,
            pending: HashMap::new(),
        }
    }

    /// A session whose initiate was negotiated elsewhere (the values of the accepted
    /// initiate-ResponsePDU).
    pub fn established(proposal: ClientProposal, negotiated: Negotiated) -> Self {
        ClientSession {
            proposal,
            negotiated: Some(negotiated),
            state: SessionState::Established,
            next_id: 1,
            pending: HashMap::new(),
        }
    }

    /// The initiate-RequestPDU to carry in the association request.
    pub fn initiate_request(&self) -> Vec<u8> {
        initiate_request_pdu(&self.proposal)
    }

    /// Takes the initiate-ResponsePDU (or initiate-ErrorPDU) of the association response. The
    /// negotiated values never exceed the proposal.
    pub fn handle_initiate_response(&mut self, pdu: &[u8]) -> Result<&Negotiated, ClientError> {
        if self.state != SessionState::Initiating {
            return Err(ClientError::Unexpected);
        }
        match parse_initiate_response(pdu, &self.proposal) {
            Ok(n) => {
                self.state = SessionState::Established;
                Ok(self.negotiated.insert(n))
            }
            Err(e) => {
                self.state = SessionState::Failed;
                Err(e)
            }
        }
    }

    /// The negotiated parameters, once established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Requests waiting for an answer.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// How many requests may be outstanding (the negotiated `maxServOutstandingCalling`, at
    /// least 1).
    pub fn max_outstanding(&self) -> usize {
        self.negotiated
            .as_ref()
            .map_or(1, |n| usize::from(n.max_serv_outstanding_calling.max(1)))
    }

    /// Builds the confirmed-RequestPDU for `service` with the next free invokeID and remembers
    /// `token` for its answer. Refused (the token comes back) when the session is not
    /// established or the negotiated number of requests is already outstanding.
    pub fn request(
        &mut self,
        service: ConfirmedServiceRequest,
        token: T,
    ) -> Result<(u32, Vec<u8>), (SessionError, T)> {
        if self.state != SessionState::Established {
            return Err((SessionError::State(self.state), token));
        }
        if self.pending.len() >= self.max_outstanding() {
            return Err((SessionError::TooManyOutstanding(self.pending.len()), token));
        }
        let invoke_id = self.take_id();
        let pdu = MmsPdu::ConfirmedRequest(ConfirmedRequest { invoke_id, service }).encode();
        self.pending.insert(invoke_id, token);
        Ok((invoke_id, pdu))
    }

    /// The next invokeID not in use (1 ..= u32::MAX, wrapping; 0 is never used).
    fn take_id(&mut self) -> u32 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }

    /// Classifies a PDU from the server and, for an answer, hands back the request's token.
    pub fn handle_pdu(&mut self, pdu: &[u8]) -> ClientEvent<T> {
        let limits = self
            .negotiated
            .as_ref()
            .map(Negotiated::limits)
            .unwrap_or_default();
        let incoming = match MmsPdu::decode(pdu, &limits) {
            Ok(p) => p,
            Err(e) => return ClientEvent::Unexpected(format!("undecodable MMS PDU: {e}")),
        };
        self.handle_decoded(incoming)
    }

    /// [`Self::handle_pdu`] for a PDU the caller already decoded.
    pub fn handle_decoded(&mut self, pdu: MmsPdu) -> ClientEvent<T> {
        match classify(pdu) {
            Incoming::Answer { invoke_id, result } => match self.pending.remove(&invoke_id) {
                Some(token) => ClientEvent::Answer {
                    token,
                    invoke_id,
                    result,
                },
                None => ClientEvent::Unmatched { invoke_id },
            },
            Incoming::Report(r) => ClientEvent::Report(r),
            Incoming::Concluded if self.state == SessionState::Concluding => {
                self.state = SessionState::Concluded;
                ClientEvent::Concluded
            }
            Incoming::ConcludeRefused(e) if self.state == SessionState::Concluding => {
                self.state = SessionState::Established;
                ClientEvent::ConcludeRefused(e)
            }
            Incoming::Concluded | Incoming::ConcludeRefused(_) => {
                ClientEvent::Unexpected("conclude answer without a conclude request".into())
            }
            Incoming::Other(p) => ClientEvent::Unexpected(format!("unexpected {p:?}")),
        }
    }

    /// Builds the conclude-RequestPDU. ISO 9506-2 lets a server refuse conclude while requests
    /// are outstanding, so the session refuses it first.
    pub fn conclude(&mut self) -> Result<Vec<u8>, SessionError> {
        if self.state != SessionState::Established {
            return Err(SessionError::State(self.state));
        }
        if !self.pending.is_empty() {
            return Err(SessionError::Outstanding(self.pending.len()));
        }
        self.state = SessionState::Concluding;
        Ok(MmsPdu::ConcludeRequest.encode())
    }

    /// Takes back the token of request `invoke_id` (it could not be sent after all).
    pub fn forget(&mut self, invoke_id: u32) -> Option<T> {
        self.pending.remove(&invoke_id)
    }

    /// The association ended: every outstanding request's token, to fail them. The session is
    /// over.
    pub fn fail_all(&mut self) -> Vec<T> {
        self.state = SessionState::Failed;
        self.pending.drain().map(|(_, t)| t).collect()
    }
}

/// What a decoded PDU is to a client (also behind [`crate::client::parse_incoming`]).
pub(crate) fn classify(pdu: MmsPdu) -> Incoming {
    match pdu {
        MmsPdu::ConfirmedResponse(r) => Incoming::Answer {
            invoke_id: r.invoke_id,
            result: Ok(r.service),
        },
        MmsPdu::ConfirmedError(e) => Incoming::Answer {
            invoke_id: e.invoke_id,
            result: Err(ClientError::Service {
                invoke_id: e.invoke_id,
                error: e.error,
            }),
        },
        MmsPdu::Reject(r) => match r.original_invoke_id {
            Some(invoke_id) => Incoming::Answer {
                invoke_id,
                result: Err(ClientError::Rejected(r)),
            },
            None => Incoming::Other(MmsPdu::Reject(r)),
        },
        MmsPdu::InformationReport(r) => Incoming::Report(r),
        MmsPdu::ConcludeResponse => Incoming::Concluded,
        MmsPdu::ConcludeError(e) => Incoming::ConcludeRefused(e),
        other => Incoming::Other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_ids_wrap_past_the_top_skip_zero_and_those_in_use() {
        let mut s: ClientSession<u8> = ClientSession::new(ClientProposal::default());
        s.pending.insert(1, 0);
        s.next_id = u32::MAX;
        assert_eq!(s.take_id(), u32::MAX);
        // 0 is never used and 1 is outstanding.
        assert_eq!(s.take_id(), 2);
    }
}
