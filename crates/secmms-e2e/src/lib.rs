//! IEC 62351-4 E2E security engine (clauses 8, 9, 12–14), sans-IO.
//!
//! The E2E layer turns protected-protocol PDUs (PrPDUs, e.g. MMS) into SecPDUs and back. It
//! knows nothing of sockets or of the operational environment: the OSI mapping (clause 15) and
//! the XMPP mapping (clause 16) carry the octets and say which SecPDU kind they are.
//!
//! * [`pdu`] — the SecPDU types of §13.5 and their BER codec (signed/MACed octets kept as
//!   received).
//! * [`xml`] — the XML encoding of the same types for the XMPP environment (§16, namespace
//!   `E2E_4`) and its XSD in `xsd/` (the ENV_4 wrapper is the XMPP mapping's, in
//!   `secmms-profiles`). Set [`E2eConfig::encoding`] to
//!   [`WireEncoding::Xml`] to run the engine over XML.
//! * [`engine`] — [`E2eClient`] and [`E2eServer`]: handshake and negotiation, data transfer
//!   (clear, AES-GCM, AES-CBC + ICV), time window, sequence numbers, key refresh, release and
//!   aborts, with a [`SecurityEvent`](secmms_pki::SecurityEvent) for every exception.
//! * [`config`] — policy and every DECISION of the reconstruction as a named value.
//! * [`keys`] — the HKDF key schedule of §13.3.1.3.
//! * [`keylog`] — the E2E key log: traffic keys per association and key generation, for
//!   `secmms decode`.
//!
//! Time is passed in as a [`TimeStamp`]; randomness as a
//! [`RandomSource`](secmms_pki::RandomSource). See [`E2eClient`] for a complete example.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod alg;
pub mod config;
pub mod diag;
pub mod engine;
pub mod events;
pub mod keylog;
pub mod keys;
pub mod limits;
pub mod pdu;
pub mod replay;
pub mod roles;
pub mod time;
pub mod xml;

#[doc(hidden)]
pub mod doc_support;
#[doc(hidden)]
pub mod fuzzing;

pub use config::{Context, Credentials, E2eConfig, EncryptionPolicy, ModeOffer, WireEncoding};
pub use diag::{Diagnostic, DtDiagnostic, HandshakeDiagnostic};
pub use engine::{E2eClient, E2eError, E2eServer, Output, Rejection, Role, State};
pub use keys::ProtectionMode;
pub use pdu::{SecPdu, SecPduKind};
pub use roles::E2eEngine;
pub use time::TimeStamp;
