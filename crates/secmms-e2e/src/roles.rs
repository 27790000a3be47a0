//! [`E2eEngine`]: the engine of one E2E association in either role, for owners that hold client
//! and server associations alike (the OSI mapping of native mode, the XMPP endpoint) and want
//! one object to drive, whatever end they are.

use secmms_pki::event::SecurityEvent;
use secmms_pki::PeerIdentity;

use crate::engine::{E2eClient, E2eError, E2eServer, Output, State};
use crate::keys::ProtectionMode;
use crate::pdu::SecPduKind;
use crate::time::TimeStamp;

/// One association's engine, in its role.
#[derive(Debug)]
pub enum E2eEngine {
    /// The association initiator's end.
    Client(E2eClient),
    /// The association responder's end.
    Server(E2eServer),
}

macro_rules! on_role {
    ($e:expr, $x:ident => $body:expr) => {
        match $e {
            E2eEngine::Client($x) => $body,
            E2eEngine::Server($x) => $body,
        }
    };
}

impl E2eEngine {
    /// The client end, if this is one.
    pub fn client_mut(&mut self) -> Option<&mut E2eClient> {
        match self {
            E2eEngine::Client(c) => Some(c),
            E2eEngine::Server(_) => None,
        }
    }

    /// The server end, if this is one.
    pub fn server_mut(&mut self) -> Option<&mut E2eServer> {
        match self {
            E2eEngine::Server(s) => Some(s),
            E2eEngine::Client(_) => None,
        }
    }

    /// The association state.
    pub fn state(&self) -> State {
        on_role!(self, e => e.state())
    }

    /// The agreed protection, once established.
    pub fn protection(&self) -> Option<ProtectionMode> {
        on_role!(self, e => e.protection())
    }

    /// The AssoID as text, once known.
    pub fn asso_id(&self) -> Option<String> {
        on_role!(self, e => e.asso_id().map(|a| a.as_str().to_string()))
    }

    /// The next queued security event.
    pub fn poll_event(&mut self) -> Option<SecurityEvent> {
        on_role!(self, e => e.poll_event())
    }

    /// Switches on key export for the E2E key log (see [`E2eClient::export_keys`]).
    pub fn export_keys(&mut self) {
        on_role!(self, e => e.export_keys())
    }

    /// The next key-log record (see [`E2eClient::poll_key_material`]).
    pub fn poll_key_material(&mut self) -> Option<crate::keylog::KeyMaterial> {
        on_role!(self, e => e.poll_key_material())
    }

    /// Sets the environment address the peer's certificate must bind to.
    pub fn set_expected_peer(&mut self, id: Option<PeerIdentity>) {
        on_role!(self, e => e.set_expected_peer(id))
    }

    /// Handles one received SecPDU.
    pub fn receive(
        &mut self,
        kind: SecPduKind,
        bytes: &[u8],
        now: TimeStamp,
    ) -> Result<Output, E2eError> {
        on_role!(self, e => e.receive(kind, bytes, now))
    }

    /// Protects a PrPDU into a ClearTransfer or EncrTransfer.
    pub fn protect(
        &mut self,
        pr_pdu: &[u8],
        now: TimeStamp,
    ) -> Result<(SecPduKind, Vec<u8>), E2eError> {
        on_role!(self, e => e.protect(pr_pdu, now))
    }

    /// Builds a ReleaseReq.
    pub fn release_req(
        &mut self,
        appl: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        on_role!(self, e => e.release_req(appl, now))
    }

    /// Answers a received ReleaseReq with a ReleaseRsp.
    pub fn release_rsp(
        &mut self,
        appl: Option<&[u8]>,
        now: TimeStamp,
    ) -> Result<Vec<u8>, E2eError> {
        on_role!(self, e => e.release_rsp(appl, now))
    }

    /// Builds an ApplAbort and closes.
    pub fn appl_abort(&mut self, appl: Option<&[u8]>, now: TimeStamp) -> Result<Vec<u8>, E2eError> {
        on_role!(self, e => e.appl_abort(appl, now))
    }

    /// Runs the engine's timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: TimeStamp) -> Result<(), E2eError> {
        on_role!(self, e => e.handle_timeout(now))
    }

    /// When [`Self::handle_timeout`] should next run, if a timer is running.
    pub fn next_timeout(&self) -> Option<TimeStamp> {
        on_role!(self, e => e.next_timeout())
    }

    /// The peer's application certificate (DER) once the handshake verified it.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        on_role!(self, e => e.peer_certificate().map(<[u8]>::to_vec))
    }

    /// Ends an established association because the peer's certificate is now revoked.
    pub fn abort_revoked_peer(&mut self, detail: &str, now: TimeStamp) -> E2eError {
        on_role!(self, e => e.abort_revoked_peer(detail, now))
    }

    /// Drains the queued security events.
    pub fn take_events(&mut self) -> Vec<SecurityEvent> {
        std::iter::from_fn(|| self.poll_event()).collect()
    }
}
