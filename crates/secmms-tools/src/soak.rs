//! The soak under faults (issue 17, item 6; feature `soak`): many native-mode associations
//! through a fault-injecting proxy, and a check that each one ended as its fault says it must.
//!
//! [`run`] starts `secmms server` (TLS + native mode with AES-GCM, certificates from
//! [`DemoPki`]) as a separate process, logging each association's end at DEBUG. It puts a
//! [`FaultProxy`] in front of it and opens [`SoakOptions::associations`] associations through
//! the proxy from this process, with one TLS context and one application-security context for
//! all of them. Each association reads one variable every [`SoakOptions::period`] for
//! [`SoakOptions::duration`] (a [`RequestLoop`] in the association task), then releases.
//!
//! Before that, a clean round of as many associations through a proxy that injects nothing,
//! all of them up at once before any reads, sets the baseline of the server's memory and
//! descriptors: after it, the allocator holds what that many associations need, so what the
//! faulted round leaves on top of it is what it leaked, not what the allocator keeps for reuse.
//!
//! Then every association is judged ([`AssocResult::verdict`]) from three sources that do not share state:
//! what the client saw, what the proxy did ([`ConnRecord`]), and the server's log line for the
//! proxy's upstream port:
//!
//! * a connection the proxy did not break (clean, delayed, or whose fault never fired) must
//!   complete every read without an error and be released, and the server must log its release;
//! * a connection broken before the client's reads were done must not complete: the client
//!   must see an end of the right kind ([`EndKind`], e.g. not a mere timeout after a reset) and
//!   the server must log an end of a right kind;
//! * a connection broken during the release may end either way, but the server must log an end;
//! * afterwards the server's descriptors must be back to the baseline and its resident memory
//!   within [`SoakOptions::rss_margin_kib`] of it, and the server must still run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secmms::client::{ClientBuilder, ClientError, LoopStep, RequestLoop};
use secmms::config::Config;
use secmms::driver::LinkError;
use secmms::security::{tls_fingerprints, AppMode, AppSecurity, ConnectionFacts, Encrypt};
use secmms::tls::TlsContext;
use secmms_mms::pdu::{
    ConfirmedServiceRequest, ConfirmedServiceResponse, ReadRequest, VariableAccessSpecification,
};
use secmms_mms::AccessResult;
use secmms_pki::event::{MemorySink, SecurityEventSink};
use secmms_testkit::faultproxy::{ConnRecord, FaultPlan, FaultProxy};
use tokio::sync::Semaphore;

use crate::demo::DemoPki;

mod report;
mod server;

use report::judge;
pub use report::{AssocResult, ClientOutcome, EndKind, Phase, ServerEnd, SoakReport};
pub use server::Sample;
use server::{sample_pid, ServerProcess};

/// What a soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The `secmms` binary to start the server from.
    pub secmms: PathBuf,
    /// Associations in the faulted round (and in the clean round before it).
    pub associations: usize,
    /// How long each association of the faulted round reads.
    pub duration: Duration,
    /// The pause between two reads on one association.
    pub period: Duration,
    /// How long each association of the clean round reads; zero skips the clean round (the
    /// baseline is then the server before any association, and the memory check means little).
    pub warmup: Duration,
    /// Associations being set up at once (TLS and E2E handshakes).
    pub setups_at_once: usize,
    /// The faults of the faulted round.
    pub plan: FaultPlan,
    /// The variable read (an IEC 61850 reference of the server's demo model).
    pub reference: String,
    /// How far above the baseline the server's resident memory may be afterwards, KiB.
    pub rss_margin_kib: u64,
    /// How long the server gets to close everything after a round.
    pub settle: Duration,
    /// Where the throw-away PKI and the server's configuration go.
    pub scratch: PathBuf,
}

impl SoakOptions {
    /// 1 000 associations reading every second for 60 s (a clean round of 10 s first), 64
    /// set-ups at once, [`FaultPlan::new`] with seed 17, 6 % of each fault and triggers up to
    /// 20 000 octets (an association moves about 22 000), a 4 MiB margin.
    pub fn new(secmms: PathBuf) -> SoakOptions {
        SoakOptions {
            secmms,
            associations: 1_000,
            duration: Duration::from_secs(60),
            period: Duration::from_secs(1),
            warmup: Duration::from_secs(10),
            setups_at_once: 64,
            plan: FaultPlan {
                trigger_octets: 0..=20_000,
                ..FaultPlan::new(17, secmms_testkit::faultproxy::FaultMix::even(0.06))
            },
            reference: "DEMOLD0/GGIO1.AnIn1.mag.f[MX]".into(),
            rss_margin_kib: 4 * 1024,
            settle: Duration::from_secs(30),
            scratch: std::env::temp_dir(),
        }
    }
}

