//! `secmms bench`: the load generator (N associations x M outstanding reads).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::flags::{
    apply_flags, load_config, with_default_port, PeerTitleArgs, SecArgs, TlsArgs, XmppArgs,
};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Server address (host:port; port 102 when omitted, 3782 with --tls). Over XMPP the
    /// server is `--peer` instead.
    #[arg(long)]
    pub connect: Option<String>,
    /// Concurrent associations.
    #[arg(long, default_value_t = 1)]
    pub associations: usize,
    /// Outstanding requests per association.
    #[arg(long, default_value_t = 1)]
    pub outstanding: usize,
    /// Run time in seconds (after all associations are up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Variable to read (IEC 61850 reference or MMS name).
    #[arg(long, default_value = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]")]
    pub reference: String,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub sec: SecArgs,
    #[command(flatten)]
    pub peer: PeerTitleArgs,
    #[command(flatten)]
    pub xmpp: XmppArgs,
}

pub async fn run(a: BenchArgs) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_ref())?;
    let port = apply_flags(&a.tls, &a.sec, &mut cfg)?;
    a.peer.apply(&mut cfg)?;
    a.xmpp.apply(&mut cfg)?;
    if a.associations == 0 || a.outstanding == 0 {
        bail!("--associations and --outstanding must be at least 1");
    }
    if !(a.duration > 0.0 && a.duration <= 86_400.0) {
        bail!("--duration must be between 0 and 86400 seconds");
    }
    let params = secmms_tools::bench::BenchParams {
        addr: match (&a.connect, cfg.xmpp.is_some()) {
            (Some(c), _) => with_default_port(c, port),
            (None, true) => String::new(),
            (None, false) => bail!("--connect ADDR is required (or --env xmpp with --peer)"),
        },
        associations: a.associations,
        outstanding: a.outstanding,
        duration: Duration::from_secs_f64(a.duration),
        reference: a.reference.clone(),
        config: cfg,
    };
    let quiet = a.json;
    let report = secmms_tools::bench::run(params, move |p| {
        if !quiet {
            eprintln!(
                "  {:>5.1}s  {:>9} requests  {:>9.0} req/s",
                p.elapsed.as_secs_f64(),
                p.requests,
                p.rate
            );
        }
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if report.effective_outstanding < report.outstanding {
            eprintln!(
                "note: the server negotiated at most {} outstanding requests per association",
                report.effective_outstanding
            );
        }
        for f in &report.failed_associations {
            eprintln!("{f}");
        }
        println!(
            "{} associations x {} outstanding, {:.1} s: {} requests, {} errors, {:.0} req/s, p50 {} us, p99 {} us",
            report.associations,
            report.outstanding,
            report.seconds,
            report.requests,
            report.errors,
            report.requests_per_sec,
            report.p50_us,
            report.p99_us
        );
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
