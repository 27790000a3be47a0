//! The ceiling for MMS over TLS on this machine: a bare TLS ping-pong with the same message sizes
//! as an MMS Read of one FLOAT32 (a 69-octet request TPKT, a 37-octet response TPKT), one message
//! outstanding, over loopback, with the same OpenSSL, the same mutual authentication and the same
//! tokio runtime as `secmms`. No OSI and no MMS: whatever `secmms bench --tls` reaches is compared
//! against this figure in docs/PERFORMANCE.md.
//!
//! ```text
//! cargo run --release -p secmms --example tls_pingpong -- PKI_DIR [SECONDS] [tls12|tls13]
//! ```
//! `PKI_DIR` holds `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.

use std::pin::Pin;
use std::time::{Duration, Instant};

use openssl::ssl::{
    Ssl, SslAcceptor, SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_openssl::SslStream;

const REQUEST: usize = 69;
const RESPONSE: usize = 37;

fn version(v: &str) -> SslVersion {
    if v == "tls12" {
        SslVersion::TLS1_2
    } else {
        SslVersion::TLS1_3
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(pki) = args.get(1) else {
        eprintln!("usage: tls_pingpong PKI_DIR [SECONDS] [tls12|tls13]");
        std::process::exit(2);
    };
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let ver = version(args.get(3).map(String::as_str).unwrap_or("tls13"));

    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    acc.set_certificate_chain_file(format!("{pki}/server.pem"))?;
    acc.set_private_key_file(format!("{pki}/server.key"), SslFiletype::PEM)?;
    acc.set_ca_file(format!("{pki}/ca.pem"))?;
    acc.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    acc.set_min_proto_version(Some(ver))?;
    acc.set_max_proto_version(Some(ver))?;
    let acc = acc.build();

    let mut con = SslConnector::builder(SslMethod::tls_client())?;
    con.set_certificate_chain_file(format!("{pki}/client.pem"))?;
    con.set_private_key_file(format!("{pki}/client.key"), SslFiletype::PEM)?;
    con.set_ca_file(format!("{pki}/ca.pem"))?;
    con.set_min_proto_version(Some(ver))?;
    con.set_max_proto_version(Some(ver))?;
    let con = con.build();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let ssl = Ssl::new(acc.context()).expect("ssl");
        let mut s = SslStream::new(ssl, tcp).expect("stream");
        Pin::new(&mut s).accept().await.expect("server handshake");
        let mut req = [0u8; REQUEST];
        let resp = [0x5au8; RESPONSE];
        while s.read_exact(&mut req).await.is_ok() {
            if s.write_all(&resp).await.is_err() {
                break;
            }
        }
    });

    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut cfg = con.configure()?;
    cfg.set_verify_hostname(false);
    let ssl = cfg.into_ssl("localhost")?;
    let mut c = SslStream::new(ssl, tcp)?;
    Pin::new(&mut c).connect().await?;
    let req = [0xa5u8; REQUEST];
    let mut resp = [0u8; RESPONSE];
    let deadline = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < deadline {
        c.write_all(&req).await?;
        c.read_exact(&mut resp).await?;
        n += 1;
    }
    let dt = start.elapsed().as_secs_f64();
    println!(
        "{{\"request_octets\":{REQUEST},\"response_octets\":{RESPONSE},\"exchanges\":{n},\"seconds\":{dt:.3},\"per_sec\":{:.0}}}",
        n as f64 / dt
    );
    Ok(())
}
