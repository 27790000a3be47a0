//! MMS with E2E security over XMPP (IEC 62351-4 clause 16) through a real Prosody on loopback:
//! handshake, browse/read/write and release in each encryption mode, two simultaneous
//! associations between the same JIDs, abort, and a peer whose certificate is bound to another
//! JID. Skips locally without Prosody; fails when CI=true.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secmms::config::Config;
use secmms::security::{AppMode, Encrypt};
use secmms::xmpp::{serve, XmppConnection};
use secmms_mms::model::{Model, SharedModel};
use secmms_mms::server::{Server as MmsServer, ServerConfig};
use secmms_pki::crypto::OsRandom;
use secmms_pki::event::MemorySink;
use secmms_pki::tooling::{
    create_ca, issue_end_entity, pem, Binding, Ca, EndEntityRequest, KeyType, Validity,
    DEFAULT_SUBJECT_FORM,
};
use secmms_xmpp::testing::{require_prosody, Prosody};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An application CA and JID-bound Annex G certificates (G.6.3) in `dir`.
struct AppPki {
    ca: Ca,
    ca_pem: PathBuf,
    dir: PathBuf,
}

impl AppPki {
    fn new(dir: &Path) -> AppPki {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyType::P256.generate().unwrap();
        let der = create_ca(
            "app CA",
            &key,
            Validity::days_from(now() - 60, 2),
            &mut OsRandom,
        )
        .unwrap();
        let ca_pem = dir.join("app-ca.pem");
        std::fs::write(&ca_pem, pem("CERTIFICATE", &der)).unwrap();
        AppPki {
            ca: Ca { cert_der: der, key },
            ca_pem,
            dir: dir.to_path_buf(),
        }
    }

    fn issue(&self, jid: &str, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyType::P256.generate().unwrap();
        let der = issue_end_entity(
            &EndEntityRequest {
                binding: Binding::Jid(jid.into()),
                subject_form: DEFAULT_SUBJECT_FORM,
                role: None,
                role_aor: String::new(),
                crl_url: None,
                validity: Validity::days_from(now() - 60, 2),
            },
            key.pkey(),
            &self.ca,
            &mut OsRandom,
        )
        .unwrap();
        let c = self.dir.join(format!("{name}-cert.pem"));
        let k = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&c, pem("CERTIFICATE", &der)).unwrap();
        std::fs::write(&k, key.pkey().private_key_to_pem_pkcs8().unwrap()).unwrap();
        (c, k)
    }
}

fn cfg(p: &Prosody, app: &AppPki, user: &str, cert_for: &str, enc: Encrypt) -> Config {
    let mut c = Config {
        xmpp: Some(p.client_config(user, "pw")),
        ..Default::default()
    };
    let (cert, key) = app.issue(
        &format!("{cert_for}@localhost"),
        &format!("{user}-{cert_for}"),
    );
    c.security.mode = AppMode::Native;
    c.security.encrypt = enc;
    c.security.app_cert = Some(cert);
    c.security.app_key = Some(key);
    c.security.ca = vec![app.ca_pem.clone()];
    c.client.request_timeout_secs = 10;
    c
}

