//! `secmms gateway`: secured associations forwarded to a plain IED and plain associations
//! forwarded secured, with secmms servers and clients on the far ends (the real-stack chains
//! run in secmms-cli's tests).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secmms::config::Config;
use secmms::gateway::{Gateway, GatewayFile, GatewayHandle};
use secmms::security::{AppMode, Encrypt};
use secmms::{Client, ClientError, ServerHandle};
use secmms_pki::event::MemorySink;
use secmms_tools::demo::DemoPki;

const VAR: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";
const DC: &str = "DEMOLD0/LLN0.NamPlt.vendor[DC]";

async fn plain_ied() -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server_builder().bind().await.unwrap().spawn().unwrap()
}

async fn secured_server(pki: &DemoPki, mode: AppMode) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls = pki.tls_config(true);
    pki.apply_security(&mut cfg, true, mode, Encrypt::Gcm);
    cfg.server_builder().bind().await.unwrap().spawn().unwrap()
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

fn ied_route(pki: &DemoPki, ied: &str, mode: &str, read_only: bool) -> String {
    let encrypt = if mode == "native" {
        "encrypt = \"gcm\"\n"
    } else {
        ""
    };
    format!(
        "[[gateway.ied]]\nlisten = \"127.0.0.1:0\"\nied = \"{ied}\"\nmode = \"{mode}\"\n{encrypt}\
         tls_cert = \"{}\"\ntls_key = \"{}\"\napp_cert = \"{}\"\napp_key = \"{}\"\nca = [\"{}\"]\n\
         read_only = {read_only}\n",
        path(&pki.server_tls.0),
        path(&pki.server_tls.1),
        path(&pki.server_app.0),
        path(&pki.server_app.1),
        path(&pki.ca),
    )
}

fn client_route(pki: &DemoPki, to: &str, mode: &str) -> String {
    let encrypt = if mode == "native" {
        "encrypt = \"gcm\"\n"
    } else {
        ""
    };
    format!(
        "[[gateway.client]]\nlisten = \"127.0.0.1:0\"\nallow = [\"127.0.0.0/8\"]\nto = \"{to}\"\n\
         mode = \"{mode}\"\n{encrypt}server_name = \"localhost\"\n\
         tls_cert = \"{}\"\ntls_key = \"{}\"\napp_cert = \"{}\"\napp_key = \"{}\"\nca = [\"{}\"]\n\
         peer_ap_title = \"1.1.1.999.1\"\npeer_ae_qualifier = 12\n",
        path(&pki.client_tls.0),
        path(&pki.client_tls.1),
        path(&pki.client_app.0),
        path(&pki.client_app.1),
        path(&pki.ca),
    )
}

