//! TOML configuration for the runtime: one file configures the server, the client and the load
//! generator. Every field has a default, so an empty file (or none) is a valid configuration.
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
    /// A value is out of range or malformed.
    #[error("invalid configuration value {field}: {reason}")]
    Value {
        /// The dotted field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
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
        self.check_bounds()?;
        Ok(())
    }

    /// Every numeric field against its range ([`bounds`]): a value outside is refused here
    /// with the field's name, never met later as an overflow (a timeout of `u64::MAX` seconds
    /// added to an `Instant`) or an allocation sized by configuration.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        use bounds::*;
        let s = &self.server;
        let c = &self.client;
        let t = &self.tcp;
        let r = &self.relay;
        // The [tls], [security] and [xmpp] sections bound their own values in their validate().
        let checks: [(&'static str, u64, (u64, u64)); 26] = [
            (
                "server.max_handshakes",
                s.max_handshakes as u64,
                (0, ASSOCIATIONS.1),
            ),
            (
                "server.handshake_rate",
                u64::from(s.handshake_rate),
                (0, 1_000_000),
            ),
            (
                "server.max_associations",
                s.max_associations as u64,
                ASSOCIATIONS,
            ),
            ("server.max_pending", s.max_pending as u64, ASSOCIATIONS),
            (
                "server.max_pending_per_source",
                s.max_pending_per_source as u64,
                ASSOCIATIONS,
            ),
            (
                "server.max_associations_per_source",
                s.max_associations_per_source as u64,
                (0, ASSOCIATIONS.1),
            ),
            ("server.pdu_timeout_secs", s.pdu_timeout_secs, IDLE_SECS),
            ("server.write_stall_secs", s.write_stall_secs, IDLE_SECS),
            (
                "server.associate_timeout_secs",
                s.associate_timeout_secs,
                TIMEOUT_SECS,
            ),
            ("server.idle_timeout_secs", s.idle_timeout_secs, IDLE_SECS),
            ("server.max_pdu_size", u64::from(s.max_pdu_size), PDU_SIZE),
            (
                "server.max_outstanding",
                u64::from(s.max_outstanding),
                OUTSTANDING,
            ),
            (
                "server.response_group",
                s.response_group.unwrap_or(0) as u64,
                RESPONSE_GROUP,
            ),
            (
                "server.busy_poll_us",
                s.busy_poll_us.unwrap_or(0),
                (0, ServerConfig::MAX_BUSY_POLL_US),
            ),
            (
                "server.worker_threads",
                s.worker_threads.unwrap_or(0) as u64,
                (0, ServerConfig::MAX_WORKER_THREADS as u64),
            ),
            (
                "client.associate_timeout_secs",
                c.associate_timeout_secs,
                TIMEOUT_SECS,
            ),
            (
                "client.request_timeout_secs",
                c.request_timeout_secs,
                TIMEOUT_SECS,
            ),
            (
                "client.max_outstanding",
                u64::from(c.max_outstanding),
                OUTSTANDING,
            ),
            ("client.max_pdu_size", u64::from(c.max_pdu_size), PDU_SIZE),
            (
                "tcp.keepalive_idle_secs",
                t.keepalive_idle_secs,
                KEEPALIVE_SECS,
            ),
            (
                "tcp.keepalive_interval_secs",
                t.keepalive_interval_secs,
                KEEPALIVE_SECS,
            ),
            (
                "tcp.keepalive_count",
                u64::from(t.keepalive_count),
                KEEPALIVE_COUNT,
            ),
            (
                "tcp.connect_timeout_secs",
                t.connect_timeout_secs,
                TIMEOUT_SECS,
            ),
            (
                "relay.max_associations",
                r.max_associations as u64,
                ASSOCIATIONS,
            ),
            (
                "relay.associate_timeout_secs",
                r.associate_timeout_secs,
                TIMEOUT_SECS,
            ),
            ("relay.idle_timeout_secs", r.idle_timeout_secs, IDLE_SECS),
        ];
        for (field, value, (min, max)) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Value {
                    field,
                    reason: format!("{value} is outside {min}..={max}"),
                });
            }
        }
        Ok(())
    }
}

