//! MMS with E2E security over XMPP (IEC 62351-4 clause 16; IEC 61850-8-2 style), on one XMPP
//! connection per process side: the transport is `secmms-xmpp` (TLS per clause 6.4, SASL), the
//! stanza mapping and associations are `secmms_profiles::xmpp::XmppEndpoint`, the SecPDUs travel
//! in their XML encoding. The same MMS services and E2E modes as over OSI.
//!
//! * [`serve`]: answers associations from any JID with the server's MMS model.
//! * [`XmppConnection`]: a client connection from which any number of [`Client`]s associate
//!   with peers (several with the same peer at once, told apart by assoID, §16.5).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secmms_e2e::TimeStamp;
use secmms_mms::client::{self as mms_client, ClientProposal};
use secmms_mms::pdu::MmsPdu;
use secmms_mms::server::{InitiateOutcome, Vmd};
use secmms_mms::session::ClientSession;
use secmms_pki::event::SecurityEventSink;
use secmms_profiles::secure::Now;
use secmms_profiles::xmpp::{
    AssocKey, EndpointError, EndpointEvent, IqType, StanzaKind, XmppEndpoint,
};
use secmms_xmpp::stream::{Stanza, StanzaKind as XKind};
use secmms_xmpp::{XmppClient, XmppConfig, XmppSender};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::client::{Client, ClientError, Cmd, CmdTx, Pending, Refusal, RELEASE_TIMEOUT};
use crate::driver::{drive, LinkError, Machine, Port, Step, Transport};
use crate::security::{load_e2e_context, AppMode};

/// The sections MMS over XMPP runs with (clause 16): the XMPP connection, native-mode
/// credentials (`security`, with `tls` as the fallback for anchors and OCSP), what a server
/// serves and negotiates (`server`), what a client proposes (`client`), and the event outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XmppSettings {
    /// Server, JID, SASL, TLS anchors; required.
    pub xmpp: Option<XmppConfig>,
    /// Application security: native mode is required.
    pub security: crate::security::SecurityConfig,
    /// Fallback trust anchors and OCSP settings.
    pub tls: crate::tls::TlsConfig,
    /// The model served and the service limits negotiated.
    pub server: crate::server::ServerConfig,
    /// Timeouts and what the initiate proposes.
    pub client: crate::client::ClientConfig,
    /// Where security events go when no sink is given.
    pub events: crate::events::EventsConfig,
}

