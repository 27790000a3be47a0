//! MMS with E2E security over XMPP (IEC 62351-4 clause 16; IEC 61850-8-2 style), on one XMPP
//! connection per process side: the transport is `secmms-xmpp` (TLS per clause 6.4, SASL), the
//! stanza mapping and associations are `secmms_profiles::xmpp::XmppEndpoint`, the SecPDUs travel
//! in their XML encoding. The same MMS services and E2E modes as over OSI.
//!
//! * [`serve`]: answers associations from any JID with the server's MMS model.
//! * [`XmppConnection`]: a client connection from which any number of [`Client`]s associate
//!   with peers (several with the same peer at once, told apart by assoID, §16.5).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secmms_e2e::TimeStamp;
use secmms_mms::client::{self as mms_client, ClientProposal};
use secmms_mms::pdu::MmsPdu;
use secmms_mms::server::{InitiateOutcome, Vmd};
use secmms_mms::session::ClientSession;
use secmms_pki::event::SecurityEventSink;
use secmms_profiles::xmpp::{
    AssocKey, EndpointError, EndpointEvent, IqType, StanzaKind, XmppEndpoint,
};
use secmms_xmpp::stream::{Stanza, StanzaKind as XKind};
use secmms_xmpp::{XmppClient, XmppConfig, XmppSender};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::client::{Client, ClientError, Cmd, CmdTx, Pending, Refusal, RELEASE_TIMEOUT};
use crate::config::Config;
use crate::driver::{until, LazyTimer};
use crate::security::{load_e2e_context, AppMode};

