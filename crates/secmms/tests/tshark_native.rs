//! Wireshark's TPKT/COTP/SES/PRES/ACSE dissectors read the frames of native-mode associations
//! (IEC 62351-4 clause 15, E2E security over the OSI stack) without a single malformed frame or
//! expert error. Our client talks to our server over plain TCP on loopback; a wrapper around the
//! client's socket records both directions (and can corrupt one outgoing write), the recording is
//! turned into a pcap with `text2pcap` and read back with `tshark`. Every APDU that carries a
//! SecPDU is covered: AARQ, AARE accepting and rejecting, ABRT, RLRQ, RLRE, and P-DATA holding
//! ClearTransfer (no encryption, HMAC) and EncrTransfer (AES-GCM).
//! Skipped when tshark or text2pcap is missing, unless CI=true.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secmms::security::{AppMode, AppSecurity, ConnectionFacts, Encrypt};
use secmms::{Client, Config, ServerHandle};
use secmms_e2e::SecPduKind;
use secmms_pki::event::MemorySink;
use secmms_profiles::native::wire;
use secmms_testkit::{ready_or_skip, runs, tpkts, Capture, Recording, TpktCheck, WireLog};
use secmms_tools::demo::DemoPki;
use tokio::net::TcpStream;

// ------------------------------------------------------------------ recording the wire

/// Chunks as they crossed the socket: (client → server, bytes).
type Wire = WireLog;

// ------------------------------------------------------------------ tshark

/// True when tshark and text2pcap can run; otherwise skips (saying why), or fails when CI=true.
fn tshark_available() -> bool {
    let missing: Vec<&str> = ["tshark", "text2pcap"]
        .into_iter()
        .filter(|t| !runs(t))
        .collect();
    ready_or_skip(
        missing.is_empty(),
        &format!("CI=true but {missing:?} cannot be run"),
        &format!("SKIPPED: {missing:?} not installed (apt package tshark)"),
    )
}

/// The only expert item tolerated, and only on a frame carrying a SecPDU: Wireshark has no
/// dissector for the e2eSecurityAS abstract syntax (a placeholder OID, spec §9), so it says so
/// and, with `ber.decode_unexpected`, decodes the value as generic BER instead (where any
/// encoding error would raise a BER expert item of its own).
const UNKNOWN_OID: &str = "BER: Dissector for OID not implemented";
/// Expert severity "Warning" (epan/proto.h PI_WARN).
const PI_WARN: u32 = 0x0060_0000;

/// One field (or protocol) of tshark's PDML: name, `show` and `value` (hex of its octets).
#[derive(Debug)]
struct Field {
    name: String,
    show: String,
    value: String,
}

/// One frame as tshark decoded it, its fields in tree order.
#[derive(Debug, Default)]
struct Frame {
    fields: Vec<Field>,
}

impl Frame {
    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }
    fn first(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    fn shows(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|f| f.name == name)
            .map(|f| f.show.as_str())
            .collect()
    }
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `key` in one PDML element line.
fn attribute(line: &str, key: &str) -> String {
    let pat = format!(" {key}=\"");
    match line.find(&pat) {
        Some(at) => {
            let rest = &line[at + pat.len()..];
            xml_unescape(&rest[..rest.find('"').unwrap_or(rest.len())])
        }
        None => String::new(),
    }
}

fn parse_pdml(xml: &str) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut current: Option<Frame> = None;
    for line in xml.lines() {
        let l = line.trim_start();
        if l.starts_with("<packet>") {
            current = Some(Frame::default());
        } else if l.starts_with("</packet>") {
            frames.extend(current.take());
        } else if l.starts_with("<field ") || l.starts_with("<proto ") {
            if let Some(f) = current.as_mut() {
                f.fields.push(Field {
                    name: attribute(l, "name"),
                    show: attribute(l, "show"),
                    value: attribute(l, "value"),
                });
            }
        }
    }
    frames
}

/// Writes `packets` (one TPKT each) as a pcap of one TCP connection (client 10.0.0.1:50000,
/// server 10.0.0.2:102) and has tshark decode it. Returns what `tshark -Y` lists as malformed
/// frames or expert errors (one line per frame: number, messages), and the full PDML decode.
fn dissect(name: &str, packets: &[(bool, Vec<u8>)]) -> (String, Vec<Frame>) {
    let capture = Capture::write(&format!("secmms-tshark-native-{name}"), packets, 102);
    let tshark = capture
        .tshark()
        .options(["-n", "-o", "ber.decode_unexpected:TRUE"])
        .require_success();
    let problems = tshark.problems("_ws.malformed || _ws.expert.severity >= error");
    let pdml = tshark.run(&["-T", "pdml"]);
    capture.remove();
    let frames = parse_pdml(&pdml);
    assert_eq!(
        frames.len(),
        packets.len(),
        "{name}: tshark saw {} frames for {} TPKTs",
        frames.len(),
        packets.len()
    );
    (problems.trim().to_string(), frames)
}

