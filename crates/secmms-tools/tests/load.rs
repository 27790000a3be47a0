//! The load generator (a `RequestLoop` that `secmms bench` runs inside the association task
//! through `Client::run_loop`) against the server's `response_group` (pipelined answers written
//! in groups): every request is answered and counted, failures are counted as errors, the load
//! shares the negotiated outstanding-requests limit with ordinary requests, and a lost
//! association ends the load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms::{Client, ClientError, Config, ServerHandle};
use secmms_mms::{
    ConfirmedServiceRequest, Data, ObjectName, ReadRequest, VariableAccessSpecification,
};
use secmms_tools::load::{self, LoadOutcome, LoadSpec};

const ANIN: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";

async fn start_server(response_group: Option<usize>) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.response_group = response_group;
    cfg.server_builder()
        .bind()
        .await
        .expect("bind")
        .spawn()
        .expect("spawn")
}

/// Associates with `server` and resolves the variable the loads read.
async fn associate(server: &ServerHandle) -> (Client, ObjectName) {
    let c = Config::default()
        .client_builder()
        .connect(&server.addr.to_string())
        .await
        .expect("associate");
    let name = c.resolve(ANIN).await.expect("resolve");
    (c, name)
}

fn read_of(name: ObjectName) -> ConfirmedServiceRequest {
    ConfirmedServiceRequest::Read(ReadRequest {
        specification_with_result: false,
        spec: VariableAccessSpecification::single(name),
    })
}

async fn run_load(
    c: &Client,
    service: ConfirmedServiceRequest,
    outstanding: usize,
    ms: u64,
) -> (Result<LoadOutcome, ClientError>, u64) {
    let completed = Arc::new(AtomicU64::new(0));
    let spec = LoadSpec {
        service,
        outstanding,
        duration: Duration::from_millis(ms),
        completed: completed.clone(),
    };
    let r = load::run(c, spec).await;
    (r, completed.load(Ordering::Relaxed))
}

#[tokio::test]
async fn load_answers_every_request_for_each_response_group() {
    for group in [None, Some(0), Some(1), Some(3), Some(4), Some(16)] {
        let server = start_server(group).await;
        let (c, name) = associate(&server).await;
        assert!(c.runs_loops());
        let before = server.stats.requests.load(Ordering::Relaxed);
        let (r, completed) = run_load(&c, read_of(name.clone()), 16, 300).await;
        let o = r.expect("load");
        assert_eq!(o.errors, 0, "group {group:?}");
        assert!(
            o.latency.count() > 16,
            "group {group:?}: {}",
            o.latency.count()
        );
        assert_eq!(completed, o.latency.count(), "group {group:?}");
        // The server answered exactly what the load counted: nothing lost or invented.
        let served = server.stats.requests.load(Ordering::Relaxed) - before;
        assert_eq!(served, o.latency.count(), "group {group:?}");
        // The association is intact afterwards.
        assert!(matches!(
            c.read_name(&name).await.expect("read after load"),
            Data::FloatingPoint(_)
        ));
        c.release().await.expect("release");
        server.shutdown();
    }
}

#[tokio::test]
async fn failed_accesses_are_errors_not_answers() {
    let server = start_server(None).await;
    let c = Config::default()
        .client_builder()
        .connect(&server.addr.to_string())
        .await
        .expect("associate");
    let missing = ObjectName::domain("DEMOLD0", "GGIO1$MX$NoSuch$mag$f");
    let (r, completed) = run_load(&c, read_of(missing), 4, 200).await;
    let o = r.expect("load");
    assert_eq!(o.latency.count(), 0);
    assert_eq!(completed, 0);
    assert!(o.errors > 4, "{}", o.errors);
    c.release().await.expect("release");
}

