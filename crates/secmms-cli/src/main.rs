//! `secmms` — IEC 62351-4 secure MMS: server, client, load generator and demo.
//!
//! This binary only parses arguments and presents results; all protocol work is in the `secmms`
//! runtime crate and the sans-IO crates below it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use secmms::config::Config;

mod cert_cmd;
mod decode;
mod log_cmd;

/// Secure MMS (IEC 62351-4) for IEC 61850 and ICCP: server, client, load generator and demo.
#[derive(Parser, Debug)]
#[command(name = "secmms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `secmms=debug`. Also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    /// Runtime worker threads: 0 = one per core, 1 = everything on one thread (no cross-thread
    /// wake-ups; lowest latency per request on small machines). The server's associations run
    /// on their own threads (`[server] worker_threads`); for `server` this sizes the rest.
    #[arg(long, global = true, default_value_t = 0, env = "SECMMS_THREADS")]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a server and a client in one process on loopback and print what happened (exit 0 only if
    /// every step succeeded).
    Demo(DemoArgs),
    /// Serve an IEC 61850 model over MMS.
    ///
    /// As a daemon the server tunes itself for the machine it owns: one association thread per
    /// CPU and a short busy-poll window after each answer while CPUs are spare (`[server]
    /// worker_threads`, `busy_poll_us`; docs/PERFORMANCE.md). A program that embeds
    /// `secmms::server::Server` gets neither unless its configuration asks: its associations
    /// run on the program's own runtime.
    Server(ServerArgs),
    /// Talk to an MMS server: identify, browse, read, write.
    Client(ClientArgs),
    /// Load generator: N associations x M outstanding reads against any MMS server.
    Bench(BenchArgs),
    /// Print the conformance statement (IEC 62351-4 clause 17, Tables 6-13) for a configuration:
    /// what the standard asks, what this build supports, what the configuration uses.
    Pics(PicsArgs),
    /// Upper-layer relay (IEC 62351-4 §15.5): forward associations to the next hop without any
    /// E2E key, re-terminating TLS per hop.
    Relay(RelayArgs),
    /// Security-event log tools: `secmms log verify FILE [--key FILE]` checks the hash chain.
    Log(log_cmd::LogArgs),
    /// Annex G certificate tooling: `ca`, `issue`, `crl`, `check FILE [--json]`.
    Cert(cert_cmd::CertArgs),
    /// Decode MMS in a pcap/pcapng capture (any port): TPKT to MMS, A-profile authentication
    /// value verified, E2E SecPDUs (exit 0 only if everything decoded and verified).
    Decode(decode::DecodeArgs),
}

/// TLS flags (IEC 62351-4 clause 6), shared by every command. They override the configuration's
/// `[tls]` section; with `--tls` the default port is 3782.
#[derive(Args, Debug, Default, Clone)]
struct TlsArgs {
    /// Run RFC 1006 over TLS (port 3782 by default) with mutual authentication.
    #[arg(long)]
    tls: bool,
    /// Our TLS certificate (PEM, optionally followed by intermediates).
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// Trust anchor file (PEM, one or more CA certificates); repeat for several.
    #[arg(long, value_name = "PEM")]
    ca: Vec<PathBuf>,
    /// Certificate revocation list (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    crl: Vec<PathBuf>,
    /// Client: the name or address the server's certificate must carry (sent as SNI when a
    /// name). Default: the host of --connect (an IP address is checked against the
    /// certificate's IP SANs, a name against its DNS SANs).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Client: do not check the server's identity (labs only; every connection raises a
    /// TLS_SERVER_CHECK_SKIPPED alarm event). The chain is still checked.
    #[arg(long)]
    insecure_skip_server_check: bool,
    /// Write the TLS secrets of every session to FILE (NSS key log format, mode 0600) so a
    /// capture can be decrypted; each session raises a TLS_KEYLOG_ACTIVE warning event.
    /// SSLKEYLOGFILE is ignored.
    #[arg(long, value_name = "FILE")]
    tls_keylog: Option<PathBuf>,
    /// Look the peer's TLS certificate up over OCSP after each handshake (RFC 6960):
    /// `soft-fail` refuses a revoked peer and only warns (TLS_OCSP_UNAVAILABLE) when no answer
    /// comes; `hard-fail` refuses then too.
    #[arg(long, value_name = "POLICY", value_parser = ["off", "soft-fail", "hard-fail"])]
    ocsp_check: Option<String>,
    /// The OCSP responder (http://host:port/); default: the certificate's authorityInfoAccess.
    #[arg(long, value_name = "URL")]
    ocsp_responder: Option<String>,
}