// ------------------------------------------------------------------ what tshark saw

/// The OSI PDU a frame holds, as tshark identified it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Osi {
    /// COTP connection request.
    Cr,
    /// COTP connection confirm.
    Cc,
    Aarq,
    /// AARE with result accepted.
    AareAccepted,
    /// AARE with a rejecting result.
    AareRejected,
    Abrt,
    Rlrq,
    Rlre,
    /// P-DATA (a presentation user-data PDV on the e2eSecurityAS context, no ACSE).
    PData,
}

/// (direction: true = client to server, OSI PDU, SecPDU carried) → number of frames.
type Census = HashMap<(bool, Osi, Option<SecPduKind>), usize>;

fn octets(f: &Field) -> Vec<u8> {
    hex::decode(&f.value).unwrap_or_else(|e| panic!("{}: bad hex in PDML ({e})", f.name))
}

/// The SecPDU in a single-ASN1-type value as tshark extracted it: the §15.4 structure read by
/// our environment codec, then the SecPDU decoded in full.
fn sec_pdu_of(frame_no: usize, value: &[u8], env: Option<wire::EnvApdu>) -> SecPduKind {
    let limits = secmms_ber::Limits::default();
    let (kind, pdu) = match env {
        Some(apdu) => match wire::decode(apdu, value, limits) {
            Ok(wire::EnvValue::SecPdu { kind, pdu }) => (kind, pdu),
            other => panic!("frame {frame_no}: {apdu:?} user-information is {other:?}"),
        },
        None => {
            let kind = wire::transfer_kind(value, limits)
                .unwrap_or_else(|| panic!("frame {frame_no}: P-DATA value is no transfer"));
            (kind, value.to_vec())
        }
    };
    let decoded = secmms_e2e::SecPdu::decode(kind, &pdu, limits)
        .unwrap_or_else(|e| panic!("frame {frame_no}: {kind:?} does not decode: {e:?}"));
    assert_eq!(decoded.kind(), kind);
    kind
}

