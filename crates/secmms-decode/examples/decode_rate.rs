//! Decode-rate measurement (issue 16 "Measure"): generates a large capture and decodes it.
//!
//! ```text
//! cargo run --release -p secmms-decode --example decode_rate -- gen-plain OUT.pcap MB
//! cargo run --release -p secmms-decode --example decode_rate -- gen-tls OUT.pcap KEYLOG MB
//! cargo run --release -p secmms-decode --example decode_rate -- decode FILE [KEYLOG]
//! ```
//! `gen-plain` writes associations of reads (initiate, then read request/response pairs as the
//! golden capture has them), one TCP stream per 1 000 reads; `gen-tls` the same inside TLS 1.3
//! AES-128-GCM made by OpenSSL in memory, with its key log. `decode` prints frames, PDUs,
//! seconds and MB/s.
//!
//! Measured 2026-12-07 on the 2-core development machine while other builds ran, so CPU time
//! (`/usr/bin/time`, user + sys) is compared, not wall time; tshark 4.0.17 given the MMS
//! presentation context (`-o 'uat:pres_context_list:"3","1.0.9506.2.1"'`, the captures hold no
//! CP) and for TLS `-o tls.keylog_file:KEYS -d tcp.port==3782,tls -d tls.port==3782,tpkt`:
//!
//! | capture (100 MB) | this decoder | tshark | ratio | peak memory (ours / tshark) |
//! |---|---|---|---|---|
//! | plain, 861 720 frames, 860 860 PDUs | 2.25 s | 19.06 s | 8.5x | 13 MB / 760 MB |
//! | TLS 1.3, 725 249 frames, 722 722 PDUs | 3.84 s | 17.51 s | 4.6x | 16 MB / 843 MB |

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use openssl::ssl::{ErrorCode, SslAcceptor, SslConnector, SslMethod, SslStream, SslVerifyMode};
use openssl::x509::X509;
use secmms_decode::capture::CaptureReader;
use secmms_decode::decoder::Decoder;
use secmms_decode::record::Item;
use secmms_decode::synth::{PcapFile, TcpFlow, LINKTYPE_ETHERNET};
use secmms_decode::tcp::ReassemblyLimits;
use secmms_decode::tls::KeyLog;

const CR: &str = "0300001611e00000000100c0010ac2020001c1020001";
const CC: &str = "0300001611d00001000100c0010ac2020001c1020001";
const READ: &str = "a02e020102a429a127a0253023a021a11f1a0744454d4f4c44301a144747494f31244d5824416e496e31246d61672466";
const READ_RSP: &str = "a10e020102a409a107870508422a0000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mms_tpkt(mms: &[u8]) -> Vec<u8> {
    let mut s = vec![1, 0, 1, 0];
    s.extend(secmms_osi::presentation::UserData::single(3, mms.to_vec()).encode());
    let len = s.len() + 7;
    let mut v = vec![3, 0, (len >> 8) as u8, len as u8, 2, 0xf0, 0x80];
    v.extend(s);
    v
}

/// The (to_server, octets) of one association of `reads` reads with changing invokeIDs.
fn association(reads: u32) -> Vec<(bool, Vec<u8>)> {
    let mut v = vec![(true, hex(CR)), (false, hex(CC))];
    for id in 0..reads {
        let mut req = hex(READ);
        let mut rsp = hex(READ_RSP);
        req[4] = (id % 120) as u8;
        rsp[4] = (id % 120) as u8;
        v.push((true, mms_tpkt(&req)));
        v.push((false, mms_tpkt(&rsp)));
    }
    v
}

fn gen_plain(out: &str, mb: usize) {
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut stream = 0u32;
    while file.bytes().len() < mb << 20 {
        let port = 20000 + (stream % 40000) as u16;
        let mut flow = TcpFlow::new(
            (
                Ipv4Addr::new(10, 0, (stream >> 8) as u8, stream as u8),
                port,
            ),
            (Ipv4Addr::new(10, 1, 0, 1), 102),
            1_700_000_000_000_000_000 + u64::from(stream) * 1_000_000_000,
        );
        flow.handshake(&mut file).unwrap();
        for (to_server, p) in association(1000) {
            flow.send(&mut file, to_server, &p).unwrap();
        }
        stream += 1;
    }
    std::fs::write(out, file.bytes()).unwrap();
}

/// Everything written, in order: (to_server, octets).
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