/// Why a soak could not run (as opposed to a soak that found violations).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The PKI, the configuration or the server could not be set up.
    #[error("set-up: {0}")]
    Setup(String),
    /// The client side could not be built, or the first association failed.
    #[error("client: {0}")]
    Client(#[from] ClientError),
    /// The proxy could not listen.
    #[error("proxy: {0}")]
    Proxy(std::io::Error),
}

/// The client side every association of a run shares.
struct ClientSide {
    builder: ClientBuilder,
    tls: Arc<TlsContext>,
    read: ConfirmedServiceRequest,
}

/// What one association of a round saw, before judging.
struct Seen {
    client: Option<SocketAddr>,
    outcome: ClientOutcome,
    reads: [u64; 3],
    /// When its reads were done (the loop returned), if it got that far.
    reads_done: Option<Instant>,
    /// The number (from 1) of its first read that failed.
    first_failed_read: Option<u64>,
}

/// Reads one variable every `period` until `deadline`, one at a time.
struct PacedReads {
    read: ConfirmedServiceRequest,
    period: Duration,
    deadline: Instant,
    next_at: Instant,
    sent: u64,
    answered: u64,
    failed: u64,
    first_error: Option<String>,
    /// The number (from 1) of the first read that failed (one read is in flight at a time).
    first_failed: Option<u64>,
}

impl RequestLoop for PacedReads {
    fn next(&mut self, now: Instant) -> LoopStep {
        if now >= self.deadline {
            return LoopStep::Stop;
        }
        if now < self.next_at {
            return LoopStep::Wait;
        }
        self.next_at = now + self.period;
        self.sent += 1;
        LoopStep::Send(self.read.clone())
    }

    fn answered(
        &mut self,
        outcome: Result<ConfirmedServiceResponse, ClientError>,
        _sent: Instant,
        _now: Instant,
    ) {
        match outcome {
            Ok(ConfirmedServiceResponse::Read(r))
                if r.results
                    .iter()
                    .all(|a| matches!(a, AccessResult::Success(_))) =>
            {
                self.answered += 1
            }
            Ok(other) => {
                self.failed += 1;
                self.first_failed.get_or_insert(self.sent);
                self.first_error
                    .get_or_insert_with(|| format!("unexpected answer {other:?}"));
            }
            Err(e) => {
                self.failed += 1;
                self.first_failed.get_or_insert(self.sent);
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        Some(self.next_at.min(self.deadline))
    }
}

/// A bound on each step of the set-up here (the TLS handshake, the association), above the
/// server's own timeouts (10 s each by default), so that a set-up the server gave up on shows
/// as the server's end and not as ours.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

/// Sets one association up through the proxy at `proxy`, holding a place of `gate`; the
/// client's local address is noted in `seen` as soon as it is known.
async fn set_up(
    side: &ClientSide,
    gate: Arc<Semaphore>,
    proxy: SocketAddr,
    seen: &mut Seen,
) -> Result<secmms::Client, ClientOutcome> {
    let failed =
        |e: &ClientError| ClientOutcome::SetupFailed(EndKind::of_client_error(e), e.to_string());
    let _permit = gate.acquire_owned().await.expect("gate open");
    let tcp = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| failed(&ClientError::Link(LinkError::Io(e))))?;
    let _ = tcp.set_nodelay(true);
    seen.client = tcp.local_addr().ok();
    let tls = match tokio::time::timeout(SETUP_LIMIT, side.tls.connect(tcp, "localhost")).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(failed(&ClientError::Tls(e))),
        Err(_) => return Err(failed(&ClientError::Timeout(SETUP_LIMIT))),
    };
    let facts = ConnectionFacts {
        peer_address: Some(proxy.ip()),
        peer_socket: Some(proxy),
        tls: true,
        tls_fingerprints: tls_fingerprints(tls.ssl()),
    };
    let builder = side.builder.clone().connection_facts(facts);
    match tokio::time::timeout(SETUP_LIMIT, builder.associate(tls)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(failed(&ClientError::Timeout(SETUP_LIMIT))),
    }
}

