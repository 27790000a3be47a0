//! T-profile: TLS between TCP and RFC 1006 (IEC 62351-4 clause 6, TLS as profiled by IEC 62351-3).
//!
//! * [`TlsConfig`] — the `[tls]` section of the configuration, validated at load time: suite table
//!   (§6.3.4.2 compatibility / §6.3.4.3 native), TLS 1.2 mandatory and TLS 1.3 optional, key refresh
//!   intervals, resumption lifetime, certificate size, trust anchors and CRLs (§6.2).
//! * [`TlsContext`] — a server or client OpenSSL context built from it. [`TlsContext::accept`] and
//!   [`TlsContext::connect`] run the handshake with mutual authentication and report every refusal
//!   as a [`SecurityEvent`].
//! * [`TlsStream`] — the established stream; it refreshes its keys by itself (TLS 1.2 renegotiation
//!   per RFC 5746, or TLS 1.3 KeyUpdate) after the configured interval or byte count, and cuts off a
//!   peer that does not complete a renegotiation in time.
//!
//! The one private FFI module (`ffi`) wraps the few OpenSSL calls the `openssl` crate lacks
//! (`SSL_renegotiate`, `SSL_key_update`, `SSL_renegotiate_pending`, the RFC 5746 support query,
//! ClientHello extension lookup, automatic DHE parameters).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use openssl::ssl::{
    ClientHelloResponse, Ssl, SslAlert, SslContext, SslContextBuilder, SslFiletype, SslMethod,
    SslOptions, SslRef, SslSessionCacheMode, SslVerifyMode, SslVersion,
};
use openssl::x509::store::{X509Lookup, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContextRef, X509VerifyResult, X509};
use secmms_pki::event::{tls_events, EventId, SecurityEvent, SecurityEventSink, Severity};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_openssl::SslStream;

/// IANA port of RFC 1006 over TLS, "iso-tp0s" (IEC 62351-4 §6.3).
pub const TLS_PORT: u16 = 3782;
/// Port of plain RFC 1006 (§6.3.3: only when TLS is disabled by configuration).
pub const PLAIN_PORT: u16 = 102;

/// §6.2 DECISION: default renegotiation interval, 12 h.
pub const DEFAULT_RENEGOTIATION_INTERVAL_SECS: u64 = 12 * 3600;
/// §6.2 DECISION: shortest renegotiation interval accepted, 1 min.
pub const MIN_RENEGOTIATION_INTERVAL_SECS: u64 = 60;
/// §6.2 (62351-3 §7): renegotiation at least every 24 h.
pub const MAX_RENEGOTIATION_INTERVAL_SECS: u64 = 24 * 3600;
/// Our DECISION (the spec fixes no byte count): refresh keys after 4 GiB in either direction.
pub const DEFAULT_RENEGOTIATION_BYTES: u64 = 1 << 32;
/// Our DECISION: time a peer has to complete a renegotiation we asked for before it is cut off
/// with "session renegotiation interval expired" (62351-3 §7).
pub const DEFAULT_RENEGOTIATION_GRACE_SECS: u64 = 30;
/// §6.2 DECISION: session cache / ticket lifetime 6 h (libiec61850's 21 600 s), always shorter than
/// the renegotiation interval.
pub const DEFAULT_RESUMPTION_LIFETIME_SECS: u64 = 6 * 3600;
/// §6.2 DECISION: at least this many trust anchors are supported (the PICS states the number).
pub const MIN_SUPPORTED_TRUST_ANCHORS: usize = 4;
/// Most trust-anchor certificates accepted from configuration (a bound, not a spec value).
pub const MAX_TRUST_ANCHORS: usize = 256;
/// §6.2 DECISION / Annex G: largest single certificate received, 8 192 octets.
pub const MAX_CERT_SIZE: usize = 8192;
/// §6.2 DECISION: revocation status re-evaluated at least every 24 h.
pub const DEFAULT_CRL_EVALUATION_PERIOD_SECS: u64 = 24 * 3600;
/// Time allowed for a TLS handshake (our DECISION).
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// OpenSSL security level (62351-3: RSA ≥ 2048 bits mandatory, SHA-256): level 2 refuses RSA,
/// DSA and DH keys below 2048 bits and signatures weaker than 112 bits, on both sides.
pub const OPENSSL_SECURITY_LEVEL: u32 = 2;
/// TLS 1.3 suites offered when TLS 1.3 is enabled (AES-GCM only, like the IEC 61850 peers).
pub const TLS13_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

/// Whether the table of clause 6 makes a suite mandatory or optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Requirement {
    /// "m" in the table.
    Mandatory,
    /// "o" in the table.
    Optional,
}

/// One cipher suite of the clause 6 tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CipherSuite {
    /// IANA code point.
    pub iana: u16,
    /// IANA name.
    pub name: &'static str,
    /// OpenSSL's name, `None` when no maintained library implements it (static DH).
    pub openssl: Option<&'static str>,
    /// Status in the table.
    pub requirement: Requirement,
}

const fn suite(
    iana: u16,
    name: &'static str,
    openssl: Option<&'static str>,
    requirement: Requirement,
) -> CipherSuite {
    CipherSuite {
        iana,
        name,
        openssl,
        requirement,
    }
}

/// Table 3 — native-mode suites (§6.3.4.3; code points corrected per the spec), followed by the
/// optional suites the spec's DECISION adds for interop (0xC02C, 0xC023).
pub const NATIVE_SUITES: &[CipherSuite] = &[
    suite(
        0x003C,
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        Some("AES128-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0x00A0,
        "TLS_DH_RSA_WITH_AES_128_GCM_SHA256",
        None,
        Requirement::Mandatory,
    ),
    suite(
        0x009E,
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        Some("DHE-RSA-AES128-GCM-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0xC02B,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Some("ECDHE-ECDSA-AES128-GCM-SHA256"),
        Requirement::Mandatory,
    ),
    suite(
        0x00A1,
        "TLS_DH_RSA_WITH_AES_256_GCM_SHA384",
        None,
        Requirement::Optional,
    ),
    suite(
        0xC02F,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Some("ECDHE-RSA-AES128-GCM-SHA256"),
        Requirement::Optional,
    ),
    suite(
        0xC030,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        Some("ECDHE-RSA-AES256-GCM-SHA384"),
        Requirement::Optional,
    ),
    suite(
        0xC02C,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        Some("ECDHE-ECDSA-AES256-GCM-SHA384"),
        Requirement::Optional,
    ),
    suite(
        0xC023,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        Some("ECDHE-ECDSA-AES128-SHA256"),
        Requirement::Optional,
    ),
];

/// Table 2 — compatibility-mode suites (§6.3.4.2, the 2007 set without RC4). Most are static DH
/// or 3DES, which current OpenSSL builds do not provide; compatibility mode offers these where
/// the library has them, plus the native table.
pub const COMPAT_SUITES: &[CipherSuite] = &[
    suite(
        0x0036,
        "TLS_DH_DSS_WITH_AES_256_CBC_SHA",
        None,
        Requirement::Mandatory,
    ),
    suite(
        0x000A,
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        Some("DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x000D,
        "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA",
        None,
        Requirement::Optional,
    ),
    suite(
        0x0010,
        "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA",
        None,
        Requirement::Optional,
    ),
    suite(
        0x0013,
        "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
        Some("DHE-DSS-DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x0016,
        "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
        Some("DHE-RSA-DES-CBC3-SHA"),
        Requirement::Optional,
    ),
    suite(
        0x0030,
        "TLS_DH_DSS_WITH_AES_128_CBC_SHA",
        None,
        Requirement::Optional,
    ),
];

/// Name fragments of suites that are never offered nor accepted (§6.3.4: no RC4, NULL,
/// anonymous or export suites).
pub const FORBIDDEN_SUITE_MARKERS: &[&str] = &["RC4", "NULL", "anon", "EXPORT", "_DH_anon_"];

/// Which table of clause 6 the suite policy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuiteMode {
    /// Native mode: Table 3 (§6.3.4.3).
    #[default]
    Native,
    /// Compatibility mode: Table 2 (§6.3.4.2) plus Table 3.
    Compat,
}

impl SuiteMode {
    /// The suites of this mode, in offer order.
    pub fn table(self) -> Vec<&'static CipherSuite> {
        match self {
            SuiteMode::Native => NATIVE_SUITES.iter().collect(),
            SuiteMode::Compat => NATIVE_SUITES.iter().chain(COMPAT_SUITES.iter()).collect(),
        }
    }
}

/// Finds a suite of either table by IANA name, OpenSSL name or hex code point (`0x009E`).
pub fn find_suite(name: &str) -> Option<&'static CipherSuite> {
    let code = name
        .strip_prefix("0x")
        .or_else(|| name.strip_prefix("0X"))
        .and_then(|h| u16::from_str_radix(h, 16).ok());
    NATIVE_SUITES
        .iter()
        .chain(COMPAT_SUITES.iter())
        .find(|s| s.name == name || s.openssl == Some(name) || Some(s.iana) == code)
}

/// Whether the linked OpenSSL implements a suite (false for static DH and for suites the build
/// leaves out, e.g. 3DES in OpenSSL 3 default builds).
pub fn library_supports(s: &CipherSuite) -> bool {
    let Some(name) = s.openssl else { return false };
    let Ok(mut b) = SslContextBuilder::new(SslMethod::tls()) else {
        return false;
    };
    b.set_cipher_list(&format!("{name}:@SECLEVEL=0")).is_ok()
}

/// One line of the conformance statement (PICS) for the clause 6 suite tables.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteSupport {
    /// The suite.
    pub suite: CipherSuite,
    /// The table it comes from: `native` (Table 3) or `compat` (Table 2).
    pub table: &'static str,
    /// Whether secmms offers and accepts it with the linked OpenSSL.
    pub supported: bool,
}

/// The suite part of the conformance statement: every suite of both tables and whether it is
/// supported (static DH never is: no maintained library implements it).
pub fn conformance_statement() -> Vec<SuiteSupport> {
    let rows = NATIVE_SUITES
        .iter()
        .map(|s| ("native", s))
        .chain(COMPAT_SUITES.iter().map(|s| ("compat", s)));
    rows.map(|(table, s)| SuiteSupport {
        suite: *s,
        table,
        supported: library_supports(s),
    })
    .collect()
}

