//! E2E security in the OSI environment (IEC 62351-4 clause 15, native mode) over two in-memory
//! OSI associations with real certificates: handshake, data both ways and release for each
//! protection mode, the wire form of Table 4, application and security rejects, every §15.7
//! environment check with its exact outcome and event, tampering, replay and the abort SecPDUs.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use secmms_ber::{Limits, Oid, Reader, Tag};
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::replay::ReplayCache;
use secmms_e2e::{
    Context, Diagnostic, E2eConfig, HandshakeDiagnostic, ModeOffer, ProtectionMode, SecPduKind,
    TimeStamp,
};
use secmms_osi::acse::{
    associate_result, Aare, Aarq, Abrt, ApTitle, External, Rlre, Rlrq, SourceDiagnostic,
};
use secmms_osi::presentation::oids;
use secmms_osi::security::{
    AbortRequest, AssociateVerdict, AssociationSecurity, Role, SecurityContext, Verdict,
};
use secmms_osi::{AbortOrigin, Association, OsiConfig, OsiEvent, RejectReason};
use secmms_pki::crypto::{Curve, SigningKey};
use secmms_pki::event::{MemorySink, SecurityEvent, Severity};
use secmms_pki::PeerIdentity;
use secmms_profiles::aprofile::identity_of;
use secmms_profiles::native::events as ev;
use secmms_profiles::native::wire::OsiDiagnostic;
use secmms_profiles::native::{
    Fault, NativeConfig, NativeDiagnostic, NativeError, NativeShared, NativeState,
    DEFAULT_E2E_MMS_AC, DEFAULT_E2E_SECURITY_AS,
};
use secmms_profiles::{ConnectionInfo, Credentials, PeerPolicy, PeerTable};

// ------------------------------------------------------------------ fixtures

const INIT_ERR: &[u8] = &[0xAA, 0x05, 0xA0, 0x03, 0x88, 0x01, 0x01];
const CONCLUDE_REQ: &[u8] = &[0x8B, 0x00];
const CONCLUDE_RSP: &[u8] = &[0x8C, 0x00];

/// A confirmed-Request-like PrPDU: `[0] { INTEGER id, [4] { OCTET STRING marker+filler } }`.
fn mms_pdu(id: u8, filler: usize) -> Vec<u8> {
    let mut payload = b"SECMMS-MARKER".to_vec();
    payload.extend(std::iter::repeat(0x5A).take(filler));
    let mut w = secmms_ber::Writer::new();
    w.constructed(Tag::context(0, true), |w| {
        w.integer(Tag::INTEGER, i64::from(id));
        w.constructed(Tag::context(4, true), |w| {
            w.octets(Tag::OCTET_STRING, &payload)
        });
    });
    w.finish()
}

fn e2e_oid(arcs: &[u64]) -> Oid {
    Oid::new(arcs).unwrap()
}

fn e2e_creds(c: Credentials) -> secmms_e2e::Credentials {
    secmms_e2e::Credentials {
        key: c.key,
        cert_der: c.certificate,
        cert_path: None,
        att_cert: None,
    }
}

/// An ECDSA P-256 end entity of `ca` (the server side, so both signature algorithms run).
fn ec_creds(ca: &Ca, id: PeerIdentity, serial: u8) -> secmms_e2e::Credentials {
    let key = SigningKey::generate_ec(Curve::P256).unwrap();
    let c = secmms_pki::cert::issue::issue(
        &secmms_pki::cert::issue::CertSpec::end_entity(id, T0 - 3600, T0 + 86_400, serial),
        &key,
        Some((&ca.cert, &ca.key)),
    )
    .unwrap();
    secmms_e2e::Credentials {
        key,
        cert_der: c.to_der().unwrap(),
        cert_path: None,
        att_cert: None,
    }
}

struct E2eSide {
    shared: NativeShared,
    sink: Arc<MemorySink>,
    /// Milliseconds since the epoch.
    clock: Arc<AtomicI64>,
}

impl E2eSide {
    fn new(ca: &Ca, creds: secmms_e2e::Credentials, cfg: E2eConfig, table: PeerTable) -> E2eSide {
        let ctx = Context {
            config: Arc::new(cfg),
            credentials: Arc::new(creds),
            validator: Arc::new(validator(ca)),
            replay: Arc::new(Mutex::new(ReplayCache::new())),
        };
        let sink = Arc::new(MemorySink::new());
        let clock = Arc::new(AtomicI64::new(T0 * 1000));
        let shared = NativeShared::new(ctx, NativeConfig::default(), table, sink.clone());
        E2eSide {
            shared,
            sink,
            clock,
        }
    }
    fn events(&self) -> Vec<SecurityEvent> {
        self.sink.events()
    }
    fn mnemonics(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.mnemonic).collect()
    }
    fn advance_ms(&self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }
}

struct Fx {
    ca: Ca,
    client: E2eSide,
    server: E2eSide,
}

fn client_config(offer: ModeOffer) -> E2eConfig {
    E2eConfig {
        offer,
        ..E2eConfig::default()
    }
}

fn fixture(offer: ModeOffer) -> Fx {
    fixture_with(offer, PeerTable::require_end_to_end())
}

fn fixture_with(offer: ModeOffer, server_table: PeerTable) -> Fx {
    let ca = Ca::new("Root");
    // Client RSA-2048 (sha256WithRSAEncryption), server ECDSA P-256.
    let client = E2eSide::new(
        &ca,
        e2e_creds(ca.valid(client_identity(), 1)),
        client_config(offer),
        PeerTable::require_end_to_end(),
    );
    let server = E2eSide::new(
        &ca,
        ec_creds(&ca, server_identity(), 2),
        E2eConfig::default(),
        server_table,
    );
    Fx { ca, client, server }
}

fn gcm() -> ModeOffer {
    ModeOffer::Ae(vec![AeAlg::Aes128Gcm])
}
fn cbc_hmac() -> ModeOffer {
    ModeOffer::NonAe {
        encr: vec![EncrAlg::Aes128Cbc],
        icv: vec![IcvAlg::HmacSha256],
    }
}
fn hmac_only() -> ModeOffer {
    ModeOffer::NonAe {
        encr: vec![],
        icv: vec![IcvAlg::HmacSha256],
    }
}

fn e2e_policy() -> PeerPolicy {
    PeerTable::require_end_to_end().default.unwrap()
}

// ------------------------------------------------------------------ a spying/tampering wrapper

/// APDUs a hook saw (decoded from the received octets; `raw` is the wire form).
#[derive(Default)]
struct Seen {
    aarq: Vec<Aarq>,
    aare: Vec<Aare>,
    rejecting: Vec<Aare>,
    abrt: Vec<Abrt>,
    rlrq: Vec<Rlrq>,
    rlre: Vec<Rlre>,
}

type Edit<T> = Option<Box<dyn FnMut(&mut T) + Send>>;

/// The native hook with a record of what it received and optional edits of what it sends
/// (applied after the hook decorated the APDU).
struct Wrap {
    inner: NativeState,
    /// The side's clock (Unix ms), stamped on the state before every call.
    clock: Arc<AtomicI64>,
    seen: Arc<Mutex<Seen>>,
    aarq: Edit<Aarq>,
    aare: Edit<Aare>,
    rlrq: Edit<Rlrq>,
    abrt: Edit<Abrt>,
}

impl Wrap {
    fn new(inner: NativeState, clock: Arc<AtomicI64>) -> (Wrap, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (
            Wrap {
                inner,
                clock,
                seen: seen.clone(),
                aarq: None,
                aare: None,
                rlrq: None,
                abrt: None,
            },
            seen,
        )
    }
}

impl Wrap {
    /// The state, given the side's time (what `SecureAssociation` does with each call's `Now`).
    fn stamped(&mut self) -> &mut NativeState {
        self.inner
            .set_now(TimeStamp(self.clock.load(Ordering::SeqCst)));
        &mut self.inner
    }
}

