//! The `[tls]` configuration section ([`TlsConfig`]) and its validation: suites, versions, key
//! refresh, resumption, certificates, trust anchors and CRLs (§6.2 DECISIONs).

use super::*;

/// The `[tls]` configuration section (IEC 62351-4 §6; every default is a §6.2 DECISION).
///
/// ```toml
/// [tls]
/// enabled = true
/// cert = "server.pem"
/// key = "server.key"
/// ca = ["ca1.pem", "ca2.pem"]
/// crl = ["ca1.crl.pem"]
/// mode = "native"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Run RFC 1006 over TLS (port 3782). When false, plain RFC 1006 (port 102) is used and a
    /// `TLS_DISABLED` warning event is raised (§6.3.3).
    pub enabled: bool,
    /// Whether plain RFC 1006 may be used at all; a hardened deployment sets `false`, and then a
    /// configuration without TLS is refused at load time (§6.3.3).
    pub allow_plain: bool,
    /// Our TLS certificate (PEM; may be followed by intermediate certificates). Separate from the
    /// application (E2E / A-profile) certificate (62351-3).
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (PEM).
    pub key: Option<PathBuf>,
    /// Trust anchors: PEM files, each with one or more CA certificates (§6.2: several supported).
    pub ca: Vec<PathBuf>,
    /// Certificate revocation lists (PEM). A missing or stale CRL is a warning, never a disconnect.
    pub crl: Vec<PathBuf>,
    /// Suite table: `native` (Table 3) or `compat` (Table 2 + Table 3).
    pub mode: SuiteMode,
    /// Restrict the offered suites to these (IANA names, OpenSSL names or `0x....`); all suites
    /// of the table that the library provides when empty. Static DH suites are refused.
    pub suites: Vec<String>,
    /// Allow TLS 1.3 besides the mandatory TLS 1.2.
    pub tls13: bool,
    /// Seconds between key refreshes (TLS 1.2 renegotiation, TLS 1.3 KeyUpdate); §6.2 DECISION.
    pub renegotiation_interval_secs: u64,
    /// Plaintext octets (read + written) after which keys are refreshed; 0 disables the trigger.
    pub renegotiation_bytes: u64,
    /// Seconds the peer has to complete a renegotiation we started before it is cut off.
    pub renegotiation_grace_secs: u64,
    /// Server: what to do with a TLS 1.2 renegotiation the client starts: `limit` (default;
    /// 62351-3 §7 wants both sides able to renegotiate for key refresh) lets through at most
    /// `max_client_renegotiations_per_min`, `refuse` refuses every one. Each is a security
    /// event (`TLS_CLIENT_RENEG`); one refused (`TLS_CLIENT_RENEG_REFUSED`) ends the session.
    pub client_renegotiation: ClientRenegotiation,
    /// Server: client-started renegotiations let through per minute and session under
    /// `client_renegotiation = "limit"` (a token bucket of this many, refilled at this rate per
    /// minute; 1..=600, default 10). A peer renegotiating for key refresh does so at most every
    /// minute (`renegotiation_interval_secs` ≥ 60); each one costs the server a full handshake.
    pub max_client_renegotiations_per_min: u32,
    /// Session cache / ticket lifetime, seconds; must be shorter than the renegotiation interval.
    pub resumption_lifetime_secs: u64,
    /// Most sessions the server keeps for resumption (each about 10 KiB; OpenSSL's own default
    /// of 20 480 lets a client that renegotiates or reconnects in a loop grow the server by
    /// hundreds of MiB). MMS associations are long-lived and few, so a small cache serves them;
    /// when it is full the oldest sessions go. 1..=65 536.
    pub session_cache_size: u32,
    /// Largest certificate accepted from the peer, octets (§6.2 DECISION: 8 192).
    pub max_cert_size: usize,
    /// Seconds between re-evaluations of revocation information (§6.2 DECISION: 24 h).
    pub crl_evaluation_period_secs: u64,
    /// Seconds allowed for a handshake.
    pub handshake_timeout_secs: u64,
    /// Client: name sent in SNI and checked against the server certificate; no name check when
    /// absent (IEDs are usually addressed by IP; the chain is always checked).
    pub server_name: Option<String>,
    /// Server: a DER OCSP response for our certificate, stapled when the client asks
    /// (RFC 6066 status_request; OCSP "where OpenSSL allows": OpenSSL staples but does not fetch).
    pub ocsp_staple: Option<PathBuf>,
    /// Client: ask the server for a stapled OCSP response. A response saying "revoked" refuses
    /// the server (`TLS_CERT_REVOKED`); a missing, stale or unverifiable one is only a
    /// `TLS_CRL_UNAVAILABLE` warning (§6.2.8).
    pub ocsp_request: bool,
    /// OCSP lookups of the peer's certificate after each handshake (RFC 6960, §6.2.8): `off`
    /// (default), `soft-fail` (a revoked peer is refused, no answer is a TLS_OCSP_UNAVAILABLE
    /// warning) or `hard-fail` (no usable answer refuses the peer too). See [`crate::ocsp`].
    pub ocsp_check: crate::ocsp::OcspCheck,
    /// The OCSP responder (`http://host:port/`); default: the certificate's authorityInfoAccess.
    pub ocsp_responder: Option<String>,
    /// How long one OCSP lookup may take, seconds (1 ..= 60; default 5).
    pub ocsp_timeout_secs: u64,
    /// Write TLS secrets in the NSS key log format to this file (diagnostics only: anyone who
    /// reads it can decrypt the traffic). Only ever set explicitly (`--tls-keylog`; the
    /// `SSLKEYLOGFILE` environment variable is ignored); the file is created with mode 0600 and
    /// every session logged raises a `TLS_KEYLOG_ACTIVE` warning event.
    pub keylog_file: Option<PathBuf>,
    /// Server: TLS 1.3 session tickets sent after each handshake (§6.2 DECISION: 0). A ticket
    /// lets a client resume without a certificate check of its own, and libiec61850's TLS 1.3
    /// client (mbedTLS 3.6) drops a server that sends any.
    pub tls13_tickets: usize,
    /// How keys are refreshed on a TLS 1.3 session when the interval or byte count is reached
    /// (§6.2 DECISION: `key_update`). `new_association` ends the session instead, so the peer
    /// associates again with a full handshake (for peers such as libiec61850 / mbedTLS 3.6.0
    /// whose session ends on a KeyUpdate anyway).
    pub tls13_key_refresh: Tls13KeyRefresh,
    /// Client: skip the check of the server's identity (host name or IP address in its
    /// certificate). For laboratories only: every connection raises a
    /// `TLS_SERVER_CHECK_SKIPPED` alarm event.
    pub insecure_skip_server_check: bool,
    /// Accept only peers whose leaf certificate has one of these SHA-256 fingerprints (hex,
    /// colons optional), in addition to the chain check; every peer when empty.
    pub allowed_peer_fingerprints: Vec<String>,
    /// OpenSSL read-ahead (OpenSSL pulls several records at once): `auto` (on for servers, off
    /// for clients, where a TLS 1.2 HelloRequest arriving in front of buffered application data
    /// makes OpenSSL 3.0 refuse that data with "unexpected record"), `on` or `off`. The socket is
    /// read through a buffer below OpenSSL either way, so system calls stay few.
    pub read_ahead: ReadAhead,
}

