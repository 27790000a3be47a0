//! The sans-IO `SecureAssociation` with a fake clock and no runtime: handshake, data and
//! release in plain, A-profile and native mode (every protection), rekey and rekey timeout,
//! the OSI timeouts (associate, idle, release), a bad PDU in a burst, OCSP refusal in both
//! profiles, a revocation recheck, process-wide replay detection, and a layer around the
//! protection. The profiles have no clock: time only comes in as `Now`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use secmms_e2e::alg::{AeAlg, EncrAlg, IcvAlg};
use secmms_e2e::replay::ReplayCache;
use secmms_e2e::{Context, E2eConfig, ModeOffer, ProtectionMode, SecPduKind, TimeStamp};
use secmms_osi::acse::{associate_result, Aare, SourceDiagnostic};
use secmms_osi::security::{AbortRequest, AssociationSecurity, Role, SecurityContext, Verdict};
use secmms_osi::{AbortOrigin, OsiConfig};
use secmms_pki::event::MemorySink;
use secmms_pki::{CertError, CertValidator, OpenSslValidator, PeerIdentity, ValidatedCert};
use secmms_profiles::native::{NativeConfig, NativeDiagnostic, NativeError, NativeShared};
use secmms_profiles::secure::{
    Layer, Now, Protection, ProtectionError, SecureAssociation, SecureEvent, Timeouts, TimerKind,
};
use secmms_profiles::{AProfileConfig, AProfileShared, ConnectionInfo, PeerTable};

// ------------------------------------------------------------------ fixtures

const CONCLUDE_REQ: &[u8] = &[0x8B, 0x00];
const CONCLUDE_RSP: &[u8] = &[0x8C, 0x00];

fn t0() -> Now {
    Now::new(TimeStamp(T0 * 1000), Instant::now())
}

fn init_req() -> Vec<u8> {
    hex::decode(INIT_REQ).unwrap()
}

fn init_rsp() -> Vec<u8> {
    hex::decode(INIT_RSP).unwrap()
}

/// A confirmed-request-like PDU carrying a marker, so encryption can be seen on the wire.
fn mms(id: u8, filler: usize) -> Vec<u8> {
    let mut v = vec![0xA0, 0x00, 0x02, 0x01, id];
    v.extend_from_slice(b"SECMMS-MARKER");
    v.extend(std::iter::repeat(0x5A).take(filler));
    // Short or long definite length of the outer [0].
    let body = v.split_off(2);
    let mut w = secmms_ber::Writer::new();
    w.octets(secmms_ber::Tag::context(0, false), &body);
    w.finish()
}

/// A validator that reports revocation once `revoked` is set (a CRL reload, as the runtime's
/// reloadable validator does).
struct Revocable {
    inner: OpenSslValidator,
    revoked: Arc<AtomicBool>,
}

impl CertValidator for Revocable {
    fn validate(
        &self,
        cert_der: &[u8],
        chain_der: &[Vec<u8>],
        now: i64,
    ) -> Result<ValidatedCert, CertError> {
        if self.revoked.load(Ordering::SeqCst) {
            return Err(CertError::Revoked);
        }
        self.inner.validate(cert_der, chain_der, now)
    }
}

struct NativeSide {
    shared: NativeShared,
    sink: Arc<MemorySink>,
    revoked: Arc<AtomicBool>,
}

impl NativeSide {
    fn new(ca: &Ca, creds: secmms_e2e::Credentials, offer: Option<ModeOffer>) -> NativeSide {
        let revoked = Arc::new(AtomicBool::new(false));
        let mut config = E2eConfig::default();
        if let Some(offer) = offer {
            config.offer = offer;
        }
        let ctx = Context {
            config: Arc::new(config),
            credentials: Arc::new(creds),
            validator: Arc::new(Revocable {
                inner: validator(ca),
                revoked: revoked.clone(),
            }),
            replay: Arc::new(Mutex::new(ReplayCache::new())),
        };
        let sink = Arc::new(MemorySink::new());
        let shared = NativeShared::new(
            ctx,
            NativeConfig::default(),
            PeerTable::require_end_to_end(),
            sink.clone(),
        );
        NativeSide {
            shared,
            sink,
            revoked,
        }
    }

    fn mnemonics(&self) -> Vec<&'static str> {
        self.sink.events().iter().map(|e| e.mnemonic).collect()
    }

    fn client(&self, now: Now, t: Timeouts) -> SecureAssociation {
        let mut osi = OsiConfig::default();
        self.shared.prepare_osi_config(&mut osi, Role::Initiator);
        let policy = PeerTable::require_end_to_end().default.unwrap();
        let state =
            self.shared
                .initiator_state(ConnectionInfo::default(), policy, Some(server_identity()));
        SecureAssociation::new(
            Role::Initiator,
            osi,
            Protection::Native(Box::new(state)),
            t,
            now,
        )
    }

    fn server(&self, now: Now, t: Timeouts) -> SecureAssociation {
        let mut osi = OsiConfig::server_default();
        self.shared.prepare_osi_config(&mut osi, Role::Responder);
        let state = self.shared.responder_state(ConnectionInfo::default());
        SecureAssociation::new(
            Role::Responder,
            osi,
            Protection::Native(Box::new(state)),
            t,
            now,
        )
    }
}