async fn gateway(text: &str, sink: Arc<MemorySink>) -> GatewayHandle {
    let file = GatewayFile::from_toml(&format!("[gateway]\nconnect_timeout_secs = 3\n{text}"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    Gateway::bind_with_events(&file, sink)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .spawn()
}

fn secured_client(pki: &DemoPki, mode: AppMode) -> Config {
    let mut cfg = Config {
        tls: pki.tls_config(false),
        ..Default::default()
    };
    cfg.tls.server_name = Some("localhost".into());
    pki.apply_security(&mut cfg, false, mode, Encrypt::Gcm);
    cfg
}

async fn read_write_release(c: Client, tag: &str) {
    let domains = c.domains().await.unwrap();
    assert!(domains.contains(&"DEMOLD0".to_string()), "{domains:?}");
    c.read(VAR).await.unwrap();
    c.write_str(DC, tag).await.unwrap();
    let v = c.read(DC).await.unwrap();
    assert!(v.to_string().contains(tag), "{v}");
    c.release().await.unwrap();
}

async fn settle(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn mnemonics(s: &MemorySink) -> Vec<&'static str> {
    s.events().iter().map(|e| e.mnemonic).collect()
}

#[tokio::test]
async fn ied_route_forwards_native_and_compat_to_a_plain_ied() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    for (mode, app) in [("native", AppMode::Native), ("compat", AppMode::Compat)] {
        let sink = Arc::new(MemorySink::new());
        let gw = gateway(
            &ied_route(&pki, &ied.addr.to_string(), mode, false),
            sink.clone(),
        )
        .await;
        let entry = gw.addrs[0].1.to_string();
        let c = (secured_client(&pki, app))
            .client_builder()
            .connect(&entry)
            .await
            .unwrap();
        let p = c.protection().to_string();
        match app {
            AppMode::Native => assert!(p.contains("Gcm"), "{p}"),
            _ => assert_eq!(p, "A-security-profile"),
        }
        read_write_release(c, mode).await;
        settle(|| gw.stats.released.load(Ordering::Relaxed) == 1).await;
        assert_eq!(gw.stats.associations.load(Ordering::Relaxed), 1);
        assert_eq!(gw.stats.released.load(Ordering::Relaxed), 1);
        assert!(gw.stats.pdus.load(Ordering::Relaxed) >= 8);
        let seen = mnemonics(&sink);
        assert!(seen.contains(&"GW_ASSOCIATION_START"), "{seen:?}");
        assert!(seen.contains(&"GW_ASSOCIATION_END"), "{seen:?}");
        gw.shutdown();
    }
    // The plain IED saw one plain association per mode, released.
    settle(|| ied.stats.released.load(Ordering::Relaxed) == 2).await;
    assert_eq!(ied.stats.associations.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn read_only_route_refuses_dc_writes_and_lets_reads_through() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(
        &ied_route(&pki, &ied.addr.to_string(), "native", true),
        sink.clone(),
    )
    .await;
    let entry = gw.addrs[0].1.to_string();
    let c = (secured_client(&pki, AppMode::Native))
        .client_builder()
        .connect(&entry)
        .await
        .unwrap();
    c.read(VAR).await.unwrap();
    let before = c.read(DC).await.unwrap().to_string();
    match c.write_str(DC, "nope").await {
        Err(ClientError::Access(e)) => assert_eq!(e.to_string(), "object-access-denied"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.read(DC).await.unwrap().to_string(), before);
    c.release().await.unwrap();
    settle(|| gw.stats.released.load(Ordering::Relaxed) == 1).await;
    assert_eq!(gw.stats.denied.load(Ordering::Relaxed), 1);
    let denied: Vec<String> = sink
        .events()
        .iter()
        .filter(|e| e.mnemonic == "GW_WRITE_DENIED")
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].contains("LLN0$DC$NamPlt$vendor"), "{denied:?}");
}

#[tokio::test]
async fn client_route_and_both_gateways_in_a_chain() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    // Plain client → client-side gateway → TLS + native → a 62351-4 server.
    let server = secured_server(&pki, AppMode::Native).await;
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(
        &client_route(&pki, &server.addr.to_string(), "native"),
        sink,
    )
    .await;
    let c = (Config::default())
        .client_builder()
        .connect(&gw.addrs[0].1.to_string())
        .await
        .unwrap();
    assert_eq!(c.protection().to_string(), "none");
    read_write_release(c, "client-route").await;
    settle(|| server.stats.released.load(Ordering::Relaxed) == 1).await;
    assert_eq!(server.stats.associations.load(Ordering::Relaxed), 1);

    // Plain client → client gateway → TLS + compat and native → IED gateway → plain IED.
    let ied = plain_ied().await;
    for mode in ["native", "compat"] {
        let ied_gw = gateway(
            &ied_route(&pki, &ied.addr.to_string(), mode, false),
            Arc::new(MemorySink::new()),
        )
        .await;
        let client_gw = gateway(
            &client_route(&pki, &ied_gw.addrs[0].1.to_string(), mode),
            Arc::new(MemorySink::new()),
        )
        .await;
        let c = (Config::default())
            .client_builder()
            .connect(&client_gw.addrs[0].1.to_string())
            .await
            .unwrap();
        read_write_release(c, &format!("chain-{mode}")).await;
        settle(|| ied_gw.stats.released.load(Ordering::Relaxed) == 1).await;
        assert_eq!(ied_gw.stats.associations.load(Ordering::Relaxed), 1);
        assert_eq!(client_gw.stats.associations.load(Ordering::Relaxed), 1);
        assert_eq!(ied_gw.stats.released.load(Ordering::Relaxed), 1);
    }
}

