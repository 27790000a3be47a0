//! Issue 17: the application-security checks of AARQs limited in concurrency and rate
//! (`server.max_security_checks`, `server.security_check_rate`), like the TLS handshakes. A
//! flood of native-mode associations whose application certificates come from a CA the server
//! does not trust (each one refused after its E2E checks) makes AARQs wait for a place
//! (`ServerStats::checks_delayed`) while a legitimate client still gets its association; with
//! no place to be had before the set-up deadline, the AARQ is not checked, the connection is
//! aborted and a `CHECK_REFUSED` event says why.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms::security::AppMode;
use secmms::Config;
use secmms_pki::event::{MemorySink, SecurityEventSink};
use secmms_tools::demo::DemoPki;

fn native(pki: &DemoPki, server: bool) -> Config {
    let mut cfg = Config::default();
    cfg.security.mode = AppMode::Native;
    let (cert, key) = if server {
        &pki.server_app
    } else {
        &pki.client_app
    };
    cfg.security.app_cert = Some(cert.clone());
    cfg.security.app_key = Some(key.clone());
    cfg.security.ca = vec![pki.ca.clone()];
    cfg.client.request_timeout_secs = 10;
    cfg
}

/// A client of `stranger` (its own CA, unknown to the server) that trusts the server's CA, so
/// its association gets as far as the server's checks and is refused there.
fn flooder(stranger: &DemoPki, pki: &DemoPki) -> Config {
    let mut cfg = native(stranger, false);
    cfg.security.ca = vec![pki.ca.clone()];
    cfg
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("secmms-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn server(
    pki: &DemoPki,
    max: usize,
    rate: u32,
    associate_secs: u64,
) -> (secmms::server::ServerHandle, Arc<MemorySink>) {
    let events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = events.clone();
    let mut cfg = native(pki, true);
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.max_security_checks = max;
    cfg.server.security_check_rate = rate;
    cfg.server.associate_timeout_secs = associate_secs;
    let h = cfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    (h, events)
}

/// `n` tasks each starting the next refused association as soon as the last ended; returns the
/// stop flag and the tasks (their results: attempts made).
fn flood(n: usize, cfg: &Config, addr: &str) -> (Arc<AtomicBool>, tokio::task::JoinSet<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (stop, cfg, addr) = (stop.clone(), cfg.clone(), addr.to_string());
        set.spawn(async move {
            let mut attempts = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = cfg.client_builder().connect(&addr).await;
                assert!(r.is_err(), "an untrusted client was let in");
                attempts += 1;
            }
            attempts
        });
    }
    (stop, set)
}

fn pkis(tag: &str) -> (DemoPki, DemoPki) {
    let dir = temp(tag);
    let pki = DemoPki::create(&dir).unwrap();
    let stranger = DemoPki::create(Path::new(&dir)).unwrap();
    (pki, stranger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aarq_flood_waits_for_check_places_and_the_legitimate_client_gets_in() {
    let (pki, stranger) = pkis("check-limits");
    let (h, _events) = server(&pki, 2, 20, 10).await;
    let addr = h.addr.to_string();
    let (stop, mut set) = flood(16, &flooder(&stranger, &pki), &addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ccfg = native(&pki, false);
    let mut took = Vec::new();
    for i in 0..5 {
        let start = Instant::now();
        let c = ccfg
            .client_builder()
            .connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("legitimate association {i} failed: {e}"));
        took.push(start.elapsed());
        c.identify().await.unwrap();
        c.release().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut attempts = 0;
    while let Some(n) = set.join_next().await {
        attempts += n.unwrap();
    }
    let delayed = h.stats.checks_delayed.load(Ordering::Relaxed);
    let refused = h.stats.checks_refused.load(Ordering::Relaxed);
    eprintln!("{attempts} flood AARQs, {delayed} delayed, {refused} refused; legitimate {took:?}");
    assert!(
        delayed > 10,
        "the limit never acted: {delayed} delayed of {attempts}"
    );
    // 20 checks a second at most: the flood got no more than that (plus the burst of 20).
    let secs = took.iter().sum::<Duration>().as_secs_f64() + 0.5;
    assert!(
        f64::from(attempts) <= 20.0 * (secs + 2.0) + 20.0,
        "{attempts} AARQs checked in {secs:.1} s, past 20 a second"
    );
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(5)),
        "legitimate associations: {took:?}"
    );
    h.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aarq_without_a_check_place_before_its_deadline_is_aborted_with_an_event() {
    let (pki, stranger) = pkis("check-refused");
    // One check a second, one at a time, one second to set an association up.
    let (h, events) = server(&pki, 1, 1, 1).await;
    let addr = h.addr.to_string();
    let (stop, mut set) = flood(8, &flooder(&stranger, &pki), &addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.stats.checks_refused.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(n) = set.join_next().await {
        n.unwrap();
    }
    let refused = h.stats.checks_refused.load(Ordering::Relaxed);
    assert!(refused >= 3, "no AARQ was refused for want of a place");
    let ev = events.events();
    let e = ev
        .iter()
        .find(|e| e.mnemonic == "CHECK_REFUSED")
        .unwrap_or_else(|| panic!("no CHECK_REFUSED event: {ev:?}"));
    assert!(
        e.message.contains("server.max_security_checks")
            || e.message.contains("server.security_check_rate"),
        "{}",
        e.message
    );
    assert!(
        e.association
            .as_deref()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{:?}",
        e.association
    );
    h.shutdown();
}

#[tokio::test]
async fn plain_mode_is_not_gated() {
    // A plain server with checks limited to nothing at all still serves: plain AARQs have no
    // security checks to wait for.
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.max_security_checks = 1;
    cfg.server.security_check_rate = 1;
    cfg.server.worker_threads = Some(0);
    let h = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    for _ in 0..5 {
        let c = Config::default()
            .client_builder()
            .connect(&h.addr.to_string())
            .await
            .unwrap();
        c.release().await.unwrap();
    }
    assert_eq!(h.stats.checks_delayed.load(Ordering::Relaxed), 0);
    h.shutdown();
}
