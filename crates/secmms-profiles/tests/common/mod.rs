//! Shared test fixtures: a generated PKI, a settable clock, in-memory associations.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use openssl::x509::{X509Crl, X509};
use secmms_ber::Oid;
use secmms_osi::acse::Aarq;
use secmms_osi::security::{AbortRequest, AssociationSecurity, Role, SecurityContext};
use secmms_osi::{Association, OsiConfig, OsiEvent};
use secmms_pki::cert::issue::{issue, CertSpec};
use secmms_pki::crypto::{sha256, Curve, SigningKey};
use secmms_pki::event::{MemorySink, SecurityEvent};
use secmms_pki::{OpenSslValidator, PeerIdentity};
use secmms_profiles::aprofile::{identity_of, AProfile, AuthReplay, ReplayCheck, ReplayTable};
use secmms_profiles::{
    AProfileConfig, AProfileShared, ConnectionInfo, Credentials, PeerPolicy, PeerTable,
};

pub const T0: i64 = 1_750_000_000;

pub fn client_identity() -> PeerIdentity {
    // OsiConfig::default(): calling AP-title 1.1.1.999, AE-qualifier 12.
    identity_of(Some(&"1.1.1.999".parse::<Oid>().unwrap()), Some(12)).unwrap()
}

pub fn server_identity() -> PeerIdentity {
    identity_of(Some(&"1.1.1.999.1".parse::<Oid>().unwrap()), Some(12)).unwrap()
}

pub struct Ca {
    pub cert: X509,
    pub key: SigningKey,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = SigningKey::generate_ec(Curve::P256).unwrap();
        let cert = issue(
            &CertSpec::ca(name, T0 - 86_400, T0 + 86_400 * 365),
            &key,
            None,
        )
        .unwrap();
        Ca { cert, key }
    }

    /// An RSA-2048 end entity (§11.2 sha256WithRSAEncryption) valid over [nb, na].
    pub fn end_entity(
        &self,
        id: PeerIdentity,
        nb: i64,
        na: i64,
        serial: u8,
    ) -> (Credentials, X509) {
        let key = SigningKey::generate_rsa(2048).unwrap();
        let c = issue(
            &CertSpec::end_entity(id, nb, na, serial),
            &key,
            Some((&self.cert, &self.key)),
        )
        .unwrap();
        (
            Credentials {
                certificate: c.to_der().unwrap(),
                key,
            },
            c,
        )
    }

    pub fn valid(&self, id: PeerIdentity, serial: u8) -> Credentials {
        self.end_entity(id, T0 - 3600, T0 + 86_400, serial).0
    }

    pub fn crl_revoking(&self, cert: &X509) -> X509Crl {
        use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
        use openssl::x509::{X509CrlBuilder, X509Extension, X509RevokedBuilder};
        let mut cb = X509CrlBuilder::new().unwrap();
        cb.set_issuer_name(self.cert.subject_name()).unwrap();
        cb.set_last_update(&Asn1Time::from_unix(T0 - 60).unwrap())
            .unwrap();
        cb.set_next_update(&Asn1Time::from_unix(T0 + 86_400).unwrap())
            .unwrap();
        let mut rb = X509RevokedBuilder::new().unwrap();
        rb.set_serial_number(cert.serial_number()).unwrap();
        rb.set_revocation_date(&Asn1Time::from_unix(T0 - 60).unwrap())
            .unwrap();
        cb.add_revoked(rb.build()).unwrap();
        let mut aki = vec![0x30, 22, 0x80, 20];
        aki.extend_from_slice(
            &self
                .cert
                .digest(openssl::hash::MessageDigest::sha1())
                .unwrap(),
        );
        let obj = Asn1Object::from_str("2.5.29.35").unwrap();
        let os = Asn1OctetString::new_from_bytes(&aki).unwrap();
        cb.append_extension(X509Extension::new_from_der(&obj, false, &os).unwrap())
            .unwrap();
        let obj = Asn1Object::from_str("2.5.29.20").unwrap();
        let os = Asn1OctetString::new_from_bytes(&[2, 1, 1]).unwrap();
        cb.append_extension(X509Extension::new_from_der(&obj, false, &os).unwrap())
            .unwrap();
        cb.sign(self.key.pkey(), openssl::hash::MessageDigest::sha256())
            .unwrap();
        cb.build().unwrap()
    }
}

#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn new(t: i64) -> Self {
        TestClock(Arc::new(AtomicI64::new(t)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst)
    }
    /// The time now, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst) * 1000
    }
}

pub struct Side {
    pub shared: AProfileShared,
    pub sink: Arc<MemorySink>,
    pub clock: TestClock,
}

