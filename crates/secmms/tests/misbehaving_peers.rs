//! Acceptance test of the runtime (issue "Foundation"): 100 concurrent associations of which 10
//! misbehave (garbage, half-open, slow sender, abrupt close); the 90 good ones complete all their
//! requests, the server keeps accepting and its counters add up. A second test sends hostile
//! association payloads (oversized TPKTs, a TSDU past the 64 KiB limit, a BER bomb in the AARQ)
//! next to a good client. A third one pipelines requests and never reads the answers: the server
//! must still give that association up (its blocked writes are bounded by the idle timeout).
//!
//! Misbehaving peers are raw `TcpStream`s; the ones that need real OSI bytes drive a sans-IO
//! `secmms_osi::Association` themselves. No assertion is made on durations: every wait is only
//! bounded so that a hang fails the test instead of blocking it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use secmms::server::ServerStats;
use secmms::{Client, Config, ServerHandle};
use secmms_mms::client::{initiate_request_pdu, ClientProposal};
use secmms_mms::{
    ConfirmedRequest, ConfirmedServiceRequest, Data, MmsPdu, ObjectName, ReadRequest,
    VariableAccessSpecification,
};
use secmms_osi::{Association, OsiConfig, OsiEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// Server associate timeout in these tests: short, so silent and slow peers are cut off quickly,
/// but long enough for 90 clients to associate on a loaded debug build.
const ASSOCIATE_TIMEOUT_SECS: u64 = 3;
/// Server idle timeout: longer than the time the good clients may wait at the start barrier
/// after associating (the idle cut-off itself is exercised by the never-reading peer's test).
const IDLE_TIMEOUT_SECS: u64 = 10;
/// Idle timeout of the never-reading peer's test, which bounds the server's blocked writes.
const WRITE_CUT_IDLE_SECS: u64 = 2;
/// Upper bound for waiting on the server to drop a peer (a hang fails, it does not block).
const CLOSE_GUARD: Duration = Duration::from_secs(20);
/// Upper bound of the whole scenario.
const SCENARIO_GUARD: Duration = Duration::from_secs(50);
/// Delay between the bytes of a slow sender (a CN of ~200 octets takes ~10 s, the server allows 3).
const DRIBBLE_DELAY: Duration = Duration::from_millis(50);

const GOOD_CLIENTS: usize = 90;
const REQUESTS_PER_CLIENT: usize = 50;
const TASKS_PER_CLIENT: usize = 4;

const ANIN: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";
const ANIN_ITEM: &str = "GGIO1$MX$AnIn1$mag$f";
const VENDOR_ITEM: &str = "LLN0$DC$NamPlt$vendor";
const MOD_ITEM: &str = "LLN0$ST$Mod$stVal";
/// Every client writes the vendor's initial value, so concurrent read-backs stay deterministic.
const VENDOR: &str = "secmms";

fn server_config(idle_timeout_secs: u64) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.associate_timeout_secs = ASSOCIATE_TIMEOUT_SECS;
    cfg.server.idle_timeout_secs = idle_timeout_secs;
    cfg
}

async fn start_server(idle_timeout_secs: u64) -> ServerHandle {
    server_config(idle_timeout_secs)
        .server_builder()
        .bind()
        .await
        .expect("bind")
        .spawn()
        .expect("spawn")
}

/// Deterministic filler bytes (xorshift), so a failure is reproducible.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One TPKT (RFC 1006) around `payload`.
fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = payload.len() + 4;
    let mut v = vec![3, 0, (len >> 8) as u8, len as u8];
    v.extend_from_slice(payload);
    v
}

fn read_request(invoke_id: u32, item: &str) -> Vec<u8> {
    MmsPdu::ConfirmedRequest(ConfirmedRequest {
        invoke_id,
        service: ConfirmedServiceRequest::Read(ReadRequest {
            specification_with_result: false,
            spec: VariableAccessSpecification::single(ObjectName::domain("DEMOLD0", item)),
        }),
    })
    .encode()
}

/// What a peer received before the server closed the connection.
struct Closed {
    /// Octets received in all.
    total: usize,
    /// The first of them (at most 32), to show what the server said last.
    head: Vec<u8>,
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} octets back", self.total)?;
        if !self.head.is_empty() {
            write!(f, " ({})", hex::encode(&self.head))?;
        }
        Ok(())
    }
}