fn e2e_creds(c: secmms_profiles::Credentials) -> secmms_e2e::Credentials {
    secmms_e2e::Credentials {
        key: c.key,
        cert_der: c.certificate,
        cert_path: None,
        att_cert: None,
    }
}

fn native_pair(offer: ModeOffer) -> (Ca, NativeSide, NativeSide) {
    let ca = Ca::new("Root");
    let client = NativeSide::new(&ca, e2e_creds(ca.valid(client_identity(), 1)), Some(offer));
    let server = NativeSide::new(&ca, e2e_creds(ca.valid(server_identity(), 2)), None);
    (ca, client, server)
}

fn aprofile_side(ca: &Ca, id: PeerIdentity, serial: u8) -> (AProfileShared, Arc<MemorySink>) {
    let cfg = AProfileConfig::new(Some(ca.valid(id, serial)), Arc::new(validator(ca)));
    let sink = Arc::new(MemorySink::new());
    let shared = AProfileShared::new(
        cfg,
        PeerTable::require_a_profile(),
        replay_store(),
        sink.clone(),
    )
    .unwrap();
    (shared, sink)
}

fn aprofile_client(shared: &AProfileShared, now: Now) -> SecureAssociation {
    let mut osi = OsiConfig::default();
    shared.prepare_osi_config(&mut osi, Role::Initiator, false);
    let policy = PeerTable::require_a_profile().default.unwrap();
    let hook = shared.initiator(ConnectionInfo::default(), policy, Some(server_identity()));
    SecureAssociation::new(
        Role::Initiator,
        osi,
        Protection::AProfile(Box::new(hook)),
        Timeouts::default(),
        now,
    )
}

fn aprofile_server(shared: &AProfileShared, now: Now) -> SecureAssociation {
    let mut osi = OsiConfig::server_default();
    shared.prepare_osi_config(&mut osi, Role::Responder, false);
    let hook = shared.responder(ConnectionInfo::default());
    SecureAssociation::new(
        Role::Responder,
        osi,
        Protection::AProfile(Box::new(hook)),
        Timeouts::default(),
        now,
    )
}

fn plain(role: Role, t: Timeouts, now: Now) -> SecureAssociation {
    let osi = match role {
        Role::Initiator => OsiConfig::default(),
        Role::Responder => OsiConfig::server_default(),
    };
    SecureAssociation::new(role, osi, Protection::Plain, t, now)
}

/// Moves every queued octet from `a` to `b` at `now`; returns them.
fn pump<L: Layer, M: Layer>(
    a: &mut SecureAssociation<L>,
    b: &mut SecureAssociation<M>,
    now: Now,
) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(bytes) = a.poll_transmit() {
        b.handle_input(&bytes, now).unwrap();
        all.extend(bytes);
    }
    all
}

fn drain<L: Layer>(a: &mut SecureAssociation<L>) -> Vec<SecureEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs the association set-up; the server accepts. Panics unless both ends are established.
fn establish<L: Layer, M: Layer>(
    c: &mut SecureAssociation<L>,
    s: &mut SecureAssociation<M>,
    now: Now,
) {
    c.connect(init_req(), now).unwrap();
    pump(c, s, now);
    pump(s, c, now);
    pump(c, s, now);
    let ev = drain(s);
    let [SecureEvent::AssociateIndication { initiate, .. }] = ev.as_slice() else {
        panic!("server {ev:?}")
    };
    assert_eq!(initiate.as_deref(), Some(&init_req()[..]));
    s.accept(init_rsp(), now).unwrap();
    pump(s, c, now);
    let ev = drain(c);
    let [SecureEvent::Established {
        initiate_response, ..
    }] = ev.as_slice()
    else {
        panic!("client {ev:?}")
    };
    assert_eq!(initiate_response.as_deref(), Some(&init_rsp()[..]));
    assert!(c.is_established() && s.is_established());
}

