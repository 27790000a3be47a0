//! `secmms log verify` against a tamper-evident event log (IEC 62351-4 §4.6): every edit,
//! deletion, reordering, duplication or truncation of a record is reported with the right
//! reason, and the intact log passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use secmms::events::log::{LogRecord, ALG_SHA256, GENESIS};
use secmms::events::{
    ChainedLogSink, EventId, FsyncPolicy, LogKey, SecurityEvent, SecurityEventSink, Severity,
};

const KEY: &[u8] = b"an HMAC key of thirty-two octets";

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("secmms-logverify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes 12 events through the sink and returns the log's lines.
fn write_log(path: &Path, key: Option<LogKey>) -> Vec<String> {
    let sink = ChainedLogSink::open(path, key, FsyncPolicy::Never).unwrap();
    let sevs = Severity::ALL;
    for i in 0..12u16 {
        sink.record(&SecurityEvent {
            id: EventId::e2e(1, i + 1),
            mnemonic: "TEST_EVENT",
            severity: sevs[usize::from(i) % sevs.len()],
            message: format!("event number {i}"),
            association: (i % 2 == 0).then(|| format!("assoc-{i}")),
        });
    }
    assert_eq!(sink.failures(), 0);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

/// Runs `secmms log verify` (with `--json`) and returns (exit code, parsed output).
fn verify(path: &Path, key: Option<&Path>) -> (i32, serde_json::Value) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_secmms"));
    c.arg("log").arg("verify").arg(path).arg("--json");
    if let Some(k) = key {
        c.arg("--key").arg(k);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code().unwrap(), v)
}

/// Asserts the verification fails at `line` with problem `kind`.
fn assert_bad(path: &Path, key: Option<&Path>, line: u64, kind: &str) -> serde_json::Value {
    let (code, v) = verify(path, key);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["bad"]["problem"]["kind"], kind, "{v}");
    assert_eq!(v["bad"]["line"], line, "{v}");
    v
}

