//! E2E-protected MMS read rate through Prosody (clause 16) against the same over OSI (clause 15),
//! in one run with the same load generator (`secmms_tools::bench`) and the same server model:
//!
//! * native mode over OSI, plain TCP;
//! * native mode over OSI with TLS;
//! * native mode over XMPP through a private Prosody on loopback (STARTTLS to the server).
//!
//! `cargo run --release -p secmms-tools --example bench_xmpp -- [SECONDS] [gcm|cbc|none]`
//! (default 10 s per point, AES-GCM). Prints a Markdown table for docs/PERFORMANCE.md.

use std::time::Duration;

use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms_pki::tooling::Binding;
use secmms_tools::bench::{run, BenchParams};
use secmms_tools::demo::DemoPki;
use secmms_xmpp::prosody::Prosody;

const REFERENCE: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";

async fn point(name: &str, cfg: Config, addr: String, out: usize, secs: u64) -> f64 {
    let r = run(
        BenchParams {
            addr,
            associations: 1,
            outstanding: out,
            duration: Duration::from_secs(secs),
            reference: REFERENCE.into(),
            config: cfg,
        },
        |_| {},
    )
    .await
    .expect("bench");
    println!(
        "| {name} | {out} | {:.0} | {} | {} | {} |",
        r.requests_per_sec, r.p50_us, r.p99_us, r.errors
    );
    r.requests_per_sec
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let enc = match args.get(2).map(String::as_str) {
        Some("cbc") => Encrypt::Cbc,
        Some("none") => Encrypt::None,
        _ => Encrypt::Gcm,
    };
    // OSI servers: native without and with TLS.
    let pki = DemoPki::create(&std::env::temp_dir()).expect("PKI");
    let osi = |tls: bool, server: bool| {
        let mut c = Config::default();
        if server {
            c.server.listen = "127.0.0.1:0".into();
            c.server.idle_timeout_secs = 0;
        }
        if tls {
            c.tls = pki.tls_config(server);
        }
        pki.apply_security(&mut c, server, AppMode::Native, enc);
        c
    };
    let plain_srv = osi(false, true)
        .server_builder()
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    let tls_srv = osi(true, true)
        .server_builder()
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();

    // XMPP: Prosody, JID-bound application certificates, the MMS server over XMPP.
    let prosody = Prosody::start(&[("ied1", "b1"), ("scada", "b2")]).expect("prosody");
    let dir = prosody.dir.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = secmms_tools::demo::AppCa::create("bench CA", &dir.join("ca.pem")).expect("CA");
    let side = |user: &str, pw: &str| {
        let (c, kp) = (
            dir.join(format!("{user}.pem")),
            dir.join(format!("{user}.key")),
        );
        ca.issue_app(Binding::Jid(format!("{user}@localhost")), &c, &kp)
            .expect("certificate");
        let mut cfg = Config {
            xmpp: Some(prosody.client_config(user, pw)),
            ..Config::default()
        };
        cfg.security.mode = AppMode::Native;
        cfg.security.encrypt = enc;
        cfg.security.app_cert = Some(c);
        cfg.security.app_key = Some(kp);
        cfg.security.ca = vec![ca.ca_pem.clone()];
        cfg
    };
    let scfg = side("ied1", "b1");
    let mut ccfg = side("scada", "b2");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let mut r = Some(ready_tx);
        secmms::xmpp::serve_config(&scfg.xmpp_settings(), move |jid| {
            if let Some(r) = r.take() {
                let _ = r.send(jid.to_string());
            }
        })
        .await
    });
    let server_jid = ready_rx.await.expect("XMPP server up");
    ccfg.client.xmpp_peer = Some(server_jid);

    println!(
        "E2E-protected MMS reads ({}), 1 association, {secs} s per point, one run:\n",
        enc.name()
    );
    println!("| path | outstanding | req/s | p50 µs | p99 µs | errors |");
    println!("|---|---|---|---|---|---|");
    for out in [1usize, 16] {
        let a = point(
            "native over OSI, plain TCP",
            osi(false, false),
            plain_srv.addr.to_string(),
            out,
            secs,
        )
        .await;
        let b = point(
            "native over OSI, TLS",
            osi(true, false),
            tls_srv.addr.to_string(),
            out,
            secs,
        )
        .await;
        let c = point(
            "native over XMPP via Prosody",
            ccfg.clone(),
            String::new(),
            out,
            secs,
        )
        .await;
        println!(
            "| *ratio XMPP / OSI plain, / OSI TLS* | {out} | {:.2} / {:.2} | | | |",
            c / a.max(1.0),
            c / b.max(1.0)
        );
    }
    drop(prosody);
}
