//! The MMS client: one task per association owns the stream and the sans-IO association; any
//! number of [`Client`] clones send confirmed requests through it. Responses are matched to
//! requests by invokeID, so up to the negotiated number of requests are outstanding at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms_mms::client::{self as mms_client, ClientProposal, ObjectReference};
use secmms_mms::pdu::{
    ConfirmedServiceRequest, ConfirmedServiceResponse, InformationReport, MmsPdu, Negotiated,
    ObjectClass, ObjectScope, WriteResult,
};
use secmms_mms::session::ClientSession;
use secmms_mms::{AccessResult, Data, MmsLimits, ObjectName};
use secmms_profiles::secure::{Now, SecureAssociation, SecureEvent, Timeouts};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::driver::{self, drive, ByteStream, LinkError, Machine, Port, Step};
use crate::osi::osi_config;
use crate::security::{AppSecurity, ConnectionFacts};
use crate::transport::Stream;

mod builder;
mod error;
mod refusal;
mod request_loop;
mod settings;
pub use builder::ClientBuilder;
use builder::Sections;
pub use error::{ClientError, Mismatch, UsageError};
pub use refusal::Refusal;
pub(crate) use request_loop::ErasedLoop;
pub use request_loop::{LoopEnd, LoopStep, RequestLoop};
use request_loop::{LoopRun, Typed};
pub use settings::ClientConfig;

/// Seconds the client waits for the peer's RLRE before closing anyway (some servers never answer
/// a release; reference §9 item 10).
pub const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) type Reply = oneshot::Sender<Result<ConfirmedServiceResponse, ClientError>>;

pub(crate) enum Cmd {
    Request {
        service: ConfirmedServiceRequest,
        reply: Reply,
        permit: OwnedSemaphorePermit,
    },
    Release {
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    Loop {
        run: Box<dyn ErasedLoop>,
        outstanding: usize,
        permits: OwnedSemaphorePermit,
    },
    Abort,
    /// Native mode: refresh the E2E keys with the next request (`Client::rekey`).
    Rekey {
        reply: oneshot::Sender<bool>,
    },
}

/// Where a [`Client`]'s commands go.
pub(crate) enum CmdTx {
    /// The association's own task.
    Own(mpsc::Sender<Cmd>),
    /// The task of an XMPP connection that carries many associations: each command travels
    /// with the key of its association.
    Keyed(
        mpsc::Sender<crate::xmpp::ConnCmd>,
        secmms_profiles::xmpp::AssocKey,
    ),
}

impl CmdTx {
    /// Hands `cmd` over; `Err` when the task is gone.
    async fn send(&self, cmd: Cmd) -> Result<(), ()> {
        match self {
            CmdTx::Own(tx) => tx.send(cmd).await.map_err(drop),
            CmdTx::Keyed(tx, key) => tx
                .send(crate::xmpp::ConnCmd::Assoc(key.clone(), cmd))
                .await
                .map_err(drop),
        }
    }
}

/// What every clone of a [`Client`] shares.
struct ClientState {
    /// The receiving end of the association's unsolicited reports, until taken.
    reports: std::sync::Mutex<Option<mpsc::Receiver<InformationReport>>>,
    tx: CmdTx,
    negotiated: Negotiated,
    protection: String,
    slots: Arc<Semaphore>,
    closed: Arc<AtomicBool>,
    /// Why the association ended, when it ended otherwise than by our release.
    ended: EndReason,
    request_timeout: Duration,
    runs_loops: bool,
}

/// Why an association ended (set once by the task that runs it).
pub(crate) type EndReason = Arc<std::sync::Mutex<Option<String>>>;

/// A handle to one MMS association. Cheap to clone; all clones share the association.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("negotiated", &self.inner.negotiated)
            .finish()
    }
}

