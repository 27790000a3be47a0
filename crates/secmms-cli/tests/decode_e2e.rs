//! `secmms decode --e2e-keylog` (issue 16 item 3): live native-mode associations between our own
//! client and server (directly or through `secmms relay`, over plain TCP or TLS) write both key
//! logs — the client's TLS context the NSS key log, client and server the E2E key log
//! (`[security] e2e_keylog_file`) — and the client's side of the TCP octets is written as a
//! capture. The decoder must verify every handshake signature and every ICV, decrypt every
//! EncrTransfer (AES-GCM, AES-CBC + HMAC-SHA256; HMAC-SHA256 only for the clear mode) and show
//! the MMS inside; a wrong key is `verified: false` and exit status 1; without the E2E key log
//! the notes say what was not checked. `--write-plain` carries the MMS as plain RFC 1006 /
//! OSI on port 102, which tshark dissects without a malformed frame. A live association that
//! refreshes its keys several times (`Client::rekey`, §13.3.2: the configured interval is at
//! least 15 minutes) logs one key line per generation and decodes across every generation.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use secmms::security::{AppMode, AppSecurity, ConnectionFacts, Encrypt};
use secmms::tls::TlsContext;
use secmms::transport::Stream;
use secmms::{Client, Config, ServerHandle};
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_pki::event::MemorySink;
use secmms_testkit::{Recording, WireLog};
use secmms_tools::demo::DemoPki;
use tokio::net::TcpStream;

const REF: &str = "DEMOLD0/GGIO1.AnIn1.mag.f[MX]";
const VENDOR: &str = "DEMOLD0/LLN0.NamPlt.vendor[DC]";
/// What the client writes: it must appear in the decrypted write request.
const WRITTEN: &str = "e2e-keylog-4711";

// ------------------------------------------------------------------ server and client
// (one place each, for the builder API)

