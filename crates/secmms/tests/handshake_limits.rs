//! Issue 17: TLS handshakes limited in concurrency and rate (`server.max_handshakes`,
//! `server.handshake_rate`). A flood of full ClientHellos from 127.0.0.3 (handshakes that
//! fail at the end, without a client certificate) makes new connections wait for a slot
//! (`ServerStats::handshakes_delayed`) while a legitimate client still gets its association.

mod tls_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslVersion};
use secmms::Config;
use tls_support::*;

/// One handshake from 127.0.0.3 without a client certificate (the server refuses it at the
/// end, after its own private-key operation).
async fn hello(addr: std::net::SocketAddr, connector: &SslConnector) {
    let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
        return;
    };
    if sock.bind(([127, 0, 0, 3], 0).into()).is_err() {
        return;
    }
    let Ok(tcp) = sock.connect(addr).await else {
        return;
    };
    let Ok(ssl) = connector
        .configure()
        .map(|c| c.verify_hostname(false))
        .and_then(|c| c.into_ssl("localhost"))
    else {
        return;
    };
    if let Ok(mut s) = tokio_openssl::SslStream::new(ssl, tcp) {
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            std::pin::Pin::new(&mut s).connect(),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clienthello_flood_waits_for_handshake_slots_and_the_legitimate_client_gets_in() {
    let p = Pki::generate();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.max_handshakes = 4;
    cfg.server.handshake_rate = 40;
    cfg.tls = p.config(&p.server);
    cfg.tls.tls13 = false;
    let h = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    let addr = h.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let connector = Arc::new(b.build());
    // 32 flooders, each starting the next handshake as soon as the last ended.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (stop, connector) = (stop.clone(), connector.clone());
        flood.spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                hello(addr, &connector).await;
                n += 1;
            }
            n
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ccfg = Config::default();
    ccfg.client.request_timeout_secs = 10;
    ccfg.tls = p.config(&p.client);
    let mut took = Vec::new();
    for i in 0..5 {
        let start = Instant::now();
        let c = ccfg
            .client_builder()
            .connect(&addr.to_string())
            .await
            .unwrap_or_else(|e| panic!("legitimate association {i} failed: {e}"));
        took.push(start.elapsed());
        c.release().await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let mut hellos = 0;
    while let Some(n) = flood.join_next().await {
        hellos += n.unwrap();
    }
    let delayed = h.stats.handshakes_delayed.load(Ordering::Relaxed);
    let refused_tls = h.stats.tls_refused.load(Ordering::Relaxed);
    eprintln!(
        "{hellos} flood handshakes, {delayed} delayed, {refused_tls} refused; legitimate {took:?}"
    );
    assert!(
        delayed > 10,
        "the limit never acted: {delayed} delayed of {hellos}"
    );
    // 40 handshakes a second at most: the flood started no more than that (plus the burst).
    let secs = took.iter().sum::<Duration>().as_secs_f64() + 0.5;
    assert!(
        f64::from(hellos) <= 40.0 * (secs + 2.0) + 40.0,
        "{hellos} handshakes in {secs:.1} s past 40 a second"
    );
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(5)),
        "legitimate associations: {took:?}"
    );
    h.shutdown();
}
