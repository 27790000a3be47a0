//! IEC 62351-4 E2E security engine (clauses 8, 9, 12-14), sans-IO
#![forbid(unsafe_code)]
#![deny(missing_docs)]