/// Errors of the XMPP environment.
#[derive(Debug, thiserror::Error)]
pub enum XmppEnvError {
    /// The `[xmpp]` section is missing or invalid.
    #[error("XMPP configuration: {0}")]
    Config(String),
    /// Native-mode credentials could not be loaded.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// The XMPP connection failed.
    #[error("XMPP: {0}")]
    Xmpp(#[from] secmms_xmpp::XmppError),
}

/// The calendar time of the runtime's one clock ([`crate::driver::now`]).
fn now() -> TimeStamp {
    crate::driver::now().wall
}

/// The `[xmpp]` section of `cfg`, checked, with native mode required (clause 16 has no other
/// application security).
fn xmpp_config(cfg: &Config) -> Result<&XmppConfig, XmppEnvError> {
    let x = cfg
        .xmpp
        .as_ref()
        .ok_or_else(|| XmppEnvError::Config("no [xmpp] section (or --jid)".into()))?;
    if cfg.security.mode != AppMode::Native {
        return Err(XmppEnvError::Config(
            "the XMPP environment carries E2E security only: use --mode native".into(),
        ));
    }
    x.validate()?;
    Ok(x)
}

fn endpoint(
    cfg: &Config,
    server: bool,
    sink: Arc<dyn SecurityEventSink>,
) -> Result<XmppEndpoint, XmppEnvError> {
    let ctx = load_e2e_context(cfg)?;
    Ok(XmppEndpoint::new(ctx, server, sink))
}

/// The OCSP step of a server association (§6.2.8): `Some(event)` when the peer must be
/// refused with it; a soft-fail warning is recorded on `sink` and `None` returned.
async fn peer_ocsp(
    ocsp: &Option<crate::security::PeerOcsp>,
    cert: Option<Vec<u8>>,
    key: &AssocKey,
    sink: &dyn SecurityEventSink,
) -> Option<secmms_pki::event::SecurityEvent> {
    let out = ocsp.as_ref()?.outcome(&cert?).await?;
    let def = if out.revoked {
        secmms_e2e::events::PEER_CERT_REVOKED
    } else {
        secmms_e2e::events::PEER_OCSP_UNAVAILABLE
    };
    let event = secmms_pki::event::SecurityEvent {
        id: def.id(),
        mnemonic: def.mnemonic,
        severity: def.severity,
        message: out.why,
        association: Some(format!("{} {}", key.peer, key.client_part)),
    };
    if out.refuse {
        Some(event)
    } else {
        sink.record(&event);
        None
    }
}

/// The stanza kind and ENV_4 payload of an arriving stanza, for the endpoint.
fn classify(st: &Stanza) -> Option<(StanzaKind, Option<String>)> {
    let kind = match st.kind {
        XKind::Iq => StanzaKind::Iq(IqType::parse(st.type_.as_deref().unwrap_or(""))?),
        XKind::Message => StanzaKind::Message,
        XKind::Presence => return None,
    };
    let env = st.children().ok().and_then(|c| {
        c.into_iter()
            .find(|c| c.name == "e2e")
            .map(|c| c.raw.to_string())
    });
    Some((kind, env))
}

/// The sender of a presence of type `unavailable` (RFC 6121 §4.5): that peer (a full JID: one
/// resource; a bare JID: the whole account) is gone, and its associations end locally (§16.5).
fn unavailable_peer(st: &Stanza) -> Option<&str> {
    if st.kind != XKind::Presence || st.type_.as_deref() != Some("unavailable") {
        return None;
    }
    st.from.as_deref().filter(|f| !f.is_empty())
}

/// The monotonic instant of the endpoint's next E2E timer (`None`: no timer running).
fn next_timer(ep: &XmppEndpoint) -> Option<std::time::Instant> {
    ep.next_timeout()
        .map(|t| crate::driver::now().instant_of(t))
}

async fn send_all(tx: &XmppSender, out: Vec<String>) -> Result<(), secmms_xmpp::XmppError> {
    for s in out {
        tx.send(&s).await?;
    }
    Ok(())
}

/// Serves the MMS model of `mms` over XMPP until the connection ends: one E2E association per
/// HandshakeReq, from any JID whose certificate binds it (Annex G.6.3).
pub async fn serve(
    cfg: &Config,
    mms: Vmd,
    sink: Arc<dyn SecurityEventSink>,
) -> Result<(), XmppEnvError> {
    serve_ready(cfg, mms, sink, |_| {}).await
}

/// Like [`serve`]; `on_ready` is called with our full JID once the connection is bound.
pub async fn serve_ready(
    cfg: &Config,
    mms: Vmd,
    sink: Arc<dyn SecurityEventSink>,
    on_ready: impl FnOnce(&str),
) -> Result<(), XmppEnvError> {
    let xc = xmpp_config(cfg)?;
    let anchors = if cfg.security.ca.is_empty() {
        &cfg.tls.ca
    } else {
        &cfg.security.ca
    };
    let ocsp = crate::security::PeerOcsp::from_config(
        cfg,
        Arc::new(crate::security::ReloadableValidator::load(
            anchors,
            &[],
            &[],
        )?),
    );
    let mut ep = endpoint(cfg, true, sink.clone())?;
    // The reconnection policy of `[xmpp.reconnect]`: a lost link ends every association
    // locally (§16.5) and the server comes back when the XMPP server does.
    let mut conn = secmms_xmpp::ReconnectingClient::connect(xc.clone()).await?;
    let jid = conn.jid().unwrap_or_default().to_string();
    info!("serving MMS over XMPP as {jid}");
    on_ready(&jid);
    let mut assocs: HashMap<AssocKey, secmms_mms::server::ServerSession> = HashMap::new();
    let mut timer = LazyTimer::default();
    enum Wake {
        Event(secmms_xmpp::ClientEvent),
        Timer,
    }
    loop {
        // Native mode: the E2E timers run between stanzas, as over OSI (server.rs). While the
        // link is down there is no association, hence no timer.
        let at = if conn.sender().is_some() {
            next_timer(&ep)
        } else {
            None
        };
        let wake = tokio::select! {
            ev = conn.next_event() => Wake::Event(ev?),
            () = until(&mut timer, at) => Wake::Timer,
        };
        let event = match wake {
            Wake::Event(ev) => ev,
            Wake::Timer => {
                let (out, events) = ep.handle_timeout(now());
                if let Some(tx) = conn.sender() {
                    if let Err(e) = send_all(&tx, out).await {
                        warn!("XMPP send: {e}");
                    }
                }
                for ev in events {
                    if let EndpointEvent::Aborted { key, reason } = ev {
                        debug!("XMPP association {key:?} aborted: {reason}");
                        assocs.remove(&key);
                    }
                }
                continue;
            }
        };
        let st = match event {
            secmms_xmpp::ClientEvent::Stanza(st) => st,
            secmms_xmpp::ClientEvent::Disconnected(e) => {
                warn!("XMPP link lost ({e}); every association ends, reconnecting");
                ep.drop_peer(None);
                assocs.clear();
                continue;
            }
            secmms_xmpp::ClientEvent::Reconnected { jid } => {
                info!("XMPP link back as {jid}");
                continue;
            }
        };
        let Some(tx) = conn.sender() else {
            continue;
        };
        if let Some(peer) = unavailable_peer(&st) {
            // Like a lost link, for that peer only: no stanza to send.
            for ev in ep.drop_peer(Some(peer)) {
                if let EndpointEvent::Aborted { key, .. } = ev {
                    debug!("XMPP association {key:?} ended: {peer} unavailable");
                    assocs.remove(&key);
                }
            }
            continue;
        }
        let Some((kind, env)) = classify(&st) else {
            continue;
        };
        let from = st.from.clone().unwrap_or_default();
        let (out, events) = ep.handle(
            kind,
            st.id.as_deref().unwrap_or(""),
            &from,
            env.as_deref(),
            now(),
        );
        // A stanza that cannot be sent (e.g. refused by the writer's limits) must not end the
        // server; a lost link shows up as `Disconnected` on the next event.
        if let Err(e) = send_all(&tx, out).await {
            warn!("XMPP send: {e}");
        }
        for ev in events {
            let out = match ev {
                EndpointEvent::AssociateIndication { key, initiate } => {
                    // §6.2.8: OCSP for the peer's application certificate before the
                    // HandshakeAcc goes out, as over OSI.
                    let cert = ep.peer_certificate(&key);
                    if let Some(refusal) = peer_ocsp(&ocsp, cert, &key, sink.as_ref()).await {
                        let diag = secmms_e2e::HandshakeDiagnostic::InvalidPublicKeyCertificate;
                        let out = ep.security_reject(&key, diag, refusal, now());
                        if let Ok(o) = out {
                            if let Err(e) = send_all(&tx, o).await {
                                warn!("XMPP send: {e}");
                            }
                        }
                        continue;
                    }
                    match mms.accept_initiate(&initiate) {
                        InitiateOutcome::Accepted {
                            response,
                            association,
                        } => {
                            assocs.insert(key.clone(), association);
                            ep.accept(&key, &response, now())
                        }
                        InitiateOutcome::Refused { response, .. } => {
                            ep.reject(&key, &response, now())
                        }
                        InitiateOutcome::Invalid(e) => {
                            debug!("invalid initiate over XMPP: {e}");
                            ep.abort(&key, now())
                        }
                    }
                }
                EndpointEvent::Data { key, pdu } => match assocs.get(&key) {
                    Some(a) => match a.handle_pdu(&pdu) {
                        // Each answer leaves with its stanza at once.
                        Some(resp) => ep.send(&key, &resp, now()),
                        None => Ok(Vec::new()),
                    },
                    None => Ok(Vec::new()),
                },
                EndpointEvent::ReleaseIndication { key, conclude } => {
                    let concluded = assocs.remove(&key).is_some_and(|a| a.is_concluded());
                    let answer = secmms_mms::server::release_answer(concluded, conclude.as_deref());
                    ep.release_response(&key, answer.as_deref(), now())
                }
                EndpointEvent::Released { key } | EndpointEvent::Aborted { key, .. } => {
                    assocs.remove(&key);
                    Ok(Vec::new())
                }
                EndpointEvent::Established { .. } | EndpointEvent::Rejected { .. } => {
                    Ok(Vec::new())
                }
            };
            match out {
                Ok(o) => {
                    if let Err(e) = send_all(&tx, o).await {
                        warn!("XMPP send: {e}");
                    }
                }
                Err(EndpointError::Aborted {
                    key,
                    reason,
                    stanzas,
                }) => {
                    // The engine ended the association while protecting: its abort still goes out.
                    warn!("XMPP association {key:?} aborted: {reason}");
                    assocs.remove(&key);
                    if let Err(e) = send_all(&tx, stanzas).await {
                        warn!("XMPP send: {e}");
                    }
                }
                Err(e) => warn!("XMPP association: {e}"),
            }
        }
    }
}

/// Serves the model `cfg.server.model` names (or the built-in demo model) over XMPP, reporting
/// security events where `[events]` says.
pub async fn serve_config(cfg: &Config, on_ready: impl FnOnce(&str)) -> Result<(), XmppEnvError> {
    let sink = cfg
        .events
        .build()
        .map_err(|e| XmppEnvError::Config(e.to_string()))?;
    let model = match &cfg.server.model {
        Some(p) => crate::server::load_model(p).map_err(|e| XmppEnvError::Config(e.to_string()))?,
        None => secmms_mms::model::Model::default_demo(),
    };
    let mms = Vmd::new(
        secmms_mms::model::SharedModel::new(model),
        crate::server::server_options(cfg),
    );
    serve_ready(cfg, mms, Arc::new(sink), on_ready).await
}

/// What an association being established reports to its [`XmppConnection::associate`] call:
/// its key, the MMS Initiate-Response, its closed flag and its reports.
type Established = (
    AssocKey,
    Vec<u8>,
    Arc<AtomicBool>,
    mpsc::Receiver<secmms_mms::pdu::InformationReport>,
);
type EstablishReply = oneshot::Sender<Result<Established, ClientError>>;

/// A command to the connection task: open an association, or one of an association's own.
pub(crate) enum ConnCmd {
    Associate {
        peer: String,
        proposal: ClientProposal,
        reply: EstablishReply,
    },
    Assoc(AssocKey, Cmd),
}

struct ClientAssoc {
    establishing: Option<EstablishReply>,
    /// Where the association's unsolicited reports go ([`Client::reports`]).
    reports: crate::client::ReportTx,
    /// The MMS session: invoke IDs, the outstanding requests and their reply channels.
    session: ClientSession<Pending>,
    releasing: Option<oneshot::Sender<Result<(), ClientError>>>,
    closed: Arc<AtomicBool>,
}

/// One client-side XMPP connection carrying any number of E2E associations.
#[derive(Clone)]
pub struct XmppConnection {
    tx: mpsc::Sender<ConnCmd>,
    jid: String,
    cfg: Config,
}

impl std::fmt::Debug for XmppConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppConnection")
            .field("jid", &self.jid)
            .finish()
    }
}

