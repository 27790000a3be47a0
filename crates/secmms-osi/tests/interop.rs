//! Interoperability with real MMS stacks (open61850 and the `iec61850` PyPI package, driven by
//! `tests/interop/peers.py`): our initiator associates with their servers, reads a value and
//! concludes; their clients associate with our responder. TCP lives in this test only; the
//! library stays sans-IO. Skipped when the Python peers are missing, unless `CI=true`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secmms_osi::{Association, OsiConfig, OsiEvent};

const INIT_REQ: &str =
    "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18";
const INIT_RSP: &str =
    "a926800300fde881010582010583010aa416800101810305f100820c036e1c000000000000400110";
/// Read DEMOLD0 / GGIO1$MX$AnIn1$mag$f (the model in tests/interop/demo.cid).
const READ_MAG: &str = "a02e020102a429a127a0253023a021a11f1a0744454d4f4c44301a144747494f31244d5824416e496e31246d61672466";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn peers() -> Option<(PathBuf, PathBuf)> {
    let py = std::env::var_os("SECMMS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/peers-venv/bin/python"));
    let script = std::env::var_os("SECMMS_PEERS_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("tests/interop/peers.py"));
    let ok = Command::new(&py)
        .args(["-c", "import open61850, iec61850"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok && script.exists() {
        Some((py, script))
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Python peers missing in CI"
        );
        eprintln!("Python peers not installed: skipped");
        None
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Peer(Child);
impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(kind: &str, port: u16) -> Option<Peer> {
    let (py, script) = peers()?;
    let mut child = Command::new(py)
        .arg(script)
        .args(["server", kind, &port.to_string(), "60"])
        .arg(root().join("tests/interop/demo.cid"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    Some(Peer(child))
}

/// Pumps bytes between `a` and the socket until `stop` matches an event, the association closes,
/// or 10 s pass. Returns the events seen.
fn drive(
    a: &mut Association,
    s: &mut TcpStream,
    stop: impl Fn(&OsiEvent) -> bool,
) -> Vec<OsiEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some(out) = a.poll_transmit() {
            s.write_all(&out).unwrap();
        }
        while let Some(e) = a.poll_event() {
            let done = stop(&e);
            seen.push(e);
            if done {
                return seen;
            }
        }
        if a.is_closed() || Instant::now() > deadline {
            return seen;
        }
        match s.read(&mut buf) {
            Ok(0) => a.transport_closed(),
            Ok(n) => a.handle_input(&buf[..n]).unwrap(),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => a.transport_closed(),
        }
    }
}

fn client_against(kind: &str) {
    let port = free_port();
    let Some(_server) = start_server(kind, port) else {
        return;
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut a = Association::initiator(OsiConfig::default());
    a.connect(hex::decode(INIT_REQ).unwrap()).unwrap();
    let ev = drive(&mut a, &mut s, |e| !matches!(e, OsiEvent::Data { .. }));
    let Some(OsiEvent::AssociateConfirm { aare, user_data }) = ev.last() else {
        panic!("{kind}: {ev:?}")
    };
    assert_eq!(aare.result, 0);
    assert_eq!(user_data.as_ref().unwrap()[0], 0xA9, "initiate-ResponsePDU");
    // TPDU size: we proposed 2048; both servers grant it.
    assert_eq!(a.tpdu_size().octets(), 2048);

    a.send_data(&hex::decode(READ_MAG).unwrap()).unwrap();
    let ev = drive(&mut a, &mut s, |e| matches!(e, OsiEvent::Data { .. }));
    let Some(OsiEvent::Data { context_id: 3, pdu }) = ev.last() else {
        panic!("{kind}: {ev:?}")
    };
    assert_eq!(pdu[0], 0xA1, "confirmed-ResponsePDU");
    // A FLOAT32 (`87 05 08 …`, reference §7.5); the iec61850 server was set to 42.5.
    assert!(
        pdu.windows(3).any(|w| w == [0x87, 0x05, 0x08]),
        "{pdu:02x?}"
    );
    if kind == "iec61850" {
        assert!(
            pdu.ends_with(&[0x87, 0x05, 0x08, 0x42, 0x2A, 0x00, 0x00]),
            "{pdu:02x?}"
        );
    }

    a.send_data(&[0x8B, 0x00]).unwrap(); // conclude-Request
    let ev = drive(&mut a, &mut s, |e| matches!(e, OsiEvent::Data { .. }));
    assert!(
        matches!(ev.last(), Some(OsiEvent::Data { pdu, .. }) if pdu == &[0x8C, 0x00]),
        "{kind}: {ev:?}"
    );
    a.release(None).unwrap();
    let ev = drive(&mut a, &mut s, |e| matches!(e, OsiEvent::Closed));
    // The peers differ here (reference §9 item 10): we accept either outcome but must close.
    assert!(a.is_closed(), "{kind}: {ev:?}");
    eprintln!("{kind} release outcome: {ev:?}");
}

#[test]
fn our_client_with_open61850_server() {
    client_against("open61850");
}

#[test]
fn our_client_with_iec61850_server() {
    client_against("iec61850");
}

fn server_for(kind: &str) {
    let Some((py, script)) = peers() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _client = Peer(
        Command::new(py)
            .arg(script)
            .args(["client", kind, "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    listener.set_nonblocking(false).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    let mut a = Association::responder(OsiConfig::server_default());
    let ev = drive(&mut a, &mut s, |e| {
        matches!(e, OsiEvent::AssociateIndication { .. })
    });
    let Some(OsiEvent::AssociateIndication { aarq, user_data }) = ev.last() else {
        panic!("{kind}: {ev:?}")
    };
    assert_eq!(user_data.as_ref().unwrap()[0], 0xA8, "initiate-RequestPDU");
    assert!(aarq.calling_ap_title.is_some());
    a.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
    // The client goes on with its first MMS request: the association is up on its side.
    let ev = drive(&mut a, &mut s, |e| matches!(e, OsiEvent::Data { .. }));
    let Some(OsiEvent::Data { context_id, pdu }) = ev.last() else {
        panic!("{kind}: {ev:?}")
    };
    assert_eq!(*context_id, a.mms_context_id().unwrap());
    assert_eq!(pdu[0], 0xA0, "confirmed-RequestPDU");
    a.abort().unwrap();
    while let Some(out) = a.poll_transmit() {
        let _ = s.write_all(&out);
    }
}

#[test]
fn open61850_client_with_our_server() {
    server_for("open61850");
}

#[test]
fn iec61850_client_with_our_server() {
    server_for("iec61850");
}