/// Checks every frame's layers and expert items and counts what each carries.
fn census(name: &str, packets: &[(bool, Vec<u8>)], frames: &[Frame]) -> Census {
    let e2e_as = secmms_profiles::native::DEFAULT_E2E_SECURITY_AS
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let mut e2e_pcid: Option<String> = None;
    let mut out = Census::new();
    for (i, ((to_server, _), fr)) in packets.iter().zip(frames).enumerate() {
        let n = i + 1;
        for layer in ["tpkt", "cotp"] {
            assert!(fr.has(layer), "{name} frame {n}: no {layer} layer");
        }
        let cotp_type = fr.first("cotp.type").map(|f| f.show.as_str());
        let (osi, sec) = if cotp_type == Some("0x0e") {
            (Osi::Cr, None)
        } else if cotp_type == Some("0x0d") {
            (Osi::Cc, None)
        } else {
            for layer in ["ses", "pres"] {
                assert!(fr.has(layer), "{name} frame {n}: no {layer} layer");
            }
            let env = [
                ("acse.aarq_element", wire::EnvApdu::Aarq),
                ("acse.aare_element", wire::EnvApdu::Aare),
                ("acse.abrt_element", wire::EnvApdu::Abrt),
                ("acse.rlrq_element", wire::EnvApdu::Rlrq),
                ("acse.rlre_element", wire::EnvApdu::Rlre),
            ]
            .into_iter()
            .find(|(field, _)| fr.has(field));
            match env {
                Some((_, apdu)) => {
                    if apdu == wire::EnvApdu::Aarq {
                        // The presentation context tshark saw defined for e2eSecurityAS.
                        let defs: Vec<&Field> = fr
                            .fields
                            .iter()
                            .filter(|f| {
                                f.name == "pres.presentation_context_identifier"
                                    || f.name == "pres.abstract_syntax_name"
                            })
                            .collect();
                        e2e_pcid = defs
                            .windows(2)
                            .find(|w| w[1].show == e2e_as)
                            .map(|w| w[0].show.clone());
                        assert!(e2e_pcid.is_some(), "{name}: no {e2e_as} context in the CP");
                    }
                    assert_eq!(
                        fr.shows("acse.indirect_reference"),
                        vec![e2e_pcid.as_deref().expect("APDU before the AARQ")],
                        "{name} frame {n}: user-information must be one EXTERNAL on e2eSecurityAS"
                    );
                    let value = fr
                        .first("acse.encoding")
                        .unwrap_or_else(|| panic!("{name} frame {n}: no single-ASN1-type"));
                    let kind = sec_pdu_of(n, &octets(value), Some(apdu));
                    let osi = match apdu {
                        wire::EnvApdu::Aarq => Osi::Aarq,
                        wire::EnvApdu::Aare => match fr.shows("acse.result").as_slice() {
                            ["0"] => Osi::AareAccepted,
                            [_] => Osi::AareRejected,
                            other => panic!("{name} frame {n}: AARE result {other:?}"),
                        },
                        wire::EnvApdu::Abrt => Osi::Abrt,
                        wire::EnvApdu::Rlrq => Osi::Rlrq,
                        wire::EnvApdu::Rlre => Osi::Rlre,
                    };
                    (osi, Some(kind))
                }
                None => {
                    assert!(!fr.has("acse"), "{name} frame {n}: unexpected ACSE APDU");
                    assert_eq!(
                        fr.shows("pres.presentation_context_identifier"),
                        vec![e2e_pcid.as_deref().expect("P-DATA before the AARQ")],
                        "{name} frame {n}: P-DATA must be one PDV on e2eSecurityAS"
                    );
                    let value = fr
                        .first("pres.presentation_data_values")
                        .unwrap_or_else(|| panic!("{name} frame {n}: no PDV value"));
                    (Osi::PData, Some(sec_pdu_of(n, &octets(value), None)))
                }
            }
        };
        // Expert items: pair each message with the severity that follows it.
        let mut message = "";
        for f in &fr.fields {
            assert!(
                !f.name.starts_with("_ws.malformed"),
                "{name} frame {n} is malformed: {fr:#?}"
            );
            match f.name.as_str() {
                "_ws.expert.message" => message = &f.show,
                "_ws.expert.severity" => {
                    let severity: u32 = f.show.parse().unwrap();
                    let tolerated = message.starts_with(UNKNOWN_OID) && sec.is_some();
                    assert!(
                        severity < PI_WARN || tolerated,
                        "{name} frame {n} ({osi:?}): expert item {message:?} (severity {severity:#x})"
                    );
                }
                _ => {}
            }
        }
        *out.entry((*to_server, osi, sec)).or_default() += 1;
    }
    eprintln!(
        "{name}: {} frames, no malformed frame, no expert error",
        frames.len()
    );
    let mut rows: Vec<_> = out
        .iter()
        .map(|((to_server, osi, sec), count)| {
            let sec = sec.map(|k| format!("{k:?}")).unwrap_or_default();
            (*osi, !*to_server, sec, *count)
        })
        .collect();
    rows.sort();
    for (osi, to_client, sec, count) in rows {
        let dir = if to_client { "S->C" } else { "C->S" };
        eprintln!("  {dir} {:<14} {sec:<20} {count}", format!("{osi:?}"));
    }
    out
}

/// Decodes the recorded connection with tshark: no malformed frame, no expert error, then the
/// per-frame checks of [`census`].
fn capture(name: &str, wire: &Wire) -> Census {
    let packets = tpkts(&wire.lock().unwrap(), TpktCheck::Strict);
    let (problems, frames) = dissect(name, &packets);
    assert!(
        problems.is_empty(),
        "{name}: malformed frames or expert errors:\n{problems}"
    );
    census(name, &packets, &frames)
}

/// The frames every association starts with: CR, CC, AARQ{HandshakeReq}, AARE{HandshakeAcc}.
fn established() -> Census {
    Census::from([
        ((true, Osi::Cr, None), 1),
        ((false, Osi::Cc, None), 1),
        ((true, Osi::Aarq, Some(SecPduKind::HandshakeReq)), 1),
        (
            (false, Osi::AareAccepted, Some(SecPduKind::HandshakeAcc)),
            1,
        ),
    ])
}

// ------------------------------------------------------------------ client and server

async fn native_server(pki: &DemoPki, encrypt: Encrypt) -> (ServerHandle, Arc<MemorySink>) {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    pki.apply_security(&mut cfg, true, AppMode::Native, encrypt);
    let sink = Arc::new(MemorySink::new());
    let handle = cfg
        .server_builder()
        .events(sink.clone())
        .bind()
        .await
        .unwrap()
        .spawn()
        .unwrap();
    (handle, sink)
}

