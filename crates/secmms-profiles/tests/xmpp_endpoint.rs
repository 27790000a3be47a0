//! Two `XmppEndpoint`s (clause 16) exchanging stanzas in memory, with Annex G certificates bound
//! to the JIDs (G.6.3): handshake, data in each protection mode, release, two associations between
//! the same JIDs, release collision, aborts, and a tampering path.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::replay::ReplayCache;
use secmms_e2e::{Context, Credentials, E2eConfig, ModeOffer, TimeStamp};
use secmms_pki::crypto::OsRandom;
use secmms_pki::event::MemorySink;
use secmms_pki::tooling::{
    create_ca, issue_end_entity, Binding, Ca, EndEntityRequest, KeyType, Validity,
    DEFAULT_SUBJECT_FORM,
};
use secmms_pki::OpenSslValidator;
use secmms_profiles::xmpp::{AssocKey, EndpointError, EndpointEvent, XmppEndpoint};
use secmms_profiles::xmpp::{IqType, StanzaKind};

const NOW: i64 = 1_750_000_000;

/// The clock a test gives an endpoint (Unix milliseconds).
type Clock = Arc<dyn Fn() -> TimeStamp + Send + Sync>;

/// An endpoint and the clock the test gives it: every call passes the clock's time (the
/// endpoint takes time as an argument), everything else reaches the endpoint itself.
struct Ep {
    inner: XmppEndpoint,
    clock: Clock,
}

impl std::ops::Deref for Ep {
    type Target = XmppEndpoint;
    fn deref(&self) -> &XmppEndpoint {
        &self.inner
    }
}

impl std::ops::DerefMut for Ep {
    fn deref_mut(&mut self) -> &mut XmppEndpoint {
        &mut self.inner
    }
}

type Sent = Result<Vec<String>, EndpointError>;

#[allow(dead_code)] // the whole endpoint API, whether or not every test calls it
impl Ep {
    fn associate(
        &mut self,
        peer: &str,
        initiate: &[u8],
    ) -> Result<(AssocKey, Vec<String>), EndpointError> {
        let now = (self.clock)();
        self.inner.associate(peer, initiate, now)
    }
    fn accept(&mut self, key: &AssocKey, initiate: &[u8]) -> Sent {
        let now = (self.clock)();
        self.inner.accept(key, initiate, now)
    }
    fn reject(&mut self, key: &AssocKey, initiate_error: &[u8]) -> Sent {
        let now = (self.clock)();
        self.inner.reject(key, initiate_error, now)
    }
    fn security_reject(
        &mut self,
        key: &AssocKey,
        diag: secmms_e2e::HandshakeDiagnostic,
        event: secmms_pki::event::SecurityEvent,
    ) -> Sent {
        let now = (self.clock)();
        self.inner.security_reject(key, diag, event, now)
    }
    fn send(&mut self, key: &AssocKey, pdu: &[u8]) -> Sent {
        let now = (self.clock)();
        self.inner.send(key, pdu, now)
    }
    fn release(&mut self, key: &AssocKey, conclude: Option<&[u8]>) -> Sent {
        let now = (self.clock)();
        self.inner.release(key, conclude, now)
    }
    fn release_response(&mut self, key: &AssocKey, conclude: Option<&[u8]>) -> Sent {
        let now = (self.clock)();
        self.inner.release_response(key, conclude, now)
    }
    fn abort(&mut self, key: &AssocKey) -> Sent {
        let now = (self.clock)();
        self.inner.abort(key, now)
    }
    fn handle_timeout(&mut self) -> (Vec<String>, Vec<EndpointEvent>) {
        let now = (self.clock)();
        self.inner.handle_timeout(now)
    }
    fn handle(
        &mut self,
        kind: StanzaKind,
        id: &str,
        from: &str,
        env: Option<&str>,
    ) -> (Vec<String>, Vec<EndpointEvent>) {
        let now = (self.clock)();
        self.inner.handle(kind, id, from, env, now)
    }
}
const CLIENT: &str = "scada@example.org/IEC";
const SERVER: &str = "ied1@example.org/IEC";

struct Pki {
    ca: Ca,
    validator: Arc<OpenSslValidator>,
}

fn pki() -> Pki {
    let v = Validity::days_from(NOW - 86_400, 30);
    let key = KeyType::P256.generate().unwrap();
    let der = create_ca("xmpp test CA", &key, v, &mut OsRandom).unwrap();
    let mut val = OpenSslValidator::new();
    val.add_anchor_der(&der).unwrap();
    Pki {
        ca: Ca { cert_der: der, key },
        validator: Arc::new(val),
    }
}