/// Application-security flags (IEC 62351-4 Table 1), shared by server, client, bench and demo.
/// They override the configuration's `[security]` section. `--ca` (and `--crl`) also give the
/// trust anchors (and CRLs) for the peers' application certificates.
#[derive(Args, Debug, Default, Clone)]
struct SecArgs {
    /// Application security: `plain` (none), `compat` (A-security-profile, clause 11) or
    /// `native` (E2E security, clauses 13-15).
    #[arg(long, value_name = "MODE", value_parser = ["plain", "compat", "native"])]
    mode: Option<String>,
    /// Our application certificate (PEM; Annex G), distinct from the TLS certificate.
    #[arg(long, value_name = "PEM")]
    app_cert: Option<PathBuf>,
    /// The private key of --app-cert (PEM).
    #[arg(long, value_name = "PEM")]
    app_key: Option<PathBuf>,
    /// Native mode: protection of the data transfer: `gcm` (AES-GCM), `cbc` (AES-CBC +
    /// HMAC-SHA256) or `none` (HMAC-SHA256 integrity only).
    #[arg(long, value_name = "ENCRYPTION", value_parser = ["none", "gcm", "cbc"])]
    encrypt: Option<String>,
    /// Native mode: require encryption of the data transfer (§13.3.1.5). A server refuses a
    /// client that offers none with `encryption-required`; a client refuses a server that does
    /// not select it. The TOML keys `[security] encryption`, `require_ae`, `dh_groups`,
    /// `signatures`, `rekey_interval_secs`, `conf_params` and `protected_protocol` set the rest
    /// of the policy.
    #[arg(long)]
    require_encryption: bool,
    /// Native mode: our IEC 62351-8 attribute certificate (from `secmms cert issue-ac`), sent as
    /// attCert in the handshake (§13.3.1.6).
    #[arg(long, value_name = "PEM")]
    attribute_cert: Option<PathBuf>,
    /// Native mode: an attribute authority whose attribute certificates peers may present (PEM
    /// certificate); repeat for several. Without one, a peer's attCert is refused with
    /// invalid-attribute-certificate.
    #[arg(long, value_name = "PEM")]
    attribute_authority: Vec<PathBuf>,
    /// Our AP-title (dotted OID). Default: the AP-title our application certificate binds
    /// (Annex G.6.2: its 2.5.4.106 identity without the last arc); must match it when given.
    #[arg(long, value_name = "OID")]
    ap_title: Option<String>,
    /// Our AE-qualifier. Default: the last arc of our application certificate's identity.
    #[arg(long, value_name = "N")]
    ae_qualifier: Option<i64>,
}

/// The peer a client calls (IEC 62351-4 Annex G.6.2): its titles are sent as called AP-title /
/// AE-qualifier and its application certificate must bind them. Without them the client calls
/// the IEC 61850 defaults (1.1.1.999.1 / 12) and raises a PEER_TITLE_UNCHECKED warning event.
#[derive(Args, Debug, Default, Clone)]
struct PeerTitleArgs {
    /// The server's AP-title (dotted OID), checked against its certificate's binding.
    #[arg(long, value_name = "OID")]
    peer_ap_title: Option<String>,
    /// The server's AE-qualifier, checked against its certificate's binding.
    #[arg(long, value_name = "N")]
    peer_ae_qualifier: Option<i64>,
}

impl PeerTitleArgs {
    fn apply(&self, cfg: &mut Config) -> Result<()> {
        if let Some(t) = &self.peer_ap_title {
            cfg.osi.remote_ap_title = Some(t.clone());
        }
        if let Some(q) = self.peer_ae_qualifier {
            cfg.osi.remote_ae_qualifier = Some(q);
        }
        cfg.validate()
            .context("--peer-ap-title / --peer-ae-qualifier")?;
        Ok(())
    }
}

