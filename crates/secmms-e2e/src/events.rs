//! The E2E security-event catalogue (§14.5, IEC 62351-14 domain `IEC62351-4`) as used by the
//! engine. Each check of clause 14 names one entry here.

use secmms_pki::event::{EventId, SecurityEvent, Severity};

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventDef {
    /// Group (PDU) number.
    pub group: u16,
    /// Number in the group.
    pub number: u16,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// Severity class (alarms withhold the diagnostic, §13.1.5).
    pub severity: Severity,
}

impl EventDef {
    /// The catalogue id.
    pub fn id(&self) -> EventId {
        if self.group == 0 {
            EventId {
                domain: EventId::DOMAIN_LOCAL,
                group: 0,
                number: self.number,
            }
        } else {
            EventId::e2e(self.group, self.number)
        }
    }
    /// True for the alarm class.
    pub fn is_alarm(&self) -> bool {
        self.severity == Severity::Alarm
    }
    /// Builds an event.
    pub fn event(&self, message: impl Into<String>, asso: Option<&str>) -> SecurityEvent {
        SecurityEvent {
            id: self.id(),
            mnemonic: self.mnemonic,
            severity: self.severity,
            message: message.into(),
            association: asso.map(str::to_string),
        }
    }
}

const fn d(group: u16, number: u16, mnemonic: &'static str, severity: Severity) -> EventDef {
    EventDef {
        group,
        number,
        mnemonic,
        severity,
    }
}
use Severity::{Alarm as A, Error as E};