fn creds(p: &Pki, jid: &str) -> Credentials {
    let key = KeyType::P256.generate().unwrap();
    let der = issue_end_entity(
        &EndEntityRequest {
            binding: Binding::Jid(jid.to_string()),
            subject_form: DEFAULT_SUBJECT_FORM,
            role: None,
            role_aor: String::new(),
            crl_url: None,
            ocsp_url: None,
            validity: Validity::days_from(NOW - 3600, 10),
        },
        key.pkey(),
        &p.ca,
        &mut OsRandom,
    )
    .unwrap();
    Credentials {
        key,
        cert_der: der,
        cert_path: None,
        att_cert: None,
    }
}

fn endpoint(p: &Pki, jid: &str, server: bool, offer: ModeOffer) -> (Ep, Arc<MemorySink>) {
    endpoint_with_clock(
        p,
        jid,
        server,
        offer,
        Arc::new(|| TimeStamp::from_unix_secs(NOW)),
    )
}

/// A clock the test moves (milliseconds since the epoch), shared by the endpoints given it.
fn test_clock() -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(NOW * 1000))
}

fn clocked(p: &Pki, jid: &str, server: bool, clock: &Arc<AtomicI64>) -> (Ep, Arc<MemorySink>) {
    let c = clock.clone();
    endpoint_with_clock(
        p,
        jid,
        server,
        offers().remove(0),
        Arc::new(move || TimeStamp(c.load(Ordering::SeqCst))),
    )
}

fn endpoint_with_clock(
    p: &Pki,
    jid: &str,
    server: bool,
    offer: ModeOffer,
    clock: Clock,
) -> (Ep, Arc<MemorySink>) {
    let cfg = E2eConfig {
        offer,
        ..E2eConfig::default()
    };
    let ctx = Context {
        config: Arc::new(cfg),
        credentials: Arc::new(creds(p, jid.split('/').next().unwrap())),
        validator: p.validator.clone(),
        replay: Arc::new(Mutex::new(ReplayCache::new())),
    };
    let sink = Arc::new(MemorySink::new());
    (
        Ep {
            inner: XmppEndpoint::new(ctx, server, sink.clone()),
            clock,
        },
        sink,
    )
}

/// Splits a stanza the endpoint built: (kind, id, env).
fn parse(st: &str) -> (StanzaKind, String, Option<String>) {
    let head_end = st.find('>').unwrap();
    let head = &st[..head_end];
    let attr = |name: &str| {
        let k = format!("{name}='");
        let i = head.find(&k).unwrap() + k.len();
        head[i..].split('\'').next().unwrap().to_string()
    };
    let kind = if head.starts_with("<iq") {
        StanzaKind::Iq(IqType::parse(&attr("type")).unwrap())
    } else {
        StanzaKind::Message
    };
    let close = st.rfind("</").unwrap();
    let body = &st[head_end + 1..close];
    let env = (!body.is_empty() && body.starts_with("<e2e")).then(|| body.to_string());
    (kind, attr("id"), env)
}

/// Delivers `stanzas` (sent by `from`) to `to`; returns what `to` sends back and its events.
fn deliver(to: &mut Ep, from: &str, stanzas: Vec<String>) -> (Vec<String>, Vec<EndpointEvent>) {
    let mut out = Vec::new();
    let mut ev = Vec::new();
    for s in stanzas {
        let (kind, id, env) = parse(&s);
        let (o, e) = to.handle(kind, &id, from, env.as_deref());
        out.extend(o);
        ev.extend(e);
    }
    (out, ev)
}

const INIT_REQ: &[u8] = &[0xa8, 0x03, 0x80, 0x01, 0x01];
const INIT_RSP: &[u8] = &[0xa9, 0x03, 0x80, 0x01, 0x01];
/// confirmed-RequestPDU { invokeID 7, read {…} } (shape only).
fn read_req(invoke: u8) -> Vec<u8> {
    vec![0xa0, 0x05, 0x02, 0x01, invoke, 0xa4, 0x00]
}
fn read_rsp(invoke: u8) -> Vec<u8> {
    vec![0xa1, 0x05, 0x02, 0x01, invoke, 0xa4, 0x00]
}

