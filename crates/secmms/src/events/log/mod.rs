//! The hash-chained, tamper-evident security-event log (IEC 62351-4 §4.6: "security violations
//! go to a separate tamper-resistant log").
//!
//! # Format
//! One JSON object per line (JSON Lines), fields in this order:
//!
//! ```json
//! {"seq":0,"time":"2026-11-25T11:37:13.123456Z","id":"IEC62351-3:6.7","mnemonic":"TLS_CERT_REVOKED",
//!  "severity":"incident","message":"...","association":null,"alg":"hmac-sha256",
//!  "prev":"0000…0000","hash":"9f…"}
//! ```
//!
//! `seq` starts at 0 and grows by one per record. `prev` is the `hash` of the previous record,
//! [`GENESIS`] for record 0. `hash` is SHA-256 ([`ALG_SHA256`]) or HMAC-SHA-256 under the log key
//! ([`ALG_HMAC_SHA256`]) over the canonical encoding [`LogRecord::canonical`] of every other
//! field (including `alg` and `prev`). The canonical encoding is length-prefixed binary, so it does
//! not depend on JSON spelling (escapes, spacing).
//!
//! # Threat model (what [`verify_log`] detects)
//! * Editing any field of a record: its hash no longer matches ("edited").
//! * Deleting, reordering or duplicating records, including the first: a `seq` gap, a `seq`
//!   going backwards, a repeated record, or a `prev` that is not the previous hash.
//! * A torn or truncated line: the line does not parse.
//! * **Without a key**, an attacker who can write the file can recompute every hash after
//!   their change (or rewrite the whole file); this is *not* detectable. Removing records at the
//!   tail is never detectable from the file alone.
//! * **With a key** ([`LogKey`], HMAC-SHA-256), recomputing the chain needs the key, so edits,
//!   deletions anywhere but the tail, and wholesale rewrites are detected, as is a downgrade of
//!   `alg` to plain SHA-256. Tail truncation is still not detectable from the file alone.
//! * **Anchors.** A head (`SEQ:HASH` of a record, printed by `secmms log verify` and returned
//!   by [`ChainedLogSink::head`]) copied somewhere the attacker cannot write can be passed back
//!   to [`verify_log_anchored`] (`secmms log verify --anchor SEQ:HASH`): the log must still hold
//!   that record unchanged, which detects truncation back past the anchor and any rewrite up to
//!   it, keyed or not. Records written after the last anchor can still be cut off unseen.
//!   [`super::SyslogSink::with_log_anchor`] puts the current head into every syslog message,
//!   so a remote syslog server keeps anchors as events happen. secmms writes no sealed
//!   checkpoint records or signatures into the log itself.
//! * Not covered: rotation (one file grows without limit), fsync of the directory entry of a
//!   newly created file, and a second process appending to the same file (one writer only).
//! * The key must be readable by the writer, so an attacker who owns the writing process owns
//!   the key: the log protects records already written against later tampering by someone
//!   without the key, not against a compromised writer.
//!
//! # Floods
//! An aggregating sink ([`ChainedLogSink::with_aggregation`], `[events] aggregate_secs`) writes
//! the first event of a kind (same id, same source address) at once and counts the identical
//! ones that follow within the window; when the window closes (or at [`ChainedLogSink::flush`],
//! and when the sink is dropped) one record stands for them, with `count`, `first` and `last`
//! (see [`aggregate`]). Every event is still accounted for, and a flood costs a few records and
//! fsyncs per window instead of one each.
//!
//! # Writing
//! [`ChainedLogSink`] holds the file open in append mode behind a mutex (one writer process per
//! file; several threads are fine), writes each record with one `write` call, and fsyncs per
//! [`FsyncPolicy`]. Reopening an existing file reads only its last line (at most
//! [`MAX_LINE_LEN`] octets), checks it, and continues the chain.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use secmms_pki::event::{SecurityEvent, SecurityEventSink, Severity};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::time::rfc3339_utc;

pub mod aggregate;
mod record;
mod verify;
mod writer;