/// The range of every numeric configuration value (inclusive), checked by
/// [`Config::validate`].
pub mod bounds {
    /// Associations served or relayed at once.
    pub const ASSOCIATIONS: (u64, u64) = (1, 100_000);
    /// Timeouts of one step (associate, request, connect, handshake): up to one hour.
    pub const TIMEOUT_SECS: (u64, u64) = (1, 3_600);
    /// Idle timeouts: 0 (never) up to one week.
    pub const IDLE_SECS: (u64, u64) = (0, 604_800);
    /// MMS PDU sizes proposed or accepted (the reassembled TSDU is at most 64 KiB, Annex H).
    pub const PDU_SIZE: (u64, u64) = (64, 65_000);
    /// Outstanding requests negotiated.
    pub const OUTSTANDING: (u64, u64) = (1, 1_024);
    /// Answers per write (0 = the whole burst).
    pub const RESPONSE_GROUP: (u64, u64) = (0, 1_024);
    /// TCP keep-alive idle time and probe interval.
    pub const KEEPALIVE_SECS: (u64, u64) = (1, 86_400);
    /// TCP keep-alive probes.
    pub const KEEPALIVE_COUNT: (u64, u64) = (1, 127);
}

/// OSI addressing (selectors, AP-titles) and sizes. Selectors are hex strings. A field left out
/// takes the role's default from `secmms_osi::OsiConfig` (client: TSEL/SSEL `0001`, PSEL
/// `00000001`, AP-title 1.1.1.999 / AE-qualifier 12 calling 1.1.1.999.1 / 12; the server the
/// other way round), which is what IEC 61850 stacks send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OsiSettings {
    /// Local transport selector (hex, 0–4 octets per Annex H DECISION; "" for none).
    pub local_tsel: Option<String>,
    /// Remote transport selector (hex).
    pub remote_tsel: Option<String>,
    /// Local session selector (hex).
    pub local_ssel: Option<String>,
    /// Remote session selector (hex).
    pub remote_ssel: Option<String>,
    /// Local presentation selector (hex).
    pub local_psel: Option<String>,
    /// Remote presentation selector (hex).
    pub remote_psel: Option<String>,
    /// Our AP-title (form 2, dotted OID).
    pub local_ap_title: Option<String>,
    /// Our AE-qualifier.
    pub local_ae_qualifier: Option<i64>,
    /// The peer's AP-title (the client calls it).
    pub remote_ap_title: Option<String>,
    /// The peer's AE-qualifier.
    pub remote_ae_qualifier: Option<i64>,
    /// Proposed TPDU size in octets (128–2048 in class 0; default 2048 per Annex H DECISION).
    pub tpdu_size: Option<usize>,
    /// Largest reassembled TSDU accepted (default 64 KiB per Annex H DECISION).
    pub max_tsdu: Option<usize>,
    /// Accept only calls whose called selectors match ours (Annex H DECISION; default true).
    pub check_selectors: Option<bool>,
}

/// Decodes a hex selector string.
pub fn parse_hex(field: &'static str, s: &str, max: usize) -> Result<Vec<u8>, ConfigError> {
    let s = s.trim();
    let bytes = secmms_ber::hex::decode(s).ok_or_else(|| ConfigError::Value {
        field,
        reason: format!("`{s}` is not hex"),
    })?;
    if bytes.len() > max {
        return Err(ConfigError::Value {
            field,
            reason: format!("at most {max} octets"),
        });
    }
    Ok(bytes)
}

impl OsiSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        crate::osi::osi_config(self, false).map(|_| ())
    }
}

