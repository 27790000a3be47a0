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
use crate::config::{Config, ServerConfig};
use crate::driver::LinkError;
use crate::driver::{self, drive, ByteStream, Machine, Port, Step};
use crate::events::ratelimit::{left_out, LogLimiter};
use crate::live::{AssocCmd, AssociationId, AssociationInfo, Registry, ReportError};
use crate::osi::osi_config;
use crate::security::{tls_fingerprints, AppSecurity, ConnectionFacts};
use crate::tls::{RenegotiationTrigger, TlsContext, TlsStats};
use crate::transport::{self, BusyPollPolicy, PollingTcpStream, Stream};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The model file could not be loaded.
    #[error("cannot load the model: {0}")]
    Model(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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

struct Shared {
    cfg: Config,
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
    shared: Arc<Shared>,
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

/// The threads that run associations when `server.worker_threads` asks for dedicated ones: each
/// runs a single-threaded tokio runtime, so an association's socket, timers and task live on one
/// thread that owns its I/O driver, and no other thread is woken when its input arrives.
/// Dropping the pool stops the threads, which ends the associations they run.
struct Workers {
    threads: Vec<Worker>,
    next: usize,
}

struct Worker {
    handle: tokio::runtime::Handle,
    /// Associations (and connections being set up) on this thread.
    active: Arc<AtomicU64>,
    /// Dropped with the pool: the thread's runtime then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Workers {
    fn start(n: usize) -> std::io::Result<Workers> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("secmms-assoc-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            let handle = rx
                .recv()
                .map_err(|_| std::io::Error::other("association thread ended at start"))??;
            threads.push(Worker {
                handle,
                active: Arc::new(AtomicU64::new(0)),
                _stop: stop,
            });
        }
        Ok(Workers { threads, next: 0 })
    }

    /// The thread serving the fewest connections (round robin among equals), and its counter.
    fn pick(&mut self) -> (&tokio::runtime::Handle, Arc<AtomicU64>) {
        let n = self.threads.len();
        let mut best = self.next % n;
        for k in 1..n {
            let i = (self.next + k) % n;
            if self.threads[i].active.load(Ordering::Relaxed)
                < self.threads[best].active.load(Ordering::Relaxed)
            {
                best = i;
            }
        }
        self.next = best + 1;
        let w = &self.threads[best];
        (&w.handle, w.active.clone())
    }
}

/// Decrements a worker's association count when the association's task ends.
struct Active(Arc<AtomicU64>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// CPUs this process may run on now (its affinity and quota; 1 when unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `server.worker_threads`: absent = one per CPU (the daemon's tuning; an embedded server has
/// it resolved to 0 at bind), 0 = none (associations run on the runtime that runs the server).
fn worker_count(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(cpus)
}

/// Whom the performance settings a configuration leaves unset (`server.worker_threads`,
/// `server.busy_poll_us`) should suit. Settings the configuration gives are used as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tuning {
    /// A server inside someone else's program (the default of [`Server::bind`]): associations
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
    fn resolve(self, mut cfg: Config) -> Config {
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
    shared: Arc<Shared>,
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
    /// Loads the model named by the configuration (or the built-in demo model) and binds.
    /// Security events go where the `[events]` section says (tracing by default; the
    /// tamper-evident log and syslog when configured).
    ///
    /// The server suits embedding ([`Tuning::Embedded`]): no thread of its own, no busy
    /// polling, unless the configuration asks for them; [`Server::bind_tuned`] chooses.
    pub async fn bind(cfg: Config) -> Result<Server, ServerError> {
        Self::bind_tuned(cfg, Tuning::Embedded).await
    }

    /// Like [`Server::bind`], with the unset performance settings chosen by `tuning`
    /// (`secmms server` binds with [`Tuning::Daemon`]).
    pub async fn bind_tuned(cfg: Config, tuning: Tuning) -> Result<Server, ServerError> {
        let sink = cfg
            .events
            .build()
            .map_err(crate::config::ConfigError::from)?;
        Self::bind_inner(cfg, Arc::new(sink), tuning, None).await
    }

    /// Like [`Server::bind`], with the sink that receives the security events (TLS refusals,
    /// key refreshes, `TLS_DISABLED` for a plain endpoint).
    pub async fn bind_with_events(
        cfg: Config,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Server, ServerError> {
        Self::bind_inner(cfg, sink, Tuning::Embedded, None).await
    }

    /// The front door for a program that embeds a server: sections of the configuration, a
    /// live model, the event sink and the tuning, then [`ServerBuilder::bind`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    async fn bind_inner(
        cfg: Config,
        sink: Arc<dyn SecurityEventSink>,
        tuning: Tuning,
        live_model: Option<SharedModel>,
    ) -> Result<Server, ServerError> {
        let cfg = tuning.resolve(cfg);
        cfg.validate()?;
        let tls = if cfg.tls.enabled {
            Some(Arc::new(TlsContext::server(&cfg.tls, sink.clone())?))
        } else {
            crate::tls::report_plain(sink.as_ref(), "server", &cfg.server.listen);
            None
        };
        let security = AppSecurity::build(&cfg, sink.clone())?;
        let (model, description) = match (live_model, &cfg.server.model) {
            (Some(m), _) => (m, "model of the application".to_string()),
            (None, Some(p)) => (SharedModel::new(load_model(p)?), p.display().to_string()),
            (None, None) => (
                SharedModel::new(Model::default_demo()),
                "built-in demo model".to_string(),
            ),
        };
        let mms = Vmd::new(model, server_options(&cfg));
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
        let workers = match worker_count(cfg.server.worker_threads) {
            0 => None,
            n => Some(Workers::start(n).map_err(ServerError::Workers)?),
        };
        Ok(Server {
            listener,
            workers,
            shared: Arc::new(Shared {
                cfg,
                mms,
                stats: Arc::new(ServerStats::default()),
                tls,
                security,
                revocations: tokio::sync::watch::channel(0).0,
                registry: Arc::default(),
                admission,
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
                    drop(stream);
                    continue;
                }
            };
            if let Some(handle) = evicted {
                shared.stats.evicted.fetch_add(1, Ordering::Relaxed);
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
            let association = async move {
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
                    Some(tls) => match tls.accept(stream, peer).await {
                        Ok(s) => {
                            ticket.progress(Stage::Talking);
                            facts.tls = true;
                            facts.tls_fingerprints = tls_fingerprints(s.ssl());
                            serve_association(s, &shared, &facts, &established, ticket).await
                        }
                        Err(e) => {
                            shared.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                            Err(LinkError::Refused(format!("TLS: {e}")))
                        }
                    },
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
                        if let Some(n) = ENDED.check(std::time::Instant::now()) {
                            warn!(%peer, "association ended: {e}{}", left_out(n));
                        }
                    }
                }
            };
            match workers.as_mut() {
                Some(w) => {
                    let (runtime, active) = w.pick();
                    active.fetch_add(1, Ordering::Relaxed);
                    let active = Active(active);
                    let task = runtime.spawn(async move {
                        let _active = active;
                        association.await
                    });
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

/// Builds a [`Server`] section by section ([`Server::builder`]). What is not given keeps the
/// default of [`Config`]; [`ServerBuilder::config`] takes a whole configuration (the TOML file
/// of `secmms server`) to start from.
#[derive(Default)]
pub struct ServerBuilder {
    cfg: Config,
    model: Option<SharedModel>,
    sink: Option<Arc<dyn SecurityEventSink>>,
    tuning: Tuning,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("listen", &self.cfg.server.listen)
            .field("tuning", &self.tuning)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Starts from a whole configuration (every section).
    pub fn config(mut self, cfg: Config) -> Self {
        self.cfg = cfg;
        self
    }

    /// The address to listen on (`host:port`; 102 is RFC 1006's port, 3782 with TLS).
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.cfg.server.listen = addr.into();
        self
    }

    /// TCP socket options (Annex H keep-alive).
    pub fn tcp(mut self, tcp: crate::transport::TcpConfig) -> Self {
        self.cfg.tcp = tcp;
        self
    }

    /// TLS (clause 6); its `enabled` field turns it on.
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.cfg.tls = tls;
        self
    }

    /// Application-layer security: plain, compatibility or native mode, credentials, peers.
    pub fn security(mut self, security: crate::security::SecurityConfig) -> Self {
        self.cfg.security = security;
        self
    }

    /// OSI addressing (selectors, AP-titles) and sizes.
    pub fn osi(mut self, osi: crate::config::OsiSettings) -> Self {
        self.cfg.osi = osi;
        self
    }

    /// Limits, timeouts and tuning settings of the server (`[server]`); its `listen` and
    /// `model` fields are replaced by [`Self::listen`] and [`Self::model`] when those are given
    /// after it.
    pub fn limits(mut self, server: ServerConfig) -> Self {
        self.cfg.server = server;
        self
    }

    /// Where security events go, as configured (`[events]`); see [`Self::events`].
    pub fn events_config(mut self, events: crate::events::EventsConfig) -> Self {
        self.cfg.events = events;
        self
    }

    /// The sink that receives the security events (instead of the `[events]` outputs).
    pub fn events(mut self, sink: Arc<dyn SecurityEventSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The live model to serve (instead of `[server] model` or the built-in demo model). Keep
    /// a clone: the application sets values in it while the server runs, reads what clients
    /// wrote, and registers observers of every change.
    pub fn model(mut self, model: SharedModel) -> Self {
        self.model = Some(model);
        self
    }

    /// Whom unset performance settings suit ([`Tuning::Embedded`] by default).
    pub fn tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// Validates the configuration, loads the credentials and binds.
    pub async fn bind(self) -> Result<Server, ServerError> {
        let sink = match self.sink {
            Some(s) => s,
            None => Arc::new(
                self.cfg
                    .events
                    .build()
                    .map_err(crate::config::ConfigError::from)?,
            ),
        };
        Server::bind_inner(self.cfg, sink, self.tuning, self.model).await
    }
}

/// The MMS service options `cfg` asks for.
pub fn server_options(cfg: &Config) -> VmdConfig {
    VmdConfig {
        max_pdu_size: cfg.server.max_pdu_size,
        max_serv_outstanding: cfg.server.max_outstanding,
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
fn busy_poll_policy(shared: &Arc<Shared>, established: Arc<AtomicBool>) -> BusyPollPolicy {
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
    shared: &'a Shared,
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
            return Err(LinkError::Refused(format!(
                "server.max_associations ({}) associations are established",
                shared.cfg.server.max_associations
            )));
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
                return Err(LinkError::Refused(format!(
                    "invalid MMS initiate request ({e}); aborted"
                )));
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
    type Effect = Option<crate::security::OcspOutcome>;

    fn handle_input(&mut self, _: Port, input: &[u8], now: Now) {
        self.turn = true;
        if self.session.is_none() {
            self.ticket.progress(Stage::Talking);
        }
        if let Err(e) = self.sa.handle_input(input, now) {
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
                        return Step::Effect(lookup);
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
                        (true, Some(d)) => LinkError::Refused(format!("E2E: {d}")),
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
        Step::Idle
    }

    fn complete(&mut self, outcome: Self::Effect, now: Now) {
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
    shared: &Shared,
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
    let sa = shared
        .security
        .secure_responder(osi, facts, timeouts, driver::now());
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
static ACCEPT_FAILED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static REFUSED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static EVICTED: LogLimiter = LogLimiter::new(5, Duration::from_secs(10));
static ENDED: LogLimiter = LogLimiter::new(10, Duration::from_secs(10));
/// ACSE service-user diagnostic `no-reason-given` (X.227).
const ACSE_USER_NO_REASON: i64 = 1;

#[cfg(test)]
mod tests {
    use super::{busy_poll_policy, busy_poll_window, cpus, response_group, worker_count, Workers};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn connections_poll_only_once_their_association_is_established() {
        let mut cfg = crate::Config::default();
        cfg.server.listen = "127.0.0.1:0".into();
        cfg.server.worker_threads = Some(1);
        let server = super::Server::bind_tuned(cfg, super::Tuning::Daemon)
            .await
            .unwrap();
        let established = Arc::new(AtomicBool::new(false));
        let policy = busy_poll_policy(&server.shared, established.clone());
        server.shared.stats.established.store(1, Ordering::Relaxed);
        assert_eq!(policy(), Duration::ZERO, "still being set up");
        established.store(true, Ordering::Relaxed);
        let cpus = cpus();
        assert_eq!(policy(), busy_poll_window(None, 1, cpus));
        // Too many associations established for the CPUs: no polling.
        server
            .shared
            .stats
            .established
            .store(cpus as u64 + 1, Ordering::Relaxed);
        assert_eq!(policy(), Duration::ZERO);
    }

    /// A server machine on the plain demo model, with `response_group` and a client-side
    /// association established with it, pumped by hand (no runtime, no socket).
    mod machine {
        use super::super::*;
        use secmms_mms::client::{self as mms_client, ClientProposal};
        use secmms_mms::pdu::ConfirmedServiceResponse;
        use secmms_mms::session::{ClientEvent, ClientSession};
        use secmms_profiles::secure::Now;

        type S = ByteStream<tokio::io::DuplexStream>;

        fn shared(group: usize, outstanding: u16) -> Shared {
            let mut cfg = Config::default();
            cfg.server.response_group = Some(group);
            cfg.server.max_outstanding = outstanding;
            let mms = Vmd::new(
                SharedModel::new(Model::default_demo()),
                server_options(&cfg),
            );
            Shared {
                cfg,
                mms,
                stats: Arc::default(),
                tls: None,
                security: AppSecurity::plain(),
                revocations: tokio::sync::watch::channel(0).0,
                registry: Arc::default(),
                admission: Admission::new(Limits {
                    max_pending: 10,
                    max_pending_per_source: 10,
                    max_established: 10,
                    max_per_source: 0,
                }),
            }
        }

        fn machine<'a>(
            shared: &'a Shared,
            established: &'a AtomicBool,
            now: Now,
        ) -> ServerMachine<'a> {
            let osi = osi_config(&shared.cfg.osi, true).unwrap();
            let sa = shared.security.secure_responder(
                osi,
                &ConnectionFacts::default(),
                Timeouts::default(),
                now,
            );
            let (ticket, _) = shared
                .admission
                .admit(
                    std::net::IpAddr::from([127, 0, 0, 1]),
                    Stage::Accepted,
                    None,
                )
                .unwrap();
            ServerMachine {
                shared,
                sa,
                ticket,
                label: "test".into(),
                established,
                counted: None,
                session: None,
                registered: None,
                commands: None,
                indication: None,
                associate_timeout: Duration::from_secs(10),
                idle: None,
                pdu: None,
                cpus: 2,
                turn: true,
                grouped: 0,
                group: 0,
                result: None,
            }
        }

        /// Runs `process` until idle, calling `flushed` after each `Flush` as the driver does;
        /// returns the number of flushes and every output.
        fn run(m: &mut ServerMachine<'_>, now: Now) -> (usize, Vec<u8>) {
            let mut flushes = 0;
            let mut out = Vec::new();
            loop {
                let step: Step<_, S> = Machine::<S>::process(m, now);
                match step {
                    Step::Idle => break,
                    Step::Flush => {
                        flushes += 1;
                        while let Some(b) = Machine::<S>::poll_transmit(m, Port::Up) {
                            out.extend(b);
                        }
                        Machine::<S>::flushed(m);
                    }
                    _ => panic!("unexpected step"),
                }
            }
            while let Some(b) = Machine::<S>::poll_transmit(m, Port::Up) {
                out.extend(b);
            }
            (flushes, out)
        }

        /// A plain client association established with `m`, and its MMS session.
        fn associate(
            m: &mut ServerMachine<'_>,
            outstanding: u16,
            now: Now,
        ) -> (
            secmms_profiles::secure::SecureAssociation,
            ClientSession<u32>,
        ) {
            let cfg = Config::default();
            let osi = osi_config(&cfg.osi, false).unwrap();
            let mut c = AppSecurity::plain()
                .secure_initiator(osi, &ConnectionFacts::default(), Timeouts::default(), now)
                .unwrap();
            let proposal = ClientProposal {
                max_serv_outstanding_calling: outstanding,
                max_serv_outstanding_called: outstanding,
                ..Default::default()
            };
            c.connect(mms_client::initiate_request_pdu(&proposal), now)
                .unwrap();
            // CR / CC, then the AARQ / AARE.
            assert!(
                !m.established.load(Ordering::Relaxed),
                "not before the accept"
            );
            for _ in 0..4 {
                while let Some(b) = c.poll_transmit() {
                    Machine::<S>::handle_input(m, Port::Up, &b, now);
                }
                let (flushes, answer) = run(m, now);
                assert_eq!(flushes, 0);
                c.handle_input(&answer, now).unwrap();
            }
            assert!(m.established.load(Ordering::Relaxed), "set at the accept");
            let negotiated = loop {
                match c.poll_event() {
                    Some(SecureEvent::Established {
                        initiate_response: Some(r),
                        ..
                    }) => break mms_client::parse_initiate_response(&r, &proposal).unwrap(),
                    Some(_) => {}
                    None => panic!("not established"),
                }
            };
            (c, ClientSession::established(proposal, negotiated))
        }

        #[test]
        fn a_burst_of_16_with_groups_of_4_is_written_in_four_flushes() {
            let now = crate::driver::now();
            let shared = shared(4, 16);
            let established = AtomicBool::new(false);
            let mut m = machine(&shared, &established, now);
            let (mut c, mut session) = associate(&mut m, 16, now);
            let name = secmms_mms::ObjectName::DomainSpecific {
                domain: "DEMOLD0".into(),
                item: "GGIO1$ST$Ind1$stVal".into(),
            };
            let mut burst = Vec::new();
            for i in 0..16 {
                let (_, pdu) = session
                    .request(mms_client::read_name(name.clone()), i)
                    .unwrap();
                c.send_mms(&pdu, now).unwrap();
                while let Some(b) = c.poll_transmit() {
                    burst.extend(b);
                }
            }
            Machine::<S>::handle_input(&mut m, Port::Up, &burst, now);
            let (flushes, answers) = run(&mut m, now);
            assert_eq!(flushes, 4, "16 answers in groups of 4");
            c.handle_input(&answers, now).unwrap();
            let mut answered = 0;
            while let Some(ev) = c.poll_event() {
                if let SecureEvent::Mms(pdu) = ev {
                    match session.handle_pdu(&pdu) {
                        ClientEvent::Answer { result, .. } => {
                            assert!(matches!(result, Ok(ConfirmedServiceResponse::Read(_))));
                            answered += 1;
                        }
                        _ => panic!("not an answer"),
                    }
                }
            }
            assert_eq!(answered, 16);
            assert_eq!(shared.stats.requests.load(Ordering::Relaxed), 16);
        }

        #[test]
        fn the_whole_burst_goes_in_one_write_with_group_0() {
            let now = crate::driver::now();
            let shared = shared(0, 16);
            let established = AtomicBool::new(false);
            let mut m = machine(&shared, &established, now);
            let (mut c, mut session) = associate(&mut m, 16, now);
            let mut burst = Vec::new();
            for i in 0..8 {
                let (_, pdu) = session.request(mms_client::identify(), i).unwrap();
                c.send_mms(&pdu, now).unwrap();
                while let Some(b) = c.poll_transmit() {
                    burst.extend(b);
                }
            }
            Machine::<S>::handle_input(&mut m, Port::Up, &burst, now);
            let (flushes, answers) = run(&mut m, now);
            assert_eq!(flushes, 0);
            assert!(!answers.is_empty());
        }

        #[test]
        fn an_idle_timeout_ends_the_machine_with_a_timeout() {
            let now = crate::driver::now();
            let shared = shared(0, 5);
            let established = AtomicBool::new(false);
            let mut m = machine(&shared, &established, now);
            m.sa = shared.security.secure_responder(
                osi_config(&shared.cfg.osi, true).unwrap(),
                &ConnectionFacts::default(),
                Timeouts {
                    associate: Some(Duration::from_secs(10)),
                    idle: None,
                    release: None,
                    pdu: None,
                },
                now,
            );
            let at = Machine::<S>::poll_timeout(&m).expect("the associate timer runs");
            assert_eq!(at, now.mono + Duration::from_secs(10));
            // Early: nothing happens.
            Machine::<S>::handle_timeout(&mut m, now.after(Duration::from_secs(5)));
            assert!(matches!(Machine::<S>::process(&mut m, now), Step::Idle));
            let late = now.after(Duration::from_secs(10));
            Machine::<S>::handle_timeout(&mut m, late);
            assert!(matches!(Machine::<S>::process(&mut m, late), Step::Done));
            assert!(
                matches!(m.result, Some(Err(LinkError::Timeout(t))) if t == Duration::from_secs(10))
            );
        }
    }

    #[test]
    fn configured_busy_poll_is_used_as_is() {
        assert_eq!(busy_poll_window(Some(0), 0, 8), Duration::ZERO);
        assert_eq!(
            busy_poll_window(Some(250), 100, 1),
            Duration::from_micros(250)
        );
    }

    #[test]
    fn adaptive_busy_poll_only_while_cpus_are_spare() {
        let on = Duration::from_micros(super::ServerConfig::DEFAULT_BUSY_POLL_US);
        assert_eq!(busy_poll_window(None, 1, 2), on);
        assert_eq!(busy_poll_window(None, 4, 8), on);
        assert_eq!(busy_poll_window(None, 2, 2), Duration::ZERO);
        assert_eq!(busy_poll_window(None, 5, 8), Duration::ZERO);
        // One CPU: polling would only take it from the peer.
        assert_eq!(busy_poll_window(None, 0, 1), Duration::ZERO);
        assert_eq!(busy_poll_window(None, 1, 1), Duration::ZERO);
    }

    #[test]
    fn worker_threads_default_to_one_per_cpu() {
        let cpus = cpus();
        assert_eq!(worker_count(None), cpus);
        assert_eq!(worker_count(Some(0)), 0);
        assert_eq!(worker_count(Some(3)), 3);
    }

    #[test]
    fn associations_go_to_the_least_busy_thread() {
        let mut w = Workers::start(3).unwrap();
        // Equal counts: round robin.
        let picks: Vec<_> = (0..3)
            .map(|_| {
                let (_, a) = w.pick();
                a.fetch_add(1, Ordering::Relaxed);
                a
            })
            .collect();
        assert!(picks.iter().all(|a| a.load(Ordering::Relaxed) == 1));
        // One thread's association ends: the next goes there.
        picks[1].fetch_sub(1, Ordering::Relaxed);
        let (_, a) = w.pick();
        assert!(std::sync::Arc::ptr_eq(&a, &picks[1]));
    }

    #[test]
    fn association_threads_run_tasks_and_stop_with_the_pool() {
        let mut w = Workers::start(2).unwrap();
        let (h, _) = w.pick();
        let (tx, rx) = std::sync::mpsc::channel();
        h.spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(std::thread::current().name().map(str::to_owned))
                .unwrap();
        });
        let name = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert!(name.starts_with("secmms-assoc-"), "{name}");
        // A task still running when the pool goes is dropped with its thread's runtime.
        let (h, _) = w.pick();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        h.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        drop(w);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[test]
    fn configured_group_is_used_as_is() {
        assert_eq!(response_group(Some(0), 16, 1, 2), 0);
        assert_eq!(response_group(Some(3), 16, 100, 2), 3);
    }

    #[test]
    fn adaptive_group_is_a_quarter_of_the_burst_while_cpus_are_spare() {
        // 2 CPUs: one established association leaves a CPU for the client.
        assert_eq!(response_group(None, 16, 1, 2), 4);
        assert_eq!(response_group(None, 5, 1, 2), 1);
        assert_eq!(response_group(None, 1, 1, 2), 1);
        assert_eq!(response_group(None, 0, 0, 1), 1);
        // 8 CPUs: up to 4 associations.
        assert_eq!(response_group(None, 32, 4, 8), 8);
    }

    #[test]
    fn adaptive_group_is_the_whole_burst_when_cpus_are_busy() {
        assert_eq!(response_group(None, 16, 2, 2), 0);
        assert_eq!(response_group(None, 16, 5, 8), 0);
    }
}