fn establish(c: &mut Ep, s: &mut Ep) -> (AssocKey, AssocKey) {
    let (ck, st) = c.associate(SERVER, INIT_REQ).unwrap();
    assert!(st[0].starts_with("<iq type='set'"), "{}", st[0]);
    let (out, ev) = deliver(s, CLIENT, st);
    assert!(out.is_empty());
    let [EndpointEvent::AssociateIndication { key: sk, initiate }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(initiate, INIT_REQ);
    let acc = s.accept(sk, INIT_RSP).unwrap();
    assert!(acc[0].starts_with("<iq type='result'"), "{}", acc[0]);
    let (out, ev) = deliver(c, SERVER, acc);
    assert!(out.is_empty());
    assert_eq!(
        ev,
        vec![EndpointEvent::Established {
            key: ck.clone(),
            initiate: INIT_RSP.to_vec()
        }]
    );
    (ck, sk.clone())
}

fn offers() -> Vec<ModeOffer> {
    vec![
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
        ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        ModeOffer::NonAe {
            encr: vec![],
            icv: vec![IcvAlg::HmacSha256],
        },
    ]
}

#[test]
fn handshake_data_release_in_each_mode() {
    let p = pki();
    for offer in offers() {
        let (mut c, csink) = endpoint(&p, CLIENT, false, offer.clone());
        let (mut s, ssink) = endpoint(&p, SERVER, true, offer);
        let (ck, sk) = establish(&mut c, &mut s);
        for i in 1..=3u8 {
            let req = c.send(&ck, &read_req(i)).unwrap();
            // A read request travels in an iq get.
            assert!(req[0].starts_with("<iq type='get'"), "{}", req[0]);
            let (_, ev) = deliver(&mut s, CLIENT, req.clone());
            assert_eq!(
                ev,
                vec![EndpointEvent::Data {
                    key: sk.clone(),
                    pdu: read_req(i)
                }]
            );
            let rsp = s.send(&sk, &read_rsp(i)).unwrap();
            // The response answers that very iq.
            let (_, req_id, _) = parse(&req[0]);
            let (kind, rsp_id, _) = parse(&rsp[0]);
            assert_eq!(kind, StanzaKind::Iq(IqType::Result));
            assert_eq!(rsp_id, req_id);
            let (_, ev) = deliver(&mut c, SERVER, rsp);
            assert_eq!(
                ev,
                vec![EndpointEvent::Data {
                    key: ck.clone(),
                    pdu: read_rsp(i)
                }]
            );
        }
        let rel = c.release(&ck, Some(&[0x8b, 0x00])).unwrap();
        let (_, ev) = deliver(&mut s, CLIENT, rel);
        assert!(matches!(
            ev.as_slice(),
            [EndpointEvent::ReleaseIndication { .. }]
        ));
        let rsp = s.release_response(&sk, Some(&[0x8c, 0x00])).unwrap();
        let (_, ev) = deliver(&mut c, SERVER, rsp);
        assert_eq!(ev, vec![EndpointEvent::Released { key: ck }]);
        assert!(c.associations().is_empty() && s.associations().is_empty());
        // No failure was recorded anywhere.
        for sink in [&csink, &ssink] {
            assert!(
                !sink
                    .events()
                    .iter()
                    .any(|e| e.severity <= secmms_pki::Severity::Error),
                "{:?}",
                sink.events()
            );
        }
    }
}

#[test]
fn two_associations_between_the_same_jids_and_a_release_collision() {
    let p = pki();
    let offer = offers().remove(0);
    let (mut c, _) = endpoint(&p, CLIENT, false, offer.clone());
    let (mut s, _) = endpoint(&p, SERVER, true, offer);
    let (ck1, sk1) = establish(&mut c, &mut s);
    let (ck2, sk2) = establish(&mut c, &mut s);
    assert_ne!(ck1, ck2);
    assert_eq!(s.associations().len(), 2);
    // Data on the second does not disturb the first.
    let (_, ev) = deliver(&mut s, CLIENT, c.send(&ck2, &read_req(9)).unwrap());
    assert_eq!(
        ev,
        vec![EndpointEvent::Data {
            key: sk2.clone(),
            pdu: read_req(9)
        }]
    );
    let (_, ev) = deliver(&mut s, CLIENT, c.send(&ck1, &read_req(9)).unwrap());
    assert_eq!(
        ev,
        vec![EndpointEvent::Data {
            key: sk1.clone(),
            pdu: read_req(9)
        }]
    );
    // Release collision on the first: both send ReleaseReq at once.
    let from_c = c.release(&ck1, None).unwrap();
    let from_s = s.release(&sk1, None).unwrap();
    let (_, ev_c) = deliver(&mut c, SERVER, from_s);
    let (_, ev_s) = deliver(&mut s, CLIENT, from_c);
    assert!(matches!(
        ev_c.as_slice(),
        [EndpointEvent::ReleaseIndication { .. }]
    ));
    assert!(matches!(
        ev_s.as_slice(),
        [EndpointEvent::ReleaseIndication { .. }]
    ));
    // The client answers at once; the server holds its answer until the client's arrived.
    let rsp_c = c.release_response(&ck1, None).unwrap();
    assert_eq!(rsp_c.len(), 1);
    let held = s.release_response(&sk1, None).unwrap();
    assert!(
        held.is_empty(),
        "the server waits for the client's ReleaseRsp"
    );
    let (out, ev) = deliver(&mut s, CLIENT, rsp_c);
    assert_eq!(ev, vec![EndpointEvent::Released { key: sk1 }]);
    assert_eq!(out.len(), 1, "the held ReleaseRsp leaves now");
    let (_, ev) = deliver(&mut c, SERVER, out);
    assert_eq!(ev, vec![EndpointEvent::Released { key: ck1 }]);
    // The second association is still up.
    assert_eq!(c.associations(), vec![ck2.clone()]);
    let (_, ev) = deliver(&mut s, CLIENT, c.send(&ck2, &read_req(10)).unwrap());
    assert_eq!(ev.len(), 1);
    // Abort ends it on both sides.
    let (_, ev) = deliver(&mut s, CLIENT, c.abort(&ck2).unwrap());
    assert!(matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }] if *key == sk2));
    assert!(s.associations().is_empty());
}