/// Errors of the TLS configuration, context and handshake.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configuration value is wrong.
    #[error("invalid TLS configuration {field}: {reason}")]
    Config {
        /// The dotted field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A suite named in the configuration is not implemented by any maintained TLS library.
    #[error(
        "cipher suite {name} (0x{iana:04X}) is not supported: static DH key exchange is not \
         implemented by OpenSSL or any maintained TLS library (see the conformance statement)"
    )]
    UnsupportedSuite {
        /// IANA name.
        name: &'static str,
        /// IANA code point.
        iana: u16,
    },
    /// A file could not be read or parsed.
    #[error("cannot load {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// OpenSSL refused a setting.
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    /// The handshake failed; the event explains why.
    #[error("TLS handshake refused ({mnemonic}): {detail}")]
    Handshake {
        /// The mnemonic of the event raised.
        mnemonic: &'static str,
        /// What happened.
        detail: String,
    },
    /// The TCP stream failed.
    #[error("transport error: {0}")]
    Io(#[from] io::Error),
}

fn cfg_err(field: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::Config {
        field,
        reason: reason.into(),
    }
}

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
    /// Accept renegotiations the client starts (the spec wants both directions).
    pub allow_client_renegotiation: bool,
    /// Session cache / ticket lifetime, seconds; must be shorter than the renegotiation interval.
    pub resumption_lifetime_secs: u64,
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
            allow_client_renegotiation: true,
            resumption_lifetime_secs: DEFAULT_RESUMPTION_LIFETIME_SECS,
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

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// Why a TLS peer was refused or warned about; each maps to one event of
/// [`secmms_pki::event::tls_events`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsFinding {
    /// TLS disabled by configuration (warning).
    Disabled,
    /// TLS < 1.2 or SSL offered.
    InsecureVersion,
    /// No allowed suite in common.
    CipherDisallowed,
    /// No peer certificate.
    CertUnavailable,
    /// Peer certificate expired.
    CertExpired,
    /// Peer certificate not yet valid.
    CertNotYetValid,
    /// Peer certificate revoked.
    CertRevoked,
    /// Chain does not end at a configured trust anchor.
    CaUnknown,
    /// A certificate above the size limit.
    CertSizeExceeded,
    /// Another validation failure.
    CertInvalid,
    /// CRL missing or stale (warning only).
    CrlUnavailable,
    /// The peer lacks RFC 5746 secure renegotiation.
    RenegotiationInsecure,
    /// The peer did not complete a renegotiation in time.
    RenegotiationIntervalExpired,
    /// Keys refreshed (notice).
    KeysRefreshed,
    /// Other handshake failure.
    HandshakeFailed,
    /// Session established (notice).
    Established,
    /// The TLS version changed at resumption or renegotiation.
    VersionChanged,
    /// The peer's certificate is not on the allow-list.
    CertNotAllowed,
    /// Secrets written to a key log (warning).
    KeylogActive,
    /// Server identity not checked by configuration.
    ServerCheckSkipped,
    /// The server's certificate does not name the expected host or address.
    ServerIdentityMismatch,
    /// No usable OCSP answer for the peer's certificate.
    OcspUnavailable,
}

impl TlsFinding {
    /// Every finding (for documentation and the id-uniqueness test).
    pub const ALL: [TlsFinding; 22] = [
        TlsFinding::Disabled,
        TlsFinding::InsecureVersion,
        TlsFinding::CipherDisallowed,
        TlsFinding::CertUnavailable,
        TlsFinding::CertExpired,
        TlsFinding::CertNotYetValid,
        TlsFinding::CertRevoked,
        TlsFinding::CaUnknown,
        TlsFinding::CertSizeExceeded,
        TlsFinding::CertInvalid,
        TlsFinding::CrlUnavailable,
        TlsFinding::RenegotiationInsecure,
        TlsFinding::RenegotiationIntervalExpired,
        TlsFinding::KeysRefreshed,
        TlsFinding::HandshakeFailed,
        TlsFinding::Established,
        TlsFinding::VersionChanged,
        TlsFinding::CertNotAllowed,
        TlsFinding::KeylogActive,
        TlsFinding::ServerCheckSkipped,
        TlsFinding::ServerIdentityMismatch,
        TlsFinding::OcspUnavailable,
    ];
}

impl TlsFinding {
    /// Event id and mnemonic.
    pub fn id(self) -> (EventId, &'static str) {
        use tls_events::*;
        match self {
            TlsFinding::Disabled => TLS_DISABLED,
            TlsFinding::InsecureVersion => TLS_VERSION_INSECURE,
            TlsFinding::CipherDisallowed => TLS_CIPHER_DISALLOWED,
            TlsFinding::CertUnavailable => TLS_CERT_UNAVAILABLE,
            TlsFinding::CertExpired => TLS_CERT_EXPIRED,
            TlsFinding::CertNotYetValid => TLS_CERT_NOT_YET_VALID,
            TlsFinding::CertRevoked => TLS_CERT_REVOKED,
            TlsFinding::CaUnknown => TLS_CA_UNKNOWN,
            TlsFinding::CertSizeExceeded => TLS_CERT_SIZE_EXCEEDED,
            TlsFinding::CertInvalid => TLS_CERT_INVALID,
            TlsFinding::CrlUnavailable => TLS_CRL_UNAVAILABLE,
            TlsFinding::RenegotiationInsecure => TLS_RENEG_INSECURE,
            TlsFinding::RenegotiationIntervalExpired => TLS_RENEG_INTERVAL_EXPIRED,
            TlsFinding::KeysRefreshed => TLS_KEYS_REFRESHED,
            TlsFinding::HandshakeFailed => TLS_HANDSHAKE_FAILED,
            TlsFinding::Established => TLS_ESTABLISHED,
            TlsFinding::VersionChanged => TLS_VERSION_CHANGED,
            TlsFinding::CertNotAllowed => TLS_CERT_NOT_ALLOWED,
            TlsFinding::KeylogActive => TLS_KEYLOG_ACTIVE,
            TlsFinding::ServerCheckSkipped => TLS_SERVER_CHECK_SKIPPED,
            TlsFinding::ServerIdentityMismatch => TLS_SERVER_IDENTITY_MISMATCH,
            TlsFinding::OcspUnavailable => TLS_OCSP_UNAVAILABLE,
        }
    }

    /// Severity: §6.2.8 makes an expired certificate a warning and a revoked one an incident;
    /// 62351-3 §7 makes the rest alarms, a stale CRL a warning.
    pub fn severity(self) -> Severity {
        match self {
            TlsFinding::Disabled
            | TlsFinding::KeylogActive
            | TlsFinding::CrlUnavailable
            | TlsFinding::OcspUnavailable
            | TlsFinding::CertExpired
            | TlsFinding::CertNotYetValid => Severity::Warning,
            TlsFinding::KeysRefreshed | TlsFinding::Established => Severity::Notice,
            TlsFinding::CipherDisallowed
            | TlsFinding::CertInvalid
            | TlsFinding::HandshakeFailed => Severity::Error,
            // §6.2.8: incident "revoked public-key certificate".
            TlsFinding::CertRevoked => Severity::Incident,
            TlsFinding::InsecureVersion
            | TlsFinding::CertUnavailable
            | TlsFinding::CaUnknown
            | TlsFinding::CertSizeExceeded
            | TlsFinding::RenegotiationInsecure
            | TlsFinding::RenegotiationIntervalExpired
            | TlsFinding::VersionChanged
            | TlsFinding::CertNotAllowed
            | TlsFinding::ServerCheckSkipped
            | TlsFinding::ServerIdentityMismatch => Severity::Alarm,
        }
    }

    /// Builds the security event.
    pub fn event(self, message: String, association: Option<String>) -> SecurityEvent {
        let (id, mnemonic) = self.id();
        SecurityEvent {
            id,
            mnemonic,
            severity: self.severity(),
            message,
            association,
        }
    }
}

/// A sink that writes security events to `tracing` (the default when none is configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl SecurityEventSink for TracingSink {
    fn record(&self, e: &SecurityEvent) {
        match e.severity {
            Severity::Warning => tracing::warn!(target: "secmms::security", "{e}"),
            Severity::Notice => tracing::info!(target: "secmms::security", "{e}"),
            // Alarm, error, and any more severe class.
            _ => tracing::error!(target: "secmms::security", "{e}"),
        }
    }
}

/// Raises the `TLS_DISABLED` warning (§6.3.3) for a plain RFC 1006 endpoint.
pub fn report_plain(sink: &dyn SecurityEventSink, role: &str, addr: &str) {
    sink.record(&TlsFinding::Disabled.event(
        format!("{role} uses plain RFC 1006 on {addr}: TLS disabled by configuration"),
        None,
    ));
}

/// Counters of one TLS context, shared with its streams.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: AtomicU64,
    /// Handshakes refused.
    pub refused: AtomicU64,
    /// Sessions resumed (abbreviated handshakes).
    pub resumed: AtomicU64,
    /// TLS 1.2 renegotiations completed that we started.
    pub renegotiations: AtomicU64,
    /// TLS 1.3 key updates we sent.
    pub key_updates: AtomicU64,
}

type Findings = Arc<Mutex<Vec<(TlsFinding, String)>>>;

fn push(f: &Findings, kind: TlsFinding, detail: String) {
    match f.lock() {
        Ok(mut g) => {
            if g.len() < 16 {
                g.push((kind, detail))
            }
        }
        Err(p) => p.into_inner().push((kind, detail)),
    }
}

fn take(f: &Findings) -> Vec<(TlsFinding, String)> {
    match f.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    }
}

fn findings_index() -> Option<openssl::ex_data::Index<Ssl, Findings>> {
    static IDX: OnceLock<Option<openssl::ex_data::Index<Ssl, Findings>>> = OnceLock::new();
    *IDX.get_or_init(|| Ssl::new_ex_index().ok())
}

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

/// Which side of the handshake a context serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts connections (port 3782).
    Server,
    /// Opens connections.
    Client,
}

/// A configured TLS context (server or client) and its event sink.
pub struct TlsContext {
    /// The current OpenSSL context; replaced by a rebuilt one (empty session cache, fresh
    /// ticket keys) when revocation information changes.
    ctx: std::sync::RwLock<SslContext>,
    role: Role,
    cfg: TlsConfig,
    sink: Arc<dyn SecurityEventSink>,
    stats: Arc<TlsStats>,
    generation: Arc<AtomicU64>,
    /// Wakes idle streams when `generation` changes.
    notify: Arc<tokio::sync::Notify>,
    /// SHA-256 of each configured CRL file as last loaded (None: not loadable).
    crl_digests: Mutex<Vec<Option<[u8; 32]>>>,
    /// OCSP lookups (`ocsp_check` not off).
    ocsp: Option<crate::ocsp::OcspChecker>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("role", &self.role)
            .field("mode", &self.cfg.mode)
            .finish()
    }
}

