//! OCSP of the peers' application certificates (§6.2.8) and what an answer means under
//! `ocsp_check`.

use std::sync::Arc;

use super::ReloadableValidator;

/// What an OCSP answer about a peer's application certificate means under `ocsp_check`.
pub(crate) struct OcspOutcome {
    /// The responder said revoked.
    pub(crate) revoked: bool,
    /// The peer is refused (revoked, or no answer under hard-fail).
    pub(crate) refuse: bool,
    /// The reason, for the event.
    pub(crate) why: String,
}

/// `None` when the answer is good; otherwise what to do and say (§6.2.8: revoked refuses, no
/// usable answer warns under soft-fail and refuses under hard-fail).
pub(crate) fn ocsp_outcome(
    check: crate::ocsp::OcspCheck,
    verdict: crate::ocsp::OcspVerdict,
) -> Option<OcspOutcome> {
    use crate::ocsp::{OcspCheck, OcspVerdict};
    let (revoked, why) = match verdict {
        OcspVerdict::Good => return None,
        OcspVerdict::Revoked => (
            true,
            "OCSP: the peer's application certificate is revoked".to_string(),
        ),
        OcspVerdict::Unavailable(why) => (false, format!("OCSP: {why}")),
    };
    let refuse = revoked || check == OcspCheck::HardFail;
    let why = if revoked {
        why
    } else if refuse {
        format!("{why} (ocsp_check = hard-fail: refused)")
    } else {
        format!("{why} (ocsp_check = soft-fail: let in)")
    };
    Some(OcspOutcome {
        revoked,
        refuse,
        why,
    })
}

/// OCSP of the peers' application certificates (§6.2.8): the policy, the checker with its
/// cache, and the anchors the issuer is found among. Used by both OSI profiles and by XMPP.
pub(crate) struct PeerOcsp {
    check: crate::ocsp::OcspCheck,
    checker: crate::ocsp::OcspChecker,
    anchors: Arc<ReloadableValidator>,
}

impl PeerOcsp {
    /// From the configuration (`[security] ocsp_*`, else `[tls] ocsp_*`); `None` when
    /// `ocsp_check` is off.
    pub(crate) fn from_config(
        s: &super::SecurityConfig,
        tls: &crate::tls::TlsConfig,
        anchors: Arc<ReloadableValidator>,
    ) -> Option<PeerOcsp> {
        let check = s.ocsp_check.unwrap_or(tls.ocsp_check);
        (check != crate::ocsp::OcspCheck::Off).then(|| PeerOcsp {
            check,
            checker: crate::ocsp::OcspChecker::new(
                s.ocsp_responder
                    .clone()
                    .or_else(|| tls.ocsp_responder.clone()),
                std::time::Duration::from_secs(tls.ocsp_timeout_secs.clamp(1, 60)),
            ),
            anchors,
        })
    }

    /// Looks `cert` (DER) up: `None` when the answer is good.
    pub(crate) async fn outcome(&self, cert: &[u8]) -> Option<OcspOutcome> {
        let verdict = self.checker.check_der(cert, &self.anchors.anchors()).await;
        ocsp_outcome(self.check, verdict)
    }
}
