//! What binds IEC 62351-4 security to an environment.
//!
//! * [`aprofile`] — the A-security-profile (clause 11, compatibility mode): an
//!   [`secmms_osi::security::AssociationSecurity`] hook that adds and verifies the
//!   MMS-Authentication-value in the AARQ and AARE.
//! * [`native`] — E2E security in the OSI environment (clause 15, native mode): an
//!   [`secmms_osi::security::AssociationSecurity`] hook that carries the SecPDUs of
//!   `secmms_e2e` in the ACSE APDUs and P-DATA (Table 4), with its §15.7 checks and group-15
//!   events, and the data-phase operations of [`native::NativeState`].
//! * [`secure`] — one sans-IO [`secure::SecureAssociation`]: the OSI association and its
//!   protection (none, A-profile or native) in one object, time passed in as [`secure::Now`].
//! * [`value`] — the MMS-Authentication-value codec (§11.2) and its GeneralizedTime rules.
//! * [`policy`] — the bilateral peer table of §5.1 (transport and application security per peer).
//! * [`events`] — the security events the A-profile records.
//! * [`limits`] — sizes and windows (Annex G.3, §11.4).
//! * [`fuzzing`] — the entry points of the `aprofile` fuzz target and of the OSI-environment
//!   decoder of clause 15.
//!
//! Sans-IO: no sockets, no clock and no lock. Time is an argument of every call
//! ([`secure::Now`] for OSI associations, a `TimeStamp` for the XMPP endpoint); state shared by
//! the associations of a process (replay stores) is injected through traits the runtime
//! implements. The E2E mapping takes its randomness from a
//! [`secmms_pki::crypto::RandomSource`] (OpenSSL's CSPRNG unless replaced).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod aprofile;
pub mod events;
pub mod fuzzing;
pub mod limits;
pub mod native;
pub mod policy;
pub mod relay;
pub mod secure;
pub mod value;
pub mod xmpp;

pub use aprofile::{AProfile, AProfileConfig, AProfileShared, ConnectionInfo, Credentials};
pub use native::{NativeConfig, NativeDiagnostic, NativeError, NativeShared, NativeState};
pub use policy::{ApplicationSecurity, PeerPolicy, PeerTable, TransportSecurity};