#[test]
fn tampering_on_the_xmpp_path_is_detected() {
    let p = pki();
    let offer = offers().remove(2); // HMAC only: the payload is readable, so tamper with it.
    let (mut c, _) = endpoint(&p, CLIENT, false, offer.clone());
    let (mut s, ssink) = endpoint(&p, SERVER, true, offer);
    let (ck, _sk) = establish(&mut c, &mut s);
    let req = c.send(&ck, &read_req(3)).unwrap();
    // A server on the path changes one base64 character of the protected PDU.
    let tampered = req[0].replacen(
        "<applData>oAUCAQOkAA==</applData>",
        "<applData>oAUCAQSkAA==</applData>",
        1,
    );
    assert_ne!(
        tampered, req[0],
        "the expected applData text is in the stanza"
    );
    let (out, ev) = deliver(&mut s, CLIENT, vec![tampered]);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { .. }]),
        "{ev:?}"
    );
    let names: Vec<_> = ssink.events().iter().map(|e| e.mnemonic).collect();
    assert!(names.contains(&"CLEAR_BAD_ICV_TRF"), "{names:?}");
    // The server sends DtSecAbort (a message) and answers the iq with a stanza error.
    assert!(out.iter().any(|o| o.starts_with("<message")), "{out:?}");
    assert!(out.iter().any(|o| o.contains("type='error'")), "{out:?}");
    // The client learns of the abort.
    let msgs: Vec<_> = out
        .into_iter()
        .filter(|o| o.starts_with("<message"))
        .collect();
    let (_, ev) = deliver(&mut c, SERVER, msgs);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { .. }]),
        "{ev:?}"
    );
    // A stanza with a HandshakeReq in a message (wrong stanza) is refused with its event.
    let (_, st) = c.associate(SERVER, INIT_REQ).unwrap();
    let as_message = st[0]
        .replacen("<iq type='set'", "<message type='normal'", 1)
        .replacen("</iq>", "</message>", 1);
    let (out, ev) = deliver(&mut s, CLIENT, vec![as_message]);
    assert!(ev.is_empty() && out.is_empty());
    assert!(ssink
        .events()
        .iter()
        .any(|e| e.mnemonic == "XMPP_IQ_MISSING"));
    // A certificate bound to another JID: the handshake is refused (address mismatch alarm).
    let (mut other, _) = endpoint(&p, "intruder@example.org/IEC", false, offers().remove(0));
    let (_, st) = other.associate(SERVER, INIT_REQ).unwrap();
    let (out, ev) = deliver(&mut s, CLIENT, st);
    assert!(ev.is_empty(), "{ev:?}");
    assert!(out[0].contains("HandshakeSecReject"), "{out:?}");
}