impl Client {
    /// The front door for a program that embeds a client: sections of the configuration and
    /// the event sink, then [`ClientBuilder::connect`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Associates over an already connected stream with the application security `security`;
    /// `facts` tell the profiles about the connection (peer address, TLS certificates). The
    /// sections are validated ([`ClientBuilder`]).
    pub(crate) async fn associate_with<S: Stream>(
        stream: S,
        cfg: &Sections,
        security: &AppSecurity,
        facts: &ConnectionFacts,
    ) -> Result<Client, ClientError> {
        let osi = osi_config(&cfg.osi, false)?;
        let called = match (&osi.remote_ap_title, osi.remote_ae_qualifier) {
            (Some(ap), Some(ae)) if security.mode() != crate::security::AppMode::Plain => format!(
                " (we called AP-title {ap} / AE-qualifier {ae}; if the server's certificate binds \
                 other titles, give them with --peer-ap-title / --peer-ae-qualifier)"
            ),
            _ => String::new(),
        };
        let timeout = Duration::from_secs(cfg.client.associate_timeout_secs.max(1));
        let timeouts = Timeouts {
            associate: Some(timeout),
            idle: None,
            release: Some(RELEASE_TIMEOUT),
            pdu: None,
        };
        let now = driver::now();
        let sa = security
            .secure_initiator(osi, facts, timeouts, now)
            .map_err(ClientError::Security)?;
        let mut sa = sa;
        let proposal = ClientProposal {
            max_pdu_size: cfg.client.max_pdu_size,
            max_serv_outstanding_calling: cfg.client.max_outstanding,
            max_serv_outstanding_called: cfg.client.max_outstanding,
            ..Default::default()
        };
        sa.connect(mms_client::initiate_request_pdu(&proposal), now)
            .map_err(LinkError::from)?;
        let (tx, rx) = mpsc::channel(256);
        let closed = Arc::new(AtomicBool::new(false));
        let request_timeout = Duration::from_secs(cfg.client.request_timeout_secs.max(1));
        let ended = EndReason::default();
        let (reports_tx, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let (setup_tx, setup_rx) = oneshot::channel();
        let m = ClientMachine {
            sa,
            proposal,
            setup: Some(setup_tx),
            called,
            associate_timeout: timeout,
            rx: Some(rx),
            reports: reports_tx,
            session: None,
            releasing: None,
            looping: None,
            request_timeout,
            result: None,
        };
        // A server that stops reading must not block the association task forever.
        let transport = ByteStream::new(stream, Some(request_timeout));
        tokio::spawn(run_association(m, transport, closed.clone(), ended.clone()));
        let (negotiated, protection) = setup_rx.await.map_err(|_| ClientError::Closed)??;
        let slots = Arc::new(Semaphore::new(
            negotiated.max_serv_outstanding_calling.max(1) as usize,
        ));
        Ok(Client {
            inner: Arc::new(ClientState {
                tx: CmdTx::Own(tx),
                negotiated,
                protection,
                slots,
                closed,
                ended,
                request_timeout,
                runs_loops: true,
                reports: std::sync::Mutex::new(Some(reports_rx)),
            }),
        })
    }

    /// A client whose association is run by another task (e.g. the XMPP connection task) that
    /// consumes the commands of `tx` and sets `closed` when the association ends.
    pub(crate) fn from_parts(
        tx: CmdTx,
        negotiated: Negotiated,
        protection: String,
        closed: Arc<AtomicBool>,
        request_timeout: Duration,
        reports: mpsc::Receiver<InformationReport>,
    ) -> Client {
        let slots = Arc::new(Semaphore::new(
            negotiated.max_serv_outstanding_calling.max(1) as usize,
        ));
        Client {
            inner: Arc::new(ClientState {
                tx,
                negotiated,
                protection,
                slots,
                closed,
                ended: EndReason::default(),
                request_timeout,
                runs_loops: false,
                reports: std::sync::Mutex::new(Some(reports)),
            }),
        }
    }

    /// The unsolicited InformationReports of this association (IEC 61850 reports arrive this
    /// way), in order of arrival; `None` once taken (there is one receiver). The association
    /// queues at most [`REPORT_QUEUE`] reports nobody has read; later ones are dropped.
    pub fn reports(&self) -> Option<mpsc::Receiver<InformationReport>> {
        self.inner
            .reports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// What the initiate exchange settled.
    pub fn negotiated(&self) -> &Negotiated {
        &self.inner.negotiated
    }

    /// What protects this association at the application layer, in words (e.g. the agreed E2E
    /// algorithms in native mode).
    pub fn protection(&self) -> &str {
        &self.inner.protection
    }

    /// True once the association has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Relaxed)
    }

    /// Why the association ended, when it ended otherwise than by a release we asked for (the
    /// peer aborted or closed the connection, a TLS or E2E check failed, ...).
    pub fn end_reason(&self) -> Option<String> {
        match self.inner.ended.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sends one confirmed request and waits for its response (bounded by the request timeout).
    pub async fn request(
        &self,
        service: ConfirmedServiceRequest,
    ) -> Result<ConfirmedServiceResponse, ClientError> {
        let permit = self.slots(1).await?;
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Request {
            service,
            reply,
            permit,
        };
        self.submit(cmd, rx, self.inner.request_timeout).await
    }

    /// `n` of the negotiated outstanding-request slots, waiting at most the request timeout.
    async fn slots(&self, n: u32) -> Result<OwnedSemaphorePermit, ClientError> {
        let t = self.inner.request_timeout;
        tokio::time::timeout(t, self.inner.slots.clone().acquire_many_owned(n))
            .await
            .map_err(|_| ClientError::Timeout(t))?
            .map_err(|_| ClientError::Closed)
    }

    /// Hands `cmd` to the association task and waits at most `wait` for its answer on `rx`.
    async fn submit<T>(
        &self,
        cmd: Cmd,
        rx: oneshot::Receiver<Result<T, ClientError>>,
        wait: Duration,
    ) -> Result<T, ClientError> {
        self.inner
            .tx
            .send(cmd)
            .await
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// MMS Identify.
    pub async fn identify(&self) -> Result<secmms_mms::pdu::IdentifyResponse, ClientError> {
        match self.request(mms_client::identify()).await? {
            ConfirmedServiceResponse::Identify(i) => Ok(i),
            other => Err(ClientError::Unexpected(Mismatch::service(
                "identify", other,
            ))),
        }
    }

    /// GetNameList over all pages.
    async fn name_list(
        &self,
        class: ObjectClass,
        domain: Option<&str>,
    ) -> Result<Vec<String>, ClientError> {
        let mut out: Vec<String> = Vec::new();
        // Bounded: a server that keeps saying moreFollows cannot keep us here forever.
        for _ in 0..10_000 {
            let scope = match domain {
                Some(d) => ObjectScope::Domain(d.to_string()),
                None => ObjectScope::Vmd,
            };
            let req = mms_client::get_name_list(class, scope, out.last().cloned());
            match self.request(req).await? {
                ConfirmedServiceResponse::GetNameList(r) => {
                    let more = r.more_follows && !r.identifiers.is_empty();
                    out.extend(r.identifiers);
                    if !more {
                        return Ok(out);
                    }
                }
                other => {
                    return Err(ClientError::Unexpected(Mismatch::service(
                        "getNameList",
                        other,
                    )))
                }
            }
        }
        Ok(out)
    }

    /// The server's domains (IEC 61850 logical devices).
    pub async fn domains(&self) -> Result<Vec<String>, ClientError> {
        self.name_list(ObjectClass::DOMAIN, None).await
    }

    /// The named variables of a domain.
    pub async fn variables(&self, domain: &str) -> Result<Vec<String>, ClientError> {
        self.name_list(ObjectClass::NAMED_VARIABLE, Some(domain))
            .await
    }

    /// Turns an IEC 61850 reference (`LD/LN.DO.DA[FC]`) or MMS name (`LD/LN$FC$DO$DA`) into an
    /// MMS object name. A reference without FC is resolved by browsing the domain.
    pub async fn resolve(&self, reference: &str) -> Result<ObjectName, ClientError> {
        let r = ObjectReference::parse(reference).map_err(|error| UsageError::Reference {
            reference: reference.to_string(),
            error,
        })?;
        if let Some(name) = r.object_name() {
            return Ok(name);
        }
        let vars = self.variables(&r.domain).await?;
        r.resolve_fc(&vars)
            .and_then(|r| r.object_name())
            .ok_or_else(|| {
                UsageError::NoSuchAttribute {
                    reference: reference.to_string(),
                }
                .into()
            })
    }

    /// Reads one variable by object name.
    pub async fn read_name(&self, name: &ObjectName) -> Result<Data, ClientError> {
        match self.request(mms_client::read_name(name.clone())).await? {
            ConfirmedServiceResponse::Read(mut r) if r.results.len() == 1 => {
                match r.results.remove(0) {
                    AccessResult::Success(d) => Ok(d),
                    AccessResult::Failure(e) => Err(ClientError::Access(e)),
                }
            }
            ConfirmedServiceResponse::Read(r) => Err(ClientError::Unexpected(Mismatch::Results {
                request: "read",
                asked: 1,
                got: r.results.len(),
            })),
            other => Err(ClientError::Unexpected(Mismatch::service("read", other))),
        }
    }

    /// Reads one variable by reference.
    pub async fn read(&self, reference: &str) -> Result<Data, ClientError> {
        let name = self.resolve(reference).await?;
        self.read_name(&name).await
    }

    /// Writes one variable.
    pub async fn write_name(&self, name: &ObjectName, value: Data) -> Result<(), ClientError> {
        match self.request(mms_client::write(name.clone(), value)).await? {
            ConfirmedServiceResponse::Write(r) => match r.as_slice() {
                [WriteResult::Success] => Ok(()),
                [WriteResult::Failure(e)] => Err(ClientError::Access(*e)),
                other => Err(ClientError::Unexpected(Mismatch::Results {
                    request: "write",
                    asked: 1,
                    got: other.len(),
                })),
            },
            other => Err(ClientError::Unexpected(Mismatch::service("write", other))),
        }
    }

    /// Writes a value given as text, converted to the variable's type (asked from the server).
    pub async fn write_str(&self, reference: &str, value: &str) -> Result<(), ClientError> {
        let name = self.resolve(reference).await?;
        let ty = match self
            .request(mms_client::get_variable_access_attributes(name.clone()))
            .await?
        {
            ConfirmedServiceResponse::GetVariableAccessAttributes(a) => a.type_description,
            other => {
                return Err(ClientError::Unexpected(Mismatch::service(
                    "getVariableAccessAttributes",
                    other,
                )))
            }
        };
        let data = mms_client::parse_value(&ty, value).map_err(UsageError::from)?;
        self.write_name(&name, data).await
    }

    /// Runs `request_loop` inside the association's own task until it stops (see
    /// [`RequestLoop`]), with at most `outstanding` of its requests in flight (capped by the
    /// negotiated limit, which they share with this association's other requests), and gives it
    /// back with how it ended. The task asks the loop for a new request as each answer arrives,
    /// in the same turn and without a channel or task switch: for polling a device at the rate it
    /// answers, or for a load generator (`secmms bench` runs one). Other requests may share the
    /// association meanwhile; one loop runs at a time ([`UsageError::LoopRunning`]). Dropping the
    /// returned future stops the loop at the next turn. Fails with [`UsageError::NoLoop`] on an
    /// association whose runner cannot run a loop (XMPP): use [`Client::request`] there.
    pub async fn run_loop<L: RequestLoop>(
        &self,
        outstanding: usize,
        request_loop: L,
    ) -> Result<(L, LoopEnd), ClientError> {
        if !self.inner.runs_loops {
            return Err(UsageError::NoLoop.into());
        }
        let max = usize::from(self.inner.negotiated.max_serv_outstanding_calling.max(1));
        let outstanding = outstanding.clamp(1, max);
        // The loop's requests count against the negotiated limit like any other request.
        let permits = self.slots(outstanding as u32).await?;
        let (reply, rx) = oneshot::channel();
        let run = Box::new(Typed {
            inner: request_loop,
            reply,
        });
        let cmd = Cmd::Loop {
            run,
            outstanding,
            permits,
        };
        self.inner
            .tx
            .send(cmd)
            .await
            .map_err(|_| ClientError::Closed)?;
        // The task always answers: when the loop ends, or when the association does.
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// True when [`Client::run_loop`] is available on this association.
    pub fn runs_loops(&self) -> bool {
        self.inner.runs_loops
    }

    /// Orderly release (MMS Conclude inside RLRQ). Waits at most [`RELEASE_TIMEOUT`] for the RLRE.
    pub async fn release(&self) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Cmd::Release { reply }).await.is_err() {
            return Ok(());
        }
        match tokio::time::timeout(RELEASE_TIMEOUT * 2, rx).await {
            Ok(Ok(r)) => r,
            _ => Ok(()),
        }
    }

    /// Native mode: asks for an E2E key refresh now (IEC 62351-4 §13.3.2) instead of at the
    /// end of the rekey interval; the new key value travels with the next request and the keys
    /// change once the server's answer confirms them. `Ok(false)` when this association has no
    /// E2E keys to refresh here (plain, A-profile, XMPP environment).
    pub async fn rekey(&self) -> Result<bool, ClientError> {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Cmd::Rekey { reply }).await.is_err() {
            return Err(ClientError::Closed);
        }
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Aborts the association at once.
    pub async fn abort(&self) {
        let _ = self.inner.tx.send(Cmd::Abort).await;
    }
}

pub(crate) struct Pending {
    pub(crate) reply: Reply,
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// Who waits for the answer to a request of the association task.
enum Waiter {
    /// A caller of [`Client`].
    Caller(Pending),
    /// The running request loop (its own table times the request).
    Loop,
}

/// The client side of one association, as a [`Machine`] on a byte stream: the set-up (answered
/// on `setup`), then the MMS client session fed by the [`Client`] handles' commands, the
/// request loop, and the release.
struct ClientMachine {
    sa: SecureAssociation,
    proposal: ClientProposal,
    /// Answered once the association is established or refused.
    setup: Option<oneshot::Sender<Result<(Negotiated, String), ClientError>>>,
    /// What we called, for a refusal's message.
    called: String,
    associate_timeout: Duration,
    rx: Option<mpsc::Receiver<Cmd>>,
    reports: ReportTx,
    /// The MMS session, once established.
    session: Option<ClientSession<Waiter>>,
    releasing: Option<oneshot::Sender<Result<(), ClientError>>>,
    looping: Option<LoopRun>,
    request_timeout: Duration,
    result: Option<Result<(), LinkError>>,
}

impl ClientMachine {
    /// Ends the association with `r`; a set-up still waiting hears why.
    fn end(&mut self, r: Result<(), LinkError>) {
        if let Some(setup) = self.setup.take() {
            let e = match &r {
                Ok(()) => ClientError::Closed,
                Err(LinkError::Closed) => self.lost(LinkError::Closed),
                Err(LinkError::Timeout(t)) => self.lost(LinkError::Timeout(*t)),
                Err(LinkError::Io(e)) => {
                    self.lost(LinkError::Io(std::io::Error::new(e.kind(), e.to_string())))
                }
                Err(LinkError::Osi(e)) => LinkError::Osi(e.clone()).into(),
                Err(LinkError::Security(e)) => LinkError::Security(e.clone()).into(),
                Err(LinkError::Refused(why)) => LinkError::Refused(why.clone()).into(),
            };
            let _ = setup.send(Err(e));
        }
        self.result.get_or_insert(r);
    }

    /// What a connection that ended during the set-up means: a peer that could not take our
    /// extended CONNECT user data, or the transport failure itself.
    fn lost(&self, e: LinkError) -> ClientError {
        match self.sa.association().connect_needed_extended_user_data() {
            Some(octets) => ClientError::NoExtendedUserData { octets },
            None => e.into(),
        }
    }

    /// Fails the set-up with `e` and ends.
    fn refuse(&mut self, e: ClientError) {
        if let Some(setup) = self.setup.take() {
            let _ = setup.send(Err(e));
        }
        self.result.get_or_insert(Ok(()));
    }

    /// An event while the association is being set up.
    fn setup_event(&mut self, ev: SecureEvent) {
        match ev {
            SecureEvent::Established {
                initiate_response, ..
            } => {
                let Some(bytes) = initiate_response else {
                    return self.refuse(ClientError::Unexpected(Mismatch::NoInitiateResponse));
                };
                match mms_client::parse_initiate_response(&bytes, &self.proposal) {
                    Ok(n) => {
                        self.session =
                            Some(ClientSession::established(self.proposal.clone(), n.clone()));
                        let protection = self.sa.protection().describe();
                        let delivered = match self.setup.take() {
                            Some(s) => s.send(Ok((n, protection))).is_ok(),
                            None => false,
                        };
                        if !delivered {
                            // Nobody waits for it any more: end it at once.
                            self.rx = None;
                        }
                    }
                    Err(e) => self.refuse(ClientError::Initiate(e)),
                }
            }
            SecureEvent::Rejected {
                reason,
                initiate_error,
                ..
            } => {
                let initiate_error =
                    match initiate_error.map(|b| MmsPdu::decode(&b, &MmsLimits::default())) {
                        Some(Ok(MmsPdu::InitiateError(e))) => Some(e),
                        _ => None,
                    };
                let refusal = Refusal {
                    reason: Some(reason),
                    abort: None,
                    initiate_error,
                    e2e: self.sa.last_diagnostic().cloned(),
                    detail: self.called.trim().to_string(),
                };
                self.refuse(ClientError::Rejected(Box::new(refusal)));
            }
            SecureEvent::Aborted(a) => {
                let refusal = Refusal {
                    abort: Some(a),
                    e2e: self.sa.last_diagnostic().cloned(),
                    ..Refusal::default()
                };
                self.refuse(ClientError::Rejected(Box::new(refusal)));
            }
            SecureEvent::ProtocolError(e) => self.end(Err(LinkError::Osi(e))),
            SecureEvent::TimedOut(_) => self.end(Err(LinkError::Timeout(self.associate_timeout))),
            SecureEvent::SecurityFailure(e) => self.end(Err(e.into())),
            SecureEvent::Closed => self.end(Err(LinkError::Closed)),
            _ => {}
        }
    }

    /// An event of the established association.
    fn event(&mut self, ev: SecureEvent, now: Now) {
        match ev {
            SecureEvent::Mms(pdu) => {
                if let Some(session) = self.session.as_mut() {
                    dispatch(&pdu, session, self.looping.as_mut(), &self.reports, now)
                }
            }
            // The abort is queued: it goes out, what is outstanding fails.
            SecureEvent::SecurityFailure(e) => self.end(Err(e.into())),
            SecureEvent::Released { .. } => {
                if let Some(r) = self.releasing.take() {
                    let _ = r.send(Ok(()));
                }
                self.end(Ok(()));
            }
            SecureEvent::TimedOut(_) => {
                // The peer never answered the release: close anyway.
                if let Some(r) = self.releasing.take() {
                    let _ = r.send(Ok(()));
                }
                self.end(Ok(()));
            }
            SecureEvent::Aborted(a) => {
                debug!("association aborted: {a:?}");
                self.end(Err(LinkError::Closed));
            }
            SecureEvent::ProtocolError(e) => self.end(Err(LinkError::Osi(e))),
            SecureEvent::Closed => self.end(Err(LinkError::Closed)),
            _ => {}
        }
    }

    /// Sends one caller's request.
    fn request(&mut self, service: ConfirmedServiceRequest, pending: Pending, now: Now) {
        let Some(session) = self.session.as_mut() else {
            let _ = pending.reply.send(Err(ClientError::Closed));
            return;
        };
        let (id, pdu) = match session.request(service, Waiter::Caller(pending)) {
            Ok(x) => x,
            Err((e, w)) => {
                if let Waiter::Caller(p) = w {
                    let _ = p.reply.send(Err(UsageError::Session(e).into()));
                }
                return;
            }
        };
        if let Err(e) = self.sa.send_mms(&pdu, now) {
            let e = Arc::new(e);
            if let Some(Waiter::Caller(p)) = session.forget(id) {
                let _ = p.reply.send(Err(LinkError::Security(e.clone()).into()));
            }
            // A failed E2E check has queued its abort: the association is over.
            if self.sa.is_closed() {
                self.end(Err(LinkError::Security(e)));
            }
        }
    }
}

impl<S: Stream> Machine<ByteStream<S>> for ClientMachine {
    type Cmd = Cmd;
    type Effect = ();

    fn handle_input(&mut self, _: Port, input: &[u8], now: Now) {
        if let Err(e) = self.sa.handle_input(input, now) {
            self.end(Err(LinkError::Osi(e)));
        }
    }

    fn transport_closed(&mut self, _: Port, error: Option<std::io::Error>, now: Now) {
        match error {
            // During the set-up a closed connection is the answer: say what it most likely
            // means (see `lost`).
            None if self.setup.is_some() => {
                self.sa.transport_closed(now);
                self.end(Err(LinkError::Closed));
            }
            None => self.sa.transport_closed(now),
            Some(e) => self.end(Err(LinkError::Io(e))),
        }
    }

    fn write_failed(&mut self, _: Port, error: LinkError, _: Now) {
        self.end(Err(error));
    }

    fn commands(&mut self) -> Option<&mut mpsc::Receiver<Cmd>> {
        // Nothing is sent before the association is established, nor once we release.
        if self.session.is_none() || self.releasing.is_some() || self.result.is_some() {
            return None;
        }
        self.rx.as_mut()
    }

    fn handle_cmd(&mut self, cmd: Option<Cmd>, now: Now) -> bool {
        match cmd {
            // Requests already queued leave together, in one write (and, over TLS, one
            // record); the rest of the queue waits for the next turn.
            Some(Cmd::Request {
                service,
                reply,
                permit,
            }) => {
                let pending = Pending {
                    reply,
                    _permit: permit,
                };
                self.request(service, pending, now);
                self.result.is_none()
            }
            Some(Cmd::Release { reply }) => {
                match self.sa.release(Some(MmsPdu::ConcludeRequest.encode()), now) {
                    Ok(()) => self.releasing = Some(reply),
                    Err(e) => {
                        let _ = reply.send(Ok(()));
                        self.end(Err(e.into()));
                    }
                }
                false
            }
            Some(Cmd::Loop {
                run,
                outstanding,
                permits,
            }) => {
                LoopRun::start(
                    &mut self.looping,
                    run,
                    outstanding,
                    permits,
                    self.request_timeout,
                );
                false
            }
            Some(Cmd::Rekey { reply }) => {
                let _ = reply.send(self.sa.start_rekey());
                self.result.is_none()
            }
            Some(Cmd::Abort) | None => {
                let _ = self.sa.abort(now);
                self.end(Ok(()));
                false
            }
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.sa.handle_timeout(now);
        if let (Some(l), Some(session)) = (self.looping.as_mut(), self.session.as_mut()) {
            l.expire(session, now.mono);
        }
    }

    fn process(&mut self, now: Now) -> Step<(), ByteStream<S>> {
        while self.result.is_none() {
            let Some(ev) = self.sa.poll_event() else {
                break;
            };
            if self.session.is_some() {
                self.event(ev, now);
            } else {
                self.setup_event(ev);
            }
        }
        if self.result.is_some() {
            return Step::Done;
        }
        if self.session.is_some() && self.rx.is_none() && self.releasing.is_none() {
            // Every handle is gone (or the set-up's caller left): abort.
            let _ = self.sa.abort(now);
            self.end(Ok(()));
            return Step::Done;
        }
        // A running request loop: top up what is in flight, or hand it back once done.
        if let (Some(l), Some(session)) = (self.looping.as_mut(), self.session.as_mut()) {
            if let Err(e) = l.top_up(session, &mut self.sa, now) {
                if self.sa.is_closed() {
                    self.end(Err(LinkError::Security(e)));
                    return Step::Done;
                }
            }
            if l.is_done() {
                if let Some(l) = self.looping.take() {
                    l.finish();
                }
            }
        }
        Step::Idle
    }

    fn poll_transmit(&mut self, _: Port) -> Option<Vec<u8>> {
        self.sa.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // A request loop wakes when it asks to and when its oldest request is late.
        let looping = self.looping.as_ref().and_then(LoopRun::wake_at);
        match (self.sa.poll_timeout(), looping) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs a client association to its end, then tells the handles and every waiter.
async fn run_association<S: Stream>(
    mut m: ClientMachine,
    transport: ByteStream<S>,
    closed: Arc<AtomicBool>,
    ended: EndReason,
) {
    drive(&mut m, transport, None).await;
    let result = m.result.take().unwrap_or(Err(LinkError::Closed));
    if let Some(setup) = m.setup.take() {
        let _ = setup.send(Err(ClientError::Closed));
    }
    if let (Err(e), None, Some(_)) = (&result, &m.releasing, &m.session) {
        let reason = e.to_string();
        tracing::warn!("association ended: {reason}");
        if let Ok(mut g) = ended.lock() {
            *g = Some(reason);
        }
    }
    closed.store(true, Ordering::Relaxed);
    if let Some(session) = m.session.as_mut() {
        for w in session.fail_all() {
            if let Waiter::Caller(p) = w {
                let _ = p.reply.send(Err(ClientError::Closed));
            }
        }
    }
    if let Some(l) = m.looping.take() {
        // The association ended under the loop: what was in flight is lost.
        l.association_ended(result.as_ref().err().map(|e| e.to_string()));
    }
    if let Some(r) = m.releasing.take() {
        // Once we asked to release, a peer that closes the connection or answers the RLRQ with
        // something other than an RLRE has still ended the association (some servers never
        // answer a release, others answer FN with FN; reference §9 item 10).
        if let Err(e) = &result {
            tracing::warn!("release not confirmed by the peer ({e}); association closed");
        }
        let _ = r.send(Ok(()));
    }
}

/// Routes an MMS PDU from the server to the running request loop, if it answers one of its
/// requests, or to the caller waiting for it.
fn dispatch(
    pdu: &[u8],
    session: &mut ClientSession<Waiter>,
    looping: Option<&mut LoopRun>,
    reports: &ReportTx,
    now: Now,
) {
    use secmms_mms::session::ClientEvent;
    match session.handle_pdu(pdu) {
        ClientEvent::Answer {
            token: Waiter::Loop,
            invoke_id,
            result,
        } => {
            if let Some(l) = looping {
                l.answer(invoke_id, answer_outcome(result), now.mono);
            }
        }
        ClientEvent::Answer {
            token: Waiter::Caller(p),
            invoke_id,
            result,
        } => deliver(
            ClientEvent::Answer {
                token: p,
                invoke_id,
                result,
            },
            reports,
        ),
        ClientEvent::Report(r) => deliver(ClientEvent::Report(r), reports),
        ClientEvent::Unmatched { invoke_id } => {
            deliver(ClientEvent::Unmatched { invoke_id }, reports)
        }
        ClientEvent::Unexpected(w) => deliver(ClientEvent::Unexpected(w), reports),
        ClientEvent::Concluded => deliver(ClientEvent::Concluded, reports),
        ClientEvent::ConcludeRefused(e) => deliver(ClientEvent::ConcludeRefused(e), reports),
    }
}

/// Where a client's unsolicited InformationReports go ([`Client::reports`]): a bounded queue;
/// a report that finds it full (nobody reads) is dropped and logged.
pub(crate) type ReportTx = mpsc::Sender<InformationReport>;

/// Queue depth of [`Client::reports`].
pub const REPORT_QUEUE: usize = 1024;

/// The answer to a confirmed request as the caller sees it: a service error, a reject or a
/// malformed answer becomes the matching [`ClientError`].
fn answer_outcome(
    result: Result<ConfirmedServiceResponse, secmms_mms::client::ClientError>,
) -> Result<ConfirmedServiceResponse, ClientError> {
    use secmms_mms::client::ClientError as MmsClientError;
    match result {
        Ok(s) => Ok(s),
        Err(MmsClientError::Service { error, .. }) => Err(ClientError::Service(error)),
        Err(MmsClientError::Rejected(r)) => Err(ClientError::Reject(r)),
        Err(e) => Err(ClientError::Answer(e)),
    }
}

/// Hands an event of an MMS client session to the caller waiting for it; a report to `reports`.
pub(crate) fn deliver(ev: secmms_mms::session::ClientEvent<Pending>, reports: &ReportTx) {
    use secmms_mms::session::ClientEvent;
    match ev {
        ClientEvent::Answer { token, result, .. } => {
            let _ = token.reply.send(answer_outcome(result));
        }
        ClientEvent::Report(r) => {
            if let Err(e) = reports.try_send(r) {
                debug!("unsolicited report dropped: {e}");
            }
        }
        ClientEvent::Unmatched { invoke_id } => {
            debug!("answer for invokeID {invoke_id}, which nothing waits for")
        }
        ClientEvent::Unexpected(what) => debug!("ignoring {what}"),
        ClientEvent::Concluded | ClientEvent::ConcludeRefused(_) => {
            debug!("conclude answer outside a release")
        }
    }
}

#[cfg(test)]
mod tests;