/// Group 1 — HandshakeReq checked by the server (§14.3).
pub mod req {
    use super::*;
    /// 1.1
    pub const SIG_ALG_NOT_SUP: EventDef = d(1, 1, "SIGNATURE_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.2
    pub const SIG_ALG_MISMATCH: EventDef = d(1, 2, "SIGNATURE_ALGO_MISMATCH_REQ", A);
    /// 1.3
    pub const INV_SIGNATURE: EventDef = d(1, 3, "INV_SIGNATURE_ASS_REQ", A);
    /// 1.4
    pub const PROT_NOT_SUP: EventDef = d(1, 4, "PROTECTED_PROT_NOT_SUP_REQ", E);
    /// 1.5
    pub const PROTOCOL_ERR: EventDef = d(1, 5, "PROTOCOL_ERR_ASS_REQ", E);
    /// 1.6
    pub const PKCERT_ERROR: EventDef = d(1, 6, "PKCERT_ERROR_ASS_REQ", E);
    /// 1.7
    pub const PKCERT_ALARM: EventDef = d(1, 7, "PKCERT_ALARM_ASS_REQ", A);
    /// 1.8
    pub const ADDR_MISMATCH: EventDef = d(1, 8, "ADDR_MISMATCH_ASS_REQ", A);
    /// 1.9
    pub const UNEXP_VERSION: EventDef = d(1, 9, "UNEXP_VERSION_ASS_REQ", E);
    /// 1.10
    pub const INV_TIME: EventDef = d(1, 10, "INV_TIME_ASS_REQ", E);
    /// 1.11
    pub const REPLAY: EventDef = d(1, 11, "REPLAY_DETEC_ASS_REQ", A);
    /// 1.12
    pub const UNSUP_DH_GROUP: EventDef = d(1, 12, "UNSUP_DH_GROUP_ASS_REQ", E);
    /// 1.13
    pub const HMAC_NOT_SUP: EventDef = d(1, 13, "HMAC_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.14 — AE mode not supported (`encr-mode-aea-not-supported`).
    pub const AEAD_NOT_SUP: EventDef = d(1, 14, "AEAD_NOT_SUP_ASS_REQ", E);
    /// 1.15 — AE requested but encryption not supported (`aea-select-but-encryp-not-supp`).
    pub const AEAD_NO_ENCR: EventDef = d(1, 15, "AEAD_NO_ENCR_ASS_REQ", E);
    /// 1.16 — no offered AE algorithm supported.
    pub const AE_ALG_NOT_SUP: EventDef = d(1, 16, "AE_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.17 — AE required.
    pub const AE_REQUIRED: EventDef = d(1, 17, "AE_REQUIRED_ASS_REQ", E);
    /// 1.18 — encryption not requested although policy requires it (`encryption-required`).
    pub const ENCR_NOT_REQ: EventDef = d(1, 18, "ENCR_NOT_REQUESTED_ASS_REQ", E);
    /// 1.19 — no offered encryption algorithm supported.
    pub const ENCR_ALG_NOT_SUP: EventDef = d(1, 19, "ENCR_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.20 — no offered ICV algorithm supported.
    pub const ICV_ALG_NOT_SUP: EventDef = d(1, 20, "ICV_ALGO_NOT_SUP_ASS_REQ", E);
    /// 1.21 — encryption requested but not allowed (`encryption-not-required`).
    pub const ENCR_NOT_REQUIRED: EventDef = d(1, 21, "ENCR_NOT_REQUIRED_ASS_REQ", E);
    /// 1.6 is also used for an invalid attribute certificate (no own entry captured).
    pub const ATTCERT: EventDef = PKCERT_ERROR;
}

/// Group 2 — HandshakeAcc checked by the client (§14.3).
pub mod acc {
    use super::*;
    /// 2.1
    pub const SIG_ALG_NOT_SUP: EventDef = d(2, 1, "SIGNATURE_ALGO_NOT_SUP_ASS_ACC", E);
    /// 2.2
    pub const SIG_ALG_MISMATCH: EventDef = d(2, 2, "SIGNATURE_ALGO_MISMATCH_ACC", A);
    /// 2.3
    pub const INV_SIGNATURE: EventDef = d(2, 3, "INV_SIGNATURE_ASS_ACC", A);
    /// 2.4
    pub const PROTOCOL_ERR: EventDef = d(2, 4, "PROTOCOL_ERR_ASS_ACC", E);
    /// 2.5
    pub const PKCERT_ERROR: EventDef = d(2, 5, "PKCERT_ERROR_ASS_ACC", E);
    /// 2.6
    pub const PKCERT_ALARM: EventDef = d(2, 6, "PKCERT_ALARM_ASS_ACC", A);
    /// 2.7
    pub const ADDR_MISMATCH: EventDef = d(2, 7, "ADDR_MISMATCH_ASS_ACC", A);
    /// 2.8
    pub const UNEXP_VERSION: EventDef = d(2, 8, "UNEXP_VERSION_ASS_ACC", E);
    /// 2.9
    pub const INV_TIME: EventDef = d(2, 9, "INV_TIME_ASS_ACC", E);
    /// 2.10
    pub const REPLAY: EventDef = d(2, 10, "REPLAY_DETEC_ASS_ACC", A);
    /// 2.11
    pub const INV_DH_GROUP: EventDef = d(2, 11, "INV_DH_GROUP_ASS_ACC", E);
    /// 2.12
    pub const HMAC_NOT_SUP: EventDef = d(2, 12, "HMAC_ALGO_NOT_SUP_ASS_ACC", E);
    /// 2.13
    pub const INV_AE_ALG: EventDef = d(2, 13, "INV_AE_ALGO_ASS_ACC", E);
    /// 2.14
    pub const SINGLE_AE_ALG: EventDef = d(2, 14, "SINGLE_AE_ALGO_REQ_ASS_ACC", E);
    /// 2.15
    pub const AE_NOT_USED: EventDef = d(2, 15, "AEAD_NOT_USED_ASS_ACC", E);
    /// 2.16
    pub const INV_ENCR_ALG: EventDef = d(2, 16, "INV_ENCR_ALGO_ASS_ACC", E);
    /// 2.17
    pub const SINGLE_ENCR_ALG: EventDef = d(2, 17, "SINGLE_ENCR_ALGO_ASS_ACC", E);
    /// 2.18
    pub const INV_ICV_ALG: EventDef = d(2, 18, "INV_ICV_ALGO_ASS_ACC", E);
    /// 2.19
    pub const SINGLE_ICV_ALG: EventDef = d(2, 19, "SINGLE_ICV_ALGO_ASS_ACC", E);
    /// 2.20
    pub const ENCR_NOT_REQUIRED: EventDef = d(2, 20, "ENCR_NOT_REQUIRED_ASS_ACC", E);
    /// 2.21
    pub const ENCR_REQUIRED: EventDef = d(2, 21, "ENCR_REQUIRED_ASS_ACC", E);
    /// Attribute certificate problems reuse 2.5.
    pub const ATTCERT: EventDef = PKCERT_ERROR;
}

/// The ten generic checks of a received signed ClearToken3 PDU (groups 3–7, 12, 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generic {
    /// x.1 signature algorithm not supported.
    SigAlgNotSup,
    /// x.2 sigAlg ≠ Signature.algo (alarm).
    SigAlgMismatch,
    /// x.3 invalid signature (alarm).
    InvSignature,
    /// x.4 protocol error.
    ProtocolErr,
    /// x.5 certificate error.
    PkCertError,
    /// x.6 certificate alarm.
    PkCertAlarm,
    /// x.7 address mismatch (alarm).
    AddrMismatch,
    /// x.8 unexpected version.
    UnexpVersion,
    /// x.9 invalid time.
    InvTime,
    /// x.10 replay (alarm).
    Replay,
}

/// The catalogue entry of a generic check for a group (3–7, 12, 13). The suffixed mnemonics
/// of these groups were not captured; the base names are used.
pub fn generic(group: u16, g: Generic) -> EventDef {
    let (n, m, s) = match g {
        Generic::SigAlgNotSup => (1, "SIGNATURE_ALGO_NOT_SUP", E),
        Generic::SigAlgMismatch => (2, "SIGNATURE_ALGO_MISMATCH", A),
        Generic::InvSignature => (3, "INV_SIGNATURE", A),
        Generic::ProtocolErr => (4, "PROTOCOL_ERR", E),
        Generic::PkCertError => (5, "PKCERT_ERROR", E),
        Generic::PkCertAlarm => (6, "PKCERT_ALARM", A),
        Generic::AddrMismatch => (7, "ADDR_MISMATCH", A),
        Generic::UnexpVersion => (8, "UNEXP_VERSION", E),
        Generic::InvTime => (9, "INV_TIME", E),
        Generic::Replay => (10, "REPLAY_DETEC", A),
    };
    d(group, n, m, s)
}

/// Group 6.11 — a DtSecAbort without diagnostic was received (the peer raised an alarm).
pub const DT_ABORT_ALARM_RCVD: EventDef = d(6, 11, "DT_SEC_ABORT_ALARM_RCVD", A);
/// A DtSecAbort with a diagnostic that has no captured catalogue entry (e.g. invalid sequence
/// number) was received: a secmms-local event (`secmms:0.1`), so the receiver still records why
/// the peer aborted.
pub const DT_ABORT_OTHER_RCVD: EventDef = d(0, 1, "DT_SEC_ABORT_RCVD", E);

/// Groups 6.12–6.16 — a DtSecAbort with one of the listed diagnostics was received (§14.5);
/// [`DT_ABORT_OTHER_RCVD`] for the others.
pub fn dt_abort_received(diag: crate::diag::DtDiagnostic) -> Option<EventDef> {
    use crate::diag::DtDiagnostic as D;
    let (n, m) = match diag {
        D::ProtocolError => (12, "DT_SEC_ABORT_PROT_ERR_RCVD"),
        D::EncryptionNotSelected => (13, "DT_SEC_ABORT_ENCR_NOT_SEL_RCVD"),
        D::EncryptionRequired => (14, "DT_SEC_ABORT_ENCR_REQ_RCVD"),
        D::UnexpectedDhPublicKey => (15, "DT_SEC_ABORT_UNEXP_REKEY_RCVD"),
        D::UnexpectedChangedKeys => (16, "DT_SEC_ABORT_UNEXP_CHANGED_KEYS_RCVD"),
        _ => return Some(DT_ABORT_OTHER_RCVD),
    };
    Some(d(6, n, m, E))
}

/// Group 4.11 — a HandshakeSecReject without diagnostic was received.
pub const SEC_REJECT_ALARM_RCVD: EventDef = d(4, 11, "HANDSHAKE_SEC_REJECT_ALARM_RCVD", A);
/// Group 5.11 — a HandshakeSecAbort without diagnostic was received.
pub const SEC_ABORT_ALARM_RCVD: EventDef = d(5, 11, "HANDSHAKE_SEC_ABORT_ALARM_RCVD", A);

/// Groups 10 (ClearTransfer) and 11 (EncrTransfer) — §14.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtCheck {
    /// x.1 protocol error.
    ProtocolErr,
    /// 10.2 encryption was selected / 11.2 encryption not selected.
    WrongKind,
    /// x.3 invalid ICV algorithm (alarm).
    IcvAlg,
    /// x.4 GMAC nonce (10.4) / GCM nonce (11.4) required.
    Nonce,
    /// x.5 bad ICV (alarm).
    BadIcv,
    /// x.6 invalid time.
    InvTime,
    /// x.7 replay (alarm).
    Replay,
    /// x.8 invalid sequence number.
    Seq,
    /// 11.9 AES IV required.
    AesIv,
    /// unexpected DH public key.
    UnexpDh,
    /// unexpected changed keys.
    UnexpChanged,
}

/// The catalogue entry of a data-transfer check.
pub fn dt(encrypted: bool, c: DtCheck) -> EventDef {
    let g = if encrypted { 11 } else { 10 };
    let (n, m, s) = match (encrypted, c) {
        (false, DtCheck::ProtocolErr) => (1, "CLEAR_DATA_PROT_ERROR_TRF", E),
        (true, DtCheck::ProtocolErr) => (1, "ENCR_DATA_PROT_ERROR_TRF", E),
        (false, DtCheck::WrongKind) => (2, "ENCR_WAS_SEL_TRF", E),
        (true, DtCheck::WrongKind) => (2, "ENCR_NOT_SEL_TRF", E),
        (false, DtCheck::IcvAlg) => (3, "CLEAR_INV_ICV_ALGO_TRF", A),
        (true, DtCheck::IcvAlg) => (3, "ENCR_INV_ICV_ALGO_TRF", A),
        (false, DtCheck::Nonce) => (4, "CLEAR_GMAC_NONCE_REQ_TRF", E),
        (true, DtCheck::Nonce) => (4, "ENCR_GMAC_NONCE_REQ_TRF", E),
        (false, DtCheck::BadIcv) => (5, "CLEAR_BAD_ICV_TRF", A),
        (true, DtCheck::BadIcv) => (5, "ENCR_BAD_ICV_TRF", A),
        (false, DtCheck::InvTime) => (6, "CLEAR_INV_TIME_TRF", E),
        (true, DtCheck::InvTime) => (6, "ENCR_INV_TIME_TRF", E),
        (false, DtCheck::Replay) => (7, "CLEAR_REPLAY_TRF", A),
        (true, DtCheck::Replay) => (7, "ENCR_REPLAY_TRF", A),
        (false, DtCheck::Seq) => (8, "CLEAR_INV_SEQ_TRF", E),
        (true, DtCheck::Seq) => (8, "ENCR_INV_SEQ_TRF", E),
        (_, DtCheck::AesIv) => (9, "AES_IV_REQ_TRF", E),
        (false, DtCheck::UnexpDh) => (9, "CLEAR_UNEXP_DH_KEY_TRF", E),
        (true, DtCheck::UnexpDh) => (10, "ENCR_UNEXP_DH_KEY_TRF", E),
        (false, DtCheck::UnexpChanged) => (10, "CLEAR_UNEXP_CHANGED_KEY_TRF", E),
        (true, DtCheck::UnexpChanged) => (11, "ENCR_UNEXP_CHANGED_KEY_TRF", E),
    };
    d(g, n, m, s)
}

/// Local event (no catalogue entry): the client's rekey timed out.
pub const REKEY_TIMEOUT: EventDef = EventDef {
    group: 0,
    number: 1,
    mnemonic: "E2E_REKEY_TIMEOUT",
    severity: E,
};
