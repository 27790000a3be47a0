//! tshark decrypts our TLS traffic (IEC 62351-4 clause 6, port 3782) with the NSS key log our
//! TLS context writes (`tls.keylog_file`, set from SSLKEYLOGFILE by the CLI) and decodes the MMS
//! inside with no malformed frame. The TCP bytes under TLS are recorded from a live association
//! between our client and our server, turned into a pcap with `text2pcap`, and read back with
//! `tshark`, for TLS 1.2 and TLS 1.3. Skipped when tshark is missing, unless CI=true.

mod tls_support;

use std::sync::{Arc, OnceLock};

use secmms::tls::TlsContext;
use secmms::Config;
use secmms_testkit::{have, Capture, Recording, WireLog};
use tls_support::*;
use tokio::net::TcpStream;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

async fn decrypt_and_decode(tls13: bool) {
    if !require(have("tshark") && have("text2pcap"), "tshark and text2pcap") {
        return;
    }
    let p = pki();
    let dir = temp_dir(if tls13 { "tshark13" } else { "tshark12" });
    let keylog = dir.join("keys.log");
    let (_ev, sink) = sink();
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.tls = p.config(&p.server);
    cfg.tls.tls13 = tls13;
    cfg.tls.keylog_file = Some(keylog.clone());
    let h = cfg
        .server_builder()
        .events(sink.clone())
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();

    let mut ccfg = Config {
        tls: p.config(&p.client),
        ..Default::default()
    };
    ccfg.tls.tls13 = tls13;
    let ctx = TlsContext::client(&ccfg.tls, sink).unwrap();
    let log: WireLog = Arc::default();
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    let tls = ctx
        .connect(Recording::new(tcp, log.clone()), "localhost")
        .await
        .unwrap();
    let c = ccfg.client_builder().associate(tls).await.unwrap();
    c.identify().await.unwrap();
    assert_eq!(c.domains().await.unwrap(), vec!["DEMOLD0"]);
    c.read("DEMOLD0/GGIO1.AnIn1.mag.f[MX]").await.unwrap();
    c.write_str("DEMOLD0/LLN0.NamPlt.vendor[DC]", "tls")
        .await
        .unwrap();
    c.release().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    h.shutdown();

    // text2pcap input: each recorded chunk as one TCP segment, client 10.0.0.1 -> server :3782.
    let segments: Vec<(bool, Vec<u8>)> = log
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(from_client, chunk)| chunk.chunks(1400).map(|seg| (*from_client, seg.to_vec())))
        .collect();
    let capture = Capture::write_in(&dir, &segments, 3782);
    assert!(
        std::fs::metadata(&keylog).unwrap().len() > 0,
        "key log written"
    );

    let keylog_pref = format!("tls.keylog_file:{}", keylog.display());
    let tshark = capture.tshark().options([
        "-o",
        keylog_pref.as_str(),
        "-d",
        "tcp.port==3782,tls",
        "-d",
        "tls.port==3782,tpkt",
    ]);
    let summary = tshark.run(&[]);
    let mms = tshark.run(&["-Y", "mms", "-T", "fields", "-e", "frame.number"]);
    let problems =
        tshark.problems("_ws.malformed || (_ws.expert.severity >= warning && !tcp.analysis)");
    let mms_frames = mms.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        mms_frames >= 10,
        "tshark must decrypt and decode the MMS PDUs ({mms_frames} found):\n{summary}"
    );
    for what in [
        "initiate-RequestPDU",
        "initiate-ResponsePDU",
        "confirmed-RequestPDU",
        "confirmed-ResponsePDU",
        "conclude-RequestPDU",
    ] {
        assert!(summary.contains(what), "{what} not decoded:\n{summary}");
    }
    let verbose = tshark.run(&["-Y", "mms", "-V"]);
    for what in ["read", "write", "identify", "getNameList"] {
        assert!(verbose.contains(what), "MMS {what} not decoded");
    }
    assert!(
        problems.trim().is_empty(),
        "malformed or warning frames:\n{problems}\n{summary}"
    );
    capture.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decrypts_tls12_and_decodes_mms() {
    decrypt_and_decode(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decrypts_tls13_and_decodes_mms() {
    decrypt_and_decode(true).await;
}
