//! The XMPP client (tokio): connection, stream negotiation, and then raw stanzas both ways.
//!
//! [`XmppClient::connect`] runs, each step under [`XmppConfig::step_timeout_secs`]:
//!
//! 1. TCP connect (under [`XmppConfig::connect_timeout_secs`]) and the stream header
//!    (RFC 6120 §4.7);
//! 2. STARTTLS (§5) — required unless `require_tls = false`; octets that follow `<proceed/>`
//!    before the handshake are refused as an injection; then the TLS handshake of
//!    IEC 62351-4 §6.4 with the server certificate checked against the configured anchors and
//!    the XMPP domain;
//! 3. SASL PLAIN or EXTERNAL (§6), with the server's `<failure/>` condition reported in
//!    [`XmppError::SaslFailed`];
//! 4. resource binding (§7) with the configured resource (`IEC`, §16.6), legacy session
//!    establishment when a server requires it, and initial presence.
//!
//! Then a reader task turns the stream into [`Stanza`]s (exact received text), answers XEP-0199
//! pings, and drops whitespace keep-alives; a keep-alive task pings the server after
//! [`XmppConfig::keepalive_secs`] of silence and declares the link dead when nothing comes back
//! within [`XmppConfig::ping_timeout_secs`]. [`XmppSender::send`] checks that what it is given is
//! exactly one well-formed stanza before writing it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::config::{SaslMechanism, XmppConfig};
use crate::error::XmppError;
use crate::limits;
use crate::ns;
use crate::stream::write;
use crate::stream::{
    check_outgoing, Element, Node, Stanza, StanzaKind, StreamEvent, StreamLimits, StreamReader,
};
use crate::tls::{self, TlsInfo};

/// Prefix of the ids of our keep-alive pings; their answers are not passed on.
const PING_ID_PREFIX: &str = "secmms-ka-";
/// Id of the binding request.
const BIND_ID: &str = "secmms-bind";
/// Id of the legacy session request.
const SESSION_ID: &str = "secmms-session";

/// A bidirectional byte stream (TCP or TLS over TCP).
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}
type BoxIo = Box<dyn Io>;

/// The stream during negotiation: socket, reader and the per-step timeout.
struct Negotiator<S> {
    io: S,
    reader: StreamReader,
    buf: Vec<u8>,
    step: Duration,
}

fn stream_error(e: &Element) -> XmppError {
    let (condition, text) = match e.tree() {
        Ok(t) => {
            let cond = t
                .children
                .iter()
                .find(|c| c.namespace == ns::STREAM_ERRORS && c.name != "text")
                .map(|c| c.name.clone())
                .unwrap_or_else(|| "undefined-condition".into());
            let text = t.child("text", ns::STREAM_ERRORS).map(|n| n.text.clone());
            (cond, text)
        }
        Err(_) => ("undefined-condition".into(), None),
    };
    XmppError::StreamErrorReceived { condition, text }
}