/// Errors of the XMPP environment.
#[derive(Debug, thiserror::Error)]
pub enum XmppEnvError {
    /// The `[xmpp]` section is missing, or the mode is not native.
    #[error("XMPP configuration: {0}")]
    Setting(#[from] crate::settings::SettingError),
    /// The `[events]` outputs could not be opened.
    #[error(transparent)]
    Events(#[from] crate::events::EventsError),
    /// The model file could not be loaded.
    #[error("cannot load the model: {0}")]
    Model(String),
    /// Native-mode credentials could not be loaded.
    #[error(transparent)]
    Security(#[from] crate::security::SecurityError),
    /// The XMPP connection failed.
    #[error("XMPP: {0}")]
    Xmpp(#[from] secmms_xmpp::XmppError),
}

/// The `[xmpp]` section of `cfg`, checked, with native mode required (clause 16 has no other
/// application security).
fn xmpp_config(cfg: &XmppSettings) -> Result<&XmppConfig, XmppEnvError> {
    use crate::settings::SettingError;
    let x = cfg
        .xmpp
        .as_ref()
        .ok_or_else(|| SettingError::new("xmpp", "no [xmpp] section (or --jid)"))?;
    if cfg.security.mode != AppMode::Native {
        return Err(SettingError::new(
            "security.mode",
            "the XMPP environment carries E2E security only: use --mode native",
        )
        .into());
    }
    x.validate()?;
    Ok(x)
}

fn endpoint(
    cfg: &XmppSettings,
    server: bool,
    sink: Arc<dyn SecurityEventSink>,
) -> Result<XmppEndpoint, XmppEnvError> {
    let ctx = load_e2e_context(&cfg.security, &cfg.tls)?;
    Ok(XmppEndpoint::new(ctx, server, sink))
}

/// The OCSP step of a server association (§6.2.8): `Some(event)` when the peer must be
/// refused with it; a soft-fail warning is recorded on `sink` and `None` returned.
async fn peer_ocsp(
    ocsp: Option<&crate::security::PeerOcsp>,
    cert: Option<Vec<u8>>,
    key: &AssocKey,
    sink: &dyn SecurityEventSink,
) -> Option<secmms_pki::event::SecurityEvent> {
    let out = ocsp?.outcome(&cert?).await?;
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

/// The server's XMPP link (reconnecting) as a [`Transport`]: its events in, stanzas out on
/// the current session. A stanza that cannot be sent (e.g. refused by the writer's limits) does
/// not end the server; a lost link shows up as [`secmms_xmpp::ClientEvent::Disconnected`].
struct ServerLink {
    conn: secmms_xmpp::ReconnectingClient,
    event: Option<secmms_xmpp::ClientEvent>,
}

impl Transport for ServerLink {
    type In<'a> = Option<secmms_xmpp::ClientEvent>;
    type Out = String;
    type Error = secmms_xmpp::XmppError;

    async fn ready(&mut self) -> Result<bool, secmms_xmpp::XmppError> {
        self.event = Some(self.conn.next_event().await?);
        Ok(true)
    }

    fn input(&mut self) -> Option<secmms_xmpp::ClientEvent> {
        self.event.take()
    }

    async fn send(
        &mut self,
        next: &mut (dyn FnMut() -> Option<String> + Send),
    ) -> Result<(), LinkError> {
        let tx = self.conn.sender();
        while let Some(stanza) = next() {
            if let Some(tx) = &tx {
                if let Err(e) = tx.send(&stanza).await {
                    warn!("XMPP send: {e}");
                }
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {}
}

/// A client's XMPP connection as a [`Transport`]: stanzas in and out; a send failure is
/// logged (the receiving half reports a lost link).
struct ClientLink {
    tx: XmppSender,
    rx: secmms_xmpp::XmppReceiver,
    stanza: Option<Stanza>,
}

impl Transport for ClientLink {
    type In<'a> = Option<Stanza>;
    type Out = String;
    type Error = secmms_xmpp::XmppError;

    async fn ready(&mut self) -> Result<bool, secmms_xmpp::XmppError> {
        self.stanza = Some(self.rx.recv().await?);
        Ok(true)
    }

    fn input(&mut self) -> Option<Stanza> {
        self.stanza.take()
    }

    async fn send(
        &mut self,
        next: &mut (dyn FnMut() -> Option<String> + Send),
    ) -> Result<(), LinkError> {
        while let Some(stanza) = next() {
            if let Err(e) = self.tx.send(&stanza).await {
                warn!("XMPP send: {e}");
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {}
}

/// Serves the MMS model of `mms` over XMPP until the connection ends: one E2E association per
/// HandshakeReq, from any JID whose certificate binds it (Annex G.6.3).
pub async fn serve(
    cfg: &XmppSettings,
    mms: Vmd,
    sink: Arc<dyn SecurityEventSink>,
) -> Result<(), XmppEnvError> {
    serve_ready(cfg, mms, sink, |_| {}).await
}

/// Like [`serve`]; `on_ready` is called with our full JID once the connection is bound.
pub async fn serve_ready(
    cfg: &XmppSettings,
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
        &cfg.security,
        &cfg.tls,
        Arc::new(crate::security::ReloadableValidator::load(
            anchors,
            &[],
            &[],
        )?),
    );
    let ep = endpoint(cfg, true, sink.clone())?;
    // The reconnection policy of `[xmpp.reconnect]`: a lost link ends every association
    // locally (§16.5) and the server comes back when the XMPP server does.
    let conn = secmms_xmpp::ReconnectingClient::connect(xc.clone()).await?;
    let jid = conn.jid().unwrap_or_default().to_string();
    info!("serving MMS over XMPP as {jid}");
    on_ready(&jid);
    let mut m = ServerEndpoint {
        ep,
        mms,
        ocsp: ocsp.map(Arc::new),
        sink,
        assocs: HashMap::new(),
        out: VecDeque::new(),
        pending: VecDeque::new(),
        connected: true,
        waiting: None,
        now: crate::driver::now(),
        result: None,
    };
    drive(&mut m, ServerLink { conn, event: None }, None).await;
    match m.result {
        Some(Err(e)) => Err(e.into()),
        _ => Ok(()),
    }
}

/// The XMPP server endpoint as a [`Machine`]: the stanza mapping and E2E associations of the
/// endpoint, an MMS server session per association, the OCSP step before each HandshakeAcc.
struct ServerEndpoint {
    ep: XmppEndpoint,
    mms: Vmd,
    ocsp: Option<Arc<crate::security::PeerOcsp>>,
    sink: Arc<dyn SecurityEventSink>,
    assocs: HashMap<AssocKey, secmms_mms::server::ServerSession>,
    out: VecDeque<String>,
    /// Endpoint events not yet acted on.
    pending: VecDeque<EndpointEvent>,
    /// The XMPP link is up (while it is down there is no association, hence no timer).
    connected: bool,
    /// The association whose OCSP answer is awaited, with its initiate request.
    waiting: Option<(AssocKey, Vec<u8>)>,
    /// The time of the last turn.
    now: Now,
    result: Option<Result<(), secmms_xmpp::XmppError>>,
}

impl ServerEndpoint {
    /// Queues what the endpoint produced; an association the engine ended while protecting
    /// still sends its abort.
    fn emit(&mut self, out: Result<Vec<String>, EndpointError>) {
        match out {
            Ok(o) => self.out.extend(o),
            Err(EndpointError::Aborted {
                key,
                reason,
                stanzas,
            }) => {
                warn!("XMPP association {key:?} aborted: {reason}");
                self.assocs.remove(&key);
                self.out.extend(stanzas);
            }
            Err(e) => warn!("XMPP association: {e}"),
        }
    }

    /// Answers the MMS initiate of an associate indication (after OCSP).
    fn accept(&mut self, key: AssocKey, initiate: &[u8], now: Now) {
        let out = match self.mms.accept_initiate(initiate) {
            InitiateOutcome::Accepted {
                response,
                association,
            } => {
                self.assocs.insert(key.clone(), association);
                self.ep.accept(&key, &response, now.wall)
            }
            InitiateOutcome::Refused { response, .. } => self.ep.reject(&key, &response, now.wall),
            InitiateOutcome::Invalid(e) => {
                debug!("invalid initiate over XMPP: {e}");
                self.ep.abort(&key, now.wall)
            }
        };
        self.emit(out);
    }

    fn take(&mut self, (out, events): (Vec<String>, Vec<EndpointEvent>)) {
        self.out.extend(out);
        self.pending.extend(events);
    }
}

impl Machine<ServerLink> for ServerEndpoint {
    type Cmd = ();
    type Effect = Option<secmms_pki::event::SecurityEvent>;

    fn handle_input(&mut self, _: Port, event: Option<secmms_xmpp::ClientEvent>, now: Now) {
        self.now = now;
        let st = match event {
            Some(secmms_xmpp::ClientEvent::Stanza(st)) => st,
            Some(secmms_xmpp::ClientEvent::Disconnected(e)) => {
                warn!("XMPP link lost ({e}); every association ends, reconnecting");
                self.ep.drop_peer(None);
                self.assocs.clear();
                self.pending.clear();
                self.waiting = None;
                self.connected = false;
                return;
            }
            Some(secmms_xmpp::ClientEvent::Reconnected { jid }) => {
                info!("XMPP link back as {jid}");
                self.connected = true;
                return;
            }
            None => return,
        };
        if !self.connected {
            return;
        }
        if let Some(peer) = unavailable_peer(&st) {
            // Like a lost link, for that peer only: no stanza to send.
            for ev in self.ep.drop_peer(Some(peer)) {
                if let EndpointEvent::Aborted { key, .. } = ev {
                    debug!("XMPP association {key:?} ended: {peer} unavailable");
                    self.assocs.remove(&key);
                }
            }
            return;
        }
        let Some((kind, env)) = classify(&st) else {
            return;
        };
        let from = st.from.clone().unwrap_or_default();
        let r = self.ep.handle(
            kind,
            st.id.as_deref().unwrap_or(""),
            &from,
            env.as_deref(),
            now.wall,
        );
        self.take(r);
    }

    fn transport_closed(&mut self, _: Port, error: Option<secmms_xmpp::XmppError>, _: Now) {
        self.result
            .get_or_insert(error.map_or(Err(secmms_xmpp::XmppError::Closed), Err));
    }

    fn write_failed(&mut self, _: Port, _: LinkError, _: Now) {}

    fn handle_timeout(&mut self, now: Now) {
        // Native mode: the E2E timers run between stanzas, as over OSI.
        self.now = now;
        let r = self.ep.handle_timeout(now.wall);
        self.take(r);
    }

    fn process(&mut self, now: Now) -> Step<Self::Effect, ServerLink> {
        self.now = now;
        if self.result.is_some() {
            return Step::Done;
        }
        if self.waiting.is_some() {
            return Step::Idle;
        }
        while let Some(ev) = self.pending.pop_front() {
            let out = match ev {
                EndpointEvent::AssociateIndication { key, initiate } => {
                    // §6.2.8: OCSP for the peer's application certificate before the
                    // HandshakeAcc goes out, as over OSI.
                    let cert = self.ep.peer_certificate(&key);
                    if let (Some(ocsp), Some(cert)) = (self.ocsp.clone(), cert) {
                        let sink = self.sink.clone();
                        let k = key.clone();
                        self.waiting = Some((key, initiate));
                        return Step::Effect(Box::pin(async move {
                            peer_ocsp(Some(&ocsp), Some(cert), &k, sink.as_ref()).await
                        }));
                    }
                    self.accept(key, &initiate, now);
                    continue;
                }
                EndpointEvent::Data { key, pdu } => match self.assocs.get(&key) {
                    Some(a) => match a.handle_pdu(&pdu) {
                        Some(resp) => self.ep.send(&key, &resp, now.wall),
                        None => Ok(Vec::new()),
                    },
                    None => Ok(Vec::new()),
                },
                EndpointEvent::ReleaseIndication { key, conclude } => {
                    let concluded = self.assocs.remove(&key).is_some_and(|a| a.is_concluded());
                    let answer = secmms_mms::server::release_answer(concluded, conclude.as_deref());
                    self.ep.release_response(&key, answer.as_deref(), now.wall)
                }
                EndpointEvent::Released { key } => {
                    self.assocs.remove(&key);
                    Ok(Vec::new())
                }
                EndpointEvent::Aborted { key, reason } => {
                    debug!("XMPP association {key:?} aborted: {reason}");
                    self.assocs.remove(&key);
                    Ok(Vec::new())
                }
                EndpointEvent::Established { .. } | EndpointEvent::Rejected { .. } => {
                    Ok(Vec::new())
                }
            };
            self.emit(out);
        }
        Step::Idle
    }

    fn complete(&mut self, refusal: Self::Effect, now: Now) {
        self.now = now;
        let Some((key, initiate)) = self.waiting.take() else {
            return;
        };
        match refusal {
            Some(event) => {
                let diag = secmms_e2e::HandshakeDiagnostic::InvalidPublicKeyCertificate;
                let out = self.ep.security_reject(&key, diag, event, now.wall);
                if let Ok(o) = out {
                    self.out.extend(o);
                }
            }
            None => self.accept(key, &initiate, now),
        }
    }

    fn poll_transmit(&mut self, _: Port) -> Option<String> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        if !self.connected {
            return None;
        }
        self.ep.next_timeout().map(|t| self.now.instant_of(t))
    }
}

/// Serves the model `cfg.server.model` names (or the built-in demo model) over XMPP, reporting
/// security events where `[events]` says.
pub async fn serve_config(
    cfg: &XmppSettings,
    on_ready: impl FnOnce(&str),
) -> Result<(), XmppEnvError> {
    let sink = cfg.events.build()?;
    let model = match &cfg.server.model {
        Some(p) => crate::server::load_model(p).map_err(|e| XmppEnvError::Model(e.to_string()))?,
        None => secmms_mms::model::Model::default_demo(),
    };
    let mms = Vmd::new(
        secmms_mms::model::SharedModel::new(model),
        crate::server::server_options(&cfg.server),
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
    cfg: XmppSettings,
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
        cfg: &XmppSettings,
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

/// The client side of an XMPP connection as a [`Machine`]: the endpoint, and per association
/// the MMS client session and what its [`Client`] handles wait for.
struct ClientEndpoint {
    ep: XmppEndpoint,
    assocs: HashMap<AssocKey, ClientAssoc>,
    crx: mpsc::Receiver<ConnCmd>,
    /// Tells whether any handle is left (the task keeps no strong sender).
    ctx: mpsc::WeakSender<ConnCmd>,
    out: VecDeque<String>,
    /// The time of the last turn.
    now: Now,
    result: Option<Result<(), secmms_xmpp::XmppError>>,
}

impl Machine<ClientLink> for ClientEndpoint {
    type Cmd = ConnCmd;
    type Effect = ();

    fn handle_input(&mut self, _: Port, st: Option<Stanza>, now: Now) {
        let Some(st) = st else { return };
        if let Some(peer) = unavailable_peer(&st) {
            // §16.5: that peer's associations end locally, as on link loss.
            for ev in self.ep.drop_peer(Some(peer)) {
                let o = on_event(ev, &mut self.ep, &mut self.assocs, &self.ctx, now.wall);
                self.out.extend(o);
            }
            return;
        }
        let Some((kind, env)) = classify(&st) else {
            return;
        };
        let from = st.from.clone().unwrap_or_default();
        let (out, events) = self.ep.handle(
            kind,
            st.id.as_deref().unwrap_or(""),
            &from,
            env.as_deref(),
            now.wall,
        );
        self.out.extend(out);
        for ev in events {
            let o = on_event(ev, &mut self.ep, &mut self.assocs, &self.ctx, now.wall);
            self.out.extend(o);
        }
    }

    fn transport_closed(&mut self, _: Port, error: Option<secmms_xmpp::XmppError>, _: Now) {
        self.result
            .get_or_insert(error.map_or(Err(secmms_xmpp::XmppError::Closed), Err));
    }

    fn write_failed(&mut self, _: Port, _: LinkError, _: Now) {}

    fn commands(&mut self) -> Option<&mut mpsc::Receiver<ConnCmd>> {
        Some(&mut self.crx)
    }

    fn handle_cmd(&mut self, cmd: Option<ConnCmd>, now: Now) -> bool {
        match cmd {
            Some(cmd) => {
                let o = on_cmd(cmd, &mut self.ep, &mut self.assocs, now.wall);
                self.out.extend(o);
                true
            }
            None => {
                // Every handle is gone.
                self.result.get_or_insert(Ok(()));
                false
            }
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        // Native mode: the E2E timers (rekey timeout: DtSecAbort, association ends).
        let (out, events) = self.ep.handle_timeout(now.wall);
        self.out.extend(out);
        for ev in events {
            let o = on_event(ev, &mut self.ep, &mut self.assocs, &self.ctx, now.wall);
            self.out.extend(o);
        }
    }

    fn process(&mut self, now: Now) -> Step<(), ClientLink> {
        self.now = now;
        if self.result.is_some() {
            return Step::Done;
        }
        Step::Idle
    }

    fn poll_transmit(&mut self, _: Port) -> Option<String> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<std::time::Instant> {
        let t = self.ep.next_timeout()?;
        Some(self.now.instant_of(t))
    }
}

async fn run_connection(
    conn: XmppClient,
    ep: XmppEndpoint,
    crx: mpsc::Receiver<ConnCmd>,
    ctx: mpsc::WeakSender<ConnCmd>,
) {
    let (tx, rx) = conn.split();
    let mut m = ClientEndpoint {
        ep,
        assocs: HashMap::new(),
        crx,
        ctx,
        out: VecDeque::new(),
        now: crate::driver::now(),
        result: None,
    };
    let link = ClientLink {
        tx,
        rx,
        stanza: None,
    };
    drive(&mut m, link, None).await;
    if let Some(Err(e)) = m.result {
        warn!("XMPP connection ended: {e}");
    }
    for (_, a) in m.assocs.drain() {
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
    now: TimeStamp,
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
                return ep.abort(&key, now).unwrap_or_default();
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
                return ep.abort(&key, now).unwrap_or_default();
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
                .release_response(&key, Some(&MmsPdu::ConcludeResponse.encode()), now)
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
    now: TimeStamp,
) -> Vec<String> {
    match cmd {
        ConnCmd::Associate {
            peer,
            proposal,
            reply,
        } => {
            let session = ClientSession::new(proposal);
            match ep.associate(&peer, &session.initiate_request(), now) {
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
                    let _ = p
                        .reply
                        .send(Err(crate::client::UsageError::Session(e).into()));
                    return Vec::new();
                }
            };
            match ep.send(&key, &pdu, now) {
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
            match ep.release(&key, Some(&MmsPdu::ConcludeRequest.encode()), now) {
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
        ConnCmd::Assoc(_, Cmd::Loop { run, .. }) => {
            // Client::run_loop refuses before sending this; answer anyway rather than drop it.
            run.finish(Err(crate::client::UsageError::NoLoop.into()));
            Vec::new()
        }
        ConnCmd::Assoc(_, Cmd::Rekey { reply }) => {
            // The XMPP endpoint refreshes keys on its interval only.
            let _ = reply.send(false);
            Vec::new()
        }
        ConnCmd::Assoc(key, Cmd::Abort) => {
            let out = ep.abort(&key, now).unwrap_or_default();
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
