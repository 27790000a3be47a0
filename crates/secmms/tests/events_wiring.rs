//! The server reports through the configured event pipeline: with `[events] log = FILE`, a plain
//! (TLS-disabled) server writes its `TLS_DISABLED` warning to the tamper-evident log, and the log
//! verifies.

use secmms::events::verify_log;
use secmms::Config;

#[tokio::test]
async fn plain_server_logs_tls_disabled_to_the_chained_log() {
    let dir = std::env::temp_dir().join(format!("secmms-events-wiring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("events.log");
    let _ = std::fs::remove_file(&log);
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.events.log = Some(log.clone());
    let _server = cfg.server_builder().bind().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("TLS_DISABLED"), "{text}");
    let report = verify_log(&log, None).unwrap();
    assert_eq!(report.records, 1);
    let _ = std::fs::remove_dir_all(&dir);
}
