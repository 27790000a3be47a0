//! MMS (ISO 9506-2) for secmms: PDU types and BER codec, the IEC 61850 server data model,
//! sans-IO server service logic and client helpers.
//!
//! Where things live:
//!
//! | module | content |
//! |---|---|
//! | [`pdu`] | `MMSpdu` and the confirmed services IEC 61850 uses (ISO 9506-2 §7, §8, §10, §14) |
//! | [`data`] | `Data`, `TypeSpecification`, `AccessResult` (ISO 9506-2 §14) |
//! | [`name`] | `ObjectName` (ISO 9506-2 §7.5.3) |
//! | [`error`] | `MmsError`, `ServiceError`, reject reasons, `DataAccessError` |
//! | [`limits`] | decoding limits and the negotiation decisions |
//! | [`model`] | the IEC 61850 model mapped to MMS (IEC 61850-8-1), SCL / TOML / built-in loaders |
//! | [`server`] | initiate negotiation and the services over a shared model |
//! | [`client`] | object references, initiate proposal, request builders, response parsers |
//! | [`gateway`] | what a forwarding gateway must understand: the initiate on both sides, read-only routes |
//! | [`session`] | the sans-IO client session: invoke IDs, outstanding limit, pending table, conclude |
//! | [`value`] | value text parsing, `Display`, and a serde value tree |
//!
//! The crate is sans-IO: no sockets, no clock, no randomness. Every decoder takes
//! [`MmsLimits`] (negotiated PDU size, nesting level, list caps) and returns a typed
//! [`MmsError`] — which maps to the rejectPDU to send ([`MmsError::reject`]) — never a panic.
//!
//! ```
//! use secmms_mms::{MmsPdu, MmsLimits};
//! // A read of GGIO1$MX$AnIn1$mag$f in DEMOLD0, as the capture in /work/shared/vectors has it.
//! let bytes = [0xa0,0x2e,0x02,0x01,0x02,0xa4,0x29,0xa1,0x27,0xa0,0x25,0x30,0x23,0xa0,0x21,
//!     0xa1,0x1f,0x1a,0x07,b'D',b'E',b'M',b'O',b'L',b'D',b'0',0x1a,0x14,b'G',b'G',b'I',b'O',
//!     b'1',b'$',b'M',b'X',b'$',b'A',b'n',b'I',b'n',b'1',b'$',b'm',b'a',b'g',b'$',b'f'];
//! let pdu = MmsPdu::decode(&bytes, &MmsLimits::default()).unwrap();
//! assert_eq!(pdu.encode(), bytes);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod alternate;
pub mod client;
mod codec;
pub mod data;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod limits;
pub mod model;
pub mod name;
pub mod pdu;
pub mod server;
pub mod session;
pub mod value;

pub use data::{
    AccessResult, BitString, Data, FloatingPoint, StructComponent, TimeOfDay, TypeDescription,
    UtcTime,
};
pub use error::{DataAccessError, ErrorClass, MmsError, RejectPduType, RejectReason, ServiceError};
pub use limits::MmsLimits;
pub use model::{Change, ChangeOrigin, Model, ModelObserver, SharedModel};
pub use name::ObjectName;
pub use pdu::*;
pub use server::{InitiateOutcome, ReportContent, ServerConfig, ServerSession, Vmd};
