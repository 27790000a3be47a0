//! Tests of the hash-chained log: chaining, canonical form, reopening, concurrent writers,
//! bounds, keys and anchors.

use super::*;
use secmms_pki::event::EventId;
use std::sync::Arc;

fn ev(i: u32) -> SecurityEvent {
    SecurityEvent {
        id: EventId::e2e(1, 3),
        mnemonic: "INVALID_SIGNATURE",
        severity: if i % 2 == 0 {
            Severity::Alarm
        } else {
            Severity::Incident
        },
        message: format!("event {i} \"quoted\" \n newline"),
        association: (i % 3 == 0).then(|| format!("assoc-{i}")),
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("secmms-log-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&d);
    d
}

fn key() -> LogKey {
    LogKey::new(b"0123456789abcdef0123456789abcdef").unwrap()
}

#[test]
fn chain_links_records() {
    let p = tmp("chain");
    let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
    assert_eq!(s.head(), None);
    for i in 0..5 {
        s.record(&ev(i));
    }
    let text = std::fs::read_to_string(&p).unwrap();
    let recs: Vec<LogRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0].prev, GENESIS);
    for w in recs.windows(2) {
        assert_eq!(w[1].prev, w[0].hash);
        assert_eq!(w[1].seq, w[0].seq + 1);
    }
    for r in &recs {
        assert_eq!(r.compute_hash(None).unwrap(), r.hash);
        assert_eq!(r.alg, ALG_SHA256);
    }
    assert_eq!(recs[1].severity, "incident");
    assert_eq!(recs[0].association.as_deref(), Some("assoc-0"));
    let rep = verify_log(&p, None).unwrap();
    assert_eq!(rep.records, 5);
    assert_eq!(rep.head, s.head());
    assert!(!rep.keyed);
    let _ = std::fs::remove_file(&p);
}

#[test]
fn canonical_is_injective_on_field_boundaries() {
    let mut a = LogRecord {
        seq: 1,
        time: "t".into(),
        id: "ab".into(),
        mnemonic: "c".into(),
        severity: "alarm".into(),
        message: String::new(),
        association: None,
        count: None,
        first: None,
        last: None,
        alg: ALG_SHA256.into(),
        prev: GENESIS.into(),
        hash: String::new(),
    };
    let mut b = a.clone();
    b.id = "a".into();
    b.mnemonic = "bc".into();
    assert_ne!(a.canonical(), b.canonical());
    b = a.clone();
    b.association = Some(String::new());
    assert_ne!(a.canonical(), b.canonical());
    a.hash = "x".into();
    assert_eq!(a.canonical(), {
        let mut c = a.clone();
        c.hash = "y".into();
        c.canonical()
    });
}

#[test]
fn reopen_continues_the_chain() {
    let p = tmp("reopen");
    {
        let s = ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Always).unwrap();
        for i in 0..3 {
            s.append(&ev(i)).unwrap();
        }
    }
    let s = ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Severe).unwrap();
    assert_eq!(s.head().unwrap().seq, 2);
    let h = s.append(&ev(3)).unwrap();
    assert_eq!(h.seq, 3);
    let rep = verify_log(&p, Some(&key())).unwrap();
    assert_eq!(rep.records, 4);
    assert!(rep.keyed);
    // Wrong key, or no key, or a keyed sink on an unkeyed log: refuse to continue.
    let other = LogKey::new(&[7u8; 32]).unwrap();
    assert!(matches!(
        ChainedLogSink::open(&p, Some(other.clone()), FsyncPolicy::Never),
        Err(LogError::BadHead { .. })
    ));
    assert!(matches!(
        ChainedLogSink::open(&p, None, FsyncPolicy::Never),
        Err(LogError::BadHead { .. })
    ));
    assert!(matches!(
        verify_log(&p, Some(&other)),
        Err(VerifyError::Broken(BadRecord {
            line: 1,
            problem: Problem::Edited,
            ..
        }))
    ));
    assert!(matches!(
        verify_log(&p, None),
        Err(VerifyError::Broken(BadRecord {
            problem: Problem::KeyRequired,
            ..
        }))
    ));
    // A torn last line blocks reopening.
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"{\"seq\":4,").unwrap();
    assert!(matches!(
        ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Never),
        Err(LogError::BadHead { .. })
    ));
    let _ = std::fs::remove_file(&p);
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let p = tmp("concurrent");
    let s = Arc::new(ChainedLogSink::open(&p, Some(key()), FsyncPolicy::Never).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    s.record(&ev(t * 100 + i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.failures(), 0);
    let rep = verify_log(&p, Some(&key())).unwrap();
    assert_eq!(rep.records, 400);
    assert_eq!(rep.head, s.head());
    let _ = std::fs::remove_file(&p);
}

#[test]
fn long_fields_are_cut_and_lines_bounded() {
    let p = tmp("long");
    let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
    let mut e = ev(1);
    e.message = "é".repeat(10_000);
    e.association = Some("\u{1}".repeat(1000));
    s.append(&e).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.len() < MAX_LINE_LEN, "{}", text.len());
    let r: LogRecord = serde_json::from_str(text.trim_end()).unwrap();
    assert!(r.message.len() <= MAX_MESSAGE_LEN && r.message.ends_with('…'));
    verify_log(&p, None).unwrap();
    // A line over the limit is reported, not buffered.
    std::fs::write(&p, vec![b'x'; MAX_LINE_LEN * 2]).unwrap();
    assert!(matches!(
        verify_log(&p, None),
        Err(VerifyError::Broken(BadRecord {
            problem: Problem::LineTooLong,
            ..
        }))
    ));
    let _ = std::fs::remove_file(&p);
}