impl AssociationSecurity for Wrap {
    fn decorate_aarq(&mut self, c: &SecurityContext<'_>, a: &mut Aarq) -> Result<(), AbortRequest> {
        self.stamped().decorate_aarq(c, a)?;
        if let Some(f) = &mut self.aarq {
            f(a);
        }
        Ok(())
    }
    fn check_aarq(&mut self, c: &SecurityContext<'_>, a: &Aarq) -> AssociateVerdict {
        self.seen.lock().unwrap().aarq.push(a.clone());
        self.stamped().check_aarq(c, a)
    }
    fn unsupported_application_context(&mut self, c: &SecurityContext<'_>, a: &Aarq) {
        self.seen.lock().unwrap().aarq.push(a.clone());
        self.stamped().unsupported_application_context(c, a)
    }
    fn decorate_aare(&mut self, c: &SecurityContext<'_>, a: &mut Aare) -> Result<(), AbortRequest> {
        self.stamped().decorate_aare(c, a)?;
        if let Some(f) = &mut self.aare {
            f(a);
        }
        Ok(())
    }
    fn check_aare(&mut self, c: &SecurityContext<'_>, a: &Aare) -> Verdict {
        self.seen.lock().unwrap().aare.push(a.clone());
        self.stamped().check_aare(c, a)
    }
    fn check_rejecting_aare(&mut self, c: &SecurityContext<'_>, a: &Aare) -> Option<Vec<u8>> {
        self.seen.lock().unwrap().rejecting.push(a.clone());
        self.stamped().check_rejecting_aare(c, a)
    }
    fn decorate_rlrq(&mut self, c: &SecurityContext<'_>, r: &mut Rlrq) -> Result<(), AbortRequest> {
        self.stamped().decorate_rlrq(c, r)?;
        if let Some(f) = &mut self.rlrq {
            f(r);
        }
        Ok(())
    }
    fn check_rlrq(&mut self, c: &SecurityContext<'_>, r: &Rlrq) -> Verdict {
        self.seen.lock().unwrap().rlrq.push(r.clone());
        self.stamped().check_rlrq(c, r)
    }
    fn decorate_rlre(&mut self, c: &SecurityContext<'_>, r: &mut Rlre) -> Result<(), AbortRequest> {
        self.stamped().decorate_rlre(c, r)
    }
    fn check_rlre(&mut self, c: &SecurityContext<'_>, r: &Rlre) -> Verdict {
        self.seen.lock().unwrap().rlre.push(r.clone());
        self.stamped().check_rlre(c, r)
    }
    fn decorate_abrt(&mut self, c: &SecurityContext<'_>, a: &mut Abrt) {
        self.stamped().decorate_abrt(c, a);
        if let Some(f) = &mut self.abrt {
            f(a);
        }
    }
    fn check_abrt(&mut self, c: &SecurityContext<'_>, a: &Abrt) {
        self.seen.lock().unwrap().abrt.push(a.clone());
        self.stamped().check_abrt(c, a)
    }
    fn protocol_error(&mut self, c: &SecurityContext<'_>, e: &secmms_osi::OsiError) {
        self.stamped().protocol_error(c, e)
    }
}

// ------------------------------------------------------------------ two associations in memory

/// An association whose native state the test reaches between calls.
type Assoc = Association<Wrap>;

/// The native state of `a`.
fn st(a: &Assoc) -> &NativeState {
    &a.security().inner
}

/// Queues a fault's abort on `a` and returns its error (what a runtime does).
fn apply<T>(a: &mut Assoc, f: Fault) -> Result<T, NativeError> {
    if let Some(req) = f.abort {
        a.abort_with(req)?;
    }
    Err(f.error)
}

/// Protects one MMS PDU and queues it on the e2eSecurityAS context.
fn send(a: &mut Assoc, pdu: &[u8]) -> Result<(), NativeError> {
    let r = a.security_mut().stamped().protect(pdu);
    match r {
        Ok((pcid, bytes)) => Ok(a.send_data_on(pcid, &bytes)?),
        Err(f) => apply(a, *f),
    }
}

/// Checks one received P-DATA value; a failure queues the abort.
fn receive(a: &mut Assoc, context_id: u32, pdu: &[u8]) -> Result<Option<Vec<u8>>, NativeError> {
    let r = a.security_mut().stamped().unprotect(context_id, pdu);
    r.or_else(|f| apply(a, *f))
}

/// Runs the E2E timers at the state's clock.
fn handle_timeout(a: &mut Assoc) -> Result<(), NativeError> {
    let r = a.security_mut().stamped().handle_timeout();
    r.or_else(|f| apply(a, *f))
}

struct Pair {
    c: Assoc,
    s: Assoc,
    cseen: Arc<Mutex<Seen>>,
    sseen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Edits {
    aarq: Edit<Aarq>,
    aare: Edit<Aare>,
    rlrq: Edit<Rlrq>,
    /// Client side: applied to the ABRT it sends.
    abrt: Edit<Abrt>,
}

fn client_osi(side: &E2eSide) -> OsiConfig {
    let mut osi = OsiConfig::default();
    side.shared.prepare_osi_config(&mut osi, Role::Initiator);
    osi
}

fn server_osi(side: &E2eSide) -> OsiConfig {
    let mut osi = OsiConfig::server_default();
    side.shared.prepare_osi_config(&mut osi, Role::Responder);
    osi
}

impl Pair {
    fn new(fx: &Fx, edits: Edits) -> Pair {
        let cosi = client_osi(&fx.client);
        let chook = fx.client.shared.initiator_state(
            ConnectionInfo::default(),
            e2e_policy(),
            identity_of(cosi.remote_ap_title.as_ref(), cosi.remote_ae_qualifier),
        );
        let shook = fx.server.shared.responder_state(ConnectionInfo::default());
        let (mut cw, cseen) = Wrap::new(chook, fx.client.clock.clone());
        let (mut sw, sseen) = Wrap::new(shook, fx.server.clock.clone());
        cw.aarq = edits.aarq;
        cw.rlrq = edits.rlrq;
        cw.abrt = edits.abrt;
        sw.aare = edits.aare;
        Pair {
            c: Association::with_hook(Role::Initiator, cosi, cw),
            s: Association::with_hook(Role::Responder, server_osi(&fx.server), sw),
            cseen,
            sseen,
        }
    }

    /// Client → server: every queued byte; returns what was sent.
    fn c2s(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(b) = self.c.poll_transmit() {
            self.s.handle_input(&b).unwrap();
            all.extend(b);
        }
        all
    }

    fn s2c(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(b) = self.s.poll_transmit() {
            self.c.handle_input(&b).unwrap();
            all.extend(b);
        }
        all
    }

    /// CR/CC/CN(AARQ). Returns the server's events.
    fn connect(&mut self) -> Vec<OsiEvent> {
        self.c.connect(hex::decode(INIT_REQ).unwrap()).unwrap();
        self.c2s();
        self.s2c();
        self.c2s();
        events(&mut self.s)
    }

    /// A full handshake that must succeed.
    fn establish(&mut self) {
        let sev = self.connect();
        let [OsiEvent::AssociateIndication { user_data, .. }] = sev.as_slice() else {
            panic!("server {sev:?}")
        };
        assert_eq!(
            user_data.as_deref(),
            Some(&hex::decode(INIT_REQ).unwrap()[..])
        );
        self.s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
        self.s2c();
        let cev = events(&mut self.c);
        let [OsiEvent::AssociateConfirm { user_data, .. }] = cev.as_slice() else {
            panic!("client {cev:?}")
        };
        assert_eq!(
            user_data.as_deref(),
            Some(&hex::decode(INIT_RSP).unwrap()[..])
        );
        assert!(st(&self.c).is_established() && st(&self.s).is_established());
    }

    /// Delivers the data events of `a` through its channel.
    fn receive_all(a: &mut Assoc) -> Vec<Result<Option<Vec<u8>>, NativeError>> {
        let mut out = Vec::new();
        for e in events(a) {
            match e {
                OsiEvent::Data { context_id, pdu } => out.push(receive(a, context_id, &pdu)),
                other => panic!("unexpected event {other:?}"),
            }
        }
        out
    }

    fn server_receives(&mut self) -> Vec<Result<Option<Vec<u8>>, NativeError>> {
        Self::receive_all(&mut self.s)
    }

