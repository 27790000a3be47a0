//! TLS decryption with an NSS key log: a TLS connection made here by OpenSSL in memory, carrying
//! RFC 1006 / MMS, written as a capture together with the key log OpenSSL wrote. TLS 1.3 with both
//! suites (AES-128-GCM-SHA256 and AES-256-GCM-SHA384); TLS 1.2 with AES-GCM (SHA-256 and SHA-384
//! PRF) and AES-CBC with HMAC-SHA1, -SHA256 and -SHA384, each CBC suite with encrypt-then-MAC
//! (OpenSSL's default) and without (MAC-then-encrypt).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Cursor, Read, Write};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use openssl::ssl::{
    ErrorCode, SslAcceptor, SslConnector, SslMethod, SslOptions, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;
use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::{Item, PduRecord};
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;
use secmms_decode::tls::KeyLog;
use secmms_pki::crypto::{Curve, OsRandom, SigningKey};
use secmms_pki::tooling::{create_ca, issue_tls, Ca, TlsRequest, Validity};

type Log = Rc<RefCell<Vec<(bool, Vec<u8>)>>>;

struct Wire {
    inbox: Rc<RefCell<VecDeque<u8>>>,
    outbox: Rc<RefCell<VecDeque<u8>>>,
    log: Log,
    to_server: bool,
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut q = self.inbox.borrow_mut();
        if q.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(q.len());
        for b in buf.iter_mut().take(n) {
            *b = q.pop_front().unwrap();
        }
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.outbox.borrow_mut().extend(buf);
        self.log.borrow_mut().push((self.to_server, buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn tpkt_dt(session: &[u8]) -> Vec<u8> {
    let len = session.len() + 7;
    let mut v = vec![3, 0, (len >> 8) as u8, len as u8, 2, 0xf0, 0x80];
    v.extend_from_slice(session);
    v
}

/// Session GT+DT, fully-encoded-data on context 3, then the MMS PDU.
fn mms_tpkt(mms: &[u8]) -> Vec<u8> {
    let mut s = vec![1, 0, 1, 0];
    s.extend(secmms_osi::presentation::UserData::single(3, mms.to_vec()).encode());
    tpkt_dt(&s)
}

const READ: &str = "a02e020102a429a127a0253023a021a11f1a0744454d4f4c44301a144747494f31244d5824416e496e31246d61672466";
const READ_RSP: &str = "a10a020102a405a10383010 0";

/// `SSL_OP_NO_ENCRYPT_THEN_MAC` (OpenSSL 3 ssl.h: bit 19), which the `openssl` crate does not name.
const NO_ENCRYPT_THEN_MAC: SslOptions = SslOptions::from_bits_retain(1 << 19);

/// What the connection negotiates.
#[derive(Clone, Copy)]
enum Version<'a> {
    /// TLS 1.3 with this suite.
    Tls13(&'a str),
    /// TLS 1.2 with this OpenSSL cipher list; `etm`: encrypt-then-MAC allowed (CBC suites).
    Tls12 { ciphers: &'a str, etm: bool },
}

/// Runs a TLS 1.3 connection with `suite`; returns (capture, key log).
fn tls_capture(suite: &str) -> (Vec<u8>, String) {
    tls_capture_with(Version::Tls13(suite))
}

/// Runs a TLS connection as `version` says; returns (capture, key log).
fn tls_capture_with(version: Version) -> (Vec<u8>, String) {
    // A CA and a TLS leaf under it (keyUsage digitalSignature: OpenSSL offers no ECDSA suite
    // of TLS 1.2 with a certificate that may only sign certificates).
    let validity = Validity::days_from(1_700_000_000, 3650);
    let ca_key = SigningKey::generate_ec(Curve::P256).unwrap();
    let ca = Ca {
        cert_der: create_ca("tls test CA", &ca_key, validity, &mut OsRandom).unwrap(),
        key: ca_key,
    };
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let request = TlsRequest {
        common_name: "tls test".into(),
        dns: Vec::new(),
        ips: Vec::new(),
        crl_url: None,
        ocsp_url: None,
        validity,
    };
    let cert = issue_tls(&request, key.pkey(), &ca, &mut OsRandom).unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut cb = SslConnector::builder(SslMethod::tls_client()).unwrap();
    cb.set_verify(SslVerifyMode::NONE);
    match version {
        Version::Tls13(suite) => {
            cb.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
            cb.set_ciphersuites(suite).unwrap();
        }
        Version::Tls12 { ciphers, etm } => {
            cb.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
            cb.set_cipher_list(ciphers).unwrap();
            if !etm {
                cb.set_options(NO_ENCRYPT_THEN_MAC);
            }
        }
    }
    let l = lines.clone();
    cb.set_keylog_callback(move |_, line| l.lock().unwrap().push(line.to_string()));
    let connector = cb.build();
    let mut ab = match version {
        Version::Tls13(suite) => {
            let mut ab = SslAcceptor::mozilla_modern_v5(SslMethod::tls_server()).unwrap();
            ab.set_ciphersuites(suite).unwrap();
            ab
        }
        Version::Tls12 { ciphers, .. } => {
            let mut ab = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
            ab.set_cipher_list(ciphers).unwrap();
            ab
        }
    };
    ab.set_private_key(key.pkey()).unwrap();
    ab.set_certificate(&X509::from_der(&cert).unwrap()).unwrap();
    let acceptor = ab.build();

    let log: Log = Rc::default();
    let c2s: Rc<RefCell<VecDeque<u8>>> = Rc::default();
    let s2c: Rc<RefCell<VecDeque<u8>>> = Rc::default();
    let cw = Wire {
        inbox: s2c.clone(),
        outbox: c2s.clone(),
        log: log.clone(),
        to_server: true,
    };
    let sw = Wire {
        inbox: c2s,
        outbox: s2c,
        log: log.clone(),
        to_server: false,
    };
    let ssl = connector
        .configure()
        .unwrap()
        .verify_hostname(false)
        .use_server_name_indication(false)
        .into_ssl("x")
        .unwrap();
    let mut client = SslStream::new(ssl, cw).unwrap();
    let mut server =
        SslStream::new(openssl::ssl::Ssl::new(acceptor.context()).unwrap(), sw).unwrap();
    let (mut c_done, mut s_done) = (false, false);
    for _ in 0..20 {
        if !c_done {
            match client.connect() {
                Ok(()) => c_done = true,
                Err(e) if e.code() == ErrorCode::WANT_READ => {}
                Err(e) => panic!("client: {e}"),
            }
        }
        if !s_done {
            match server.accept() {
                Ok(()) => s_done = true,
                Err(e) if e.code() == ErrorCode::WANT_READ => {}
                Err(e) => panic!("server: {e}"),
            }
        }
        if c_done && s_done {
            break;
        }
    }
    assert!(c_done && s_done, "TLS handshake did not finish");
    let cr = hex::decode("0300001611e00000000100c0010ac2020001c1020001").unwrap();
    let cc = hex::decode("0300001611d00001000100c0010ac2020001c1020001").unwrap();
    client.ssl_write(&cr).unwrap();
    server.ssl_write(&cc).unwrap();
    client
        .ssl_write(&mms_tpkt(&hex::decode(READ).unwrap()))
        .unwrap();
    server
        .ssl_write(&mms_tpkt(&hex::decode(READ_RSP.replace(' ', "")).unwrap()))
        .unwrap();
    let mut sink = [0u8; 4096];
    let _ = client.ssl_read(&mut sink);
    let _ = server.ssl_read(&mut sink);

    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut flow = TcpFlow::new(
        (Ipv4Addr::new(10, 3, 0, 1), 53000),
        (Ipv4Addr::new(10, 3, 0, 2), 3782),
        1_750_000_000_000_000_000,
    );
    flow.handshake(&mut file).unwrap();
    for (to_server, chunk) in log.borrow().iter() {
        flow.send(&mut file, *to_server, chunk).unwrap();
    }
    let keylog = lines.lock().unwrap().join("\n");
    (file.bytes().to_vec(), keylog)
}

fn decode(file: Vec<u8>, keys: Option<&str>) -> Vec<Item> {
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    if let Some(k) = keys {
        d = d.with_tls_keylog(KeyLog::parse(k).unwrap());
    }
    let mut items = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
    }
    d.finish(&mut items);
    items
}

fn pdus(items: &[Item]) -> Vec<&PduRecord> {
    items
        .iter()
        .filter_map(|i| {
            if let Item::Pdu(p) = i {
                Some(&**p)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn tls13_aes128_and_aes256_decrypted() {
    for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"] {
        let (file, keys) = tls_capture(suite);
        assert!(keys.contains("CLIENT_TRAFFIC_SECRET_0"), "{keys}");
        let items = decode(file, Some(&keys));
        let problems: Vec<_> = items
            .iter()
            .filter(|i| i.has_problem())
            .map(Item::json)
            .collect();
        assert!(problems.is_empty(), "{suite}: {problems:#?}");
        let p = pdus(&items);
        let names: Vec<_> = p.iter().map(|r| r.pdu.as_str()).collect();
        assert_eq!(
            names,
            vec!["CR", "CC", "confirmed-RequestPDU", "confirmed-ResponsePDU"],
            "{suite}"
        );
        assert!(p.iter().all(|r| r.layers[0] == "tls"));
        assert_eq!(p[2].invoke_id, Some(2));
        assert_eq!(p[2].objects, vec!["DEMOLD0/GGIO1$MX$AnIn1$mag$f"]);
        assert_eq!(p[3].result.as_deref(), Some("success"));
    }
}

#[test]
fn without_key_log_the_stream_is_named_not_decoded() {
    let (file, _) = tls_capture("TLS_AES_128_GCM_SHA256");
    let items = decode(file, None);
    assert!(pdus(&items).is_empty());
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::Notice(n) if n.event == "tls" && !n.problem)));
}

#[test]
fn wrong_secret_is_a_problem() {
    let (file, keys) = tls_capture("TLS_AES_128_GCM_SHA256");
    // Change the last hex digit of every secret.
    let bad: String = keys
        .lines()
        .map(|l| {
            let mut s = l.to_string();
            let last = s.pop().unwrap();
            s.push(if last == '0' { '1' } else { '0' });
            s + "\n"
        })
        .collect();
    let items = decode(file, Some(&bad));
    assert!(pdus(&items).is_empty());
    assert!(items.iter().any(|i| matches!(i, Item::Notice(n) if n.event == "tls" && n.problem && n.detail.contains("authenticate"))));
}

#[test]
fn key_log_parsing() {
    let r = "ab".repeat(32);
    let k = KeyLog::parse(&format!(
        "# comment\n\nCLIENT_TRAFFIC_SECRET_0 {r} {}\nEXPORTER_SECRET {r} 00\n",
        "11".repeat(32)
    ))
    .unwrap();
    assert_eq!(k.len(), 1);
    assert!(KeyLog::parse("CLIENT_RANDOM zz 00").is_err());
    assert!(KeyLog::parse(&format!("CLIENT_RANDOM {r}")).is_err());
}

#[test]
fn plaintext_export_decodes_the_same_and_in_tshark() {
    let (file, keys) = tls_capture("TLS_AES_256_GCM_SHA384");
    let mut r = CaptureReader::new(Cursor::new(file)).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false)
        .with_tls_keylog(KeyLog::parse(&keys).unwrap())
        .with_plain_export();
    let mut items = Vec::new();
    let mut plain = Vec::new();
    while let Some(f) = r.next_frame() {
        d.frame(&f.unwrap(), &mut items);
        plain.extend(d.take_plain());
    }
    d.finish(&mut items);
    plain.extend(d.take_plain());
    let again = decode(plain.clone(), None);
    let names = |it: &[Item]| -> Vec<(String, Option<u32>)> {
        pdus(it)
            .iter()
            .map(|p| (p.pdu.clone(), p.invoke_id))
            .collect()
    };
    assert_eq!(names(&again), names(&items));
    assert_eq!(names(&again).len(), 4);
    assert!(
        pdus(&again).iter().all(|p| p.layers[0] == "tpkt"),
        "no TLS left"
    );
    if !secmms_testkit::tshark_ready("tshark missing in CI", "tshark not installed: skipped") {
        return;
    }
    let path =
        std::env::temp_dir().join(format!("secmms-decode-plain-{}.pcapng", std::process::id()));
    std::fs::write(&path, &plain).unwrap();
    // The association (CP) is not in this capture: tell Wireshark the MMS context, as one
    // would for any capture started mid-association (reference §13.4).
    let t = secmms_testkit::Tshark::new(&path)
        .options(["-o", "uat:pres_context_list:\"3\",\"1.0.9506.2.1\""]);
    let problems = t.problems("_ws.malformed || _ws.expert.severity >= error");
    let summary = t.run(&[]);
    std::fs::remove_file(&path).ok();
    assert!(problems.trim().is_empty(), "tshark: {problems}");
    assert!(
        summary.contains("confirmed-RequestPDU") && summary.contains("confirmed-ResponsePDU"),
        "{summary}"
    );
}

#[test]
fn decryption_agrees_with_tshark() {
    if !secmms_testkit::tshark_ready("tshark missing in CI", "tshark not installed: skipped") {
        return;
    }
    let (file, keys) = tls_capture("TLS_AES_128_GCM_SHA256");
    assert_eq!(tshark_invoke_ids(&file, &keys, "13"), vec![2, 2]);
    let (file, keys) = tls_capture_with(Version::Tls12 {
        ciphers: "ECDHE-ECDSA-AES128-SHA256",
        etm: false,
    });
    assert_eq!(tshark_invoke_ids(&file, &keys, "12"), vec![2, 2]);
}

/// Our invokeIDs of the MMS PDUs in `file` decrypted with `keys`, checked equal to tshark's.
fn tshark_invoke_ids(file: &[u8], keys: &str, tag: &str) -> Vec<u32> {
    let ours: Vec<u32> = pdus(&decode(file.to_vec(), Some(keys)))
        .iter()
        .filter_map(|p| p.invoke_id)
        .collect();
    let dir = std::env::temp_dir();
    let (cap, kl) = (
        dir.join(format!(
            "secmms-decode-tls{tag}-{}.pcap",
            std::process::id()
        )),
        dir.join(format!(
            "secmms-decode-tls{tag}-{}.keys",
            std::process::id()
        )),
    );
    std::fs::write(&cap, file).unwrap();
    std::fs::write(&kl, keys).unwrap();
    let theirs: Vec<u32> = secmms_testkit::Tshark::new(&cap)
        .tls_keylog(&kl, 3782)
        .options(["-o", "uat:pres_context_list:\"3\",\"1.0.9506.2.1\""])
        .mms_invoke_ids()
        .into_iter()
        .map(|i| i as u32)
        .collect();
    std::fs::remove_file(&cap).ok();
    std::fs::remove_file(&kl).ok();
    assert_eq!(theirs, ours, "tshark decrypts the same PDUs");
    ours
}

#[test]
fn tls12_gcm_and_cbc_suites_with_and_without_encrypt_then_mac() {
    // The key is ECDSA P-256: the ECDHE-ECDSA suites.
    for (ciphers, code, what) in [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", "0xc02b", "AES-128-GCM"),
        ("ECDHE-ECDSA-AES256-GCM-SHA384", "0xc02c", "AES-256-GCM"),
        ("ECDHE-ECDSA-AES128-SHA", "0xc009", "AES-128-CBC HMAC-SHA1"),
        ("ECDHE-ECDSA-AES256-SHA", "0xc00a", "AES-256-CBC HMAC-SHA1"),
        (
            "ECDHE-ECDSA-AES128-SHA256",
            "0xc023",
            "AES-128-CBC HMAC-SHA256",
        ),
        (
            "ECDHE-ECDSA-AES256-SHA384",
            "0xc024",
            "AES-256-CBC HMAC-SHA384",
        ),
    ] {
        for etm in [true, false] {
            let (file, keys) = tls_capture_with(Version::Tls12 { ciphers, etm });
            assert!(keys.contains("CLIENT_RANDOM "), "{keys}");
            let items = decode(file, Some(&keys));
            let problems: Vec<_> = items
                .iter()
                .filter(|i| i.has_problem())
                .map(Item::json)
                .collect();
            assert!(problems.is_empty(), "{ciphers} {etm}: {problems:#?}");
            let p = pdus(&items);
            let names: Vec<_> = p.iter().map(|r| r.pdu.as_str()).collect();
            assert_eq!(
                names,
                vec!["CR", "CC", "confirmed-RequestPDU", "confirmed-ResponsePDU"],
                "{ciphers} {etm}"
            );
            assert!(p.iter().all(|r| r.layers[0] == "tls"));
            assert_eq!(p[2].objects, vec!["DEMOLD0/GGIO1$MX$AnIn1$mag$f"]);
            let mode = match (what.contains("CBC"), etm) {
                (false, _) => "",
                (true, true) => " encrypt-then-MAC",
                (true, false) => " MAC-then-encrypt",
            };
            let note = format!("TLS 1.2 {code} {what}{mode}: keys from the key log");
            assert!(
                items
                    .iter()
                    .any(|i| matches!(i, Item::Notice(n) if n.detail == note)),
                "{note} missing"
            );
        }
    }
}