impl XmppConnection {
    /// Connects and binds as `cfg.xmpp` says (TLS, SASL); native-mode credentials from
    /// `cfg.security`.
    pub async fn connect(
        cfg: &Config,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<XmppConnection, XmppEnvError> {
        let xc = xmpp_config(cfg)?;
        let ep = endpoint(cfg, false, sink)?;
        let conn = XmppClient::connect(xc).await?;
        let jid = conn.jid().to_string();
        let (ctx, crx) = mpsc::channel(256);
        // The task keeps only a weak sender, so it ends when the last handle is gone.
        tokio::spawn(run_connection(conn, ep, crx, ctx.downgrade()));
        Ok(XmppConnection {
            tx: ctx,
            jid,
            cfg: cfg.clone(),
        })
    }

    /// Our full JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Opens an E2E association with `peer` (a full JID, e.g. `ied1@example.org/IEC`) and
    /// returns an MMS client for it.
    pub async fn associate(&self, peer: &str) -> Result<Client, ClientError> {
        let proposal = ClientProposal {
            max_pdu_size: self.cfg.client.max_pdu_size,
            max_serv_outstanding_calling: self.cfg.client.max_outstanding,
            max_serv_outstanding_called: self.cfg.client.max_outstanding,
            ..Default::default()
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ConnCmd::Associate {
                peer: peer.to_string(),
                proposal: proposal.clone(),
                reply,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        let t = Duration::from_secs(self.cfg.client.associate_timeout_secs.max(1));
        let (key, initiate_rsp, closed, reports) = tokio::time::timeout(t, rx)
            .await
            .map_err(|_| ClientError::Timeout(t))?
            .map_err(|_| ClientError::Closed)??;
        let negotiated = mms_client::parse_initiate_response(&initiate_rsp, &proposal)
            .map_err(ClientError::Initiate)?;
        debug!("XMPP association {key:?} established");
        let label = format!("E2E over XMPP ({} ↔ {peer})", self.jid);
        Ok(Client::from_parts(
            CmdTx::Keyed(self.tx.clone(), key),
            negotiated,
            label,
            closed,
            Duration::from_secs(self.cfg.client.request_timeout_secs.max(1)),
            reports,
        ))
    }
}

async fn run_connection(
    conn: XmppClient,
    mut ep: XmppEndpoint,
    mut crx: mpsc::Receiver<ConnCmd>,
    ctx: mpsc::WeakSender<ConnCmd>,
) {
    let (tx, mut rx) = conn.split();
    let mut assocs: HashMap<AssocKey, ClientAssoc> = HashMap::new();
    let mut timer = LazyTimer::default();
    let result: Result<(), secmms_xmpp::XmppError> = async {
        loop {
            let at = next_timer(&ep);
            tokio::select! {
                st = rx.recv() => {
                    let st = st?;
                    if let Some(peer) = unavailable_peer(&st) {
                        // §16.5: that peer's associations end locally, as on link loss.
                        for ev in ep.drop_peer(Some(peer)) {
                            on_event(ev, &mut ep, &mut assocs, &ctx);
                        }
                        continue;
                    }
                    let Some((kind, env)) = classify(&st) else { continue };
                    let from = st.from.clone().unwrap_or_default();
                    let (mut out, events) = ep.handle(kind, st.id.as_deref().unwrap_or(""), &from, env.as_deref(), now());
                    for ev in events {
                        out.extend(on_event(ev, &mut ep, &mut assocs, &ctx));
                    }
                    if let Err(e) = send_all(&tx, out).await {
                        warn!("XMPP send: {e}");
                    }
                }
                cmd = crx.recv() => {
                    let Some(cmd) = cmd else { return Ok(()) };
                    let out = on_cmd(cmd, &mut ep, &mut assocs);
                    if let Err(e) = send_all(&tx, out).await {
                        warn!("XMPP send: {e}");
                    }
                }
                () = until(&mut timer, at) => {
                    // Native mode: the E2E timers (rekey timeout: DtSecAbort, association ends).
                    let (mut out, events) = ep.handle_timeout(now());
                    for ev in events {
                        out.extend(on_event(ev, &mut ep, &mut assocs, &ctx));
                    }
                    if let Err(e) = send_all(&tx, out).await {
                        warn!("XMPP send: {e}");
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        warn!("XMPP connection ended: {e}");
    }
    for (_, a) in assocs.drain() {
        end_assoc(a, Err(ClientError::Closed));
    }
}

/// The error of an association the XMPP endpoint ended (`reason` in its words).
fn aborted(reason: String) -> ClientError {
    ClientError::Rejected(Box::new(Refusal {
        detail: format!("aborted: {reason}"),
        ..Refusal::default()
    }))
}

fn end_assoc(mut a: ClientAssoc, r: Result<(), ClientError>) {
    a.closed.store(true, Ordering::Relaxed);
    for p in a.session.fail_all() {
        let _ = p.reply.send(Err(ClientError::Closed));
    }
    if let Some(e) = a.establishing.take() {
        let _ = e.send(Err(ClientError::Closed));
    }
    if let Some(r2) = a.releasing.take() {
        let _ = r2.send(r);
    }
}

fn on_event(
    ev: EndpointEvent,
    ep: &mut XmppEndpoint,
    assocs: &mut HashMap<AssocKey, ClientAssoc>,
    ctx: &mpsc::WeakSender<ConnCmd>,
) -> Vec<String> {
    match ev {
        EndpointEvent::Established { key, initiate } => {
            let Some(a) = assocs.get_mut(&key) else {
                return Vec::new();
            };
            let Some(reply) = a.establishing.take() else {
                return Vec::new();
            };
            // The caller reads the same initiate-ResponsePDU (and reports a refusal).
            if let Err(e) = a.session.handle_initiate_response(&initiate) {
                debug!("initiate response of {key:?}: {e}");
            }
            if ctx.upgrade().is_none() {
                return ep.abort(&key, now()).unwrap_or_default();
            }
            let closed = a.closed.clone();
            let (reports_tx, reports_rx) = mpsc::channel(crate::client::REPORT_QUEUE);
            a.reports = reports_tx;
            if reply
                .send(Ok((key.clone(), initiate, closed, reports_rx)))
                .is_err()
            {
                // Nobody waits any more (the associate call timed out): end it at once.
                if let Some(a) = assocs.remove(&key) {
                    end_assoc(a, Err(ClientError::Closed));
                }
                return ep.abort(&key, now()).unwrap_or_default();
            }
            Vec::new()
        }
        EndpointEvent::Rejected {
            key,
            reason,
            initiate_error,
        } => {
            if let Some(mut a) = assocs.remove(&key) {
                if let Some(reply) = a.establishing.take() {
                    let initiate_error = match initiate_error
                        .map(|b| MmsPdu::decode(&b, &secmms_mms::MmsLimits::default()))
                    {
                        Some(Ok(MmsPdu::InitiateError(e))) => Some(e),
                        _ => None,
                    };
                    let _ = reply.send(Err(ClientError::Rejected(Box::new(Refusal {
                        initiate_error,
                        detail: reason,
                        ..Refusal::default()
                    }))));
                }
                end_assoc(a, Err(ClientError::Closed));
            }
            Vec::new()
        }
        EndpointEvent::Data { key, pdu } => {
            if let Some(a) = assocs.get_mut(&key) {
                crate::client::deliver(a.session.handle_pdu(&pdu), &a.reports);
            }
            Vec::new()
        }
        EndpointEvent::Released { key } => {
            if let Some(a) = assocs.remove(&key) {
                end_assoc(a, Ok(()));
            }
            Vec::new()
        }
        EndpointEvent::Aborted { key, reason } => {
            debug!("XMPP association {key:?} aborted: {reason}");
            if let Some(a) = assocs.remove(&key) {
                end_assoc(a, Err(aborted(reason)));
            }
            Vec::new()
        }
        EndpointEvent::ReleaseIndication { key, .. } => {
            // The server releases: answer (Conclude-Response) and end the association, unless
            // we released too (collision): then our own release completes it.
            let out = ep
                .release_response(&key, Some(&MmsPdu::ConcludeResponse.encode()), now())
                .unwrap_or_default();
            let collision = assocs.get(&key).is_some_and(|a| a.releasing.is_some());
            if !collision {
                if let Some(a) = assocs.remove(&key) {
                    end_assoc(a, Ok(()));
                }
            }
            out
        }
        EndpointEvent::AssociateIndication { .. } => Vec::new(),
    }
}

fn on_cmd(
    cmd: ConnCmd,
    ep: &mut XmppEndpoint,
    assocs: &mut HashMap<AssocKey, ClientAssoc>,
) -> Vec<String> {
    match cmd {
        ConnCmd::Associate {
            peer,
            proposal,
            reply,
        } => {
            let session = ClientSession::new(proposal);
            match ep.associate(&peer, &session.initiate_request(), now()) {
                Ok((key, out)) => {
                    assocs.insert(
                        key,
                        ClientAssoc {
                            establishing: Some(reply),
                            // Replaced by the caller's queue once established.
                            reports: mpsc::channel(1).0,
                            session,
                            releasing: None,
                            closed: Arc::new(AtomicBool::new(false)),
                        },
                    );
                    out
                }
                Err(e) => {
                    let _ = reply.send(Err(ClientError::Xmpp(Arc::new(e))));
                    Vec::new()
                }
            }
        }
        ConnCmd::Assoc(
            key,
            Cmd::Request {
                service,
                reply,
                permit,
            },
        ) => {
            let Some(a) = assocs.get_mut(&key) else {
                let _ = reply.send(Err(ClientError::Closed));
                return Vec::new();
            };
            let pending = Pending {
                reply,
                _permit: permit,
            };
            let (id, pdu) = match a.session.request(service, pending) {
                Ok(x) => x,
                Err((e, p)) => {
                    let _ = p.reply.send(Err(ClientError::Usage(e.to_string())));
                    return Vec::new();
                }
            };
            match ep.send(&key, &pdu, now()) {
                Ok(out) => out,
                Err(EndpointError::Aborted {
                    key: k,
                    reason,
                    stanzas,
                }) => {
                    // E.g. the rekey timeout, found lazily: the DtSecAbort goes out and the
                    // association ends for every waiter.
                    let e = Arc::new(EndpointError::Aborted {
                        key: k,
                        reason,
                        stanzas: Vec::new(),
                    });
                    if let Some(p) = a.session.forget(id) {
                        let _ = p.reply.send(Err(ClientError::Xmpp(e.clone())));
                    }
                    if let Some(a) = assocs.remove(&key) {
                        end_assoc(a, Err(ClientError::Xmpp(e)));
                    }
                    stanzas
                }
                Err(e) => {
                    if let Some(p) = a.session.forget(id) {
                        let _ = p.reply.send(Err(ClientError::Xmpp(Arc::new(e))));
                    }
                    Vec::new()
                }
            }
        }
        ConnCmd::Assoc(key, Cmd::Release { reply }) => {
            let Some(a) = assocs.get_mut(&key) else {
                let _ = reply.send(Ok(()));
                return Vec::new();
            };
            match ep.release(&key, Some(&MmsPdu::ConcludeRequest.encode()), now()) {
                Ok(out) => {
                    a.releasing = Some(reply);
                    out
                }
                Err(e) => {
                    let _ = reply.send(Err(ClientError::Xmpp(Arc::new(e))));
                    Vec::new()
                }
            }
        }
        ConnCmd::Assoc(_, Cmd::Load { reply, .. }) => {
            // Client::load refuses before sending this; answer anyway rather than drop it.
            let _ = reply.send(Err(ClientError::Usage(
                "a closed-loop load is not run over XMPP".into(),
            )));
            Vec::new()
        }
        ConnCmd::Assoc(key, Cmd::Abort) => {
            let out = ep.abort(&key, now()).unwrap_or_default();
            if let Some(a) = assocs.remove(&key) {
                end_assoc(a, Ok(()));
            }
            out
        }
    }
}

/// How long [`Client::release`] over XMPP may wait (the same bound as over OSI).
pub const XMPP_RELEASE_TIMEOUT: Duration = RELEASE_TIMEOUT;

#[cfg(test)]
mod tests {
    use super::{classify, unavailable_peer};
    use secmms_xmpp::stream::check_outgoing;
    use secmms_xmpp::StreamLimits;

    fn stanza(raw: &str) -> secmms_xmpp::Stanza {
        check_outgoing(raw, &StreamLimits::default()).unwrap()
    }

    #[test]
    fn presence_unavailable_names_the_peer_to_drop() {
        // §16.5: the runtime ends that peer's associations (drop_peer) before classify.
        let st = stanza("<presence type='unavailable' from='ied1@example.org/IEC'/>");
        assert_eq!(unavailable_peer(&st), Some("ied1@example.org/IEC"));
        assert!(
            classify(&st).is_none(),
            "presence never reaches the endpoint"
        );
        let st = stanza("<presence type='unavailable' from='ied1@example.org'/>");
        assert_eq!(unavailable_peer(&st), Some("ied1@example.org"));
        // Available presence, other types, no sender, other stanzas: nothing to drop.
        for raw in [
            "<presence from='ied1@example.org/IEC'/>",
            "<presence type='unsubscribed' from='ied1@example.org/IEC'/>",
            "<presence type='unavailable'/>",
            "<message type='normal' from='ied1@example.org/IEC' id='m1'/>",
        ] {
            assert_eq!(unavailable_peer(&stanza(raw)), None, "{raw}");
        }
    }
}