impl SecArgs {
    /// Applies the flags (and the shared `--ca` / `--crl`) to the configuration.
    fn apply(&self, tls: &TlsArgs, cfg: &mut Config) -> Result<()> {
        use secmms::security::{AppMode, Encrypt};
        if let Some(m) = &self.mode {
            cfg.security.mode = match m.as_str() {
                "compat" => AppMode::Compat,
                "native" => AppMode::Native,
                _ => AppMode::Plain,
            };
        }
        if let Some(e) = &self.encrypt {
            cfg.security.encrypt = match e.as_str() {
                "none" => Encrypt::None,
                "cbc" => Encrypt::Cbc,
                _ => Encrypt::Gcm,
            };
            if cfg.security.mode != AppMode::Native {
                bail!("--encrypt applies to --mode native only");
            }
        }
        if self.require_encryption {
            if cfg.security.mode != AppMode::Native {
                bail!("--require-encryption applies to --mode native only");
            }
            cfg.security.encryption = secmms::security::EncryptionRule::Required;
        }
        if let Some(c) = &self.app_cert {
            cfg.security.app_cert = Some(c.clone());
        }
        if let Some(k) = &self.app_key {
            cfg.security.app_key = Some(k.clone());
        }
        if let Some(a) = &self.attribute_cert {
            cfg.security.attribute_certificate = Some(a.clone());
        }
        if !self.attribute_authority.is_empty() {
            cfg.security.attribute_authorities = self.attribute_authority.clone();
        }
        if let Some(t) = &self.ap_title {
            cfg.osi.local_ap_title = Some(t.clone());
        }
        if let Some(q) = self.ae_qualifier {
            cfg.osi.local_ae_qualifier = Some(q);
        }
        if cfg.security.mode == AppMode::Plain {
            if self.app_cert.is_some() || self.app_key.is_some() {
                bail!("--app-cert and --app-key need --mode compat or --mode native");
            }
        } else {
            if !tls.ca.is_empty() {
                cfg.security.ca = tls.ca.clone();
            }
            if !tls.crl.is_empty() {
                cfg.security.crl = tls.crl.clone();
            }
        }
        cfg.validate().context("application-security settings")?;
        Ok(())
    }

    fn uses_ca(&self, cfg: &Config) -> bool {
        self.mode.as_deref().is_some_and(|m| m != "plain")
            || cfg.security.mode != secmms::security::AppMode::Plain
    }
}

/// XMPP environment flags (IEC 62351-4 clause 16). They fill the configuration's `[xmpp]`
/// section; `--env xmpp` needs `--mode native` (E2E is the only application security there).
#[derive(Args, Debug, Default, Clone)]
struct XmppArgs {
    /// Operational environment: `osi` (RFC 1006 / OSI, the default) or `xmpp`.
    #[arg(long, value_name = "ENV", value_parser = ["osi", "xmpp"])]
    env: Option<String>,
    /// Our bare JID on the XMPP server (`user@domain`); the resource is `IEC`.
    #[arg(long, value_name = "JID")]
    jid: Option<String>,
    /// The XMPP server's client port (host:port).
    #[arg(long, value_name = "ADDR")]
    xmpp_server: Option<String>,
    /// File holding the XMPP account password (SASL PLAIN).
    #[arg(long, value_name = "FILE")]
    xmpp_password_file: Option<PathBuf>,
    /// Trust anchor for the XMPP server's TLS certificate (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    xmpp_ca: Vec<PathBuf>,
    /// Client: the full JID of the MMS server to associate with, e.g. `ied1@example.org/IEC`.
    #[arg(long, value_name = "JID")]
    peer: Option<String>,
}

impl XmppArgs {
    fn is_xmpp(&self, cfg: &Config) -> bool {
        match self.env.as_deref() {
            Some("xmpp") => true,
            Some(_) => false,
            None => cfg.xmpp.is_some() && self.jid.is_some(),
        }
    }

    fn apply(&self, cfg: &mut Config) -> Result<bool> {
        let used = self.jid.is_some()
            || self.xmpp_server.is_some()
            || self.xmpp_password_file.is_some()
            || !self.xmpp_ca.is_empty()
            || self.peer.is_some();
        if !self.is_xmpp(cfg) && self.env.as_deref() != Some("xmpp") {
            if used && self.env.as_deref() == Some("osi") {
                bail!("--jid, --xmpp-* and --peer need --env xmpp");
            }
            if !used {
                return Ok(false);
            }
        }
        let x = cfg.xmpp.get_or_insert_with(Default::default);
        if let Some(j) = &self.jid {
            x.jid = j.clone();
        }
        if let Some(s) = &self.xmpp_server {
            x.server = s.clone();
        }
        if let Some(p) = &self.xmpp_password_file {
            x.password_file = Some(p.clone());
        }
        if !self.xmpp_ca.is_empty() {
            x.ca = self.xmpp_ca.clone();
        }
        if let Some(p) = &self.peer {
            cfg.client.xmpp_peer = Some(p.clone());
        }
        if cfg.security.mode != secmms::security::AppMode::Native {
            bail!("--env xmpp carries E2E security only: add --mode native with --app-cert, --app-key and --ca");
        }
        cfg.validate().context("XMPP settings")?;
        Ok(true)
    }
}

