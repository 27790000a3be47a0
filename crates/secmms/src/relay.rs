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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secmms_ber::Oid;
use secmms_osi::acse::{
    associate_result, Aare, Aarq, AeQualifier, ApTitle, AuthenticationValue, External,
    SourceDiagnostic,
};
use secmms_osi::security::{
    AbortRequest, AssociationSecurity, NegotiatedContext, Role, SecurityContext,
};
use secmms_osi::{Association, OsiConfig, OsiEvent, RejectReason};
use secmms_pki::event::SecurityEventSink;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::config::{Config, ConfigError};
use crate::link::{Link, LinkError};
use crate::osi::osi_config;
use crate::tls::TlsContext;
use crate::transport::{self, Stream};

/// Default e2eSecurityAS relayed (spec §9 DECISION placeholder 1.0.62351.4.1.1.1).
pub const DEFAULT_RELAYED_E2E_SECURITY_AS: &[u64] = &[1, 0, 62351, 4, 1, 1, 1];
/// Default e2eMmsAC relayed (spec §9 DECISION placeholder 1.0.62351.4.2.1).
pub const DEFAULT_RELAYED_E2E_MMS_AC: &[u64] = &[1, 0, 62351, 4, 2, 1];

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

fn parse_oid(field: &'static str, s: &str) -> Result<Oid, ConfigError> {
    s.parse().map_err(|_| ConfigError::Value {
        field,
        reason: format!("`{s}` is not a dotted OID"),
    })
}

fn const_oid(arcs: &[u64]) -> Oid {
    // Only called with the valid constants of this crate.
    Oid::new(arcs).unwrap_or_else(|_| unreachable!("constant OID"))
}