#[tokio::test]
async fn an_unreachable_ied_is_a_rejection_with_the_reason_in_time() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(&ied_route(&pki, &dead, "native", false), sink.clone()).await;
    let started = Instant::now();
    let r = (secured_client(&pki, AppMode::Native))
        .client_builder()
        .connect(&gw.addrs[0].1.to_string())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let e = r.expect_err("refused").to_string();
    // The far side's failure reaches the caller in the initiate-ErrorPDU's description.
    assert!(e.contains(&format!("{dead} unreachable")), "{e}");
    settle(|| gw.stats.refused.load(Ordering::Relaxed) == 1).await;
    let refused: Vec<String> = sink
        .events()
        .iter()
        .filter(|e| e.mnemonic == "GW_ASSOCIATION_REFUSED")
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains(&dead), "{refused:?}");
}

#[tokio::test]
async fn a_source_outside_the_allow_list_is_refused_with_an_event() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let server = secured_server(&pki, AppMode::Native).await;
    let sink = Arc::new(MemorySink::new());
    let text = client_route(&pki, &server.addr.to_string(), "native")
        .replace("allow = [\"127.0.0.0/8\"]", "allow = [\"10.9.0.0/16\"]");
    let gw = gateway(&text, sink.clone()).await;
    let r = (Config::default())
        .client_builder()
        .connect(&gw.addrs[0].1.to_string())
        .await;
    assert!(r.is_err());
    settle(|| gw.stats.sources_refused.load(Ordering::Relaxed) == 1).await;
    assert_eq!(gw.stats.sources_refused.load(Ordering::Relaxed), 1);
    assert!(mnemonics(&sink).contains(&"GW_SOURCE_REFUSED"));
    assert_eq!(server.stats.connections.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_reload_keeps_live_associations_that_remain_allowed_and_ends_the_others() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    let sink = Arc::new(MemorySink::new());
    let route = ied_route(&pki, &ied.addr.to_string(), "native", false);
    let file = |text: &str| {
        GatewayFile::from_toml(&format!("[gateway]\nconnect_timeout_secs = 3\n{text}")).unwrap()
    };
    let gw = gateway(&route, sink.clone()).await;
    let entry = gw.addrs[0].1.to_string();
    let cfg = secured_client(&pki, AppMode::Native);
    let live = cfg.client_builder().connect(&entry).await.unwrap();
    live.write_str(DC, "before").await.unwrap();

    // The same route made read-only: the live association stays, under the new policy.
    let summary = gw
        .reload(file(
            &route.replace("read_only = false", "read_only = true"),
        ))
        .await
        .unwrap();
    assert_eq!(summary.replaced.len(), 1, "{summary:?}");
    live.read(VAR).await.unwrap();
    assert!(matches!(
        live.write_str(DC, "after").await,
        Err(ClientError::Access(_))
    ));
    // New associations come in on the same listener under the new policy too.
    let second = cfg.client_builder().connect(&entry).await.unwrap();
    assert!(matches!(
        second.write_str(DC, "second").await,
        Err(ClientError::Access(_))
    ));
    second.release().await.unwrap();

    // An invalid file changes nothing.
    let bad = GatewayFile {
        gateway: secmms::gateway::GatewayConfig::default(),
    };
    assert!(gw.reload(bad).await.is_err());
    live.read(VAR).await.unwrap();

    // The route removed (another one in its place): its listener closes and the live
    // association is aborted, with the reason in the event.
    let other = ied_route(&pki, &ied.addr.to_string(), "native", false)
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.2:0\"");
    let summary = gw.reload(file(&other)).await.unwrap();
    assert_eq!(summary.removed.len(), 1, "{summary:?}");
    assert_eq!(summary.added.len(), 1, "{summary:?}");
    settle(|| live.is_closed()).await;
    assert!(live.is_closed());
    assert!(live.read(VAR).await.is_err());
    let ended: Vec<String> = sink
        .events()
        .iter()
        .filter(|e| e.mnemonic == "GW_ASSOCIATION_END" && e.message.contains("route removed"))
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(ended.len(), 1, "{:?}", mnemonics(&sink));
    assert!(cfg.client_builder().connect(&entry).await.is_err());
    // The added route serves.
    let added = summary.added[0].1.to_string();
    let c = cfg.client_builder().connect(&added).await.unwrap();
    read_write_release(c, "added").await;
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(
        &ied_route(&pki, &ied.addr.to_string(), "native", false),
        sink,
    )
    .await;
    let entry = gw.addrs[0].1.to_string();
    let cfg = secured_client(&pki, AppMode::Native);
    let cycle = |n: usize| {
        let entry = entry.clone();
        let cfg = cfg.clone();
        async move {
            for i in 0..n {
                let c = cfg
                    .client_builder()
                    .connect(&entry)
                    .await
                    .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
                if i % 2 == 0 {
                    c.release().await.unwrap();
                } else {
                    // Half the cycles end by dropping the connection instead of releasing.
                    c.abort().await;
                }
            }
        }
    };
    // Warm up (allocator, TLS caches), then measure across 1 000 cycles.
    cycle(100).await;
    settle(|| {
        gw.stats.released.load(Ordering::Relaxed) + gw.stats.aborted.load(Ordering::Relaxed) == 100
    })
    .await;
    let (fds, rss) = (open_fds(), rss_kib());
    cycle(1000).await;
    settle(|| {
        gw.stats.released.load(Ordering::Relaxed) + gw.stats.aborted.load(Ordering::Relaxed) == 1100
    })
    .await;
    settle(|| {
        ied.stats.released.load(Ordering::Relaxed) + ied.stats.failed.load(Ordering::Relaxed)
            >= 1100
    })
    .await;
    assert_eq!(gw.stats.associations.load(Ordering::Relaxed), 1100);
    assert_eq!(gw.stats.released.load(Ordering::Relaxed), 550);
    assert_eq!(gw.stats.aborted.load(Ordering::Relaxed), 550);
    assert_eq!(gw.stats.refused.load(Ordering::Relaxed), 0);
    // Every association ended on the IED's side too.
    assert_eq!(ied.stats.associations.load(Ordering::Relaxed), 1100);
    let (fds_after, rss_after) = (open_fds(), rss_kib());
    assert!(
        fds_after <= fds + 4,
        "descriptors: {fds} before, {fds_after} after 1 000 cycles"
    );
    assert!(
        rss_after < rss + 16 * 1024,
        "RSS: {rss} KiB before, {rss_after} KiB after 1 000 cycles"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_on_either_side_do_not_disturb_other_routes() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    // An IED that accepts connections and never answers.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let secured = secured_server(&pki, AppMode::Native).await;
    let routes = format!(
        "{}\n{}\n{}",
        ied_route(&pki, &ied.addr.to_string(), "native", false),
        ied_route(&pki, &mute_addr, "native", false),
        client_route(&pki, &secured.addr.to_string(), "native")
    );
    let sink = Arc::new(MemorySink::new());
    let file = GatewayFile::from_toml(&format!(
        "[gateway]\nconnect_timeout_secs = 2\nassociate_timeout_secs = 3\n{routes}"
    ))
    .unwrap();
    let gw = Gateway::bind_with_events(&file, sink.clone())
        .await
        .unwrap()
        .spawn();
    let good = gw.addrs[0].1.to_string();
    let to_mute = gw.addrs[1].1.to_string();
    let plain_entry = gw.addrs[2].1.to_string();
    let cfg = secured_client(&pki, AppMode::Native);

    // Attackers: garbage, half-open connections, and callers of the IED that never answers,
    // on the secured side (TLS listener) and on the plain side (client route).
    let mut attackers = Vec::new();
    for i in 0..30 {
        let good = if i >= 20 {
            plain_entry.clone()
        } else {
            good.clone()
        };
        attackers.push(tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut s = tokio::net::TcpStream::connect(&good).await.unwrap();
            if i % 2 == 0 {
                let _ = s
                    .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3])
                    .await;
                let _ = s.write_all(&vec![0x5a; 4096]).await;
            }
            // Half-open: hold the connection without a word.
            tokio::time::sleep(Duration::from_secs(4)).await;
        }));
    }
    let mut muted = Vec::new();
    for _ in 0..4 {
        let to_mute = to_mute.clone();
        let cfg = cfg.clone();
        muted.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = cfg.client_builder().connect(&to_mute).await;
            (r.map(drop).map_err(|e| e.to_string()), started.elapsed())
        }));
    }
    // Meanwhile the good route serves, each association promptly.
    for i in 0..10 {
        let started = Instant::now();
        let c = cfg
            .client_builder()
            .connect(&good)
            .await
            .unwrap_or_else(|e| {
                let seen: Vec<String> = sink
                    .events()
                    .iter()
                    .filter(|e| !e.message.contains("TLS handshake refused"))
                    .map(|e| format!("{} {}", e.mnemonic, e.message))
                    .collect();
                panic!("legitimate association {i}: {e}\ngateway events: {seen:#?}")
            });
        c.read(VAR).await.unwrap();
        c.release().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "legitimate association {i} took {:?}",
            started.elapsed()
        );
    }
    // The plain side serves too.
    for i in 0..5 {
        let started = Instant::now();
        let c = (Config::default())
            .client_builder()
            .connect(&plain_entry)
            .await
            .unwrap_or_else(|e| panic!("legitimate plain association {i}: {e}"));
        c.read(VAR).await.unwrap();
        c.release().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // The callers of the silent IED are refused with the reason within the timeouts.
    for m in muted {
        let (r, took) = m.await.unwrap();
        let e = r.expect_err("a silent IED cannot associate");
        assert!(took < Duration::from_secs(6), "{took:?}: {e}");
        assert!(
            e.contains("no answer") || e.contains("did not answer"),
            "{e}\n{:#?}",
            sink.events()
                .iter()
                .filter(|e| !e.message.contains("TLS handshake refused"))
                .map(|e| format!("{} {}", e.mnemonic, e.message))
                .collect::<Vec<_>>()
        );
    }
    for a in attackers {
        a.await.unwrap();
    }
    settle(|| gw.stats.released.load(Ordering::Relaxed) == 15).await;
    assert_eq!(gw.stats.released.load(Ordering::Relaxed), 15);
    assert!(gw.stats.refused.load(Ordering::Relaxed) >= 4 + 10);
}

