//! `secmms log verify FILE [--key FILE] [--json]`: checks the hash chain of a security-event
//! log written by `secmms::events::ChainedLogSink` (IEC 62351-4 §4.6).
//!
//! Exit status: 0 when the chain is intact, 1 when a record is bad (the first one is named),
//! 2 when the file or key cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use secmms::events::log::{verify_log_anchored, LogHead, LogKey, VerifyError};

/// `secmms log ...`
#[derive(Args, Debug)]
pub struct LogArgs {
    #[command(subcommand)]
    pub cmd: LogCommand,
}

/// Subcommands of `secmms log`.
#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Verify the hash chain of a tamper-evident security-event log (exit 0 only if intact).
    Verify(VerifyArgs),
}

/// Arguments of `secmms log verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The log file (JSON lines).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// HMAC key file of a keyed log (raw octets, as given to `[events] log_key`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// A head `SEQ:HASH` recorded earlier (printed by a previous verify): the log must still
    /// contain that record unchanged, which detects truncation of the tail back past it.
    #[arg(long, value_name = "SEQ:HASH")]
    pub anchor: Option<LogHead>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

const TAIL_NOTE: &str = "records removed from the end cannot be seen in the file: keep the head \
     (SEQ:HASH) elsewhere, or take the latest loghead from syslog, and pass it with --anchor";

/// Runs `secmms log ...`.
pub fn run(a: LogArgs) -> Result<ExitCode> {
    match a.cmd {
        LogCommand::Verify(v) => verify(v),
    }
}

fn verify(a: VerifyArgs) -> Result<ExitCode> {
    let file = a.file.display().to_string();
    let key = match &a.key {
        Some(k) => match LogKey::from_file(k) {
            Ok(k) => Some(k),
            Err(e) => return Ok(fail_io(&a, &file, &e.to_string())),
        },
        None => None,
    };
    match verify_log_anchored(&a.file, key.as_ref(), a.anchor.as_ref()) {
        Ok(rep) => {
            if a.json {
                let v = serde_json::json!({
                    "file": file, "intact": true, "records": rep.records,
                    "head": rep.head, "keyed": rep.keyed, "note": TAIL_NOTE,
                });
                println!("{v}");
            } else {
                let head = match &rep.head {
                    Some(h) => format!(", head {h}"),
                    None => String::new(),
                };
                let how = if rep.keyed {
                    "HMAC-SHA-256, key checked"
                } else {
                    "SHA-256, no key: a full rewrite would not be detected"
                };
                println!("{file}: intact, {} records{head} ({how})", rep.records);
                println!("note: {TAIL_NOTE}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyError::Broken(bad)) => {
            if a.json {
                let v = serde_json::json!({ "file": file, "intact": false, "bad": bad });
                println!("{v}");
            } else {
                println!("{file}: TAMPERED OR DAMAGED at {bad}");
                println!("{} records before it are intact", bad.verified);
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Ok(fail_io(&a, &file, &e.to_string())),
    }
}

fn fail_io(a: &VerifyArgs, file: &str, msg: &str) -> ExitCode {
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "file": file, "intact": false, "error": msg })
        );
    } else {
        eprintln!("error: {msg}");
    }
    ExitCode::from(2)
}
