//! `secmms gateway`: IEC 62351-4 in front of equipment that does not have it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use secmms::gateway::{Gateway, GatewayFile};

#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// The gateway's TOML file: `[gateway]` with `[[gateway.ied]]` routes (secured in, plain
    /// out to a legacy IED) and `[[gateway.client]]` routes (plain in from a legacy client,
    /// secured out). See docs/GATEWAY.md.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Check the file and every certificate, key and CRL it names, print what each route will
    /// do, and exit (0 when usable, 1 with every problem and where it is).
    #[arg(long)]
    pub check_config: bool,
}

fn load(path: &std::path::Path) -> Result<GatewayFile> {
    GatewayFile::load(path).with_context(|| format!("{}", path.display()))
}

pub async fn run(a: GatewayArgs) -> Result<ExitCode> {
    if a.check_config {
        let file = match GatewayFile::load(&a.config) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: not usable:", a.config.display());
                for p in &e.problems {
                    eprintln!("  {p}");
                }
                return Ok(ExitCode::FAILURE);
            }
        };
        return match Gateway::check(&file) {
            Ok(routes) => {
                println!("{}: usable", a.config.display());
                for r in routes {
                    println!("  {r}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{}: not usable:", a.config.display());
                for line in e.to_string().lines() {
                    eprintln!("  {line}");
                }
                Ok(ExitCode::FAILURE)
            }
        };
    }
    let file = load(&a.config)?;
    let routes = Gateway::check(&file)?;
    let gw = Gateway::bind(&file).await.context("starting the gateway")?;
    let h = gw.spawn();
    eprintln!(
        "secmms gateway: {} routes; SIGHUP reloads {}, Ctrl-C stops",
        routes.len(),
        a.config.display()
    );
    for (r, (_, addr)) in routes.iter().zip(&h.addrs) {
        eprintln!("  {r} [listening on {addr}]");
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        loop {
            tokio::select! {
                _ = hup.recv() => match GatewayFile::load(&a.config) {
                    Ok(file) => match h.reload(file).await {
                        Ok(s) => eprintln!(
                            "SIGHUP: reloaded ({} replaced, {} added, {} removed)",
                            s.replaced.len(), s.added.len(), s.removed.len()
                        ),
                        Err(e) => eprintln!("SIGHUP: not reloaded (the running routes stay): {e}"),
                    },
                    Err(e) => eprintln!("SIGHUP: not reloaded (the running routes stay): {e}"),
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping");
    h.shutdown();
    Ok(ExitCode::SUCCESS)
}
