//! What the soak found: how each association ended on each side, the verdict on it, and the
//! summary table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use secmms::client::ClientError;
use secmms::driver::LinkError;
use secmms_testkit::faultproxy::{ConnRecord, FaultKind};

use super::Sample;

/// How an association ended, as one side saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndKind {
    /// The peer closed the connection (EOF), or the stream ended mid-record.
    Closed,
    /// The connection was reset.
    Reset,
    /// A check failed: TLS (bad record MAC, alert, malformed handshake), OSI protocol error, E2E
    /// check, a refusal.
    Integrity,
    /// A timer ran out.
    Timeout,
    /// Anything else (never expected).
    Other,
}

impl EndKind {
    /// Every kind, in table order.
    pub const ALL: [EndKind; 5] = [
        EndKind::Closed,
        EndKind::Reset,
        EndKind::Integrity,
        EndKind::Timeout,
        EndKind::Other,
    ];

    /// Sorts an error's text into a kind (the runtime hands the end of an association over as
    /// text: [`secmms::client::LoopEnd::ended`], the server's log line).
    pub fn of_text(text: &str) -> EndKind {
        let t = text.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
        if has(&["timed out", "no response within", "timeout"]) {
            EndKind::Timeout
        } else if has(&["reset"]) {
            EndKind::Reset
        } else if has(&[
            "eof",
            "closed",
            "broken pipe",
            "not connected",
            "connection aborted",
        ]) {
            EndKind::Closed
        } else if has(&[
            "tls",
            "ssl",
            "protocol error",
            "decrypt",
            "diagnostic",
            "abort",
            "security",
            "rejected",
            "invalid",
            "refused",
        ]) {
            EndKind::Integrity
        } else {
            EndKind::Other
        }
    }

    /// A client error's kind, from its variant where that says it, else from its text.
    pub fn of_client_error(e: &ClientError) -> EndKind {
        match e {
            ClientError::Timeout(_) | ClientError::Link(LinkError::Timeout(_)) => EndKind::Timeout,
            ClientError::Closed | ClientError::Link(LinkError::Closed) => EndKind::Closed,
            ClientError::Link(LinkError::Io(io)) => match io.kind() {
                std::io::ErrorKind::ConnectionReset => EndKind::Reset,
                std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected => EndKind::Closed,
                _ => EndKind::of_text(&io.to_string()),
            },
            ClientError::Link(LinkError::Osi(_) | LinkError::Security(_))
            | ClientError::Rejected(_)
            | ClientError::Initiate(_) => EndKind::Integrity,
            other => EndKind::of_text(&other.to_string()),
        }
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            EndKind::Closed => "closed",
            EndKind::Reset => "reset",
            EndKind::Integrity => "integrity",
            EndKind::Timeout => "timeout",
            EndKind::Other => "other",
        }
    }
}

/// What the client saw of one association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutcome {
    /// Set up, every read answered, released.
    Completed,
    /// The TLS handshake or the association set-up failed.
    SetupFailed(EndKind, String),
    /// The association ended, or a read failed, before the reads were done.
    Ended(EndKind, String),
}

impl ClientOutcome {
    /// The kind of end, `None` when completed.
    pub fn kind(&self) -> Option<EndKind> {
        match self {
            ClientOutcome::Completed => None,
            ClientOutcome::SetupFailed(k, _) | ClientOutcome::Ended(k, _) => Some(*k),
        }
    }
}

/// What the server logged at the end of one association.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEnd {
    /// `association released`.
    Released,
    /// `association ended: <cause>`.
    Ended(EndKind, String),
}

/// Where in an association's life its fault fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// It did not fire (the fault was clean, or the connection ended first).
    NotFired,
    /// Before the association was established (TLS or E2E handshake, AARQ/AARE).
    Setup,
    /// While the client was reading.
    Transfer,
    /// After the client's last read was answered (the release).
    Release,
}