/// Data both ways (small and segmented), then release with Conclude PDUs; returns the octets
/// of the first request on the wire.
fn data_and_release<L: Layer, M: Layer>(
    c: &mut SecureAssociation<L>,
    s: &mut SecureAssociation<M>,
    now: Now,
) -> Vec<u8> {
    let mut first = Vec::new();
    for (i, size) in [0usize, 5000, 10].into_iter().enumerate() {
        let now = now.after(Duration::from_millis(i as u64));
        let req = mms(i as u8, size);
        c.send_mms(&req, now).unwrap();
        let wire = pump(c, s, now);
        if i == 0 {
            first = wire;
        }
        let ev = drain(s);
        let [SecureEvent::Mms(got)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(got, &req);
        let rsp = mms(100 + i as u8, size);
        s.send_mms(&rsp, now).unwrap();
        pump(s, c, now);
        let ev = drain(c);
        let [SecureEvent::Mms(got)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(got, &rsp);
    }
    c.release(Some(CONCLUDE_REQ.to_vec()), now).unwrap();
    pump(c, s, now);
    let ev = drain(s);
    let [SecureEvent::ReleaseIndication { conclude }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(conclude.as_deref(), Some(CONCLUDE_REQ));
    s.release_response(Some(CONCLUDE_RSP.to_vec()), now)
        .unwrap();
    pump(s, c, now);
    let ev = drain(c);
    let [SecureEvent::Released { answer }, SecureEvent::Closed] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(answer.as_deref(), Some(CONCLUDE_RSP));
    assert!(c.is_closed() && s.is_closed());
    assert_eq!(c.poll_timeout(), None);
    first
}

// ------------------------------------------------------------------ the three modes

#[test]
fn plain_handshake_data_release() {
    let now = t0();
    let mut c = plain(Role::Initiator, Timeouts::default(), now);
    let mut s = plain(Role::Responder, Timeouts::default(), now);
    establish(&mut c, &mut s, now);
    assert_eq!(c.protection().describe(), "none");
    assert_eq!(s.protection().peer_name(), None);
    let wire = data_and_release(&mut c, &mut s, now);
    assert!(find(&wire, b"SECMMS-MARKER"));
}

#[test]
fn aprofile_handshake_data_release_with_time_from_the_caller() {
    let ca = Ca::new("Root");
    let (cs, csink) = aprofile_side(&ca, client_identity(), 1);
    let (ss, ssink) = aprofile_side(&ca, server_identity(), 2);
    let now = t0();
    let mut c = aprofile_client(&cs, now);
    let mut s = aprofile_server(&ss, now);
    establish(&mut c, &mut s, now);
    assert_eq!(c.protection().describe(), "A-security-profile");
    let PeerIdentity::ApTitle(server_title) = server_identity() else {
        unreachable!()
    };
    assert_eq!(
        c.protection().peer_name(),
        Some(server_title.to_string()),
        "the client authenticated the server"
    );
    assert!(s.protection().authenticated_peer().is_some());
    data_and_release(&mut c, &mut s, now);
    for sink in [&csink, &ssink] {
        let m: Vec<_> = sink.events().iter().map(|e| e.mnemonic).collect();
        assert!(m.contains(&"AP_AUTHENTICATED"), "{m:?}");
    }
}

/// The time of the value comes from `now`: eleven minutes after the server's `now` the
/// client's AARQ is outside the 10-minute window (§11.4) and refused.
#[test]
fn aprofile_window_is_checked_against_the_callers_time() {
    let ca = Ca::new("Root");
    let (cs, _) = aprofile_side(&ca, client_identity(), 1);
    let (ss, ssink) = aprofile_side(&ca, server_identity(), 2);
    let now = t0();
    let late = now.after(Duration::from_secs(11 * 60));
    let mut c = aprofile_client(&cs, now);
    let mut s = aprofile_server(&ss, now);
    c.connect(init_req(), now).unwrap();
    pump(&mut c, &mut s, late);
    pump(&mut s, &mut c, late);
    pump(&mut c, &mut s, late);
    let ev = drain(&mut s);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, SecureEvent::AssociateIndication { .. })),
        "{ev:?}"
    );
    let m: Vec<_> = ssink.events().iter().map(|e| e.mnemonic).collect();
    assert!(m.iter().any(|m| m.contains("TIME")), "{m:?}");
}

/// Replay detection is process-wide: the same AARQ octets replayed to a second responder of
/// the same process are refused.
#[test]
fn aprofile_replayed_aarq_is_refused_by_another_association() {
    let ca = Ca::new("Root");
    let (cs, _) = aprofile_side(&ca, client_identity(), 1);
    let (ss, ssink) = aprofile_side(&ca, server_identity(), 2);
    let now = t0();
    let mut c = aprofile_client(&cs, now);
    let mut s1 = aprofile_server(&ss, now);
    let mut s2 = aprofile_server(&ss, now);
    c.connect(init_req(), now).unwrap();
    let cr = c.poll_transmit().unwrap();
    s1.handle_input(&cr, now).unwrap();
    s2.handle_input(&cr, now).unwrap();
    let cc = s1.poll_transmit().unwrap();
    while s2.poll_transmit().is_some() {}
    c.handle_input(&cc, now).unwrap();
    let cn = c.poll_transmit().unwrap();
    s1.handle_input(&cn, now).unwrap();
    s2.handle_input(&cn, now).unwrap();
    assert!(matches!(
        drain(&mut s1).as_slice(),
        [SecureEvent::AssociateIndication { .. }]
    ));
    assert!(!drain(&mut s2)
        .iter()
        .any(|e| matches!(e, SecureEvent::AssociateIndication { .. })));
    let m: Vec<_> = ssink.events().iter().map(|e| e.mnemonic).collect();
    assert!(m.iter().any(|m| m.contains("REPLAY")), "{m:?}");
}

