//! A server embedded with a live model (issue 15 item 2): the application feeds values while
//! serving, observes what clients write, lists the established associations and sends an
//! unsolicited InformationReport to one of them, in plain and in native (E2E, AES-GCM) mode; the
//! client receives it on `Client::reports`.

use std::sync::Arc;
use std::time::Duration;

use secmms::live::ReportError;
use secmms::security::{AppMode, Encrypt};
use secmms::Config;
use secmms_mms::model::{Change, ChangeOrigin, Model, SharedModel};
use secmms_mms::server::{ReportContent, UnsolicitedError};
use secmms_mms::{AccessResult, Data, FloatingPoint, ObjectName};
use secmms_tools::demo::DemoPki;
use tokio::sync::mpsc;

const DOM: &str = "DEMOLD0";
const MAG: &str = "GGIO1$MX$AnIn1$mag$f";

fn name(item: &str) -> ObjectName {
    ObjectName::DomainSpecific {
        domain: DOM.into(),
        item: item.into(),
    }
}

/// Server and client configurations in `mode`, with the demo PKI whose files they name (kept
/// alive by the caller) in native mode.
fn configs(mode: AppMode) -> (Config, Config, Option<DemoPki>) {
    let mut s = Config::default();
    let mut c = Config::default();
    let mut keep = None;
    if mode == AppMode::Native {
        let dir = std::env::temp_dir().join(format!("secmms-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = DemoPki::create(&dir).unwrap();
        pki.apply_security(&mut s, true, mode, Encrypt::Gcm);
        pki.apply_security(&mut c, false, mode, Encrypt::Gcm);
        keep = Some(pki);
    }
    (s, c, keep)
}

async fn live(mode: AppMode) {
    let (scfg, ccfg, _pki) = configs(mode);
    let model = SharedModel::new(Model::default_demo());
    let (tx, mut changes) = mpsc::unbounded_channel::<Change>();
    model.observe(Arc::new(move |c: &Change| {
        let _ = tx.send(c.clone());
    }));
    let server = scfg
        .server_builder()
        .listen("127.0.0.1:0")
        .model(model.clone())
        .bind()
        .await
        .expect("bind");
    let handle = server.spawn().unwrap();
    assert!(handle.associations().is_empty());

    let client = ccfg
        .client_builder()
        .connect(&handle.addr.to_string())
        .await
        .expect("associate");
    let mut reports = client.reports().expect("report receiver");
    assert!(client.reports().is_none(), "one receiver");
    let list = handle.associations();
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0].id;
    if mode == AppMode::Native {
        assert!(list[0].protection.contains("Gcm"), "{list:?}");
    }

    // The application feeds a live value; the client reads it and is sent a report of it.
    let v = Data::FloatingPoint(FloatingPoint::from_f32(42.5));
    assert!(model.set(DOM, MAG, v.clone()));
    assert_eq!(
        changes.recv().await.unwrap().origin,
        ChangeOrigin::Application
    );
    assert_eq!(
        client.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await.unwrap(),
        v
    );
    handle
        .report(id, ReportContent::Variables(vec![name(MAG)]))
        .await
        .expect("report");
    let r = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("report in time")
        .expect("report");
    assert_eq!(r.results, vec![AccessResult::Success(v)]);

    // A client write reaches the application.
    client
        .write_str("DEMOLD0/LLN0.NamPlt.vendor[DC]", "written by the client")
        .await
        .unwrap();
    let c = changes.recv().await.unwrap();
    assert_eq!(
        (c.origin, c.item.as_str(), &c.value),
        (
            ChangeOrigin::Client,
            "LLN0$DC$NamPlt$vendor",
            &Data::VisibleString("written by the client".into())
        )
    );
    assert_eq!(model.get(DOM, "LLN0$DC$NamPlt$vendor"), Some(c.value));

    // Refusals: a list that does not exist, an association that does not.
    assert!(matches!(
        handle
            .report(id, ReportContent::List(name("LLN0$NoSuchDataSet")))
            .await,
        Err(ReportError::Unsolicited(UnsolicitedError::Read(_)))
    ));
    assert!(matches!(
        handle
            .report(id + 100, ReportContent::Variables(vec![name(MAG)]))
            .await,
        Err(ReportError::NoAssociation(_))
    ));

    client.release().await.unwrap();
    for _ in 0..200 {
        if handle.associations().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        handle.associations().is_empty(),
        "released: no longer listed"
    );
    assert!(matches!(
        handle
            .report(id, ReportContent::Variables(vec![name(MAG)]))
            .await,
        Err(ReportError::NoAssociation(_))
    ));
    handle.shutdown();
}

#[tokio::test]
async fn live_model_and_reports_in_plain_mode() {
    live(AppMode::Plain).await;
}

#[tokio::test]
async fn live_model_and_reports_in_native_mode() {
    live(AppMode::Native).await;
}
