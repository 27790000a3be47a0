//! Revocation of application certificates during a live association (§6.2.8 applied to the
//! A-profile and E2E anchors): the server reloads its `[security] crl` (here through the handle,
//! as the periodic evaluation and SIGHUP do), every live association re-checks its peer, the
//! revoked one ends with the abort its profile prescribes (compat: ABRT authentication-failure;
//! native: DtSecAbort) and an incident event, and the other association carries on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secmms::security::{AppMode, AppSecurity};
use secmms::Config;
use secmms_pki::crypto::OsRandom;
use secmms_pki::event::{MemorySink, SecurityEventSink, Severity};
use secmms_pki::tooling::{
    cert_serial, create_ca, issue_crl, issue_end_entity, pem, Binding, Ca, EndEntityRequest,
    KeyType, RevokedEntry, SubjectForm, Validity,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Pki {
    dir: PathBuf,
    ca: Ca,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("secmms-crl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyType::P256.generate().unwrap();
        let cert_der = create_ca(
            "secmms CRL test CA",
            &key,
            Validity::days_from(now() - 3_600, 30),
            &mut OsRandom,
        )
        .unwrap();
        std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", &cert_der)).unwrap();
        Pki {
            dir,
            ca: Ca { cert_der, key },
        }
    }

    /// An application certificate for `ap_title` / `ae`: (cert path, key path).
    fn app(&self, name: &str, ap_title: &str, ae: u64) -> (PathBuf, PathBuf) {
        let key = KeyType::P256.generate().unwrap();
        let req = EndEntityRequest {
            binding: Binding::Osi {
                ap_title: ap_title.parse().unwrap(),
                ae_qualifier: ae,
            },
            subject_form: SubjectForm::Utf8,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(now() - 3_600, 30),
        };
        let der = issue_end_entity(&req, key.pkey(), &self.ca, &mut OsRandom).unwrap();
        let cert = self.dir.join(format!("{name}-cert.pem"));
        let key_p = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert, pem("CERTIFICATE", &der)).unwrap();
        secmms::security::write_private_key(&key_p, &key).unwrap();
        (cert, key_p)
    }

    /// Writes the CRL (number `n`) revoking `revoked`, replacing the file in one rename.
    fn write_crl(&self, revoked: &[&Path], n: u64) -> PathBuf {
        let entries: Vec<RevokedEntry> = revoked
            .iter()
            .map(|p| {
                let der =
                    secmms_pki::tooling::pem_or_der("CERTIFICATE", &std::fs::read(p).unwrap())
                        .unwrap();
                RevokedEntry {
                    serial: cert_serial(&der).unwrap(),
                    revoked_at: now() - 60,
                }
            })
            .collect();
        let crl = issue_crl(&self.ca, &entries, n, now() - 60, now() + 86_400).unwrap();
        let path = self.dir.join("app.crl");
        let tmp = self.dir.join("app.crl.tmp");
        std::fs::write(&tmp, pem("X509 CRL", &crl)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

fn secured(mode: AppMode, pki: &Pki, app: &(PathBuf, PathBuf), crl: Option<&Path>) -> Config {
    let mut cfg = Config::default();
    cfg.security.mode = mode;
    cfg.security.app_cert = Some(app.0.clone());
    cfg.security.app_key = Some(app.1.clone());
    cfg.security.ca = vec![pki.dir.join("ca.pem")];
    cfg.security.crl = crl.map(|c| vec![c.to_path_buf()]).unwrap_or_default();
    cfg
}

async fn revoke_live_peer(mode: AppMode, server_event: (&str, &str)) {
    let pki = Pki::new(mode.name());
    let server_app = pki.app("server", "1.1.1.999.1", 12);
    let c1_app = pki.app("c1", "1.1.1.999", 12);
    let c2_app = pki.app("c2", "1.1.1.999", 12);
    let crl = pki.write_crl(&[], 1);

    let mut scfg = secured(mode, &pki, &server_app, Some(&crl));
    scfg.server.listen = "127.0.0.1:0".into();
    scfg.server.worker_threads = Some(0);
    let events = Arc::new(MemorySink::new());
    let sink: Arc<dyn SecurityEventSink> = events.clone();
    let h = scfg
        .server_builder()
        .events(sink)
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();

    let connect = |app: &(PathBuf, PathBuf), sink: Arc<MemorySink>| {
        let ccfg = secured(mode, &pki, app, None);
        let addr = h.addr.to_string();
        async move {
            let s: Arc<dyn SecurityEventSink> = sink;
            let security = AppSecurity::build(&ccfg.security, &ccfg.tls, &ccfg.osi, s).unwrap();
            ccfg.client_builder()
                .app_security(security.clone())
                .connect(&addr)
                .await
        }
    };
    let c1_events = Arc::new(MemorySink::new());
    let c1 = connect(&c1_app, c1_events.clone()).await.unwrap();
    let c2 = connect(&c2_app, Arc::new(MemorySink::new())).await.unwrap();
    c1.identify().await.unwrap();
    c2.identify().await.unwrap();

    // Unchanged files: nothing happens.
    assert!(!h.crl.reload().app_changed);

    pki.write_crl(&[&c1_app.0], 2);
    let r = h.crl.reload();
    assert!(r.app_changed && !r.tls_changed, "{r:?}");
    tokio::time::timeout(Duration::from_secs(5), async {
        while !c1.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the revoked client's association did not end");
    assert!(c1.identify().await.is_err());

    // The other association carries on.
    c2.identify().await.unwrap();
    c2.release().await.unwrap();

    let ev = events.events();
    let (mnemonic, id) = server_event;
    let revoked: Vec<_> = ev.iter().filter(|e| e.mnemonic == mnemonic).collect();
    assert_eq!(revoked.len(), 1, "{ev:?}");
    assert_eq!(revoked[0].id.to_string(), id);
    assert_eq!(revoked[0].severity, Severity::Incident);
    if mode == AppMode::Native {
        // The client learns it from a verified DtSecAbort.
        let got = c1_events.events();
        assert!(
            got.iter().any(|e| e.mnemonic == "DT_SEC_ABORT_RCVD"),
            "{got:?}"
        );
    }

    // A new association with the revoked certificate is refused at once.
    assert!(connect(&c1_app, Arc::new(MemorySink::new())).await.is_err());
    h.shutdown();
}

#[tokio::test]
async fn compat_association_of_a_revoked_peer_is_aborted_after_crl_reload() {
    revoke_live_peer(AppMode::Compat, ("AP_CERT_REVOKED", "secmms:11.7")).await;
}

#[tokio::test]
async fn native_association_of_a_revoked_peer_is_aborted_after_crl_reload() {
    revoke_live_peer(AppMode::Native, ("E2E_PEER_CERT_REVOKED", "secmms:0.6")).await;
}
