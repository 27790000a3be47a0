//! [`AProfileShared`](super::AProfileShared): what the associations of one process share, the
//! refusal and re-check of a peer found outside clause 11, and the construction of each
//! association's hook.

use super::*;

impl AProfileShared {
    /// Refuses an authenticated peer for a reason found outside clause 11 (the runtime's OCSP
    /// lookup: revoked, or no answer under hard-fail): raises `event` with `message` (naming
    /// `association`) and returns the ABRT to send, authentication-failure as for any
    /// certificate failure (§11.4).
    pub fn refuse_peer(
        &self,
        event: AEvent,
        message: String,
        association: Option<String>,
    ) -> AbortRequest {
        self.record(event, message, association);
        abort(abort_diagnostic::AUTHENTICATION_FAILURE)
    }

    /// Raises an A-profile event naming `association`.
    pub fn record(&self, event: AEvent, message: String, association: Option<String>) {
        self.sink.record(&SecurityEvent {
            id: event.id,
            mnemonic: event.mnemonic,
            severity: event.severity,
            message,
            association,
        });
    }

    /// Validates an authenticated peer's certificate again at `now` (Unix seconds; after the
    /// CRLs were reloaded). A peer now revoked raises `AP_CERT_REVOKED` (incident, naming
    /// `association`) and gets the ABRT to send (authentication-failure, as for any certificate
    /// failure, §11.4); any other result leaves the association alone (only revocation is
    /// re-evaluated).
    pub fn recheck_peer_at(
        &self,
        peer: &AuthenticatedPeer,
        association: Option<String>,
        now: i64,
    ) -> Result<(), AbortRequest> {
        match self.cfg.validator.validate(&peer.certificate, &[], now) {
            Err(CertError::Revoked) => {
                let ev = events::CERT_REVOKED;
                self.sink.record(&SecurityEvent {
                    id: ev.id,
                    mnemonic: ev.mnemonic,
                    severity: ev.severity,
                    message: "the peer's application certificate is revoked by a reloaded CRL; \
                              association aborted"
                        .into(),
                    association,
                });
                Err(abort(abort_diagnostic::AUTHENTICATION_FAILURE))
            }
            _ => Ok(()),
        }
    }
}

impl AProfileShared {
    /// Checks our credentials (size, key, Annex G.2 separation) and builds the shared state;
    /// `replay` is the process-wide replay store (§11.4).
    pub fn new(
        cfg: AProfileConfig,
        table: PeerTable,
        replay: Arc<dyn AuthReplay>,
        sink: Arc<dyn SecurityEventSink>,
    ) -> Result<Self, ProfileError> {
        if let Some(c) = &cfg.credentials {
            if c.certificate.len() > MAX_CERTIFICATE_LEN {
                return Err(ProfileError::CertificateTooLarge);
            }
            if cfg
                .tls_certificate_fingerprints
                .contains(&sha256(&c.certificate))
            {
                return Err(ProfileError::TlsCertificateReused);
            }
            algorithm_for(c.key.pkey()).map_err(|e| ProfileError::Key(e.to_string()))?;
        }
        Ok(AProfileShared {
            stamps: Arc::new(TimeStamps::default()),
            cfg: Arc::new(cfg),
            table: Arc::new(table),
            replay,
            sink,
        })
    }

    /// The replay store (for inspection).
    pub fn replay_cache(&self) -> &dyn AuthReplay {
        self.replay.as_ref()
    }

    /// Adds the mmsAuthenticationAS context to `osi` where §11.1/§11.3 want it: always as
    /// responder (so it can be accepted when proposed; it stays optional on receive), and as
    /// initiator unless `sisco_compat`.
    pub fn prepare_osi_config(&self, osi: &mut OsiConfig, role: Role, sisco_compat: bool) {
        let as_ = &self.cfg.mms_authentication_as;
        let want = role == Role::Responder || !sisco_compat;
        if want && !osi.extra_abstract_syntaxes.contains(as_) {
            osi.extra_abstract_syntaxes.push(as_.clone());
        }
    }

    /// The hook for a server-side association on `conn`.
    pub fn responder(&self, conn: ConnectionInfo) -> AProfile {
        AProfile::new(self.clone(), Role::Responder, conn, None, None)
    }

    /// The hook for a client-side association on `conn` towards the peer described by `peer`
    /// (its §5.1 row). `peer_identity` is the AP-title + AE-qualifier the peer's certificate
    /// must carry when its AARE has no responding titles (normally the called AP-title with
    /// the called AE-qualifier appended; see [`identity_of`]).
    pub fn initiator(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        peer_identity: Option<PeerIdentity>,
    ) -> AProfile {
        AProfile::new(
            self.clone(),
            Role::Initiator,
            conn,
            Some(peer),
            peer_identity,
        )
    }

    /// [`AProfileShared::initiator`] with the peer identity taken from `osi`'s called AP-title
    /// and AE-qualifier (`remote_ap_title`, `remote_ae_qualifier`), the usual case.
    pub fn initiator_for(
        &self,
        conn: ConnectionInfo,
        peer: PeerPolicy,
        osi: &OsiConfig,
    ) -> AProfile {
        let id = identity_of(osi.remote_ap_title.as_ref(), osi.remote_ae_qualifier);
        self.initiator(conn, peer, id)
    }
}
