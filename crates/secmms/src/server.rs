//! The MMS server: an accept loop and one task per association. Associations are isolated: a
//! protocol error, a slow or silent peer, or an abrupt close ends only that association's task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{InitiateOutcome, ReportContent, ServerConfig as VmdConfig, Vmd};
use secmms_osi::acse::SourceDiagnostic;
use secmms_pki::event::SecurityEventSink;
use secmms_profiles::secure::{Now, SecureAssociation, SecureEvent, Timeouts, TimerKind};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::admission::{Admission, Limits, Stage, Ticket};
use crate::driver::{self, drive, ByteStream, Machine, Port, Step};
use crate::driver::{LinkError, RefusalReason};
use crate::events::ratelimit::{left_out, LogLimiter};
use crate::handshakes::AarqHold;
use crate::live::{AssocCmd, AssociationId, AssociationInfo, Registry, ReportError};
use crate::osi::osi_config;
use crate::security::{tls_fingerprints, AppSecurity, ConnectionFacts};
use crate::tls::{RenegotiationTrigger, TlsContext, TlsStats};
use crate::transport::{self, BusyPollPolicy, PollingTcpStream, Stream};

mod builder;
mod settings;
mod workers;
use builder::Sections;
pub use builder::ServerBuilder;
pub use settings::ServerConfig;
use workers::{cpus, worker_count, Active, Workers};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The model file could not be loaded.
    #[error("cannot load the model: {0}")]
    Model(String),
    /// A value is out of range or malformed (the field is named).
    #[error(transparent)]
    Setting(#[from] crate::settings::SettingError),
    /// The events section is invalid, or its outputs could not be opened.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The TLS context could not be built (certificate, key, trust anchors, suite policy).
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The application-security context could not be built (certificate, key, anchors).
    #[error("application security: {0}")]
    Security(#[from] crate::security::SecurityError),
    /// Binding or accepting failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The association threads (`server.worker_threads`) could not be started.
    #[error("cannot start the association threads: {0}")]
    Workers(std::io::Error),
}

/// Counters of what the server did, shared with the tasks.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Associations accepted (initiate exchanged).
    pub associations: AtomicU64,
    /// Associations released in order.
    pub released: AtomicU64,
    /// Associations that ended in an abort, a protocol error, a timeout or a closed connection.
    pub failed: AtomicU64,
    /// Confirmed requests answered.
    pub requests: AtomicU64,
    /// Connections and associations refused by admission control: a source address over its
    /// share (`max_pending_per_source`, `max_associations_per_source`), or an association past
    /// `max_associations`.
    pub refused: AtomicU64,
    /// Connections still being set up that were dropped to make room for a new one
    /// (`max_pending`).
    pub evicted: AtomicU64,
    /// Connections whose TLS handshake was refused (the security event tells why).
    pub tls_refused: AtomicU64,
    /// Connections that waited for a TLS handshake slot (`max_handshakes`, `handshake_rate`).
    pub handshakes_delayed: AtomicU64,
    /// Connections refused because no TLS handshake slot came within the handshake timeout.
    pub handshakes_refused: AtomicU64,
    /// AARQs that waited for a place under `max_security_checks` / `security_check_rate`
    /// before their application-security checks ran.
    pub checks_delayed: AtomicU64,
    /// Connections aborted because their AARQ got no place for its checks before the
    /// association set-up deadline.
    pub checks_refused: AtomicU64,
    /// Associations established now (initiate exchanged, not yet ended).
    pub established: AtomicU64,
}

/// Counts an established association in [`ServerStats::established`] while alive.
struct Established<'a>(&'a AtomicU64);

impl<'a> Established<'a> {
    fn new(n: &'a AtomicU64) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Established(n)
    }
}

impl Drop for Established<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How many answers of a burst of `burst` pipelined requests go into one write
/// (`server.response_group`; 0 = the whole burst).
fn response_group(configured: Option<usize>, burst: usize, established: u64, cpus: usize) -> usize {
    match configured {
        Some(n) => n,
        // Spare CPUs: let the client overlap with us. Busy CPUs: save system calls.
        None if established <= (cpus / 2).max(1) as u64 => (burst / 4).max(1),
        None => 0,
    }
}

/// What every connection of one server reads: its sections, the model, the TLS and
/// application-security contexts, and the server-wide registries and gates.
struct ServerContext {
    cfg: Sections,
    mms: Vmd,
    stats: Arc<ServerStats>,
    tls: Option<Arc<TlsContext>>,
    security: AppSecurity,
    /// Bumped when the application-certificate CRLs changed: every live association re-checks
    /// its peer (`SecureAssociation::recheck_peer`).
    revocations: tokio::sync::watch::Sender<u64>,
    /// The established associations and their command channels (reports).
    registry: Arc<Registry>,
    /// Who gets a connection place ([`crate::admission`]).
    admission: Arc<Admission>,
    /// TLS handshakes at once and per second ([`crate::handshakes`]).
    handshakes: crate::handshakes::HandshakeGate,
    /// AARQ security checks at once and per second (compat and native modes).
    checks: Arc<crate::handshakes::HandshakeGate>,
    /// Where the server's own events go (admission and handshake refusals).
    sink: Arc<dyn SecurityEventSink>,
}

