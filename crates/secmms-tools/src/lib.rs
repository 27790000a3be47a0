//! The tools built on the secmms library, kept out of it so that a product embedding
//! `secmms` gets the protocol stack only: the self-contained demonstration (`secmms demo`), the
//! closed-loop load generator (`secmms bench`, with its latency histogram), the clause 17
//! conformance statement (`secmms pics`), and (feature `soak`) the soak under faults. The
//! `secmms` command and the tests use them; the demonstration's PKI ([`demo::DemoPki`]) is also
//! the tests' source of certificates.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod bench;
pub mod demo;
pub mod histogram;
pub mod load;
pub mod pics;
#[cfg(feature = "soak")]
pub mod soak;