fn native_cycle(offer: ModeOffer, expected: ProtectionMode) {
    let (_ca, cside, sside) = native_pair(offer);
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    establish(&mut c, &mut s, now);
    assert_eq!(
        c.protection().native().unwrap().protection(),
        Some(expected)
    );
    assert_eq!(
        s.protection().native().unwrap().peer(),
        Some(&client_identity())
    );
    let wire = data_and_release(&mut c, &mut s, now);
    assert_eq!(find(&wire, b"SECMMS-MARKER"), !expected.encrypted());
    for side in [&cside, &sside] {
        assert_eq!(side.mnemonics(), vec!["E2E_ESTABLISHED", "E2E_RELEASED"]);
    }
    assert!(c.last_diagnostic().is_none() && s.last_diagnostic().is_none());
}

#[test]
fn native_gcm_handshake_data_release() {
    native_cycle(
        ModeOffer::Ae(vec![AeAlg::Aes128Gcm]),
        ProtectionMode::Ae(AeAlg::Aes128Gcm),
    );
}

#[test]
fn native_cbc_hmac_handshake_data_release() {
    native_cycle(
        ModeOffer::NonAe {
            encr: vec![EncrAlg::Aes128Cbc],
            icv: vec![IcvAlg::HmacSha256],
        },
        ProtectionMode::NonAe {
            encr: Some(EncrAlg::Aes128Cbc),
            icv: IcvAlg::HmacSha256,
        },
    );
}

#[test]
fn native_hmac_only_handshake_data_release() {
    native_cycle(
        ModeOffer::NonAe {
            encr: vec![],
            icv: vec![IcvAlg::HmacSha256],
        },
        ProtectionMode::NonAe {
            encr: None,
            icv: IcvAlg::HmacSha256,
        },
    );
}

// ------------------------------------------------------------------ E2E timers

/// Past the rekey interval of fake time the client's next transfer carries its DH value and
/// the server answers; no key-refresh timer remains and no alarm was raised.
#[test]
fn native_rekey_with_a_fake_clock() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    establish(&mut c, &mut s, now);
    let exchange = |c: &mut SecureAssociation, s: &mut SecureAssociation, now: Now| {
        c.send_mms(&mms(1, 10), now).unwrap();
        let up = pump(c, s, now).len();
        assert!(matches!(drain(s).as_slice(), [SecureEvent::Mms(_)]));
        s.send_mms(&mms(2, 10), now).unwrap();
        let down = pump(s, c, now).len();
        assert!(matches!(drain(c).as_slice(), [SecureEvent::Mms(_)]));
        (up, down)
    };
    let (up0, down0) = exchange(&mut c, &mut s, now);
    let later = now.after(Duration::from_millis(
        secmms_e2e::config::DEFAULT_REKEY_INTERVAL_MS + 1,
    ));
    let (up1, down1) = exchange(&mut c, &mut s, later);
    assert!(up1 > up0 + 32, "no rekey value: {up0} -> {up1}");
    assert!(down1 > down0, "no rekey answer: {down0} -> {down1}");
    let (up2, _) = exchange(&mut c, &mut s, later);
    assert!(up2 + 32 < up1);
    assert_eq!(
        c.poll_timeout(),
        None,
        "no E2E timer left, no OSI timeout set"
    );
    for side in [&cside, &sside] {
        assert_eq!(side.mnemonics(), vec!["E2E_ESTABLISHED"]);
    }
}