/// Server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Plain RFC 1006 uses port 102, RFC 1006 over TLS port 3782 (§6.3).
    pub listen: String,
    /// Model file: `.cid`/`.icd`/`.scd`/`.xml` (SCL) or `.toml`. The built-in demo model when absent.
    pub model: Option<PathBuf>,
    /// Most associations established at once; one more is rejected (ACSE rejected-transient)
    /// once its security checks have passed.
    pub max_associations: usize,
    /// Most connections still being set up at once (TLS handshake, association, its checks):
    /// when a new connection finds them all taken, the oldest of them is dropped to make room,
    /// so connections that never authenticate cannot keep legitimate ones out.
    pub max_pending: usize,
    /// Most connections being set up from one source address; one more from that address is
    /// refused at once.
    pub max_pending_per_source: usize,
    /// Most connections (being set up or established) from one source address; 0: no limit.
    pub max_associations_per_source: usize,
    /// Seconds a new connection has to complete the association (input does not renew it).
    pub associate_timeout_secs: u64,
    /// Seconds without any input after which an association is aborted (0 = never).
    pub idle_timeout_secs: u64,
    /// Seconds a PDU may take from its first octet to its last (a TPKT, or a TSDU over several
    /// DTs), before and after the association is established; octets arriving do not renew it,
    /// so a peer that trickles octets cannot hold the association (0 = no limit).
    pub pdu_timeout_secs: u64,
    /// Seconds a write may wait for a peer that does not read (its socket buffers full) before
    /// the association is dropped; meanwhile it is served no further input. The idle timeout
    /// bounds it too when shorter (0 = no limit of its own).
    pub write_stall_secs: u64,
    /// Most TLS handshakes under way at once (a connection takes a slot when its first octets
    /// arrive and gives it back when its handshake ends); more wait, still pending, and are
    /// refused if no slot comes within `tls.handshake_timeout_secs` (0 = no limit).
    pub max_handshakes: usize,
    /// Most TLS handshakes started per second (a token bucket of this many; 0 = no limit);
    /// above it new connections wait as for `max_handshakes`.
    pub handshake_rate: u32,
    /// Largest MMS PDU the server accepts to negotiate.
    pub max_pdu_size: u32,
    /// Most outstanding requests the server accepts to negotiate.
    pub max_outstanding: u16,
    /// Most responses coalesced into one write when a client pipelines requests: the answers
    /// to a burst of requests read at once leave in groups of this many, so the client works on
    /// the first ones while the server prepares the rest. 0 writes a whole burst at once (the
    /// fewest system calls: best when busy associations keep every core loaded anyway). Absent
    /// (the default): adaptive: while no more associations are established than half the CPUs,
    /// groups of a quarter of the burst (at least 1); beyond that, whole bursts.
    /// docs/PERFORMANCE.md has the measurements behind the default.
    pub response_group: Option<usize>,
    /// Microseconds an established association keeps polling its socket after writing before
    /// its thread sleeps (plain TCP and TLS over TCP). A client that has just been answered
    /// often sends its next request within tens of microseconds; polling through that gap saves
    /// the kernel wake-up that otherwise dominates a one-outstanding round trip, at the price of
    /// CPU time spent polling. A peer whose last request did not come within the window is not
    /// polled for until one does (`transport::PollingTcpStream`). 0 never polls; at most
    /// [`ServerConfig::MAX_BUSY_POLL_US`]. Absent (the default): 0 for a server embedded in
    /// another program (`Server::bind`); for `secmms server`, the daemon
    /// (`Tuning::Daemon`), adaptive: [`ServerConfig::DEFAULT_BUSY_POLL_US`] while no more
    /// associations are established than half the CPUs (never on one CPU), 0 beyond that.
    /// docs/PERFORMANCE.md has the measurements.
    pub busy_poll_us: Option<u64>,
    /// Threads dedicated to associations, each running its own single-threaded runtime, started
    /// when the server binds; a new connection goes to the one serving the fewest connections.
    /// An association then lives on one thread that owns its socket's readiness, so its input
    /// wakes no other thread. 0 runs the associations as tasks of the runtime that runs the
    /// server (for embedding in an application's runtime; with many busy associations on few
    /// CPUs its work stealing gives more throughput, see docs/PERFORMANCE.md). At most
    /// [`ServerConfig::MAX_WORKER_THREADS`]. Absent (the default): 0 for a server embedded in
    /// another program (`Server::bind`); one per CPU for `secmms server`, the daemon
    /// (`Tuning::Daemon`).
    pub worker_threads: Option<usize>,
}

impl ServerConfig {
    /// The adaptive polling window of [`ServerConfig::busy_poll_us`], microseconds.
    pub const DEFAULT_BUSY_POLL_US: u64 = 100;
    /// Largest [`ServerConfig::busy_poll_us`] accepted (10 ms: polling is for gaps of
    /// microseconds; longer windows only burn CPU time).
    pub const MAX_BUSY_POLL_US: u64 = 10_000;
    /// Largest [`ServerConfig::worker_threads`] accepted.
    pub const MAX_WORKER_THREADS: usize = 1024;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:102".into(),
            model: None,
            max_associations: 1000,
            max_pending: 256,
            max_pending_per_source: 128,
            max_associations_per_source: 0,
            associate_timeout_secs: 10,
            idle_timeout_secs: 600,
            pdu_timeout_secs: 30,
            write_stall_secs: 30,
            max_handshakes: 64,
            handshake_rate: 1000,
            max_pdu_size: 65_000,
            max_outstanding: 16,
            response_group: None,
            busy_poll_us: None,
            worker_threads: None,
        }
    }
}

/// Client settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Seconds to wait for the association to be accepted.
    pub associate_timeout_secs: u64,
    /// Seconds to wait for each confirmed response.
    pub request_timeout_secs: u64,
    /// Outstanding requests proposed in the initiate request.
    pub max_outstanding: u16,
    /// Largest MMS PDU proposed in the initiate request.
    pub max_pdu_size: u32,
    /// Over XMPP: the full JID of the server to associate with (`--peer`).
    pub xmpp_peer: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            associate_timeout_secs: 10,
            request_timeout_secs: 10,
            max_outstanding: 16,
            max_pdu_size: 65_000,
            xmpp_peer: None,
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