/// Applies the TLS and application-security flags; returns the default port.
fn apply_flags(tls: &TlsArgs, sec: &SecArgs, cfg: &mut Config) -> Result<u16> {
    let app_ca = sec.uses_ca(cfg);
    let port = tls.apply_with(cfg, app_ca)?;
    sec.apply(tls, cfg)?;
    Ok(port)
}

impl TlsArgs {
    /// Applies the flags to the configuration; returns the default port to use.
    fn apply(&self, cfg: &mut Config) -> Result<u16> {
        self.apply_with(cfg, false)
    }

    /// Like `apply`; `app_ca` tells that `--ca`/`--crl` may come without `--tls` (they then
    /// serve the application certificates only).
    fn apply_with(&self, cfg: &mut Config, app_ca: bool) -> Result<u16> {
        if self.tls {
            cfg.tls.enabled = true;
        }
        if let Some(c) = &self.cert {
            cfg.tls.cert = Some(c.clone());
        }
        if let Some(k) = &self.key {
            cfg.tls.key = Some(k.clone());
        }
        let tls_on = self.tls || cfg.tls.enabled;
        if tls_on {
            if !self.ca.is_empty() {
                cfg.tls.ca = self.ca.clone();
            }
            if !self.crl.is_empty() {
                cfg.tls.crl = self.crl.clone();
            }
        }
        if !tls_on && (self.cert.is_some() || self.key.is_some()) {
            bail!("--cert and --key need --tls");
        }
        if !tls_on && !app_ca && (!self.ca.is_empty() || !self.crl.is_empty()) {
            bail!("--ca and --crl need --tls or --mode compat|native");
        }
        if !tls_on
            && (self.server_name.is_some()
                || self.insecure_skip_server_check
                || self.tls_keylog.is_some())
        {
            bail!("--server-name, --insecure-skip-server-check and --tls-keylog need --tls");
        }
        if let Some(n) = &self.server_name {
            cfg.tls.server_name = Some(n.clone());
        }
        if self.insecure_skip_server_check {
            cfg.tls.insecure_skip_server_check = true;
        }
        if let Some(p) = &self.tls_keylog {
            cfg.tls.keylog_file = Some(p.clone());
        }
        if let Some(c) = &self.ocsp_check {
            if !tls_on {
                bail!("--ocsp-check needs --tls");
            }
            cfg.tls.ocsp_check = match c.as_str() {
                "soft-fail" => secmms::ocsp::OcspCheck::SoftFail,
                "hard-fail" => secmms::ocsp::OcspCheck::HardFail,
                _ => secmms::ocsp::OcspCheck::Off,
            };
        }
        if let Some(u) = &self.ocsp_responder {
            cfg.tls.ocsp_responder = Some(u.clone());
        }
        cfg.validate().context("TLS settings")?;
        Ok(if cfg.tls.enabled {
            secmms::tls::TLS_PORT
        } else {
            secmms::tls::PLAIN_PORT
        })
    }
}

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
struct DemoArgs {
    /// Print the demo report as JSON.
    #[arg(long)]
    json: bool,
    /// Run over plain RFC 1006 instead of TLS (the demo uses TLS with its own PKI by default).
    #[arg(long)]
    no_tls: bool,
    /// Operational environment: `osi` (default) or `xmpp` (MMS with E2E security through an XMPP
    /// server: a private Prosody started on loopback, which needs the `prosody` package, or the
    /// reachable server named by --xmpp-server).
    #[arg(long, value_name = "ENV", value_parser = ["osi", "xmpp"])]
    env: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sec: SecArgs,
    #[command(flatten)]
    xmpp: DemoXmppArgs,
}