    fn client_receives(&mut self) -> Vec<Result<Option<Vec<u8>>, NativeError>> {
        Self::receive_all(&mut self.c)
    }
}

/// The one EXTERNAL value of a user-information, asserting the e2eSecurityAS pcid (5).
fn e2e_value(ui: &[External]) -> Vec<u8> {
    assert_eq!(ui.len(), 1, "SEQUENCE SIZE (1)");
    assert_eq!(ui[0].indirect_reference, Some(5), "pcid of e2eSecurityAS");
    assert!(ui[0].direct_reference.is_none());
    ui[0].single_value().expect("single-ASN1-type").to_vec()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn no_alarms(side: &E2eSide) {
    let bad: Vec<_> = side
        .events()
        .into_iter()
        .filter(|e| e.severity <= Severity::Error)
        .collect();
    assert!(bad.is_empty(), "{bad:?}");
}

// ------------------------------------------------------------------ the happy paths

fn full_cycle(offer: ModeOffer, expected: ProtectionMode) {
    let fx = fixture(offer);
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    assert_eq!(st(&p.c).protection(), Some(expected));
    assert_eq!(st(&p.s).protection(), Some(expected));
    assert_eq!(st(&p.s).peer().cloned(), Some(client_identity()));
    assert_eq!(st(&p.c).peer().cloned(), Some(server_identity()));
    assert_eq!(st(&p.c).e2e_context_id(), Some(5));
    assert_eq!(st(&p.s).e2e_context_id(), Some(5));
    let asso = st(&p.c).asso_id().unwrap();
    assert_eq!(Some(&asso), st(&p.s).asso_id().as_ref());
    assert!(asso.contains(':'), "AssoID c:s, got {asso}");

    // Data both ways, small and segmented (5 000 octets > one 2 048-octet TPDU), several PDUs
    // in the same millisecond (sequence numbers 0, 1, 2 …).
    for (i, size) in [0usize, 5000, 10].into_iter().enumerate() {
        let req = mms_pdu(i as u8, size);
        send(&mut p.c, &req).unwrap();
        let wire = p.c2s();
        // Encrypted modes hide the PrPDU; the clear mode carries it verbatim.
        assert_eq!(
            find(&wire, b"SECMMS-MARKER").is_some(),
            !expected.encrypted(),
            "PrPDU visible on the wire"
        );
        let got = p.server_receives();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().as_deref(), Some(&req[..]));
        let rsp = mms_pdu(100 + i as u8, size);
        send(&mut p.s, &rsp).unwrap();
        p.s2c();
        let got = p.client_receives();
        assert_eq!(got[0].as_ref().unwrap().as_deref(), Some(&rsp[..]));
    }
    // A later time value restarts the sequence numbers.
    fx.client.advance_ms(1500);
    fx.server.advance_ms(1500);
    send(&mut p.c, &mms_pdu(9, 3)).unwrap();
    send(&mut p.c, &mms_pdu(10, 3)).unwrap();
    p.c2s();
    let got = p.server_receives();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| matches!(r, Ok(Some(_)))), "{got:?}");

    // Release: Conclude PDUs inside ReleaseReq / ReleaseRsp (§15.6).
    p.c.release(Some(CONCLUDE_REQ.to_vec())).unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    let [OsiEvent::ReleaseIndication { user_data, rlrq }] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(CONCLUDE_REQ));
    let v = e2e_value(&rlrq.user_information);
    assert_eq!(
        v[0], 0x30,
        "ReleaseReq is a plain SEQUENCE in OSI-AssoRelReq"
    );
    assert!(find(&v, CONCLUDE_REQ).is_some());
    p.s.release_response(Some(CONCLUDE_RSP.to_vec())).unwrap();
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::ReleaseConfirm { user_data, rlre }, OsiEvent::Closed] = cev.as_slice() else {
        panic!("{cev:?}")
    };
    assert_eq!(user_data.as_deref(), Some(CONCLUDE_RSP));
    assert_eq!(e2e_value(&rlre.user_information)[0], 0x30);
    assert!(p.s.is_closed() && p.c.is_closed());
    assert!(!st(&p.c).is_established());
    assert!(matches!(
        send(&mut p.c, &mms_pdu(1, 1)),
        Err(NativeError::NotEstablished)
    ));
    // Only the success notices were raised.
    for side in [&fx.client, &fx.server] {
        assert_eq!(side.mnemonics(), vec!["E2E_ESTABLISHED", "E2E_RELEASED"]);
        no_alarms(side);
    }
    assert_eq!(st(&p.c).last_diagnostic().cloned(), None);
    assert_eq!(st(&p.s).last_diagnostic().cloned(), None);
}

#[test]
fn aes_gcm_handshake_data_release() {
    full_cycle(gcm(), ProtectionMode::Ae(AeAlg::Aes128Gcm));
}

#[test]
fn aes_cbc_hmac_handshake_data_release() {
    full_cycle(
        cbc_hmac(),
        ProtectionMode::NonAe {
            encr: Some(EncrAlg::Aes128Cbc),
            icv: IcvAlg::HmacSha256,
        },
    );
}

#[test]
fn hmac_only_handshake_data_release() {
    full_cycle(
        hmac_only(),
        ProtectionMode::NonAe {
            encr: None,
            icv: IcvAlg::HmacSha256,
        },
    );
}

#[test]
fn aarq_and_aare_on_the_wire() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    let sseen = p.sseen.lock().unwrap();
    let aarq = &sseen.aarq[0];
    // Application context e2eMmsAC (§15.2), kernel only (§15.1).
    assert_eq!(aarq.application_context_name, e2e_oid(DEFAULT_E2E_MMS_AC));
    let ac = e2e_oid(DEFAULT_E2E_MMS_AC).to_ber_content();
    let mut a1 = vec![0xA1, ac.len() as u8 + 2, 0x06, ac.len() as u8];
    a1.extend(&ac);
    assert!(find(&aarq.raw, &a1).is_some(), "A1 06 <e2eMmsAC>");
    assert!(aarq.mechanism_name.is_none());
    assert!(aarq.calling_authentication_value.is_none());
    assert!(aarq.sender_acse_requirements.is_none());
    assert!(aarq.raw_authentication_value.is_none());
    // Titles present (Annex G.6 binding).
    assert!(matches!(aarq.calling_ap_title, Some(ApTitle::Form2(_))));
    assert!(aarq.called_ap_title.is_some() && aarq.called_ae_qualifier.is_some());
    // One EXTERNAL { 02 01 05, A0 { 30 { 0C pp, 30 tbs { token1, A8 initiate-Request }, 30 sign } } }.
    let v = e2e_value(&aarq.user_information);
    let mut r = Reader::new(&v, Limits::default());
    let hs = r.read().unwrap();
    assert_eq!(hs.tag(), Tag::SEQUENCE);
    let mut c = hs.children().unwrap();
    assert_eq!(c.read().unwrap().tag(), Tag::UTF8_STRING, "pp");
    let tbs = c.read().unwrap();
    let init = hex::decode(INIT_REQ).unwrap();
    assert!(
        find(tbs.content(), &init).is_some(),
        "initiate-Request in tbs"
    );
    // The initiate-Request is nowhere bare on the MMS context.
    assert!(aarq
        .user_information
        .iter()
        .all(|e| e.indirect_reference != Some(3)));
    // The presentation contexts: ACSE 1, MMS 3, e2eSecurityAS 5, all accepted.
    let ctxs = p.s.contexts();
    assert!(ctxs
        .iter()
        .any(|c| c.id == 5 && c.accepted && c.abstract_syntax == e2e_oid(DEFAULT_E2E_SECURITY_AS)));
    assert!(ctxs
        .iter()
        .any(|c| c.id == 1 && c.abstract_syntax == oids::acse_as()));
    assert!(ctxs
        .iter()
        .any(|c| c.id == 3 && c.abstract_syntax == oids::mms_as()));
    drop(sseen);
    // The AARE: EXTERNAL { 02 01 05, A0 { A0 { 0C pp, … } } } — HandshakeRsp.assoAccept [0].
    let cseen = p.cseen.lock().unwrap();
    let aare = &cseen.aare[0];
    assert_eq!(aare.result, associate_result::ACCEPTED);
    assert_eq!(aare.application_context_name, e2e_oid(DEFAULT_E2E_MMS_AC));
    assert!(aare.mechanism_name.is_none() && aare.responding_authentication_value.is_none());
    let v = e2e_value(&aare.user_information);
    let mut r = Reader::new(&v, Limits::default());
    let acc = r.read().unwrap();
    assert_eq!(acc.tag(), Tag::context(0, true), "assoAccept [0]");
    let mut c = acc.children().unwrap();
    assert_eq!(c.read().unwrap().tag(), Tag::UTF8_STRING, "pp");
    let rsp = hex::decode(INIT_RSP).unwrap();
    assert!(
        find(c.read().unwrap().content(), &rsp).is_some(),
        "initiate-Response in tbs"
    );
}