/// How a TLS 1.3 session refreshes its keys ([`TlsConfig::tls13_key_refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls13KeyRefresh {
    /// A KeyUpdate message (RFC 8446 §4.6.3), after the peer's certificate is checked again.
    #[default]
    KeyUpdate,
    /// End the TLS session (close_notify); the peer associates again with a full handshake.
    NewAssociation,
}

/// Renegotiations the client starts ([`TlsConfig::client_renegotiation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRenegotiation {
    /// Let through at most [`TlsConfig::max_client_renegotiations_per_min`]; the next one is
    /// refused and ends the session.
    #[default]
    Limit,
    /// Refuse every one (the session ends with a handshake_failure alert).
    Refuse,
}

/// Default of [`TlsConfig::max_client_renegotiations_per_min`] (our DECISION: a peer that
/// refreshes its keys renegotiates at most once a minute; the issue-17 attack ran 1 070 a
/// second).
pub const DEFAULT_MAX_CLIENT_RENEGOTIATIONS_PER_MIN: u32 = 10;

/// OpenSSL read-ahead ([`TlsConfig::read_ahead`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadAhead {
    /// On for servers, off for clients.
    #[default]
    Auto,
    /// Always on.
    On,
    /// Always off.
    Off,
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, colons and spaces allowed.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Largest number of TLS 1.3 tickets accepted in configuration.
pub const MAX_TLS13_TICKETS: usize = 16;
/// Largest fingerprint allow-list accepted.
pub const MAX_ALLOWED_FINGERPRINTS: usize = 4096;

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            allow_plain: true,
            cert: None,
            key: None,
            ca: Vec::new(),
            crl: Vec::new(),
            mode: SuiteMode::Native,
            suites: Vec::new(),
            tls13: true,
            renegotiation_interval_secs: DEFAULT_RENEGOTIATION_INTERVAL_SECS,
            renegotiation_bytes: DEFAULT_RENEGOTIATION_BYTES,
            renegotiation_grace_secs: DEFAULT_RENEGOTIATION_GRACE_SECS,
            client_renegotiation: ClientRenegotiation::Limit,
            max_client_renegotiations_per_min: DEFAULT_MAX_CLIENT_RENEGOTIATIONS_PER_MIN,
            resumption_lifetime_secs: DEFAULT_RESUMPTION_LIFETIME_SECS,
            session_cache_size: DEFAULT_SESSION_CACHE_SIZE,
            max_cert_size: MAX_CERT_SIZE,
            crl_evaluation_period_secs: DEFAULT_CRL_EVALUATION_PERIOD_SECS,
            handshake_timeout_secs: DEFAULT_HANDSHAKE_TIMEOUT_SECS,
            server_name: None,
            ocsp_staple: None,
            ocsp_request: true,
            ocsp_check: crate::ocsp::OcspCheck::Off,
            ocsp_responder: None,
            ocsp_timeout_secs: 5,
            keylog_file: None,
            tls13_tickets: 0,
            tls13_key_refresh: Tls13KeyRefresh::KeyUpdate,
            insecure_skip_server_check: false,
            allowed_peer_fingerprints: Vec::new(),
            read_ahead: ReadAhead::Auto,
        }
    }
}

