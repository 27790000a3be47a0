//! Key refresh on the T-profile (IEC 62351-4 §6.2, IEC 62351-3 §7): TLS 1.2 renegotiation
//! (RFC 5746) after the configured byte count and after the configured interval, TLS 1.3
//! KeyUpdate, forced renegotiation (as after a CRL update), all while MMS reads continue without
//! error; fresh keys are proven by new master secrets in the key log. A peer that refuses to
//! renegotiate is cut off with `TLS_RENEG_INTERVAL_EXPIRED`.

mod tls_support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslOptions, SslVersion};
use secmms::tls::TlsConfig;
use secmms::{Config, ServerHandle};
use secmms_pki::event::SecurityEventSink;
use tls_support::*;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

const REF: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";

async fn start(tls: TlsConfig, events: Arc<dyn SecurityEventSink>) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls = tls;
    cfg.server_builder()
        .events(events)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

fn client_config(tls13: bool) -> Config {
    let p = pki();
    let mut cfg = Config::default();
    cfg.client.request_timeout_secs = 10;
    cfg.tls = p.config(&p.client);
    cfg.tls.tls13 = tls13;
    cfg
}

/// Distinct TLS 1.2 master secrets in an NSS key log.
fn master_secrets(path: &std::path::Path) -> HashSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("CLIENT_RANDOM "))
        .filter_map(|l| l.split(' ').nth(2).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn tls12_renegotiation_after_byte_count() {
    let p = pki();
    let dir = temp_dir("reneg-bytes");
    let keylog = dir.join("keys.log");
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.renegotiation_bytes = 20_000;
    scfg.keylog_file = Some(keylog.clone());
    let h = start(scfg, sink).await;
    let c = client_config(false)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    // About 60 000 octets each way: at least two renegotiations in the middle of the reads.
    for i in 0..400 {
        c.read_name(&name)
            .await
            .unwrap_or_else(|e| panic!("read {i} failed during renegotiation: {e}"));
    }
    c.release().await.unwrap();
    let stats = h.tls_stats.clone().unwrap();
    let renegs = stats.renegotiations.load(Ordering::Relaxed);
    assert!(renegs >= 2, "renegotiations: {renegs}");
    let secrets = master_secrets(&keylog);
    assert!(
        secrets.len() as u64 > renegs,
        "each renegotiation must give fresh keys: {} secrets, {renegs} renegotiations",
        secrets.len()
    );
    assert!(mnemonics(&ev).contains(&"TLS_KEYS_REFRESHED"));
    assert!(!mnemonics(&ev).contains(&"TLS_RENEG_INTERVAL_EXPIRED"));
    h.shutdown();
}

#[tokio::test]
async fn tls12_forced_renegotiation_as_after_crl_update() {
    let p = pki();
    let dir = temp_dir("reneg-forced");
    let keylog = dir.join("keys.log");
    let (_ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.keylog_file = Some(keylog.clone());
    let h = start(scfg, sink).await;
    let stats = h.tls_stats.clone().unwrap();
    let c = client_config(false)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    c.read_name(&name).await.unwrap();
    assert_eq!(stats.renegotiations.load(Ordering::Relaxed), 0);
    h.tls_trigger.as_ref().unwrap().force();
    for _ in 0..20 {
        c.read_name(&name).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.release().await.unwrap();
    assert!(stats.renegotiations.load(Ordering::Relaxed) >= 1);
    assert!(master_secrets(&keylog).len() >= 2);
    h.shutdown();
}

#[tokio::test]
async fn tls13_key_update_after_byte_count() {
    let p = pki();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.renegotiation_bytes = 10_000;
    let h = start(scfg, sink).await;
    let c = client_config(true)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    for _ in 0..200 {
        c.read_name(&name).await.unwrap();
    }
    c.release().await.unwrap();
    let stats = h.tls_stats.clone().unwrap();
    assert!(stats.key_updates.load(Ordering::Relaxed) >= 2);
    assert!(mnemonics(&ev).contains(&"TLS_KEYS_REFRESHED"));
    h.shutdown();
}

/// The interval trigger: the shortest interval the configuration allows (§6.2: 1 min), with MMS
/// reads every 250 ms meanwhile. Takes a little over a minute.
#[tokio::test]
async fn tls12_renegotiation_after_interval() {
    let p = pki();
    let dir = temp_dir("reneg-interval");
    let keylog = dir.join("keys.log");
    let (_ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.renegotiation_interval_secs = secmms::tls::MIN_RENEGOTIATION_INTERVAL_SECS;
    scfg.resumption_lifetime_secs = 30;
    scfg.keylog_file = Some(keylog.clone());
    let h = start(scfg, sink).await;
    let c = client_config(false)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    let stats = h.tls_stats.clone().unwrap();
    let start = tokio::time::Instant::now();
    while stats.renegotiations.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no renegotiation after the interval"
        );
        c.read_name(&name).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(start.elapsed() >= Duration::from_secs(55));
    for _ in 0..5 {
        c.read_name(&name).await.unwrap();
    }
    c.release().await.unwrap();
    assert!(master_secrets(&keylog).len() >= 2);
    h.shutdown();
}

#[tokio::test]
async fn peer_that_refuses_renegotiation_is_cut_off() {
    let p = pki();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.renegotiation_bytes = 2_000;
    scfg.renegotiation_grace_secs = 1;
    let h = start(scfg, sink).await;
    // A client that answers every HelloRequest with no_renegotiation.
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_ca_file(&p.ca.cert_pem).unwrap();
    b.set_certificate_file(&p.client.cert_pem, SslFiletype::PEM)
        .unwrap();
    b.set_private_key_file(&p.client.key_pem, SslFiletype::PEM)
        .unwrap();
    b.set_options(SslOptions::NO_RENEGOTIATION);
    let conn = b.build();
    let ssl = conn
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("localhost")
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut s).connect().await.unwrap();
    let mut cfg = Config::default();
    cfg.client.request_timeout_secs = 3;
    let c = cfg.client_builder().associate(s).await.unwrap();
    let name = c.resolve(REF).await.unwrap();
    let mut failed = false;
    for i in 0..200 {
        if let Err(e) = c.read_name(&name).await {
            eprintln!("read {i} failed: {e}");
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        failed,
        "the server must cut off a peer that does not renegotiate"
    );
    assert!(
        wait_for(&ev, "TLS_RENEG_INTERVAL_EXPIRED").await,
        "{:?}",
        mnemonics(&ev)
    );
    h.shutdown();
}

/// A CRL update revoking the connected client: the periodic re-evaluation (1 s here) sees the
/// changed file, every association renegotiates, the client's certificate is checked again and
/// refused with `TLS_CERT_REVOKED` (§6.2 DECISION, IEC TS 62351-100-3 test 6.2.6).
async fn crl_update_cuts_off_revoked_peer(tls13: bool) {
    let p = pki();
    let dir = temp_dir("crl-update");
    let crl = dir.join("ca.crl.pem");
    std::fs::write(&crl, crl_pem(&make_crl_at(&p.ca, &[], -86_400, 7))).unwrap();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = tls13;
    scfg.crl = vec![crl.clone()];
    scfg.crl_evaluation_period_secs = 1;
    let h = start(scfg, sink).await;
    let c = client_config(tls13)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    for _ in 0..5 {
        c.read_name(&name).await.unwrap();
    }
    // The client certificate (serial 11) is revoked by a newer CRL. The client stays idle: the
    // server must act on its own (the periodic evaluation wakes the idle association).
    std::fs::write(&crl, crl_pem(&make_crl_at(&p.ca, &[11], -60, 7))).unwrap();
    assert!(
        wait_for(&ev, "TLS_CERT_REVOKED").await,
        "revoked while idle: {:?}",
        ev.events()
    );
    let mut failed = false;
    for _ in 0..100 {
        if c.read_name(&name).await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        failed,
        "the revoked peer must be cut off; events {:?}",
        ev.events()
    );
    assert!(wait_for(&ev, "TLS_CERT_REVOKED").await, "{:?}", ev.events());
    // New connections with that certificate are refused too.
    assert!(client_config(tls13)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .is_err());
    h.shutdown();
}

#[tokio::test]
async fn crl_update_forces_renegotiation_and_cuts_off_revoked_peer_tls12() {
    crl_update_cuts_off_revoked_peer(false).await;
}

#[tokio::test]
async fn crl_update_revalidates_and_cuts_off_revoked_peer_tls13() {
    crl_update_cuts_off_revoked_peer(true).await;
}

/// A peer that never answers our HelloRequest (it stops reading) is cut off once the grace time
/// is over, with `TLS_RENEG_INTERVAL_EXPIRED` ("session renegotiation interval expired").
#[tokio::test]
async fn silent_peer_misses_renegotiation_and_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let p = pki();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.renegotiation_bytes = 1;
    scfg.renegotiation_grace_secs = 1;
    let h = start(scfg, sink).await;
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_ca_file(&p.ca.cert_pem).unwrap();
    b.set_certificate_file(&p.client.cert_pem, SslFiletype::PEM)
        .unwrap();
    b.set_private_key_file(&p.client.key_pem, SslFiletype::PEM)
        .unwrap();
    let ssl = b
        .build()
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("localhost")
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut s).connect().await.unwrap();
    // A COTP CR (TPKT, class 0, calling/called TSEL 0001): the server reads it, answers, and
    // its byte count asks for a renegotiation; we never read again.
    let cr = [
        0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc0, 0x01, 0x0b, 0xc1,
        0x02, 0x00, 0x01, 0xc2, 0x02, 0x00, 0x01,
    ];
    s.write_all(&cr).await.unwrap();
    s.flush().await.unwrap();
    assert!(
        wait_for(&ev, "TLS_RENEG_INTERVAL_EXPIRED").await,
        "{:?}",
        ev.events()
    );
    h.shutdown();
}

/// Our client renegotiates (TLS 1.2, forced every 300 ms, as after a CRL update) while five
/// tasks keep reads outstanding: the renegotiation is driven from the read side and the answers
/// that arrive inside it are kept for the next read, so no request is lost.
#[tokio::test]
async fn forced_client_renegotiation_under_load_loses_nothing() {
    let p = pki();
    let (_sev, ssink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    let h = start(scfg, ssink).await;
    let (ev, csink) = sink();
    let ccfg = client_config(false);
    let ctx = std::sync::Arc::new(secmms::tls::TlsContext::client(&ccfg.tls, csink).unwrap());
    let c = ccfg
        .client_builder()
        .tls_context(ctx.clone())
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    let trigger = ctx.renegotiation_trigger();
    let forcing = tokio::spawn(async move {
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            trigger.force();
        }
    });
    let stop = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (c, name) = (c.clone(), name.clone());
        tasks.spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            while tokio::time::Instant::now() < stop {
                match c.read_name(&name).await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        });
    }
    let (mut ok, mut failed) = (0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (o, f) = r.unwrap();
        ok += o;
        failed.extend(f);
    }
    forcing.await.unwrap();
    assert!(
        ok > 0 && failed.is_empty(),
        "{failed:?}; {:?}",
        mnemonics(&ev)
    );
    assert!(ctx.stats().renegotiations.load(Ordering::Relaxed) >= 4);
    c.release().await.unwrap();
    h.shutdown();
}