#[test]
fn data_both_ways_is_on_the_e2e_context() {
    let fx = fixture(hmac_only());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    send(&mut p.c, &mms_pdu(1, 0)).unwrap();
    let wire = p.c2s();
    // P-DATA: 61 L 30 L 02 01 05 A0 L 30 … (§15.4).
    let at = find(&wire, &[0x02, 0x01, 0x05, 0xA0]).expect("PDV on pcid 5");
    assert_eq!(wire[at - 2], 0x30);
    let evs = events(&mut p.s);
    let [OsiEvent::Data { context_id: 5, pdu }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    assert_eq!(pdu[0], 0x30, "ClearTransfer");
    assert_eq!(
        receive(&mut p.s, 5, pdu).unwrap().as_deref(),
        Some(&mms_pdu(1, 0)[..])
    );
}

// ------------------------------------------------------------------ rejects

#[test]
fn application_reject_reaches_the_client() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    let sev = p.connect();
    assert!(matches!(
        sev.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ));
    // The application refuses (transient, with its own diagnostic): §15.4 keeps the result and
    // sets no-reason-given.
    p.s.reject(
        associate_result::REJECTED_TRANSIENT,
        SourceDiagnostic::ServiceUser(5),
        Some(INIT_ERR.to_vec()),
    )
    .unwrap();
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AssociateRejected {
        reason,
        aare,
        user_data,
    }, OsiEvent::Closed] = cev.as_slice()
    else {
        panic!("{cev:?}")
    };
    assert_eq!(
        reason,
        &RejectReason::Acse {
            result: associate_result::REJECTED_TRANSIENT,
            diagnostic: SourceDiagnostic::ServiceUser(1)
        }
    );
    assert_eq!(
        user_data.as_deref(),
        Some(INIT_ERR),
        "initiate-Error from ApplicationReject"
    );
    let v = e2e_value(&aare.as_ref().unwrap().user_information);
    assert_eq!(v[0], 0xA1, "HandshakeRsp.applReject [1]");
    assert!(find(&v, INIT_ERR).is_some());
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::ApplicationRejected {
            appl_data: Some(INIT_ERR.to_vec())
        })
    );
    assert_eq!(p.cseen.lock().unwrap().rejecting.len(), 1);
    no_alarms(&fx.client);
    no_alarms(&fx.server);
}

#[test]
fn untrusted_certificate_is_rejected_with_handshake_sec_reject() {
    let fx = fixture(gcm());
    // A client whose certificate comes from a CA the server does not trust.
    let other = Ca::new("Other");
    let rogue = E2eSide::new(
        &fx.ca,
        e2e_creds(other.valid(client_identity(), 7)),
        client_config(gcm()),
        PeerTable::require_end_to_end(),
    );
    let fx2 = Fx {
        ca: fx.ca,
        client: rogue,
        server: fx.server,
    };
    let mut p = Pair::new(&fx2, Edits::default());
    let sev = p.connect();
    assert_eq!(
        sev,
        vec![OsiEvent::Closed],
        "no indication for the application"
    );
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AssociateRejected { reason, aare, .. }, OsiEvent::Closed] = cev.as_slice()
    else {
        panic!("{cev:?}")
    };
    assert_eq!(
        reason,
        &RejectReason::Acse {
            result: associate_result::REJECTED_PERMANENT,
            diagnostic: SourceDiagnostic::ServiceUser(1)
        }
    );
    let v = e2e_value(&aare.as_ref().unwrap().user_information);
    assert_eq!(v[0], 0xA2, "HandshakeRsp.secReject [2]");
    // Server: PKCERT_ERROR_ASS_REQ (1.6, error), so the diagnostic is sent.
    let sevs = fx2.server.events();
    assert_eq!(sevs.len(), 1, "{sevs:?}");
    assert_eq!(sevs[0].mnemonic, "PKCERT_ERROR_ASS_REQ");
    assert_eq!(sevs[0].id.to_string(), "IEC62351-4:1.6");
    let Some(NativeDiagnostic::SecurityRejected { diagnostic }) =
        st(&p.c).last_diagnostic().cloned()
    else {
        panic!("{:?}", st(&p.c).last_diagnostic().cloned())
    };
    assert_eq!(
        diagnostic,
        Some(HandshakeDiagnostic::InvalidCertificationPath)
    );
    assert!(matches!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::Security {
            sent: Some(SecPduKind::HandshakeSecReject),
            ..
        })
    ));
}

#[test]
fn address_mismatch_is_an_alarm_reject_without_diagnostic() {
    let fx = fixture(gcm());
    // The client's AARQ claims another calling AE-qualifier than its certificate carries.
    let edits = Edits {
        aarq: Some(Box::new(|a: &mut Aarq| {
            a.calling_ae_qualifier = Some(secmms_osi::acse::AeQualifier::Form2(13))
        })),
        ..Edits::default()
    };
    let mut p = Pair::new(&fx, edits);
    p.connect();
    p.s2c();
    assert_eq!(fx.server.mnemonics(), vec!["ADDR_MISMATCH_ASS_REQ"]);
    assert_eq!(fx.server.events()[0].severity, Severity::Alarm);
    // Alarm: the HandshakeSecReject carries no diagnostic; the client records 4.11.
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::SecurityRejected { diagnostic: None })
    );
    assert_eq!(
        fx.client.mnemonics(),
        vec!["HANDSHAKE_SEC_REJECT_ALARM_RCVD"]
    );
}

// ------------------------------------------------------------------ §15.7 checks in the AARQ

/// Runs an association whose AARQ was edited; asserts the server answered with an AARE
/// rejected-permanent `diag` without SecPDU, raised exactly `event`, and never ran the engine.
fn assert_env_reject(edit: impl FnMut(&mut Aarq) + Send + 'static, diag: i64, event: &str) {
    assert_env_reject_with(fixture(gcm()), edit, diag, event)
}

fn assert_env_reject_with(
    fx: Fx,
    edit: impl FnMut(&mut Aarq) + Send + 'static,
    diag: i64,
    event: &str,
) {
    let mut p = Pair::new(
        &fx,
        Edits {
            aarq: Some(Box::new(edit)),
            ..Edits::default()
        },
    );
    let sev = p.connect();
    assert_eq!(sev, vec![OsiEvent::Closed], "{event}");
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AssociateRejected { reason, aare, .. }, OsiEvent::Closed] = cev.as_slice()
    else {
        panic!("{event}: {cev:?}")
    };
    assert_eq!(
        reason,
        &RejectReason::Acse {
            result: associate_result::REJECTED_PERMANENT,
            diagnostic: SourceDiagnostic::ServiceUser(diag)
        },
        "{event}"
    );
    assert!(
        aare.as_ref().unwrap().user_information.is_empty(),
        "{event}: no SecPDU"
    );
    assert_eq!(fx.server.mnemonics(), vec![event]);
    let e = &fx.server.events()[0];
    if let Some(def) = ev::CATALOGUE
        .iter()
        .chain(&ev::LOCAL)
        .find(|d| d.mnemonic == event)
    {
        assert_eq!(e.id, def.id);
    }
    // The client learns that the refusal carried no SecPDU.
    assert_eq!(fx.client.mnemonics(), vec!["E2E_PLAIN_REJECT_RCVD"]);
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PlainRejection {
            result: 1,
            diagnostic: SourceDiagnostic::ServiceUser(diag)
        })
    );
}

#[test]
fn env_wrong_application_context() {
    // basic-AC is accepted by the association, so the hook sees it: 15.5 and diagnostic 2.
    assert_env_reject(
        |a| a.application_context_name = oids::mms_ac(),
        2,
        "INV_APPL_CNTX_RQ",
    );
}

#[test]
fn env_unknown_application_context_rejected_by_the_association() {
    // Not accepted at all: the association rejects before check_aarq; the hook still logs 15.5.
    assert_env_reject(
        |a| a.application_context_name = e2e_oid(&[1, 2, 3, 4]),
        2,
        "INV_APPL_CNTX_RQ",
    );
}

#[test]
fn env_missing_calling_ap_title() {
    assert_env_reject(|a| a.calling_ap_title = None, 1, "INV_CALLING_AP_TITLE_RQ");
}

#[test]
fn env_missing_calling_ae_qualifier() {
    assert_env_reject(
        |a| a.calling_ae_qualifier = None,
        1,
        "INV_CALLING_AE_QUAL_RQ",
    );
}

#[test]
fn env_called_ap_title_not_ours() {
    assert_env_reject(
        |a| a.called_ap_title = Some(ApTitle::Form2(e2e_oid(&[1, 1, 1, 999, 7]))),
        1,
        "INV_CALLED_AP_TITLE_RQ",
    );
}

#[test]
fn env_mechanism_name_present() {
    assert_env_reject(
        |a| a.mechanism_name = Some(secmms_profiles::aprofile::mechanism_name()),
        1,
        "AUTH_MECH_NOT_USED_RQ",
    );
}

