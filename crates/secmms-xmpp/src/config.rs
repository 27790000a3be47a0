//! The `[xmpp]` configuration section.
//!
//! ```toml
//! [xmpp]
//! server = "127.0.0.1:5222"
//! jid = "scada@dso.org"          # bare JID; the domain is taken from it unless `domain` is set
//! password_file = "/etc/secmms/xmpp.pw"
//! sasl = "plain"                 # or "external" (client certificate, IEC 62351-4 §6.4)
//! ca = ["xmpp-ca.pem"]
//! resource = "IEC"
//!
//! [xmpp.reconnect]
//! initial_delay_ms = 500
//! max_delay_ms = 30000
//! max_attempts = 10
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::XmppError;
use crate::limits;
use crate::stream::StreamLimits;

/// SASL mechanism (RFC 6120 §6; IEC 62351-4 §6.4 names EXTERNAL with a certificate, or PLAIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaslMechanism {
    /// RFC 4616 PLAIN: username and password, only ever sent inside TLS unless the
    /// configuration explicitly allows a plain stream.
    #[default]
    Plain,
    /// RFC 4422 EXTERNAL: the identity of the TLS client certificate.
    External,
}

impl SaslMechanism {
    /// The mechanism name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::External => "EXTERNAL",
        }
    }
}

/// Exponential backoff between connection attempts after a link loss.
///
/// Attempt *n* (0-based) waits `min(initial_delay_ms × multiplierⁿ, max_delay_ms)`; after
/// `max_attempts` failed attempts in a row the client gives up (0: never gives up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// Delay before the first attempt, milliseconds.
    pub initial_delay_ms: u64,
    /// Largest delay, milliseconds.
    pub max_delay_ms: u64,
    /// Growth factor of the delay (1 keeps it constant).
    pub multiplier: u32,
    /// Failed attempts in a row before giving up; 0 = no limit.
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay_ms: limits::DEFAULT_RECONNECT_INITIAL_MS,
            max_delay_ms: limits::DEFAULT_RECONNECT_MAX_MS,
            multiplier: limits::DEFAULT_RECONNECT_MULTIPLIER,
            max_attempts: limits::DEFAULT_RECONNECT_MAX_ATTEMPTS,
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.initial_delay_ms.min(self.max_delay_ms);
        let factor = u64::from(self.multiplier)
            .checked_pow(attempt)
            .unwrap_or(u64::MAX);
        Duration::from_millis(base.saturating_mul(factor).min(self.max_delay_ms))
    }

    /// Whether another attempt is allowed after `failed` failures in a row.
    pub fn may_retry(&self, failed: u32) -> bool {
        self.max_attempts == 0 || failed < self.max_attempts
    }
}

/// The `[xmpp]` section: where the server is, who we are, how we authenticate and what we trust.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct XmppConfig {
    /// `host:port` of the server's client port.
    pub server: String,
    /// The XMPP domain: sent in the stream header and checked against the server certificate
    /// (DNS-ID, RFC 6125). Empty: the domain part of `jid`.
    pub domain: String,
    /// Our bare JID (`local@domain`); its local part is the SASL PLAIN username.
    pub jid: String,
    /// Password for SASL PLAIN (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password (first line; a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// SASL mechanism.
    pub sasl: SaslMechanism,
    /// Trust anchors: PEM files with one or more CA certificates. Empty: OpenSSL's default
    /// store (system roots).
    pub ca: Vec<PathBuf>,
    /// Our TLS client certificate (PEM, may be followed by intermediates); required for
    /// SASL EXTERNAL.
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// Resource requested at binding (IEC 62351-4 §16.6: `IEC`).
    pub resource: String,
    /// Refuse a server that does not offer STARTTLS (default true). Setting it false lets the
    /// client continue in clear — for tests only.
    pub require_tls: bool,
    /// Allow TLS 1.3 besides the mandatory TLS 1.2.
    pub tls13: bool,
    /// Send initial presence after binding (RFC 6121 §4.2).
    pub initial_presence: bool,
    /// Seconds allowed for the TCP connection.
    pub connect_timeout_secs: u64,
    /// Seconds allowed for each negotiation step and each write.
    pub step_timeout_secs: u64,
    /// Seconds of silence before a keep-alive ping; 0 disables keep-alive.
    pub keepalive_secs: u64,
    /// Seconds a keep-alive ping may stay unanswered before the link is declared dead.
    pub ping_timeout_secs: u64,
    /// Largest element accepted from the server, octets.
    pub max_stanza_size: usize,
    /// Reconnection policy.
    pub reconnect: ReconnectPolicy,
}