/// One association of the faulted round, and what became of it.
#[derive(Debug, Clone)]
pub struct AssocResult {
    /// Its number in the round.
    pub index: usize,
    /// The proxy's record of its connection.
    pub record: Option<ConnRecord>,
    /// What the client saw.
    pub outcome: ClientOutcome,
    /// Reads sent, answered with success, and failed or never answered.
    pub reads: [u64; 3],
    /// The number (from 1) of its first read that failed.
    pub first_failed_read: Option<u64>,
    /// Where the fault fired.
    pub phase: Phase,
    /// The server's end line for it.
    pub server: Option<ServerEnd>,
    /// `Err` with what is wrong, when the association did not end as its fault says.
    pub verdict: Result<(), String>,
}

/// What a soak found.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The faulted round, one entry per association.
    pub associations: Vec<AssocResult>,
    /// The server before any association.
    pub cold: Sample,
    /// The server after the clean round (the baseline).
    pub baseline: Sample,
    /// The highest values seen during the faulted round.
    pub peak: Sample,
    /// The server after the faulted round.
    pub after: Sample,
    /// Associations of the clean round that did not complete (each a violation).
    pub warmup_failures: usize,
    /// Every violation, one line each (empty: the soak passed).
    pub violations: Vec<String>,
    /// Wall time of the faulted round, from the first connect to the last association's end.
    pub round_time: Duration,
    /// The memory margin the check allowed ([`super::SoakOptions::rss_margin_kib`]).
    pub rss_margin_kib: u64,
}

impl SoakReport {
    /// True when nothing was violated.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Associations of the faulted round whose fault fired, by kind.
    pub fn fired(&self, kind: FaultKind) -> usize {
        self.associations
            .iter()
            .filter(|a| {
                a.phase != Phase::NotFired
                    && a.record.as_ref().map(|r| r.fault.kind()) == Some(kind)
            })
            .count()
    }

