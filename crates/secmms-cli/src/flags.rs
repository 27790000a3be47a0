//! The flags several subcommands share: TLS (`--tls`, `--cert`, ...), application security
//! (`--mode`, `--app-cert`, ...), the called peer's titles and the XMPP environment, with the
//! code that lays them over the TOML configuration.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use secmms::config::Config;

/// TLS flags (IEC 62351-4 clause 6), shared by every command. They override the configuration's
/// `[tls]` section; with `--tls` the default port is 3782.
#[derive(Args, Debug, Default, Clone)]
pub struct TlsArgs {
    /// Run RFC 1006 over TLS (port 3782 by default) with mutual authentication.
    #[arg(long)]
    pub tls: bool,
    /// Our TLS certificate (PEM, optionally followed by intermediates).
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Trust anchor file (PEM, one or more CA certificates); repeat for several.
    #[arg(long, value_name = "PEM")]
    pub ca: Vec<PathBuf>,
    /// Certificate revocation list (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    pub crl: Vec<PathBuf>,
    /// Client: the name or address the server's certificate must carry (sent as SNI when a
    /// name). Default: the host of --connect (an IP address is checked against the
    /// certificate's IP SANs, a name against its DNS SANs).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Client: do not check the server's identity (labs only; every connection raises a
    /// TLS_SERVER_CHECK_SKIPPED alarm event). The chain is still checked.
    #[arg(long)]
    pub insecure_skip_server_check: bool,
    /// Write the TLS secrets of every session to FILE (NSS key log format, mode 0600) so a
    /// capture can be decrypted; each session raises a TLS_KEYLOG_ACTIVE warning event.
    /// SSLKEYLOGFILE is ignored.
    #[arg(long, value_name = "FILE")]
    pub tls_keylog: Option<PathBuf>,
    /// Look the peer's TLS certificate up over OCSP after each handshake (RFC 6960):
    /// `soft-fail` refuses a revoked peer and only warns (TLS_OCSP_UNAVAILABLE) when no answer
    /// comes; `hard-fail` refuses then too.
    #[arg(long, value_name = "POLICY", value_parser = ["off", "soft-fail", "hard-fail"])]
    pub ocsp_check: Option<String>,
    /// The OCSP responder (http://host:port/); default: the certificate's authorityInfoAccess.
    #[arg(long, value_name = "URL")]
    pub ocsp_responder: Option<String>,
}

/// Application-security flags (IEC 62351-4 Table 1), shared by server, client, bench and demo.
/// They override the configuration's `[security]` section. `--ca` (and `--crl`) also give the
/// trust anchors (and CRLs) for the peers' application certificates.
#[derive(Args, Debug, Default, Clone)]
pub struct SecArgs {
    /// Application security: `plain` (none), `compat` (A-security-profile, clause 11) or
    /// `native` (E2E security, clauses 13-15).
    #[arg(long, value_name = "MODE", value_parser = ["plain", "compat", "native"])]
    pub mode: Option<String>,
    /// Our application certificate (PEM; Annex G), distinct from the TLS certificate.
    #[arg(long, value_name = "PEM")]
    pub app_cert: Option<PathBuf>,
    /// The private key of --app-cert (PEM).
    #[arg(long, value_name = "PEM")]
    pub app_key: Option<PathBuf>,
    /// Native mode: protection of the data transfer: `gcm` (AES-GCM), `cbc` (AES-CBC +
    /// HMAC-SHA256) or `none` (HMAC-SHA256 integrity only).
    #[arg(long, value_name = "ENCRYPTION", value_parser = ["none", "gcm", "cbc"])]
    pub encrypt: Option<String>,
    /// Native mode: require encryption of the data transfer (§13.3.1.5). A server refuses a
    /// client that offers none with `encryption-required`; a client refuses a server that does
    /// not select it. The TOML keys `[security] encryption`, `require_ae`, `dh_groups`,
    /// `signatures`, `rekey_interval_secs`, `conf_params` and `protected_protocol` set the rest
    /// of the policy.
    #[arg(long)]
    pub require_encryption: bool,
    /// Native mode: our IEC 62351-8 attribute certificate (from `secmms cert issue-ac`), sent as
    /// attCert in the handshake (§13.3.1.6).
    #[arg(long, value_name = "PEM")]
    pub attribute_cert: Option<PathBuf>,
    /// Native mode: an attribute authority whose attribute certificates peers may present (PEM
    /// certificate); repeat for several. Without one, a peer's attCert is refused with
    /// invalid-attribute-certificate.
    #[arg(long, value_name = "PEM")]
    pub attribute_authority: Vec<PathBuf>,
    /// Native mode: write the E2E traffic keys of every association to FILE (one line per
    /// association and key generation, mode 0600) so `secmms decode --e2e-keylog` can verify
    /// and decrypt a capture; each key derivation raises an E2E_KEYLOG_ACTIVE warning event.
    /// Never written unless asked for; no private key is ever written.
    #[arg(long, value_name = "FILE")]
    pub e2e_keylog: Option<PathBuf>,
    /// Our AP-title (dotted OID). Default: the AP-title our application certificate binds
    /// (Annex G.6.2: its 2.5.4.106 identity without the last arc); must match it when given.
    #[arg(long, value_name = "OID")]
    pub ap_title: Option<String>,
    /// Our AE-qualifier. Default: the last arc of our application certificate's identity.
    #[arg(long, value_name = "N")]
    pub ae_qualifier: Option<i64>,
}