#[test]
fn intact_log_passes_and_text_output_is_clear() {
    let d = Dir::new("intact");
    let p = d.path("events.jsonl");
    let lines = write_log(&p, None);
    assert_eq!(lines.len(), 12);
    let (code, v) = verify(&p, None);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["records"], 12);
    assert_eq!(v["head"]["seq"], 11);
    assert_eq!(v["keyed"], false);
    // Human form: success and failure messages.
    let out = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(["log", "verify"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact, 12 records"));
    let mut l = lines.clone();
    l.remove(4);
    write_lines(&p, &l);
    let out = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(["log", "verify"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("line 5 (seq 5): deleted: expected seq 4, found 5"),
        "{s}"
    );
    // Anchor: the head printed for the intact log catches a later cut of the tail.
    let head = format!(
        "{}:{}",
        v["head"]["seq"],
        v["head"]["hash"].as_str().unwrap()
    );
    write_lines(&p, &lines[..9]);
    assert_eq!(
        verify(&p, None).0,
        0,
        "a cut tail is invisible without an anchor"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(["log", "verify", "--json", "--anchor", &head])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["bad"]["problem"]["kind"], "truncated", "{j}");
    write_lines(&p, &lines);
    let out = Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(["log", "verify", "--anchor", &head])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    // Unreadable file: exit 2.
    let (code, v) = verify(&d.path("missing"), None);
    assert_eq!(code, 2, "{v}");
}

#[test]
fn every_tampering_is_reported() {
    let d = Dir::new("tamper");
    let p = d.path("events.jsonl");
    let lines = write_log(&p, None);
    let edit = |i: usize, f: &dyn Fn(&mut serde_json::Value)| {
        let mut l = lines.clone();
        let mut v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
        f(&mut v);
        l[i] = v.to_string();
        l
    };

    // Edit one field of one record (each field in turn).
    for (field, val) in [
        ("message", serde_json::json!("nothing happened")),
        ("severity", serde_json::json!("notice")),
        ("time", serde_json::json!("2000-01-01T00:00:00.000000Z")),
        ("association", serde_json::json!(null)),
        ("id", serde_json::json!("IEC62351-4:9.9")),
        ("mnemonic", serde_json::json!("OTHER")),
    ] {
        write_lines(&p, &edit(6, &|v| v[field] = val.clone()));
        assert_bad(&p, None, 7, "edited");
    }
    // Edit and re-hash one record: the next record no longer chains to it.
    let rehashed = edit(6, &|v| {
        v["message"] = "forged".into();
        let mut r: LogRecord = serde_json::from_value(v.clone()).unwrap();
        r.hash = r.compute_hash(None).unwrap();
        *v = serde_json::to_value(r).unwrap();
    });
    write_lines(&p, &rehashed);
    assert_bad(&p, None, 8, "prev_mismatch");

    // Delete a middle record.
    let mut l = lines.clone();
    l.remove(5);
    write_lines(&p, &l);
    let v = assert_bad(&p, None, 6, "deleted");
    assert_eq!(v["bad"]["problem"]["expected"], 5);
    assert_eq!(v["bad"]["problem"]["found"], 6);

    // Delete the first record.
    write_lines(&p, &lines[1..]);
    assert_bad(&p, None, 1, "deleted");

    // Swap two adjacent records, then two distant ones.
    let mut l = lines.clone();
    l.swap(3, 4);
    write_lines(&p, &l);
    assert_bad(&p, None, 4, "reordered");
    let mut l = lines.clone();
    l.swap(2, 9);
    write_lines(&p, &l);
    assert_bad(&p, None, 3, "reordered");

    // Duplicate a record.
    let mut l = lines.clone();
    l.insert(8, lines[7].clone());
    write_lines(&p, &l);
    assert_bad(&p, None, 9, "duplicated");

    // Truncate a line in the middle, and the last line.
    let mut l = lines.clone();
    let half = l[3].len() / 2;
    l[3].truncate(half);
    write_lines(&p, &l);
    assert_bad(&p, None, 4, "unparsable");
    let mut s = lines.join("\n");
    s.truncate(s.len() - 10);
    std::fs::write(&p, s).unwrap();
    assert_bad(&p, None, 12, "unparsable");
    // Only the final newline missing.
    std::fs::write(&p, lines.join("\n")).unwrap();
    assert_bad(&p, None, 12, "incomplete");

    // A first record that does not start from the genesis value.
    let l = edit(0, &|v| {
        v["prev"] = "11".repeat(32).into();
        let mut r: LogRecord = serde_json::from_value(v.clone()).unwrap();
        r.hash = r.compute_hash(None).unwrap();
        *v = serde_json::to_value(r).unwrap();
    });
    write_lines(&p, &l);
    assert_bad(&p, None, 1, "prev_mismatch");

    // Finally the untouched log still passes.
    write_lines(&p, &lines);
    assert_eq!(verify(&p, None).0, 0);
}

/// Recomputes the whole chain without the key, as an attacker who can write the file would.
fn rechain_without_key(lines: &[String], alg: &str) -> Vec<String> {
    let mut prev = GENESIS.to_owned();
    lines
        .iter()
        .map(|l| {
            let mut r: LogRecord = serde_json::from_str(l).unwrap();
            r.message = format!("{} (rewritten)", r.message);
            r.alg = alg.to_owned();
            r.prev = prev.clone();
            r.hash = r.compute_hash(None).unwrap();
            prev = r.hash.clone();
            serde_json::to_string(&r).unwrap()
        })
        .collect()
}

#[test]
fn keyed_log_detects_a_rewrite_without_the_key() {
    let d = Dir::new("keyed");
    let p = d.path("events.jsonl");
    let k = d.path("log.key");
    std::fs::write(&k, KEY).unwrap();
    let lines = write_log(&p, Some(LogKey::new(KEY).unwrap()));
    let (code, v) = verify(&p, Some(&k));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["keyed"], true);
    assert_eq!(v["records"], 12);
    // Without the key the verifier refuses rather than pretending.
    assert_bad(&p, None, 1, "key_required");
    // A wrong key: the first record does not match.
    let wrong = d.path("wrong.key");
    std::fs::write(&wrong, [0x55u8; 32]).unwrap();
    assert_bad(&p, Some(&wrong), 1, "edited");

    // Whole chain recomputed with plain SHA-256, labelled as keyed: every hash is wrong.
    write_lines(&p, &rechain_without_key(&lines, "hmac-sha256"));
    assert_bad(&p, Some(&k), 1, "edited");
    // Whole chain recomputed and downgraded to an unkeyed chain: refused with the key...
    let downgraded = rechain_without_key(&lines, ALG_SHA256);
    write_lines(&p, &downgraded);
    assert_bad(&p, Some(&k), 1, "wrong_alg");
    // ...while without the key it is (necessarily) a valid unkeyed chain: the documented limit.
    assert_eq!(verify(&p, None).0, 0);

    // The structural checks apply to keyed logs too.
    let mut l = lines.clone();
    l.remove(10);
    write_lines(&p, &l);
    assert_bad(&p, Some(&k), 11, "deleted");
    let mut l = lines.clone();
    l.swap(0, 1);
    write_lines(&p, &l);
    assert_bad(&p, Some(&k), 1, "reordered");

    // A short key file is an error reading the key (exit 2), not a verdict on the log.
    let short = d.path("short.key");
    std::fs::write(&short, b"short").unwrap();
    assert_eq!(verify(&p, Some(&short)).0, 2);
}