    /// The summary table, the memory figures, the end texts seen, and the violations.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<9} {:>7} {:>6} {:>6} {:>8} {:>8} | client: {:>9} {:>6} {:>6} {:>9} {:>7} {:>5} | server: {:>8} {:>6} {:>6} {:>9} {:>7} {:>5} {:>7} | {:>4}",
            "fault", "planned", "fired", "setup", "transfer", "release", "completed", "closed",
            "reset", "integrity", "timeout", "other", "released", "closed", "reset", "integrity",
            "timeout", "other", "missing", "bad"
        );
        let mut totals = [0usize; 20];
        for kind in FaultKind::ALL {
            let of_kind: Vec<&AssocResult> = self
                .associations
                .iter()
                .filter(|a| {
                    a.record
                        .as_ref()
                        .map(|r| r.fault.kind())
                        .unwrap_or(FaultKind::Clean)
                        == kind
                })
                .collect();
            let phase = |p: Phase| of_kind.iter().filter(|a| a.phase == p).count();
            let client =
                |k: Option<EndKind>| of_kind.iter().filter(|a| a.outcome.kind() == k).count();
            let server = |k: Option<Option<EndKind>>| {
                of_kind
                    .iter()
                    .filter(|a| {
                        let s = match &a.server {
                            None => None,
                            Some(ServerEnd::Released) => Some(None),
                            Some(ServerEnd::Ended(k, _)) => Some(Some(*k)),
                        };
                        s == k
                    })
                    .count()
            };
            let row = [
                of_kind.len(),
                of_kind.len() - phase(Phase::NotFired),
                phase(Phase::Setup),
                phase(Phase::Transfer),
                phase(Phase::Release),
                client(None),
                client(Some(EndKind::Closed)),
                client(Some(EndKind::Reset)),
                client(Some(EndKind::Integrity)),
                client(Some(EndKind::Timeout)),
                client(Some(EndKind::Other)),
                server(Some(None)),
                server(Some(Some(EndKind::Closed))),
                server(Some(Some(EndKind::Reset))),
                server(Some(Some(EndKind::Integrity))),
                server(Some(Some(EndKind::Timeout))),
                server(Some(Some(EndKind::Other))),
                server(None),
                of_kind.iter().filter(|a| a.verdict.is_err()).count(),
                0,
            ];
            for (t, v) in totals.iter_mut().zip(row) {
                *t += v;
            }
            out.push_str(&row_line(kind.name(), &row));
        }
        out.push_str(&row_line("all", &totals));
        let reads: [u64; 3] = self.associations.iter().fold([0; 3], |mut t, a| {
            for (t, r) in t.iter_mut().zip(a.reads) {
                *t += r;
            }
            t
        });
        let _ = writeln!(
            out,
            "reads: {} sent, {} answered, {} failed or unanswered; round {:.1} s",
            reads[0],
            reads[1],
            reads[2],
            self.round_time.as_secs_f64()
        );
        // Unbroken associations with a failed read: was the server slow to answer through the
        // proxy, or the client slow to react to an answer the proxy had forwarded?
        let slow: Vec<&AssocResult> = self
            .associations
            .iter()
            .filter(|a| {
                a.record
                    .as_ref()
                    .is_some_and(|r| !r.applied_kind().breaks_the_stream())
                    && a.reads[2] > 0
            })
            .collect();
        if !slow.is_empty() {
            let nine = Duration::from_secs(9);
            let target_slow = slow
                .iter()
                .filter(|a| {
                    a.record
                        .as_ref()
                        .is_some_and(|r| r.longest_target_wait >= nine)
                })
                .count();
            let client_slow = slow
                .iter()
                .filter(|a| {
                    a.record
                        .as_ref()
                        .is_some_and(|r| r.longest_client_wait >= nine)
                })
                .count();
            let mut first: Vec<u64> = slow.iter().filter_map(|a| a.first_failed_read).collect();
            first.sort_unstable();
            let _ = writeln!(
                out,
                concat!(
                    "unbroken associations with a failed read: {}; the server's slowest answer ",
                    "through the proxy >= 9 s for {}, the client's slowest reaction >= 9 s for {}; ",
                    "first failed read number: min {:?}, median {:?}, max {:?}"
                ),
                slow.len(),
                target_slow,
                client_slow,
                first.first(),
                first.get(first.len() / 2),
                first.last()
            );
        }
        let mut octets: Vec<u64> = self
            .associations
            .iter()
            .filter(|a| a.phase == Phase::NotFired && a.outcome == ClientOutcome::Completed)
            .filter_map(|a| a.record.as_ref().map(|r| r.octets[0] + r.octets[1]))
            .collect();
        octets.sort_unstable();
        if let (Some(lo), Some(hi)) = (octets.first(), octets.last()) {
            let _ = writeln!(
                out,
                "octets through the proxy per completed association: {lo} to {hi}, median {}",
                octets[octets.len() / 2]
            );
        }
        let _ = writeln!(
            out,
            "server RSS KiB: cold {}, baseline {}, peak {}, after {} ({:+} vs baseline, margin {}); \
             descriptors: cold {}, baseline {}, peak {}, after {}",
            self.cold.rss_kib,
            self.baseline.rss_kib,
            self.peak.rss_kib,
            self.after.rss_kib,
            self.after.rss_kib as i64 - self.baseline.rss_kib as i64,
            self.rss_margin_kib,
            self.cold.fds,
            self.baseline.fds,
            self.peak.fds,
            self.after.fds
        );
        // The texts behind the kinds, digits folded, most frequent first.
        let mut texts: BTreeMap<(FaultKind, &str, String), usize> = BTreeMap::new();
        for a in &self.associations {
            let kind = a
                .record
                .as_ref()
                .map(|r| r.fault.kind())
                .unwrap_or(FaultKind::Clean);
            if let ClientOutcome::SetupFailed(_, t) | ClientOutcome::Ended(_, t) = &a.outcome {
                *texts.entry((kind, "client", fold(t))).or_default() += 1;
            }
            if let Some(ServerEnd::Ended(_, t)) = &a.server {
                *texts.entry((kind, "server", fold(t))).or_default() += 1;
            }
        }
        out.push_str("end texts (fault, side, count, text):\n");
        for ((kind, side, text), n) in &texts {
            let _ = writeln!(out, "  {:<8} {:<6} {:>5}  {}", kind.name(), side, n, text);
        }
        if self.violations.is_empty() {
            out.push_str("no violations\n");
        } else {
            let _ = writeln!(out, "{} violations:", self.violations.len());
            for v in &self.violations {
                let _ = writeln!(out, "  {v}");
            }
        }
        out
    }
}