/// The rekey timeout comes out of `poll_timeout` as a monotonic instant; an early
/// `handle_timeout` does nothing, the one at the deadline sends a DtSecAbort.
#[test]
fn native_rekey_timeout_through_poll_timeout() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    establish(&mut c, &mut s, now);
    assert_eq!(c.poll_timeout(), None);
    let later = now.after(Duration::from_millis(
        secmms_e2e::config::DEFAULT_REKEY_INTERVAL_MS + 1,
    ));
    c.send_mms(&mms(1, 10), later).unwrap();
    while c.poll_transmit().is_some() {} // lost
    let due = c.poll_timeout().expect("rekey timer");
    // The engine's wall-clock deadline (the timeout, passed by a millisecond) converted with
    // the last `Now`.
    let timeout = Duration::from_millis(secmms_e2e::config::DEFAULT_REKEY_TIMEOUT_MS);
    assert!(
        due >= later.mono + timeout && due <= later.mono + timeout + Duration::from_millis(1),
        "{due:?} vs {:?}",
        later.mono + timeout
    );
    let early = later.after(Duration::from_secs(1));
    c.handle_timeout(early);
    assert!(c.poll_transmit().is_none() && c.poll_event().is_none());
    let at = Now::new(
        TimeStamp(later.wall.0 + secmms_e2e::config::DEFAULT_REKEY_TIMEOUT_MS as i64 + 1),
        due + Duration::from_millis(1),
    );
    c.handle_timeout(at);
    let ev = drain(&mut c);
    assert!(
        matches!(
            ev.first(),
            Some(SecureEvent::SecurityFailure(ProtectionError::Native(
                NativeError::Security {
                    sent: Some(SecPduKind::DtSecAbort),
                    ..
                }
            )))
        ),
        "{ev:?}"
    );
    assert!(cside.mnemonics().contains(&"E2E_REKEY_TIMEOUT"));
    pump(&mut c, &mut s, at);
    let ev = drain(&mut s);
    assert!(
        matches!(
            ev.as_slice(),
            [SecureEvent::Aborted(_), SecureEvent::Closed]
        ),
        "{ev:?}"
    );
    assert!(matches!(
        s.last_diagnostic(),
        Some(NativeDiagnostic::PeerAborted { .. })
    ));
}

// ------------------------------------------------------------------ OSI timeouts

#[test]
fn associate_timeout_fires_at_its_deadline_only() {
    let now = t0();
    let t = Timeouts {
        associate: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let mut s = plain(Role::Responder, t, now);
    assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(10)));
    // Spurious and early calls do nothing.
    s.handle_timeout(now);
    s.handle_timeout(now.after(Duration::from_millis(9_999)));
    assert!(s.poll_event().is_none() && !s.is_closed());
    s.handle_timeout(now.after(Duration::from_secs(10)));
    assert!(matches!(
        s.poll_event(),
        Some(SecureEvent::TimedOut(TimerKind::Associate))
    ));
    assert!(s.is_closed());
    assert!(s.poll_transmit().is_none(), "closed locally, nothing sent");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn idle_deadline_moves_with_every_input() {
    let now = t0();
    let t = Timeouts {
        associate: Some(Duration::from_secs(5)),
        idle: Some(Duration::from_secs(30)),
        ..Timeouts::default()
    };
    let mut c = plain(Role::Initiator, Timeouts::default(), now);
    let mut s = plain(Role::Responder, t, now);
    establish(&mut c, &mut s, now);
    // Established: the associate timeout is gone, the idle one counts from the accept.
    assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(30)));
    let t20 = now.after(Duration::from_secs(20));
    c.send_mms(&mms(1, 0), t20).unwrap();
    pump(&mut c, &mut s, t20);
    assert!(matches!(drain(&mut s).as_slice(), [SecureEvent::Mms(_)]));
    assert_eq!(s.poll_timeout(), Some(t20.mono + Duration::from_secs(30)));
    // 35 s after the start is only 15 s after the last input.
    s.handle_timeout(now.after(Duration::from_secs(35)));
    assert!(s.poll_event().is_none());
    s.handle_timeout(t20.after(Duration::from_secs(30)));
    assert!(matches!(
        s.poll_event(),
        Some(SecureEvent::TimedOut(TimerKind::Idle))
    ));
}

#[test]
fn a_pdu_must_be_completed_in_time_whatever_octets_trickle_in() {
    let now = t0();
    let t = Timeouts {
        idle: Some(Duration::from_secs(600)),
        pdu: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let mut c = plain(Role::Initiator, Timeouts::default(), now);
    let mut s = plain(Role::Responder, t, now);
    establish(&mut c, &mut s, now);
    assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(600)));
    // A whole request: no PDU deadline.
    c.send_mms(&mms(1, 0), now).unwrap();
    let whole = c.poll_transmit().unwrap();
    s.handle_input(&whole, now).unwrap();
    assert!(matches!(drain(&mut s).as_slice(), [SecureEvent::Mms(_)]));
    assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(600)));
    // The next one trickles in an octet every 4 s: each renews the idle timer, none the
    // PDU deadline, which counts from the first octet.
    c.send_mms(&mms(2, 0), now).unwrap();
    let pdu = c.poll_transmit().unwrap();
    let mut at = now;
    for (i, octet) in pdu[..3].iter().enumerate() {
        at = now.after(Duration::from_secs(4 * i as u64));
        s.handle_input(std::slice::from_ref(octet), at).unwrap();
        assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(10)));
        s.handle_timeout(at);
        assert!(s.poll_event().is_none());
    }
    s.handle_timeout(now.after(Duration::from_secs(10)));
    assert!(matches!(
        s.poll_event(),
        Some(SecureEvent::TimedOut(TimerKind::Pdu))
    ));
    assert!(s.is_closed());
    assert!(at.mono < now.mono + Duration::from_secs(10));
}

