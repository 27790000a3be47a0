//! The newcomer path (issue "The newcomer path", item 1): certificates straight from
//! `secmms cert issue` into `secmms server` / `secmms client` flags, no TOML, in compatibility and
//! native mode. The local AP-title / AE-qualifier come from each side's application certificate
//! (Annex G.6.2); `--peer-ap-title` / `--peer-ae-qualifier` make the client check the server's
//! binding, and without them the client warns (PEER_TITLE_UNCHECKED). Mismatches say which value
//! to change.

mod common;
use common::*;

use std::path::PathBuf;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Dir {
    fn p(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
}

fn run_ok(args: &[&str]) -> String {
    let out = secmms().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "secmms {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exactly the README's commands: a CA, the server's certificate for 1.1.1.999.1 / 12 and the
/// client's for 1.1.1.999.2 / 13.
fn newcomer_pki(name: &str) -> Dir {
    newcomer_pki_form(name, "utf8")
}

/// [`newcomer_pki`] with the application certificates' subject in `form` (`--subject-form`).
fn newcomer_pki_form(name: &str, form: &str) -> Dir {
    let dir =
        Dir(std::env::temp_dir().join(format!("secmms-newcomer-{name}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    run_ok(&["cert", "ca", "--out", &dir.p("ca")]);
    run_ok(&[
        "cert",
        "issue",
        "--ca",
        &dir.p("ca"),
        "--ap-title",
        "1.1.1.999.1",
        "--ae-qualifier",
        "12",
        "--subject-form",
        form,
        "--out",
        &dir.p("server"),
    ]);
    run_ok(&[
        "cert",
        "issue",
        "--ca",
        &dir.p("ca"),
        "--ap-title",
        "1.1.1.999.2",
        "--ae-qualifier",
        "13",
        "--subject-form",
        form,
        "--out",
        &dir.p("client"),
    ]);
    dir
}

fn side(dir: &Dir, who: &str, mode: &str) -> Vec<String> {
    vec![
        "--mode".into(),
        mode.into(),
        "--app-cert".into(),
        dir.p(&format!("{who}/cert.pem")),
        "--app-key".into(),
        dir.p(&format!("{who}/key.pem")),
        "--ca".into(),
        dir.p("ca/ca.pem"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn newcomer_path(mode: &str) {
    newcomer_path_form(mode, "utf8");
}

fn newcomer_path_form(mode: &str, form: &str) {
    let dir = newcomer_pki_form(&format!("{mode}-{form}"), form);
    let (_server, addr) = start_our_server(&strs(&side(&dir, "server", mode)));

    // Without the server's titles: works, with a warning that they were not checked.
    let mut args = side(&dir, "client", mode);
    args.push("identify".into());
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode}: {err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("vendor"));
    assert!(err.contains("PEER_TITLE_UNCHECKED"), "{mode}: {err}");
    // The event names the association by address and port.
    let warn = err
        .lines()
        .find(|l| l.contains("PEER_TITLE_UNCHECKED"))
        .unwrap();
    assert!(
        warn.contains(&addr),
        "{mode}: association not named by {addr}: {warn}"
    );

    // With the server's titles: checked, no warning.
    let mut args = side(&dir, "client", mode);
    args.extend(
        [
            "--peer-ap-title",
            "1.1.1.999.1",
            "--peer-ae-qualifier",
            "12",
            "identify",
        ]
        .map(String::from),
    );
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode}: {err}");
    assert!(!err.contains("PEER_TITLE_UNCHECKED"), "{mode}: {err}");

    // Expecting another server: refused, and the message says what to change.
    let mut args = side(&dir, "client", mode);
    args.extend(
        [
            "--peer-ap-title",
            "1.1.1.999.7",
            "--peer-ae-qualifier",
            "12",
            "identify",
        ]
        .map(String::from),
    );
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{mode}: a wrong --peer-ap-title was accepted"
    );
    assert!(err.contains("1.1.1.999.7"), "{mode}: {err}");

    // A local title that contradicts our certificate: refused before connecting, naming the
    // flag and the value the certificate binds.
    let mut args = side(&dir, "client", mode);
    args.extend(
        [
            "--ap-title",
            "1.1.1.999",
            "--ae-qualifier",
            "12",
            "identify",
        ]
        .map(String::from),
    );
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--ap-title") && err.contains("1.1.1.999.2 / 13"),
        "{mode}: {err}"
    );
}

/// Annex G.6.2's own subject form (2.5.4.106 as an OBJECT IDENTIFIER), which OpenSSL 3.0 cannot
/// load: `secmms cert issue --subject-form oid` certificates work in both modes, on both sides.
#[test]
fn oid_subject_form_certificates_work_in_compat_and_native_mode() {
    let dir = newcomer_pki_form("oid-check", "oid");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-in", &dir.p("server/cert.pem")])
        .output();
    if let Ok(out) = out {
        assert!(
            !out.status.success(),
            "this OpenSSL loads the OID form; the test no longer shows the fallback"
        );
    }
    newcomer_path_form("compat", "oid");
    newcomer_path_form("native", "oid");
}

#[test]
fn newcomer_path_compat_mode() {
    newcomer_path("compat");
}

#[test]
fn newcomer_path_native_mode() {
    newcomer_path("native");
}

/// The newcomer path over TLS: a TLS certificate from `secmms cert issue --tls --ip 127.0.0.1`,
/// the client checks that it names the `--connect` address; key logging happens only with
/// `--tls-keylog` (mode 0600, warning event), never because SSLKEYLOGFILE is set.
#[test]
fn newcomer_path_over_tls_with_explicit_key_log_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = newcomer_pki("tls");
    for who in ["server", "client"] {
        run_ok(&[
            "cert",
            "issue",
            "--ca",
            &dir.p("ca"),
            "--tls",
            "--ip",
            "127.0.0.1",
            "--out",
            &dir.p(&format!("{who}-tls")),
        ]);
    }
    let tls = |who: &str| -> Vec<String> {
        vec![
            "--tls".into(),
            "--cert".into(),
            dir.p(&format!("{who}-tls/tls-cert.pem")),
            "--key".into(),
            dir.p(&format!("{who}-tls/tls-key.pem")),
        ]
    };
    let mut server = tls("server");
    server.extend(side(&dir, "server", "native"));
    let (_server, addr) = start_our_server(&strs(&server));

    let env_log = dir.p("env-keys.log");
    let mut client = tls("client");
    client.extend(side(&dir, "client", "native"));
    let mut identify = client.clone();
    identify.push("identify".into());
    let out = secmms()
        .args(["client", "--connect", &addr])
        .args(&identify)
        .env("SSLKEYLOGFILE", &env_log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::path::Path::new(&env_log).exists(),
        "SSLKEYLOGFILE must be ignored"
    );

    let log = dir.p("keys.log");
    let mut logged = client.clone();
    logged.extend(["--tls-keylog".into(), log.clone(), "identify".into()]);
    let out = our_client(&addr, &strs(&logged));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("TLS_KEYLOG_ACTIVE"), "{err}");
    let meta = std::fs::metadata(&log).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&log).unwrap().contains("SECRET"));

    // The certificate names 127.0.0.1, not "localhost": connecting by that name is refused
    // with the reason, unless --server-name says what to expect.
    let port = addr.rsplit(':').next().unwrap();
    let by_name = format!("localhost:{port}");
    let out = our_client(&by_name, &strs(&identify));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("TLS_SERVER_IDENTITY_MISMATCH"), "{err}");
    let mut named = client.clone();
    named.extend([
        "--server-name".into(),
        "127.0.0.1".into(),
        "identify".into(),
    ]);
    let out = our_client(&by_name, &strs(&named));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Native-mode policy from the command line (§13.3.1.5): a server started with