impl Side {
    pub fn new(creds: Credentials, validator: OpenSslValidator, table: PeerTable) -> Side {
        Self::with_config(AProfileConfig::new(Some(creds), Arc::new(validator)), table)
    }
    pub fn with_config(cfg: AProfileConfig, table: PeerTable) -> Side {
        let sink = Arc::new(MemorySink::new());
        let clock = TestClock::new(T0);
        let shared = AProfileShared::new(cfg, table, replay_store(), sink.clone()).unwrap();
        Side {
            shared,
            sink,
            clock,
        }
    }
    /// The hook of a server-side association, stamped with this side's clock at every call.
    pub fn responder(&self, conn: ConnectionInfo) -> Stamped {
        Stamped {
            inner: self.shared.responder(conn),
            clock: self.clock.clone(),
        }
    }
    /// The hook of a client-side association (see `AProfileShared::initiator`).
    pub fn initiator(
        &self,
        conn: ConnectionInfo,
        policy: PeerPolicy,
        peer: Option<PeerIdentity>,
    ) -> Stamped {
        Stamped {
            inner: self.shared.initiator(conn, policy, peer),
            clock: self.clock.clone(),
        }
    }
    /// The hook of a client-side association calling the titles of `osi`.
    pub fn initiator_for(
        &self,
        conn: ConnectionInfo,
        policy: PeerPolicy,
        osi: &OsiConfig,
    ) -> Stamped {
        Stamped {
            inner: self.shared.initiator_for(conn, policy, osi),
            clock: self.clock.clone(),
        }
    }
    pub fn mnemonics(&self) -> Vec<&'static str> {
        self.sink
            .events()
            .iter()
            .map(|e: &SecurityEvent| e.mnemonic)
            .collect()
    }
}

/// A process-wide A-profile replay store for tests: one table behind a lock (what the runtime
/// does too).
#[derive(Default)]
pub struct SharedReplay(std::sync::Mutex<ReplayTable>);

impl SharedReplay {
    fn table(&self) -> std::sync::MutexGuard<'_, ReplayTable> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AuthReplay for SharedReplay {
    fn contains(&self, cert: &[u8; 32], time: &[u8], now: i64) -> bool {
        self.table().contains(cert, time, now)
    }
    fn insert(&self, cert: &[u8; 32], time: &[u8], now: i64, window: i64) -> ReplayCheck {
        self.table().insert(cert, time, now, window)
    }
    fn len(&self) -> usize {
        self.table().len()
    }
}

pub fn replay_store() -> Arc<dyn AuthReplay> {
    Arc::new(SharedReplay::default())
}

pub fn validator(ca: &Ca) -> OpenSslValidator {
    let mut v = OpenSslValidator::new();
    v.add_anchor(ca.cert.clone());
    v
}

/// An A-profile hook given the time of a settable test clock before every call (what
/// `SecureAssociation` does with the `Now` of each call).
pub struct Stamped {
    pub inner: AProfile,
    pub clock: TestClock,
}

impl Stamped {
    fn now(&mut self) -> &mut AProfile {
        self.inner.set_now(self.clock.now_ms());
        &mut self.inner
    }
    pub fn authenticated_peer(&self) -> Option<secmms_profiles::aprofile::AuthenticatedPeer> {
        self.inner.authenticated_peer()
    }
}

impl AssociationSecurity for Stamped {
    fn decorate_aarq(&mut self, c: &SecurityContext<'_>, a: &mut Aarq) -> Result<(), AbortRequest> {
        self.now().decorate_aarq(c, a)
    }
    fn check_aarq(
        &mut self,
        c: &SecurityContext<'_>,
        a: &Aarq,
    ) -> secmms_osi::security::AssociateVerdict {
        self.now().check_aarq(c, a)
    }
    fn unsupported_application_context(&mut self, c: &SecurityContext<'_>, a: &Aarq) {
        self.now().unsupported_application_context(c, a)
    }
    fn decorate_aare(
        &mut self,
        c: &SecurityContext<'_>,
        a: &mut secmms_osi::acse::Aare,
    ) -> Result<(), AbortRequest> {
        self.now().decorate_aare(c, a)
    }
    fn check_aare(
        &mut self,
        c: &SecurityContext<'_>,
        a: &secmms_osi::acse::Aare,
    ) -> secmms_osi::security::Verdict {
        self.now().check_aare(c, a)
    }
    fn check_rejecting_aare(
        &mut self,
        c: &SecurityContext<'_>,
        a: &secmms_osi::acse::Aare,
    ) -> Option<Vec<u8>> {
        self.now().check_rejecting_aare(c, a)
    }
    fn decorate_abrt(&mut self, c: &SecurityContext<'_>, a: &mut secmms_osi::acse::Abrt) {
        self.now().decorate_abrt(c, a)
    }
    fn check_abrt(&mut self, c: &SecurityContext<'_>, a: &secmms_osi::acse::Abrt) {
        self.now().check_abrt(c, a)
    }
    fn protocol_error(&mut self, c: &SecurityContext<'_>, e: &secmms_osi::OsiError) {
        self.now().protocol_error(c, e)
    }
}