#[test]
fn key_lengths() {
    assert!(LogKey::new(&[1; MIN_KEY_LEN - 1]).is_none());
    assert!(LogKey::new(&[1; MAX_KEY_LEN + 1]).is_none());
    assert!(format!("{:?}", key()).contains("32 octets"));
    let p = tmp("key");
    std::fs::write(&p, [9u8; 32]).unwrap();
    LogKey::from_file(&p).unwrap();
    std::fs::write(&p, [9u8; 4]).unwrap();
    assert!(matches!(
        LogKey::from_file(&p),
        Err(LogError::KeyLength { len: 4, .. })
    ));
    let _ = std::fs::remove_file(&p);
}

#[test]
fn anchor_detects_tail_truncation_and_rewrite() {
    let p = tmp("anchor");
    let s = ChainedLogSink::open(&p, None, FsyncPolicy::Never).unwrap();
    for i in 0..6 {
        s.record(&ev(i));
    }
    let anchor: LogHead = s.head().unwrap().to_string().parse().unwrap();
    assert_eq!(anchor.seq, 5);
    s.record(&ev(6));
    verify_log_anchored(&p, None, Some(&anchor)).unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Tail truncation back past the anchor: the chain itself is fine, the anchor is not.
    std::fs::write(&p, format!("{}\n", lines[..4].join("\n"))).unwrap();
    verify_log(&p, None).unwrap();
    assert!(matches!(
        verify_log_anchored(&p, None, Some(&anchor)),
        Err(VerifyError::Broken(BadRecord {
            problem: Problem::Truncated {
                anchor_seq: 5,
                records: 4
            },
            ..
        }))
    ));
    // Unkeyed full rewrite: caught at the anchored record.
    let other = LogHead {
        seq: 5,
        hash: "ab".repeat(32),
    };
    std::fs::write(&p, &text).unwrap();
    assert!(matches!(
        verify_log_anchored(&p, None, Some(&other)),
        Err(VerifyError::Broken(BadRecord {
            line: 6,
            problem: Problem::AnchorMismatch { seq: 5 },
            ..
        }))
    ));
    assert!("5".parse::<LogHead>().is_err());
    assert!("x:00".parse::<LogHead>().is_err());
    let _ = std::fs::remove_file(&p);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any events (arbitrary Unicode, control characters, quotes) round-trip through the
    /// file and verify; then changing any single octet of the file is detected.
    #[test]
    fn any_single_octet_change_is_detected(
        msgs in proptest::collection::vec(("\\PC{0,40}", proptest::option::of("[ -~\u{0}-\u{1f}]{0,12}")), 1..6),
        keyed in proptest::bool::ANY,
        pos in proptest::prelude::any::<proptest::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let p = tmp(&format!("prop-{}", std::thread::current().name().unwrap_or("t").replace(':', "_")));
        let k = keyed.then(key);
        let s = ChainedLogSink::open(&p, k.clone(), FsyncPolicy::Never).unwrap();
        for (i, (m, a)) in msgs.iter().enumerate() {
            let mut e = ev(i as u32);
            e.message = m.clone();
            e.association = a.clone();
            s.append(&e).unwrap();
        }
        let text = std::fs::read(&p).unwrap();
        let rep = verify_log(&p, k.as_ref()).unwrap();
        proptest::prop_assert_eq!(rep.records, msgs.len() as u64);
        let lines: Vec<LogRecord> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        for (r, (m, a)) in lines.iter().zip(&msgs) {
            proptest::prop_assert_eq!(&r.message, m);
            proptest::prop_assert_eq!(&r.association, a);
        }
        let mut bad = text.clone();
        let i = pos.index(bad.len());
        bad[i] ^= xor;
        std::fs::write(&p, &bad).unwrap();
        let r = verify_log(&p, k.as_ref());
        let _ = std::fs::remove_file(&p);
        proptest::prop_assert!(
            matches!(r, Err(VerifyError::Broken(_))),
            "octet {} ^ {:#x} not detected: {:?}", i, xor, r
        );
    }
}

#[test]
fn empty_log_verifies() {
    let rep = verify_reader(&b""[..], None, None).unwrap();
    assert_eq!(rep.records, 0);
    assert_eq!(rep.head, None);
}
