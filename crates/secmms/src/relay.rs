//! `secmms relay` — upper-layer routing of IEC 62351-4 §15.5: an intermediate system that accepts
//! associations and forwards their application PDUs to the next hop, re-terminating TCP, TLS
//! (per hop, when configured), transport, session and presentation on each side, and holding no
//! key of the E2E association it carries.
//!
//! What crosses the relay unchanged, octet for octet: the single-ASN1-type value of every
//! EXTERNAL in the AARQ, AARE, RLRQ, RLRE and ABRT user-information (the E2E SecPDUs, or the MMS
//! PDUs of a plain association), every P-DATA value (ClearTransfer, EncrTransfer), the
//! application-context-name, the calling and called AP-titles and AE-qualifiers (which the E2E
//! address check needs, §15.5 DECISION), and any ACSE authentication fields. What is rebuilt per
//! hop: TPKT/TP0, session and presentation, with presentation-context identifiers renumbered by
//! abstract syntax.
//!
//! Routes pick the next hop by the called AP-title (and optionally AE-qualifier) of the AARQ;
//! `relay.to` is the default route.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_ber::Oid;
use secmms_osi::OsiConfig;
use secmms_pki::event::SecurityEventSink;
use secmms_profiles::relay::{Ending, Hop, Splice, SpliceEvent, SpliceTimeouts};
use secmms_profiles::secure::Now;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::driver::{drive, ByteStream, LinkError, Machine, Port, Step};
use crate::osi::{osi_config, OsiSettings};
use crate::settings::{bounds, check_range, SettingError};
use crate::tls::TlsContext;
use crate::transport::{self, BoxStream};

/// Default e2eSecurityAS relayed (spec §9 DECISION placeholder 1.0.62351.4.1.1.1).
pub const DEFAULT_RELAYED_E2E_SECURITY_AS: &[u64] =
    secmms_profiles::native::DEFAULT_E2E_SECURITY_AS;
/// Default e2eMmsAC relayed (spec §9 DECISION placeholder 1.0.62351.4.2.1).
pub const DEFAULT_RELAYED_E2E_MMS_AC: &[u64] = secmms_profiles::native::DEFAULT_E2E_MMS_AC;

/// One route: associations whose called AP-title (and AE-qualifier, when given) match go to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Called AP-title (dotted OID).
    pub ap_title: String,
    /// Called AE-qualifier; any when absent.
    #[serde(default)]
    pub ae_qualifier: Option<i64>,
    /// Next hop, `host:port`.
    pub to: String,
}

/// The `[relay]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Address to accept associations on.
    pub listen: String,
    /// Default next hop (`host:port`) for associations no route matches.
    pub to: Option<String>,
    /// Routes by called AP-title / AE-qualifier, first match wins.
    pub routes: Vec<RouteEntry>,
    /// Accept TLS from the previous hop (default: `[tls] enabled`).
    pub tls_in: Option<bool>,
    /// Use TLS towards the next hop (default: `[tls] enabled`).
    pub tls_out: Option<bool>,
    /// Application-context-names relayed besides MMS basic-AC and the default e2eMmsAC.
    pub application_contexts: Vec<String>,
    /// Abstract syntaxes relayed besides MMS, the default e2eSecurityAS and mmsAuthenticationAS.
    pub abstract_syntaxes: Vec<String>,
    /// Most associations relayed at once.
    pub max_associations: usize,
    /// Seconds for the whole association establishment (both hops).
    pub associate_timeout_secs: u64,
    /// Seconds without traffic in either direction after which both hops are aborted (0 = never).
    pub idle_timeout_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: "0.0.0.0:102".into(),
            to: None,
            routes: Vec::new(),
            tls_in: None,
            tls_out: None,
            application_contexts: Vec::new(),
            abstract_syntaxes: Vec::new(),
            max_associations: 1000,
            associate_timeout_secs: 20,
            idle_timeout_secs: 600,
        }
    }
}

fn parse_oid(field: &'static str, s: &str) -> Result<Oid, SettingError> {
    s.parse()
        .map_err(|_| SettingError::new(field, format!("`{s}` is not a dotted OID")))
}

