//! `secmms gateway`: IEC 62351-4 in front of equipment that does not have it.
//!
//! Two kinds of route, in one process, from one file ([`GatewayFile`]):
//!
//! * **IED routes** (`[[gateway.ied]]`): secured associations come in (TLS on 3782 with
//!   compatibility or native mode); for each, the gateway opens a plain RFC 1006 association to
//!   the legacy IED with the caller's MMS initiate and forwards every MMS PDU both ways
//!   unchanged. The gateway presents the AP-title / AE-qualifier its application certificate is
//!   bound to (Annex G.6.2).
//! * **Client routes** (`[[gateway.client]]`): plain associations come in from a legacy client;
//!   the gateway opens a secured association to a 62351-4 server (or an IED-side gateway). A
//!   listener off loopback needs an `allow` list; every refused source is an event.
//!
//! Both are the same protocol machine (`machine.rs`, run by the one driver) with different
//! security on each side: the initiate parameters are the minimum of both sides
//! ([`secmms_mms::gateway`]); a read-only route answers modifying requests itself
//! ([`secmms_mms::gateway::ReadOnlyGuard`]) with an event each. A far side that cannot be
//! reached or refuses gives the caller a rejection with the reason, within
//! `connect_timeout_secs`; either side ending ends the other (release where the protocol
//! carries it, abort otherwise).
//!
//! Each association start, end and refusal is a security event ([`events`]) in the hash-chained
//! log and syslog of `[gateway]`.

pub mod config;
mod machine;
mod select;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use secmms_mms::gateway::{Denial, GatewayLimits, ReadOnlyGuard};
use secmms_mms::MmsLimits;
use secmms_osi::OsiConfig;
use secmms_pki::event::{SecurityEvent, SecurityEventSink};
use secmms_profiles::secure::{Now, SecureAssociation, Timeouts};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, info, warn};

pub use config::{ClientRoute, GatewayConfig, GatewayConfigError, GatewayFile, IedRoute, Problem};
pub use machine::Outcome;

use crate::driver::{drive, ByteStream};
use crate::relay::HopStream;
use crate::security::{tls_fingerprints, AppSecurity, ConnectionFacts};
use crate::tls::TlsContext;
use crate::transport::{self, BoxStream, TcpConfig};
use machine::{Dial, FactsSlot, GatewayMachine};

/// The gateway's security events (domain `secmms`, group 18).
pub mod events {
    use secmms_pki::event::{EventId, Severity};

    /// One gateway event: id, mnemonic, severity.
    pub type GatewayEvent = (EventId, &'static str, Severity);

    const fn ev(number: u16, m: &'static str, s: Severity) -> GatewayEvent {
        (
            EventId {
                domain: EventId::DOMAIN_LOCAL,
                group: 18,
                number,
            },
            m,
            s,
        )
    }

    /// A forwarded association is established on both sides.
    pub const ASSOCIATION_START: GatewayEvent = ev(1, "GW_ASSOCIATION_START", Severity::Notice);
    /// A forwarded association ended (released, or aborted with the reason).
    pub const ASSOCIATION_END: GatewayEvent = ev(2, "GW_ASSOCIATION_END", Severity::Notice);
    /// An association was refused during set-up (far side unreachable or refusing, invalid
    /// initiate, a failed security check).
    pub const ASSOCIATION_REFUSED: GatewayEvent =
        ev(3, "GW_ASSOCIATION_REFUSED", Severity::Warning);
    /// A connection from a source outside a client route's `allow` list, or over the limit.
    pub const SOURCE_REFUSED: GatewayEvent = ev(4, "GW_SOURCE_REFUSED", Severity::Warning);
    /// A read-only route answered a modifying request itself.
    pub const WRITE_DENIED: GatewayEvent = ev(5, "GW_WRITE_DENIED", Severity::Warning);

    /// Every gateway event.
    pub const ALL: &[GatewayEvent] = &[
        ASSOCIATION_START,
        ASSOCIATION_END,
        ASSOCIATION_REFUSED,
        SOURCE_REFUSED,
        WRITE_DENIED,
    ];
}

/// Counters over every route.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused before any protocol (source not allowed, over the limit).
    pub sources_refused: AtomicU64,
    /// Associations established on both sides.
    pub associations: AtomicU64,
    /// Associations released.
    pub released: AtomicU64,
    /// Associations refused during set-up.
    pub refused: AtomicU64,
    /// Associations aborted after set-up.
    pub aborted: AtomicU64,
    /// Requests a read-only route answered itself.
    pub denied: AtomicU64,
    /// MMS PDUs forwarded (both directions).
    pub pdus: AtomicU64,
    /// Connections that waited for a TLS handshake place (`max_handshakes`, `handshake_rate`).
    pub handshakes_delayed: AtomicU64,
    /// Connections refused because no TLS handshake place came in time.
    pub handshakes_refused: AtomicU64,
    /// AARQs that waited for a place for their checks (`max_security_checks`,
    /// `security_check_rate`).
    pub checks_delayed: AtomicU64,
    /// Connections aborted because their AARQ got no place for its checks in time.
    pub checks_refused: AtomicU64,
}

