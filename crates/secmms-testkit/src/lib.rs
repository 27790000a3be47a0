//! Helpers for the integration tests that check our wire encodings with Wireshark.
//!
//! Several crates of the workspace record the octets their stacks exchange, turn them into a
//! capture file with `text2pcap` and let `tshark` dissect it. This crate holds the parts those
//! tests have in common, so each test file only says what it sends and what it expects:
//!
//! * **Tool detection.** [`have`] and [`runs`] probe for an external program; [`ready_or_skip`]
//!   (and [`tshark_ready`] for the usual pair) turns a missing tool into a skip on a developer
//!   machine but into a failure when the environment says `CI=true` ([`in_ci`]).
//! * **TPKT reassembly.** [`tpkts`] cuts a log of socket reads and writes into whole RFC 1006
//!   TPKTs, one per packet, either leniently or with strict framing checks ([`TpktCheck`]).
//! * **Captures.** [`hexdump`] renders packets in the input format of `text2pcap`, and
//!   [`Capture`] writes them to a pcap of a single TCP connection in a scratch directory.
//! * **Dissection.** [`Tshark`] runs `tshark` on a capture with a fixed set of options and
//!   returns what it printed; [`Tshark::problems`] lists the frames a display filter flags.
//! * **Recording** (feature `tokio`). `Recording` wraps a tokio stream and logs each
//!   direction's octets (optionally damaging one write) for the tests that drive a live
//!   association.
//! * **Faults** (feature `tokio`). `faultproxy::FaultProxy` stands between a client and a
//!   server and, per connection, delays, reorders, truncates, resets or kills the traffic at a
//!   random point, recording what it did (the soak under faults, docs/RELIABILITY.md).
//!
//! Packets everywhere are `(from_client, octets)` pairs: `true` for what the client (the TCP
//! initiator) sends, `false` for what it receives.
//!
//! This crate depends on nothing from the workspace, so every crate can use it as a
//! dev-dependency without a cycle.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(feature = "tokio")]
pub mod faultproxy;
#[cfg(feature = "tokio")]
mod recording;
#[cfg(feature = "tokio")]
pub use recording::{Recording, WireLog};

/// One packet of a recorded exchange: whether the client sent it, and its octets.
pub type Packet = (bool, Vec<u8>);

// ------------------------------------------------------------------ external tools

/// True when `tool -v` can be started at all, whatever it then reports.
pub fn have(tool: &str) -> bool {
    Command::new(tool).arg("-v").output().is_ok()
}

/// True when `tool -v` can be started and exits successfully (a stricter probe than [`have`]).
pub fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True when the environment variable `CI` is exactly `true`: there a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Decides whether a test that needs external tools goes on.
///
/// With `ok` it returns true. Otherwise it panics with `ci_failure` when [`in_ci`] holds, and
/// else prints `skip_note` to stderr and returns false, so the caller can return early. The panic
/// is reported at the caller's location.
#[track_caller]
pub fn ready_or_skip(ok: bool, ci_failure: &str, skip_note: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "{ci_failure}");
    eprintln!("{skip_note}");
    false
}

/// [`ready_or_skip`] for the usual pair: both `tshark` and `text2pcap` can be started ([`have`]).
#[track_caller]
pub fn tshark_ready(ci_failure: &str, skip_note: &str) -> bool {
    ready_or_skip(have("tshark") && have("text2pcap"), ci_failure, skip_note)
}

/// [`ready_or_skip`] for `xmllint` (Debian package libxml2-utils), which the XML schema tests run.
#[track_caller]
pub fn xmllint_ready() -> bool {
    ready_or_skip(
        Command::new("xmllint").arg("--version").output().is_ok(),
        "xmllint is required when CI=true (apt-get install -y libxml2-utils)",
        "SKIPPED: xmllint not found (apt-get install -y libxml2-utils)",
    )
}

