//! MMS (ISO 9506-2) PDUs, codec, client and server service logic, IEC 61850 data model
#![forbid(unsafe_code)]
#![deny(missing_docs)]