/// Waits until the server closes the connection (EOF or reset), or fails if it is still open
/// after [`CLOSE_GUARD`].
async fn wait_closed(stream: &mut TcpStream) -> Result<Closed, String> {
    let mut buf = vec![0u8; 4096];
    let mut c = Closed {
        total: 0,
        head: Vec::new(),
    };
    let r = tokio::time::timeout(CLOSE_GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let room = 32usize.saturating_sub(c.head.len()).min(n);
                    c.head.extend_from_slice(&buf[..room]);
                    c.total += n;
                }
            }
        }
    })
    .await;
    match r {
        Ok(()) => Ok(c),
        Err(_) => Err(format!(
            "server kept the connection open for {CLOSE_GUARD:?}"
        )),
    }
}

/// Reads once with a bound; Ok(0) means EOF.
async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, String> {
    match tokio::time::timeout(CLOSE_GUARD, stream.read(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(format!("read: {e}")),
        Err(_) => Err("no answer from the server".into()),
    }
}

/// Writes whatever the association queued.
async fn write_queued(stream: &mut TcpStream, assoc: &mut Association) -> Result<(), String> {
    while let Some(out) = assoc.poll_transmit() {
        stream
            .write_all(&out)
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    Ok(())
}

/// Feeds `first` and then whatever arrives to the association until it queues output (the CN
/// after the CC) or reports an event.
async fn next_output(
    stream: &mut TcpStream,
    assoc: &mut Association,
    first: &[u8],
) -> Result<Vec<u8>, String> {
    assoc.handle_input(first).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 8192];
    loop {
        if let Some(out) = assoc.poll_transmit() {
            return Ok(out);
        }
        if let Some(ev) = assoc.poll_event() {
            return Err(format!("unexpected event {ev:?}"));
        }
        let n = read_some(stream, &mut buf).await?;
        if n == 0 {
            return Err("closed by the server".into());
        }
        assoc.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// A complete association by a raw peer: CR, CC, CN/AARQ, AC/AARE.
async fn raw_associate(addr: &str) -> Result<(TcpStream, Association), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut assoc = Association::initiator(OsiConfig::default());
    assoc
        .connect(initiate_request_pdu(&ClientProposal::default()))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 8192];
    loop {
        write_queued(&mut stream, &mut assoc).await?;
        if let Some(ev) = assoc.poll_event() {
            return match ev {
                OsiEvent::AssociateConfirm { .. } => Ok((stream, assoc)),
                other => Err(format!("association failed: {other:?}")),
            };
        }
        let n = read_some(&mut stream, &mut buf).await?;
        if n == 0 {
            return Err("closed by the server while associating".into());
        }
        assoc.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// The TPKTs carrying one MMS PDU on an established raw association.
fn data_bytes(assoc: &mut Association, pdu: &[u8]) -> Result<Vec<u8>, String> {
    assoc.send_data(pdu).map_err(|e| e.to_string())?;
    assoc
        .poll_transmit()
        .ok_or_else(|| "nothing to send".to_string())
}

/// Reads until one MMS PDU arrives on a raw association.
async fn read_data(stream: &mut TcpStream, assoc: &mut Association) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; 8192];
    loop {
        if let Some(ev) = assoc.poll_event() {
            return match ev {
                OsiEvent::Data { pdu, .. } => Ok(pdu),
                other => Err(format!("unexpected event {other:?}")),
            };
        }
        let n = read_some(stream, &mut buf).await?;
        if n == 0 {
            return Err("closed by the server".into());
        }
        assoc.handle_input(&buf[..n]).map_err(|e| e.to_string())?;
    }
}

/// How a dribble ended.
enum Dribble {
    /// The server closed the connection after `sent` octets.
    Cut { sent: usize },
    /// Everything was sent; `received` is what arrived meanwhile.
    Finished { received: Vec<u8> },
}

/// Sends `bytes` one octet at a time with [`DRIBBLE_DELAY`] between them, watching for the server
/// closing the connection.
async fn dribble(stream: &mut TcpStream, bytes: &[u8]) -> Dribble {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    for (i, b) in bytes.iter().enumerate() {
        if stream.write_all(std::slice::from_ref(b)).await.is_err() {
            return Dribble::Cut { sent: i };
        }
        tokio::time::sleep(DRIBBLE_DELAY).await;
        loop {
            match stream.try_read(&mut buf) {
                Ok(0) => return Dribble::Cut { sent: i + 1 },
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return Dribble::Cut { sent: i + 1 },
            }
        }
    }
    Dribble::Finished { received }
}

/// The ten ways to misbehave of the acceptance test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// 4 KiB of random octets (not even a TPKT version).
    GarbageRandom,
    /// A TPKT header announcing 65 535 octets (over the pre-CC limit), then garbage.
    GarbageOversizedTpkt,
    /// A valid CR, then a TPKT with a bogus TPDU code followed by random octets.
    GarbageAfterCr,
    /// Connects and sends nothing.
    HalfOpenSilent,
    /// Sends a valid CR and nothing more.
    HalfOpenAfterCr,
    /// Sends the CR and then the CN/AARQ one octet at a time.
    SlowCrAndCn,
    /// Sends the CR at once, then the CN/AARQ one octet at a time.
    SlowCn,
    /// Associates, completes one read, sends half of the next request and closes (FIN).
    AbruptHalfRequest,
    /// Associates, sends a whole request and resets the connection without reading the answer.
    AbruptResetAfterRequest,
    /// Associates, completes one read, sends half of the next request and resets (RST).
    AbruptResetMidRequest,
}