impl TlsConfig {
    /// Checks ranges and the suite policy without touching files.
    pub fn validate(&self) -> Result<(), TlsError> {
        if !self.enabled && !self.allow_plain {
            return Err(cfg_err(
                "tls.enabled",
                "TLS is disabled but tls.allow_plain = false forbids plain RFC 1006",
            ));
        }
        let r = self.renegotiation_interval_secs;
        if !(MIN_RENEGOTIATION_INTERVAL_SECS..=MAX_RENEGOTIATION_INTERVAL_SECS).contains(&r) {
            return Err(cfg_err(
                "tls.renegotiation_interval_secs",
                format!(
                    "must be {MIN_RENEGOTIATION_INTERVAL_SECS}..={MAX_RENEGOTIATION_INTERVAL_SECS}"
                ),
            ));
        }
        if self.resumption_lifetime_secs == 0 || self.resumption_lifetime_secs >= r {
            return Err(cfg_err(
                "tls.resumption_lifetime_secs",
                "must be more than 0 and less than the renegotiation interval (62351-3 §7)",
            ));
        }
        if !(1..=65_536).contains(&self.session_cache_size) {
            return Err(cfg_err("tls.session_cache_size", "must be 1..=65536"));
        }
        if !(1..=600).contains(&self.max_client_renegotiations_per_min) {
            return Err(cfg_err(
                "tls.max_client_renegotiations_per_min",
                "must be 1..=600",
            ));
        }
        if self.renegotiation_grace_secs == 0 || self.renegotiation_grace_secs > 3600 {
            return Err(cfg_err("tls.renegotiation_grace_secs", "must be 1..=3600"));
        }
        if !(1024..=65_536).contains(&self.max_cert_size) {
            return Err(cfg_err("tls.max_cert_size", "must be 1024..=65536"));
        }
        if !(1..=60).contains(&self.ocsp_timeout_secs) {
            return Err(cfg_err("tls.ocsp_timeout_secs", "must be 1..=60"));
        }
        if let Some(u) = &self.ocsp_responder {
            if !u.starts_with("http://") || u.len() > 2048 {
                return Err(cfg_err(
                    "tls.ocsp_responder",
                    "must be an http:// URL (RFC 6960 Appendix A) of at most 2048 characters",
                ));
            }
        }
        if self.crl_evaluation_period_secs == 0
            || self.crl_evaluation_period_secs > DEFAULT_CRL_EVALUATION_PERIOD_SECS
        {
            return Err(cfg_err(
                "tls.crl_evaluation_period_secs",
                "must be 1..=86400 (at least every 24 h, §6.2)",
            ));
        }
        if !(1..=3600).contains(&self.handshake_timeout_secs) {
            return Err(cfg_err("tls.handshake_timeout_secs", "must be 1..=3600"));
        }
        if self.tls13_tickets > MAX_TLS13_TICKETS {
            return Err(cfg_err(
                "tls.tls13_tickets",
                format!("must be 0..={MAX_TLS13_TICKETS}"),
            ));
        }
        if self.allowed_peer_fingerprints.len() > MAX_ALLOWED_FINGERPRINTS {
            return Err(cfg_err(
                "tls.allowed_peer_fingerprints",
                format!("at most {MAX_ALLOWED_FINGERPRINTS} entries"),
            ));
        }
        for f in &self.allowed_peer_fingerprints {
            if parse_fingerprint(f).is_none() {
                return Err(cfg_err(
                    "tls.allowed_peer_fingerprints",
                    format!("`{f}` is not a SHA-256 fingerprint (64 hex digits)"),
                ));
            }
        }
        if self.ca.len() > MAX_TRUST_ANCHORS {
            return Err(cfg_err(
                "tls.ca",
                format!("at most {MAX_TRUST_ANCHORS} files"),
            ));
        }
        self.cipher_list()?;
        if self.enabled {
            if self.cert.is_none() || self.key.is_none() {
                return Err(cfg_err(
                    "tls.cert",
                    "TLS needs our certificate and key (mutual authentication is mandatory)",
                ));
            }
            if self.ca.is_empty() {
                return Err(cfg_err(
                    "tls.ca",
                    "TLS needs at least one trust anchor to authenticate the peer",
                ));
            }
        }
        Ok(())
    }

