//! The clause 5.1 bilateral table from the `[security]` TOML section, enforced by the runtime:
//! each row's transport and application requirements decide whether an association is accepted.

use std::sync::Arc;

use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms_pki::event::MemorySink;
use secmms_tools::demo::DemoPki;

fn mnemonics(sink: &MemorySink) -> Vec<String> {
    sink.events()
        .iter()
        .map(|e| e.mnemonic.to_string())
        .collect()
}

async fn start(cfg: Config) -> (secmms::ServerHandle, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new());
    let server = cfg
        .server_builder()
        .events(sink.clone())
        .bind()
        .await
        .unwrap();
    (server.spawn().unwrap(), sink)
}

fn server_cfg(pki: &DemoPki, extra: &str) -> Config {
    let mut cfg = Config::from_toml(extra).unwrap();
    cfg.server.listen = "127.0.0.1:0".into();
    pki.apply_security(&mut cfg, true, AppMode::Compat, Encrypt::Gcm);
    cfg
}

fn client_cfg(pki: &DemoPki, mode: AppMode) -> Config {
    let mut cfg = Config::default();
    pki.apply_security(&mut cfg, false, mode, Encrypt::Gcm);
    cfg
}

#[tokio::test]
async fn rows_from_toml_decide_per_peer() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();

    // Row: the client (1.1.1.999 / 12) must come over TLS. It comes over plain TCP: refused with
    // the policy event, although its A-profile value is good.
    let (h, sink) = start(server_cfg(
        &pki,
        r#"
[[security.peers]]
name = "scada"
ap_title = "1.1.1.999"
ae_qualifier = 12
transport = "secure"
application = "secure"
"#,
    ))
    .await;
    let e = client_cfg(&pki, AppMode::Compat)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rejected"), "{e}");
    assert!(
        mnemonics(&sink).contains(&"AP_POLICY_REFUSED".to_string()),
        "{:?}",
        mnemonics(&sink)
    );
    h.shutdown();

    // Row: this peer needs no application security; a plain client is accepted by a server in
    // compatibility mode, and a client with a value is still verified.
    let (h, sink) = start(server_cfg(
        &pki,
        r#"
[[security.peers]]
name = "legacy"
ap_title = "1.1.1.999"
application = "non_secure"
"#,
    ))
    .await;
    let c = client_cfg(&pki, AppMode::Plain)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    c.identify().await.unwrap();
    c.release().await.unwrap();
    let c = client_cfg(&pki, AppMode::Compat)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap();
    c.release().await.unwrap();
    assert!(mnemonics(&sink).contains(&"AP_AUTHENTICATED".to_string()));
    h.shutdown();

    // unknown_peers = "refuse" and a row for another AP-title: our client matches nothing.
    let (h, sink) = start(server_cfg(
        &pki,
        r#"
[security]
unknown_peers = "refuse"
[[security.peers]]
name = "other"
ap_title = "1.2.3.4"
"#,
    ))
    .await;
    let e = client_cfg(&pki, AppMode::Compat)
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rejected"), "{e}");
    assert!(mnemonics(&sink).contains(&"AP_POLICY_REFUSED".to_string()));
    h.shutdown();

    // The client side refuses to call a peer its own table has no row for.
    let mut cfg = client_cfg(&pki, AppMode::Compat);
    cfg.security.unknown_peers = secmms::security::UnknownPeers::Refuse;
    let e = cfg
        .client_builder()
        .connect("127.0.0.1:9")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no [[security.peers]] row"), "{e}");
}

#[test]
fn bad_rows_are_configuration_errors() {
    for bad in [
        "[[security.peers]]\nname = \"x\"\nap_title = \"one.two\"",
        "[[security.peers]]\nname = \"x\"\ntransport = \"sometimes\"",
        "[[security.peers]]\nname = \"x\"\ncertificate_subject = \"nope\"",
        "[[security.peers]]\nap_title = \"1.2\"",
        "[security]\nmode = \"compat\"",
        "[security]\nmode = \"native\"\napp_cert = \"a\"\napp_key = \"k\"",
        "[security]\ntime_window_secs = 0",
    ] {
        assert!(Config::from_toml(bad).is_err(), "{bad}");
    }
    let ok = Config::from_toml(
        "[security]\nmode = \"native\"\napp_cert = \"a\"\napp_key = \"k\"\nca = [\"ca.pem\"]\nencrypt = \"cbc\"",
    )
    .unwrap();
    assert_eq!(ok.security.encrypt, Encrypt::Cbc);
}