#[test]
fn single_quoted_namespace_declarations_still_verify() {
    // Prosody re-serialises the stanza with single-quoted attributes (see secmms-xmpp README):
    // only the xmlns declarations outside the signed `tbs` change.
    let p = pki();
    let (mut c, _) = endpoint(&p, CLIENT, false, offers().remove(0));
    let (mut s, ssink) = endpoint(&p, SERVER, true, offers().remove(0));
    let (_, st) = c.associate(SERVER, INIT_REQ).unwrap();
    let (kind, id, env) = parse(&st[0]);
    let env = env
        .unwrap()
        .replace(
            "xmlns=\"http://www.iec.ch/62351/2018/ENV_4\"",
            "xmlns='http://www.iec.ch/62351/2018/ENV_4'",
        )
        .replace(
            "xmlns=\"http://www.iec.ch/62351/2018/E2E_4\"",
            "xmlns='http://www.iec.ch/62351/2018/E2E_4'",
        );
    assert!(env.contains("xmlns='"), "{env}");
    let (_, ev) = s.handle(kind, &id, CLIENT, Some(&env));
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::AssociateIndication { .. }]),
        "{ev:?} {:?}",
        ssink.events()
    );
}

#[test]
fn hostile_stanzas_do_not_disturb_associations() {
    let p = pki();
    let offer = offers().remove(0);
    let (mut c, _) = endpoint(&p, CLIENT, false, offer.clone());
    let (mut s, _) = endpoint(&p, SERVER, true, offer);
    let (ck, sk) = establish(&mut c, &mut s);
    // A request is outstanding at the server (its iq id is easy to guess).
    let req = c.send(&ck, &read_req(5)).unwrap();
    let (_, req_id, _) = parse(&req[0]);
    deliver(&mut s, CLIENT, req);
    // A third party answers our iq with a stanza error: ignored, the association lives on.
    let (out, ev) = c.handle(
        StanzaKind::Iq(IqType::Error),
        &req_id,
        "mallory@example.org/x",
        None,
    );
    assert!(out.is_empty() && ev.is_empty(), "{ev:?}");
    assert_eq!(c.associations(), vec![ck.clone()]);
    // An absurdly long id is not echoed back.
    let long = "x".repeat(10_000);
    let (out, _) = s.handle(StanzaKind::Iq(IqType::Get), &long, CLIENT, None);
    assert!(out.is_empty());
    // A rejectPDU goes in a message, and the request's iq still gets its (empty) answer.
    let reject = [0xa4, 0x06, 0x80, 0x01, 0x05, 0x81, 0x01, 0x01];
    let out = s.send(&sk, &reject).unwrap();
    assert!(out[0].starts_with("<message"), "{out:?}");
    assert!(
        out.iter()
            .any(|o| o == &format!("<iq type='result' id='{req_id}' to='{CLIENT}'/>")),
        "{out:?}"
    );
    // The client restarts and reuses association number 1: its verified handshake replaces the
    // stale association at the server instead of being refused.
    let (mut c2, _) = endpoint(&p, CLIENT, false, offers().remove(0));
    let (_, st) = c2.associate(SERVER, INIT_REQ).unwrap();
    let (_, ev) = deliver(&mut s, CLIENT, st);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }, EndpointEvent::AssociateIndication { .. }] if *key == sk),
        "{ev:?}"
    );
}

// ------------------------------------------------------------------ peer unavailable (§16.5)

const OTHER_SERVER: &str = "ied2@example.org/IEC";

