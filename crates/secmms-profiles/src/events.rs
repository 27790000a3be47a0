//! Security events of the A-security-profile (IEC 62351-4 §11.4, §5.1).
//!
//! The 62351-14 catalogue entries of the A-profile were not captured (spec §14.5 lists only E2E
//! events), so these ids are secmms numbers: domain `secmms`, group 11 (clause 11).
//! DECISION: the domain is the local one, not `IEC62351-4`, because `IEC62351-4:11.x` is the
//! catalogue's EncrTransfer group (§14.5); one id names one event across every profile.
//! Severities follow §6.2.8 where it speaks: a revoked certificate is an incident, an expired
//! (or not yet valid) one a warning — the association is still refused.
//! DECISION: one id per distinct failure, so a log reader learns which check failed even though
//! the peer does not (every certificate, time, replay and signature failure is the same
//! `authentication-failure` abort on the wire).

use secmms_pki::event::{EventId, Severity};

/// Group of the A-profile events (clause 11).
pub const GROUP_A_PROFILE: u16 = 11;

/// An A-profile event: id, mnemonic and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AEvent {
    /// Catalogue id.
    pub id: EventId,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Severity class.
    pub severity: Severity,
}

const fn ev(number: u16, mnemonic: &'static str, severity: Severity) -> AEvent {
    AEvent {
        id: EventId {
            domain: EventId::DOMAIN_LOCAL,
            group: GROUP_A_PROFILE,
            number,
        },
        mnemonic,
        severity,
    }
}

/// mechanism-name absent while authentication is required (§11.4 step 1).
pub const MECHANISM_REQUIRED: AEvent = ev(1, "AP_MECHANISM_REQUIRED", Severity::Error);
/// mechanism-name is not 1.0.840.0.1.0.1.1 (§11.4 step 1, X.227 diagnostic 11).
pub const MECHANISM_UNKNOWN: AEvent = ev(2, "AP_MECHANISM_UNKNOWN", Severity::Error);
/// The authentication-value is absent or not a decodable MMS-Authentication-value (§11.2–11.3).
pub const VALUE_MALFORMED: AEvent = ev(3, "AP_VALUE_MALFORMED", Severity::Error);
/// The certificate exceeds 8 192 octets (§11.2, Annex G.3).
pub const CERT_TOO_LARGE: AEvent = ev(4, "AP_CERT_TOO_LARGE", Severity::Error);
/// The certificate has expired (§11.4 step 2; warning class per §6.2.8, still refused).
pub const CERT_EXPIRED: AEvent = ev(5, "AP_CERT_EXPIRED", Severity::Warning);
/// The certificate is not yet valid (§11.4 step 2; ranked with an expired one).
pub const CERT_NOT_YET_VALID: AEvent = ev(6, "AP_CERT_NOT_YET_VALID", Severity::Warning);
/// The certificate is revoked (§11.4 step 2; incident class per §6.2.8).
pub const CERT_REVOKED: AEvent = ev(7, "AP_CERT_REVOKED", Severity::Incident);
/// No trust anchor issued the certificate (§11.4 step 2).
pub const CA_UNKNOWN: AEvent = ev(8, "AP_CA_UNKNOWN", Severity::Error);
/// Any other certificate failure: undecodable, Annex G profile, other path error (§11.4 step 2).
pub const CERT_INVALID: AEvent = ev(9, "AP_CERT_INVALID", Severity::Error);
/// The certificate subject does not match the peer's AP-title + AE-qualifier (Annex G.6.2) or
/// the subject configured for the peer (§5.1).
pub const ADDRESS_MISMATCH: AEvent = ev(10, "AP_ADDRESS_MISMATCH", Severity::Alarm);
/// The authentication-value carries a TLS certificate (Annex G.2: separate certificates).
pub const TLS_CERT_REUSED: AEvent = ev(11, "AP_TLS_CERT_REUSED", Severity::Alarm);
/// `time` differs from local UTC by more than 10 minutes (§11.4 step 3).
pub const TIME_STALE: AEvent = ev(12, "AP_TIME_STALE", Severity::Alarm);
/// `time` was already received within the replay window (§11.4 step 4).
pub const TIME_REPLAYED: AEvent = ev(13, "AP_TIME_REPLAYED", Severity::Alarm);
/// The signature does not verify over any accepted variant (§11.4 step 5).
pub const SIGNATURE_INVALID: AEvent = ev(14, "AP_SIGNATURE_INVALID", Severity::Alarm);
/// The signature verified over a fallback variant (§11.2 DECISION: log which variant matched).
pub const SIGNATURE_FALLBACK: AEvent = ev(15, "AP_SIGNATURE_FALLBACK", Severity::Warning);
/// The association does not meet the peer's bilateral-table entry (§5.1).
pub const POLICY_REFUSED: AEvent = ev(16, "AP_POLICY_REFUSED", Severity::Error);
/// The peer was authenticated (§11.4 step 6).
pub const AUTHENTICATED: AEvent = ev(17, "AP_AUTHENTICATED", Severity::Notice);
/// The replay cache is full of live entries; the association is refused (fail closed).
pub const REPLAY_CACHE_FULL: AEvent = ev(18, "AP_REPLAY_CACHE_FULL", Severity::Error);
/// The peer aborted while authentication was pending (§11.4 DECISION: any abort is an
/// authentication failure).
pub const PEER_ABORTED: AEvent = ev(19, "AP_PEER_ABORTED", Severity::Error);
/// `time` is not a GeneralizedTime (§11.2).
pub const TIME_INVALID: AEvent = ev(20, "AP_TIME_INVALID", Severity::Error);
/// Our own value could not be built (signing failed).
pub const LOCAL_FAILURE: AEvent = ev(21, "AP_LOCAL_FAILURE", Severity::Error);

