//! [`Refusal`]: why an association was not established, as the wire said it.

use secmms_mms::ServiceError;

/// Why an association was not established ([`ClientError::Rejected`](super::ClientError::Rejected)).
#[derive(Debug, Clone, Default)]
pub struct Refusal {
    /// The OSI refusal: the AARE's result and source diagnostic (ACSE), or the transport,
    /// session or presentation refusal. `None` when the association was aborted instead, or
    /// over XMPP.
    pub reason: Option<secmms_osi::RejectReason>,
    /// The abort received (or raised locally) while the association was being established.
    pub abort: Option<secmms_osi::AbortInfo>,
    /// The MMS initiate-ErrorPDU of the server, when its MMS layer refused.
    pub initiate_error: Option<ServiceError>,
    /// Native mode: the E2E diagnostic (the peer's HandshakeSecReject, or our own check's),
    /// with the security event it raised.
    pub e2e: Option<secmms_profiles::native::NativeDiagnostic>,
    /// Anything else worth saying (the called titles, the XMPP endpoint's words).
    pub detail: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = &self.reason {
            parts.push(format!("{r:?}"));
        }
        if let Some(a) = &self.abort {
            parts.push(format!("aborted: {a:?}"));
        }
        if let Some(e) = &self.initiate_error {
            parts.push(format!("initiate error {e:?}"));
        }
        if let Some(d) = &self.e2e {
            parts.push(format!("E2E: {d}"));
        }
        if !self.detail.is_empty() {
            parts.push(self.detail.clone());
        }
        f.write_str(&parts.join("; "))
    }
}