#[test]
fn drop_peer_ends_that_peers_associations_only() {
    let p = pki();
    let offer = offers().remove(0);
    let (mut c, csink) = endpoint(&p, CLIENT, false, offer.clone());
    let (mut s, _) = endpoint(&p, SERVER, true, offer.clone());
    let (mut s2, _) = endpoint(&p, OTHER_SERVER, true, offer);
    let (ck1, _) = establish(&mut c, &mut s);
    let (ck2, _) = establish(&mut c, &mut s);
    // A third association, with another peer.
    let (ck3, st) = c.associate(OTHER_SERVER, INIT_REQ).unwrap();
    let (_, ev) = deliver(&mut s2, CLIENT, st);
    let [EndpointEvent::AssociateIndication { key: sk3, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    let acc = s2.accept(sk3, INIT_RSP).unwrap();
    deliver(&mut c, OTHER_SERVER, acc);
    assert_eq!(c.associations().len(), 3);
    let before = csink.events().len();
    // Another resource of the peer's account going away ends nothing.
    assert!(c.drop_peer(Some("ied1@example.org/other")).is_empty());
    // The peer's resource goes unavailable: both its associations end, locally.
    let mut ev = c.drop_peer(Some(SERVER));
    ev.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(ev.len(), 2, "{ev:?}");
    for (e, k) in ev.iter().zip([&ck1, &ck2]) {
        assert!(
            matches!(e, EndpointEvent::Aborted { key, .. } if key == k),
            "{e:?}"
        );
    }
    assert_eq!(c.associations(), vec![ck3.clone()]);
    assert_eq!(csink.events().len(), before, "no security event, no stanza");
    // The association with the other peer still carries data.
    let (_, ev) = deliver(&mut s2, CLIENT, c.send(&ck3, &read_req(4)).unwrap());
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Data { .. }]),
        "{ev:?}"
    );
    // The bare JID (the whole account unavailable) ends the rest.
    let ev = c.drop_peer(Some("ied2@example.org"));
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }] if *key == ck3),
        "{ev:?}"
    );
    assert!(c.associations().is_empty());
}

// ------------------------------------------------------------------ rekey timeout (§13.3.2)

/// Establishes over a shared test clock, then lets the client start a rekey whose answer never
/// comes: returns the endpoints, the client's key and the instant the rekey started.
fn pending_rekey(
    p: &Pki,
    clock: &Arc<AtomicI64>,
) -> (Ep, Arc<MemorySink>, Ep, AssocKey, AssocKey, i64) {
    let (mut c, csink) = clocked(p, CLIENT, false, clock);
    let (mut s, _) = clocked(p, SERVER, true, clock);
    let (ck, sk) = establish(&mut c, &mut s);
    assert_eq!(c.next_timeout(), None);
    // Past the rekey interval (default 1 h): the next protected PDU carries the rekey value.
    clock.fetch_add(
        secmms_e2e::config::DEFAULT_REKEY_INTERVAL_MS as i64 + 1,
        Ordering::SeqCst,
    );
    let started = clock.load(Ordering::SeqCst);
    let req = c.send(&ck, &read_req(1)).unwrap();
    assert_eq!(req.len(), 1);
    // The request is never delivered, so no changedKey comes back.
    (c, csink, s, ck, sk, started)
}

#[test]
fn rekey_timeout_fires_from_handle_timeout() {
    let p = pki();
    let clock = test_clock();
    let (mut c, csink, mut s, ck, sk, started) = pending_rekey(&p, &clock);
    let timeout = secmms_e2e::config::DEFAULT_REKEY_TIMEOUT_MS as i64;
    assert_eq!(c.next_timeout(), Some(TimeStamp(started + timeout + 1)));
    // Not yet due: nothing happens.
    clock.store(started + timeout, Ordering::SeqCst);
    let (out, ev) = c.handle_timeout();
    assert!(out.is_empty() && ev.is_empty());
    assert_eq!(c.associations(), vec![ck.clone()]);
    // Due: DtSecAbort in a message, E2E_REKEY_TIMEOUT, the association gone.
    clock.store(started + timeout + 1, Ordering::SeqCst);
    let (out, ev) = c.handle_timeout();
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with("<message"), "{out:?}");
    assert!(out[0].contains("DtSecAbort"), "{out:?}");
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }] if *key == ck),
        "{ev:?}"
    );
    let e = csink
        .events()
        .into_iter()
        .find(|e| e.mnemonic == "E2E_REKEY_TIMEOUT")
        .expect("rekey timeout event");
    assert_eq!(e.id.to_string(), "secmms:0.2");
    assert!(c.associations().is_empty());
    assert_eq!(c.next_timeout(), None);
    // The server learns of it and ends its side too.
    let (_, ev) = deliver(&mut s, CLIENT, out);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }] if *key == sk),
        "{ev:?}"
    );
    assert!(s.associations().is_empty());
}

