//! A gateway reload after a revocation (issue 18, item 4): certificates from `secmms cert`, a
//! CRL from `secmms cert crl --revoke`, then the reload `SIGHUP` does (through the handle): the
//! association of the revoked peer ends with the abort native mode prescribes and an event, the
//! other association carries on, and the revoked peer cannot come back.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::secmms;
use secmms::gateway::{Gateway, GatewayFile};
use secmms::security::{AppMode, Encrypt};
use secmms::Config;
use secmms_pki::event::MemorySink;

fn cli(dir: &Path, args: &[&str]) {
    let o = secmms().current_dir(dir).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "secmms {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn client_cfg(dir: &Path, who: &str) -> Config {
    let p = |f: &str| dir.join(who).join(f);
    let mut cfg = Config::default();
    cfg.tls.enabled = true;
    cfg.tls.cert = Some(p("tls-cert.pem"));
    cfg.tls.key = Some(p("tls-key.pem"));
    cfg.tls.ca = vec![dir.join("ca/ca.pem")];
    cfg.tls.server_name = Some("localhost".into());
    cfg.security.mode = AppMode::Native;
    cfg.security.encrypt = Encrypt::Gcm;
    cfg.security.app_cert = Some(p("cert.pem"));
    cfg.security.app_key = Some(p("key.pem"));
    cfg.security.ca = vec![dir.join("ca/ca.pem")];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_is_dropped_on_reload_and_the_others_stay() {
    let dir = std::env::temp_dir().join(format!("secmms-gw-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    cli(&dir, &["cert", "ca", "--out", "ca"]);
    for (out, ap) in [
        ("gw", "1.1.1.999.1"),
        ("alice", "1.1.1.999"),
        ("bob", "1.1.1.998"),
    ] {
        cli(
            &dir,
            &[
                "cert",
                "issue",
                "--ca",
                "ca",
                "--out",
                out,
                "--ap-title",
                ap,
                "--ae-qualifier",
                "12",
            ],
        );
        cli(
            &dir,
            &[
                "cert",
                "issue",
                "--ca",
                "ca",
                "--out",
                out,
                "--tls",
                "--dns",
                "localhost",
            ],
        );
    }
    cli(&dir, &["cert", "crl", "--ca", "ca", "--out", "ca/crl.pem"]);

    let mut ied = Config::default();
    ied.server.listen = "127.0.0.1:0".into();
    let ied = ied.server_builder().bind().await.unwrap().spawn().unwrap();
    let d = |f: &str| dir.join(f).display().to_string();
    let text = format!(
        "[gateway]\n[[gateway.ied]]\nlisten = \"127.0.0.1:0\"\nied = \"{}\"\nmode = \"native\"\n\
         tls_cert = \"{}\"\ntls_key = \"{}\"\napp_cert = \"{}\"\napp_key = \"{}\"\n\
         ca = [\"{}\"]\ncrl = [\"{}\"]\n",
        ied.addr,
        d("gw/tls-cert.pem"),
        d("gw/tls-key.pem"),
        d("gw/cert.pem"),
        d("gw/key.pem"),
        d("ca/ca.pem"),
        d("ca/crl.pem"),
    );
    let sink = Arc::new(MemorySink::new());
    let gw = Gateway::bind_with_events(&GatewayFile::from_toml(&text).unwrap(), sink.clone())
        .await
        .unwrap()
        .spawn();
    let entry = gw.addrs[0].1.to_string();
    let connect = |who: &'static str| {
        let (entry, cfg, sink) = (entry.clone(), client_cfg(&dir, who), sink.clone());
        async move {
            match cfg.client_builder().connect(&entry).await {
                Ok(c) => c,
                Err(e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let seen: Vec<String> = sink
                        .events()
                        .iter()
                        .map(|e| format!("{} {}", e.mnemonic, e.message))
                        .collect();
                    panic!("{who}: {e}\n{seen:#?}")
                }
            }
        }
    };
    let alice = connect("alice").await;
    let bob = connect("bob").await;
    alice.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await.unwrap();

    cli(
        &dir,
        &[
            "cert",
            "crl",
            "--ca",
            "ca",
            "--revoke",
            "alice/cert.pem",
            "--out",
            "ca/crl.pem",
        ],
    );
    let summary = gw
        .reload(GatewayFile::from_toml(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.replaced.len(), 1, "{summary:?}");
    for _ in 0..200 {
        if alice.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(alice.is_closed(), "the revoked peer's association ended");
    bob.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await.unwrap();
    let seen: Vec<String> = sink
        .events()
        .iter()
        .map(|e| format!("{} {}", e.mnemonic, e.message))
        .collect();
    assert!(
        seen.iter().any(|e| e.starts_with("E2E_PEER_CERT_REVOKED")),
        "{seen:#?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.starts_with("GW_ASSOCIATION_END") && e.contains("after the reload")),
        "{seen:#?}"
    );
    // The revoked peer cannot come back; the other still can.
    assert!((client_cfg(&dir, "alice"))
        .client_builder()
        .connect(&entry)
        .await
        .is_err());
    let again = (client_cfg(&dir, "bob"))
        .client_builder()
        .connect(&entry)
        .await
        .unwrap();
    again.release().await.unwrap();
    bob.release().await.unwrap();
    assert!(gw.stats.aborted.load(Ordering::Relaxed) >= 1);
    let _ = std::fs::remove_dir_all(&dir);
}
