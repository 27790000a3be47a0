//! OpenSSL's per-thread error queue must be empty before each TLS I/O call, or `SSL_get_error`
//! turns "would block" into a failure carrying someone else's error. Other OpenSSL users on the
//! same thread (a certificate or CRL check that failed and was handled) can leave entries behind;
//! the gateway met it as TLS reads failing with "ASN1_item_verify_ctx: EVP lib" after an
//! application-certificate check. Here the queue is polluted on purpose before every step, on a
//! current-thread runtime (every task on one thread), and the session must not notice.

use std::sync::Arc;

use secmms::tls::TlsContext;
use secmms_pki::event::MemorySink;
use secmms_tools::demo::DemoPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Leaves an error on this thread's OpenSSL error queue, as a handled failure would.
fn pollute() {
    let e =
        openssl::x509::X509::from_pem(b"-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap_err();
    e.put();
}

#[tokio::test(flavor = "current_thread")]
async fn a_stale_openssl_error_does_not_break_the_handshake_or_the_session() {
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let sink = Arc::new(MemorySink::new());
    let mut scfg = pki.tls_config(true);
    scfg.tls13 = false;
    let server = TlsContext::server(&scfg, sink.clone()).unwrap();
    let mut ccfg = pki.tls_config(false);
    ccfg.tls13 = false;
    ccfg.server_name = Some("localhost".into());
    let client = TlsContext::client(&ccfg, sink).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let srv = tokio::spawn(async move {
        let (tcp, peer) = l.accept().await.unwrap();
        pollute();
        let mut s = server.accept(tcp, peer).await.unwrap();
        let mut buf = [0u8; 5];
        for _ in 0..20 {
            pollute();
            s.read_exact(&mut buf).await.unwrap();
            pollute();
            s.write_all(&buf).await.unwrap();
        }
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    pollute();
    let mut c = client.connect(tcp, "localhost").await.unwrap();
    for i in 0..20u8 {
        pollute();
        c.write_all(&[i; 5]).await.unwrap();
        let mut back = [0u8; 5];
        pollute();
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, [i; 5]);
    }
    srv.await.unwrap();
}