#[test]
fn rekey_timeout_found_by_send_still_sends_the_abort() {
    let p = pki();
    let clock = test_clock();
    let (mut c, csink, mut s, ck, sk, started) = pending_rekey(&p, &clock);
    // No timer run: the next send finds the timeout itself.
    clock.store(
        started + secmms_e2e::config::DEFAULT_REKEY_TIMEOUT_MS as i64 + 1,
        Ordering::SeqCst,
    );
    let stanzas = match c.send(&ck, &read_req(2)) {
        Err(EndpointError::Aborted { key, stanzas, .. }) => {
            assert_eq!(key, ck);
            stanzas
        }
        other => panic!("{other:?}"),
    };
    assert!(
        stanzas.len() == 1 && stanzas[0].contains("DtSecAbort"),
        "{stanzas:?}"
    );
    assert!(csink
        .events()
        .iter()
        .any(|e| e.mnemonic == "E2E_REKEY_TIMEOUT"));
    assert!(c.associations().is_empty());
    assert!(matches!(
        c.send(&ck, &read_req(3)),
        Err(EndpointError::Unknown(_))
    ));
    let (_, ev) = deliver(&mut s, CLIENT, stanzas);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { key, .. }] if *key == sk),
        "{ev:?}"
    );
}

// ------------------------------------------------------------------ stanza errors (§16.4)

fn condition_of(st: &str) -> Option<&str> {
    let i = st.find("<error")?;
    let rest = &st[i..];
    let j = rest.find('>')? + 1;
    let cond = &rest[j..];
    let cond = cond.strip_prefix('<')?;
    cond.split([' ', '/', '>']).next()
}

#[test]
fn data_iq_for_no_association_is_item_not_found() {
    let p = pki();
    let offer = offers().remove(0);
    let (mut c, _) = endpoint(&p, CLIENT, false, offer.clone());
    let (mut s, ssink) = endpoint(&p, SERVER, true, offer);
    let (ck, sk) = establish(&mut c, &mut s);
    let req = c.send(&ck, &read_req(6)).unwrap();
    let (_, req_id, _) = parse(&req[0]);
    // The same data iq from another JID: that peer has no association with this assoID.
    let stranger = "intruder@example.org/IEC";
    let (out, ev) = deliver(&mut s, stranger, req.clone());
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with(&format!("<iq type='error' id='{req_id}' to='{stranger}'>")));
    assert_eq!(condition_of(&out[0]), Some("item-not-found"), "{}", out[0]);
    assert!(out[0].contains("type='cancel'"));
    let e = ssink.events().pop().unwrap();
    assert_eq!(e.mnemonic, "XMPP_UNKNOW_IQ_SECPDU");
    assert_eq!(e.id.to_string(), "IEC62351-4:18.4");
    assert_eq!(s.associations(), vec![sk.clone()], "associations unchanged");
    // The genuine sender is still served.
    let (_, ev) = deliver(&mut s, CLIENT, req);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Data { key, .. }] if *key == sk),
        "{ev:?}"
    );
    // After the association ended, a late data iq for it is item-not-found as well.
    let late = c.send(&ck, &read_req(7)).unwrap();
    deliver(&mut s, CLIENT, c.abort(&ck).unwrap());
    assert!(s.associations().is_empty());
    let (out, ev) = deliver(&mut s, CLIENT, late);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(condition_of(&out[0]), Some("item-not-found"), "{out:?}");
}

#[test]
fn handshake_req_to_a_client_endpoint_is_unexpected_request() {
    let p = pki();
    let offer = offers().remove(0);
    let (mut c, _) = endpoint(&p, CLIENT, false, offer.clone());
    // Another client endpoint (it serves no associations) receives the HandshakeReq.
    let (mut other, osink) = endpoint(&p, SERVER, false, offer);
    let (_, st) = c.associate(SERVER, INIT_REQ).unwrap();
    let (_, id, _) = parse(&st[0]);
    let (out, ev) = deliver(&mut other, CLIENT, st);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].starts_with(&format!("<iq type='error' id='{id}' to='{CLIENT}'>")));
    assert_eq!(
        condition_of(&out[0]),
        Some("unexpected-request"),
        "{}",
        out[0]
    );
    assert!(other.associations().is_empty());
    assert_eq!(
        osink.events().pop().map(|e| e.mnemonic),
        Some("XMPP_UNKNOW_IQ_SECPDU")
    );
    // The stanza error ends the client's pending association (it came from the called JID).
    let (_, ev) = deliver(&mut c, SERVER, out);
    assert!(
        matches!(ev.as_slice(), [EndpointEvent::Aborted { .. }]),
        "{ev:?}"
    );
    assert!(c.associations().is_empty());
}