#[test]
fn completing_a_pdu_starts_the_next_ones_deadline() {
    let now = t0();
    let t = Timeouts {
        pdu: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
    let mut c = plain(Role::Initiator, Timeouts::default(), now);
    let mut s = plain(Role::Responder, t, now);
    establish(&mut c, &mut s, now);
    c.send_mms(&mms(1, 0), now).unwrap();
    c.send_mms(&mms(2, 0), now).unwrap();
    let mut both = Vec::new();
    while let Some(b) = c.poll_transmit() {
        both.extend(b);
    }
    let first = both.len() / 2;
    // Half of the first PDU at 0 s; the rest of it and half of the second at 8 s: the
    // deadline now counts from 8 s (a busy peer streaming PDUs is never cut off).
    s.handle_input(&both[..first / 2], now).unwrap();
    assert_eq!(s.poll_timeout(), Some(now.mono + Duration::from_secs(10)));
    let t8 = now.after(Duration::from_secs(8));
    s.handle_input(&both[first / 2..first + 3], t8).unwrap();
    assert_eq!(s.poll_timeout(), Some(t8.mono + Duration::from_secs(10)));
    s.handle_timeout(now.after(Duration::from_secs(12)));
    let t9 = now.after(Duration::from_secs(9));
    s.handle_input(&both[first + 3..], t9).unwrap();
    assert_eq!(s.poll_timeout(), None, "nothing partly received");
    let ev = drain(&mut s);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|e| matches!(e, SecureEvent::Mms(_))));
}

#[test]
fn release_timeout_without_an_answer() {
    let now = t0();
    let t = Timeouts {
        release: Some(Duration::from_secs(3)),
        pdu: None,
        ..Timeouts::default()
    };
    let mut c = plain(Role::Initiator, t, now);
    let mut s = plain(Role::Responder, Timeouts::default(), now);
    establish(&mut c, &mut s, now);
    assert_eq!(c.poll_timeout(), None);
    c.release(None, now).unwrap();
    while c.poll_transmit().is_some() {} // the RLRQ is lost
    assert_eq!(c.poll_timeout(), Some(now.mono + Duration::from_secs(3)));
    c.handle_timeout(now.after(Duration::from_secs(2)));
    assert!(c.poll_event().is_none());
    c.handle_timeout(now.after(Duration::from_secs(3)));
    assert!(matches!(
        c.poll_event(),
        Some(SecureEvent::TimedOut(TimerKind::Release))
    ));
    assert!(c.is_closed());
}

// ------------------------------------------------------------------ failures

/// Three transfers in one burst, the second tampered: the first is delivered, the second
/// fails with the DtSecAbort queued, and the peer sees the abort.
#[test]
fn a_bad_pdu_in_a_burst_delivers_the_earlier_ones_then_aborts() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    establish(&mut c, &mut s, now);
    let mut packets = Vec::new();
    for i in 0..3 {
        c.send_mms(&mms(i, 20), now).unwrap();
        let mut p = Vec::new();
        while let Some(b) = c.poll_transmit() {
            p.extend(b);
        }
        packets.push(p);
    }
    let last = packets[1].len() - 3;
    packets[1][last] ^= 0x01; // inside the ciphertext or tag
    let burst: Vec<u8> = packets.concat();
    s.handle_input(&burst, now).unwrap();
    let ev = drain(&mut s);
    assert!(matches!(ev.first(), Some(SecureEvent::Mms(_))), "{ev:?}");
    assert!(
        matches!(
            ev.get(1),
            Some(SecureEvent::SecurityFailure(ProtectionError::Native(
                NativeError::Security {
                    sent: Some(SecPduKind::DtSecAbort),
                    ..
                }
            )))
        ),
        "{ev:?}"
    );
    assert!(!ev.iter().skip(2).any(|e| matches!(e, SecureEvent::Mms(_))));
    assert!(s.is_closed());
    pump(&mut s, &mut c, now);
    let ev = drain(&mut c);
    assert!(
        matches!(ev.first(), Some(SecureEvent::Aborted(a)) if a.origin == AbortOrigin::PeerUser),
        "{ev:?}"
    );
}

