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

/// One line of the log, as written and as parsed back by the verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRecord {
    /// Sequence number, 0 for the first record.
    pub seq: u64,
    /// RFC 3339 UTC time the sink wrote the record.
    pub time: String,
    /// Event id `DOMAIN:group.number` (§14.5).
    pub id: String,
    /// Catalogue mnemonic.
    pub mnemonic: String,
    /// Severity name ([`Severity::as_str`]).
    pub severity: String,
    /// Event message.
    pub message: String,
    /// Association concerned, if any.
    pub association: Option<String>,
    /// Chain algorithm: [`ALG_SHA256`] or [`ALG_HMAC_SHA256`].
    pub alg: String,
    /// Hash of the previous record (hex), [`GENESIS`] for the first.
    pub prev: String,
    /// Hash of this record (hex) over [`LogRecord::canonical`].
    pub hash: String,
}

fn put_field(out: &mut Vec<u8>, v: &[u8]) {
    // Every field is bounded by MAX_LINE_LEN, far below u32::MAX.
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(v);
}

impl LogRecord {
    /// The canonical encoding that is hashed: [`CANONICAL_PREFIX`], `seq` as 8 octets
    /// big-endian, then `time`, `id`, `mnemonic`, `severity`, `message` each as a 4-octet
    /// big-endian length and the UTF-8 octets, then `association` as one octet 0 (absent) or
    /// 1 followed by length and octets, then `alg` and `prev` as length and octets.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.message.len());
        out.extend_from_slice(CANONICAL_PREFIX);
        out.extend_from_slice(&self.seq.to_be_bytes());
        for f in [
            &self.time,
            &self.id,
            &self.mnemonic,
            &self.severity,
            &self.message,
        ] {
            put_field(&mut out, f.as_bytes());
        }
        match &self.association {
            None => out.push(0),
            Some(a) => {
                out.push(1);
                put_field(&mut out, a.as_bytes());
            }
        }
        put_field(&mut out, self.alg.as_bytes());
        put_field(&mut out, self.prev.as_bytes());
        out
    }

    /// The hash of this record (hex): SHA-256 of [`LogRecord::canonical`] without a key,
    /// HMAC-SHA-256 with one. Ignores `alg`; the caller checks it matches the key.
    pub fn compute_hash(&self, key: Option<&LogKey>) -> Result<String, LogError> {
        let data = self.canonical();
        let digest = match key {
            None => openssl::sha::sha256(&data).to_vec(),
            Some(k) => {
                let pkey = PKey::hmac(&k.0)?;
                let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
                s.update(&data)?;
                s.sign_to_vec()?
            }
        };
        Ok(to_hex(&digest))
    }
}

fn to_hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

fn alg_for(key: Option<&LogKey>) -> &'static str {
    if key.is_some() {
        ALG_HMAC_SHA256
    } else {
        ALG_SHA256
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The end of the chain: the last record's sequence number and hash. Its text form (and the
/// form [`LogHead::from_str`](std::str::FromStr) parses, used as `secmms log verify --anchor`)
/// is `SEQ:HASH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogHead {
    /// `seq` of the last record.
    pub seq: u64,
    /// `hash` of the last record (hex).
    pub hash: String,
}