/// The defined condition and text of a SASL `<failure/>` or a stanza `<error/>` element.
fn failure_condition(n: &Node, namespace: &str) -> (String, Option<String>) {
    let cond = n
        .children
        .iter()
        .find(|c| c.namespace == namespace && c.name != "text")
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "undefined-condition".into());
    let text = n.child("text", namespace).map(|t| t.text.clone());
    (cond, text)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Negotiator<S> {
    fn new(io: S, limits: StreamLimits, step: Duration) -> Self {
        Negotiator {
            io,
            reader: StreamReader::new(limits),
            buf: vec![0u8; limits::READ_CHUNK],
            step,
        }
    }

    async fn write(&mut self, s: &str, step: &'static str) -> Result<(), XmppError> {
        let io = &mut self.io;
        let fut = async {
            io.write_all(s.as_bytes()).await?;
            io.flush().await
        };
        match tokio::time::timeout(self.step, fut).await {
            Err(_) => Err(XmppError::Timeout { step }),
            Ok(r) => Ok(r?),
        }
    }

    async fn next(&mut self, step: &'static str) -> Result<StreamEvent, XmppError> {
        let deadline = Instant::now() + self.step;
        loop {
            if let Some(ev) = self.reader.next_event() {
                return Ok(ev);
            }
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut self.buf)).await {
                Err(_) => return Err(XmppError::Timeout { step }),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(XmppError::ConnectionClosed { step });
            }
            self.reader.feed(&self.buf[..n])?;
        }
    }

    async fn next_element(&mut self, step: &'static str) -> Result<Element, XmppError> {
        match self.next(step).await? {
            StreamEvent::Element(e) if e.is("error", ns::STREAMS) => Err(stream_error(&e)),
            StreamEvent::Element(e) => Ok(e),
            StreamEvent::End => Err(XmppError::StreamClosed),
            StreamEvent::Header(_) => Err(XmppError::Unexpected {
                step,
                got: "second stream header".into(),
            }),
        }
    }

    /// Opens a (new) stream and returns the server's features.
    async fn open_stream(&mut self, domain: &str, from: Option<&str>) -> Result<Node, XmppError> {
        self.reader.reset();
        let header = write::stream_header(domain, from, "en")?;
        self.write(&header, "stream header").await?;
        match self.next("stream header").await? {
            StreamEvent::Header(h) => {
                if h.default_ns.as_deref() != Some(ns::CLIENT) {
                    return Err(XmppError::BadStreamHeader(format!(
                        "default namespace {:?}, expected {}",
                        h.default_ns,
                        ns::CLIENT
                    )));
                }
                if !h.version.as_deref().is_some_and(|v| v.starts_with("1.")) {
                    return Err(XmppError::BadStreamHeader(format!(
                        "version {:?}, expected 1.x",
                        h.version
                    )));
                }
                if let Some(f) = &h.from {
                    if !f.eq_ignore_ascii_case(domain) {
                        return Err(XmppError::BadStreamHeader(format!(
                            "from {f:?}, expected {domain:?}"
                        )));
                    }
                }
            }
            StreamEvent::Element(e) if e.is("error", ns::STREAMS) => return Err(stream_error(&e)),
            StreamEvent::Element(e) => {
                return Err(XmppError::Unexpected {
                    step: "stream header",
                    got: e.name,
                })
            }
            StreamEvent::End => return Err(XmppError::StreamClosed),
        }
        let e = self.next_element("stream features").await?;
        if !e.is("features", ns::STREAMS) {
            return Err(XmppError::Unexpected {
                step: "stream features",
                got: e.name,
            });
        }
        Ok(e.tree()?)
    }

    /// The same negotiation state over a transformed socket.
    fn map_io<T>(self, f: impl FnOnce(S) -> T) -> Negotiator<T> {
        Negotiator {
            io: f(self.io),
            reader: self.reader,
            buf: self.buf,
            step: self.step,
        }
    }

    /// Whether anything is left over in the reader (nothing may follow `<proceed/>` or
    /// `<success/>` before the stream restarts).
    fn leftover(&self) -> bool {
        self.reader.has_events() || self.reader.partial_len() != 0
    }
}

/// Opens the first stream and upgrades it to TLS. Returns the negotiator to continue on and,
/// for a plain stream (only when `require_tls = false`), the features already received.
async fn starttls(
    mut neg: Negotiator<TcpStream>,
    cfg: &XmppConfig,
    connector: &openssl::ssl::SslConnector,
    domain: &str,
) -> Result<(Negotiator<BoxIo>, Option<TlsInfo>, Option<Node>), XmppError> {
    let features = neg.open_stream(domain, None).await?;
    if features.child("starttls", ns::TLS).is_none() {
        if cfg.require_tls {
            return Err(XmppError::TlsNotOffered);
        }
        tracing::warn!(server = %cfg.server, "XMPP stream continues without TLS (require_tls = false)");
        return Ok((neg.map_io(|s| Box::new(s) as BoxIo), None, Some(features)));
    }
    neg.write(write::STARTTLS, "STARTTLS").await?;
    let e = neg.next_element("STARTTLS").await?;
    if e.is("failure", ns::TLS) {
        return Err(XmppError::StartTlsRefused);
    }
    if !e.is("proceed", ns::TLS) {
        return Err(XmppError::Unexpected {
            step: "STARTTLS",
            got: e.name,
        });
    }
    if neg.leftover() {
        return Err(XmppError::StartTlsInjection);
    }
    let step = neg.step;
    let (tls, info) = tls::handshake(connector, domain, neg.io, step).await?;
    tracing::debug!(version = %info.version, cipher = %info.cipher, "XMPP TLS established");
    let neg = Negotiator::new(Box::new(tls) as BoxIo, cfg.stream_limits(), step);
    Ok((neg, Some(info), None))
}

