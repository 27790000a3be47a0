//! Tokio runtime for secmms: transports, MMS client, server, configuration
#![forbid(unsafe_code)]
#![deny(missing_docs)]
