//! Sans-IO OSI upper layers for MMS (IEC 62351-4 clause 10, Annex H): RFC 1006 TPKT, ISO 8073
//! class 0 transport, ISO 8327-1 session (version 2, extended user data), ISO 8823-1 presentation
//! (normal mode, BER) and ISO 8650-1 ACSE, plus the association state machine that drives them.
//!
//! Layout (codecs apart from state, as in rustls):
//!
//! | module | what |
//! |---|---|
//! | [`limits`] | Annex H sizes and the named limits every decoder takes |
//! | [`tpkt`] | RFC 1006 framing, streaming decoder |
//! | [`cotp`] | TP0 TPDUs, segmentation and reassembly |
//! | [`session`] | SPDUs |
//! | [`presentation`] | PPDUs and user data |
//! | [`acse`] | APDUs, EXTERNAL, authentication-value |
//! | [`security`] | the association-security hook the IEC 62351-4 profiles implement |
//! | [`association`] | the sans-IO association state machine (both roles) |
//! | [`fuzzing`] | fuzz-target entry points |
//!
//! ```
//! use secmms_osi::{Association, OsiConfig, OsiEvent};
//! let mut client = Association::initiator(OsiConfig::default());
//! let mut server = Association::responder(OsiConfig::server_default());
//! client.connect(vec![0xA8, 0x00]).unwrap();               // MMS initiate-RequestPDU
//! // Wire the two together in memory.
//! let pump = |a: &mut Association, b: &mut Association| {
//!     while let Some(bytes) = a.poll_transmit() { b.handle_input(&bytes).unwrap(); }
//! };
//! pump(&mut client, &mut server);                           // CR
//! pump(&mut server, &mut client);                           // CC
//! pump(&mut client, &mut server);                           // CN + CP + AARQ
//! assert!(matches!(server.poll_event(), Some(OsiEvent::AssociateIndication { .. })));
//! server.accept(vec![0xA9, 0x00]).unwrap();                 // MMS initiate-ResponsePDU
//! pump(&mut server, &mut client);
//! assert!(matches!(client.poll_event(), Some(OsiEvent::AssociateConfirm { .. })));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acse;
pub mod association;
pub mod cotp;
pub mod fuzzing;
pub mod limits;
pub mod presentation;
pub mod security;
pub mod session;
pub mod tpkt;

pub use association::{
    AbortInfo, AbortOrigin, Association, OsiConfig, OsiEvent, RejectReason, State,
};
pub use security::{AssociationSecurity, NoSecurity, Role};

/// Errors of the OSI upper layers. Layer errors map to the reaction the state machine sends:
/// TPKT → close, TP0 → DR/ER, session → AB, presentation → AB + ARP, ACSE → AB + ARU + ABRT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsiError {
    /// RFC 1006 framing error.
    #[error(transparent)]
    Tpkt(#[from] tpkt::TpktError),
    /// Transport (TP0) error.
    #[error(transparent)]
    Cotp(#[from] cotp::CotpError),
    /// Session error.
    #[error(transparent)]
    Session(#[from] session::SessionError),
    /// Presentation error.
    #[error(transparent)]
    Presentation(#[from] presentation::PresentationError),
    /// ACSE error.
    #[error(transparent)]
    Acse(#[from] acse::AcseError),
    /// An API call not allowed in the current state.
    #[error("{operation} not allowed in state {state:?}")]
    InvalidState {
        /// The call.
        operation: &'static str,
        /// The state.
        state: State,
    },
    /// An API call not allowed in this role.
    #[error("{0} not allowed in this role")]
    WrongRole(&'static str),
    /// A CR proposing a class other than 0.
    #[error("transport class {0} not supported")]
    ClassNotSupported(u8),
    /// A CN without session version 2.
    #[error("session version 2 not proposed")]
    SessionVersion,
    /// A called selector different from ours (Annex H DECISION).
    #[error("{0} does not match")]
    SelectorMismatch(&'static str),
    /// A presentation context that is unknown, rejected or not usable here.
    #[error("presentation context {0} not accepted")]
    ContextNotAccepted(u32),
    /// A PDU valid in itself but unexpected here.
    #[error("unexpected {0}")]
    Unexpected(&'static str),
    /// The security hook refused to decorate an outgoing APDU.
    #[error("security hook aborted the association")]
    SecurityAbort(security::AbortRequest),
}