impl Default for XmppConfig {
    fn default() -> Self {
        XmppConfig {
            server: format!("127.0.0.1:{}", limits::DEFAULT_PORT),
            domain: String::new(),
            jid: String::new(),
            password: None,
            password_file: None,
            sasl: SaslMechanism::Plain,
            ca: Vec::new(),
            cert: None,
            key: None,
            resource: limits::DEFAULT_RESOURCE.to_owned(),
            require_tls: true,
            tls13: true,
            initial_presence: true,
            connect_timeout_secs: limits::DEFAULT_CONNECT_TIMEOUT_SECS,
            step_timeout_secs: limits::DEFAULT_STEP_TIMEOUT_SECS,
            keepalive_secs: limits::DEFAULT_KEEPALIVE_SECS,
            ping_timeout_secs: limits::DEFAULT_PING_TIMEOUT_SECS,
            max_stanza_size: limits::DEFAULT_MAX_STANZA_SIZE,
            reconnect: ReconnectPolicy::default(),
        }
    }
}

impl std::fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConfig")
            .field("server", &self.server)
            .field("domain", &self.domain)
            .field("jid", &self.jid)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("sasl", &self.sasl)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("resource", &self.resource)
            .field("require_tls", &self.require_tls)
            .field("tls13", &self.tls13)
            .field("initial_presence", &self.initial_presence)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("step_timeout_secs", &self.step_timeout_secs)
            .field("keepalive_secs", &self.keepalive_secs)
            .field("ping_timeout_secs", &self.ping_timeout_secs)
            .field("max_stanza_size", &self.max_stanza_size)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// Largest timeout or keep-alive period accepted, seconds (one day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

fn cfg_err(field: &'static str, reason: impl Into<String>) -> XmppError {
    XmppError::Config {
        field,
        reason: reason.into(),
    }
}

impl XmppConfig {
    /// Splits `jid` into local part and domain.
    fn jid_parts(&self) -> Result<(&str, &str), XmppError> {
        if self.jid.contains('/') {
            return Err(cfg_err("jid", "must be a bare JID (no /resource)"));
        }
        match self.jid.split_once('@') {
            Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('@') => Ok((l, d)),
            _ => Err(cfg_err("jid", "expected local@domain")),
        }
    }

    /// The XMPP domain in use.
    pub fn domain(&self) -> Result<&str, XmppError> {
        if self.domain.is_empty() {
            Ok(self.jid_parts()?.1)
        } else {
            Ok(&self.domain)
        }
    }

    /// The SASL PLAIN username (the local part of `jid`).
    pub fn username(&self) -> Result<&str, XmppError> {
        Ok(self.jid_parts()?.0)
    }

