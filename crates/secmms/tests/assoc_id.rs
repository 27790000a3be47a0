//! The `association` of every security event names the association by the peer's address and
//! port, in compatibility and in native mode, on both sides (issue "The newcomer path", item 2),
//! so two associations from one host are told apart in the log.

use std::sync::Arc;

use secmms::security::AppMode;
use secmms::Config;
use secmms_pki::event::{MemorySink, SecurityEventSink};
use secmms_tools::demo::DemoPki;

fn secured(mode: AppMode, pki: &DemoPki, server: bool) -> Config {
    let mut cfg = Config::default();
    cfg.security.mode = mode;
    let (cert, key) = if server {
        &pki.server_app
    } else {
        &pki.client_app
    };
    cfg.security.app_cert = Some(cert.clone());
    cfg.security.app_key = Some(key.clone());
    cfg.security.ca = vec![pki.ca.clone()];
    cfg
}

async fn check(mode: AppMode, established: &str) {
    let parent = std::env::temp_dir().join(format!("secmms-assoc-id-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    let pki = DemoPki::create(&parent).unwrap();
    let server_events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = server_events.clone();
    let mut scfg = secured(mode, &pki, true);
    scfg.server.listen = "127.0.0.1:0".into();
    scfg.server.worker_threads = Some(0);
    let h = scfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let client_events = Arc::new(MemorySink::new());
    let ccfg = secured(mode, &pki, false);
    let csink: Arc<dyn SecurityEventSink> = client_events.clone();
    let security =
        secmms::security::AppSecurity::build(&ccfg.security, &ccfg.tls, &ccfg.osi, csink).unwrap();
    let c = ccfg
        .client_builder()
        .app_security(security.clone())
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    c.identify().await.unwrap();
    c.release().await.unwrap();

    // The server names the client by its address and (ephemeral) port.
    let ev = server_events.events();
    let e = ev
        .iter()
        .find(|e| e.mnemonic == established)
        .unwrap_or_else(|| panic!("{mode:?}: no {established}: {ev:?}"));
    let who = e.association.clone().unwrap_or_default();
    let port = who
        .strip_prefix("127.0.0.1:")
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse::<u16>().ok());
    assert!(
        port.is_some_and(|p| p != h.addr.port()),
        "{mode:?}: server-side assoID {who:?}"
    );
    // The client names the server by its address and port.
    let addr = h.addr.to_string();
    let ev = client_events.events();
    assert!(
        ev.iter().any(|e| e
            .association
            .as_deref()
            .is_some_and(|a| a.starts_with(&addr))),
        "{mode:?}: client-side assoIDs {:?}",
        ev.iter().map(|e| &e.association).collect::<Vec<_>>()
    );
    assert!(
        ev.iter()
            .all(|e| e.association.as_deref() != Some("default")),
        "{ev:?}"
    );
    h.shutdown();
}

#[tokio::test]
async fn compat_mode_events_name_the_association_by_address_and_port() {
    check(AppMode::Compat, "AP_AUTHENTICATED").await;
}

#[tokio::test]
async fn native_mode_events_name_the_association_by_address_and_port() {
    check(AppMode::Native, "E2E_ESTABLISHED").await;
}
