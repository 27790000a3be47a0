//! OCSP for TLS client certificates (§6.2.8, RFC 6960) against a real responder: `secmms cert`
//! keeps the CA's index.txt and writes the responder into the certificates (`--ocsp-url`),
//! `openssl ocsp` answers from that index, and a secmms server with `ocsp_check` looks every
//! client up after the handshake: good, revoked, unknown and responder-down, in soft-fail and
//! hard-fail, and a cached answer outlives the responder.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use secmms::ocsp::OcspCheck;
use secmms::Config;
use secmms_pki::event::{MemorySink, SecurityEventSink};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_ok(args: &[&str]) {
    let out = secmms().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "secmms {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).display().to_string()
}

/// Starts `openssl ocsp` on `port` for the CA in `ca` and waits until it says it listens.
/// (Probing the port with a connection would not do: the responder serves one connection at a
/// time and stalls on one that sends nothing.)
fn responder(ca: &Path, port: u16) -> Proc {
    use std::io::BufRead;
    let mut child = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            &p(ca, "index.txt"),
            "-port",
            &port.to_string(),
        ])
        .args(["-CA", &p(ca, "ca.pem"), "-rsigner", &p(ca, "ca.pem")])
        .args(["-rkey", &p(ca, "ca.key"), "-ignore_err"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl ocsp");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && line.contains("waiting for OCSP client connections") {
                sent = true;
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("openssl ocsp did not start on port {port}"));
    Proc(child)
}

fn tls(dir: &Path, who: &str) -> secmms::tls::TlsConfig {
    secmms::tls::TlsConfig {
        enabled: true,
        cert: Some(dir.join(format!("{who}/tls-cert.pem"))),
        key: Some(dir.join(format!("{who}/tls-key.pem"))),
        ca: vec![dir.join("ca/ca.pem")],
        ..Default::default()
    }
}

struct Lab {
    dir: Dir,
    port: u16,
}