impl std::fmt::Display for LogHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl std::str::FromStr for LogHead {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not SEQ:HASH"))?;
        let seq = seq
            .parse()
            .map_err(|_| format!("`{seq}` is not a sequence number"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{hash}` is not 64 hex digits"));
        }
        Ok(LogHead {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

struct Inner {
    file: File,
    len: u64,
    next_seq: u64,
    prev: String,
    disabled: bool,
}

/// A [`SecurityEventSink`] appending to a hash-chained JSON-lines file (see the module docs).
pub struct ChainedLogSink {
    path: PathBuf,
    key: Option<LogKey>,
    fsync: FsyncPolicy,
    inner: Mutex<Inner>,
    failures: AtomicU64,
}

impl std::fmt::Debug for ChainedLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedLogSink")
            .field("path", &self.path)
            .field("keyed", &self.key.is_some())
            .field("fsync", &self.fsync)
            .finish()
    }
}

impl ChainedLogSink {
    /// Opens (creating it with mode 0600 if absent) the log at `path`. An existing log must end
    /// with a complete, valid record made with the same key setting; its chain is continued.
    pub fn open(
        path: &Path,
        key: Option<LogKey>,
        fsync: FsyncPolicy,
    ) -> Result<ChainedLogSink, LogError> {
        let io = |source| LogError::Io {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let (next_seq, prev) = if len == 0 {
            (0, GENESIS.to_owned())
        } else {
            let head = read_head(&file, len, key.as_ref()).map_err(|e| match e {
                HeadError::Io(source) => io(source),
                HeadError::Bad(reason) => LogError::BadHead {
                    path: path.to_owned(),
                    reason,
                },
                HeadError::Crypto(c) => LogError::Crypto(c),
            })?;
            (head.seq + 1, head.hash)
        };
        Ok(ChainedLogSink {
            path: path.to_owned(),
            key,
            fsync,
            inner: Mutex::new(Inner {
                file,
                len,
                next_seq,
                prev,
                disabled: false,
            }),
            failures: AtomicU64::new(0),
        })
    }

    /// The file this sink writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current head, `None` while the log is empty.
    pub fn head(&self) -> Option<LogHead> {
        let g = self.lock();
        (g.next_seq > 0).then(|| LogHead {
            seq: g.next_seq - 1,
            hash: g.prev.clone(),
        })
    }

    /// How many events [`SecurityEventSink::record`] failed to write.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-updated chain: state changes only
        // after a successful write.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `event` stamped with the current time; returns the new head.
    pub fn append(&self, event: &SecurityEvent) -> Result<LogHead, LogError> {
        self.append_at(event, SystemTime::now())
    }

    /// Appends `event` stamped with `time`; returns the new head. On a write failure the file
    /// is truncated back to its previous length; if even that fails the sink disables itself.
    pub fn append_at(&self, event: &SecurityEvent, time: SystemTime) -> Result<LogHead, LogError> {
        let mut g = self.lock();
        if g.disabled {
            return Err(LogError::Disabled {
                path: self.path.clone(),
            });
        }
        let mut rec = LogRecord {
            seq: g.next_seq,
            time: rfc3339_utc(time),
            id: event.id.to_string(),
            mnemonic: cut(event.mnemonic, MAX_ASSOCIATION_LEN),
            severity: event.severity.as_str().to_owned(),
            message: cut(&event.message, MAX_MESSAGE_LEN),
            association: event
                .association
                .as_deref()
                .map(|a| cut(a, MAX_ASSOCIATION_LEN)),
            alg: alg_for(self.key.as_ref()).to_owned(),
            prev: g.prev.clone(),
            hash: String::new(),
        };
        rec.hash = rec.compute_hash(self.key.as_ref())?;
        let mut line = serde_json::to_vec(&rec).map_err(|e| LogError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let before = g.len;
        let res = g.file.write_all(&line).and_then(|()| {
            if self.fsync.wants(event.severity) {
                g.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = res {
            if g.file.set_len(before).is_err() {
                g.disabled = true;
            }
            return Err(LogError::Io {
                path: self.path.clone(),
                source,
            });
        }
        g.len = before + line.len() as u64;
        g.next_seq += 1;
        g.prev = rec.hash.clone();
        Ok(LogHead {
            seq: rec.seq,
            hash: rec.hash,
        })
    }
}

impl SecurityEventSink for ChainedLogSink {
    fn record(&self, event: &SecurityEvent) {
        if let Err(e) = self.append(event) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "secmms::security", "security event not logged: {e}: {event}");
        }
    }
}

enum HeadError {
    Io(io::Error),
    Bad(String),
    Crypto(openssl::error::ErrorStack),
}

/// Reads and checks the last line of a non-empty log (at most [`MAX_LINE_LEN`] octets).
fn read_head(file: &File, len: u64, key: Option<&LogKey>) -> Result<LogHead, HeadError> {
    let start = len.saturating_sub(MAX_LINE_LEN as u64 + 1);
    let mut buf = vec![0u8; (len - start) as usize];
    file.read_exact_at(&mut buf, start).map_err(HeadError::Io)?;
    if buf.last() != Some(&b'\n') {
        return Err(HeadError::Bad("the last line is incomplete".into()));
    }
    let body = &buf[..buf.len() - 1];
    let line = match body.iter().rposition(|&b| b == b'\n') {
        Some(i) => &body[i + 1..],
        None if start == 0 => body,
        None => return Err(HeadError::Bad("the last line is too long".into())),
    };
    let rec: LogRecord = serde_json::from_slice(line)
        .map_err(|e| HeadError::Bad(format!("the last line does not parse: {e}")))?;
    if rec.alg != alg_for(key) {
        return Err(HeadError::Bad(format!(
            "the log uses `{}` but the sink is configured for `{}`",
            rec.alg,
            alg_for(key)
        )));
    }
    let h = rec.compute_hash(key).map_err(|e| match e {
        LogError::Crypto(c) => HeadError::Crypto(c),
        other => HeadError::Bad(other.to_string()),
    })?;
    if h != rec.hash {
        return Err(HeadError::Bad(format!(
            "the hash of the last record (seq {}) does not match{}",
            rec.seq,
            if key.is_some() { " (wrong key?)" } else { "" }
        )));
    }
    Ok(LogHead {
        seq: rec.seq,
        hash: rec.hash,
    })
}

// ---------------------------------------------------------------------------------------------
// Verification

/// Why a record breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// The line is not a record (not JSON, missing or unknown fields, bad values).
    Unparsable {
        /// Parser detail.
        detail: String,
    },
    /// The line is longer than [`MAX_LINE_LEN`].
    LineTooLong,
    /// The last line has no newline: a torn write or a truncated file.
    Incomplete,
    /// The record's hash does not match its content: the record was edited.
    Edited,
    /// `seq` jumps forward: records before this one were deleted.
    Deleted {
        /// The `seq` that should come here.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
    /// `seq` is out of order: records were reordered.
    Reordered {
        /// The `seq` that should come here.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
    /// The record repeats the previous one.
    Duplicated {
        /// The repeated `seq`.
        seq: u64,
    },
    /// `prev` is not the hash of the previous record (or not [`GENESIS`] for the first): the
    /// chain was spliced or a record was edited and re-hashed.
    PrevMismatch,
    /// The log is keyed (HMAC) but no key was given.
    KeyRequired,
    /// A key was given but the record is not HMAC-keyed (a downgrade or rewrite), or `alg` is
    /// unknown.
    WrongAlg {
        /// The `alg` found.
        found: String,
    },
    /// The record with the anchor's `seq` has another hash: the log was rewritten since the
    /// anchor was taken.
    AnchorMismatch {
        /// The anchor's `seq`.
        seq: u64,
    },
    /// The log ends before the anchor's `seq`: records were removed from the tail.
    Truncated {
        /// The anchor's `seq`.
        anchor_seq: u64,
        /// Records found.
        records: u64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Unparsable { detail } => write!(f, "unparsable line: {detail}"),
            Problem::LineTooLong => write!(f, "line longer than {MAX_LINE_LEN} octets"),
            Problem::Incomplete => write!(f, "incomplete last line (truncated or torn write)"),
            Problem::Edited => write!(f, "edited: the hash does not match the record"),
            Problem::Deleted { expected, found } => {
                write!(f, "deleted: expected seq {expected}, found {found}")
            }
            Problem::Reordered { expected, found } => {
                write!(f, "reordered: expected seq {expected}, found {found}")
            }
            Problem::Duplicated { seq } => write!(f, "duplicated: record seq {seq} repeated"),
            Problem::PrevMismatch => {
                write!(f, "prev mismatch: the record does not chain to the one before it")
            }
            Problem::KeyRequired => write!(f, "the log is HMAC-keyed: a key is required"),
            Problem::AnchorMismatch { seq } => write!(
                f,
                "anchor mismatch: record seq {seq} differs from the anchor (log rewritten)"
            ),
            Problem::Truncated {
                anchor_seq,
                records,
            } => write!(
                f,
                "truncated: the log ends after {records} records but the anchor names seq {anchor_seq}"
            ),
            Problem::WrongAlg { found } => write!(
                f,
                "alg `{found}` where `{ALG_HMAC_SHA256}` is required with a key (rewritten without the key?)"
            ),
        }
    }
}

/// The first record that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}{}: {problem}", .seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct BadRecord {
    /// 1-based line number in the file.
    pub line: u64,
    /// The record's `seq`, when it parsed.
    pub seq: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
    /// Records verified intact before this one.
    pub verified: u64,
}

/// Errors of [`verify_log`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// OpenSSL failed.
    #[error("hash computation failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// The chain is broken.
    #[error("chain broken at {0}")]
    Broken(#[from] BadRecord),
}

/// The result of verifying an intact log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// The last record, if any (compare with an external copy to detect tail truncation).
    pub head: Option<LogHead>,
    /// Whether the chain is HMAC-keyed (and the key checked).
    pub keyed: bool,
}

enum Line {
    Eof,
    Complete,
    NoNewline,
    TooLong,
}

/// Reads one line into `buf` (without the newline), never holding more than `MAX_LINE_LEN`.
fn read_line_bounded<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                Line::Eof
            } else {
                Line::NoNewline
            });
        }
        let (chunk, found) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if buf.len() + chunk.len() >= MAX_LINE_LEN {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(chunk);
        let used = found.unwrap_or(chunk.len());
        r.consume(used);
        if found.is_some() {
            return Ok(Line::Complete);
        }
    }
}

/// Verifies the log at `path` with memory bounded by [`MAX_LINE_LEN`]; with `key`, the chain
/// must be HMAC-keyed under it. Returns the first bad record as [`VerifyError::Broken`].
pub fn verify_log(path: &Path, key: Option<&LogKey>) -> Result<VerifyReport, VerifyError> {
    verify_log_anchored(path, key, None)
}

/// [`verify_log`] plus an anchor: a head (`seq`, `hash`) recorded earlier somewhere the attacker
/// cannot write. The log must still contain that record unchanged, which detects truncation of
/// the tail back past the anchor and any rewrite up to it (even of an unkeyed log).
pub fn verify_log_anchored(
    path: &Path,
    key: Option<&LogKey>,
    anchor: Option<&LogHead>,
) -> Result<VerifyReport, VerifyError> {
    let io = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    verify_reader(BufReader::new(f), key, anchor).map_err(|e| match e {
        VerifyError::Io { source, .. } => io(source),
        other => other,
    })
}

/// [`verify_log_anchored`] over any buffered reader.
pub fn verify_reader<R: BufRead>(
    mut r: R,
    key: Option<&LogKey>,
    anchor: Option<&LogHead>,
) -> Result<VerifyReport, VerifyError> {
    let ioe = |source| VerifyError::Io {
        path: PathBuf::from("<reader>"),
        source,
    };
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    let mut expected = 0u64;
    let mut prev = GENESIS.to_owned();
    let mut keyed = key.is_some();
    // A line read ahead to tell a deletion from a reordering.
    let mut pending: Option<(Line, Vec<u8>)> = None;
    loop {
        let kind = match pending.take() {
            Some((k, b)) => {
                buf = b;
                k
            }
            None => read_line_bounded(&mut r, &mut buf).map_err(ioe)?,
        };
        line_no += 1;
        let bad = |seq, problem| {
            VerifyError::Broken(BadRecord {
                line: line_no,
                seq,
                problem,
                verified: expected,
            })
        };
        match kind {
            Line::Eof => break,
            Line::TooLong => return Err(bad(None, Problem::LineTooLong)),
            Line::NoNewline => {
                // Report a parse failure first if there is one: it says more.
                if let Err(e) = serde_json::from_slice::<LogRecord>(&buf) {
                    return Err(bad(
                        None,
                        Problem::Unparsable {
                            detail: e.to_string(),
                        },
                    ));
                }
                return Err(bad(None, Problem::Incomplete));
            }
            Line::Complete => {}
        }
        let rec: LogRecord = match serde_json::from_slice(&buf) {
            Ok(r) => r,
            Err(e) => {
                return Err(bad(
                    None,
                    Problem::Unparsable {
                        detail: e.to_string(),
                    },
                ))
            }
        };
        let seq = Some(rec.seq);
        match (rec.alg.as_str(), key) {
            (ALG_HMAC_SHA256, None) => return Err(bad(seq, Problem::KeyRequired)),
            (ALG_HMAC_SHA256, Some(_)) | (ALG_SHA256, None) => {}
            (other, _) => {
                return Err(bad(
                    seq,
                    Problem::WrongAlg {
                        found: other.to_owned(),
                    },
                ))
            }
        }
        if Severity::from_name(&rec.severity).is_none() {
            return Err(bad(
                seq,
                Problem::Unparsable {
                    detail: format!("unknown severity `{}`", rec.severity),
                },
            ));
        }
        let h = rec.compute_hash(key).map_err(|e| match e {
            LogError::Crypto(c) => VerifyError::Crypto(c),
            other => ioe(io::Error::other(other.to_string())),
        })?;
        if h != rec.hash {
            return Err(bad(seq, Problem::Edited));
        }
        if rec.seq > expected {
            // Deleted, unless a missing record turns up right after (reordered).
            let mut next = Vec::with_capacity(1024);
            let k = read_line_bounded(&mut r, &mut next).map_err(ioe)?;
            let later = matches!(k, Line::Complete | Line::NoNewline)
                .then(|| serde_json::from_slice::<LogRecord>(&next).ok())
                .flatten()
                .map(|n| n.seq < rec.seq)
                .unwrap_or(false);
            let problem = if later {
                Problem::Reordered {
                    expected,
                    found: rec.seq,
                }
            } else {
                Problem::Deleted {
                    expected,
                    found: rec.seq,
                }
            };
            return Err(bad(seq, problem));
        }
        if rec.seq < expected {
            let problem = if rec.seq + 1 == expected && rec.hash == prev {
                Problem::Duplicated { seq: rec.seq }
            } else {
                Problem::Reordered {
                    expected,
                    found: rec.seq,
                }
            };
            return Err(bad(seq, problem));
        }
        if rec.prev != prev {
            return Err(bad(seq, Problem::PrevMismatch));
        }
        if let Some(a) = anchor.filter(|a| a.seq == rec.seq) {
            if a.hash != rec.hash {
                return Err(bad(seq, Problem::AnchorMismatch { seq: a.seq }));
            }
        }
        keyed = rec.alg == ALG_HMAC_SHA256;
        prev = rec.hash;
        expected += 1;
    }
    if let Some(a) = anchor.filter(|a| a.seq >= expected) {
        return Err(VerifyError::Broken(BadRecord {
            line: line_no,
            seq: None,
            problem: Problem::Truncated {
                anchor_seq: a.seq,
                records: expected,
            },
            verified: expected,
        }));
    }
    Ok(VerifyReport {
        records: expected,
        head: (expected > 0).then(|| LogHead {
            seq: expected - 1,
            hash: prev,
        }),
        keyed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmms_pki::event::EventId;
    use std::sync::Arc;

    fn ev(i: u32) -> SecurityEvent {
        SecurityEvent {
            id: EventId::e2e(1, 3),
            mnemonic: "INVALID_SIGNATURE",
            severity: if i % 2 == 0 {
                Severity::Alarm
            } else {
                Severity::Incident
            },
            message: format!("event {i} \"quoted\" \n newline"),
            association: (i % 3 == 0).then(|| format!("assoc-{i}")),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("secmms-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&d);
        d
    }

    fn key() -> LogKey {
        LogKey::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn chain_links_records() {
        let p = tmp("chain");
        let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
        assert_eq!(s.head(), None);
        for i in 0..5 {
            s.record(&ev(i));
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let recs: Vec<LogRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].prev, GENESIS);
        for w in recs.windows(2) {
            assert_eq!(w[1].prev, w[0].hash);
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
        for r in &recs {
            assert_eq!(r.compute_hash(None).unwrap(), r.hash);
            assert_eq!(r.alg, ALG_SHA256);
        }
        assert_eq!(recs[1].severity, "incident");
        assert_eq!(recs[0].association.as_deref(), Some("assoc-0"));
        let rep = verify_log(&p, None).unwrap();
        assert_eq!(rep.records, 5);
        assert_eq!(rep.head, s.head());
        assert!(!rep.keyed);
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn canonical_is_injective_on_field_boundaries() {
        let mut a = LogRecord {
            seq: 1,
            time: "t".into(),
            id: "ab".into(),
            mnemonic: "c".into(),
            severity: "alarm".into(),
            message: String::new(),
            association: None,
            alg: ALG_SHA256.into(),
            prev: GENESIS.into(),
            hash: String::new(),
        };
        let mut b = a.clone();
        b.id = "a".into();
        b.mnemonic = "bc".into();
        assert_ne!(a.canonical(), b.canonical());
        b = a.clone();
        b.association = Some(String::new());
        assert_ne!(a.canonical(), b.canonical());
        a.hash = "x".into();
        assert_eq!(a.canonical(), {
            let mut c = a.clone();
            c.hash = "y".into();
            c.canonical()
        });
    }

    #[test]
    fn reopen_continues_the_chain() {
        let p = tmp("reopen");
        {
            let s = ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Always).unwrap();
            for i in 0..3 {
                s.append(&ev(i)).unwrap();
            }
        }
        let s = ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Severe).unwrap();
        assert_eq!(s.head().unwrap().seq, 2);
        let h = s.append(&ev(3)).unwrap();
        assert_eq!(h.seq, 3);
        let rep = verify_log(&p, Some(&key())).unwrap();
        assert_eq!(rep.records, 4);
        assert!(rep.keyed);
        // Wrong key, or no key, or a keyed sink on an unkeyed log: refuse to continue.
        let other = LogKey::new(&[7u8; 32]).unwrap();
        assert!(matches!(
            ChainedLogSink::open(&p, Some(other.clone()), FsyncPolicy::Never),
            Err(LogError::BadHead { .. })
        ));
        assert!(matches!(
            ChainedLogSink::open(&p, None, FsyncPolicy::Never),
            Err(LogError::BadHead { .. })
        ));
        assert!(matches!(
            verify_log(&p, Some(&other)),
            Err(VerifyError::Broken(BadRecord {
                line: 1,
                problem: Problem::Edited,
                ..
            }))
        ));
        assert!(matches!(
            verify_log(&p, None),
            Err(VerifyError::Broken(BadRecord {
                problem: Problem::KeyRequired,
                ..
            }))
        ));
        // A torn last line blocks reopening.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":4,").unwrap();
        assert!(matches!(
            ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Never),
            Err(LogError::BadHead { .. })
        ));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn concurrent_writers_keep_one_chain() {
        let p = tmp("concurrent");
        let s = Arc::new(ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Never).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        s.record(&ev(t * 100 + i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.failures(), 0);
        let rep = verify_log(&p, Some(&key())).unwrap();
        assert_eq!(rep.records, 400);
        assert_eq!(rep.head, s.head());
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn long_fields_are_cut_and_lines_bounded() {
        let p = tmp("long");
        let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
        let mut e = ev(1);
        e.message = "é".repeat(10_000);
        e.association = Some("\u{1}".repeat(1000));
        s.append(&e).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.len() < MAX_LINE_LEN, "{}", text.len());
        let r: LogRecord = serde_json::from_str(text.trim_end()).unwrap();
        assert!(r.message.len() <= MAX_MESSAGE_LEN && r.message.ends_with('…'));
        verify_log(&p, None).unwrap();
        // A line over the limit is reported, not buffered.
        std::fs::write(&p, vec![b'x'; MAX_LINE_LEN * 2]).unwrap();
        assert!(matches!(
            verify_log(&p, None),
            Err(VerifyError::Broken(BadRecord {
                problem: Problem::LineTooLong,
                ..
            }))
        ));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn key_lengths() {
        assert!(LogKey::new(&[1; MIN_KEY_LEN - 1]).is_none());
        assert!(LogKey::new(&[1; MAX_KEY_LEN + 1]).is_none());
        assert!(format!("{:?}", key()).contains("32 octets"));
        let p = tmp("key");
        std::fs::write(&p, [9u8; 32]).unwrap();
        LogKey::from_file(&p).unwrap();
        std::fs::write(&p, [9u8; 4]).unwrap();
        assert!(matches!(
            LogKey::from_file(&p),
            Err(LogError::KeyLength { len: 4, .. })
        ));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn anchor_detects_tail_truncation_and_rewrite() {
        let p = tmp("anchor");
        let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
        for i in 0..6 {
            s.record(&ev(i));
        }
        let anchor: LogHead = s.head().unwrap().to_string().parse().unwrap();
        assert_eq!(anchor.seq, 5);
        s.record(&ev(6));
        verify_log_anchored(&p, None, Some(&anchor)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Tail truncation back past the anchor: the chain itself is fine, the anchor is not.
        std::fs::write(&p, format!("{}\n", lines[..4].join("\n"))).unwrap();
        verify_log(&p, None).unwrap();
        assert!(matches!(
            verify_log_anchored(&p, None, Some(&anchor)),
            Err(VerifyError::Broken(BadRecord {
                problem: Problem::Truncated {
                    anchor_seq: 5,
                    records: 4
                },
                ..
            }))
        ));
        // Unkeyed full rewrite: caught at the anchored record.
        let other = LogHead {
            seq: 5,
            hash: "ab".repeat(32),
        };
        std::fs::write(&p, &text).unwrap();
        assert!(matches!(
            verify_log_anchored(&p, None, Some(&other)),
            Err(VerifyError::Broken(BadRecord {
                line: 6,
                problem: Problem::AnchorMismatch { seq: 5 },
                ..
            }))
        ));
        assert!("5".parse::<LogHead>().is_err());
        assert!("x:00".parse::<LogHead>().is_err());
        let _ = std::fs::remove_file(&p);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any events (arbitrary Unicode, control characters, quotes) round-trip through the
        /// file and verify; then changing any single octet of the file is detected.
        #[test]
        fn any_single_octet_change_is_detected(
            msgs in proptest::collection::vec(("\\PC{0,40}", proptest::option::of("[ -~\u{0}-\u{1f}]{0,12}")), 1..6),
            keyed in proptest::bool::ANY,
            pos in proptest::prelude::any::<proptest::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let p = tmp(&format!("prop-{}", std::thread::current().name().unwrap_or("t").replace(':', "_")));
            let k = keyed.then(key);
            let s = ChainedLogSink::open(&p, k.clone(), FsyncPolicy::Never).unwrap();
            for (i, (m, a)) in msgs.iter().enumerate() {
                let mut e = ev(i as u32);
                e.message = m.clone();
                e.association = a.clone();
                s.append(&e).unwrap();
            }
            let text = std::fs::read(&p).unwrap();
            let rep = verify_log(&p, k.as_ref()).unwrap();
            proptest::prop_assert_eq!(rep.records, msgs.len() as u64);
            let lines: Vec<LogRecord> = text
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            for (r, (m, a)) in lines.iter().zip(&msgs) {
                proptest::prop_assert_eq!(&r.message, m);
                proptest::prop_assert_eq!(&r.association, a);
            }
            let mut bad = text.clone();
            let i = pos.index(bad.len());
            bad[i] ^= xor;
            std::fs::write(&p, &bad).unwrap();
            let r = verify_log(&p, k.as_ref());
            let _ = std::fs::remove_file(&p);
            proptest::prop_assert!(
                matches!(r, Err(VerifyError::Broken(_))),
                "octet {} ^ {:#x} not detected: {:?}", i, xor, r
            );
        }
    }

    #[test]
    fn empty_log_verifies() {
        let rep = verify_reader(&b""[..], None, None).unwrap();
        assert_eq!(rep.records, 0);
        assert_eq!(rep.head, None);
    }
}
