//! What binds IEC 62351-4 security to an environment.
//!
//! * [`aprofile`] — the A-security-profile (clause 11, compatibility mode): an
//!   [`secmms_osi::security::AssociationSecurity`] hook that adds and verifies the
//!   MMS-Authentication-value in the AARQ and AARE.
//! * [`value`] — the MMS-Authentication-value codec (§11.2) and its GeneralizedTime rules.
//! * [`policy`] — the bilateral peer table of §5.1 (transport and application security per peer).
//! * [`events`] — the security events the A-profile records.
//! * [`limits`] — sizes and windows (Annex G.3, §11.4).
//! * [`fuzzing`] — the entry point of the `aprofile` fuzz target.
//!
//! Sans-IO: time comes from a clock closure given at construction; no sockets, no global RNG.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aprofile;
pub mod events;
pub mod fuzzing;
pub mod limits;
pub mod policy;
pub mod value;

pub use aprofile::{AProfile, AProfileConfig, AProfileShared, ConnectionInfo, Credentials};
pub use policy::{ApplicationSecurity, PeerPolicy, PeerTable, TransportSecurity};
