//! Security events of the E2E OSI mapping (IEC 62351-4 §15.7; IEC 62351-14 group 15 of the
//! `IEC62351-4` domain), plus the few secmms-local events the mapping needs.
//!
//! The catalogue entries were captured from a CDV (spec §14.5): mnemonics may change in the final
//! text, the severities were not captured at all. DECISION: every group-15 entry is an *error*
//! (they report malformed or misaddressed environment PDUs, not failed cryptographic checks,
//! which the E2E engine reports itself with its own alarms).
//!
//! Numbering of 15.7–15.14 (spec §15.7 gives only the pattern
//! `INV_CALLING/CALLED_AP_TITLE / _AE_QUAL (_RQ/_RE)`): DECISION — the four AARQ entries first
//! (calling AP-title, calling AE-qualifier, called AP-title, called AE-qualifier), then the same
//! four for the AARE. An AARE carries no calling titles, so 15.11 `INV_CALLING_AP_TITLE_RE` and
//! 15.12 `INV_CALLING_AE_QUAL_RE` name checks that cannot exist: DECISION — they are not
//! defined here (no event without a check that raises it) and their numbers stay unused; the
//! AARE's responding titles are checked under the `CALLED` entries (they name the called
//! entity).

use secmms_pki::event::{EventId, SecurityEvent, Severity};

/// Group of the OSI-environment events (spec §14.5, §15.7).
pub const GROUP_OSI_ENVIRONMENT: u16 = 15;

/// One event definition: id, mnemonic, severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvEvent {
    /// Catalogue id (`IEC62351-4:15.n`, or `secmms:15.n` for local events).
    pub id: EventId,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Severity class.
    pub severity: Severity,
}

impl EnvEvent {
    /// Builds an event with `message`, concerning association `asso` (AssoID or peer name).
    pub fn event(&self, message: impl Into<String>, asso: Option<&str>) -> SecurityEvent {
        SecurityEvent {
            id: self.id,
            mnemonic: self.mnemonic,
            severity: self.severity,
            message: message.into(),
            association: asso.map(str::to_string),
        }
    }
}

const fn ev(number: u16, mnemonic: &'static str) -> EnvEvent {
    EnvEvent {
        id: EventId::e2e(GROUP_OSI_ENVIRONMENT, number),
        mnemonic,
        severity: Severity::Error,
    }
}

const fn local(number: u16, mnemonic: &'static str, severity: Severity) -> EnvEvent {
    EnvEvent {
        id: EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: GROUP_OSI_ENVIRONMENT,
            number,
        },
        mnemonic,
        severity,
    }
}

/// 15.1 — OSI environment protocol error: the user-information is not one EXTERNAL, the
/// EXTERNAL is not single-ASN1-type, or the value is not the expected SecPDU / CHOICE alternative.
pub const OSI_ENV_PROT_ERR: EnvEvent = ev(1, "OSI_ENV_PROT_ERR");
/// 15.2 — the indirect-reference is not the presentation context of e2eSecurityAS.
pub const OSI_INV_INDR_REF: EnvEvent = ev(2, "OSI_INV_INDR_REF");
/// 15.3 — data on a presentation context other than e2eSecurityAS (e.g. bare MMS, §15.6).
pub const OSI_INV_PCI: EnvEvent = ev(3, "OSI_INV_PCI");
/// 15.4 — ACSE protocol error (an ABRT from the peer's ACSE provider during an E2E association).
pub const ACSE_PROT_ERR: EnvEvent = ev(4, "ACSE_PROT_ERR");
/// 15.5 — the AARQ's application-context-name is not e2eMmsAC.
pub const INV_APPL_CNTX_RQ: EnvEvent = ev(5, "INV_APPL_CNTX_RQ");
/// 15.6 — the AARE's application-context-name is not e2eMmsAC.
pub const INV_APPL_CNTX_RE: EnvEvent = ev(6, "INV_APPL_CNTX_RE");
/// 15.7 — AARQ calling-AP-title missing or not form 2.
pub const INV_CALLING_AP_TITLE_RQ: EnvEvent = ev(7, "INV_CALLING_AP_TITLE_RQ");
/// 15.8 — AARQ calling-AE-qualifier missing or not form 2.
pub const INV_CALLING_AE_QUAL_RQ: EnvEvent = ev(8, "INV_CALLING_AE_QUAL_RQ");
/// 15.9 — AARQ called-AP-title missing, not form 2, or not ours.
pub const INV_CALLED_AP_TITLE_RQ: EnvEvent = ev(9, "INV_CALLED_AP_TITLE_RQ");
/// 15.10 — AARQ called-AE-qualifier missing, not form 2, or not ours.
pub const INV_CALLED_AE_QUAL_RQ: EnvEvent = ev(10, "INV_CALLED_AE_QUAL_RQ");
/// 15.13 — AARE responding-AP-title present but not form 2 or not the called one.
pub const INV_CALLED_AP_TITLE_RE: EnvEvent = ev(13, "INV_CALLED_AP_TITLE_RE");
/// 15.14 — AARE responding-AE-qualifier present but not form 2 or not the called one.
pub const INV_CALLED_AE_QUAL_RE: EnvEvent = ev(14, "INV_CALLED_AE_QUAL_RE");
/// 15.15 — the AARQ uses the authentication functional unit (mechanism-name,
/// calling-authentication-value or sender-acse-requirements), forbidden in native mode (§15.1).
pub const AUTH_MECH_NOT_USED_RQ: EnvEvent = ev(15, "AUTH_MECH_NOT_USED_RQ");
/// 15.16 — the AARE uses the authentication functional unit (mnemonic as captured).
pub const AUTH_MECH_NOT_USED_ABT: EnvEvent = ev(16, "AUTH_MECH_NOT_USED_ABT");

