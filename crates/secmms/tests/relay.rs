//! `secmms relay` (IEC 62351-4 §15.5): MMS browse/read/write end to end through
//! client → relay → relay → server, for each application-security mode and encryption, with and
//! without TLS on every hop.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use secmms::config::Config;
use secmms::relay::{Relay, RelayHandle};
use secmms::security::{AppMode, Encrypt};
use secmms::ServerHandle;
use secmms_pki::event::MemorySink;
use secmms_tools::demo::DemoPki;

struct Chain {
    server: ServerHandle,
    relays: Vec<RelayHandle>,
    server_events: Arc<MemorySink>,
    entry: String,
}

async fn chain(pki: &DemoPki, mode: AppMode, encrypt: Encrypt, tls: bool, hops: usize) -> Chain {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    if tls {
        cfg.tls = pki.tls_config(true);
    }
    pki.apply_security(&mut cfg, true, mode, encrypt);
    let sink = Arc::new(MemorySink::new());
    let server = cfg
        .server_builder()
        .events(sink.clone())
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let mut next = server.addr.to_string();
    let mut relays = Vec::new();
    for _ in 0..hops {
        let mut rc = Config::default();
        rc.relay.listen = "127.0.0.1:0".into();
        rc.relay.to = Some(next.clone());
        if tls {
            rc.tls = pki.tls_config(true);
        }
        let r = Relay::bind(rc.relay_settings()).await.unwrap();
        assert_eq!(r.tls_hops(), (tls, tls));
        let h = r.spawn().unwrap();
        next = h.addr.to_string();
        relays.push(h);
    }
    Chain {
        server,
        relays,
        server_events: sink,
        entry: next,
    }
}

fn client_cfg(pki: &DemoPki, mode: AppMode, encrypt: Encrypt, tls: bool) -> Config {
    let mut cfg = Config::default();
    if tls {
        cfg.tls = pki.tls_config(false);
    }
    pki.apply_security(&mut cfg, false, mode, encrypt);
    cfg
}

