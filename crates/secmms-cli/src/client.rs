//! `secmms client`: identify, browse, read and write on an MMS server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::flags::{
    apply_flags, load_config, with_default_port, PeerTitleArgs, SecArgs, TlsArgs, XmppArgs,
};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Server address (host:port; port 102 when omitted, 3782 with --tls).
    #[arg(long, default_value = "127.0.0.1")]
    pub connect: String,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub sec: SecArgs,
    #[command(flatten)]
    pub peer: PeerTitleArgs,
    #[command(flatten)]
    pub xmpp: XmppArgs,
    /// TOML configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub action: ClientAction,
}

#[derive(Subcommand, Debug)]
pub enum ClientAction {
    /// Ask the server who it is (MMS Identify).
    Identify,
    /// List logical devices (MMS domains), or the variables of one.
    Ls {
        /// Domain (logical device) to list, e.g. DEMOLD0.
        domain: Option<String>,
    },
    /// Read a value: `LD/LN.DO.DA[FC]` (IEC 61850 reference) or `LD/LN$FC$DO$DA` (MMS name).
    Read {
        /// Object reference.
        reference: String,
    },
    /// Write a value, converted to the variable's type (read from the server).
    Write {
        /// Object reference.
        reference: String,
        /// Value: a number, true/false, a string, or a JSON value for structures and arrays.
        value: String,
    },
}

pub async fn run(a: ClientArgs) -> Result<ExitCode> {
    let mut cfg = load_config(a.config.as_ref())?;
    let port = apply_flags(&a.tls, &a.sec, &mut cfg)?;
    a.peer.apply(&mut cfg)?;
    let addr = with_default_port(&a.connect, port);
    let client = if a.xmpp.apply(&mut cfg)? {
        let peer = cfg
            .client
            .xmpp_peer
            .clone()
            .context("--env xmpp needs --peer JID (the MMS server's full JID)")?;
        let sink = cfg.events.build().context("[events]")?;
        let conn =
            secmms::xmpp::XmppConnection::connect(&cfg.xmpp_settings(), std::sync::Arc::new(sink))
                .await
                .context("connecting to the XMPP server")?;
        conn.associate(&peer)
            .await
            .with_context(|| format!("associating with {peer} over XMPP"))?
    } else {
        cfg.client_builder()
            .connect(&addr)
            .await
            .with_context(|| format!("associating with {addr}"))?
    };
    let out: serde_json::Value = match &a.action {
        ClientAction::Identify => {
            let id = client.identify().await?;
            if !a.json {
                println!(
                    "vendor:   {}\nmodel:    {}\nrevision: {}",
                    id.vendor, id.model, id.revision
                );
            }
            serde_json::json!({"vendor": id.vendor, "model": id.model, "revision": id.revision})
        }
        ClientAction::Ls { domain: None } => {
            let names = client.domains().await?;
            if !a.json {
                for n in &names {
                    println!("{n}");
                }
            }
            serde_json::json!(names)
        }
        ClientAction::Ls { domain: Some(d) } => {
            let names = client.variables(d).await?;
            if !a.json {
                for n in &names {
                    println!("{d}/{n}");
                }
            }
            serde_json::json!(names)
        }
        ClientAction::Read { reference } => {
            let v = client.read(reference).await?;
            if !a.json {
                println!("{reference} = {v}");
            }
            serde_json::to_value(secmms_mms::client::Value::from(&v))?
        }
        ClientAction::Write { reference, value } => {
            client.write_str(reference, value).await?;
            if !a.json {
                println!("{reference} written");
            }
            serde_json::json!({"written": reference})
        }
    };
    if a.json {
        println!("{}", serde_json::to_string(&out)?);
    }
    client.release().await?;
    Ok(ExitCode::SUCCESS)
}