/// `demo --env xmpp` through an existing XMPP server instead of a private Prosody.
#[derive(Args, Debug)]
struct DemoXmppArgs {
    /// XMPP demo: use this reachable server's client port (host:port) with two existing
    /// accounts, instead of starting a private Prosody.
    #[arg(long, value_name = "ADDR")]
    xmpp_server: Option<String>,
    /// XMPP demo: trust anchor for that server's TLS certificate (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    xmpp_ca: Vec<PathBuf>,
    /// XMPP demo: the account the MMS server logs in with (`user@domain`).
    #[arg(long, value_name = "JID")]
    server_jid: Option<String>,
    /// XMPP demo: file holding the password of --server-jid.
    #[arg(long, value_name = "FILE")]
    server_password_file: Option<PathBuf>,
    /// XMPP demo: the account the MMS client logs in with (`user@domain`).
    #[arg(long, value_name = "JID")]
    client_jid: Option<String>,
    /// XMPP demo: file holding the password of --client-jid.
    #[arg(long, value_name = "FILE")]
    client_password_file: Option<PathBuf>,
}

impl DemoXmppArgs {
    fn any(&self) -> bool {
        self.xmpp_server.is_some()
            || !self.xmpp_ca.is_empty()
            || self.server_jid.is_some()
            || self.server_password_file.is_some()
            || self.client_jid.is_some()
            || self.client_password_file.is_some()
    }