/// Browse, read, write and read back, then release, through the chain.
async fn exercise(c: &Chain, cfg: &Config) {
    let client = cfg.client_builder().connect(&c.entry).await.unwrap();
    // The agreed protection is the one asked for.
    let p = client.protection().to_string();
    match (cfg.security.mode, cfg.security.encrypt) {
        (AppMode::Native, Encrypt::Gcm) => assert!(p.contains("Gcm"), "{p}"),
        (AppMode::Native, Encrypt::Cbc) => assert!(p.contains("Cbc") && p.contains("Hmac"), "{p}"),
        (AppMode::Native, Encrypt::None) => assert!(p.contains("not encrypted"), "{p}"),
        (AppMode::Compat, _) => assert_eq!(p, "A-security-profile"),
        (AppMode::Plain, _) => assert_eq!(p, "none"),
    }
    let domains = client.domains().await.unwrap();
    assert!(domains.contains(&"DEMOLD0".to_string()), "{domains:?}");
    let vars = client.variables("DEMOLD0").await.unwrap();
    assert!(vars.len() > 10);
    client.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await.unwrap();
    client
        .write_str("DEMOLD0/LLN0.NamPlt.vendor[DC]", "through-relays")
        .await
        .unwrap();
    let v = client.read("DEMOLD0/LLN0.NamPlt.vendor[DC]").await.unwrap();
    assert!(v.to_string().contains("through-relays"), "{v}");
    client.release().await.unwrap();
    // Every relay carried the association and forwarded its PDUs; it ended in order.
    for r in &c.relays {
        for _ in 0..100 {
            if r.stats.released.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(r.stats.associations.load(Ordering::Relaxed), 1);
        assert!(r.stats.pdus.load(Ordering::Relaxed) >= 12);
        assert_eq!(r.stats.released.load(Ordering::Relaxed), 1);
        assert_eq!(r.stats.aborted.load(Ordering::Relaxed), 0);
    }
    assert_eq!(c.server.stats.associations.load(Ordering::Relaxed), 1);
}

async fn run(mode: AppMode, encrypt: Encrypt, tls: bool) {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let c = chain(&pki, mode, encrypt, tls, 2).await;
    exercise(&c, &client_cfg(&pki, mode, encrypt, tls)).await;
    if mode == AppMode::Compat {
        let seen: Vec<_> = c
            .server_events
            .events()
            .iter()
            .map(|e| e.mnemonic)
            .collect();
        assert!(seen.contains(&"AP_AUTHENTICATED"), "{seen:?}");
    }
}

#[tokio::test]
async fn plain_mms_through_two_relays() {
    run(AppMode::Plain, Encrypt::None, false).await;
}

#[tokio::test]
async fn plain_mms_through_two_relays_tls_per_hop() {
    run(AppMode::Plain, Encrypt::None, true).await;
}

#[tokio::test]
async fn compat_mode_through_two_relays_tls_per_hop() {
    run(AppMode::Compat, Encrypt::None, true).await;
}

#[tokio::test]
async fn native_gcm_through_two_relays() {
    run(AppMode::Native, Encrypt::Gcm, false).await;
}

#[tokio::test]
async fn native_gcm_through_two_relays_tls_per_hop() {
    run(AppMode::Native, Encrypt::Gcm, true).await;
}

#[tokio::test]
async fn native_cbc_through_two_relays() {
    run(AppMode::Native, Encrypt::Cbc, false).await;
}

#[tokio::test]
async fn native_cbc_through_two_relays_tls_per_hop() {
    run(AppMode::Native, Encrypt::Cbc, true).await;
}

#[tokio::test]
async fn native_no_encryption_through_two_relays() {
    run(AppMode::Native, Encrypt::None, false).await;
}

#[tokio::test]
async fn native_no_encryption_through_two_relays_tls_per_hop() {
    run(AppMode::Native, Encrypt::None, true).await;
}

#[tokio::test]
async fn no_route_is_refused_with_called_ap_title_not_recognized() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let c = chain(&pki, AppMode::Plain, Encrypt::None, false, 0).await;
    let mut rc = Config::default();
    rc.relay.listen = "127.0.0.1:0".into();
    rc.relay.routes = vec![secmms::relay::RouteEntry {
        ap_title: "1.2.3.4".into(),
        ae_qualifier: None,
        to: c.entry.clone(),
    }];
    let relay = Relay::bind(rc.relay_settings())
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let e = Config::default()
        .client_builder()
        .connect(&relay.addr.to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ServiceUser(7)"), "{e}");
    assert_eq!(relay.stats.refused.load(Ordering::Relaxed), 1);
    // A route for the called AP-title (the client's default 1.1.1.999.1) is followed.
    let mut rc = Config::default();
    rc.relay.listen = "127.0.0.1:0".into();
    rc.relay.routes = vec![secmms::relay::RouteEntry {
        ap_title: "1.1.1.999.1".into(),
        ae_qualifier: Some(12),
        to: c.entry.clone(),
    }];
    let relay = Relay::bind(rc.relay_settings())
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let client = Config::default()
        .client_builder()
        .connect(&relay.addr.to_string())
        .await
        .unwrap();
    client.identify().await.unwrap();
    client.release().await.unwrap();
}

#[tokio::test]
async fn configured_native_oids_are_used_end_to_end_and_relayed() {
    // The e2eSecurityAS and e2eMmsAC numbers are configuration (spec §9 DECISION): both ends and
    // the relay take other values from `[security]`, and ends that disagree do not associate.
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let oids = "[security]\ne2e_security_as = \"1.3.6.1.4.1.99999.1\"\ne2e_mms_ac = \"1.3.6.1.4.1.99999.2\"\n";
    let mut cfg = Config::from_toml(oids).unwrap();
    cfg.server.listen = "127.0.0.1:0".into();
    pki.apply_security(&mut cfg, true, AppMode::Native, Encrypt::Gcm);
    let server = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    let mut rc = Config::from_toml(oids).unwrap();
    rc.relay.listen = "127.0.0.1:0".into();
    rc.relay.to = Some(server.addr.to_string());
    let relay = Relay::bind(rc.relay_settings())
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let mut cc = Config::from_toml(oids).unwrap();
    pki.apply_security(&mut cc, false, AppMode::Native, Encrypt::Gcm);
    let c = cc
        .client_builder()
        .connect(&relay.addr.to_string())
        .await
        .unwrap();
    c.identify().await.unwrap();
    c.release().await.unwrap();
    // A client with the default numbers is refused by that server.
    let mut dflt = Config::default();
    pki.apply_security(&mut dflt, false, AppMode::Native, Encrypt::Gcm);
    assert!(dflt
        .client_builder()
        .connect(&server.addr.to_string())
        .await
        .is_err());
}
