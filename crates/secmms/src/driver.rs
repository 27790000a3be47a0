//! The runtime's one loop (`drive`): it moves input, commands, time and the CRL wake signal
//! between a `Transport` (a byte stream over TCP or TLS: `ByteStream`; the XMPP links of
//! `xmpp.rs`) and a `Machine` without `await` (the server, client, relay and XMPP endpoints),
//! writes what the machine queues (coalesced and time-bounded), and runs the effects it asks
//! for. Also the runtime's one clock ([`now`]) and the lazy timer every wait uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secmms_e2e::TimeStamp;
use secmms_osi::OsiError;
use secmms_profiles::secure::{Now, ProtectionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::transport::Stream;

/// Largest coalesced write (a TLS record carries at most 16 KiB of plaintext).
const MAX_BATCH: usize = 16 * 1024;

/// Read buffer size: one maximal TPKT.
pub(crate) const READ_CHUNK: usize = 65_536;

/// The read buffer a connection starts with; it doubles, up to [`READ_CHUNK`], each time a read
/// fills it.
pub(crate) const FIRST_READ_CHUNK: usize = 4_096;

/// Writes every chunk `next` yields, coalesced into writes of at most [`MAX_BATCH`] octets (the
/// answers to several pipelined requests leave in one system call and, over TLS, one record),
/// then flushes. Nothing queued: nothing written.
pub(crate) async fn write_coalesced<S: Stream>(
    stream: &mut S,
    mut next: impl FnMut() -> Option<Vec<u8>>,
) -> Result<(), LinkError> {
    let Some(mut batch) = next() else {
        return Ok(());
    };
    while let Some(out) = next() {
        if batch.len() + out.len() > MAX_BATCH {
            stream.write_all(&batch).await?;
            batch = out;
        } else {
            batch.extend_from_slice(&out);
        }
    }
    stream.write_all(&batch).await?;
    stream.flush().await?;
    Ok(())
}

/// Errors of the link between a stream and an association.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The stream failed.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer violated the OSI protocols; the reaction (ER, AB, ABRT…) was sent.
    #[error("protocol error: {0}")]
    Osi(#[from] OsiError),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// We refused the connection or the association; the reaction the protocol has for it
    /// (AARE reject, ABRT) was sent.
    #[error("refused: {0}")]
    Refused(#[from] RefusalReason),
    /// An application-layer security check failed; the abort it calls for was sent. The error
    /// keeps what the standard says of it: the E2E diagnostic and the security event (id,
    /// mnemonic) in native mode, the refusal in compatibility mode.
    #[error(transparent)]
    Security(Arc<ProtectionError>),
    /// No input arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Why we refused a connection or an association ([`LinkError::Refused`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefusalReason {
    /// Admission control: its checks passed, but `max` associations are established already
    /// (ACSE rejected-transient).
    #[error("server.max_associations ({max}) associations are established")]
    Admission {
        /// `server.max_associations`.
        max: usize,
    },
    /// The TLS handshake failed (the security event tells why, clause 6).
    #[error("TLS: {0}")]
    TlsHandshake(Arc<crate::tls::TlsError>),
    /// The connection sent no ClientHello within `tls.handshake_timeout_secs`.
    #[error("TLS: no ClientHello within {0:?}")]
    NoClientHello(Duration),
    /// `server.max_handshakes` TLS handshakes were under way for the whole wait.
    #[error("TLS: server.max_handshakes TLS handshakes under way")]
    HandshakesBusy,
    /// More than `server.handshake_rate` TLS handshakes a second were being started for the
    /// whole wait.
    #[error("TLS: more than server.handshake_rate TLS handshakes a second")]
    HandshakeRate,
    /// `server.max_security_checks` AARQ checks were under way or waiting until the association
    /// set-up deadline; the AARQ was not checked and the connection was aborted.
    #[error("server.max_security_checks AARQ security checks under way; aborted")]
    ChecksBusy,
    /// More than `server.security_check_rate` AARQ checks a second were being started until the
    /// association set-up deadline; the AARQ was not checked and the connection was aborted.
    #[error("more than server.security_check_rate AARQ security checks a second; aborted")]
    CheckRate,
    /// The MMS initiate-RequestPDU could not be decoded; the association was aborted.
    #[error("invalid MMS initiate request ({0}); aborted")]
    InvalidInitiate(secmms_mms::MmsError),
    /// Native mode: an E2E check refused the association (the diagnostic, with the security
    /// event it raised).
    #[error("E2E: {0}")]
    E2eCheck(secmms_profiles::native::NativeDiagnostic),
}

impl From<ProtectionError> for LinkError {
    fn from(e: ProtectionError) -> Self {
        LinkError::Security(Arc::new(e))
    }
}

/// One timer for a deadline that is set again and again, mostly later than before (an idle
/// timeout renewed by every read, the end of a load).
///
/// A fresh `tokio::time::sleep` per wait registers a timer each time, and when the runtime's
/// parked thread has no earlier timer, every registration wakes that thread: one needless
/// cross-thread wake-up per request. This timer stays registered and only moves when it fires
/// before the deadline asked for (at most once per timeout period) or when an earlier deadline
/// is asked for.
#[derive(Default)]
pub(crate) struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl LazyTimer {
    /// Completes at `at` (at once if it has passed). Cancel-safe: dropping the future keeps the
    /// timer for the next wait.
    pub(crate) async fn wait_until(&mut self, at: Instant) {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() > at {
            sleep.as_mut().reset(at);
        }
        loop {
            sleep.as_mut().await;
            if Instant::now() >= at {
                return;
            }
            sleep.as_mut().reset(at);
        }
    }
}

/// The current time, read once per turn: the calendar (Unix milliseconds) and the monotonic
/// clock.
pub fn now() -> Now {
    Now::new(
        TimeStamp(crate::events::time::unix_millis()),
        std::time::Instant::now(),
    )
}

/// True when `wake` changed; never completes once its sender is gone.
async fn changed(wake: &mut Option<tokio::sync::watch::Receiver<u64>>) -> bool {
    let Some(w) = wake else {
        return std::future::pending().await;
    };
    match w.changed().await {
        Ok(()) => true,
        Err(_) => std::future::pending().await,
    }
}

/// Completes at `at`, or never.
pub(crate) async fn until(timer: &mut LazyTimer, at: Option<std::time::Instant>) {
    match at {
        Some(at) => timer.wait_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// A byte stream (TCP, TLS) as a [`Transport`]: reads of up to [`READ_CHUNK`] octets, writes
/// coalesced ([`write_coalesced`]) and bounded by the write timeout.
pub(crate) struct ByteStream<S> {
    stream: S,
    buf: Vec<u8>,
    n: usize,
    write_timeout: Option<Duration>,
}

impl<S: Stream> ByteStream<S> {
    /// Wraps a connected stream; `write_timeout` bounds every write and the shutdown (`None`:
    /// unbounded), so a peer that stops reading cannot hold the task once the socket buffers
    /// are full.
    pub(crate) fn new(stream: S, write_timeout: Option<Duration>) -> Self {
        ByteStream {
            stream,
            // Small until a read fills it: an idle association keeps 4 KiB, not 64
            // (issue 17: memory per idle association).
            buf: vec![0; FIRST_READ_CHUNK],
            n: 0,
            write_timeout,
        }
    }
}

impl<S: Stream> Transport for ByteStream<S> {
    type In<'a>
        = &'a [u8]
    where
        S: 'a;
    type Out = Vec<u8>;
    type Error = std::io::Error;

    async fn ready(&mut self) -> Result<bool, std::io::Error> {
        self.n = self.stream.read(&mut self.buf).await?;
        // A read that filled the buffer: the next one may take twice as much, up to
        // READ_CHUNK (what arrived stays at the front, in place).
        if self.n == self.buf.len() && self.buf.len() < READ_CHUNK {
            let grown = (self.buf.len() * 2).min(READ_CHUNK);
            self.buf.resize(grown, 0);
        }
        Ok(self.n > 0)
    }

    fn input(&mut self) -> &[u8] {
        &self.buf[..self.n]
    }

    async fn send(
        &mut self,
        next: &mut (dyn FnMut() -> Option<Vec<u8>> + Send),
    ) -> Result<(), LinkError> {
        match self.write_timeout {
            Some(t) => tokio::time::timeout(t, write_coalesced(&mut self.stream, next))
                .await
                .map_err(|_| LinkError::Timeout(t))?,
            None => write_coalesced(&mut self.stream, next).await,
        }
    }

    async fn shutdown(&mut self) {
        match self.write_timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, self.stream.shutdown()).await;
            }
            None => {
                let _ = self.stream.shutdown().await;
            }
        }
    }
}

/// A future the driver awaits for a machine (an OCSP look-up, dialling the next hop); it borrows
/// nothing, so the machine stays free while it runs.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One of a machine's transports: every machine has `Up` (the connection it serves); the
/// relay also has `Down`, the next hop, once dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// The connection the machine was started on.
    Up,
    /// The second connection (the relay's next hop).
    Down,
}