/// The gateway-wide gates in front of the IED routes' TLS handshakes and AARQ checks
/// (`crate::handshakes`).
#[derive(Debug, Clone)]
pub(crate) struct Gates {
    handshakes: Arc<crate::handshakes::HandshakeGate>,
    pub(crate) checks: Arc<crate::handshakes::HandshakeGate>,
}

impl Gates {
    fn new(g: &GatewayConfig) -> Self {
        use crate::handshakes::{Gated, HandshakeGate};
        Gates {
            handshakes: Arc::new(HandshakeGate::new(
                Gated::Tls("gateway"),
                g.max_handshakes,
                g.handshake_rate,
            )),
            checks: Arc::new(HandshakeGate::new(
                Gated::Checks("gateway"),
                g.max_security_checks,
                g.security_check_rate,
            )),
        }
    }
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid (every problem, with where).
    #[error(transparent)]
    Config(#[from] GatewayConfigError),
    /// The gateway is no longer running (a reload asked of a stopped gateway).
    #[error("the gateway is not running")]
    Stopped,
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Which way a route forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ied,
    Client,
}

/// One route, ready to run.
pub(crate) struct RouteRt {
    name: String,
    kind: Kind,
    listen: String,
    /// The far side, `host:port`.
    far: String,
    tls_in: Option<Arc<TlsContext>>,
    tls_out: Option<Arc<TlsContext>>,
    security_in: AppSecurity,
    security_out: AppSecurity,
    osi_in: OsiConfig,
    osi_out: OsiConfig,
    allow: Vec<IpNet>,
    /// Routes sharing a listener: the called AP-title (and AE-qualifier) selecting it (for an
    /// IED route, the binding of its application certificate).
    called: Option<(secmms_ber::Oid, Option<i64>)>,
    guard: Option<ReadOnlyGuard>,
    limits: GatewayLimits,
    mms_limits: MmsLimits,
    tcp: TcpConfig,
    connect_timeout: Duration,
    associate_timeout: Duration,
    idle: Option<Duration>,
    sink: Arc<dyn SecurityEventSink>,
    stats: Arc<GatewayStats>,
    /// Set by a reload: the route that replaced this one (same `listen`), or none when the
    /// route was removed ([`RouteRt::retired`] then tells).
    successor: Mutex<Option<Arc<RouteRt>>>,
    retired: std::sync::atomic::AtomicBool,
}

impl RouteRt {
    /// The route as the last reload left it: `None` when it was removed.
    fn latest(self: &Arc<Self>) -> Option<Arc<RouteRt>> {
        let mut r = self.clone();
        // A chain of reloads is short; the bound guards against a cycle that cannot happen.
        for _ in 0..1024 {
            let next = match r.successor.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            match next {
                Some(n) => r = n,
                None if r.retired.load(Ordering::Relaxed) => return None,
                None => return Some(r),
            }
        }
        None
    }

