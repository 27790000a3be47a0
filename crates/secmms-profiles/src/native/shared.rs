//! What all associations of one configuration share ([`NativeShared`](super::NativeShared)):
//! the E2E context, the OIDs, the peer table and the event sink, and the construction of each
//! association's [`NativeState`](super::NativeState).

use super::*;

/// Where a configuration's AssoID numbers start: at random, so that two processes (or two
/// contexts in one) using the same certificate do not start two associations with the same
/// AssoID in the same millisecond, which the peer's replay check (§14.3 step 10) would refuse.
fn first_number() -> u16 {
    let mut b = [0u8; 2];
    match secmms_pki::crypto::RandomSource::fill(&mut OsRandom, &mut b) {
        Ok(()) => u16::from_be_bytes(b) % 1000,
        Err(_) => 1,
    }
}

impl NativeShared {
    /// The shared state. Randomness comes from [`OsRandom`] (see [`Self::with_random`]).
    pub fn new(
        ctx: Context,
        cfg: NativeConfig,
        table: PeerTable,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Self {
        let own_identity = CertInfo::parse(&ctx.credentials.cert_der)
            .ok()
            .and_then(|i| i.identity);
        NativeShared {
            ctx,
            cfg: Arc::new(cfg),
            table: Arc::new(table),
            sink,
            key_log: None,
            random: Arc::new(|| Box::new(OsRandom)),
            next_num: Arc::new(AtomicU16::new(first_number())),
            own_identity,
        }
    }

    /// Replaces the random sources given to new associations (deterministic tests).
    pub fn with_random(mut self, random: RandomFactory) -> Self {
        self.random = random;
        self
    }

    /// Hands the traffic keys of every association made from now on to `log` (an E2E key log
    /// the operator asked for): each key derivation of the engine (handshake, rekeys) is
    /// recorded there and raises the `E2E_KEYLOG_ACTIVE` warning event.
    pub fn with_key_log(mut self, log: Arc<dyn E2eKeyLogSink>) -> Self {
        self.key_log = Some(log);
        self
    }

    /// The mapping's configuration.
    pub fn config(&self) -> &NativeConfig {
        &self.cfg
    }

    /// The E2E context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Adds the e2eSecurityAS context to `osi.extra_abstract_syntaxes` (§15.1, pcid 5 by the
    /// §10.2 DECISION when it is the first extra); as initiator sets the application context to
    /// e2eMmsAC, as responder adds e2eMmsAC to the accepted contexts (the others stay, so an
    /// AARQ with another context reaches the hook and is refused with event 15.5).
    pub fn prepare_osi_config(&self, osi: &mut OsiConfig, role: Role) {
        let as_ = &self.cfg.e2e_security_as;
        if !osi.extra_abstract_syntaxes.contains(as_) {
            osi.extra_abstract_syntaxes.push(as_.clone());
        }
        let ac = &self.cfg.e2e_mms_ac;
        match role {
            Role::Initiator => osi.application_context_name = ac.clone(),
            Role::Responder => {
                if !osi.accepted_application_contexts.contains(ac) {
                    osi.accepted_application_contexts.push(ac.clone());
                }
            }
        }
    }

    /// The owned state of a server-side association on `conn`.
    pub fn responder_state(&self, conn: ConnectionInfo) -> NativeState {
        let mut server = E2eServer::new(self.ctx.clone(), (self.random)(), self.local_number());
        server.refuse_certificates(&self.refused_certificates(&conn));
        let engine = Engine::Server(server);
        self.state(Role::Responder, conn, engine, None, None)
    }

    /// The owned state of a client-side association on `conn` towards the peer described by
    /// `peer` (its §5.1 row). `peer_identity` is the identity the server's certificate must
    /// carry (Annex G.6.2); `None` takes it from the AARQ's called AP-title and AE-qualifier.
    pub fn initiator_state(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        peer_identity: Option<PeerIdentity>,
    ) -> NativeState {
        let mut client = E2eClient::new(self.ctx.clone(), (self.random)(), self.local_number());
        client.refuse_certificates(&self.refused_certificates(&conn));
        let engine = Engine::Client(client);
        self.state(Role::Initiator, conn, engine, Some(peer), peer_identity)
    }

    /// Annex G.2: the certificates a peer's application certificate may not be on `conn`.
    pub(super) fn refused_certificates(&self, conn: &ConnectionInfo) -> Vec<[u8; 32]> {
        if !self.cfg.separate_certificates {
            return Vec::new();
        }
        let mut v = self.cfg.tls_certificate_fingerprints.clone();
        v.extend_from_slice(&conn.tls_certificate_fingerprints);
        v
    }

    /// [`NativeShared::initiator_state`] with the peer identity taken from `osi`'s called
    /// AP-title and AE-qualifier (`remote_ap_title`, `remote_ae_qualifier`), the usual case.
    pub fn initiator_state_for(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        osi: &OsiConfig,
    ) -> NativeState {
        let id = identity_of(osi.remote_ap_title.as_ref(), osi.remote_ae_qualifier);
        self.initiator_state(conn, peer, id)
    }

    /// The `c` / `s` number of the next AssoID (§13.3.1.1 DECISION: unique among live
    /// associations as long as fewer than 1 000 are live).
    pub(super) fn local_number(&self) -> u16 {
        self.next_num.fetch_add(1, Ordering::Relaxed) % 1000
    }

    pub(super) fn state(
        &self,
        role: Role,
        conn: ConnectionInfo,
        engine: Engine,
        policy: Option<PeerPolicy>,
        expected: Option<PeerIdentity>,
    ) -> NativeState {
        let label = conn.label(policy.as_ref().map(|p| p.name.as_str()));
        let mut engine = engine;
        if self.key_log.is_some() {
            engine.export_keys();
        }
        NativeState {
            mapping: MappingState {
                engine,
                phase: Phase::Idle,
                e2e_pcid: None,
                peer: None,
                policy,
                last: None,
                label,
                pending_reject: None,
            },
            hook: HookCtx {
                shared: self.clone(),
                role,
                conn,
                expected,
                called: (None, None),
                now: None,
            },
        }
    }

    pub(super) fn limits(&self) -> Limits {
        self.ctx.config.limits
    }

    pub(super) fn record(&self, e: &SecurityEvent) {
        self.sink.record(e);
    }

    pub(super) fn record_keys(&self, k: &secmms_e2e::keylog::KeyMaterial) {
        if let Some(l) = &self.key_log {
            l.record(k);
        }
    }
}