    /// The password, from `password` or `password_file`.
    pub fn load_password(&self) -> Result<Zeroizing<String>, XmppError> {
        match (&self.password, &self.password_file) {
            (Some(p), None) => Ok(Zeroizing::new(p.clone())),
            (None, Some(f)) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(f)
                        .map_err(|e| cfg_err("password_file", format!("{}: {e}", f.display())))?,
                );
                let line = text.lines().next().unwrap_or("");
                Ok(Zeroizing::new(line.to_owned()))
            }
            (Some(_), Some(_)) => Err(cfg_err(
                "password",
                "set either password or password_file, not both",
            )),
            (None, None) => Err(cfg_err("password", "SASL PLAIN needs a password")),
        }
    }

    /// The stream reader limits this configuration asks for.
    pub fn stream_limits(&self) -> StreamLimits {
        StreamLimits {
            max_stanza_size: self.max_stanza_size,
            ..StreamLimits::default()
        }
    }

    /// Checks the section; run at load time.
    pub fn validate(&self) -> Result<(), XmppError> {
        if self.server.rsplit_once(':').is_none() {
            return Err(cfg_err("server", "expected host:port"));
        }
        let (_, jid_domain) = self.jid_parts()?;
        if !self.domain.is_empty() && !self.domain.eq_ignore_ascii_case(jid_domain) {
            return Err(cfg_err("domain", "differs from the domain of jid"));
        }
        match self.sasl {
            SaslMechanism::Plain => {
                self.load_password()?;
            }
            SaslMechanism::External => {
                if self.cert.is_none() || self.key.is_none() {
                    return Err(cfg_err(
                        "cert",
                        "SASL EXTERNAL needs a client certificate and key",
                    ));
                }
                if !self.require_tls {
                    return Err(cfg_err("require_tls", "SASL EXTERNAL needs TLS"));
                }
            }
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(cfg_err("key", "cert and key go together"));
        }
        if self.resource.is_empty() || self.resource.len() > 1023 {
            return Err(cfg_err("resource", "must be 1..=1023 octets"));
        }
        if self.connect_timeout_secs == 0 || self.step_timeout_secs == 0 {
            return Err(cfg_err(
                "step_timeout_secs",
                "timeouts must be at least 1 s",
            ));
        }
        if self.keepalive_secs != 0 && self.ping_timeout_secs == 0 {
            return Err(cfg_err("ping_timeout_secs", "must be at least 1 s"));
        }
        // Upper bounds: a timeout is added to a clock reading, so an absurd value must be
        // refused here rather than overflow there.
        for (field, v) in [
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("step_timeout_secs", self.step_timeout_secs),
            ("keepalive_secs", self.keepalive_secs),
            ("ping_timeout_secs", self.ping_timeout_secs),
        ] {
            if v > MAX_TIMEOUT_SECS {
                return Err(cfg_err(
                    field,
                    format!("must be at most {MAX_TIMEOUT_SECS} s"),
                ));
            }
        }
        if self.max_stanza_size > 16 * 1024 * 1024 {
            return Err(cfg_err("max_stanza_size", "must be at most 16 MiB"));
        }
        if self.max_stanza_size < 10_000 {
            return Err(cfg_err(
                "max_stanza_size",
                "RFC 6120 §13.12 requires at least 10 000 octets",
            ));
        }
        if self.reconnect.multiplier == 0 || self.reconnect.max_delay_ms == 0 {
            return Err(cfg_err(
                "reconnect",
                "multiplier and max_delay_ms must be ≥ 1",
            ));
        }
        Ok(())
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The per-step timeout.
    pub fn step_timeout(&self) -> Duration {
        Duration::from_secs(self.step_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_section_parses_with_defaults() {
        let cfg: XmppConfig = toml::from_str(
            r#"
            server = "127.0.0.1:5222"
            jid = "scada@dso.org"
            password = "pw"
            ca = ["ca.pem"]
            [reconnect]
            max_attempts = 3
            "#,
        )
        .unwrap();
        assert_eq!(cfg.resource, "IEC");
        assert!(cfg.require_tls);
        assert_eq!(cfg.sasl, SaslMechanism::Plain);
        assert_eq!(cfg.reconnect.max_attempts, 3);
        assert_eq!(cfg.reconnect.initial_delay_ms, 500);
        assert_eq!(cfg.domain().unwrap(), "dso.org");
        assert_eq!(cfg.username().unwrap(), "scada");
        cfg.validate().unwrap();
        assert!(!format!("{cfg:?}").contains("\"pw\""));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<XmppConfig>("sever = \"x\"").is_err());
        assert!(toml::from_str::<XmppConfig>("sasl = \"scram\"").is_err());
        let mut cfg = XmppConfig {
            jid: "a@b".into(),
            password: Some("x".into()),
            ..Default::default()
        };
        cfg.validate().unwrap();
        cfg.jid = "a@b/res".into();
        assert!(cfg.validate().is_err());
        cfg.jid = "a@b".into();
        cfg.sasl = SaslMechanism::External;
        assert!(matches!(
            cfg.validate(),
            Err(XmppError::Config { field: "cert", .. })
        ));
        cfg.sasl = SaslMechanism::Plain;
        cfg.domain = "c".into();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn backoff_grows_to_the_cap_and_stops() {
        let p = ReconnectPolicy {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            multiplier: 3,
            max_attempts: 4,
        };
        let d: Vec<u64> = (0..6).map(|a| p.delay(a).as_millis() as u64).collect();
        assert_eq!(d, [100, 300, 900, 1000, 1000, 1000]);
        assert!(p.may_retry(3));
        assert!(!p.may_retry(4));
        let unlimited = ReconnectPolicy {
            max_attempts: 0,
            ..p
        };
        assert!(unlimited.may_retry(u32::MAX));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(1000));
    }
}
