//! Entry points shared by the cargo-fuzz targets and the corpus replay tests.

use crate::client::{self, ClientProposal};
use crate::limits::MmsLimits;
use crate::model::{Model, SharedModel};
use crate::pdu::MmsPdu;
use crate::server::{ServerConfig, Vmd};
use std::sync::OnceLock;

/// The demo model, built once and cloned per input (each input starts from the same state).
fn demo() -> Model {
    static DEMO: OnceLock<Model> = OnceLock::new();
    DEMO.get_or_init(Model::default_demo).clone()
}

/// Fuzz target `mms`: decodes `data` as an MMSpdu; when it decodes, checks that the decoded
/// value survives an encode/decode round trip, and runs the octets through the server (as an
/// initiate, and as a PDU on an association over the demo model), the client parser and the
/// gateway's read-only guard and initiate forwarding.
/// Returns false when the round trip is inconsistent (a codec bug); never panics.
pub fn mms(data: &[u8]) -> bool {
    let lim = MmsLimits::default();
    let decoded = MmsPdu::decode(data, &lim);
    let mut consistent = true;
    if let Ok(pdu) = &decoded {
        let again = pdu.encode();
        consistent = MmsPdu::decode(
            &again,
            &MmsLimits {
                max_pdu_size: usize::MAX,
                ..lim
            },
        )
        .map(|p| p == *pdu)
        .unwrap_or(false);
    }
    let server = Vmd::new(SharedModel::new(demo()), ServerConfig::default());
    let _ = server.accept_initiate(data);
    let proposal = ClientProposal::default();
    let neg = server
        .negotiate(&client::initiate_request(&proposal))
        .map(|(_, n)| n);
    if let Ok(neg) = neg {
        if decoded.is_ok() {
            let a = server.association(neg.clone());
            if let Some(reply) = a.handle_pdu(data) {
                // Whatever the server sends must decode under the negotiated limits.
                consistent &= MmsPdu::decode(&reply, &neg.limits()).is_ok();
            }
        }
        let _ = client::parse_incoming(data, &neg);
    }
    // The gateway's read-only guard and initiate forwarding: whatever they answer must decode.
    let guard = crate::gateway::ReadOnlyGuard::default();
    if let crate::gateway::Verdict::Refuse { answer, .. } = guard.check(data) {
        consistent &= MmsPdu::decode(&answer, &lim).is_ok();
    }
    let ours = crate::gateway::GatewayLimits::default();
    if let Ok((_, bytes)) = crate::gateway::forward_initiate_request(data, &ours, &lim) {
        consistent &= MmsPdu::decode(&bytes, &lim).is_ok();
    }
    let sent = client::initiate_request(&proposal);
    if let Ok((_, bytes)) = crate::gateway::forward_initiate_response(data, &sent, &lim) {
        consistent &= MmsPdu::decode(&bytes, &lim).is_ok();
    }
    consistent
}
