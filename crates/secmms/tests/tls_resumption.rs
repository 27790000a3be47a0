//! T-profile checks that 62351-3 stacks offer (issue "The newcomer path", items 7–10):
//!
//! * resumption never bypasses revocation (§6.2): a TLS 1.2 session ID, a TLS 1.2 ticket and a
//!   TLS 1.3 PSK saved by `openssl s_client -sess_out` before the client was revoked are refused
//!   after the CRL reload, with `TLS_CERT_REVOKED`, and "Reused" never appears;
//! * no TLS 1.3 tickets by default (`tls13_tickets = 0`), the configured number otherwise;
//! * an alarm when the version changes at resumption (a TLS 1.2 session offered in a TLS 1.3
//!   handshake);
//! * the client checks the server's identity by default (the `--connect` host, or the
//!   configured server name), and skipping the check raises an alarm on every connection;
//! * an allow-list of peer certificate fingerprints;
//! * TLS key logging only when configured, in a 0600 file, with a warning event per session.
//!
//! The `openssl` command is the resuming peer; these tests skip locally without it and fail
//! when CI=true.

mod tls_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secmms::tls::TlsConfig;
use secmms::{Client, Config, ServerHandle};
use secmms_pki::event::SecurityEventSink;
use tls_support::*;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

/// Serial of the test PKI's client certificate.
const CLIENT_SERIAL: u32 = 11;

async fn start(tls: TlsConfig, events: Arc<dyn SecurityEventSink>) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.worker_threads = Some(0);
    cfg.tls = tls;
    cfg.server_builder()
        .events(events)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// Runs `openssl s_client` against `addr` with the test client's certificate and `extra`