#[test]
fn env_wrong_indirect_reference() {
    assert_env_reject(
        |a| a.user_information[0].indirect_reference = Some(3),
        1,
        "OSI_INV_INDR_REF",
    );
}

#[test]
fn env_external_not_size_1() {
    assert_env_reject(
        |a| {
            let e = a.user_information[0].clone();
            a.user_information.push(e);
        },
        1,
        "OSI_ENV_PROT_ERR",
    );
}

#[test]
fn env_wrong_type_in_external() {
    // The HandshakeReq re-tagged as if it were a CHOICE alternative.
    assert_env_reject(
        |a| {
            if let secmms_osi::acse::ExternalEncoding::SingleAsn1Type(v) =
                &mut a.user_information[0].encoding
            {
                v[0] = 0xA0;
            }
        },
        1,
        "OSI_ENV_PROT_ERR",
    );
}

#[test]
fn policy_row_without_end_to_end_security() {
    let fx = fixture_with(gcm(), PeerTable::require_a_profile());
    assert_env_reject_with(fx, |_| {}, 1, "E2E_POLICY_REFUSED");
}

// ------------------------------------------------------------------ §15.7 checks in the AARE

/// The server's AARE is edited; the client must abort with osiDiag `d` and raise `event`; the
/// server must record the received osiDiag.
fn assert_aare_abort(edit: impl FnMut(&mut Aare) + Send + 'static, d: OsiDiagnostic, event: &str) {
    let fx = fixture(gcm());
    let mut p = Pair::new(
        &fx,
        Edits {
            aare: Some(Box::new(edit)),
            ..Edits::default()
        },
    );
    let sev = p.connect();
    assert!(matches!(
        sev.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ));
    p.s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
    p.s2c();
    let cev = events(&mut p.c);
    assert!(
        matches!(
            cev.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "{cev:?}"
    );
    assert_eq!(fx.client.mnemonics(), vec![event]);
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::Environment {
            event: fx.client.events()[0].id,
            mnemonic: fx.client.events()[0].mnemonic,
            osi_diag: Some(d)
        })
    );
    p.c2s();
    let sev = events(&mut p.s);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    let abrt = info.abrt.as_ref().unwrap();
    assert_eq!(abrt.source, 0);
    assert_eq!(abrt.diagnostic, None, "abort-diagnostic absent (§15.6)");
    assert_eq!(
        e2e_value(&abrt.user_information),
        vec![0x83, 0x01, d.code() as u8],
        "AssoAbort.osiDiag [3]"
    );
    assert_eq!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerOsiDiagnostic {
            code: d.code(),
            diagnostic: Some(d)
        })
    );
    assert_eq!(
        fx.server.mnemonics(),
        vec!["E2E_ESTABLISHED", "E2E_OSI_DIAG_RCVD"]
    );
}

#[test]
fn env_aare_with_mechanism_name() {
    assert_aare_abort(
        |a| a.mechanism_name = Some(secmms_profiles::aprofile::mechanism_name()),
        OsiDiagnostic::AuthenticationMechanismNotAllowed,
        "AUTH_MECH_NOT_USED_ABT",
    );
}

#[test]
fn env_aare_wrong_application_context() {
    assert_aare_abort(
        |a| a.application_context_name = oids::mms_ac(),
        OsiDiagnostic::InvalidApplicationContext,
        "INV_APPL_CNTX_RE",
    );
}

#[test]
fn env_aare_responding_title_not_the_called_one() {
    assert_aare_abort(
        |a| a.responding_ap_title = Some(ApTitle::Form2(e2e_oid(&[1, 1, 1, 999, 2]))),
        OsiDiagnostic::InvalidCalledApTitle,
        "INV_CALLED_AP_TITLE_RE",
    );
}

#[test]
fn env_aare_wrong_choice_alternative() {
    // An accepting AARE whose HandshakeRsp claims to be a secReject [2].
    assert_aare_abort(
        |a| {
            if let secmms_osi::acse::ExternalEncoding::SingleAsn1Type(v) =
                &mut a.user_information[0].encoding
            {
                v[0] = 0xA2;
            }
        },
        OsiDiagnostic::OsiEnvProtocolError,
        "OSI_ENV_PROT_ERR",
    );
}

// ------------------------------------------------------------------ data phase

#[test]
fn bare_mms_on_the_mms_context_is_invalid_pci() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    // The client's runtime wrongly sends bare MMS (OSI layer, pcid 3).
    p.c.send_data(&mms_pdu(1, 0)).unwrap();
    p.c2s();
    let got = p.server_receives();
    let [Err(NativeError::Environment { event, diagnostic })] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(*diagnostic, OsiDiagnostic::InvalidPci);
    assert_eq!(event.mnemonic, "OSI_INV_PCI");
    assert_eq!(event.id.to_string(), "IEC62351-4:15.3");
    assert!(p.s.is_closed());
    assert_eq!(
        fx.server.mnemonics(),
        vec!["E2E_ESTABLISHED", "OSI_INV_PCI"]
    );
    // ABRT { source user, [30] EXTERNAL { 5, A0 { 83 01 02 } } } reaches the client.
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = cev.as_slice() else {
        panic!("{cev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    assert_eq!(
        e2e_value(&info.abrt.as_ref().unwrap().user_information),
        vec![0x83, 0x01, 0x02]
    );
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerOsiDiagnostic {
            code: 2,
            diagnostic: Some(OsiDiagnostic::InvalidPci)
        })
    );
}

/// Asserts the ABRT the client received carries a DtSecAbort without diagnostic (alarm) and
/// that the client reported it.
fn assert_client_got_dt_sec_abort(p: &mut Pair, fx: &Fx) {
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = cev.as_slice() else {
        panic!("{cev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    let v = e2e_value(&info.abrt.as_ref().unwrap().user_information);
    assert_eq!(v[0], 0xA1, "AssoAbort.dtSecAbort [1]");
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerAborted {
            kind: SecPduKind::DtSecAbort,
            diagnostic: None,
            appl_data: None
        })
    );
    let last = fx.client.events().pop().unwrap();
    assert_eq!(last.mnemonic, "DT_SEC_ABORT_ALARM_RCVD");
    assert_eq!(last.id.to_string(), "IEC62351-4:6.11");
}

#[test]
fn tampered_clear_transfer_is_aborted_with_dt_sec_abort() {
    let fx = fixture(hmac_only());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    send(&mut p.c, &mms_pdu(1, 0)).unwrap();
    let mut wire = p.c.poll_transmit().unwrap();
    // Flip one octet of the PrPDU inside the transmitted TPKT (covered by the ICV).
    let at = find(&wire, b"SECMMS-MARKER").unwrap();
    wire[at + 3] ^= 0x01;
    p.s.handle_input(&wire).unwrap();
    let got = p.server_receives();
    let [Err(NativeError::Security { event, cause, sent })] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(event.mnemonic, "CLEAR_BAD_ICV_TRF");
    assert_eq!(event.id.to_string(), "IEC62351-4:10.5");
    assert_eq!(event.severity, Severity::Alarm);
    assert_eq!(*cause, None);
    assert_eq!(*sent, Some(SecPduKind::DtSecAbort));
    assert_eq!(
        fx.server.mnemonics(),
        vec!["E2E_ESTABLISHED", "CLEAR_BAD_ICV_TRF"]
    );
    assert!(p.s.is_closed());
    assert_client_got_dt_sec_abort(&mut p, &fx);
}

#[test]
fn replayed_transfer_is_aborted_with_dt_sec_abort() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    send(&mut p.c, &mms_pdu(1, 0)).unwrap();
    let wire = p.c.poll_transmit().unwrap();
    p.s.handle_input(&wire).unwrap();
    let got = p.server_receives();
    assert!(matches!(got.as_slice(), [Ok(Some(_))]), "{got:?}");
    // The same TPKTs again, a second later (still inside the time window).
    fx.server.advance_ms(1000);
    p.s.handle_input(&wire).unwrap();
    let got = p.server_receives();
    let [Err(NativeError::Security { event, sent, .. })] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(event.mnemonic, "ENCR_REPLAY_TRF");
    assert_eq!(event.id.to_string(), "IEC62351-4:11.7");
    assert_eq!(*sent, Some(SecPduKind::DtSecAbort));
    assert_client_got_dt_sec_abort(&mut p, &fx);
}