fn gen_tls(out: &str, keylog: &str, mb: usize) {
    let key = secmms_pki::crypto::SigningKey::generate_ec(secmms_pki::crypto::Curve::P256).unwrap();
    let cert = secmms_pki::tooling::create_ca(
        "rate",
        &key,
        secmms_pki::tooling::Validity::days_from(1_700_000_000, 3650),
        &mut secmms_pki::crypto::OsRandom,
    )
    .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut file = PcapFile::new(LINKTYPE_ETHERNET, 65535);
    let mut stream = 0u32;
    while file.bytes().len() < mb << 20 {
        let mut cb = SslConnector::builder(SslMethod::tls_client()).unwrap();
        cb.set_verify(SslVerifyMode::NONE);
        cb.set_ciphersuites("TLS_AES_128_GCM_SHA256").unwrap();
        let l = lines.clone();
        cb.set_keylog_callback(move |_, line| l.lock().unwrap().push(line.to_string()));
        let mut ab = SslAcceptor::mozilla_modern_v5(SslMethod::tls_server()).unwrap();
        ab.set_private_key(key.pkey()).unwrap();
        ab.set_certificate(&X509::from_der(&cert).unwrap()).unwrap();
        let acceptor = ab.build();
        let log: Log = Rc::default();
        let (c2s, s2c) = (
            Rc::new(RefCell::new(VecDeque::new())),
            Rc::new(RefCell::new(VecDeque::new())),
        );
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
        let ssl = cb
            .build()
            .configure()
            .unwrap()
            .verify_hostname(false)
            .use_server_name_indication(false)
            .into_ssl("x")
            .unwrap();
        let mut c = SslStream::new(ssl, cw).unwrap();
        let mut s =
            SslStream::new(openssl::ssl::Ssl::new(acceptor.context()).unwrap(), sw).unwrap();
        let (mut cd, mut sd) = (false, false);
        while !(cd && sd) {
            if !cd {
                match c.connect() {
                    Ok(()) => cd = true,
                    Err(e) if e.code() == ErrorCode::WANT_READ => {}
                    Err(e) => panic!("{e}"),
                }
            }
            if !sd {
                match s.accept() {
                    Ok(()) => sd = true,
                    Err(e) if e.code() == ErrorCode::WANT_READ => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        let mut sink = vec![0u8; 1 << 16];
        for (to_server, p) in association(1000) {
            if to_server {
                c.ssl_write(&p).unwrap();
                let _ = s.ssl_read(&mut sink);
            } else {
                s.ssl_write(&p).unwrap();
                let _ = c.ssl_read(&mut sink);
            }
        }
        let port = 20000 + (stream % 40000) as u16;
        let mut flow = TcpFlow::new(
            (
                Ipv4Addr::new(10, 0, (stream >> 8) as u8, stream as u8),
                port,
            ),
            (Ipv4Addr::new(10, 1, 0, 1), 3782),
            1_700_000_000_000_000_000 + u64::from(stream) * 1_000_000_000,
        );
        flow.handshake(&mut file).unwrap();
        for (to_server, chunk) in log.borrow().iter() {
            flow.send(&mut file, *to_server, chunk).unwrap();
        }
        stream += 1;
    }
    std::fs::write(out, file.bytes()).unwrap();
    std::fs::write(keylog, lines.lock().unwrap().join("\n")).unwrap();
}

fn decode(path: &str, keylog: Option<&str>) {
    let size = std::fs::metadata(path).unwrap().len();
    let start = Instant::now();
    let f = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path).unwrap());
    let mut r = CaptureReader::new(f).unwrap();
    let mut d = Decoder::new(ReassemblyLimits::default(), false);
    if let Some(k) = keylog {
        d = d.with_tls_keylog(KeyLog::parse(&std::fs::read_to_string(k).unwrap()).unwrap());
    }
    let mut items = Vec::new();
    let (mut pdus, mut problems) = (0u64, 0u64);
    while let Some(fr) = r.next_frame() {
        d.frame(&fr.unwrap(), &mut items);
        for i in items.drain(..) {
            pdus += u64::from(matches!(i, Item::Pdu(_)));
            problems += u64::from(i.has_problem());
            // The text form is what `secmms decode` prints: format it, as the CLI does.
            let _ = match &i {
                Item::Pdu(p) => p.line(),
                Item::Notice(n) => n.line(),
            };
        }
    }
    d.finish(&mut items);
    let s = start.elapsed().as_secs_f64();
    let st = d.stats();
    println!(
        "{path}: {} MB, {} frames, {pdus} PDUs, {problems} problems, {s:.2} s, {:.1} MB/s, {:.0} frames/s",
        size >> 20,
        st.frames,
        size as f64 / s / 1e6,
        st.frames as f64 / s
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("gen-plain") => gen_plain(&a[2], a[3].parse().unwrap()),
        Some("gen-tls") => gen_tls(&a[2], &a[3], a[4].parse().unwrap()),
        Some("decode") => decode(&a[2], a.get(3).map(String::as_str)),
        _ => eprintln!(
            "usage: decode_rate gen-plain OUT MB | gen-tls OUT KEYLOG MB | decode FILE [KEYLOG]"
        ),
    }
}