/// What a CRL reload found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrlReload {
    /// The TLS CRLs (`[tls] crl`) changed: every TLS association renegotiates or updates its
    /// keys, and a revoked peer is dropped there.
    pub tls_changed: bool,
    /// The application-certificate CRLs (`[security] crl`, else `[tls] crl`) changed: every
    /// established compat or native association re-checked its peer, and a revoked one ended
    /// with the abort its profile prescribes.
    pub app_changed: bool,
}

/// Reloads the server's CRLs on demand (SIGHUP) — the server also does it every
/// `tls.crl_evaluation_period_secs`. Cheap to clone.
#[derive(Clone)]
pub struct CrlReloader {
    shared: Arc<ServerContext>,
}

impl std::fmt::Debug for CrlReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlReloader").finish_non_exhaustive()
    }
}

impl CrlReloader {
    /// Reads the TLS and application CRL files again; what changed takes effect at once (see
    /// [`CrlReload`]). A file that cannot be read leaves the CRLs in force and is reported.
    pub fn reload(&self) -> CrlReload {
        let mut out = CrlReload::default();
        if let Some(t) = &self.shared.tls {
            if !t.config().crl.is_empty() {
                out.tls_changed = t.reload_crls();
            }
        }
        match self.shared.security.reload_crls() {
            Ok(true) => {
                out.app_changed = true;
                self.shared
                    .revocations
                    .send_modify(|g| *g = g.wrapping_add(1));
                info!("application-certificate CRLs changed: re-checking every association");
            }
            Ok(false) => {}
            Err(e) => warn!("application-certificate CRLs not reloaded (the old ones stay): {e}"),
        }
        out
    }
}

/// Whom the performance settings a configuration leaves unset (`server.worker_threads`,
/// `server.busy_poll_us`) should suit. Settings the configuration gives are used as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tuning {
    /// A server inside someone else's program (the default of [`ServerBuilder`]): associations
    /// are tasks on the caller's tokio runtime (a current-thread one works), the server starts
    /// no thread of its own and never busy-polls.
    #[default]
    Embedded,
    /// `secmms server`, the daemon, which owns its machine: one single-threaded runtime per CPU
    /// for associations, and the adaptive busy-poll window after each answer (docs/PERFORMANCE.md).
    Daemon,
}

impl Tuning {
    /// `cfg` with the settings it leaves unset filled in for this tuning.
    fn resolve(self, mut cfg: Sections) -> Sections {
        if self == Tuning::Embedded {
            cfg.server.worker_threads.get_or_insert(0);
            cfg.server.busy_poll_us.get_or_insert(0);
        }
        cfg
    }
}

/// A bound server.
pub struct Server {
    listener: TcpListener,
    /// The association threads (`server.worker_threads`), started at bind.
    workers: Option<Workers>,
    shared: Arc<ServerContext>,
    description: String,
}

