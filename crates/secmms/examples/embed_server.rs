//! An IEC 61850 server embedded in a program, the way a vendor puts secmms into a device:
//! TLS (clause 6) with mutual authentication, E2E security in native mode (AES-GCM), a model
//! whose measured value the program keeps feeding, every client write reported to the
//! program, and an unsolicited InformationReport sent to every association whenever the
//! measured value changes by more than a deadband.
//!
//! ```text
//! cargo run -p secmms --example embed_server -- --ca ca.pem \
//!     --tls-cert server-tls-cert.pem --tls-key server-tls-key.pem \
//!     --app-cert server-app-cert.pem --app-key server-app-key.pem [--listen 127.0.0.1:3782]
//! ```
//!
//! The certificates come from `secmms cert` (or any Annex G CA). It prints `listening on ADDR`
//! and serves until stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secmms::security::{AppMode, Encrypt, SecurityConfig};
use secmms::tls::TlsConfig;
use secmms::Server;
use secmms_mms::model::{Change, ChangeOrigin, Model, SharedModel};
use secmms_mms::server::ReportContent;
use secmms_mms::{Data, FloatingPoint, ObjectName};

/// The measured value the program feeds (GGIO1.AnIn1.mag.f, FC MX).
const DOMAIN: &str = "DEMOLD0";
const MEASURED: &str = "GGIO1$MX$AnIn1$mag$f";
/// Smallest change of the measured value that is reported (a dchg deadband).
const DEADBAND: f32 = 0.5;

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
    // Transport security: TLS with a client certificate required (the defaults of TlsConfig
    // follow IEC 62351-3/-4: the suites of Tables 2 and 3, renegotiation, revocation).
    let tls = TlsConfig {
        enabled: true,
        cert: Some(path(&a, "tls-cert")),
        key: Some(path(&a, "tls-key")),
        ca: vec![path(&a, "ca")],
        ..TlsConfig::default()
    };
    // Application security: E2E in native mode, data encrypted with AES-GCM.
    let security = SecurityConfig {
        mode: AppMode::Native,
        encrypt: Encrypt::Gcm,
        app_cert: Some(path(&a, "app-cert")),
        app_key: Some(path(&a, "app-key")),
        ca: vec![path(&a, "ca")],
        ..SecurityConfig::default()
    };

    // The live model: the program keeps a handle to set values and to observe writes.
    let model = SharedModel::new(Model::default_demo());
    model.observe(Arc::new(|c: &Change| {
        if c.origin == ChangeOrigin::Client {
            println!("client wrote {}/{} = {:?}", c.domain, c.item, c.value);
        }
    }));

    let server = Server::builder()
        .listen(a.get("listen").cloned().unwrap_or("127.0.0.1:3782".into()))
        .tls(tls)
        .security(security)
        .model(model.clone())
        .bind()
        .await?;
    let handle = server.spawn()?;
    println!("listening on {}", handle.addr);

    // The program's own work: a measurement every 100 ms; a change beyond the deadband is
    // reported to every association.
    let mut reported = f32::NAN;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for step in 0u32.. {
        tick.tick().await;
        let value = 50.0 + 10.0 * (step as f32 / 10.0).sin();
        model.set(
            DOMAIN,
            MEASURED,
            Data::FloatingPoint(FloatingPoint::from_f32(value)),
        );
        if reported.is_nan() || (value - reported).abs() >= DEADBAND {
            reported = value;
            for assoc in handle.associations() {
                let content = ReportContent::Variables(vec![ObjectName::DomainSpecific {
                    domain: DOMAIN.into(),
                    item: MEASURED.into(),
                }]);
                if let Err(e) = handle.report(assoc.id, content).await {
                    eprintln!("report to {}: {e}", assoc.peer);
                }
            }
        }
    }
    Ok(())
}
