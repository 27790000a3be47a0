//! `secmms server`: serve an IEC 61850 model over MMS (RFC 1006 / TLS, or XMPP).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::flags::{apply_flags, load_config, with_default_port, SecArgs, TlsArgs, XmppArgs};

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (host:port). Default: the configuration's `server.listen` (0.0.0.0:102;
    /// 0.0.0.0:3782 with --tls).
    #[arg(long)]
    pub listen: Option<String>,
    /// Model file: SCL (.cid/.icd/.scd) or the TOML model form. Default: the built-in demo model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub sec: SecArgs,
    #[command(flatten)]
    pub xmpp: XmppArgs,
}

pub async fn run(a: ServerArgs) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_ref())?;
    let port = apply_flags(&a.tls, &a.sec, &mut cfg)?;
    if a.xmpp.apply(&mut cfg)? {
        if let Some(m) = a.model {
            cfg.server.model = Some(m);
        }
        let ready = |jid: &str| {
            eprintln!(
                "secmms server listening on XMPP as {jid} (E2E security, clause 16); Ctrl-C stops"
            )
        };
        let settings = cfg.xmpp_settings();
        tokio::select! {
            r = secmms::xmpp::serve_config(&settings, ready) => r.context("XMPP server stopped")?,
            _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(l) = a.listen {
        cfg.server.listen = with_default_port(&l, port);
    } else if cfg.tls.enabled && cfg.server.listen == secmms::server::ServerConfig::default().listen
    {
        cfg.server.listen = format!("0.0.0.0:{port}");
    }
    if let Some(m) = a.model {
        cfg.server.model = Some(m);
    }
    // The daemon owns its machine: association threads and busy polling unless configured
    // otherwise (an embedded `Server::bind` has neither).
    let server = cfg
        .server_builder()
        .tuning(secmms::server::Tuning::Daemon)
        .bind()
        .await
        .context("starting the server")?;
    eprintln!(
        "secmms server listening on {}{} (application security: {}; model: {}, {} variables); Ctrl-C stops",
        server.local_addr()?,
        if server.tls().is_some() {
            " over TLS"
        } else {
            ""
        },
        server.security_mode().name(),
        server.model_description(),
        server.variable_count()
    );
    let tls = server.tls().cloned();
    let crl = server.crl_reloader();
    tokio::select! {
        r = server.run() => r.context("server stopped")?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        _ = reload_on_sighup(crl, tls) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `SIGHUP`: re-reads the CRLs now (as the periodic evaluation would): TLS ones, then the
/// application-certificate ones, whose change makes every live association re-check its peer
/// (a revoked peer is aborted). The TLS context is rebuilt (empty session cache, fresh ticket
/// keys), so no session of a revoked peer resumes. Never returns.
async fn reload_on_sighup(
    crl: secmms::server::CrlReloader,
    tls: Option<std::sync::Arc<secmms::tls::TlsContext>>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return std::future::pending().await;
        };
        let word = |b: bool| if b { "changed" } else { "unchanged" };
        while hup.recv().await.is_some() {
            let r = crl.reload();
            if let Some(t) = &tls {
                let changed = r.tls_changed || t.reload_crls();
                if !changed {
                    t.rebuild();
                }
                eprintln!(
                    "SIGHUP: TLS CRLs re-read ({}), TLS context rebuilt",
                    word(changed)
                );
            }
            eprintln!(
                "SIGHUP: application-certificate CRLs re-read ({}{})",
                word(r.app_changed),
                if r.app_changed {
                    "; every association re-checks its peer"
                } else {
                    ""
                }
            );
        }
    }
    std::future::pending().await
}