/// A CA, a server certificate and clients `good`, `revoked` (revoked with `secmms cert crl`)
/// and `unknown` (left out of the index the responder reads), all naming the responder.
fn lab() -> Lab {
    let dir = Dir(std::env::temp_dir().join(format!("secmms-ocsp-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = &dir.0;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    run_ok(&["cert", "ca", "--out", &p(d, "ca")]);
    for who in ["server", "good", "revoked", "unknown"] {
        run_ok(&[
            "cert",
            "issue",
            "--ca",
            &p(d, "ca"),
            "--tls",
            "--ip",
            "127.0.0.1",
            "--ocsp-url",
            &url,
            "--out",
            &p(d, who),
        ]);
    }
    let index = std::fs::read_to_string(d.join("ca/index.txt")).unwrap();
    assert_eq!(index.lines().count(), 4, "{index}");
    assert!(index.lines().all(|l| l.starts_with("V\t")), "{index}");
    run_ok(&[
        "cert",
        "crl",
        "--ca",
        &p(d, "ca"),
        "--revoke",
        &p(d, "revoked/tls-cert.pem"),
        "--out",
        &p(d, "ca/crl.pem"),
    ]);
    let index = std::fs::read_to_string(d.join("ca/index.txt")).unwrap();
    assert_eq!(index.lines().filter(|l| l.starts_with("R\t")).count(), 1);
    // "unknown": the responder has never heard of it.
    let der = secmms_pki::tooling::pem_or_der(
        "CERTIFICATE",
        &std::fs::read(d.join("unknown/tls-cert.pem")).unwrap(),
    )
    .unwrap();
    let serial: String = secmms_pki::tooling::cert_serial(&der)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let kept: String = index
        .lines()
        .filter(|l| !l.contains(&serial))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("ca/index.txt"), kept).unwrap();
    // The certificates carry the responder (authorityInfoAccess).
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ocsp_uri",
            "-in",
            &p(d, "good/tls-cert.pem"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
    Lab { dir, port }
}

async fn server(
    lab: &Lab,
    check: OcspCheck,
    responder: Option<String>,
) -> (secmms::ServerHandle, Arc<MemorySink>) {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.worker_threads = Some(0);
    cfg.tls = tls(&lab.dir.0, "server");
    cfg.tls.ocsp_check = check;
    cfg.tls.ocsp_responder = responder;
    cfg.tls.ocsp_timeout_secs = 2;
    let events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = events.clone();
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

/// Connects as `who` and reads the identity: true when that worked.
async fn associate(lab: &Lab, addr: std::net::SocketAddr, who: &str) -> bool {
    let cfg = Config {
        tls: tls(&lab.dir.0, who),
        ..Config::default()
    };
    match cfg.client_builder().connect(&addr.to_string()).await {
        Ok(c) => {
            let ok = c.identify().await.is_ok();
            let _ = c.release().await;
            ok
        }
        Err(_) => false,
    }
}

fn count(events: &MemorySink, mnemonic: &str, text: &str) -> usize {
    events
        .events()
        .iter()
        .filter(|e| e.mnemonic == mnemonic && e.message.contains(text))
        .count()
}

#[tokio::test]
async fn ocsp_good_revoked_unknown_and_responder_down() {
    if !require("openssl", have_tool("openssl")) {
        return;
    }
    let lab = lab();
    let mut ocsp = responder(&lab.dir.0.join("ca"), lab.port);

    // Soft-fail: good in, revoked out, unknown in with a warning.
    let (h, ev) = server(&lab, OcspCheck::SoftFail, None).await;
    assert!(associate(&lab, h.addr, "good").await, "good refused");
    assert!(
        !associate(&lab, h.addr, "revoked").await,
        "revoked accepted: {:?}",
        ev.events()
    );
    assert_eq!(
        count(&ev, "TLS_CERT_REVOKED", "OCSP"),
        1,
        "{:?}",
        ev.events()
    );
    assert!(
        associate(&lab, h.addr, "unknown").await,
        "unknown refused under soft-fail"
    );
    assert_eq!(
        count(&ev, "TLS_OCSP_UNAVAILABLE", "unknown"),
        1,
        "{:?}",
        ev.events()
    );
    assert_eq!(
        count(&ev, "TLS_OCSP_UNAVAILABLE", ""),
        1,
        "good raised a warning"
    );

    // Hard-fail: unknown is refused too.
    let (hard, hev) = server(&lab, OcspCheck::HardFail, None).await;
    assert!(associate(&lab, hard.addr, "good").await);
    assert!(!associate(&lab, hard.addr, "unknown").await);
    assert!(!associate(&lab, hard.addr, "revoked").await);
    assert_eq!(count(&hev, "TLS_OCSP_UNAVAILABLE", "hard-fail"), 1);

    // The responder goes away: the cached answers still serve...
    let _ = ocsp.0.kill();
    let _ = ocsp.0.wait();
    assert!(associate(&lab, h.addr, "good").await);
    assert!(!associate(&lab, h.addr, "revoked").await);
    assert_eq!(count(&ev, "TLS_OCSP_UNAVAILABLE", ""), 1, "cache not used");
    h.shutdown();
    hard.shutdown();

    // ...while a server that has none: soft-fail lets the peer in with a warning, hard-fail
    // refuses it. The configured responder overrides the certificate's.
    let down = Some(format!("http://127.0.0.1:{}", free_port()));
    let (soft, sev) = server(&lab, OcspCheck::SoftFail, down.clone()).await;
    assert!(associate(&lab, soft.addr, "good").await);
    assert_eq!(
        count(&sev, "TLS_OCSP_UNAVAILABLE", "soft-fail"),
        1,
        "{:?}",
        sev.events()
    );
    let (hard, hev) = server(&lab, OcspCheck::HardFail, down).await;
    assert!(!associate(&lab, hard.addr, "good").await);
    assert_eq!(count(&hev, "TLS_OCSP_UNAVAILABLE", "hard-fail"), 1);
    soft.shutdown();
    hard.shutdown();
}

/// A CA whose application certificates (Annex G, `--ap-title`) name the responder: `server`,
/// `good`, `revoked` (revoked in the index) and `unknown` (left out of it).
fn app_lab() -> Lab {
    let dir = Dir(std::env::temp_dir().join(format!("secmms-app-ocsp-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = &dir.0;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    run_ok(&["cert", "ca", "--out", &p(d, "ca")]);
    for (who, ap, q) in [
        ("server", "1.1.1.999.1", "12"),
        ("good", "1.1.1.999.2", "13"),
        ("revoked", "1.1.1.999.2", "14"),
        ("unknown", "1.1.1.999.2", "15"),
    ] {
        run_ok(&[
            "cert",
            "issue",
            "--ca",
            &p(d, "ca"),
            "--ap-title",
            ap,
            "--ae-qualifier",
            q,
            "--ocsp-url",
            &url,
            "--out",
            &p(d, who),
        ]);
    }
    run_ok(&[
        "cert",
        "crl",
        "--ca",
        &p(d, "ca"),
        "--revoke",
        &p(d, "revoked/cert.pem"),
        "--out",
        &p(d, "ca/crl.pem"),
    ]);
    let index = std::fs::read_to_string(d.join("ca/index.txt")).unwrap();
    let der = secmms_pki::tooling::pem_or_der(
        "CERTIFICATE",
        &std::fs::read(d.join("unknown/cert.pem")).unwrap(),
    )
    .unwrap();
    let serial: String = secmms_pki::tooling::cert_serial(&der)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let kept: String = index
        .lines()
        .filter(|l| !l.contains(&serial))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("ca/index.txt"), kept).unwrap();
    Lab { dir, port }
}

fn app_config(lab: &Lab, mode: secmms::security::AppMode, who: &str) -> Config {
    let mut cfg = Config::default();
    cfg.security.mode = mode;
    cfg.security.app_cert = Some(lab.dir.0.join(format!("{who}/cert.pem")));
    cfg.security.app_key = Some(lab.dir.0.join(format!("{who}/key.pem")));
    cfg.security.ca = vec![lab.dir.0.join("ca/ca.pem")];
    cfg
}

async fn app_server(
    lab: &Lab,
    mode: secmms::security::AppMode,
    check: OcspCheck,
    responder: Option<String>,
) -> (secmms::ServerHandle, Arc<MemorySink>) {
    let mut cfg = app_config(lab, mode, "server");
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.worker_threads = Some(0);
    // Only the application certificates are looked up: [tls] stays off.
    cfg.security.ocsp_check = Some(check);
    cfg.security.ocsp_responder = responder;
    cfg.tls.ocsp_timeout_secs = 2;
    let events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = events.clone();
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

/// Associates as `who`: `Ok(())` when an identify went through, else the client's error.
async fn app_associate(
    lab: &Lab,
    mode: secmms::security::AppMode,
    addr: std::net::SocketAddr,
    who: &str,
) -> Result<(), String> {
    let cfg = app_config(lab, mode, who);
    let c = cfg
        .client_builder()
        .connect(&addr.to_string())
        .await
        .map_err(|e| e.to_string())?;
    c.identify().await.map_err(|e| e.to_string())?;
    let _ = c.release().await;
    Ok(())
}

/// OCSP for the peers' application certificates (§6.2.8), both modes, against the real
/// responder: looked up when the association request has verified and before it is answered;
/// revoked is refused (compat: ABRT + AP_CERT_REVOKED; native: HandshakeSecReject with
/// invalid-public-key-certificate + E2E_PEER_CERT_REVOKED), unknown and responder-down are let
/// in with a warning under soft-fail and refused under hard-fail, answers are cached.
#[tokio::test]
async fn ocsp_for_application_certificates_in_both_modes() {
    use secmms::security::AppMode;
    if !require("openssl", have_tool("openssl")) {
        return;
    }
    let lab = app_lab();
    let mut ocsp = responder(&lab.dir.0.join("ca"), lab.port);
    for (mode, revoked_ev, unavailable_ev) in [
        (AppMode::Compat, "AP_CERT_REVOKED", "AP_OCSP_UNAVAILABLE"),
        (
            AppMode::Native,
            "E2E_PEER_CERT_REVOKED",
            "E2E_PEER_OCSP_UNAVAILABLE",
        ),
    ] {
        let (h, ev) = app_server(&lab, mode, OcspCheck::SoftFail, None).await;
        app_associate(&lab, mode, h.addr, "good")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: good refused: {e}"));
        let e = app_associate(&lab, mode, h.addr, "revoked")
            .await
            .expect_err("revoked accepted");
        if mode == AppMode::Native {
            assert!(e.contains("invalid-public-key-certificate"), "{e}");
        }
        assert_eq!(
            count(&ev, revoked_ev, "OCSP"),
            1,
            "{mode:?}: {:?}",
            ev.events()
        );
        app_associate(&lab, mode, h.addr, "unknown")
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: unknown refused under soft-fail: {e}"));
        assert_eq!(
            count(&ev, unavailable_ev, "soft-fail"),
            1,
            "{:?}",
            ev.events()
        );

        let (hard, hev) = app_server(&lab, mode, OcspCheck::HardFail, None).await;
        app_associate(&lab, mode, hard.addr, "good").await.unwrap();
        assert!(app_associate(&lab, mode, hard.addr, "unknown")
            .await
            .is_err());
        assert!(app_associate(&lab, mode, hard.addr, "revoked")
            .await
            .is_err());
        assert_eq!(
            count(&hev, unavailable_ev, "hard-fail"),
            1,
            "{:?}",
            hev.events()
        );
        h.shutdown();
        hard.shutdown();

        // A responder that is not there: soft-fail lets in with a warning, hard-fail refuses.
        let down = Some(format!("http://127.0.0.1:{}", free_port()));
        let (soft, sev) = app_server(&lab, mode, OcspCheck::SoftFail, down.clone()).await;
        app_associate(&lab, mode, soft.addr, "good").await.unwrap();
        assert_eq!(
            count(&sev, unavailable_ev, "soft-fail"),
            1,
            "{:?}",
            sev.events()
        );
        let (hard, hev) = app_server(&lab, mode, OcspCheck::HardFail, down).await;
        assert!(app_associate(&lab, mode, hard.addr, "good").await.is_err());
        assert_eq!(count(&hev, unavailable_ev, "hard-fail"), 1);
        soft.shutdown();
        hard.shutdown();
    }

    // Answers are cached until nextUpdate: with the responder gone, a server that asked once
    // still knows.
    let (h, ev) = app_server(&lab, AppMode::Compat, OcspCheck::HardFail, None).await;
    app_associate(&lab, AppMode::Compat, h.addr, "good")
        .await
        .unwrap();
    let _ = ocsp.0.kill();
    let _ = ocsp.0.wait();
    app_associate(&lab, AppMode::Compat, h.addr, "good")
        .await
        .unwrap();
    assert_eq!(
        count(&ev, "AP_OCSP_UNAVAILABLE", ""),
        0,
        "{:?}",
        ev.events()
    );
    h.shutdown();
}
