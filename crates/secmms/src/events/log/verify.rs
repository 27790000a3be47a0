//! The verifier (`secmms log verify`): re-reads a log line by line with bounded lines, checks
//! every record's hash and link, and reports each break ([`Problem`]) and the chain's head,
//! optionally against an anchor.

use super::*;

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

pub(super) enum Line {
    Eof,
    Complete,
    NoNewline,
    TooLong,
}

/// Reads one line into `buf` (without the newline), never holding more than `MAX_LINE_LEN`.
pub(super) fn read_line_bounded<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
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