impl Port {
    fn index(self) -> usize {
        match self {
            Port::Up => 0,
            Port::Down => 1,
        }
    }
}

/// What a machine asks of the driver after it has taken its events ([`Machine::process`]).
pub(crate) enum Step<E, T> {
    /// Nothing more to do until something happens: write what is queued and wait.
    Idle,
    /// Write what is queued now, then call `process` again (response groups).
    Flush,
    /// Await this and hand its result to [`Machine::complete`].
    Effect(BoxFuture<E>),
    /// Await this connection; it becomes the `Down` port ([`Machine::connected`]).
    Connect(BoxFuture<Result<T, String>>),
    /// The machine has finished: write what is queued, shut every transport down, return.
    Done,
}

/// A transport a machine runs on: bytes (TCP, TLS) or stanzas (XMPP).
pub(crate) trait Transport: Send + Sized {
    /// One input, as the machine receives it.
    type In<'a>
    where
        Self: 'a;
    /// One output the machine queues.
    type Out: Send;
    /// Why receiving failed.
    type Error: Send;
    /// Waits for the next input: `Ok(true)` when there is one ([`Self::input`]), `Ok(false)`
    /// when the peer closed. Cancel-safe: nothing is lost when the wait is abandoned.
    fn ready(&mut self) -> impl Future<Output = Result<bool, Self::Error>> + Send;
    /// The input [`Self::ready`] announced.
    fn input(&mut self) -> Self::In<'_>;
    /// Writes every output `next` yields (bounded in time by the transport).
    fn send(
        &mut self,
        next: &mut (dyn FnMut() -> Option<Self::Out> + Send),
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Ends the write side (bounded in time).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// A protocol machine without `await`: the server, client, relay and XMPP endpoints. The
/// driver ([`drive`]) feeds it input, commands, time and the CRL wake signal, writes what it
/// queues and runs the effects it asks for.
pub(crate) trait Machine<T: Transport> {
    /// Commands from the application's handles.
    type Cmd: Send;
    /// The result of an [`Step::Effect`].
    type Effect: Send;
    /// Input arrived on `port`.
    fn handle_input(&mut self, port: Port, input: T::In<'_>, now: Now);
    /// `port` was closed by the peer (`None`) or failed.
    fn transport_closed(&mut self, port: Port, error: Option<T::Error>, now: Now);
    /// Writing to `port` failed or timed out; the port is not written again.
    fn write_failed(&mut self, port: Port, error: LinkError, now: Now);
    /// The channel commands come on, while the machine takes them.
    fn commands(&mut self) -> Option<&mut tokio::sync::mpsc::Receiver<Self::Cmd>> {
        None
    }
    /// A command (`None`: every sender is gone). `true`: take the next queued one in the same
    /// turn (its output leaves in the same write).
    fn handle_cmd(&mut self, _cmd: Option<Self::Cmd>, _now: Now) -> bool {
        false
    }
    /// The deadline of [`Self::poll_timeout`] came.
    fn handle_timeout(&mut self, now: Now);
    /// The wake signal changed (the application CRLs were reloaded).
    fn handle_wake(&mut self, _now: Now) {}
    /// Takes the events of the last input, command or timeout; says what the driver does next.
    fn process(&mut self, now: Now) -> Step<Self::Effect, T>;
    /// The result of the effect asked for.
    fn complete(&mut self, _result: Self::Effect, _now: Now) {}
    /// The connection asked for with [`Step::Connect`] is up (`Ok`) or could not be made.
    fn connected(&mut self, _result: Result<(), String>, _now: Now) {}
    /// Everything queued was written.
    fn flushed(&mut self) {}
    /// The next output for `port`.
    fn poll_transmit(&mut self, port: Port) -> Option<T::Out>;
    /// The machine's next deadline.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
}

/// Most commands taken in one turn, so that queued requests leave in one write.
pub(crate) const MAX_CMDS_PER_TURN: usize = 64;

/// What ended a wait of the driver.
enum Wake<C, E> {
    Input(Port, Result<bool, E>),
    Cmd(Option<C>),
    Timer,
    Signal,
}

/// Waits for input on `t`, or forever when there is no such transport or it has closed.
async fn ready_on<T: Transport>(t: &mut Option<T>, open: bool) -> Result<bool, T::Error> {
    match t {
        Some(t) if open => t.ready().await,
        _ => std::future::pending().await,
    }
}

/// Receives a command, or waits forever when the machine takes none.
async fn recv_cmd<C>(rx: Option<&mut tokio::sync::mpsc::Receiver<C>>) -> Option<C> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The transports of one machine and what is known of each.
struct Ports<T> {
    t: [Option<T>; 2],
    /// Still read from (not closed by the peer, not failed).
    readable: [bool; 2],
    /// Still written to (no write failed).
    writable: [bool; 2],
}

impl<T: Transport> Ports<T> {
    /// Writes what the machine queued on every port; a failure is the machine's to handle.
    async fn flush<M: Machine<T> + Send>(&mut self, m: &mut M) -> bool {
        let mut ok = true;
        for port in [Port::Up, Port::Down] {
            let i = port.index();
            let Some(t) = self.t[i].as_mut() else {
                continue;
            };
            if !self.writable[i] {
                while m.poll_transmit(port).is_some() {}
                continue;
            }
            if let Err(e) = t.send(&mut || m.poll_transmit(port)).await {
                self.writable[i] = false;
                m.write_failed(port, e, now());
                ok = false;
            }
        }
        ok
    }
}

/// Runs `m` on `up` until it is done: the one loop of every association and endpoint. Each
/// turn reads the clock once ([`now`]), lets the machine take its events, writes what it
/// queued (coalesced), then waits for input on any port, a command, the machine's next
/// deadline (one timer, moved lazily) or the wake signal.
pub(crate) async fn drive<T: Transport, M: Machine<T> + Send>(
    m: &mut M,
    up: T,
    mut wake: Option<tokio::sync::watch::Receiver<u64>>,
) {
    let mut ports = Ports {
        t: [Some(up), None],
        readable: [true, true],
        writable: [true, true],
    };
    let mut timer = LazyTimer::default();
    let mut t = now();
    loop {
        loop {
            match m.process(t) {
                Step::Idle => break,
                Step::Flush => {
                    if ports.flush(m).await {
                        m.flushed();
                    }
                }
                Step::Effect(f) => {
                    let r = f.await;
                    t = now();
                    m.complete(r, t);
                }
                Step::Connect(f) => {
                    let r = f.await;
                    t = now();
                    match r {
                        Ok(down) => {
                            ports.t[1] = Some(down);
                            m.connected(Ok(()), t);
                        }
                        Err(why) => m.connected(Err(why), t),
                    }
                }
                Step::Done => {
                    ports.flush(m).await;
                    for i in 0..2 {
                        if let (Some(p), true) = (ports.t[i].as_mut(), ports.writable[i]) {
                            p.shutdown().await;
                        }
                    }
                    return;
                }
            }
        }
        if !ports.flush(m).await {
            // The machine decides what a failed write means: take its events first.
            t = now();
            continue;
        }
        m.flushed();
        let at = m.poll_timeout();
        let [up, down] = &mut ports.t;
        let w = tokio::select! {
            r = ready_on(up, ports.readable[0]) => Wake::Input(Port::Up, r),
            r = ready_on(down, ports.readable[1]) => Wake::Input(Port::Down, r),
            c = recv_cmd(m.commands()) => Wake::Cmd(c),
            () = until(&mut timer, at) => Wake::Timer,
            true = changed(&mut wake) => Wake::Signal,
        };
        t = now();
        match w {
            Wake::Input(port, Ok(true)) => {
                if let Some(p) = ports.t[port.index()].as_mut() {
                    m.handle_input(port, p.input(), t);
                }
            }
            Wake::Input(port, Ok(false)) => {
                ports.readable[port.index()] = false;
                m.transport_closed(port, None, t);
            }
            Wake::Input(port, Err(e)) => {
                ports.readable[port.index()] = false;
                m.transport_closed(port, Some(e), t);
            }
            Wake::Cmd(c) => {
                let mut more = m.handle_cmd(c, t);
                let mut budget = MAX_CMDS_PER_TURN - 1;
                while more && budget > 0 {
                    let Some(Ok(c)) = m.commands().map(|rx| rx.try_recv()) else {
                        break;
                    };
                    more = m.handle_cmd(Some(c), t);
                    budget -= 1;
                }
            }
            Wake::Timer => m.handle_timeout(t),
            Wake::Signal => m.handle_wake(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;

    /// An in-memory transport: inputs from a channel (`None` closes), every `send` recorded as
    /// one batch, optionally failing.
    struct FakeTransport {
        inputs: tokio::sync::mpsc::UnboundedReceiver<Option<Vec<u8>>>,
        current: Vec<u8>,
        batches: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
        fail_writes: bool,
        shut: Arc<Mutex<bool>>,
    }

    impl Transport for FakeTransport {
        type In<'a> = &'a [u8];
        type Out = Vec<u8>;
        type Error = std::io::Error;

        async fn ready(&mut self) -> Result<bool, std::io::Error> {
            match self.inputs.recv().await {
                Some(Some(b)) => {
                    self.current = b;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }

        fn input(&mut self) -> &[u8] {
            &self.current
        }

        async fn send(
            &mut self,
            next: &mut (dyn FnMut() -> Option<Vec<u8>> + Send),
        ) -> Result<(), LinkError> {
            let mut batch = Vec::new();
            while let Some(o) = next() {
                batch.push(o);
            }
            if batch.is_empty() {
                return Ok(());
            }
            if self.fail_writes {
                return Err(LinkError::Closed);
            }
            self.batches.lock().unwrap().push(batch);
            Ok(())
        }

        async fn shutdown(&mut self) {
            *self.shut.lock().unwrap() = true;
        }
    }

    /// What the fake machine saw, in order.
    #[derive(Default)]
    struct FakeMachine {
        rx: Option<tokio::sync::mpsc::Receiver<u32>>,
        out: Vec<Vec<u8>>,
        seen: Vec<String>,
        deadline: Option<std::time::Instant>,
        effect: bool,
        done: bool,
    }

    impl Machine<FakeTransport> for FakeMachine {
        type Cmd = u32;
        type Effect = u32;

        fn handle_input(&mut self, _: Port, input: &[u8], _: Now) {
            self.seen
                .push(format!("input {}", String::from_utf8_lossy(input)));
            self.out.push(input.to_ascii_uppercase());
        }

        fn transport_closed(&mut self, _: Port, e: Option<std::io::Error>, _: Now) {
            self.seen.push(format!("closed {}", e.is_some()));
            self.done = true;
        }

        fn write_failed(&mut self, _: Port, e: LinkError, _: Now) {
            self.seen.push(format!("write failed: {e}"));
            self.done = true;
        }

        fn commands(&mut self) -> Option<&mut tokio::sync::mpsc::Receiver<u32>> {
            self.rx.as_mut()
        }

        fn handle_cmd(&mut self, cmd: Option<u32>, _: Now) -> bool {
            match cmd {
                Some(c) => {
                    self.out.push(c.to_be_bytes().to_vec());
                    true
                }
                None => {
                    self.seen.push("no more commands".into());
                    self.done = true;
                    false
                }
            }
        }

        fn handle_timeout(&mut self, now: Now) {
            let due = self.deadline.take().is_some_and(|d| now.mono >= d);
            self.seen.push(format!("timeout due={due}"));
            self.done = true;
        }

        fn process(&mut self, _: Now) -> Step<u32, FakeTransport> {
            if std::mem::take(&mut self.effect) {
                return Step::Effect(Box::pin(async { 7 }));
            }
            if self.done {
                return Step::Done;
            }
            Step::Idle
        }

        fn complete(&mut self, r: u32, _: Now) {
            self.seen.push(format!("effect {r}"));
        }

        fn poll_transmit(&mut self, _: Port) -> Option<Vec<u8>> {
            (!self.out.is_empty()).then(|| self.out.remove(0))
        }

        fn poll_timeout(&self) -> Option<std::time::Instant> {
            self.deadline
        }
    }

    type Inputs = tokio::sync::mpsc::UnboundedSender<Option<Vec<u8>>>;
    type Batches = Arc<Mutex<Vec<Vec<Vec<u8>>>>>;

    fn fake(fail_writes: bool) -> (FakeTransport, Inputs, Batches, Arc<Mutex<bool>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let batches = Batches::default();
        let shut = Arc::new(Mutex::new(false));
        let t = FakeTransport {
            inputs: rx,
            current: Vec::new(),
            batches: batches.clone(),
            fail_writes,
            shut: shut.clone(),
        };
        (t, tx, batches, shut)
    }

    #[tokio::test]
    async fn queued_commands_leave_in_writes_of_at_most_64() {
        let (t, _inputs, batches, shut) = fake(false);
        let (ctx, crx) = tokio::sync::mpsc::channel(256);
        for c in 0..100u32 {
            ctx.try_send(c).unwrap();
        }
        drop(ctx);
        let mut m = FakeMachine {
            rx: Some(crx),
            ..Default::default()
        };
        drive(&mut m, t, None).await;
        let sizes: Vec<usize> = batches.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, [64, 36], "one write per turn of at most 64 commands");
        let first = &batches.lock().unwrap()[0];
        assert_eq!(first[0], 0u32.to_be_bytes(), "in order");
        assert_eq!(m.seen, ["no more commands"]);
        assert!(
            *shut.lock().unwrap(),
            "the transport is shut down at the end"
        );
    }

    #[tokio::test]
    async fn input_is_answered_and_a_close_ends_the_machine() {
        let (t, inputs, batches, shut) = fake(false);
        inputs.send(Some(b"ab".to_vec())).unwrap();
        inputs.send(Some(b"cd".to_vec())).unwrap();
        inputs.send(None).unwrap();
        let mut m = FakeMachine {
            effect: true,
            ..Default::default()
        };
        drive(&mut m, t, None).await;
        assert_eq!(m.seen, ["effect 7", "input ab", "input cd", "closed false"]);
        let b = batches.lock().unwrap();
        assert_eq!(*b, [vec![b"AB".to_vec()], vec![b"CD".to_vec()]]);
        assert!(*shut.lock().unwrap());
    }

    #[tokio::test]
    async fn the_machines_deadline_calls_handle_timeout_once_it_is_due() {
        let (t, _inputs, _batches, _shut) = fake(false);
        let mut m = FakeMachine {
            deadline: Some(std::time::Instant::now() + 30 * MS),
            ..Default::default()
        };
        drive(&mut m, t, None).await;
        assert_eq!(m.seen, ["timeout due=true"]);
    }

    #[tokio::test]
    async fn a_failed_write_goes_to_the_machine_and_the_port_is_not_shut_down() {
        let (t, inputs, _batches, shut) = fake(true);
        inputs.send(Some(b"x".to_vec())).unwrap();
        let mut m = FakeMachine::default();
        drive(&mut m, t, None).await;
        assert_eq!(
            m.seen,
            ["input x", "write failed: connection closed by the peer"]
        );
        assert!(
            !*shut.lock().unwrap(),
            "no shutdown on a port whose write failed"
        );
    }

    #[tokio::test]
    async fn the_wake_signal_reaches_the_machine() {
        struct Woken(FakeMachine);
        impl Machine<FakeTransport> for Woken {
            type Cmd = u32;
            type Effect = u32;
            fn handle_input(&mut self, p: Port, i: &[u8], n: Now) {
                self.0.handle_input(p, i, n)
            }
            fn transport_closed(&mut self, p: Port, e: Option<std::io::Error>, n: Now) {
                self.0.transport_closed(p, e, n)
            }
            fn write_failed(&mut self, p: Port, e: LinkError, n: Now) {
                self.0.write_failed(p, e, n)
            }
            fn handle_timeout(&mut self, n: Now) {
                self.0.handle_timeout(n)
            }
            fn handle_wake(&mut self, _: Now) {
                self.0.seen.push("woken".into());
                self.0.done = true;
            }
            fn process(&mut self, n: Now) -> Step<u32, FakeTransport> {
                self.0.process(n)
            }
            fn poll_transmit(&mut self, p: Port) -> Option<Vec<u8>> {
                self.0.poll_transmit(p)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                self.0.poll_timeout()
            }
        }
        let (t, _inputs, _batches, _shut) = fake(false);
        let (wtx, wrx) = tokio::sync::watch::channel(0u64);
        let mut m = Woken(FakeMachine::default());
        let run = tokio::spawn(async move {
            drive(&mut m, t, Some(wrx)).await;
            m.0.seen
        });
        tokio::time::sleep(10 * MS).await;
        wtx.send_modify(|g| *g += 1);
        let seen = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, ["woken"]);
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn lazy_timer_completes_at_each_deadline_asked_for() {
        let mut t = LazyTimer::default();
        let start = Instant::now();
        t.wait_until(start + 20 * MS).await;
        assert!(start.elapsed() >= 20 * MS);
        // A later deadline after the timer fired: waits for it, not less.
        let at = Instant::now() + 30 * MS;
        t.wait_until(at).await;
        assert!(Instant::now() >= at);
        // A deadline already passed: at once.
        let now = Instant::now();
        t.wait_until(now - MS).await;
        assert!(now.elapsed() < 1000 * MS);
    }

    #[tokio::test]
    async fn lazy_timer_follows_a_deadline_moved_later_or_earlier() {
        let mut t = LazyTimer::default();
        let start = Instant::now();
        // Abandoned wait (as when the read wins the select) leaves the timer at +300 ms.
        let abandoned = tokio::time::timeout(5 * MS, t.wait_until(start + 300 * MS)).await;
        assert!(abandoned.is_err());
        // Moved later: the early firing at +300 ms does not end the wait.
        t.wait_until(start + 600 * MS).await;
        assert!(start.elapsed() >= 600 * MS);
        // Moved earlier than the registered deadline: the timer is brought forward.
        let start = Instant::now();
        let _ = tokio::time::timeout(5 * MS, t.wait_until(start + 100_000 * MS)).await;
        let done = tokio::time::timeout(20_000 * MS, t.wait_until(start + 30 * MS)).await;
        assert!(
            done.is_ok(),
            "an earlier deadline must not wait for the later one"
        );
        assert!(start.elapsed() >= 30 * MS);
    }
}