#[test]
fn native_ocsp_refusal_sends_handshake_sec_reject() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    c.connect(init_req(), now).unwrap();
    pump(&mut c, &mut s, now);
    pump(&mut s, &mut c, now);
    pump(&mut c, &mut s, now);
    let ev = drain(&mut s);
    assert!(matches!(
        ev.as_slice(),
        [SecureEvent::AssociateIndication { .. }]
    ));
    assert!(s.protection().peer_certificate().is_some());
    let e = s.refuse_peer(true, "OCSP: revoked".into(), now);
    assert!(
        matches!(
            e,
            Some(ProtectionError::Native(NativeError::Security {
                sent: Some(SecPduKind::HandshakeSecReject),
                ..
            }))
        ),
        "{e:?}"
    );
    assert!(sside.mnemonics().contains(&"E2E_PEER_CERT_REVOKED"));
    pump(&mut s, &mut c, now);
    let ev = drain(&mut c);
    assert!(
        matches!(ev.first(), Some(SecureEvent::Rejected { .. })),
        "{ev:?}"
    );
    assert!(matches!(
        c.last_diagnostic(),
        Some(NativeDiagnostic::SecurityRejected { .. })
    ));
}

#[test]
fn aprofile_ocsp_refusal_aborts_with_authentication_failure() {
    let ca = Ca::new("Root");
    let (cs, _) = aprofile_side(&ca, client_identity(), 1);
    let (ss, ssink) = aprofile_side(&ca, server_identity(), 2);
    let now = t0();
    let mut c = aprofile_client(&cs, now);
    let mut s = aprofile_server(&ss, now);
    c.connect(init_req(), now).unwrap();
    pump(&mut c, &mut s, now);
    pump(&mut s, &mut c, now);
    pump(&mut c, &mut s, now);
    assert!(matches!(
        drain(&mut s).as_slice(),
        [SecureEvent::AssociateIndication { .. }]
    ));
    let e = s.refuse_peer(false, "OCSP: no answer (hard-fail)".into(), now);
    assert!(matches!(e, Some(ProtectionError::PeerRefused(_))), "{e:?}");
    assert!(ssink
        .events()
        .iter()
        .any(|e| e.mnemonic == "AP_OCSP_UNAVAILABLE"));
    pump(&mut s, &mut c, now);
    let ev = drain(&mut c);
    assert!(
        matches!(
            ev.first(),
            Some(SecureEvent::Rejected { .. } | SecureEvent::Aborted(_))
        ),
        "{ev:?}"
    );
    assert!(s.is_closed());
}

#[test]
fn native_recheck_after_a_crl_reload_aborts_a_revoked_peer() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    establish(&mut c, &mut s, now);
    s.recheck_peer(now).unwrap();
    assert!(s.poll_transmit().is_none(), "still valid: nothing sent");
    sside.revoked.store(true, Ordering::SeqCst);
    let e = s.recheck_peer(now);
    assert!(
        matches!(
            e,
            Err(ProtectionError::Native(NativeError::Security {
                sent: Some(SecPduKind::DtSecAbort),
                ..
            }))
        ),
        "{e:?}"
    );
    assert!(sside.mnemonics().contains(&"E2E_PEER_CERT_REVOKED"));
    pump(&mut s, &mut c, now);
    assert!(matches!(
        drain(&mut c).first(),
        Some(SecureEvent::Aborted(_))
    ));
}

// ------------------------------------------------------------------ a layer around it

/// A layer that records the AAREs it decorates and marks them; the secure association still
/// reaches the protection inside (data flows, the protection is described).
struct Recorder {
    inner: Protection,
    aares: Arc<Mutex<Vec<i64>>>,
}

impl AssociationSecurity for Recorder {
    fn check_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &secmms_osi::acse::Aarq,
    ) -> secmms_osi::security::AssociateVerdict {
        self.inner.check_aarq(ctx, aarq)
    }
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut secmms_osi::acse::Aarq,
    ) -> Result<(), AbortRequest> {
        self.inner.decorate_aarq(ctx, aarq)
    }
    fn decorate_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &mut Aare,
    ) -> Result<(), AbortRequest> {
        let r = self.inner.decorate_aare(ctx, aare);
        self.aares.lock().unwrap().push(aare.result);
        r
    }
    fn check_aare(&mut self, ctx: &SecurityContext<'_>, aare: &Aare) -> Verdict {
        self.inner.check_aare(ctx, aare)
    }
    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &secmms_osi::acse::Abrt) {
        self.inner.check_abrt(ctx, abrt)
    }
    fn decorate_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &mut secmms_osi::acse::Abrt) {
        self.inner.decorate_abrt(ctx, abrt)
    }
}

impl Layer for Recorder {
    fn protection(&self) -> &Protection {
        &self.inner
    }
    fn protection_mut(&mut self) -> &mut Protection {
        &mut self.inner
    }
}

