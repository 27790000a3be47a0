//! Annex G.2 (separate TLS and application certificates) over real TLS connections, in native
//! and compatibility mode: a client whose application certificate is also its TLS certificate
//! is refused by a server left at the default, and accepted by one configured with
//! `[security] separate_certificates = false`. Our own configuration that reuses the TLS
//! certificate as the application certificate is refused before anything is sent.

use std::sync::Arc;

use secmms::security::{AppMode, AppSecurity, Encrypt};
use secmms::Config;
use secmms_pki::event::{MemorySink, SecurityEvent, SecurityEventSink};
use secmms_tools::demo::DemoPki;

/// Connects a client that uses its application certificate as TLS certificate too. Returns the
/// client's error (if any) and the server's events.
async fn reuse(mode: AppMode, server_separate: bool) -> (Option<String>, Vec<SecurityEvent>) {
    let parent = std::env::temp_dir().join(format!("secmms-g2-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    let pki = DemoPki::create(&parent).unwrap();
    let mut scfg = Config::default();
    scfg.server.listen = "127.0.0.1:0".into();
    scfg.server.worker_threads = Some(0);
    scfg.tls = pki.tls_config(true);
    pki.apply_security(&mut scfg, true, mode, Encrypt::Gcm);
    scfg.security.separate_certificates = server_separate;
    let events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = events.clone();
    let h = scfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();

    let mut ccfg = Config {
        tls: pki.tls_config(false),
        ..Config::default()
    };
    pki.apply_security(&mut ccfg, false, mode, Encrypt::Gcm);
    // The client's TLS credentials are its application credentials.
    ccfg.tls.cert = Some(pki.client_app.0.clone());
    ccfg.tls.key = Some(pki.client_app.1.clone());

    // At the default the client refuses its own configuration (Annex G.2).
    let e = AppSecurity::build(
        &ccfg.security,
        &ccfg.tls,
        &ccfg.osi,
        Arc::new(MemorySink::new()),
    )
    .expect_err("reusing our TLS certificate as application certificate");
    assert!(e.to_string().contains("separate_certificates"), "{e}");

    ccfg.security.separate_certificates = false;
    let security = AppSecurity::build(
        &ccfg.security,
        &ccfg.tls,
        &ccfg.osi,
        Arc::new(MemorySink::new()),
    )
    .unwrap();
    let builder = ccfg.client_builder();
    let tls = secmms::tls::TlsContext::client(
        &builder.tls_config_for(Some(h.addr.ip())).unwrap(),
        Arc::new(MemorySink::new()),
    )
    .unwrap();
    let error = match builder
        .tls_context(Arc::new(tls))
        .app_security(security.clone())
        .connect(&h.addr.to_string())
        .await
    {
        Ok(c) => {
            c.identify().await.unwrap();
            c.release().await.unwrap();
            None
        }
        Err(e) => Some(e.to_string()),
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    h.shutdown();
    (error, events.events())
}

#[tokio::test]
async fn native_mode_refuses_a_tls_certificate_as_application_certificate() {
    let (error, events) = reuse(AppMode::Native, true).await;
    let e = error.expect("the reused certificate was accepted");
    assert!(e.contains("invalid-public-key-certificate"), "{e}");
    let ev = events
        .iter()
        .find(|e| e.mnemonic == "PKCERT_ERROR_ASS_REQ")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(ev.message.contains("Annex G.2"), "{ev:?}");

    let (error, _) = reuse(AppMode::Native, false).await;
    assert_eq!(error, None, "separate_certificates = false accepts it");
}

#[tokio::test]
async fn compat_mode_refuses_a_tls_certificate_as_application_certificate() {
    let (error, events) = reuse(AppMode::Compat, true).await;
    assert!(error.is_some(), "the reused certificate was accepted");
    assert!(
        events.iter().any(|e| e.mnemonic == "AP_TLS_CERT_REUSED"),
        "{events:?}"
    );
    let (error, _) = reuse(AppMode::Compat, false).await;
    assert_eq!(error, None, "separate_certificates = false accepts it");
}