const MISBEHAVIOURS: [Misbehaviour; 10] = [
    Misbehaviour::GarbageRandom,
    Misbehaviour::GarbageOversizedTpkt,
    Misbehaviour::GarbageAfterCr,
    Misbehaviour::HalfOpenSilent,
    Misbehaviour::HalfOpenAfterCr,
    Misbehaviour::SlowCrAndCn,
    Misbehaviour::SlowCn,
    Misbehaviour::AbruptHalfRequest,
    Misbehaviour::AbruptResetAfterRequest,
    Misbehaviour::AbruptResetMidRequest,
];

impl Misbehaviour {
    fn associates(self) -> bool {
        matches!(
            self,
            Misbehaviour::AbruptHalfRequest
                | Misbehaviour::AbruptResetAfterRequest
                | Misbehaviour::AbruptResetMidRequest
        )
    }
}

/// What a misbehaving peer saw.
#[derive(Debug)]
struct BadOutcome {
    kind: Misbehaviour,
    /// The server accepted the association (abrupt-close peers; a slow sender only if the server
    /// let it finish, which it should not).
    associated: bool,
    detail: String,
}

/// Runs one misbehaving peer. Setup happens before the barrier, the misbehaviour after it, so it
/// overlaps the good clients' requests.
async fn misbehave(
    addr: String,
    kind: Misbehaviour,
    seed: u64,
    barrier: Arc<Barrier>,
) -> Result<BadOutcome, String> {
    use Misbehaviour as M;
    let setup: Result<(TcpStream, Option<Association>), String> = if kind.associates() {
        raw_associate(&addr).await.map(|(s, a)| (s, Some(a)))
    } else {
        TcpStream::connect(&addr)
            .await
            .map(|s| (s, None))
            .map_err(|e| format!("connect: {e}"))
    };
    barrier.wait().await;
    let (mut stream, assoc) = setup?;
    let new_initiator = || -> Result<(Association, Vec<u8>), String> {
        let mut a = Association::initiator(OsiConfig::default());
        a.connect(initiate_request_pdu(&ClientProposal::default()))
            .map_err(|e| e.to_string())?;
        let cr = a.poll_transmit().ok_or("no CR")?;
        Ok((a, cr))
    };
    let out = |associated, detail: String| {
        Ok(BadOutcome {
            kind,
            associated,
            detail,
        })
    };
    match kind {
        M::GarbageRandom => {
            let mut g = garbage(seed, 4096);
            g[0] = 0x55;
            let _ = stream.write_all(&g).await;
            let got = wait_closed(&mut stream).await?;
            out(false, format!("closed after garbage, {got}"))
        }
        M::GarbageOversizedTpkt => {
            let mut g = vec![3, 0, 0xFF, 0xFF];
            g.extend(garbage(seed, 1000));
            let _ = stream.write_all(&g).await;
            let got = wait_closed(&mut stream).await?;
            out(
                false,
                format!("closed after a 65535-octet TPKT header, {got}"),
            )
        }
        M::GarbageAfterCr => {
            let (_, mut bytes) = new_initiator()?;
            bytes.extend(tpkt(&[0x02, 0x42, 0x99]));
            bytes.extend(garbage(seed, 512));
            let _ = stream.write_all(&bytes).await;
            let got = wait_closed(&mut stream).await?;
            out(false, format!("closed after CR + garbage, {got}"))
        }
        M::HalfOpenSilent => {
            let got = wait_closed(&mut stream).await?;
            out(false, format!("silent peer closed, {got}"))
        }
        M::HalfOpenAfterCr => {
            let (_, cr) = new_initiator()?;
            stream
                .write_all(&cr)
                .await
                .map_err(|e| format!("write CR: {e}"))?;
            let got = wait_closed(&mut stream).await?;
            if got.total == 0 {
                return Err("no CC before the close".into());
            }
            out(false, format!("CR-only peer closed, {got} (CC)"))
        }
        M::SlowCrAndCn | M::SlowCn => {
            let (mut a, cr) = new_initiator()?;
            let received = if kind == M::SlowCrAndCn {
                match dribble(&mut stream, &cr).await {
                    Dribble::Cut { sent } => {
                        return out(false, format!("cut after {sent} of {} CR octets", cr.len()))
                    }
                    Dribble::Finished { received } => received,
                }
            } else {
                stream
                    .write_all(&cr)
                    .await
                    .map_err(|e| format!("write CR: {e}"))?;
                Vec::new()
            };
            let cn = match next_output(&mut stream, &mut a, &received).await {
                Ok(cn) => cn,
                Err(e) => return out(false, format!("cut before the CC was read: {e}")),
            };
            match dribble(&mut stream, &cn).await {
                Dribble::Cut { sent } => {
                    out(false, format!("cut after {sent} of {} CN octets", cn.len()))
                }
                Dribble::Finished { received } => {
                    // The server let the whole CN through in time; it then sits idle and must
                    // still be cut by the idle timeout.
                    a.handle_input(&received).map_err(|e| e.to_string())?;
                    let associated =
                        matches!(a.poll_event(), Some(OsiEvent::AssociateConfirm { .. }));
                    wait_closed(&mut stream).await?;
                    out(associated, "whole CN sent before the cut".into())
                }
            }
        }
        M::AbruptHalfRequest | M::AbruptResetAfterRequest | M::AbruptResetMidRequest => {
            let mut a = assoc.ok_or("no association")?;
            if kind != M::AbruptResetAfterRequest {
                let req = data_bytes(&mut a, &read_request(1, ANIN_ITEM))?;
                stream
                    .write_all(&req)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let resp = read_data(&mut stream, &mut a).await?;
                match secmms_mms::MmsPdu::decode(&resp, &Default::default()) {
                    Ok(MmsPdu::ConfirmedResponse(r)) if r.invoke_id == 1 => {}
                    other => return Err(format!("bad answer to the raw read: {other:?}")),
                }
            }
            let req = data_bytes(&mut a, &read_request(2, VENDOR_ITEM))?;
            let part = if kind == M::AbruptResetAfterRequest {
                &req[..]
            } else {
                &req[..req.len() / 2]
            };
            stream
                .write_all(part)
                .await
                .map_err(|e| format!("write: {e}"))?;
            if kind == M::AbruptHalfRequest {
                let _ = stream.shutdown().await;
            } else {
                stream
                    .set_zero_linger()
                    .map_err(|e| format!("SO_LINGER: {e}"))?;
            }
            drop(stream);
            out(
                true,
                format!("dropped after {} of {} octets", part.len(), req.len()),
            )
        }
    }
}