#[test]
fn a_layer_sees_the_apdus_and_the_protection_still_works() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut osi = OsiConfig::server_default();
    sside.shared.prepare_osi_config(&mut osi, Role::Responder);
    let aares = Arc::new(Mutex::new(Vec::new()));
    let layer = Recorder {
        inner: Protection::Native(Box::new(
            sside.shared.responder_state(ConnectionInfo::default()),
        )),
        aares: aares.clone(),
    };
    let mut s =
        SecureAssociation::with_layer(Role::Responder, osi, layer, Timeouts::default(), now);
    establish(&mut c, &mut s, now);
    assert_eq!(*aares.lock().unwrap(), vec![associate_result::ACCEPTED]);
    assert!(s.protection().describe().starts_with("E2E AEAD"));
    c.send_mms(&mms(7, 3), now).unwrap();
    pump(&mut c, &mut s, now);
    assert!(matches!(drain(&mut s).as_slice(), [SecureEvent::Mms(_)]));
    // The layer is reachable for the test's own purposes.
    assert!(s.layer_mut().protection().native().is_some());
}

/// A server that rejects (the application refuses the initiate) reports it to the client
/// with the initiate-ErrorPDU (native: ApplicationReject).
#[test]
fn application_reject_reaches_the_client() {
    let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
    let now = t0();
    let mut c = cside.client(now, Timeouts::default());
    let mut s = sside.server(now, Timeouts::default());
    c.connect(init_req(), now).unwrap();
    pump(&mut c, &mut s, now);
    pump(&mut s, &mut c, now);
    pump(&mut c, &mut s, now);
    drain(&mut s);
    let err_pdu = vec![0xAA, 0x05, 0xA0, 0x03, 0x88, 0x01, 0x01];
    s.reject(
        associate_result::REJECTED_PERMANENT,
        SourceDiagnostic::ServiceUser(1),
        Some(err_pdu.clone()),
        now,
    )
    .unwrap();
    pump(&mut s, &mut c, now);
    let ev = drain(&mut c);
    let Some(SecureEvent::Rejected { initiate_error, .. }) = ev.first() else {
        panic!("{ev:?}")
    };
    assert_eq!(initiate_error.as_deref(), Some(&err_pdu[..]));
}

/// A timeout too long to be an instant (from a configuration) means "never", not a panic.
#[test]
fn an_enormous_timeout_waits_forever() {
    let now = t0();
    let huge = Some(Duration::from_secs(u64::MAX));
    let t = Timeouts {
        associate: huge,
        idle: huge,
        release: huge,
        pdu: huge,
    };
    let mut c = plain(Role::Initiator, t, now);
    let mut s = plain(Role::Responder, t, now);
    assert_eq!(s.poll_timeout(), None);
    establish(&mut c, &mut s, now);
    c.release(None, now).unwrap();
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(now.after(Duration::from_secs(86_400)));
    assert!(s.poll_event().is_none() && !s.is_closed());
}

/// Native mode, both ends release at once over OSI (their FNs cross): each end verifies the
/// other's E2E ReleaseReq and both end released. A ReleaseReq altered on the way is caught:
/// that end aborts instead.
#[test]
fn native_release_collision_over_osi_is_verified() {
    for tamper in [false, true] {
        let (_ca, cside, sside) = native_pair(ModeOffer::Ae(vec![AeAlg::Aes128Gcm]));
        let now = t0();
        let mut c = cside.client(now, Timeouts::default());
        let mut s = sside.server(now, Timeouts::default());
        establish(&mut c, &mut s, now);
        c.release(Some(CONCLUDE_REQ.to_vec()), now).unwrap();
        s.release(Some(CONCLUDE_REQ.to_vec()), now).unwrap();
        let to_s = c.poll_transmit().unwrap();
        let mut to_c = s.poll_transmit().unwrap();
        if tamper {
            // The last octets of the FN are inside the ReleaseReq's signature.
            let n = to_c.len();
            to_c[n - 3] ^= 0x01;
        }
        let _ = c.handle_input(&to_c, now);
        s.handle_input(&to_s, now).unwrap();
        let cev = drain(&mut c);
        let sev = drain(&mut s);
        assert!(
            matches!(sev.first(), Some(SecureEvent::Released { .. })),
            "server {sev:?}"
        );
        if tamper {
            assert!(
                !cev.iter()
                    .any(|e| matches!(e, SecureEvent::Released { .. })),
                "client {cev:?}"
            );
            assert!(c.is_closed());
            assert!(c.poll_transmit().is_some(), "the client's abort is queued");
            let m = cside.mnemonics();
            assert_eq!(m, vec!["E2E_ESTABLISHED", "INV_SIGNATURE"]);
        } else {
            assert!(
                matches!(cev.first(), Some(SecureEvent::Released { .. })),
                "client {cev:?}"
            );
            assert!(c.is_closed() && s.is_closed());
        }
    }
}
