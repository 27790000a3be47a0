//! `secmms relay`: the upper-layer relay of IEC 62351-4 §15.5.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::flags::{load_config, with_default_port, TlsArgs};

#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Address to accept associations on (host:port). Default: the configuration's
    /// `relay.listen` (0.0.0.0:102; 0.0.0.0:3782 with --tls).
    #[arg(long)]
    pub listen: Option<String>,
    /// Next hop (host:port) for associations no --route matches.
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Route by called AP-title: `AP-TITLE[/AE-QUALIFIER]=ADDR`; repeat for several.
    #[arg(long, value_name = "ROUTE")]
    pub route: Vec<String>,
    /// TOML configuration file (`[relay]`, `[tls]`, `[osi]`, `[events]`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// With --tls: plain TCP towards the next hop (TLS only from the previous hop).
    #[arg(long)]
    pub plain_out: bool,
    /// With --tls: plain TCP from the previous hop (TLS only towards the next hop).
    #[arg(long)]
    pub plain_in: bool,
    /// Not available on the relay: E2E security runs end to end through it (§15.5), so the
    /// relay never holds E2E keys. Take the E2E key logs at the client and the server
    /// (`secmms server|client --e2e-keylog`); the relay's TLS hops have --tls-keylog. Given,
    /// the relay refuses to start and says so.
    #[arg(long, value_name = "FILE")]
    pub e2e_keylog: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
}

fn parse_route(r: &str) -> Result<secmms::relay::RouteEntry> {
    let (title, to) = r
        .split_once('=')
        .with_context(|| format!("--route {r:?}: expected AP-TITLE[/AE-QUALIFIER]=ADDR"))?;
    let (ap, ae) = match title.split_once('/') {
        Some((ap, ae)) => (
            ap,
            Some(
                ae.parse::<i64>()
                    .with_context(|| format!("--route {r:?}: AE-qualifier {ae:?}"))?,
            ),
        ),
        None => (title, None),
    };
    Ok(secmms::relay::RouteEntry {
        ap_title: ap.to_string(),
        ae_qualifier: ae,
        to: to.to_string(),
    })
}

pub async fn run(a: RelayArgs) -> Result<ExitCode> {
    if a.e2e_keylog.is_some() {
        bail!(
            "--e2e-keylog: the relay carries E2E security end to end (IEC 62351-4 §15.5) and \
             holds no E2E keys; take the E2E key logs at the client and the server (secmms \
             server|client --e2e-keylog) and the relay's TLS secrets with --tls-keylog"
        );
    }
    let mut cfg = load_config(a.config.as_ref())?;
    let port = a.tls.apply(&mut cfg)?;
    if let Some(l) = a.listen {
        cfg.relay.listen = with_default_port(&l, port);
    } else if cfg.tls.enabled && cfg.relay.listen == secmms::relay::RelayConfig::default().listen {
        cfg.relay.listen = format!("0.0.0.0:{port}");
    }
    if let Some(t) = a.to {
        cfg.relay.to = Some(with_default_port(&t, port));
    }
    for r in &a.route {
        cfg.relay.routes.push(parse_route(r)?);
    }
    if (a.plain_in || a.plain_out) && !cfg.tls.enabled {
        bail!("--plain-in and --plain-out need --tls");
    }
    if a.plain_in {
        cfg.relay.tls_in = Some(false);
    }
    if a.plain_out {
        cfg.relay.tls_out = Some(false);
    }
    cfg.validate().context("relay settings")?;
    let relay = secmms::relay::Relay::bind(cfg.relay_settings())
        .await
        .context("starting the relay")?;
    let (tin, tout) = relay.tls_hops();
    eprintln!(
        "secmms relay listening on {} ({} from the previous hop, {} to {}{}); Ctrl-C stops",
        relay.local_addr()?,
        if tin { "TLS" } else { "plain TCP" },
        if tout { "TLS" } else { "plain TCP" },
        cfg.relay.to.as_deref().unwrap_or("routes only"),
        if cfg.relay.routes.is_empty() {
            String::new()
        } else {
            format!(", {} routes", cfg.relay.routes.len())
        }
    );
    tokio::select! {
        _ = relay.run() => {}
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
    }
    Ok(ExitCode::SUCCESS)
}
