//! Helpers shared by the CLI integration tests: starting our binary and the Python peers,
//! and the skip-locally / fail-in-CI rule for missing peers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Our binary.
pub fn secmms() -> Command {
    Command::new(env!("CARGO_BIN_EXE_secmms"))
}

/// True when running in CI, where a missing peer is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Skips (returns false) locally when a prerequisite is missing; panics in CI.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if in_ci() {
        panic!("{what} is required when CI=true but is missing");
    }
    eprintln!(
        "SKIPPED: {what} is missing (install it with scripts/test.sh); this test did not run"
    );
    false
}

/// The Python with the peers installed (SECMMS_PYTHON, else python3).
pub fn python() -> String {
    std::env::var("SECMMS_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// True when the Python peers import.
pub fn have_peers() -> bool {
    Command::new(python())
        .args(["-c", "import open61850, iec61850"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// True when a command runs.
pub fn have_tool(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The peer driver script.
pub fn peers_script() -> PathBuf {
    repo().join("tests/interop/peers.py")
}

/// The SCL model both Python peers load (a copy of shared/interop/demo.cid).
pub fn demo_cid() -> PathBuf {
    repo().join("tests/interop/demo.cid")
}

/// A free loopback port (bound and released; the small race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every line a child has written so far to a piped stream (kept by [`wait_line`]).
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Waits (bounded) for a line containing `needle` on a reader, returning it; every line read
/// (before and after) is kept in `seen`.
fn wait_line<R: std::io::Read + Send + 'static>(
    r: R,
    needle: &'static str,
    timeout: Duration,
    seen: Lines,
) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut found = false;
        // Keep draining after the line was found: a child writing to a closed pipe would get
        // EPIPE on its next log line.
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if !found && line.contains(needle) {
                found = true;
                let _ = tx.send(line.clone());
            }
            if let Ok(mut v) = seen.lock() {
                v.push(line);
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

/// Waits (bounded) until a line of `lines` contains `needle`; returns it.
pub fn wait_for_line(lines: &Lines, needle: &str, timeout: Duration) -> Option<String> {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(l) = lines
            .lock()
            .ok()
            .and_then(|v| v.iter().find(|l| l.contains(needle)).cloned())
        {
            return Some(l);
        }
        if std::time::Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `secmms server` on a free port with extra arguments; returns it and its address.
pub fn start_our_server(extra: &[&str]) -> (Proc, String) {
    start_our("server", extra)
}

/// Starts `secmms relay` on a free port with extra arguments; returns it and its address.
pub fn start_our_relay(extra: &[&str]) -> (Proc, String) {
    start_our("relay", extra)
}

fn start_our(what: &str, extra: &[&str]) -> (Proc, String) {
    let (p, addr, _) = start_our_logged(what, extra);
    (p, addr)
}

/// Starts `secmms <what>` (server, relay) on a free port with extra arguments; returns it, its
/// address and the lines it writes to stderr (its log).
pub fn start_our_logged(what: &str, extra: &[&str]) -> (Proc, String, Lines) {
    let mut child = secmms()
        .args([what, "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start secmms {what}: {e}"));
    let stderr = child.stderr.take().unwrap();
    let lines = Lines::default();
    let line = wait_line(
        stderr,
        "listening on",
        Duration::from_secs(20),
        lines.clone(),
    )
    .unwrap_or_else(|| panic!("secmms {what} did not start"));
    let addr = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (Proc(child), addr, lines)
}

/// Starts a Python peer server (`open61850` or `iec61850`) with the demo model on a free port.
pub fn start_peer_server(peer: &str) -> (Proc, u16) {
    let port = free_port();
    let mut child = Command::new(python())
        .arg(peers_script())
        .args(["server", peer, &port.to_string(), "120"])
        .arg(demo_cid())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start peer server");
    let stdout = child.stdout.take().unwrap();
    wait_line(stdout, "ready", Duration::from_secs(30), Lines::default())
        .unwrap_or_else(|| panic!("{peer} server did not start"));
    (Proc(child), port)
}

/// Runs a Python peer client against host:port; returns its JSON answer and success.
pub fn run_peer_client(peer: &str, host: &str, port: &str) -> (serde_json::Value, bool) {
    let out = Command::new(python())
        .arg(peers_script())
        .args(["client", peer, host, port])
        .output()
        .expect("run peer client");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(text.trim()).unwrap_or_else(
        |_| serde_json::json!({"raw": text, "stderr": String::from_utf8_lossy(&out.stderr)}),
    );
    (json, out.status.success())
}

/// Runs `secmms client --connect ADDR ARGS…` with a timeout guard.
pub fn our_client(addr: &str, args: &[&str]) -> Output {
    secmms()
        .args(["client", "--connect", addr])
        .args(args)
        .output()
        .expect("run secmms client")
}