/// arguments, keeps the connection open for a moment (so TLS 1.3 tickets arrive) and returns
/// everything it printed.
async fn s_client(addr: &str, extra: &[&str]) -> String {
    let p = pki();
    let mut args: Vec<String> = vec!["s_client".into(), "-connect".into(), addr.into()];
    for (flag, path) in [
        ("-CAfile", &p.ca.cert_pem),
        ("-cert", &p.client.cert_pem),
        ("-key", &p.client.key_pem),
    ] {
        args.push(flag.into());
        args.push(path.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl s_client");
        std::thread::sleep(Duration::from_millis(700));
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(b"");
        }
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
    .await
    .unwrap()
}

/// One resumption case: save a session, show that it resumes, revoke the client, reload, and
/// check that the same session is refused.
async fn resumption_after_revocation(version: &str, extra: &[&str], tls13_tickets: usize) {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let dir = temp_dir(&format!("resume{version}{}", extra.len()));
    let crl = dir.join("ca.crl.pem");
    std::fs::write(&crl, crl_pem(&make_crl(&p.ca, &[], 7))).unwrap();
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let (ev, sink) = sink();
    let mut tls = p.config(&p.server);
    tls.crl = vec![crl.clone()];
    tls.tls13 = version == "-tls1_3";
    tls.tls13_tickets = tls13_tickets;
    let h = start(tls, sink).await;
    let addr = h.addr.to_string();

    let mut first = vec![version, "-sess_out", sess];
    first.extend_from_slice(extra);
    let out = s_client(&addr, &first).await;
    assert!(out.contains("New,"), "first handshake: {out}");
    // The session resumes while the client is in good standing: the check below can fail.
    let mut again = vec![version, "-sess_in", sess];
    again.extend_from_slice(extra);
    let out = s_client(&addr, &again).await;
    assert!(
        out.contains("Reused,"),
        "resumption before revocation: {out}"
    );

    // Revoke the client; the server reloads (as on its schedule or SIGHUP).
    std::fs::write(&crl, crl_pem(&make_crl(&p.ca, &[CLIENT_SERIAL], 7))).unwrap();
    assert!(h.tls.as_ref().unwrap().reload_crls(), "the CRL changed");
    let out = s_client(&addr, &again).await;
    assert!(!out.contains("Reused,"), "revoked client resumed: {out}");
    assert!(
        wait_for(&ev, "TLS_CERT_REVOKED").await,
        "no revocation event: {:?}",
        mnemonics(&ev)
    );
    let established_after = ev
        .events()
        .iter()
        .rev()
        .take_while(|e| e.mnemonic != "TLS_CERT_REVOKED")
        .any(|e| e.mnemonic == "TLS_ESTABLISHED");
    assert!(!established_after, "{:?}", mnemonics(&ev));
    h.shutdown();
}

#[tokio::test]
async fn revoked_client_cannot_resume_tls12_session_id() {
    resumption_after_revocation("-tls1_2", &["-no_ticket"], 0).await;
}

#[tokio::test]
async fn revoked_client_cannot_resume_tls12_ticket() {
    resumption_after_revocation("-tls1_2", &[], 0).await;
}

#[tokio::test]
async fn revoked_client_cannot_resume_tls13_psk() {
    resumption_after_revocation("-tls1_3", &[], 2).await;
}

/// Issue 17: the session cache is bounded (OpenSSL's default of 20 480 sessions of ~10 KiB let a
/// client that reconnects in a loop grow the server by hundreds of MiB), also after a rebuild.
#[tokio::test]
async fn the_session_cache_is_bounded_by_configuration() {
    let p = pki();
    let (_ev, events) = sink();
    let h = start(p.config(&p.server), events).await;
    let ctx = h.tls.clone().unwrap();
    assert_eq!(ctx.session_cache_limit(), 1024);
    h.shutdown();
    let (_ev, events) = sink();
    let mut tls = p.config(&p.server);
    tls.session_cache_size = 7;
    let h = start(tls, events).await;
    assert_eq!(h.tls.as_ref().unwrap().session_cache_limit(), 7);
    h.shutdown();
    let mut tls = p.config(&p.server);
    tls.session_cache_size = 0;
    assert!(tls.validate().is_err());
}

#[tokio::test]
async fn no_tls13_tickets_by_default() {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let (_ev, events) = sink();
    let h = start(p.config(&p.server), events).await;
    let out = s_client(&h.addr.to_string(), &["-tls1_3"]).await;
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(!out.contains("New Session Ticket"), "{out}");
    h.shutdown();
    let (_ev, events) = sink();
    let mut tls = p.config(&p.server);
    tls.tls13_tickets = 2;
    let h = start(tls, events).await;
    let out = s_client(&h.addr.to_string(), &["-tls1_3"]).await;
    assert!(out.contains("New Session Ticket"), "{out}");
    h.shutdown();
}

#[tokio::test]
async fn tls12_session_offered_in_tls13_handshake_raises_version_alarm() {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let dir = temp_dir("version-change");
    let sess = dir.join("session.pem");
    let sess = sess.to_str().unwrap();
    let (ev, sink) = sink();
    let h = start(p.config(&p.server), sink).await;
    let addr = h.addr.to_string();
    let out = s_client(&addr, &["-tls1_2", "-sess_out", sess]).await;
    assert!(out.contains("TLSv1.2"), "{out}");
    assert!(
        !mnemonics(&ev).contains(&"TLS_VERSION_CHANGED"),
        "{:?}",
        mnemonics(&ev)
    );
    let out = s_client(&addr, &["-sess_in", sess]).await;
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(
        wait_for(&ev, "TLS_VERSION_CHANGED").await,
        "{:?}",
        mnemonics(&ev)
    );
    h.shutdown();
}

fn client_cfg(tls: TlsConfig) -> Config {
    Config {
        tls,
        ..Default::default()
    }
}

async fn connect_with_events(
    addr: &str,
    cfg: &Config,
) -> (
    Result<Client, secmms::client::ClientError>,
    Arc<secmms_pki::event::MemorySink>,
) {
    let (ev, sink) = sink();
    let ctx = secmms::tls::TlsContext::client(&cfg.tls, sink).unwrap();
    (
        cfg.client_builder()
            .tls_context(std::sync::Arc::new(ctx))
            .connect(addr)
            .await,
        ev,
    )
}

#[tokio::test]
async fn client_checks_the_server_identity_by_default() {
    let p = pki();
    let (_sev, ssink) = sink();
    let mut cfg = Config::default();
    cfg.server.listen = "0.0.0.0:0".into();
    cfg.server.worker_threads = Some(0);
    cfg.tls = p.config(&p.server);
    let h = cfg
        .server_builder()
        .events(ssink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let port = h.addr.port();
    let ccfg = client_cfg(p.config(&p.client));

    // The certificate names 127.0.0.1 and localhost: both are accepted.
    for host in ["127.0.0.1", "localhost"] {
        let (c, ev) = connect_with_events(&format!("{host}:{port}"), &ccfg).await;
        let c = c.unwrap_or_else(|e| panic!("{host}: {e}; {:?}", mnemonics(&ev)));
        c.release().await.unwrap();
    }
    // 127.0.0.2 reaches the same server, but the certificate does not name it.
    let (c, ev) = connect_with_events(&format!("127.0.0.2:{port}"), &ccfg).await;
    let e = c.expect_err("an unnamed address must be refused");
    assert!(
        mnemonics(&ev).contains(&"TLS_SERVER_IDENTITY_MISMATCH"),
        "{e}; {:?}",
        mnemonics(&ev)
    );
    assert!(e.to_string().contains("--server-name"), "{e}");
    // A configured server name the certificate lacks is refused too.
    let mut named = ccfg.clone();
    named.tls.server_name = Some("ied-7.example".into());
    let (c, ev) = connect_with_events(&format!("127.0.0.1:{port}"), &named).await;
    assert!(c.is_err());
    assert!(mnemonics(&ev).contains(&"TLS_SERVER_IDENTITY_MISMATCH"));
    // Skipping the check connects, with an alarm on every connection.
    let mut lab = ccfg.clone();
    lab.tls.insecure_skip_server_check = true;
    for _ in 0..2 {
        let (c, ev) = connect_with_events(&format!("127.0.0.2:{port}"), &lab).await;
        c.unwrap().release().await.unwrap();
        let alarms: Vec<_> = ev
            .events()
            .into_iter()
            .filter(|e| e.mnemonic == "TLS_SERVER_CHECK_SKIPPED")
            .collect();
        assert_eq!(alarms.len(), 1, "{:?}", mnemonics(&ev));
        assert_eq!(alarms[0].severity, secmms_pki::event::Severity::Alarm);
    }
    h.shutdown();
}

fn fingerprint(path: &std::path::Path) -> String {
    let pem = std::fs::read(path).unwrap();
    let der = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    openssl::sha::sha256(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[tokio::test]
async fn fingerprint_allow_list_admits_only_listed_peers() {
    let p = pki();
    let (ev, events) = sink();
    let mut tls = p.config(&p.server);
    tls.allowed_peer_fingerprints = vec![fingerprint(&p.server.cert_pem)];
    let h = start(tls, events).await;
    let ccfg = client_cfg(p.config(&p.client));
    let (c, _) = connect_with_events(&h.addr.to_string(), &ccfg).await;
    assert!(c.is_err(), "a client not on the list was accepted");
    assert!(
        wait_for(&ev, "TLS_CERT_NOT_ALLOWED").await,
        "{:?}",
        mnemonics(&ev)
    );
    h.shutdown();

    let (_ev, events) = sink();
    let mut tls = p.config(&p.server);
    tls.allowed_peer_fingerprints = vec![fingerprint(&p.client.cert_pem)];
    let h = start(tls, events).await;
    let (c, ev) = connect_with_events(&h.addr.to_string(), &ccfg).await;
    c.unwrap_or_else(|e| panic!("{e}; {:?}", mnemonics(&ev)))
        .release()
        .await
        .unwrap();
    h.shutdown();
    // A malformed entry is refused at load time.
    let mut bad = p.config(&p.server);
    bad.allowed_peer_fingerprints = vec!["AB:CD".into()];
    assert!(bad.validate().is_err());
}

#[tokio::test]
async fn key_log_only_when_configured_mode_0600_with_warning() {
    use std::os::unix::fs::PermissionsExt;
    let p = pki();
    let dir = temp_dir("keylog");
    let log = dir.join("keys.log");
    let (_sev, ssink) = sink();
    let h = start(p.config(&p.server), ssink).await;
    let mut ccfg = client_cfg(p.config(&p.client));
    ccfg.tls.keylog_file = Some(log.clone());
    let (c, ev) = connect_with_events(&h.addr.to_string(), &ccfg).await;
    c.unwrap().release().await.unwrap();
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&log).unwrap().contains("SECRET"));
    let warn: Vec<_> = ev
        .events()
        .into_iter()
        .filter(|e| e.mnemonic == "TLS_KEYLOG_ACTIVE")
        .collect();
    assert_eq!(warn.len(), 1, "{:?}", mnemonics(&ev));
    assert_eq!(warn[0].severity, secmms_pki::event::Severity::Warning);
    h.shutdown();
}

/// `tls13_key_refresh = "new_association"`: when keys are due (forced here, as after a CRL
/// update), the TLS 1.3 session ends instead of sending a KeyUpdate, with its event; the client
/// associates again with a full handshake.
#[tokio::test]
async fn tls13_key_refresh_by_new_association() {
    let p = pki();
    let (ev, events) = sink();
    let mut tls = p.config(&p.server);
    tls.tls13_key_refresh = secmms::tls::Tls13KeyRefresh::NewAssociation;
    let h = start(tls, events).await;
    let ccfg = client_cfg(p.config(&p.client));
    let (c, _) = connect_with_events(&h.addr.to_string(), &ccfg).await;
    let c = c.unwrap();
    c.identify().await.unwrap();
    h.tls_trigger.as_ref().unwrap().force();
    let mut ended = false;
    for _ in 0..100 {
        if c.identify().await.is_err() || c.is_closed() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ended, "the session did not end; {:?}", mnemonics(&ev));
    assert!(ev
        .events()
        .iter()
        .any(|e| e.mnemonic == "TLS_KEYS_REFRESHED" && e.message.contains("new association")));
    assert_eq!(
        h.tls_stats
            .as_ref()
            .unwrap()
            .key_updates
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let (c, _) = connect_with_events(&h.addr.to_string(), &ccfg).await;
    c.unwrap().identify().await.unwrap();
    h.shutdown();
}

/// The server identity may come from the clause 5.1 peer table: a `[[security.peers]]` row with
/// `tls_server_name` names what the certificate of the peer it matches must carry.
#[tokio::test]
async fn peer_table_row_names_the_server_identity() {
    let p = pki();
    let (_sev, ssink) = sink();
    let mut cfg = Config::default();
    cfg.server.listen = "0.0.0.0:0".into();
    cfg.server.worker_threads = Some(0);
    cfg.tls = p.config(&p.server);
    let h = cfg
        .server_builder()
        .events(ssink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.2:{}", h.addr.port());
    let row = |name: &str| secmms::security::PeerEntry {
        name: "ied".into(),
        address: Some("127.0.0.2".parse().unwrap()),
        ap_title: None,
        ae_qualifier: None,
        certificate_subject: None,
        transport: Default::default(),
        application: None,
        sisco_compat: false,
        tls_server_name: Some(name.into()),
    };
    let mut ccfg = client_cfg(p.config(&p.client));
    // Without a row, 127.0.0.2 is not in the certificate: refused.
    assert!(ccfg.client_builder().connect(&addr).await.is_err());
    // The row says the certificate names "localhost": accepted.
    ccfg.security.peers = vec![row("localhost")];
    let c = ccfg.client_builder().connect(&addr).await.unwrap();
    c.identify().await.unwrap();
    c.release().await.unwrap();
    // A row naming another host: refused.
    ccfg.security.peers = vec![row("ied-7.example")];
    let e = ccfg
        .client_builder()
        .connect(&addr)
        .await
        .expect_err("wrong name");
    assert!(e.to_string().contains("--server-name"), "{e}");
    h.shutdown();
}