    /// One line on what the route does.
    fn describe(&self) -> String {
        let titles = |s: &AppSecurity| match s.local_titles() {
            Some((ap, ae)) => format!(" as AP-title {ap} / AE-qualifier {ae}"),
            None => String::new(),
        };
        let ro = if self.guard.is_some() {
            ", read-only"
        } else {
            ""
        };
        match self.kind {
            Kind::Ied => format!(
                "{}: {} (TLS, {} mode{}) -> plain {}{ro}",
                self.name,
                self.listen,
                self.security_in.mode().name(),
                titles(&self.security_in),
                self.far
            ),
            Kind::Client => format!(
                "{}: plain {} (allow {}) -> {} (TLS, {} mode{}){ro}",
                self.name,
                self.listen,
                if self.allow.is_empty() {
                    "loopback".to_string()
                } else {
                    self.allow
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                self.far,
                self.security_out.mode().name(),
                titles(&self.security_out)
            ),
        }
    }

    /// Whether this route takes an association calling `ap` / `ae` (a route without a
    /// selector takes any).
    fn selects(&self, ap: Option<&secmms_ber::Oid>, ae: Option<i64>) -> bool {
        match &self.called {
            None => true,
            Some((want, want_ae)) => Some(want) == ap && want_ae.map_or(true, |q| Some(q) == ae),
        }
    }

    /// Whether a client route lets `ip` in (IED routes take any source).
    fn allows(&self, ip: std::net::IpAddr) -> bool {
        self.kind == Kind::Ied
            || self.allow.is_empty()
            || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Reads every CRL of this route again (TLS and application); whether one changed.
    fn reload_crls(&self) -> bool {
        let mut changed = false;
        for t in [&self.tls_in, &self.tls_out].into_iter().flatten() {
            if !t.config().crl.is_empty() && t.reload_crls() {
                changed = true;
            }
            t.rebuild();
        }
        for s in [&self.security_in, &self.security_out] {
            match s.reload_crls() {
                Ok(c) => changed |= c,
                Err(e) => {
                    warn!(route = %self.name, "application CRLs not reloaded (the old ones stay): {e}")
                }
            }
        }
        changed
    }

    fn event(&self, e: events::GatewayEvent, message: String) {
        self.sink.record(&SecurityEvent {
            id: e.0,
            mnemonic: e.1,
            severity: e.2,
            message: format!("{}: {message}", self.name),
            association: None,
        });
    }

    fn count(&self, o: &Outcome) {
        let c = match o {
            Outcome::Released => &self.stats.released,
            Outcome::Refused(_) => &self.stats.refused,
            Outcome::Aborted(_) => &self.stats.aborted,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn forwarded(&self) {
        self.stats.pdus.fetch_add(1, Ordering::Relaxed);
    }

    fn denied(&self, label: &str, d: &Denial) {
        self.stats.denied.fetch_add(1, Ordering::Relaxed);
        let objects = if d.objects.is_empty() {
            String::new()
        } else {
            format!(" of {}", d.objects.join(", "))
        };
        self.event(
            events::WRITE_DENIED,
            format!(
                "{label}: read-only route: {} (invokeID {}){objects} refused",
                d.service, d.invoke_id
            ),
        );
    }

    /// The initiator towards the far side, once its connection is up.
    fn far_association(
        &self,
        facts: &ConnectionFacts,
        now: Now,
    ) -> Result<SecureAssociation, String> {
        let timeouts = Timeouts {
            associate: Some(self.connect_timeout),
            idle: None,
            release: Some(self.connect_timeout),
            pdu: Some(self.associate_timeout),
        };
        self.security_out
            .secure_initiator(self.osi_out.clone(), facts, timeouts, now)
            .map_err(|e| format!("cannot call {}: {e}", self.far))
    }

    fn write_bound(&self) -> Duration {
        self.idle.unwrap_or(self.associate_timeout)
    }
}

/// Connects the far side (TCP, then TLS on client routes) within the connect timeout; the
/// connection's facts go to `slot` for the far association.
fn dial(route: Arc<RouteRt>, slot: FactsSlot) -> Dial {
    Box::pin(async move {
        let far = route.far.clone();
        let connect = async {
            let tcp = transport::connect_tcp(&far, &route.tcp)
                .await
                .map_err(|e| format!("{far} unreachable: {e}"))?;
            let peer = tcp.peer_addr().ok();
            let mut facts = ConnectionFacts {
                peer_address: peer.map(|a| a.ip()),
                peer_socket: peer,
                ..Default::default()
            };
            let stream: BoxStream = match &route.tls_out {
                None => Box::new(tcp),
                Some(tls) => {
                    let s = tls
                        .connect(tcp, &far)
                        .await
                        .map_err(|e| format!("TLS to {far} failed: {e}"))?;
                    facts.tls = true;
                    facts.tls_fingerprints = tls_fingerprints(s.ssl());
                    Box::new(s)
                }
            };
            if let Ok(mut f) = slot.lock() {
                *f = Some(facts);
            }
            Ok(stream)
        };
        match tokio::time::timeout(route.connect_timeout, connect).await {
            Ok(r) => r.map(|s| ByteStream::new(HopStream(s), Some(route.write_bound()))),
            Err(_) => Err(format!(
                "{far} did not answer within {} s",
                route.connect_timeout.as_secs()
            )),
        }
    })
}

/// A bound gateway: every route's listener.
pub struct Gateway {
    listeners: Vec<(TcpListener, Group)>,
    slots: Arc<Semaphore>,
    gates: Gates,
    stats: Arc<GatewayStats>,
    sink: Arc<dyn SecurityEventSink>,
    /// Bumped by every reload: each forwarded association re-checks its route and its peer.
    wake: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Routes whose `listen` was already served: new credentials, CRLs and policy for new
    /// associations; live ones stay unless no longer allowed.
    pub replaced: Vec<String>,
    /// Routes added (a new listener).
    pub added: Vec<(String, SocketAddr)>,
    /// Routes removed: their listener closed and their associations aborted.
    pub removed: Vec<String>,
}

type ReloadRequest = (
    GatewayFile,
    oneshot::Sender<Result<ReloadSummary, GatewayError>>,
);

/// A running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    /// Each route's name and bound address, in file order (IED routes first).
    pub addrs: Vec<(String, SocketAddr)>,
    /// The counters.
    pub stats: Arc<GatewayStats>,
    reloads: mpsc::Sender<ReloadRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayHandle {
    /// Applies `file` (SIGHUP): certificates, keys, CRLs and routes are read again. Routes are
    /// matched by `listen`. A live association continues unless its route was removed, its
    /// source is no longer in the allow list, or its peer's certificate is now revoked; each
    /// one ended is an event. An invalid file changes nothing and says why.
    pub async fn reload(&self, file: GatewayFile) -> Result<ReloadSummary, GatewayError> {
        let (tx, rx) = oneshot::channel();
        self.reloads
            .send((file, tx))
            .await
            .map_err(|_| GatewayError::Stopped)?;
        rx.await.map_err(|_| GatewayError::Stopped)?
    }

    /// Stops accepting and ends every forwarded association.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

fn problem(at: String, what: impl std::fmt::Display) -> GatewayConfigError {
    GatewayConfigError {
        problems: vec![Problem {
            at,
            what: what.to_string(),
        }],
    }
}

/// The OSI section of one secured side: the far side's titles, when given.
fn secured_osi(s: &config::SecuredSide) -> crate::osi::OsiSettings {
    crate::osi::OsiSettings {
        remote_ap_title: s.remote_titles.0.clone(),
        remote_ae_qualifier: s.remote_titles.1,
        ..Default::default()
    }
}

/// Loads every route's credentials (nothing is bound yet).
fn build_routes(
    file: &GatewayFile,
    sink: &Arc<dyn SecurityEventSink>,
    stats: &Arc<GatewayStats>,
) -> Result<Vec<RouteRt>, GatewayError> {
    file.check()?;
    let g = &file.gateway;
    let idle = match g.idle_timeout_secs {
        0 => None,
        s => Some(Duration::from_secs(s)),
    };
    let base = |name: String, kind, listen: &str, far: &str| RouteRt {
        name,
        kind,
        listen: listen.to_string(),
        far: far.to_string(),
        tls_in: None,
        tls_out: None,
        security_in: AppSecurity::plain(),
        security_out: AppSecurity::plain(),
        osi_in: OsiConfig::server_default(),
        osi_out: OsiConfig::default(),
        allow: Vec::new(),
        called: None,
        guard: None,
        limits: GatewayLimits::default(),
        mms_limits: MmsLimits::default(),
        tcp: TcpConfig::default(),
        connect_timeout: Duration::from_secs(g.connect_timeout_secs),
        associate_timeout: Duration::from_secs(g.associate_timeout_secs),
        idle,
        sink: sink.clone(),
        stats: stats.clone(),
        successor: Mutex::new(None),
        retired: std::sync::atomic::AtomicBool::new(false),
    };
    let mut routes = Vec::new();
    for (i, r) in g.ied.iter().enumerate() {
        let at = |k: &str| format!("gateway.ied[{i}].{k}");
        let side = r.secured().map_err(|(k, e)| problem(at(k), e))?;
        let osi = secured_osi(&side);
        let mut rt = base(r.label(), Kind::Ied, &r.listen, &r.ied);
        rt.tls_in = Some(Arc::new(
            TlsContext::server(&side.tls, sink.clone()).map_err(|e| problem(at("tls_cert"), e))?,
        ));
        rt.security_in = AppSecurity::build(&side.security, &side.tls, &osi, sink.clone())
            .map_err(|e| problem(at("app_cert"), e))?;
        rt.guard = r.read_only.then(ReadOnlyGuard::default);
        routes.push(rt);
    }
    for (i, r) in g.client.iter().enumerate() {
        let at = |k: &str| format!("gateway.client[{i}].{k}");
        let side = r.secured().map_err(|(k, e)| problem(at(k), e))?;
        let osi = secured_osi(&side);
        let mut rt = base(r.label(), Kind::Client, &r.listen, &r.to);
        rt.tls_out = Some(Arc::new(
            TlsContext::client(&side.tls, sink.clone()).map_err(|e| problem(at("tls_cert"), e))?,
        ));
        rt.security_out = AppSecurity::build(&side.security, &side.tls, &osi, sink.clone())
            .map_err(|e| problem(at("app_cert"), e))?;
        rt.osi_out =
            crate::osi::osi_config(&osi, false).map_err(|e| problem(at("peer_ap_title"), e))?;
        rt.allow = r.allowed().map_err(|e| problem(at("allow"), e))?;
        rt.called = match &r.called_ap_title {
            Some(t) => Some((
                t.parse()
                    .map_err(|_| problem(at("called_ap_title"), "not a dotted OID"))?,
                r.called_ae_qualifier,
            )),
            None => None,
        };
        rt.guard = r.read_only.then(ReadOnlyGuard::default);
        routes.push(rt);
    }
    check_shared_ied_routes(&routes, file)?;
    Ok(routes)
}

/// The routes one listener serves: IED routes told apart by the AP-title / AE-qualifier
/// their application certificates bind ([`select`]), or client routes told apart by the called
/// AP-title (those with a selector first, the one without last).
pub(crate) type Group = Arc<Vec<Arc<RouteRt>>>;

fn groups(routes: Vec<RouteRt>) -> Vec<Group> {
    let mut out: Vec<Vec<RouteRt>> = Vec::new();
    for r in routes {
        // Port 0 ("any free port") is never shared.
        let shared = !r.listen.ends_with(":0");
        match out.iter_mut().find(|g| shared && g[0].listen == r.listen) {
            Some(g) => g.push(r),
            None => out.push(vec![r]),
        }
    }
    for g in &mut out {
        if g.len() > 1 && g[0].kind == Kind::Ied {
            for r in g.iter_mut() {
                r.called = r
                    .security_in
                    .local_titles()
                    .map(|(ap, ae)| (ap.clone(), Some(*ae)));
            }
        }
        g.sort_by_key(|r| r.called.is_none());
    }
    out.into_iter()
        .map(|g| Arc::new(g.into_iter().map(Arc::new).collect()))
        .collect()
}

/// IED routes on one listener: the same TLS settings (the handshake comes before the route is
/// known) and distinct application-certificate bindings (the called titles choose the route).
fn check_shared_ied_routes(routes: &[RouteRt], file: &GatewayFile) -> Result<(), GatewayError> {
    let ied = &file.gateway.ied;
    let mut problems = Vec::new();
    for (i, r) in routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == Kind::Ied)
    {
        let Some(j) = routes[..i]
            .iter()
            .position(|o| o.kind == Kind::Ied && o.listen == r.listen && !r.listen.ends_with(":0"))
        else {
            continue;
        };
        let at = format!("gateway.ied[{i}]");
        let (a, b) = (&ied[i], &ied[j]);
        let same_tls = a.tls_cert == b.tls_cert
            && a.tls_key == b.tls_key
            && a.ca == b.ca
            && a.crl == b.crl
            && a.tls_keylog == b.tls_keylog;
        if !same_tls {
            problems.push(Problem {
                at: format!("{at}.tls_cert"),
                what: format!(
                    "shares {} with gateway.ied[{j}]: IED routes on one listener need the same \
                     tls_cert, tls_key, ca, crl and tls_keylog (the TLS handshake comes before \
                     the AARQ names the route)",
                    r.listen
                ),
            });
        }
        match (
            r.security_in.local_titles(),
            routes[j].security_in.local_titles(),
        ) {
            (Some(x), Some(y)) if x == y => problems.push(Problem {
                at: format!("{at}.app_cert"),
                what: format!(
                    "binds AP-title {} / AE-qualifier {}, as gateway.ied[{j}].app_cert does on \
                     the same listener {}: the called titles could not tell them apart",
                    x.0, x.1, r.listen
                ),
            }),
            (Some(_), Some(_)) => {}
            _ => problems.push(Problem {
                at: format!("{at}.app_cert"),
                what: "IED routes sharing a listener need application certificates with an \
                       AP-title / AE-qualifier binding (Annex G.6.2)"
                    .into(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(GatewayError::Config(GatewayConfigError { problems }))
    }
}

async fn listen_group(g: &Group) -> Result<TcpListener, GatewayError> {
    listen(&g[0]).await
}

async fn listen(rt: &RouteRt) -> Result<TcpListener, GatewayError> {
    transport::listen_tcp(&rt.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: rt.listen.clone(),
            source,
        })
}

impl Gateway {
    /// Everything [`Gateway::bind`] checks except binding: the file, then every route's
    /// certificates, keys, trust anchors, CRLs and bindings. Returns one line per route saying
    /// what it will do (`--check-config`).
    pub fn check(file: &GatewayFile) -> Result<Vec<String>, GatewayError> {
        let sink: Arc<dyn SecurityEventSink> = Arc::new(secmms_pki::event::MemorySink::new());
        let stats = Arc::new(GatewayStats::default());
        let routes = build_routes(file, &sink, &stats)?;
        Ok(routes.iter().map(RouteRt::describe).collect())
    }

    /// Loads every route's credentials and binds its listener; security events go to the
    /// `[gateway]` log and syslog.
    pub async fn bind(file: &GatewayFile) -> Result<Gateway, GatewayError> {
        let g = &file.gateway;
        let events = crate::events::EventsConfig {
            log: g.log.clone(),
            log_key: g.log_key.clone(),
            syslog: g.syslog.clone(),
            ..Default::default()
        };
        let sink = events
            .build()
            .map_err(|e| problem("gateway.log".into(), e))?;
        Self::bind_with_events(file, Arc::new(sink)).await
    }

    /// [`Gateway::bind`] with the sink that receives the security events.
    pub async fn bind_with_events(
        file: &GatewayFile,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Gateway, GatewayError> {
        let stats = Arc::new(GatewayStats::default());
        let mut listeners = Vec::new();
        for g in groups(build_routes(file, &sink, &stats)?) {
            listeners.push((listen(&g[0]).await?, g));
        }
        Ok(Gateway {
            listeners,
            slots: Arc::new(Semaphore::new(file.gateway.max_associations)),
            gates: Gates::new(&file.gateway),
            stats,
            sink,
            wake: Arc::new(watch::channel(0).0),
        })
    }

    /// Each route's name and bound address.
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|(l, g)| Some((g, l.local_addr().ok()?)))
            .flat_map(|(g, a)| g.iter().map(move |r| (r.name.clone(), a)))
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        self.stats.clone()
    }

    /// Runs every route in a background task; the handle reloads and stops it.
    pub fn spawn(self) -> GatewayHandle {
        let addrs = self.local_addrs();
        let stats = self.stats();
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(self.run(rx));
        GatewayHandle {
            addrs,
            stats,
            reloads: tx,
            task,
        }
    }

    /// Accepts on every route and applies the reloads that arrive, until cancelled; dropping
    /// the future ends every association.
    async fn run(self, mut reloads: mpsc::Receiver<ReloadRequest>) {
        let mut set = tokio::task::JoinSet::new();
        let mut live: Vec<Live> = Vec::new();
        for (listener, group) in self.listeners {
            let (tx, rx) = watch::channel(Some(group.clone()));
            set.spawn(accept_loop(
                listener,
                rx,
                self.slots.clone(),
                self.gates.clone(),
                self.wake.clone(),
            ));
            live.push(Live { group, tx });
        }
        // Every version of every route that associations may still hold, for CRL reloads.
        let mut versions: Vec<std::sync::Weak<RouteRt>> = live
            .iter()
            .flat_map(|l| l.group.iter().map(Arc::downgrade))
            .collect();
        loop {
            tokio::select! {
                Some(_) = set.join_next(), if !set.is_empty() => {}
                req = reloads.recv() => {
                    let Some((file, reply)) = req else {
                        // No handle left: serve until cancelled.
                        while set.join_next().await.is_some() {}
                        return std::future::pending().await;
                    };
                    let r = reload(&file, &self.sink, &self.stats, (&self.slots, &self.gates),
                        &self.wake, &mut live, &mut versions, &mut set).await;
                    let _ = reply.send(r);
                }
            }
        }
    }
}

/// A listener being served: its routes' current versions and the channel its accept loop
/// watches.
struct Live {
    group: Group,
    tx: watch::Sender<Option<Group>>,
}

#[allow(clippy::too_many_arguments)]
async fn reload(
    file: &GatewayFile,
    sink: &Arc<dyn SecurityEventSink>,
    stats: &Arc<GatewayStats>,
    (slots, gates): (&Arc<Semaphore>, &Gates),
    wake: &Arc<watch::Sender<u64>>,
    live: &mut Vec<Live>,
    versions: &mut Vec<std::sync::Weak<RouteRt>>,
    set: &mut tokio::task::JoinSet<()>,
) -> Result<ReloadSummary, GatewayError> {
    let new_groups = groups(build_routes(file, sink, stats)?);
    // CRLs of every version still in use: live associations re-check their peers.
    versions.retain(|w| w.strong_count() > 0);
    for v in versions.iter().filter_map(|w| w.upgrade()) {
        v.reload_crls();
    }
    let mut summary = ReloadSummary::default();
    let mut next: Vec<Live> = Vec::new();
    let mut old: Vec<Live> = std::mem::take(live);
    for g in new_groups {
        versions.extend(g.iter().map(Arc::downgrade));
        let listen = g[0].listen.clone();
        let same = old
            .iter()
            .position(|l| l.group[0].listen == listen && !listen.ends_with(":0"))
            .or_else(|| {
                // Port 0: the route at the same place in the file keeps its listener.
                old.iter().position(|l| {
                    l.group[0].listen == listen
                        && l.group
                            .iter()
                            .map(|r| &r.name)
                            .eq(g.iter().map(|r| &r.name))
                })
            });
        match same {
            Some(i) => {
                let l = old.swap_remove(i);
                for r in l.group.iter() {
                    match g.iter().find(|n| n.called == r.called) {
                        Some(n) => {
                            if let Ok(mut s) = r.successor.lock() {
                                *s = Some(n.clone());
                            }
                        }
                        None => {
                            r.retired.store(true, Ordering::Relaxed);
                            summary.removed.push(r.name.clone());
                        }
                    }
                }
                summary.replaced.extend(g.iter().map(|r| r.name.clone()));
                let _ = l.tx.send(Some(g.clone()));
                next.push(Live { group: g, tx: l.tx });
            }
            None => {
                let listener = listen_group(&g).await?;
                if let Ok(a) = listener.local_addr() {
                    summary.added.extend(g.iter().map(|r| (r.name.clone(), a)));
                }
                let (tx, rx) = watch::channel(Some(g.clone()));
                set.spawn(accept_loop(
                    listener,
                    rx,
                    slots.clone(),
                    gates.clone(),
                    wake.clone(),
                ));
                next.push(Live { group: g, tx });
            }
        }
    }
    for l in old {
        for r in l.group.iter() {
            r.retired.store(true, Ordering::Relaxed);
            summary.removed.push(r.name.clone());
        }
        let _ = l.tx.send(None);
    }
    *live = next;
    wake.send_modify(|g| *g = g.wrapping_add(1));
    info!(
        "gateway configuration reloaded: {} replaced, {} added, {} removed",
        summary.replaced.len(),
        summary.added.len(),
        summary.removed.len()
    );
    Ok(summary)
}

async fn accept_loop(
    listener: TcpListener,
    mut route_rx: watch::Receiver<Option<Group>>,
    slots: Arc<Semaphore>,
    gates: Gates,
    wake: Arc<watch::Sender<u64>>,
) {
    let mut associations = tokio::task::JoinSet::new();
    let mut backoff = Duration::ZERO;
    loop {
        while associations.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            changed = route_rx.changed() => {
                if changed.is_err() || route_rx.borrow().is_none() {
                    break;
                }
                continue;
            }
        };
        let Some(group) = route_rx.borrow().clone() else {
            break;
        };
        let route = group[0].clone();
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(route = %route.name, "accept failed: {e}");
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        backoff = Duration::ZERO;
        route.stats.connections.fetch_add(1, Ordering::Relaxed);
        if !group.iter().any(|r| r.allows(peer.ip())) {
            route.stats.sources_refused.fetch_add(1, Ordering::Relaxed);
            route.event(
                events::SOURCE_REFUSED,
                format!("{peer} is not in the allow list; connection closed"),
            );
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            route.stats.sources_refused.fetch_add(1, Ordering::Relaxed);
            route.event(
                events::SOURCE_REFUSED,
                format!("{peer}: gateway.max_associations reached; connection closed"),
            );
            continue;
        };
        let _ = transport::configure_socket(&stream, &route.tcp);
        let wake = wake.subscribe();
        let gates = gates.clone();
        associations.spawn(async move {
            let outcome = forward(stream, peer, group, gates, wake).await;
            match &outcome {
                Outcome::Released => debug!(route = %route.name, %peer, "released"),
                other => info!(route = %route.name, %peer, "ended: {other:?}"),
            }
            drop(permit);
        });
    }
    // The route was removed: no new connections; the live ones end as their machines see it.
    drop(listener);
    while associations.join_next().await.is_some() {}
}

/// Forwards the association arriving on `stream`.
async fn forward(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    group: Group,
    gates: Gates,
    wake: watch::Receiver<u64>,
) -> Outcome {
    // The calling side's security is the same for every route of a listener: an IED route is
    // alone on its listener, and client routes all take plain associations.
    let route = group[0].clone();
    let mut facts = ConnectionFacts {
        peer_address: Some(peer.ip()),
        peer_socket: Some(peer),
        ..Default::default()
    };
    let setup_deadline = tokio::time::Instant::now() + route.associate_timeout;
    let stream: BoxStream = match &route.tls_in {
        None => Box::new(stream),
        Some(tls) => {
            // A place among the handshakes once the ClientHello's first octets are there (a
            // silent connection holds none); the set-up deadline bounds both waits.
            let spoke = tokio::time::timeout_at(setup_deadline, stream.readable()).await;
            let slot = match spoke {
                Err(_) => Err("no ClientHello".to_string()),
                Ok(_) => gates.handshakes.enter(setup_deadline).await.map_err(|why| {
                    route
                        .stats
                        .handshakes_refused
                        .fetch_add(1, Ordering::Relaxed);
                    why.describe(gates.handshakes.gated())
                }),
            };
            let slot = match slot {
                Ok(slot) => slot,
                Err(why) => {
                    let why = format!(
                        "{peer}: TLS: {why} within {} s",
                        route.associate_timeout.as_secs()
                    );
                    route.event(events::ASSOCIATION_REFUSED, why.clone());
                    let o = Outcome::Refused(why);
                    route.count(&o);
                    return o;
                }
            };
            if slot.waited {
                route
                    .stats
                    .handshakes_delayed
                    .fetch_add(1, Ordering::Relaxed);
            }
            // Boxed: the handshake's state is freed when it ends instead of staying in the
            // association's future for its whole life.
            let handshake =
                tokio::time::timeout_at(setup_deadline, Box::pin(tls.accept(stream, peer)));
            let done = handshake.await;
            drop(slot);
            match done {
                Ok(Ok(s)) => {
                    facts.tls = true;
                    facts.tls_fingerprints = tls_fingerprints(s.ssl());
                    Box::new(s)
                }
                Ok(Err(e)) => {
                    let o = Outcome::Refused(format!("{peer}: TLS: {e}"));
                    route.event(events::ASSOCIATION_REFUSED, format!("{peer}: TLS: {e}"));
                    route.count(&o);
                    return o;
                }
                Err(_) => {
                    let o = Outcome::Refused(format!("{peer}: TLS handshake timeout"));
                    route.event(
                        events::ASSOCIATION_REFUSED,
                        format!("{peer}: TLS handshake timeout"),
                    );
                    route.count(&o);
                    return o;
                }
            }
        }
    };
    let timeouts = Timeouts {
        associate: Some(route.associate_timeout),
        idle: route.idle,
        release: Some(route.associate_timeout),
        pdu: Some(route.associate_timeout),
    };
    let (osi, protection) = route
        .security_in
        .responder_parts(route.osi_in.clone(), &facts);
    let layer = select::RouteLayer::new(protection, &group, facts.clone());
    let up = SecureAssociation::with_layer(
        secmms_osi::Role::Responder,
        osi,
        layer,
        timeouts,
        crate::driver::now(),
    );
    let mut m = GatewayMachine {
        gate: crate::handshakes::AarqHold::new(route.kind == Kind::Ied),
        checks: gates.checks.clone(),
        setup_deadline,
        route: route.clone(),
        group,
        up,
        down: None,
        label: facts.label(),
        peer,
        sent: None,
        sent_bytes: None,
        indication: None,
        pending_dial: None,
        facts: Arc::new(Mutex::new(None)),
        open: false,
        result: None,
        error: None,
    };
    let transport = ByteStream::new(HopStream(stream), Some(route.write_bound()));
    let started = Instant::now();
    drive(&mut m, transport, Some(wake)).await;
    debug!(route = %route.name, elapsed = ?started.elapsed(), "association over");
    match m.result {
        Some(o) => o,
        None => {
            let o = Outcome::Aborted(m.error.unwrap_or_else(|| "ended without an outcome".into()));
            route.count(&o);
            o
        }
    }
}
