//! tshark decrypts our TLS traffic (IEC 62351-4 clause 6, port 3782) with the NSS key log our
//! TLS context writes (`tls.keylog_file`, set from SSLKEYLOGFILE by the CLI) and decodes the MMS
//! inside with no malformed frame. The TCP bytes under TLS are recorded from a live association
//! between our client and our server, turned into a pcap with `text2pcap`, and read back with
//! `tshark`, for TLS 1.2 and TLS 1.3. Skipped when tshark is missing, unless CI=true.

mod tls_support;

use std::io::Write;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use secmms::tls::TlsContext;
use secmms::{Client, Config, Server};
use tls_support::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

fn pki() -> &'static Pki {
    static P: OnceLock<Pki> = OnceLock::new();
    P.get_or_init(Pki::generate)
}

type Log = Arc<Mutex<Vec<(bool, Vec<u8>)>>>;

/// A TCP stream that records the (encrypted) bytes each way (true = client to server).
struct Recording {
    inner: TcpStream,
    log: Log,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = buf.filled()[before..].to_vec();
            if !new.is_empty() {
                self.log.lock().unwrap().push((false, new));
            }
        }
        r
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.log.lock().unwrap().push((true, buf[..*n].to_vec()));
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-v").output().is_ok()
}

fn run_tshark(pcap: &std::path::Path, keylog: &std::path::Path, extra: &[&str]) -> String {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(["-d", "tcp.port==3782,tls", "-d", "tls.port==3782,tpkt"])
        .args(extra)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
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
    let h = Server::bind_with_events(cfg, sink.clone())
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
    let log: Log = Arc::default();
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    let tls = ctx
        .connect(
            Recording {
                inner: tcp,
                log: log.clone(),
            },
            "server",
        )
        .await
        .unwrap();
    let c = Client::associate(tls, &ccfg).await.unwrap();
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
    let txt = dir.join("flow.txt");
    let pcap = dir.join("flow.pcap");
    let mut f = std::fs::File::create(&txt).unwrap();
    for (from_client, chunk) in log.lock().unwrap().iter() {
        for seg in chunk.chunks(1400) {
            writeln!(f, "{}", if *from_client { "I" } else { "O" }).unwrap();
            for (i, line) in seg.chunks(16).enumerate() {
                write!(f, "{:06x}", i * 16).unwrap();
                for b in line {
                    write!(f, " {b:02x}").unwrap();
                }
                writeln!(f).unwrap();
            }
            writeln!(f).unwrap();
        }
    }
    drop(f);
    let st = Command::new("text2pcap")
        .args(["-q", "-D", "-4", "10.0.0.1,10.0.0.2", "-T", "50000,3782"])
        .arg(&txt)
        .arg(&pcap)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        std::fs::metadata(&keylog).unwrap().len() > 0,
        "key log written"
    );

    let summary = run_tshark(&pcap, &keylog, &[]);
    let mms = run_tshark(
        &pcap,
        &keylog,
        &["-Y", "mms", "-T", "fields", "-e", "frame.number"],
    );
    let problems = run_tshark(
        &pcap,
        &keylog,
        &[
            "-Y",
            "_ws.malformed || (_ws.expert.severity >= warning && !tcp.analysis)",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "_ws.expert.message",
        ],
    );
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
    let verbose = run_tshark(&pcap, &keylog, &["-Y", "mms", "-V"]);
    for what in ["read", "write", "identify", "getNameList"] {
        assert!(verbose.contains(what), "MMS {what} not decoded");
    }
    assert!(
        problems.trim().is_empty(),
        "malformed or warning frames:\n{problems}\n{summary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decrypts_tls12_and_decodes_mms() {
    decrypt_and_decode(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decrypts_tls13_and_decodes_mms() {
    decrypt_and_decode(true).await;
}