/// Writes each `(name, document)` into `dir` as `name.xml` and validates them all in one
/// `xmllint --noout --schema SCHEMA` run; returns the names xmllint did not report as valid,
/// with its report.
pub fn xmllint_invalid(
    schema: &Path,
    docs: &[(String, String)],
    dir: &Path,
) -> (Vec<String>, String) {
    let files: Vec<PathBuf> = docs
        .iter()
        .map(|(name, doc)| {
            let p = dir.join(format!("{name}.xml"));
            std::fs::write(&p, doc).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            p
        })
        .collect();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .args(&files)
        .output()
        .expect("xmllint runs");
    let report = String::from_utf8_lossy(&out.stderr).to_string();
    let bad = files
        .iter()
        .filter(|p| !report.contains(&format!("{} validates", p.display())))
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    (bad, report)
}

// ------------------------------------------------------------------ TPKT reassembly

/// How [`tpkts`] treats octets that do not frame as TPKTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TpktCheck {
    /// Stop cutting a direction at a length field below 4 or at an incomplete TPKT, and ignore
    /// whatever is left over at the end.
    Lenient,
    /// Panic when a TPKT does not start with version 3, declares fewer than 7 octets (header
    /// plus the smallest COTP TPDU), or is still incomplete once the log is exhausted.
    Strict,
}

/// Reassembles logged chunks into whole TPKTs (RFC 1006), one packet each.
///
/// The two directions are buffered separately; a TPKT is emitted, with its direction, as soon as
/// its last octet has been seen, so the result keeps the order in which packets completed.
pub fn tpkts(log: &[Packet], check: TpktCheck) -> Vec<Packet> {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut out = Vec::new();
    for (from_client, chunk) in log {
        let buf = &mut pending[usize::from(*from_client)];
        buf.extend_from_slice(chunk);
        while buf.len() >= 4 {
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            match check {
                TpktCheck::Lenient if len < 4 => break,
                TpktCheck::Lenient => {}
                TpktCheck::Strict => {
                    assert_eq!(buf[0], 3, "not a TPKT: {buf:02x?}");
                    assert!(len >= 7, "TPKT too short: {buf:02x?}");
                }
            }
            if buf.len() < len {
                break;
            }
            out.push((*from_client, buf.drain(..len).collect()));
        }
    }
    if check == TpktCheck::Strict {
        for (dir, rest) in pending.iter().enumerate() {
            assert!(
                rest.is_empty(),
                "incomplete TPKT (direction {dir}): {rest:02x?}"
            );
        }
    }
    out
}

// ------------------------------------------------------------------ captures

/// Renders packets as `text2pcap` input for its `-D` (direction) mode.
///
/// Each packet is a line `I` (client to server) or `O` (server to client), then rows of at most
/// 16 octets, each prefixed with its offset in six hex digits, then an empty line.
pub fn hexdump(packets: &[Packet]) -> String {
    let mut text = String::new();
    for (from_client, octets) in packets {
        text.push_str(if *from_client { "I\n" } else { "O\n" });
        for (row, chunk) in octets.chunks(16).enumerate() {
            let _ = write!(text, "{:06x}", row * 16);
            for b in chunk {
                let _ = write!(text, " {b:02x}");
            }
            text.push('\n');
        }
        text.push('\n');
    }
    text
}

/// A pcap file written from packets, with the directory that holds it.
///
/// Every packet becomes one TCP segment of a single connection from 10.0.0.1:50000 (the client)
/// to 10.0.0.2 on the chosen server port. The directory is left in place until [`Capture::remove`]
/// is called, so a failing test leaves its capture behind for inspection.
#[derive(Debug)]
pub struct Capture {
    dir: PathBuf,
    pcap: PathBuf,
}

impl Capture {
    /// Writes the capture into a directory named `<tag>-<process id>` under the system temporary
    /// directory, creating it.
    pub fn write(tag: &str, packets: &[Packet], server_port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
        Self::write_in(dir, packets, server_port)
    }

