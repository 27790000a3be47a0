//! The embedding examples run as a vendor would run them (issue 15 item 8): `embed_server`
//! (TLS + native mode, a live value, reports on change) and `embed_client` (browse, read,
//! write, receive that report), with certificates from the demo PKI. `cargo test` builds the
//! examples next to this test's binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use secmms_tools::demo::DemoPki;

/// The example binary `name`, built by `cargo test` into `target/<profile>/examples`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo test` without target filters, or `cargo build --examples`",
        p.display()
    );
    p
}

/// Kills the child when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn embed_server_and_embed_client_over_tls_and_native_mode() {
    let parent = std::env::temp_dir().join(format!("secmms-examples-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    let pki = DemoPki::create(&parent).unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let mut server = Running(
        Command::new(example("embed_server"))
            .args(["--listen", "127.0.0.1:0", "--ca", &s(&pki.ca)])
            .args([
                "--tls-cert",
                &s(&pki.server_tls.0),
                "--tls-key",
                &s(&pki.server_tls.1),
            ])
            .args([
                "--app-cert",
                &s(&pki.server_app.0),
                "--app-key",
                &s(&pki.server_app.1),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("embed_server starts"),
    );
    // The server's output, line by line, read on a thread so every wait has a bound.
    let (tx, lines) = mpsc::channel::<String>();
    let out = server.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("server ready");
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();

    let client = Command::new(example("embed_client"))
        .args(["--server", &addr, "--ca", &s(&pki.ca)])
        .args([
            "--tls-cert",
            &s(&pki.client_tls.0),
            "--tls-key",
            &s(&pki.client_tls.1),
        ])
        .args([
            "--app-cert",
            &s(&pki.client_app.0),
            "--app-key",
            &s(&pki.client_app.1),
        ])
        .output()
        .expect("embed_client runs");
    let text = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "embed_client failed: {text}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    for expected in [
        "associated: E2E AEAD Aes128Gcm",
        "domain DEMOLD0:",
        "read DEMOLD0/GGIO1.AnIn1.mag.f[MX] = FloatingPoint",
        "wrote DEMOLD0/LLN0.NamPlt.vendor[DC]",
        "report: [Success(FloatingPoint",
        "released",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    // The server's program saw the client's write through its model observer.
    let wrote = "client wrote DEMOLD0/LLN0$DC$NamPlt$vendor";
    let mut seen = Vec::new();
    while let Ok(l) = lines.recv_timeout(Duration::from_secs(10)) {
        if l.contains(wrote) {
            return;
        }
        seen.push(l);
    }
    panic!("the server did not report the write: {seen:?}");
}