/// A server running in the background, for the demo, tests and embedding.
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<ServerStats>,
    /// TLS counters (handshakes, renegotiations, key updates) when TLS is on.
    pub tls_stats: Option<Arc<TlsStats>>,
    /// Forces key refresh on every TLS association (e.g. after a CRL update), when TLS is on.
    pub tls_trigger: Option<RenegotiationTrigger>,
    /// The TLS context, when TLS is on ([`TlsContext::reload_crls`]).
    pub tls: Option<Arc<TlsContext>>,
    /// Reloads the TLS and application CRLs now.
    pub crl: CrlReloader,
    registry: Arc<Registry>,
    model: SharedModel,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The model the server serves (see [`Server::model`]).
    pub fn model(&self) -> &SharedModel {
        &self.model
    }

    /// The associations established now.
    pub fn associations(&self) -> Vec<AssociationInfo> {
        self.registry.associations()
    }

    /// Sends an unsolicited InformationReport of the current values of `content` (named
    /// variables, or the members of a named variable list such as a data set) on association
    /// `id`, through its protection; returns once it is queued for sending.
    pub async fn report(
        &self,
        id: AssociationId,
        content: ReportContent,
    ) -> Result<(), ReportError> {
        self.registry.report(id, content).await
    }

    /// Stops accepting and ends every association task. The tasks end as their threads'
    /// runtimes (or the accept loop's own set of tasks) are dropped, just after this returns;
    /// their peers see the TCP connection close.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Server {
    /// The front door for a program that embeds a server: sections of the configuration, a
    /// live model, the event sink and the tuning, then [`ServerBuilder::bind`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Binds with validated sections `cfg` ([`ServerBuilder::bind`]).
    async fn bind_inner(
        cfg: Sections,
        sink: Arc<dyn SecurityEventSink>,
        tuning: Tuning,
        live_model: Option<SharedModel>,
    ) -> Result<Server, ServerError> {
        let cfg = tuning.resolve(cfg);
        let tls = if cfg.tls.enabled {
            Some(Arc::new(TlsContext::server(&cfg.tls, sink.clone())?))
        } else {
            crate::tls::report_plain(sink.as_ref(), "server", &cfg.server.listen);
            None
        };
        let security = AppSecurity::build(&cfg.security, &cfg.tls, &cfg.osi, sink.clone())?;
        let (model, description) = match (live_model, &cfg.server.model) {
            (Some(m), _) => (m, "model of the application".to_string()),
            (None, Some(p)) => (SharedModel::new(load_model(p)?), p.display().to_string()),
            (None, None) => (
                SharedModel::new(Model::default_demo()),
                "built-in demo model".to_string(),
            ),
        };
        let mms = Vmd::new(model, server_options(&cfg.server));
        let listener = transport::listen_tcp(&cfg.server.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: cfg.server.listen.clone(),
                source,
            })?;
        let admission = Admission::new(Limits {
            max_pending: cfg.server.max_pending,
            max_pending_per_source: cfg.server.max_pending_per_source,
            max_established: cfg.server.max_associations,
            max_per_source: cfg.server.max_associations_per_source,
        });
        let handshakes = crate::handshakes::HandshakeGate::new(
            crate::handshakes::Gated::Tls("server"),
            cfg.server.max_handshakes,
            cfg.server.handshake_rate,
        );
        let checks = Arc::new(crate::handshakes::HandshakeGate::new(
            crate::handshakes::Gated::Checks("server"),
            cfg.server.max_security_checks,
            cfg.server.security_check_rate,
        ));
        let workers = match worker_count(cfg.server.worker_threads) {
            0 => None,
            n => Some(Workers::start(n).map_err(ServerError::Workers)?),
        };
        Ok(Server {
            listener,
            workers,
            shared: Arc::new(ServerContext {
                cfg,
                mms,
                stats: Arc::new(ServerStats::default()),
                tls,
                security,
                revocations: tokio::sync::watch::channel(0).0,
                registry: Arc::default(),
                admission,
                handshakes,
                checks,
                sink,
            }),
            description,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the model came from.
    pub fn model_description(&self) -> &str {
        &self.description
    }

    /// Number of MMS named variables the model serves.
    pub fn variable_count(&self) -> usize {
        self.shared.mms.model().read().attribute_count()
    }

    /// The application security the server requires.
    pub fn security_mode(&self) -> crate::security::AppMode {
        self.shared.security.mode()
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.shared.stats.clone()
    }

    /// The TLS counters, when TLS is on.
    pub fn tls_stats(&self) -> Option<Arc<TlsStats>> {
        self.shared.tls.as_ref().map(|t| t.stats())
    }

    /// Reloads the TLS and application CRLs on demand (SIGHUP).
    pub fn crl_reloader(&self) -> CrlReloader {
        CrlReloader {
            shared: self.shared.clone(),
        }
    }

    /// The TLS context, when TLS is on (e.g. to reload CRLs or force renegotiation).
    pub fn tls(&self) -> Option<&Arc<TlsContext>> {
        self.shared.tls.as_ref()
    }

    /// Accepts connections until the task is cancelled.
    pub async fn run(mut self) -> Result<(), ServerError> {
        // §6.2 DECISION: revocation information re-evaluated at least every
        // `tls.crl_evaluation_period_secs`; a changed CRL forces renegotiation.
        let period = Duration::from_secs(self.shared.cfg.tls.crl_evaluation_period_secs.max(1));
        let mut crl_tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut workers = self.workers.take();
        // Associations on this runtime (`worker_threads = 0`): owned here, so that ending the
        // accept loop ends them, as dropping `workers` ends the others.
        let mut local = tokio::task::JoinSet::new();
        let mut accept_backoff = Duration::ZERO;
        loop {
            while local.try_join_next().is_some() {}
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = crl_tick.tick() => {
                    let r = self.crl_reloader().reload();
                    if r.tls_changed {
                        info!("CRL changed: renegotiating every TLS association");
                    }
                    continue;
                }
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Resource exhaustion (EMFILE) must not end the server: back off, more
                    // each time it repeats (at most a second), and say so once in a while.
                    if let Some(n) = ACCEPT_FAILED.check(std::time::Instant::now()) {
                        warn!("accept failed: {e}{}", left_out(n));
                    }
                    accept_backoff =
                        (accept_backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                    tokio::time::sleep(accept_backoff).await;
                    continue;
                }
            };
            accept_backoff = Duration::ZERO;
            let shared = self.shared.clone();
            shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            // A client that spoke at once (its CR or ClientHello is already here) ranks above
            // silent connections should the pending places run out.
            let sock = socket2::SockRef::from(&stream);
            let mut first = [std::mem::MaybeUninit::<u8>::uninit(); 1];
            let (stage, probe) = match sock.peek(&mut first) {
                Ok(n) if n > 0 => (Stage::Talking, None),
                _ => (Stage::Accepted, sock.try_clone().ok()),
            };
            let (ticket, evicted) = match shared.admission.admit(peer.ip(), stage, probe) {
                Ok(x) => x,
                Err(why) => {
                    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    if let Some(n) = REFUSED.check(std::time::Instant::now()) {
                        warn!(%peer, "refusing connection: {why}{}", left_out(n));
                    }
                    // Floods of these are summarised by the event outputs
                    // (`[events] aggregate_secs`), not here.
                    shared.sink.record(&crate::security::events::event(
                        crate::security::events::CONNECTION_REFUSED,
                        format!("connection refused: {why}"),
                        Some(peer.to_string()),
                    ));
                    drop(stream);
                    continue;
                }
            };
            if let Some(handle) = evicted {
                shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
                shared.sink.record(&crate::security::events::event(
                    crate::security::events::CONNECTION_EVICTED,
                    format!(
                        "server.max_pending connections were being set up: the oldest of the \
                         least advanced was dropped to make room for {peer}"
                    ),
                    // The newcomer's address: a flood of connections from one source is then
                    // one aggregated record per window (`[events] aggregate_secs`).
                    Some(peer.to_string()),
                ));
                if let Some(h) = handle {
                    h.abort();
                }
                if let Some(n) = EVICTED.check(std::time::Instant::now()) {
                    warn!(
                        %peer,
                        "server.max_pending connections are being set up: the oldest was dropped \
                         to make room{}",
                        left_out(n)
                    );
                }
            }
            let id = ticket.id();
            if let Err(e) = transport::configure_socket(&stream, &shared.cfg.tcp) {
                debug!(%peer, "socket options: {e}");
            }
            // The socket moves to the thread that serves the association (registered with that
            // thread's I/O driver there).
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                    debug!(%peer, "cannot hand the connection over: {e}");
                    continue;
                }
            };
            let established = Arc::new(AtomicBool::new(false));
            let policy = busy_poll_policy(&shared, established.clone());
            // The thread that will serve it, counted there while the association lives (the
            // count goes into the association's own future: a wrapping `async` block would
            // hold the future twice, once captured and once awaited).
            let worker = workers.as_mut().map(|w| {
                let (runtime, active) = w.pick();
                active.fetch_add(1, Ordering::Relaxed);
                (runtime.clone(), Active(active))
            });
            let (runtime, active) = match worker {
                Some((r, a)) => (Some(r), Some(a)),
                None => (None, None),
            };
            let association = async move {
                let _active = active;
                let stream = match tokio::net::TcpStream::from_std(stream) {
                    Ok(s) => PollingTcpStream::new(s, policy),
                    Err(e) => {
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, "cannot register the connection: {e}");
                        return;
                    }
                };
                let mut facts = ConnectionFacts {
                    peer_address: Some(peer.ip()),
                    peer_socket: Some(peer),
                    ..Default::default()
                };
                let r = match &shared.tls {
                    None => serve_association(stream, &shared, &facts, &established, ticket).await,
                    // Boxed: the handshake's state is only kept while it runs, not for the
                    // association's whole life (memory per idle association).
                    Some(tls) => {
                        match Box::pin(gated_handshake(&shared, tls, stream, peer)).await {
                            Ok(s) => {
                                ticket.progress(Stage::Talking);
                                facts.tls = true;
                                facts.tls_fingerprints = tls_fingerprints(s.ssl());
                                serve_association(s, &shared, &facts, &established, ticket).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                match &r {
                    Ok(()) => {
                        shared.stats.released.fetch_add(1, Ordering::Relaxed);
                        debug!(%peer, "association released");
                    }
                    // The peer went away: nothing to report beyond the counter.
                    Err(LinkError::Closed) => {
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                        info!(%peer, "association ended: {}", LinkError::Closed);
                    }
                    // A refusal, a failed check, a timeout: its real cause, once in a while.
                    Err(e) => {
                        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
                        match ENDED.check(std::time::Instant::now()) {
                            Some(n) => warn!(%peer, "association ended: {e}{}", left_out(n)),
                            // Left out of the WARN lines, but still one line per association
                            // for whoever logs at DEBUG (an operator tracing one peer, the
                            // soak under faults matching every end to its cause).
                            None => debug!(%peer, "association ended: {e}"),
                        }
                    }
                }
            };
            match runtime {
                Some(runtime) => {
                    let task = runtime.spawn(association);
                    self.shared.admission.attach(id, task.abort_handle());
                }
                None => {
                    let handle = local.spawn(association);
                    self.shared.admission.attach(id, handle);
                }
            }
        }
    }

    /// Runs the accept loop in a background task.
    pub fn spawn(self) -> std::io::Result<ServerHandle> {
        let addr = self.local_addr()?;
        let stats = self.stats();
        let tls_stats = self.tls_stats();
        let tls_trigger = self.tls().map(|t| t.renegotiation_trigger());
        let tls_ctx = self.tls().cloned();
        let crl = self.crl_reloader();
        let registry = self.shared.registry.clone();
        let model = self.model();
        let task = tokio::spawn(async move {
            let _ = self.run().await;
        });
        Ok(ServerHandle {
            addr,
            stats,
            tls_stats,
            tls_trigger,
            tls: tls_ctx,
            crl,
            registry,
            model,
            task,
        })
    }

    /// The model the server serves: the application sets, reads and observes its values
    /// while the server runs ([`SharedModel::set`], [`SharedModel::observe`]).
    pub fn model(&self) -> SharedModel {
        self.shared.mms.model().clone()
    }
}

/// The MMS service options `cfg` asks for.
pub fn server_options(cfg: &ServerConfig) -> VmdConfig {
    VmdConfig {
        max_pdu_size: cfg.max_pdu_size,
        max_serv_outstanding: cfg.max_outstanding,
        ..Default::default()
    }
}

/// Largest model file read (SCL files of whole substations are large, but not this large).
pub const MAX_MODEL_FILE: u64 = 64 * 1024 * 1024;

/// Loads a model file: SCL (`.cid`, `.icd`, `.scd`, `.iid`, `.xml`) or the TOML model form.
pub fn load_model(path: &std::path::Path) -> Result<Model, ServerError> {
    let fail = |e: String| ServerError::Model(format!("{}: {e}", path.display()));
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > MAX_MODEL_FILE {
        return Err(fail(format!(
            "{len} octets is more than the {MAX_MODEL_FILE}-octet limit"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "toml" => Model::from_toml(&text).map_err(|e| fail(e.to_string())),
        _ => Model::from_scl(&text).map_err(|e| fail(e.to_string())),
    }
}

/// The polling window of `server.busy_poll_us` for one connection (see [`busy_poll_window`]):
/// none until its association is established (`established` set by the association's task), so
/// connections still being set up (handshakes, refusals) never poll. The CPU count is taken per
/// connection, so a change of the process's CPU affinity (`taskset`) is honoured.
fn busy_poll_policy(shared: &Arc<ServerContext>, established: Arc<AtomicBool>) -> BusyPollPolicy {
    let shared = shared.clone();
    let cpus = cpus();
    Arc::new(move || {
        if !established.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        busy_poll_window(
            shared.cfg.server.busy_poll_us,
            shared.stats.established.load(Ordering::Relaxed),
            cpus,
        )
    })
}

/// `server.busy_poll_us`: the configured window, or the adaptive one: polling while no more
/// associations are established than half the CPUs (each polling association keeps a thread
/// busy, and the clients need CPUs too), none on one CPU.
fn busy_poll_window(configured: Option<u64>, established: u64, cpus: usize) -> Duration {
    let us = match configured {
        Some(us) => us,
        None if cpus >= 2 && established.saturating_mul(2) <= cpus as u64 => {
            ServerConfig::DEFAULT_BUSY_POLL_US
        }
        None => 0,
    };
    Duration::from_micros(us)
}

/// The MMS server side of one association, as a [`Machine`] on a byte stream (TCP, or TLS after
/// the handshake): a [`SecureAssociation`] answered by the MMS server session, with the OCSP
/// step before the association is accepted, reports from the application, and the CRL re-check.
struct ServerMachine<'a> {
    shared: &'a ServerContext,
    sa: SecureAssociation,
    /// The connection's place ([`crate::admission`]): pending until the accept.
    ticket: Ticket,
    label: String,
    /// Set once the association is established (the connection's busy-poll policy reads it).
    established: &'a AtomicBool,
    /// Counts the association in [`ServerStats::established`] while it lives.
    counted: Option<Established<'a>>,
    /// The MMS session once the initiate was accepted.
    session: Option<secmms_mms::server::ServerSession>,
    /// Listed for the application, which may send reports, once established.
    registered: Option<crate::live::Registered<'a>>,
    commands: Option<tokio::sync::mpsc::Receiver<AssocCmd>>,
    /// The initiate request waiting for the OCSP answer.
    indication: Option<Vec<u8>>,
    /// The AARQ held back until it has a place for its checks.
    gate: AarqHold,
    /// The end of the association set-up (`associate_timeout_secs` after the connection began).
    setup_deadline: tokio::time::Instant,
    associate_timeout: Duration,
    idle: Option<Duration>,
    pdu: Option<Duration>,
    cpus: usize,
    /// A new turn began: the response group is sized again for the burst that arrived.
    turn: bool,
    grouped: usize,
    group: usize,
    result: Option<Result<(), LinkError>>,
}

impl<'a> ServerMachine<'a> {
    fn end(&mut self, r: Result<(), LinkError>) {
        self.result.get_or_insert(r);
    }

    /// The place for the AARQ's checks came (or not): check it, or abort.
    fn on_check_slot(
        &mut self,
        slot: Result<crate::handshakes::Slot, crate::handshakes::GateRefusal>,
        now: Now,
    ) {
        let Some(held) = self.gate.release() else {
            return;
        };
        let shared = self.shared;
        match slot {
            Ok(slot) => {
                if slot.waited {
                    shared.stats.checks_delayed.fetch_add(1, Ordering::Relaxed);
                }
                // The checks run here, in the association's own input handling.
                let r = self.sa.handle_input(&held, now);
                drop(slot);
                if let Err(e) = r {
                    self.end(Err(LinkError::Osi(e)));
                }
            }
            Err(why) => {
                shared.stats.checks_refused.fetch_add(1, Ordering::Relaxed);
                let text = why.describe(shared.checks.gated());
                let wait = self.associate_timeout;
                if let Some(n) = CHECKS_REFUSED.check(std::time::Instant::now()) {
                    warn!(peer = %self.label, "aborting association: {text} for {wait:?}{}", left_out(n));
                }
                shared.sink.record(&crate::security::events::event(
                    crate::security::events::CHECK_REFUSED,
                    format!("AARQ not checked: {text} for {wait:?}"),
                    Some(self.label.clone()),
                ));
                // The AARQ was not read: an abort, when the session allows one.
                let _ = self.sa.abort(now);
                self.end(Err(match why {
                    crate::handshakes::GateRefusal::Busy => RefusalReason::ChecksBusy,
                    crate::handshakes::GateRefusal::Rate => RefusalReason::CheckRate,
                }
                .into()));
            }
        }
        self.turn = true;
    }

    /// Answers the MMS initiate of an associate indication.
    fn on_indication(&mut self, initiate: &[u8], now: Now) -> Result<(), LinkError> {
        let shared = self.shared;
        if !self.ticket.promote() {
            // Its checks passed, but there is no place for one more established association.
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            self.sa.reject(
                ACSE_REJECTED_TRANSIENT,
                SourceDiagnostic::ServiceUser(ACSE_USER_NO_REASON),
                None,
                now,
            )?;
            return Err(RefusalReason::Admission {
                max: shared.cfg.server.max_associations,
            }
            .into());
        }
        match shared.mms.accept_initiate(initiate) {
            InitiateOutcome::Accepted {
                response,
                association,
            } => {
                self.sa.accept(response, now)?;
                shared.stats.associations.fetch_add(1, Ordering::Relaxed);
                self.counted = Some(Established::new(&shared.stats.established));
                self.established.store(true, Ordering::Relaxed);
                let protection = self.sa.protection();
                if let Some(p) = protection.peer_name() {
                    debug!("application-layer peer authenticated: {p}");
                }
                debug!("association protected by: {}", protection.describe());
                let peer = match protection.peer_name() {
                    Some(p) => format!("{} ({p})", self.label),
                    None => self.label.clone(),
                };
                let (r, rx) = shared.registry.register(peer, protection.describe());
                self.registered = Some(r);
                self.commands = Some(rx);
                self.session = Some(association);
            }
            InitiateOutcome::Refused { response, error } => {
                debug!("initiate refused: {error:?}");
                self.sa.reject(
                    ACSE_REJECTED_PERMANENT,
                    SourceDiagnostic::ServiceUser(ACSE_USER_NO_REASON),
                    Some(response),
                    now,
                )?;
            }
            InitiateOutcome::Invalid(e) => {
                self.sa.abort(now)?;
                return Err(RefusalReason::InvalidInitiate(e).into());
            }
        }
        Ok(())
    }

    /// Sends an InformationReport of `content` on the established association.
    fn send_report(&mut self, content: ReportContent, now: Now) -> Result<(), ReportError> {
        let session = self.session.as_ref().ok_or(ReportError::Ended)?;
        let pdu = session.report(content)?;
        self.sa
            .send_mms(&pdu, now)
            .map_err(|e| ReportError::Protection(e.to_string()))
    }
}

impl<S: Stream> Machine<ByteStream<S>> for ServerMachine<'_> {
    type Cmd = AssocCmd;
    type Effect = ServerEffect;

    fn handle_input(&mut self, _: Port, input: &[u8], now: Now) {
        self.turn = true;
        if self.session.is_none() {
            self.ticket.progress(Stage::Talking);
        }
        let sa = &mut self.sa;
        let r = self.gate.input(input, |b| sa.handle_input(b, now));
        if self.gate.is_whole() {
            self.ticket.progress(Stage::Checking);
        }
        if let Err(e) = r {
            self.end(Err(LinkError::Osi(e)));
        }
    }

    fn transport_closed(&mut self, _: Port, error: Option<std::io::Error>, now: Now) {
        match error {
            None => self.sa.transport_closed(now),
            Some(e) => self.end(Err(LinkError::Io(e))),
        }
    }

    fn write_failed(&mut self, _: Port, error: LinkError, _: Now) {
        self.end(Err(error));
    }

    fn commands(&mut self) -> Option<&mut tokio::sync::mpsc::Receiver<AssocCmd>> {
        self.commands.as_mut()
    }

    fn handle_cmd(&mut self, cmd: Option<AssocCmd>, now: Now) -> bool {
        self.turn = true;
        match cmd {
            Some(AssocCmd::Report { content, reply }) => {
                let r = self.send_report(content, now);
                let _ = reply.send(r);
                true
            }
            None => {
                self.commands = None;
                false
            }
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.turn = true;
        self.sa.handle_timeout(now);
    }

    fn handle_wake(&mut self, now: Now) {
        // The application CRLs changed: is the peer still valid (§6.2.8)?
        if let Err(e) = self.sa.recheck_peer(now) {
            self.end(Err(e.into()));
        }
    }

    fn process(&mut self, now: Now) -> Step<Self::Effect, ByteStream<S>> {
        if self.result.is_some() {
            return Step::Done;
        }
        if self.indication.is_some() {
            // Waiting for the OCSP answer ([`Self::complete`]).
            return Step::Idle;
        }
        if std::mem::take(&mut self.turn) {
            self.grouped = 0;
            self.group = response_group(
                self.shared.cfg.server.response_group,
                self.sa.queued_events(),
                self.shared.stats.established.load(Ordering::Relaxed),
                self.cpus,
            );
        }
        while let Some(ev) = self.sa.poll_event() {
            match ev {
                SecureEvent::AssociateIndication { initiate, .. } => {
                    self.ticket.progress(Stage::Checking);
                    let initiate = initiate.unwrap_or_default();
                    // §6.2.8: OCSP for the peer's application certificate, before the AARE (or
                    // HandshakeAcc) goes out.
                    if let Some(lookup) = self.shared.security.peer_ocsp_lookup(&self.sa) {
                        self.indication = Some(initiate);
                        return Step::Effect(Box::pin(
                            async move { ServerEffect::Ocsp(lookup.await) },
                        ));
                    }
                    if let Err(e) = self.on_indication(&initiate, now) {
                        self.end(Err(e));
                        return Step::Done;
                    }
                }
                SecureEvent::Mms(pdu) => {
                    let Some(mms) = &self.session else { continue };
                    if let Some(resp) = mms.handle_queued_pdu(&pdu) {
                        self.shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = self.sa.send_mms(&resp, now) {
                            self.end(Err(e.into()));
                            return Step::Done;
                        }
                        self.grouped += 1;
                        if self.grouped == self.group {
                            // Let the client start on these while the rest are prepared.
                            self.grouped = 0;
                            return Step::Flush;
                        }
                    }
                }
                SecureEvent::SecurityFailure(e) => {
                    // The abort (DtSecAbort / osiDiag) is queued: it goes out, then we stop.
                    self.end(Err(e.into()));
                    return Step::Done;
                }
                SecureEvent::ReleaseIndication { conclude } => {
                    let concluded = self.session.as_ref().is_some_and(|m| m.is_concluded());
                    let answer = secmms_mms::server::release_answer(concluded, conclude.as_deref());
                    let r = self
                        .sa
                        .release_response(answer, now)
                        .map_err(LinkError::from);
                    self.end(r);
                    return Step::Done;
                }
                SecureEvent::TimedOut(kind) => {
                    let t = match kind {
                        TimerKind::Associate => self.associate_timeout,
                        TimerKind::Pdu => self.pdu.unwrap_or_default(),
                        _ => self.idle.unwrap_or_default(),
                    };
                    self.end(Err(LinkError::Timeout(t)));
                    return Step::Done;
                }
                // The peer closed: our TLS close_notify answers its own (a TLS session that
                // ends without one is dropped from the session cache). Before the association
                // was established, a close after our refusal is that refusal.
                SecureEvent::Aborted(_) | SecureEvent::Closed => {
                    let r = match (self.session.is_none(), self.sa.last_diagnostic()) {
                        (true, Some(d)) => RefusalReason::E2eCheck(d.clone()).into(),
                        _ => LinkError::Closed,
                    };
                    self.end(Err(r));
                    return Step::Done;
                }
                SecureEvent::ProtocolError(e) => {
                    self.end(Err(LinkError::Osi(e)));
                    return Step::Done;
                }
                _ => {}
            }
        }
        if self.sa.is_closed() {
            self.end(Err(LinkError::Closed));
            return Step::Done;
        }
        if self.gate.ask() {
            // The AARQ is whole: wait for a place for its checks.
            let enter = self.shared.checks.clone().enter_owned(self.setup_deadline);
            return Step::Effect(Box::pin(async move { ServerEffect::Slot(enter.await) }));
        }
        Step::Idle
    }

    fn complete(&mut self, outcome: Self::Effect, now: Now) {
        let outcome = match outcome {
            ServerEffect::Slot(slot) => return self.on_check_slot(slot, now),
            ServerEffect::Ocsp(o) => o,
        };
        let Some(initiate) = self.indication.take() else {
            return;
        };
        let r = self
            .shared
            .security
            .apply_peer_ocsp(&mut self.sa, outcome, &self.label, now)
            .map_err(LinkError::from)
            .and_then(|()| self.on_indication(&initiate, now));
        if let Err(e) = r {
            self.end(Err(e));
        }
        // The events after the indication are taken in the next `process`.
        self.turn = true;
    }

    fn flushed(&mut self) {
        // Everything answered is written: those requests are no longer outstanding
        // (`ServerSession` refuses more than the negotiated number in between).
        if let Some(mms) = &self.session {
            mms.answers_sent();
        }
    }

    fn poll_transmit(&mut self, _: Port) -> Option<Vec<u8>> {
        self.sa.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.sa.poll_timeout()
    }
}

/// Serves one association on any stream (TCP, or TLS after the handshake): a
/// [`ServerMachine`] run by the [`drive`]r.
async fn serve_association<S: Stream>(
    stream: S,
    shared: &ServerContext,
    facts: &ConnectionFacts,
    established: &AtomicBool,
    ticket: Ticket,
) -> Result<(), LinkError> {
    let osi = osi_config(&shared.cfg.osi, true)
        .map_err(|e| LinkError::Io(std::io::Error::other(e.to_string())))?;
    let associate_timeout = Duration::from_secs(shared.cfg.server.associate_timeout_secs.max(1));
    let idle = match shared.cfg.server.idle_timeout_secs {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let pdu = secs(shared.cfg.server.pdu_timeout_secs);
    let timeouts = Timeouts {
        associate: Some(associate_timeout),
        idle,
        release: None,
        pdu,
    };
    let start = driver::now();
    let sa = shared
        .security
        .secure_responder(osi, facts, timeouts, start);
    // Compat and native AARQs wait for a place for their checks (plain ones have none).
    let gate = AarqHold::new(shared.security.mode() != crate::security::AppMode::Plain);
    let mut m = ServerMachine {
        shared,
        sa,
        ticket,
        label: facts.label(),
        established,
        counted: None,
        session: None,
        registered: None,
        commands: None,
        indication: None,
        gate,
        setup_deadline: tokio::time::Instant::from_std(start.mono) + associate_timeout,
        associate_timeout,
        idle,
        pdu,
        cpus: cpus(),
        turn: true,
        grouped: 0,
        group: 0,
        result: None,
    };
    // A peer that sends requests but never reads the responses blocks our writes once the socket
    // buffers are full; it is dropped after `write_stall_secs` (or the idle timeout, if shorter),
    // and not read meanwhile.
    let stall = match (secs(shared.cfg.server.write_stall_secs), idle) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let transport = ByteStream::new(stream, stall);
    drive(&mut m, transport, Some(shared.revocations.subscribe())).await;
    m.result.unwrap_or(Err(LinkError::Closed))
}

/// What the server's association machine awaits: the OCSP answer for its peer, or a place for
/// its AARQ's checks.
enum ServerEffect {
    Ocsp(Option<crate::security::OcspOutcome>),
    Slot(Result<crate::handshakes::Slot, crate::handshakes::GateRefusal>),
}

/// ACSE result `rejected-permanent` (X.227).
const ACSE_REJECTED_PERMANENT: i64 = 1;
/// ACSE result `rejected-transient` (X.227).
const ACSE_REJECTED_TRANSIENT: i64 = 2;

/// `Some(n seconds)`, or `None` for 0 (no limit).
fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// Shortest and longest pause after a failed accept (EMFILE and the like).
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The server's rate-limited log lines: failed accepts, refused connections, dropped pending
/// connections, associations ended by a refusal, a failed check or a timeout.
/// The TLS handshake of an accepted connection, once it has sent something and got a slot of
/// `server.max_handshakes` / `server.handshake_rate` (docs/RELIABILITY.md).
async fn gated_handshake(
    shared: &ServerContext,
    tls: &TlsContext,
    stream: PollingTcpStream,
    peer: SocketAddr,
) -> Result<crate::tls::TlsStream<PollingTcpStream>, LinkError> {
    let timeout = Duration::from_secs(shared.cfg.tls.handshake_timeout_secs.max(1));
    let deadline = tokio::time::Instant::now() + timeout;
    // A silent connection holds no slot; the handshake timeout still bounds it.
    if tokio::time::timeout_at(deadline, stream.get_ref().readable())
        .await
        .is_err()
    {
        shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
        return Err(RefusalReason::NoClientHello(timeout).into());
    }
    let slot = match shared.handshakes.enter(deadline).await {
        Ok(slot) => slot,
        Err(refusal) => {
            shared
                .stats
                .handshakes_refused
                .fetch_add(1, Ordering::Relaxed);
            let why = refusal.describe(shared.handshakes.gated());
            if let Some(n) = HANDSHAKES_REFUSED.check(std::time::Instant::now()) {
                warn!(%peer, "refusing connection: {why} for {timeout:?}{}", left_out(n));
            }
            shared.sink.record(&crate::security::events::event(
                crate::security::events::HANDSHAKE_REFUSED,
                format!("TLS handshake refused: {why} for {timeout:?}"),
                Some(peer.to_string()),
            ));
            return Err(match refusal {
                crate::handshakes::GateRefusal::Busy => RefusalReason::HandshakesBusy,
                crate::handshakes::GateRefusal::Rate => RefusalReason::HandshakeRate,
            }
            .into());
        }
    };
    if slot.waited {
        shared
            .stats
            .handshakes_delayed
            .fetch_add(1, Ordering::Relaxed);
    }
    let r = tls.accept(stream, peer).await;
    drop(slot);
    r.map_err(|e| {
        shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
        RefusalReason::TlsHandshake(Arc::new(e)).into()
    })
}

static CHECKS_REFUSED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static HANDSHAKES_REFUSED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static ACCEPT_FAILED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static REFUSED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static EVICTED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static ENDED: LogLimiter = LogLimiter::new(10, Duration::from_secs(10));
/// ACSE service-user diagnostic `no-reason-given` (X.227).
const ACSE_USER_NO_REASON: i64 = 1;

#[cfg(test)]
mod tests;
