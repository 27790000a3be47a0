//! The writer ([`ChainedLogSink`]): appends records to the file under a lock, continues the
//! chain of an existing file from its last record, and fsyncs as the policy says.

use super::*;

/// The log file and where its chain stands: what one append reads and moves on, under the
/// sink's lock.
pub(super) struct ChainFile {
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
    chain: Mutex<ChainFile>,
    failures: AtomicU64,
    /// Flood aggregation (`None`: every event is a record of its own).
    agg: Option<Mutex<aggregate::Aggregator>>,
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
            chain: Mutex::new(ChainFile {
                file,
                len,
                next_seq,
                prev,
                disabled: false,
            }),
            failures: AtomicU64::new(0),
            agg: None,
        })
    }

    /// Aggregates floods: identical events (same id, same source address) within `window`
    /// of the first become one record with a count (see [`super::aggregate`]). A zero window
    /// turns aggregation off.
    pub fn with_aggregation(mut self, window: std::time::Duration) -> Self {
        self.agg = (!window.is_zero()).then(|| Mutex::new(aggregate::Aggregator::new(window)));
        self
    }

    /// Writes the aggregates whose window has closed (the server calls this periodically).
    pub fn flush_due(&self) {
        let due = match &self.agg {
            Some(a) => a
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .due(SystemTime::now()),
            None => return,
        };
        self.write_aggregates(due);
    }

    /// Closes every open window and writes its aggregate now (shutdown).
    pub fn flush(&self) {
        let all = match &self.agg {
            Some(a) => a.lock().unwrap_or_else(|e| e.into_inner()).close_all(),
            None => return,
        };
        self.write_aggregates(all);
    }

    fn write_aggregates(&self, aggs: Vec<aggregate::Aggregate>) {
        for a in aggs {
            let agg = Agg {
                count: a.count,
                first: rfc3339_utc(a.first),
                last: rfc3339_utc(a.last),
                source: a.source,
            };
            if let Err(e) = self.write(&a.event, a.last, Some(agg)) {
                self.failures.fetch_add(a.count, Ordering::Relaxed);
                tracing::error!(
                    target: "secmms::security",
                    "{} security events not logged: {e}: {}", a.count, a.event
                );
            }
        }
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ChainFile> {
        // A panic while holding the lock cannot leave a half-updated chain: state changes only
        // after a successful write.
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `event` stamped with the current time; returns the new head.
    pub fn append(&self, event: &SecurityEvent) -> Result<LogHead, LogError> {
        self.append_at(event, SystemTime::now())
    }

    /// Appends `event` stamped with `time`; returns the new head. On a write failure the file
    /// is truncated back to its previous length; if even that fails the sink disables itself.
    pub fn append_at(&self, event: &SecurityEvent, time: SystemTime) -> Result<LogHead, LogError> {
        self.write(event, time, None)
    }

    fn write(
        &self,
        event: &SecurityEvent,
        time: SystemTime,
        agg: Option<Agg>,
    ) -> Result<LogHead, LogError> {
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
            association: match &agg {
                Some(a) => Some(cut(&a.source, MAX_ASSOCIATION_LEN)),
                None => event
                    .association
                    .as_deref()
                    .map(|a| cut(a, MAX_ASSOCIATION_LEN)),
            },
            count: agg.as_ref().map(|a| a.count),
            first: agg.as_ref().map(|a| a.first.clone()),
            last: agg.map(|a| a.last),
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

/// The aggregate fields of a record.
struct Agg {
    count: u64,
    first: String,
    last: String,
    source: String,
}

impl Drop for ChainedLogSink {
    fn drop(&mut self) {
        self.flush();
    }
}

impl SecurityEventSink for ChainedLogSink {
    fn record(&self, event: &SecurityEvent) {
        if let Some(a) = &self.agg {
            let now = SystemTime::now();
            let (verdict, flushed, due) = {
                let mut a = a.lock().unwrap_or_else(|e| e.into_inner());
                let due = a.due(now);
                let (v, f) = a.offer(event, now);
                (v, f, due)
            };
            self.write_aggregates(due);
            self.write_aggregates(flushed);
            if verdict == aggregate::Verdict::Counted {
                return;
            }
        }
        if let Err(e) = self.append(event) {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(target: "secmms::security", "security event not logged: {e}: {event}");
        }
    }
}

pub(super) enum HeadError {
    Io(io::Error),
    Bad(String),
    Crypto(openssl::error::ErrorStack),
}

/// Reads and checks the last line of a non-empty log (at most [`MAX_LINE_LEN`] octets).
pub(super) fn read_head(file: &File, len: u64, key: Option<&LogKey>) -> Result<LogHead, HeadError> {
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