async fn authenticate(
    neg: &mut Negotiator<BoxIo>,
    cfg: &XmppConfig,
    features: &Node,
) -> Result<(), XmppError> {
    let mech = cfg.sasl;
    let offered: Vec<String> = features
        .child("mechanisms", ns::SASL)
        .map(|m| {
            m.children
                .iter()
                .filter(|c| c.is("mechanism", ns::SASL))
                .map(|c| c.text.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if !offered.iter().any(|m| m == mech.name()) {
        return Err(XmppError::MechanismNotOffered {
            mechanism: mech.name(),
            offered,
        });
    }
    let auth = match mech {
        SaslMechanism::Plain => {
            // RFC 4616: [authzid] NUL authcid NUL passwd, with an empty authzid.
            let password = cfg.load_password()?;
            let mut msg = Zeroizing::new(Vec::with_capacity(password.len() + 64));
            msg.push(0);
            msg.extend_from_slice(cfg.username()?.as_bytes());
            msg.push(0);
            msg.extend_from_slice(password.as_bytes());
            Zeroizing::new(write::sasl_auth(mech.name(), &msg)?)
        }
        // RFC 6120 §6.4.2 / RFC 4422 EXTERNAL: an empty authorization identity, so that the
        // server derives the account from the certificate.
        SaslMechanism::External => Zeroizing::new(write::sasl_auth(mech.name(), b"")?),
    };
    neg.write(&auth, "SASL").await?;
    let e = neg.next_element("SASL").await?;
    if e.is("success", ns::SASL) {
        if neg.leftover() {
            return Err(XmppError::Unexpected {
                step: "SASL",
                got: "data after <success/>".into(),
            });
        }
        return Ok(());
    }
    if e.is("failure", ns::SASL) {
        let (condition, text) = failure_condition(&e.tree()?, ns::SASL);
        return Err(XmppError::SaslFailed { condition, text });
    }
    Err(XmppError::Unexpected {
        step: "SASL",
        got: e.name,
    })
}

/// Sends an `iq type="set"` during negotiation and waits for its answer.
async fn negotiation_iq(
    neg: &mut Negotiator<BoxIo>,
    request: &str,
    id: &str,
    step: &'static str,
) -> Result<Stanza, XmppError> {
    neg.write(request, step).await?;
    loop {
        let e = neg.next_element(step).await?;
        match Stanza::from_element(e) {
            Ok(s) if s.kind == StanzaKind::Iq && s.id.as_deref() == Some(id) => return Ok(s),
            Ok(other) => {
                tracing::debug!(kind = ?other.kind, "stanza ignored during {step}");
            }
            Err(e) => {
                return Err(XmppError::Unexpected { step, got: e.name });
            }
        }
    }
}

async fn bind(
    neg: &mut Negotiator<BoxIo>,
    cfg: &XmppConfig,
    features: &Node,
) -> Result<String, XmppError> {
    if features.child("bind", ns::BIND).is_none() {
        return Err(XmppError::Unexpected {
            step: "resource binding",
            got: "features without <bind/>".into(),
        });
    }
    let req = write::bind(BIND_ID, &cfg.resource)?;
    let answer = negotiation_iq(neg, &req, BIND_ID, "resource binding").await?;
    let tree = answer.tree()?;
    if answer.type_.as_deref() != Some("result") {
        let condition = tree
            .child("error", ns::CLIENT)
            .map(|e| failure_condition(e, ns::STANZAS).0)
            .unwrap_or_else(|| "undefined-condition".into());
        return Err(XmppError::BindFailed { condition });
    }
    let jid = tree
        .child("bind", ns::BIND)
        .and_then(|b| b.child("jid", ns::BIND))
        .map(|j| j.text.trim().to_owned())
        .filter(|j| !j.is_empty())
        .ok_or_else(|| XmppError::Unexpected {
            step: "resource binding",
            got: "result without <jid/>".into(),
        })?;
    // Legacy session (RFC 3921 §3): only when the server does not mark it optional.
    if let Some(s) = features.child("session", ns::SESSION) {
        if s.child("optional", ns::SESSION).is_none() {
            let req = write::session(SESSION_ID)?;
            let answer = negotiation_iq(neg, &req, SESSION_ID, "session").await?;
            if answer.type_.as_deref() != Some("result") {
                return Err(XmppError::BindFailed {
                    condition: "session refused".into(),
                });
            }
        }
    }
    Ok(jid)
}

/// State shared by the sender, the reader task and the keep-alive task.
struct LinkState {
    writer: Mutex<WriteHalf<BoxIo>>,
    /// Nothing more may be written.
    closed: AtomicBool,
    /// The one terminal error has been handed to the receiver.
    reported: AtomicBool,
    /// The reader is waiting for the application to take a stanza (back-pressure); silence on
    /// the link is then ours, not the server's.
    delivering: AtomicBool,
    /// Set when a write fails, so that the reader stops at once.
    shutdown: watch::Sender<bool>,
    /// Milliseconds since `epoch` of the last octet received.
    last_rx: AtomicU64,
    epoch: Instant,
    step: Duration,
    limits: StreamLimits,
}

impl LinkState {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_rx.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_rx.load(Ordering::Relaxed)))
    }

    async fn write(&self, s: &str, step: &'static str) -> Result<(), XmppError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(XmppError::Closed);
        }
        let mut w = self.writer.lock().await;
        let fut = async {
            w.write_all(s.as_bytes()).await?;
            w.flush().await
        };
        let r = match tokio::time::timeout(self.step, fut).await {
            Err(_) => Err(XmppError::Timeout { step }),
            Ok(r) => r.map_err(XmppError::Io),
        };
        if r.is_err() {
            // A stream with a partial write is unusable: end the link.
            self.closed.store(true, Ordering::Release);
            self.shutdown.send_replace(true);
        }
        r
    }

    /// Passes a stanza to the application, waiting while its queue is full.
    async fn deliver(
        &self,
        tx: &mpsc::Sender<Result<Stanza, XmppError>>,
        s: Stanza,
    ) -> Result<(), ()> {
        self.delivering.store(true, Ordering::Release);
        let r = tx.send(Ok(s)).await.map_err(|_| ());
        self.delivering.store(false, Ordering::Release);
        self.touch();
        r
    }

    /// Hands the terminal error of the link to the receiver, unless one was already handed over
    /// (the reader and the keep-alive task may both find the link dead).
    async fn report(&self, tx: &mpsc::Sender<Result<Stanza, XmppError>>, e: XmppError) {
        self.closed.store(true, Ordering::Release);
        if !self.reported.swap(true, Ordering::AcqRel) {
            let _ = tx.send(Err(e)).await;
        }
    }
}