fn const_oid(arcs: &[u64]) -> Oid {
    // Only called with the valid constants of this crate.
    Oid::new(arcs).unwrap_or_else(|_| unreachable!("constant OID"))
}

impl RelayConfig {
    /// Checks routes, OIDs and every value against its range ([`crate::settings::bounds`]).
    pub fn validate(&self) -> Result<(), SettingError> {
        self.routes()?;
        self.contexts()?;
        check_range(
            "relay.max_associations",
            self.max_associations as u64,
            bounds::ASSOCIATIONS,
        )?;
        check_range(
            "relay.associate_timeout_secs",
            self.associate_timeout_secs,
            bounds::TIMEOUT_SECS,
        )?;
        check_range(
            "relay.idle_timeout_secs",
            self.idle_timeout_secs,
            bounds::IDLE_SECS,
        )
    }

    fn routes(&self) -> Result<Vec<(Oid, Option<i64>, String)>, SettingError> {
        self.routes
            .iter()
            .map(|r| {
                Ok((
                    parse_oid("relay.routes.ap_title", &r.ap_title)?,
                    r.ae_qualifier,
                    r.to.clone(),
                ))
            })
            .collect()
    }

    /// (application contexts, extra abstract syntaxes) relayed.
    fn contexts(&self) -> Result<(Vec<Oid>, Vec<Oid>), SettingError> {
        let mut acs = vec![
            secmms_osi::presentation::oids::mms_ac(),
            const_oid(DEFAULT_RELAYED_E2E_MMS_AC),
        ];
        for s in &self.application_contexts {
            acs.push(parse_oid("relay.application_contexts", s)?);
        }
        let mut ases = vec![
            const_oid(DEFAULT_RELAYED_E2E_SECURITY_AS),
            const_oid(secmms_profiles::aprofile::DEFAULT_MMS_AUTHENTICATION_AS),
        ];
        for s in &self.abstract_syntaxes {
            let o = parse_oid("relay.abstract_syntaxes", s)?;
            if !ases.contains(&o) {
                ases.push(o);
            }
        }
        Ok((acs, ases))
    }
}

/// The sections a relay runs with: its own (`[relay]`), and the TCP, TLS (per hop), OSI,
/// application-security (the native-mode numbers relayed) and event sections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelaySettings {
    /// Routing, limits and timeouts.
    pub relay: RelayConfig,
    /// TCP socket options of both hops.
    pub tcp: crate::transport::TcpConfig,
    /// TLS of both hops (`relay.tls_in` / `relay.tls_out` turn it on per hop).
    pub tls: crate::tls::TlsConfig,
    /// OSI addressing of the relay's own ends.
    pub osi: OsiSettings,
    /// The native-mode numbers configured here are relayed too.
    pub security: crate::security::SecurityConfig,
    /// Where security events go when no sink is given.
    pub events: crate::events::EventsConfig,
}

impl RelaySettings {
    /// Checks every section.
    pub fn validate(&self) -> Result<(), RelayError> {
        self.relay.validate()?;
        self.tcp.validate()?;
        self.tls.validate()?;
        self.osi.validate()?;
        self.security.validate(&self.tls.ca)?;
        self.events.validate()?;
        Ok(())
    }
}

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A value is out of range or malformed (the field is named).
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The `[events]` section is invalid, or its outputs could not be opened.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// A TLS context could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Counters of the relay.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Connections accepted from previous hops.
    pub connections: AtomicU64,
    /// Associations established end to end through the relay.
    pub associations: AtomicU64,
    /// Associations refused by the next hop (the AARE went back unchanged).
    pub refused: AtomicU64,
    /// Associations released in order.
    pub released: AtomicU64,
    /// Associations aborted (by either end, by a hop failure, or because no route matched).
    pub aborted: AtomicU64,
    /// Application PDUs forwarded (P-DATA values, both directions).
    pub pdus: AtomicU64,
}

pub use secmms_profiles::relay::{Tap, TapAction, TapContext};