#[tokio::test]
async fn load_shares_the_outstanding_limit_and_runs_one_at_a_time() {
    let server = start_server(None).await;
    let (c, name) = associate(&server).await;
    let max = usize::from(c.negotiated().max_serv_outstanding_calling);
    // Half the limit under load: ordinary requests get through beside it.
    let bg = {
        let (c, name) = (c.clone(), name.clone());
        tokio::spawn(async move { run_load(&c, read_of(name), max / 2, 600).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..20 {
        c.read_name(&name).await.expect("read beside the load");
    }
    assert!(
        !bg.is_finished(),
        "the reads went through while the load ran"
    );
    // A second load on the same association is refused while the first runs.
    let (second, _) = run_load(&c, read_of(name.clone()), 1, 100).await;
    assert!(
        matches!(
            second,
            Err(ClientError::Usage(secmms::client::UsageError::LoopRunning))
        ),
        "{second:?}"
    );
    let (first, _) = bg.await.expect("task");
    assert_eq!(first.expect("first load").errors, 0);

    // The whole limit under load: an ordinary request waits until the load gives its slots back.
    let bg = {
        let (c, name) = (c.clone(), name.clone());
        tokio::spawn(async move { run_load(&c, read_of(name), max, 600).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.read_name(&name).await.expect("read after the load");
    assert!(
        bg.is_finished(),
        "a request went out beyond the negotiated limit"
    );
    let (full, _) = bg.await.expect("task");
    assert_eq!(full.expect("full load").errors, 0);
    c.release().await.expect("release");
}

#[tokio::test]
async fn aborted_association_ends_the_load_with_its_requests_counted_lost() {
    let server = start_server(None).await;
    let (c, name) = associate(&server).await;
    let bg = {
        let (c, name) = (c.clone(), name.clone());
        tokio::spawn(async move { run_load(&c, read_of(name), 8, 10_000).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    c.abort().await;
    let (r, completed) = tokio::time::timeout(Duration::from_secs(5), bg)
        .await
        .expect("the load ends with the association")
        .expect("task");
    let o = r.expect("outcome of the lost load");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(o.latency.count() > 0);
    assert_eq!(completed, o.latency.count());
    assert!(o.errors >= 1, "requests in flight at the abort are lost");
    assert!(c.is_closed());
}

/// `secmms bench`'s own entry point over TLS with each application-security mode: the load runs
/// through the same protection path as every other request (E2E protect/verify in native mode).
#[tokio::test]
async fn bench_runs_the_load_over_tls_with_each_application_mode() {
    use secmms::security::{AppMode, Encrypt};
    use secmms_tools::bench::{self, BenchParams};
    use secmms_tools::demo::DemoPki;

    let pki = DemoPki::create(&std::env::temp_dir()).expect("pki");
    for (mode, encrypt) in [
        (AppMode::Plain, Encrypt::Gcm),
        (AppMode::Compat, Encrypt::Gcm),
        (AppMode::Native, Encrypt::Gcm),
        (AppMode::Native, Encrypt::Cbc),
        (AppMode::Native, Encrypt::None),
    ] {
        let mut scfg = Config::default();
        scfg.server.listen = "127.0.0.1:0".into();
        scfg.tls = pki.tls_config(true);
        pki.apply_security(&mut scfg, true, mode, encrypt);
        let server = scfg
            .server_builder()
            .bind()
            .await
            .expect("bind")
            .spawn()
            .expect("spawn");
        let mut ccfg = Config {
            tls: pki.tls_config(false),
            ..Config::default()
        };
        pki.apply_security(&mut ccfg, false, mode, encrypt);
        let before = server.stats.requests.load(Ordering::Relaxed);
        let report = bench::run(
            BenchParams {
                addr: server.addr.to_string(),
                associations: 2,
                outstanding: 8,
                duration: Duration::from_millis(400),
                reference: ANIN.into(),
                config: ccfg,
            },
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{mode:?}/{encrypt:?}: {e}"));
        assert_eq!(report.errors, 0, "{mode:?}/{encrypt:?}");
        assert!(
            report.requests > 16,
            "{mode:?}/{encrypt:?}: {}",
            report.requests
        );
        // Every counted answer was served (plus the probe's resolve/read before the load).
        let served = server.stats.requests.load(Ordering::Relaxed) - before;
        assert!(served >= report.requests, "{served} < {}", report.requests);
        server.shutdown();
    }
}

#[tokio::test]
async fn usage_errors_are_typed() {
    use secmms::client::UsageError;
    let server = start_server(None).await;
    let (c, _) = associate(&server).await;
    match c.read("not a reference").await {
        Err(ClientError::Usage(UsageError::Reference { reference, .. })) => {
            assert_eq!(reference, "not a reference")
        }
        other => panic!("{other:?}"),
    }
    match c.read("DEMOLD0/NOSUCH1.X.y").await {
        Err(ClientError::Usage(UsageError::NoSuchAttribute { reference })) => {
            assert_eq!(reference, "DEMOLD0/NOSUCH1.X.y")
        }
        other => panic!("{other:?}"),
    }
    c.release().await.unwrap();
}