/// One association through the proxy at `proxy`: set up, then (when `all_up` is given) wait
/// until every association of the round has been set up or has failed, read for `duration`,
/// release.
async fn one(
    side: Arc<ClientSide>,
    gate: Arc<Semaphore>,
    proxy: SocketAddr,
    all_up: Option<(Arc<tokio::sync::watch::Sender<usize>>, usize)>,
    duration: Duration,
    period: Duration,
) -> Seen {
    let mut seen = Seen {
        client: None,
        outcome: ClientOutcome::Completed,
        reads: [0; 3],
        reads_done: None,
        first_failed_read: None,
    };
    let setup = set_up(&side, gate, proxy, &mut seen).await;
    if let Some((up, n)) = &all_up {
        up.send_modify(|c| *c += 1);
        let mut rx = up.subscribe();
        let _ = rx.wait_for(|c| *c >= *n).await;
    }
    let client = match setup {
        Ok(c) => c,
        Err(outcome) => {
            seen.outcome = outcome;
            return seen;
        }
    };
    let now = Instant::now();
    let reads = PacedReads {
        read: side.read.clone(),
        period,
        deadline: now + duration,
        next_at: now,
        sent: 0,
        answered: 0,
        failed: 0,
        first_error: None,
        first_failed: None,
    };
    match client.run_loop(1, reads).await {
        Ok((reads, end)) => {
            seen.reads_done = Some(Instant::now());
            seen.reads = [reads.sent, reads.answered, reads.failed + end.lost];
            seen.first_failed_read = reads.first_failed;
            if let Some(why) = end.ended {
                seen.outcome = ClientOutcome::Ended(EndKind::of_text(&why), why);
            } else if let Some(e) = reads.first_error {
                seen.outcome = ClientOutcome::Ended(EndKind::of_text(&e), e);
            } else if end.lost > 0 {
                seen.outcome =
                    ClientOutcome::Ended(EndKind::Other, format!("{} reads lost", end.lost));
            }
        }
        Err(e) => {
            seen.outcome = ClientOutcome::Ended(EndKind::of_client_error(&e), e.to_string());
        }
    }
    let _ = client.release().await;
    seen
}

/// One round of `n` associations through `proxy`, all started at once (set-ups limited by
/// the gate); with `hold`, none starts reading before all are set up, so that all `n` are up
/// at once. Returns when every one has ended.
#[allow(clippy::too_many_arguments)]
async fn round(
    side: &Arc<ClientSide>,
    proxy: SocketAddr,
    n: usize,
    setups_at_once: usize,
    hold: bool,
    duration: Duration,
    period: Duration,
) -> Vec<Seen> {
    let gate = Arc::new(Semaphore::new(setups_at_once.max(1)));
    let all_up = hold.then(|| (Arc::new(tokio::sync::watch::channel(0usize).0), n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let one = one(
                side.clone(),
                gate.clone(),
                proxy,
                all_up.clone(),
                duration,
                period,
            );
            tokio::spawn(one)
        })
        .collect();
    let mut seen = Vec::with_capacity(n);
    for t in tasks {
        seen.push(t.await.unwrap_or_else(|e| Seen {
            client: None,
            outcome: ClientOutcome::Ended(EndKind::Other, format!("client task: {e}")),
            reads: [0; 3],
            reads_done: None,
            first_failed_read: None,
        }));
    }
    seen
}

