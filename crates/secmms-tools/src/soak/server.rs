//! `secmms server` as the soak runs it: a child process in TLS + native mode, its log lines,
//! its memory and descriptors.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{EndKind, ServerEnd, SoakError, SoakOptions};
use crate::demo::DemoPki;

/// The server's resources at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Open descriptors (entries of `/proc/PID/fd`).
    pub fds: usize,
}

/// `secmms server`, killed on drop, with the lines of its log.
pub(super) struct ServerProcess {
    pub(super) child: Child,
    pub(super) addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    pub(super) fn start(opts: &SoakOptions, pki: &DemoPki) -> Result<ServerProcess, SoakError> {
        let cfg = pki.dir.join("server.toml");
        std::fs::write(
            &cfg,
            format!("[server]\nmax_associations = {}\n", opts.associations + 100),
        )
        .map_err(|e| SoakError::Setup(format!("{}: {e}", cfg.display())))?;
        let p = |p: &Path| p.display().to_string();
        let mut child = Command::new(&opts.secmms)
            // Every end of an association at DEBUG (the WARN lines are rate-limited).
            .args(["--log", "warn,secmms::server=debug", "server"])
            .args(["--listen", "127.0.0.1:0", "--config", &p(&cfg)])
            .args(["--tls", "--cert", &p(&pki.server_tls.0), "--key"])
            .arg(p(&pki.server_tls.1))
            .args(["--ca", &p(&pki.ca), "--mode", "native", "--encrypt", "gcm"])
            .args(["--app-cert", &p(&pki.server_app.0), "--app-key"])
            .arg(p(&pki.server_app.1))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SoakError::Setup(format!("{}: {e}", opts.secmms.display())))?;
        let stderr = child.stderr.take().expect("piped");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut told = false;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let line = strip_ansi(&line);
                    if !told && line.contains("listening on") {
                        told = true;
                        let _ = tx.send(line.clone());
                    }
                    lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
        }
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| SoakError::Setup("the server did not start".into()))?;
        server.addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| {
                s.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .ok_or_else(|| SoakError::Setup(format!("no address in {line:?}")))?;
        Ok(server)
    }

    pub(super) fn sample(&self) -> Sample {
        sample_pid(self.child.id())
    }

    pub(super) fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The end lines from line `from` on, by the peer port they name, in log order.
    pub(super) fn ends_since(&self, from: usize) -> HashMap<u16, Vec<ServerEnd>> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut ends: HashMap<u16, Vec<ServerEnd>> = HashMap::new();
        for line in lines.iter().skip(from) {
            let end = if line.contains("association released") {
                ServerEnd::Released
            } else if let Some(rest) = line.split("association ended: ").nth(1) {
                let cause = rest
                    .split(" peer=")
                    .next()
                    .unwrap_or(rest)
                    .trim()
                    .to_string();
                ServerEnd::Ended(EndKind::of_text(&cause), cause)
            } else {
                continue;
            };
            let Some(port) = line
                .split("peer=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<SocketAddr>().ok())
                .map(|a| a.port())
            else {
                continue;
            };
            ends.entry(port).or_default().push(end);
        }
        ends
    }

    pub(super) fn panicked(&self) -> bool {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().any(|l| l.contains("panicked"))
    }
}

/// Drops terminal colour sequences (ESC [ ... letter) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The resources of process `pid` now.
pub(super) fn sample_pid(pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Sample { rss_kib, fds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_go() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32mDEBUG\u{1b}[0m x"),
            "time DEBUG x"
        );
    }
}