impl RelayConfig {
    /// Checks routes and OIDs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.routes()?;
        self.contexts()?;
        if self.max_associations == 0 {
            return Err(ConfigError::Value {
                field: "relay.max_associations",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn routes(&self) -> Result<Vec<(Oid, Option<i64>, String)>, ConfigError> {
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
    fn contexts(&self) -> Result<(Vec<Oid>, Vec<Oid>), ConfigError> {
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

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// Where a P-DATA value crossing the relay is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapContext {
    /// Number of the relayed association (1, 2, … in order of establishment).
    pub association: u64,
    /// True from the association initiator (client side) towards the responder.
    pub from_initiator: bool,
    /// Index of this value in its direction (0, 1, …).
    pub index: u64,
}

/// What a [`Tap`] makes the relay do with one P-DATA value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapAction {
    /// Send these octets as a P-DATA value on the same presentation context.
    Send(Vec<u8>),
    /// Abort the destination side with this ABRT content (and the source side without one).
    Abort(AbortRequest),
}

/// An observer of the application PDUs a relay forwards, which may also change them. A faithful
/// relay has none; diagnostics taps and the hostile-relay test doubles (flip, replay, reorder,
/// drop, cross-association swap, forged abort) are written against this trait. Whatever a tap
/// does, the end systems' E2E checks must detect it: the relay holds no key.
pub trait Tap: Send + Sync {
    /// Called for every P-DATA value; returns what to send in its place (`vec![Send(pdu)]` for
    /// a faithful forward, an empty list to drop it).
    fn on_data(&self, ctx: TapContext, pdu: Vec<u8>) -> Vec<TapAction>;
}

/// What the relay still has to put into the next APDU a side sends: the peer APDU's fields, and
/// the presentation contexts their indirect-references refer to.
#[derive(Default)]
struct Pending {
    aarq: Option<(Aarq, Vec<NegotiatedContext>)>,
    aare: Option<(Aare, Vec<NegotiatedContext>)>,
    release: Option<(Vec<External>, Vec<NegotiatedContext>)>,
}

type Shared = Arc<Mutex<Pending>>;

fn take<T>(m: &Shared, f: impl FnOnce(&mut Pending) -> Option<T>) -> Option<T> {
    match m.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

fn put(m: &Shared, f: impl FnOnce(&mut Pending)) {
    match m.lock() {
        Ok(mut g) => f(&mut g),
        Err(p) => f(&mut p.into_inner()),
    }
}

/// The presentation context of `to` with the abstract syntax that `id` has in `from`.
fn map_id(id: i64, from: &[NegotiatedContext], to: &[NegotiatedContext]) -> Option<i64> {
    let as_ = &from.iter().find(|c| i64::from(c.id) == id)?.abstract_syntax;
    to.iter()
        .find(|c| c.accepted && &c.abstract_syntax == as_)
        .map(|c| i64::from(c.id))
}

/// Renumbers the indirect-references of `ui` from `from`'s contexts to `to`'s; an EXTERNAL whose
/// context has no counterpart keeps its number (the receiving end then judges it).
fn remap(ui: &[External], from: &[NegotiatedContext], to: &[NegotiatedContext]) -> Vec<External> {
    ui.iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(id) = e.indirect_reference {
                if let Some(n) = map_id(id, from, to) {
                    e.indirect_reference = Some(n);
                }
            }
            e
        })
        .collect()
}

fn remap_auth(
    v: &Option<AuthenticationValue>,
    from: &[NegotiatedContext],
    to: &[NegotiatedContext],
) -> Option<AuthenticationValue> {
    match v {
        Some(AuthenticationValue::External(e)) => Some(AuthenticationValue::External(
            remap(std::slice::from_ref(e), from, to).remove(0),
        )),
        other => other.clone(),
    }
}

/// The security hook of both hops: it verifies nothing and only writes the other hop's APDU
/// fields into the APDU the association is about to send.
struct Passthrough(Shared);

impl AssociationSecurity for Passthrough {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        if let Some((src, from)) = take(&self.0, |p| p.aarq.take()) {
            let to = ctx.contexts;
            aarq.application_context_name = src.application_context_name.clone();
            aarq.protocol_version = src.protocol_version.clone();
            aarq.called_ap_title = src.called_ap_title.clone();
            aarq.called_ae_qualifier = src.called_ae_qualifier.clone();
            aarq.called_ap_invocation_id = src.called_ap_invocation_id;
            aarq.called_ae_invocation_id = src.called_ae_invocation_id;
            aarq.calling_ap_title = src.calling_ap_title.clone();
            aarq.calling_ae_qualifier = src.calling_ae_qualifier.clone();
            aarq.calling_ap_invocation_id = src.calling_ap_invocation_id;
            aarq.calling_ae_invocation_id = src.calling_ae_invocation_id;
            aarq.sender_acse_requirements = src.sender_acse_requirements.clone();
            aarq.mechanism_name = src.mechanism_name.clone();
            aarq.calling_authentication_value =
                remap_auth(&src.calling_authentication_value, &from, to);
            aarq.implementation_information = src.implementation_information.clone();
            aarq.user_information = remap(&src.user_information, &from, to);
        }
        Ok(())
    }

    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        if let Some((src, from)) = take(&self.0, |p| p.aare.take()) {
            let to = ctx.contexts;
            aare.protocol_version = src.protocol_version.clone();
            aare.responding_ap_title = src.responding_ap_title.clone();
            aare.responding_ae_qualifier = src.responding_ae_qualifier.clone();
            aare.responding_ap_invocation_id = src.responding_ap_invocation_id;
            aare.responding_ae_invocation_id = src.responding_ae_invocation_id;
            aare.responder_acse_requirements = src.responder_acse_requirements.clone();
            aare.mechanism_name = src.mechanism_name.clone();
            aare.responding_authentication_value =
                remap_auth(&src.responding_authentication_value, &from, to);
            aare.implementation_information = src.implementation_information.clone();
            aare.user_information = remap(&src.user_information, &from, to);
        }
        Ok(())
    }

    fn decorate_rlrq(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlrq: &mut secmms_osi::acse::Rlrq,
    ) -> Result<(), AbortRequest> {
        if let Some((ui, from)) = take(&self.0, |p| p.release.take()) {
            rlrq.user_information = remap(&ui, &from, ctx.contexts);
        }
        Ok(())
    }

    fn decorate_rlre(
        &mut self,
        ctx: &SecurityContext<'_>,
        rlre: &mut secmms_osi::acse::Rlre,
    ) -> Result<(), AbortRequest> {
        if let Some((ui, from)) = take(&self.0, |p| p.release.take()) {
            rlre.user_information = remap(&ui, &from, ctx.contexts);
        }
        Ok(())
    }
}

struct RelayShared {
    tap: Option<Arc<dyn Tap>>,
    next_association: std::sync::atomic::AtomicU64,
    cfg: Config,
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
    pub async fn bind(cfg: Config) -> Result<Relay, RelayError> {
        let sink = cfg.events.build().map_err(ConfigError::from)?;
        Self::bind_with_events(cfg, Arc::new(sink)).await
    }