fn read_file(path: &Path, max: u64) -> Result<Vec<u8>, TlsError> {
    let fail = |reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > max {
        return Err(fail(format!("{len} octets is more than {max}")));
    }
    std::fs::read(path).map_err(|e| fail(e.to_string()))
}

/// Octets of the buffer through which OpenSSL reads the socket.
const READ_BUFFER: usize = 32 * 1024;

/// Largest PEM file read for certificates, keys and trust anchors.
const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

impl TlsContext {
    /// A server context (accepts on port 3782, requires a client certificate).
    pub fn server(cfg: &TlsConfig, sink: Arc<dyn SecurityEventSink>) -> Result<Self, TlsError> {
        Self::build(cfg, Role::Server, sink)
    }

    /// A client context (presents our certificate, verifies the server's chain).
    pub fn client(cfg: &TlsConfig, sink: Arc<dyn SecurityEventSink>) -> Result<Self, TlsError> {
        Self::build(cfg, Role::Client, sink)
    }

    fn build(
        cfg: &TlsConfig,
        role: Role,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, TlsError> {
        let mut enabled = cfg.clone();
        enabled.enabled = true;
        enabled.validate()?;
        let (ctx, crl_digests) = build_ssl_context(cfg, role, sink.as_ref())?;
        Ok(TlsContext {
            ctx: std::sync::RwLock::new(ctx),
            role,
            cfg: cfg.clone(),
            sink,
            stats: Arc::new(TlsStats::default()),
            generation: Arc::new(AtomicU64::new(0)),
            notify: Arc::new(tokio::sync::Notify::new()),
            crl_digests: Mutex::new(crl_digests),
            ocsp: (cfg.ocsp_check != crate::ocsp::OcspCheck::Off).then(|| {
                crate::ocsp::OcspChecker::new(
                    cfg.ocsp_responder.clone(),
                    Duration::from_secs(cfg.ocsp_timeout_secs.clamp(1, 60)),
                )
            }),
        })
    }

    /// The current OpenSSL context.
    fn current(&self) -> SslContext {
        match self.ctx.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

/// Builds the OpenSSL context of `cfg` for `role`; also returns the digests of the CRL files
/// as loaded.
#[allow(clippy::type_complexity)]
fn build_ssl_context(
    cfg: &TlsConfig,
    role: Role,
    sink: &dyn SecurityEventSink,
) -> Result<(SslContext, Vec<Option<[u8; 32]>>), TlsError> {
    {
        let method = match role {
            Role::Server => SslMethod::tls_server(),
            Role::Client => SslMethod::tls_client(),
        };
        let mut b = SslContextBuilder::new(method)?;
        // Read whole TLS records (and any that follow) in one system call rather than the
        // 5-octet header and the body in two: MMS PDUs are small, so this halves the reads.
        // (`auto` turns it off again on TLS 1.2 client sessions, see `TlsContext::new_ssl`.)
        b.set_read_ahead(cfg.read_ahead != ReadAhead::Off);
        // §6.2 / 62351-3: TLS 1.2 mandatory, TLS 1.3 optional, nothing older.
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_max_proto_version(Some(if cfg.tls13 {
            SslVersion::TLS1_3
        } else {
            SslVersion::TLS1_2
        }))?;
        b.set_security_level(OPENSSL_SECURITY_LEVEL);
        b.set_cipher_list(&cfg.cipher_list()?)?;
        if cfg.tls13 {
            b.set_ciphersuites(TLS13_SUITES)?;
        }
        // Compression off; no legacy unsafe renegotiation.
        // A renegotiation is always a full handshake: new master secret, and the peer's
        // certificate validated again (revocation re-evaluated, §6.2 DECISION).
        let mut opts = SslOptions::NO_COMPRESSION
            | SslOptions::CIPHER_SERVER_PREFERENCE
            | SslOptions::NO_SESSION_RESUMPTION_ON_RENEGOTIATION;
        if role == Role::Server && cfg.allow_client_renegotiation {
            opts |= ffi::OP_ALLOW_CLIENT_RENEGOTIATION;
        }
        b.set_options(opts);
        b.clear_options(
            SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION | SslOptions::NO_RENEGOTIATION,
        );
        ffi::set_dh_auto(&mut b);

        // Our certificate (chain) and key.
        let cert = cfg
            .cert
            .as_deref()
            .ok_or_else(|| cfg_err("tls.cert", "missing"))?;
        let key = cfg
            .key
            .as_deref()
            .ok_or_else(|| cfg_err("tls.key", "missing"))?;
        let pem = read_file(cert, MAX_PEM_FILE)?;
        let mut chain = X509::stack_from_pem(&pem).map_err(|e| TlsError::File {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
        if chain.is_empty() {
            return Err(cfg_err("tls.cert", "no certificate in the file"));
        }
        let leaf = chain.remove(0);
        b.set_certificate(&leaf)?;
        for c in chain {
            b.add_extra_chain_cert(c)?;
        }
        let key_pem = read_file(key, MAX_PEM_FILE)?;
        let pkey =
            openssl::pkey::PKey::private_key_from_pem(&key_pem).map_err(|e| TlsError::File {
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
        b.set_private_key(&pkey)?;
        b.check_private_key()?;

        // Trust anchors (several) and CRLs.
        let mut store = X509StoreBuilder::new()?;
        let mut anchors = 0usize;
        for path in &cfg.ca {
            let pem = read_file(path, MAX_PEM_FILE)?;
            let certs = X509::stack_from_pem(&pem).map_err(|e| TlsError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for c in certs {
                anchors += 1;
                if anchors > MAX_TRUST_ANCHORS {
                    return Err(cfg_err("tls.ca", format!("more than {MAX_TRUST_ANCHORS}")));
                }
                store.add_cert(c)?;
            }
        }
        if anchors == 0 {
            return Err(cfg_err("tls.ca", "no CA certificate found"));
        }
        let mut crl_digests = Vec::new();
        if !cfg.crl.is_empty() {
            let lookup = store.add_lookup(X509Lookup::file())?;
            for path in &cfg.crl {
                crl_digests.push(
                    read_file(path, MAX_PEM_FILE)
                        .ok()
                        .map(|b| openssl::sha::sha256(&b)),
                );
                let ok = path.is_file()
                    && lookup
                        .load_crl_file(path, SslFiletype::PEM)
                        .map(|n| n > 0)
                        .unwrap_or(false);
                if !ok {
                    // §6.2.8: unavailable revocation information is a warning, never a refusal.
                    sink.record(&TlsFinding::CrlUnavailable.event(
                        format!(
                            "cannot load CRL {}; peers are accepted with a warning",
                            path.display()
                        ),
                        None,
                    ));
                }
            }
            store.set_flags(X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL)?;
        }
        b.set_cert_store(store.build());
        b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        b.set_verify_depth(8);
        // Bound the peer's whole Certificate message: a few certificates of the maximal size.
        ffi::set_max_cert_list(&mut b, cfg.max_cert_size.saturating_mul(8));

        // Resumption (§6.2 DECISION: lifetime below the renegotiation interval).
        b.set_session_id_context(b"secmms-rfc1006-tls")?;
        ffi::set_session_timeout(&mut b, cfg.resumption_lifetime_secs);
        b.set_session_cache_mode(match role {
            Role::Server => SslSessionCacheMode::SERVER,
            Role::Client => SslSessionCacheMode::CLIENT,
        });

        if role == Role::Server {
            ffi::set_client_hello_callback(&mut b, client_hello_policy);
            if let Some(path) = &cfg.ocsp_staple {
                match read_file(path, MAX_PEM_FILE) {
                    Ok(der) => {
                        b.set_status_callback(move |ssl| {
                            ssl.set_ocsp_status(&der)?;
                            Ok(true)
                        })?;
                    }
                    Err(e) => sink.record(
                        &TlsFinding::CrlUnavailable
                            .event(format!("OCSP response not stapled: {e}"), None),
                    ),
                }
            }
        } else if cfg.ocsp_request {
            b.set_status_callback(check_stapled_ocsp)?;
        }
        if role == Role::Server {
            // §6.2 DECISION: no TLS 1.3 tickets unless configured (see `tls13_tickets`).
            b.set_num_tickets(cfg.tls13_tickets)?;
        }
        if let Some(path) = &cfg.keylog_file {
            let file = open_keylog(path).map_err(|e| TlsError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let file = Mutex::new(file);
            b.set_keylog_callback(move |_, line| {
                use std::io::Write;
                if let Ok(mut f) = file.lock() {
                    let _ = writeln!(f, "{line}");
                }
            });
        }
        Ok((b.build(), crl_digests))
    }
}

/// Opens (creating or appending to) a TLS key log readable by its owner only (mode 0600).
fn open_keylog(path: &Path) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        o.mode(0o600);
        let f = o.open(path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        o.open(path)
    }
}

/// The host part of `host:port`, `[v6]:port` or a bare host.
fn host_of(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match peer.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.parse::<u16>().is_ok() => h,
        _ => peer,
    }
}

impl TlsContext {
    /// The counters of this context.
    pub fn stats(&self) -> Arc<TlsStats> {
        self.stats.clone()
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TlsConfig {
        &self.cfg
    }

    /// Asks every established stream of this context to refresh its keys at its next read or
    /// write (used after a CRL update, §6.2 DECISION, so the peer's certificate is checked again).
    pub fn force_renegotiation(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    /// A handle that forces renegotiation like [`TlsContext::force_renegotiation`], usable after
    /// the context moved into a running server.
    pub fn renegotiation_trigger(&self) -> RenegotiationTrigger {
        RenegotiationTrigger(self.generation.clone(), self.notify.clone())
    }

    /// Re-reads the configured CRL files (§6.2 DECISION: at least every
    /// `crl_evaluation_period_secs`). New CRLs are added to the trust store (OpenSSL prefers the
    /// most recent CRL of an issuer); when any file changed, every established stream
    /// renegotiates, so the peer's certificate is validated again against the new CRL. An
    /// unreadable CRL raises the `TLS_CRL_UNAVAILABLE` warning and changes nothing. Returns
    /// whether a CRL changed.
    pub fn reload_crls(&self) -> bool {
        let mut changed = false;
        let mut digests = match self.crl_digests.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (i, path) in self.cfg.crl.iter().enumerate() {
            let crls = read_file(path, MAX_PEM_FILE).and_then(|b| {
                let digest = openssl::sha::sha256(&b);
                let list = parse_crls(&b).map_err(|reason| TlsError::File {
                    path: path.clone(),
                    reason,
                })?;
                Ok((digest, list))
            });
            match crls {
                Ok((digest, list)) => {
                    if digests.get(i).copied().flatten() == Some(digest) {
                        continue;
                    }
                    // Streams established on the current context check their peers against
                    // its store: give it the new CRLs too.
                    let ctx = self.current();
                    for crl in &list {
                        ffi::store_add_crl(ctx.cert_store(), crl);
                    }
                    if let Some(d) = digests.get_mut(i) {
                        *d = Some(digest);
                    }
                    changed = true;
                }
                Err(e) => self.sink.record(&TlsFinding::CrlUnavailable.event(
                    format!("CRL re-evaluation: {e}; peers stay connected"),
                    None,
                )),
            }
        }
        if changed {
            // New connections get a rebuilt context: an empty session cache and fresh ticket
            // keys, so no session established before the change can be resumed (§6.2).
            self.rebuild();
            self.force_renegotiation();
        }
        changed
    }

    /// Replaces the OpenSSL context by one built again from the configuration (files read
    /// again): an empty session cache and fresh TLS ticket keys. Established streams keep
    /// theirs. A failure keeps the current context and raises `TLS_CRL_UNAVAILABLE`.
    pub fn rebuild(&self) -> bool {
        match build_ssl_context(&self.cfg, self.role, self.sink.as_ref()) {
            Ok((ctx, _)) => {
                match self.ctx.write() {
                    Ok(mut g) => *g = ctx,
                    Err(p) => *p.into_inner() = ctx,
                }
                true
            }
            Err(e) => {
                self.sink.record(&TlsFinding::CrlUnavailable.event(
                    format!("TLS context not rebuilt, the previous one stays in use: {e}"),
                    None,
                ));
                false
            }
        }
    }

    /// The OCSP step after a handshake ([`crate::ocsp`]): `Some(error)` when the peer must be
    /// refused; events are raised here.
    async fn check_ocsp(&self, ssl: &SslRef, peer: &str) -> Option<TlsError> {
        use crate::ocsp::{OcspCheck, OcspVerdict};
        let checker = self.ocsp.as_ref()?;
        let leaf = ssl.peer_certificate()?;
        let ctx = ssl.ssl_context().to_owned();
        let mut chain = openssl::stack::Stack::new().ok()?;
        if let Some(c) = ssl.peer_cert_chain() {
            for x in c {
                let _ = chain.push(x.to_owned());
            }
        }
        let verdict = match crate::ocsp::issuer_of(&leaf, &chain, ctx.cert_store()) {
            Some(issuer) => {
                checker
                    .check(&leaf, &issuer, &chain, ctx.cert_store())
                    .await
            }
            None => {
                OcspVerdict::Unavailable("the issuer of the peer's certificate is not known".into())
            }
        };
        let refuse = |kind: TlsFinding, detail: String| {
            self.report(kind, detail.clone(), peer);
            Some(TlsError::Handshake {
                mnemonic: kind.id().1,
                detail,
            })
        };
        match verdict {
            OcspVerdict::Good => None,
            OcspVerdict::Revoked => refuse(
                TlsFinding::CertRevoked,
                "OCSP: the peer's certificate is revoked".into(),
            ),
            OcspVerdict::Unavailable(why) if self.cfg.ocsp_check == OcspCheck::HardFail => refuse(
                TlsFinding::OcspUnavailable,
                format!("{why} (ocsp_check = hard-fail)"),
            ),
            OcspVerdict::Unavailable(why) => {
                self.report(
                    TlsFinding::OcspUnavailable,
                    format!("{why}; the peer is let in (ocsp_check = soft-fail)"),
                    peer,
                );
                None
            }
        }
    }

    fn report(&self, kind: TlsFinding, detail: String, peer: &str) {
        self.sink
            .record(&kind.event(format!("{peer}: {detail}"), Some(peer.to_string())));
    }

    fn new_ssl(&self, findings: &Findings, peer: &str) -> Result<Ssl, TlsError> {
        let mut ssl = Ssl::new(&self.current())?;
        if let Some(idx) = findings_index() {
            ssl.set_ex_data(idx, findings.clone());
        }
        let f = findings.clone();
        let max = self.cfg.max_cert_size;
        let allowed: Arc<Vec<[u8; 32]>> = Arc::new(
            self.cfg
                .allowed_peer_fingerprints
                .iter()
                .filter_map(|s| parse_fingerprint(s))
                .collect(),
        );
        ssl.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            move |ok, ctx| {
                verify_certificate(ok, ctx, max, &f)
                    && (ctx.error_depth() != 0 || check_allowed(ctx, &allowed, &f))
            },
        );
        if self.role == Role::Client {
            if self.cfg.read_ahead == ReadAhead::Auto {
                // A client may be sent a HelloRequest (TLS 1.2) right in front of application
                // data: OpenSSL must meet the records one at a time (the buffer below it keeps
                // the socket reads large).
                ffi::set_read_ahead(&ssl, false);
            }
            if self.cfg.ocsp_request {
                ssl.set_status_type(openssl::ssl::StatusType::OCSP)?;
            }
            // The server's identity: --server-name, else the host we connect to.
            let expected = match &self.cfg.server_name {
                Some(n) => Some(n.as_str()),
                None if self.cfg.insecure_skip_server_check => None,
                None => Some(host_of(peer)),
            };
            match expected.map(|h| (h, h.parse::<std::net::IpAddr>())) {
                Some((_, Ok(ip))) => ssl.param_mut().set_ip(ip)?,
                Some((name, Err(_))) => {
                    ssl.set_hostname(name)?;
                    ssl.param_mut().set_host(name)?;
                }
                None => {}
            }
        }
        Ok(ssl)
    }

    /// Runs the server handshake on an accepted connection.
    pub async fn accept<S>(&self, stream: S, peer: SocketAddr) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(stream, peer.to_string()).await
    }

    /// Runs the client handshake on a connected stream. `peer` is the address connected to
    /// (`host:port`, `[v6]:port` or a bare host): it names the session in events, and its host
    /// is the identity the server's certificate must carry (an IP address against the IP SANs,
    /// a name against the DNS SANs and sent as SNI) unless `server_name` overrides it or
    /// `insecure_skip_server_check` is set.
    pub async fn connect<S>(&self, stream: S, peer: &str) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(stream, peer.to_string()).await
    }

    async fn handshake<S>(&self, stream: S, peer: String) -> Result<TlsStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let findings: Findings = Arc::default();
        let ssl = self.new_ssl(&findings, &peer)?;
        if self.role == Role::Client
            && self.cfg.insecure_skip_server_check
            && self.cfg.server_name.is_none()
        {
            self.report(
                TlsFinding::ServerCheckSkipped,
                "the server's identity is not checked (insecure_skip_server_check): any holder \
                 of a certificate from the trust anchors can pose as this server"
                    .into(),
                &peer,
            );
        }
        // OpenSSL reads through a buffer of ours: with OpenSSL's read-ahead off it takes one
        // record at a time (see `ReadAhead::Auto`) while the socket is still read in large chunks.
        let mut s = SslStream::new(ssl, BufReader::with_capacity(READ_BUFFER, stream))?;
        let timeout = Duration::from_secs(self.cfg.handshake_timeout_secs.max(1));
        let role = self.role;
        let r = tokio::time::timeout(timeout, async {
            match role {
                Role::Server => Pin::new(&mut s).accept().await,
                Role::Client => Pin::new(&mut s).connect().await,
            }
        })
        .await;
        let found = take(&findings);
        // Warnings (stale CRL) are reported whether or not the handshake succeeded.
        for (k, d) in found
            .iter()
            .filter(|(k, _)| *k == TlsFinding::CrlUnavailable)
        {
            self.report(*k, d.clone(), &peer);
        }
        let failure = match r {
            Err(_) => Some((
                TlsFinding::HandshakeFailed,
                format!("no handshake within {timeout:?}"),
            )),
            Ok(Err(e)) => Some(classify(&found, &e, s.ssl())),
            Ok(Ok(())) => None,
        };
        if let Some((kind, detail)) = failure {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.report(kind, detail.clone(), &peer);
            return Err(TlsError::Handshake {
                mnemonic: kind.id().1,
                detail,
            });
        }
        let ssl = s.ssl();
        let tls12 = ssl.version2() == Some(SslVersion::TLS1_2);
        if tls12 && !ffi::secure_renegotiation_support(ssl) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            let detail = "peer does not support RFC 5746 secure renegotiation".to_string();
            self.report(TlsFinding::RenegotiationInsecure, detail.clone(), &peer);
            return Err(TlsError::Handshake {
                mnemonic: TlsFinding::RenegotiationInsecure.id().1,
                detail,
            });
        }
        if ssl.session_reused() {
            // §6.2: a resumed session skips the certificate exchange; check the peer's
            // certificate of the session against today's trust store and CRLs.
            if let Some((kind, detail)) = revalidate_peer(ssl) {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                let detail = format!("at session resumption: {detail}");
                self.report(kind, detail.clone(), &peer);
                return Err(TlsError::Handshake {
                    mnemonic: kind.id().1,
                    detail,
                });
            }
        }
        if let Some(refusal) = self.check_ocsp(ssl, &peer).await {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refusal);
        }
        let ssl = s.ssl();
        let tls13 = ssl.version2() == Some(SslVersion::TLS1_3);
        // Alarms the ClientHello callback prepared (a session of another version offered).
        for (k, d) in found
            .iter()
            .filter(|(k, _)| *k == TlsFinding::VersionChanged)
        {
            let offered_tls12 = d.starts_with("a TLS 1.2 session");
            if offered_tls12 == tls13 {
                self.report(*k, d.clone(), &peer);
            }
        }
        if let Some(path) = &self.cfg.keylog_file {
            self.report(
                TlsFinding::KeylogActive,
                format!(
                    "the secrets of this session are written to {} (anyone who reads it can \
                     decrypt the traffic)",
                    path.display()
                ),
                &peer,
            );
        }
        self.stats.handshakes.fetch_add(1, Ordering::Relaxed);
        if ssl.session_reused() {
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
        }
        let info = TlsInfo::of(ssl);
        self.report(
            TlsFinding::Established,
            format!(
                "{} {}{}",
                info.version,
                info.cipher,
                if info.resumed { " (resumed)" } else { "" }
            ),
            &peer,
        );
        Ok(TlsStream::new(s, self, peer, findings))
    }
}

/// Parses every CRL of a PEM file.
fn parse_crls(pem: &[u8]) -> Result<Vec<openssl::x509::X509Crl>, String> {
    const BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.windows(BEGIN.len()).position(|w| w == BEGIN) {
        let block = &rest[at..];
        let next = block[BEGIN.len()..]
            .windows(BEGIN.len())
            .position(|w| w == BEGIN)
            .map(|n| n + BEGIN.len())
            .unwrap_or(block.len());
        out.push(openssl::x509::X509Crl::from_pem(&block[..next]).map_err(|e| e.to_string())?);
        rest = &block[next..];
        if out.len() > 64 {
            return Err("more than 64 CRLs in one file".into());
        }
    }
    if out.is_empty() {
        return Err("no CRL in the file".into());
    }
    Ok(out)
}

/// Forces every established stream of one context to refresh its keys (after a CRL update,
/// §6.2 DECISION, so that the peer's certificate is validated again).
#[derive(Debug, Clone)]
pub struct RenegotiationTrigger(Arc<AtomicU64>, Arc<tokio::sync::Notify>);

impl RenegotiationTrigger {
    /// Asks every stream to renegotiate (TLS 1.2) or update its keys (TLS 1.3) now; idle streams
    /// are woken.
    pub fn force(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        self.1.notify_waiters();
    }
}

type Waiter = Pin<Box<dyn Future<Output = ()> + Send>>;

fn waiter(n: &Arc<tokio::sync::Notify>) -> Waiter {
    let n = n.clone();
    Box::pin(async move { n.notified().await })
}

/// What was negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.2`.
    pub version: String,
    /// OpenSSL name of the suite.
    pub cipher: String,
    /// IANA code point of the suite, when known.
    pub iana: Option<u16>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// Subject of the peer certificate.
    pub peer_subject: Option<String>,
}

impl TlsInfo {
    fn of(ssl: &SslRef) -> TlsInfo {
        let cipher = ssl.current_cipher();
        TlsInfo {
            version: ssl.version_str().to_string(),
            cipher: cipher.map(|c| c.name().to_string()).unwrap_or_default(),
            iana: cipher.and_then(|c| u16::try_from(c.protocol_id_u64()).ok()),
            resumed: ssl.session_reused(),
            peer_subject: ssl.peer_certificate().map(|c| {
                c.subject_name()
                    .entries()
                    .map(|e| {
                        e.data()
                            .as_slice()
                            .iter()
                            .map(|&b| b as char)
                            .collect::<String>()
                    })
                    .collect::<Vec<_>>()
                    .join("/")
            }),
        }
    }
}

trait ProtocolId {
    fn protocol_id_u64(&self) -> u64;
}
impl ProtocolId for openssl::ssl::SslCipherRef {
    fn protocol_id_u64(&self) -> u64 {
        let id = self.protocol_id();
        u64::from(u16::from_be_bytes(id))
    }
}

/// The ClientHello policy of the server (runs before any suite is chosen): refuse TLS < 1.2
/// offers and TLS 1.2 offers without RFC 5746, each with its event.
fn client_hello_policy(
    hello: &ffi::ClientHello<'_>,
    alert: &mut SslAlert,
) -> Result<ClientHelloResponse, openssl::error::ErrorStack> {
    let ssl = hello.ssl();
    let findings = findings_index().and_then(|i| ssl.ex_data(i)).cloned();
    let legacy = hello.legacy_version();
    let versions = hello.ext(EXT_SUPPORTED_VERSIONS);
    let offers = |v: u16| match &versions {
        // supported_versions: length octet, then 2-octet versions.
        Some(body) => body
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(2)
            .any(|c| u16::from_be_bytes([c[0], c[1]]) == v),
        None => legacy >= v,
    };
    let fail = |kind: TlsFinding, detail: String, a: SslAlert, alert: &mut SslAlert| {
        if let Some(f) = &findings {
            push(f, kind, detail);
        }
        *alert = a;
        Err(openssl::error::ErrorStack::get())
    };
    if !offers(0x0303) && !offers(0x0304) {
        return fail(
            TlsFinding::InsecureVersion,
            format!("peer offered only protocol version 0x{legacy:04X} (TLS 1.2 is the minimum)"),
            SslAlert::PROTOCOL_VERSION,
            alert,
        );
    }
    let scsv = ssl
        .client_hello_ciphers()
        .unwrap_or_default()
        .chunks_exact(2)
        .any(|c| c == [0x00, 0xFF]);
    let ri = hello.ext(EXT_RENEGOTIATION_INFO).is_some();
    if offers(0x0303) && !scsv && !ri {
        return fail(
            TlsFinding::RenegotiationInsecure,
            "TLS 1.2 ClientHello without RFC 5746 renegotiation_info or SCSV".into(),
            SslAlert::HANDSHAKE_FAILURE,
            alert,
        );
    }
    // A session offered for resumption whose version may differ from the one negotiated: a
    // TLS 1.2 ticket (session_ticket) in a hello that offers TLS 1.3, or a TLS 1.3 PSK in one
    // that also offers TLS 1.2. The handshake decides; `handshake` raises the alarm when the
    // version did change.
    if let Some(f) = &findings {
        let ticket = hello.ext(EXT_SESSION_TICKET).is_some_and(|t| !t.is_empty());
        if ticket && offers(0x0304) {
            push(
                f,
                TlsFinding::VersionChanged,
                "a TLS 1.2 session was offered for resumption in a TLS 1.3 handshake".into(),
            );
        }
        if hello.ext(EXT_PRE_SHARED_KEY).is_some() && offers(0x0303) {
            push(
                f,
                TlsFinding::VersionChanged,
                "a TLS 1.3 session (PSK) was offered for resumption; TLS 1.2 was negotiated".into(),
            );
        }
    }
    Ok(ClientHelloResponse::SUCCESS)
}

/// Client: checks the OCSP response the server stapled (RFC 6066). Revoked → refuse; anything
/// else that is not a verified "good" → warning only (§6.2.8: missing revocation information
/// never ends a session).
fn check_stapled_ocsp(ssl: &mut SslRef) -> Result<bool, openssl::error::ErrorStack> {
    let findings = findings_index().and_then(|i| ssl.ex_data(i)).cloned();
    let note = |kind: TlsFinding, detail: String| {
        if let Some(f) = &findings {
            push(f, kind, detail);
        }
    };
    let Some(der) = ssl.ocsp_status() else {
        // Most servers staple nothing; CRLs cover revocation then. Not worth a warning.
        tracing::debug!("server stapled no OCSP response");
        return Ok(true);
    };
    let verdict = (|| -> Result<Option<(TlsFinding, String)>, String> {
        let leaf = ssl.peer_certificate().ok_or("no server certificate")?;
        let store = ssl.ssl_context().cert_store();
        let mut chain = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
        if let Some(c) = ssl.peer_cert_chain() {
            for x in c {
                chain.push(x.to_owned()).map_err(|e| e.to_string())?;
            }
        }
        let issuer = crate::ocsp::issuer_of(&leaf, &chain, store)
            .ok_or("issuer of the server certificate not found")?;
        match crate::ocsp::evaluate(der, &leaf, &issuer, &chain, store)
            .map_err(|e| format!("stapled OCSP response: {e}"))?
            .0
        {
            crate::ocsp::OcspVerdict::Good => Ok(None),
            crate::ocsp::OcspVerdict::Revoked => Ok(Some((
                TlsFinding::CertRevoked,
                "stapled OCSP response: server certificate revoked".into(),
            ))),
            crate::ocsp::OcspVerdict::Unavailable(why) => {
                Err(format!("stapled OCSP response: {why}"))
            }
        }
    })();
    match verdict {
        Ok(None) => Ok(true),
        Ok(Some((kind, detail))) => {
            note(kind, detail);
            Ok(false)
        }
        Err(detail) => {
            note(TlsFinding::CrlUnavailable, detail);
            Ok(true)
        }
    }
}

/// TLS extension `supported_versions` (RFC 8446).
const EXT_SUPPORTED_VERSIONS: u32 = 43;
/// TLS extension `renegotiation_info` (RFC 5746).
const EXT_RENEGOTIATION_INFO: u32 = 0xff01;
/// TLS extension `session_ticket` (RFC 5077).
const EXT_SESSION_TICKET: u32 = 35;
/// TLS extension `pre_shared_key` (RFC 8446).
const EXT_PRE_SHARED_KEY: u32 = 41;

/// At depth 0: the leaf's SHA-256 fingerprint must be on the allow-list, when there is one.
fn check_allowed(ctx: &X509StoreContextRef, allowed: &[[u8; 32]], findings: &Findings) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(der) = ctx.current_cert().and_then(|c| c.to_der().ok()) else {
        return false;
    };
    let fp = openssl::sha::sha256(&der);
    if allowed.contains(&fp) {
        return true;
    }
    let hex: String = fp.iter().map(|b| format!("{b:02x}")).collect();
    push(
        findings,
        TlsFinding::CertNotAllowed,
        format!("certificate SHA-256 {hex} is not in tls.allowed_peer_fingerprints"),
    );
    false
}

/// Per-certificate verification: size limit, then OpenSSL's verdict mapped to findings.
/// A missing or stale CRL is turned into a warning and accepted (§6.2.8).
fn verify_certificate(
    preverify_ok: bool,
    ctx: &mut X509StoreContextRef,
    max_size: usize,
    findings: &Findings,
) -> bool {
    let depth = ctx.error_depth();
    if let Some(cert) = ctx.current_cert() {
        let size = cert.to_der().map(|d| d.len()).unwrap_or(usize::MAX);
        if size > max_size {
            push(
                findings,
                TlsFinding::CertSizeExceeded,
                format!("certificate at depth {depth} is {size} octets (limit {max_size})"),
            );
            return false;
        }
    }
    if preverify_ok {
        return true;
    }
    let err = ctx.error();
    let code = err.as_raw();
    let detail = format!("depth {depth}: {}", err.error_string());
    let kind = match code {
        X509_V_ERR_UNABLE_TO_GET_CRL
        | X509_V_ERR_CRL_HAS_EXPIRED
        | X509_V_ERR_CRL_NOT_YET_VALID => {
            push(findings, TlsFinding::CrlUnavailable, detail);
            ctx.set_error(X509VerifyResult::OK);
            return true;
        }
        X509_V_ERR_CERT_HAS_EXPIRED => TlsFinding::CertExpired,
        X509_V_ERR_CERT_NOT_YET_VALID => TlsFinding::CertNotYetValid,
        X509_V_ERR_CERT_REVOKED => TlsFinding::CertRevoked,
        X509_V_ERR_HOSTNAME_MISMATCH | X509_V_ERR_IP_ADDRESS_MISMATCH => {
            push(
                findings,
                TlsFinding::ServerIdentityMismatch,
                format!(
                    "{detail}: the server's certificate does not name the host or address we \
                     connected to; issue it with that name (`secmms cert issue --tls --ip ADDR \
                     --dns NAME`), connect by a name it carries, or give --server-name"
                ),
            );
            return false;
        }
        X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
        | X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        | X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
        | X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
        | X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE => TlsFinding::CaUnknown,
        _ => TlsFinding::CertInvalid,
    };
    push(findings, kind, detail);
    false
}

/// Validates the peer's certificate chain again against the context's current trust store and
/// CRLs (TLS 1.3 key refresh). `None` when it is still acceptable (a missing or stale CRL only
/// warns, §6.2.8); otherwise the finding.
fn revalidate_peer(ssl: &SslRef) -> Option<(TlsFinding, String)> {
    let cert = ssl.peer_certificate()?;
    let mut chain = openssl::stack::Stack::new().ok()?;
    if let Some(peer_chain) = ssl.peer_cert_chain() {
        for c in peer_chain {
            let _ = chain.push(c.to_owned());
        }
    }
    let store = ssl.ssl_context().cert_store();
    let mut ctx = openssl::x509::X509StoreContext::new().ok()?;
    let findings: Findings = Arc::default();
    let f = findings.clone();
    let ok = ctx
        .init(store, &cert, &chain, |c| {
            let ok = c.verify_cert()?;
            if !ok {
                verify_certificate(false, c, usize::MAX, &f);
            }
            Ok(ok)
        })
        .ok()?;
    if ok {
        return None;
    }
    take(&findings)
        .into_iter()
        .find(|(k, _)| *k != TlsFinding::CrlUnavailable)
}

// X509_V_ERR_* codes (x509_vfy.h, stable since OpenSSL 1.0).
const X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const X509_V_ERR_UNABLE_TO_GET_CRL: i32 = 3;
const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;
const X509_V_ERR_CRL_NOT_YET_VALID: i32 = 11;
const X509_V_ERR_CRL_HAS_EXPIRED: i32 = 12;
const X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const X509_V_ERR_CERT_REVOKED: i32 = 23;
const X509_V_ERR_HOSTNAME_MISMATCH: i32 = 62;
const X509_V_ERR_IP_ADDRESS_MISMATCH: i32 = 64;

// SSL_R_* reason codes (sslerr.h) used to classify handshake failures.
const SSL_R_NO_SHARED_CIPHER: i32 = 193;
const SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE: i32 = 199;
const SSL_R_UNSUPPORTED_PROTOCOL: i32 = 258;
const SSL_R_WRONG_VERSION_NUMBER: i32 = 267;
const SSL_R_NO_PROTOCOLS_AVAILABLE: i32 = 191;
const SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: i32 = 1070;
const SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: i32 = 1116;
const SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE: i32 = 1040;
const SSL_R_TLSV1_ALERT_UNKNOWN_CA: i32 = 1048;
const SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED: i32 = 1045;
const SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED: i32 = 1044;

/// Maps a failed handshake to its finding: first what our callbacks saw, then OpenSSL's reason.
fn classify(
    found: &[(TlsFinding, String)],
    e: &openssl::ssl::Error,
    ssl: &SslRef,
) -> (TlsFinding, String) {
    if let Some((k, d)) = found.iter().find(|(k, _)| *k != TlsFinding::CrlUnavailable) {
        return (*k, d.clone());
    }
    let reasons: Vec<(i32, String)> = e
        .ssl_error()
        .map(|s| {
            s.errors()
                .iter()
                .map(|x| (x.reason_code(), x.reason().unwrap_or("?").to_string()))
                .collect()
        })
        .unwrap_or_default();
    let text = if reasons.is_empty() {
        e.to_string()
    } else {
        reasons
            .iter()
            .map(|(_, r)| r.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    for (code, _) in &reasons {
        let kind = match *code {
            SSL_R_NO_SHARED_CIPHER => TlsFinding::CipherDisallowed,
            SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE | SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED => {
                TlsFinding::CertUnavailable
            }
            SSL_R_WRONG_VERSION_NUMBER => {
                // Not a TLS record at all: typically plain RFC 1006 sent to the TLS port.
                return (
                    TlsFinding::HandshakeFailed,
                    format!("not a TLS client (plain RFC 1006 to the TLS port?): {text}"),
                );
            }
            SSL_R_UNSUPPORTED_PROTOCOL
            | SSL_R_NO_PROTOCOLS_AVAILABLE
            | SSL_R_TLSV1_ALERT_PROTOCOL_VERSION => TlsFinding::InsecureVersion,
            SSL_R_TLSV1_ALERT_UNKNOWN_CA => TlsFinding::CaUnknown,
            SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED => TlsFinding::CertExpired,
            SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED => TlsFinding::CertRevoked,
            SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE => TlsFinding::HandshakeFailed,
            _ => continue,
        };
        return (kind, text);
    }
    let _ = ssl;
    (TlsFinding::HandshakeFailed, text)
}

// ---------------------------------------------------------------------------------------------
// Stream with key refresh
// ---------------------------------------------------------------------------------------------

/// An established TLS stream. Reads and writes refresh the keys when the interval or byte count
/// is reached (TLS 1.2: RFC 5746 renegotiation; TLS 1.3: KeyUpdate) and fail with
/// `PermissionDenied` when the peer does not complete a renegotiation within the grace time.
pub struct TlsStream<S> {
    inner: SslStream<BufReader<S>>,
    peer: String,
    /// What the verify callback saw during renegotiations (same collector as the handshake).
    findings: Findings,
    sink: Arc<dyn SecurityEventSink>,
    stats: Arc<TlsStats>,
    generation: Arc<AtomicU64>,
    seen_generation: u64,
    notify: Arc<tokio::sync::Notify>,
    gen_wait: Waiter,
    interval: Duration,
    byte_limit: u64,
    grace: Duration,
    last_refresh: Instant,
    bytes: u64,
    pending: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    refreshes: u64,
    failed: bool,
    tls13_key_refresh: Tls13KeyRefresh,
    /// The version negotiated first; a renegotiation must keep it.
    version: Option<SslVersion>,
    /// Application data read while a TLS 1.2 renegotiation was driven from a write (see
    /// [`TlsStream::settle_handshake`]), handed out by the next reads.
    stash: Vec<u8>,
    stash_pos: usize,
    /// The waker of the last read that found nothing: woken when a write stashes data.
    read_waker: Option<std::task::Waker>,
}

/// Most application data held back while a renegotiation completes (a peer sending more
/// during its own renegotiation is cut off).
const MAX_RENEGOTIATION_STASH: usize = 1 << 20;

impl<S> std::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.peer)
            .field("refreshes", &self.refreshes)
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    fn new(
        inner: SslStream<BufReader<S>>,
        ctx: &TlsContext,
        peer: String,
        findings: Findings,
    ) -> Self {
        let interval = Duration::from_secs(ctx.cfg.renegotiation_interval_secs);
        let now = Instant::now();
        TlsStream {
            inner,
            peer,
            findings,
            sink: ctx.sink.clone(),
            stats: ctx.stats.clone(),
            seen_generation: ctx.generation.load(Ordering::Relaxed),
            generation: ctx.generation.clone(),
            notify: ctx.notify.clone(),
            gen_wait: waiter(&ctx.notify),
            interval,
            byte_limit: ctx.cfg.renegotiation_bytes,
            grace: Duration::from_secs(ctx.cfg.renegotiation_grace_secs),
            last_refresh: now,
            bytes: 0,
            pending: None,
            timer: Box::pin(tokio::time::sleep_until(now + interval)),
            refreshes: 0,
            failed: false,
            tls13_key_refresh: ctx.cfg.tls13_key_refresh,
            version: None,
            stash: Vec::new(),
            stash_pos: 0,
            read_waker: None,
        }
        .with_version()
    }

    fn with_version(mut self) -> Self {
        self.version = self.inner.ssl().version2();
        self
    }

    /// What was negotiated (current state; changes after a renegotiation).
    pub fn info(&self) -> TlsInfo {
        TlsInfo::of(self.inner.ssl())
    }

    /// Key refreshes completed on this stream (renegotiations and key updates we started).
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// The OpenSSL session, for inspection.
    pub fn ssl(&self) -> &SslRef {
        self.inner.ssl()
    }

    /// Starts a key refresh now (it completes inside the next reads and writes).
    pub fn refresh_keys(&mut self) -> io::Result<()> {
        self.start_refresh()
    }

    fn report(&self, kind: TlsFinding, detail: String) {
        self.sink
            .record(&kind.event(format!("{}: {detail}", self.peer), Some(self.peer.clone())));
    }

    fn start_refresh(&mut self) -> io::Result<()> {
        let ssl = self.inner.ssl();
        if ssl.version2() == Some(SslVersion::TLS1_3) {
            // TLS 1.3 has no renegotiation: re-evaluate the peer's certificate (revocation after
            // a CRL update, expiry during a long association) against the current store here.
            if let Some((kind, detail)) = revalidate_peer(ssl) {
                self.failed = true;
                self.report(kind, format!("at key update: {detail}"));
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "peer certificate no longer valid",
                ));
            }
            if self.tls13_key_refresh == Tls13KeyRefresh::NewAssociation {
                self.failed = true;
                self.report(
                    TlsFinding::KeysRefreshed,
                    "TLS 1.3 key refresh by a new association: session ended".into(),
                );
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "TLS 1.3 key refresh: the session ends so the peer associates again",
                ));
            }
            ffi::key_update(ssl).map_err(io::Error::other)?;
            self.stats.key_updates.fetch_add(1, Ordering::Relaxed);
            self.refreshes += 1;
            self.last_refresh = Instant::now();
            self.bytes = 0;
            self.report(TlsFinding::KeysRefreshed, "TLS 1.3 KeyUpdate sent".into());
        } else {
            if !ffi::secure_renegotiation_support(ssl) {
                self.report(
                    TlsFinding::RenegotiationInsecure,
                    "cannot renegotiate: peer lacks RFC 5746".into(),
                );
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "peer does not support secure renegotiation",
                ));
            }
            ffi::renegotiate(ssl).map_err(io::Error::other)?;
            self.pending = Some(Instant::now());
        }
        Ok(())
    }

    /// A read or write failed: if a renegotiation we asked for was pending, the peer refused or
    /// broke it (OpenSSL turns a `no_renegotiation` answer into a fatal error): the session ends
    /// with "session renegotiation interval expired" (62351-3 §7).
    fn failed_during_refresh(&mut self, e: &io::Error) {
        if self.pending.take().is_some() && !self.failed {
            self.failed = true;
            let found = take(&self.findings);
            for (k, d) in found
                .iter()
                .filter(|(k, _)| *k == TlsFinding::CrlUnavailable)
            {
                self.report(*k, d.clone());
            }
            // The certificate presented again may now be refused (revoked after a CRL update,
            // expired during a long association): report that reason.
            match found.iter().find(|(k, _)| *k != TlsFinding::CrlUnavailable) {
                Some((k, d)) => self.report(*k, format!("at renegotiation: {d}")),
                None => self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!("peer did not complete the renegotiation: {e}"),
                ),
            }
        }
    }

    /// True while a TLS 1.2 (re)negotiation is under way on this session.
    fn in_handshake(&self) -> bool {
        let ssl = self.inner.ssl();
        ssl.version2() == Some(SslVersion::TLS1_2)
            && (ffi::in_init(ssl) || ffi::renegotiate_pending(ssl))
    }

    /// Before a write: while a TLS 1.2 renegotiation is under way (started by either side),
    /// drive it from the read side and keep any application data that arrives meanwhile for the
    /// next reads. OpenSSL accepts application data interleaved with a renegotiation only inside
    /// `SSL_read`; a write that drove the handshake would meet the peer's pipelined answers and
    /// fail with "unexpected record" (libiec61850 sends its HelloRequest right in front of
    /// application data). `Ready(Ok)` once no handshake is under way.
    fn settle_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.in_handshake() {
            if self.stash.len() - self.stash_pos >= MAX_RENEGOTIATION_STASH {
                self.failed = true;
                self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!(
                        "more than {MAX_RENEGOTIATION_STASH} octets of application data during \
                         a renegotiation"
                    ),
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "renegotiation not completed",
                )));
            }
            match self.read_into_stash(cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "peer closed during a renegotiation",
                    )))
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The read may have completed the handshake without application data.
                Poll::Pending if !self.in_handshake() => break,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// One `SSL_read` into the stash; `Ok(false)` at end of stream. A reader waiting for data
    /// is woken when some arrives this way.
    fn read_into_stash(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let mut tmp = [0u8; 8192];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Ok(false)),
            Poll::Ready(Ok(())) => {
                if self.stash_pos > 0 && self.stash_pos == self.stash.len() {
                    self.stash.clear();
                    self.stash_pos = 0;
                }
                self.stash.extend_from_slice(rb.filled());
                if let Some(w) = self.read_waker.take() {
                    w.wake();
                }
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => {
                self.failed_during_refresh(&e);
                Poll::Ready(Err(e))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Drives the key refresh schedule; called before every read and write.
    fn drive(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "TLS session terminated",
            ));
        }
        let now = Instant::now();
        if let Some(started) = self.pending {
            if !ffi::renegotiate_pending(self.inner.ssl()) {
                self.pending = None;
                self.refreshes += 1;
                self.last_refresh = now;
                self.bytes = 0;
                self.stats.renegotiations.fetch_add(1, Ordering::Relaxed);
                for (k, d) in take(&self.findings) {
                    self.report(k, d);
                }
                let info = TlsInfo::of(self.inner.ssl());
                if self.inner.ssl().version2() != self.version {
                    self.report(
                        TlsFinding::VersionChanged,
                        format!("renegotiation changed the version to {}", info.version),
                    );
                }
                self.report(
                    TlsFinding::KeysRefreshed,
                    format!("TLS 1.2 renegotiation completed ({})", info.cipher),
                );
            } else if now >= started + self.grace {
                self.failed = true;
                self.report(
                    TlsFinding::RenegotiationIntervalExpired,
                    format!("renegotiation not completed within {:?}", self.grace),
                );
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "session renegotiation interval expired",
                ));
            }
        }
        // Register for a forced refresh before reading the generation, so none is missed.
        for _ in 0..4 {
            if self.gen_wait.as_mut().poll(cx).is_pending() {
                break;
            }
            self.gen_wait = waiter(&self.notify);
        }
        let generation = self.generation.load(Ordering::Relaxed);
        let due = now >= self.last_refresh + self.interval
            || (self.byte_limit > 0 && self.bytes >= self.byte_limit)
            || generation != self.seen_generation;
        if self.pending.is_none() && due {
            self.seen_generation = generation;
            self.start_refresh()?;
            if self.inner.ssl().version2() != Some(SslVersion::TLS1_3) {
                // TLS 1.2: push the HelloRequest / ClientHello out from the read side, where
                // OpenSSL accepts the peer's application data still in flight.
                if let Poll::Ready(Err(e)) = self.settle_handshake(cx) {
                    return Err(e);
                }
            } else {
                // Push the KeyUpdate out now.
                match Pin::new(&mut self.inner).poll_do_handshake(cx) {
                    Poll::Ready(Err(e)) if e.io_error().is_none() => {
                        return Err(io::Error::other(e.to_string()))
                    }
                    Poll::Ready(Err(e)) => {
                        return Err(e.into_io_error().unwrap_or_else(io::Error::other))
                    }
                    _ => {}
                }
            }
        }
        let next = match self.pending {
            Some(started) => started + self.grace,
            None => self.last_refresh + self.interval,
        };
        if self.timer.deadline() != next {
            self.timer.as_mut().reset(next);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            // Deadline reached while polled: wake again at once to act on it.
            cx.waker().wake_by_ref();
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.drive(cx)?;
        if this.stash_pos < this.stash.len() {
            let n = buf.remaining().min(this.stash.len() - this.stash_pos);
            buf.put_slice(&this.stash[this.stash_pos..this.stash_pos + n]);
            this.stash_pos += n;
            if this.stash_pos == this.stash.len() {
                this.stash.clear();
                this.stash_pos = 0;
            }
            this.bytes = this.bytes.saturating_add(n as u64);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) => {
                this.bytes = this
                    .bytes
                    .saturating_add((buf.filled().len() - before) as u64)
            }
            Poll::Ready(Err(e)) => this.failed_during_refresh(e),
            Poll::Pending => this.read_waker = Some(cx.waker().clone()),
        }
        r
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.drive(cx)?;
        if this.settle_handshake(cx)?.is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        match &r {
            Poll::Ready(Ok(n)) => this.bytes = this.bytes.saturating_add(*n as u64),
            Poll::Ready(Err(e)) => this.failed_during_refresh(e),
            Poll::Pending => {}
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The OpenSSL calls the `openssl` crate does not wrap. This is the crate's only `unsafe` code;
/// it is private to the crate, and the calls valid only in a callback are reachable only there.
#[allow(unsafe_code)]
pub(crate) mod ffi {
    use foreign_types::ForeignTypeRef;
    use openssl::ssl::{ClientHelloResponse, SslAlert, SslContextBuilder, SslOptions, SslRef};
    use std::os::raw::{c_int, c_long, c_uchar, c_uint};

    /// `SSL_OP_ALLOW_CLIENT_RENEGOTIATION` (OpenSSL 3.0, ssl.h: bit 8): accept renegotiations the
    /// client starts.
    pub const OP_ALLOW_CLIENT_RENEGOTIATION: SslOptions = SslOptions::from_bits_retain(1 << 8);
    const SSL_CTRL_GET_RI_SUPPORT: c_int = 76;
    const SSL_CTRL_SET_MAX_CERT_LIST: c_int = 51;
    const SSL_KEY_UPDATE_REQUESTED: c_int = 1;

    extern "C" {
        fn SSL_set_read_ahead(s: *mut openssl_sys::SSL, yes: c_int);
        fn SSL_in_init(s: *const openssl_sys::SSL) -> c_int;
        fn SSL_renegotiate(s: *mut openssl_sys::SSL) -> c_int;
        fn SSL_renegotiate_pending(s: *const openssl_sys::SSL) -> c_int;
        fn SSL_key_update(s: *mut openssl_sys::SSL, updatetype: c_int) -> c_int;
        fn SSL_CTX_set_timeout(ctx: *mut openssl_sys::SSL_CTX, t: c_long) -> c_long;
        fn X509_STORE_add_crl(
            store: *mut openssl_sys::X509_STORE,
            crl: *mut openssl_sys::X509_CRL,
        ) -> c_int;
    }

    /// `X509_STORE_add_crl`: adds a CRL to a store in use (OpenSSL locks the store; it takes its
    /// own reference to the CRL). A CRL already present is not an error.
    pub fn store_add_crl(
        store: &openssl::x509::store::X509StoreRef,
        crl: &openssl::x509::X509CrlRef,
    ) -> bool {
        // SAFETY: both pointers are live for the call; X509_STORE_add_crl locks the store
        // internally and up-refs the CRL, so sharing the store with running handshakes is sound.
        unsafe { X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) == 1 }
    }

    /// `SSL_CTX_set_timeout`: lifetime of cached sessions and tickets, seconds.
    pub fn set_session_timeout(b: &mut SslContextBuilder, secs: u64) {
        let t = c_long::try_from(secs).unwrap_or(c_long::MAX);
        // SAFETY: a plain setter on the context being built, which we own.
        unsafe {
            SSL_CTX_set_timeout(b.as_ptr(), t);
        }
    }

    /// `SSL_renegotiate`: schedules a TLS 1.2 renegotiation (RFC 5746 is enforced by OpenSSL
    /// unless unsafe legacy renegotiation is enabled, which we never do).
    pub fn renegotiate(ssl: &SslRef) -> Result<(), openssl::error::ErrorStack> {
        // SAFETY: `ssl` is a live SSL object owned by the stream; the caller holds the stream
        // exclusively (`&mut TlsStream`), so no other thread uses this SSL during the call.
        let r = unsafe { SSL_renegotiate(ssl.as_ptr()) };
        if r == 1 {
            Ok(())
        } else {
            Err(openssl::error::ErrorStack::get())
        }
    }

    /// `SSL_in_init`: a handshake (first one or renegotiation) is under way.
    pub fn in_init(ssl: &SslRef) -> bool {
        // SAFETY: a valid SSL object; the call only reads its state machine.
        unsafe { SSL_in_init(ssl.as_ptr()) == 1 }
    }

    /// `SSL_set_read_ahead` on one connection.
    pub fn set_read_ahead(ssl: &SslRef, yes: bool) {
        // SAFETY: a valid SSL object; the call only sets a flag of its record layer.
        unsafe { SSL_set_read_ahead(ssl.as_ptr(), c_int::from(yes)) }
    }

    /// `SSL_renegotiate_pending`: true while a renegotiation we started has not completed.
    pub fn renegotiate_pending(ssl: &SslRef) -> bool {
        // SAFETY: read-only query on a live SSL object.
        unsafe { SSL_renegotiate_pending(ssl.as_ptr()) == 1 }
    }

    /// `SSL_key_update(…, SSL_KEY_UPDATE_REQUESTED)`: TLS 1.3 KeyUpdate, asking the peer to
    /// update too.
    pub fn key_update(ssl: &SslRef) -> Result<(), openssl::error::ErrorStack> {
        // SAFETY: as in `renegotiate`.
        let r = unsafe { SSL_key_update(ssl.as_ptr(), SSL_KEY_UPDATE_REQUESTED) };
        if r == 1 {
            Ok(())
        } else {
            Err(openssl::error::ErrorStack::get())
        }
    }

    /// `SSL_get_secure_renegotiation_support`: whether the peer uses RFC 5746.
    pub fn secure_renegotiation_support(ssl: &SslRef) -> bool {
        // SAFETY: SSL_ctrl with GET_RI_SUPPORT only reads the SSL object; parg is unused.
        unsafe {
            openssl_sys::SSL_ctrl(
                ssl.as_ptr(),
                SSL_CTRL_GET_RI_SUPPORT,
                0,
                std::ptr::null_mut(),
            ) != 0
        }
    }

    /// `SSL_CTX_set_dh_auto(ctx, 1)`: DHE with built-in parameters sized to the certificate.
    pub fn set_dh_auto(b: &mut SslContextBuilder) {
        // SAFETY: a plain setter on the context being built, which we own.
        unsafe {
            openssl_sys::SSL_CTX_set_dh_auto(b.as_ptr(), 1);
        }
    }

    /// `SSL_CTX_set_max_cert_list`: bounds the peer's Certificate message.
    pub fn set_max_cert_list(b: &mut SslContextBuilder, max: usize) {
        let max = c_long::try_from(max).unwrap_or(c_long::MAX);
        // SAFETY: a plain setter on the context being built, which we own.
        unsafe {
            openssl_sys::SSL_CTX_ctrl(
                b.as_ptr(),
                SSL_CTRL_SET_MAX_CERT_LIST,
                max,
                std::ptr::null_mut(),
            );
        }
    }

    /// The ClientHello being handled, readable only inside the ClientHello callback: the
    /// `SSL_client_hello_get0_*` calls are valid only there, so a value of this type exists
    /// only for the duration of a callback installed by [`set_client_hello_callback`].
    pub(crate) struct ClientHello<'a> {
        ssl: &'a SslRef,
    }

    impl ClientHello<'_> {
        /// The connection being handshaken.
        pub(crate) fn ssl(&self) -> &SslRef {
            self.ssl
        }

        /// `SSL_client_hello_get0_legacy_version`.
        pub(crate) fn legacy_version(&self) -> u16 {
            // SAFETY: a `ClientHello` only exists inside the ClientHello callback (see
            // `set_client_hello_callback`), where this call is valid on the SSL handshaken.
            let v: c_uint =
                unsafe { openssl_sys::SSL_client_hello_get0_legacy_version(self.ssl.as_ptr()) };
            u16::try_from(v).unwrap_or(0)
        }

        /// `SSL_client_hello_get0_ext`: the body of a ClientHello extension.
        pub(crate) fn ext(&self, ext: u32) -> Option<Vec<u8>> {
            let mut out: *const c_uchar = std::ptr::null();
            let mut len: usize = 0;
            // SAFETY: inside the ClientHello callback (see above); OpenSSL sets `out`/`len` to a
            // buffer it owns for the duration of the callback, which is copied before returning.
            unsafe {
                if openssl_sys::SSL_client_hello_get0_ext(
                    self.ssl.as_ptr(),
                    ext as c_uint,
                    &mut out,
                    &mut len,
                ) != 1
                    || out.is_null()
                {
                    return None;
                }
                Some(std::slice::from_raw_parts(out, len).to_vec())
            }
        }
    }

    /// Installs `policy` as the ClientHello callback; it sees the hello through a
    /// [`ClientHello`] that cannot outlive the callback.
    pub(crate) fn set_client_hello_callback<F>(b: &mut SslContextBuilder, policy: F)
    where
        F: Fn(
                &ClientHello<'_>,
                &mut SslAlert,
            ) -> Result<ClientHelloResponse, openssl::error::ErrorStack>
            + Send
            + Sync
            + 'static,
    {
        b.set_client_hello_callback(move |ssl, alert| policy(&ClientHello { ssl }, alert));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_correct_code_points() {
        let n = |name: &str| find_suite(name).map(|s| s.iana);
        assert_eq!(n("TLS_RSA_WITH_AES_128_CBC_SHA256"), Some(0x003C));
        assert_eq!(n("TLS_DH_RSA_WITH_AES_128_GCM_SHA256"), Some(0x00A0));
        assert_eq!(n("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"), Some(0x009E));
        assert_eq!(n("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"), Some(0xC02B));
        assert_eq!(n("TLS_DH_RSA_WITH_AES_256_GCM_SHA384"), Some(0x00A1));
        assert_eq!(n("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), Some(0xC02F));
        assert_eq!(n("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), Some(0xC030));
        assert_eq!(n("TLS_DH_DSS_WITH_AES_256_CBC_SHA"), Some(0x0036));
        assert_eq!(n("0x009e"), Some(0x009E));
        let mandatory = NATIVE_SUITES
            .iter()
            .filter(|s| s.requirement == Requirement::Mandatory)
            .count();
        assert_eq!(mandatory, 4);
        // The OpenSSL names are checked against the code points in tests/tls_openssl.rs,
        // where each suite is negotiated and its protocol id compared.
    }

    #[test]
    fn conformance_marks_static_dh_unsupported() {
        let rows = conformance_statement();
        for r in &rows {
            if r.suite.name.contains("_DH_RSA_") || r.suite.name.contains("_DH_DSS_") {
                assert!(!r.supported, "{}", r.suite.name);
            }
        }
        let native_supported: Vec<u16> = rows
            .iter()
            .filter(|r| r.table == "native" && r.supported)
            .map(|r| r.suite.iana)
            .collect();
        for code in [0x003C, 0x009E, 0xC02B, 0xC02F, 0xC030] {
            assert!(native_supported.contains(&code), "0x{code:04X}");
        }
    }

    #[test]
    fn static_dh_in_config_is_a_clear_error() {
        let cfg = TlsConfig {
            suites: vec!["TLS_DH_RSA_WITH_AES_128_GCM_SHA256".into()],
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err();
        assert!(matches!(e, TlsError::UnsupportedSuite { iana: 0x00A0, .. }));
        assert!(e.to_string().contains("static DH"), "{e}");
    }

    #[test]
    fn forbidden_and_unknown_suites_are_refused() {
        for bad in [
            "TLS_RSA_WITH_RC4_128_SHA",
            "TLS_RSA_WITH_NULL_SHA256",
            "TLS_DH_anon_WITH_AES_128_CBC_SHA",
            "AES256-SHA",
        ] {
            let cfg = TlsConfig {
                suites: vec![bad.into()],
                ..Default::default()
            };
            assert!(cfg.validate().is_err(), "{bad}");
        }
        let cfg = TlsConfig {
            suites: vec!["TLS_RSA_WITH_3DES_EDE_CBC_SHA".into()],
            ..Default::default()
        };
        assert!(cfg.validate().is_err(), "compat suite in native mode");
    }

    #[test]
    fn default_list_has_no_weak_suites() {
        let list = TlsConfig::default().cipher_list().unwrap();
        for m in ["RC4", "NULL", "anon", "EXP", "DES"] {
            assert!(!list.contains(m), "{list}");
        }
        assert!(list.starts_with("AES128-SHA256:DHE-RSA-AES128-GCM-SHA256"));
    }

    #[test]
    fn intervals_are_checked() {
        let base = TlsConfig::default();
        assert!(base.validate().is_ok());
        let c = TlsConfig {
            resumption_lifetime_secs: base.renegotiation_interval_secs,
            ..base.clone()
        };
        assert!(c.validate().is_err());
        let c = TlsConfig {
            renegotiation_interval_secs: 25 * 3600,
            ..base.clone()
        };
        assert!(c.validate().is_err());
        let c = TlsConfig {
            enabled: true,
            ..base.clone()
        };
        assert!(c.validate().is_err(), "cert/key/ca required");
        let c = TlsConfig {
            allow_plain: false,
            ..base.clone()
        };
        assert!(c.validate().is_err(), "plain refused");
        assert_eq!(DEFAULT_RENEGOTIATION_INTERVAL_SECS, 43_200);
        assert_eq!(DEFAULT_RESUMPTION_LIFETIME_SECS, 21_600);
        assert_eq!(MAX_CERT_SIZE, 8192);
        assert_eq!(TLS_PORT, 3782);
    }

    proptest::proptest! {
        /// 62351-3 §7: 0 < resumption < renegotiation interval ≤ 24 h (and ≥ 1 min, §6.2).
        #[test]
        fn interval_rule_holds(interval in 0u64..200_000, resumption in 0u64..200_000) {
            let c = TlsConfig {
                renegotiation_interval_secs: interval,
                resumption_lifetime_secs: resumption,
                ..TlsConfig::default()
            };
            let want = (MIN_RENEGOTIATION_INTERVAL_SECS..=MAX_RENEGOTIATION_INTERVAL_SECS)
                .contains(&interval)
                && resumption > 0
                && resumption < interval;
            proptest::prop_assert_eq!(c.validate().is_ok(), want);
        }

        /// Any list of suite names either validates to a non-empty list without forbidden
        /// suites, or is refused; never a panic.
        #[test]
        fn suite_lists_never_admit_weak_suites(names in proptest::collection::vec(
            proptest::sample::select(vec![
                "AES128-SHA256", "TLS_DH_RSA_WITH_AES_128_GCM_SHA256", "RC4-SHA", "NULL-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256", "0xC02B", "0x0005", "ADH-AES128-SHA",
                "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "bogus",
            ]), 0..5)) {
            let c = TlsConfig {
                suites: names.iter().map(|s| s.to_string()).collect(),
                ..TlsConfig::default()
            };
            if let Ok(list) = c.cipher_list() {
                for bad in ["RC4", "NULL", "ADH", "DES"] {
                    proptest::prop_assert!(!list.contains(bad), "{}", list);
                }
                proptest::prop_assert!(!list.is_empty());
            }
        }
    }

    #[test]
    fn severities_follow_clause_6() {
        assert_eq!(TlsFinding::CertExpired.severity(), Severity::Warning);
        assert_eq!(TlsFinding::CertRevoked.severity(), Severity::Incident);
        assert_eq!(TlsFinding::CrlUnavailable.severity(), Severity::Warning);
        assert_eq!(TlsFinding::Disabled.id().1, "TLS_DISABLED");
    }
}