/// The AARQ / AARE carries A-profile authentication but its ACSE-requirements do not select the
/// authentication functional unit (§11.1; refused).
pub const ACSE_REQUIREMENTS_MISSING: AEvent =
    ev(22, "AP_ACSE_REQUIREMENTS_MISSING", Severity::Error);
/// The ACSE-requirements set the known wrong low bit instead of bit 0 (§11.1 tolerance DECISION).
pub const ACSE_REQUIREMENTS_WRONG_BIT: AEvent =
    ev(23, "AP_ACSE_REQUIREMENTS_WRONG_BIT", Severity::Warning);
/// No usable OCSP answer for the peer's application certificate (§6.2.8: responder down,
/// `unknown`, a certificate OpenSSL cannot load). `ocsp_check = soft-fail` lets the peer in,
/// `hard-fail` refuses it (ABRT authentication-failure). Raised by the runtime's OCSP lookup.
pub const OCSP_UNAVAILABLE: AEvent = ev(24, "AP_OCSP_UNAVAILABLE", Severity::Warning);

/// Every A-profile event (for documentation and tests).
pub const ALL: [AEvent; 24] = [
    MECHANISM_REQUIRED,
    MECHANISM_UNKNOWN,
    VALUE_MALFORMED,
    CERT_TOO_LARGE,
    CERT_EXPIRED,
    CERT_NOT_YET_VALID,
    CERT_REVOKED,
    CA_UNKNOWN,
    CERT_INVALID,
    ADDRESS_MISMATCH,
    TLS_CERT_REUSED,
    TIME_STALE,
    TIME_REPLAYED,
    SIGNATURE_INVALID,
    SIGNATURE_FALLBACK,
    POLICY_REFUSED,
    AUTHENTICATED,
    REPLAY_CACHE_FULL,
    PEER_ABORTED,
    TIME_INVALID,
    LOCAL_FAILURE,
    ACSE_REQUIREMENTS_MISSING,
    ACSE_REQUIREMENTS_WRONG_BIT,
    OCSP_UNAVAILABLE,
];

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_distinct() {
        for (i, a) in super::ALL.iter().enumerate() {
            assert_eq!(a.id.number as usize, i + 1);
            assert_eq!(a.id.to_string(), format!("secmms:11.{}", i + 1));
        }
    }
}
