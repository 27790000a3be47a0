//! Issue 17: the hash-chained security log keeps every security event but aggregates floods.
//! 10 000 refused TLS handshakes from one source address (127.0.0.2; garbage instead of a
//! ClientHello, each a `TLS_HANDSHAKE_FAILED` event) become a few records whose counts add up
//! to 10 000, and the log still verifies.

mod tls_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use secmms::events::{verify_log, EventsConfig};
use secmms::Config;
use tls_support::*;

const ATTEMPTS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_refused_handshakes_are_a_few_records_that_count_them_all() {
    let p = Pki::generate();
    let dir = temp_dir("log-flood");
    let log = dir.join("events.jsonl");
    let _ = std::fs::remove_file(&log);
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.server.handshake_rate = 0;
    cfg.tls = p.config(&p.server);
    cfg.events = EventsConfig {
        log: Some(log.clone()),
        tracing: false,
        aggregate_secs: 1,
        ..EventsConfig::default()
    };
    let h = cfg.server_builder().bind().await.unwrap().spawn().unwrap();
    let addr = h.addr;
    let start = Instant::now();
    // 16 threads, each connecting from 127.0.0.2, sending garbage, waiting for the close.
    let per = ATTEMPTS / 16;
    let threads: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut done = 0u64;
                while done < per {
                    let s =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .unwrap();
                    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
                        .unwrap();
                    if s.connect(&addr.into()).is_err() {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    let mut t: std::net::TcpStream = s.into();
                    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let _ = t.write_all(b"GET / HTTP/1.0\r\n\r\n");
                    let mut buf = [0u8; 256];
                    while matches!(t.read(&mut buf), Ok(n) if n > 0) {}
                    done += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let flood = start.elapsed();
    // The last window closes a second after its first event; the server's tick writes it.
    let mut records: Vec<serde_json::Value> = Vec::new();
    let mut total = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        records = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["mnemonic"] == "TLS_HANDSHAKE_FAILED"
                    && v["association"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("127.0.0.2"))
            })
            .collect();
        total = records
            .iter()
            .map(|v| v["count"].as_u64().unwrap_or(1))
            .sum::<u64>();
        if total >= ATTEMPTS {
            break;
        }
    }
    h.shutdown();
    assert_eq!(total, ATTEMPTS, "{} records", records.len());
    // One record at the start of each 1 s window and one aggregate at its end.
    let bound = 2 * (flood.as_secs() + 2);
    assert!(
        (records.len() as u64) <= bound,
        "{} records for {ATTEMPTS} events in {flood:?}",
        records.len()
    );
    assert!(records
        .iter()
        .any(|v| v["count"].as_u64().unwrap_or(0) > 100));
    let report = verify_log(&log, None).unwrap();
    eprintln!(
        "{ATTEMPTS} refused handshakes in {flood:?}: {} records of them, {} in the log",
        records.len(),
        report.records
    );
}