struct RelayShared {
    tap: Option<Arc<dyn Tap>>,
    next_association: Arc<AtomicU64>,
    cfg: RelaySettings,
    routes: Vec<(Oid, Option<i64>, String)>,
    application_contexts: Vec<Oid>,
    abstract_syntaxes: Vec<Oid>,
    tls_in: Option<Arc<TlsContext>>,
    tls_out: Option<Arc<TlsContext>>,
    stats: Arc<RelayStats>,
}

/// A bound relay.
pub struct Relay {
    listener: TcpListener,
    shared: Arc<RelayShared>,
    slots: Arc<Semaphore>,
}

/// A relay running in the background.
pub struct RelayHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<RelayStats>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Stops accepting and ends every relayed association.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Relay {
    /// Binds the relay of `cfg.relay` (TLS per hop from `cfg.tls`), reporting security events to
    /// the sink the `[events]` section describes.
    pub async fn bind(cfg: RelaySettings) -> Result<Relay, RelayError> {
        let sink = cfg.events.build()?;
        Self::bind_with_events(cfg, Arc::new(sink)).await
    }

    /// Like [`Relay::bind`] with an explicit event sink.
    pub async fn bind_with_events(
        cfg: RelaySettings,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Relay, RelayError> {
        cfg.validate()?;
        let routes = cfg.relay.routes()?;
        if routes.is_empty() && cfg.relay.to.is_none() {
            return Err(
                SettingError::new("relay.to", "a relay needs a next hop (--to) or routes").into(),
            );
        }
        let (mut application_contexts, mut abstract_syntaxes) = cfg.relay.contexts()?;
        // Configured native-mode numbers (spec §9 DECISION) are relayed too.
        let add = |v: &Option<String>, list: &mut Vec<Oid>| -> Result<(), SettingError> {
            if let Some(o) = v {
                let o = parse_oid("security", o)?;
                if !list.contains(&o) {
                    list.push(o);
                }
            }
            Ok(())
        };
        add(&cfg.security.e2e_mms_ac, &mut application_contexts)?;
        add(&cfg.security.e2e_security_as, &mut abstract_syntaxes)?;
        add(&cfg.security.mms_authentication_as, &mut abstract_syntaxes)?;
        let tls_in_on = cfg.relay.tls_in.unwrap_or(cfg.tls.enabled);
        let tls_out_on = cfg.relay.tls_out.unwrap_or(cfg.tls.enabled);
        let mut tls_cfg = cfg.tls.clone();
        tls_cfg.enabled = true;
        let tls_in = if tls_in_on {
            Some(Arc::new(TlsContext::server(&tls_cfg, sink.clone())?))
        } else {
            crate::tls::report_plain(sink.as_ref(), "relay (previous hop)", &cfg.relay.listen);
            None
        };
        let tls_out = if tls_out_on {
            Some(Arc::new(TlsContext::client(&tls_cfg, sink.clone())?))
        } else {
            None
        };
        let listener = transport::listen_tcp(&cfg.relay.listen)
            .await
            .map_err(|source| RelayError::Listen {
                addr: cfg.relay.listen.clone(),
                source,
            })?;
        let slots = Arc::new(Semaphore::new(cfg.relay.max_associations));
        Ok(Relay {
            listener,
            shared: Arc::new(RelayShared {
                tap: None,
                next_association: Arc::new(AtomicU64::new(1)),
                cfg,
                routes,
                application_contexts,
                abstract_syntaxes,
                tls_in,
                tls_out,
                stats: Arc::new(RelayStats::default()),
            }),
            slots,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Installs a [`Tap`] that sees (and may change) every P-DATA value forwarded. Call before
    /// [`Relay::spawn`] / [`Relay::run`].
    pub fn with_tap(mut self, tap: Arc<dyn Tap>) -> Self {
        if let Some(sh) = Arc::get_mut(&mut self.shared) {
            sh.tap = Some(tap);
        }
        self
    }

    /// The counters.
    pub fn stats(&self) -> Arc<RelayStats> {
        self.shared.stats.clone()
    }

    /// Whether each hop uses TLS: (previous hop, next hop).
    pub fn tls_hops(&self) -> (bool, bool) {
        (self.shared.tls_in.is_some(), self.shared.tls_out.is_some())
    }

    /// Runs the accept loop in a background task.
    pub fn spawn(self) -> std::io::Result<RelayHandle> {
        let addr = self.local_addr()?;
        let stats = self.stats();
        let task = tokio::spawn(async move { self.run().await });
        Ok(RelayHandle { addr, stats, task })
    }

    /// Accepts connections until cancelled.
    pub async fn run(self) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("relay accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let shared = self.shared.clone();
            shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                warn!(%peer, "relay refusing connection: max_associations reached");
                continue;
            };
            let _ = transport::configure_socket(&stream, &shared.cfg.tcp);
            tokio::spawn(async move {
                let r = match &shared.tls_in {
                    None => relay_one(Box::new(stream), shared.clone()).await,
                    Some(tls) => match tls.accept(stream, peer).await {
                        Ok(s) => relay_one(Box::new(s), shared.clone()).await,
                        Err(e) => Err(format!("TLS from the previous hop: {e}")),
                    },
                };
                match r {
                    Ok(Ending::Released) => {
                        shared.stats.released.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ending::Refused) => {
                        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ending::Aborted) => {
                        shared.stats.aborted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        shared.stats.aborted.fetch_add(1, Ordering::Relaxed);
                        info!(%peer, "relayed association ended: {e}");
                    }
                }
                drop(permit);
            });
        }
    }
}

impl RelayShared {
    fn route(&self, ap: Option<&Oid>, ae: Option<i64>) -> Option<&str> {
        self.routes
            .iter()
            .find(|(o, q, _)| Some(o) == ap && (q.is_none() || *q == ae))
            .map(|(_, _, to)| to.as_str())
            .or(self.cfg.relay.to.as_deref())
    }

    fn hop_config(&self, responder: bool) -> Result<OsiConfig, String> {
        let mut osi = osi_config(&self.cfg.osi, responder).map_err(|e| e.to_string())?;
        osi.accepted_application_contexts = self.application_contexts.clone();
        osi.extra_abstract_syntaxes = self.abstract_syntaxes.clone();
        Ok(osi)
    }

    fn timeouts(&self) -> SpliceTimeouts {
        SpliceTimeouts {
            associate: Duration::from_secs(self.cfg.relay.associate_timeout_secs.max(1)),
            idle: match self.cfg.relay.idle_timeout_secs {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
        }
    }
}

/// How long one write to a hop may take: the idle timeout, or the setup time when there is none.
fn write_bound(sh: &RelayShared) -> Duration {
    match sh.cfg.relay.idle_timeout_secs {
        0 => Duration::from_secs(sh.cfg.relay.associate_timeout_secs.max(1)),
        s => Duration::from_secs(s),
    }
}

/// Connects the next hop (TCP, then TLS when configured) before `deadline`.
async fn dial(
    sh: Arc<RelayShared>,
    to: String,
    deadline: Option<Instant>,
) -> Result<ByteStream<HopStream>, String> {
    let left = deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or(Duration::from_secs(
            sh.cfg.relay.associate_timeout_secs.max(1),
        ));
    let connect = async {
        let tcp = transport::connect_tcp(&to, &sh.cfg.tcp)
            .await
            .map_err(|e| format!("next hop {to}: {e}"))?;
        match &sh.tls_out {
            None => Ok(Box::new(tcp) as BoxStream),
            Some(tls) => match tls.connect(tcp, &to).await {
                Ok(s) => Ok(Box::new(s) as BoxStream),
                Err(e) => Err(format!("TLS to the next hop {to}: {e}")),
            },
        }
    };
    match tokio::time::timeout(left, connect).await {
        Ok(r) => r.map(|s| ByteStream::new(HopStream(s), Some(write_bound(&sh)))),
        Err(_) => Err(format!("next hop {to}: connect timeout")),
    }
}

/// A hop's stream (TCP or TLS), boxed. A named type rather than `Box<dyn Stream>` in the
/// machine's type: a trait object's lifetime bound inside the spawned future's type would make
/// the compiler ask for the machine at every lifetime.
pub(crate) struct HopStream(pub(crate) BoxStream);

impl tokio::io::AsyncRead for HopStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for HopStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

fn hop(port: Port) -> Hop {
    match port {
        Port::Up => Hop::Up,
        Port::Down => Hop::Down,
    }
}

/// One relayed association as a [`Machine`]: the splice does the protocol; the driver moves bytes
/// between the two hops and the splice, dials the next hop when the splice asks for it
/// ([`Step::Connect`]) and wakes the splice at its deadline.
struct RelayMachine {
    sh: Arc<RelayShared>,
    sp: Splice,
    /// PDUs forwarded already counted in the stats.
    counted: u64,
    /// The first transport failure, which explains an abort.
    error: Option<String>,
    result: Option<Result<Ending, String>>,
}

impl Machine<ByteStream<HopStream>> for RelayMachine {
    type Cmd = ();
    type Effect = ();

    fn handle_input(&mut self, port: Port, input: &[u8], now: Now) {
        self.sp.handle_input(hop(port), input, now.mono);
    }

    fn transport_closed(&mut self, port: Port, error: Option<std::io::Error>, now: Now) {
        if let Some(e) = error {
            let side = match port {
                Port::Up => "previous hop",
                Port::Down => "next hop",
            };
            self.error.get_or_insert(format!("{side}: {e}"));
        }
        self.sp.transport_closed(hop(port), now.mono);
    }

    fn write_failed(&mut self, port: Port, error: LinkError, now: Now) {
        // Whatever one hop's write failure leaves, the other hop is aborted through the splice.
        self.error.get_or_insert(error.to_string());
        self.sp.transport_closed(hop(port), now.mono);
    }

    fn handle_timeout(&mut self, now: Now) {
        self.sp.handle_timeout(now.mono);
    }

    fn process(&mut self, _: Now) -> Step<(), ByteStream<HopStream>> {
        if self.result.is_some() {
            return Step::Done;
        }
        while let Some(ev) = self.sp.poll_event() {
            match ev {
                SpliceEvent::Route {
                    called_ap_title,
                    called_ae_qualifier,
                } => match self.sh.route(called_ap_title.as_ref(), called_ae_qualifier) {
                    None => {
                        debug!("no route for the called AP-title; rejecting");
                        self.sp.no_route();
                    }
                    Some(to) => {
                        let dial = dial(
                            self.sh.clone(),
                            to.to_string(),
                            self.sp.associate_deadline(),
                        );
                        return Step::Connect(Box::pin(dial));
                    }
                },
                SpliceEvent::Established => {
                    self.sh.stats.associations.fetch_add(1, Ordering::Relaxed);
                }
                SpliceEvent::Ended(how) => {
                    self.result = Some(match (how, &self.error) {
                        (Ending::Aborted, Some(e)) => Err(e.clone()),
                        (how, _) => Ok(how),
                    });
                }
                SpliceEvent::Failed(why) => {
                    self.result = Some(Err(why));
                }
            }
        }
        let n = self.sp.forwarded();
        self.sh
            .stats
            .pdus
            .fetch_add(n - self.counted, Ordering::Relaxed);
        self.counted = n;
        if self.result.is_some() {
            // What the splice queued last (the abort of the other hop) goes out first.
            return Step::Done;
        }
        Step::Idle
    }

    fn connected(&mut self, result: Result<(), String>, _: Now) {
        match result {
            Ok(()) => {
                let _ = self.sp.connect_down();
            }
            Err(why) => self.sp.next_hop_failed(why),
        }
    }

    fn poll_transmit(&mut self, port: Port) -> Option<Vec<u8>> {
        self.sp.poll_transmit(hop(port))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sp.poll_timeout()
    }
}

/// Relays one association arriving on `up`.
async fn relay_one(up: BoxStream, sh: Arc<RelayShared>) -> Result<Ending, String> {
    let sp = Splice::new(
        sh.hop_config(true)?,
        sh.hop_config(false)?,
        sh.tap.clone(),
        sh.next_association.clone(),
        sh.timeouts(),
        Instant::now(),
    );
    let up = ByteStream::new(HopStream(up), Some(write_bound(&sh)));
    let mut m = RelayMachine {
        sh,
        sp,
        counted: 0,
        error: None,
        result: None,
    };
    drive(&mut m, up, None).await;
    m.result
        .unwrap_or_else(|| Err("the relay ended without an outcome".into()))
}