/// Every group-15 catalogue entry, in number order.
pub const CATALOGUE: [EnvEvent; 14] = [
    OSI_ENV_PROT_ERR,
    OSI_INV_INDR_REF,
    OSI_INV_PCI,
    ACSE_PROT_ERR,
    INV_APPL_CNTX_RQ,
    INV_APPL_CNTX_RE,
    INV_CALLING_AP_TITLE_RQ,
    INV_CALLING_AE_QUAL_RQ,
    INV_CALLED_AP_TITLE_RQ,
    INV_CALLED_AE_QUAL_RQ,
    INV_CALLED_AP_TITLE_RE,
    INV_CALLED_AE_QUAL_RE,
    AUTH_MECH_NOT_USED_RQ,
    AUTH_MECH_NOT_USED_ABT,
];

/// secmms:15.1 — the association does not meet the peer's §5.1 bilateral-table row (no row, row
/// not END-TO-END SECURE, transport not allowed, or contradictory subject requirements).
pub const E2E_POLICY_REFUSED: EnvEvent = local(1, "E2E_POLICY_REFUSED", Severity::Error);
/// secmms:15.2 — the peer aborted with an `osiDiag` (no catalogue entry for a received one).
pub const E2E_OSI_DIAG_RCVD: EnvEvent = local(2, "E2E_OSI_DIAG_RCVD", Severity::Error);
/// secmms:15.3 — a local failure (signing, configuration) prevented building a SecPDU.
pub const E2E_LOCAL_FAILURE: EnvEvent = local(3, "E2E_LOCAL_FAILURE", Severity::Error);
/// secmms:15.4 — the E2E association is established (peer and protection in the message).
pub const E2E_ESTABLISHED: EnvEvent = local(4, "E2E_ESTABLISHED", Severity::Notice);
/// secmms:15.5 — the peer refused the association with an AARE that carries no SecPDU (e.g. its
/// own §15.7 environment check failed).
pub const E2E_PLAIN_REJECT_RCVD: EnvEvent = local(5, "E2E_PLAIN_REJECT_RCVD", Severity::Error);
/// secmms:15.6 — the E2E association was released (ReleaseReq/ReleaseRsp verified).
pub const E2E_RELEASED: EnvEvent = local(6, "E2E_RELEASED", Severity::Notice);

/// Every secmms-local event of the mapping, in number order.
pub const LOCAL: [EnvEvent; 6] = [
    E2E_POLICY_REFUSED,
    E2E_OSI_DIAG_RCVD,
    E2E_LOCAL_FAILURE,
    E2E_ESTABLISHED,
    E2E_PLAIN_REJECT_RCVD,
    E2E_RELEASED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering() {
        // 15.11 and 15.12 (calling titles of an AARE) are left unused.
        let numbers = (1..=16).filter(|n| !matches!(n, 11 | 12));
        for (e, n) in CATALOGUE.iter().zip(numbers) {
            assert_eq!(e.id.to_string(), format!("IEC62351-4:15.{n}"));
        }
        for (i, e) in LOCAL.iter().enumerate() {
            assert_eq!(e.id.to_string(), format!("secmms:15.{}", i + 1));
        }
        let mut m: Vec<_> = CATALOGUE.iter().chain(&LOCAL).map(|e| e.mnemonic).collect();
        m.sort_unstable();
        m.dedup();
        assert_eq!(m.len(), 20);
    }
}