/// One well-behaved association: `REQUESTS_PER_CLIENT` operations from `TASKS_PER_CLIENT` tasks
/// sharing the handle (several outstanding at once), then an orderly release.
async fn good_client(addr: String, cfg: Config, barrier: Arc<Barrier>) -> Result<usize, String> {
    let connected = cfg.client_builder().connect(&addr).await;
    barrier.wait().await;
    let client = connected.map_err(|e| format!("connect: {e}"))?;
    let mut tasks = Vec::new();
    for t in 0..TASKS_PER_CLIENT {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            for n in (t..REQUESTS_PER_CLIENT).step_by(TASKS_PER_CLIENT) {
                one_operation(&c, n)
                    .await
                    .map_err(|e| format!("operation {n}: {e}"))?;
                done += 1;
            }
            Ok::<usize, String>(done)
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.map_err(|e| format!("task: {e}"))??;
    }
    client
        .release()
        .await
        .map_err(|e| format!("release: {e}"))?;
    Ok(done)
}

/// Operation `n` of a good client: reads, GetNameList (domains and variables) and a write of the
/// vendor's unchanged value (every client writes the same, so the read-back is deterministic).
async fn one_operation(c: &Client, n: usize) -> Result<(), String> {
    let vendor = ObjectName::domain("DEMOLD0", VENDOR_ITEM);
    match n % 6 {
        0 => match c.read(ANIN).await.map_err(|e| e.to_string())? {
            Data::FloatingPoint(_) => Ok(()),
            other => Err(format!("AnIn1.mag.f read {other:?}")),
        },
        1 => match c.read_name(&vendor).await.map_err(|e| e.to_string())? {
            Data::VisibleString(s) if s == VENDOR => Ok(()),
            other => Err(format!("vendor read {other:?}")),
        },
        2 => {
            let vars = c.variables("DEMOLD0").await.map_err(|e| e.to_string())?;
            if vars.iter().any(|v| v == ANIN_ITEM) {
                Ok(())
            } else {
                Err(format!("{ANIN_ITEM} missing from {} variables", vars.len()))
            }
        }
        3 => c
            .write_name(&vendor, Data::VisibleString(VENDOR.into()))
            .await
            .map_err(|e| e.to_string()),
        4 => {
            let d = c.domains().await.map_err(|e| e.to_string())?;
            if d.iter().any(|d| d == "DEMOLD0") {
                Ok(())
            } else {
                Err(format!("domains {d:?}"))
            }
        }
        _ => {
            let name = ObjectName::domain("DEMOLD0", MOD_ITEM);
            match c.read_name(&name).await.map_err(|e| e.to_string())? {
                Data::Integer(1) => Ok(()),
                other => Err(format!("Mod.stVal read {other:?}")),
            }
        }
    }
}

