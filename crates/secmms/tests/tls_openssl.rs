//! Interop with the `openssl` command line, one test per suite of the native-mode table
//! (IEC 62351-4 §6.3.4.3) that OpenSSL offers: `openssl s_client` completes a mutually
//! authenticated TLS 1.2 handshake with our server, and our client with `openssl s_server`; the
//! negotiated suite's IANA code point is checked against the table. Static-DH suites
//! (0x00A0, 0x00A1) exist in no maintained library and are shown unsupported instead.
//! Skips locally without the `openssl` command; fails when CI=true.

mod tls_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use secmms::tls::{find_suite, TlsConfig, TlsContext};
use secmms::Config;
use tls_support::*;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

fn leaf(ecdsa: bool) -> &'static Issued {
    if ecdsa {
        &pki().server_ec
    } else {
        &pki().server
    }
}

fn suite_config(who: &Issued, openssl_name: &str) -> TlsConfig {
    let mut c = pki().config(who);
    c.tls13 = false;
    c.suites = vec![openssl_name.to_string()];
    c
}

/// `openssl s_client` against our server, forcing one suite.
async fn s_client_to_us(openssl_name: &'static str, iana: u16, ecdsa: bool) {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let (ev, sink) = sink();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls = suite_config(leaf(ecdsa), openssl_name);
    let h = cfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let addr = h.addr.to_string();
    let (cert, key, ca) = (
        p.client.cert_pem.clone(),
        p.client.key_pem.clone(),
        p.ca.cert_pem.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let o = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                "-tls1_2",
                "-cipher",
                openssl_name,
            ])
            .arg("-CAfile")
            .arg(&ca)
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .args(["-verify_return_error", "-brief"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
    .await
    .unwrap();
    assert!(
        out.contains(&format!("Ciphersuite: {openssl_name}")),
        "s_client did not negotiate {openssl_name}:\n{out}"
    );
    assert!(
        wait_for(&ev, "TLS_ESTABLISHED").await,
        "{:?}",
        mnemonics(&ev)
    );
    let est = ev
        .events()
        .into_iter()
        .find(|e| e.mnemonic == "TLS_ESTABLISHED")
        .unwrap();
    assert!(est.message.contains(openssl_name), "{}", est.message);
    assert_eq!(find_suite(openssl_name).map(|s| s.iana), Some(iana));
    h.shutdown();
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Our client against `openssl s_server`, forcing one suite.
async fn us_to_s_server(openssl_name: &'static str, iana: u16, ecdsa: bool) {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let port = free_port();
    let server = leaf(ecdsa);
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-tls1_2"])
        .args(["-cipher", openssl_name, "-naccept", "1", "-Verify", "3"])
        .args(["-verify_return_error"])
        .arg("-cert")
        .arg(&server.cert_pem)
        .arg("-key")
        .arg(&server.key_pem)
        .arg("-CAfile")
        .arg(&p.ca.cert_pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    // Wait for "ACCEPT" (the listener is up).
    let ready = tokio::task::spawn_blocking(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return false;
            }
            if line.contains("ACCEPT") {
                return true;
            }
        }
        false
    });
    let ready = tokio::time::timeout(Duration::from_secs(10), ready)
        .await
        .expect("s_server ready in time")
        .unwrap();
    assert!(ready, "s_server did not start");
    let (ev, sink) = sink();
    let ctx = TlsContext::client(&suite_config(&p.client, openssl_name), sink).unwrap();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let s = ctx
        .connect(tcp, "127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{openssl_name}: {e}; events {:?}", ev.events()));
    let info = s.info();
    assert_eq!(info.version, "TLSv1.2");
    assert_eq!(info.cipher, openssl_name);
    assert_eq!(info.iana, Some(iana), "IANA code point of {openssl_name}");
    assert_eq!(find_suite(openssl_name).map(|s| s.iana), Some(iana));
}

macro_rules! suite_tests {
    ($($client:ident, $server:ident, $name:literal, $iana:literal, $ecdsa:literal;)*) => {$(
        #[tokio::test]
        async fn $client() {
            s_client_to_us($name, $iana, $ecdsa).await;
        }
        #[tokio::test]
        async fn $server() {
            us_to_s_server($name, $iana, $ecdsa).await;
        }
    )*};
}

suite_tests! {
    s_client_0x003c_rsa_aes128_cbc_sha256, s_server_0x003c_rsa_aes128_cbc_sha256,
        "AES128-SHA256", 0x003C, false;
    s_client_0x009e_dhe_rsa_aes128_gcm, s_server_0x009e_dhe_rsa_aes128_gcm,
        "DHE-RSA-AES128-GCM-SHA256", 0x009E, false;
    s_client_0xc02b_ecdhe_ecdsa_aes128_gcm, s_server_0xc02b_ecdhe_ecdsa_aes128_gcm,
        "ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B, true;
    s_client_0xc02f_ecdhe_rsa_aes128_gcm, s_server_0xc02f_ecdhe_rsa_aes128_gcm,
        "ECDHE-RSA-AES128-GCM-SHA256", 0xC02F, false;
    s_client_0xc030_ecdhe_rsa_aes256_gcm, s_server_0xc030_ecdhe_rsa_aes256_gcm,
        "ECDHE-RSA-AES256-GCM-SHA384", 0xC030, false;
    s_client_0xc02c_ecdhe_ecdsa_aes256_gcm, s_server_0xc02c_ecdhe_ecdsa_aes256_gcm,
        "ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C, true;
    s_client_0xc023_ecdhe_ecdsa_aes128_cbc, s_server_0xc023_ecdhe_ecdsa_aes128_cbc,
        "ECDHE-ECDSA-AES128-SHA256", 0xC023, true;
}

#[test]
fn static_dh_suites_are_unsupported_in_the_conformance_statement() {
    let rows = secmms::tls::conformance_statement();
    for code in [0x00A0u16, 0x00A1, 0x0036] {
        let r = rows.iter().find(|r| r.suite.iana == code).unwrap();
        assert!(!r.supported, "0x{code:04X}");
    }
}

/// Session resumption (§6.2 DECISION: allowed, lifetime below the renegotiation interval):
/// `openssl s_client -reconnect` resumes its TLS 1.2 session with our server.
#[tokio::test]
async fn s_client_resumes_tls12_session() {
    if !require(have_openssl_cli(), "openssl CLI") {
        return;
    }
    let p = pki();
    let (_ev, sink) = sink();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls = p.config(&p.server);
    cfg.tls.tls13 = false;
    let h = cfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let addr = h.addr.to_string();
    let (cert, key, ca) = (
        p.client.cert_pem.clone(),
        p.client.key_pem.clone(),
        p.ca.cert_pem.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let o = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-tls1_2", "-reconnect"])
            .arg("-CAfile")
            .arg(&ca)
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(out.contains("Reused, TLSv1.2"), "{out}");
    let stats = h.tls_stats.clone().unwrap();
    for _ in 0..50 {
        if stats.resumed.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stats.resumed.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    h.shutdown();
}