#[test]
fn clear_transfer_when_encryption_was_agreed_is_refused() {
    // A CBC+HMAC association receiving a transfer whose applData is not an OCTET STRING: the
    // P-DATA sniffer calls it a ClearTransfer, and the engine refuses a ClearTransfer once
    // encryption was agreed (10.2 ENCR_WAS_SEL_TRF, diagnostic encryption-required).
    let fx = fixture(cbc_hmac());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    send(&mut p.c, &mms_pdu(1, 0)).unwrap();
    p.c2s();
    let evs = events(&mut p.s);
    let [OsiEvent::Data { pdu, .. }] = evs.as_slice() else {
        panic!("{evs:?}")
    };
    // Re-tag Encrypted-ApplData (04) as a context-tagged PrPDU (80).
    let mut pdu = pdu.clone();
    let mut r = Reader::new(&pdu, Limits::default());
    let outer = r.read().unwrap();
    let tbp = outer.children().unwrap().read().unwrap();
    let mut c = tbp.children().unwrap();
    let token2 = c.read().unwrap();
    let off = token2.raw().as_ptr() as usize - pdu.as_ptr() as usize + token2.raw().len();
    assert_eq!(pdu[off], 0x04);
    pdu[off] = 0x80;
    let got = receive(&mut p.s, 5, &pdu);
    let Err(NativeError::Security { event, cause, .. }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(event.mnemonic, "ENCR_WAS_SEL_TRF");
    assert_eq!(
        cause,
        Some(Diagnostic::Dt(secmms_e2e::DtDiagnostic::EncryptionRequired))
    );
    assert_client_got_dt_sec_abort_with(&mut p, secmms_e2e::DtDiagnostic::EncryptionRequired);
}

fn assert_client_got_dt_sec_abort_with(p: &mut Pair, d: secmms_e2e::DtDiagnostic) {
    p.s2c();
    let _ = events(&mut p.c);
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerAborted {
            kind: SecPduKind::DtSecAbort,
            diagnostic: Some(Diagnostic::Dt(d)),
            appl_data: None
        })
    );
}

#[test]
fn application_abort_carries_appl_abort() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    p.c.abort().unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    let v = e2e_value(&info.abrt.as_ref().unwrap().user_information);
    assert_eq!(v[0], 0xA2, "AssoAbort.applAbort [2]");
    assert_eq!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerAborted {
            kind: SecPduKind::ApplAbort,
            diagnostic: None,
            appl_data: None
        })
    );
    no_alarms(&fx.server);
}

#[test]
fn release_request_failing_verification_is_answered_by_dt_sec_abort() {
    let fx = fixture(gcm());
    let edits = Edits {
        rlrq: Some(Box::new(|r: &mut Rlrq| {
            // Last octet of the ReleaseReq = last octet of its signature.
            if let secmms_osi::acse::ExternalEncoding::SingleAsn1Type(v) =
                &mut r.user_information[0].encoding
            {
                let n = v.len() - 1;
                v[n] ^= 0x01;
            }
        })),
        ..Edits::default()
    };
    let mut p = Pair::new(&fx, edits);
    p.establish();
    p.c.release(Some(CONCLUDE_REQ.to_vec())).unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    assert!(
        matches!(
            sev.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "no release indication: {sev:?}"
    );
    let last = fx.server.events().pop().unwrap();
    assert_eq!(last.mnemonic, "INV_SIGNATURE");
    assert_eq!(last.id.to_string(), "IEC62351-4:12.3");
    assert!(matches!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::Security {
            sent: Some(SecPduKind::DtSecAbort),
            ..
        })
    ));
    // §15.6 DECISION: ABRT with DtSecAbort, not an RLRE.
    assert_client_got_dt_sec_abort(&mut p, &fx);
    assert!(p.cseen.lock().unwrap().rlre.is_empty());
}

#[test]
fn channel_refuses_before_establishment() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    assert!(matches!(
        send(&mut p.c, &mms_pdu(1, 0)),
        Err(NativeError::NotEstablished)
    ));
    assert!(matches!(
        receive(&mut p.s, 5, &[0x30, 0x00]),
        Err(NativeError::NotEstablished)
    ));
    assert_eq!(st(&p.c).next_timeout(), None);
    assert!(handle_timeout(&mut p.c).is_ok());
}

#[test]
fn fuzz_entry_point_accepts_real_and_broken_values() {
    use secmms_profiles::fuzzing::native_env;
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    let aarq = e2e_value(&p.sseen.lock().unwrap().aarq[0].user_information);
    let aare = e2e_value(&p.cseen.lock().unwrap().aare[0].user_information);
    for (k, v) in [(0u8, &aarq), (1, &aare)] {
        let mut d = vec![k];
        d.extend(v.iter());
        native_env(&d);
        for cut in [1, d.len() / 2, d.len() - 1] {
            native_env(&d[..cut]);
        }
    }
    let odd: [Vec<u8>; 6] = [
        vec![],
        vec![2, 0x83, 0x01, 0x09],
        vec![2, 0x83, 0x01, 0x7F],
        vec![2, 0xA3, 0x00],
        vec![4, 0x30, 0x80, 0x00, 0x00],
        vec![1, 0xA0, 0x84, 0xFF, 0xFF, 0xFF, 0xFF],
    ];
    for d in &odd {
        native_env(d);
    }
}

#[test]
fn initiator_refuses_a_peer_row_without_end_to_end_security() {
    let fx = fixture(gcm());
    let cosi = client_osi(&fx.client);
    let mut state = fx.client.shared.initiator_state(
        ConnectionInfo::default(),
        PeerPolicy::any("compat-only"),
        identity_of(cosi.remote_ap_title.as_ref(), cosi.remote_ae_qualifier),
    );
    state.set_now(TimeStamp(T0 * 1000));
    let mut c = Association::with_hook(Role::Initiator, cosi, state);
    let r = c.connect(hex::decode(INIT_REQ).unwrap());
    assert!(
        matches!(r, Err(secmms_osi::OsiError::SecurityAbort(_))),
        "{r:?}"
    );
    assert!(c.poll_transmit().is_none(), "nothing sent");
    assert!(matches!(
        c.security().last_diagnostic(),
        Some(NativeDiagnostic::Policy(_))
    ));
    assert_eq!(fx.client.mnemonics(), vec!["E2E_POLICY_REFUSED"]);
}

#[test]
fn handles_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<NativeShared>();
    send::<NativeState>();
    send::<secmms_profiles::secure::SecureAssociation>();
    send_sync::<NativeError>();
}

// ------------------------------------------------------------------ §15.7 checks not covered above

/// The catalogue id of an environment event mnemonic.
fn env_event_id(mnemonic: &str) -> secmms_pki::event::EventId {
    ev::CATALOGUE
        .iter()
        .chain(&ev::LOCAL)
        .find(|d| d.mnemonic == mnemonic)
        .unwrap_or_else(|| panic!("{mnemonic} not in the catalogue"))
        .id
}

#[test]
fn env_missing_called_ae_qualifier() {
    // 15.10: no called-AE-qualifier, so the responder cannot see that the AARQ names it.
    assert_env_reject(|a| a.called_ae_qualifier = None, 1, "INV_CALLED_AE_QUAL_RQ");
}

#[test]
fn env_called_ae_qualifier_not_ours() {
    // 15.10: the called AP-title is ours (1.1.1.999.1) but the AE-qualifier is not (ours is 12).
    assert_env_reject(
        |a| a.called_ae_qualifier = Some(secmms_osi::acse::AeQualifier::Form2(13)),
        1,
        "INV_CALLED_AE_QUAL_RQ",
    );
    assert_eq!(
        env_event_id("INV_CALLED_AE_QUAL_RQ").to_string(),
        "IEC62351-4:15.10"
    );
}

#[test]
fn env_aare_responding_ae_qualifier_not_the_called_one() {
    // 15.14: the AARE's responding-AE-qualifier differs from the called one the AARQ sent.
    assert_aare_abort(
        |a| a.responding_ae_qualifier = Some(secmms_osi::acse::AeQualifier::Form2(13)),
        OsiDiagnostic::InvalidCalledAeQualifier,
        "INV_CALLED_AE_QUAL_RE",
    );
    assert_eq!(
        env_event_id("INV_CALLED_AE_QUAL_RE").to_string(),
        "IEC62351-4:15.14"
    );
}