/// A snapshot of the server counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    connections: u64,
    associations: u64,
    released: u64,
    failed: u64,
    requests: u64,
    refused: u64,
}

fn counts(s: &ServerStats) -> Counts {
    Counts {
        connections: s.connections.load(Ordering::Relaxed),
        associations: s.associations.load(Ordering::Relaxed),
        released: s.released.load(Ordering::Relaxed),
        failed: s.failed.load(Ordering::Relaxed),
        requests: s.requests.load(Ordering::Relaxed),
        refused: s.refused.load(Ordering::Relaxed),
    }
}

/// Polls the counters until `connections` were accepted and every one of them has ended
/// (released or failed); bounded by [`CLOSE_GUARD`].
async fn settled_counts(s: &ServerStats, connections: u64) -> Counts {
    let deadline = tokio::time::Instant::now() + CLOSE_GUARD;
    loop {
        let c = counts(s);
        let ended = c.released + c.failed + c.refused;
        if (c.connections >= connections && ended >= c.connections)
            || tokio::time::Instant::now() >= deadline
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_good_associations_survive_ten_misbehaving_peers() {
    let server = start_server(IDLE_TIMEOUT_SECS).await;
    let addr = server.addr.to_string();
    let client_cfg = Config::default();
    let barrier = Arc::new(Barrier::new(GOOD_CLIENTS + MISBEHAVIOURS.len()));

    let scenario = async {
        let mut bad = Vec::new();
        for (i, kind) in MISBEHAVIOURS.iter().enumerate() {
            bad.push(tokio::spawn(misbehave(
                addr.clone(),
                *kind,
                0x9E37_79B9_7F4A_7C15 ^ i as u64,
                barrier.clone(),
            )));
        }
        let mut good = Vec::new();
        for _ in 0..GOOD_CLIENTS {
            good.push(tokio::spawn(good_client(
                addr.clone(),
                client_cfg.clone(),
                barrier.clone(),
            )));
        }
        let mut good_results = Vec::new();
        for g in good {
            good_results.push(g.await.expect("good client task panicked"));
        }
        let mut bad_results = Vec::new();
        for b in bad {
            bad_results.push(b.await.expect("misbehaving peer task panicked"));
        }
        (good_results, bad_results)
    };
    let (good, bad) = tokio::time::timeout(SCENARIO_GUARD, scenario)
        .await
        .expect("the scenario did not finish in time (a peer or client hangs)");

    // Every good association completed every request.
    let failures: Vec<_> = good
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("client {i}: {e}")))
        .collect();
    assert!(failures.is_empty(), "good clients failed: {failures:#?}");
    let completed: usize = good.iter().map(|r| *r.as_ref().unwrap_or(&0)).sum();
    assert_eq!(completed, GOOD_CLIENTS * REQUESTS_PER_CLIENT);

    // Every misbehaving peer ran its scenario and was dropped by the server.
    let mut bad_ok = Vec::new();
    for (kind, r) in MISBEHAVIOURS.iter().zip(bad) {
        match r {
            Ok(o) => bad_ok.push(o),
            Err(e) => panic!("misbehaving peer {kind:?} did not play out: {e}"),
        }
    }
    for o in &bad_ok {
        eprintln!("{:?}: {}", o.kind, o.detail);
    }
    let bad_associated = bad_ok.iter().filter(|o| o.associated).count() as u64;

    // The server still accepts and serves.
    let extra = client_cfg
        .client_builder()
        .connect(&addr)
        .await
        .expect("a new client after the storm");
    for n in 0..6 {
        one_operation(&extra, n)
            .await
            .expect("request after the storm");
    }
    extra.release().await.expect("release after the storm");

    let total = (GOOD_CLIENTS + MISBEHAVIOURS.len() + 1) as u64;
    let c = settled_counts(&server.stats, total).await;
    eprintln!("server counters: {c:?}");
    assert_eq!(c.connections, total, "{c:?}");
    assert_eq!(c.refused, 0, "{c:?}");
    assert_eq!(c.released, GOOD_CLIENTS as u64 + 1, "{c:?}");
    assert_eq!(c.failed, MISBEHAVIOURS.len() as u64, "{c:?}");
    assert_eq!(c.associations, c.released + bad_associated, "{c:?}");
    assert!(
        c.requests >= (GOOD_CLIENTS * REQUESTS_PER_CLIENT) as u64,
        "{c:?}"
    );
    server.shutdown();
}