/// The peer a client calls (IEC 62351-4 Annex G.6.2): its titles are sent as called AP-title /
/// AE-qualifier and its application certificate must bind them. Without them the client calls
/// the IEC 61850 defaults (1.1.1.999.1 / 12) and raises a PEER_TITLE_UNCHECKED warning event.
#[derive(Args, Debug, Default, Clone)]
pub struct PeerTitleArgs {
    /// The server's AP-title (dotted OID), checked against its certificate's binding.
    #[arg(long, value_name = "OID")]
    pub peer_ap_title: Option<String>,
    /// The server's AE-qualifier, checked against its certificate's binding.
    #[arg(long, value_name = "N")]
    pub peer_ae_qualifier: Option<i64>,
}

impl PeerTitleArgs {
    pub fn apply(&self, cfg: &mut Config) -> Result<()> {
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
    pub fn apply(&self, tls: &TlsArgs, cfg: &mut Config) -> Result<()> {
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
        if let Some(k) = &self.e2e_keylog {
            if cfg.security.mode != AppMode::Native {
                bail!("--e2e-keylog applies to --mode native only");
            }
            cfg.security.e2e_keylog_file = Some(k.clone());
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

    pub fn uses_ca(&self, cfg: &Config) -> bool {
        self.mode.as_deref().is_some_and(|m| m != "plain")
            || cfg.security.mode != secmms::security::AppMode::Plain
    }
}

/// XMPP environment flags (IEC 62351-4 clause 16). They fill the configuration's `[xmpp]`
/// section; `--env xmpp` needs `--mode native` (E2E is the only application security there).
#[derive(Args, Debug, Default, Clone)]
pub struct XmppArgs {
    /// Operational environment: `osi` (RFC 1006 / OSI, the default) or `xmpp`.
    #[arg(long, value_name = "ENV", value_parser = ["osi", "xmpp"])]
    pub env: Option<String>,
    /// Our bare JID on the XMPP server (`user@domain`); the resource is `IEC`.
    #[arg(long, value_name = "JID")]
    pub jid: Option<String>,
    /// The XMPP server's client port (host:port).
    #[arg(long, value_name = "ADDR")]
    pub xmpp_server: Option<String>,
    /// File holding the XMPP account password (SASL PLAIN).
    #[arg(long, value_name = "FILE")]
    pub xmpp_password_file: Option<PathBuf>,
    /// Trust anchor for the XMPP server's TLS certificate (PEM); repeat for several.
    #[arg(long, value_name = "PEM")]
    pub xmpp_ca: Vec<PathBuf>,
    /// Client: the full JID of the MMS server to associate with, e.g. `ied1@example.org/IEC`.
    #[arg(long, value_name = "JID")]
    pub peer: Option<String>,
}

impl XmppArgs {
    pub fn is_xmpp(&self, cfg: &Config) -> bool {
        match self.env.as_deref() {
            Some("xmpp") => true,
            Some(_) => false,
            None => cfg.xmpp.is_some() && self.jid.is_some(),
        }
    }

    pub fn apply(&self, cfg: &mut Config) -> Result<bool> {
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
        if cfg.security.e2e_keylog_file.is_some() {
            bail!(
                "--e2e-keylog: the XMPP environment writes no E2E key log (secmms decode reads \
                 OSI captures only)"
            );
        }
        cfg.validate().context("XMPP settings")?;
        Ok(true)
    }
}

/// Applies the TLS and application-security flags; returns the default port.
pub fn apply_flags(tls: &TlsArgs, sec: &SecArgs, cfg: &mut Config) -> Result<u16> {
    let app_ca = sec.uses_ca(cfg);
    let port = tls.apply_with(cfg, app_ca)?;
    sec.apply(tls, cfg)?;
    Ok(port)
}

impl TlsArgs {
    /// Applies the flags to the configuration; returns the default port to use.
    pub fn apply(&self, cfg: &mut Config) -> Result<u16> {
        self.apply_with(cfg, false)
    }

    /// Like `apply`; `app_ca` tells that `--ca`/`--crl` may come without `--tls` (they then
    /// serve the application certificates only).
    pub fn apply_with(&self, cfg: &mut Config, app_ca: bool) -> Result<u16> {
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

pub fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("loading {}", p.display())),
        None => Ok(Config::default()),
    }
}

pub fn with_default_port(addr: &str, port: u16) -> String {
    let has_port = addr
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    if has_port && !addr.starts_with('[') || addr.contains("]:") {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}