pub use record::{LogHead, LogRecord};
pub use verify::{
    verify_log, verify_log_anchored, verify_reader, BadRecord, Problem, VerifyError, VerifyReport,
};
pub use writer::ChainedLogSink;

use record::*;

/// `prev` of the first record: 32 zero octets in hex.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `alg` of an unkeyed log: plain SHA-256 chain.
pub const ALG_SHA256: &str = "sha256";
/// `alg` of a keyed log: HMAC-SHA-256 chain under [`LogKey`].
pub const ALG_HMAC_SHA256: &str = "hmac-sha256";
/// Longest accepted line, newline included (bounds reopen and verification memory).
pub const MAX_LINE_LEN: usize = 16 * 1024;
/// Longest `message` written (octets); longer messages are cut at a character boundary and
/// marked with `…`.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Longest `association` written (octets), cut like messages.
pub const MAX_ASSOCIATION_LEN: usize = 256;
/// Shortest accepted HMAC key (octets).
pub const MIN_KEY_LEN: usize = 16;
/// Longest accepted HMAC key (octets).
pub const MAX_KEY_LEN: usize = 1024;
/// Domain-separation prefix of the canonical encoding (version 1 of the format).
pub const CANONICAL_PREFIX: &[u8] = b"secmms-event-log-v1\0";
/// Marks the aggregate fields at the end of the canonical encoding of an aggregate record.
pub const AGGREGATE_MARK: &[u8] = b"\0aggregate\0";

/// Errors opening or writing the log, or reading its key.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("event log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The key file is too short or too long.
    #[error("event log key {path}: {len} octets, need {MIN_KEY_LEN}..={MAX_KEY_LEN}")]
    KeyLength {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The last line of an existing log is not a valid record (torn write, tampering, or
    /// the wrong key); appending would extend a broken chain.
    #[error("event log {path}: cannot continue the chain: {reason} (run `secmms log verify`)")]
    BadHead {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write failed and could not be rolled back; the sink refuses further records.
    #[error("event log {path}: disabled after an unrecoverable write failure")]
    Disabled {
        /// The file.
        path: PathBuf,
    },
    /// OpenSSL failed computing a hash or MAC.
    #[error("event log hash: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// The HMAC key of a keyed log. The octets are wiped on drop and never printed.
#[derive(Clone)]
pub struct LogKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for LogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogKey({} octets)", self.0.len())
    }
}

impl LogKey {
    /// A key from raw octets; `None` unless [`MIN_KEY_LEN`]`..=`[`MAX_KEY_LEN`] long.
    pub fn new(octets: &[u8]) -> Option<LogKey> {
        (MIN_KEY_LEN..=MAX_KEY_LEN)
            .contains(&octets.len())
            .then(|| LogKey(Zeroizing::new(octets.to_vec())))
    }

    /// Reads the key file: its raw octets are the key (e.g. `head -c 32 /dev/urandom`).
    pub fn from_file(path: &Path) -> Result<LogKey, LogError> {
        let io = |source| LogError::Io {
            path: path.to_owned(),
            source,
        };
        let f = File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if len > MAX_KEY_LEN as u64 {
            return Err(LogError::KeyLength {
                path: path.to_owned(),
                len: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_KEY_LEN));
        io::Read::read_to_end(&mut io::Read::take(f, MAX_KEY_LEN as u64 + 1), &mut buf)
            .map_err(io)?;
        LogKey::new(&buf).ok_or(LogError::KeyLength {
            path: path.to_owned(),
            len: buf.len(),
        })
    }
}

/// When the log is flushed to stable storage (`fsync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Never call fsync; the OS writes back when it likes (fastest; a crash may lose recent
    /// records, which then looks like tail truncation).
    Never,
    /// fsync after every record (default: security events are rare and must survive a crash).
    #[default]
    Always,
    /// fsync only after alarm and incident records.
    Severe,
}

impl FsyncPolicy {
    fn wants(self, s: Severity) -> bool {
        match self {
            FsyncPolicy::Never => false,
            FsyncPolicy::Always => true,
            FsyncPolicy::Severe => matches!(s, Severity::Alarm | Severity::Incident),
        }
    }
}

#[cfg(test)]
mod tests;