/// Our client renegotiates every 200 ms (a client-started TLS 1.2 renegotiation each) against
/// a server that lets `per_min` a minute through; how many reads succeeded, whether one failed.
async fn client_renegotiates_in_a_loop(
    policy: secmms::tls::ClientRenegotiation,
    per_min: u32,
) -> (Arc<secmms_pki::event::MemorySink>, ServerHandle, u64, bool) {
    let p = pki();
    let (sev, ssink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.client_renegotiation = policy;
    scfg.max_client_renegotiations_per_min = per_min;
    let h = start(scfg, ssink).await;
    let (_cev, csink) = sink();
    let mut ccfg = client_config(false);
    ccfg.client.request_timeout_secs = 3;
    let ctx = Arc::new(secmms::tls::TlsContext::client(&ccfg.tls, csink).unwrap());
    let c = ccfg
        .client_builder()
        .tls_context(ctx.clone())
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    let trigger = ctx.renegotiation_trigger();
    let (mut ok, mut failed) = (0u64, false);
    for _ in 0..8 {
        trigger.force();
        for _ in 0..10 {
            match c.read_name(&name).await {
                Ok(_) => ok += 1,
                Err(_) => failed = true,
            }
            if failed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if failed {
            break;
        }
    }
    (sev, h, ok, failed)
}

/// Issue 17: renegotiations the client starts are counted (`TlsStats::client_renegotiations`)
/// and each is a `TLS_CLIENT_RENEG` event; past `max_client_renegotiations_per_min` the next
/// one is refused with `TLS_CLIENT_RENEG_REFUSED` and the session ends.
#[tokio::test]
async fn client_started_renegotiations_past_the_rate_end_the_session() {
    let (ev, h, ok, failed) =
        client_renegotiates_in_a_loop(secmms::tls::ClientRenegotiation::Limit, 3).await;
    assert!(
        failed,
        "the fourth client renegotiation must end the session"
    );
    assert!(ok >= 20, "reads before the limit: {ok}");
    assert!(
        wait_for(&ev, "TLS_CLIENT_RENEG_REFUSED").await,
        "{:?}",
        mnemonics(&ev)
    );
    let names = mnemonics(&ev);
    assert_eq!(
        names.iter().filter(|m| **m == "TLS_CLIENT_RENEG").count(),
        3,
        "{names:?}"
    );
    let stats = h.tls_stats.clone().unwrap();
    assert_eq!(stats.client_renegotiations.load(Ordering::Relaxed), 3);
    assert_eq!(
        stats.client_renegotiations_refused.load(Ordering::Relaxed),
        1
    );
    h.shutdown();
}

/// `client_renegotiation = "refuse"`: the first renegotiation the client starts ends the
/// session with `TLS_CLIENT_RENEG_REFUSED`; the server's own renegotiations are unaffected
/// (the tests above run with the default policy, this one checks the server's own too).
#[tokio::test]
async fn client_started_renegotiation_refused_by_policy() {
    let (ev, h, ok, failed) =
        client_renegotiates_in_a_loop(secmms::tls::ClientRenegotiation::Refuse, 10).await;
    assert!(failed && ok < 10, "ok {ok}, failed {failed}");
    assert!(
        wait_for(&ev, "TLS_CLIENT_RENEG_REFUSED").await,
        "{:?}",
        mnemonics(&ev)
    );
    let stats = h.tls_stats.clone().unwrap();
    assert_eq!(stats.client_renegotiations.load(Ordering::Relaxed), 0);
    assert_eq!(
        stats.client_renegotiations_refused.load(Ordering::Relaxed),
        1
    );
    h.shutdown();

    // The server's own key refresh still renegotiates under "refuse".
    let p = pki();
    let (_ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.tls13 = false;
    scfg.client_renegotiation = secmms::tls::ClientRenegotiation::Refuse;
    scfg.renegotiation_bytes = 20_000;
    let h = start(scfg, sink).await;
    let c = (client_config(false))
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    let name = c.resolve(REF).await.unwrap();
    for i in 0..300 {
        c.read_name(&name)
            .await
            .unwrap_or_else(|e| panic!("read {i} failed during our renegotiation: {e}"));
    }
    c.release().await.unwrap();
    let stats = h.tls_stats.clone().unwrap();
    assert!(stats.renegotiations.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        stats.client_renegotiations_refused.load(Ordering::Relaxed),
        0
    );
    h.shutdown();
}