/// The client's RLRQ (data phase) was edited; the server must abort with osiDiag `d` instead of
/// answering with an RLRE (§15.7 DECISION "after association: ABRT with osiDiag"), raise exactly
/// `event`, and never run the engine; the client must record the received osiDiag.
fn assert_rlrq_env_abort(
    edit: impl FnMut(&mut Rlrq) + Send + 'static,
    d: OsiDiagnostic,
    event: &str,
) {
    let fx = fixture(gcm());
    let mut p = Pair::new(
        &fx,
        Edits {
            rlrq: Some(Box::new(edit)),
            ..Edits::default()
        },
    );
    p.establish();
    p.c.release(Some(CONCLUDE_REQ.to_vec())).unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    assert!(
        matches!(
            sev.as_slice(),
            [
                OsiEvent::AbortIndication(secmms_osi::AbortInfo {
                    origin: AbortOrigin::LocalSecurity,
                    ..
                }),
                OsiEvent::Closed
            ]
        ),
        "no release indication: {sev:?}"
    );
    assert_eq!(fx.server.mnemonics(), vec!["E2E_ESTABLISHED", event]);
    let id = env_event_id(event);
    assert_eq!(fx.server.events()[1].id, id);
    assert_eq!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::Environment {
            event: id,
            mnemonic: fx.server.events()[1].mnemonic,
            osi_diag: Some(d)
        })
    );
    // On the wire: ABRT { source user, [30] EXTERNAL { 5, AssoAbort.osiDiag [3] d } }.
    p.s2c();
    let cev = events(&mut p.c);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = cev.as_slice() else {
        panic!("{cev:?}")
    };
    assert_eq!(info.origin, AbortOrigin::PeerUser);
    let abrt = info.abrt.as_ref().unwrap();
    assert_eq!(abrt.source, 0);
    assert_eq!(
        e2e_value(&abrt.user_information),
        vec![0x83, 0x01, d.code() as u8]
    );
    assert_eq!(
        st(&p.c).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerOsiDiagnostic {
            code: d.code(),
            diagnostic: Some(d)
        })
    );
    assert_eq!(fx.client.mnemonics().last(), Some(&"E2E_OSI_DIAG_RCVD"));
    assert!(p.cseen.lock().unwrap().rlre.is_empty(), "no RLRE");
}

#[test]
fn env_rlrq_wrong_indirect_reference() {
    // 15.2 in the data phase: the ReleaseReq's EXTERNAL names the MMS context (3), not pcid 5.
    assert_rlrq_env_abort(
        |r| r.user_information[0].indirect_reference = Some(3),
        OsiDiagnostic::InvalidIndirectReference,
        "OSI_INV_INDR_REF",
    );
}

#[test]
fn env_rlrq_external_not_size_1() {
    // 15.1 in the data phase: two EXTERNALs in the RLRQ's user-information.
    assert_rlrq_env_abort(
        |r| {
            let e = r.user_information[0].clone();
            r.user_information.push(e);
        },
        OsiDiagnostic::OsiEnvProtocolError,
        "OSI_ENV_PROT_ERR",
    );
}

#[test]
fn acse_provider_abort_in_the_data_phase_is_acse_prot_err() {
    // 15.4: the peer's ACSE provider aborts (abort-source acse-service-provider, as secmms-osi
    // sends on an ACSE protocol error); simulated by rewriting the client's ABRT on the wire.
    let fx = fixture(gcm());
    let mut p = Pair::new(
        &fx,
        Edits {
            abrt: Some(Box::new(|a: &mut Abrt| {
                a.source = secmms_osi::acse::abort_source::SERVICE_PROVIDER;
                a.diagnostic = Some(secmms_osi::acse::abort_diagnostic::PROTOCOL_ERROR);
                a.user_information.clear();
            })),
            ..Edits::default()
        },
    );
    p.establish();
    p.c.abort().unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    let [OsiEvent::AbortIndication(info), OsiEvent::Closed] = sev.as_slice() else {
        panic!("{sev:?}")
    };
    let abrt = info.abrt.as_ref().unwrap();
    assert_eq!(abrt.source, 1, "acse-service-provider on the wire");
    assert!(abrt.user_information.is_empty());
    assert_eq!(
        fx.server.mnemonics(),
        vec!["E2E_ESTABLISHED", "ACSE_PROT_ERR"]
    );
    assert_eq!(fx.server.events()[1].id.to_string(), "IEC62351-4:15.4");
    assert_eq!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerAbortUnprotected { source: 1 })
    );
    assert!(p.s.is_closed());
}

#[test]
fn env_abrt_wrong_indirect_reference_is_logged_not_answered() {
    // 15.2 on a data-phase ABRT: the ApplAbort's EXTERNAL names pcid 3. An abort is never
    // answered; the server logs the event and records an unprotected peer abort.
    let fx = fixture(gcm());
    let mut p = Pair::new(
        &fx,
        Edits {
            abrt: Some(Box::new(|a: &mut Abrt| {
                a.user_information[0].indirect_reference = Some(3);
            })),
            ..Edits::default()
        },
    );
    p.establish();
    p.c.abort().unwrap();
    p.c2s();
    let sev = events(&mut p.s);
    assert!(
        matches!(
            sev.as_slice(),
            [OsiEvent::AbortIndication(_), OsiEvent::Closed]
        ),
        "{sev:?}"
    );
    assert_eq!(
        fx.server.mnemonics(),
        vec!["E2E_ESTABLISHED", "OSI_INV_INDR_REF"]
    );
    assert_eq!(
        st(&p.s).last_diagnostic().cloned(),
        Some(NativeDiagnostic::PeerAbortUnprotected { source: 0 })
    );
    assert!(p.s.poll_transmit().is_none(), "nothing sent back");
}

// ------------------------------------------------------------------ single selection (§14.3)

/// A server whose HandshakeAcc selects more than one algorithm — re-signed with the server's own
/// key, so only the selection is wrong — through both OSI stacks: the client refuses it with a
/// HandshakeSecAbort in the ABRT carrying the single-selection diagnostic and raises its event;
/// the server verifies that HandshakeSecAbort and logs the diagnostic it names.
#[test]
fn single_selection_diagnostics_travel_in_the_abrt() {
    use secmms_e2e::pdu::{ClearToken1, EncrMode, Handshake, SecPdu};
    use secmms_profiles::native::wire::{self, EnvApdu, EnvValue};
    let cases: [(ModeOffer, EncrMode, HandshakeDiagnostic, &str); 3] = [
        (
            ModeOffer::Ae(vec![AeAlg::Aes128Gcm, AeAlg::Aes256Gcm]),
            EncrMode::Aea(vec![AeAlg::Aes128Gcm.id(), AeAlg::Aes256Gcm.id()]),
            HandshakeDiagnostic::SingleAeAlgorithmRequired,
            "IEC62351-4:2.14",
        ),
        (
            ModeOffer::NonAe {
                encr: vec![EncrAlg::Aes128Cbc, EncrAlg::Aes256Cbc],
                icv: vec![IcvAlg::HmacSha256],
            },
            EncrMode::NonAea {
                encr: Some(vec![EncrAlg::Aes128Cbc.id(), EncrAlg::Aes256Cbc.id()]),
                icv: vec![IcvAlg::HmacSha256.id()],
            },
            HandshakeDiagnostic::SingleEncryptAlgoRequired,
            "IEC62351-4:2.17",
        ),
        (
            ModeOffer::NonAe {
                encr: vec![],
                icv: vec![IcvAlg::HmacSha256, IcvAlg::Gmac128],
            },
            EncrMode::NonAea {
                encr: None,
                icv: vec![IcvAlg::HmacSha256.id(), IcvAlg::Gmac128.id()],
            },
            HandshakeDiagnostic::SingleIcvAlgoRequired,
            "IEC62351-4:2.19",
        ),
    ];
    for (offer, selection, diag, event_id) in cases {
        let fx = fixture(offer);
        let key = fx.server.shared.context().credentials.key.clone();
        let edit = move |a: &mut Aare| {
            let pcid = a.user_information[0].indirect_reference.unwrap() as u32;
            let v = e2e_value(&a.user_information);
            let EnvValue::SecPdu { kind, pdu } =
                wire::decode(EnvApdu::Aare, &v, Limits::default()).unwrap()
            else {
                panic!("no SecPDU in the AARE")
            };
            assert_eq!(kind, SecPduKind::HandshakeAcc);
            let mut h: Handshake = match SecPdu::decode(kind, &pdu, Limits::default()).unwrap() {
                SecPdu::HandshakeAcc(h) => h,
                other => panic!("{other:?}"),
            };
            let t: &mut ClearToken1 = &mut h.token1;
            t.encr_mode = selection.clone();
            h.tbs = Handshake::tbs_content(&h.token1, h.appl_data.as_deref());
            h.sign.sign = key.sign(&h.tbs).unwrap();
            let value =
                wire::encode(EnvApdu::Aare, kind, SecPdu::HandshakeAcc(h).encode()).unwrap();
            a.user_information = wire::external(pcid, value);
        };
        let mut p = Pair::new(
            &fx,
            Edits {
                aare: Some(Box::new(edit)),
                ..Edits::default()
            },
        );
        let sev = p.connect();
        assert!(matches!(
            sev.as_slice(),
            [OsiEvent::AssociateIndication { .. }]
        ));
        p.s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
        p.s2c();
        let cev = events(&mut p.c);
        assert!(
            matches!(
                cev.as_slice(),
                [OsiEvent::AbortIndication(_), OsiEvent::Closed]
            ),
            "{diag:?}: {cev:?}"
        );
        let raised = fx.client.events();
        assert!(
            raised.iter().any(|e| e.id.to_string() == event_id),
            "{diag:?}: {raised:?}"
        );
        match st(&p.c).last_diagnostic().cloned() {
            Some(NativeDiagnostic::Security { cause, sent, .. }) => {
                assert_eq!(cause, Some(Diagnostic::Handshake(diag)));
                assert_eq!(sent, Some(SecPduKind::HandshakeSecAbort));
            }
            other => panic!("{diag:?}: {other:?}"),
        }
        // The ABRT reaches the server with the verified HandshakeSecAbort and its diagnostic.
        p.c2s();
        let sev = events(&mut p.s);
        assert!(
            matches!(
                sev.as_slice(),
                [OsiEvent::AbortIndication(_), OsiEvent::Closed]
            ),
            "{sev:?}"
        );
        let got = fx.server.events();
        assert!(
            got.iter().any(
                |e| e.mnemonic == "HANDSHAKE_SEC_ABORT_RCVD" && e.message.contains(diag.name())
            ),
            "{diag:?}: {got:?}"
        );
    }
}