/// A client hook that lets the test change the AARQ after the A-profile decorated it.
pub struct Tamper {
    pub inner: Stamped,
    pub f: Box<dyn FnMut(&mut Aarq) + Send>,
}

impl AssociationSecurity for Tamper {
    fn decorate_aarq(
        &mut self,
        ctx: &SecurityContext<'_>,
        aarq: &mut Aarq,
    ) -> Result<(), AbortRequest> {
        self.inner.decorate_aarq(ctx, aarq)?;
        (self.f)(aarq);
        Ok(())
    }
    fn check_aare(
        &mut self,
        ctx: &SecurityContext<'_>,
        aare: &secmms_osi::acse::Aare,
    ) -> secmms_osi::security::Verdict {
        self.inner.check_aare(ctx, aare)
    }
    fn check_abrt(&mut self, ctx: &SecurityContext<'_>, abrt: &secmms_osi::acse::Abrt) {
        self.inner.check_abrt(ctx, abrt)
    }
}

pub fn client_osi(side: &Side, sisco: bool) -> OsiConfig {
    let mut osi = OsiConfig::default();
    side.shared
        .prepare_osi_config(&mut osi, Role::Initiator, sisco);
    osi
}

pub fn server_osi(side: &Side) -> OsiConfig {
    let mut osi = OsiConfig::server_default();
    side.shared
        .prepare_osi_config(&mut osi, Role::Responder, false);
    osi
}

pub fn client_hook(side: &Side, policy: PeerPolicy) -> Stamped {
    side.initiator(ConnectionInfo::default(), policy, Some(server_identity()))
}

pub fn pump<A: AssociationSecurity, B: AssociationSecurity>(
    a: &mut Association<A>,
    b: &mut Association<B>,
    log: &mut Vec<(bool, Vec<u8>)>,
    from_client: bool,
) {
    while let Some(bytes) = a.poll_transmit() {
        b.handle_input(&bytes).unwrap();
        log.push((from_client, bytes));
    }
}

pub fn events<H: AssociationSecurity>(a: &mut Association<H>) -> Vec<OsiEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}

/// Runs CR/CC/CN and, when the server hook accepted, an accepting AC. Returns the events of
/// the server and of the client, and every packet (client→server flag, bytes).
pub struct Outcome {
    pub server: Vec<OsiEvent>,
    pub client: Vec<OsiEvent>,
    pub packets: Vec<(bool, Vec<u8>)>,
}

pub const INIT_REQ: &str =
    "a826800300fde881010582010583010aa416800101810305f100820c03ee1c00000408000079ef18";
pub const INIT_RSP: &str =
    "a926800300fde881010582010583010aa416800101810305f100820c036e1c000000000000400110";

pub fn run(
    client_cfg: OsiConfig,
    client: Box<dyn AssociationSecurity>,
    server_cfg: OsiConfig,
    server: Box<dyn AssociationSecurity>,
) -> Outcome {
    run_with(client_cfg, client, server_cfg, server).0
}

/// [`run`] with hooks held by value, returning both associations so their hooks can be
/// inspected afterwards.
pub fn run_with<C: AssociationSecurity, S: AssociationSecurity>(
    client_cfg: OsiConfig,
    client: C,
    server_cfg: OsiConfig,
    server: S,
) -> (Outcome, Association<C>, Association<S>) {
    let mut c = Association::with_hook(Role::Initiator, client_cfg, client);
    let mut s = Association::with_hook(Role::Responder, server_cfg, server);
    let mut log = Vec::new();
    c.connect(hex::decode(INIT_REQ).unwrap()).unwrap();
    pump(&mut c, &mut s, &mut log, true);
    pump(&mut s, &mut c, &mut log, false);
    pump(&mut c, &mut s, &mut log, true);
    let mut server_events = events(&mut s);
    if matches!(
        server_events.as_slice(),
        [OsiEvent::AssociateIndication { .. }]
    ) {
        s.accept(hex::decode(INIT_RSP).unwrap()).unwrap();
    }
    pump(&mut s, &mut c, &mut log, false);
    let client_events = events(&mut c);
    // The client's reaction (e.g. an ABRT after a bad AARE) reaches the server.
    pump(&mut c, &mut s, &mut log, true);
    server_events.extend(events(&mut s));
    let o = Outcome {
        server: server_events,
        client: client_events,
        packets: log,
    };
    (o, c, s)
}

pub fn fingerprint(c: &Credentials) -> [u8; 32] {
    sha256(&c.certificate)
}