/// `--require-encryption` refuses a client that offers `--encrypt none`, and the client prints
/// the `encryption-required` diagnostic of the HandshakeSecReject; an encrypting client passes.
/// A client cannot require encryption and offer none.
#[test]
fn require_encryption_is_enforced_and_explained() {
    let dir = newcomer_pki("require-encryption");
    let mut server = side(&dir, "server", "native");
    server.push("--require-encryption".into());
    let (_server, addr) = start_our_server(&strs(&server));

    let mut args = side(&dir, "client", "native");
    args.extend(["--encrypt", "none", "identify"].map(String::from));
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unencrypted offer was accepted");
    assert!(
        err.contains("HandshakeSecReject") && err.contains("encryption-required"),
        "{err}"
    );
    assert!(err.contains("SEC_REJECT_ENCR_REQUIRED_RCVD"), "{err}");

    let mut args = side(&dir, "client", "native");
    args.extend(["--encrypt", "cbc", "identify"].map(String::from));
    let out = our_client(&addr, &strs(&args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut args = side(&dir, "client", "native");
    args.extend(["--encrypt", "none", "--require-encryption", "identify"].map(String::from));
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--encrypt none"), "{err}");
}

/// Attribute certificates (§13.3.1.6) from the command line: `secmms cert issue-ac` binds roles
/// to an application certificate; a native server that trusts the attribute authority accepts
/// the client presenting it, and refuses with `invalid-attribute-certificate` one made for
/// another holder, or any when it trusts no authority. The other direction too: the client
/// checks the attCert of the server's HandshakeAcc.
#[test]
fn attribute_certificates_are_validated_both_ways() {
    let dir = newcomer_pki("attribute-cert");
    run_ok(&[
        "cert",
        "ca",
        "--name",
        "role authority",
        "--out",
        &dir.p("aa"),
    ]);
    for (holder, out) in [
        ("client/cert.pem", "client/roles.pem"),
        ("server/cert.pem", "server/roles.pem"),
        // Issued for the server's certificate, presented by the client.
        ("server/cert.pem", "client/stolen.pem"),
    ] {
        let o = secmms()
            .args(["cert", "issue-ac", "--aa", &dir.p("aa"), "--holder"])
            .args([
                &dir.p(holder),
                "--role",
                "2",
                "--role",
                "5",
                "--out",
                &dir.p(out),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("roles 2, 5"));
        let pem = std::fs::read_to_string(dir.0.join(out)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ATTRIBUTE CERTIFICATE-----"),
            "{pem}"
        );
    }
    let aa = dir.p("aa/ca.pem");

    // Server trusting the authority.
    let mut server = side(&dir, "server", "native");
    server.extend(["--attribute-authority".into(), aa.clone()]);
    let (_server, addr) = start_our_server(&strs(&server));
    let client = |extra: &[&str]| {
        let mut args = side(&dir, "client", "native");
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("identify".into());
        our_client(&addr, &strs(&args))
    };
    let out = client(&["--attribute-cert", &dir.p("client/roles.pem")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No attCert at all is fine: it is optional.
    let out = client(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = client(&["--attribute-cert", &dir.p("client/stolen.pem")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "another holder's attribute certificate was accepted"
    );
    assert!(err.contains("invalid-attribute-certificate"), "{err}");

    // A server that trusts no attribute authority refuses every attCert.
    let (_bare, bare_addr) = start_our_server(&strs(&side(&dir, "server", "native")));
    let mut args = side(&dir, "client", "native");
    args.extend(["--attribute-cert", &dir.p("client/roles.pem"), "identify"].map(String::from));
    let out = our_client(&bare_addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid-attribute-certificate"), "{err}");

    // The server presents its own; a client without the authority refuses the HandshakeAcc,
    // one with it goes through.
    let mut server = side(&dir, "server", "native");
    server.extend(["--attribute-cert".into(), dir.p("server/roles.pem")]);
    let (_presenting, p_addr) = start_our_server(&strs(&server));
    let mut args = side(&dir, "client", "native");
    args.push("identify".into());
    let out = our_client(&p_addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an unverifiable attCert was accepted"
    );
    assert!(err.contains("attribute certificate"), "{err}");
    let mut args = side(&dir, "client", "native");
    args.extend(["--attribute-authority", &aa, "identify"].map(String::from));
    let out = our_client(&p_addr, &strs(&args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Compatibility mode has no attCert: the flag is refused with the reason.
    let mut args = side(&dir, "client", "compat");
    args.extend(["--attribute-cert", &dir.p("client/roles.pem"), "identify"].map(String::from));
    let out = our_client(&addr, &strs(&args));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("native"), "{err}");
}