/// §15.7 / 15.4 for an ACSE protocol error our own stack finds: an RLRQ whose ACSE APDU is not
/// decodable ends the E2E association with `ACSE_PROT_ERR` (the provider's own detection, not
/// only the peer's provider ABRT).
#[test]
fn own_acse_protocol_error_raises_15_4() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    p.c.release(None).unwrap();
    let mut wire = Vec::new();
    while let Some(b) = p.c.poll_transmit() {
        wire.extend(b);
    }
    // The RLRQ is [APPLICATION 2] (0x62), the single-ASN1-type [0] of the PDV on the ACSE
    // context (`02 01 01 A0 len 62`): make its tag one ACSE does not define.
    let pdv = wire
        .windows(4)
        .position(|w| w == [0x02, 0x01, 0x01, 0xa0])
        .expect("ACSE PDV");
    let len_at = pdv + 4;
    let at = len_at
        + 1
        + if wire[len_at] & 0x80 != 0 {
            usize::from(wire[len_at] & 0x7f)
        } else {
            0
        };
    assert_eq!(wire[at], 0x62, "RLRQ tag");
    wire[at] = 0x7f;
    let _ = p.s.handle_input(&wire);
    let sev = events(&mut p.s);
    assert!(
        sev.iter().any(|e| matches!(e, OsiEvent::ProtocolError(_))),
        "{sev:?}"
    );
    let raised = fx.server.events();
    let e = raised
        .iter()
        .find(|e| e.mnemonic == "ACSE_PROT_ERR")
        .unwrap_or_else(|| panic!("{raised:?}"));
    assert_eq!(e.id.to_string(), "IEC62351-4:15.4");
    assert!(e.message.contains("detected locally"), "{}", e.message);
}

/// §13.5 DECISION: an application rejection without an MMS PDU cannot be an ApplicationReject
/// (applData is mandatory); the AARE goes out without a SecPDU and `E2E_LOCAL_FAILURE` says why.
#[test]
fn application_rejection_without_mms_pdu_is_a_local_failure() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    let sev = p.connect();
    assert!(matches!(
        sev.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ));
    p.s.reject(
        associate_result::REJECTED_PERMANENT,
        SourceDiagnostic::ServiceUser(1),
        None,
    )
    .unwrap();
    p.s2c();
    let raised = fx.server.events();
    let e = raised
        .iter()
        .find(|e| e.mnemonic == "E2E_LOCAL_FAILURE")
        .unwrap_or_else(|| panic!("{raised:?}"));
    assert_eq!(e.id.to_string(), "secmms:15.3");
    assert!(e.message.contains("without an MMS PDU"), "{}", e.message);
    // The client sees a plain rejection (no SecPDU to verify).
    let cev = events(&mut p.c);
    assert!(
        matches!(cev.first(), Some(OsiEvent::AssociateRejected { .. })),
        "{cev:?}"
    );
    assert!(fx.client.mnemonics().contains(&"E2E_PLAIN_REJECT_RCVD"));
}

// ------------------------------------------------------------------ key refresh over OSI (§13.3.2)

/// Key refresh through both OSI stacks with a fake clock: past the rekey interval the client's
/// next transfer carries its new DH value, the server answers with changedKeys, and data keeps
/// flowing both ways under the new keys with no alarm.
#[test]
fn key_refresh_over_osi_with_a_fake_clock() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    let exchange = |p: &mut Pair, id: u8| -> (usize, usize) {
        send(&mut p.c, &mms_pdu(id, 10)).unwrap();
        let up = p.c2s().len();
        let got = p.server_receives();
        assert!(matches!(got.as_slice(), [Ok(Some(_))]), "{got:?}");
        send(&mut p.s, &mms_pdu(id, 10)).unwrap();
        let down = p.s2c().len();
        let got = p.client_receives();
        assert!(matches!(got.as_slice(), [Ok(Some(_))]), "{got:?}");
        (up, down)
    };
    let (up0, down0) = exchange(&mut p, 1);
    let interval = secmms_e2e::config::DEFAULT_REKEY_INTERVAL_MS as i64 + 1;
    fx.client.advance_ms(interval);
    fx.server.advance_ms(interval);
    // The rekey request (dhPublicKey) and the answer (changedKeys) make these two transfers
    // larger than the same transfers before.
    let (up1, down1) = exchange(&mut p, 2);
    assert!(up1 > up0 + 32, "no rekey value sent: {up0} -> {up1}");
    assert!(down1 > down0, "no rekey answer sent: {down0} -> {down1}");
    // Afterwards no DH value travels any more, and both ends still agree on the keys.
    let (up2, _) = exchange(&mut p, 3);
    assert!(up2 + 32 < up1, "rekey value sent again: {up1} -> {up2}");
    assert_eq!(st(&p.c).next_timeout(), None, "no rekey pending any more");
    no_alarms(&fx.client);
    no_alarms(&fx.server);
}

/// The rekey timeout through both OSI stacks: the server never answers the client's rekey; once
/// `rekey_timeout_ms` has passed, `NativeState::handle_timeout` ends the association with a
/// DtSecAbort in the ABRT and `E2E_REKEY_TIMEOUT`; the server receives the abort.
#[test]
fn rekey_timeout_over_osi_aborts_with_dt_sec_abort() {
    let fx = fixture(gcm());
    let mut p = Pair::new(&fx, Edits::default());
    p.establish();
    assert_eq!(st(&p.c).next_timeout(), None);
    fx.client
        .advance_ms(secmms_e2e::config::DEFAULT_REKEY_INTERVAL_MS as i64 + 1);
    // The transfer carrying the rekey value is lost on the way.
    send(&mut p.c, &mms_pdu(1, 10)).unwrap();
    while p.c.poll_transmit().is_some() {}
    let due = st(&p.c).next_timeout().expect("rekey timer running");
    // Not yet due: nothing happens.
    handle_timeout(&mut p.c).unwrap();
    assert!(p.c.poll_transmit().is_none());
    fx.client
        .advance_ms(secmms_e2e::config::DEFAULT_REKEY_TIMEOUT_MS as i64 + 1);
    assert!(TimeStamp(fx.client.clock.load(Ordering::SeqCst)) >= due);
    let r = handle_timeout(&mut p.c);
    assert!(
        matches!(
            r,
            Err(NativeError::Security {
                sent: Some(SecPduKind::DtSecAbort),
                ..
            })
        ),
        "{r:?}"
    );
    assert!(fx.client.mnemonics().contains(&"E2E_REKEY_TIMEOUT"));
    p.c2s();
    let sev = events(&mut p.s);
    assert!(
        matches!(
            sev.as_slice(),
            [OsiEvent::AbortIndication(_), OsiEvent::Closed]
        ),
        "{sev:?}"
    );
    assert!(!st(&p.s).is_established());
}