/// Waits until the server has logged an end for each of `ports` since line `from` and its
/// descriptors have not changed for a second (at most `settle`), then a second more for its
/// memory to settle; returns the sample taken then.
async fn settle(
    server: &ServerProcess,
    from: usize,
    ports: &[u16],
    fds_target: Option<usize>,
    settle: Duration,
) -> Sample {
    let end = Instant::now() + settle;
    let mut last = server.sample();
    let mut steady_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = server.sample();
        if s.fds != last.fds {
            steady_since = Instant::now();
        }
        last = s;
        let ends = server.ends_since(from);
        let all_logged = ports.iter().all(|p| ends.contains_key(p));
        let fds_ok = fds_target.map_or(true, |t| s.fds <= t);
        if (all_logged && fds_ok && steady_since.elapsed() >= Duration::from_secs(1))
            || Instant::now() >= end
        {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.sample()
}

/// Runs the soak: the clean round, the faulted round, the checks. `Err` only when it could
/// not run; violations are in the report.
pub async fn run(opts: SoakOptions) -> Result<SoakReport, SoakError> {
    let pki = DemoPki::create(&opts.scratch).map_err(SoakError::Setup)?;
    let server = ServerProcess::start(&opts, &pki)?;
    let mut cfg = Config {
        tls: pki.tls_config(false),
        ..Config::default()
    };
    pki.apply_security(&mut cfg, false, AppMode::Native, Encrypt::Gcm);
    // One TLS context and one application-security context for every association, as a
    // product making many associations would.
    let sink: Arc<dyn SecurityEventSink> = Arc::new(MemorySink::new());
    let security = AppSecurity::build(&cfg.security, &cfg.tls, &cfg.osi, sink.clone())
        .map_err(ClientError::from)?;
    let tls = Arc::new(TlsContext::client(&cfg.tls, sink.clone()).map_err(ClientError::from)?);
    let builder = cfg
        .client_builder()
        .events(sink)
        .app_security(security)
        .tls_context(tls.clone());
    // The variable, resolved once on a direct association (which also warms the server up).
    let probe = builder.connect(&server.addr.to_string()).await?;
    let target = probe.resolve(&opts.reference).await?;
    probe.read_name(&target).await?;
    probe.release().await?;
    let read = ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::single(target),
    });
    let side = Arc::new(ClientSide { builder, tls, read });
    let cold = settle(&server, 0, &[], None, Duration::from_secs(3)).await;

    // The clean round: the baseline.
    let mut violations = Vec::new();
    let mut warmup_failures = 0;
    let baseline = if opts.warmup.is_zero() {
        cold
    } else {
        let clean = FaultProxy::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            server.addr,
            FaultPlan::fixed(secmms_testkit::faultproxy::Fault::Clean, 0),
        )
        .await
        .map_err(SoakError::Proxy)?;
        let from = server.line_count();
        let seen = round(
            &side,
            clean.local_addr(),
            opts.associations,
            opts.setups_at_once,
            true,
            opts.warmup,
            opts.period,
        )
        .await;
        clean.wait_idle(opts.settle).await;
        for (i, s) in seen.iter().enumerate() {
            if s.outcome != ClientOutcome::Completed || s.reads[2] > 0 {
                warmup_failures += 1;
                violations.push(format!("clean round, association {i}: {:?}", s.outcome));
            }
        }
        let ports: Vec<u16> = clean
            .records()
            .iter()
            .filter_map(|r| r.upstream.map(|a| a.port()))
            .collect();
        settle(&server, from, &ports, None, opts.settle).await
    };

    // The faulted round.
    let proxy = FaultProxy::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        server.addr,
        opts.plan.clone(),
    )
    .await
    .map_err(SoakError::Proxy)?;
    let from = server.line_count();
    let peak = Arc::new(Mutex::new(baseline));
    let sampler = {
        let peak = peak.clone();
        let pid = server.child.id();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let s = sample_pid(pid);
                let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                p.rss_kib = p.rss_kib.max(s.rss_kib);
                p.fds = p.fds.max(s.fds);
            }
        })
    };
    let started = Instant::now();
    let seen = round(
        &side,
        proxy.local_addr(),
        opts.associations,
        opts.setups_at_once,
        false,
        opts.duration,
        opts.period,
    )
    .await;
    let round_time = started.elapsed();
    if !proxy.wait_idle(opts.settle).await {
        violations.push(format!(
            "{} proxied connections still open after the round",
            proxy.open()
        ));
    }
    let records = proxy.records();
    let ports: Vec<u16> = records
        .iter()
        .filter_map(|r| r.upstream.map(|a| a.port()))
        .collect();
    let after = settle(&server, from, &ports, Some(baseline.fds), opts.settle).await;
    sampler.abort();
    let peak = *peak.lock().unwrap_or_else(|e| e.into_inner());

    // Judge each association.
    let mut ends = server.ends_since(from);
    let mut by_client: HashMap<SocketAddr, ConnRecord> = HashMap::new();
    for r in records {
        by_client.insert(r.client, r);
    }
    let mut associations = Vec::with_capacity(seen.len());
    for (index, s) in seen.into_iter().enumerate() {
        let record = s.client.and_then(|c| by_client.remove(&c));
        let server_end = record
            .as_ref()
            .and_then(|r| r.upstream)
            .and_then(|u| ends.get_mut(&u.port()))
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
        let phase = match record.as_ref().and_then(|r| r.applied) {
            None => Phase::NotFired,
            Some(_) if matches!(s.outcome, ClientOutcome::SetupFailed(..)) => Phase::Setup,
            Some(a) if s.reads_done.is_some_and(|t| a.at >= t) => Phase::Release,
            Some(_) if s.reads_done.is_none() && s.reads[0] == 0 => Phase::Setup,
            Some(_) => Phase::Transfer,
        };
        let mut a = AssocResult {
            index,
            record,
            outcome: s.outcome,
            reads: s.reads,
            first_failed_read: s.first_failed_read,
            phase,
            server: server_end,
            verdict: Ok(()),
        };
        a.verdict = judge(&a);
        if let Err(why) = &a.verdict {
            violations.push(format!("association {index}: {why}"));
        }
        associations.push(a);
    }
    if after.fds > baseline.fds {
        violations.push(format!(
            "the server holds {} descriptors after the round, {} before",
            after.fds, baseline.fds
        ));
    }
    if after.rss_kib > baseline.rss_kib + opts.rss_margin_kib {
        violations.push(format!(
            "the server's resident memory is {} KiB after the round, {} KiB at the baseline (margin {} KiB)",
            after.rss_kib, baseline.rss_kib, opts.rss_margin_kib
        ));
    }
    if server.panicked() {
        violations.push("the server's log reports a panic".into());
    }
    let mut server = server;
    if let Ok(Some(status)) = server.child.try_wait() {
        violations.push(format!("the server exited: {status}"));
    }
    Ok(SoakReport {
        associations,
        cold,
        baseline,
        peak,
        after,
        warmup_failures,
        violations,
        round_time,
        rss_margin_kib: opts.rss_margin_kib,
    })
}
