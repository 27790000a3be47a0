//! T-profile (IEC 62351-4 clause 6): our TLS client against our TLS server with mutual
//! authentication, and every refusal the issue lists, each with its security event: expired,
//! not-yet-valid, revoked (CRL), unknown CA, oversize certificate, missing client certificate,
//! disallowed suite, TLS 1.0/1.1 offer, a ClientHello without RFC 5746. An unreachable CRL is a
//! warning only. The PKI is generated at test time (tests/tls_support).

mod tls_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secmms::tls::{TlsConfig, TlsContext};
use secmms::{Client, Config, ServerHandle};
use secmms_pki::event::{MemorySink, SecurityEventSink, Severity};
use tls_support::*;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

async fn start(tls: TlsConfig, events: Arc<dyn SecurityEventSink>) -> ServerHandle {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.associate_timeout_secs = 5;
    cfg.tls = tls;
    cfg.server_builder()
        .events(events)
        .bind()
        .await
        .expect("server starts")
        .spawn()
        .unwrap()
}

fn client_config(tls: TlsConfig) -> Config {
    let mut cfg = Config::default();
    cfg.client.associate_timeout_secs = 5;
    cfg.client.request_timeout_secs = 5;
    cfg.tls = tls;
    cfg
}

async fn read_demo_value(c: &Client) {
    let v = c
        .read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]")
        .await
        .expect("read over TLS");
    assert!(!v.to_string().is_empty());
}

