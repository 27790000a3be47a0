//! `secmms demo`: a server and a client in one process on loopback (or through an XMPP server).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use secmms::config::Config;

use crate::flags::{SecArgs, TlsArgs};

/// One line naming what a demo runs.
fn describe_opts(o: &secmms_tools::demo::DemoOptions) -> String {
    let mut s = format!(
        "{}, mode {}",
        if o.tls { "TLS" } else { "no TLS" },
        o.mode.name()
    );
    if o.mode == secmms::security::AppMode::Native {
        s.push_str(&format!(", encryption {}", o.encrypt.name()));
    }
    s
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Print the demo report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Run over plain RFC 1006 instead of TLS (the demo uses TLS with its own PKI by default).
    #[arg(long)]
    pub no_tls: bool,
    /// Operational environment: `osi` (default) or `xmpp` (MMS with E2E security through an XMPP
    /// server: a private Prosody started on loopback, which needs the `prosody` package, or the
    /// reachable server named by --xmpp-server).
    #[arg(long, value_name = "ENV", value_parser = ["osi", "xmpp"])]
    pub env: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub sec: SecArgs,
    #[command(flatten)]
    pub xmpp: DemoXmppArgs,
}

/// `demo --env xmpp` through an existing XMPP server instead of a private Prosody.
#[derive(Args, Debug)]
pub struct DemoXmppArgs {
    /// XMPP demo: use this reachable server's client port (host:port) with two existing
    /// accounts, instead of starting a private Prosody.
    #[arg(long, value_name = "ADDR")]
    pub xmpp_server: Option<String>,
    /// XMPP demo: trust anchor for that server's TLS certificate (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    pub xmpp_ca: Vec<PathBuf>,
    /// XMPP demo: the account the MMS server logs in with (`user@domain`).
    #[arg(long, value_name = "JID")]
    pub server_jid: Option<String>,
    /// XMPP demo: file holding the password of --server-jid.
    #[arg(long, value_name = "FILE")]
    pub server_password_file: Option<PathBuf>,
    /// XMPP demo: the account the MMS client logs in with (`user@domain`).
    #[arg(long, value_name = "JID")]
    pub client_jid: Option<String>,
    /// XMPP demo: file holding the password of --client-jid.
    #[arg(long, value_name = "FILE")]
    pub client_password_file: Option<PathBuf>,
}

impl DemoXmppArgs {
    pub fn any(&self) -> bool {
        self.xmpp_server.is_some()
            || !self.xmpp_ca.is_empty()
            || self.server_jid.is_some()
            || self.server_password_file.is_some()
            || self.client_jid.is_some()
            || self.client_password_file.is_some()
    }

    /// The server the XMPP demo runs through.
    pub fn server(&self) -> Result<secmms_tools::demo::DemoXmppServer> {
        let Some(addr) = &self.xmpp_server else {
            if self.any() {
                bail!("--xmpp-ca, --server-jid, --client-jid and their password files go with --xmpp-server");
            }
            return Ok(secmms_tools::demo::DemoXmppServer::Private);
        };
        let account = |jid: &Option<String>, pw: &Option<PathBuf>, who: &str| {
            let (Some(jid), Some(pw)) = (jid, pw) else {
                bail!("--xmpp-server needs --{who}-jid and --{who}-password-file");
            };
            let x = secmms_xmpp::XmppConfig {
                server: addr.clone(),
                jid: jid.clone(),
                password_file: Some(pw.clone()),
                ca: self.xmpp_ca.clone(),
                ..Default::default()
            };
            x.validate().with_context(|| format!("--{who}-jid {jid}"))?;
            Ok(x)
        };
        let server = account(&self.server_jid, &self.server_password_file, "server")?;
        let client = account(&self.client_jid, &self.client_password_file, "client")?;
        if server.jid == client.jid {
            bail!("the MMS server and client need two different accounts");
        }
        Ok(secmms_tools::demo::DemoXmppServer::External {
            server: Box::new(server),
            client: Box::new(client),
        })
    }
}

pub async fn run(a: DemoArgs) -> Result<ExitCode> {
    use secmms::security::{AppMode, Encrypt};
    if a.sec.app_cert.is_some() || a.sec.app_key.is_some() {
        bail!("the demo makes its own application certificates; --app-cert/--app-key are for server and client");
    }
    if a.no_tls && a.tls.tls {
        bail!("--tls and --no-tls contradict each other");
    }
    let mut opts = secmms_tools::demo::DemoOptions::default();
    if let Some(m) = &a.sec.mode {
        opts.mode = match m.as_str() {
            "plain" => AppMode::Plain,
            "compat" => AppMode::Compat,
            _ => AppMode::Native,
        };
    }
    if let Some(e) = &a.sec.encrypt {
        if opts.mode != AppMode::Native {
            bail!("--encrypt applies to --mode native only");
        }
        opts.encrypt = match e.as_str() {
            "none" => Encrypt::None,
            "cbc" => Encrypt::Cbc,
            _ => Encrypt::Gcm,
        };
    }
    opts.tls = !a.no_tls;
    if a.env.as_deref() == Some("xmpp") {
        if opts.mode != AppMode::Native || a.no_tls || a.tls.tls {
            bail!("the XMPP demo runs native mode over the XMPP server's TLS: drop --mode, --no-tls and --tls");
        }
        let server = a.xmpp.server()?;
        if !a.json {
            let through = match &server {
                secmms_tools::demo::DemoXmppServer::Private => {
                    "a private Prosody on loopback".to_string()
                }
                secmms_tools::demo::DemoXmppServer::External { server, .. } => {
                    format!("the XMPP server at {}", server.server)
                }
            };
            println!(
                "secmms demo: MMS over XMPP through {through} (native mode, encryption {})",
                opts.encrypt.name()
            );
        }
        let report = secmms_tools::demo::run_demo_xmpp_on(server, opts.encrypt, |step| {
            print_step(a.json, step)
        })
        .await;
        return finish_demo(a.json, report);
    }
    if a.xmpp.any() {
        bail!("--xmpp-server, --xmpp-ca, --server-jid and --client-jid are for --env xmpp");
    }
    if a.tls.cert.is_some() || a.tls.key.is_some() || !a.tls.ca.is_empty() {
        if !a.tls.tls {
            bail!("--cert, --key, --ca and --crl need --tls");
        }
        let mut cfg = Config::default();
        a.tls.apply_with(&mut cfg, false)?;
        opts.tls_config = Some(cfg.tls);
    }
    if !a.json {
        println!(
            "secmms demo: server and client on loopback ({})",
            describe_opts(&opts)
        );
    }
    let report = secmms_tools::demo::run_demo_opts(opts, |step| print_step(a.json, step)).await;
    finish_demo(a.json, report)
}

fn print_step(json: bool, step: &secmms_tools::demo::DemoStep) {
    if !json {
        let mark = if step.ok { "ok  " } else { "FAIL" };
        println!("[{mark}] {:<28} {}", step.name, step.detail);
    }
}

fn finish_demo(json: bool, report: secmms_tools::demo::DemoReport) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.ok {
        println!("demo: all {} steps succeeded", report.steps.len());
    } else {
        println!(
            "demo: FAILED ({} of {} steps failed)",
            report.steps.iter().filter(|s| !s.ok).count(),
            report.steps.len()
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