const SERVER_JID: &str = "ied1@localhost/IEC";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_over_xmpp_through_prosody() {
    if !require_prosody("mms_over_xmpp_through_prosody") {
        return;
    }
    let prosody = Prosody::start(&[("ied1", "pw"), ("scada", "pw"), ("mallory", "pw")]).unwrap();
    let app = AppPki::new(&prosody.dir.join("app"));
    let server_events = Arc::new(MemorySink::new());
    let scfg = cfg(&prosody, &app, "ied1", "ied1", Encrypt::Gcm);
    let mms = MmsServer::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let sink = server_events.clone();
    let server = tokio::spawn(async move { serve(&scfg, mms, sink).await });
    // Let the server bind its resource.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for enc in [Encrypt::Gcm, Encrypt::Cbc, Encrypt::None] {
        let ccfg = cfg(&prosody, &app, "scada", "scada", enc);
        let client_events = Arc::new(MemorySink::new());
        let conn = XmppConnection::connect(&ccfg, client_events.clone())
            .await
            .unwrap();
        let c = match conn.associate(SERVER_JID).await {
            Ok(c) => c,
            Err(e) => panic!("{e}: server events {:?}", server_events.events()),
        };
        let domains = c.domains().await.unwrap();
        assert_eq!(domains, vec!["DEMOLD0".to_string()]);
        assert!(c.variables("DEMOLD0").await.unwrap().len() > 10);
        c.write_str(
            "DEMOLD0/LLN0.NamPlt.vendor[DC]",
            &format!("xmpp-{}", enc.name()),
        )
        .await
        .unwrap();
        let v = c.read("DEMOLD0/LLN0.NamPlt.vendor[DC]").await.unwrap();
        assert!(
            v.to_string().contains(&format!("xmpp-{}", enc.name())),
            "{v}"
        );
        // Two simultaneous associations between the same JIDs (told apart by assoID).
        let c2 = conn.associate(SERVER_JID).await.unwrap();
        let (a, b) = tokio::join!(
            c.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]"),
            c2.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]")
        );
        a.unwrap();
        b.unwrap();
        c2.release().await.unwrap();
        assert!(c2.is_closed());
        // The first is still usable after the second was released.
        c.identify().await.unwrap();
        c.release().await.unwrap();
        assert!(c.is_closed());
        // Abort: the server learns of it.
        let c3 = conn.associate(SERVER_JID).await.unwrap();
        c3.identify().await.unwrap();
        c3.abort().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !client_events
                .events()
                .iter()
                .any(|e| e.severity <= secmms_pki::Severity::Error),
            "{:?}",
            client_events.events()
        );
    }

    // mallory holds a certificate bound to scada's JID: the JID binding (Annex G.6.3) fails and
    // the server answers with a HandshakeSecReject (alarm, no diagnostic).
    let mcfg = cfg(&prosody, &app, "mallory", "scada", Encrypt::Gcm);
    let conn = XmppConnection::connect(&mcfg, Arc::new(MemorySink::new()))
        .await
        .unwrap();
    let e = conn.associate(SERVER_JID).await.unwrap_err();
    assert!(e.to_string().contains("security reject"), "{e}");
    let names: Vec<_> = server_events.events().iter().map(|e| e.mnemonic).collect();
    assert!(
        names
            .iter()
            .any(|m| m.contains("ADDRESS") || m.contains("MISMATCH")),
        "{names:?}"
    );
    assert!(!server.is_finished(), "the server keeps serving");
    server.abort();
}

#[test]
fn runtime_contexts_associate_in_memory() {
    // The same credentials and contexts as the Prosody test, without the server in between.
    let dir = std::env::temp_dir().join(format!("secmms-xmpp-mem-{}", std::process::id()));
    let app = AppPki::new(&dir);
    let mk = |jid: &str, name: &str| {
        let mut c = Config::default();
        let (cert, key) = app.issue(jid, name);
        c.security.mode = AppMode::Native;
        c.security.app_cert = Some(cert);
        c.security.app_key = Some(key);
        c.security.ca = vec![app.ca_pem.clone()];
        c
    };
    let sc = mk("ied1@localhost", "s");
    let cc = mk("scada@localhost", "c");
    let clock: secmms_profiles::native::NativeClock = Arc::new(|| {
        secmms_e2e::TimeStamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64,
        )
    });
    let sink = Arc::new(MemorySink::new());
    let mut s = secmms_profiles::xmpp::XmppEndpoint::new(
        secmms::security::load_e2e_context(&sc).unwrap(),
        true,
        clock.clone(),
        sink.clone(),
    );
    let mut c = secmms_profiles::xmpp::XmppEndpoint::new(
        secmms::security::load_e2e_context(&cc).unwrap(),
        false,
        clock,
        sink.clone(),
    );
    let (_, st) = c.associate(SERVER_JID, &[0xa8, 0x00]).unwrap();
    let i = st[0].find("<e2e").unwrap();
    let env = &st[0][i..st[0].rfind("</iq>").unwrap()];
    let id_start = st[0].find("id='").unwrap() + 4;
    let id = &st[0][id_start..id_start + st[0][id_start..].find('\'').unwrap()];
    let (_, ev) = s.handle(
        secmms_profiles::xmpp::StanzaKind::Iq(secmms_profiles::xmpp::IqType::Set),
        id,
        "scada@localhost/IEC",
        Some(env),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ev.len(), 1, "{:?}", sink.events());
}
