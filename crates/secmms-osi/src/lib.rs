//! Sans-IO OSI upper layers for MMS: RFC 1006, ISO 8073 TP0, session, presentation, ACSE
#![forbid(unsafe_code)]
#![deny(missing_docs)]