/// Hostile association payloads, each of which must end only its own connection.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A 65 535-octet TPKT of garbage as the first thing on the connection.
    HugeFirstTpkt,
    /// CR, then a 65 535-octet TPKT of garbage (over the negotiated TPDU size).
    HugeTpktAfterCc,
    /// CR, then DT TPDUs without EOT adding up past the 64 KiB TSDU limit.
    EndlessTsdu,
    /// A real CN/AARQ whose MMS initiate is a BER nesting bomb (3 000 indefinite-length levels).
    NestingBombAarq,
    /// A real CN/AARQ whose MMS initiate claims a 2 GiB length.
    HugeLengthAarq,
}

const HOSTILES: [Hostile; 5] = [
    Hostile::HugeFirstTpkt,
    Hostile::HugeTpktAfterCc,
    Hostile::EndlessTsdu,
    Hostile::NestingBombAarq,
    Hostile::HugeLengthAarq,
];

/// Runs one hostile peer; returns a description once the server has dropped it.
async fn hostile(addr: String, kind: Hostile) -> Result<String, String> {
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let initiate = match kind {
        Hostile::NestingBombAarq => [0x30u8, 0x80].repeat(3000),
        Hostile::HugeLengthAarq => vec![0xA8, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x80, 0x01, 0x00],
        _ => initiate_request_pdu(&ClientProposal::default()),
    };
    let mut a = Association::initiator(OsiConfig::default());
    a.connect(initiate).map_err(|e| e.to_string())?;
    let cr = a.poll_transmit().ok_or("no CR")?;
    let mut huge = vec![3, 0, 0xFF, 0xFF];
    huge.extend(garbage(7, 65_531));
    let sent = match kind {
        Hostile::HugeFirstTpkt => {
            let _ = stream.write_all(&huge).await;
            huge.len()
        }
        _ => {
            stream
                .write_all(&cr)
                .await
                .map_err(|e| format!("write CR: {e}"))?;
            let cn = next_output(&mut stream, &mut a, &[]).await?;
            match kind {
                Hostile::HugeTpktAfterCc => {
                    let _ = stream.write_all(&huge).await;
                    huge.len()
                }
                Hostile::EndlessTsdu => {
                    // DT without EOT: LI 2, code F0, TPDU-NR 0 (EOT bit clear); 2 052-octet TPKTs
                    // fit the negotiated 2 048-octet TPDU size.
                    let mut sent = 0;
                    for i in 0..40u64 {
                        let mut dt = vec![0x02, 0xF0, 0x00];
                        dt.extend(garbage(i + 1, 2045));
                        if stream.write_all(&tpkt(&dt)).await.is_err() {
                            break;
                        }
                        sent += 2052;
                    }
                    sent
                }
                _ => {
                    let _ = stream.write_all(&cn).await;
                    cn.len()
                }
            }
        }
    };
    let got = wait_closed(&mut stream).await?;
    Ok(format!("{kind:?}: sent {sent} octets, {got}, then closed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_association_payloads_are_cut_off_without_harming_others() {
    let server = start_server(IDLE_TIMEOUT_SECS).await;
    let addr = server.addr.to_string();
    let cfg = Config::default();
    let client = cfg
        .client_builder()
        .connect(&addr)
        .await
        .expect("good client");

    let scenario = async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for t in 0..TASKS_PER_CLIENT {
            let c = client.clone();
            let stop = stop.clone();
            workers.push(tokio::spawn(async move {
                let mut done = 0usize;
                // At least a few rounds, then until the hostile peers are done (bounded).
                for n in (t..).step_by(TASKS_PER_CLIENT).take(5_000) {
                    if done >= 12 && stop.load(Ordering::Relaxed) {
                        break;
                    }
                    one_operation(&c, n)
                        .await
                        .map_err(|e| format!("operation {n}: {e}"))?;
                    done += 1;
                }
                Ok::<usize, String>(done)
            }));
        }
        let mut peers = Vec::new();
        for kind in HOSTILES {
            peers.push(tokio::spawn(hostile(addr.clone(), kind)));
        }
        let mut outcomes = Vec::new();
        for p in peers {
            outcomes.push(p.await.expect("hostile peer task panicked"));
        }
        stop.store(true, Ordering::Relaxed);
        let mut done = 0;
        for w in workers {
            done += w
                .await
                .expect("worker panicked")
                .expect("good client request failed");
        }
        (outcomes, done)
    };
    let (outcomes, done) = tokio::time::timeout(SCENARIO_GUARD, scenario)
        .await
        .expect("the scenario did not finish in time");
    for o in &outcomes {
        match o {
            Ok(s) => eprintln!("{s}"),
            Err(e) => panic!("hostile peer not cut off cleanly: {e}"),
        }
    }
    eprintln!("good client completed {done} operations meanwhile");
    assert!(done >= 12 * TASKS_PER_CLIENT);
    assert!(!client.is_closed());
    client.release().await.expect("release");

    let total = HOSTILES.len() as u64 + 1;
    let c = settled_counts(&server.stats, total).await;
    eprintln!("server counters: {c:?}");
    assert_eq!(c.connections, total, "{c:?}");
    assert_eq!(c.released, 1, "{c:?}");
    assert_eq!(c.failed, HOSTILES.len() as u64, "{c:?}");
    assert_eq!(c.associations, 1, "{c:?}");
    server.shutdown();
}

/// A peer that associates and then pipelines requests without ever reading the responses: once
/// the socket buffers are full the server cannot write; it must still give the association up
/// (bounded by its timeouts) instead of holding the task and its slot forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_never_reads_is_cut_off() {
    let server = start_server(WRITE_CUT_IDLE_SECS).await;
    let addr = server.addr.to_string();
    let (mut stream, mut assoc) = raw_associate(&addr).await.expect("raw association");
    let writer = tokio::spawn(async move {
        let mut written = 0usize;
        for id in 1..=1_000_000u32 {
            let req = MmsPdu::ConfirmedRequest(ConfirmedRequest {
                invoke_id: id,
                service: ConfirmedServiceRequest::GetNameList(secmms_mms::GetNameListRequest {
                    object_class: secmms_mms::ObjectClass::NAMED_VARIABLE,
                    scope: secmms_mms::ObjectScope::Domain("DEMOLD0".into()),
                    continue_after: None,
                }),
            })
            .encode();
            let Ok(bytes) = data_bytes(&mut assoc, &req) else {
                break;
            };
            if stream.write_all(&bytes).await.is_err() {
                break;
            }
            written += bytes.len();
        }
        written
    });
    // A good client next to it is served normally.
    let client = Config::default()
        .client_builder()
        .connect(&addr)
        .await
        .expect("good client");
    for n in 0..12 {
        one_operation(&client, n).await.expect("good request");
    }
    client.release().await.expect("release");

    let deadline = tokio::time::Instant::now() + CLOSE_GUARD;
    let c = loop {
        let c = counts(&server.stats);
        if c.failed >= 1 || tokio::time::Instant::now() >= deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("server counters: {c:?}");
    let finished = writer.is_finished();
    writer.abort();
    assert_eq!(
        c.failed, 1,
        "the server still holds the association of a peer that never reads ({c:?})"
    );
    assert!(c.released >= 1, "{c:?}");
    eprintln!("writer finished on its own: {finished}");
    server.shutdown();
}

/// A peer that pipelines far past its negotiated outstanding limit in one write: every request
/// gets exactly one answer, but only up to the limit are served between two writes of the
/// server; the rest are rejected (max-serv-outstanding-exceeded) instead of being executed and
/// held, and the association goes on.
#[tokio::test]
async fn pipelining_past_the_negotiated_limit_is_rejected() {
    let mut cfg = server_config(30);
    // Whole bursts per write, so every request of the burst meets the same count.
    cfg.server.response_group = Some(0);
    let h = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    let (mut stream, mut assoc) = raw_associate(&h.addr.to_string()).await.unwrap();
    let limit = usize::from(
        ClientProposal::default()
            .max_serv_outstanding_calling
            .min(16),
    );
    let n = 3 * limit + 7;
    let mut burst = Vec::new();
    for i in 0..n {
        burst.extend(
            data_bytes(
                &mut assoc,
                &read_request(i as u32 + 1, "LLN0$DC$NamPlt$vendor"),
            )
            .unwrap(),
        );
    }
    stream.write_all(&burst).await.unwrap();
    let (mut served, mut rejected) = (0, 0);
    for _ in 0..n {
        let pdu = read_data(&mut stream, &mut assoc).await.unwrap();
        match MmsPdu::decode(&pdu, &Default::default()).unwrap() {
            MmsPdu::ConfirmedResponse(_) => served += 1,
            MmsPdu::Reject(r) => {
                assert_eq!(
                    r.reason.code,
                    secmms_mms::error::reject_code::MAX_SERV_OUTSTANDING_EXCEEDED
                );
                rejected += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(served + rejected, n);
    assert!(served >= limit, "served {served} of {n}");
    assert!(rejected > 0, "nothing rejected: served {served} of {n}");
    // The association still works.
    stream
        .write_all(&data_bytes(&mut assoc, &read_request(9999, "LLN0$DC$NamPlt$vendor")).unwrap())
        .await
        .unwrap();
    let pdu = read_data(&mut stream, &mut assoc).await.unwrap();
    assert!(matches!(
        MmsPdu::decode(&pdu, &Default::default()).unwrap(),
        MmsPdu::ConfirmedResponse(_)
    ));
    h.shutdown();
}
