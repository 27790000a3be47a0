//! The TOML file of the `secmms` command: an adapter over the typed sections the builders take
//! ([`Config::server_builder`], [`Config::client_builder`], [`Config::relay_settings`],
//! [`Config::xmpp_settings`]). One file configures the server, the client, the relay and the
//! load generator. Every field has a default, so an empty file (or none) is a valid
//! configuration. Each section lives beside what it configures and validates itself; this
//! module only reads the file and gathers them.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:10102"
//! model = "demo.cid"            # SCL/CID or the TOML model form; built-in demo model when absent
//! max_associations = 1000
//!
//! [client]
//! request_timeout_secs = 10
//! max_outstanding = 16
//!
//! [osi]
//! local_ap_title = "1.1.1.999"
//! local_ae_qualifier = 12
//!
//! [tcp]
//! keepalive_idle_secs = 60
//!
//! [tls]                         # IEC 62351-4 clause 6; see `crate::tls::TlsConfig`
//! enabled = true
//! cert = "server.pem"
//! key = "server.key"
//! ca = ["ca.pem"]
//!
//! [events]                      # security events (§4.6, §6.2.9); see `crate::events::EventsConfig`
//! log = "events.jsonl"          # hash-chained tamper-evident log, `secmms log verify`
//! log_key = "log.key"
//! syslog = "udp:127.0.0.1:514"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{ClientBuilder, ClientConfig};
use crate::osi::OsiSettings;
use crate::server::{ServerBuilder, ServerConfig};
use crate::settings::SettingError;
use crate::transport::TcpConfig;

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid configuration {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: toml::de::Error,
    },
    /// The `[tls]` section is invalid (clause 6 policy).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The `[events]` section is invalid.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// A value is out of range or malformed (the field is named).
    #[error(transparent)]
    Setting(#[from] SettingError),
}