async fn start_server(cfg: Config) -> ServerHandle {
    cfg.server_builder()
        .events(Arc::new(MemorySink::new()))
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// Associates over `stream` with the application security of `cfg`; its events go to `sink`.
async fn associate<S: Stream>(stream: S, cfg: &Config, sink: Arc<MemorySink>) -> Client {
    let security = AppSecurity::build(&cfg.security, &cfg.tls, &cfg.osi, sink).unwrap();
    cfg.client_builder()
        .app_security(security)
        .connection_facts(ConnectionFacts::default())
        .associate(stream)
        .await
        .unwrap()
}

// ------------------------------------------------------------------ the capture

struct E2eCapture {
    dir: PathBuf,
    pcap: PathBuf,
    tls_keylog: Option<PathBuf>,
    /// The client's E2E key log.
    e2e_keylog: PathBuf,
    /// The server's E2E key log.
    server_e2e_keylog: PathBuf,
    client_events: Arc<MemorySink>,
}

impl Drop for E2eCapture {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

#[derive(Clone, Copy)]
struct Setup {
    encrypt: Encrypt,
    tls: bool,
    relay: bool,
    /// Key refreshes asked for by the client while it reads and writes.
    rekeys: usize,
}

/// What the client writes in generation `g` of a rekeying association.
fn written_in(g: usize) -> String {
    format!("rekey-gen-{g}-{WRITTEN}")
}

async fn capture(tag: &str, s: Setup) -> E2eCapture {
    let dir = std::env::temp_dir().join(format!("secmms-decode-e2e-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = DemoPki::create(&dir).unwrap();
    let e2e_keylog = dir.join("client-e2e.log");
    let server_e2e_keylog = dir.join("server-e2e.log");
    let tls_keylog = s.tls.then(|| dir.join("tls.log"));

    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    if s.tls {
        cfg.tls = pki.tls_config(true);
    }
    pki.apply_security(&mut cfg, true, AppMode::Native, s.encrypt);
    cfg.security.e2e_keylog_file = Some(server_e2e_keylog.clone());
    let server = start_server(cfg).await;
    let mut entry = server.addr.to_string();
    let relay = if s.relay {
        let mut rc = Config::default();
        rc.relay.listen = "127.0.0.1:0".into();
        rc.relay.to = Some(entry.clone());
        if s.tls {
            rc.tls = pki.tls_config(true);
        }
        let h = secmms::relay::Relay::bind(rc.relay_settings())
            .await
            .unwrap()
            .spawn()
            .unwrap();
        entry = h.addr.to_string();
        Some(h)
    } else {
        None
    };

    let mut ccfg = Config::default();
    if s.tls {
        ccfg.tls = pki.tls_config(false);
        ccfg.tls.keylog_file = tls_keylog.clone();
    }
    pki.apply_security(&mut ccfg, false, AppMode::Native, s.encrypt);
    ccfg.security.e2e_keylog_file = Some(e2e_keylog.clone());
    ccfg.client.request_timeout_secs = 10;
    let client_events = Arc::new(MemorySink::new());
    let log: WireLog = Arc::default();
    let tcp = TcpStream::connect(&entry).await.unwrap();
    let rec = Recording::new(tcp, log.clone());
    let c = if s.tls {
        let ctx = TlsContext::client(&ccfg.tls, client_events.clone()).unwrap();
        let tls = ctx.connect(rec, "localhost").await.unwrap();
        associate(tls, &ccfg, client_events.clone()).await
    } else {
        associate(rec, &ccfg, client_events.clone()).await
    };
    c.identify().await.unwrap();
    let name = c.resolve(REF).await.unwrap();
    if s.rekeys == 0 {
        for _ in 0..2 {
            c.read_name(&name).await.unwrap();
        }
        c.write_str(VENDOR, WRITTEN).await.unwrap();
    } else {
        for g in 0..=s.rekeys {
            if g > 0 {
                // The key value travels with the next request; the keys change with the
                // server's answer (changedKey), before the write.
                assert!(c.rekey().await.unwrap(), "rekey refused");
                c.read_name(&name).await.unwrap();
            }
            // Reads and writes, one of them from another task at the same time.
            let value = written_in(g);
            let (r, w) = tokio::join!(c.read_name(&name), c.write_str(VENDOR, &value));
            r.unwrap();
            w.unwrap();
        }
    }
    c.release().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    if let Some(r) = relay {
        r.shutdown();
    }
    server.shutdown();

    let port = if s.tls { 3782 } else { 102 };
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 14, 0, 1), 53014),
        (Ipv4Addr::new(10, 14, 0, 2), port),
        1_750_000_000_000_000_000,
    );
    flow.handshake(&mut file).unwrap();
    for (to_server, chunk) in log.lock().unwrap().iter() {
        for seg in chunk.chunks(1400) {
            flow.send(&mut file, *to_server, seg).unwrap();
        }
    }
    let pcap = dir.join("e2e.pcap");
    std::fs::write(&pcap, file.bytes()).unwrap();
    // The PKI directory lives under `dir`, removed with it.
    std::mem::forget(pki);
    E2eCapture {
        dir,
        pcap,
        tls_keylog,
        e2e_keylog,
        server_e2e_keylog,
        client_events,
    }
}

// ------------------------------------------------------------------ decoding

struct Decoded {
    status: Option<i32>,
    items: Vec<serde_json::Value>,
}

impl Decoded {
    fn pdus(&self) -> Vec<&serde_json::Value> {
        self.items.iter().filter(|x| x["type"] == "pdu").collect()
    }

    /// The PDUs carrying an E2E transfer.
    fn transfers(&self) -> Vec<&serde_json::Value> {
        self.pdus()
            .into_iter()
            .filter(|x| {
                let p = x["pdu"].as_str().unwrap_or_default();
                p.starts_with("ClearTransfer") || p.starts_with("EncrTransfer")
            })
            .collect()
    }

    fn problems(&self) -> Vec<&serde_json::Value> {
        self.items
            .iter()
            .filter(|x| {
                x["problem"] == true || x["problems"].as_array().is_some_and(|a| !a.is_empty())
            })
            .collect()
    }
}

/// `secmms decode --json --quiet [--tls-keylog] [--e2e-keylog] [extra] CAPTURE`.
fn decode(c: &E2eCapture, e2e: Option<&Path>, extra: &[&str]) -> Decoded {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secmms"));
    cmd.args(["decode", "--json", "--quiet"]);
    if let Some(k) = &c.tls_keylog {
        cmd.arg("--tls-keylog").arg(k);
    }
    if let Some(k) = e2e {
        cmd.arg("--e2e-keylog").arg(k);
    }
    let o = cmd.args(extra).arg(&c.pcap).output().unwrap();
    let items = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    Decoded {
        status: o.status.code(),
        items,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The whole check of one capture: key logs, decoding with and without the E2E key log, a
/// wrong key, and the plaintext export in tshark.
fn check(c: &E2eCapture, mode_name: &str, encrypted: bool) {
    // The key logs: one line for the association, the same at both ends, mode 0600.
    let client_log = std::fs::read_to_string(&c.e2e_keylog).unwrap();
    let server_log = std::fs::read_to_string(&c.server_e2e_keylog).unwrap();
    assert_eq!(client_log.lines().count(), 1, "{client_log}");
    assert_eq!(client_log, server_log, "both ends log the same keys");
    let fields: Vec<&str> = client_log.split_whitespace().collect();
    assert_eq!(fields.len(), 8, "{client_log}");
    assert_eq!(
        (fields[0], fields[2], fields[3]),
        ("E2E_TRAFFIC_KEYS", "0", mode_name)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [&c.e2e_keylog, &c.server_e2e_keylog] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
    let warnings = c
        .client_events
        .events()
        .iter()
        .filter(|e| e.mnemonic == "E2E_KEYLOG_ACTIVE")
        .count();
    assert_eq!(warnings, 1, "one warning per key derivation");

    // With both key logs: everything decoded and verified.
    let d = decode(c, Some(&c.e2e_keylog), &[]);
    assert!(d.problems().is_empty(), "{:#?}", d.problems());
    assert_eq!(d.status, Some(0));
    let pdus = d.pdus();
    for hs in [
        "HandshakeReq/initiate-RequestPDU",
        "HandshakeAcc/initiate-ResponsePDU",
    ] {
        let p = pdus.iter().find(|x| x["pdu"] == hs).unwrap();
        assert_eq!(p["verified"], true, "{p}");
    }
    let transfers = d.transfers();
    assert!(transfers.len() >= 8, "{pdus:#?}");
    for t in &transfers {
        assert_eq!(t["verified"], true, "{t}");
        assert!(
            t["layers"].as_array().unwrap().contains(&"mms".into()),
            "{t}"
        );
    }
    let kind = if encrypted {
        "EncrTransfer"
    } else {
        "ClearTransfer"
    };
    assert!(transfers
        .iter()
        .all(|t| t["pdu"].as_str().unwrap().starts_with(kind)));
    let services: Vec<&str> = transfers
        .iter()
        .filter_map(|x| x["service"].as_str())
        .collect();
    let count = |s: &str| services.iter().filter(|x| **x == s).count();
    assert_eq!(
        (count("identify"), count("read"), count("write")),
        (2, 4, 2),
        "{services:?}"
    );
    let read = transfers
        .iter()
        .find(|x| x["service"] == "read" && x["direction"] == "c>s")
        .unwrap();
    assert_eq!(
        read["objects"],
        serde_json::json!(["DEMOLD0/GGIO1$MX$AnIn1$mag$f"])
    );
    let write = transfers
        .iter()
        .find(|x| x["service"] == "write" && x["direction"] == "c>s")
        .unwrap();
    assert_eq!(
        write["objects"],
        serde_json::json!(["DEMOLD0/LLN0$DC$NamPlt$vendor"])
    );
    let ours: Vec<u64> = pdus
        .iter()
        .filter_map(|x| x["invoke_id"].as_u64())
        .collect();

    // Without the E2E key log: the structure, and what was not checked.
    let d = decode(c, None, &[]);
    assert_eq!(d.status, Some(0), "{:#?}", d.problems());
    for t in d.transfers() {
        assert!(t["verified"].is_null(), "{t}");
        let notes = t["notes"].to_string();
        assert!(notes.contains("--e2e-keylog"), "{t}");
    }
    if encrypted {
        assert!(d.transfers().iter().all(|t| t["service"].is_null()));
    }

    // A wrong key: every transfer fails, at its PDU, exit status 1.
    let bad: String = client_log
        .split_whitespace()
        .enumerate()
        .map(|(i, f)| {
            if i >= 4 && f != "-" {
                let mut s = f.to_string();
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
                s
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let wrong = c.dir.join("wrong-e2e.log");
    std::fs::write(&wrong, bad + "\n").unwrap();
    let d = decode(c, Some(&wrong), &[]);
    assert_eq!(d.status, Some(1));
    let transfers = d.transfers();
    assert!(!transfers.is_empty());
    for t in &transfers {
        assert_eq!(t["verified"], false, "{t}");
        assert!(t["problems"].to_string().contains("does not verify"), "{t}");
    }

    // The plaintext export: the MMS in the clear, for Wireshark.
    let plain = c.dir.join("plain.pcapng");
    let d = decode(
        c,
        Some(&c.e2e_keylog),
        &["--write-plain", plain.to_str().unwrap()],
    );
    assert_eq!(d.status, Some(0));
    let exported = std::fs::read(&plain).unwrap();
    assert!(
        contains(&exported, WRITTEN.as_bytes()),
        "the written string in the clear"
    );
    let original = std::fs::read(&c.pcap).unwrap();
    assert_eq!(
        contains(&original, WRITTEN.as_bytes()),
        !encrypted && c.tls_keylog.is_none(),
        "the capture itself shows it only without encryption"
    );
    if secmms_testkit::tshark_ready("tshark missing in CI", "tshark not installed: skipped") {
        let t = secmms_testkit::Tshark::new(&plain);
        let problems = t.problems("_ws.malformed || _ws.expert.severity >= error");
        assert!(problems.trim().is_empty(), "tshark: {problems}");
        assert_eq!(
            t.mms_invoke_ids(),
            ours,
            "tshark dissects the same MMS PDUs"
        );
        let strings = t.run(&["-Y", "mms", "-V"]);
        assert!(strings.contains(WRITTEN), "tshark shows the written string");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_gcm_over_tls_verified_and_decrypted() {
    let c = capture(
        "gcm",
        Setup {
            encrypt: Encrypt::Gcm,
            tls: true,
            relay: false,
            rekeys: 0,
        },
    )
    .await;
    check(&c, "aes128-gcm", true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cbc_hmac_verified_and_decrypted() {
    let c = capture(
        "cbc",
        Setup {
            encrypt: Encrypt::Cbc,
            tls: false,
            relay: false,
            rekeys: 0,
        },
    )
    .await;
    check(&c, "aes128-cbc+hmac-sha256", true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_clear_icv_verified() {
    let c = capture(
        "clear",
        Setup {
            encrypt: Encrypt::None,
            tls: false,
            relay: false,
            rekeys: 0,
        },
    )
    .await;
    check(&c, "hmac-sha256", false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_gcm_through_a_relay_over_tls() {
    // The relay carries E2E end to end (§15.5): the capture of the client's hop decrypts with
    // the ends' E2E key log.
    let c = capture(
        "relay",
        Setup {
            encrypt: Encrypt::Gcm,
            tls: true,
            relay: true,
            rekeys: 0,
        },
    )
    .await;
    check(&c, "aes128-gcm", true);
}

/// A rekeying association: one key-log line per generation (the same at both ends), every
/// transfer of every generation verified and decrypted, the notes naming each generation in
/// both directions, and the MMS inside equal to what the client sent.
fn check_rekeys(c: &E2eCapture, mode_name: &str, rekeys: usize) {
    let client_log = std::fs::read_to_string(&c.e2e_keylog).unwrap();
    let server_log = std::fs::read_to_string(&c.server_e2e_keylog).unwrap();
    assert_eq!(client_log, server_log, "both ends log the same keys");
    let lines: Vec<Vec<&str>> = client_log
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), rekeys + 1, "{client_log}");
    for (g, f) in lines.iter().enumerate() {
        assert_eq!(f.len(), 8, "{client_log}");
        assert_eq!(
            (f[0], f[1], f[3]),
            ("E2E_TRAFFIC_KEYS", lines[0][1], mode_name)
        );
        assert_eq!(f[2], g.to_string(), "{client_log}");
    }
    // Each generation has keys of its own.
    let mut keys: Vec<&str> = lines.iter().map(|f| f[4]).collect();
    keys.dedup();
    assert_eq!(keys.len(), rekeys + 1);

    let plain = c.dir.join("plain.pcapng");
    let d = decode(
        c,
        Some(&c.e2e_keylog),
        &["--write-plain", plain.to_str().unwrap()],
    );
    assert!(d.problems().is_empty(), "{:#?}", d.problems());
    assert_eq!(d.status, Some(0));
    let transfers = d.transfers();
    let mut seen = std::collections::BTreeSet::new();
    for t in &transfers {
        assert_eq!(t["verified"], true, "{t}");
        assert!(
            t["pdu"].as_str().unwrap().starts_with("EncrTransfer"),
            "{t}"
        );
        assert!(
            t["layers"].as_array().unwrap().contains(&"mms".into()),
            "{t}"
        );
        let notes = t["notes"].to_string();
        let g = (0..=rekeys)
            .find(|g| notes.contains(&format!("E2E key generation {g})")))
            .unwrap_or_else(|| panic!("no generation in {t}"));
        seen.insert((t["direction"].as_str().unwrap().to_string(), g));
    }
    for dir in ["c>s", "s>c"] {
        for g in 0..=rekeys {
            assert!(
                seen.contains(&(dir.to_string(), g)),
                "{dir} generation {g}: {seen:?}"
            );
        }
    }
    let services: Vec<&str> = transfers
        .iter()
        .filter_map(|x| x["service"].as_str())
        .collect();
    let count = |s: &str| services.iter().filter(|x| **x == s).count();
    // Per generation one read and one write, plus the read carrying each rekey; identify once.
    assert_eq!(
        (count("identify"), count("read"), count("write")),
        (2, 2 * (rekeys + 1 + rekeys), 2 * (rekeys + 1)),
        "{services:?}"
    );
    // The MMS inside is what the client sent: each generation's written string, in the clear
    // in the export only.
    let exported = std::fs::read(&plain).unwrap();
    let original = std::fs::read(&c.pcap).unwrap();
    for g in 0..=rekeys {
        let w = written_in(g);
        assert!(contains(&exported, w.as_bytes()), "{w} in the export");
        assert!(
            !contains(&original, w.as_bytes()),
            "{w} encrypted on the wire"
        );
    }
    let writes = transfers
        .iter()
        .filter(|x| x["service"] == "write" && x["direction"] == "c>s")
        .count();
    assert_eq!(writes, rekeys + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_gcm_over_tls_across_live_rekeys() {
    let c = capture(
        "rekey-gcm",
        Setup {
            encrypt: Encrypt::Gcm,
            tls: true,
            relay: false,
            rekeys: 3,
        },
    )
    .await;
    check_rekeys(&c, "aes128-gcm", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_cbc_hmac_across_live_rekeys() {
    let c = capture(
        "rekey-cbc",
        Setup {
            encrypt: Encrypt::Cbc,
            tls: false,
            relay: false,
            rekeys: 2,
        },
    )
    .await;
    check_rekeys(&c, "aes128-cbc+hmac-sha256", 2);
}

#[test]
fn relay_refuses_an_e2e_keylog_and_says_why() {
    let o = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args([
            "relay",
            "--to",
            "127.0.0.1:1",
            "--e2e-keylog",
            "/nonexistent/k.log",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("end to end") && err.contains("§15.5"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(["relay", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("--e2e-keylog") && help.contains("end to end"),
        "{help}"
    );
}