    /// Writes the capture into `dir` (created if missing) as `flow.txt` (the hex dump) and
    /// `flow.pcap`. Panics when `text2pcap` fails, with what it printed on stderr.
    pub fn write_in(dir: impl Into<PathBuf>, packets: &[Packet], server_port: u16) -> Self {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).unwrap();
        let txt = dir.join("flow.txt");
        let pcap = dir.join("flow.pcap");
        std::fs::write(&txt, hexdump(packets)).unwrap();
        let ports = format!("50000,{server_port}");
        let st = Command::new("text2pcap")
            .args(["-q", "-D", "-4", "10.0.0.1,10.0.0.2", "-T", &ports])
            .arg(&txt)
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "text2pcap failed: {}",
            String::from_utf8_lossy(&st.stderr)
        );
        Self { dir, pcap }
    }

    /// The directory holding the capture.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pcap file.
    pub fn pcap(&self) -> &Path {
        &self.pcap
    }

    /// A [`Tshark`] reading this capture, with no extra options yet.
    pub fn tshark(&self) -> Tshark {
        Tshark::new(&self.pcap)
    }

    /// Deletes the directory and everything in it, ignoring errors.
    pub fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------ tshark

/// The arguments after the display filter of [`Tshark::problems`]: one line per flagged frame.
const PROBLEM_FIELDS: [&str; 6] = [
    "-T",
    "fields",
    "-e",
    "frame.number",
    "-e",
    "_ws.expert.message",
];

/// `tshark` reading one capture file, with options repeated on every run.
#[derive(Debug, Clone)]
pub struct Tshark {
    pcap: PathBuf,
    options: Vec<String>,
    require_success: bool,
}

impl Tshark {
    /// Reads `pcap` (`tshark -r`); by default the exit status is not looked at.
    pub fn new(pcap: impl Into<PathBuf>) -> Self {
        Self {
            pcap: pcap.into(),
            options: Vec::new(),
            require_success: false,
        }
    }

    /// Adds arguments given to every run, after `-r <pcap>` and before the run's own, such as
    /// `-o` preferences or `-d` decode-as rules.
    pub fn options<I, S>(mut self, options: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.extend(options.into_iter().map(Into::into));
        self
    }

    /// Makes every run panic, with tshark's stderr, unless tshark exits successfully.
    pub fn require_success(mut self) -> Self {
        self.require_success = true;
        self
    }

    /// Runs tshark with `args` and returns its standard output (invalid UTF-8 replaced).
    pub fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&self.pcap)
            .args(&self.options)
            .args(args)
            .output()
            .unwrap();
        if self.require_success {
            assert!(
                o.status.success(),
                "tshark {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Decrypts TLS on TCP port `port` with the NSS key log `keylog` (`tls.keylog_file`) and
    /// hands the plaintext to TPKT (RFC 1006 over TLS, IEC 62351-4 clause 6, port 3782).
    pub fn tls_keylog(self, keylog: &Path, port: u16) -> Self {
        self.options([
            "-o".to_string(),
            format!("tls.keylog_file:{}", keylog.display()),
            "-d".into(),
            format!("tcp.port=={port},tls"),
            "-d".into(),
            format!("tls.port=={port},tpkt"),
        ])
    }

    /// The MMS invokeIDs tshark decodes (`mms.invokeID`), in frame order.
    pub fn mms_invoke_ids(&self) -> Vec<u64> {
        self.run(&["-Y", "mms", "-T", "fields", "-e", "mms.invokeID"])
            .lines()
            .flat_map(|l| l.split(','))
            .filter(|x| !x.trim().is_empty())
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("tshark invokeID {x:?}: {e}"))
            })
            .collect()
    }

    /// The frames matching the display filter `filter`, one line each: the frame number, a tab,
    /// and the frame's expert messages. Empty when nothing matches.
    pub fn problems(&self, filter: &str) -> String {
        let mut args = vec!["-Y", filter];
        args.extend(PROBLEM_FIELDS);
        self.run(&args)
    }
}
