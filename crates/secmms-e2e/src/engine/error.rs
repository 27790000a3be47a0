//! What goes wrong: the [`Rejection`] a failed clause 14 check produces, the [`E2eError`] of
//! the engine API, and the internal [`Fail`] a check returns before the engine turns it into a
//! rejection (event queued, reply built, association closed).

use super::*;

/// A failed security check (clause 14): the event raised, the diagnostic sent (absent for
/// alarms) and the signed reject/abort to send, if any.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The event (also queued in the engine).
    pub event: SecurityEvent,
    /// The check's catalogue entry.
    pub check: EventDef,
    /// The diagnostic of the check (sent unless it is an alarm).
    pub cause: Option<Diagnostic>,
    /// The SecPDU to send to the peer (HandshakeSecReject, HandshakeSecAbort or DtSecAbort).
    pub reply: Option<(SecPduKind, Vec<u8>)>,
}

/// Errors of the engine API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum E2eError {
    /// A security check failed; the association is closed.
    #[error("security check failed: {}", .0.event)]
    Rejected(Box<Rejection>),
    /// The call is not allowed in the current state or role.
    #[error("operation not allowed in state {0:?}")]
    State(State),
    /// The PrPDU handed to the engine is not a single BER element of acceptable size.
    #[error("invalid PrPDU")]
    InvalidPrPdu,
    /// A local cryptographic failure (key generation, RNG, signing).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// A local configuration problem.
    #[error("configuration: {0}")]
    Config(&'static str),
}

impl E2eError {
    /// The rejection, if this is one.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            E2eError::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

pub(super) type R<T> = Result<T, E2eError>;

/// An internal failure before it is turned into a [`Rejection`].
pub(super) struct Fail {
    pub(super) def: EventDef,
    pub(super) cause: Option<Diagnostic>,
    pub(super) msg: String,
}

pub(super) fn fail(def: EventDef, cause: Option<Diagnostic>, msg: impl Into<String>) -> Fail {
    Fail {
        def,
        cause,
        msg: msg.into(),
    }
}
pub(super) fn hfail(def: EventDef, d: HandshakeDiagnostic, msg: impl Into<String>) -> Fail {
    fail(def, Some(Diagnostic::Handshake(d)), msg)
}
pub(super) fn dfail(def: EventDef, d: DtDiagnostic, msg: impl Into<String>) -> Fail {
    fail(def, Some(Diagnostic::Dt(d)), msg)
}
