//! Unit tests of the TLS profile: suite tables, conformance, configuration checks, severities.

use super::*;

#[test]
fn tables_have_correct_code_points() {
    let n = |name: &str| find_suite(name).map(|s| s.iana);
    assert_eq!(n("TLS_RSA_WITH_AES_128_CBC_SHA256"), Some(0x003C));
    assert_eq!(n("TLS_DH_RSA_WITH_AES_128_GCM_SHA256"), Some(0x00A0));
    assert_eq!(n("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"), Some(0x009E));
    assert_eq!(n("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"), Some(0xC02B));
    assert_eq!(n("TLS_DH_RSA_WITH_AES_256_GCM_SHA384"), Some(0x00A1));
    assert_eq!(n("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), Some(0xC02F));
    assert_eq!(n("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), Some(0xC030));
    assert_eq!(n("TLS_DH_DSS_WITH_AES_256_CBC_SHA"), Some(0x0036));
    assert_eq!(n("0x009e"), Some(0x009E));
    let mandatory = NATIVE_SUITES
        .iter()
        .filter(|s| s.requirement == Requirement::Mandatory)
        .count();
    assert_eq!(mandatory, 4);
    // The OpenSSL names are checked against the code points in tests/tls_openssl.rs,
    // where each suite is negotiated and its protocol id compared.
}

#[test]
fn conformance_marks_static_dh_unsupported() {
    let rows = conformance_statement();
    for r in &rows {
        if r.suite.name.contains("_DH_RSA_") || r.suite.name.contains("_DH_DSS_") {
            assert!(!r.supported, "{}", r.suite.name);
        }
    }
    let native_supported: Vec<u16> = rows
        .iter()
        .filter(|r| r.table == "native" && r.supported)
        .map(|r| r.suite.iana)
        .collect();
    for code in [0x003C, 0x009E, 0xC02B, 0xC02F, 0xC030] {
        assert!(native_supported.contains(&code), "0x{code:04X}");
    }
}

#[test]
fn static_dh_in_config_is_a_clear_error() {
    let cfg = TlsConfig {
        suites: vec!["TLS_DH_RSA_WITH_AES_128_GCM_SHA256".into()],
        ..Default::default()
    };
    let e = cfg.validate().unwrap_err();
    assert!(matches!(e, TlsError::UnsupportedSuite { iana: 0x00A0, .. }));
    assert!(e.to_string().contains("static DH"), "{e}");
}

#[test]
fn forbidden_and_unknown_suites_are_refused() {
    for bad in [
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_NULL_SHA256",
        "TLS_DH_anon_WITH_AES_128_CBC_SHA",
        "AES256-SHA",
    ] {
        let cfg = TlsConfig {
            suites: vec![bad.into()],
            ..Default::default()
        };
        assert!(cfg.validate().is_err(), "{bad}");
    }
    let cfg = TlsConfig {
        suites: vec!["TLS_RSA_WITH_3DES_EDE_CBC_SHA".into()],
        ..Default::default()
    };
    assert!(cfg.validate().is_err(), "compat suite in native mode");
}

#[test]
fn default_list_has_no_weak_suites() {
    let list = TlsConfig::default().cipher_list().unwrap();
    for m in ["RC4", "NULL", "anon", "EXP", "DES"] {
        assert!(!list.contains(m), "{list}");
    }
    assert!(list.starts_with("AES128-SHA256:DHE-RSA-AES128-GCM-SHA256"));
}

#[test]
fn intervals_are_checked() {
    let base = TlsConfig::default();
    assert!(base.validate().is_ok());
    let c = TlsConfig {
        resumption_lifetime_secs: base.renegotiation_interval_secs,
        ..base.clone()
    };
    assert!(c.validate().is_err());
    let c = TlsConfig {
        renegotiation_interval_secs: 25 * 3600,
        ..base.clone()
    };
    assert!(c.validate().is_err());
    let c = TlsConfig {
        enabled: true,
        ..base.clone()
    };
    assert!(c.validate().is_err(), "cert/key/ca required");
    let c = TlsConfig {
        allow_plain: false,
        ..base.clone()
    };
    assert!(c.validate().is_err(), "plain refused");
    assert_eq!(DEFAULT_RENEGOTIATION_INTERVAL_SECS, 43_200);
    assert_eq!(DEFAULT_RESUMPTION_LIFETIME_SECS, 21_600);
    assert_eq!(MAX_CERT_SIZE, 8192);
    assert_eq!(TLS_PORT, 3782);
}

proptest::proptest! {
    /// 62351-3 §7: 0 < resumption < renegotiation interval ≤ 24 h (and ≥ 1 min, §6.2).
    #[test]
    fn interval_rule_holds(interval in 0u64..200_000, resumption in 0u64..200_000) {
        let c = TlsConfig {
            renegotiation_interval_secs: interval,
            resumption_lifetime_secs: resumption,
            ..TlsConfig::default()
        };
        let want = (MIN_RENEGOTIATION_INTERVAL_SECS..=MAX_RENEGOTIATION_INTERVAL_SECS)
            .contains(&interval)
            && resumption > 0
            && resumption < interval;
        proptest::prop_assert_eq!(c.validate().is_ok(), want);
    }

    /// Any list of suite names either validates to a non-empty list without forbidden
    /// suites, or is refused; never a panic.
    #[test]
    fn suite_lists_never_admit_weak_suites(names in proptest::collection::vec(
        proptest::sample::select(vec![
            "AES128-SHA256", "TLS_DH_RSA_WITH_AES_128_GCM_SHA256", "RC4-SHA", "NULL-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256", "0xC02B", "0x0005", "ADH-AES128-SHA",
            "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "bogus",
        ]), 0..5)) {
        let c = TlsConfig {
            suites: names.iter().map(|s| s.to_string()).collect(),
            ..TlsConfig::default()
        };
        if let Ok(list) = c.cipher_list() {
            for bad in ["RC4", "NULL", "ADH", "DES"] {
                proptest::prop_assert!(!list.contains(bad), "{}", list);
            }
            proptest::prop_assert!(!list.is_empty());
        }
    }
}

#[test]
fn severities_follow_clause_6() {
    assert_eq!(TlsFinding::CertExpired.severity(), Severity::Warning);
    assert_eq!(TlsFinding::CertRevoked.severity(), Severity::Incident);
    assert_eq!(TlsFinding::CrlUnavailable.severity(), Severity::Warning);
    assert_eq!(TlsFinding::Disabled.id().1, "TLS_DISABLED");
}
