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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_openssl::SslStream;

mod config;
mod context;
/// The OpenSSL calls the `openssl` crate does not wrap. This is the crate's only `unsafe` code;
/// it is private to the crate, and the calls valid only in a callback are reachable only there.
#[allow(unsafe_code)]
pub(crate) mod ffi;
mod findings;
mod readbuf;
mod refresh;
mod reneg;
mod stream;
mod suites;
mod verify;

pub use config::{
    parse_fingerprint, ClientRenegotiation, ReadAhead, Tls13KeyRefresh, TlsConfig,
    DEFAULT_MAX_CLIENT_RENEGOTIATIONS_PER_MIN, MAX_ALLOWED_FINGERPRINTS, MAX_TLS13_TICKETS,
};
pub use findings::{report_plain, TlsFinding, TlsStats, TracingSink};
pub use refresh::RenegotiationTrigger;
pub use stream::TlsInfo;
pub use suites::{
    conformance_statement, find_suite, library_supports, CipherSuite, Requirement, SuiteMode,
    SuiteSupport, COMPAT_SUITES, FORBIDDEN_SUITE_MARKERS, NATIVE_SUITES,
};

pub(crate) use context::open_keylog;
use context::*;
use findings::*;
use refresh::*;
use reneg::*;
use verify::*;

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
/// Sessions a server keeps for resumption (`tls.session_cache_size`; issue 17: about 10 MiB).
pub const DEFAULT_SESSION_CACHE_SIZE: u32 = 1024;
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

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

/// Which side of the TLS handshake a context serves (the side that accepts or opens the TCP
/// connection; a relay is a server towards one hop and a client towards the next).
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

// ---------------------------------------------------------------------------------------------
// Stream with key refresh
// ---------------------------------------------------------------------------------------------

/// An established TLS stream. Reads and writes refresh the keys when the interval or byte count
/// is reached (TLS 1.2: RFC 5746 renegotiation; TLS 1.3: KeyUpdate) and fail with
/// `PermissionDenied` when the peer does not complete a renegotiation within the grace time.
pub struct TlsStream<S> {
    inner: SslStream<readbuf::ReleasingReader<S>>,
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

#[cfg(test)]
mod tests;
