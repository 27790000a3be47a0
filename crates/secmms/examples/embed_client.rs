//! An MMS client embedded in a program: TLS with its own certificate, E2E security in native
//! mode, then browse the server, read a measured value, write a description, and wait for an
//! unsolicited InformationReport (such as `embed_server` sends when its value changes).
//!
//! ```text
//! cargo run -p secmms --example embed_client -- --server 127.0.0.1:3782 --ca ca.pem \
//!     --tls-cert client-tls-cert.pem --tls-key client-tls-key.pem \
//!     --app-cert client-app-cert.pem --app-key client-app-key.pem
//! ```
//!
//! Exits 0 once a report arrived and the association was released.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secmms::security::{AppMode, Encrypt, SecurityConfig};
use secmms::tls::TlsConfig;
use secmms::Client;

fn args() -> HashMap<String, String> {
    let v: Vec<String> = std::env::args().skip(1).collect();
    v.chunks(2)
        .filter_map(|p| match p {
            [k, val] => Some((k.trim_start_matches("--").to_string(), val.clone())),
            _ => None,
        })
        .collect()
}

fn path(a: &HashMap<String, String>, key: &str) -> PathBuf {
    match a.get(key) {
        Some(p) => PathBuf::from(p),
        None => {
            eprintln!("missing --{key} FILE");
            std::process::exit(2);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    // Transport security: TLS with our own certificate (mutual authentication).
    let tls = TlsConfig {
        enabled: true,
        cert: Some(path(&a, "tls-cert")),
        key: Some(path(&a, "tls-key")),
        ca: vec![path(&a, "ca")],
        ..TlsConfig::default()
    };
    // Application security: E2E in native mode, offering AES-GCM.
    let security = SecurityConfig {
        mode: AppMode::Native,
        encrypt: Encrypt::Gcm,
        app_cert: Some(path(&a, "app-cert")),
        app_key: Some(path(&a, "app-key")),
        ca: vec![path(&a, "ca")],
        ..SecurityConfig::default()
    };
    let server = a.get("server").cloned().unwrap_or("127.0.0.1:3782".into());

    let client = Client::builder()
        .tls(tls)
        .security(security)
        .connect(&server)
        .await?;
    // Take the report queue first: reports that arrive before anyone reads are kept.
    let mut reports = client.reports().ok_or("report queue already taken")?;
    println!("associated: {}", client.protection());

    // Browse.
    for domain in client.domains().await? {
        let vars = client.variables(&domain).await?;
        println!("domain {domain}: {} variables", vars.len());
    }
    // Read and write.
    let value = client.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await?;
    println!("read DEMOLD0/GGIO1.AnIn1.mag.f[MX] = {value:?}");
    client
        .write_str("DEMOLD0/LLN0.NamPlt.vendor[DC]", "embed_client")
        .await?;
    println!("wrote DEMOLD0/LLN0.NamPlt.vendor[DC]");
    // The server reports its measured value when it changes.
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .map_err(|_| "no report within 10 s")?
        .ok_or("association ended before a report")?;
    println!("report: {:?}", report.results);
    client.release().await?;
    println!("released");
    Ok(())
}