    /// The suites offered, in order, after applying `suites` to the table of `mode`.
    pub fn offered_suites(&self) -> Result<Vec<&'static CipherSuite>, TlsError> {
        let table = self.mode.table();
        if self.suites.is_empty() {
            return Ok(table.into_iter().filter(|s| s.openssl.is_some()).collect());
        }
        let mut out = Vec::new();
        for name in &self.suites {
            if FORBIDDEN_SUITE_MARKERS
                .iter()
                .any(|m| name.to_ascii_uppercase().contains(&m.to_ascii_uppercase()))
            {
                return Err(cfg_err(
                    "tls.suites",
                    format!("{name}: RC4, NULL, anonymous and export suites are never allowed"),
                ));
            }
            let s = find_suite(name).ok_or_else(|| {
                cfg_err(
                    "tls.suites",
                    format!("{name} is not in the clause 6 tables"),
                )
            })?;
            if s.openssl.is_none() {
                return Err(TlsError::UnsupportedSuite {
                    name: s.name,
                    iana: s.iana,
                });
            }
            if !table.iter().any(|t| t.iana == s.iana) {
                return Err(cfg_err(
                    "tls.suites",
                    format!("{name} belongs to the compatibility table; set tls.mode = \"compat\""),
                ));
            }
            if !out.iter().any(|o: &&CipherSuite| o.iana == s.iana) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The OpenSSL cipher list (TLS 1.2) of the offered suites.
    pub fn cipher_list(&self) -> Result<String, TlsError> {
        let names: Vec<&str> = self
            .offered_suites()?
            .iter()
            .filter_map(|s| s.openssl)
            .collect();
        if names.is_empty() {
            return Err(cfg_err("tls.suites", "no suite left to offer"));
        }
        Ok(names.join(":"))
    }
}
