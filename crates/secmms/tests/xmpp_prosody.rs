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
use secmms_mms::server::{ServerConfig, Vmd};
use secmms_pki::event::MemorySink;
use secmms_xmpp::prosody::{require_prosody, Prosody};

/// An application CA and JID-bound Annex G certificates (G.6.3) in `dir`.
struct AppPki {
    ca: secmms_tools::demo::AppCa,
    ca_pem: PathBuf,
    dir: PathBuf,
}

impl AppPki {
    fn new(dir: &Path) -> AppPki {
        std::fs::create_dir_all(dir).unwrap();
        let ca = secmms_tools::demo::AppCa::create("app CA", &dir.join("app-ca.pem")).unwrap();
        AppPki {
            ca_pem: ca.ca_pem.clone(),
            ca,
            dir: dir.to_path_buf(),
        }
    }

    fn issue(&self, jid: &str, name: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.join(format!("{name}-cert.pem"));
        let k = self.dir.join(format!("{name}-key.pem"));
        self.ca
            .issue_app(secmms_pki::tooling::Binding::Jid(jid.into()), &c, &k)
            .unwrap();
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
    let mms = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let sink = server_events.clone();
    let server = tokio::spawn(async move { serve(&scfg.xmpp_settings(), mms, sink).await });
    // Let the server bind its resource.
    tokio::time::sleep(Duration::from_millis(500)).await;

    for enc in [Encrypt::Gcm, Encrypt::Cbc, Encrypt::None] {
        let ccfg = cfg(&prosody, &app, "scada", "scada", enc);
        let client_events = Arc::new(MemorySink::new());
        let conn = XmppConnection::connect(&ccfg.xmpp_settings(), client_events.clone())
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
    let conn = XmppConnection::connect(&mcfg.xmpp_settings(), Arc::new(MemorySink::new()))
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
    let sink = Arc::new(MemorySink::new());
    let mut s = secmms_profiles::xmpp::XmppEndpoint::new(
        secmms::security::load_e2e_context(&sc.security, &sc.tls).unwrap(),
        true,
        sink.clone(),
    );
    let mut c = secmms_profiles::xmpp::XmppEndpoint::new(
        secmms::security::load_e2e_context(&cc.security, &cc.tls).unwrap(),
        false,
        sink.clone(),
    );
    let (_, st) = c.associate(SERVER_JID, &[0xa8, 0x00], wall_now()).unwrap();
    let i = st[0].find("<e2e").unwrap();
    let env = &st[0][i..st[0].rfind("</iq>").unwrap()];
    let id_start = st[0].find("id='").unwrap() + 4;
    let id = &st[0][id_start..id_start + st[0][id_start..].find('\'').unwrap()];
    let (_, ev) = s.handle(
        secmms_profiles::xmpp::StanzaKind::Iq(secmms_profiles::xmpp::IqType::Set),
        id,
        "scada@localhost/IEC",
        Some(env),
        wall_now(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ev.len(), 1, "{:?}", sink.events());
}

/// Receives stanzas for `ep` until `done` says so (bounded), delivering each; returns the events.
async fn pump_until(
    rx: &mut secmms_xmpp::XmppReceiver,
    tx: &secmms_xmpp::XmppSender,
    ep: &mut secmms_profiles::xmpp::XmppEndpoint,
    mut done: impl FnMut(&[secmms_profiles::xmpp::EndpointEvent]) -> bool,
) -> Vec<secmms_profiles::xmpp::EndpointEvent> {
    use secmms_profiles::xmpp::{IqType, StanzaKind};
    let mut all = Vec::new();
    while !done(&all) {
        let st = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a stanza within 5 s")
            .unwrap();
        let kind = match st.kind {
            secmms_xmpp::StanzaKind::Iq => {
                StanzaKind::Iq(IqType::parse(st.type_.as_deref().unwrap_or("")).unwrap())
            }
            secmms_xmpp::StanzaKind::Message => StanzaKind::Message,
            _ => continue,
        };
        let env = st
            .children()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "e2e")
            .map(|c| c.raw.to_string());
        let (out, ev) = ep.handle(
            kind,
            st.id.as_deref().unwrap_or(""),
            st.from.as_deref().unwrap_or(""),
            env.as_deref(),
            wall_now(),
        );
        for o in out {
            tx.send(&o).await.unwrap();
        }
        all.extend(ev);
    }
    all
}

/// The time now, for the endpoints (they take it as an argument).
fn wall_now() -> secmms_e2e::TimeStamp {
    secmms_e2e::TimeStamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

fn endpoint_for(
    cfg: &Config,
    server: bool,
    sink: Arc<MemorySink>,
) -> secmms_profiles::xmpp::XmppEndpoint {
    secmms_profiles::xmpp::XmppEndpoint::new(
        secmms::security::load_e2e_context(&cfg.security, &cfg.tls).unwrap(),
        server,
        sink,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_collision_and_injection_through_prosody() {
    use secmms_profiles::xmpp::EndpointEvent as E;
    if !require_prosody("release_collision_and_injection_through_prosody") {
        return;
    }
    let prosody = Prosody::start(&[("ied1", "pw"), ("scada", "pw"), ("mallory", "pw")]).unwrap();
    let app = AppPki::new(&prosody.dir.join("app"));
    let scfg = cfg(&prosody, &app, "ied1", "ied1", Encrypt::Gcm);
    let ccfg = cfg(&prosody, &app, "scada", "scada", Encrypt::Gcm);
    let ssink = Arc::new(MemorySink::new());
    let mut sep = endpoint_for(&scfg, true, ssink.clone());
    let mut cep = endpoint_for(&ccfg, false, Arc::new(MemorySink::new()));
    let (stx, mut srx) = secmms_xmpp::XmppClient::connect(scfg.xmpp.as_ref().unwrap())
        .await
        .unwrap()
        .split();
    let (ctx, mut crx) = secmms_xmpp::XmppClient::connect(ccfg.xmpp.as_ref().unwrap())
        .await
        .unwrap()
        .split();

    // Handshake through Prosody.
    let (ck, out) = cep
        .associate(SERVER_JID, &[0xa8, 0x00], wall_now())
        .unwrap();
    for o in out {
        ctx.send(&o).await.unwrap();
    }
    let ev = pump_until(&mut srx, &stx, &mut sep, |e| !e.is_empty()).await;
    let [E::AssociateIndication { key: sk, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let sk = sk.clone();
    for o in sep.accept(&sk, &[0xa9, 0x00], wall_now()).unwrap() {
        stx.send(&o).await.unwrap();
    }
    let ev = pump_until(&mut crx, &ctx, &mut cep, |e| !e.is_empty()).await;
    assert!(matches!(ev.as_slice(), [E::Established { .. }]), "{ev:?}");

    // Release collision: both ends send ReleaseReq before seeing the other's.
    for o in cep.release(&ck, None, wall_now()).unwrap() {
        ctx.send(&o).await.unwrap();
    }
    for o in sep.release(&sk, None, wall_now()).unwrap() {
        stx.send(&o).await.unwrap();
    }
    let ev = pump_until(&mut crx, &ctx, &mut cep, |e| !e.is_empty()).await;
    assert!(
        matches!(ev.as_slice(), [E::ReleaseIndication { .. }]),
        "{ev:?}"
    );
    let ev = pump_until(&mut srx, &stx, &mut sep, |e| !e.is_empty()).await;
    assert!(
        matches!(ev.as_slice(), [E::ReleaseIndication { .. }]),
        "{ev:?}"
    );
    // The client answers at once, the server only after the client's answer arrived.
    for o in cep.release_response(&ck, None, wall_now()).unwrap() {
        ctx.send(&o).await.unwrap();
    }
    assert!(sep
        .release_response(&sk, None, wall_now())
        .unwrap()
        .is_empty());
    let ev = pump_until(&mut srx, &stx, &mut sep, |e| {
        e.iter().any(|x| matches!(x, E::Released { .. }))
    })
    .await;
    assert!(ev.contains(&E::Released { key: sk.clone() }), "{ev:?}");
    let ev = pump_until(&mut crx, &ctx, &mut cep, |e| {
        e.iter().any(|x| matches!(x, E::Released { .. }))
    })
    .await;
    assert!(ev.contains(&E::Released { key: ck.clone() }), "{ev:?}");
    assert!(sep.associations().is_empty() && cep.associations().is_empty());

    // mallory injects stanzas towards the server: a data transfer for an association it does
    // not have (item-not-found comes back), and a SecPDU in the wrong stanza (event 18.x and
    // bad-request).
    let mcfg = cfg(&prosody, &app, "mallory", "mallory", Encrypt::Gcm);
    let mut mep = endpoint_for(&mcfg, false, Arc::new(MemorySink::new()));
    let (mtx, mut mrx) = secmms_xmpp::XmppClient::connect(mcfg.xmpp.as_ref().unwrap())
        .await
        .unwrap()
        .split();
    let (_, hs) = mep
        .associate(SERVER_JID, &[0xa8, 0x00], wall_now())
        .unwrap();
    // The HandshakeReq as an iq of type get (it must be set).
    let wrong = hs[0].replacen("type='set'", "type='get'", 1);
    mtx.send(&wrong).await.unwrap();
    // The server handles it (a bounded pump; nothing else arrives for it).
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        pump_until(&mut srx, &stx, &mut sep, |_| false),
    )
    .await;
    // mallory gets a stanza error for its iq (skipping anything else, e.g. presence).
    let err = loop {
        let st = tokio::time::timeout(Duration::from_secs(5), mrx.recv())
            .await
            .unwrap()
            .unwrap();
        if st.kind == secmms_xmpp::StanzaKind::Iq {
            break st;
        }
    };
    assert_eq!(err.type_.as_deref(), Some("error"), "{}", err.raw);
    assert!(err.raw.contains("bad-request"), "{}", err.raw);
    assert!(
        ssink
            .events()
            .iter()
            .any(|e| e.mnemonic == "XMPP_INVTYPE_SPEC"),
        "{:?}",
        ssink.events()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reconnects_after_the_xmpp_server_restarts() {
    if !require_prosody("server_reconnects_after_the_xmpp_server_restarts") {
        return;
    }
    let mut prosody = Prosody::start(&[("ied1", "pw"), ("scada", "pw")]).unwrap();
    let app = AppPki::new(&prosody.dir.join("app"));
    let mut scfg = cfg(&prosody, &app, "ied1", "ied1", Encrypt::Gcm);
    if let Some(x) = scfg.xmpp.as_mut() {
        x.reconnect.initial_delay_ms = 100;
        x.reconnect.max_delay_ms = 500;
        x.reconnect.max_attempts = 50;
    }
    let mms = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let server = tokio::spawn(async move {
        serve(&scfg.xmpp_settings(), mms, Arc::new(MemorySink::new())).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ccfg = cfg(&prosody, &app, "scada", "scada", Encrypt::Gcm);
    let conn = XmppConnection::connect(&ccfg.xmpp_settings(), Arc::new(MemorySink::new()))
        .await
        .unwrap();
    let c = conn.associate(SERVER_JID).await.unwrap();
    c.identify().await.unwrap();
    // The XMPP server goes away and comes back: the association is lost, the MMS server
    // reconnects by itself and serves new associations.
    prosody.restart().unwrap();
    assert!(c.identify().await.is_err());
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(conn) =
            XmppConnection::connect(&ccfg.xmpp_settings(), Arc::new(MemorySink::new())).await
        else {
            continue;
        };
        if let Ok(c) = conn.associate(SERVER_JID).await {
            c.identify().await.unwrap();
            c.release().await.unwrap();
            ok = true;
            break;
        }
    }
    assert!(ok, "the server came back; log:\n{}", prosody.log());
    assert!(!server.is_finished());
    server.abort();
}

/// The next iq stanza `rx` receives (skipping presence and messages), within 5 s.
async fn next_iq(rx: &mut secmms_xmpp::XmppReceiver) -> secmms_xmpp::Stanza {
    loop {
        let st = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an iq within 5 s")
            .unwrap();
        if st.kind == secmms_xmpp::StanzaKind::Iq {
            return st;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_presence_unavailable_ends_its_associations_at_the_server() {
    use secmms_mms::pdu::{ConfirmedRequest, ConfirmedServiceRequest, MmsPdu};
    use secmms_profiles::xmpp::EndpointEvent as E;
    if !require_prosody("peer_presence_unavailable_ends_its_associations_at_the_server") {
        return;
    }
    let prosody = Prosody::start(&[("ied1", "pw"), ("scada", "pw")]).unwrap();
    let app = AppPki::new(&prosody.dir.join("app"));
    let scfg = cfg(&prosody, &app, "ied1", "ied1", Encrypt::Gcm);
    let mms = Vmd::new(
        SharedModel::new(Model::default_demo()),
        ServerConfig::default(),
    );
    let server = tokio::spawn(async move {
        serve(&scfg.xmpp_settings(), mms, Arc::new(MemorySink::new())).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The client side by hand (raw XMPP client and endpoint), to send presence itself.
    let ccfg = cfg(&prosody, &app, "scada", "scada", Encrypt::Gcm);
    let mut cep = endpoint_for(&ccfg, false, Arc::new(MemorySink::new()));
    let (ctx, mut crx) = secmms_xmpp::XmppClient::connect(ccfg.xmpp.as_ref().unwrap())
        .await
        .unwrap()
        .split();
    let initiate =
        secmms_mms::client::initiate_request_pdu(&secmms_mms::client::ClientProposal::default());
    let (ck, out) = cep.associate(SERVER_JID, &initiate, wall_now()).unwrap();
    for o in out {
        ctx.send(&o).await.unwrap();
    }
    let ev = pump_until(&mut crx, &ctx, &mut cep, |e| !e.is_empty()).await;
    assert!(matches!(ev.as_slice(), [E::Established { .. }]), "{ev:?}");
    let identify = |id| {
        MmsPdu::ConfirmedRequest(ConfirmedRequest {
            invoke_id: id,
            service: ConfirmedServiceRequest::Identify,
        })
        .encode()
    };
    // The association serves a request.
    for o in cep.send(&ck, &identify(1), wall_now()).unwrap() {
        ctx.send(&o).await.unwrap();
    }
    let ev = pump_until(&mut crx, &ctx, &mut cep, |e| !e.is_empty()).await;
    assert!(matches!(ev.as_slice(), [E::Data { .. }]), "{ev:?}");
    // Our resource becomes unavailable to the server (directed presence, RFC 6121 §4.6): the
    // server ends our associations locally (§16.5).
    ctx.send(&format!("<presence to='{SERVER_JID}'/>"))
        .await
        .unwrap();
    ctx.send(&format!("<presence type='unavailable' to='{SERVER_JID}'/>"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next request on it finds no association there: item-not-found (§16.4).
    for o in cep.send(&ck, &identify(2), wall_now()).unwrap() {
        ctx.send(&o).await.unwrap();
    }
    let st = next_iq(&mut crx).await;
    assert_eq!(st.type_.as_deref(), Some("error"), "{}", st.raw);
    assert!(st.raw.contains("item-not-found"), "{}", st.raw);
    assert!(!server.is_finished());
    server.abort();
}

/// OCSP of the client's application certificate on the XMPP path (§6.2.8), as over OSI: with
/// the responder unreachable, a soft-fail server lets the client in with
/// `E2E_PEER_OCSP_UNAVAILABLE` (warning); a hard-fail server refuses it with a HandshakeSecReject
/// (`invalid-public-key-certificate`) in the iq result, and the client says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_of_the_peer_certificate_over_xmpp() {
    use secmms::ocsp::OcspCheck;
    if !require_prosody("ocsp_of_the_peer_certificate_over_xmpp") {
        return;
    }
    let prosody = Prosody::start(&[("ied1", "pw"), ("ied2", "pw"), ("scada", "pw")]).unwrap();
    let app = AppPki::new(&prosody.dir.join("app"));
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut servers = Vec::new();
    let mut sinks = Vec::new();
    for (user, check) in [("ied1", OcspCheck::SoftFail), ("ied2", OcspCheck::HardFail)] {
        let mut scfg = cfg(&prosody, &app, user, user, Encrypt::Gcm);
        scfg.security.ocsp_check = Some(check);
        scfg.security.ocsp_responder = Some(down.clone());
        scfg.tls.ocsp_timeout_secs = 2;
        let mms = Vmd::new(
            SharedModel::new(Model::default_demo()),
            ServerConfig::default(),
        );
        let sink = Arc::new(MemorySink::new());
        sinks.push(sink.clone());
        servers.push(tokio::spawn(async move {
            serve(&scfg.xmpp_settings(), mms, sink).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ccfg = cfg(&prosody, &app, "scada", "scada", Encrypt::Gcm);
    let conn = XmppConnection::connect(&ccfg.xmpp_settings(), Arc::new(MemorySink::new()))
        .await
        .unwrap();

    let c = conn.associate("ied1@localhost/IEC").await.unwrap();
    c.identify().await.unwrap();
    c.release().await.unwrap();
    let soft = sinks[0].events();
    assert!(
        soft.iter()
            .any(|e| e.mnemonic == "E2E_PEER_OCSP_UNAVAILABLE"
                && e.message.contains("soft-fail")
                && e.id.to_string() == "secmms:0.7"),
        "{soft:?}"
    );

    let Err(e) = conn.associate("ied2@localhost/IEC").await else {
        panic!("hard-fail server accepted a certificate it could not check")
    };
    assert!(
        e.to_string().contains("invalid-public-key-certificate"),
        "{e}"
    );
    let hard = sinks[1].events();
    assert!(
        hard.iter()
            .any(|e| e.mnemonic == "E2E_PEER_OCSP_UNAVAILABLE" && e.message.contains("hard-fail")),
        "{hard:?}"
    );
    for s in servers {
        assert!(!s.is_finished());
        s.abort();
    }
}