    /// The server the XMPP demo runs through.
    fn server(&self) -> Result<secmms_tools::demo::DemoXmppServer> {
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

#[derive(Args, Debug)]
struct ServerArgs {
    /// Address to listen on (host:port). Default: the configuration's `server.listen` (0.0.0.0:102;
    /// 0.0.0.0:3782 with --tls).
    #[arg(long)]
    listen: Option<String>,
    /// Model file: SCL (.cid/.icd/.scd) or the TOML model form. Default: the built-in demo model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sec: SecArgs,
    #[command(flatten)]
    xmpp: XmppArgs,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// Server address (host:port; port 102 when omitted, 3782 with --tls).
    #[arg(long, default_value = "127.0.0.1")]
    connect: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sec: SecArgs,
    #[command(flatten)]
    peer: PeerTitleArgs,
    #[command(flatten)]
    xmpp: XmppArgs,
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: ClientAction,
}

#[derive(Subcommand, Debug)]
enum ClientAction {
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

#[derive(Args, Debug)]
struct PicsArgs {
    /// TOML configuration file whose settings fill the "in use" column.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sec: SecArgs,
}

fn pics(a: PicsArgs) -> Result<ExitCode> {
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

#[derive(Args, Debug)]
struct RelayArgs {
    /// Address to accept associations on (host:port). Default: the configuration's
    /// `relay.listen` (0.0.0.0:102; 0.0.0.0:3782 with --tls).
    #[arg(long)]
    listen: Option<String>,
    /// Next hop (host:port) for associations no --route matches.
    #[arg(long, value_name = "ADDR")]
    to: Option<String>,
    /// Route by called AP-title: `AP-TITLE[/AE-QUALIFIER]=ADDR`; repeat for several.
    #[arg(long, value_name = "ROUTE")]
    route: Vec<String>,
    /// TOML configuration file (`[relay]`, `[tls]`, `[osi]`, `[events]`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --tls: plain TCP towards the next hop (TLS only from the previous hop).
    #[arg(long)]
    plain_out: bool,
    /// With --tls: plain TCP from the previous hop (TLS only towards the next hop).
    #[arg(long)]
    plain_in: bool,
    #[command(flatten)]
    tls: TlsArgs,
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

async fn relay(a: RelayArgs) -> Result<ExitCode> {
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
    let relay = secmms::relay::Relay::bind(cfg.clone())
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

#[derive(Args, Debug)]
struct BenchArgs {
    /// Server address (host:port; port 102 when omitted, 3782 with --tls). Over XMPP the
    /// server is `--peer` instead.
    #[arg(long)]
    connect: Option<String>,
    /// Concurrent associations.
    #[arg(long, default_value_t = 1)]
    associations: usize,
    /// Outstanding requests per association.
    #[arg(long, default_value_t = 1)]
    outstanding: usize,
    /// Run time in seconds (after all associations are up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Variable to read (IEC 61850 reference or MMS name).
    #[arg(long, default_value = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]")]
    reference: String,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    sec: SecArgs,
    #[command(flatten)]
    peer: PeerTitleArgs,
    #[command(flatten)]
    xmpp: XmppArgs,
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display())),
        None => Ok(Config::default()),
    }
}

fn with_default_port(addr: &str, port: u16) -> String {
    let has_port = addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    if has_port && !addr.starts_with('[') || addr.contains("]:") {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr (a supervisor's log pipe gone) must not take the process down: the
        // subscriber would report its own write failure with eprintln!, which panics then.
        .log_internal_errors(false)
        .init();
    let mut builder = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n);
            }
            b
        }
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo(a).await,
        Command::Server(a) => server(a).await,
        Command::Client(a) => client(a).await,
        Command::Bench(a) => bench(a).await,
        Command::Relay(a) => relay(a).await,
        Command::Pics(a) => pics(a),
        Command::Log(a) => log_cmd::run(a),
        Command::Cert(a) => cert_cmd::run(a),
        Command::Decode(a) => decode::run(a),
    }
}

async fn demo(a: DemoArgs) -> Result<ExitCode> {
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

async fn server(a: ServerArgs) -> Result<ExitCode> {
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
        tokio::select! {
            r = secmms::xmpp::serve_config(&cfg, ready) => r.context("XMPP server stopped")?,
            _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(l) = a.listen {
        cfg.server.listen = with_default_port(&l, port);
    } else if cfg.tls.enabled && cfg.server.listen == secmms::config::ServerConfig::default().listen
    {
        cfg.server.listen = format!("0.0.0.0:{port}");
    }
    if let Some(m) = a.model {
        cfg.server.model = Some(m);
    }
    // The daemon owns its machine: association threads and busy polling unless configured
    // otherwise (an embedded `Server::bind` has neither).
    let server = secmms::server::Server::bind_tuned(cfg, secmms::server::Tuning::Daemon)
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

async fn client(a: ClientArgs) -> Result<ExitCode> {
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
        let conn = secmms::xmpp::XmppConnection::connect(&cfg, std::sync::Arc::new(sink))
            .await
            .context("connecting to the XMPP server")?;
        conn.associate(&peer)
            .await
            .with_context(|| format!("associating with {peer} over XMPP"))?
    } else {
        secmms::client::Client::connect(&addr, &cfg)
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

async fn bench(a: BenchArgs) -> Result<ExitCode> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports() {
        assert_eq!(with_default_port("127.0.0.1", 102), "127.0.0.1:102");
        assert_eq!(with_default_port("127.0.0.1:10102", 102), "127.0.0.1:10102");
        assert_eq!(with_default_port("localhost", 3782), "localhost:3782");
        assert_eq!(with_default_port("[::1]:5", 102), "[::1]:5");
    }

    #[test]
    fn tls_flags_set_the_configuration_and_port_3782() {
        let cli = Cli::try_parse_from([
            "secmms", "client", "--tls", "--cert", "c.pem", "--key", "c.key", "--ca", "ca1.pem",
            "--ca", "ca2.pem", "--crl", "ca.crl", "identify",
        ])
        .unwrap();
        let Command::Client(a) = cli.command else {
            panic!("client")
        };
        let mut cfg = Config::default();
        assert_eq!(a.tls.apply(&mut cfg).unwrap(), 3782);
        assert!(cfg.tls.enabled);
        assert_eq!(cfg.tls.ca.len(), 2);
        assert_eq!(cfg.tls.crl.len(), 1);
        assert_eq!(with_default_port(&a.connect, 3782), "127.0.0.1:3782");

        // Without --tls: plain port 102, and TLS files alone are a usage error.
        let cli = Cli::try_parse_from(["secmms", "client", "identify"]).unwrap();
        let Command::Client(a) = cli.command else {
            panic!("client")
        };
        assert_eq!(a.tls.apply(&mut Config::default()).unwrap(), 102);
        let cli =
            Cli::try_parse_from(["secmms", "bench", "--connect", "h", "--cert", "x"]).unwrap();
        let Command::Bench(a) = cli.command else {
            panic!("bench")
        };
        assert!(a.tls.apply(&mut Config::default()).is_err());
        // --tls without certificate: clear error (mutual authentication is mandatory).
        let cli = Cli::try_parse_from(["secmms", "server", "--tls"]).unwrap();
        let Command::Server(a) = cli.command else {
            panic!("server")
        };
        let e = a.tls.apply(&mut Config::default()).unwrap_err();
        assert!(format!("{e:#}").contains("certificate"), "{e:#}");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
