//! `secmms cert ca|issue|crl|check` end to end: every key type issues a certificate that
//! `cert check` passes and that `openssl x509 -text` / `openssl verify` read the same way; a CRL
//! revokes it for `openssl verify -crl_check`; a non-compliant certificate fails `check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("secmms-certcmd-{}-{name}", std::process::id()));
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

fn secmms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secmms"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn have_openssl() -> bool {
    if Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "openssl missing in CI"
    );
    eprintln!("openssl not installed: OpenSSL cross-checks skipped");
    false
}

fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn check_json(file: &Path) -> (i32, serde_json::Value) {
    let o = secmms(&["cert", "check", s(file), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    (o.status.code().unwrap(), v)
}

fn rules(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn every_key_type_issues_compliant_certificates_openssl_agrees() {
    let openssl_ok = have_openssl();
    for kt in ["rsa2048", "p256", "bp256"] {
        let d = Dir::new(kt);
        let ca = d.path("ca");
        let out = ok(&secmms(&["cert", "ca", "--out", s(&ca), "--key-type", kt]));
        assert!(!out.contains("PRIVATE KEY"));
        #[cfg(unix)]
        assert_eq!(mode(&ca.join("ca.key")), 0o600);
        let ee = d.path("ee");
        let out = ok(&secmms(&[
            "cert",
            "issue",
            "--ca",
            s(&ca),
            "--ap-title",
            "1.1.1.999.1",
            "--ae-qualifier",
            "12",
            "--key-type",
            kt,
            "--out",
            s(&ee),
            "--role",
            "255",
            "--crl-url",
            "http://ca.example/ca.crl",
        ]));
        assert!(!out.contains("PRIVATE KEY"), "{out}");
        #[cfg(unix)]
        assert_eq!(mode(&ee.join("key.pem")), 0o600);
        let cert = ee.join("cert.pem");
        // cert check: exit 0, the identity and only the tolerated-form warning.
        let text = secmms(&["cert", "check", s(&cert)]);
        assert_eq!(
            text.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&text.stdout)
        );
        let (code, v) = check_json(&cert);
        assert_eq!(code, 0);
        assert_eq!(v["compliant"], true);
        assert_eq!(v["identity"]["objectIdentifier"], "1.1.1.999.1.12");
        assert_eq!(rules(&v), vec!["subject-identity-not-oid"]);
        let serial = v["serial"].as_str().unwrap().to_string();
        assert_eq!(serial.len(), 32);
        if openssl_ok {
            let (xok, x) = openssl(&["x509", "-noout", "-text", "-in", s(&cert)]);
            assert!(xok, "{x}");
            assert!(x.contains("Version: 3 (0x2)"), "{x}");
            assert!(x.contains("2.5.4.106 = 1.1.1.999.1.12"), "{x}");
            assert!(x.contains("Digital Signature, Key Agreement"), "{x}");
            assert!(x.contains("URI:http://ca.example/ca.crl"), "{x}");
            assert!(x.contains("1.0.62351.8.1"), "{x}");
            let want_alg = if kt == "rsa2048" {
                "sha256WithRSAEncryption"
            } else {
                "ecdsa-with-SHA256"
            };
            assert!(x.contains(want_alg), "{x}");
            let want_key = match kt {
                "rsa2048" => "(2048 bit)",
                "p256" => "prime256v1",
                _ => "brainpoolP256r1",
            };
            assert!(x.contains(want_key), "{x}");
            let (_, ser) = openssl(&["x509", "-noout", "-serial", "-in", s(&cert)]);
            assert_eq!(ser.trim().to_lowercase(), format!("serial={serial}"));
            let (vok, vo) = openssl(&["verify", "-CAfile", s(&ca.join("ca.pem")), s(&cert)]);
            assert!(vok, "{vo}");
            // An empty CRL keeps it valid; a CRL revoking it makes verification fail.
            let crl = d.path("ca.crl");
            ok(&secmms(&["cert", "crl", "--ca", s(&ca), "--out", s(&crl)]));
            let verify_crl = || {
                openssl(&[
                    "verify",
                    "-crl_check",
                    "-CAfile",
                    s(&ca.join("ca.pem")),
                    "-CRLfile",
                    s(&crl),
                    s(&cert),
                ])
            };
            let (vok, vo) = verify_crl();
            assert!(vok, "{vo}");
            ok(&secmms(&[
                "cert",
                "crl",
                "--ca",
                s(&ca),
                "--revoke",
                s(&cert),
                "--out",
                s(&crl),
            ]));
            let (vok, vo) = verify_crl();
            assert!(!vok && vo.contains("certificate revoked"), "{vo}");
            let (cok, ct) = openssl(&["crl", "-noout", "-text", "-in", s(&crl)]);
            assert!(cok, "{ct}");
            assert!(ct.contains(&serial.to_uppercase()), "{ct}");
            assert!(
                ct.contains("X509v3 CRL Number: \n                2"),
                "{ct}"
            );
            // Revoking again keeps one entry; the number goes on.
            ok(&secmms(&[
                "cert",
                "crl",
                "--ca",
                s(&ca),
                "--revoke",
                s(&cert),
                "--out",
                s(&crl),
            ]));
            let index = std::fs::read_to_string(ca.join("revoked.txt")).unwrap();
            assert_eq!(index.lines().count(), 1);
            assert_eq!(
                std::fs::read_to_string(ca.join("crlnumber"))
                    .unwrap()
                    .trim(),
                "3"
            );
        }
    }
}

#[test]
fn oid_subject_form_and_jid() {
    let d = Dir::new("forms");
    let ca = d.path("ca");
    ok(&secmms(&["cert", "ca", "--out", s(&ca)]));
    let ee = d.path("oid");
    let out = ok(&secmms(&[
        "cert",
        "issue",
        "--ca",
        s(&ca),
        "--ap-title",
        "1.3.9999.1",
        "--ae-qualifier",
        "7",
        "--key-type",
        "p256",
        "--out",
        s(&ee),
        "--subject-form",
        "oid",
    ]));
    assert!(out.contains("OpenSSL-based tools cannot load"), "{out}");
    let (code, v) = check_json(&ee.join("cert.pem"));
    assert_eq!(code, 0);
    assert_eq!(v["identity"]["objectIdentifier"], "1.3.9999.1.7");
    assert!(rules(&v).is_empty(), "{v}");
    if have_openssl() {
        // The documented limitation: OpenSSL 3.0 cannot decode an OID-valued 2.5.4.106.
        let (xok, _) = openssl(&["x509", "-noout", "-text", "-in", s(&ee.join("cert.pem"))]);
        assert!(!xok);
    }
    let jid = d.path("jid");
    ok(&secmms(&[
        "cert",
        "issue",
        "--ca",
        s(&ca),
        "--jid",
        "ied1@example.org",
        "--key-type",
        "p256",
        "--out",
        s(&jid),
    ]));
    let (code, v) = check_json(&jid.join("cert.pem"));
    assert_eq!(code, 0);
    assert_eq!(v["identity"]["jid"], "ied1@example.org");
    assert!(rules(&v).is_empty(), "{v}");
    // Revoking a certificate of another CA is refused.
    let other = d.path("other");
    ok(&secmms(&["cert", "ca", "--out", s(&other)]));
    let o = secmms(&[
        "cert",
        "crl",
        "--ca",
        s(&other),
        "--revoke",
        s(&jid.join("cert.pem")),
        "--out",
        s(&d.path("x.crl")),
    ]);
    assert!(!o.status.success());
    // Our own parser revokes the OID-form certificate (OpenSSL could not read it).
    let out = ok(&secmms(&[
        "cert",
        "crl",
        "--ca",
        s(&ca),
        "--revoke",
        s(&ee.join("cert.pem")),
        "--out",
        s(&d.path("oid.crl")),
    ]));
    assert!(out.contains("1 revoked"), "{out}");
    // An application certificate needs a binding.
    let o = secmms(&[
        "cert",
        "issue",
        "--ca",
        s(&ca),
        "--key-type",
        "p256",
        "--out",
        s(&d.path("none")),
    ]);
    assert!(!o.status.success());
    // The CA refuses to be overwritten without --force.
    assert!(!secmms(&["cert", "ca", "--out", s(&ca)]).status.success());
}

#[test]
fn tls_certificate_is_separate_and_not_an_application_certificate() {
    let d = Dir::new("tls");
    let ca = d.path("ca");
    ok(&secmms(&[
        "cert",
        "ca",
        "--out",
        s(&ca),
        "--key-type",
        "rsa2048",
    ]));
    let out = d.path("out");
    ok(&secmms(&[
        "cert",
        "issue",
        "--ca",
        s(&ca),
        "--tls",
        "--dns",
        "ied1.example",
        "--ip",
        "127.0.0.1",
        "--key-type",
        "rsa2048",
        "--out",
        s(&out),
    ]));
    let cert = out.join("tls-cert.pem");
    #[cfg(unix)]
    assert_eq!(mode(&out.join("tls-key.pem")), 0o600);
    let (code, v) = check_json(&cert);
    assert_eq!(code, 1);
    let r = rules(&v);
    assert!(r.contains(&"tls-purpose".to_string()), "{r:?}");
    assert!(r.contains(&"subject-identity-missing".to_string()), "{r:?}");
    if have_openssl() {
        let (xok, x) = openssl(&["x509", "-noout", "-text", "-in", s(&cert)]);
        assert!(xok, "{x}");
        assert!(
            x.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
            "{x}"
        );
        assert!(x.contains("DNS:ied1.example, IP Address:127.0.0.1"), "{x}");
        let (vok, vo) = openssl(&[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            s(&ca.join("ca.pem")),
            s(&cert),
        ]);
        assert!(vok, "{vo}");
    }
    // --tls with an application identity is refused (Annex G.2).
    let o = secmms(&[
        "cert",
        "issue",
        "--ca",
        s(&ca),
        "--tls",
        "--jid",
        "a@b",
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
}

#[test]
fn check_flags_a_ca_certificate_and_unreadable_files() {
    let d = Dir::new("check");
    let ca = d.path("ca");
    ok(&secmms(&["cert", "ca", "--out", s(&ca)]));
    let (code, v) = check_json(&ca.join("ca.pem"));
    assert_eq!(code, 1);
    assert_eq!(v["compliant"], false);
    let r = rules(&v);
    for want in [
        "digital-signature-missing",
        "subject-identity-missing",
        "end-entity-is-ca",
    ] {
        assert!(r.contains(&want.to_string()), "{want} missing in {r:?}");
    }
    for f in v["findings"].as_array().unwrap() {
        assert!(f["explanation"].as_str().unwrap().len() > 40);
        assert!(f["clause"].as_str().unwrap().starts_with('G') || f["clause"] == "Annex G scope");
    }
    // Plain-words output names the rule and explains it.
    let o = secmms(&["cert", "check", s(&ca.join("ca.pem"))]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("does NOT comply") && t.contains("end-entity-is-ca"),
        "{t}"
    );
    // Garbage is malformed (1); a missing file cannot be read (2).
    std::fs::write(d.path("junk.der"), [0x30, 0x05, 0x01]).unwrap();
    let (code, v) = check_json(&d.path("junk.der"));
    assert_eq!(code, 1);
    assert_eq!(rules(&v), vec!["malformed"]);
    let o = secmms(&["cert", "check", s(&d.path("nope.pem"))]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_is_available_everywhere() {
    for sub in [
        &["cert"][..],
        &["cert", "ca"],
        &["cert", "issue"],
        &["cert", "crl"],
        &["cert", "check"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = ok(&secmms(&args));
        assert!(out.contains("Usage"), "{out}");
    }
    let out = ok(&secmms(&["cert", "issue", "--help"]));
    assert!(
        out.contains("--subject-form") && out.contains("OpenSSL 3.0 cannot load"),
        "{out}"
    );
}