/// The whole runtime configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP socket options (Annex H keep-alive).
    pub tcp: TcpConfig,
    /// OSI addressing and sizes.
    pub osi: OsiSettings,
    /// Server settings.
    pub server: ServerConfig,
    /// Client settings.
    pub client: ClientConfig,
    /// TLS (T-profile, IEC 62351-4 clause 6).
    pub tls: crate::tls::TlsConfig,
    /// Security-event outputs: tracing, tamper-evident log, syslog (IEC 62351-4 §4.6, §6.2.9).
    pub events: crate::events::EventsConfig,
    /// Application-layer security: plain, compatibility (clause 11) or native (clauses 13–15)
    /// mode, credentials and the clause 5.1 peer table.
    pub security: crate::security::SecurityConfig,
    /// `secmms relay`: upper-layer routing (IEC 62351-4 §15.5).
    pub relay: crate::relay::RelayConfig,
    /// The XMPP environment (IEC 62351-4 clause 16): server, JID, SASL, TLS anchors. Present
    /// when MMS runs over XMPP instead of OSI (`--env xmpp`).
    pub xmpp: Option<secmms_xmpp::XmppConfig>,
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges and formats.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.osi.validate()?;
        self.tls.validate()?;
        self.events.validate()?;
        self.security.validate(&self.tls.ca)?;
        self.relay.validate()?;
        self.server.validate()?;
        self.client.validate()?;
        self.tcp.validate()?;
        Ok(())
    }

    /// A server builder with the sections of this file (`[server]`, `[tcp]`, `[tls]`,
    /// `[security]`, `[osi]`, `[events]`); `bind` validates them.
    pub fn server_builder(&self) -> ServerBuilder {
        ServerBuilder::default()
            .limits(self.server.clone())
            .tcp(self.tcp.clone())
            .tls(self.tls.clone())
            .security(self.security.clone())
            .osi(self.osi.clone())
            .events_config(self.events.clone())
    }

    /// A client builder with the sections of this file (`[client]`, `[tcp]`, `[tls]`,
    /// `[security]`, `[osi]`, `[events]`); `connect` validates them.
    pub fn client_builder(&self) -> ClientBuilder {
        ClientBuilder::default()
            .limits(self.client.clone())
            .tcp(self.tcp.clone())
            .tls(self.tls.clone())
            .security(self.security.clone())
            .osi(self.osi.clone())
            .events_config(self.events.clone())
    }

    /// The sections `secmms relay` runs with ([`crate::relay::Relay::bind`]).
    pub fn relay_settings(&self) -> crate::relay::RelaySettings {
        crate::relay::RelaySettings {
            relay: self.relay.clone(),
            tcp: self.tcp.clone(),
            tls: self.tls.clone(),
            osi: self.osi.clone(),
            security: self.security.clone(),
            events: self.events.clone(),
        }
    }

    /// The sections MMS over XMPP runs with ([`crate::xmpp`]).
    pub fn xmpp_settings(&self) -> crate::xmpp::XmppSettings {
        crate::xmpp::XmppSettings {
            xmpp: self.xmpp.clone(),
            security: self.security.clone(),
            tls: self.tls.clone(),
            server: self.server.clone(),
            client: self.client.clone(),
            events: self.events.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_value_is_bounded() {
        // A timeout of u64::MAX seconds used to panic when added to an Instant: it is refused
        // here, naming the field.
        let huge = [
            "[server]\nassociate_timeout_secs = 9223372036854775807",
            "[server]\nidle_timeout_secs = 9223372036854775807",
            "[client]\nrequest_timeout_secs = 9223372036854775807",
            "[client]\nassociate_timeout_secs = 0",
            "[tcp]\nconnect_timeout_secs = 9223372036854775807",
            "[tcp]\nkeepalive_idle_secs = 0",
            "[tls]\nhandshake_timeout_secs = 9223372036854775807",
            "[relay]\nassociate_timeout_secs = 9223372036854775807",
            "[server]\nmax_associations = 100000000",
            "[server]\nmax_outstanding = 60000",
            "[server]\nresponse_group = 100000",
            "[tls]\ntls13_tickets = 1000",
        ];
        for text in huge {
            let field = text.split(['[', ']']).nth(1).unwrap();
            match Config::from_toml(text) {
                Err(e) => assert!(e.to_string().contains(field), "{text}: {e}"),
                Ok(_) => panic!("{text} was accepted"),
            }
        }
        let c = Config::from_toml("[server]\nassociate_timeout_secs = 3600").unwrap();
        assert_eq!(c.server.associate_timeout_secs, 3600);
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn values_are_checked() {
        assert!(Config::from_toml("[osi]\nlocal_tsel = \"zz\"").is_err());
        assert!(Config::from_toml("[osi]\nlocal_ap_title = \"1.x\"").is_err());
        assert!(Config::from_toml("[osi]\ntpdu_size = 4096").is_err());
        assert!(Config::from_toml("[server]\nmax_associations = 0").is_err());
        assert!(Config::from_toml("[server]\nbogus = 1").is_err());
        assert!(Config::from_toml("[server]\nbusy_poll_us = 10001").is_err());
        assert!(Config::from_toml("[server]\nworker_threads = 1025").is_err());
        let c = Config::from_toml("[server]\nbusy_poll_us = 10000\nworker_threads = 0").unwrap();
        assert_eq!(c.server.busy_poll_us, Some(10_000));
        assert_eq!(c.server.worker_threads, Some(0));
        let c =
            Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\n[tcp]\nkeepalive_idle_secs = 5")
                .unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:1");
        assert_eq!(c.tcp.keepalive_idle_secs, 5);
    }

    #[test]
    fn tls_section_is_validated() {
        let c = Config::from_toml(
            "[tls]\nenabled = true\ncert = \"a.pem\"\nkey = \"a.key\"\nca = [\"ca1.pem\", \"ca2.pem\"]\nmode = \"compat\"\ntls13 = false",
        )
        .unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.tls.ca.len(), 2);
        assert_eq!(c.tls.mode, crate::tls::SuiteMode::Compat);
        let e = Config::from_toml("[tls]\nsuites = [\"TLS_DH_RSA_WITH_AES_128_GCM_SHA256\"]")
            .unwrap_err();
        assert!(e.to_string().contains("static DH"), "{e}");
        assert!(Config::from_toml("[tls]\nenabled = true").is_err());
        assert!(Config::from_toml("[tls]\nresumption_lifetime_secs = 50000").is_err());
    }

    #[test]
    fn events_section_is_validated() {
        let c = Config::from_toml(
            "[events]\nlog = \"ev.jsonl\"\nlog_key = \"k\"\nfsync = \"never\"\nsyslog = \"unix:/dev/log\"",
        )
        .unwrap();
        assert_eq!(c.events.fsync, crate::events::FsyncPolicy::Never);
        assert!(c.events.tracing);
        assert!(Config::from_toml("[events]\nbogus = 1").is_err());
        assert!(Config::from_toml("[events]\nsyslog_facility = 30").is_err());
        assert!(Config::from_toml("[events]\nlog_key = \"k\"").is_err());
    }
}