    /// Like [`Relay::bind`] with an explicit event sink.
    pub async fn bind_with_events(
        cfg: Config,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Relay, RelayError> {
        cfg.validate()?;
        cfg.relay.validate()?;
        let routes = cfg.relay.routes()?;
        if routes.is_empty() && cfg.relay.to.is_none() {
            return Err(ConfigError::Value {
                field: "relay.to",
                reason: "a relay needs a next hop (--to) or routes".into(),
            }
            .into());
        }
        let (mut application_contexts, mut abstract_syntaxes) = cfg.relay.contexts()?;
        // Configured native-mode numbers (spec §9 DECISION) are relayed too.
        let add = |v: &Option<String>, list: &mut Vec<Oid>| -> Result<(), ConfigError> {
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
                next_association: std::sync::atomic::AtomicU64::new(1),
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
                    None => relay_one(stream, &shared).await,
                    Some(tls) => match tls.accept(stream, peer).await {
                        Ok(s) => relay_one(s, &shared).await,
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

enum Ending {
    Released,
    Refused,
    Aborted,
}

fn title_oid(t: &Option<ApTitle>) -> Option<Oid> {
    match t {
        Some(ApTitle::Form2(o)) => Some(o.clone()),
        _ => None,
    }
}

fn qualifier(q: &Option<AeQualifier>) -> Option<i64> {
    match q {
        Some(AeQualifier::Form2(n)) => Some(*n),
        _ => None,
    }
}

impl RelayShared {
    fn route(&self, aarq: &Aarq) -> Option<&str> {
        let ap = title_oid(&aarq.called_ap_title);
        let ae = qualifier(&aarq.called_ae_qualifier);
        self.routes
            .iter()
            .find(|(o, q, _)| Some(o) == ap.as_ref() && (q.is_none() || *q == ae))
            .map(|(_, _, to)| to.as_str())
            .or(self.cfg.relay.to.as_deref())
    }

    fn hop_config(&self, responder: bool) -> Result<OsiConfig, String> {
        let mut osi = osi_config(&self.cfg.osi, responder).map_err(|e| e.to_string())?;
        osi.accepted_application_contexts = self.application_contexts.clone();
        osi.extra_abstract_syntaxes = self.abstract_syntaxes.clone();
        Ok(osi)
    }
}

/// How long one write to a hop may take: the idle timeout, or the setup time when there is none.
fn write_bound(sh: &RelayShared) -> Duration {
    match sh.cfg.relay.idle_timeout_secs {
        0 => Duration::from_secs(sh.cfg.relay.associate_timeout_secs.max(1)),
        s => Duration::from_secs(s),
    }
}

fn osi_err(e: secmms_osi::OsiError) -> String {
    e.to_string()
}

/// Relays one association arriving on `up_stream`.
async fn relay_one<S: Stream>(up_stream: S, sh: &RelayShared) -> Result<Ending, String> {
    let up_pending: Shared = Arc::default();
    let up_assoc = Association::with_security(
        Role::Responder,
        sh.hop_config(true)?,
        Box::new(Passthrough(up_pending.clone())),
    );
    let mut up = Link::new(up_stream, up_assoc);
    // A hop that stops reading must not hold the task (and its slot) forever.
    up.set_write_timeout(Some(write_bound(sh)));
    let setup = Duration::from_secs(sh.cfg.relay.associate_timeout_secs.max(1));
    let deadline = tokio::time::Instant::now() + setup;
    let left = || Some(deadline.saturating_duration_since(tokio::time::Instant::now()));

    // 1. The AARQ of the previous hop.
    let (aarq, user_data) = loop {
        let mut got = None;
        while let Some(ev) = up.poll_event() {
            match ev {
                OsiEvent::AssociateIndication { aarq, user_data } => got = Some((aarq, user_data)),
                OsiEvent::AbortIndication(_) | OsiEvent::Closed => return Ok(Ending::Aborted),
                OsiEvent::ProtocolError(e) => return Err(format!("previous hop: {e}")),
                _ => {}
            }
        }
        if let Some(g) = got {
            break g;
        }
        up.flush().await.map_err(|e| e.to_string())?;
        if up.assoc().is_closed() {
            return Ok(Ending::Aborted);
        }
        up.read_input(left()).await.map_err(|e| e.to_string())?;
    };
    let up_contexts = up.assoc().contexts().to_vec();

    // 2. The next hop.
    let Some(to) = sh.route(&aarq).map(str::to_string) else {
        debug!("no route for the called AP-title; rejecting");
        up.assoc()
            .reject(
                associate_result::REJECTED_PERMANENT,
                SourceDiagnostic::ServiceUser(
                    secmms_osi::acse::user_diagnostic::CALLED_AP_TITLE_NOT_RECOGNIZED,
                ),
                None,
            )
            .map_err(osi_err)?;
        up.shutdown().await;
        return Ok(Ending::Refused);
    };
    let tcp = match tokio::time::timeout(setup, transport::connect_tcp(&to, &sh.cfg.tcp)).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return abort_up(&mut up, format!("next hop {to}: {e}")).await,
        Err(_) => return abort_up(&mut up, format!("next hop {to}: connect timeout")).await,
    };
    match &sh.tls_out {
        None => relay_down(up, tcp, sh, aarq, user_data, up_contexts, up_pending).await,
        Some(tls) => match tls.connect(tcp, &to).await {
            Ok(s) => relay_down(up, s, sh, aarq, user_data, up_contexts, up_pending).await,
            Err(e) => abort_up(&mut up, format!("TLS to the next hop {to}: {e}")).await,
        },
    }
}

async fn abort_up<S: Stream>(up: &mut Link<S>, why: String) -> Result<Ending, String> {
    let _ = up.assoc().abort();
    up.shutdown().await;
    Err(why)
}

#[allow(clippy::too_many_arguments)]
async fn relay_down<S: Stream, D: Stream>(
    mut up: Link<S>,
    down_stream: D,
    sh: &RelayShared,
    aarq: Box<Aarq>,
    user_data: Option<Vec<u8>>,
    up_contexts: Vec<NegotiatedContext>,
    up_pending: Shared,
) -> Result<Ending, String> {
    let down_pending: Shared = Arc::default();
    let mut osi = sh.hop_config(false)?;
    // The downstream AARQ proposes what the upstream one had accepted, in the same roles.
    osi.application_context_name = aarq.application_context_name.clone();
    if let Some(mms) = up_contexts
        .iter()
        .find(|c| Some(c.id) == up.assoc().mms_context_id())
    {
        osi.mms_abstract_syntax = mms.abstract_syntax.clone();
    }
    osi.extra_abstract_syntaxes = up_contexts
        .iter()
        .filter(|c| {
            c.accepted
                && c.id != secmms_osi::association::ACSE_CONTEXT_ID
                && Some(c.id) != up.assoc().mms_context_id()
        })
        .map(|c| c.abstract_syntax.clone())
        .collect();
    osi.remote_ap_title = title_oid(&aarq.called_ap_title);
    osi.remote_ae_qualifier = qualifier(&aarq.called_ae_qualifier);
    osi.local_ap_title = title_oid(&aarq.calling_ap_title);
    osi.local_ae_qualifier = qualifier(&aarq.calling_ae_qualifier);
    put(&down_pending, |p| {
        p.aarq = Some(((*aarq).clone(), up_contexts.clone()))
    });
    let mut down = Link::new(
        down_stream,
        Association::with_security(
            Role::Initiator,
            osi,
            Box::new(Passthrough(down_pending.clone())),
        ),
    );
    down.set_write_timeout(Some(write_bound(sh)));
    if let Err(e) = down.assoc().connect(user_data.unwrap_or_default()) {
        return abort_up(&mut up, format!("next hop: {e}")).await;
    }
    let setup = Duration::from_secs(sh.cfg.relay.associate_timeout_secs.max(1));
    let deadline = tokio::time::Instant::now() + setup;

    // 3. The AARE of the next hop goes back as it came.
    loop {
        if let Err(e) = down.flush().await {
            return abort_up(&mut up, format!("next hop: {e}")).await;
        }
        let mut done = None;
        while let Some(ev) = down.poll_event() {
            match ev {
                OsiEvent::AssociateConfirm { aare, .. } => {
                    let from = down.assoc().contexts().to_vec();
                    put(&up_pending, |p| p.aare = Some(((*aare).clone(), from)));
                    up.assoc().accept(Vec::new()).map_err(osi_err)?;
                    done = Some(true);
                    // Anything that came with the AARE (e.g. the first P-DATA) stays queued and
                    // is forwarded when the data phase starts.
                    break;
                }
                OsiEvent::AssociateRejected { reason, aare, .. } => {
                    let (result, diagnostic) = match reason {
                        RejectReason::Acse { result, diagnostic } => (result, diagnostic),
                        _ => (
                            associate_result::REJECTED_PERMANENT,
                            SourceDiagnostic::ServiceProvider(
                                secmms_osi::acse::provider_diagnostic::NO_REASON_GIVEN,
                            ),
                        ),
                    };
                    if let Some(a) = aare {
                        let from = down.assoc().contexts().to_vec();
                        put(&up_pending, |p| p.aare = Some(((*a).clone(), from)));
                    }
                    up.assoc()
                        .reject(result, diagnostic, None)
                        .map_err(osi_err)?;
                    done = Some(false);
                }
                OsiEvent::AbortIndication(info) => {
                    forward_abort(&mut up, &down, info.abrt.as_deref());
                    up.shutdown().await;
                    return Ok(Ending::Aborted);
                }
                OsiEvent::ProtocolError(e) => {
                    return abort_up(&mut up, format!("next hop: {e}")).await;
                }
                _ => {}
            }
        }
        match done {
            Some(true) => break,
            Some(false) => {
                up.shutdown().await;
                down.shutdown().await;
                return Ok(Ending::Refused);
            }
            None => {}
        }
        if down.assoc().is_closed() {
            return abort_up(&mut up, "next hop closed during establishment".into()).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Err(e) = down.read_input(Some(left)).await {
            return abort_up(&mut up, format!("next hop: {e}")).await;
        }
    }
    up.flush().await.map_err(|e| e.to_string())?;
    sh.stats.associations.fetch_add(1, Ordering::Relaxed);
    let number = sh.next_association.fetch_add(1, Ordering::Relaxed);
    let mut counters = [0u64; 2];
    // Events the next hop sent together with its AARE.
    match forward_events(
        &mut down,
        &mut up,
        sh,
        (number, false, &mut counters[1]),
        &up_pending,
    ) {
        Ok(None) => {}
        end => return close_both(&mut up, &mut down, end).await,
    }
    up.flush().await.map_err(|e| e.to_string())?;

    // 4. Data phase: forward in both directions until release or abort.
    let idle = match sh.cfg.relay.idle_timeout_secs {
        0 => Duration::from_secs(u64::MAX / 4),
        s => Duration::from_secs(s),
    };
    loop {
        let r = tokio::select! {
            r = up.read_raw() => (true, r),
            r = down.read_raw() => (false, r),
            _ = tokio::time::sleep(idle) => {
                let _ = up.assoc().abort();
                let _ = down.assoc().abort();
                up.shutdown().await;
                down.shutdown().await;
                return Err("idle timeout".into());
            }
        };
        let (from_up, n) = match r {
            (from_up, Ok(n)) => (from_up, n),
            (from_up, Err(e)) => {
                // One hop is gone: abort the other (without user information: the relay has no
                // E2E content of its own to send).
                if from_up {
                    let _ = down.assoc().abort();
                    down.shutdown().await;
                } else {
                    let _ = up.assoc().abort();
                    up.shutdown().await;
                }
                return match e {
                    LinkError::Closed => Ok(Ending::Aborted),
                    e => Err(e.to_string()),
                };
            }
        };
        let outcome = if from_up {
            let r = up.feed(n).await;
            let o = forward_events(
                &mut up,
                &mut down,
                sh,
                (number, true, &mut counters[0]),
                &down_pending,
            );
            r.map_err(|e| e.to_string()).and(o)
        } else {
            let r = down.feed(n).await;
            let o = forward_events(
                &mut down,
                &mut up,
                sh,
                (number, false, &mut counters[1]),
                &up_pending,
            );
            r.map_err(|e| e.to_string()).and(o)
        };
        let fu = up.flush().await;
        let fd = down.flush().await;
        match outcome {
            Ok(None) => {}
            end => return close_both(&mut up, &mut down, end).await,
        }
        if let Err(e) = fu.and(fd) {
            let _ = up.assoc().abort();
            let _ = down.assoc().abort();
            up.shutdown().await;
            down.shutdown().await;
            return Err(e.to_string());
        }
    }
}

/// Queues on `to` the ABRT that arrived on `from` (its user-information renumbered).
/// Closes both hops once forwarding ended the association: `Ok(Some(end))` after a release or
/// a forwarded abort, `Err` after a failure (both hops are aborted first).
async fn close_both<A: Stream, B: Stream>(
    up: &mut Link<A>,
    down: &mut Link<B>,
    outcome: Result<Option<Ending>, String>,
) -> Result<Ending, String> {
    if outcome.is_err() {
        let _ = up.assoc().abort();
        let _ = down.assoc().abort();
    }
    up.shutdown().await;
    down.shutdown().await;
    match outcome {
        Ok(Some(end)) => Ok(end),
        Ok(None) => Err("association still running".into()),
        Err(e) => Err(e),
    }
}

fn forward_abort<A: Stream, B: Stream>(
    to: &mut Link<A>,
    from: &Link<B>,
    abrt: Option<&secmms_osi::acse::Abrt>,
) {
    let req = match abrt {
        Some(a) => AbortRequest {
            diagnostic: a.diagnostic,
            user_information: remap(
                &a.user_information,
                from_contexts(from),
                to.assoc_ref().contexts(),
            ),
        },
        None => AbortRequest::default(),
    };
    let _ = to.assoc().abort_with(req);
}

fn from_contexts<B: Stream>(l: &Link<B>) -> &[NegotiatedContext] {
    l.assoc_ref().contexts()
}

/// Moves the events of `src` to `dst`. `Ok(Some(end))` when the association is over.
fn forward_events<A: Stream, B: Stream>(
    src: &mut Link<A>,
    dst: &mut Link<B>,
    sh: &RelayShared,
    (association, from_initiator, index): (u64, bool, &mut u64),
    dst_pending: &Shared,
) -> Result<Option<Ending>, String> {
    while let Some(ev) = src.poll_event() {
        match ev {
            OsiEvent::Data { context_id, pdu } => {
                let to = map_id(
                    i64::from(context_id),
                    src.assoc_ref().contexts(),
                    dst.assoc_ref().contexts(),
                )
                .ok_or_else(|| {
                    format!("data on presentation context {context_id}, unknown on the other hop")
                })?;
                let actions = match &sh.tap {
                    None => vec![TapAction::Send(pdu)],
                    Some(tap) => {
                        let ctx = TapContext {
                            association,
                            from_initiator,
                            index: *index,
                        };
                        *index += 1;
                        tap.on_data(ctx, pdu)
                    }
                };
                for a in actions {
                    match a {
                        TapAction::Send(pdu) => {
                            dst.assoc().send_data_on(to as u32, &pdu).map_err(osi_err)?;
                            sh.stats.pdus.fetch_add(1, Ordering::Relaxed);
                        }
                        TapAction::Abort(req) => {
                            let _ = dst.assoc().abort_with(req);
                            let _ = src.assoc().abort();
                            return Ok(Some(Ending::Aborted));
                        }
                    }
                }
            }
            OsiEvent::ReleaseIndication { rlrq, .. } => {
                let from = src.assoc_ref().contexts().to_vec();
                put(dst_pending, |p| {
                    p.release = Some((rlrq.user_information.clone(), from))
                });
                dst.assoc().release(None).map_err(osi_err)?;
            }
            OsiEvent::ReleaseConfirm { rlre, .. } => {
                let from = src.assoc_ref().contexts().to_vec();
                put(dst_pending, |p| {
                    p.release = Some((rlre.user_information.clone(), from))
                });
                dst.assoc().release_response(None).map_err(osi_err)?;
                return Ok(Some(Ending::Released));
            }
            OsiEvent::ReleaseRefused => {
                return Err("release refused by a peer (not supported through a relay)".into());
            }
            OsiEvent::AbortIndication(info) => {
                forward_abort(dst, src, info.abrt.as_deref());
                return Ok(Some(Ending::Aborted));
            }
            OsiEvent::ProtocolError(e) => return Err(e.to_string()),
            OsiEvent::Closed => return Ok(Some(Ending::Aborted)),
            _ => {}
        }
    }
    Ok(None)
}