#[tokio::test]
async fn mutual_tls_association_tls13_and_tls12() {
    let p = pki();
    for tls13 in [true, false] {
        let (server_events, sink) = sink();
        let mut scfg = p.config(&p.server);
        scfg.tls13 = tls13;
        let h = start(scfg, sink).await;
        let ccfg = client_config(p.config(&p.client));
        let c = ccfg
            .client_builder()
            .connect(&h.addr.to_string())
            .await
            .expect("TLS association");
        let id = c.identify().await.unwrap();
        assert!(!id.vendor.is_empty());
        read_demo_value(&c).await;
        c.release().await.unwrap();
        assert!(wait_for(&server_events, "TLS_ESTABLISHED").await);
        let ev = server_events.events();
        let est = ev.iter().find(|e| e.mnemonic == "TLS_ESTABLISHED").unwrap();
        let want = if tls13 { "TLSv1.3" } else { "TLSv1.2" };
        assert!(est.message.contains(want), "{}", est.message);
        assert_eq!(est.severity, Severity::Notice);
        let stats = h.tls_stats.clone().unwrap();
        assert_eq!(
            stats.handshakes.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        h.shutdown();
    }
}

#[tokio::test]
async fn several_trust_anchors() {
    let p = pki();
    let (_ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    // Four anchors (§6.2 DECISION: at least 4 supported): the client's CA is the last one.
    let extra: Vec<_> = (0..3)
        .map(|i| {
            let d = temp_dir("anchor");
            let ca = issue_ca(&d, i);
            ca.cert_pem
        })
        .collect();
    scfg.ca = extra.into_iter().chain([p.ca.cert_pem.clone()]).collect();
    let h = start(scfg, sink).await;
    let c = (client_config(p.config(&p.client)))
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .expect("chain to the fourth anchor");
    read_demo_value(&c).await;
    c.release().await.unwrap();
    h.shutdown();
}

fn issue_ca(dir: &std::path::Path, i: u32) -> Issued {
    make_ca(dir, &format!("unrelated CA {i}"), &format!("extra-ca-{i}"))
}

#[tokio::test]
async fn plain_mode_raises_tls_disabled() {
    let (ev, sink) = sink();
    let h = start(TlsConfig::default(), sink).await;
    let e = ev.events();
    let d = e
        .iter()
        .find(|e| e.mnemonic == "TLS_DISABLED")
        .expect("event");
    assert_eq!(d.severity, Severity::Warning);
    h.shutdown();
    // And a configuration that forbids plain RFC 1006 refuses it.
    let cfg = Config::from_toml("[tls]\nallow_plain = false");
    assert!(cfg.is_err());
}

/// Our client presents `who`; the server must refuse it with `mnemonic`.
async fn refused_client(who: &Issued, mnemonic: &str) -> Arc<MemorySink> {
    let p = pki();
    let (server_events, sink) = sink();
    let h = start(p.config(&p.server), sink).await;
    let mut ccfg = p.config(who);
    // The client itself trusts the server's CA (and the CA of `who`, irrelevant here).
    ccfg.ca = vec![p.ca.cert_pem.clone()];
    let r = client_config(ccfg)
        .client_builder()
        .connect(&h.addr.to_string())
        .await;
    assert!(r.is_err(), "{mnemonic}: the association must fail");
    assert!(
        wait_for(&server_events, mnemonic).await,
        "{mnemonic} expected, got {:?}",
        mnemonics(&server_events)
    );
    let st = h.stats.clone();
    for _ in 0..50 {
        if st.tls_refused.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(st.tls_refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        st.associations.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    h.shutdown();
    server_events
}

#[tokio::test]
async fn refuses_expired_client_certificate() {
    let ev = refused_client(&pki().expired, "TLS_CERT_EXPIRED").await;
    let e = ev.events();
    let x = e.iter().find(|e| e.mnemonic == "TLS_CERT_EXPIRED").unwrap();
    assert_eq!(
        x.severity,
        Severity::Warning,
        "§6.2.8: expired is a warning"
    );
}

#[tokio::test]
async fn refuses_not_yet_valid_client_certificate() {
    refused_client(&pki().not_yet_valid, "TLS_CERT_NOT_YET_VALID").await;
}

#[tokio::test]
async fn refuses_revoked_client_certificate() {
    let ev = refused_client(&pki().revoked, "TLS_CERT_REVOKED").await;
    let e = ev.events();
    let x = e.iter().find(|e| e.mnemonic == "TLS_CERT_REVOKED").unwrap();
    assert_eq!(
        x.severity,
        Severity::Incident,
        "§6.2.8: revoked is an incident"
    );
}

#[tokio::test]
async fn refuses_unknown_ca() {
    refused_client(&pki().unknown, "TLS_CA_UNKNOWN").await;
}

#[tokio::test]
async fn refuses_oversize_certificate() {
    refused_client(&pki().oversize, "TLS_CERT_SIZE_EXCEEDED").await;
}

#[tokio::test]
async fn client_refuses_expired_server_certificate() {
    let p = pki();
    let (_sev, ssink) = sink();
    let h = start(p.config(&p.expired), ssink).await;
    let (cev, csink) = sink();
    let ctx = TlsContext::client(&p.config(&p.client), csink).unwrap();
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let r = ctx.connect(tcp, "localhost").await;
    assert!(r.is_err());
    assert!(
        mnemonics(&cev).contains(&"TLS_CERT_EXPIRED"),
        "{:?}",
        cev.events()
    );
    h.shutdown();
}

#[tokio::test]
async fn unreachable_crl_is_only_a_warning() {
    let p = pki();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.crl = vec![p.dir.join("no-such.crl.pem")];
    let h = start(scfg, sink).await;
    let c = (client_config(p.config(&p.client)))
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .expect("a missing CRL never refuses the peer");
    read_demo_value(&c).await;
    c.release().await.unwrap();
    let e = ev.events();
    assert!(e
        .iter()
        .any(|e| e.mnemonic == "TLS_CRL_UNAVAILABLE" && e.severity == Severity::Warning));
    assert!(e.iter().all(|e| e.severity != Severity::Alarm), "{e:?}");
    h.shutdown();
}

#[tokio::test]
async fn stale_crl_is_only_a_warning() {
    let p = pki();
    let dir = temp_dir("stale-crl");
    let stale = dir.join("stale.crl.pem");
    std::fs::write(&stale, crl_pem(&make_crl(&p.ca, &[], -1))).unwrap();
    let (ev, sink) = sink();
    let mut scfg = p.config(&p.server);
    scfg.crl = vec![stale];
    let h = start(scfg, sink).await;
    let c = (client_config(p.config(&p.client)))
        .client_builder()
        .connect(&h.addr.to_string())
        .await
        .expect("an expired CRL never refuses the peer");
    c.release().await.unwrap();
    assert!(
        wait_for(&ev, "TLS_CRL_UNAVAILABLE").await,
        "{:?}",
        mnemonics(&ev)
    );
    h.shutdown();
}

/// Runs `openssl s_client` against `addr` with extra arguments; returns its stdout+stderr.
fn s_client(addr: &str, args: &[&str]) -> String {
    let p = pki();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", addr, "-CAfile"])
        .arg(&p.ca.cert_pem)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd.output().expect("openssl s_client runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn s_client_refused(args: Vec<String>, mnemonic: &str) {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let (ev, sink) = sink();
    let h = start(p.config(&p.server), sink).await;
    let addr = h.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        s_client(&addr, &a)
    })
    .await
    .unwrap();
    assert!(
        wait_for(&ev, mnemonic).await,
        "{mnemonic} expected, got {:?}\n{out}",
        mnemonics(&ev)
    );
    assert_eq!(
        h.stats
            .associations
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    h.shutdown();
}

#[tokio::test]
async fn refuses_missing_client_certificate() {
    s_client_refused(vec!["-tls1_2".into()], "TLS_CERT_UNAVAILABLE").await;
}

#[tokio::test]
async fn refuses_missing_client_certificate_tls13() {
    s_client_refused(vec!["-tls1_3".into()], "TLS_CERT_UNAVAILABLE").await;
}

#[tokio::test]
async fn refuses_disallowed_suite() {
    let p = pki();
    s_client_refused(
        vec![
            "-tls1_2".into(),
            "-cipher".into(),
            "AES256-SHA:ECDHE-RSA-AES256-SHA".into(),
            "-cert".into(),
            p.client.cert_pem.display().to_string(),
            "-key".into(),
            p.client.key_pem.display().to_string(),
        ],
        "TLS_CIPHER_DISALLOWED",
    )
    .await;
}

#[tokio::test]
async fn refuses_tls11_offer() {
    s_client_refused(
        vec![
            "-tls1_1".into(),
            "-cipher".into(),
            "DEFAULT@SECLEVEL=0".into(),
        ],
        "TLS_VERSION_INSECURE",
    )
    .await;
}

#[tokio::test]
async fn refuses_tls10_offer() {
    s_client_refused(
        vec![
            "-tls1".into(),
            "-cipher".into(),
            "DEFAULT@SECLEVEL=0".into(),
        ],
        "TLS_VERSION_INSECURE",
    )
    .await;
}

/// A TLS 1.2 ClientHello with neither the renegotiation_info extension nor the SCSV, i.e. a
/// client that does not implement RFC 5746 and could be abused for an insecure renegotiation.
fn client_hello_without_ri() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend([0x5a; 32]); // random
    body.push(0); // session id
    let suites = [0xC0u8, 0x2F, 0x00, 0x9E, 0x00, 0x3C];
    body.extend((suites.len() as u16).to_be_bytes());
    body.extend(suites);
    body.extend([1, 0]); // null compression
    let mut ext = Vec::new();
    let mut add = |t: u16, v: &[u8]| {
        ext.extend(t.to_be_bytes());
        ext.extend((v.len() as u16).to_be_bytes());
        ext.extend_from_slice(v);
    };
    add(0x000d, &[0, 6, 0x08, 0x04, 0x04, 0x01, 0x05, 0x01]); // signature_algorithms
    add(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // supported_groups
    add(0x000b, &[1, 0]); // ec_point_formats
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

#[tokio::test]
async fn refuses_client_without_secure_renegotiation() {
    let p = pki();
    let (ev, sink) = sink();
    let h = start(p.config(&p.server), sink).await;
    let addr = h.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&client_hello_without_ri()).unwrap();
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        buf.truncate(n);
        buf
    })
    .await
    .unwrap();
    // A fatal alert (record type 21), no ServerHello.
    assert_eq!(answer.first(), Some(&0x15), "{answer:02x?}");
    assert!(
        wait_for(&ev, "TLS_RENEG_INSECURE").await,
        "{:?}",
        mnemonics(&ev)
    );
    h.shutdown();
}

#[tokio::test]
async fn static_dh_suite_refused_at_configuration() {
    let p = pki();
    let mut cfg = p.config(&p.server);
    cfg.suites = vec!["TLS_DH_RSA_WITH_AES_128_GCM_SHA256".into()];
    let mut c = Config {
        tls: cfg,
        ..Default::default()
    };
    c.server.listen = "127.0.0.1:0".into();
    let e = c.server_builder().bind().await.err().expect("refused");
    assert!(e.to_string().contains("static DH"), "{e}");
}

#[tokio::test]
async fn plain_client_on_the_tls_port_is_refused() {
    let p = pki();
    let (ev, sink) = sink();
    let h = start(p.config(&p.server), sink).await;
    let r = (client_config(TlsConfig::default()))
        .client_builder()
        .connect(&h.addr.to_string())
        .await;
    assert!(r.is_err());
    assert!(
        wait_for(&ev, "TLS_HANDSHAKE_FAILED").await,
        "{:?}",
        mnemonics(&ev)
    );
    assert!(ev
        .events()
        .iter()
        .any(|e| e.message.contains("not a TLS client")));
    assert_eq!(
        h.stats
            .associations
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    h.shutdown();
}

/// Builds a DER OCSP response for the server certificate with the `openssl ocsp` command
/// (good or revoked), signed by the CA.
fn ocsp_response(revoked: bool) -> std::path::PathBuf {
    let p = pki();
    let dir = temp_dir("ocsp");
    let line = if revoked {
        "R\t491231235959Z\t240101000000Z\t0A\tunknown\t/CN=server\n"
    } else {
        "V\t491231235959Z\t\t0A\tunknown\t/CN=server\n"
    };
    std::fs::write(dir.join("index.txt"), line).unwrap();
    let req = dir.join("req.der");
    let resp = dir.join("resp.der");
    let st = Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&p.ca.cert_pem)
        .arg("-cert")
        .arg(&p.server.cert_pem)
        .arg("-reqout")
        .arg(&req)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let st = Command::new("openssl")
        .args(["ocsp", "-ndays", "1", "-index"])
        .arg(dir.join("index.txt"))
        .arg("-rsigner")
        .arg(&p.ca.cert_pem)
        .arg("-rkey")
        .arg(&p.ca.key_pem)
        .arg("-CA")
        .arg(&p.ca.cert_pem)
        .arg("-reqin")
        .arg(&req)
        .arg("-respout")
        .arg(&resp)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    resp
}

async fn ocsp_case(revoked: bool) -> (bool, Arc<MemorySink>) {
    let p = pki();
    let mut scfg = p.config(&p.server);
    scfg.ocsp_staple = Some(ocsp_response(revoked));
    let (_sev, ssink) = sink();
    let h = start(scfg, ssink).await;
    let (cev, csink) = sink();
    let ctx = TlsContext::client(&p.config(&p.client), csink).unwrap();
    let tcp = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let ok = ctx.connect(tcp, "localhost").await.is_ok();
    h.shutdown();
    (ok, cev)
}

#[tokio::test]
async fn stapled_ocsp_good_is_accepted() {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let (ok, ev) = ocsp_case(false).await;
    assert!(ok, "{:?}", ev.events());
    assert!(
        !mnemonics(&ev).contains(&"TLS_CRL_UNAVAILABLE"),
        "a verified good response raises no warning: {:?}",
        ev.events()
    );
}

#[tokio::test]
async fn stapled_ocsp_revoked_is_refused() {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let (ok, ev) = ocsp_case(true).await;
    assert!(!ok);
    assert!(
        mnemonics(&ev).contains(&"TLS_CERT_REVOKED"),
        "{:?}",
        ev.events()
    );
}

#[tokio::test]
async fn refuses_rsa_1024_client_key() {
    // 62351-3: RSA ≥ 2048 bits is mandatory (1024 deprecated).
    let dir = temp_dir("weak");
    let weak = issue(
        &dir,
        &pki().ca,
        LeafSpec {
            rsa_bits: 1024,
            ..LeafSpec::new("weak", 30)
        },
        "weak",
    );
    // We never use such a key ourselves...
    let (_e, s) = sink();
    let own = TlsContext::client(&pki().config(&weak), s);
    assert!(own.is_err(), "our context refuses a 1024-bit key");
    // ...and refuse a peer that presents one.
    s_client_refused(
        vec![
            "-tls1_2".into(),
            "-cipher".into(),
            "DEFAULT@SECLEVEL=0".into(),
            "-cert".into(),
            weak.cert_pem.display().to_string(),
            "-key".into(),
            weak.key_pem.display().to_string(),
        ],
        "TLS_CERT_INVALID",
    )
    .await;
}