/// Aborts the background tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Sending half of a connected client; clones share the connection.
#[derive(Clone)]
pub struct XmppSender {
    shared: Arc<LinkState>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for XmppSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppSender")
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl XmppSender {
    /// Sends one stanza exactly as given. It must be one well-formed `iq`, `message` or
    /// `presence` element within the size limit ([`crate::stream::check_outgoing`]); nothing
    /// else is ever written, so a caller cannot close or corrupt the stream.
    pub async fn send(&self, raw_stanza: &str) -> Result<(), XmppError> {
        check_outgoing(raw_stanza, &self.shared.limits).map_err(XmppError::BadStanza)?;
        self.shared.write(raw_stanza, "send").await
    }

    /// Whether the link is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Closes our stream (`</stream:stream>`, RFC 6120 §4.4). The receiver then sees the server
    /// close its stream.
    pub async fn close_stream(&self) -> Result<(), XmppError> {
        let r = self.shared.write(write::STREAM_CLOSE, "close").await;
        self.shared.closed.store(true, Ordering::Release);
        r
    }
}

/// Receiving half of a connected client.
pub struct XmppReceiver {
    rx: mpsc::Receiver<Result<Stanza, XmppError>>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for XmppReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppReceiver").finish_non_exhaustive()
    }
}

impl XmppReceiver {
    /// The next stanza. The first error ends the link and says why (stream error, closed
    /// connection, malformed XML, keep-alive timeout); after it, [`XmppError::Closed`].
    pub async fn recv(&mut self) -> Result<Stanza, XmppError> {
        match self.rx.recv().await {
            Some(r) => r,
            None => Err(XmppError::Closed),
        }
    }
}

/// A connected, authenticated and bound XMPP client.
#[derive(Debug)]
pub struct XmppClient {
    jid: String,
    tls: Option<TlsInfo>,
    sender: XmppSender,
    receiver: XmppReceiver,
}