fn row_line(name: &str, r: &[usize; 20]) -> String {
    format!(
        "{:<9} {:>7} {:>6} {:>6} {:>8} {:>8} |         {:>9} {:>6} {:>6} {:>9} {:>7} {:>5} |         {:>8} {:>6} {:>6} {:>9} {:>7} {:>5} {:>7} | {:>4}\n",
        name, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
        r[13], r[14], r[15], r[16], r[17], r[18]
    )
}

/// An end text with its numbers (ports, counts, durations) folded to `N`, cut at 110
/// characters, for counting alike texts together.
fn fold(text: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out.chars().take(110).collect()
}

/// The end kinds a fault may give, on either side, when it fired before the client's reads
/// were done. A reorder may be noticed only when more data arrives (the receiver waits for the
/// rest of what looks like a longer record), so a timeout is a right end for it; a cut
/// connection is seen at once, so a timeout is not a right end for the others.
fn right_ends(kind: FaultKind) -> &'static [EndKind] {
    match kind {
        FaultKind::Reorder => &[
            EndKind::Integrity,
            EndKind::Closed,
            EndKind::Reset,
            EndKind::Timeout,
        ],
        _ => &[EndKind::Closed, EndKind::Reset, EndKind::Integrity],
    }
}

/// Judges one association of the faulted round.
pub(super) fn judge(a: &AssocResult) -> Result<(), String> {
    let Some(rec) = &a.record else {
        return Err("the proxy has no record of its connection".into());
    };
    let kind = rec.applied_kind();
    let server = a
        .server
        .as_ref()
        .ok_or_else(|| "the server logged no end for it".to_string())?;
    if !kind.breaks_the_stream() {
        if a.outcome != ClientOutcome::Completed || a.reads[2] > 0 {
            return Err(format!(
                "not broken by the proxy ({}), yet {:?} with {} of {} reads failed",
                rec.fault.kind().name(),
                a.outcome,
                a.reads[2],
                a.reads[0]
            ));
        }
        if *server != ServerEnd::Released {
            return Err(format!("completed, but the server logged {server:?}"));
        }
        return Ok(());
    }
    if a.phase == Phase::Release {
        return match (a.outcome.kind(), server) {
            (Some(EndKind::Other), _) | (_, ServerEnd::Ended(EndKind::Other, _)) => Err(format!(
                "{} during the release: {:?}, server {server:?}",
                kind.name(),
                a.outcome
            )),
            _ => Ok(()),
        };
    }
    let right = right_ends(kind);
    match a.outcome.kind() {
        None => {
            return Err(format!(
                "{} in {:?} went unnoticed: every read completed",
                kind.name(),
                a.phase
            ))
        }
        Some(k) if !right.contains(&k) => {
            return Err(format!(
                "{} in {:?}: the client saw {:?}",
                kind.name(),
                a.phase,
                a.outcome
            ))
        }
        _ => {}
    }
    match server {
        ServerEnd::Ended(k, _) if right.contains(k) => Ok(()),
        other => Err(format!(
            "{} in {:?}: the server logged {other:?}",
            kind.name(),
            a.phase
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_texts_sort_into_kinds() {
        assert_eq!(
            EndKind::of_text("connection closed by the peer"),
            EndKind::Closed
        );
        assert_eq!(
            EndKind::of_text("transport error: Connection reset by peer (os error 104)"),
            EndKind::Reset
        );
        assert_eq!(EndKind::of_text("timed out after 10s"), EndKind::Timeout);
        assert_eq!(
            EndKind::of_text(
                "refused: TLS: error:0A000119:SSL routines::decryption failed or bad record mac"
            ),
            EndKind::Integrity
        );
        assert_eq!(EndKind::of_text("something else"), EndKind::Other);
    }

    #[test]
    fn numbers_fold() {
        assert_eq!(
            fold("timed out after 10s on 127.0.0.1:4242"),
            "timed out after Ns on N.N.N.N:N"
        );
    }
}