fn client_config(pki: &DemoPki, encrypt: Encrypt) -> Config {
    let mut cfg = Config::default();
    pki.apply_security(&mut cfg, false, AppMode::Native, encrypt);
    cfg
}

/// The recorded connection of one association.
struct Recorded {
    wire: Wire,
    /// When set, the client's next write leaves with its last octet inverted
    /// ([`Recording::corrupting`]).
    corrupt: Arc<AtomicBool>,
}

/// Associates with `server` over a recorded TCP connection, with the client configuration `cfg`.
async fn associate(server: &ServerHandle, cfg: &Config) -> (Result<Client, String>, Recorded) {
    let security = AppSecurity::build(
        &cfg.security,
        &cfg.tls,
        &cfg.osi,
        Arc::new(MemorySink::new()),
    )
    .unwrap();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let facts = ConnectionFacts {
        peer_address: tcp.peer_addr().ok().map(|a| a.ip()),
        ..Default::default()
    };
    let rec = Recorded {
        wire: Wire::default(),
        corrupt: Arc::default(),
    };
    let tap = Recording::corrupting(tcp, rec.wire.clone(), rec.corrupt.clone());
    let client = cfg
        .client_builder()
        .app_security(security.clone())
        .connection_facts(facts.clone())
        .associate(tap)
        .await
        .map_err(|e| e.to_string());
    (client, rec)
}

async fn wait_closed(c: &Client) {
    for _ in 0..500 {
        if c.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the association did not end");
}

fn mnemonics(sink: &MemorySink) -> Vec<&'static str> {
    sink.events().iter().map(|e| e.mnemonic).collect()
}

const VENDOR: &str = "DEMOLD0/LLN0.NamPlt.vendor[DC]";

// ------------------------------------------------------------------ the tests

/// A native association per data protection (AES-GCM: EncrTransfer; no encryption, HMAC:
/// ClearTransfer) with requests and responses both ways, ended by RLRQ/RLRE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_native_associations_with_data_and_release() {
    if !tshark_available() {
        return;
    }
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    for (encrypt, transfer, other, words) in [
        (
            Encrypt::Gcm,
            SecPduKind::EncrTransfer,
            SecPduKind::ClearTransfer,
            "Gcm",
        ),
        (
            Encrypt::None,
            SecPduKind::ClearTransfer,
            SecPduKind::EncrTransfer,
            "not encrypted",
        ),
    ] {
        let (server, _events) = native_server(&pki, encrypt).await;
        let (client, rec) = associate(&server, &client_config(&pki, encrypt)).await;
        let client = client.unwrap();
        assert!(
            client.protection().contains(words),
            "{}",
            client.protection()
        );
        client.identify().await.unwrap();
        client.write_str(VENDOR, "tshark-native").await.unwrap();
        let v = client.read(VENDOR).await.unwrap();
        assert!(v.to_string().contains("tshark-native"), "{v}");
        client.release().await.unwrap();
        server.shutdown();

        let name = format!("release-{}", encrypt.name());
        let mut seen = capture(&name, &rec.wire);
        let requests = seen
            .remove(&(true, Osi::PData, Some(transfer)))
            .unwrap_or(0);
        let responses = seen
            .remove(&(false, Osi::PData, Some(transfer)))
            .unwrap_or(0);
        assert!(requests >= 3, "{name}: {requests} {transfer:?} requests");
        assert_eq!(requests, responses, "{name}: one response per request");
        let mut expected = established();
        expected.insert((true, Osi::Rlrq, Some(SecPduKind::ReleaseReq)), 1);
        expected.insert((false, Osi::Rlre, Some(SecPduKind::ReleaseRsp)), 1);
        assert_eq!(seen, expected, "{name}: no {other:?}, nothing else");
    }
}