impl XmppClient {
    /// Connects and negotiates the stream (see the [module documentation](self)).
    pub async fn connect(cfg: &XmppConfig) -> Result<XmppClient, XmppError> {
        cfg.validate()?;
        let domain = cfg.domain()?.to_owned();
        let bare = cfg.jid.clone();
        // Trust anchors and our certificate are loaded before any network traffic, so that a
        // configuration error shows as such (and is not retried).
        let connector = tls::connector(cfg)?;
        let tcp = match tokio::time::timeout(
            cfg.connect_timeout(),
            TcpStream::connect(cfg.server.as_str()),
        )
        .await
        {
            Err(_) => {
                return Err(XmppError::Timeout {
                    step: "TCP connect",
                })
            }
            Ok(Err(source)) => {
                return Err(XmppError::Connect {
                    server: cfg.server.clone(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let neg = Negotiator::new(tcp, cfg.stream_limits(), cfg.step_timeout());
        let (mut neg, tls, plain_features) = starttls(neg, cfg, &connector, &domain).await?;
        let features = match plain_features {
            Some(f) => f,
            None => neg.open_stream(&domain, Some(&bare)).await?,
        };
        authenticate(&mut neg, cfg, &features).await?;
        let features = neg.open_stream(&domain, Some(&bare)).await?;
        let jid = bind(&mut neg, cfg, &features).await?;
        if cfg.initial_presence {
            neg.write(write::INITIAL_PRESENCE, "initial presence")
                .await?;
        }
        tracing::info!(%jid, tls = ?tls, "XMPP session established");
        Ok(Self::start(neg, cfg, &domain, jid, tls))
    }

    fn start(
        neg: Negotiator<BoxIo>,
        cfg: &XmppConfig,
        domain: &str,
        jid: String,
        tls: Option<TlsInfo>,
    ) -> XmppClient {
        let Negotiator {
            io,
            reader,
            buf,
            step,
        } = neg;
        let (rd, wr) = tokio::io::split(io);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(LinkState {
            writer: Mutex::new(wr),
            closed: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            delivering: AtomicBool::new(false),
            shutdown,
            last_rx: AtomicU64::new(0),
            epoch: Instant::now(),
            step,
            limits: cfg.stream_limits(),
        });
        let (tx, rx) = mpsc::channel(limits::INCOMING_QUEUE);
        let mut handles = Vec::new();
        let reader_task = tokio::spawn(read_loop(
            rd,
            reader,
            buf,
            tx.clone(),
            shared.clone(),
            shutdown_rx,
        ));
        if cfg.keepalive_secs > 0 {
            handles.push(tokio::spawn(keepalive_loop(
                shared.clone(),
                tx,
                domain.to_owned(),
                Duration::from_secs(cfg.keepalive_secs),
                Duration::from_secs(cfg.ping_timeout_secs),
                reader_task.abort_handle(),
            )));
        }
        handles.push(reader_task);
        let tasks = Arc::new(Tasks(handles));
        XmppClient {
            jid,
            tls,
            sender: XmppSender {
                shared,
                _tasks: tasks.clone(),
            },
            receiver: XmppReceiver { rx, _tasks: tasks },
        }
    }

    /// Our full JID as bound by the server (it may differ from the requested resource if the
    /// server chose another one; IEC 61850-8-2 deployments expect `…/IEC`).
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The negotiated TLS version and suite; `None` on a plain stream.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Sends one raw stanza (see [`XmppSender::send`]).
    pub async fn send(&self, raw_stanza: &str) -> Result<(), XmppError> {
        self.sender.send(raw_stanza).await
    }

    /// The next received stanza (see [`XmppReceiver::recv`]).
    pub async fn recv(&mut self) -> Result<Stanza, XmppError> {
        self.receiver.recv().await
    }

    /// A sender handle that can be cloned and used from other tasks.
    pub fn sender(&self) -> XmppSender {
        self.sender.clone()
    }

    /// Splits the client into its halves.
    pub fn split(self) -> (XmppSender, XmppReceiver) {
        (self.sender, self.receiver)
    }

    /// Closes the stream politely: `</stream:stream>`, then waits (bounded by the step timeout)
    /// for the server to close its side. Stanzas still arriving are discarded.
    pub async fn close(mut self) -> Result<(), XmppError> {
        let step = self.sender.shared.step;
        self.sender.close_stream().await?;
        let _ =
            tokio::time::timeout(step, async { while self.receiver.recv().await.is_ok() {} }).await;
        let mut w = self.sender.shared.writer.lock().await;
        let _ = tokio::time::timeout(step, w.shutdown()).await;
        Ok(())
    }
}

/// Whether a stanza is an XEP-0199 ping request (`<iq type="get"><ping xmlns="urn:xmpp:ping"/>`).
fn is_ping_request(s: &Stanza) -> bool {
    s.kind == StanzaKind::Iq
        && s.type_.as_deref() == Some("get")
        && s.raw.contains(ns::PING)
        && s.children().is_ok_and(
            |c| matches!(c.as_slice(), [p] if p.name == "ping" && p.namespace == ns::PING),
        )
}

/// What the reader does with one event: pass a stanza on, skip it, or end the link.
enum Handled {
    Deliver(Stanza),
    Skip,
    End(XmppError),
}

async fn handle_event(ev: StreamEvent, shared: &LinkState) -> Handled {
    let s = match ev {
        StreamEvent::Element(e) if e.is("error", ns::STREAMS) => {
            return Handled::End(stream_error(&e))
        }
        StreamEvent::Element(e) => match Stanza::from_element(e) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(name = %e.name, ns = %e.namespace, "non-stanza element ignored");
                return Handled::Skip;
            }
        },
        StreamEvent::End => {
            // Answer the server's close with ours (RFC 6120 §4.4), best effort.
            let _ = shared.write(write::STREAM_CLOSE, "close").await;
            return Handled::End(XmppError::StreamClosed);
        }
        StreamEvent::Header(_) => {
            return Handled::End(XmppError::Unexpected {
                step: "reading stanzas",
                got: "second stream header".into(),
            })
        }
    };
    // Answers to our keep-alive pings.
    if s.kind == StanzaKind::Iq
        && s.id
            .as_deref()
            .is_some_and(|i| i.starts_with(PING_ID_PREFIX))
        && matches!(s.type_.as_deref(), Some("result" | "error"))
    {
        return Handled::Skip;
    }
    // XEP-0199 pings from the server or a peer are answered here.
    if is_ping_request(&s) {
        if let Some(id) = &s.id {
            if let Ok(pong) = write::iq(write::IqType::Result, id, s.from.as_deref(), "") {
                let _ = shared.write(&pong, "ping answer").await;
            }
        }
        return Handled::Skip;
    }
    Handled::Deliver(s)
}

async fn read_loop(
    mut rd: ReadHalf<BoxIo>,
    mut reader: StreamReader,
    mut buf: Vec<u8>,
    tx: mpsc::Sender<Result<Stanza, XmppError>>,
    shared: Arc<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    shared.touch();
    loop {
        // Events completed before a reader error are still delivered, then the error.
        while let Some(ev) = reader.next_event() {
            match handle_event(ev, &shared).await {
                Handled::Deliver(s) => {
                    if shared.deliver(&tx, s).await.is_err() {
                        return;
                    }
                }
                Handled::Skip => {}
                Handled::End(e) => return shared.report(&tx, e).await,
            }
        }
        let read = tokio::select! {
            r = rd.read(&mut buf) => r,
            // The flag only ever goes from false to true.
            _ = shutdown.changed() => {
                return shared
                    .report(&tx, XmppError::ConnectionClosed { step: "sending" })
                    .await;
            }
        };
        let n = match read {
            Ok(0) => {
                return shared
                    .report(
                        &tx,
                        XmppError::ConnectionClosed {
                            step: "reading stanzas",
                        },
                    )
                    .await
            }
            Ok(n) => n,
            Err(e) => return shared.report(&tx, XmppError::Io(e)).await,
        };
        shared.touch();
        if let Err(e) = reader.feed(&buf[..n]) {
            while let Some(ev) = reader.next_event() {
                if let Handled::Deliver(s) = handle_event(ev, &shared).await {
                    if shared.deliver(&tx, s).await.is_err() {
                        return;
                    }
                }
            }
            return shared.report(&tx, XmppError::Stream(e)).await;
        }
    }
}

async fn keepalive_loop(
    shared: Arc<LinkState>,
    tx: mpsc::Sender<Result<Stanza, XmppError>>,
    domain: String,
    interval: Duration,
    ping_timeout: Duration,
    reader: tokio::task::AbortHandle,
) {
    let tick =
        (interval.min(ping_timeout) / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let mut seq: u64 = 0;
    let mut last_ping: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        if shared.delivering.load(Ordering::Acquire) {
            // The application is behind; the reader is not reading, so silence proves nothing.
            continue;
        }
        let idle = shared.idle();
        let dead = if idle >= interval + ping_timeout {
            true
        } else if idle >= interval && last_ping.map_or(true, |t| t.elapsed() >= interval) {
            seq += 1;
            last_ping = Some(Instant::now());
            match write::ping(&format!("{PING_ID_PREFIX}{seq}"), &domain) {
                Ok(p) => shared.write(&p, "keep-alive ping").await.is_err(),
                Err(_) => false,
            }
        } else {
            false
        };
        if dead {
            reader.abort();
            shared
                .report(
                    &tx,
                    XmppError::Timeout {
                        step: "keep-alive ping",
                    },
                )
                .await;
            return;
        }
    }
}
