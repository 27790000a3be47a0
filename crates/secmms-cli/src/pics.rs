//! `secmms pics`: the conformance statement (IEC 62351-4 clause 17) of a configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::flags::{load_config, SecArgs, TlsArgs};

#[derive(Args, Debug)]
pub struct PicsArgs {
    /// TOML configuration file whose settings fill the "in use" column.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub sec: SecArgs,
}

pub fn run(a: PicsArgs) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_ref())?;
    // The statement describes settings, so credentials need not exist: apply the flags without
    // validating files.
    if a.tls.tls {
        cfg.tls.enabled = true;
    }
    if let Some(m) = &a.sec.mode {
        cfg.security.mode = match m.as_str() {
            "compat" => secmms::security::AppMode::Compat,
            "native" => secmms::security::AppMode::Native,
            _ => secmms::security::AppMode::Plain,
        };
    }
    if let Some(e) = &a.sec.encrypt {
        cfg.security.encrypt = match e.as_str() {
            "none" => secmms::security::Encrypt::None,
            "cbc" => secmms::security::Encrypt::Cbc,
            _ => secmms::security::Encrypt::Gcm,
        };
    }
    if a.sec.require_encryption {
        cfg.security.encryption = secmms::security::EncryptionRule::Required;
    }
    if !a.tls.crl.is_empty() {
        cfg.tls.crl = a.tls.crl.clone();
    }
    let p = secmms_tools::pics::statement(&cfg);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", p.to_markdown());
    }
    Ok(ExitCode::SUCCESS)
}