/// Two aborted native associations: the client aborts (ABRT carrying ApplAbort), and the server
/// aborts after a transfer whose last octet was corrupted on the wire (ABRT carrying DtSecAbort).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_native_aborts() {
    if !tshark_available() {
        return;
    }
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();

    let (server, _events) = native_server(&pki, Encrypt::Gcm).await;
    let (client, rec) = associate(&server, &client_config(&pki, Encrypt::Gcm)).await;
    let client = client.unwrap();
    client.identify().await.unwrap();
    client.abort().await;
    wait_closed(&client).await;
    server.shutdown();
    let mut expected = established();
    expected.insert((true, Osi::PData, Some(SecPduKind::EncrTransfer)), 1);
    expected.insert((false, Osi::PData, Some(SecPduKind::EncrTransfer)), 1);
    expected.insert((true, Osi::Abrt, Some(SecPduKind::ApplAbort)), 1);
    assert_eq!(capture("abort-by-client", &rec.wire), expected);

    let (server, events) = native_server(&pki, Encrypt::None).await;
    let (client, rec) = associate(&server, &client_config(&pki, Encrypt::None)).await;
    let client = client.unwrap();
    client.identify().await.unwrap();
    rec.corrupt.store(true, Ordering::SeqCst);
    let e = client.identify().await.unwrap_err();
    assert!(!rec.corrupt.load(Ordering::SeqCst), "nothing was corrupted");
    wait_closed(&client).await;
    server.shutdown();
    let alarms = mnemonics(&events);
    assert_eq!(
        alarms.last(),
        Some(&"CLEAR_BAD_ICV_TRF"),
        "server events {alarms:?} (client: {e})"
    );
    let mut expected = established();
    expected.insert((true, Osi::PData, Some(SecPduKind::ClearTransfer)), 2);
    expected.insert((false, Osi::PData, Some(SecPduKind::ClearTransfer)), 1);
    expected.insert((false, Osi::Abrt, Some(SecPduKind::DtSecAbort)), 1);
    assert_eq!(capture("abort-by-server", &rec.wire), expected);
}

/// A client whose application certificate comes from another CA: the server refuses the
/// HandshakeReq with an AARE (rejected-permanent) carrying HandshakeSecReject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_native_rejection() {
    if !tshark_available() {
        return;
    }
    let pki = DemoPki::create(&std::env::temp_dir()).unwrap();
    let stranger = DemoPki::create(&std::env::temp_dir()).unwrap();
    let (server, events) = native_server(&pki, Encrypt::Gcm).await;
    let mut cfg = client_config(&stranger, Encrypt::Gcm);
    cfg.security.ca = vec![pki.ca.clone()];
    let (client, rec) = associate(&server, &cfg).await;
    let e = client.unwrap_err();
    // The client verified the HandshakeSecReject and learned why (§14.3: certification path).
    assert!(
        e.contains("HandshakeSecReject") && e.contains("invalid-certification-path"),
        "{e}"
    );
    server.shutdown();
    let seen = mnemonics(&events);
    assert!(seen.contains(&"PKCERT_ERROR_ASS_REQ"), "{seen:?}");
    let expected = Census::from([
        ((true, Osi::Cr, None), 1),
        ((false, Osi::Cc, None), 1),
        ((true, Osi::Aarq, Some(SecPduKind::HandshakeReq)), 1),
        (
            (
                false,
                Osi::AareRejected,
                Some(SecPduKind::HandshakeSecReject),
            ),
            1,
        ),
    ]);
    assert_eq!(capture("rejected", &rec.wire), expected);

    // The check can fail: the same frames with the AARE damaged, once inside the SecPDU (its
    // first inner SEQUENCE claims 256 octets more than its parent holds, which only tshark's
    // generic BER decoding of the value can see) and once in the EXTERNAL around it (the ACSE
    // layer). tshark must flag the AARE, frame 4, and nothing else.
    let packets = tpkts(&rec.wire.lock().unwrap(), TpktCheck::Strict);
    let aare = &packets[3].1;
    // EXTERNAL { indirect-reference 5, single-ASN1-type [0] 82 hh ll { secReject [2] 82 hh ll {
    // SEQUENCE 82 hh ll ...
    let at = aare
        .windows(8)
        .position(|w| w[..5] == [0x02, 0x01, 0x05, 0xA0, 0x82] && w[7] == 0xA2)
        .expect("EXTERNAL carrying HandshakeRsp.secReject");
    assert_eq!(aare[at + 8], 0x82);
    assert_eq!(&aare[at + 11..at + 13], &[0x30, 0x82]);
    for (what, offset) in [("SecPDU", at + 13), ("EXTERNAL", at + 5)] {
        let mut damaged = packets.clone();
        damaged[3].1[offset] += 1;
        let (problems, _) = dissect(&format!("damaged-{what}"), &damaged);
        eprintln!("damaged {what}: tshark reports {problems:?}");
        let flagged: Vec<&str> = problems
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default())
            .collect();
        assert_eq!(flagged, vec!["4"], "damaged {what}: {problems:?}");
    }
}
