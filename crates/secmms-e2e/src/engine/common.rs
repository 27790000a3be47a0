//! The API both roles share ([`E2eClient`](super::E2eClient) and
//! [`E2eServer`](super::E2eServer)), written once as a macro expanded in each role's `impl`.

macro_rules! common_api {
    () => {
        /// The association state.
        pub fn state(&self) -> State {
            self.core.state
        }
        /// The AssoID, once known.
        pub fn asso_id(&self) -> Option<&AssoId> {
            self.core.asso.as_ref()
        }
        /// The agreed protection, once established.
        pub fn protection(&self) -> Option<ProtectionMode> {
            self.core.suite.as_ref().map(|s| s.mode)
        }
        /// The next queued security event.
        pub fn poll_event(&mut self) -> Option<SecurityEvent> {
            self.core.events.pop_front()
        }
        /// Switches on key export for the E2E key log ([`crate::keylog`]): from the next key
        /// derivation on, each one (the handshake's, then every rekey's) queues a
        /// [`KeyMaterial`](crate::keylog::KeyMaterial) for [`Self::poll_key_material`] and an
        /// `E2E_KEYLOG_ACTIVE` warning event. Only for an operator who asked for a key log.
        pub fn export_keys(&mut self) {
            if self.core.export.is_none() {
                self.core.export = Some(Default::default());
            }
        }
        /// The next key-log record (see [`Self::export_keys`]); `None` when export is off or
        /// nothing new was derived.
        pub fn poll_key_material(&mut self) -> Option<crate::keylog::KeyMaterial> {
            self.core.export.as_mut()?.queue.pop_front()
        }
        /// Sets the environment address the peer's certificate must bind to (Annex G.6; §14.3
        /// step 6). Without it the address check is skipped.
        pub fn set_expected_peer(&mut self, id: Option<PeerIdentity>) {
            self.core.expected_peer = id;
        }
        /// The peer's application certificate (DER) once the handshake verified it.
        pub fn peer_certificate(&self) -> Option<&[u8]> {
            self.core.peer.as_ref().map(|p| p.cert.as_slice())
        }
        /// Ends an established association because the peer's certificate is now revoked
        /// (a reloaded CRL): the DtSecAbort (diagnostic `no-reason-given`) comes back in the
        /// [`E2eError::Rejected`] and the `E2E_PEER_CERT_REVOKED` incident is queued.
        /// Outside the data-transfer phase it returns [`E2eError::State`] and does nothing.
        pub fn abort_revoked_peer(&mut self, detail: &str, now: TimeStamp) -> E2eError {
            match self.core.state {
                State::Established
                | State::ReleaseSent
                | State::ReleaseReceived
                | State::ReleaseCollision => self.core.reject(
                    dfail(
                        events::PEER_CERT_REVOKED,
                        DtDiagnostic::NoReasonGiven,
                        detail.to_string(),
                    ),
                    Some(SecPduKind::DtSecAbort),
                    now,
                ),
                s => E2eError::State(s),
            }
        }
        /// Certificates (SHA-256 of their DER) the peer's application certificate may not be:
        /// the TLS certificates of this connection (Annex G.2). A HandshakeReq or HandshakeAcc
        /// signed with one is refused with `invalid-public-key-certificate` (PKCERT_ERROR).
        pub fn refuse_certificates(&mut self, fingerprints: &[[u8; 32]]) {
            self.core.refused_certs = fingerprints.to_vec();
        }
        /// Protects a PrPDU (one BER element) into a ClearTransfer or EncrTransfer, as agreed.
        pub fn protect(
            &mut self,
            pr_pdu: &[u8],
            now: TimeStamp,
        ) -> Result<(SecPduKind, Vec<u8>), E2eError> {
            self.core.protect(pr_pdu, now)
        }
        /// Sends ReleaseReq (applData: e.g. MMS Conclude-Request).
        pub fn release_req(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.release_req(appl, now)
        }
        /// Answers a received ReleaseReq with ReleaseRsp and closes.
        pub fn release_rsp(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.release_rsp(appl, now)
        }
        /// Runs the engine's timers (client rekey timeout, server old-key grace period). A rekey
        /// timeout returns [`E2eError::Rejected`] whose reply is the DtSecAbort to send.
        pub fn handle_timeout(&mut self, now: TimeStamp) -> Result<(), E2eError> {
            self.core.handle_timeout(now)
        }
        /// When [`Self::handle_timeout`] should next be called, if a timer is running.
        pub fn next_timeout(&self) -> Option<TimeStamp> {
            self.core.next_timeout()
        }
        /// Sends ApplAbort (abort by the protected protocol) and closes.
        pub fn appl_abort(
            &mut self,
            appl: Option<&[u8]>,
            now: TimeStamp,
        ) -> Result<Vec<u8>, E2eError> {
            self.core.appl_abort(appl, now)
        }
    };
}