#[tokio::test]
async fn client_routes_sharing_a_listener_are_chosen_by_the_called_ap_title() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let server = secured_server(&pki, AppMode::Native).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    let a = client_route(&pki, &server.addr.to_string(), "native")
        .replace("listen = \"127.0.0.1:0\"", &listen)
        + "called_ap_title = \"1.1.1.999.1\"\ncalled_ae_qualifier = 12\n";
    let b = client_route(&pki, &dead, "native").replace("listen = \"127.0.0.1:0\"", &listen)
        + "called_ap_title = \"1.1.1.999.77\"\n";
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(&format!("{a}\n{b}"), sink.clone()).await;
    assert_eq!(gw.addrs.len(), 2);
    assert_eq!(gw.addrs[0].1, gw.addrs[1].1);
    let entry = gw.addrs[0].1.to_string();
    let calling = |ap: &str| {
        let mut c = Config::default();
        c.osi.remote_ap_title = Some(ap.into());
        c.osi.remote_ae_qualifier = Some(12);
        c
    };
    let c = (calling("1.1.1.999.1"))
        .client_builder()
        .connect(&entry)
        .await
        .unwrap();
    read_write_release(c, "by-title").await;
    let e = (calling("1.1.1.999.77"))
        .client_builder()
        .connect(&entry)
        .await
        .expect_err("the route of 1.1.1.999.77 leads nowhere")
        .to_string();
    assert!(e.contains(&format!("{dead} unreachable")), "{e}");
    let e = (calling("1.1.1.999.5"))
        .client_builder()
        .connect(&entry)
        .await
        .expect_err("no route for 1.1.1.999.5")
        .to_string();
    assert!(
        e.contains("no route for the called AP-title 1.1.1.999.5"),
        "{e}"
    );
    settle(|| server.stats.released.load(Ordering::Relaxed) == 1).await;
    assert_eq!(server.stats.associations.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn ied_routes_sharing_a_listener_are_chosen_by_their_certificates_binding() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    // Two legacy IEDs behind one gateway port; the second route presents 1.1.1.999.2 / 7.
    let (ied_a, ied_b) = (plain_ied().await, plain_ied().await);
    let (b_cert, b_key) = pki.issue_app("ied-b", "1.1.1.999.2", 7).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    let a = ied_route(&pki, &ied_a.addr.to_string(), "native", false)
        .replace("listen = \"127.0.0.1:0\"", &listen);
    let b = ied_route(&pki, &ied_b.addr.to_string(), "native", false)
        .replace("listen = \"127.0.0.1:0\"", &listen)
        .replace(&path(&pki.server_app.0), &path(&b_cert))
        .replace(&path(&pki.server_app.1), &path(&b_key));
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(&format!("{a}\n{b}"), sink.clone()).await;
    assert_eq!(gw.addrs.len(), 2);
    assert_eq!(gw.addrs[0].1, gw.addrs[1].1);
    let entry = gw.addrs[0].1.to_string();
    let calling = |ap: &str, ae: i64| {
        let mut c = secured_client(&pki, AppMode::Native);
        c.osi.remote_ap_title = Some(ap.into());
        c.osi.remote_ae_qualifier = Some(ae);
        c
    };
    // Each AARQ reaches the IED its called titles name, and the gateway answers with that
    // route's certificate (the client checks the binding against the titles it called).
    for (ap, ae, tag) in [("1.1.1.999.2", 7, "to-b"), ("1.1.1.999.1", 12, "to-a")] {
        let c = calling(ap, ae)
            .client_builder()
            .connect(&entry)
            .await
            .unwrap_or_else(|e| panic!("{ap}/{ae}: {e}"));
        read_write_release(c, tag).await;
    }
    settle(|| ied_a.stats.released.load(Ordering::Relaxed) == 1).await;
    settle(|| ied_b.stats.released.load(Ordering::Relaxed) == 1).await;
    assert_eq!(ied_a.stats.associations.load(Ordering::Relaxed), 1);
    assert_eq!(ied_b.stats.associations.load(Ordering::Relaxed), 1);
    // A title no route presents: refused, and no IED sees it.
    let e = calling("1.1.1.999.3", 7)
        .client_builder()
        .connect(&entry)
        .await
        .expect_err("no route presents 1.1.1.999.3")
        .to_string();
    assert!(!e.is_empty());
    settle(|| gw.stats.refused.load(Ordering::Relaxed) == 1).await;
    assert_eq!(gw.stats.refused.load(Ordering::Relaxed), 1);
    let refusal = sink
        .events()
        .into_iter()
        .find(|e| e.mnemonic == "GW_ASSOCIATION_REFUSED")
        .expect("a refusal event");
    assert!(
        refusal
            .message
            .contains("no route for the called AP-title 1.1.1.999.3"),
        "{}",
        refusal.message
    );
    assert_eq!(ied_a.stats.associations.load(Ordering::Relaxed), 1);
    assert_eq!(ied_b.stats.associations.load(Ordering::Relaxed), 1);
    gw.shutdown();

    // Two routes with the same binding on one listener, or different TLS settings: refused
    // with where and why.
    let same = ied_route(&pki, &ied_b.addr.to_string(), "native", false)
        .replace("listen = \"127.0.0.1:0\"", &listen);
    let file = GatewayFile::from_toml(&format!("[gateway]\n{a}\n{same}")).unwrap();
    let e = Gateway::check(&file).unwrap_err().to_string();
    assert!(
        e.contains("gateway.ied[1].app_cert") && e.contains("AP-title 1.1.1.999.1"),
        "{e}"
    );
    let other_tls = b.replace(&path(&pki.server_tls.0), &path(&pki.client_tls.0));
    let file = GatewayFile::from_toml(&format!("[gateway]\n{a}\n{other_tls}")).unwrap();
    let e = Gateway::check(&file).unwrap_err().to_string();
    assert!(e.contains("gateway.ied[1].tls_cert"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_and_aarq_checks_on_ied_routes_wait_for_places() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let stranger = DemoPki::create(&std::env::temp_dir()).unwrap();
    let ied = plain_ied().await;
    let sink = Arc::new(MemorySink::new());
    let limits = "max_handshakes = 2\nhandshake_rate = 40\nmax_security_checks = 1\n\
                  security_check_rate = 10\n";
    let gw = gateway(
        &format!(
            "{limits}{}",
            ied_route(&pki, &ied.addr.to_string(), "native", false)
        ),
        sink.clone(),
    )
    .await;
    let entry = gw.addrs[0].1.to_string();
    // Flooders: a TLS certificate the gateway trusts, an application certificate it does not
    // (each association refused after its E2E checks).
    let mut flood_cfg = secured_client(&pki, AppMode::Native);
    flood_cfg.security.app_cert = Some(stranger.client_app.0.clone());
    flood_cfg.security.app_key = Some(stranger.client_app.1.clone());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (stop, cfg, entry) = (stop.clone(), flood_cfg.clone(), entry.clone());
        flood.spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                assert!(cfg.client_builder().connect(&entry).await.is_err());
                n += 1;
            }
            n
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut took = Vec::new();
    for i in 0..3 {
        let start = Instant::now();
        let c = secured_client(&pki, AppMode::Native)
            .client_builder()
            .connect(&entry)
            .await
            .unwrap_or_else(|e| panic!("legitimate association {i}: {e}"));
        took.push(start.elapsed());
        read_write_release(c, &format!("gated-{i}")).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut attempts = 0;
    while let Some(n) = flood.join_next().await {
        attempts += n.unwrap();
    }
    let s = &gw.stats;
    let (hd, cd) = (
        s.handshakes_delayed.load(Ordering::Relaxed),
        s.checks_delayed.load(Ordering::Relaxed),
    );
    eprintln!("{attempts} flood associations, {hd} handshakes and {cd} checks delayed; {took:?}");
    assert!(
        hd > 3,
        "the handshake limit never acted: {hd} of {attempts}"
    );
    assert!(cd > 3, "the check limit never acted: {cd} of {attempts}");
    // At most 10 checks a second (plus the burst of 10) went to the flood.
    let secs = took.iter().sum::<Duration>().as_secs_f64() + 0.5;
    assert!(
        f64::from(attempts) <= 10.0 * (secs + 2.0) + 10.0,
        "{attempts} flood AARQs in {secs:.1} s"
    );
    assert!(
        took.iter().all(|t| *t < Duration::from_secs(10)),
        "legitimate associations: {took:?}"
    );
    gw.shutdown();

    // No place before the set-up deadline: aborted unchecked, with the reason in the event.
    let sink = Arc::new(MemorySink::new());
    let gw = gateway(
        &format!(
            "associate_timeout_secs = 1\nmax_security_checks = 1\nsecurity_check_rate = 1\n{}",
            ied_route(&pki, &ied.addr.to_string(), "native", false)
        ),
        sink.clone(),
    )
    .await;
    let entry = gw.addrs[0].1.to_string();
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (cfg, entry) = (flood_cfg.clone(), entry.clone());
        flood.spawn(async move {
            let _ = cfg.client_builder().connect(&entry).await;
        });
    }
    while flood.join_next().await.is_some() {}
    assert!(gw.stats.checks_refused.load(Ordering::Relaxed) >= 1);
    let seen: Vec<String> = sink.events().into_iter().map(|e| e.message).collect();
    assert!(
        seen.iter().any(|m| m.contains("AARQ not checked")
            && (m.contains("gateway.security_check_rate")
                || m.contains("gateway.max_security_checks"))),
        "{seen:?}"
    );
}
